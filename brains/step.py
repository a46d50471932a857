"""The reference step of ``B`` brains: pure functions ``(spec, state, ...) -> (..., new state)``.

One decision of an agent is a *window* of ``K`` substeps of ``dt`` ms, then the third factor::

    out, state = window(spec, state, inputs)        # neurons; this window's plasticity events, returned
    state = learn(spec, state, dopamine)            # W += lr * dopamine * e   (e: up to the last window)
    state = fold(spec, state, out.events)           # e <- d^K e + sum_k d^(K-1-k) E_k
    state = homeostasis(spec, state, K); state = structural(spec, state)     # slow processes

(The engine before issue 15 ran homeostasis and structural plasticity before the third factor; now they see
this decision's learning. Scaling is bounded like learning, so weights never leave their bounds.)

Within a window, substep ``t`` of every non-input population sums the input currents of that substep and the
currents of the other populations' spikes of substep ``t - 1`` (a one-substep synaptic delay), then steps
its neurons. Events of plastic projections are factored, ``E_k = X_k @ Y_k`` (see :mod:`plasticity`), so the
window's events fold into the eligibility with one batched product. Noise is the counter hash of each
agent's key (:mod:`random`): an agent alone equals the same agent in a batch, on any device.
Nothing here mutates its inputs, and nothing builds an autograd graph (callers run under ``no_grad``).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch
from torch import Tensor

from . import plasticity as pl
from .consolidation import consolidate, consolidated
from .neurons import EscapeState, LIFState, escape_step, lif_step_prob
from .random import uniform
from .spec import STRUCTURAL_STREAM, BrainSpec, Projection
from .state import BrainState
from .synapses import TMState, tm_step


class Events(NamedTuple):
    """A window's plasticity events of one projection: ``sum_k d^(K-1-k) E_k = x @ y``."""

    x: Tensor       # [B, P, R] presynaptic factors (R = K r)
    y: Tensor       # [B, R, Q] postsynaptic factors, each scaled by the eligibility decay still ahead
    decay: float    # d^K: the eligibility's own decay over the window


class Window(NamedTuple):
    """What a window produced: spikes and escape firing probabilities ``[K, B, N]`` per population."""

    spikes: dict[str, Tensor]
    prob: dict[str, Tensor]
    events: dict[str, Events]


def rate_weight(spec: BrainSpec, name: str, k_steps: int) -> float:
    """Weight of a window in a running rate: ``rate <- lerp(rate, mean spikes, 1 - exp(-K dt / tau))``."""
    hp = spec.pops[name].homeostasis
    return 1.0 - math.exp(-spec.dt * k_steps / (hp.tau_rate if hp else 1000.0))


def window(spec: BrainSpec, state: BrainState, inputs: dict[str, Tensor]) -> tuple[Window, BrainState]:
    """Advance every brain ``K`` substeps.

    Args:
        inputs: spikes ``[K, B, N]`` (float 0/1) of every input population.
    Returns:
        ``(Window, new state)``: the counter moved ``K`` on, fast state and running rates updated; weights
        and eligibility untouched (the events are returned, for :func:`fold`).
    """
    for name in spec.inputs:
        if name not in inputs:
            raise ValueError(f"missing input population {name!r}")
    k_steps = next(iter(inputs.values())).shape[0]
    counter = int(state.counter)
    stp_u, stp_x = dict(state.stp_u), dict(state.stp_x)

    # --- presynaptic side of input projections, for the whole window at once
    efficacy, drive = {}, {}  # [K, B, P]; [B, K, Q] input currents
    for proj in spec.projections:
        if proj.pre not in inputs:
            continue
        s = inputs[proj.pre]
        if proj.stp is not None:  # Tsodyks-Markram: the release of each spike, substep by substep
            tm, rel = TMState(stp_u[proj.name], stp_x[proj.name]), []
            for t in range(k_steps):
                r, tm = tm_step(s[t], tm, proj.stp, spec.dt)
                rel.append(r)
            stp_u[proj.name], stp_x[proj.name] = tm
            s = torch.stack(rel)
        efficacy[proj.name] = s
        c = torch.bmm(s.transpose(0, 1), state.w[proj.name])
        drive[proj.name] = c if proj.sign == 1 else c * proj.sign

    # --- neurons. A memoryless escape population fed by input populations only has independent substeps:
    # all K at once. The others substep by substep, reading the other populations' spikes of substep t - 1.
    noise = {name: uniform(state.keys, counter, (k_steps, state.keys.shape[0], spec.pops[name].size),
                           stream=spec.stream[name]) for name in spec.order if spec.pops[name].noisy}
    spikes, prob = {}, {}
    at_once = [n for n in spec.order if spec.pops[n].memoryless and all(p.name in drive for p in spec.incoming(n))]
    for name in at_once:
        z = state.excite[name].unsqueeze(1)
        for proj in spec.incoming(name):
            z = z + drive[proj.name]
        s, p, _ = escape_step(z.transpose(0, 1), EscapeState(z), spec.pops[name].escape, spec.dt, noise[name])
        spikes[name], prob[name] = s, p
    v, ref, theta, u, last = (dict(getattr(state, f)) for f in ("v", "refractory", "theta", "u", "last"))
    stepped = [n for n in spec.order if n not in at_once]
    steps: dict[str, list[Tensor]] = {name: [] for name in stepped}
    probs: dict[str, list[Tensor]] = {name: [] for name in stepped}
    for t in range(k_steps if stepped else 0):
        now = {}
        for name in stepped:
            pop = spec.pops[name]
            z = state.excite[name]
            for proj in spec.incoming(name):
                if proj.name in drive:
                    z = z + drive[proj.name][:, t]
                else:  # from another population: its spikes of the previous substep
                    z = z + proj.sign * torch.bmm(last[proj.pre].unsqueeze(1), state.w[proj.name]).squeeze(1)
            if pop.model == "escape":
                s, p, esc = escape_step(z, EscapeState(u.get(name, z)), pop.escape, spec.dt, noise[name][t])
                if not pop.memoryless:
                    u[name] = esc.u
                probs[name].append(p)
            else:
                params = pop.lif if pop.model == "alif" else pop.lif._replace(theta_plus=0.0)
                s, p, st = lif_step_prob(z, LIFState(v[name], ref[name], theta[name]), params, spec.dt,
                                         noise[name][t] if pop.noisy else None)
                v[name], ref[name], theta[name] = st
                probs[name].append(p)
            now[name] = s
            steps[name].append(s)
        last = {**now, **{name: spikes[name][t] for name in at_once}}
    spikes.update({name: torch.stack(s) for name, s in steps.items()})
    prob.update({name: torch.stack(p) for name, p in probs.items()})
    last = {name: spikes[name][-1] for name in spec.order}

    # --- the window's plasticity events, factored
    xpre, xpost = dict(state.xpre), dict(state.xpost)
    events = {}
    for name in spec.plastic:
        proj = spec.projs[name]
        ev, traces = _events(spec, proj, inputs[proj.pre], efficacy[name], spikes[proj.post], prob.get(proj.post),
                             state.rate[proj.post], state.xpre.get(name), state.xpost.get(name))
        events[name] = ev
        if traces is not None:
            xpre[name], xpost[name] = traces

    # --- running rates
    rate = {}
    for name, r in state.rate.items():
        s = inputs[name] if name in inputs else spikes[name]
        rate[name] = torch.lerp(r, s.float().mean(0), rate_weight(spec, name, k_steps))
    new = state._replace(v=v, refractory=ref, theta=theta, u=u, last=last, xpre=xpre, xpost=xpost, stp_u=stp_u,
                         stp_x=stp_x, rate=rate, counter=state.counter + k_steps, windows=state.windows + 1)
    return Window(spikes, prob, events), new


def _events(spec: BrainSpec, proj: Projection, pre_spikes: Tensor, pre_eff: Tensor, post: Tensor,
            post_prob: Optional[Tensor], post_rate: Tensor, xpre: Optional[Tensor], xpost: Optional[Tensor]):
    """Factored events of one plastic projection over a window (``[K, B, .]`` inputs), and new STDP traces.

    Node perturbation ``E = pre (s - p)``; critic ``E = c pre p (1 - p)`` (both with ``pre`` the efficacy);
    pair STDP ``E = a+ x_pre u_post - a- s_pre x_post - h (1 - min(x_pre, 1)) u_post`` with traces read
    before this substep's spikes (:func:`plasticity.stdp_factors`), where the post signal ``u`` is the spikes,
    or, centred, the spikes minus their probability (``post_prob``) or minus the running rate at the window's
    start (``post_rate [B, Q]``); ``x_post`` is the trace of ``u``.
    """
    k_steps = post.shape[0]
    d = proj.trace_decay
    ahead = torch.tensor([d ** (k_steps - 1 - k) for k in range(k_steps)], device=post.device,
                         dtype=post.dtype).view(k_steps, 1, 1, 1)  # [K, 1, 1, 1]
    traces = None
    if proj.rule == "stdp":
        assert xpre is not None and xpost is not None  # init_state gives every stdp projection its traces
        if proj.stdp.center == "expected":
            assert post_prob is not None  # BrainSpec allows it onto noisy populations only
            post = post - post_prob
        elif proj.stdp.center == "rate":
            post = post - post_rate
        after_pre, after_post = xpre.clone(), xpost.clone()  # trace_window moves these to the window's end
        before_pre = pl.trace_window(after_pre, pre_spikes, pl.trace_decay(proj.stdp.tau_plus, spec.dt))
        before_post = pl.trace_window(after_post, post, pl.trace_decay(proj.stdp.tau_minus, spec.dt))
        x = pl.stdp_pre_factors(pre_spikes=pre_spikes, pre_trace=before_pre, params=proj.stdp)  # [K, B, P, r]
        y = pl.stdp_post_factors(post_spikes=post, post_trace=before_post, params=proj.stdp)  # [K, B, r, Q]
        traces = (after_pre, after_post)
    elif proj.rule == "node_perturbation":
        assert post_prob is not None  # BrainSpec puts this rule and critic onto escape populations only
        x, y = pl.node_perturbation_factors(pre=pre_eff, post_spikes=post, post_prob=post_prob)
    else:
        assert post_prob is not None
        x, y = pl.critic_factors(pre=pre_eff, post_prob=post_prob, scale=proj.critic_scale)
    b, p, r, q = x.shape[1], x.shape[2], x.shape[3], y.shape[-1]
    x = x.permute(1, 2, 0, 3).reshape(b, p, k_steps * r)        # column k r + j
    y = (y * ahead).permute(1, 0, 2, 3).reshape(b, k_steps * r, q)
    return Events(x, y, d ** k_steps), traces


def fold(spec: BrainSpec, state: BrainState, events: dict[str, Events]) -> BrainState:
    """``e <- d^K e + x @ y`` for every plastic projection (with a mask, absent synapses stay at 0)."""
    e = dict(state.e)
    for name, ev in events.items():
        new = torch.baddbmm(state.e[name], ev.x, ev.y, beta=ev.decay)
        e[name] = new * state.mask[name] if name in state.mask else new
    return state._replace(e=e)


def learn(spec: BrainSpec, state: BrainState, dopamine: Tensor) -> BrainState:
    """The third factor: ``W <- bound(W + lr * dopamine * e)`` for every plastic projection; with consolidation,
    ``e / (1 + c)`` there, and ``c`` captures ``max(dopamine, 0) |e|`` (:mod:`.consolidation`).

    Args:
        dopamine: ``[B]``, one signal per agent (already times any plasticity gain).
    """
    w, cons = dict(state.w), dict(state.consolidation)
    for name in spec.plastic:
        proj = spec.projs[name]
        e = state.e[name]
        if proj.consolidation is not None:  # metaplasticity: what proved useful learns at lr / (1 + c)
            e = consolidated(e, state.consolidation[name])
            cons[name] = consolidate(c=state.consolidation[name], e=state.e[name], dopamine=dopamine,
                                     params=proj.consolidation)
        w[name] = pl.three_factor_update(w=state.w[name], e=e, dopamine=dopamine, lr=proj.lr,
                                         w_min=proj.w_min, w_max=proj.w_max, soft_bound=proj.soft_bound,
                                         mask=state.mask.get(name))
    return state._replace(w=w, consolidation=cons)


def homeostasis(spec: BrainSpec, state: BrainState, k_steps: int) -> BrainState:
    """Per window: threshold homeostasis (excitability) and synaptic scaling of the populations that have it."""
    excite, w = dict(state.excite), dict(state.w)
    for name in spec.order:
        hp = spec.pops[name].homeostasis
        if hp is None:
            continue
        rate = state.rate[name]
        if hp.threshold:
            excite[name] = pl.threshold_homeostasis(excitability=state.excite[name], rate=rate,
                                                    params=hp._replace(eta=hp.eta * k_steps))
        if hp.scaling:  # (then bounded again: scaling never takes a weight past its projection's bounds)
            for proj in spec.incoming(name):
                scaled = pl.synaptic_scaling(w=w[proj.name], post_rate=rate, params=hp)
                w[proj.name] = pl.bound_weights(scaled, proj.w_min, proj.w_max, None)
    return state._replace(excite=excite, w=w)


def structural(spec: BrainSpec, state: BrainState) -> BrainState:
    """Every ``structural_every`` windows: prune what stayed weak, grow where activity is (per agent)."""
    windows = int(state.windows)
    w, mask, age, e = dict(state.w), dict(state.mask), dict(state.age), dict(state.e)
    for proj in spec.projections:
        sp = proj.structural
        if sp is None or windows % proj.structural_every:
            continue
        b, p, q = state.w[proj.name].shape
        noise = uniform(state.keys, windows, (b, p * q), stream=STRUCTURAL_STREAM).view(b, p, q)
        w2, m2, a2 = pl.structural_step(w=state.w[proj.name], mask=state.mask[proj.name],
                                        weak_age=state.age[proj.name].long(), pre_rate=state.rate[proj.pre],
                                        post_rate=state.rate[proj.post], uniform=noise, params=sp)
        w[proj.name], mask[proj.name], age[proj.name] = w2, m2, a2.to(torch.int16)
        if proj.name in e:
            e[proj.name] = e[proj.name] * m2
    return state._replace(w=w, mask=mask, age=age, e=e)


def shrink(spec: BrainSpec, state: BrainState, post: str, factor: Tensor) -> BrainState:
    """Every weight onto population ``post`` times ``factor [B]`` (shrink-and-perturb, Ash & Adams 2020)."""
    w = dict(state.w)
    for proj in spec.incoming(post):
        w[proj.name] = state.w[proj.name] * factor.view(-1, 1, 1)
    return state._replace(w=w)
