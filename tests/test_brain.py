"""The spiking engine: golden dynamics, analytic expectations, and formulations that must agree."""

import math

import pytest
import torch

from spikegym.brains import plasticity as pl
from spikegym.brains.network import Brain, Population, Projection
from spikegym.brains.neurons import LIFParams, lif_init, lif_rate, lif_step
from spikegym.brains.random import agent_keys, uniform
from spikegym.brains.synapses import TMParams, propagate, propagate_events, tm_init, tm_step


# ----------------------------------------------------------------------------- neurons


@pytest.mark.parametrize("current", [1.2, 1.5, 2.0, 4.0])
def test_lif_rate_matches_analytic_f_i_curve(current):
    p = LIFParams(tau_mem=20.0, v_th=1.0, t_ref=2.0)
    dt, steps = 0.1, 20000
    state = lif_init(1, 1, p)
    times = []
    for t in range(steps):
        s, state = lif_step(torch.tensor([[current]]), state, p, dt)
        if s.item():
            times.append(t * dt)
    rate = 1000.0 * (len(times) - 1) / (times[-1] - times[0])
    assert rate == pytest.approx(lif_rate(current, p, dt), rel=1e-3)
    continuous = 1000.0 / (p.t_ref + p.tau_mem * math.log(current / (current - p.v_th)))
    assert rate == pytest.approx(continuous, rel=0.02)
    # Refractoriness: no two spikes closer than t_ref.
    assert min(b - a for a, b in zip(times, times[1:])) >= p.t_ref


def test_lif_below_rheobase_is_silent_and_refractory_clamps_voltage():
    p = LIFParams(tau_mem=10.0, v_th=1.0, t_ref=5.0)
    state = lif_init(1, 2, p)
    spikes = []
    for _ in range(300):
        s, state = lif_step(torch.tensor([[0.99, 50.0]]), state, p, 1.0)
        spikes.append(s)
    s = torch.cat(spikes)
    assert s[:, 0].sum() == 0
    # Strong drive: one spike then exactly t_ref silent steps, so a period of 6 steps.
    idx = s[:, 1].nonzero().flatten()
    assert torch.all(idx[1:] - idx[:-1] == 6)


def test_alif_threshold_adapts_and_slows_firing():
    lif = LIFParams(tau_mem=20.0, t_ref=2.0)
    alif = lif._replace(theta_plus=0.2, tau_theta=200.0)
    counts = []
    for p in (lif, alif):
        state = lif_init(1, 1, p)
        n = 0
        for _ in range(2000):
            s, state = lif_step(torch.tensor([[3.0]]), state, p, 1.0)
            n += s.item()
        counts.append(n)
    assert counts[1] < 0.7 * counts[0]


# ----------------------------------------------------------------------------- STDP


def _pair_change(delta: int, params: pl.StdpParams) -> float:
    """Run traces and STDP events step by step for one pre and one post spike, delta = t_post - t_pre."""
    t_pre, t_post = 50, 50 + delta
    xpre, xpost = torch.zeros(1, 1), torch.zeros(1, 1)
    total = 0.0
    for t in range(120):
        s_pre = torch.tensor([[float(t == t_pre)]])
        s_post = torch.tensor([[float(t == t_post)]])
        pre_b, xpre = pl.trace_step(xpre, s_pre, math.exp(-1 / params.tau_plus))
        post_b, xpost = pl.trace_step(xpost, s_post, math.exp(-1 / params.tau_minus))
        x, y = pl.stdp_factors(pre_spikes=s_pre, post_spikes=s_post, pre_trace=pre_b, post_trace=post_b, params=params)
        total += torch.bmm(x, y).item()
    return total


def test_stdp_window_follows_exponentials():
    params = pl.StdpParams(a_plus=1.0, a_minus=0.8, tau_plus=16.8, tau_minus=33.7)
    deltas = [-40, -20, -5, -1, 0, 1, 5, 20, 40]
    measured = torch.tensor([_pair_change(d, params) for d in deltas])
    expected = pl.stdp_window_curve(torch.tensor(deltas, dtype=torch.float32), params)
    torch.testing.assert_close(measured, expected, rtol=1e-5, atol=1e-7)
    assert measured[deltas.index(5)] > 0 > measured[deltas.index(-5)]


def test_heterosynaptic_ltd_depresses_silent_inputs_only():
    params = pl.StdpParams(hetero_ltd=0.1)
    pre_trace = torch.tensor([[1.0, 0.0]])  # input 0 was active, input 1 silent
    x, y = pl.stdp_factors(pre_spikes=torch.zeros(1, 2), post_spikes=torch.ones(1, 1),
                           pre_trace=pre_trace, post_trace=torch.zeros(1, 1), params=params)
    dw = torch.bmm(x, y)[0, :, 0]
    assert dw[0] == pytest.approx(params.a_plus)
    assert dw[1] == pytest.approx(-0.1)


def test_soft_bound_shrinks_change_near_bounds():
    w = torch.tensor([0.0, 0.5, 1.0])
    up = pl.soft_bound_factor(w, torch.ones(3), 0.0, 1.0)
    down = pl.soft_bound_factor(w, -torch.ones(3), 0.0, 1.0)
    torch.testing.assert_close(up, torch.tensor([1.0, 0.5, 0.0]))
    torch.testing.assert_close(down, torch.tensor([0.0, 0.5, 1.0]))


def test_soft_bound_without_both_bounds_says_so():
    w, e = torch.zeros(1, 2, 2), torch.ones(1, 2, 2)
    with pytest.raises(ValueError, match="w_min and w_max"):
        pl.three_factor_update(w=w, e=e, dopamine=torch.ones(1), lr=0.1, w_max=1.0, soft_bound=True)


# ----------------------------------------------------------------------------- short-term plasticity


@pytest.mark.parametrize("params", [TMParams(U=0.1, tau_f=750.0, tau_d=50.0),   # facilitating
                                    TMParams(U=0.5, tau_f=20.0, tau_d=800.0)])  # depressing
def test_tsodyks_markram_matches_event_recurrence(params):
    isi, n_spikes, dt = 25, 8, 1.0
    state = tm_init(1, 1, params)
    responses = []
    for t in range(isi * n_spikes):
        r, state = tm_step(torch.tensor([[float(t % isi == 0)]]), state, params, dt)
        if t % isi == 0:
            responses.append(r.item())
    # Recurrence between spikes (Tsodyks & Markram 1997, Maass & Markram 2002).
    u, x, expected = params.U, 1.0, []
    for n in range(n_spikes):
        if n > 0:
            u = params.U + (u - params.U) * math.exp(-isi / params.tau_f)
            x = 1 + (x - 1) * math.exp(-isi / params.tau_d)
        u = u + params.U * (1 - u)
        expected.append(u * x)
        x = x - u * x
    assert responses == pytest.approx(expected, rel=1e-4)
    if params.U < 0.3:
        assert responses[1] > responses[0]  # facilitation
    else:
        assert responses[-1] < 0.5 * responses[0]  # depression


# ----------------------------------------------------------------------------- propagation


def test_event_propagation_equals_dense():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(3, 50, 7, generator=g)
    pre = (torch.rand(3, 4, 50, generator=g) < 0.1).float()
    torch.testing.assert_close(propagate_events(pre, w), propagate(pre, w), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(propagate_events(pre[:, 0], w), propagate(pre[:, 0], w), rtol=1e-5, atol=1e-5)


def test_counter_noise_is_batch_invariant():
    keys = agent_keys(3, 5)
    alone = agent_keys(3, 1, first=4)
    torch.testing.assert_close(uniform(keys, 7, (2, 5, 9))[:, 4:5], uniform(alone, 7, (2, 1, 9)))
    u = uniform(keys, 0, (200, 5, 50))
    assert 0.0 <= float(u.min()) and float(u.max()) < 1.0
    assert float(u.mean()) == pytest.approx(0.5, abs=0.01)


# ----------------------------------------------------------------------------- the Brain


def _input_spikes(k, b, n, rate, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(k, b, n, generator=g) < rate).float()


def _stdp_brain(batch, seed=0, first=0, **proj_kw):
    pops = [Population("in", 60, "input"), Population("out", 12, "lif", lif=LIFParams(tau_mem=10.0))]
    kw = dict(rule="stdp", lr=0.01, trace_decay=0.99, w_init_mean=0.35, w_init_std=0.1, w_min=-5.0, w_max=5.0)
    kw.update(proj_kw)
    return Brain(pops, [Projection("in", "out", **kw)], batch=batch, seed=seed, agent_index0=first)


def test_batched_agents_equal_each_agent_alone():
    batched = _stdp_brain(4, seed=5)
    alone = _stdp_brain(1, seed=5, first=2)
    torch.testing.assert_close(batched.weights("in->out")[2:3], alone.weights("in->out"))
    g = torch.Generator().manual_seed(2)
    for window in range(4):
        spikes = _input_spikes(10, 4, 60, 0.2, seed=window)
        dopa = torch.randn(10, 4, generator=g)
        a = batched.run({"in": spikes}, dopamine=dopa)
        b = alone.run({"in": spikes[:, 2:3]}, dopamine=dopa[:, 2:3])
        assert torch.equal(a["out"][:, 2:3], b["out"])
    torch.testing.assert_close(batched.weights("in->out")[2:3], alone.weights("in->out"), rtol=1e-5, atol=1e-6)


def test_memoryless_escape_window_equals_substeps_by_hand():
    """A memoryless escape population fed by inputs only is stepped all K substeps at once: it must equal the
    per-substep rule p_t = sigmoid(slope (s_t W + bias)), spike where the agent's noise is below p_t, and the
    node-perturbation eligibility e = d^K e0 + sum_t d^(K-1-t) s_t (spike_t - p_t)."""
    from spikegym.brains.neurons import EscapeParams
    esc = EscapeParams(slope=1.5, bias=-0.5)
    pops = [Population("in", 20, "input"), Population("m", 6, "escape", escape=esc)]
    brain = Brain(pops, [Projection("in", "m", rule="node_perturbation", trace_decay=0.9, w_init_std=1.0)],
                  batch=2, seed=4)
    w = brain.weights("in->m").clone()
    e = torch.zeros_like(w)
    counter = 0
    for i in range(3):
        spikes = _input_spikes(8, 2, 20, 0.3, seed=i)
        out = brain.run({"in": spikes})["m"]
        noise = uniform(brain.state.keys, counter, (8, 2, 6), stream=brain.spec.stream["m"])
        for t in range(8):
            p = torch.sigmoid(esc.slope * (torch.bmm(spikes[t].unsqueeze(1), w).squeeze(1) + esc.bias))
            s = (noise[t] < p).float()
            assert torch.equal(out[t], s), f"window {i}, substep {t}"
            e = 0.9 * e + spikes[t].unsqueeze(-1) * (s - p).unsqueeze(1)
        counter += 8
        assert 0 < out.mean() < 1
    torch.testing.assert_close(brain.eligibility("in->m"), e, rtol=1e-5, atol=1e-5)
    assert torch.equal(brain.weights("in->m"), w)  # no dopamine yet: nothing learned


def _distal_reward(trace_decay: float) -> torch.Tensor:
    """Pre 0 fires 5 ms before a teacher-forced post spike; dopamine arrives 1 s later."""
    pops = [Population("in", 2, "input"), Population("teach", 1, "input"),
            Population("out", 1, "lif", lif=LIFParams(tau_mem=10.0, t_ref=2.0))]
    projs = [Projection("in", "out", rule="stdp", lr=1.0, trace_decay=trace_decay, w_init_mean=0.1),
             Projection("teach", "out", w_init_mean=100.0)]
    brain = Brain(pops, projs, batch=1)
    t_pre, t_post, t_reward, total = 10, 15, 1015, 1100
    pre = torch.zeros(total, 1, 2)
    pre[t_pre, 0, 0] = 1
    teach = torch.zeros(total, 1, 1)
    teach[t_post, 0, 0] = 1
    dopamine = torch.zeros(total, 1)
    dopamine[t_reward] = 1.0
    out = brain.run({"in": pre, "teach": teach}, dopamine=dopamine)
    assert out["out"][:, 0, 0].nonzero().flatten().tolist() == [t_post]
    return brain.weights("in->out")[0, :, 0] - 0.1


def test_distal_reward_strengthens_only_the_paired_synapse():
    tau_e = 1000.0
    dw = _distal_reward(math.exp(-1 / tau_e))
    expected = math.exp(-5 / 20.0) * math.exp(-(1015 - 15) / tau_e)  # STDP x eligibility decay
    assert dw[0].item() == pytest.approx(expected, rel=1e-3)
    assert dw[1].item() == 0.0
    no_trace = _distal_reward(0.0)
    assert no_trace.abs().max().item() == 0.0


@pytest.mark.parametrize("start_bias", [-4.0, 3.0])
def test_threshold_homeostasis_reaches_target_rate(start_bias):
    from spikegym.brains.neurons import EscapeParams
    hp = pl.HomeostasisParams(target_rate=0.1, eta=0.002, tau_rate=200.0)
    pops = [Population("in", 4, "input"), Population("n", 8, "escape", escape=EscapeParams(bias=start_bias), homeostasis=hp)]
    brain = Brain(pops, [Projection("in", "n", w_init_mean=0.5)], batch=2, seed=1)
    spikes = torch.ones(20, 2, 4) * 0.5
    first = None
    for _ in range(300):
        brain.run({"in": spikes})
        if first is None:  # the firing probability, not a 320-spike sample of it (that one is a coin flip at -4)
            first = brain.last_prob["n"].mean().item()
    rates = torch.stack([brain.run({"in": spikes})["n"].mean() for _ in range(50)])
    assert abs(first - 0.1) > 0.05
    assert rates.mean().item() == pytest.approx(0.1, abs=0.015)


def test_synaptic_scaling_moves_rate_toward_target():
    hp = pl.HomeostasisParams(target_rate=0.1, eta=0.05)
    w = torch.ones(1, 3, 2)
    scaled = pl.synaptic_scaling(w=w, post_rate=torch.tensor([[0.2, 0.05]]), params=hp)
    assert scaled[0, 0, 0] < 1.0 < scaled[0, 0, 1]


def test_structural_plasticity_prunes_weak_and_respects_budget():
    params = pl.StructuralParams(prune_below=0.05, prune_after=3, grow=40, max_density=0.5, w_init=0.2)
    b, p, q = 2, 10, 10
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(b, p, q, generator=g) < 0.4
    w = torch.where(torch.rand(b, p, q, generator=g) < 0.5, 0.01, 0.5) * mask
    weak0 = mask & (w.abs() < 0.05)
    age = torch.zeros(b, p, q, dtype=torch.long)
    counts = []
    for _ in range(6):
        w, mask, age = pl.structural_step(w=w, mask=mask, weak_age=age, pre_rate=torch.rand(b, p, generator=g),
                                          post_rate=torch.rand(b, q, generator=g),
                                          uniform=torch.rand(b, p, q, generator=g), params=params)
        counts.append(mask.flatten(1).sum(1))
        assert torch.all(counts[-1] <= params.max_density * p * q)
    assert not (mask & weak0 & (w.abs() < 0.05)).any()  # every originally weak synapse got pruned
    assert torch.all(counts[-1] == 50)  # grown up to the budget
    assert torch.all(w[mask] != 0) and torch.all(w[~mask] == 0)


def test_brain_structural_plasticity_keeps_count_bounded():
    sp = pl.StructuralParams(prune_below=0.3, prune_after=2, grow=10, max_density=0.3)
    pops = [Population("in", 20, "input"), Population("o", 10, "escape")]
    brain = Brain(pops, [Projection("in", "o", rule="node_perturbation", lr=0.1, w_init_mean=0.2, w_init_std=0.2,
                                    density=0.25, structural=sp, structural_every=1)], batch=3)
    for i in range(10):
        brain.run({"in": _input_spikes(5, 3, 20, 0.3, i)})
        brain.learn(torch.randn(3))
        n = brain.mask("in->o").flatten(1).sum(1)
        assert torch.all(n <= 60)
    assert torch.all(brain.weights("in->o")[~brain.mask("in->o")] == 0)


def test_masked_reset_only_touches_chosen_agents():
    brain = _stdp_brain(3)
    brain.run({"in": _input_spikes(30, 3, 60, 0.3, 0)})
    e_before = brain.eligibility("in->out").clone()
    w_before = brain.weights("in->out").clone()
    xpre_before = brain.state.xpre["in->out"].clone()
    brain.reset(torch.tensor([False, True, False]))
    e = brain.eligibility("in->out")
    assert e[1].abs().sum() == 0 and e_before[1].abs().sum() > 0
    torch.testing.assert_close(e[[0, 2]], e_before[[0, 2]])
    torch.testing.assert_close(brain.weights("in->out"), w_before)
    v = brain.state.v["out"]
    assert torch.all(v[1] == LIFParams().v_rest) and torch.all(brain.state.last["out"][1] == 0)
    assert not torch.equal(v[[0, 2]], torch.full_like(v[[0, 2]], LIFParams().v_rest))
    assert torch.equal(brain.state.xpre["in->out"][[0, 2]], xpre_before[[0, 2]])
    assert brain.state.xpre["in->out"][1].abs().sum() == 0


def test_no_autograd_graph_is_ever_built():
    brain = _stdp_brain(2)
    with torch.enable_grad():
        out = brain.run({"in": _input_spikes(10, 2, 60, 0.3, 0)}, dopamine=torch.ones(10, 2))
        brain.learn(torch.ones(2))
    assert out["out"].grad_fn is None and not out["out"].requires_grad
    state = brain.state_dict()
    assert not any(t.requires_grad or t.grad_fn is not None for t in state.values())
    assert not isinstance(brain, torch.nn.Module)  # no parameters to hand an optimiser


def test_state_dict_round_trip_and_device_follow():
    brain = _stdp_brain(2)
    brain.run({"in": _input_spikes(10, 2, 60, 0.3, 0)}, dopamine=torch.ones(10, 2))
    clone = _stdp_brain(2, seed=99)
    assert not torch.equal(clone.weights("in->out"), brain.weights("in->out"))
    clone.load_state_dict(brain.state_dict())
    moved = _stdp_brain(2, seed=98)
    moved.load_state_dict(brain.state_dict())
    moved.to("cpu")
    for k in range(3):
        spikes = _input_spikes(10, 2, 60, 0.3, 1 + k)
        dopa = torch.randn(10, 2, generator=torch.Generator().manual_seed(k))
        a = brain.run({"in": spikes}, dopamine=dopa)["out"]
        assert torch.equal(a, clone.run({"in": spikes}, dopamine=dopa)["out"])
        assert torch.equal(a, moved.run({"in": spikes}, dopamine=dopa)["out"])
    for other in (clone, moved):
        assert all(torch.equal(v, other.state_dict()[k]) for k, v in brain.state_dict().items())


def test_load_state_dict_names_a_missing_or_misshapen_tensor():
    brain = _stdp_brain(2)
    flat = brain.state_dict()
    with pytest.raises(KeyError, match="e.in->out"):
        brain.load_state_dict({k: v for k, v in flat.items() if k != "e.in->out"})
    with pytest.raises(ValueError, match="w.in->out"):
        brain.load_state_dict({**flat, "w.in->out": flat["w.in->out"][:1]})
