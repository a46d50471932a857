"""Synaptic transmission: dense and event-driven propagation, and short-term plasticity.

Weights are per agent, ``w [B, N_pre, N_post]``; they are never summed over agents.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor


def propagate(pre: Tensor, w: Tensor) -> Tensor:
    """Dense synaptic current ``[B, N_post]`` (or ``[B, T, N_post]``).

    Args:
        pre: presynaptic spikes or efficacies ``[B, N_pre]`` or ``[B, T, N_pre]``.
        w: weights ``[B, N_pre, N_post]``.
    """
    if pre.dim() == 2:
        return torch.bmm(pre.unsqueeze(1), w).squeeze(1)
    return torch.bmm(pre, w)


def propagate_events(pre: Tensor, w: Tensor) -> Tensor:
    """Event-driven current: only the rows of presynaptic neurons that spiked are read.

    Same result as :func:`propagate` for 0/1 spikes (or any ``pre``; values act as row gains), at a cost
    that grows with the number of spikes instead of with ``N_pre``.

    Args:
        pre: ``[B, N_pre]`` or ``[B, T, N_pre]``.
        w: ``[B, N_pre, N_post]``.
    Returns:
        ``[B, N_post]`` or ``[B, T, N_post]``.
    """
    squeeze = pre.dim() == 2
    if squeeze:
        pre = pre.unsqueeze(1)
    b, t, n_pre = pre.shape
    n_post = w.shape[-1]
    idx = pre.nonzero(as_tuple=True)  # (agent, time, neuron) of every spike
    rows = w.reshape(b * n_pre, n_post).index_select(0, idx[0] * n_pre + idx[2])
    rows = rows * pre[idx].unsqueeze(1)
    out = torch.zeros(b * t, n_post, device=w.device, dtype=w.dtype)
    out.index_add_(0, idx[0] * t + idx[1], rows)
    out = out.view(b, t, n_post)
    return out.squeeze(1) if squeeze else out


class TMParams(NamedTuple):
    """Tsodyks-Markram short-term plasticity.

    ``U``: baseline release probability; ``tau_f``: facilitation decay (ms); ``tau_d``: vesicle
    recovery (ms). Large ``tau_f``, small ``U`` -> facilitating; small ``tau_f``, large ``U`` -> depressing.
    """

    U: float = 0.2
    tau_f: float = 200.0
    tau_d: float = 500.0


class TMState(NamedTuple):
    """``u``: utilisation ``[B, N_pre]``; ``x``: available resources ``[B, N_pre]``."""

    u: Tensor
    x: Tensor


def tm_init(batch: int, n: int, params: TMParams, *, device=None, dtype=torch.float32) -> TMState:
    return TMState(torch.full((batch, n), params.U, device=device, dtype=dtype),
                   torch.ones(batch, n, device=device, dtype=dtype))


def tm_step(pre: Tensor, state: TMState, params: TMParams, dt: float) -> tuple[Tensor, TMState]:
    """One step of Tsodyks-Markram dynamics (the discrete-spike recurrence).

    Between spikes ``u`` relaxes to ``U`` with ``tau_f`` and ``x`` recovers to 1 with ``tau_d``
    (exact exponentials). On a spike, facilitation first ``u <- u + U (1 - u)``, then the released
    fraction ``r = u x`` is the synapse's efficacy and ``x <- x - r``.

    Args:
        pre: presynaptic spikes ``[B, N_pre]`` (0/1).
    Returns:
        ``(efficacy [B, N_pre], new_state)``; efficacy is ``r`` where a spike occurred and 0 elsewhere.
    """
    u = params.U + (state.u - params.U) * math.exp(-dt / params.tau_f)
    x = 1.0 + (state.x - 1.0) * math.exp(-dt / params.tau_d)
    u = torch.where(pre > 0, u + params.U * (1 - u), u)
    release = u * x * pre
    return release, TMState(u, x - release)
