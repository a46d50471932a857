"""The reference step's algebra equals the plain recurrences it stands for.

The window factors its plasticity events (``E_k = X_k @ Y_k``) and folds a whole window into the eligibility
with one product; traces are advanced a window at a time; initial weights are drawn in blocks of rows. Each
is checked here against the substep-by-substep formulation written out by hand, in the same test. The
network's checks (:class:`~spikegym.brains.spec.BrainSpec`) are here too. The noise hash: tests/test_random.py.
"""

import math

import pytest
import torch

from spikegym.brains import plasticity as pl
from spikegym.brains.network import Brain, Population, Projection
from spikegym.brains.neurons import EscapeParams, LIFParams, LIFState, lif_step
from spikegym.brains.random import agent_keys, normal, uniform
from spikegym.brains.plasticity import StdpParams
from spikegym.brains.spec import INIT_STREAM, BrainSpec
from spikegym.brains.state import _rows_noise


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _spikes(k, b, n, rate, seed):
    return (torch.rand(k, b, n, generator=_gen(seed)) < rate).float()


# ----------------------------------------------------------------------------- traces and factors


def test_trace_window_is_bit_identical_to_trace_steps():
    s = _spikes(9, 3, 8, 0.3, 3)
    x0 = torch.rand(3, 8, generator=_gen(4))
    trace, befores = x0.clone(), []
    for t in range(9):
        before, trace = pl.trace_step(trace, s[t], 0.93)
        befores.append(before)
    x = x0.clone()
    window = pl.trace_window(x, s, 0.93)
    assert torch.equal(window, torch.stack(befores))
    assert torch.equal(x, trace)


@pytest.mark.parametrize("hetero", [0.0, 0.2])
def test_split_stdp_factors_equal_stdp_factors(hetero):
    g = _gen(5)
    params = pl.StdpParams(a_plus=0.9, a_minus=1.2, hetero_ltd=hetero)
    pre_s, post_s = (torch.rand(2, 6, generator=g) < 0.5).float(), (torch.rand(2, 4, generator=g) < 0.5).float()
    pre_t, post_t = torch.rand(2, 6, generator=g) * 1.5, torch.rand(2, 4, generator=g)
    x, y = pl.stdp_factors(pre_spikes=pre_s, post_spikes=post_s, pre_trace=pre_t, post_trace=post_t, params=params)
    assert x.shape == (2, 6, 3 if hetero else 2) and y.shape == (2, 3 if hetero else 2, 4)
    dense = (params.a_plus * pre_t.unsqueeze(-1) * post_s.unsqueeze(1)
             - params.a_minus * pre_s.unsqueeze(-1) * post_t.unsqueeze(1)
             - hetero * (1 - pre_t.clamp(max=1)).unsqueeze(-1) * post_s.unsqueeze(1))
    torch.testing.assert_close(torch.bmm(x, y), dense)


# ----------------------------------------------------------------------------- a window vs the recurrence


_LIF = LIFParams(tau_mem=10.0)


def _stdp_brain(batch=2, hetero=0.0, **kw):
    pops = [Population("in", 50, "input"), Population("out", 10, "lif", lif=_LIF)]
    args = dict(rule="stdp", lr=0.02, trace_decay=0.97, w_init_mean=0.35, w_init_std=0.1, w_min=-0.2, w_max=0.6,
                stdp=pl.StdpParams(hetero_ltd=hetero))
    args.update(kw)
    return Brain(pops, [Projection("in", "out", **args)], batch=batch, seed=0)


class _ByHand:
    """One LIF layer with pair STDP, substep by substep: traces read before the spikes, ``e <- d e + E``."""

    def __init__(self, brain):
        proj = brain.spec.projs["in->out"]
        self.proj, self.w = proj, brain.weights("in->out").clone()
        self.e = torch.zeros_like(self.w)
        b = self.w.shape[0]
        self.lif = LIFState(torch.zeros(b, 10), torch.zeros(b, 10), torch.zeros(b, 10))
        self.xpre, self.xpost = torch.zeros(b, 50), torch.zeros(b, 10)

    def substep(self, s_in, dopamine=None):
        p = self.proj
        out, self.lif = lif_step(torch.bmm(s_in.unsqueeze(1), self.w).squeeze(1), self.lif, _LIF, 1.0)
        pre_b, self.xpre = pl.trace_step(self.xpre, s_in, math.exp(-1 / p.stdp.tau_plus))
        post_b, self.xpost = pl.trace_step(self.xpost, out, math.exp(-1 / p.stdp.tau_minus))
        hetero = p.stdp.hetero_ltd * (1 - pre_b.clamp(max=1)).unsqueeze(-1) * out.unsqueeze(1)
        events = (p.stdp.a_plus * pre_b.unsqueeze(-1) * out.unsqueeze(1)
                  - p.stdp.a_minus * s_in.unsqueeze(-1) * post_b.unsqueeze(1) - hetero)
        self.e = p.trace_decay * self.e + events
        if dopamine is not None:
            self.w = (self.w + p.lr * dopamine.view(-1, 1, 1) * self.e).clamp(p.w_min, p.w_max)
        return out


@pytest.mark.parametrize("hetero", [0.0, 0.3])
def test_dopamine_every_substep_equals_mstdpet_by_hand(hetero):
    """``run(dopamine=[K, B])``: windows of one substep, each ``W += lr D_t e_t`` (MSTDPET, Florian 2007)."""
    brain = _stdp_brain(hetero=hetero)
    hand = _ByHand(brain)
    g = _gen(12)
    for window in range(4):
        spikes = _spikes(15, 2, 50, 0.2, window)
        dop = torch.randn(15, 2, generator=g)
        out = brain.run({"in": spikes}, dopamine=dop)["out"]
        for t in range(15):
            assert torch.equal(out[t], hand.substep(spikes[t], dop[t])), f"window {window}, substep {t}"
    assert out.sum() > 0
    torch.testing.assert_close(brain.eligibility("in->out"), hand.e, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(brain.weights("in->out"), hand.w, rtol=1e-4, atol=1e-5)
    w0 = _stdp_brain(hetero=hetero).weights("in->out")
    assert not torch.allclose(brain.weights("in->out"), w0)
    w = brain.weights("in->out")
    assert float(w.min()) >= float(torch.tensor(-0.2)) and float(w.max()) <= float(torch.tensor(0.6))


def test_window_fold_then_learn_equals_the_recurrence_by_hand():
    """Without dopamine a window of K substeps folds into ``e <- d^K e + sum_k d^(K-1-k) E_k`` in one product
    and changes no weight; ``learn(d)`` then is ``W + lr d e``, bounded."""
    brain = _stdp_brain()
    hand = _ByHand(brain)
    for window in range(3):
        spikes = _spikes(12, 2, 50, 0.25, 20 + window)
        w_before = brain.weights("in->out").clone()
        out = brain.run({"in": spikes})["out"]
        for t in range(12):
            assert torch.equal(out[t], hand.substep(spikes[t])), f"window {window}, substep {t}"
        assert torch.equal(brain.weights("in->out"), w_before)
        torch.testing.assert_close(brain.eligibility("in->out"), hand.e, rtol=1e-4, atol=1e-5)
        d = torch.tensor([1.5, -0.7])
        brain.learn(d, gain=torch.tensor([2.0, 1.0]))
        p = hand.proj
        hand.w = (hand.w + p.lr * (d * torch.tensor([2.0, 1.0])).view(-1, 1, 1) * hand.e).clamp(p.w_min, p.w_max)
        torch.testing.assert_close(brain.weights("in->out"), hand.w, rtol=1e-5, atol=1e-6)
    assert brain.eligibility("in->out").abs().sum() > 0


# ----------------------------------------------------------------------------- the agent's network shape


def _actor_critic(batch, seed=3, first=0):
    """Inputs -> escape motor (node perturbation, homeostasis) and escape critic, as the Agent builds it."""
    hp = pl.HomeostasisParams(target_rate=0.2, eta=0.01, tau_rate=300.0)
    pops = [Population("in", 30, "input"),
            Population("motor", 8, "escape", escape=EscapeParams(slope=1.5, bias=-0.5), homeostasis=hp),
            Population("critic", 6, "escape")]
    projs = [Projection("in", "motor", rule="node_perturbation", lr=0.2, trace_decay=0.97, w_init_std=0.5,
                        w_min=-2.0, w_max=2.0),
             Projection("in", "critic", rule="critic", lr=0.1, trace_decay=0.9, critic_scale=0.7, w_init_std=0.3)]
    return Brain(pops, projs, batch=batch, seed=seed, agent_index0=first)


def test_actor_critic_batched_equals_each_agent_alone_through_learning_and_resets():
    batched, alone = _actor_critic(4, seed=5), _actor_critic(1, seed=5, first=2)
    g = _gen(7)
    for i in range(6):
        spikes = (torch.rand(10, 4, 30, generator=g) < 0.3).float()
        d = torch.randn(4, generator=g)
        a = batched.run({"in": spikes})
        b = alone.run({"in": spikes[:, 2:3]})
        assert torch.equal(a["motor"][:, 2:3], b["motor"]) and torch.equal(a["critic"][:, 2:3], b["critic"])
        torch.testing.assert_close(batched.last_prob["critic"][:, 2:3], alone.last_prob["critic"])
        batched.learn(d)
        alone.learn(d[2:3])
        if i % 3 == 2:
            done = torch.tensor([True, False, i == 5, False])
            batched.reset(done)
            alone.reset(done[2:3])
    for name in ("in->motor", "in->critic"):
        torch.testing.assert_close(batched.weights(name)[2:3], alone.weights(name), rtol=1e-5, atol=1e-6)
        assert not torch.equal(batched.weights(name), _actor_critic(4, seed=5).weights(name))
    torch.testing.assert_close(batched.state.excite["motor"][2:3], alone.state.excite["motor"], rtol=1e-5, atol=1e-6)
    assert batched.eligibility("in->motor")[2].abs().sum() == 0  # reset at the last window
    assert batched.eligibility("in->motor")[1].abs().sum() > 0


# ----------------------------------------------------------------------------- initial weights, checks


def test_blockwise_initial_weights_equal_one_draw():
    keys = agent_keys(11, 3)
    for draw in (normal, uniform):
        blocks = _rows_noise(draw, keys, 23, 7, stream=5, block=30)  # 1 row of 3 x 7 per block
        whole = draw(keys, 0, (23, 3, 7), stream=5).transpose(0, 1)
        assert torch.equal(blocks, whole)
    brain = Brain([Population("i", 6, "input"), Population("o", 4, "lif")],
                  [Projection("i", "o", w_init_mean=0.2, w_init_std=0.1)], batch=2, seed=4)
    ref = 0.2 + 0.1 * normal(brain.state.keys, 0, (6, 2, 4), stream=INIT_STREAM).transpose(0, 1)
    assert torch.equal(brain.weights("i->o"), ref)


@pytest.mark.parametrize("projs, message", [
    ([Projection("in", "nowhere")], "unknown population 'nowhere'"),
    ([Projection("h", "in")], "input population cannot receive"),
    ([Projection("in", "h"), Projection("in", "h")], "defined twice"),
    ([Projection("in", "h"), Projection("h", "o", rule="stdp", lr=0.1)], "must start at an input"),
    ([Projection("in", "h", rule="node_perturbation")], "needs noisy neurons"),
    ([Projection("in", "h", rule="stdp", stdp=StdpParams(center="expected"))], "centred on the firing probability"),
])
def test_brain_spec_rejects_what_the_step_cannot_run(projs, message):
    pops = (Population("in", 4, "input"), Population("h", 3, "lif"), Population("o", 2, "escape"))
    with pytest.raises(ValueError, match=message):
        BrainSpec(pops, tuple(projs))
    BrainSpec(pops, (Projection("in", "h", rule="stdp", lr=0.1), Projection("h", "o"),
                     Projection("in", "o", rule="node_perturbation")))  # a valid one passes
    noisy = Population("h", 3, "lif", lif=LIFParams(escape_slope=4.0))  # noisy LIF has a firing probability
    BrainSpec((pops[0], noisy, pops[2]), (Projection("in", "h", rule="node_perturbation"),))
    BrainSpec((pops[0], noisy, pops[2]), (Projection("in", "h", rule="stdp", stdp=StdpParams(center="expected")),))
