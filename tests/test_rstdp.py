"""Reward-modulated STDP with LIF neurons (issue 21): noisy LIF, the centred window, pairing, distal reward.

The brain's reference step (:mod:`spikegym.brains.step`) is used directly; the numba kernel runs the same rule
in lockstep (tests/test_equivalence.py).
"""

from __future__ import annotations

import math

import pytest
import torch

from spikegym.brains import plasticity as pl
from spikegym.brains import step as S
from spikegym.brains.neurons import LIFParams, LIFState, lif_step_prob
from spikegym.brains.spec import BrainSpec, Population, Projection
from spikegym.brains.state import init_state

TAU = 20.0


def test_noisy_lif_fires_with_the_sigmoid_of_its_membrane():
    """A membrane held at v (v_reset = v, no refractory period) spikes with probability sigmoid(slope (v - v_th))."""
    n, slope = 20_000, 4.0
    for v0 in (0.5, 1.0, 1.3):
        p = LIFParams(tau_mem=TAU, v_th=1.0, v_reset=v0, v_rest=0.0, t_ref=0.0, escape_slope=slope)
        state = LIFState(torch.full((1, n), v0), torch.zeros(1, n), torch.zeros(1, n))
        gen = torch.Generator().manual_seed(0)
        spikes, prob, state = lif_step_prob(torch.full((1, n), v0), state, p, 1.0, torch.rand(1, n, generator=gen))
        expected = 1 / (1 + math.exp(-slope * (v0 - 1.0)))
        torch.testing.assert_close(prob, torch.full_like(prob, expected))
        assert float(spikes.mean()) == pytest.approx(expected, abs=4 * math.sqrt(expected / n))
        torch.testing.assert_close(state.v, torch.full_like(state.v, v0))  # the membrane stays at v_reset = v


def test_noisy_lif_is_silent_while_refractory():
    p = LIFParams(t_ref=2.0, escape_slope=50.0)
    state = LIFState(torch.full((1, 4), 5.0), torch.tensor([[0.0, 1.0, 2.0, 0.0]]), torch.zeros(1, 4))
    spikes, prob, _ = lif_step_prob(torch.full((1, 4), 5.0), state, p, 1.0, torch.zeros(1, 4))
    assert prob.tolist() == [[1.0, 0.0, 0.0, 1.0]] and spikes.tolist() == [[1.0, 0.0, 0.0, 1.0]]


def _paired_brain(center: str = "none", trace_decay: float = 1.0, n_in: int = 1, slope: float = 0.0):
    """Inputs ``in`` (plastic, starting at 0) and ``drive`` (fixed, strong: the post neuron fires when it does)."""
    pops = (Population("in", n_in, "input"), Population("drive", 1, "input"),
            Population("post", 1, "lif", lif=LIFParams(tau_mem=TAU, t_ref=2.0, escape_slope=slope)))
    projs = (Projection("in", "post", rule="stdp", lr=1.0, trace_decay=trace_decay,
                        stdp=pl.StdpParams(a_plus=1.0, a_minus=1.05, tau_plus=TAU, tau_minus=TAU, center=center)),
             Projection("drive", "post", w_init_mean=60.0))
    return BrainSpec(pops, projs)


def _pairing(t_pre: int, t_post: int, center: str = "none", slope: float = 0.0) -> float:
    spec = _paired_brain(center, slope=slope)
    state = init_state(spec, 1, seed=0)
    k = 60
    pre, drive = torch.zeros(k, 1, 1), torch.zeros(k, 1, 1)
    pre[t_pre, 0, 0], drive[t_post, 0, 0] = 1.0, 1.0
    out, state = S.window(spec, state, {"in": pre, "drive": drive})
    if slope == 0.0:
        assert out.spikes["post"][:, 0, 0].nonzero().flatten().tolist() == [t_post]
    state = S.learn(spec, S.fold(spec, state, out.events), torch.ones(1))  # dopamine after the pairing
    return float(state.w["in->post"][0, 0, 0])


@pytest.mark.parametrize("gap", [1, 5, 15])
def test_pre_before_post_then_dopamine_strengthens_and_post_before_pre_weakens(gap):
    assert _pairing(20, 20 + gap) == pytest.approx(math.exp(-gap / TAU), rel=1e-5)
    assert _pairing(20 + gap, 20) == pytest.approx(-1.05 * math.exp(-gap / TAU), rel=1e-5)


def test_centred_window_is_the_window_applied_to_spikes_minus_their_probability():
    """Noisy LIF, drive that makes the post neuron fire at 25 ms with probability ~0.3: the centred change is
    the pair window summed over (pre spike, s - rho) pairs, and an unexpected spike after the pre spike
    potentiates while the expected silence elsewhere depresses a little."""
    spec = _paired_brain("expected", slope=4.0)
    spec = BrainSpec(spec.populations, (spec.projections[0], Projection("drive", "post", w_init_mean=16.0)))
    k, t_pre, t_post = 60, 20, 25
    for seed in range(50):  # the first agent whose noise makes the driven spike happen
        state = init_state(spec, 1, seed=seed)
        pre, drive = torch.zeros(k, 1, 1), torch.zeros(k, 1, 1)
        pre[t_pre, 0, 0], drive[t_post, 0, 0] = 1.0, 1.0
        out, state = S.window(spec, state, {"in": pre, "drive": drive})
        s, rho = out.spikes["post"][:, 0, 0], out.prob["post"][:, 0, 0]
        if s[t_post] == 1 and s.sum() == 1:
            break
    assert 0.2 < rho[t_post] < 0.5
    u = s - rho
    expected = 0.0
    for t in range(k):  # the pair window between the pre spike and every substep's post signal
        gap = t - t_pre
        if gap > 0:
            expected += math.exp(-gap / TAU) * float(u[t])
        elif gap < 0:
            expected -= 1.05 * math.exp(gap / TAU) * float(u[t])
    state = S.learn(spec, S.fold(spec, state, out.events), torch.ones(1))
    change = float(state.w["in->post"][0, 0, 0])
    assert change == pytest.approx(expected, rel=1e-4)
    assert change > 0.5 * math.exp(-5 / TAU)


def _distal_reward(trace_decay: float, windows: int = 600, delay: int = 25) -> torch.Tensor:
    """Izhikevich (2007): one synapse's pre-before-post pairing is followed ``delay`` windows later by dopamine,
    amid random spikes of every input and of the post neuron. Returns the final weights ``[inputs]``."""
    n_in, k = 10, 20
    spec = _paired_brain(trace_decay=trace_decay, n_in=n_in)
    state = init_state(spec, 1, seed=0)
    gen = torch.Generator().manual_seed(1)
    due: dict[int, float] = {}
    for t in range(windows):
        pre = (torch.rand(k, 1, n_in, generator=gen) < 0.01).float()
        drive = (torch.rand(k, 1, 1, generator=gen) < 0.01).float()
        if t % 10 == 0:  # the rewarded pairing: input 0 at 2 ms, the post neuron at 7 ms
            pre[:, 0, 0], drive[:, 0, 0] = 0.0, 0.0
            pre[2, 0, 0], drive[7, 0, 0] = 1.0, 1.0
            due[t + delay] = 1.0
        out, state = S.window(spec, state, {"in": pre, "drive": drive})
        state = S.fold(spec, state, out.events)
        state = S.learn(spec, state, torch.tensor([due.pop(t, 0.0) * 0.01]))
    return state.w["in->post"][0, :, 0]


def test_distal_reward_is_credited_through_the_eligibility_trace():
    """A second-scale eligibility bridges the 500 ms delay; a 10 ms one cannot."""
    w = _distal_reward(trace_decay=math.exp(-1 / 1000))
    assert w[0] > 0.1 and w[0] > 3 * w[1:].abs().max()
    w_short = _distal_reward(trace_decay=math.exp(-1 / 10))
    assert abs(w_short[0]) < 0.02 * w[0] and w_short.abs().max() < 0.05 * w[0]  # no synapse singled out


def test_centred_eligibility_has_zero_mean_without_reward():
    """Random input through fixed positive weights: plain STDP's eligibility drifts (causal inputs potentiate),
    the window applied to the spikes minus their probability does not (Fremaux et al. 2010). (Here the drift
    is depression: a_minus > a_plus outweighs the causal potentiation.)"""
    def mean_eligibility(center: str) -> float:
        pops = (Population("in", 20, "input"),
                Population("post", 4, "lif", lif=LIFParams(tau_mem=TAU, t_ref=2.0, escape_slope=4.0)))
        projs = (Projection("in", "post", rule="stdp", lr=0.0, trace_decay=1.0, w_init_mean=0.6,
                            stdp=pl.StdpParams(center=center)),)
        spec = BrainSpec(pops, projs)
        state = init_state(spec, 256, seed=0)
        gen = torch.Generator().manual_seed(2)
        for _ in range(40):
            out, state = S.window(spec, state, {"in": (torch.rand(25, 256, 20, generator=gen) < 0.05).float()})
            state = S.fold(spec, state, out.events)
        return float(state.e["in->post"].mean())

    plain, centred = mean_eligibility("none"), mean_eligibility("expected")
    assert abs(plain) > 1.0
    assert abs(centred) < 0.05 * abs(plain), (plain, centred)
