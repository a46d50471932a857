"""The state of ``B`` brains as one typed container, its initial value, masked reset and flat form.

Every tensor has the agent axis first. Fields are dicts keyed by projection name (``"pre->post"``) or
population name, so a reader sees at once what kind of thing each tensor is; :data:`FAST` names the
kinds an episode's end resets (:func:`reset_state`), everything else is what was learned.

>>> from spikegym.brains.spec import BrainSpec, Population, Projection
>>> spec = BrainSpec((Population("in", 3, "input"), Population("out", 2, "lif")),
...                  (Projection("in", "out", rule="stdp", lr=0.1),))
>>> s = init_state(spec, batch=4, seed=0)
>>> tuple(s.w["in->out"].shape), tuple(s.v["out"].shape), sorted(s.xpre)
((4, 3, 2), (4, 2), ['in->out'])
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from .random import agent_keys, normal, uniform
from .spec import INIT_STREAM, MASK_STREAM, BrainSpec


class BrainState(NamedTuple):
    """Tensors of ``B`` brains. ``P``/``Q``: sizes of a projection's pre/post population, ``N``: of a population."""

    keys: Tensor                  # [B] int64: each agent's noise key (constant)
    w: dict[str, Tensor]          # projection -> [B, P, Q] weights
    e: dict[str, Tensor]          # plastic projection -> [B, P, Q] eligibility
    mask: dict[str, Tensor]       # masked projection -> [B, P, Q] bool, the synapses that exist
    age: dict[str, Tensor]        # masked projection -> [B, P, Q] int16, structural checks spent weak
    xpre: dict[str, Tensor]       # stdp projection -> [B, P] presynaptic trace
    xpost: dict[str, Tensor]      # stdp projection -> [B, Q] postsynaptic trace
    stp_u: dict[str, Tensor]      # stp projection -> [B, P] release utilisation
    stp_x: dict[str, Tensor]      # stp projection -> [B, P] available resources
    v: dict[str, Tensor]          # lif/alif population -> [B, N] membrane
    refractory: dict[str, Tensor]  # lif/alif population -> [B, N] ms of refractoriness left
    theta: dict[str, Tensor]      # lif/alif population -> [B, N] adaptive threshold offset
    u: dict[str, Tensor]          # leaky escape population -> [B, N] membrane
    excite: dict[str, Tensor]     # non-input population -> [B, N] homeostatic excitability
    last: dict[str, Tensor]       # non-input population -> [B, N] spikes of the last substep
    rate: dict[str, Tensor]       # every population -> [B, N] running spike probability per substep
    consolidation: dict[str, Tensor]  # consolidating projection -> [B, P, Q] slow plasticity gate c (>= 0)
    counter: Tensor               # [] int64: substeps so far (the noise streams' position)
    windows: Tensor               # [] int64: windows (decisions) so far (the structural schedule)


#: the fast state an episode's end resets; the rest (weights, masks, excitability, rates) is what was learned
FAST = ("e", "xpre", "xpost", "stp_u", "stp_x", "v", "refractory", "theta", "u", "last")


def _rows_noise(draw, keys: Tensor, n_pre: int, n_post: int, stream: int, block: int = 1 << 20) -> Tensor:
    """Counter-based noise ``[B, n_pre, n_post]`` whose row ``i`` is step ``i`` of ``draw(keys, 0, (n_pre, B, n_post))``.

    Drawn in blocks of rows (the same numbers): the hash's int64 temporaries stay in cache.
    """
    b = keys.shape[0]
    out = torch.empty(b, n_pre, n_post, device=keys.device)
    rows = max(1, block // max(1, b * n_post))
    for p0 in range(0, n_pre, rows):
        p1 = min(n_pre, p0 + rows)
        out[:, p0:p1] = draw(keys, p0, (p1 - p0, b, n_post), stream=stream).transpose(0, 1)
    return out


def reset_values(spec: BrainSpec) -> dict[str, dict[str, float]]:
    """The value each fast tensor takes at an episode's start, per kind and name."""
    out: dict[str, dict[str, float]] = {kind: {} for kind in FAST}
    for p in spec.projections:
        if p.plastic:
            out["e"][p.name] = 0.0
        if p.rule == "stdp":
            out["xpre"][p.name] = out["xpost"][p.name] = 0.0
        if p.stp is not None:
            out["stp_u"][p.name], out["stp_x"][p.name] = p.stp.U, 1.0
    for name in spec.order:
        pop = spec.pops[name]
        if pop.model in ("lif", "alif"):
            out["v"][name], out["refractory"][name], out["theta"][name] = pop.lif.v_rest, 0.0, 0.0
        if pop.model == "escape" and not pop.memoryless:
            out["u"][name] = 0.0
        out["last"][name] = 0.0
    return out


def init_state(spec: BrainSpec, batch: int, seed: int, *, first: int = 0, device=None) -> BrainState:
    """Fresh brains for agents ``first .. first + batch - 1`` of a run seeded with ``seed``.

    Initial weights and masks come from each agent's own noise stream: an agent alone equals the same agent
    in any batch, on any device.
    """
    keys = agent_keys(seed, batch, first=first, device=device)
    f32 = dict(device=device, dtype=torch.float32)
    w, mask, age = {}, {}, {}
    for i, proj in enumerate(spec.projections):
        n_pre, n_post = spec.pops[proj.pre].size, spec.pops[proj.post].size
        if proj.w_init_std:
            wi = proj.w_init_mean + proj.w_init_std * _rows_noise(normal, keys, n_pre, n_post, INIT_STREAM + i)
        else:
            wi = torch.full((batch, n_pre, n_post), float(proj.w_init_mean), **f32)
        if proj.masked:
            mask[proj.name] = _rows_noise(uniform, keys, n_pre, n_post, MASK_STREAM + i) < proj.density
            age[proj.name] = torch.zeros(batch, n_pre, n_post, dtype=torch.int16, device=device)
            wi = wi * mask[proj.name]
        if proj.bounded:
            wi = wi.clamp(proj.w_min, proj.w_max)
        w[proj.name] = wi.to(**f32).contiguous()
    fast = {kind: {name: torch.full((batch, _size(spec, kind, name)), value, **f32) for name, value in values.items()}
            for kind, values in reset_values(spec).items() if kind != "e"}
    fast["e"] = {name: torch.zeros_like(w[name]) for name in spec.plastic}
    zeros = lambda names: {n: torch.zeros(batch, spec.pops[n].size, **f32) for n in names}  # noqa: E731
    scalar = lambda: torch.zeros((), dtype=torch.int64, device=device)  # noqa: E731
    consolidation = {p.name: torch.zeros_like(w[p.name]) for p in spec.projections if p.consolidation is not None}
    return BrainState(keys=keys, w=w, mask=mask, age=age, excite=zeros(spec.order), consolidation=consolidation,
                      rate=zeros([p.name for p in spec.populations]), counter=scalar(), windows=scalar(), **fast)


def _size(spec: BrainSpec, kind: str, name: str) -> int:
    """Second dimension of a fast ``[B, n]`` tensor: pre-size for presynaptic kinds, post-size else."""
    if kind in ("xpre", "stp_u", "stp_x"):
        return spec.pops[spec.projs[name].pre].size
    if kind == "xpost":
        return spec.pops[spec.projs[name].post].size
    return spec.pops[name].size


def reset_state(spec: BrainSpec, state: BrainState, done: Tensor) -> BrainState:
    """``where(done, initial, state)`` over the fast state (:data:`FAST`) of the agents where ``done [B]``."""
    if not bool(done.any()):  # most steps: nothing to reset (one host sync instead of a pass over e)
        return state
    values = reset_values(spec)
    updates: dict[str, Any] = {}  # **-unpacked into _replace: mypy would check each value against every field
    for kind in FAST:
        field = getattr(state, kind)
        updates[kind] = {name: torch.where(done.view(-1, *[1] * (t.dim() - 1)), values[kind][name], t)
                         for name, t in field.items()}
    return state._replace(**updates)


def flatten(state: BrainState) -> dict[str, Tensor]:
    """``{"kind.name": tensor}`` (``"counter"``, ``"keys"``... for plain tensors): the checkpoint form."""
    out = {}
    for kind, value in state._asdict().items():
        if isinstance(value, dict):
            out.update({f"{kind}.{name}": t for name, t in value.items()})
        else:
            out[kind] = value
    return out


def unflatten(template: BrainState, flat: dict[str, Tensor]) -> BrainState:
    """The state ``template`` with every tensor replaced by ``flat``'s (same keys as :func:`flatten`).

    Raises ``KeyError`` naming a missing tensor and ``ValueError`` naming one of the wrong shape.
    """
    fields: dict[str, Any] = {}  # a tensor or a dict per field, **-unpacked into BrainState
    for kind, value in template._asdict().items():
        names = value if isinstance(value, dict) else {None: value}
        new = {}
        for name, t in names.items():
            key = kind if name is None else f"{kind}.{name}"
            if key not in flat:
                raise KeyError(f"brain state: '{key}' missing")
            src = flat[key]
            if tuple(src.shape) != tuple(t.shape):
                raise ValueError(f"brain state: '{key}' has shape {tuple(src.shape)}, expected {tuple(t.shape)}")
            new[name] = src.to(device=t.device, dtype=t.dtype).clone()
        fields[kind] = new[None] if None in new else new
    return BrainState(**fields)
