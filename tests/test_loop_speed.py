"""The online loop's fast code agrees with the plain code it replaces, and benchmarks/loop_speed.py runs.

* the Agent's sensing draws exactly ``uniform(keys, counter, (K, B, N), stream) < probs`` and its tie-break
  noise ``uniform(keys, counter, (B, G), stream)`` (the kernel's equal draws: tests/test_equivalence.py);
* the encoder's fixed-range code is bit-identical to :func:`gaussian_fields` with copies and bias neurons;
* the benchmark prints its table and the machine-readable summary line.
"""

from __future__ import annotations

import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import load_benchmark

from spikegym.agents.agent import Agent
from spikegym.agents.decoders import discrete_action
from spikegym.agents.encoders import PopulationEncoder, gaussian_fields
from spikegym.agents.spec import SENSOR_STREAM, TIE_STREAM
from spikegym.brains.random import uniform
from spikegym.training.config import load_config

ROOT = Path(__file__).resolve().parents[1]
CARTPOLE = ROOT / "configs" / "cartpole.yaml"
SMALL = ["brain.substeps=6", "encoder.fields=5", "brain.motor_size=5", "brain.critic_size=7"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _agent(num_agents, *overrides, seed=0, engine=None):
    cfg = load_config(CARTPOLE, [*SMALL, *overrides])
    spec = gym.make("CartPole-v1")
    agent = Agent(cfg, spec.observation_space.low, spec.observation_space.high, spec.action_space,
                  num_agents=num_agents, seed=seed, engine=engine)
    spec.close()
    return agent


def test_sensing_draws_exactly_the_uniform_streams():
    """The reference step's sensor spikes are ``uniform(keys, counter, (K, B, N), SENSOR_STREAM) < probs`` and
    its action breaks ties with ``uniform(keys, counter, (B, G), TIE_STREAM)``, at any counter."""
    agent = _agent(3, engine="reference")
    spec = agent.spec
    g = torch.Generator().manual_seed(0)
    for counter in (0, 6, 4090, 4095, 123_456):
        brain = agent.state.brain._replace(counter=torch.tensor(counter))
        agent.state = agent.state._replace(brain=brain)
        obs = (torch.rand(3, 4, generator=g) * 2 - 1).numpy()
        probs, _, _ = spec.encoder.code(agent.state.encoder, torch.as_tensor(obs), K=spec.K)
        action, info = agent.step(obs, np.zeros(3), np.zeros(3, bool), np.zeros(3, bool))
        keys = agent.state.brain.keys
        noise = uniform(keys, counter, (spec.K, 3, probs.shape[1]), stream=SENSOR_STREAM)
        assert torch.equal(info.sensors, (noise < probs).float())
        assert 0 < float(info.sensors.mean()) < 1
        ties = uniform(keys, counter, (3, spec.n_groups), stream=TIE_STREAM)
        assert np.array_equal(action, discrete_action(info.motor, spec.n_groups, ties).numpy())
        assert int(agent.state.brain.counter) == counter + spec.K


def test_fixed_range_code_is_bit_identical_to_gaussian_fields():
    low, high = [-2.4, -2.0, -0.21], [2.4, 2.0, 0.21]
    enc = PopulationEncoder(low, high, 5, fields=9, neurons_per_field=3, max_prob=0.7, bias_neurons=2,
                            normalize="bounds")
    obs = torch.rand(5, 3, generator=torch.Generator().manual_seed(1)) * 6 - 3  # some beyond the ranges
    obs[0] = torch.tensor(low)
    p = enc.probabilities(obs.numpy().astype(np.float32))  # the float32 numpy input path
    phi = gaussian_fields(obs, enc.field_low, enc.field_high, 9)
    plain = torch.cat([(0.7 * phi).repeat_interleave(3, dim=1), torch.full((5, 2), 0.7)], dim=1)
    assert torch.equal(p, plain)


def test_loop_speed_benchmark_prints_table_and_summary(capsys):
    bench = load_benchmark("loop_speed")
    before = torch.get_num_threads()
    out = bench.main(["--batches", "4", "--steps", "20", "--segments", "2", "--threads", "1",
                      "--config", str(CARTPOLE)])
    assert torch.get_num_threads() == 1
    torch.set_num_threads(before)
    text = capsys.readouterr().out
    row = out["rows"][0]
    assert row["batch"] == 4 and row["engine"] in ("kernel", "reference") and row["loop"] > 0
    assert row["agent"] >= row["loop"]
    assert re.search(r"^summary: env=CartPole-v1 batch=4 agent_steps_per_s=[0-9.]+ target=30000$", text, re.M)


def test_all_configs_mode_compares_reference_and_chosen_engine(capsys, monkeypatch):
    bench = load_benchmark("loop_speed")
    configs = [ROOT / "configs" / "cartpole.yaml", ROOT / "configs" / "mujoco" / "halfcheetah.yaml"]
    monkeypatch.setattr(bench.Path, "rglob", lambda self, pattern: iter(configs))
    out = bench.main(["--all-configs", "--batch", "2", "--steps", "40", "--segments", "2"])
    text = capsys.readouterr().out
    assert [r["config"] for r in out["rows"]] == ["cartpole.yaml", "mujoco/halfcheetah.yaml"]
    for row in out["rows"]:
        assert row["reference"] > 0 and row["chosen"] > 0 and 0 <= row["env_share"] <= 1
    fast = sum(r["engine"] != "reference" for r in out["rows"])
    assert re.search(rf"^summary: configs=2 fast={fast} min_speedup=[0-9.]+ cartpole_agent_steps_per_s=[0-9.]+ "
                     r"halfcheetah_agent_steps_per_s=[0-9.]+$", text, re.M)
