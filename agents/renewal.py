"""Renewal of dormant and saturated motor neurons: the local, spiking counterpart of continual backprop's unit
replacement (Dohare et al., Nature 2024).

A motor neuron that never fires (running spike probability below ``low``) or always fires (above ``high``)
has lost its learning signal: node perturbation's eligibility is ``pre x (spike - p)``, and ``spike - p`` is
about 0 when ``p`` is about 0 or 1 (STDP likewise needs spikes). Threshold homeostasis pulls such a neuron
back only as fast as its ``eta`` allows, and not at all against weights that outgrew it. Every ``every``
decisions, each agent re-initialises the incoming synapses of its dormant and saturated motor neurons (the
initial weight distribution, drawn from its own noise stream), clears their eligibility and excitability,
and sets their running rate to the middle of ``[low, high]`` (so that they are judged again only once their
new activity shows). Nothing else changes: the other neurons keep what they learned.

The reference step and the kernel backend both call :func:`renew` (the kernel after its numba step, on the
same state), as they do structural plasticity.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from spikegym.brains.random import normal
from spikegym.brains.spec import BrainSpec
from spikegym.brains.state import BrainState

#: noise stream of the renewed weights
RENEWAL_STREAM = 1_000_033


class RenewalParams(NamedTuple):
    every: int      # decisions between checks
    low: float      # dormant: running spike probability per substep below this
    high: float     # saturated: above this


def renewal_due(params: RenewalParams, windows: int) -> bool:
    """A check happens when the brain's window count is a multiple of ``every`` (and not at 0)."""
    return windows > 0 and windows % params.every == 0


def renew(spec: BrainSpec, state: BrainState, params: RenewalParams, post: str = "motor") -> tuple[BrainState, torch.Tensor]:
    """Re-initialise the plastic input synapses of ``post``'s dormant and saturated neurons (see the module
    docstring). Returns ``(state, renewed [B, N] bool)``; call it where :func:`renewal_due`."""
    rate = state.rate[post]
    renewed = (rate < params.low) | (rate > params.high)           # [B, N]
    if not bool(renewed.any()):
        return state, renewed
    col = renewed.unsqueeze(1)                                     # [B, 1, N]
    w, e = dict(state.w), dict(state.e)
    for proj in spec.incoming(post):
        if not proj.plastic:
            continue
        b, p, q = w[proj.name].shape
        fresh = torch.full_like(w[proj.name], proj.w_init_mean)
        if proj.w_init_std:
            noise = normal(state.keys, int(state.windows), (b, p * q), stream=RENEWAL_STREAM).view(b, p, q)
            fresh = fresh + proj.w_init_std * noise
        if proj.name in state.mask:
            fresh = fresh * state.mask[proj.name]
        if proj.bounded:
            fresh = fresh.clamp(proj.w_min, proj.w_max)
        w[proj.name] = torch.where(col, fresh, w[proj.name])
        e[proj.name] = torch.where(col, 0.0, e[proj.name])
    excite = {**state.excite, post: torch.where(renewed, 0.0, state.excite[post])}
    mid = 0.5 * (params.low + params.high)
    rates = {**state.rate, post: torch.where(renewed, mid, rate)}
    return state._replace(w=w, e=e, excite=excite, rate=rates), renewed
