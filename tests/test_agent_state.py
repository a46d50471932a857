"""The agent's checkpoint form: an earlier version's checkpoint (module buffers ``kind__pre__post``,
``agent.*``) loads with every value where it belongs, and a checkpoint continues a run exactly: bit for bit on
the kernel, within float rounding on the torch reference. No autograd graph anywhere in a step."""

from __future__ import annotations

import io
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from spikegym.agents.agent import Agent
from spikegym.envs import make_vector_env, reset_seeds
from spikegym.training.config import load_config

CARTPOLE = Path(__file__).resolve().parents[1] / "configs" / "cartpole.yaml"
SMALL = ["brain.substeps=5", "encoder.fields=4", "brain.motor_size=6", "brain.critic_size=6"]

pytestmark = pytest.mark.usefixtures("one_thread")


def make_agent(overrides, num_agents=2, *, seed=0, engine=None):
    cfg = load_config(CARTPOLE, [*SMALL, *overrides])
    env = gym.make("CartPole-v1")
    agent = Agent(cfg, env.observation_space.low, env.observation_space.high, env.action_space,
                  num_agents=num_agents, seed=seed, engine=engine)
    env.close()
    return agent


# --------------------------------------------------------------------------- an earlier version's checkpoint

# every mechanism that leaves state: lateral inhibition, structural masks, adaptation, curiosity, TD surprise
OLD_FEATURES = ["brain.lateral_inhibition=0.5", "brain.structural.enabled=true", "brain.homeostasis.enabled=true",
                "encoder.adaptation.enabled=true", "novelty.enabled=true", "novelty.hash_bits=8",
                "novelty.surprise_gain=0.5", "dopamine.mode=baseline"]

# old name -> new name, written out literally (the names earlier versions' checkpoints carry)
OLD_TO_NEW = {
    "brain.w__sensors__motor": "brain.w.sensors->motor",
    "brain.w__sensors__critic": "brain.w.sensors->critic",
    "brain.w__motor__motor": "brain.w.motor->motor",
    "brain.e__sensors__motor": "brain.e.sensors->motor",
    "brain.e__sensors__critic": "brain.e.sensors->critic",
    "brain.mask__sensors__motor": "brain.mask.sensors->motor",
    "brain.age__sensors__motor": "brain.age.sensors->motor",
    "brain.excite__motor": "brain.excite.motor",
    "brain.excite__critic": "brain.excite.critic",
    "brain.last__motor": "brain.last.motor",
    "brain.last__critic": "brain.last.critic",
    "brain.rate__sensors": "brain.rate.sensors",
    "brain.rate__motor": "brain.rate.motor",
    "brain.rate__critic": "brain.rate.critic",
    "brain.keys": "brain.keys",
    "brain.counter": "brain.counter",
    "brain.runs": "brain.windows",
    "encoder.rn_count": "encoder.rn_count",
    "encoder.rn_mean": "encoder.rn_mean",
    "encoder.rn_var": "encoder.rn_var",
    "encoder.adapt_level": "encoder.level",
    "encoder.adapt_last_input": "encoder.last_input",
    "novelty.counts": "novelty.counts",
    "agent.value_prev": "critic.value_prev",
    "agent.learnable": "critic.learnable",
    "agent.reward_mean": "critic.reward_mean",
    "agent.td_fast": "critic.td_fast",
    "agent.td_slow": "critic.td_slow",
    "agent.steps": "steps",
}
#: state added after the old format: loads as its fresh value (0)
NEW_SINCE = {"critic.serotonin"}


def distinct(like: torch.Tensor, i: int) -> torch.Tensor:
    """A value of ``like``'s shape and dtype that no other entry (and no fresh state) has."""
    n = like.numel()
    if like.dtype == torch.bool:
        return (torch.arange(n) % 3 == i % 3).reshape(like.shape)
    base = torch.arange(n, dtype=torch.float64).reshape(like.shape)
    if like.dtype.is_floating_point:
        return (0.5 + i + base * 1e-3).to(like.dtype)
    return (7 + 100 * i + base % 50).to(like.dtype)


def test_an_old_format_checkpoint_loads_every_value_where_it_belongs():
    agent = make_agent(OLD_FEATURES, engine="reference")
    fresh = agent.state_dict()
    assert set(OLD_TO_NEW.values()) | NEW_SINCE == set(fresh), "the test's name table must cover the whole state"
    old = {name: distinct(fresh[new], i) for i, (name, new) in enumerate(OLD_TO_NEW.items())}
    agent.load_state_dict(old)
    now = agent.state_dict()
    for new in NEW_SINCE:
        assert torch.equal(now[new], torch.zeros_like(fresh[new])), new
    for name, new in OLD_TO_NEW.items():
        want = old[name]  # weights stay magnitudes, as before: the sign lives on the projection
        if new == "brain.e.sensors->motor":  # the old fold left eligibility at absent synapses: dropped
            want = want * old["brain.mask__sensors__motor"].bool()
        assert now[new].dtype == fresh[new].dtype, new
        assert torch.equal(now[new], want.to(fresh[new].dtype)), f"{name} -> {new}"
    # and the typed state holds the same tensors
    s = agent.state
    assert torch.equal(s.brain.w["sensors->critic"], old["brain.w__sensors__critic"])
    assert torch.equal(s.brain.rate["sensors"], old["brain.rate__sensors"])
    assert int(s.brain.counter) == int(old["brain.counter"]) and int(s.brain.windows) == int(old["brain.runs"])
    assert torch.equal(s.encoder.level, old["encoder.adapt_level"])
    assert torch.equal(s.critic.learnable, old["agent.learnable"]) and int(s.steps) == int(old["agent.steps"])
    # the loaded agent steps on
    z, f = np.zeros(2), np.zeros(2, bool)
    action, _ = agent.step(np.zeros((2, 4), np.float32), z, f, f)
    assert action.shape == (2,)


def test_an_old_checkpoint_without_surprise_or_baseline_gets_zero_means():
    """Buffers of features that were off then (TD surprise, reward baseline) start at zero."""
    agent = make_agent(OLD_FEATURES, engine="reference")
    fresh = agent.state_dict()
    absent = ("agent.reward_mean", "agent.td_fast", "agent.td_slow")
    old = {name: distinct(fresh[new], i) for i, (name, new) in enumerate(OLD_TO_NEW.items()) if name not in absent}
    agent.load_state_dict(old)
    for name in absent:
        assert torch.equal(agent.state_dict()[OLD_TO_NEW[name]], torch.zeros(2)), name
    assert torch.equal(agent.state.critic.value_prev, old["agent.value_prev"])


def test_a_checkpoint_missing_a_tensor_names_it():
    agent = make_agent([])
    flat = agent.state_dict()
    del flat["encoder.rn_mean"]
    with pytest.raises(KeyError, match="encoder.rn_mean"):
        agent.load_state_dict(flat)
    flat = agent.state_dict()
    flat["critic.value_prev"] = torch.zeros(3)
    with pytest.raises(ValueError, match="critic.value_prev"):
        agent.load_state_dict(flat)
    flat = agent.state_dict()  # a tensor these agents do not have: another config's checkpoint
    flat["brain.w.motor->motor"] = torch.zeros(2, 3, 3)
    with pytest.raises(KeyError, match="motor->motor"):
        agent.load_state_dict(flat)


def _old_names(flat: dict) -> dict:
    """This version's flat state under the names of the engine before issue 15."""
    enc = {"level": "adapt_level", "last_input": "adapt_last_input"}
    out = {}
    for key, t in flat.items():
        part, _, rest = key.partition(".")
        if part == "brain" and "." in rest:
            kind, _, name = rest.partition(".")
            kind = {"refractory": "ref", "stp_u": "stpu", "stp_x": "stpx"}.get(kind, kind)
            out[f"brain.{kind}__{name.replace('->', '__')}"] = t.clone()
        elif part == "brain":
            out[f"brain.{'runs' if rest == 'windows' else rest}"] = t.clone()
        elif part == "encoder":
            out[f"encoder.{enc.get(rest, rest)}"] = t.clone()
        elif part in ("critic", "steps"):
            out[f"agent.{rest or 'steps'}"] = t.clone()
        else:
            out[key] = t.clone()
    return out


def test_an_old_checkpoint_drops_eligibility_at_absent_synapses():
    agent = make_agent(["brain.structural.enabled=true", "brain.structural.max_density=0.5"])
    old = _old_names(agent.state_dict())
    old["brain.e__sensors__motor"] = torch.ones_like(old["brain.e__sensors__motor"])  # the old fold kept these
    agent.load_state_dict(old)
    mask = agent.state.brain.mask["sensors->motor"]
    assert 0 < int(mask.sum()) < mask.numel()
    assert torch.equal(agent.eligibility("sensors->motor"), mask.float())


# --------------------------------------------------------------------------- a checkpoint continues the run


def drive(agent, envs, obs, reward, term, trunc, steps):
    """``steps`` steps of ``agent`` in ``envs``; returns the inputs it saw, its actions and the env's last state."""
    seen, actions = [], []
    for _ in range(steps):
        seen.append((obs, reward, term, trunc))
        a, _ = agent.step(obs, reward, term, trunc)
        actions.append(a)
        obs, reward, term, trunc, _ = envs.step(a)
    return seen, actions, (obs, reward, term, trunc)


def saved(agent) -> dict:
    """The agent's state through a checkpoint file's round trip (torch.save / torch.load)."""
    buf = io.BytesIO()
    torch.save(agent.state_dict(), buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_a_kernel_checkpoint_continues_bit_for_bit_on_the_kernel_and_closely_on_the_reference():
    pytest.importorskip("numba")
    B = 3
    envs = make_vector_env("CartPole-v1", B, 0)
    obs, _ = envs.reset(seed=reset_seeds(0, B))
    z, f = np.zeros(B), np.zeros(B, bool)
    first = make_agent([], B, seed=5, engine="kernel")
    _, _, now = drive(first, envs, obs, z, f, f, 40)
    ckpt = saved(first)
    seen, actions, _ = drive(first, envs, *now, 40)
    envs.close()
    assert sum(int(np.count_nonzero(t | u)) for _, _, t, u in seen) > 0  # episodes ended after the checkpoint

    again = make_agent([], B, seed=99, engine="kernel")  # another seed: everything must come from the checkpoint
    again.load_state_dict(ckpt)
    for t, (inputs, a) in enumerate(zip(seen, actions)):
        np.testing.assert_array_equal(again.step(*inputs)[0], a, err_msg=f"step {t}")
    mine, theirs = first.state_dict(), again.state_dict()
    for k in mine:
        assert torch.equal(mine[k], theirs[k]), k

    # the reference from the same checkpoint: the same step up to float rounding (one step, before any spike
    # can round the other way and the two runs part; tests/test_equivalence.py holds longer lockstep)
    ref = make_agent([], B, seed=99, engine="reference")
    ref.load_state_dict(ckpt)
    kern = make_agent([], B, seed=99, engine="kernel")
    kern.load_state_dict(ckpt)
    a_ref, i_ref = ref.step(*seen[0])
    a_kern, i_kern = kern.step(*seen[0])
    assert torch.equal(i_ref.sensors, i_kern.sensors)  # the same noise: the streams came with the checkpoint
    # (a motor spike may round the other way in rare steps; with these seeds it does not)
    assert torch.equal(i_ref.motor, i_kern.motor)
    np.testing.assert_array_equal(a_ref, a_kern)
    torch.testing.assert_close(i_ref.value, i_kern.value, rtol=2e-4, atol=2e-5)
    torch.testing.assert_close(i_ref.delta, i_kern.delta, rtol=2e-4, atol=2e-5)
    theirs = kern.state_dict()
    for k, v in ref.state_dict().items():
        if v.is_floating_point():
            torch.testing.assert_close(v, theirs[k], rtol=2e-4, atol=2e-5, msg=lambda m, k=k: f"{k}: {m}")
        else:
            assert torch.equal(v, theirs[k]), k


# --------------------------------------------------------------------------- no backprop machinery


@pytest.mark.parametrize("engine", ["reference", "kernel"])
def test_no_autograd_graph_in_a_step(engine):
    if engine == "kernel":
        pytest.importorskip("numba")
    agent = make_agent(["novelty.surprise_gain=0.5"], engine=engine)
    z, f = np.zeros(2), np.zeros(2, bool)
    # the torch step even gets an input that asks for gradients (it must not start a graph from it)
    obs = torch.full((2, 4), 0.1, requires_grad=True) if engine == "reference" else np.full((2, 4), 0.1, np.float32)
    for _ in range(3):
        _, info = agent.step(obs, z - 1, f, f)
    for k, v in agent.state_dict().items():
        assert not v.requires_grad and v.grad_fn is None, k
    for name, v in info._asdict().items():
        assert v is None or (not v.requires_grad and v.grad_fn is None), name
