"""The kernel backend's own bookkeeping around the numba step (the step itself: tests/test_equivalence.py):
the counters it moves in one add, continuous actions decoded in numpy, actions that outlive the next step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from spikegym.agents.agent import Agent
from spikegym.agents.decoders import continuous_action
from spikegym.envs import make_vector_env, obs_bounds, reset_seeds
from spikegym.training.config import load_config

pytest.importorskip("numba")
ROOT = Path(__file__).resolve().parents[1]
SMALL = ["brain.substeps=5", "brain.motor_size=6", "brain.critic_size=6", "env.num_agents=4"]
pytestmark = pytest.mark.usefixtures("one_thread")


def _run(config: str, steps: int):
    """``(agent, [(action, motor spikes) per step])`` of the kernel backend on ``config``'s world."""
    cfg = load_config(ROOT / config, SMALL)
    b = cfg.env.num_agents
    envs = make_vector_env(cfg.env.id, b, 0, kwargs=cfg.env.kwargs, vectorization="sync",
                           max_episode_steps=cfg.env.max_episode_steps)
    low, high = obs_bounds(envs.single_observation_space)
    agent = Agent(cfg, low, high, envs.single_action_space, num_agents=b, seed=1, engine="kernel")
    obs, _ = envs.reset(seed=reset_seeds(0, b))
    reward, term, trunc = np.zeros(b), np.zeros(b, bool), np.zeros(b, bool)
    out = []
    for _ in range(steps):
        action, info = agent.step(obs, reward, term, trunc)
        out.append((action, info.motor.clone()))
        obs, reward, term, trunc, _ = envs.step(action)
    envs.close()
    return agent, out


def test_counters_move_by_substeps_windows_and_decisions():
    agent, _ = _run("configs/cartpole.yaml", 7)
    brain = agent.state.brain
    assert (int(brain.counter), int(brain.windows), int(agent.state.steps)) == (7 * agent.spec.K, 7, 7)
    flat = agent.state_dict()  # the checkpoint sees the same values
    assert (int(flat["brain.counter"]), int(flat["steps"])) == (7 * agent.spec.K, 7)


def test_continuous_actions_are_the_push_pull_of_the_motor_spikes_bit_for_bit():
    agent, out = _run("configs/pendulum.yaml", 12)
    spec = agent.spec
    for step, (action, motor) in enumerate(out):
        want = continuous_action(motor, spec.act_low, spec.act_high, gain=spec.cfg.brain.action_gain)
        assert action.dtype == want.numpy().dtype
        np.testing.assert_array_equal(action, want.numpy(), err_msg=f"step {step}")


def test_an_action_is_not_overwritten_by_the_next_step():
    _, out = _run("configs/cartpole.yaml", 30)
    actions = np.stack([a for a, _ in out])
    kept = [a.copy() for a, _ in out]
    np.testing.assert_array_equal(actions, np.stack(kept))
    assert len({a.ctypes.data for a, _ in out}) == len(out), "each step returns its own action array"
    assert any(not torch.equal(out[0][1], m) for _, m in out[1:])  # the world did move
