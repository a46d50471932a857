"""The engine's fast paths agree with the plain formulations they replace.

Each fast path (fused chunked kernels, in-place window folds, the rank-(K+1) STDP basis, window traces,
fused next-substep currents, blockwise weight initialisation, the fused feed-forward escape path, cached
counter-based noise) is checked against the straightforward version it stands for, in the same test: two
formulations must agree. The noise hash's statistics are checked here too.
"""

import math

import pytest
import torch

from spikegym.brains import network as nw
from spikegym.brains import plasticity as pl
from spikegym.brains.network import Brain, Population, Projection
from spikegym.brains.neurons import LIFParams
from spikegym.brains.random import agent_keys, normal, uniform
from spikegym.brains.synapses import TMParams, propagate


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _spikes(k, b, n, rate, seed):
    return (torch.rand(k, b, n, generator=_gen(seed)) < rate).float()


# ----------------------------------------------------------------------------- chunking


@pytest.mark.parametrize("chunk_bytes", [1 << 40, 3 * 2 * 13 * 4 * 7, 2 * 13 * 4 * 5])
def test_synapse_chunks_cover_every_synapse_once(chunk_bytes):
    w = torch.zeros(4, 7, 13)
    chunks = pl.synapse_chunks(w, chunk_bytes)
    for bs, ps in chunks:
        w[bs, ps] += 1
    assert torch.equal(w, torch.ones_like(w))
    if chunk_bytes == 1 << 40:
        assert chunks == [(slice(0, 4), slice(0, 7))]
    else:
        assert len(chunks) > 1
        # every chunk is one contiguous block of memory
        for bs, ps in chunks:
            block = w[bs, ps]
            assert block.numel() == 0 or block.is_contiguous() or block.shape[0] == 1


# ----------------------------------------------------------------------------- fused dense substep


def _reference_substep(w, e, x, y, decay, scale, w_min, w_max, soft_bound, mask, pre_next):
    e = pl.eligibility_step(e, x, y, decay)
    if scale is not None:
        w = pl.three_factor_update(w=w, e=e, dopamine=scale, lr=1.0, w_min=w_min, w_max=w_max,
                                   soft_bound=soft_bound, mask=mask)
    cur = None if pre_next is None else propagate(pre_next, w)
    return w, e, cur


@pytest.mark.parametrize("chunk_bytes", [1 << 40, 2 * 9 * 4 * 2 * 11, 2 * 9 * 4 * 4])
@pytest.mark.parametrize("variant", ["clamp", "soft", "mask", "no_dopamine", "rank3"])
def test_three_factor_step_equals_eligibility_then_update_then_propagate(chunk_bytes, variant):
    g = _gen(0)
    b, p, q, r = 3, 11, 9, 3 if variant == "rank3" else 2
    w0 = torch.rand(b, p, q, generator=g)
    e0 = torch.randn(b, p, q, generator=g)
    x, y = torch.randn(b, p, r, generator=g), torch.randn(b, r, q, generator=g)
    scale = None if variant == "no_dopamine" else 0.3 * torch.randn(b, generator=g)
    mask = torch.rand(b, p, q, generator=g) < 0.7 if variant == "mask" else None
    pre = (torch.rand(b, p, generator=g) < 0.4).float()
    kw = dict(w_min=0.0, w_max=1.0, soft_bound=variant == "soft", mask=mask)
    w_ref, e_ref, cur_ref = _reference_substep(w0, e0, x, y, 0.9, scale, pre_next=pre, **kw)
    w, e = w0.clone(), e0.clone()
    cur = pl.three_factor_step_(w=w, e=e, x=x, y=y, decay=0.9, scale=scale, pre_next=pre, chunk_bytes=chunk_bytes, **kw)
    torch.testing.assert_close(e, e_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(w, w_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cur, cur_ref, rtol=1e-5, atol=1e-5)
    if scale is not None:
        assert not torch.equal(w, w0)  # something was learned
        assert float(w.min()) >= 0.0 and float(w.max()) <= 1.0


def test_three_factor_step_without_events_is_the_dopamine_update():
    g = _gen(1)
    w0, e = torch.rand(2, 5, 4, generator=g), torch.randn(2, 5, 4, generator=g)
    d = torch.tensor([0.5, -2.0])
    w = w0.clone()
    out = pl.three_factor_step_(w=w, e=e, x=None, y=None, decay=1.0, scale=0.1 * d, w_min=0.0, w_max=1.0)
    assert out is None
    torch.testing.assert_close(w, pl.three_factor_update(w=w0, e=e, dopamine=d, lr=0.1, w_min=0.0, w_max=1.0))


# ----------------------------------------------------------------------------- window folds


def _window_case(seed, b=2, p=7, q=5, k=6, r=2):
    g = _gen(seed)
    xs = [torch.randn(b, p, r, generator=g) for _ in range(k)]
    ys = [torch.randn(b, r, q, generator=g) for _ in range(k)]
    dop = torch.randn(k, b, generator=g)
    w0 = torch.rand(b, p, q, generator=g) * 4 - 2
    e0 = torch.randn(b, p, q, generator=g)
    return xs, ys, dop, w0, e0


def _fold_args(xs, ys, dop, d, lr):
    k, r = len(xs), xs[0].shape[-1]
    x, y = torch.cat(xs, dim=-1), torch.cat(ys, dim=-2)
    a = torch.stack([sum(dop[j] * d ** (j - m) for j in range(m, k)) for m in range(k)], dim=1)  # [B, K]
    c = sum(dop[j] * d ** (j + 1) for j in range(k))
    step_decays = torch.tensor([d ** (k - 1 - m) for m in range(k)]).repeat_interleave(r)
    return dict(x=x, y=y, step_decays=step_decays, total_decay=d ** k, event_gain=a.repeat_interleave(r, dim=1),
                trace_gain=c, lr=lr)


@pytest.mark.parametrize("soft_bound", [False, True])
def test_fold_window_in_place_equals_pure_and_step_by_step(soft_bound):
    xs, ys, dop, w0, e0 = _window_case(2)
    d, lr = 0.8, 0.05
    # Step by step without bounds: the algebra of the fold.
    w, e = w0.clone(), e0.clone()
    for m in range(len(xs)):
        e = pl.eligibility_step(e, xs[m], ys[m], d)
        w = w + lr * dop[m].view(-1, 1, 1) * e
    args = _fold_args(xs, ys, dop, d, lr)
    w_pure, e_pure = pl.fold_window(w=w0, e=e0, **args)
    torch.testing.assert_close(e_pure, e, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(w_pure, w, rtol=1e-5, atol=1e-5)  # no bounds given
    bounds = dict(w_min=-1.5, w_max=1.5, soft_bound=soft_bound)
    w_pure, e_pure = pl.fold_window(w=w0, e=e0, **args, **bounds)
    w_in, e_in = w0.clone(), e0.clone()
    res = pl.fold_window(w=w_in, e=e_in, **args, **bounds, out=(w_in, e_in), chunk_bytes=2 * 5 * 4 * 3)
    assert res[0] is w_in and res[1] is e_in
    torch.testing.assert_close(w_in, w_pure, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(e_in, e_pure, rtol=1e-5, atol=1e-6)
    assert float(w_in.min()) >= -1.5 and float(w_in.max()) <= 1.5
    with pytest.raises(ValueError):
        pl.fold_window(w=w0, e=e0, **args, out=(w0.clone(), e0))


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


def test_stdp_window_basis_reproduces_stacked_factors_and_fold():
    k, b, p, q = 8, 2, 9, 5
    params = pl.StdpParams(a_plus=0.8, a_minus=1.1)
    d = math.exp(-1 / 20)
    s = _spikes(k, b, p, 0.3, 6)
    xpre = torch.rand(b, p, generator=_gen(7))
    basis, mix = pl.stdp_window_basis(pre_spikes=s, pre_trace0=xpre * d, decay=d, params=params)
    trace, xs = xpre.clone(), []
    for t in range(k):
        before, trace = pl.trace_step(trace, s[t], d)
        xs.append(pl.stdp_pre_factors(pre_spikes=s[t], pre_trace=before, params=params))
    x = torch.cat(xs, dim=-1)  # [B, P, 2K], column 2m + k
    assert basis.shape == (b, p, k + 1) and mix.shape == (k + 1, 2 * k)
    torch.testing.assert_close(basis @ mix, x, rtol=1e-5, atol=1e-6)
    # The fold in the low-rank form equals the generic fold.
    g = _gen(8)
    y = torch.randn(b, 2 * k, q, generator=g)
    gain, sd = torch.randn(b, 2 * k, generator=g), torch.rand(2 * k, generator=g)
    c = torch.randn(b, generator=g)
    w0, e0 = torch.rand(b, p, q, generator=g), torch.randn(b, p, q, generator=g)
    kw = dict(total_decay=0.5, trace_gain=c, lr=0.1, w_min=0.0, w_max=1.0)
    w1, e1 = w0.clone(), e0.clone()
    pl.fold_window_(w=w1, e=e1, xa=x * gain.unsqueeze(1), ya=y, xs=x * sd, ys=y, **kw)
    w2, e2 = w0.clone(), e0.clone()
    pl.fold_window_(w=w2, e=e2, xa=basis, ya=torch.bmm(mix * gain.unsqueeze(1), y), xs=basis,
                    ys=torch.bmm((mix * sd).expand(b, -1, -1), y), **kw)
    torch.testing.assert_close(w2, w1, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(e2, e1, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- the Brain's fast paths


def test_blockwise_initial_weights_equal_one_draw():
    keys = agent_keys(11, 3)
    for draw in (normal, uniform):
        blocks = nw._rows_noise(draw, keys, 23, 7, stream=5, block=30)  # 1 row of 3 x 7 per block
        whole = draw(keys, 0, (23, 3, 7), stream=5).transpose(0, 1)
        assert torch.equal(blocks, whole)
    brain = Brain([Population("i", 6, "input"), Population("o", 4, "lif")],
                  [Projection("i", "o", w_init_mean=0.2, w_init_std=0.1)], batch=2, seed=4)
    ref = 0.2 + 0.1 * normal(brain.keys, 0, (6, 2, 4), stream=1 << 20).transpose(0, 1)
    assert torch.equal(brain.weights("i->o"), ref)


def test_window_current_events_equal_dense_for_large_inputs():
    g = _gen(9)
    w = torch.randn(2, 300, 256, generator=g)  # >= 65536 synapses per agent: the event branch is allowed
    for rate in (0.01, 0.3):  # few spikes -> rows gathered; many -> one product
        pre = (torch.rand(2, 5, 300, generator=g) < rate).float()
        torch.testing.assert_close(nw._window_current(pre, w), propagate(pre, w), rtol=1e-4, atol=1e-4)


def _mixed_brain(engine="dense", seed=0):
    """Inputs with STP (plastic), a fixed input projection, and a plastic projection between spiking layers."""
    pops = [Population("in", 40, "input"), Population("bias", 10, "input"),
            Population("h", 16, "lif", lif=LIFParams(tau_mem=10.0)),
            Population("o", 8, "lif", lif=LIFParams(tau_mem=10.0))]
    projs = [Projection("in", "h", rule="stdp", lr=0.02, trace_decay=0.95, w_init_mean=0.35, w_init_std=0.1,
                        w_min=0.0, w_max=1.0, stp=TMParams(U=0.5, tau_f=50.0, tau_d=100.0)),
             Projection("bias", "h", w_init_mean=0.3, w_init_std=0.05),
             Projection("h", "o", rule="stdp", lr=0.05, trace_decay=0.9, w_init_mean=1.2, w_init_std=0.3,
                        w_min=0.0, w_max=3.0, density=0.8)]
    return Brain(pops, projs, batch=3, seed=seed, engine=engine)


def test_fused_next_substep_current_equals_separate_propagation():
    fused, plain = _mixed_brain(), _mixed_brain()
    orig = plain._dense_learn
    plain._dense_learn = lambda proj, x, y, d, pre_next=None: orig(proj, x, y, d, None)  # no fusion
    g = _gen(10)
    for window in range(4):
        inp = {"in": _spikes(12, 3, 40, 0.3, window), "bias": _spikes(12, 3, 10, 0.5, 100 + window)}
        dop = torch.randn(12, 3, generator=g)
        a, b = fused.run(inp, dopamine=dop), plain.run(inp, dopamine=dop)
        for name in ("h", "o"):
            assert torch.equal(a[name], b[name]), f"spikes of {name} differ in window {window}"
    assert a["o"].sum() > 0 and a["h"].sum() > 0
    for proj in ("in->h", "h->o"):
        torch.testing.assert_close(fused.weights(proj), plain.weights(proj), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(fused.eligibility(proj), plain.eligibility(proj), rtol=1e-5, atol=1e-6)
    assert torch.all(fused.weights("h->o")[~fused.mask("h->o")] == 0)


def _event_brain(hetero=0.0, seed=0):
    pops = [Population("in", 50, "input"), Population("out", 10, "lif", lif=LIFParams(tau_mem=10.0))]
    proj = Projection("in", "out", rule="stdp", lr=0.02, trace_decay=0.97, w_init_mean=0.35, w_init_std=0.1,
                      w_min=-5.0, w_max=5.0, stdp=pl.StdpParams(hetero_ltd=hetero))
    return Brain(pops, [proj], batch=2, seed=seed, engine="event")


@pytest.mark.parametrize("with_dopamine", [True, False])
def test_event_low_rank_fold_equals_generic_fold(with_dopamine):
    low, generic = _event_brain(), _event_brain()
    real_window = nw._Window

    class NoBasis(real_window):
        def set_basis(self, proj, basis, mix):
            pass

    g = _gen(11)
    for window in range(3):
        spikes = _spikes(15, 2, 50, 0.2, window)
        dop = torch.randn(15, 2, generator=g) if with_dopamine else None
        a = low.run({"in": spikes}, dopamine=dop)
        nw._Window = NoBasis
        try:
            b = generic.run({"in": spikes}, dopamine=dop)
        finally:
            nw._Window = real_window
        assert torch.equal(a["out"], b["out"])
    assert a["out"].sum() > 0
    torch.testing.assert_close(low.eligibility("in->out"), generic.eligibility("in->out"), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(low.weights("in->out"), generic.weights("in->out"), rtol=1e-4, atol=1e-5)
    if not with_dopamine:
        torch.testing.assert_close(low.weights("in->out"), _event_brain().weights("in->out"))


def test_event_engine_with_heterosynaptic_ltd_matches_dense():
    event = _event_brain(hetero=0.3)
    pops = [Population("in", 50, "input"), Population("out", 10, "lif", lif=LIFParams(tau_mem=10.0))]
    dense = Brain(pops, list(event.projs.values()), batch=2, seed=0, engine="dense")
    g = _gen(12)
    for window in range(3):
        spikes = _spikes(15, 2, 50, 0.2, window)
        dop = torch.randn(15, 2, generator=g)
        assert torch.equal(event.run({"in": spikes}, dopamine=dop)["out"], dense.run({"in": spikes}, dopamine=dop)["out"])
    torch.testing.assert_close(event.weights("in->out"), dense.weights("in->out"), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(event.eligibility("in->out"), dense.eligibility("in->out"), rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- the fused feed-forward path


def _actor_critic(batch, seed=3, first=0, motor="escape"):
    """The agent's network shape: inputs -> escape motor (node perturbation) and escape critic."""
    from spikegym.brains.neurons import EscapeParams
    hp = pl.HomeostasisParams(target_rate=0.2, eta=0.01, tau_rate=300.0)
    pops = [Population("in", 30, "input"),
            Population("motor", 8, motor, escape=EscapeParams(slope=1.5, bias=-0.5), homeostasis=hp),
            Population("critic", 6, "escape")]
    projs = [Projection("in", "motor", rule="node_perturbation", lr=0.2, trace_decay=0.97, w_init_std=0.5,
                        w_min=-2.0, w_max=2.0),
             Projection("in", "critic", rule="critic", lr=0.1, trace_decay=0.9, critic_scale=0.7, w_init_std=0.3)]
    return Brain(pops, projs, batch=batch, seed=seed, agent_index0=first)


def _drive(brain, windows=6, k=12, seed=0):
    """Decisions as the Agent makes them: run(defer) -> learn -> commit, with episode resets in between."""
    g = _gen(seed)
    outs = []
    for i in range(windows):
        spikes = (torch.rand(k, brain.batch, 30, generator=g) < 0.3).float()
        out = brain.run({"in": spikes}, defer=True)
        outs.append((out["motor"].clone(), out["critic"].clone(), brain.last_prob["critic"].clone()))
        brain.learn(torch.randn(brain.batch, generator=g))
        brain.commit()
        if i % 3 == 2:
            brain.reset(torch.arange(brain.batch) % 2 == i % 2)
    return outs


def test_fused_feedforward_path_equals_the_substep_loop():
    fast, slow = _actor_critic(3), _actor_critic(3)
    assert fast._ff is not None
    slow._ff = None                      # general engine: event window, one substep at a time
    slow._vectorizable = lambda: False
    for (m1, c1, p1), (m2, c2, p2) in zip(_drive(fast), _drive(slow)):
        assert torch.equal(m1, m2) and torch.equal(c1, c2)
        torch.testing.assert_close(p1, p2, rtol=1e-5, atol=1e-6)
    for name in ("in->motor", "in->critic"):
        torch.testing.assert_close(fast.eligibility(name), slow.eligibility(name), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(fast.weights(name), slow.weights(name), rtol=1e-4, atol=1e-5)
        assert fast.eligibility(name).abs().sum() > 0
    for name in ("in", "motor", "critic"):
        torch.testing.assert_close(fast.rate(name), slow.rate(name), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast.excite__motor, slow.excite__motor, rtol=1e-5, atol=1e-6)
    assert int(fast.counter) == int(slow.counter) and int(fast.runs) == int(slow.runs)


def test_fused_path_batched_equals_each_agent_alone():
    batched, alone = _actor_critic(4, seed=5), _actor_critic(1, seed=5, first=2)
    g = _gen(7)
    for _ in range(4):
        spikes = (torch.rand(10, 4, 30, generator=g) < 0.3).float()
        d = torch.randn(4, generator=g)
        a = batched.run({"in": spikes}, defer=True)
        b = alone.run({"in": spikes[:, 2:3]}, defer=True)
        assert torch.equal(a["motor"][:, 2:3], b["motor"]) and torch.equal(a["critic"][:, 2:3], b["critic"])
        batched.learn(d), alone.learn(d[2:3])
        batched.commit(), alone.commit()
    torch.testing.assert_close(batched.weights("in->motor")[2:3], alone.weights("in->motor"), rtol=1e-5, atol=1e-6)


def test_fused_storage_is_shared_and_survives_load_assign_and_deepcopy():
    import copy
    brain = _actor_critic(2)
    w_m, w_c = brain.weights("in->motor"), brain.weights("in->critic")
    assert w_m.untyped_storage().data_ptr() == w_c.untyped_storage().data_ptr()  # one storage, two views
    _drive(brain, windows=2)
    ref = _actor_critic(2, seed=11)
    ref.load_state_dict(brain.state_dict())
    assigned = _actor_critic(2, seed=12)
    assigned.load_state_dict({k: v.clone() for k, v in brain.state_dict().items()}, assign=True)  # views replaced
    twin = copy.deepcopy(brain)
    results = [_drive(b, windows=4, seed=3) for b in (brain, ref, assigned, twin)]
    for other in results[1:]:
        for (m1, c1, _), (m2, c2, _) in zip(results[0], other):
            assert torch.equal(m1, m2) and torch.equal(c1, c2)
    for b in (ref, assigned, twin):
        torch.testing.assert_close(b.weights("in->motor"), brain.weights("in->motor"))
        assert b.weights("in->motor").untyped_storage().data_ptr() == b.weights("in->critic").untyped_storage().data_ptr()


def test_fused_path_applies_only_to_feedforward_escape_networks():
    assert _actor_critic(2)._ff is not None
    assert _actor_critic(2, motor="lif")._ff is None        # membranes: substeps depend on each other
    assert _stdp_like()._ff is None


def _stdp_like():
    pops = [Population("in", 5, "input"), Population("out", 3, "escape")]
    return Brain(pops, [Projection("in", "out", rule="stdp", lr=0.1)], batch=2)


# ----------------------------------------------------------------------------- counter-based noise


def test_cached_noise_draws_equal_uniform():
    from spikegym.brains.random import CounterNoise, row_codes, to_uniform
    keys = agent_keys(4, 3)
    noise = CounterNoise(block=16)  # small blocks: draws cross block boundaries
    for counter in (0, 5, 14, 15, 31, (1 << 32) - 3, (1 << 40) + 9):
        ref = uniform(keys, counter, (4, 3, 6), stream=7)
        assert torch.equal(noise.uniform(keys, counter, (4, 3, 6), stream=7), ref)
        both = to_uniform(noise.hash(keys, ((7, 6), (8, 2)), counter, 4))  # two streams side by side
        assert torch.equal(both[..., :6], ref) and torch.equal(both[..., 6:], uniform(keys, counter, (4, 3, 2), stream=8))
        steps_last = to_uniform(noise.hash(keys, ((7, 6),), counter, 4, steps_first=False))
        assert torch.equal(steps_last, ref.transpose(0, 1))
        assert torch.equal(row_codes(counter, 40)[:30], row_codes(counter, 30))  # tensor and Python paths agree
    keys2 = agent_keys(5, 3)
    keys.copy_(keys2)  # the cached column words follow an in-place change of the keys
    assert torch.equal(noise.uniform(keys, 3, (2, 3, 6), stream=7), uniform(keys2, 3, (2, 3, 6), stream=7))


def test_bernoulli_threshold_is_exact():
    from spikegym.brains.random import UNIT, bernoulli_threshold
    p = torch.cat([torch.rand(2000, generator=_gen(1)), torch.tensor([0.0, 1.0, UNIT, 0.5, 1 - UNIT, 3e-9])])
    thr = bernoulli_threshold(p)
    for shift in (-2, -1, 0, 1):
        a = (thr + shift).clamp(-(1 << 23), (1 << 23) - 1)  # the 24-bit values next to each threshold
        u = (a + (1 << 23)) * UNIT
        assert torch.equal(a < thr, u < p)


def test_hash_noise_statistics():
    """Uniform in every bit range, no correlation between neighbouring steps, neurons or agents, nor between
    any two of 768 columns over 2000 steps, and independent Bernoulli pairs."""
    keys = agent_keys(0, 12)
    t_steps = 2000
    u = uniform(keys, 12345, (t_steps, 12, 64)).double()  # [T, B, N]
    a = (u * (1 << 24)).long()
    for bits in (a >> 16, (a >> 8) & 255, a & 255):  # top, middle and low byte: chi-square, 255 dof
        counts = torch.bincount(bits.flatten(), minlength=256).double()
        expected = bits.numel() / 256
        assert ((counts - expected) ** 2 / expected).sum() < 255 + 6 * math.sqrt(2 * 255)

    def z(x, y):
        x, y = x - x.mean(), y - y.mean()
        return float((x * y).sum() / (x.norm() * y.norm())) * math.sqrt(x.numel())

    for lag in (z(u[1:], u[:-1]), z(u[:, :, 1:], u[:, :, :-1]), z(u[:, 1:], u[:, :-1]), z(u[1:, :, 1:], u[:-1, :, :-1])):
        assert abs(lag) < 5
    cols = u.reshape(t_steps, -1)
    cols = (cols - cols.mean(0)) / cols.std(0)
    zs = (cols.T @ cols / t_steps)[torch.triu_indices(cols.shape[1], cols.shape[1], 1).unbind()] * math.sqrt(t_steps)
    assert float((zs ** 2).mean()) == pytest.approx(1.0, abs=0.05)
    assert float(zs.abs().max()) < 6.5
    s = (u.reshape(t_steps, -1) < 0.2).double()
    joint = (s[:, :-1] * s[:, 1:]).mean(0)  # neighbouring columns fire together at p^2
    assert float(joint.mean()) == pytest.approx(0.04, abs=0.002)
