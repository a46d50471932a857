"""Lesions: silence a fraction of an agent's sensor neurons, sensor->motor synapses or motor neurons.

``lesion(spec, state, kind, fraction, seed) -> state`` is pure: it returns a new state, the one handed in is
left alone. Each agent loses its own random ``round(fraction * N)`` units (drawn from ``seed`` and the agent's
index), and a lesion stays through learning:

* ``sensors``: the neurons' spike probability is multiplied by 0 (``state.lesion["sensors"]``, read by the
  reference step and the kernel alike); they never spike, so neither the actor nor the critic hears them.
* ``synapses``: existing ``sensors->motor`` synapses are removed from the projection's connectivity mask (one is
  added, all set, where the projection had none) with their weight and eligibility; the learning rule keeps
  masked synapses at 0, so learning cannot bring them back. (Structural plasticity, where it is on, may grow
  new synapses in their place, as it grows any absent synapse.)
* ``motor`` (any motor neurons) and ``motor_balanced`` (the same number from every action population): the
  neurons' excitability is set to :data:`SILENT` (``-1e9``). An escape neuron then fires with
  probability ``sigmoid(slope * (input - 1e9)) = 0`` whatever its input, a LIF neuron's membrane stays far below
  threshold; threshold homeostasis moves the excitability by steps far below float32's resolution at 1e9, so
  it stays. (The kernel's ``exp`` saturates at ``e^88``, leaving a probability of 6e-39 that only a uniform
  draw of exactly 0, one in 2^24, beats.)

A lesioned state is a checkpoint like any other: :func:`~spikegym.agents.state.load_flat` takes the lesion in.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from .spec import AgentSpec
from .state import AgentState

Kind = Literal["sensors", "synapses", "motor", "motor_balanced"]
KINDS: tuple[str, ...] = ("sensors", "synapses", "motor", "motor_balanced")
#: the excitability of a lesioned motor neuron
SILENT = -1e9
ACTOR = "sensors->motor"


def _pick(candidates: Tensor, fraction: float, seed: int) -> Tensor:
    """``[B, N]`` bool: per agent (row), ``round(fraction * candidates[b].sum())`` of its True entries, drawn
    from ``seed`` and the row's index."""
    out = torch.zeros_like(candidates, dtype=torch.bool)
    for b in range(candidates.shape[0]):
        idx = candidates[b].nonzero().flatten()
        n = int(round(fraction * idx.numel()))
        if n:
            g = torch.Generator().manual_seed(seed * 1_000_003 + b)
            out[b, idx[torch.randperm(idx.numel(), generator=g)[:n].to(idx.device)]] = True
    return out


def lesion(spec: AgentSpec, state: AgentState, kind: str, fraction: float, seed: int = 0) -> AgentState:
    """``state`` with ``fraction`` of every agent's ``kind`` units silenced (see the module docstring).

    Args:
        kind: ``sensors`` (input neurons), ``synapses`` (existing ``sensors->motor`` synapses), ``motor`` or
            ``motor_balanced`` (motor neurons; balanced: the fraction of each action population).
        fraction: in ``[0, 1]``; of the units still there (a lesion on a lesioned state takes from the rest).
    Raises:
        ValueError: an unknown kind or a fraction outside ``[0, 1]``.
    """
    if kind not in KINDS:
        raise ValueError(f"lesion kind {kind!r}: one of {', '.join(KINDS)}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"lesion fraction {fraction}: must lie in [0, 1]")
    brain = state.brain
    b = brain.keys.shape[0]
    if kind == "sensors":
        n = spec.encoder.n_out
        alive = state.lesion.get("sensors", torch.ones(b, n, device=spec.device))
        dead = _pick(alive > 0, fraction, seed)
        return state._replace(lesion={**state.lesion, "sensors": alive.masked_fill(dead, 0.0)})
    if kind in ("motor", "motor_balanced"):
        excite = brain.excite["motor"]
        if kind == "motor":
            dead = _pick(excite > SILENT / 2, fraction, seed)
        else:
            m = spec.motor_size
            dead = torch.cat([_pick(excite[:, g * m:(g + 1) * m] > SILENT / 2, fraction, seed + 7919 * g)
                              for g in range(spec.n_groups)], dim=1)
        return state._replace(brain=brain._replace(excite={**brain.excite, "motor": excite.masked_fill(dead, SILENT)}))
    w = brain.w[ACTOR]
    mask = brain.mask.get(ACTOR, torch.ones_like(w, dtype=torch.bool))
    cut = _pick(mask.flatten(1), fraction, seed).view_as(mask)
    keep = mask & ~cut
    age = brain.age.get(ACTOR, torch.zeros_like(w, dtype=torch.int16))
    e = {**brain.e, ACTOR: brain.e[ACTOR] * keep}
    return state._replace(brain=brain._replace(w={**brain.w, ACTOR: w * keep}, mask={**brain.mask, ACTOR: keep},
                                               age={**brain.age, ACTOR: age}, e=e))
