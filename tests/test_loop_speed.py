"""The online loop's fast code agrees with the plain code it replaces, and benchmarks/loop_speed.py runs.

* the Agent's sensing (one hash for sensor spikes and tie-break noise) draws exactly
  ``uniform(keys, counter, (K, B, N), stream) < probs`` and ``uniform(keys, counter, (B, G), stream)``;
* a whole Agent on the brain's fused feed-forward path acts exactly as the same Agent on the general
  engine (one substep at a time), and learns the same weights;
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

from spikegym.agents import agent as agent_module
from spikegym.agents.agent import Agent
from spikegym.agents.encoders import PopulationEncoder, gaussian_fields
from spikegym.brains.random import uniform
from spikegym.envs import make_vector_env, reset_seeds
from spikegym.training.config import load_config

ROOT = Path(__file__).resolve().parents[1]
CARTPOLE = ROOT / "configs" / "cartpole.yaml"
SMALL = ["brain.substeps=6", "encoder.fields=5", "brain.motor_size=5", "brain.critic_size=7"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _agent(num_agents, *overrides, seed=0):
    cfg = load_config(CARTPOLE, [*SMALL, *overrides])
    spec = gym.make("CartPole-v1")
    agent = Agent(cfg, spec.observation_space.low, spec.observation_space.high, spec.action_space,
                  num_agents=num_agents, seed=seed)
    spec.close()
    return agent


def test_sensing_draws_exactly_the_uniform_streams():
    agent = _agent(3)
    g = torch.Generator().manual_seed(0)
    for counter in (0, 6, 4090, 4095, 123_456):
        probs = torch.rand(3, agent.encoder.n_out, generator=g) * 0.6
        probs[0, :5] = torch.tensor([0.0, 1.0, 2.0 ** -24, 0.5, 1 - 2.0 ** -24])
        spikes, ties = agent._sense(probs, counter)
        keys = agent.brain.keys
        noise = uniform(keys, counter, (agent.K, 3, probs.shape[1]), stream=agent_module._SENSOR_STREAM)
        assert torch.equal(spikes, (noise < probs).float())
        assert torch.equal(ties, uniform(keys, counter, (3, 2), stream=agent_module._TIE_STREAM))


def test_agent_on_the_fused_path_equals_the_general_engine():
    fast, slow = _agent(4, seed=3), _agent(4, seed=3)
    fast.fast = slow.fast = None              # the torch step: this compares the brain's engines
    assert fast.brain._ff is not None
    slow.brain._ff = None                     # event engine, one substep at a time
    slow.brain._vectorizable = lambda: False
    worlds = []
    for _ in range(2):
        envs = make_vector_env("CartPole-v1", 4, 0)
        obs, _ = envs.reset(seed=reset_seeds(0, 4))
        worlds.append([envs, obs, np.zeros(4), np.zeros(4, bool), np.zeros(4, bool)])
    ended = 0
    for step in range(60):
        actions = []
        for agent, w in zip((fast, slow), worlds):
            actions.append(agent.step(*w[1:], global_step=step))
            w[1], w[2], w[3], w[4], _ = w[0].step(actions[-1])
        assert np.array_equal(actions[0], actions[1]), f"actions differ at step {step}"
        torch.testing.assert_close(fast.last["value"], slow.last["value"], rtol=1e-5, atol=1e-6)
        ended += int(worlds[0][3].sum() + worlds[0][4].sum())
    assert ended > 0  # resets were exercised
    for name in ("sensors->motor", "sensors->critic"):
        torch.testing.assert_close(fast.brain.weights(name), slow.brain.weights(name), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(fast.brain.eligibility(name), slow.brain.eligibility(name), rtol=1e-4, atol=1e-5)
    for w in worlds:
        w[0].close()


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
    assert row["batch"] == 4 and row["fast_path"] and row["loop"] > 0 and row["agent"] >= row["loop"]
    assert re.search(r"^summary: env=CartPole-v1 batch=4 agent_steps_per_s=[0-9.]+ target=30000$", text, re.M)
