"""Continual-learning metrics of one learning curve: phases, recovery, forgetting, AUC, plasticity health.

Pure numpy functions on ``curve_steps`` / ``returns`` and a schedule's phases; the concepts (which
phase an episode belongs to, ``ref_min`` / ``ref_max`` normalisation, smoothing within a phase) are
explained in :mod:`spikegym.training.continual`, which re-exports everything here.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

__all__ = ["REF_MIN", "episode_phases", "phase_returns", "running_mean", "recovery_steps", "forgetting",
           "normalized_auc", "forward_transfer", "phase_return_slope", "plasticity_health"]

#: Returns of an agent with no competence (the lowest attainable or the usual floor), for ``ref_min``.
#: Pendulum-v1: the worst per-step cost is pi^2 + 0.1 * 8^2 + 0.001 * 2^2 = 16.2736, times 200 steps.
REF_MIN = {"CartPole-v1": 0.0, "CartPole-v0": 0.0, "Acrobot-v1": -500.0, "MountainCar-v0": -200.0,
           "Pendulum-v1": -3254.72, "InvertedPendulum-v5": 0.0, "InvertedDoublePendulum-v5": 0.0}

RefArg = Union[None, float, Mapping[str, float]]
Assign = Union[str, Sequence[int], np.ndarray]  # "start" | "end" | one phase label per episode


# --------------------------------------------------------------------------- phases


def _spans(phase_bounds) -> np.ndarray:
    """``[P, 2]`` int array of ``[start, end)`` from pairs, span objects, or ``P + 1`` boundaries."""
    items = list(phase_bounds)
    if items and hasattr(items[0], "start") and hasattr(items[0], "end"):
        arr = np.array([[s.start, s.end] for s in items], dtype=np.int64)
    else:
        arr = np.asarray(items, dtype=np.int64)
        if arr.ndim == 1:
            if arr.size < 2:
                raise ValueError("phase boundaries need at least [start, end]")
            arr = np.stack([arr[:-1], arr[1:]], axis=1)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"phase_bounds must be [(start, end), ...] or boundaries [b0, b1, ...], got shape {arr.shape}")
    if np.any(arr[:, 1] <= arr[:, 0]) or np.any(arr[1:, 0] < arr[:-1, 1]):
        raise ValueError("phases must have start < end and must not overlap")
    return arr


def _tasks(phase_bounds, tasks: Optional[Sequence[str]], n: int) -> list[str]:
    if tasks is None:
        items = list(phase_bounds)
        if items and hasattr(items[0], "name"):
            return [str(s.name) for s in items]
        return [str(i) for i in range(n)]  # every phase its own task
    if len(tasks) != n:
        raise ValueError(f"{len(tasks)} task names for {n} phases")
    return [str(t) for t in tasks]


def episode_phases(curve_steps, phase_bounds, *, assign: Assign = "start") -> np.ndarray:
    """Phase index of every episode (``[E]`` ints, -1 outside every phase); see ``assign`` above.

    ``assign`` may also be the labels themselves, one phase index per episode (``[E]`` ints, e.g. the
    ``info["task"]`` the schedule wrapper put on each episode's last step); labels outside the
    phases become -1.

        >>> episode_phases([30, 90, 120, 200], [0, 100, 200]).tolist()
        [0, 0, 0, 1]
        >>> episode_phases([30, 90, 120, 200], [0, 100, 200], assign="end").tolist()
        [0, 0, 1, 1]
        >>> episode_phases([30, 90, 120, 200], [0, 100, 200], assign=[0, 1, 1, 2]).tolist()
        [0, 1, 1, -1]
    """
    ends = np.asarray(curve_steps, dtype=np.int64).reshape(-1)
    spans = _spans(phase_bounds)
    out = np.full(ends.shape, -1, dtype=np.int64)
    if not isinstance(assign, str):
        labels = np.asarray(assign, dtype=np.int64).reshape(-1)
        if labels.shape != ends.shape:
            raise ValueError(f"{labels.size} phase labels for {ends.size} episodes")
        return np.where((labels >= 0) & (labels < len(spans)), labels, -1)
    if assign == "start":
        key = np.concatenate([[0], ends[:-1]]) if ends.size else ends
        for p, (s, e) in enumerate(spans):
            out[(key >= s) & (key < e)] = p
    elif assign == "end":
        for p, (s, e) in enumerate(spans):
            out[(ends > s) & (ends <= e)] = p
    else:
        raise ValueError(f"assign must be 'start' or 'end', got {assign!r}")
    return out


def phase_returns(curve_steps, returns, phase_bounds, *, assign: Assign = "start") -> list[np.ndarray]:
    """The returns of the episodes of each phase, one array per phase (may be empty)."""
    r = np.asarray(returns, dtype=np.float64).reshape(-1)
    ph = episode_phases(curve_steps, phase_bounds, assign=assign)
    if ph.shape != r.shape:
        raise ValueError(f"curve_steps {ph.shape} and returns {r.shape} differ in length")
    return [r[ph == p] for p in range(len(_spans(phase_bounds)))]


def running_mean(x, window: int) -> np.ndarray:
    """Trailing mean over the last ``window`` values, expanding at the start (``[n] -> [n]``).

        >>> running_mean([0, 2, 4, 6], 2).tolist()
        [0.0, 1.0, 3.0, 5.0]
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    c = np.concatenate([[0.0], np.cumsum(x)])
    i = np.arange(1, x.size + 1)
    lo = np.maximum(i - window, 0)
    return (c[i] - c[lo]) / (i - lo)


# --------------------------------------------------------------------------- references


def _ref(arg: RefArg, task: str) -> Optional[float]:
    if arg is None:
        return None
    if isinstance(arg, Mapping):
        return None if arg.get(task) is None else float(arg[task])
    return float(arg)


def _task_refs(per_phase: list[np.ndarray], tasks: list[str], window: int, ref_min: RefArg,
               ref_max: RefArg) -> dict[str, tuple[float, float]]:
    """``task -> (ref_min, ref_max)`` with the data-derived defaults of the module docstring."""
    out = {}
    for task in dict.fromkeys(tasks):
        chunks = [r for r, t in zip(per_phase, tasks) if t == task and r.size]
        lo, hi = _ref(ref_min, task), _ref(ref_max, task)
        if lo is None:
            lo = float(min(c.min() for c in chunks)) if chunks else 0.0
        if hi is None:
            hi = float(max(running_mean(c, window).max() for c in chunks)) if chunks else lo
        out[task] = (lo, hi)
    return out


def _head(r: np.ndarray, window: int) -> float:
    return float(r[:window].mean())


def _tail(r: np.ndarray, window: int) -> float:
    return float(r[-window:].mean())


def _previous(tasks: list[str], per_phase: list[np.ndarray], p: int) -> Optional[int]:
    """The last earlier phase of the same task that has episodes."""
    for q in range(p - 1, -1, -1):
        if tasks[q] == tasks[p] and per_phase[q].size:
            return q
    return None


# --------------------------------------------------------------------------- metrics


def recovery_steps(curve_steps, returns, phase_bounds, tasks: Optional[Sequence[str]] = None, *,
                   window: int = 10, threshold: float = 0.9, ref_min: RefArg = None,
                   assign: Assign = "start", origins: Optional[Sequence[Optional[float]]] = None
                   ) -> list[Optional[int]]:
    """Steps after each switch until the smoothed return is back to ``threshold`` of the level.

    For phase ``p`` of task ``T`` the level ``L`` is the mean of the last ``window`` returns of
    the previous phase of ``T`` (revisit) or of phase ``p`` itself (new task; the first phase
    counts as a switch at its start). The target is ``ref_min + threshold * (L - ref_min)``
    (sign-safe). The result is ``curve_steps[e] - start_p`` for the first episode ``e`` of the
    phase whose running mean reaches the target, or None if none does (or the phase has no episodes).

    Args:
        origins: optional ``[P]`` steps at which *this agent* entered each phase (its own switch,
            at its first episode boundary after the schedule's; None: the phase's start), used as
            ``start_p`` instead of the schedule's phase start.
    Returns:
        one entry per phase.
    """
    steps = np.asarray(curve_steps, dtype=np.int64).reshape(-1)
    spans = _spans(phase_bounds)
    names = _tasks(phase_bounds, tasks, len(spans))
    per_phase = phase_returns(steps, returns, spans, assign=assign)
    ph = episode_phases(steps, spans, assign=assign)
    refs = _task_refs(per_phase, names, window, ref_min, None)
    out: list[Optional[int]] = []
    for p, r in enumerate(per_phase):
        if r.size == 0:
            out.append(None)
            continue
        q = _previous(names, per_phase, p)
        level = _tail(per_phase[q] if q is not None else r, window)
        m = refs[names[p]][0]
        target = m + threshold * (level - m)
        sm = running_mean(r, window)
        hit = np.flatnonzero(sm >= target - 1e-9 * max(1.0, abs(target)))
        start = spans[p, 0] if origins is None or origins[p] is None else origins[p]
        out.append(int(steps[ph == p][hit[0]] - start) if hit.size else None)
    return out


def forgetting(curve_steps, returns, phase_bounds, tasks: Optional[Sequence[str]] = None, *,
               window: int = 10, ref_min: RefArg = None, ref_max: RefArg = None,
               assign: Assign = "start") -> list[Optional[float]]:
    """Forgetting at each revisit, as in Continual World, normalised by the task's level.

    For a phase ``p`` of task ``T`` whose previous phase of ``T`` is ``q``::

        F_p = (end_q - start_p) / (ref_max_T - ref_min_T)

    with ``end_q`` the mean of the last ``window`` returns of phase ``q`` and ``start_p`` the mean
    of the first ``window`` returns of phase ``p``: 0 = nothing forgotten, 1 = the whole level lost,
    negative = better on return (backward transfer). None for first visits and empty phases.
    """
    spans = _spans(phase_bounds)
    names = _tasks(phase_bounds, tasks, len(spans))
    per_phase = phase_returns(curve_steps, returns, spans, assign=assign)
    refs = _task_refs(per_phase, names, window, ref_min, ref_max)
    out: list[Optional[float]] = []
    for p, r in enumerate(per_phase):
        q = _previous(names, per_phase, p)
        if q is None or r.size == 0:
            out.append(None)
            continue
        lo, hi = refs[names[p]]
        diff = _tail(per_phase[q], window) - _head(r, window)
        scale = hi - lo
        out.append(float(diff / scale) if scale > 0 else (0.0 if diff == 0 else None))
    return out


def normalized_auc(curve_steps, returns, start: int, end: int, *, ref_min: float, ref_max: float) -> float:
    """Area under the normalised learning curve over ``[start, end)``, in ``[0, 1]``.

    Each episode's score ``(R - ref_min) / (ref_max - ref_min)`` (clipped to [0, 1]) holds over the
    steps it was played (from the previous episode's end to its own, clipped to the window), so the
    AUC is the step-weighted mean score. Steps of the window with no finished episode are not counted.

        >>> normalized_auc([100, 200, 400], [0.0, 1.0, 0.5], 0, 400, ref_min=0.0, ref_max=1.0)
        0.5
    """
    ends = np.asarray(curve_steps, dtype=np.float64).reshape(-1)
    r = np.asarray(returns, dtype=np.float64).reshape(-1)
    if ref_max <= ref_min:
        raise ValueError(f"normalized_auc needs ref_max > ref_min, got {ref_min}, {ref_max}")
    begins = np.concatenate([[0.0], ends[:-1]])
    dur = np.clip(np.minimum(ends, end) - np.maximum(begins, start), 0.0, None)
    if dur.sum() <= 0:
        return float("nan")
    score = np.clip((r - ref_min) / (ref_max - ref_min), 0.0, 1.0)
    return float((score * dur).sum() / dur.sum())


def forward_transfer(auc_agent: float, auc_scratch: float, auc_max: float = 1.0) -> float:
    """Continual World's forward transfer ``(AUC - AUC_b) / (auc_max - AUC_b)``.

    ``auc_agent``: normalised AUC of the agent learning the task after others; ``auc_scratch``:
    that of an agent learning it from scratch for as long. 0 = no transfer, 1 = instantly at the
    level, negative = the earlier tasks hurt. 0.0 when the baseline is already at ``auc_max``.

        >>> forward_transfer(0.75, 0.5)
        0.5
    """
    room = auc_max - auc_scratch
    if room <= 0:
        return 0.0
    return float((auc_agent - auc_scratch) / room)


def phase_return_slope(final_returns_per_phase_same_task, *, ref_min: float = 0.0,
                       ref_max: Optional[float] = None) -> float:
    """Least-squares slope of a task's final return over its successive visits, normalised.

    ``slope / (ref_max - ref_min)`` per visit, with ``ref_max`` defaulting to the best value: -0.1
    means 10 % of the task's level lost at each visit (loss of plasticity, Dohare et al. 2024).
    ``ref_min`` defaults to 0, right for positive returns; for negative returns pass the env's
    (``REF_MIN``), otherwise the normalisation would flip sign and this raises.

        >>> phase_return_slope([500, 400, 300])
        -0.2
    """
    y = np.asarray(final_returns_per_phase_same_task, dtype=np.float64).reshape(-1)
    if y.size < 2:
        raise ValueError("a slope needs the task's final return from at least two visits")
    hi = float(y.max()) if ref_max is None else float(ref_max)
    scale = hi - ref_min
    if scale <= 0:
        raise ValueError(f"returns are not above ref_min={ref_min} (best {hi}); pass ref_min, the return of an "
                         "agent with no competence (e.g. REF_MIN['MountainCar-v0'] = -200)")
    x = np.arange(y.size, dtype=np.float64)
    slope = np.sum((x - x.mean()) * (y - y.mean())) / np.sum((x - x.mean()) ** 2)
    return float(slope / scale)


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, on any device
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def plasticity_health(weights, rates, *, eps: float = 1e-3) -> dict:
    """Signs of lost plasticity: dormant neurons, weight growth, collapsed rate diversity.

    Args:
        weights: an array ``[B, N_pre, N_post]`` (any shape with the agent first) or a dict name -> array.
        rates: firing rates ``[B, N]`` (or ``[N]``), or a dict population -> ``[B, N]``; any unit.
        eps: a neuron whose rate is below ``eps`` (same unit) is dormant.
    Returns:
        ``dormant_fraction`` (all agents and neurons), ``dormant_fraction_per_agent``,
        ``weight_abs_mean``, ``weight_abs_max``, ``rate_mean``, ``rate_std`` (spread across neurons,
        mean over agents), and per-name entries under ``"weights"`` / ``"rates"`` for dicts.
    """
    w_items = weights.items() if isinstance(weights, Mapping) else [("all", weights)]
    r_items = rates.items() if isinstance(rates, Mapping) else [("all", rates)]
    out: dict[str, Any] = {}
    w_abs = [np.abs(_np(w)) for _, w in w_items]
    if isinstance(weights, Mapping):
        out["weights"] = {k: {"abs_mean": float(a.mean()), "abs_max": float(a.max())}
                          for (k, _), a in zip(w_items, w_abs)}
    total = sum(a.size for a in w_abs)
    out["weight_abs_mean"] = float(sum(a.sum() for a in w_abs) / total)
    out["weight_abs_max"] = float(max(a.max() for a in w_abs))
    rs = []
    for _, r in r_items:
        a = _np(r)
        rs.append(a.reshape(1, -1) if a.ndim == 1 else a.reshape(a.shape[0], -1))
    if len({a.shape[0] for a in rs}) != 1:
        raise ValueError("every rate population needs the same number of agents B")
    if isinstance(rates, Mapping):
        out["rates"] = {k: {"dormant_fraction": float((a < eps).mean()), "mean": float(a.mean()),
                            "std": float(a.std(axis=1).mean())} for (k, _), a in zip(r_items, rs)}
    allr = np.concatenate(rs, axis=1)  # [B, N_total]
    out["dormant_fraction"] = float((allr < eps).mean())
    out["dormant_fraction_per_agent"] = [float(v) for v in (allr < eps).mean(axis=1)]
    out["rate_mean"] = float(allr.mean())
    out["rate_std"] = float(allr.std(axis=1).mean())
    return out
