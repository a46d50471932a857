"""Lesions (agents/lesion.py): the silenced units never spike, removed synapses never come back, each agent loses
its own units, the state handed in is untouched, and a lesioned state is a checkpoint like any other."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from spikegym.agents.agent import Agent
from spikegym.agents.lesion import SILENT, lesion
from spikegym.agents.state import flatten, load_flat
from spikegym.envs import make_vector_env, obs_bounds, reset_seeds
from spikegym.training.config import load_config

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["brain.substeps=5", "encoder.fields=4", "brain.motor_size=5", "brain.critic_size=5"]

pytestmark = pytest.mark.usefixtures("one_thread")


def _agent(*overrides, batch=3, engine="reference"):
    cfg = load_config(ROOT / "configs/cartpole.yaml", [f"env.num_agents={batch}", *SMALL, *overrides])
    envs = make_vector_env(cfg.env.id, batch, 0, vectorization="sync")
    low, high = obs_bounds(envs.single_observation_space)
    return Agent(cfg, low, high, envs.single_action_space, num_agents=batch, seed=2, engine=engine), envs


def _play(agent, envs, steps, learn=True):
    """Spike counts per neuron summed over ``steps`` decisions: sensors ``[B, N_in]``, motor ``[B, N_m]``."""
    b = agent.B
    obs, _ = envs.reset(seed=reset_seeds(0, b))
    reward, term, trunc = np.zeros(b), np.zeros(b, bool), np.zeros(b, bool)
    sens = mot = 0
    for _ in range(steps):
        action, info = agent.step(obs, reward, term, trunc, learn=learn)
        sens = sens + info.sensors.sum(0)
        mot = mot + info.motor.sum(0)
        obs, reward, term, trunc, _ = envs.step(action)
    envs.close()
    return sens, mot


@pytest.mark.parametrize("engine", ["reference", "kernel"])
def test_silenced_sensors_never_spike_and_each_agent_loses_its_own(engine):
    agent, envs = _agent(engine=engine)
    before = flatten(agent.state)
    agent.state = lesion(agent.spec, agent.state, "sensors", 0.5, seed=1)
    assert all(torch.equal(v, flatten(agent.state)[k]) for k, v in before.items())  # nothing else changed
    alive = agent.state.lesion["sensors"]
    n = agent.spec.encoder.n_out
    assert (alive == 0).sum(-1).tolist() == [round(0.5 * n)] * agent.B
    assert not torch.equal(alive[0], alive[1])  # each agent its own
    sens, _ = _play(agent, envs, 80)
    assert sens[alive == 0].sum() == 0
    assert (sens[alive > 0] > 0).float().mean() > 0.3  # the others still spike


@pytest.mark.parametrize("engine", ["reference", "kernel"])
@pytest.mark.parametrize("neuron", ["escape", "lif"])
def test_silenced_motor_neurons_never_spike_even_with_homeostasis(engine, neuron):
    over = ["brain.homeostasis.enabled=true", "brain.homeostasis.eta=0.05"]  # homeostasis pulls silent neurons up
    if neuron == "lif":
        over += ["brain.neuron=lif", "plasticity.rule=stdp"]
    agent, envs = _agent(*over, engine=engine)
    agent.state = lesion(agent.spec, agent.state, "motor", 0.4, seed=3)
    dead = agent.state.brain.excite["motor"] <= SILENT / 2
    assert dead.sum(-1).tolist() == [round(0.4 * agent.spec.brain.pops["motor"].size)] * agent.B
    _, mot = _play(agent, envs, 80)
    assert mot[dead].sum() == 0
    assert mot[~dead].sum() > 0
    assert (agent.state.brain.excite["motor"][dead] <= SILENT / 2).all()  # homeostasis did not revive them


@pytest.mark.parametrize("engine", ["reference", "kernel"])
def test_removed_synapses_stay_removed_while_learning(engine):
    agent, envs = _agent("brain.w_init_std=0.05", engine=engine)
    w0 = agent.weights("sensors->motor").clone()
    agent.state = lesion(agent.spec, agent.state, "synapses", 0.25, seed=4)
    mask = agent.state.brain.mask["sensors->motor"].clone()
    per_agent = mask[0].numel()
    assert (~mask).flatten(1).sum(-1).tolist() == [round(0.25 * per_agent)] * agent.B
    _play(agent, envs, 120)
    w = agent.weights("sensors->motor")
    assert (w[~mask] == 0).all() and (agent.eligibility("sensors->motor")[~mask] == 0).all()
    assert not torch.equal(w[mask], w0[mask])  # the rest learned
    # a second lesion takes from the synapses left
    again = lesion(agent.spec, agent.state, "synapses", 0.5, seed=5).brain.mask["sensors->motor"]
    assert (again <= mask).all() and again.flatten(1).sum(-1).tolist() == [
        int(m.sum()) - round(0.5 * int(m.sum())) for m in mask]


def test_a_lesioned_state_is_a_checkpoint_and_zero_changes_nothing():
    agent, envs = _agent()
    envs.close()
    zero = flatten(lesion(agent.spec, agent.state, "motor", 0.0, seed=0))
    assert all(torch.equal(v, zero[k]) for k, v in flatten(agent.state).items())
    state = agent.state
    for i, kind in enumerate(("sensors", "synapses", "motor")):
        state = lesion(agent.spec, state, kind, 0.3, seed=i)
    fresh, envs = _agent()
    envs.close()
    loaded = flatten(load_flat(fresh.state, flatten(state)))  # a fresh agent takes the lesion in
    mine = flatten(state)
    assert loaded.keys() == mine.keys() and all(torch.equal(loaded[k], mine[k]) for k in mine)
    with pytest.raises(ValueError, match="kind"):
        lesion(agent.spec, state, "critics", 0.1)
    with pytest.raises(ValueError, match="fraction"):
        lesion(agent.spec, state, "motor", 1.5)


def test_a_balanced_motor_lesion_takes_the_same_number_from_every_action_population():
    agent, envs = _agent()
    envs.close()
    dead = lesion(agent.spec, agent.state, "motor_balanced", 0.4, seed=1).brain.excite["motor"] <= SILENT / 2
    m, g = agent.spec.motor_size, agent.spec.n_groups
    assert dead.view(agent.B, g, m).sum(-1).tolist() == [[round(0.4 * m)] * g] * agent.B
