"""Neuron models as pure step functions over a batch of independent agents.

Every state tensor is ``[B, N]``: ``B`` agents, ``N`` neurons. Time is in milliseconds.
Each step function maps ``(input, state, params, dt) -> (spikes, new_state)`` and never mutates
its inputs; the stateful glue lives in :mod:`spikegym.brains.network`.

Two families:

* **LIF / ALIF** -- leaky integrate-and-fire with a refractory period and an optional adaptive
  threshold (intrinsic homeostasis)::

      tau_mem dv/dt = -(v - v_rest) + I          (I in units of voltage, R = 1)
      spike when v >= v_th + theta;  then v <- v_reset, held for t_ref
      tau_theta dtheta/dt = -theta;  theta <- theta + theta_plus on each spike   (ALIF)

  integrated exactly for an input held constant over one step. *Noisy* LIF (``escape_slope > 0``) puts
  escape noise on the membrane instead of the hard threshold: a neuron that is not refractory spikes with
  probability ``sigmoid(escape_slope (v - v_th - theta))`` per step (Gerstner & Kistler 2002, ch. 5.3;
  Pfister et al. 2006) -- the postsynaptic variability a reward-modulated rule can correlate with reward.

* **Escape noise** -- stochastic units, ``spike ~ Bernoulli(sigmoid(slope * (u + bias)))``,
  where ``u`` is the input itself (memoryless) or a leaky membrane driven by it. A feasibility
  prototype found these learn well with three-factor rules (DESIGN.md §3b).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch
from torch import Tensor


class LIFParams(NamedTuple):
    """LIF / ALIF constants (floats, or tensors broadcastable to ``[B, N]``).

    ``theta_plus = 0`` gives plain LIF; ``theta_plus > 0`` an adaptive threshold (ALIF).
    """

    tau_mem: float = 20.0
    v_th: float = 1.0
    v_reset: float = 0.0
    v_rest: float = 0.0
    t_ref: float = 2.0
    tau_theta: float = 200.0
    theta_plus: float = 0.0
    escape_slope: float = 0.0  # > 0: noisy LIF, spike with probability sigmoid(escape_slope (v - threshold))


class LIFState(NamedTuple):
    """``v``: membrane ``[B, N]``; ``refractory``: ms left ``[B, N]``; ``theta``: threshold offset ``[B, N]``."""

    v: Tensor
    refractory: Tensor
    theta: Tensor


def lif_init(batch: int, n: int, params: LIFParams, *, device=None, dtype=torch.float32) -> LIFState:
    """Resting state ``[B, N]`` for every agent."""
    v = torch.full((batch, n), float(params.v_rest), device=device, dtype=dtype)
    zeros = torch.zeros(batch, n, device=device, dtype=dtype)
    return LIFState(v, zeros, zeros.clone())


def lif_step(current: Tensor, state: LIFState, params: LIFParams, dt: float,
             uniform: Optional[Tensor] = None) -> tuple[Tensor, LIFState]:
    """Advance LIF/ALIF neurons by ``dt`` ms: :func:`lif_step_prob` without the firing probability."""
    spikes, _, new = lif_step_prob(current, state, params, dt, uniform)
    return spikes, new


def lif_step_prob(current: Tensor, state: LIFState, params: LIFParams, dt: float,
                  uniform: Optional[Tensor] = None) -> tuple[Tensor, Tensor, LIFState]:
    """Advance LIF/ALIF neurons by ``dt`` ms.

    Args:
        current: input ``[B, N]`` held constant over the step (voltage units).
        state: :class:`LIFState` with tensors ``[B, N]``.
        uniform: noise in ``[0, 1)`` ``[B, N]``; needed when ``params.escape_slope > 0`` (noisy LIF).
    Returns:
        ``(spikes [B, N] float 0/1, prob [B, N], new_state)``: ``prob`` is the expected spike given the
        membrane (the spikes themselves for the deterministic threshold; 0 while refractory).

    >>> p = LIFParams(tau_mem=10.0, v_th=1.0, t_ref=0.0)
    >>> s = lif_init(1, 1, p)
    >>> spikes, prob, s = lif_step_prob(torch.tensor([[2.0]]), s, p, dt=1.0)
    >>> round(float(s.v), 4)   # 2 * (1 - exp(-1/10))
    0.1903
    """
    alpha = math.exp(-dt / params.tau_mem)
    v_inf = params.v_rest + current
    v = v_inf + (state.v - v_inf) * alpha
    active = state.refractory <= 0
    v = torch.where(active, v, torch.full_like(v, params.v_reset))
    if params.escape_slope > 0:
        if uniform is None:
            raise ValueError("noisy LIF (escape_slope > 0) needs uniform noise")
        prob = torch.sigmoid(params.escape_slope * (v - params.v_th - state.theta)) * active
        spikes = (uniform < prob).to(current.dtype)
    else:
        spikes = (active & (v >= params.v_th + state.theta)).to(current.dtype)
        prob = spikes
    v = torch.where(spikes > 0, torch.full_like(v, params.v_reset), v)
    # A neuron that spikes now stays silent for the next t_ref ms.
    refractory = torch.where(spikes > 0, torch.full_like(v, params.t_ref), (state.refractory - dt).clamp_min(0.0))
    theta = state.theta
    if params.theta_plus:
        theta = theta * math.exp(-dt / params.tau_theta) + params.theta_plus * spikes
    return spikes, prob, LIFState(v, refractory, theta)


def lif_rate(current: float, params: LIFParams, dt: float) -> float:
    """Analytic firing rate (Hz) of a LIF neuron under a constant ``current``, on the ``dt`` grid.

    The membrane rises from ``v_reset`` as ``v_n = I + (v_reset - I) * alpha**n`` and spikes on the
    first step where ``v_n >= v_th``; then ``t_ref`` ms of silence. In the limit ``dt -> 0`` this is
    the textbook ``1 / (t_ref + tau ln((I - v_reset) / (I - v_th)))`` with ``v_rest = 0``.
    """
    v_inf = params.v_rest + current
    if v_inf < params.v_th:
        return 0.0
    alpha = math.exp(-dt / params.tau_mem)
    # smallest n >= 1 with v_inf + (v_reset - v_inf) alpha^n >= v_th
    ratio = (v_inf - params.v_th) / (v_inf - params.v_reset)
    n_rise = 1 if ratio <= 0 else max(1, math.ceil(math.log(ratio) / math.log(alpha) - 1e-9))
    n_ref = round(params.t_ref / dt)
    return 1000.0 / ((n_rise + n_ref) * dt)


class EscapeParams(NamedTuple):
    """Escape-noise constants: ``p = sigmoid(slope * (u + bias))``.

    ``tau_mem = 0`` makes the unit memoryless (``u`` = this step's input); otherwise ``u`` is a
    leaky membrane reset to 0 after a spike.
    """

    slope: float = 1.0
    bias: float = 0.0
    tau_mem: float = 0.0


class EscapeState(NamedTuple):
    """``u``: membrane ``[B, N]`` (unused when memoryless)."""

    u: Tensor


def escape_init(batch: int, n: int, *, device=None, dtype=torch.float32) -> EscapeState:
    return EscapeState(torch.zeros(batch, n, device=device, dtype=dtype))


def escape_step(
    current: Tensor, state: EscapeState, params: EscapeParams, dt: float, uniform: Tensor
) -> tuple[Tensor, Tensor, EscapeState]:
    """Stochastic escape-noise step.

    Args:
        current: input ``[..., B, N]`` (a leading time axis is allowed when memoryless).
        uniform: noise in ``[0, 1)`` of the same shape (drawn by the caller from its seeded generator).
    Returns:
        ``(spikes, prob, new_state)``; spikes and prob have the shape of ``current``.
    """
    if params.tau_mem > 0:
        alpha = math.exp(-dt / params.tau_mem)
        u = state.u * alpha + current * (1 - alpha)
    else:
        u = current
    prob = torch.sigmoid(params.slope * (u + params.bias))
    spikes = (uniform < prob).to(current.dtype)
    if params.tau_mem > 0:
        u = u * (1 - spikes)
        return spikes, prob, EscapeState(u)
    return spikes, prob, state
