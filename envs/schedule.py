"""Task schedules: worlds that change mid-life, one episode boundary at a time.

A schedule is a list of phases, each lasting a number of env steps and naming the changes
(:mod:`spikegym.envs.changes`) in force during it::

    schedule:
      cycle: true            # repeat the phases forever (false: the last phase holds)
      cycle_from: 0          # optional: phases before this index play once (a warm-up)
      seed: 0                # optional: seed of the random draws (default: the run seed)
      draws: shared          # optional: shared (every agent sees the same draw) | per_agent
      phases:
        - {name: A, steps: 20000, changes: {gravity: 9.8, length: 0.5}}
        - {name: B, steps: 20000, changes: {gravity: 15.0, length: 1.0}}
        - {name: slippery, steps: 50000, changes: {friction: {log_uniform: [0.02, 2.0]}}}

* Each phase is relative to the env as built: a change a phase does not name is at its base value.
* Phases with the same ``name`` are the same task and must name the same changes.
* A value may be a random draw -- ``{uniform: [lo, hi]}``, ``{log_uniform: [lo, hi]}`` or
  ``{choice: [v1, v2, ...]}`` -- made once per *occurrence* of the phase (the k-th phase played,
  counting repeats), from a generator seeded by ``(seed, occurrence, stream, change name)``:
  reproducible, and independent of the order of the keys.

:class:`TaskScheduleWrapper` puts a schedule on one env. It applies pending changes **only at
reset**, so an episode never changes its world halfway, and each sub-env of a vector env switches
at its own episode boundary.

    >>> s = TaskSchedule.from_dict({"cycle": True, "phases": [
    ...     {"name": "A", "steps": 100}, {"name": "B", "steps": 50, "changes": {"gravity": 15.0}}]})
    >>> [s.phase_at(t)[0] for t in (0, 99, 100, 149, 150, 310)]
    [0, 0, 1, 1, 2, 4]
    >>> s.phase_at(120)[1].name, s.phase_at(120)[2]
    ('B', {'gravity': 15.0})
"""

from __future__ import annotations

import difflib
import zlib
from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple, Optional

import numpy as np

from spikegym.envs.changes import CHANGES, nearest_change, parse_number

__all__ = ["ScheduleError", "Draw", "Phase", "PhaseSpan", "TaskSchedule", "TaskScheduleWrapper"]

_TOP_KEYS = ("phases", "cycle", "cycle_from", "seed", "draws")
_PHASE_KEYS = ("name", "steps", "changes")
_DRAW_KINDS = ("uniform", "log_uniform", "choice")
SENSOR_SALT = 0x5E5E  # separates the sensor-noise stream from the schedule draws


class ScheduleError(ValueError):
    """A schedule that cannot be used; ``phase`` (index or None) and ``key`` say where.

    ``path`` is the key path inside the schedule dict (``("phases", 1, "changes", "gravty")``) and
    ``problem`` the message without the location, so that a config can name ``env.schedule.phases[1]...``.
    """

    def __init__(self, message: str, *, phase: Optional[int] = None, key: Optional[str] = None,
                 phase_name: Optional[str] = None, path: Optional[tuple] = None):
        where = []
        if phase is not None:
            where.append(f"phase {phase}" + (f" ({phase_name!r})" if phase_name else ""))
        if key is not None:
            where.append(f"key {key!r}")
        super().__init__(f"schedule {', '.join(where)}: {message}" if where else f"schedule: {message}")
        self.phase, self.key, self.problem = phase, key, message
        if path is None:
            path = (("phases", phase) if phase is not None else ()) + ((key,) if key is not None else ())
        self.path = tuple(path)


def _did_you_mean(name: str, valid) -> str:
    hits = difflib.get_close_matches(str(name), list(valid), n=1, cutoff=0.5)
    return f"; did you mean {hits[0]!r}?" if hits else f"; valid: {', '.join(valid)}"


def _int_steps(value: Any, what: str) -> int:
    v = parse_number(value, what)  # accepts "2e4" (PyYAML reads 2e4 as a string)
    if v != int(v) or v <= 0:
        raise ValueError(f"{what} must be a positive whole number of steps, got {value!r}")
    return int(v)


# --------------------------------------------------------------------------- pieces


@dataclass(frozen=True)
class Draw:
    """A random value drawn once per phase occurrence: ``kind`` in uniform | log_uniform | choice."""

    kind: str
    args: tuple

    def sample(self, rng: np.random.Generator) -> Any:
        if self.kind == "uniform":
            return float(rng.uniform(self.args[0], self.args[1]))
        if self.kind == "log_uniform":
            return float(np.exp(rng.uniform(np.log(self.args[0]), np.log(self.args[1]))))
        return self.args[int(rng.integers(len(self.args)))]

    def to_dict(self) -> dict:
        return {self.kind: [list(a) if isinstance(a, tuple) else a for a in self.args]}


@dataclass(frozen=True)
class Phase:
    """One phase of a schedule: ``changes`` maps change names to values or :class:`Draw` s."""

    index: int
    name: str
    steps: int
    changes: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        ch = {k: (v.to_dict() if isinstance(v, Draw) else (list(v) if isinstance(v, tuple) else v))
              for k, v in self.changes.items()}
        return {"name": self.name, "steps": self.steps, "changes": ch}


class PhaseSpan(NamedTuple):
    """Where the ``occurrence``-th phase played sits on the step axis: ``[start, end)``."""

    occurrence: int
    index: int
    name: str
    start: int
    end: int


def _parse_value(name: str, value: Any) -> Any:
    change = CHANGES[name]
    if isinstance(value, Mapping):
        if len(value) != 1:
            raise ValueError(f"a random draw is one of {{{', '.join(k + ': [...]' for k in _DRAW_KINDS)}}}, "
                             f"got {dict(value)!r}")
        (kind, args), = value.items()
        if kind not in _DRAW_KINDS:
            raise ValueError(f"unknown random draw {kind!r}{_did_you_mean(kind, _DRAW_KINDS)}")
        if not isinstance(args, (list, tuple)) or len(args) == 0:
            raise ValueError(f"{kind} needs a list, e.g. {{{kind}: [0.02, 2.0]}}")
        if kind == "choice":
            return Draw(kind, tuple(change.parse(a) for a in args))
        if not change.scalar:
            raise ValueError(f"{kind} draws need a one-number change; use choice: [...] for {name}")
        if len(args) != 2:
            raise ValueError(f"{kind} needs [low, high], got {list(args)!r}")
        lo, hi = (change.parse(a) for a in args)
        lo, hi = parse_number(lo, "low"), parse_number(hi, "high")
        if hi < lo:
            raise ValueError(f"{kind} needs low <= high, got [{lo}, {hi}]")
        if kind == "log_uniform" and lo <= 0:
            raise ValueError(f"log_uniform needs low > 0, got {lo}")
        return Draw(kind, (lo, hi))
    return change.parse(value)


# --------------------------------------------------------------------------- the schedule


@dataclass(frozen=True)
class TaskSchedule:
    """Phases in order; :meth:`phase_at` says which one is in force at a step."""

    phases: tuple[Phase, ...]
    cycle: bool = False
    cycle_from: int = 0
    seed: int = 0
    draws: str = "shared"

    # ---- construction -----------------------------------------------------------------

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, seed: int = 0) -> "TaskSchedule":
        """Validate a schedule dict (the ``env.schedule`` section of a config).

        Args:
            d: the dict (see the module docstring).
            seed: seed of the random draws when ``d`` has no ``seed`` (make_vector_env passes the run seed).
        Raises:
            ScheduleError: naming the phase index and key, with the nearest valid name.
        """
        if isinstance(d, TaskSchedule):
            return d
        if not isinstance(d, Mapping):
            raise ScheduleError(f"expected a mapping with 'phases', got {type(d).__name__}")
        for k in d:
            if k not in _TOP_KEYS:
                raise ScheduleError(f"unknown key{_did_you_mean(k, _TOP_KEYS)}", key=str(k))
        phases_in = d.get("phases")
        if not isinstance(phases_in, (list, tuple)) or not phases_in:
            raise ScheduleError("needs a non-empty list of phases, e.g. "
                                "phases: [{name: A, steps: 20000, changes: {gravity: 9.8}}]", key="phases")
        cycle = d.get("cycle", False)
        if not isinstance(cycle, bool):
            raise ScheduleError(f"must be true or false, got {cycle!r}", key="cycle")
        if d.get("seed") is not None:
            try:
                v = parse_number(d["seed"], "seed")
            except ValueError as e:
                raise ScheduleError(str(e), key="seed") from None
            if v != int(v):
                raise ScheduleError(f"must be a whole number, got {d['seed']!r}", key="seed")
            seed = int(v)
        if seed < 0:
            raise ScheduleError(f"must be >= 0, got {seed}", key="seed")
        draws = d.get("draws", "shared")
        if draws not in ("shared", "per_agent"):
            raise ScheduleError(f"must be 'shared' or 'per_agent', got {draws!r}", key="draws")

        phases: list[Phase] = []
        seen: dict[str, Phase] = {}
        for i, p in enumerate(phases_in):
            if not isinstance(p, Mapping):
                raise ScheduleError(f"a phase is a mapping {{name, steps, changes}}, got {p!r}", phase=i)
            name = str(p.get("name", f"phase{i}"))
            for k in p:
                if k not in _PHASE_KEYS:
                    raise ScheduleError(f"unknown key{_did_you_mean(k, _PHASE_KEYS)}", phase=i, key=str(k),
                                        phase_name=name)
            if "steps" not in p:
                raise ScheduleError("missing (how many env steps the phase lasts)", phase=i, key="steps",
                                    phase_name=name)
            try:
                steps = _int_steps(p["steps"], "steps")
            except ValueError as e:
                raise ScheduleError(str(e), phase=i, key="steps", phase_name=name) from None
            raw = p.get("changes") or {}
            if not isinstance(raw, Mapping):
                raise ScheduleError(f"changes is a mapping name -> value, got {raw!r}", phase=i, key="changes",
                                    phase_name=name)
            changes = {}
            for key, value in raw.items():
                if key not in CHANGES:
                    near = nearest_change(key)
                    hint = f"; did you mean {near!r}?" if near else f"; valid: {', '.join(sorted(CHANGES))}"
                    raise ScheduleError(f"unknown change{hint}", phase=i, key=str(key), phase_name=name,
                                        path=("phases", i, "changes", key))
                try:
                    changes[key] = _parse_value(key, value)
                except ValueError as e:
                    raise ScheduleError(f"{CHANGES[key].doc}: {e}", phase=i, key=key, phase_name=name,
                                        path=("phases", i, "changes", key)) from None
            phase = Phase(i, name, steps, changes)
            if name in seen and dict(seen[name].changes) != changes:
                raise ScheduleError(f"phase {seen[name].index} has the same name with other changes; a name is a "
                                    "task, so give different tasks different names", phase=i, key="name",
                                    phase_name=name)
            seen.setdefault(name, phase)
            phases.append(phase)

        cycle_from = d.get("cycle_from", 0)
        try:
            cycle_from = int(parse_number(cycle_from, "cycle_from"))
        except ValueError as e:
            raise ScheduleError(str(e), key="cycle_from") from None
        if not 0 <= cycle_from < len(phases):
            raise ScheduleError(f"must index a phase (0..{len(phases) - 1}), got {cycle_from}", key="cycle_from")
        if cycle_from and not cycle:
            raise ScheduleError("only means something with cycle: true", key="cycle_from")
        return cls(tuple(phases), cycle, cycle_from, seed, draws)

    def to_dict(self) -> dict:
        """The schedule as a plain dict; ``TaskSchedule.from_dict(s.to_dict()) == s``."""
        out = {"cycle": self.cycle, "seed": self.seed, "draws": self.draws,
               "phases": [p.to_dict() for p in self.phases]}
        if self.cycle_from:
            out["cycle_from"] = self.cycle_from
        return out

    # ---- where are we -----------------------------------------------------------------

    @property
    def _prefix_steps(self) -> int:
        return sum(p.steps for p in self.phases[: self.cycle_from])

    @property
    def _loop(self) -> tuple[Phase, ...]:
        return self.phases[self.cycle_from:]

    def occurrence_at(self, step: int) -> int:
        """Index of the phase occurrence in force at env step ``step`` (0, 1, 2, ... counting repeats)."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        n = len(self.phases)
        if not self.cycle or step < self._prefix_steps:
            ends = np.cumsum([p.steps for p in self.phases])
            return min(int(np.searchsorted(ends, step, side="right")), n - 1)
        rest = step - self._prefix_steps
        loop = self._loop
        k, r = divmod(rest, sum(p.steps for p in loop))
        j = int(np.searchsorted(np.cumsum([p.steps for p in loop]), r, side="right"))
        return self.cycle_from + k * len(loop) + j

    def phase_of(self, occurrence: int) -> Phase:
        """The :class:`Phase` played as the ``occurrence``-th phase."""
        if occurrence < 0:
            raise ValueError(f"occurrence must be >= 0, got {occurrence}")
        if not self.cycle or occurrence < self.cycle_from:
            return self.phases[min(occurrence, len(self.phases) - 1)]
        loop = self._loop
        return loop[(occurrence - self.cycle_from) % len(loop)]

    def occurrence_start(self, occurrence: int) -> int:
        """The env step at which the ``occurrence``-th phase begins."""
        if not self.cycle or occurrence <= self.cycle_from:
            occ = min(occurrence, len(self.phases) - 1)
            return sum(p.steps for p in self.phases[:occ])
        loop = self._loop
        k, j = divmod(occurrence - self.cycle_from, len(loop))
        return self._prefix_steps + k * sum(p.steps for p in loop) + sum(p.steps for p in loop[:j])

    def resolve(self, occurrence: int, *, stream: int = 0) -> dict[str, Any]:
        """The change values of the ``occurrence``-th phase, random draws made (reproducibly).

        ``stream`` (the agent's index) only matters with ``draws: per_agent``.
        """
        phase = self.phase_of(occurrence)
        s = stream if self.draws == "per_agent" else 0
        out = {}
        for name, spec in phase.changes.items():
            if isinstance(spec, Draw):
                rng = np.random.default_rng([self.seed, occurrence, s, zlib.crc32(name.encode())])
                out[name] = spec.sample(rng)
            else:
                out[name] = spec
        return out

    def phase_at(self, step: int, *, stream: int = 0) -> tuple[int, Phase, dict[str, Any]]:
        """``(occurrence, phase, resolved_changes)`` in force at env step ``step``."""
        occ = self.occurrence_at(step)
        return occ, self.phase_of(occ), self.resolve(occ, stream=stream)

    def spans(self, total_steps: int) -> list[PhaseSpan]:
        """The phases played in ``[0, total_steps)``, for plots and :mod:`spikegym.training.continual`."""
        out: list[PhaseSpan] = []
        occ, start = 0, 0
        while start < total_steps:
            nxt = self.occurrence_start(occ + 1) if (self.cycle or occ + 1 < len(self.phases)) else total_steps
            end = min(nxt, total_steps)
            p = self.phase_of(occ)
            out.append(PhaseSpan(occ, p.index, p.name, start, end))
            occ, start = occ + 1, end
        return out

    def change_names(self) -> list[str]:
        """Every change that some phase names (in first-use order)."""
        names: list[str] = []
        for p in self.phases:
            names.extend(n for n in p.changes if n not in names)
        return names

    def first_use(self, name: str) -> Phase:
        return next(p for p in self.phases if name in p.changes)


from spikegym.envs.schedule_wrapper import TaskScheduleWrapper  # noqa: E402 - re-exported (it imports this module)
