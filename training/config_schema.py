"""The config schema: typed sections, each field with its default, help text and limits.

Every field is made by :func:`setting` (a default, a one-line ``help`` and optional limits, all kept in
the field's metadata) or :func:`section` (a nested section)::

    gamma: float = setting(0.99, "TD discount", min=0.0, max=1.0)

A section that needs a rule spanning several fields defines ``cross_check(self) -> list[tuple[str, str]]``
returning ``(field name, message)`` pairs. The validator (:mod:`spikegym.training.config_validate`) knows
nothing about particular sections, so a new section or field is an edit of this file only.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Literal, Optional

__all__ = [
    "LIMITS",
    "MAX_AGENTS",
    "MAX_SEED",
    "setting",
    "section",
    "EnvConfig",
    "AdaptationConfig",
    "EncoderConfig",
    "StpConfig",
    "HomeostasisConfig",
    "StructuralConfig",
    "BrainConfig",
    "StdpConfig",
    "PlasticityConfig",
    "DopamineConfig",
    "NoveltyConfig",
    "RunConfig",
    "Config",
]


# --------------------------------------------------------------------------------------------
# Field helpers
# --------------------------------------------------------------------------------------------

LIMITS = ("min", "max", "gt", "lt")

#: Largest population of one run: GPU runs reach tens of thousands of agents; 1e9 is a typo.
MAX_AGENTS = 2**20
#: Seeds are what numpy's and torch's generators take: 0 .. 2**32 - 1.
MAX_SEED = 2**32 - 1


def setting(default: Any, help: str, *, allow_inf: bool = False, **limits: float) -> Any:
    """A config field: its default, a one-line ``help`` and optional limits ``min``/``max``
    (inclusive) and ``gt``/``lt`` (strict). List/dict defaults are copied per instance.

    Float fields (and lists of floats) take only finite numbers unless ``allow_inf`` is set: a
    ``.inf`` learning rate is a typo, not a setting. NaN is never taken.
    """
    unknown = set(limits) - set(LIMITS)
    if unknown:
        raise TypeError(f"unknown limit(s) {sorted(unknown)}; use {LIMITS}")
    metadata = {"help": help, "allow_inf": allow_inf, **limits}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def section(cls: type, help: str) -> Any:
    """A nested section field (a dataclass whose own fields all have defaults)."""
    return dataclasses.field(default_factory=cls, metadata={"help": help})


# --------------------------------------------------------------------------------------------
# The schema
# --------------------------------------------------------------------------------------------


@dataclass
class EnvConfig:
    """The world: which Gymnasium env, how many independent agents, reward transforms."""

    id: str = setting("CartPole-v1", "Gymnasium env id (CartPole-v1, HalfCheetah-v5, ...); 'module:Id' imports module first")
    num_agents: int = setting(16, "B: independent agents trained at once, each with its own env and weights", min=1,
                              max=MAX_AGENTS)
    kwargs: dict[str, Any] = setting({}, "keyword arguments passed to gymnasium.make (free-form)")
    vectorization: Literal["auto", "sync", "async", "native", "torch"] = setting(
        "auto", "how the B envs are stepped: native (the env's numpy vector entry point), sync, async (subprocesses), "
        "torch (the worlds in torch on run.device; classic control only); auto picks (never torch)"
    )
    max_episode_steps: Optional[int] = setting(None, "time limit per episode (null: the env's own)", min=1)
    reward_scale: float = setting(1.0, "multiplies the env reward before the learner sees it (episode stats stay raw)")
    failure_reward: Optional[float] = setting(
        None, "when set, the internal reward is this value on termination and 0 otherwise (Barto et al. 1983's failure signal)"
    )
    schedule: Optional[dict[str, Any]] = setting(
        None, "task schedule that changes the world mid-life (validated by spikegym.envs); null: a fixed world"
    )


@dataclass
class AdaptationConfig:
    """Sensory adaptation of input neurons: habituation, recovery, sensitization (Aplysia)."""

    enabled: bool = setting(False, "turn sensory adaptation on")
    tau_adapt: float = setting(0.2, "habituation time constant under constant strong input, seconds", gt=0.0)
    tau_recover: float = setting(1.0, "recovery time constant at rest, seconds", gt=0.0)
    strength: float = setting(2.0, "how strongly the adaptation level suppresses the response (0: none)", min=0.0)
    sensitize_threshold: float = setting(0.5, "relative input change (0..1) that sensitizes (restores the response); "
                                              ".inf: never", min=0.0, allow_inf=True)
    sensitize_on_punishment: bool = setting(True, "a strongly negative internal reward (aversive event) restores the response")
    punishment_threshold: float = setting(0.5, "internal reward at or below minus this counts as aversive", min=0.0)


@dataclass
class EncoderConfig:
    """Observations -> input spikes: Gaussian population code per observation dimension."""

    fields: int = setting(15, "Gaussian receptive fields per observation dimension", min=2)
    neurons_per_field: int = setting(2, "Bernoulli input neurons per receptive field", min=1)
    max_prob: float = setting(0.5, "spike probability per substep at a field's centre", min=0.0, max=1.0)
    bias_neurons: int = setting(2, "always-on input neurons (a learnable bias)", min=0)
    low: Optional[list[float]] = setting(None, "per-dimension lower coding bound (null: observation space or running stats)")
    high: Optional[list[float]] = setting(None, "per-dimension upper coding bound (null: observation space or running stats)")
    normalize: Literal["auto", "space", "running", "fixed"] = setting(
        "auto", "coding range: space (observation-space bounds), running (running mean/std), fixed (low/high); auto picks"
    )
    running_clip: float = setting(3.0, "running normalisation covers mean +- running_clip std", gt=0.0)
    pairs: list[list[int]] = setting([], "conjunctive 2-D fields over these pairs of observation dimensions, e.g. [[0, 2], [1, 2]]")
    pair_fields: int = setting(7, "fields per dimension of each 2-D grid (pair_fields**2 fields per pair)", min=2)
    angles: list[list[int]] = setting(
        [], "(cos, sin) observation dimension pairs, each also coded as one angle atan2(sin, cos) with circular "
        "fields; the k-th angle is coded dimension D + k, which pairs may name (e.g. Pendulum [[0, 1]], pairs [[3, 2]])")
    adaptation: AdaptationConfig = section(AdaptationConfig, "sensory adaptation (habituation / sensitization)")

    def cross_check(self) -> list[tuple[str, str]]:
        problems = []
        if self.low is not None and self.high is not None:
            if len(self.low) != len(self.high):
                problems.append(("high", f"has {len(self.high)} values but 'low' has {len(self.low)}"))
            elif any(lo >= hi for lo, hi in zip(self.low, self.high)):
                problems.append(("high", "must be greater than 'low' in every dimension"))
        if any(len(p) != 2 or p[0] == p[1] or min(p) < 0 for p in self.pairs):
            problems.append(("pairs", "must be pairs of two different dimension indices >= 0, e.g. [[0, 2]]"))
        if any(len(p) != 2 or p[0] == p[1] or min(p) < 0 for p in self.angles):
            problems.append(("angles", "must be (cos, sin) pairs of two different dimension indices >= 0, e.g. [[0, 1]]"))
        if self.normalize == "fixed" and (self.low is None or self.high is None):
            problems.append(("normalize", "'fixed' needs both 'low' and 'high'"))
        return problems


@dataclass
class StpConfig:
    """Tsodyks-Markram short-term plasticity (facilitation u, depletion x)."""

    enabled: bool = setting(False, "turn short-term plasticity on")
    U: float = setting(0.2, "baseline release probability", min=0.0, max=1.0)
    tau_facilitation: float = setting(200.0, "facilitation decay time constant, ms", gt=0.0)
    tau_depression: float = setting(500.0, "vesicle recovery time constant, ms", gt=0.0)


@dataclass
class HomeostasisConfig:
    """Keep each neuron's mean rate near a target."""

    enabled: bool = setting(False, "turn homeostasis on")
    target_rate: float = setting(0.05, "target spike probability per substep", min=0.0, max=1.0)
    eta: float = setting(0.01, "homeostatic adaptation rate", min=0.0)
    mode: Literal["threshold", "scaling", "both"] = setting("threshold", "adapt thresholds, scale synapses, or both")
    tau_rate: float = setting(1000.0, "time constant of the rate estimate, ms", gt=0.0)


@dataclass
class StructuralConfig:
    """Prune weak synapses, grow new ones; a per-agent connectivity mask."""

    enabled: bool = setting(False, "turn structural plasticity on")
    every: int = setting(1000, "env steps between structural updates", min=1)
    prune_below: float = setting(0.01, "|w| under which a synapse counts as weak", min=0.0)
    prune_after: int = setting(5, "consecutive weak checks before a synapse is pruned", min=1)
    grow: int = setting(16, "synapses grown per agent per update", min=0)
    max_density: float = setting(1.0, "largest fraction of possible synapses that may exist", min=0.0, max=1.0)
    w_init: float = setting(0.05, "weight of a newly grown synapse")


@dataclass
class BrainConfig:
    """The spiking network: neurons, populations, substeps."""

    substeps: int = setting(20, "K: brain substeps per env step", min=1)
    dt: float = setting(1.0, "substep length, ms", gt=0.0)
    neuron: Literal["escape", "lif", "alif"] = setting(
        "escape", "neuron model: escape (stochastic, spike ~ Bernoulli(sigmoid)), lif, alif (adaptive threshold)"
    )
    motor_size: int = setting(20, "motor neurons per action population", min=1)
    critic_size: int = setting(40, "critic neurons (their rate encodes value)", min=1)
    lateral_inhibition: float = setting(0.0, "inhibition between motor populations", min=0.0)
    action_gain: float = setting(1.0, "continuous actions: how far a full push-pull count difference reaches, x half range", gt=0.0)
    slope: float = setting(1.0, "escape-noise sigmoid slope", gt=0.0)
    motor_bias: float = setting(0.0, "bias current of motor neurons")
    critic_bias: float = setting(0.0, "bias current of critic neurons")
    w_init_std: float = setting(0.0, "std of the initial sensor->motor and sensor->critic weights (0: all start at zero)", min=0.0)
    tau_mem: float = setting(20.0, "membrane time constant (lif/alif), ms", gt=0.0)
    tau_ref: float = setting(2.0, "refractory period (lif/alif), ms", min=0.0)
    v_th: float = setting(1.0, "firing threshold (lif/alif)", gt=0.0)
    lif_escape_slope: float = setting(
        0.0, "noisy lif/alif: escape noise on the membrane, spike probability sigmoid(slope (v - v_th)) per substep "
        "(0: the deterministic threshold)", min=0.0)
    engine: Literal["auto", "reference", "kernel"] = setting(
        "auto", "the agent step: reference (torch, any device), kernel (numba, CPU); auto: the kernel where it "
        "applies (result.json says which ran)")
    stp: StpConfig = section(StpConfig, "short-term plasticity")
    homeostasis: HomeostasisConfig = section(HomeostasisConfig, "rate homeostasis")
    structural: StructuralConfig = section(StructuralConfig, "structural plasticity")


@dataclass
class StdpConfig:
    """Pair-based STDP window (used when plasticity.rule is stdp)."""

    a_plus: float = setting(1.0, "LTP amplitude (pre before post)", min=0.0)
    a_minus: float = setting(1.05, "LTD amplitude (post before pre)", min=0.0)
    tau_plus: float = setting(20.0, "LTP window time constant, ms", gt=0.0)
    tau_minus: float = setting(20.0, "LTD window time constant, ms", gt=0.0)
    hetero_ltd: float = setting(0.0, "heterosynaptic LTD (post active, pre silent)", min=0.0)
    center: Literal["none", "expected", "rate"] = setting(
        "none", "the window's post signal: the spikes (none), the spikes minus their firing probability (expected: "
        "noisy neurons), or minus their running rate (rate); centred, the eligibility has zero mean without reward")


@dataclass
class ConsolidationConfig:
    """Metaplasticity of the actor's synapses: what proved useful learns at lr / (1 + c) (brains/consolidation.py)."""

    enabled: bool = setting(False, "turn consolidation on")
    rate: float = setting(0.001, "capture: c grows by rate * max(dopamine, 0) * |eligibility| per decision", min=0.0)
    tau_steps: float = setting(50_000.0, "decisions over which consolidation fades without new captures", min=1.0)


@dataclass
class RenewalConfig:
    """Re-initialise dormant and saturated motor neurons' synapses (agents/renewal.py): against loss of plasticity."""

    enabled: bool = setting(False, "turn renewal on")
    every: int = setting(1000, "decisions between checks", min=1)
    low: float = setting(0.001, "dormant: running spike probability per substep below this", min=0.0, max=1.0)
    high: float = setting(0.99, "saturated: running spike probability per substep above this", min=0.0, max=1.0)

    def cross_check(self) -> list[tuple[str, str]]:
        if self.low >= self.high:
            return [("high", "must be greater than 'low'")]
        return []


@dataclass
class PlasticityConfig:
    """Three-factor learning: eligibility traces x dopamine."""

    rule: Literal["node_perturbation", "stdp"] = setting(
        "node_perturbation", "actor eligibility: node_perturbation (pre x (spike - p); escape or noisy lif neurons) "
        "or reward-modulated stdp (a spike-timing window)"
    )
    actor_lr: float = setting(0.03, "actor learning rate", min=0.0)
    critic_lr: float = setting(0.03, "critic learning rate", min=0.0)
    actor_trace_decay: float = setting(0.95, "actor eligibility decay per env step", min=0.0, max=1.0)
    critic_trace_decay: float = setting(0.8, "critic eligibility decay per env step", min=0.0, max=1.0)
    critic_scale: float = setting(1.0, "c: scale of the critic eligibility")
    w_max: Optional[float] = setting(None, "weight bound |w| <= w_max (null or .inf: unbounded)", gt=0.0,
                                     allow_inf=True)
    soft_bound: bool = setting(False, "multiplicative (soft) bounds instead of clipping")
    stdp: StdpConfig = section(StdpConfig, "STDP window")
    consolidation: ConsolidationConfig = section(ConsolidationConfig, "consolidation of the actor's useful synapses")
    renewal: RenewalConfig = section(RenewalConfig, "renewal of dormant and saturated motor neurons")


@dataclass
class SerotoninConfig:
    """Serotonin (Doya 2002: the time scale of reward prediction): the TD discount follows the agent's fortune."""

    enabled: bool = setting(False, "adapt the TD discount (replacing dopamine.gamma) from the running mean reward")
    tau_steps: float = setting(1000.0, "decisions over which the internal reward is averaged", min=1.0)
    gain: float = setting(20.0, "level = sigmoid(gain * (mean reward - reference))", min=0.0)
    reference: float = setting(0.0, "mean internal reward at which the level is 1/2")
    gamma_low: float = setting(0.9, "TD discount at level 0 (an agent that keeps being punished looks less far)",
                               min=0.0, max=1.0)
    gamma_high: float = setting(0.99, "TD discount at level 1", min=0.0, max=1.0)


@dataclass
class DopamineConfig:
    """The third factor: reward prediction error."""

    mode: Literal["td", "baseline"] = setting("td", "td: critic TD error; baseline: r - running mean(r)")
    gamma: float = setting(0.99, "TD discount", min=0.0, max=1.0)
    baseline_decay: float = setting(0.99, "decay of the running reward mean (baseline mode)", min=0.0, max=1.0)
    clip: Optional[float] = setting(None, "clip dopamine to [-clip, clip] (null: no clip)", gt=0.0)
    value_low: Optional[float] = setting(None, "critic value when its neurons are silent (null: min(failure_reward, 0), or -1 without failure_reward)")
    value_high: Optional[float] = setting(None, "critic value when its neurons fire at full rate (null: max(failure_reward, 0), or +1 without failure_reward)")
    value_init: Optional[float] = setting(None, "the critic's value before it learns, strictly between the value range's ends: "
                                                "sets the critic neurons' bias (null: brain.critic_bias decides)")
    serotonin: SerotoninConfig = section(SerotoninConfig, "serotonin: the TD discount from the running mean reward")

    def cross_check(self) -> list[tuple[str, str]]:
        if self.value_low is not None and self.value_high is not None and self.value_low >= self.value_high:
            return [("value_high", "must be greater than 'value_low'")]
        return []

    def value_range(self, failure_reward: Optional[float]) -> tuple[float, float]:
        """``(low, high)``: ``V = low + (high - low) * mean critic firing probability``."""
        low = self.value_low if self.value_low is not None else (min(failure_reward, 0.0) if failure_reward is not None else -1.0)
        high = self.value_high if self.value_high is not None else (max(failure_reward, 0.0) if failure_reward is not None else 1.0)
        return low, high


@dataclass
class NoveltyConfig:
    """Curiosity: an intrinsic bonus for novel sensory patterns, habituating with familiarity."""

    enabled: bool = setting(False, "turn the novelty bonus on")
    beta: float = setting(0.1, "bonus scale: beta / sqrt(visit count)", min=0.0)
    hash_bits: int = setting(16, "bits of the random-projection hash (SimHash)", min=1, max=30)
    decay_steps: Optional[int] = setting(None, "bonus weight decays linearly to 0 over this many steps (null: never)", min=1)
    ach_gain: float = setting(0.0, "acetylcholine: plasticity gain per unit of novelty", min=0.0)
    mode: Literal["hash", "neurons"] = setting("hash", "hash counts or habituating novelty neurons")
    neurons: int = setting(256, "mode neurons: novelty neurons (random projection of the input pattern)", min=1)
    active: int = setting(8, "mode neurons: most-driven novelty neurons that tag one pattern", min=1)
    habituation_steps: float = setting(2.0, "mode neurons: env steps for a tag to habituate to a repeated pattern", gt=0.0)
    recovery_steps: float = setting(10_000.0, "mode neurons: env steps for a habituated tag to recover", gt=0.0)
    habituation_strength: float = setting(9.0, "mode neurons: a familiar pattern's novelty is 1 / (1 + strength)", min=0.0)
    surprise_gain: float = setting(0.0, "acetylcholine: plasticity gain per unit of TD surprise (recent TD errors / their long-run mean - 1, see surprise_errors); works with enabled: false", min=0.0)
    surprise_errors: Literal["absolute", "negative", "punishment"] = setting(
        "absolute", "what makes surprise: 'absolute' |TD error|; 'negative' max(0, -TD error) (disappointment); "
        "'punishment' max(0, -reward) (how often it hurts: learning makes it rarer, a world turned harsh more common, "
        "and unlike TD errors it does not fade as fast as the critic learns the new world's value)")
    surprise_shrink: float = setting(
        0.0, "every decision, motor weights x (1 - surprise_shrink * surprise), clipped at 0 "
        "(a surprised agent loosens a confident policy so that its motor noise explores again)", min=0.0, max=1.0)
    surprise_fast_steps: float = setting(200.0, "decisions in the recent mean of the surprise errors", min=1.0)
    surprise_slow_steps: float = setting(20_000.0, "decisions in the long-run mean of the surprise errors", min=1.0)

    def cross_check(self) -> list[tuple[str, str]]:
        if self.active > self.neurons:
            return [("active", f"must be at most 'neurons' ({self.neurons})")]
        if self.surprise_fast_steps >= self.surprise_slow_steps:
            return [("surprise_slow_steps", "must be greater than 'surprise_fast_steps'")]
        return []


@dataclass
class ModulesConfig:
    """Context modules: several motor + critic weight sets per agent; a persistent surprise switches them."""

    count: int = setting(1, "motor + critic weight sets per agent (1: off); only the active one learns", min=1, max=16)
    switch_surprise: float = setting(
        0.5, "the active module is surprised when the recent mean of its errors exceeds (1 + this) x its long-run mean",
        min=0.0)
    patience: int = setting(300, "surprised decisions in a row before the agent takes up another module", min=1)
    recall_patience: int = setting(
        0, "surprised decisions in a row before it takes up again a module it used before (and that has not just "
        "failed a trial); 0: patience. Small values notice a returning world within an episode or two", min=0)
    errors: Literal["punishment", "absolute", "negative"] = setting(
        "punishment", "what surprises a module: 'punishment' max(0, -reward) (how often it hurts: it falls while a "
        "module learns and jumps when its world changes), 'absolute' |TD error|, 'negative' max(0, -TD error)")
    fast_steps: float = setting(200.0, "decisions in a module's recent mean of its errors", min=1.0)
    slow_steps: float = setting(20_000.0, "decisions in a module's long-run mean of its errors", min=1.0)
    min_error: float = setting(0.01, "floor of the long-run mean in the surprise ratio (a module that has hardly "
                                     "ever erred is not thrown over by one error)", min=0.0)

    def cross_check(self) -> list[tuple[str, str]]:
        if self.fast_steps >= self.slow_steps:
            return [("slow_steps", "must be greater than 'fast_steps'")]
        return []


@dataclass
class RunConfig:
    """Length, seeding, device, logging and checkpoints of a run."""

    steps: int = setting(200_000, "env steps per agent", min=1)
    seed: int = setting(0, "seed of every generator in the run", min=0, max=MAX_SEED)
    device: str = setting("cpu", "torch device: cpu, cuda, cuda:1, mps, ...; auto: cuda when available, else cpu")
    threads: Optional[int] = setting(None, "CPU threads of torch and of the agent step's kernel (null: torch's default)",
                                     min=1)
    kernels: Literal["auto", "torch"] = setting(
        "auto", "deprecated, use brain.engine: 'torch' is brain.engine reference")
    log_every: int = setting(2000, "env steps between TensorBoard scalars", min=1)
    checkpoint_every: int = setting(50_000, "env steps between checkpoints", min=1)
    eval_every: Optional[int] = setting(None, "env steps between evaluations, learning off, on envs of their own; "
                                        "the best is kept in checkpoints/best (null: none)", min=1)
    eval_episodes: int = setting(5, "episodes per agent in each evaluation (run.eval_every)", min=1)
    video_every: Optional[int] = setting(None, "env steps between recorded videos (null: none)", min=1)
    run_dir: Optional[str] = setting(None, "run folder (null: runs/<env>-<time>)")
    progress: Literal["auto", "on", "off"] = setting(
        "auto", "progress: auto = a bar on a terminal, log lines off it (nohup, SLURM, CI); on = a bar; off = nothing")
    keep_checkpoints: int = setting(2, "how many of the newest checkpoints to keep", min=1)

    def cross_check(self) -> list[tuple[str, str]]:
        if self.device != "auto" and not re.fullmatch(r"(cpu|cuda|mps|xpu)(:\d+)?", self.device):
            return [("device", f"is not a torch device: {self.device!r} (use cpu, cuda, cuda:N or auto)")]
        return []


@dataclass
class Config:
    """A whole run. Every section has defaults; a YAML file names only what it changes."""

    env: EnvConfig = section(EnvConfig, "the environment and the agent population")
    encoder: EncoderConfig = section(EncoderConfig, "observations -> input spikes")
    brain: BrainConfig = section(BrainConfig, "the spiking network")
    plasticity: PlasticityConfig = section(PlasticityConfig, "learning rules")
    dopamine: DopamineConfig = section(DopamineConfig, "reward prediction error")
    novelty: NoveltyConfig = section(NoveltyConfig, "curiosity bonus")
    modules: ModulesConfig = section(ModulesConfig, "context modules against forgetting")
    run: RunConfig = section(RunConfig, "length, seed, device, logging, checkpoints")

