"""Local plasticity rules as keyword-only pure functions.

Nothing here reads a gradient: every change is computed from quantities local to a synapse (pre and
post activity, traces) and a broadcast neuromodulator per agent. Shapes: ``B`` agents, ``P``
presynaptic and ``Q`` postsynaptic neurons; weights and eligibility are ``[B, P, Q]``.

**Factored events.** Every rule here produces its per-step synaptic event as a sum of outer products,
``E_t = X_t @ Y_t`` with ``X_t [B, P, r]`` and ``Y_t [B, r, Q]`` (``r`` is 1 to 3). This lets a whole
window of steps be applied to the eligibility trace with one batched matrix product (see
:func:`fold_window`): the "lazy neuron" path whose cost grows with activity, not with the number of
synapses on every step.

Rules:

* pair STDP with nearest-neighbour-free exponential traces: pre-before-post by ``dt`` potentiates by
  ``a_plus exp(-dt/tau_plus)``, post-before-pre depresses by ``a_minus exp(-dt/tau_minus)``;
  heterosynaptic LTD depresses synapses of a firing post neuron whose pre was silent;
* node perturbation for escape-noise units: ``pre * (spike - p)`` (an unbiased local policy-gradient
  estimator; DESIGN.md §3b found it essential);
* critic sensitivity for rate-coded value neurons: ``pre * p (1 - p)``;
* three-factor application: ``e <- decay e + E``, ``dW = lr * dopamine * e`` (Izhikevich 2007,
  Florian 2007);
* homeostasis (threshold adaptation, synaptic scaling) and structural plasticity (prune, grow).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch
from torch import Tensor


# --------------------------------------------------------------------------- traces and STDP


class StdpParams(NamedTuple):
    a_plus: float = 1.0
    a_minus: float = 1.05
    tau_plus: float = 20.0
    tau_minus: float = 20.0
    hetero_ltd: float = 0.0


def trace_decay(tau: float, dt: float) -> float:
    return math.exp(-dt / tau)


def trace_step(trace: Tensor, spikes: Tensor, decay: float) -> tuple[Tensor, Tensor]:
    """Exponential trace ``[B, N]``.

    Returns ``(before, after)``: ``before = decay * trace`` is the trace a spike of *this* step sees
    (so simultaneous pre and post spikes cause no change); ``after = before + spikes``.
    """
    before = trace * decay
    return before, before + spikes


def stdp_factors(
    *, pre_spikes: Tensor, post_spikes: Tensor, pre_trace: Tensor, post_trace: Tensor, params: StdpParams
) -> tuple[Tensor, Tensor]:
    """Pair-STDP event of one step in factored form ``E = X @ Y``.

    Args:
        pre_spikes: ``[B, P]``; post_spikes: ``[B, Q]``.
        pre_trace, post_trace: traces *before* this step's spikes (``trace_step(...)[0]``).
    Returns:
        ``X [B, P, r]``, ``Y [B, r, Q]`` with ``r = 2`` (3 with heterosynaptic LTD)::

            E_ij = a_plus x_pre_i s_post_j - a_minus s_pre_i x_post_j - hetero (1 - min(x_pre_i, 1)) s_post_j

    ``X`` depends only on presynaptic and ``Y`` only on postsynaptic quantities: see
    :func:`stdp_pre_factors` and :func:`stdp_post_factors`, which also take leading time axes.
    """
    return (stdp_pre_factors(pre_spikes=pre_spikes, pre_trace=pre_trace, params=params),
            stdp_post_factors(post_spikes=post_spikes, post_trace=post_trace, params=params))


def stdp_pre_factors(*, pre_spikes: Tensor, pre_trace: Tensor, params: StdpParams) -> Tensor:
    """The presynaptic factor ``X [..., r]`` of :func:`stdp_factors` for inputs of any shape ``[...]``.

    Elementwise per neuron, so the inputs may carry time axes in any order (the engine passes a
    window as ``[B, P, K]`` to get ``X [B, P, K, r]`` directly). Written column by column into one
    buffer (``torch.stack`` on the last axis is several times slower on CPU).
    """
    r = 3 if params.hetero_ltd else 2
    x = torch.empty(*pre_trace.shape, r, device=pre_trace.device, dtype=pre_trace.dtype)
    torch.mul(pre_trace, params.a_plus, out=x[..., 0])
    torch.mul(pre_spikes, -params.a_minus, out=x[..., 1])
    if params.hetero_ltd:
        torch.mul(1.0 - pre_trace.clamp(max=1.0), -params.hetero_ltd, out=x[..., 2])
    return x


def stdp_post_factors(*, post_spikes: Tensor, post_trace: Tensor, params: StdpParams) -> Tensor:
    """The postsynaptic factor ``Y [..., r, Q]`` of :func:`stdp_factors` (inputs ``[..., Q]``)."""
    ys = [post_spikes, post_trace]
    if params.hetero_ltd:
        ys.append(post_spikes)
    return torch.stack(ys, dim=-2)


def trace_window(trace: Tensor, spikes: Tensor, decay: float) -> Tensor:
    """:func:`trace_step` over a window ``spikes [K, ..., N]``: returns every ``before`` ``[K, ..., N]``.

    Updates ``trace`` in place to the last ``after`` (this is the stateful helper of the engine; the
    numbers are bit-identical to ``K`` calls of :func:`trace_step`).
    """
    before = torch.empty_like(spikes)
    for t in range(spikes.shape[0]):
        torch.mul(trace, decay, out=before[t])
        torch.add(before[t], spikes[t], out=trace)
    return before


def stdp_window_curve(delta_t: Tensor, params: StdpParams) -> Tensor:
    """The analytic STDP window: change for one pair with ``delta_t = t_post - t_pre`` (ms)."""
    return torch.where(
        delta_t > 0,
        params.a_plus * torch.exp(-delta_t / params.tau_plus),
        torch.where(delta_t < 0, -params.a_minus * torch.exp(delta_t / params.tau_minus), torch.zeros_like(delta_t)),
    )


def soft_bound_factor(w: Tensor, dw: Tensor, w_min: float, w_max: float) -> Tensor:
    """Multiplicative (soft) bounds: potentiation scales with ``w_max - w``, depression with ``w - w_min``."""
    span = w_max - w_min
    return torch.where(dw > 0, (w_max - w) / span, (w - w_min) / span)


# --------------------------------------------------------------------------- reward-learning events


def node_perturbation_factors(*, pre: Tensor, post_spikes: Tensor, post_prob: Tensor) -> tuple[Tensor, Tensor]:
    """Escape-noise policy event ``E_ij = pre_i (s_j - p_j)``: ``X [B, P, 1]``, ``Y [B, 1, Q]``."""
    return pre.unsqueeze(-1), (post_spikes - post_prob).unsqueeze(-2)


def critic_factors(*, pre: Tensor, post_prob: Tensor, scale: float = 1.0) -> tuple[Tensor, Tensor]:
    """Value-neuron event ``E_ij = scale * pre_i p_j (1 - p_j)``: how much raising ``w_ij`` raises the rate."""
    return pre.unsqueeze(-1), (scale * post_prob * (1 - post_prob)).unsqueeze(-2)


# --------------------------------------------------------------------------- three-factor learning


def eligibility_step(e: Tensor, x: Tensor, y: Tensor, decay: float, *, out: Optional[Tensor] = None) -> Tensor:
    """``e <- decay * e + X @ Y``. ``e [B, P, Q]``, ``X [B, P, r]``, ``Y [B, r, Q]``.

    Pure unless ``out`` is given (the stateful wrapper passes ``out=e`` to update in place).
    """
    return torch.baddbmm(e, x, y, beta=decay, out=out) if out is not None else torch.baddbmm(e, x, y, beta=decay)


def bound_weights(w: Tensor, w_min: Optional[float], w_max: Optional[float], mask: Optional[Tensor]) -> Tensor:
    """Clamp to ``[w_min, w_max]`` and zero absent synapses (in place; returns ``w``)."""
    if w_min is not None or w_max is not None:
        w.clamp_(w_min, w_max)
    if mask is not None:
        w.mul_(mask)
    return w


def three_factor_update(
    *,
    w: Tensor,
    e: Tensor,
    dopamine: Tensor,
    lr: float,
    w_min: Optional[float] = None,
    w_max: Optional[float] = None,
    soft_bound: bool = False,
    mask: Optional[Tensor] = None,
) -> Tensor:
    """New weights ``w + lr * dopamine * e`` (dopamine ``[B]`` per agent), bounded. Does not mutate ``w``."""
    dw = e * (lr * dopamine).view(-1, 1, 1)
    if soft_bound:
        dw = dw * soft_bound_factor(w, dw, w_min, w_max)
    return bound_weights(w + dw, w_min, w_max, mask)


#: Bytes of ``W`` plus ``e`` that one chunk of the fused CPU kernels touches: small enough to stay in the
#: last-level cache between the chunk's elementwise passes, large enough that per-op overhead is negligible.
CHUNK_BYTES = 16 << 20


def synapse_chunks(w: Tensor, chunk_bytes: int = CHUNK_BYTES) -> list[tuple[slice, slice]]:
    """Split ``[B, P, Q]`` into contiguous blocks ``(agents, rows)`` of about ``chunk_bytes / 2`` bytes each.

    Whole agents are grouped while one agent fits; otherwise each agent is cut into row blocks. On
    accelerators (no shared last-level cache to exploit, launch overhead instead) there is one block.
    """
    b, p, q = w.shape
    if w.device.type != "cpu":
        return [(slice(0, b), slice(0, p))]
    per_row = 2 * q * w.element_size()  # W and e
    rows = max(1, chunk_bytes // per_row)
    if rows >= p:
        agents = max(1, rows // p)
        return [(slice(b0, min(b, b0 + agents)), slice(0, p)) for b0 in range(0, b, agents)]
    return [(slice(b0, b0 + 1), slice(p0, min(p, p0 + rows))) for b0 in range(b) for p0 in range(0, p, rows)]


def _add_events_(e: Tensor, x: Tensor, y: Tensor, decay: float) -> None:
    """``e <- decay * e + X @ Y`` in place; for a rank of at most 4 as elementwise outer products (one pass in cache)."""
    r = x.shape[-1]
    if r > 4 or e.device.type != "cpu":
        e.baddbmm_(x, y, beta=decay)
        return
    if decay != 1.0:
        e.mul_(decay)
    for k in range(r):
        e.addcmul_(x[..., k:k + 1], y[:, k:k + 1])


def three_factor_step_(
    *,
    w: Tensor,
    e: Tensor,
    x: Optional[Tensor],
    y: Optional[Tensor],
    decay: float,
    scale: Optional[Tensor],
    w_min: Optional[float] = None,
    w_max: Optional[float] = None,
    soft_bound: bool = False,
    mask: Optional[Tensor] = None,
    pre_next: Optional[Tensor] = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> Optional[Tensor]:
    """One substep of three-factor learning, **in place**, fused over cache-sized chunks.

    The same maths as :func:`eligibility_step` followed by :func:`three_factor_update` and, optionally, the
    next substep's :func:`~spikegym.brains.synapses.propagate`::

        e <- decay * e + X @ Y                       (skipped when x is None)
        W <- bound(W + scale * e)                    (skipped when scale is None)
        return pre_next @ W                          (when pre_next is given)

    Done chunk by chunk (see :func:`synapse_chunks`), so each synapse's ``W`` and ``e`` come from memory
    once per substep: read and write of both, the minimum for this rule.

    Args:
        w, e: ``[B, P, Q]``, updated in place. x: ``[B, P, r]``; y: ``[B, r, Q]``.
        scale: ``[B]`` per-agent ``lr * dopamine``. mask: ``[B, P, Q]`` bool or None.
        pre_next: ``[B, P]`` presynaptic activity of the next substep.
    Returns:
        ``[B, Q]`` current ``pre_next @ W_new`` (unsigned), or None.
    """
    cur = None
    if pre_next is not None:
        cur = torch.zeros(w.shape[0], 1, w.shape[2], device=w.device, dtype=w.dtype)
        pre3 = pre_next.unsqueeze(1)
    s3 = None if scale is None else scale.view(-1, 1, 1)
    for bs, ps in synapse_chunks(w, chunk_bytes):
        wc, ec = w[bs, ps], e[bs, ps]
        if x is not None:
            _add_events_(ec, x[bs, ps], y[bs], decay)
        if s3 is not None:
            if soft_bound:
                dw = ec * s3[bs]
                wc.add_(dw.mul_(soft_bound_factor(wc, dw, w_min, w_max)))
            else:
                wc.addcmul_(ec, s3[bs])
            bound_weights(wc, w_min, w_max, None if mask is None else mask[bs, ps])
        if cur is not None:
            cur[bs].baddbmm_(pre3[bs, :, ps], wc)
    return None if cur is None else cur.squeeze(1)


def fold_window(
    *,
    w: Tensor,
    e: Tensor,
    x: Tensor,
    y: Tensor,
    step_decays: Tensor,
    total_decay: float,
    event_gain: Tensor,
    trace_gain: Tensor,
    lr: float,
    w_min: Optional[float] = None,
    w_max: Optional[float] = None,
    soft_bound: bool = False,
    mask: Optional[Tensor] = None,
    out: Optional[tuple[Tensor, Tensor]] = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> tuple[Tensor, Tensor]:
    """Apply a whole window of ``L`` steps of three-factor learning at once (exact, lazily).

    With events ``E_m = X_m Y_m`` (``m = 0..L-1``), dopamine ``D_m`` after each step and eligibility
    decay ``d`` per step, step-by-step learning gives::

        e_L = d^L e_0 + sum_m d^(L-1-m) E_m
        W_L = W_0 + lr [ c e_0 + sum_m a_m E_m ],   c = sum_j D_j d^(j+1),  a_m = sum_{j>=m} D_j d^(j-m)

    so the window costs two batched products instead of ``L`` passes over ``[B, P, Q]``.

    Args:
        x: ``[B, P, rL]`` stacked factors; y: ``[B, rL, Q]``.
        step_decays: ``d^(L-1-m)`` for each factor column ``[rL]``.
        total_decay: ``d^L``.
        event_gain: ``a`` per factor column ``[B, rL]``; trace_gain: ``c`` per agent ``[B]``.
        out: pure when None; ``out=(w, e)`` updates ``w`` and ``e`` in place (no ``[B, P, Q]`` temporaries,
            one chunked pass per tensor, see :func:`synapse_chunks`).
    Returns:
        ``(w_new, e_new)``; bounds (clamp or soft) are applied once, at the end of the window.
    """
    if out is None:
        w_new, e_new = w.clone(), e.clone()
    else:
        w_new, e_new = out
        if w_new is not w or e_new is not e:
            raise ValueError("fold_window: out must be (w, e) themselves (in place) or None")
    fold_window_(w=w_new, e=e_new, xa=x * event_gain.unsqueeze(1), ya=y, xs=x * step_decays, ys=y,
                 total_decay=total_decay, trace_gain=trace_gain, lr=lr, w_min=w_min, w_max=w_max,
                 soft_bound=soft_bound, mask=mask, chunk_bytes=chunk_bytes)
    return w_new, e_new


def fold_window_(
    *,
    w: Tensor,
    e: Tensor,
    xa: Tensor,
    ya: Tensor,
    xs: Tensor,
    ys: Tensor,
    total_decay: float,
    trace_gain: Tensor,
    lr: float,
    w_min: Optional[float] = None,
    w_max: Optional[float] = None,
    soft_bound: bool = False,
    mask: Optional[Tensor] = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> None:
    """The in-place core of :func:`fold_window`, with the window's products given in any factorisation::

        W <- bound(W + lr (c e + Xa @ Ya)),    e <- total_decay * e + Xs @ Ys      (in this order)

    ``xa [B, P, R]``, ``ya [B, R, Q]`` (``Xa Ya = sum_m a_m E_m``), ``xs``, ``ys`` likewise
    (``Xs Ys = sum_m d^(L-1-m) E_m``); ``trace_gain`` is ``c [B]``. One chunked pass over ``W`` and ``e``
    (see :func:`synapse_chunks`); no ``[B, P, Q]`` temporaries except with soft bounds.
    """
    c3 = trace_gain.view(-1, 1, 1)
    for bs, ps in synapse_chunks(w, chunk_bytes):
        wc, ec = w[bs, ps], e[bs, ps]
        if soft_bound:
            dw = torch.bmm(xa[bs, ps], ya[bs]).addcmul_(ec, c3[bs])
            wc.add_(dw.mul_(soft_bound_factor(wc, dw, w_min, w_max)), alpha=lr)
        else:
            wc.addcmul_(ec, lr * c3[bs]).baddbmm_(xa[bs, ps], ya[bs], alpha=lr)
        bound_weights(wc, w_min, w_max, None if mask is None else mask[bs, ps])
        ec.baddbmm_(xs[bs, ps], ys[bs], beta=total_decay)


def stdp_window_basis(*, pre_spikes: Tensor, pre_trace0: Tensor, decay: float, params: StdpParams) -> tuple[Tensor, Tensor]:
    """A rank ``K + 1`` basis of a window's presynaptic STDP factors (pair STDP without heterosynaptic LTD).

    Over ``K`` substeps the pre trace is a linear combination of its value at the start and of the spikes
    since, ``x_m = d^m x_0 + sum_(t<m) d^(m-t) s_t``, so the stacked factors ``X [B, P, 2K]`` of
    :func:`stdp_pre_factors` (column ``2m``: ``a_plus x_m``, ``2m+1``: ``-a_minus s_m``) equal ``basis @ mix``
    with ``basis = [x_0, s_0, ..., s_(K-1)]``. A window product ``X G Y`` then costs rank ``K + 1`` instead of ``2K``.

    Args:
        pre_spikes: ``[K, B, P]``; pre_trace0: ``[B, P]``, the trace *before* the spikes of substep 0.
    Returns:
        ``basis [B, P, K + 1]``, ``mix [K + 1, 2K]``.
    """
    k, b, p = pre_spikes.shape
    basis = torch.cat([pre_trace0.unsqueeze(-1), pre_spikes.permute(1, 2, 0)], dim=-1)
    steps = torch.arange(k, device=pre_spikes.device)
    lag = (steps.view(1, -1) - steps.view(-1, 1)).to(torch.float64)  # [t, m] = m - t
    pows = torch.tensor(decay, dtype=torch.float64, device=pre_spikes.device) ** lag.clamp_min(0)
    mix = torch.zeros(k + 1, k, 2, dtype=torch.float64, device=pre_spikes.device)
    mix[0, :, 0] = params.a_plus * pows[0]  # a_plus d^m x_0
    mix[1:, :, 0] = torch.where(lag > 0, params.a_plus * pows, torch.zeros_like(pows))  # d^(m-t) s_t, t < m
    mix[1:, :, 1] = -params.a_minus * torch.eye(k, dtype=torch.float64, device=pre_spikes.device)
    return basis, mix.reshape(k + 1, 2 * k).to(pre_spikes.dtype)


# --------------------------------------------------------------------------- homeostasis


class HomeostasisParams(NamedTuple):
    """Target rate as a probability per step; ``eta`` per step; ``tau_rate`` of the rate estimate (ms)."""

    target_rate: float = 0.05
    eta: float = 0.01
    tau_rate: float = 1000.0
    threshold: bool = True
    scaling: bool = False


def rate_step(rate: Tensor, spikes: Tensor, decay: float) -> Tensor:
    """Running estimate ``[B, N]`` of the spike probability per step."""
    return rate * decay + spikes * (1 - decay)


def threshold_homeostasis(*, excitability: Tensor, rate: Tensor, params: HomeostasisParams) -> Tensor:
    """Raise excitability (lower threshold) of quiet neurons, lower it for busy ones.

    ``excitability [B, N]`` is added to a neuron's drive (LIF: subtracted from its threshold).
    """
    return excitability + params.eta * (params.target_rate - rate) / max(params.target_rate, 1e-6)


def synaptic_scaling(*, w: Tensor, post_rate: Tensor, params: HomeostasisParams) -> Tensor:
    """Multiplicative scaling of all inputs of a post neuron toward the target rate. ``w [B, P, Q]``, ``post_rate [B, Q]``."""
    factor = 1 + params.eta * (params.target_rate - post_rate) / max(params.target_rate, 1e-6)
    return w * factor.clamp_min(0.0).unsqueeze(1)


# --------------------------------------------------------------------------- structural plasticity


class StructuralParams(NamedTuple):
    """Prune synapses with ``|w| < prune_below`` for ``prune_after`` consecutive checks; grow up to
    ``grow`` new ones per check where pre and post are active, keeping at most ``max_density * P * Q``."""

    prune_below: float = 0.01
    prune_after: int = 5
    grow: int = 16
    max_density: float = 1.0
    w_init: float = 0.05


def structural_step(
    *,
    w: Tensor,
    mask: Tensor,
    weak_age: Tensor,
    pre_rate: Tensor,
    post_rate: Tensor,
    uniform: Tensor,
    params: StructuralParams,
) -> tuple[Tensor, Tensor, Tensor]:
    """One structural check per agent: prune what stayed weak, grow where activity is.

    Args:
        w: ``[B, P, Q]``; mask: ``[B, P, Q]`` bool (synapse exists); weak_age: ``[B, P, Q]`` int checks weak.
        pre_rate: ``[B, P]``; post_rate: ``[B, Q]``; uniform: noise ``[B, P, Q]`` in ``[0, 1)``.
    Returns:
        ``(w, mask, weak_age)``, new tensors. The synapse count of every agent stays ``<= max_density * P * Q``.
    """
    b, p, q = w.shape
    weak = mask & (w.abs() < params.prune_below)
    weak_age = torch.where(weak, weak_age + 1, torch.zeros_like(weak_age))
    prune = weak_age >= params.prune_after
    mask = mask & ~prune
    weak_age = weak_age * mask
    w = w * mask

    budget = int(params.max_density * p * q)
    free = (budget - mask.flatten(1).sum(1)).clamp_min(0)  # [B]
    n_grow = min(params.grow, p * q)
    if n_grow > 0:
        # Candidates are absent synapses, scored by pre*post activity and jittered by noise.
        activity = pre_rate.unsqueeze(-1) * post_rate.unsqueeze(-2) + 1e-6
        score = torch.where(mask, torch.full_like(w, -1.0), activity * uniform).flatten(1)
        top_score, top_idx = score.topk(n_grow, dim=1)
        rank = torch.arange(n_grow, device=w.device).expand(b, -1)
        take = (rank < free.unsqueeze(1)) & (top_score >= 0)
        grow = torch.zeros(b, p * q, dtype=torch.bool, device=w.device)
        grow.scatter_(1, top_idx, take)
        grow = grow.view(b, p, q)
        mask = mask | grow
        w = torch.where(grow, torch.full_like(w, params.w_init), w)
    return w, mask, weak_age
