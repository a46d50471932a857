"""The agent step in numba kernels (agents/fastpath.py) is the torch step, up to float rounding.

* it applies to the CartPole config and not where the agent needs what the kernels leave out;
* discrete (CartPole) and continuous (InvertedPendulum) agents step as their torch twins set to the same
  state, through episode ends: the same spikes and actions, values, TD errors, weights and eligibility up
  to rounding (a spike drawn between two roundings of its probability is the rare exception);
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


def _lockstep(config, n, steps):
    """A kernel agent acting in its world and, before each of its steps, a torch agent set to the same state
    and given the same inputs. Yields ``(step, fast action, torch action, fast, torch, number of states that
    differ beyond rounding)`` after every step."""
    cfg, envs, fast = _world(config, n)
    _, other, slow = _world(config, n, "run.kernels=torch")
    other.close()
    assert fast.fast is not None and slow.fast is None
    obs, _ = envs.reset(seed=reset_seeds(cfg.run.seed, n))
    reward, term, trunc = np.zeros(n), np.zeros(n, bool), np.zeros(n, bool)
    for step in range(steps):
        slow.load_state_dict({k: v.clone() for k, v in fast.state_dict().items()})
        a_slow = slow.step(obs, reward, term, trunc, global_step=step)
        a_fast = fast.step(obs, reward, term, trunc, global_step=step)
        yield step, a_fast, a_slow, fast, slow, term | trunc
        obs, reward, term, trunc, _ = envs.step(a_fast)
    envs.close()


def _differs(fast, slow) -> bool:
    """True when the agents' states differ by more than float rounding (a few 1e-5 of each tensor's scale):
    a spike drawn on the other side of a probability that the two steps round differently."""
    a, b = fast.state_dict(), slow.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        scale = max(1.0, float(b[key].abs().max())) if b[key].is_floating_point() else 0.0
        if not torch.allclose(a[key], b[key], rtol=0, atol=5e-5 * scale):
            return True
    return False


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


def test_without_numba_the_agent_takes_the_torch_step(monkeypatch):
    monkeypatch.setattr(fastpath, "numba", None)
    _, envs, agent = _world(CARTPOLE, 2)
    assert agent.fast is None
    obs, _ = envs.reset(seed=reset_seeds(0, 2))
    assert agent.step(obs, np.zeros(2), np.zeros(2, bool), np.zeros(2, bool)).shape == (2,)
    envs.close()


def test_cartpole_agents_step_as_their_torch_twins():
    """From the same state and inputs: the same spikes, actions, values and TD errors, and the same state after
    the step (weights, eligibility, rates, autoreset), up to rounding; a spike that falls between the two
    roundings of its probability is allowed in at most two of the 60 steps."""
    flipped = ends = 0
    for _step, a_fast, a_slow, fast, slow, ended in _lockstep(CARTPOLE, 8, 60):
        same = (np.array_equal(a_fast, a_slow) and torch.equal(fast.last["sensors"], slow.last["sensors"])
                and torch.equal(fast.last["motor"], slow.last["motor"]) and not _differs(fast, slow))
        flipped += not same
        for key in ("value", "delta", "extrinsic"):
            torch.testing.assert_close(fast.last[key], slow.last[key], rtol=0, atol=2e-5)
        assert torch.equal(fast.state["learnable"], slow.state["learnable"])
        ends += int(ended.sum())
    assert flipped <= 2
    assert ends > 0  # autoresets happened on the way
    assert int(fast.brain.counter) == 60 * fast.K and int(fast.brain.runs) == 60


def test_continuous_agents_step_as_their_torch_twins():
    flipped = 0
    for _step, a_fast, a_slow, fast, slow, _ in _lockstep(PENDULUM, 4, 30):
        flipped += not (np.array_equal(a_fast, a_slow) and not _differs(fast, slow))
        torch.testing.assert_close(fast.last["delta"], slow.last["delta"], rtol=0, atol=2e-5)
    assert flipped <= 1


def test_evaluation_moves_no_weight_and_the_same_seed_gives_the_same_bits():
    """Serial kernel twice, the parallel kernel (agents on two threads) once: the same bits; then an
    evaluation run (learn=False) that leaves every weight as it was while its eligibility moves."""
    runs = []
    for learn, threads in ((True, 1), (True, 1), (True, 2), (False, 1)):
        torch.set_num_threads(threads)
        cfg, envs, agent = _world(CARTPOLE, 4)
        obs, _ = envs.reset(seed=reset_seeds(0, 4))
        w0 = {k: v.clone() for k, v in agent.state_dict().items() if k.startswith("brain.w__")}
        reward, term, trunc = np.zeros(4), np.zeros(4, bool), np.zeros(4, bool)
        for step in range(40):
            obs, reward, term, trunc, _ = envs.step(agent.step(obs, reward, term, trunc, learn=learn, global_step=step))
        envs.close()
        runs.append((w0, agent.state_dict()))
    torch.set_num_threads(1)
    (w0, first), (_, second), (_, parallel), (_, frozen) = runs
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert all(torch.equal(first[k], parallel[k]) for k in first)
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
