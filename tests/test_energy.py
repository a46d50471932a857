"""Energy: spikes and synaptic events per decision, per population, equal a hand count from the spikes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spikegym.agents.agent import Agent
from spikegym.envs import make_vector_env, obs_bounds, reset_seeds
from spikegym.training import tags as T
from spikegym.training.config import load_config
from spikegym.training.energy import EnergyMeter
from spikegym.training.loop import train

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["brain.substeps=4", "encoder.fields=3", "encoder.neurons_per_field=2", "brain.motor_size=3",
         "brain.critic_size=5", "run.progress=off"]

pytestmark = pytest.mark.usefixtures("one_thread")


def _run(overrides, steps=30, batch=3):
    cfg = load_config(ROOT / "configs/cartpole.yaml", [f"env.num_agents={batch}", *SMALL, *overrides])
    envs = make_vector_env(cfg.env.id, batch, 0, vectorization="sync")
    low, high = obs_bounds(envs.single_observation_space)
    agent = Agent(cfg, low, high, envs.single_action_space, num_agents=batch, seed=1, engine="reference")
    meter = EnergyMeter(batch)
    obs, _ = envs.reset(seed=reset_seeds(0, batch))
    reward, term, trunc = np.zeros(batch), np.zeros(batch, bool), np.zeros(batch, bool)
    infos = []
    for t in range(steps):
        action, info = agent.step(obs, reward, term, trunc)
        meter.add(info)
        infos.append(info)
        obs, reward, term, trunc, _ = envs.step(action)
        if t == 11:
            meter.flush(agent)  # several log intervals add up to the same totals
    meter.flush(agent)
    envs.close()
    return agent, meter, infos


@pytest.mark.parametrize("overrides", [[], ["brain.lateral_inhibition=0.5", "brain.structural.enabled=true",
                                            "brain.structural.max_density=0.5"]],
                         ids=["dense", "lateral+masked"])
def test_energy_equals_a_hand_count(overrides):
    agent, meter, infos = _run(overrides)
    n_motor, n_critic = agent.spec.brain.pops["motor"].size, agent.spec.brain.pops["critic"].size
    state = agent.state.brain
    mask = state.mask.get("sensors->motor")
    if overrides:
        assert mask is not None and 0 < mask.float().mean() < 1  # the masked case really has absent synapses
    b = agent.B
    hand = {p: np.zeros(b) for p in ("sensors", "motor", "critic")}
    events = {p: np.zeros(b) for p in ("sensors", "motor")}
    for info in infos:
        sens = info.sensors.numpy()  # [K, B, N_in]
        mot = info.motor.numpy()     # [K, B, N_motor]
        for a in range(b):
            hand["sensors"][a] += sens[:, a].sum()
            hand["motor"][a] += mot[:, a].sum()
            hand["critic"][a] += float(info.spikes[a]) - mot[:, a].sum()
            for i in range(sens.shape[2]):  # each sensor spike reaches its motor synapses and every critic neuron
                reach = (int(mask[a, i].sum()) if mask is not None else n_motor) + n_critic
                events["sensors"][a] += sens[:, a, i].sum() * reach
            if "motor->motor" in agent.spec.brain.projs:  # lateral inhibition: the other actions' neurons
                events["motor"][a] += mot[:, a].sum() * (n_motor - agent.spec.motor_size)
    s = meter.summary()
    n = len(infos)
    assert s["decisions"] == n
    for p in hand:
        assert s["spikes_per_decision"][p] == pytest.approx(hand[p].mean() / n, rel=1e-9)
    assert s["synaptic_events_per_decision"]["sensors"] == pytest.approx(events["sensors"].mean() / n, rel=1e-9)
    assert s["synaptic_events_per_decision"]["motor"] == pytest.approx(events["motor"].mean() / n, rel=1e-9)
    assert s["synaptic_events_per_decision"]["critic"] == 0.0
    total = sum(hand.values()) / n
    np.testing.assert_allclose(s["spikes_per_decision_per_agent"], total, rtol=1e-9)
    assert hand["sensors"].sum() > 0 and hand["motor"].sum() > 0 and hand["critic"].sum() > 0
    if "motor->motor" in agent.spec.brain.projs:
        assert events["motor"].sum() > 0


def test_energy_is_in_the_result_and_tensorboard_and_survives_a_resume(tmp_path):
    cfg = lambda steps: load_config(ROOT / "configs/cartpole.yaml", [  # noqa: E731
        "env.num_agents=2", *SMALL, f"run.steps={steps}", "run.log_every=20", "run.checkpoint_every=40"])
    whole = train(cfg(80), run_dir=tmp_path / "whole")["energy"]
    train(cfg(40), run_dir=tmp_path / "split")
    split = train(cfg(80), run_dir=tmp_path / "split", resume=True)["energy"]
    assert whole["decisions"] == 80 and split == whole
    assert whole["spikes_per_decision"]["sensors"] > 0 and whole["synaptic_events_per_decision"]["sensors"] > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "whole"))
    acc.Reload()
    scalars = acc.Tags()["scalars"]
    for pop in ("sensors", "motor", "critic"):
        assert T.tag(T.ENERGY_SPIKES, pop=pop) in scalars and T.tag(T.ENERGY_EVENTS, pop=pop) in scalars
    points = acc.Scalars(T.ENERGY_SPIKES_TOTAL)
    assert [p.step for p in points] == [20, 40, 60, 80]
    # the interval means average to the run's figure (equal intervals)
    assert np.mean([p.value for p in points]) == pytest.approx(whole["spikes_per_decision"]["total"], rel=1e-5)


def test_a_lower_homeostatic_target_lowers_motor_spikes():
    """The sparsity option: threshold homeostasis with a low target rate makes the motor population fire less."""
    def motor_spikes(overrides):
        _, meter, _ = _run(overrides, steps=150, batch=2)
        return meter.summary()["spikes_per_decision"]["motor"]
    free = motor_spikes([])
    sparse = motor_spikes(["brain.homeostasis.enabled=true", "brain.homeostasis.target_rate=0.02",
                           "brain.homeostasis.eta=0.05", "brain.homeostasis.mode=threshold"])
    assert sparse < 0.7 * free, (sparse, free)
