"""Typed run configuration: YAML -> validated dataclasses, with one-line errors.

A config is a tree of dataclass *sections* (:class:`Config` holds ``env``, ``encoder``, ``brain``,
``plasticity``, ``dopamine``, ``novelty`` and ``run``). Every field has a default, a ``help`` text
and, where it makes sense, limits, all in the field's metadata::

    gamma: float = setting(0.99, "TD discount", min=0.0, max=1.0)

The validator knows nothing about particular sections: it walks the dataclass fields
(``typing.get_type_hints``) and understands nested dataclasses, ``int``, ``float``, ``bool``,
``str``, ``Optional[...]``, ``Literal[...]``, ``list[X]`` and ``dict[str, X]`` / ``dict[str, Any]``
(free-form). Limits: ``min`` / ``max`` (inclusive), ``gt`` / ``lt`` (strict). A section that needs
a rule spanning several fields defines ``cross_check(self) -> list[tuple[str, str]]`` returning
``(field name, message)`` pairs. So a new section, or a new field, is a dataclass edit only.

Errors are :class:`ConfigError`; ``str()`` is one line that names the file, the line, the key and,
for a typo, the nearest valid name::

    configs/x.yaml:12: unknown key 'brain.substep' (did you mean 'brain.substeps'?)
    --set run.steps=abc: 'run.steps' expected an integer, got 'abc'

Quirks of PyYAML that are handled here: ``1e6`` and ``3e-4`` load as *strings* (YAML 1.1 wants
``1.0e+6``), so numeric strings are converted for ``int`` / ``float`` fields (an ``int`` field
takes ``1e6`` when it is a whole number); ``on`` / ``off`` load as booleans, so a ``Literal``
with the choices ``"on"`` / ``"off"`` takes them back. A ``bool`` field wants a real YAML boolean.

>>> cfg = load_config(None, ["brain.substeps=10", "plasticity.actor_lr=3e-4"])
>>> cfg.brain.substeps, cfg.plasticity.actor_lr
(10, 0.0003)
>>> try:
...     config_from_dict({"brain": {"substep": 10}}, source="x.yaml")
... except ConfigError as err:
...     print(err)
x.yaml: unknown key 'brain.substep' (did you mean 'brain.substeps'?)
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import math
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

from spikegym.training.files import atomic_write_text  # noqa: F401 - one atomic writer (re-exported)

__all__ = [
    "ConfigError",
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
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "config_to_yaml",
    "save_resolved_config",
    "check_env_id",
    "config_reference",
]


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class ConfigError(Exception):
    """A config that cannot be used. ``str(err)`` is one line: ``source:line[:col]: message``.

    Attributes: ``message``, ``source`` (file name, ``--set k=v`` or ``<dict>``), ``line`` and
    ``column`` (1-based, or None), ``key`` (dotted key, or None).
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        column: int | None = None,
        key: str | None = None,
    ):
        self.message = " ".join(str(message).split())  # always one line
        self.source = source
        self.line = line
        self.column = column
        self.key = key
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.source or ""
        if where and self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.message}" if where else self.message


# --------------------------------------------------------------------------------------------
# Field helpers
# --------------------------------------------------------------------------------------------

_LIMITS = ("min", "max", "gt", "lt")


def setting(default: Any, help: str, **limits: float) -> Any:
    """A config field: its default, a one-line ``help`` and optional limits ``min``/``max``
    (inclusive) and ``gt``/``lt`` (strict). List/dict defaults are copied per instance."""
    unknown = set(limits) - set(_LIMITS)
    if unknown:
        raise TypeError(f"unknown limit(s) {sorted(unknown)}; use {_LIMITS}")
    metadata = {"help": help, **limits}
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
    num_agents: int = setting(16, "B: independent agents trained at once, each with its own env and weights", min=1)
    kwargs: dict[str, Any] = setting({}, "keyword arguments passed to gymnasium.make (free-form)")
    vectorization: Literal["auto", "sync", "async", "native"] = setting(
        "auto", "how the B envs are stepped: native (the env's numpy vector entry point), sync, async (subprocesses); auto picks"
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
    sensitize_threshold: float = setting(0.5, "relative input change (0..1) that sensitizes (restores the response)", min=0.0)
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
    engine: Literal["auto", "dense", "event"] = setting("auto", "dense matmuls or event-driven updates; auto picks by sparsity")
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


@dataclass
class PlasticityConfig:
    """Three-factor learning: eligibility traces x dopamine."""

    rule: Literal["node_perturbation", "stdp"] = setting(
        "node_perturbation", "actor eligibility: node_perturbation (pre x (spike - p)) or reward-modulated stdp"
    )
    actor_lr: float = setting(0.03, "actor learning rate", min=0.0)
    critic_lr: float = setting(0.03, "critic learning rate", min=0.0)
    actor_trace_decay: float = setting(0.95, "actor eligibility decay per env step", min=0.0, max=1.0)
    critic_trace_decay: float = setting(0.8, "critic eligibility decay per env step", min=0.0, max=1.0)
    critic_scale: float = setting(1.0, "c: scale of the critic eligibility")
    w_max: Optional[float] = setting(None, "weight bound |w| <= w_max (null: unbounded)", gt=0.0)
    soft_bound: bool = setting(False, "multiplicative (soft) bounds instead of clipping")
    stdp: StdpConfig = section(StdpConfig, "STDP window")


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
class RunConfig:
    """Length, seeding, device, logging and checkpoints of a run."""

    steps: int = setting(200_000, "env steps per agent", min=1)
    seed: int = setting(0, "seed of every generator in the run")
    device: str = setting("cpu", "torch device: cpu, cuda, cuda:1, ...")
    threads: Optional[int] = setting(None, "CPU threads of torch and of the agent step's kernel (null: torch's default)",
                                     min=1)
    kernels: Literal["auto", "torch"] = setting(
        "auto", "auto: the agent step as one numba kernel where the agent allows it (CPU; agents/fastpath.py); "
        "torch: torch operations always")
    log_every: int = setting(2000, "env steps between TensorBoard scalars", min=1)
    checkpoint_every: int = setting(50_000, "env steps between checkpoints", min=1)
    eval_every: Optional[int] = setting(None, "env steps between evaluations (null: none)", min=1)
    video_every: Optional[int] = setting(None, "env steps between recorded videos (null: none)", min=1)
    run_dir: Optional[str] = setting(None, "run folder (null: runs/<env>-<time>)")
    progress: Literal["auto", "on", "off"] = setting("auto", "progress bar: auto shows it on a terminal")
    keep_checkpoints: int = setting(2, "how many of the newest checkpoints to keep", min=1)

    def cross_check(self) -> list[tuple[str, str]]:
        if not re.fullmatch(r"(cpu|cuda|mps|xpu|meta)(:\d+)?", self.device):
            return [("device", f"is not a torch device: {self.device!r} (use cpu, cuda or cuda:N)")]
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
    run: RunConfig = section(RunConfig, "length, seed, device, logging, checkpoints")


# --------------------------------------------------------------------------------------------
# Where each value came from (file line or --set override)
# --------------------------------------------------------------------------------------------

KeyPath = tuple  # a key path: ("brain", "stp", "U") or ("encoder", "low", 2)


def _dotted(path: KeyPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


class _Origins:
    """Maps key paths to the file line (or ``--set`` override) they came from."""

    def __init__(self, source: str):
        self.source = source
        self.value_lines: dict[KeyPath, int] = {}
        self.key_lines: dict[KeyPath, int] = {}
        self.overrides: list[tuple[KeyPath, str]] = []  # in the order applied

    def locate(self, path: KeyPath, *, key: bool = False) -> tuple[str, int | None]:
        for opath, label in reversed(self.overrides):
            if path[: len(opath)] == opath:
                return label, None
        table = self.key_lines if key else self.value_lines
        p = tuple(path)
        while p:
            if p in table:
                return self.source, table[p]
            p = p[:-1]
        return self.source, None

    def error(self, path: KeyPath, message: str, *, key: bool = False) -> ConfigError:
        source, line = self.locate(path, key=key)
        return ConfigError(message, source=source, line=line, key=_dotted(path))


def _record_lines(node: yaml.Node, path: KeyPath, origins: _Origins) -> None:
    """Walk a composed YAML node tree, noting the line of every key and value; reject duplicates."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for knode, vnode in node.value:
            if knode.tag == "tag:yaml.org,2002:merge" or not isinstance(knode, yaml.ScalarNode):
                continue
            sub = path + (knode.value,)
            line = knode.start_mark.line + 1
            if knode.value in seen:
                raise ConfigError(
                    f"duplicate key '{_dotted(sub)}' (first given on line {seen[knode.value]})",
                    source=origins.source,
                    line=line,
                    key=_dotted(sub),
                )
            seen[knode.value] = line
            origins.key_lines[sub] = line
            origins.value_lines[sub] = vnode.start_mark.line + 1
            _record_lines(vnode, sub, origins)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            origins.value_lines[path + (i,)] = item.start_mark.line + 1
            origins.key_lines[path + (i,)] = item.start_mark.line + 1
            _record_lines(item, path + (i,), origins)


def _parse_yaml(text: str, origins: _Origins) -> Any:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        message = f"YAML syntax error: {err.problem or err.context or 'cannot parse'}"
        if err.context and err.problem and err.context_mark is not None:
            message += f" ({err.context} started on line {err.context_mark.line + 1})"
        raise ConfigError(
            message,
            source=origins.source,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"YAML syntax error: {err}", source=origins.source) from None
    if node is not None:
        _record_lines(node, (), origins)
    return data


# --------------------------------------------------------------------------------------------
# The generic validator
# --------------------------------------------------------------------------------------------


def _show(value: Any) -> str:
    """A value as the user wrote it (YAML spelling)."""
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return str(value)


def _alternatives(names: list[str]) -> str:
    """``['a']`` -> ``'a'``; ``['a', 'b', 'c']`` -> ``'a', 'b' or 'c'``."""
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _is_optional(tp: Any) -> tuple[bool, Any]:
    """``Optional[X]`` -> ``(True, X)``; anything else -> ``(False, tp)``."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = typing.get_args(tp)
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and len(rest) < len(args):
            return True, rest[0]
        raise TypeError(f"config fields support Optional[X] only, not {tp!r}")
    return False, tp


def _type_name(tp: Any, plural: bool = False) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return "sections (mappings)" if plural else "a section (a mapping of keys)"
    if origin is Literal:
        return "one of " + ", ".join(_show(a) for a in args)
    if tp is bool:
        return "booleans" if plural else "true or false"
    if tp is int:
        return "integers" if plural else "an integer"
    if tp is float:
        return "numbers" if plural else "a float"
    if tp is str:
        return "strings" if plural else "a string"
    if tp is list or origin is list:
        inner = f" of {_type_name(args[0], plural=True)}" if args and args[0] is not Any else ""
        return ("lists" if plural else "a list") + inner
    if tp is dict or origin is dict:
        return "mappings" if plural else "a mapping"
    return getattr(tp, "__name__", str(tp))


def _field_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _all_keys(cls: type, prefix: KeyPath = ()) -> list[KeyPath]:
    """Every dotted key path under a section, nested sections included."""
    out = []
    hints = _field_hints(cls)
    for f in dataclasses.fields(cls):
        path = prefix + (f.name,)
        out.append(path)
        _, tp = _is_optional(hints[f.name])
        if dataclasses.is_dataclass(tp):
            out.extend(_all_keys(tp, path))
    return out


class _Validator:
    def __init__(self, root: type, origins: _Origins):
        self.root = root
        self.origins = origins

    # -- sections ---------------------------------------------------------------------------

    def section(self, cls: type, data: Any, path: KeyPath) -> Any:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            where = f"'{_dotted(path)}'" if path else "the top level"
            raise self.origins.error(path, f"{where} must be a section (a mapping of keys), got {_show(data)}")
        names = {f.name: f for f in dataclasses.fields(cls)}
        for key in data:
            if not isinstance(key, str) or key not in names:
                raise self.origins.error(path + (key,), self.unknown_key(cls, path, key), key=True)
        hints = _field_hints(cls)
        values = {name: self.value(hints[name], value, path + (name,), names[name].metadata) for name, value in data.items()}
        obj = cls(**values)
        check = getattr(obj, "cross_check", None)
        if check is not None:
            for name, message in check():
                sub = path + (name,)
                raise self.origins.error(sub, f"'{_dotted(sub)}' {message}")
        return obj

    def unknown_key(self, cls: type, path: KeyPath, key: Any) -> str:
        full = _dotted(path + (str(key),))
        if not isinstance(key, str):
            return f"key {_show(key)} in '{_dotted(path) or 'the top level'}' is not a name"
        rel = {_dotted(p[len(path):]): p for p in _all_keys(cls, path)}
        scored = sorted(
            ((difflib.SequenceMatcher(None, key.lower(), r.lower()).ratio(), r) for r in rel),
            key=lambda sr: -sr[0],
        )
        best = [r for s, r in scored if s >= 0.6 and s == scored[0][0]][:3] if scored else []
        if not best:  # a known name in the wrong section? e.g. brain.gamma -> dopamine.gamma
            best = [_dotted(p) for p in _all_keys(self.root) if p[-1] == key and p != path + (key,)][:3]
            suggestions = best
        else:
            suggestions = [_dotted(rel[r]) for r in best]
        if suggestions:
            return f"unknown key '{full}' (did you mean {_alternatives(suggestions)}?)"
        valid = ", ".join(f.name for f in dataclasses.fields(cls))
        return f"unknown key '{full}' (valid keys here: {valid})"

    # -- values -----------------------------------------------------------------------------

    def value(self, tp: Any, value: Any, path: KeyPath, meta: typing.Mapping) -> Any:
        optional, tp = _is_optional(tp)
        if value is None and optional:
            return None
        if dataclasses.is_dataclass(tp):
            return self.section(tp, value, path)
        key = _dotted(path)
        expected = _type_name(tp) + (" or null" if optional else "")

        def bad(hint: str = "") -> ConfigError:
            return self.origins.error(path, f"'{key}' expected {expected}, got {_show(value)}{hint}")

        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if tp is Any:
            return copy.deepcopy(value)
        if origin is Literal:
            return self.choice(args, value, path)
        if tp is bool:
            if not isinstance(value, bool):
                raise bad()
            return value
        if tp is int:
            out = _as_int(value)
            if out is None:
                raise bad(" (write e.g. 200000 or 2e5)" if isinstance(value, str) else "")
            return self.limits(out, value, path, meta)
        if tp is float:
            out = _as_float(value)
            if out is None:
                raise bad(" (write e.g. 0.0003 or 3e-4)" if isinstance(value, str) else "")
            return self.limits(out, value, path, meta)
        if tp is str:
            if not isinstance(value, str):
                raise bad(" (put it in quotes)" if value is not None else "")
            return value
        if tp is list or origin is list:
            if not isinstance(value, (list, tuple)):
                raise bad()
            item = args[0] if args else Any
            return [self.value(item, v, path + (i,), meta) for i, v in enumerate(value)]
        if tp is dict or origin is dict:
            if not isinstance(value, dict):
                raise bad()
            key_tp, item = args if args else (Any, Any)
            out = {}
            for k, v in value.items():
                if key_tp is str and not isinstance(k, str):
                    raise self.origins.error(path + (k,), f"'{key}' keys must be strings, got {_show(k)}", key=True)
                out[k] = self.value(item, v, path + (k,), {})
            return out
        raise TypeError(f"config field '{key}' has an unsupported type {tp!r}")

    def choice(self, choices: tuple, value: Any, path: KeyPath) -> Any:
        if isinstance(value, bool) and all(isinstance(c, str) for c in choices):
            # YAML 1.1 reads on/off/yes/no as booleans; take them back for string choices.
            for spelling in (("on", "true", "yes") if value else ("off", "false", "no")):
                if spelling in choices:
                    return spelling
        for c in choices:
            if type(c) is type(value) and c == value:
                return c
        hint = ""
        if isinstance(value, str):
            close = difflib.get_close_matches(value, [str(c) for c in choices], n=1, cutoff=0.5)
            if close:
                hint = f" (did you mean {close[0]!r}?)"
        options = ", ".join(_show(c) for c in choices)
        raise self.origins.error(path, f"'{_dotted(path)}' must be one of {options}; got {_show(value)}{hint}")

    def limits(self, value: float, raw: Any, path: KeyPath, meta: typing.Mapping) -> float:
        """``value`` (converted from ``raw``, as written) within the field's limits, or an error."""
        lo, hi, gt, lt = (meta.get(k) for k in _LIMITS)
        ok = (
            (lo is None or value >= lo)
            and (hi is None or value <= hi)
            and (gt is None or value > gt)
            and (lt is None or value < lt)
        )
        if ok:
            return value
        parts = []
        if lo is not None and hi is not None:
            parts.append(f"between {lo} and {hi}")
        elif lo is not None:
            parts.append(f">= {lo}")
        elif hi is not None:
            parts.append(f"<= {hi}")
        if gt is not None:
            parts.append(f"> {gt}")
        if lt is not None:
            parts.append(f"< {lt}")
        shown = raw.strip() if isinstance(raw, str) else _show(raw)
        raise self.origins.error(path, f"'{_dotted(path)}' must be {' and '.join(parts)}, got {shown}")


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            return None
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, str):
        try:
            out = float(value.strip())
        except ValueError:
            return None
        return None if math.isnan(out) else out
    return None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    number = _as_float(value)
    if number is None or not math.isfinite(number) or not number.is_integer():
        return None
    return int(number)


# --------------------------------------------------------------------------------------------
# Overrides
# --------------------------------------------------------------------------------------------


def _apply_override(data: dict, item: str, origins: _Origins) -> None:
    """Merge one ``a.b.c=value`` (value parsed by ``yaml.safe_load``, never eval) into ``data``."""
    label = f"--set {item}"
    key, eq, text = item.partition("=")
    key = key.strip()
    parts = key.split(".")
    if not eq or not key or not all(parts):
        raise ConfigError("expected key=value, e.g. --set brain.substeps=20 (put CONFIG before --set)", source=label)
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"cannot read the value {text!r} as YAML: {problem}", source=label, key=key) from None
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"cannot set '{key}': '{'.'.join(parts[: i + 1])}' is not a section", source=label, key=key)
        node = child
    node[parts[-1]] = value
    origins.overrides.append((tuple(parts), label))


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def _validate(data: Any, origins: _Origins, overrides: typing.Iterable[str] = (), schema: type = Config) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"the top level must be a mapping of sections (env:, brain:, run:, ...), got {_show(data)}",
            source=origins.source,
            line=1 if origins.source.endswith((".yaml", ".yml")) else None,
        )
    data = copy.deepcopy(data)
    if isinstance(overrides, str):
        overrides = [overrides]
    for item in overrides:
        _apply_override(data, item, origins)
    return _Validator(schema, origins).section(schema, data, ())


def config_from_dict(
    d: dict | None, source: str = "<dict>", overrides: typing.Iterable[str] = (), *, schema: type = Config
) -> Any:
    """Validate a plain dict (as YAML would give) into a :class:`Config` (or into any other
    dataclass tree given as ``schema``); missing keys keep their defaults.

    >>> config_from_dict({"run": {"steps": "1e6"}}).run.steps
    1000000
    """
    return _validate(d, _Origins(source), overrides, schema)


def load_config(path: str | Path | None, overrides: typing.Iterable[str] = ()) -> Config:
    """Read a YAML config (``None``: all defaults), merge ``--set`` style overrides
    (``"brain.substeps=10"``), validate, and check that the env id is registered.

    Raises :class:`ConfigError` (one line, with file, line and key) for anything wrong.
    """
    if path is None:
        origins = _Origins("<defaults>")
        data = {}
    else:
        path = Path(path)
        origins = _Origins(str(path))
        if path.is_dir():
            hint = f" (did you mean '{path / 'config.yaml'}'?)" if (path / "config.yaml").is_file() else ""
            raise ConfigError(f"is a folder, not a YAML config file{hint}", source=str(path))
        if not path.is_file():
            hint = ""
            if path.parent.is_dir():
                stems = {p.stem: p.name for p in path.parent.iterdir() if p.suffix in (".yaml", ".yml")}
                close = difflib.get_close_matches(path.stem, list(stems), n=1, cutoff=0.6)
                if close:
                    hint = f" (did you mean '{path.parent / stems[close[0]]}'?)"
            raise ConfigError(f"no such config file{hint}", source=str(path))
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ConfigError("is not a UTF-8 text file", source=str(path)) from None
        data = _parse_yaml(text, origins)
    cfg = _validate(data, origins, overrides)
    source, line = origins.locate(("env", "id"))
    check_env_id(cfg, source=source, line=line)
    _check_encoder_dimensions(cfg, origins)
    _check_value_init(cfg, origins)
    return cfg


def _check_value_init(cfg: Config, origins: _Origins) -> None:
    """``dopamine.value_init`` must lie strictly inside the critic's value range (the bias would be infinite
    at an end), and replaces ``brain.critic_bias``: setting both is a mistake."""
    v0 = cfg.dopamine.value_init
    if v0 is None:
        return
    low, high = cfg.dopamine.value_range(cfg.env.failure_reward)
    if not low < v0 < high:
        raise origins.error(("dopamine", "value_init"), f"'dopamine.value_init' must lie strictly between the critic's "
                                                         f"value range ends {low:g} and {high:g} (dopamine.value_low/high)")
    if cfg.brain.critic_bias != 0.0:
        raise origins.error(("dopamine", "value_init"), "'dopamine.value_init' sets the critic's bias: leave "
                                                         "'brain.critic_bias' out, or drop 'dopamine.value_init'")


def _check_encoder_dimensions(cfg: Config, origins: _Origins) -> None:
    """Raise :class:`ConfigError` when ``encoder.low/high/angles/pairs`` name dimensions the env's
    observations do not have (the env is made, briefly, only when one of them is set)."""
    e = cfg.encoder
    if not (e.pairs or e.angles or e.low is not None or e.high is not None):
        return
    import gymnasium

    from spikegym.envs import obs_bounds

    env = gymnasium.make(cfg.env.id, **cfg.env.kwargs)
    try:
        dims = len(obs_bounds(env.observation_space)[0])
    finally:
        env.close()
    for name in ("low", "high"):
        values = getattr(e, name)
        if values is not None and len(values) != dims:
            raise origins.error(("encoder", name), f"'encoder.{name}' has {len(values)} values but {cfg.env.id} "
                                                   f"observations have {dims} dimensions")
    for i, pair in enumerate(e.angles):
        if max(pair) >= dims:
            raise origins.error(("encoder", "angles", i), f"'encoder.angles' names dimension {max(pair)}, but "
                                                          f"{cfg.env.id} observations have {dims} (0 .. {dims - 1})")
    coded = dims + len(e.angles)
    for i, pair in enumerate(e.pairs):
        if max(pair) >= coded:
            raise origins.error(("encoder", "pairs", i), f"'encoder.pairs' names dimension {max(pair)}, but {cfg.env.id} "
                                                         f"has {coded} coded dimensions ({dims} observed + {len(e.angles)} angles)")


def check_env_id(cfg: Config, *, source: str | None = None, line: int | None = None) -> None:
    """Raise :class:`ConfigError` unless ``cfg.env.id`` is a registered Gymnasium env id.

    ``module:EnvId`` imports ``module`` first (as ``gymnasium.make`` does). ``spikegym.envs`` is
    imported too, so envs it registers count. Gymnasium is imported here, lazily.
    """
    import gymnasium

    from spikegym.envs import registered_id  # (importing spikegym.envs registers our own envs, if any)

    env_id = cfg.env.id
    try:
        name = registered_id(env_id)
    except ImportError as err:
        module = env_id.rpartition(":")[0]
        raise ConfigError(
            f"'env.id' {env_id!r}: cannot import module {module!r} ({err})", source=source, line=line, key="env.id"
        ) from None
    registry = gymnasium.envs.registry
    if name in registry:
        return
    by_lower = {k.lower(): k for k in registry}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.6)
    if close:
        hint = f" (did you mean {_alternatives([by_lower[c] for c in close])}?)"
    elif "/" in name:
        hint = f" (if a plugin package registers it, write 'package:{name}' so it is imported first)"
    else:
        hint = " (see gymnasium.envs.registry for the ids)"
    raise ConfigError(f"unknown env id {env_id!r} for 'env.id'{hint}", source=source, line=line, key="env.id")


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return copy.deepcopy(value)


def config_to_dict(cfg: Any) -> dict:
    """A config (or one section) as plain nested dicts/lists, in schema order; safe to YAML-dump."""
    return _plain(cfg)


def config_to_yaml(cfg: Any) -> str:
    """The resolved config as YAML text that :func:`load_config` reads back to an equal config."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=None)


def save_resolved_config(cfg: Config, path: str | Path) -> Path:
    """Write the resolved config as YAML (atomically: temp file then rename). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "# spikegym resolved config: every setting, defaults included\n" + config_to_yaml(cfg))
    return path


def config_reference(cls: type = Config) -> str:
    """A Markdown table of every key: type, default, limits and help (the config documentation)."""
    rows = ["| key | type | default | help |", "|---|---|---|---|"]

    def walk(c: type, prefix: KeyPath) -> None:
        hints = _field_hints(c)
        for f in dataclasses.fields(c):
            path = prefix + (f.name,)
            optional, tp = _is_optional(hints[f.name])
            if dataclasses.is_dataclass(tp):
                rows.append(f"| **{_dotted(path)}** | section | | {f.metadata.get('help', '')} |")
                walk(tp, path)
                continue
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            limits = [f"{k} {f.metadata[k]}" for k in _LIMITS if k in f.metadata]
            help_text = f.metadata.get("help", "") + (f" [{', '.join(limits)}]" if limits else "")
            type_text = _type_name(tp) + (" or null" if optional else "")
            shown = json.dumps(default) if isinstance(default, (dict, list)) else _show(default)
            rows.append(f"| {_dotted(path)} | {type_text} | {shown} | {help_text} |")

    walk(cls, ())
    return "\n".join(rows)
