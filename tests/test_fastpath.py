"""The agent step in numba kernels (agents/fastpath.py) is the torch step, up to float rounding.

* it applies to the CartPole config and not where the agent needs what the kernels leave out;
* discrete (CartPole) and continuous (InvertedPendulum) agents act as their torch twins, step for step,
  through episode ends, with the same values, TD errors, weights and eligibility up to rounding;
* ``learn=False`` moves no weight; the same seed gives the same bits; a checkpoint loaded into a fresh
  agent continues exactly as the agent it came from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from spikegym.agents import fastpath
from spikegym.envs import make_vector_env, reset_seeds
from spikegym.training.config import load_config
from spikegym.training.loop import make_agent

ROOT = Path(__file__).resolve().parents[1]
CARTPOLE = ROOT / "configs" / "cartpole.yaml"
PENDULUM = ROOT / "configs" / "mujoco" / "inverted_pendulum.yaml"

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(not fastpath.available(), reason="numba is not installed")]


def _world(config, n, *overrides):
    cfg = load_config(config, [f"env.num_agents={n}", *overrides])
    envs = make_vector_env(cfg.env.id, n, cfg.run.seed, kwargs=cfg.env.kwargs, vectorization=cfg.env.vectorization,
                           max_episode_steps=cfg.env.max_episode_steps)
    return cfg, envs, make_agent(cfg, envs)


def _twins(config, n, steps, *overrides):
    """Run a kernel agent and a torch agent (same seed, own worlds) side by side; yield after every step."""
    worlds = [_world(config, n, *overrides, f"run.kernels={k}") for k in ("auto", "torch")]
    assert worlds[0][2].fast is not None and worlds[1][2].fast is None
    state = []
    for cfg, envs, _ in worlds:
        obs, _ = envs.reset(seed=reset_seeds(cfg.run.seed, n))
        state.append([obs, np.zeros(n), np.zeros(n, bool), np.zeros(n, bool)])
    for step in range(steps):
        actions = []
        for (_, envs, agent), s in zip(worlds, state):
            actions.append(agent.step(*s, global_step=step))
            s[0], s[1], s[2], s[3], _ = envs.step(actions[-1])
        yield step, actions, worlds[0][2], worlds[1][2], state[0]
    for _, envs, _ in worlds:
        envs.close()


def test_the_kernels_apply_where_the_agent_allows():
    _, envs, agent = _world(CARTPOLE, 2)
    assert agent.fast is not None
    envs.close()
    for config, overrides in [(CARTPOLE, ["run.kernels=torch"]),
                              (CARTPOLE, ["novelty.enabled=true"]),                   # curiosity
                              (CARTPOLE, ["encoder.adaptation.enabled=true"]),        # sensory adaptation
                              (CARTPOLE, ["dopamine.mode=baseline"]),
                              (CARTPOLE, ["brain.homeostasis.enabled=true"]),
                              (CARTPOLE, ["plasticity.w_max=1.0"]),                   # weight bounds
                              (ROOT / "configs" / "pendulum.yaml", [])]:              # angles, running ranges
        _, envs, agent = _world(config, 2, *overrides)
        assert agent.fast is None, overrides
        envs.close()


def test_cartpole_agents_act_as_their_torch_twins():
    ends = 0
    for step, actions, fast, slow, state in _twins(CARTPOLE, 8, 60):
        assert np.array_equal(actions[0], actions[1]), f"actions differ at step {step}"
        assert torch.equal(fast.last["sensors"], slow.last["sensors"])
        assert torch.equal(fast.last["motor"], slow.last["motor"])
        for key in ("value", "delta", "extrinsic"):
            torch.testing.assert_close(fast.last[key], slow.last[key], rtol=0, atol=2e-5)
        assert torch.equal(fast.state["learnable"], slow.state["learnable"])
        ends += int(state[2].sum() + state[3].sum())
    assert ends > 0  # autoresets happened on the way
    a, b = fast.state_dict(), slow.state_dict()
    assert a.keys() == b.keys()
    for key in a:  # rounding differences only: a few 1e-5 of each tensor's scale
        scale = max(1.0, float(b[key].abs().max())) if b[key].is_floating_point() else 0.0
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=5e-5 * scale, msg=key)
    assert int(a["brain.counter"]) == 60 * fast.K and int(a["brain.runs"]) == 60


def test_continuous_agents_act_as_their_torch_twins():
    for step, actions, fast, slow, _ in _twins(PENDULUM, 4, 30):
        np.testing.assert_array_equal(actions[0], actions[1], err_msg=f"step {step}")
        torch.testing.assert_close(fast.last["delta"], slow.last["delta"], rtol=0, atol=2e-5)


def test_evaluation_moves_no_weight_and_the_same_seed_gives_the_same_bits():
    runs = []
    for learn in (True, True, False):
        cfg, envs, agent = _world(CARTPOLE, 4)
        obs, _ = envs.reset(seed=reset_seeds(0, 4))
        w0 = {k: v.clone() for k, v in agent.state_dict().items() if k.startswith("brain.w__")}
        reward, term, trunc = np.zeros(4), np.zeros(4, bool), np.zeros(4, bool)
        for step in range(40):
            obs, reward, term, trunc, _ = envs.step(agent.step(obs, reward, term, trunc, learn=learn, global_step=step))
        envs.close()
        runs.append((w0, agent.state_dict()))
    (w0, first), (_, second), (_, frozen) = runs
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert all(torch.equal(frozen[k], w0[k]) for k in w0)
    assert not all(torch.equal(first[k], w0[k]) for k in w0)
    assert not torch.equal(frozen["brain.e__sensors__motor"], torch.zeros_like(frozen["brain.e__sensors__motor"]))


def test_a_loaded_checkpoint_continues_exactly():
    cfg, envs, agent = _world(CARTPOLE, 4)
    obs, _ = envs.reset(seed=reset_seeds(0, 4))
    reward, term, trunc = np.zeros(4), np.zeros(4, bool), np.zeros(4, bool)
    for step in range(25):
        obs, reward, term, trunc, _ = envs.step(agent.step(obs, reward, term, trunc, global_step=step))
    _, envs2, copy = _world(CARTPOLE, 4, "run.seed=7")  # other keys and weights until loaded
    copy.step(obs, reward, term, trunc, global_step=0)  # the kernel's views of the old tensors exist
    copy.load_state_dict({k: v.clone() for k, v in agent.state_dict().items()})
    for step in range(25, 40):
        a = agent.step(obs, reward, term, trunc, global_step=step)
        assert np.array_equal(a, copy.step(obs, reward, term, trunc, global_step=step))
        obs, reward, term, trunc, _ = envs.step(a)
    ours, theirs = agent.state_dict(), copy.state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    envs.close()
    envs2.close()
