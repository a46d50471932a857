"""Consolidation (metaplasticity): synapses that were eligible when dopamine was positive learn more slowly."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from spikegym.agents.agent import Agent
from spikegym.brains import step as B
from spikegym.brains.consolidation import ConsolidationParams
from spikegym.brains.spec import BrainSpec, Population, Projection
from spikegym.brains.state import init_state
from spikegym.training.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def _brain(consolidation):
    spec = BrainSpec((Population("in", 2, "input"), Population("out", 1, "escape")),
                     (Projection("in", "out", rule="node_perturbation", lr=0.1, consolidation=consolidation),))
    state = init_state(spec, batch=1, seed=0)
    # synapse 0 is eligible (tagged), synapse 1 is not
    return spec, state._replace(e={"in->out": torch.tensor([[[2.0], [0.0]]])})


def test_weights_learn_at_lr_over_one_plus_c_and_c_follows_its_closed_form():
    p = ConsolidationParams(rate=0.3, keep=0.9)
    spec, state = _brain(p)
    d, e, lr, n = 0.5, 2.0, 0.1, 25
    for _ in range(n):
        state = B.learn(spec, state, torch.tensor([d]))
    c = [p.rate * d * e * (1 - p.keep ** k) / (1 - p.keep) for k in range(n + 1)]   # c before decision k
    w = sum(lr * d * e / (1 + c[k]) for k in range(n))
    assert float(state.consolidation["in->out"][0, 0, 0]) == pytest.approx(c[n], rel=1e-5)
    assert float(state.w["in->out"][0, 0, 0]) == pytest.approx(w, rel=1e-5)
    assert float(state.consolidation["in->out"][0, 1, 0]) == 0.0 and float(state.w["in->out"][0, 1, 0]) == 0.0


def test_what_was_captured_resists_opposite_dopamine_and_negative_dopamine_captures_nothing():
    moved = {}
    for name, params in (("on", ConsolidationParams(rate=1.0, keep=1.0)), ("off", None)):
        spec, state = _brain(params)
        for _ in range(10):                        # it helped: positive dopamine while eligible
            state = B.learn(spec, state, torch.tensor([0.5]))
        before = float(state.w["in->out"][0, 0, 0])
        c = state.consolidation.get("in->out")
        for _ in range(10):                        # now the dopamine pulls the other way
            state = B.learn(spec, state, torch.tensor([-0.5]))
        moved[name] = before - float(state.w["in->out"][0, 0, 0])
        if params is not None:
            assert torch.equal(state.consolidation["in->out"], c)      # negative dopamine captures nothing
            assert float(c[0, 0, 0]) == pytest.approx(10 * 0.5 * 2.0)  # keep 1: 10 captures of 0.5 x |2|
    assert moved["off"] == pytest.approx(10 * 0.1 * 0.5 * 2.0, rel=1e-5)
    assert moved["on"] == pytest.approx(moved["off"] / (1 + 10.0), rel=1e-4)  # lr / (1 + c), c = 10


def test_consolidation_is_off_by_default_and_on_the_actor_only_when_enabled():
    low, high, space = -np.ones(4), np.ones(4), gym.spaces.Discrete(2)
    cfg = load_config(ROOT / "configs/cartpole.yaml", ["env.num_agents=2"])
    agent = Agent(cfg, low, high, space, num_agents=2, seed=0, engine="reference")
    assert agent.state.brain.consolidation == {}
    cfg = load_config(ROOT / "configs/cartpole.yaml", ["env.num_agents=2", "plasticity.consolidation.enabled=true",
                                                       "plasticity.consolidation.tau_steps=100"])
    agent = Agent(cfg, low, high, space, num_agents=2, seed=0, engine="reference")
    assert set(agent.state.brain.consolidation) == {"sensors->motor"}
    assert agent.spec.brain.projs["sensors->motor"].consolidation == ConsolidationParams(0.001, 0.99)
    flags = np.zeros(2, bool)
    for _ in range(30):
        agent.step(np.zeros((2, 4)), -np.ones(2) * 0, flags, flags)
    assert "brain.consolidation.sensors->motor" in agent.state_dict()
