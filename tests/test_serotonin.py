"""Serotonin (agents/serotonin.py): punishment lowers the TD discount, reward raises it, the TD error uses the
discount of the agent's own running mean reward, on both backends; old checkpoints load without it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from spikegym.agents import serotonin as S
from spikegym.agents.agent import Agent
from spikegym.agents.state import flatten, load_flat
from spikegym.envs import make_vector_env, obs_bounds
from spikegym.training.config import load_config

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["brain.substeps=4", "encoder.fields=4", "brain.motor_size=4", "brain.critic_size=4",
         "dopamine.serotonin.enabled=true", "dopamine.serotonin.tau_steps=20"]

pytestmark = pytest.mark.usefixtures("one_thread")


def _agent(engine, *overrides, batch=2):
    cfg = load_config(ROOT / "configs/cartpole.yaml", [f"env.num_agents={batch}", *SMALL, *overrides])
    envs = make_vector_env(cfg.env.id, batch, 0, vectorization="sync")
    low, high = obs_bounds(envs.single_observation_space)
    envs.close()
    return Agent(cfg, low, high, envs.single_action_space, num_agents=batch, seed=0, engine=engine)


def _feed(agent, rewards, terminated):
    """Step with a fixed observation and the given per-step rewards / terminations (every agent alike)."""
    obs = np.zeros((agent.B, 4), np.float32)
    infos, means = [], []
    for r, t in zip(rewards, terminated):
        means.append(agent.state.critic.serotonin.clone())
        _, info = agent.step(obs, np.full(agent.B, r), np.full(agent.B, t), np.zeros(agent.B, bool))
        infos.append(info._replace(delta=info.delta.clone(), value=info.value.clone()))  # the kernel reuses them
    return infos, means


@pytest.mark.parametrize("engine", ["reference", "kernel"])
def test_punishment_lowers_the_discount_and_reward_raises_it(engine):
    cfg = _agent(engine).cfg.dopamine.serotonin
    mid = S.discount(torch.zeros(1), cfg).item()
    punished = _agent(engine)  # CartPole's failure signal: -1 whenever the pole falls, here every 4th step
    _feed(punished, [0.0] * 200, [i % 4 == 3 for i in range(200)])
    low = S.discount(punished.state.critic.serotonin, cfg)
    rewarded = _agent(engine, "env.failure_reward=null", "env.reward_scale=0.2")  # +0.2 a step
    _feed(rewarded, [1.0] * 200, [False] * 200)
    high = S.discount(rewarded.state.critic.serotonin, cfg)
    assert (low < mid - 0.03).all() and (high > mid + 0.03).all(), (low, mid, high)
    assert (low > cfg.gamma_low).all() and (high < cfg.gamma_high).all()


@pytest.mark.parametrize("engine", ["reference", "kernel"])
def test_the_td_error_uses_the_agents_own_discount(engine):
    agent = _agent(engine, "env.failure_reward=null", "env.reward_scale=0.5")
    rewards = [1.0, 1.0, -1.0, 1.0, 0.0, 1.0, 1.0, -1.0] * 4
    infos, means = _feed(agent, rewards, [False] * len(rewards))
    cfg = agent.cfg.dopamine.serotonin
    for t in range(2, len(infos)):
        gamma = S.discount(means[t], cfg)
        expected = 0.5 * rewards[t] + gamma * infos[t].value - infos[t - 1].value
        torch.testing.assert_close(infos[t].delta, expected, rtol=1e-4, atol=1e-5)
    assert float((means[-1] - means[0]).abs().max()) > 0.01  # the mean moved, so the discount did


def test_a_checkpoint_from_before_serotonin_loads_with_the_mean_at_zero():
    agent = _agent("reference")
    flat = {k: v for k, v in flatten(agent.state).items() if k != "critic.serotonin"}
    state = load_flat(agent.state, flat)
    assert torch.equal(state.critic.serotonin, torch.zeros(agent.B))
