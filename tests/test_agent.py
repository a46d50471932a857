"""The Agent: deterministic, batch-independent, resets an agent whose episode ended (and does not learn
from the reset step), keeps terminated and truncated apart, keeps continuous actions in bounds, and
learns a trivial task in seconds (Stable-Baselines3's identity-env idea)."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from spikegym.agents.agent import Agent
from spikegym.agents.decoders import continuous_action
from spikegym.brains.state import FAST, reset_values
from spikegym.envs import make_vector_env, reset_seeds
from spikegym.training.config import load_config
from spikegym.training.loop import train

CARTPOLE = Path(__file__).resolve().parents[1] / "configs" / "cartpole.yaml"
# Small but complete brains: every mechanism of the CartPole config, fewer neurons and substeps.
SMALL = ["brain.substeps=5", "encoder.fields=4", "brain.motor_size=6", "brain.critic_size=6"]
PROJS = ("sensors->motor", "sensors->critic")
W = "brain.w.sensors->motor"


pytestmark = pytest.mark.usefixtures("one_thread")


def cartpole_cfg(*overrides):
    return load_config(CARTPOLE, [*SMALL, *overrides])


def make_agent(cfg, num_agents, *, seed=0, agent_index0=0, env_id="CartPole-v1"):
    spec = gym.make(env_id)
    agent = Agent(cfg, spec.observation_space.low, spec.observation_space.high, spec.action_space,
                  num_agents=num_agents, seed=seed, agent_index0=agent_index0)
    spec.close()
    return agent


class Driver:
    """A CartPole vector env of ``n`` worlds, stepped with the actions of one agent population."""

    def __init__(self, n, seed=0):
        self.envs = make_vector_env("CartPole-v1", n, seed)
        self.obs, _ = self.envs.reset(seed=reset_seeds(seed, n))
        self.reward, self.term, self.trunc = np.zeros(n), np.zeros(n, bool), np.zeros(n, bool)

    def inputs(self):
        return self.obs, self.reward, self.term, self.trunc

    def step(self, action):
        self.obs, self.reward, self.term, self.trunc, _ = self.envs.step(action)


def per_agent(state: dict, num_agents: int) -> dict:
    """The tensors of a state_dict that carry the agent axis first."""
    return {k: v for k, v in state.items() if v.dim() >= 1 and v.shape[0] == num_agents}


# --------------------------------------------------------------------------- determinism


def run_population(seed, steps=200, num_agents=2):
    cfg = cartpole_cfg("encoder.adaptation.enabled=true")
    agent, world = make_agent(cfg, num_agents, seed=seed), Driver(num_agents, seed=0)
    actions = []
    for _t in range(steps):
        a, _ = agent.step(*world.inputs())
        actions.append(a.copy())
        world.step(a)
    return np.array(actions), agent.state_dict()


def test_same_seed_same_actions_and_weights_different_seed_differs():
    acts1, state1 = run_population(seed=3)
    acts2, state2 = run_population(seed=3)
    np.testing.assert_array_equal(acts1, acts2)
    assert state1.keys() == state2.keys()
    for k in state1:
        assert torch.equal(state1[k], state2[k]), k
    # the agents did learn something (otherwise equal weights would prove little)
    assert state1[W].abs().sum() > 0

    acts3, state3 = run_population(seed=4, steps=50)
    assert not np.array_equal(acts1[:50], acts3)
    assert not torch.equal(state1[W], state3[W])


# --------------------------------------------------------------------------- batched == alone


def test_agent_in_a_batch_equals_agent_alone_with_learning():
    """Agent i of a batch of 3 acts exactly like a batch of one built with agent_index0=i, and like
    ``select(i)`` taken mid-run (same observations, learning on); its weights and traces agree up to
    float rounding."""
    cfg = cartpole_cfg()
    B = 3
    batch = make_agent(cfg, B)
    alone = [make_agent(cfg, 1, agent_index0=i) for i in range(B)]
    world = Driver(B)
    ended = 0
    for t in range(100):
        obs, r, term, trunc = world.inputs()
        ended += int((term | trunc).sum())
        a, _ = batch.step(obs, r, term, trunc)
        for i, single in enumerate(alone):
            ai, _ = single.step(obs[i:i + 1], r[i:i + 1], term[i:i + 1], trunc[i:i + 1])
            assert ai[0] == a[i], f"agent {i} differs at step {t}"
        world.step(a)
    assert ended > 0  # episode ends (and so masked resets) happened during the comparison
    mine = per_agent(batch.state_dict(), B)
    assert W in mine and "brain.e.sensors->critic" in mine
    for i, single in enumerate(alone):
        theirs = single.state_dict()
        for k, v in mine.items():
            # equal up to float rounding: batched products may sum in another order than a batch of one
            torch.testing.assert_close(v[i:i + 1], theirs[k], rtol=1e-5, atol=1e-6, msg=lambda m, k=k, i=i: f"{k}[{i}]: {m}")

    # select(i) mid-run continues exactly like agent i of the batch
    picked = batch.select(1)
    for t in range(100, 150):
        obs, r, term, trunc = world.inputs()
        a, _ = batch.step(obs, r, term, trunc)
        a1, _ = picked.step(obs[1:2], r[1:2], term[1:2], trunc[1:2])
        assert a1[0] == a[1], f"select(1) differs at step {t}"
        world.step(a)
    torch.testing.assert_close(picked.weights("sensors->motor"), batch.weights("sensors->motor")[1:2],
                               rtol=1e-5, atol=1e-6)


def test_select_is_an_independent_copy():
    """Acting with ``select(i)`` (videos, evaluation) never changes the population it came from."""
    cfg = cartpole_cfg()
    batch = make_agent(cfg, 2)
    world = Driver(2)
    for _t in range(5):
        world.step(batch.step(*world.inputs())[0])
    before = {k: v.clone() for k, v in batch.state_dict().items()}
    picked = batch.select(0)
    for t in range(5):
        picked.step(world.obs[:1], np.ones(1), np.array([t == 2]), np.zeros(1, bool))
    assert int(picked.state.steps) == int(before["steps"]) + 5
    for k, v in batch.state_dict().items():
        assert torch.equal(v, before[k]), k


# --------------------------------------------------------------------------- episode ends


def warm_pair(cfg, B, steps=20):
    """Two identical populations driven by the same inputs for ``steps`` steps (state nonzero)."""
    a, twin = make_agent(cfg, B), make_agent(cfg, B)
    world = Driver(B)
    for _t in range(steps):
        act, _ = a.step(*world.inputs())
        np.testing.assert_array_equal(act, twin.step(*world.inputs())[0])
        world.step(act)
    return a, twin, world


@pytest.mark.parametrize("brain", [
    [],  # escape-noise neurons, node-perturbation eligibility (the CartPole config)
    ["brain.neuron=lif", "plasticity.rule=stdp", "brain.stp.enabled=true", "brain.w_init_std=1.0",
     "brain.v_th=0.3", "brain.tau_mem=2.0"],  # + LIF membranes, STDP traces, STP
], ids=["escape", "lif-stdp-stp"])
def test_masked_reset_when_an_episode_ends(brain):
    """Agent j's episode ends: its neurons, traces, eligibility and sensory adaptation are reset, its next
    (reset) step does not learn; the other agents are exactly as if nothing had happened."""
    cfg = cartpole_cfg("encoder.adaptation.enabled=true", *brain)
    B, j = 3, 1
    others = [i for i in range(B) if i != j]
    a, twin, world = warm_pair(cfg, B)
    obs = world.obs
    zero, no = np.zeros(B), np.zeros(B, bool)
    term = no.copy()
    term[j] = True

    a.step(obs, zero, term, no)
    twin.step(obs, zero, no, no)
    for proj in PROJS:
        assert torch.count_nonzero(a.eligibility(proj)[j]) == 0, proj
        assert torch.count_nonzero(twin.eligibility(proj)[j]) > 0, proj  # it would not have been zero
        assert torch.count_nonzero(a.eligibility(proj)[others]) > 0
    start = reset_values(a.spec.brain)  # the value each fast tensor takes at an episode's start
    live = set()
    for kind in FAST:
        for name, t in getattr(a.state.brain, kind).items():
            t = t.float()
            assert bool((t[j] == start[kind][name]).all()), f"{kind}[{name}]"
            if not bool((getattr(twin.state.brain, kind)[name][j].float() == start[kind][name]).all()):
                live.add(f"{kind}[{name}]")
    present = {kind for kind in FAST if getattr(a.state.brain, kind)}
    # (the CartPole config's escape neurons are memoryless: no membrane, their fast state is the last spikes)
    assert present >= ({"v", "refractory", "xpre", "xpost", "e", "stp_x"} if cfg.brain.neuron == "lif" else {"last", "e"})
    assert len(live) >= 3, live  # there was fast state to reset (the twin still has it)
    if cfg.brain.stp.enabled:
        assert any(k.startswith("stp_x") for k in live), live  # vesicles recovered where the twin's were spent
    assert torch.count_nonzero(a.state.encoder.level[j]) == 0
    assert torch.count_nonzero(twin.state.encoder.level[j]) > 0
    assert not bool(a.state.critic.learnable[j]) and bool(a.state.critic.learnable[others].all())
    mine, theirs = per_agent(a.state_dict(), B), per_agent(twin.state_dict(), B)
    for k in mine:
        assert torch.equal(mine[k][others], theirs[k][others]), k

    # The reset step (its action is ignored by the env): no learning for j, normal learning for the others.
    w_before = {p: a.weights(p)[j].clone() for p in PROJS}
    twin_before = {p: twin.weights(p)[j].clone() for p in PROJS}
    new_obs = obs + 0.01
    _, info = a.step(new_obs, zero, no, no)
    _, twin_info = twin.step(new_obs, zero, no, no)
    assert info.delta[j] == 0 and not bool(info.learnable[j])
    assert twin_info.delta[j] != 0
    for p in PROJS:
        assert torch.equal(a.weights(p)[j], w_before[p]), p
        assert not torch.equal(twin.weights(p)[j], twin_before[p]), p  # the twin did learn
    mine, theirs = per_agent(a.state_dict(), B), per_agent(twin.state_dict(), B)
    for k in mine:
        assert torch.equal(mine[k][others], theirs[k][others]), k
    assert bool(a.state.critic.learnable.all())  # learning resumes on the step after


@pytest.mark.parametrize("failure_reward", [None, -1.0])
def test_truncation_bootstraps_termination_does_not(failure_reward):
    """delta = r + gamma V(s') - V(s) on truncation, r - V(s) on termination (V from the step info and the critic state)."""
    cfg = cartpole_cfg(f"env.failure_reward={'null' if failure_reward is None else failure_reward}",
                       "dopamine.gamma=0.9")
    a, _, world = warm_pair(cfg, 2, steps=8)
    v_prev = a.state.critic.value_prev.clone()
    env_reward = np.array([0.5, 0.5])
    _, info = a.step(world.obs, env_reward, np.array([True, False]), np.array([False, True]))
    v, delta = info.value, info.delta
    if failure_reward is None:  # the env reward (x reward_scale) is the internal reward
        r_term, r_trunc = 0.5, 0.5
    else:  # Barto et al.: the failure signal on termination, 0 otherwise (truncation is no failure)
        r_term, r_trunc = failure_reward, 0.0
    assert abs(float(v[1])) > 1e-3  # the bootstrap term is visible
    torch.testing.assert_close(delta[0], r_term - v_prev[0])
    torch.testing.assert_close(delta[1], r_trunc + 0.9 * v[1] - v_prev[1])
    assert not bool(a.state.critic.learnable.any())  # both episodes ended: neither learns from the reset step
    lo, hi = a.spec.value_low, a.spec.value_high
    assert bool(((v >= lo) & (v <= hi)).all())


@pytest.mark.parametrize("value_init", [-1.0, -0.2, 0.45])
def test_value_init_is_the_first_value(value_init):
    """With zero initial weights the critic's first value is ``dopamine.value_init`` (range [-1.5, 0.5], slope 2)."""
    cfg = cartpole_cfg("dopamine.value_low=-1.5", "dopamine.value_high=0.5", "brain.slope=2.0",
                       f"dopamine.value_init={value_init}", "brain.w_init_std=0.0")
    a = make_agent(cfg, 3)
    world = Driver(3)
    _, info = a.step(*world.inputs())
    torch.testing.assert_close(info.value, torch.full((3,), value_init), atol=1e-5, rtol=0)
    plain = make_agent(cartpole_cfg("dopamine.value_low=-1.5", "dopamine.value_high=0.5", "brain.w_init_std=0.0"), 3)
    _, info = plain.step(*world.inputs())  # without it the bias is brain.critic_bias = 0: p = 1/2, V = the middle of the range
    torch.testing.assert_close(info.value, torch.full((3,), -0.5), atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- continuous actions


def test_continuous_decoder_analytic_values():
    low, high = torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 1.0])
    k, m = 4, 3
    push_all = torch.zeros(k, 1, 2 * 2 * m)
    push_all[:, :, 0:m] = 1  # dim 0 pushes up fully
    push_all[:, :, 3 * m:4 * m] = 1  # dim 1 pulls down fully
    torch.testing.assert_close(continuous_action(push_all, low, high), torch.tensor([[2.0, 0.0]]))
    torch.testing.assert_close(continuous_action(torch.zeros(k, 1, 4 * m), low, high), torch.tensor([[0.0, 0.5]]))
    half = torch.zeros(k, 1, 4 * m)
    half[:2, :, 0:m] = 1  # dim 0: half the possible count difference
    torch.testing.assert_close(continuous_action(half, low, high)[0, 0], torch.tensor(1.0))
    torch.testing.assert_close(continuous_action(half, low, high, gain=4.0)[0, 0], torch.tensor(2.0))  # clipped


def test_continuous_actions_stay_inside_the_box():
    cfg = load_config(None, ["env.id=Pendulum-v1", *SMALL, "brain.action_gain=4.0", "brain.w_init_std=0.5"])
    space = spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 0.5], np.float32))
    obs_space = gym.make("Pendulum-v1").observation_space
    B = 4
    agent = Agent(cfg, obs_space.low, obs_space.high, space, num_agents=B, seed=0)
    rng = np.random.default_rng(0)
    acts = []
    for _t in range(150):
        obs = rng.uniform(obs_space.low, obs_space.high, size=(B, 3)).astype(np.float32)
        a, _ = agent.step(obs, rng.normal(size=B), np.zeros(B, bool), rng.random(B) < 0.05)
        assert a.shape == (B, 2)
        assert all(space.contains(row) for row in a), a
        acts.append(a)
    acts = np.concatenate(acts)
    # with this gain the decoder saturates sometimes: the clip is exercised at both ends of dim 0
    assert (acts[:, 0] == 2.0).any() and (acts[:, 0] == -2.0).any()
    assert len(np.unique(acts[:, 1])) > 3


# --------------------------------------------------------------------------- learns a trivial task


class IdentityEnv(gym.Env):
    """Observation 0 or 1 (random each step, a Discrete space); reward 1 when the action equals it.
    10 steps an episode (Stable-Baselines3's IdentityEnv)."""

    length = 10

    def __init__(self, render_mode=None):
        self.observation_space = spaces.Discrete(2)
        self.action_space = spaces.Discrete(2)
        self.render_mode = render_mode

    def _obs(self):
        return self.target

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.target = 0, int(self.np_random.integers(2))
        return self._obs(), {}

    def step(self, action):
        reward = float(int(action) == self.target)
        self.t += 1
        self.target = int(self.np_random.integers(2))
        return self._obs(), reward, False, self.t >= self.length, {}


IDENTITY_ID = "SpikegymTest/Identity-v0"
if IDENTITY_ID not in gym.registry:
    gym.register(IDENTITY_ID, entry_point=IdentityEnv)


def test_learns_the_identity_task_in_seconds(tmp_path):
    cfg = load_config(None, [f"env.id={IDENTITY_ID}", "env.num_agents=4", "run.steps=1000", "run.progress=off",
                             "run.log_every=1000", "run.checkpoint_every=1000", "encoder.fields=3",
                             "brain.substeps=10", "brain.motor_size=10", "brain.critic_size=10", "dopamine.gamma=0.0",
                             "plasticity.actor_trace_decay=0.3", "plasticity.critic_trace_decay=0.3"])
    seen = {}
    result = train(cfg, run_dir=tmp_path, callback=lambda step, agent, stats: seen.update(stats=stats))
    returns = seen["stats"].returns  # per agent, one entry per episode = correct actions out of 10
    first = np.mean([r[:3] for r in returns]) / IdentityEnv.length
    last = np.mean([r[-20:] for r in returns]) / IdentityEnv.length
    assert 0.3 < first < 0.7, f"start should be near chance, got {first:.2f}"
    assert last > 0.8, f"rewarded action frequency at the end {last:.2f} (start {first:.2f})"
    assert min(np.mean(r[-20:]) for r in returns) / IdentityEnv.length > 0.7  # every agent learned
    assert result["episodes_per_agent"] == [len(r) for r in returns]


# --------------------------------------------------------------------------- evaluation


def test_learn_false_changes_no_weight_and_no_excitability():
    """Evaluation (learn=False) leaves every slow variable alone, even with homeostasis (threshold and
    synaptic scaling) and structural plasticity on; the same steps with learn=True do change them."""
    cfg = cartpole_cfg("brain.homeostasis.enabled=true", "brain.homeostasis.mode=both",
                       "brain.structural.enabled=true", "brain.structural.every=5",
                       "novelty.enabled=true")
    slow = ("brain.w.", "brain.excite.", "brain.mask.", "novelty.")

    def run(learn):
        agent, world = make_agent(cfg, 2), Driver(2)
        before = {k: v.clone() for k, v in agent.state_dict().items() if k.startswith(slow)}
        for _t in range(40):
            a, _ = agent.step(*world.inputs(), learn=learn)
            world.step(a)
        after = agent.state_dict()
        return [k for k in before if not torch.equal(before[k], after[k])]

    assert run(learn=False) == []
    changed = run(learn=True)
    assert any(k.startswith("brain.w.") for k in changed) and any(k.startswith("brain.excite.") for k in changed)
    assert any(k.startswith("brain.mask.") for k in changed) and any(k.startswith("novelty.") for k in changed)
