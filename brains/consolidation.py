"""Consolidation: a slow per-synapse variable that makes synapses which proved useful less plastic.

Synaptic tagging and capture read as a three-factor rule: the eligibility ``e`` is the tag, dopamine
better than expected (``D > 0``) captures it. What is captured accumulates in a slow variable ``c >= 0``
(astrocyte-like: it integrates over tens of thousands of decisions and gates plasticity rather than
carrying the weight), and the synapse learns at ``lr / (1 + c)`` (metaplasticity)::

    W <- W + lr * D * e / (1 + c)                       (c before this decision's capture)
    c <- keep * c + rate * max(D, 0) * |e|              keep = 1 - 1 / tau_steps

A synapse that was eligible whenever things went well keeps what it learned when the dopamine later pulls
the other way; a synapse that never helped stays fully plastic, and protection fades over ``tau_steps``
decisions without new captures (so plasticity is never lost for good).

>>> import torch
>>> p = ConsolidationParams(rate=1.0, keep=0.5)
>>> consolidate(c=torch.zeros(1, 1, 2), e=torch.tensor([[[2.0, -2.0]]]), dopamine=torch.tensor([0.5]), params=p)
tensor([[[1., 1.]]])
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class ConsolidationParams(NamedTuple):
    rate: float   # capture per unit of max(D, 0) |e|
    keep: float   # 1 - 1 / tau_steps: the consolidation kept per decision


def consolidated(e: Tensor, c: Tensor) -> Tensor:
    """The eligibility as the weight sees it, ``e / (1 + c)`` ``[B, P, Q]``."""
    return e / (1.0 + c)


def consolidate(*, c: Tensor, e: Tensor, dopamine: Tensor, params: ConsolidationParams) -> Tensor:
    """``keep * c + rate * max(D, 0) * |e|`` ``[B, P, Q]`` (``dopamine`` ``[B]``); does not mutate ``c``."""
    return c * params.keep + (params.rate * dopamine.clamp_min(0.0)).view(-1, 1, 1) * e.abs()
