"""The state of ``B`` agents as one typed container: brain, encoder, novelty and critic, plus its flat form.

:func:`flatten` gives the checkpoint form (``"brain.w.sensors->motor"``, ``"encoder.rn_mean"``, ...);
:func:`load_flat` reads it back, and also reads the flat form of earlier versions (buffers named
``brain.w__sensors__motor``, ``agent.value_prev``, ...), so old checkpoints still load.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from spikegym.brains import state as brain_state
from spikegym.brains.state import BrainState

from .encoders import EncoderState
from .modules import modules_init
from .novelty import SimHashParams, novelty_init, novelty_neurons_init
from .spec import AgentSpec


class CriticState(NamedTuple):
    """What the dopamine signal remembers between decisions, each ``[B]``."""

    value_prev: Tensor    # V of the previous decision's state
    learnable: Tensor     # bool: the previous decision may be learned from (not the step after an episode ended)
    reward_mean: Tensor   # running mean of the reward (dopamine.mode: baseline)
    td_fast: Tensor       # recent mean of the surprise errors (TD surprise)
    td_slow: Tensor       # long-run mean of the surprise errors
    serotonin: Tensor     # running mean of the internal reward (dopamine.serotonin; agents/serotonin.py)


class AgentState(NamedTuple):
    brain: BrainState
    encoder: EncoderState
    novelty: dict[str, Tensor]   # "counts" [B, T] int32 (hash) or "level", "last_input" [B, M] (neurons); {} when off
    critic: CriticState
    steps: Tensor                # [] int64: decisions taken
    lesion: dict[str, Tensor]    # "sensors" [B, N_in]: 1, 0 where silenced (agents/lesion.py); {} when intact
    modules: dict[str, Tensor]   # context modules (agents/modules.py: "actor", "critic", "active", ...); {} when off


def init_state(spec: AgentSpec, seed: int, *, first: int = 0, batch: int | None = None) -> AgentState:
    """Fresh agents ``first .. first + B - 1`` of a run seeded ``seed`` (``B = batch``, default ``spec.B``)."""
    b = spec.B if batch is None else batch
    dev = spec.device
    brain = brain_state.init_state(spec.brain, b, seed, first=first, device=dev)
    if "motor->motor" in brain.w:  # inhibition between the motor populations only
        brain.w["motor->motor"] = brain.w["motor->motor"] * spec.lateral_mask()
    novelty: dict[str, Tensor] = {}
    if isinstance(spec.novelty, SimHashParams):
        novelty = {"counts": novelty_init(b, spec.novelty, device=dev).counts}
    elif spec.novelty is not None:
        level, last = novelty_neurons_init(b, spec.novelty, device=dev)
        novelty = {"level": level, "last_input": last}
    z = lambda dtype=torch.float32: torch.zeros(b, device=dev, dtype=dtype)  # noqa: E731
    critic = CriticState(z(), z(torch.bool), z(), z(), z(), z())
    modules = {} if spec.modules is None else modules_init(spec.modules, brain.w["sensors->motor"],
                                                                       brain.w["sensors->critic"],
                                                                       brain.consolidation.get("sensors->motor"))
    return AgentState(brain, spec.encoder.initial_state(b), novelty, critic,
                      torch.zeros((), dtype=torch.int64, device=dev), {}, modules)


def flatten(state: AgentState) -> dict[str, Tensor]:
    """``{"brain.w.sensors->motor": ..., "encoder.rn_mean": ..., "critic.value_prev": ..., "steps": ...}``."""
    out = {f"brain.{k}": v for k, v in brain_state.flatten(state.brain).items()}
    out.update({f"encoder.{k}": v for k, v in state.encoder._asdict().items()})
    out.update({f"novelty.{k}": v for k, v in state.novelty.items()})
    out.update({f"critic.{k}": v for k, v in state.critic._asdict().items()})
    out["steps"] = state.steps
    out.update({f"lesion.{k}": v for k, v in state.lesion.items()})
    out.update({f"modules.{k}": v for k, v in state.modules.items()})
    return out


def load_flat(template: AgentState, flat: dict[str, Tensor]) -> AgentState:
    """The state ``template`` with its tensors taken from ``flat`` (this version's or an earlier one's form).

    Raises ``KeyError``/``ValueError`` naming the first missing or misshapen tensor.
    """
    if "brain.counter" in flat and "brain.keys" in flat and not any(k.startswith("brain.w.") for k in flat):
        flat = _from_buffers(template, flat)
    else:
        template = _with_lesions(template, flat)
        extra = sorted(set(flat) - set(flatten(template)))
        if extra:
            raise KeyError(f"agent state: '{extra[0]}' is not part of these agents (another config?)")
    def part(prefix):
        return {k[len(prefix):]: v for k, v in flat.items() if k.startswith(prefix)}
    def take(name: str, like: Tensor) -> Tensor:
        if name not in flat:
            raise KeyError(f"agent state: '{name}' missing")
        t = flat[name]
        if tuple(t.shape) != tuple(like.shape):
            raise ValueError(f"agent state: '{name}' has shape {tuple(t.shape)}, expected {tuple(like.shape)}")
        return t.to(device=like.device, dtype=like.dtype).clone()
    brain = brain_state.unflatten(template.brain, part("brain."))
    encoder = EncoderState(*(take(f"encoder.{k}", v) for k, v in template.encoder._asdict().items()))
    novelty = {k: take(f"novelty.{k}", v) for k, v in template.novelty.items()}
    if "critic.serotonin" not in flat:  # a checkpoint from before serotonin: the mean starts at 0
        flat = {**flat, "critic.serotonin": torch.zeros_like(template.critic.serotonin)}
    critic = CriticState(*(take(f"critic.{k}", v) for k, v in template.critic._asdict().items()))
    lesion = {k: take(f"lesion.{k}", v) for k, v in template.lesion.items()}
    modules = {k: take(f"modules.{k}", v) for k, v in template.modules.items()}
    return AgentState(brain, encoder, novelty, critic, take("steps", template.steps), lesion, modules)


def _with_lesions(template: AgentState, flat: dict[str, Tensor]) -> AgentState:
    """``template`` with room for the lesions ``flat`` carries (agents/lesion.py): silenced sensors, and the
    connectivity mask a synapse lesion gives a projection that had none."""
    lesion = {k[len("lesion."):]: v for k, v in flat.items() if k.startswith("lesion.")}
    b = template.brain
    masks = {k[len("brain.mask."):]: v for k, v in flat.items() if k.startswith("brain.mask.")
             and k[len("brain.mask."):] not in b.mask}
    if not lesion and not masks:
        return template
    mask = {**b.mask, **{n: torch.zeros_like(b.w[n], dtype=torch.bool) for n in masks}}
    age = {**b.age, **{n: torch.zeros_like(b.w[n], dtype=torch.int16) for n in masks}}
    like = {k: torch.zeros_like(v, device=template.steps.device) for k, v in lesion.items()}
    return template._replace(brain=b._replace(mask=mask, age=age), lesion={**template.lesion, **like})


def _from_buffers(template: AgentState, old: dict[str, Tensor]) -> dict[str, Tensor]:
    """Earlier versions' flat form (module buffers ``kind__name``) in this version's names."""
    new: dict[str, Tensor] = {}
    b = template.brain
    for kind, value in b._asdict().items():
        if not isinstance(value, dict):
            src = {"windows": "brain.runs"}.get(kind, f"brain.{kind}")
            if src in old:
                new[f"brain.{kind}"] = old[src]
            continue
        prefix = {"refractory": "ref", "stp_u": "stpu", "stp_x": "stpx"}.get(kind, kind)
        for name in value:
            key = f"brain.{prefix}__{name.replace('->', '__')}"
            if key in old:
                new[f"brain.{kind}.{name}"] = old[key]
    enc = {"rn_count": "rn_count", "rn_mean": "rn_mean", "rn_var": "rn_var", "level": "adapt_level",
           "last_input": "adapt_last_input"}
    for k, src in enc.items():
        if f"encoder.{src}" in old:
            new[f"encoder.{k}"] = old[f"encoder.{src}"]
    for k in template.novelty:
        if f"novelty.{k}" in old:
            new[f"novelty.{k}"] = old[f"novelty.{k}"]
    for k in template.critic._fields:
        if f"agent.{k}" in old:
            new[f"critic.{k}"] = old[f"agent.{k}"]
        elif k in ("td_fast", "td_slow", "reward_mean", "serotonin"):  # absent when the feature was off
            new[f"critic.{k}"] = torch.zeros_like(getattr(template.critic, k))
    if "agent.steps" in old:
        new["steps"] = old["agent.steps"]
    for name in template.brain.mask:  # the old fold left eligibility at absent synapses: it never counts
        if f"brain.e.{name}" in new and f"brain.mask.{name}" in new:
            new[f"brain.e.{name}"] = new[f"brain.e.{name}"] * new[f"brain.mask.{name}"]
    return new
