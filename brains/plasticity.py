"""Local plasticity rules as keyword-only pure functions.

Nothing here reads a gradient: every change is computed from quantities local to a synapse (pre and
post activity, traces) and a broadcast neuromodulator per agent. Shapes: ``B`` agents, ``P``
presynaptic and ``Q`` postsynaptic neurons; weights and eligibility are ``[B, P, Q]``.

**Factored events.** Every rule here produces its per-step synaptic event as a sum of outer products,
``E_t = X_t @ Y_t`` with ``X_t [B, P, r]`` and ``Y_t [B, r, Q]`` (``r`` is 1 to 3). This lets a whole
window of steps be applied to the eligibility trace with one batched matrix product
(:func:`spikegym.brains.step.fold`), and the numba kernel add only the rows of inputs that spiked.

Rules:

* pair STDP with nearest-neighbour-free exponential traces: pre-before-post by ``dt`` potentiates by
  ``a_plus exp(-dt/tau_plus)``, post-before-pre depresses by ``a_minus exp(-dt/tau_minus)``;
  heterosynaptic LTD depresses synapses of a firing post neuron whose pre was silent. *Centred* STDP
  (``center``) applies the same window to the postsynaptic spike train minus its expectation, ``s - rho``
  (``rho``: a noisy neuron's firing probability, or its running rate), so the eligibility has zero mean when
  reward does not depend on the spikes: Fremaux, Sprekeler & Gerstner (2010) show R-STDP otherwise learns the
  unsupervised STDP drift along with the reward signal;
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
    center: str = "none"  # the post signal: spikes ("none"), spikes - firing probability ("expected"), - rate ("rate")


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
        if w_min is None or w_max is None:
            raise ValueError("soft_bound needs both w_min and w_max")
        dw = dw * soft_bound_factor(w, dw, w_min, w_max)
    return bound_weights(w + dw, w_min, w_max, mask)


# --------------------------------------------------------------------------- homeostasis


class HomeostasisParams(NamedTuple):
    """Target rate as a probability per step; ``eta`` per step; ``tau_rate`` of the rate estimate (ms)."""

    target_rate: float = 0.05
    eta: float = 0.01
    tau_rate: float = 1000.0
    threshold: bool = True
    scaling: bool = False


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
