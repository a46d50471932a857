"""Novelty: SimHash counts, habituating novelty neurons, acetylcholine gain, bonus schedule."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from spikegym.agents.encoders import AdaptationParams
from spikegym.agents.novelty import (
    NoveltyDetector,
    NoveltyState,
    ach_gain,
    bonus_weight,
    novelty_init,
    novelty_neuron_params,
    novelty_neurons_init,
    novelty_neurons_step,
    novelty_neurons_tag,
    novelty_step,
    simhash_bucket,
    simhash_params,
    td_surprise,
)

BETA = 0.3


def counts_pattern(n, seed):
    """Spike-count-like pattern [1, n]."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 20, (1, n), generator=g).float()


def distinct_patterns(params, n_inputs, how_many, seed=0):
    """Patterns [how_many, 1, N] whose buckets are pairwise different."""
    out, seen, s = [], set(), seed
    while len(out) < how_many:
        x = counts_pattern(n_inputs, s)
        b = int(simhash_bucket(x, params))
        if b not in seen:
            seen.add(b)
            out.append(x)
        s += 1
    return out


def test_repeated_pattern_bonus_falls_as_beta_over_sqrt_n():
    det = NoveltyDetector(40, 1, beta=BETA, hash_bits=16, seed=3)
    x = counts_pattern(40, 0)
    for n in range(1, 51):
        bonus, novelty = det(x)
        assert bonus.item() == pytest.approx(BETA / math.sqrt(n), rel=1e-6)
        assert novelty.item() == pytest.approx(1 / math.sqrt(n), rel=1e-6)
    assert int(det.counts.sum()) == 50


def test_new_pattern_gets_the_full_bonus():
    det = NoveltyDetector(40, 1, beta=BETA, hash_bits=16, seed=3)
    pats = distinct_patterns(det.simhash_params(), 40, 6)
    for _ in range(10):
        det(pats[0])
    for x in pats[1:]:
        bonus, novelty = det(x)
        assert bonus.item() == pytest.approx(BETA, rel=1e-7) and novelty.item() == 1.0
    assert det(pats[0])[0].item() == pytest.approx(BETA / math.sqrt(11), rel=1e-6)


def test_counts_agree_with_a_reference_counter():
    # few bits -> many collisions; the reference hashes with numpy from the same projection
    p = simhash_params(12, beta=BETA, hash_bits=3, seed=0)
    st = novelty_init(1, p)
    A = p.projection.numpy()
    ref = Counter()
    g = torch.Generator().manual_seed(9)
    for _ in range(200):
        x = torch.randn(1, 12, generator=g)
        bits = (x.numpy() @ A)[0] > 0
        key = int(sum(int(b) << i for i, b in enumerate(bits)))
        ref[key] += 1
        bonus, _, st = novelty_step(x, st, p)
        assert bonus.item() == pytest.approx(BETA / math.sqrt(ref[key]), rel=1e-6)
    assert sorted(ref.values()) == sorted(v for v in st.counts[0].tolist() if v)


def test_bonus_and_gain_are_per_agent():
    det = NoveltyDetector(30, 2, beta=BETA, hash_bits=16, seed=1)
    fresh = distinct_patterns(det.simhash_params(), 30, 21, seed=100)
    repeat = fresh[0]
    for n in range(1, 21):
        x = torch.cat([repeat, fresh[n]])  # agent 0 repeats, agent 1 sees a new pattern each step
        bonus, novelty = det(x)
        assert bonus[0].item() == pytest.approx(BETA / math.sqrt(n), rel=1e-6)
        assert bonus[1].item() == pytest.approx(BETA, rel=1e-7) and novelty[1].item() == 1.0
        gain = ach_gain(novelty, 2.0)
        assert gain[0].item() == pytest.approx(1 + 2 / math.sqrt(n), rel=1e-6)
        assert gain[1].item() == 3.0
    # counting is per agent: agent 1 never saw the repeated pattern
    assert det(torch.cat([repeat, repeat]))[1][1].item() == 1.0


def test_mask_reset_and_pure_step_leaves_state_alone():
    p = simhash_params(10, beta=1.0, hash_bits=8, seed=0)
    st = novelty_init(2, p)
    x = counts_pattern(10, 1).repeat(2, 1)
    _, _, st = novelty_step(x, st, p)
    before = st.counts.clone()
    bonus, _, st2 = novelty_step(x, st, p, mask=torch.tensor([True, False]))
    assert torch.equal(st.counts, before)  # not mutated
    assert bonus.tolist() == pytest.approx([1 / math.sqrt(2), 1 / math.sqrt(2)])
    assert int(st2.counts[0].sum()) == 2 and int(st2.counts[1].sum()) == 1
    # in-place and pure agree
    st3 = NoveltyState(st.counts.clone())
    b_in, _, st3 = novelty_step(x, st3, p, inplace=True)
    b_out, _, st4 = novelty_step(x, st, p)
    assert torch.equal(b_in, b_out) and torch.equal(st3.counts, st4.counts)

    det = NoveltyDetector(10, 2, beta=1.0, hash_bits=8, seed=0)
    for _ in range(3):
        det(x)
    det.reset_counts(torch.tensor([False, True]))
    assert det(x)[0].tolist() == pytest.approx([0.5, 1.0])


def test_determinism_with_a_seed_and_state_dict():
    def run(seed):
        det = NoveltyDetector(16, 3, beta=BETA, hash_bits=6, seed=seed)
        g = torch.Generator().manual_seed(0)
        out = [det(torch.rand(3, 16, generator=g).round())[0] for _ in range(40)]
        return det, torch.stack(out)

    a, out_a = run(5)
    b, out_b = run(5)
    assert torch.equal(a.projection, b.projection) and torch.equal(out_a, out_b)
    c, out_c = run(6)
    assert not torch.equal(a.projection, c.projection)
    d = NoveltyDetector(16, 3, beta=BETA, hash_bits=6, seed=99)
    d.load_state_dict(a.state_dict())
    x = torch.ones(3, 16)
    assert torch.equal(d(x)[0], a(x)[0])


def test_many_bits_fold_into_a_bounded_table():
    p = simhash_params(20, beta=1.0, hash_bits=48, seed=2)
    assert p.table_size == 2**20
    st = novelty_init(2, p)
    assert st.counts.shape == (2, 2**20)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 20, generator=g)
    bits = ((x @ p.projection) > 0).long()
    expected = (bits * p.bit_weights).sum(-1) % 2**20
    assert torch.equal(simhash_bucket(x, p), expected)
    for n in range(1, 4):
        bonus, _, st = novelty_step(x, st, p, inplace=True)
        assert bonus.tolist() == pytest.approx([1 / math.sqrt(n)] * 2)


def test_novelty_neurons_habituate_analytically():
    hab = AdaptationParams(tau_adapt=3.0, tau_recover=1e4, strength=9.0, sensitize_threshold=float("inf"))
    p = novelty_neuron_params(30, n_neurons=256, active=8, beta=BETA, seed=0, adaptation=hab)
    st = novelty_neurons_init(2, p)
    x = counts_pattern(30, 0)
    seed = 1
    while (novelty_neurons_tag(x, p) * novelty_neurons_tag(counts_pattern(30, seed), p)).sum() > 0:
        seed += 1
    other = counts_pattern(30, seed)  # a pattern whose tag shares no unit with x's
    for n in range(1, 16):
        bonus, novelty, st = novelty_neurons_step(torch.cat([x, other if n == 15 else x]), st, p)
        level = 1 - math.exp(-(n - 1) / hab.tau_adapt)  # level the n-th visit finds
        assert novelty[0].item() == pytest.approx(1 / (1 + 9 * level), rel=1e-5)
        assert bonus[0].item() == pytest.approx(BETA * novelty[0].item(), rel=1e-6)
    assert novelty[0].item() < 0.15
    assert novelty[1].item() == 1.0  # a pattern this agent never saw: full novelty

    det = NoveltyDetector(30, 1, beta=BETA, seed=0, mode="neurons", adaptation=hab)
    resp = [det(x)[1].item() for _ in range(10)]
    assert np.all(np.diff(resp) < 0) and resp[0] == 1.0
    det.reset_counts(torch.tensor([True]))
    assert det(x)[1].item() == 1.0


def test_bonus_weight_schedule_and_ach_gain():
    assert [bonus_weight(s, 100) for s in (0, 50, 100, 1000)] == [1.0, 0.5, 0.0, 0.0]
    assert bonus_weight(10**9, None) == 1.0
    assert torch.equal(ach_gain(torch.tensor([0.25, 1.0]), 4.0), torch.tensor([2.0, 5.0]))


def test_no_autograd_graph():
    det = NoveltyDetector(8, 2, beta=1.0, hash_bits=4)
    bonus, novelty = det(torch.rand(2, 8, requires_grad=True))
    assert bonus.grad_fn is None and novelty.grad_fn is None


# ---- curiosity inside the Agent: noiseless hashing, per-agent bonus, ACh gain, schedule -------


def _curious_agent(num_agents, *, beta=0.5, ach=2.0, decay_steps=None, seed=0):
    import gymnasium as gym

    from spikegym.agents.agent import Agent
    from spikegym.training.config import load_config

    cfg = load_config(None, ["env.id=MountainCar-v0", "brain.motor_size=4", "brain.critic_size=4",
                             "brain.substeps=5", "encoder.fields=7", "novelty.enabled=true",
                             f"novelty.beta={beta}", "novelty.hash_bits=16", f"novelty.ach_gain={ach}",
                             f"novelty.decay_steps={'null' if decay_steps is None else decay_steps}"])
    low, high = np.array([-1.2, -0.07]), np.array([0.6, 0.07])
    return Agent(cfg, low, high, gym.spaces.Discrete(3), num_agents=num_agents, seed=seed)


def _obs_stream(n, seed=0):
    g = np.random.default_rng(seed)
    return np.stack([g.uniform(-1.2, 0.6, n), g.uniform(-0.07, 0.07, n)], axis=1).astype(np.float32)


def test_agent_hashes_the_noiseless_pattern_and_counts_per_agent():
    """The same observation always lands in the same bucket (spike noise must not split it), so an
    agent that sees one state over and over gets beta / sqrt(n); its neighbour in the batch, seeing a
    stream of other states, gets exactly what it would get alone."""
    beta, ach = 0.5, 2.0
    batched, alone = _curious_agent(2, beta=beta, ach=ach), _curious_agent(1, beta=beta, ach=ach)
    fixed = np.array([-0.5, 0.01], dtype=np.float32)
    others = _obs_stream(30, seed=1)
    z2, f2 = np.zeros(2), np.zeros(2, bool)
    for n in range(1, 31):
        _, info = batched.step(np.stack([fixed, others[n - 1]]), z2, f2, f2)
        _, info1 = alone.step(others[n - 1][None], np.zeros(1), np.zeros(1, bool), np.zeros(1, bool))
        intrinsic, novelty = info.intrinsic, info.novelty
        assert intrinsic[0].item() == pytest.approx(beta / math.sqrt(n), rel=1e-6)
        assert intrinsic[1].item() == pytest.approx(info1.intrinsic[0].item(), rel=1e-6)
        # acetylcholine: plasticity gain 1 + ach_gain * novelty, per agent
        torch.testing.assert_close(info.ach_gain, 1.0 + ach * novelty)
    assert len({round(v, 6) for v in info.intrinsic.tolist()}) == 2
    counts = batched.state.novelty["counts"]
    assert int((counts[0] > 0).sum()) == 1  # one state, one bucket
    assert int((counts[1] > 0).sum()) > 5


def test_agent_adds_the_weighted_bonus_to_dopamine():
    """delta = r + w(t) * bonus + gamma V(s') - V(s), with w(t) = 1 - t / decay_steps (t: the agents' own
    decisions so far), down to 0 and no lower."""
    agent = _curious_agent(2, beta=0.4, decay_steps=10)
    obs = _obs_stream(12, seed=2)
    reward = np.array([-1.0, -1.0])
    f = np.zeros(2, bool)
    gamma, scale = agent.cfg.dopamine.gamma, agent.cfg.env.reward_scale
    for t in range(12):
        v_prev = agent.state.critic.value_prev.clone()
        assert int(agent.state.steps) == t
        _, last = agent.step(obs[t : t + 1].repeat(2, 0), reward, f, f)
        bonus = 0.4 * last.novelty
        assert bool((bonus > 0).all())
        torch.testing.assert_close(last.intrinsic, bonus * max(0.0, 1 - t / 10))
        torch.testing.assert_close(last.extrinsic, torch.full((2,), -1.0 * scale))
        if t > 0:  # the first call has no previous decision to learn from
            expected = last.extrinsic + last.intrinsic + gamma * last.value - v_prev
            torch.testing.assert_close(last.delta, expected, rtol=1e-5, atol=1e-6)
        else:
            assert bool((last.delta == 0).all())
    assert bool((last.intrinsic == 0).all())  # past decay_steps the bonus is off


def test_training_logs_intrinsic_extrinsic_and_gain(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from spikegym.training import tags as T
    from spikegym.training.config import load_config
    from spikegym.training.loop import train

    cfg = load_config(None, ["env.id=MountainCar-v0", "env.num_agents=2", "brain.motor_size=4", "brain.critic_size=4",
                             "brain.substeps=5", "encoder.fields=5", "encoder.adaptation.enabled=true",
                             "novelty.enabled=true", "novelty.ach_gain=1.5", "novelty.decay_steps=1000",
                             "run.steps=120", "run.log_every=40", "run.checkpoint_every=1000", "run.progress=off",
                             f"run.run_dir={tmp_path}"])
    train(cfg)
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    have = set(acc.Tags()["scalars"])
    want = {T.NOVELTY_INTRINSIC, T.NOVELTY_EXTRINSIC, T.NOVELTY_BONUS, T.NOVELTY_SIGNAL, T.NOVELTY_WEIGHT,
            T.NOVELTY_ADAPTATION, T.NOVELTY_OCCUPIED_BUCKETS, T.PLASTICITY_ACH_GAIN}
    assert want <= have, want - have
    weight = [e.value for e in acc.Scalars(T.NOVELTY_WEIGHT)]
    assert weight == pytest.approx([1 - s / 1000 for s in (40, 80, 120)])
    extrinsic = [e.value for e in acc.Scalars(T.NOVELTY_EXTRINSIC)]
    assert extrinsic == pytest.approx([-1.0] * 3)  # MountainCar: -1 per step, reward_scale 1
    gain = [e.value for e in acc.Scalars(T.PLASTICITY_ACH_GAIN)]
    signal = [e.value for e in acc.Scalars(T.NOVELTY_SIGNAL)]
    assert gain == pytest.approx([1 + 1.5 * s for s in signal], rel=1e-5)
    assert all(0 < s <= 1 for s in signal)


# ---- TD surprise: the acetylcholine gain rises when the world changes -------------------------


def test_td_surprise_follows_the_two_running_means():
    """Analytic: after a step of |delta| from 1 to 3 at t = 0, fast = 3 - 2 (1 - 1/F)^t and
    slow = 3 - 2 (1 - 1/S)^t, surprise = fast / slow - 1 (clipped); agents are independent."""
    F, S = 10.0, 1000.0
    fast, slow = torch.zeros(2), torch.zeros(2)
    s, fast, slow = td_surprise(torch.tensor([1.0, 1.0]), fast, slow, fast_steps=F, slow_steps=S)
    assert s.tolist() == [0.0, 0.0] and fast.tolist() == [1.0, 1.0] == slow.tolist()  # no surprise at birth
    for t in range(1, 60):
        s, fast, slow = td_surprise(torch.tensor([3.0, 1.0]), fast, slow, fast_steps=F, slow_steps=S)
        f_expect, s_expect = 3 - 2 * (1 - 1 / F) ** t, 3 - 2 * (1 - 1 / S) ** t
        assert fast[0].item() == pytest.approx(f_expect, rel=1e-5)
        assert slow[0].item() == pytest.approx(s_expect, rel=1e-5)
        assert s[0].item() == pytest.approx(min(4.0, f_expect / s_expect - 1), rel=1e-4)
        assert s[1].item() == 0.0  # the settled agent beside it stays calm
    assert s[0].item() > 0.9
    # once the slow mean has caught up, surprise fades again
    for _ in range(20_000):
        s, fast, slow = td_surprise(torch.tensor([3.0, 1.0]), fast, slow, fast_steps=F, slow_steps=S)
    assert s[0].item() < 1e-3


def test_agent_surprise_gain_scales_learning():
    """With novelty.surprise_gain g the gain passed to the brain is 1 + g * surprise, where surprise
    comes from the agent's own TD errors; with the bonus off, intrinsic reward stays 0."""
    import gymnasium as gym

    from spikegym.agents.agent import Agent
    from spikegym.training.config import load_config

    cfg = load_config(None, ["env.id=MountainCar-v0", "brain.motor_size=4", "brain.critic_size=4",
                             "brain.substeps=5", "encoder.fields=7", "novelty.surprise_gain=2.0",
                             "novelty.surprise_fast_steps=3", "novelty.surprise_slow_steps=500"])
    agent = Agent(cfg, np.array([-1.2, -0.07]), np.array([0.6, 0.07]), gym.spaces.Discrete(3), num_agents=2, seed=0)
    obs, f = _obs_stream(40, seed=3), np.zeros(2, bool)
    fast, slow = torch.zeros(2), torch.zeros(2)
    for t in range(40):
        reward = np.array([-1.0, -50.0 if t >= 20 else -1.0])  # agent 1's world turns harsh at t = 20
        _, last = agent.step(np.stack([obs[t], obs[t]]), reward, f, f)
        d = last.delta
        s, f2, s2 = td_surprise(d.abs(), fast, slow, fast_steps=3, slow_steps=500)
        fast, slow = torch.where(last.learnable, f2, fast), torch.where(last.learnable, s2, slow)
        torch.testing.assert_close(last.surprise, s)
        torch.testing.assert_close(last.ach_gain, 1.0 + 2.0 * s)
        torch.testing.assert_close(agent.state.critic.td_fast, fast)
        torch.testing.assert_close(agent.state.critic.td_slow, slow)
        assert last.intrinsic.abs().max() == 0
    assert last.surprise[1] > 1.0 > last.surprise[0]


@pytest.mark.parametrize("errors", ["absolute", "negative", "punishment"])
def test_negative_surprise_is_disappointment_only(errors):
    """surprise_errors: negative makes surprise of max(0, -delta) alone, punishment of max(0, -reward): an agent
    whose world turns harsh is surprised either way, one whose world turns kind only when every |delta| counts."""
    import gymnasium as gym

    from spikegym.agents.agent import Agent
    from spikegym.training.config import load_config

    cfg = load_config(None, ["env.id=MountainCar-v0", "brain.motor_size=4", "brain.critic_size=4",
                             "brain.substeps=5", "encoder.fields=7", "novelty.surprise_gain=1.0",
                             f"novelty.surprise_errors={errors}",
                             "novelty.surprise_fast_steps=3", "novelty.surprise_slow_steps=500"])
    agent = Agent(cfg, np.array([-1.2, -0.07]), np.array([0.6, 0.07]), gym.spaces.Discrete(3), num_agents=2, seed=0)
    obs, f = _obs_stream(40, seed=3), np.zeros(2, bool)
    fast, slow = torch.zeros(2), torch.zeros(2)
    for t in range(40):
        reward = np.array([-50.0, 50.0]) if t >= 20 else np.array([-1.0, -1.0])  # harsh for 0, kind for 1
        _, last = agent.step(np.stack([obs[t], obs[t]]), reward, f, f)
        d = last.delta
        err = {"absolute": d.abs(), "negative": torch.relu(-d), "punishment": torch.relu(-last.extrinsic)}[errors]
        s, f2, s2 = td_surprise(err, fast, slow, fast_steps=3, slow_steps=500)
        fast, slow = torch.where(last.learnable, f2, fast), torch.where(last.learnable, s2, slow)
        torch.testing.assert_close(last.surprise, s)
    harsh, kind = last.surprise.tolist()
    assert harsh > 1.0
    assert (kind > 1.0) if errors == "absolute" else (kind == 0.0)


def test_surprise_shrinks_the_surprised_agents_motor_weights():
    """surprise_shrink k: every decision, motor weights x (1 - k * surprise); critic weights and a calm
    agent's weights stay (learning rates 0, so only the shrink moves weights)."""
    import gymnasium as gym

    from spikegym.agents.agent import Agent
    from spikegym.training.config import load_config

    cfg = load_config(None, ["env.id=MountainCar-v0", "brain.motor_size=4", "brain.critic_size=4",
                             "brain.substeps=5", "encoder.fields=7", "brain.w_init_std=0.1",
                             "plasticity.actor_lr=0", "plasticity.critic_lr=0", "novelty.surprise_shrink=0.05",
                             "novelty.surprise_fast_steps=3", "novelty.surprise_slow_steps=500"])
    agent = Agent(cfg, np.array([-1.2, -0.07]), np.array([0.6, 0.07]), gym.spaces.Discrete(3), num_agents=2, seed=0)
    motor0, critic0 = agent.weights("sensors->motor").clone(), agent.weights("sensors->critic").clone()
    expected = torch.ones(2)
    obs, f = _obs_stream(40, seed=3), np.zeros(2, bool)
    for t in range(40):
        reward = np.array([-1.0, -50.0 if t >= 20 else -1.0])  # agent 1's world turns harsh at t = 20
        _, last = agent.step(np.stack([obs[t], obs[t]]), reward, f, f)
        expected *= (1 - 0.05 * last.surprise).clamp(min=0)
        assert last.ach_gain is None  # surprise_gain 0: no plasticity gain
    assert expected[0] > 0.99 and expected[1] < 0.05  # (the calm agent's critic noise: a trace of surprise)
    torch.testing.assert_close(agent.weights("sensors->motor"), motor0 * expected.view(-1, 1, 1))
    torch.testing.assert_close(agent.weights("sensors->critic"), critic0)


def test_novelty_neuron_settings_reach_the_detector():
    import gymnasium as gym

    from spikegym.agents.agent import Agent
    from spikegym.training.config import load_config

    cfg = load_config(None, ["env.id=MountainCar-v0", "brain.substeps=5", "encoder.fields=7", "novelty.enabled=true",
                             "novelty.mode=neurons", "novelty.neurons=64", "novelty.active=4",
                             "novelty.habituation_steps=3", "novelty.recovery_steps=500", "novelty.habituation_strength=4"])
    agent = Agent(cfg, np.array([-1.2, -0.07]), np.array([0.6, 0.07]), gym.spaces.Discrete(3), num_agents=1, seed=0)
    det = agent.spec.novelty
    assert det.projection.shape == (agent.spec.encoder.n_out, 64) and det.active == 4
    assert (det.adaptation.tau_adapt, det.adaptation.tau_recover, det.adaptation.strength) == (3.0, 500.0, 4.0)
    assert agent.state.novelty["level"].shape == (1, 64)
    # an observation seen over and over (its noiseless pattern: the same) habituates towards 1 / (1 + strength)
    obs, z, f = np.array([[-0.5, 0.01]], dtype=np.float32), np.zeros(1), np.zeros(1, bool)
    novelty = [agent.step(obs, z, f, f)[1].novelty.item() for _ in range(60)]
    assert novelty[0] == pytest.approx(1.0) and novelty[-1] == pytest.approx(1 / 5, abs=0.02)
    assert all(a >= b - 1e-6 for a, b in zip(novelty, novelty[1:]))  # habituation only goes down


def test_training_logs_td_surprise_and_the_gain_it_drives(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from spikegym.training import tags as T
    from spikegym.training.config import load_config
    from spikegym.training.loop import train

    cfg = load_config(None, ["env.id=CartPole-v1", "env.num_agents=2", "brain.motor_size=4", "brain.critic_size=4",
                             "brain.substeps=5", "encoder.fields=5", "novelty.surprise_gain=0.5",
                             "novelty.surprise_fast_steps=5", "novelty.surprise_slow_steps=100",
                             "run.steps=150", "run.log_every=50", "run.checkpoint_every=1000", "run.progress=off",
                             f"run.run_dir={tmp_path}"])
    train(cfg)
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    surprise = [e.value for e in acc.Scalars(T.NOVELTY_SURPRISE)]
    gain = [e.value for e in acc.Scalars(T.PLASTICITY_ACH_GAIN)]
    assert len(surprise) == 3 and gain == pytest.approx([1 + 0.5 * s for s in surprise], rel=1e-5)
    assert T.NOVELTY_SIGNAL not in acc.Tags()["scalars"]  # no detector, no bonus
