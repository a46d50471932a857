"""What a brain is made of: populations, projections and the checks that bind them (no tensors here).

A :class:`BrainSpec` is the declarative half of the engine. :mod:`spikegym.brains.state` allocates its state
for ``B`` agents, :mod:`spikegym.brains.step` advances it (the reference), and a fast backend (the agent's
numba kernel) runs the same spec where its plan applies.

>>> spec = BrainSpec((Population("in", 4, "input"), Population("out", 2, "escape")),
...                  (Projection("in", "out", rule="node_perturbation", lr=0.1),))
>>> spec.inputs, spec.order, spec.plastic
(('in',), ('out',), ('in->out',))
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal, Optional

from .consolidation import ConsolidationParams
from .neurons import EscapeParams, LIFParams
from .plasticity import HomeostasisParams, StdpParams, StructuralParams
from .synapses import TMParams

Model = Literal["input", "lif", "alif", "escape"]
Rule = Literal["none", "stdp", "node_perturbation", "critic"]

#: noise streams of the initial weights and connectivity masks of projection ``i`` (and of structural growth)
INIT_STREAM, MASK_STREAM, STRUCTURAL_STREAM = 1 << 20, 1 << 21, 1_000_003


@dataclass(frozen=True)
class Population:
    """A group of neurons of one model. ``lif`` is used by lif/alif, ``escape`` by escape."""

    name: str
    size: int
    model: Model = "escape"
    lif: LIFParams = LIFParams()
    escape: EscapeParams = EscapeParams()
    homeostasis: Optional[HomeostasisParams] = None

    @property
    def memoryless(self) -> bool:
        """An escape unit whose drive is this substep's input alone (its substeps are independent)."""
        return self.model == "escape" and self.escape.tau_mem <= 0

    @property
    def noisy(self) -> bool:
        """Spikes by chance with a known probability: escape units, and LIF/ALIF with escape noise."""
        return self.model == "escape" or (self.model in ("lif", "alif") and self.lif.escape_slope > 0)


@dataclass(frozen=True)
class Projection:
    """Synapses ``pre -> post`` with their own weights per agent.

    ``sign`` multiplies the current (+1 excitatory, -1 inhibitory); weights stay in ``[w_min, w_max]``
    (``None`` = unbounded). ``trace_decay`` is the eligibility decay per substep. A plastic projection
    (``rule != "none"``) must start at an input population: its events are factored as ``pre x post``.
    """

    pre: str
    post: str
    rule: Rule = "none"
    lr: float = 0.0
    trace_decay: float = 0.95
    sign: float = 1.0
    w_init_mean: float = 0.0
    w_init_std: float = 0.0
    w_min: Optional[float] = None
    w_max: Optional[float] = None
    soft_bound: bool = False
    density: float = 1.0
    stdp: StdpParams = StdpParams()
    critic_scale: float = 1.0
    stp: Optional[TMParams] = None
    structural: Optional[StructuralParams] = None
    structural_every: int = 1000
    consolidation: Optional[ConsolidationParams] = None  # plastic projections: lr / (1 + c), brains/consolidation.py

    @property
    def name(self) -> str:
        return f"{self.pre}->{self.post}"

    @property
    def plastic(self) -> bool:
        return self.rule != "none"

    @property
    def masked(self) -> bool:
        """Has a connectivity mask (sparse, or rewired by structural plasticity)."""
        return self.density < 1.0 or self.structural is not None

    @property
    def bounded(self) -> bool:
        return self.w_min is not None or self.w_max is not None


@dataclass(frozen=True)
class BrainSpec:
    """Populations and projections of one brain (shared by all ``B`` agents; their weights are not).

    ``dt`` is the substep in ms. Checks: unique names, ends that exist, no synapses onto input populations,
    at most one projection per ``(pre, post)``, plastic (also short-term plastic or sparse) projections from
    input populations, and (since the
    eligibility factor ``pre x post`` of a node-perturbation or critic rule needs the firing probability)
    those two rules, and STDP centred on that probability, only onto noisy populations (:attr:`Population.noisy`).
    Raises ``ValueError`` with the projection's name.
    """

    populations: tuple[Population, ...]
    projections: tuple[Projection, ...]
    dt: float = 1.0

    def __post_init__(self):
        pops = {p.name: p for p in self.populations}
        if len(pops) != len(self.populations):
            raise ValueError("population names must be unique")
        seen = set()
        for proj in self.projections:
            for end in (proj.pre, proj.post):
                if end not in pops:
                    raise ValueError(f"projection {proj.name}: unknown population {end!r}")
            if pops[proj.post].model == "input":
                raise ValueError(f"projection {proj.name}: an input population cannot receive synapses")
            if proj.name in seen:
                raise ValueError(f"projection {proj.name}: defined twice")
            seen.add(proj.name)
            if (proj.plastic or proj.stp is not None or proj.masked) and pops[proj.pre].model != "input":
                raise ValueError(f"projection {proj.name}: plastic, short-term plastic or sparse projections must "
                                 "start at an input population")
            if proj.rule in ("node_perturbation", "critic") and not pops[proj.post].noisy:
                raise ValueError(f"projection {proj.name}: rule {proj.rule!r} needs noisy neurons (their firing "
                                 "probability): escape, or lif/alif with escape noise; or use 'stdp'")
            if proj.rule == "stdp" and proj.stdp.center == "expected" and not pops[proj.post].noisy:
                raise ValueError(f"projection {proj.name}: STDP centred on the firing probability needs noisy "
                                 "neurons (escape, or lif/alif with escape noise)")

    @cached_property
    def pops(self) -> dict[str, Population]:
        return {p.name: p for p in self.populations}

    @cached_property
    def projs(self) -> dict[str, Projection]:
        return {p.name: p for p in self.projections}

    @cached_property
    def inputs(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.populations if p.model == "input")

    @cached_property
    def order(self) -> tuple[str, ...]:
        """Non-input populations, in the order they are stepped within a substep."""
        return tuple(p.name for p in self.populations if p.model != "input")

    @cached_property
    def plastic(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.projections if p.plastic)

    @cached_property
    def stream(self) -> dict[str, int]:
        """Noise stream of each population: its offset in the list of populations (neuron ``j`` is column ``j``)."""
        out, off = {}, 0
        for p in self.populations:
            out[p.name] = off
            off += p.size
        return out

    def incoming(self, post: str) -> tuple[Projection, ...]:
        return tuple(p for p in self.projections if p.post == post)
