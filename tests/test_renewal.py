"""Renewal: dormant and saturated motor neurons get fresh synapses; the others keep what they learned."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from spikegym.agents.agent import Agent
from spikegym.agents.renewal import RenewalParams, renew, renewal_due
from spikegym.training.config import load_config

ROOT = Path(__file__).resolve().parents[1]
ACTOR = "sensors->motor"


def _agent(*overrides, engine="reference"):
    cfg = load_config(ROOT / "configs/cartpole.yaml", ["env.num_agents=2", *overrides])
    return Agent(cfg, -np.ones(4), np.ones(4), gym.spaces.Discrete(2), num_agents=2, seed=0, engine=engine)


def test_renew_resets_only_the_dormant_and_saturated_neurons():
    agent = _agent("brain.w_init_std=0.01")
    spec, brain = agent.spec.brain, agent.state.brain
    w = torch.full_like(brain.w[ACTOR], 0.3)
    rate = torch.full_like(brain.rate["motor"], 0.3)
    rate[0, 1], rate[1, 5] = 0.0, 1.0                             # agent 0: neuron 1 dormant; agent 1: 5 saturated
    brain = brain._replace(w={**brain.w, ACTOR: w}, e={**brain.e, ACTOR: torch.ones_like(w)},
                           rate={**brain.rate, "motor": rate}, excite={**brain.excite, "motor": rate + 2.0},
                           windows=torch.tensor(1000))
    params = RenewalParams(every=1000, low=0.001, high=0.99)
    new, renewed = renew(spec, brain, params)
    assert renewed.nonzero().tolist() == [[0, 1], [1, 5]]
    for b, j in ((0, 1), (1, 5)):
        col = new.w[ACTOR][b, :, j]
        assert 0.003 < float(col.std()) < 0.03 and abs(float(col.mean())) < 0.005   # ~ N(0, 0.01): the initial law
        assert not new.e[ACTOR][b, :, j].any() and float(new.excite["motor"][b, j]) == 0.0
        assert float(new.rate["motor"][b, j]) == pytest.approx(0.4955)
    untouched = ~renewed.unsqueeze(1).expand_as(w)
    assert torch.equal(new.w[ACTOR][untouched], w[untouched]) and bool((new.e[ACTOR][untouched] == 1).all())
    assert torch.equal(new.w["sensors->critic"], brain.w["sensors->critic"])
    assert [renewal_due(params, n) for n in (0, 999, 1000, 2000)] == [False, False, True, True]


def test_a_dormant_motor_neuron_is_renewed_by_the_agent_step_on_schedule():
    for engine in ("reference", "kernel"):
        agent = _agent("plasticity.renewal.enabled=true", "plasticity.renewal.every=20", engine=engine)
        flat = agent.state_dict()
        flat["brain.w.sensors->motor"][:, :, 3] = -5.0            # neuron 3 silenced: p = sigmoid(-5 x inputs)
        agent.load_state_dict(flat)
        obs, zero, flags = np.zeros((2, 4)), np.zeros(2), np.zeros(2, bool)
        for step in range(20):
            agent.step(obs, zero, flags, flags)
            if step == 18:
                assert bool((agent.weights(ACTOR)[:, :, 3] == -5.0).all()), engine   # not yet: every 20 decisions
        # dormant (rate ~ 0) at decision 20: fresh synapses (w_init_std 0: zero); neuron 4 kept its weights
        assert not agent.weights(ACTOR)[:, :, 3].any(), engine
        assert float(agent.weights(ACTOR)[:, :, 4].abs().sum()) > 0, engine
