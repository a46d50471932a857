"""Continual-learning metrics on learning curves: pure numpy functions, JSON-friendly results.

A *curve* is one agent's episodes in order: ``curve_steps[e]`` is the env step at which episode
``e`` ended and ``returns[e]`` its return (``EpisodeStats.steps[b]`` / ``.returns[b]``). A schedule
is a list of *phases* ``[start, end)`` on the same step axis (``TaskSchedule.spans(total)``) with a
*task* name per phase; phases with the same name are the same task, seen again.

Which phase an episode belongs to (``assign``):
  * ``"start"`` (default): the phase in force when the episode *began*, i.e. at the end step of the
    agent's previous episode (0 for the first). This is exactly when
    :class:`~spikegym.envs.schedule.TaskScheduleWrapper` applies a change (at reset, reading a
    clock that equals the vector env's step count), so every episode is attributed to the world it
    was played in. It needs the agent's complete curve.
  * ``"end"``: the phase containing the step the episode ended at, ``start < step <= end``.
  * labels: one phase index per episode, e.g. ``info["task"]`` on the episode's last step (what
    :class:`ContinualTracker` records during a run; it equals ``"start"`` for the wrapper's clock).

Normalisation and signs. Returns can be negative (MountainCar -200..-110, Pendulum about
-1600..-150), so "90 % of the level" or "divide by the level" would flip meaning with the sign.
Every metric therefore measures performance *above a minimum reference* ``ref_min`` (the return
of an agent with no competence) and relative to the task's *level* ``ref_max``::

    score(R) = (R - ref_min) / (ref_max - ref_min)        # 0 = no competence, 1 = the task's level

``ref_min`` defaults to a known value for the env (:data:`REF_MIN`, when ``env_id`` is given) or
else to the worst return seen on that task; ``ref_max`` defaults to the best smoothed level
reached on that task. Both may be given per task as a dict.

Smoothing: a trailing running mean over ``window`` episodes *within one phase* (expanding over the
first episodes of the phase), so a switch never mixes two worlds in one average.

During training, :class:`ContinualTracker` (made by :func:`spikegym.training.loop.train` when
``env.schedule`` is set) collects the labelled curves and each agent's switch steps, writes the
``task/`` and ``continual/`` TensorBoard scalars, and ``continual.json`` at the end of the run.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

__all__ = ["REF_MIN", "episode_phases", "phase_returns", "running_mean", "recovery_steps", "forgetting",
           "normalized_auc", "forward_transfer", "phase_return_slope", "plasticity_health", "continual_summary",
           "ContinualTracker"]

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


# --------------------------------------------------------------------------- summary


def _json(x):
    if isinstance(x, dict):
        return {str(k): _json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return None if not math.isfinite(float(x)) else float(x)
    return x


def _median(values: list, *, none_as_inf: bool = False) -> Optional[float]:
    if none_as_inf:
        vals = [math.inf if v is None else v for v in values]
    else:
        vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return None
    m = float(np.median(vals))
    return None if not math.isfinite(m) else m


def continual_summary(curve_steps, returns, phase_bounds, tasks: Optional[Sequence[str]] = None, *,
                      window: int = 10, threshold: float = 0.9, env_id: Optional[str] = None,
                      ref_min: RefArg = None, ref_max: RefArg = None, assign: str = "start",
                      labels: Optional[Sequence] = None, origins: Optional[Sequence] = None,
                      scratch_auc: Optional[Mapping[str, float]] = None,
                      weights=None, rates=None, eps: float = 1e-3) -> dict:
    """All continual metrics for a population, as a JSON-serialisable dict.

    Args:
        curve_steps, returns: per-agent lists of arrays (``EpisodeStats.steps`` / ``.returns``), or
            one agent's two 1-D arrays.
        phase_bounds, tasks: the phases (see the module docstring); ``TaskSchedule.spans(total)``
            carries both.
        labels: per-agent phase labels of the episodes (``[E_b]`` ints each, e.g. from ``info["task"]``);
            they replace ``assign``.
        origins: per-agent ``[P]`` steps at which each agent entered each phase (None where it did
            not or is unknown); recovery is counted from there and each phase's AUC window runs from
            the agent's entry to its next switch. Default: the schedule's phase starts.
        env_id: picks ``ref_min`` from :data:`REF_MIN` when ``ref_min`` is not given.
        ref_min, ref_max: per-task references (numbers or dicts); defaults pooled over all agents.
        scratch_auc: task -> normalised AUC of from-scratch learning, for forward transfer.
        weights, rates: the brain's, for :func:`plasticity_health`.
    Returns:
        ``phases`` (per phase: median over agents of mean return, final return (last ``window``
        episodes), episodes, recovery steps, forgetting, normalised AUC; fraction of agents that
        recovered, and that were at the level with the phase's first episode), ``tasks`` (references, visits, median slope of final returns over visits),
        ``mean_forgetting``,
        ``median_recovery_steps`` (revisits) and ``median_learning_steps`` (first visits),
        ``relearning_transfer`` (forward transfer of each revisit relative to the first visit),
        ``forward_transfer`` (with ``scratch_auc``), ``plasticity`` (with weights and rates), and the
        headline figures: ``switches`` (phases - 1), ``revisits``, ``phase_return_slope`` (median over
        agents of the agent's mean over tasks of :func:`phase_return_slope`; >= 0: no loss of
        plasticity), ``median_recovery_ratio`` (median over agents and revisits of the revisit's
        recovery steps / the steps its task's first visit took; a revisit that never recovers counts
        as infinite; None: an infinite median, or no ratio at all when ``recovery_ratio_count`` is 0;
        ``unrecovered_fraction``: of the agents' revisits, those that never recovered; revisits of a
        task whose first visit was *instant* -- at the level with its first episode, so there was no
        learning to compare with -- are left out and counted in ``recovery_ratio_skipped``;
        ``instant_recovery_fraction``: revisits at the level with their first episode) and ``forgetting`` (=
        ``mean_forgetting``, a fraction of the task's level).
    """
    if len(curve_steps) and np.ndim(curve_steps[0]) == 0:  # one agent
        curve_steps, returns = [curve_steps], [returns]
    if len(curve_steps) != len(returns):
        raise ValueError(f"{len(curve_steps)} step curves but {len(returns)} return curves")
    spans = _spans(phase_bounds)
    names = _tasks(phase_bounds, tasks, len(spans))
    P, B = len(spans), len(curve_steps)
    if ref_min is None and env_id in REF_MIN:
        ref_min = REF_MIN[env_id]

    if labels is not None and len(labels) != B:
        raise ValueError(f"{len(labels)} label arrays for {B} agents")
    if origins is not None and (len(origins) != B or any(len(o) != P for o in origins)):
        raise ValueError(f"origins must be {B} agents x {P} phases")
    assigns = list(labels) if labels is not None else [assign] * B
    org = [list(o) for o in origins] if origins is not None else [[None] * P for _ in range(B)]
    # each agent's own phase windows: from its entry into the phase to its entry into the next
    own = [[(spans[p, 0] if o[p] is None else o[p],
             (o[p + 1] if p + 1 < P and o[p + 1] is not None else
              (spans[p, 1] if o[p] is None or p + 1 == P else spans[-1, 1]))) for p in range(P)] for o in org]

    per_agent = [phase_returns(s, r, spans, assign=a) for s, r, a in zip(curve_steps, returns, assigns)]
    pooled = [np.concatenate([pa[p] for pa in per_agent]) for p in range(P)]
    # references pooled over agents, so every agent is scored on the same scale
    lo_pool = _task_refs(pooled, names, window, ref_min, None)
    hi_levels = {t: max([running_mean(pa[p], window).max() for pa in per_agent for p in range(P)
                         if names[p] == t and pa[p].size], default=lo_pool[t][0]) for t in lo_pool}
    refs = {t: (lo_pool[t][0], _ref(ref_max, t) if _ref(ref_max, t) is not None else float(hi_levels[t]))
            for t in lo_pool}
    rmin = {t: v[0] for t, v in refs.items()}
    rmax = {t: v[1] for t, v in refs.items()}

    rec = [recovery_steps(s, r, spans, names, window=window, threshold=threshold, ref_min=rmin, assign=a, origins=o)
           for s, r, a, o in zip(curve_steps, returns, assigns, org)]
    fgt = [forgetting(s, r, spans, names, window=window, ref_min=rmin, ref_max=rmax, assign=a)
           for s, r, a in zip(curve_steps, returns, assigns)]
    auc = [[(normalized_auc(np.asarray(s)[episode_phases(s, spans, assign=a) == p],
                            pa[p], w[p][0], w[p][1], ref_min=rmin[names[p]], ref_max=rmax[names[p]])
             if pa[p].size and rmax[names[p]] > rmin[names[p]] else None) for p in range(P)]
           for s, pa, a, w in zip(curve_steps, per_agent, assigns, own)]

    # "instant": at the level already with the phase's first episode (no learning needed)
    instant = []
    for s_, a, r_, w in zip(curve_steps, assigns, rec, own):
        s_ = np.asarray(s_, dtype=np.int64).reshape(-1)
        ph_b = episode_phases(s_, spans, assign=a)
        instant.append([r_[p] is not None and bool(np.any(ph_b == p)) and r_[p] == int(s_[ph_b == p][0] - w[p][0])
                        for p in range(P)])

    first_visit = {}
    for p, t in enumerate(names):
        first_visit.setdefault(t, p)
    phases = []
    for p in range(P):
        has = [pa[p].size > 0 for pa in per_agent]
        phases.append({
            "index": p, "task": names[p], "start": int(spans[p, 0]), "end": int(spans[p, 1]),
            "revisit": first_visit[names[p]] != p,
            "episodes": _median([pa[p].size for pa in per_agent]),
            "mean_return": _median([float(pa[p].mean()) if pa[p].size else None for pa in per_agent]),
            "final_return": _median([_tail(pa[p], window) if pa[p].size else None for pa in per_agent]),
            "recovery_steps": _median([rec[b][p] for b in range(B) if has[b]], none_as_inf=True),
            "recovered_fraction": (float(np.mean([rec[b][p] is not None for b in range(B) if has[b]]))
                                   if any(has) else None),
            "instant_fraction": float(np.mean([instant[b][p] for b in range(B) if has[b]])) if any(has) else None,
            "forgetting": _median([fgt[b][p] for b in range(B)]),
            "auc": _median([auc[b][p] for b in range(B)]),
        })

    task_info = {}
    agent_slopes: list[list[float]] = [[] for _ in range(B)]
    for t in first_visit:
        idx = [p for p in range(P) if names[p] == t]
        slopes = []
        for b, pa in enumerate(per_agent):
            finals = [_tail(pa[p], window) for p in idx if pa[p].size]
            if len(finals) >= 2 and rmax[t] > rmin[t]:
                slopes.append(phase_return_slope(finals, ref_min=rmin[t], ref_max=rmax[t]))
                agent_slopes[b].append(slopes[-1])
        task_info[t] = {"ref_min": rmin[t], "ref_max": rmax[t], "visits": len(idx),
                        "slope": _median(slopes)}
    ratios, skipped, instant_revisits = [], 0, []
    for b in range(B):
        for p in range(P):
            q = first_visit[names[p]]
            if q == p or not per_agent[b][p].size or rec[b][q] is None:
                continue
            instant_revisits.append(instant[b][p])
            if instant[b][q]:  # the first visit needed no learning: nothing to compare the revisit with
                skipped += 1
                continue
            ratios.append(None if rec[b][p] is None else rec[b][p] / max(rec[b][q], 1))

    revisits = [ph for ph in phases if ph["revisit"]]
    relearn = []
    for b in range(B):
        for p in range(P):
            q = first_visit[names[p]]
            if q != p and auc[b][p] is not None and auc[b][q] is not None:
                relearn.append(forward_transfer(auc[b][p], auc[b][q]))
    out: dict[str, Any] = {
        "window": window, "threshold": threshold, "agents": B,
        "phases": phases, "tasks": task_info,
        "mean_forgetting": (float(np.mean([ph["forgetting"] for ph in revisits if ph["forgetting"] is not None]))
                            if any(ph["forgetting"] is not None for ph in revisits) else None),
        "median_recovery_steps": _median([ph["recovery_steps"] for ph in revisits]),
        "median_learning_steps": _median([ph["recovery_steps"] for ph in phases if not ph["revisit"]]),
        "relearning_transfer": _median(relearn),
        "switches": P - 1,
        "revisits": len(revisits),
        "phase_return_slope": _median([float(np.mean(v)) for v in agent_slopes if v]),
        "median_recovery_ratio": _median(ratios, none_as_inf=True),
        "recovery_ratio_count": len(ratios),
        "recovery_ratio_skipped": skipped,
        "unrecovered_fraction": float(np.mean([r is None for r in ratios])) if ratios else None,
        "instant_recovery_fraction": float(np.mean(instant_revisits)) if instant_revisits else None,
    }
    out["forgetting"] = out["mean_forgetting"]
    if scratch_auc is not None:
        out["forward_transfer"] = {t: _median([forward_transfer(auc[b][q], float(scratch_auc[t]))
                                               for b in range(B) if auc[b][q] is not None])
                                   for t, q in first_visit.items() if t in scratch_auc}
    if weights is not None and rates is not None:
        out["plasticity"] = plasticity_health(weights, rates, eps=eps)
    return _json(out)


# --------------------------------------------------------------------------- the tracker of a training run


class ContinualTracker:
    """Continual-learning bookkeeping of a training run on a task schedule.

    The training loop feeds it every vector-env step (:meth:`update`), lets it write TensorBoard
    scalars at its logging steps (:meth:`log`) and asks for the JSON summary at the end
    (:meth:`summary`, :meth:`write` -> ``continual.json``). :func:`~spikegym.training.loop.train`
    makes one when ``env.schedule`` is set.

    *Which task an episode was played in* comes from ``info["task"]``, the phase occurrence that
    agent's :class:`~spikegym.envs.schedule.TaskScheduleWrapper` had in force on the episode's last
    step. *When an agent switched* is the step whose info first shows the new occurrence: its reset
    step, at its own first episode boundary after the schedule's switch. Recovery is counted from
    there (:func:`continual_summary` with ``labels`` and ``origins``).

    TensorBoard (x = env steps per agent):

    * every :meth:`log`: ``task/index`` (task number, by first appearance of its name), ``task/phase``
      (occurrence), ``task/switched_fraction``, ``task/agent_phase`` (histogram), ``task/param/<name>``
      (numeric changes in force), ``task/ep_rew_mean/<task>`` (median over agents of the mean of
      each agent's last ``window`` episodes in the live phase), ``task/switch`` (1 at every switch of
      the schedule, written at the switch step; 0 at logging steps); and, given the agent, plasticity
      health: ``continual/dormant_fraction``, ``weight_abs_mean``, ``weight_abs_max``, ``rate_spread``
      (and ``continual/novelty`` when the agent has a novelty detector);
    * once per phase, when every agent has left it (or at the end of the run), at x = the phase's
      end: ``continual/phase_return|final_return|recovery_steps|recovered_fraction|auc/<task>``, on
      revisits ``continual/forgetting|recovery_ratio/<task>``, with novelty ``continual/surprise/<task>``
      (mean novelty over ``surprise_window`` steps after each agent's switch / before it: > 1 means the
      acetylcholine gain ``1 + novelty.ach_gain * novelty`` rose when the world changed), and the running
      ``continual/phase_return_slope``, ``mean_forgetting``, ``median_recovery_ratio``. The task levels
      (``ref_max``) are the best seen so far, so these may shift a little until the final summary.

    Args:
        schedule: the :class:`~spikegym.envs.schedule.TaskSchedule` (or its dict) the envs run.
        num_agents: ``B``.
        total_steps: the run's length (the last phase is flushed there); None: only at :meth:`summary`.
        env_id: picks ``ref_min`` from :data:`REF_MIN`.
        window, threshold: as in :func:`continual_summary`.
        eps: dormant-neuron threshold on the running spike probability per substep.
        surprise_window: env steps before and after a switch over which novelty is averaged
            (default: 1000, or half the shortest phase).
        scratch_auc: task -> normalised AUC of from-scratch learning (forward transfer), if known.

        >>> tr = ContinualTracker({"cycle": True, "phases": [{"name": "A", "steps": 4},
        ...                                                  {"name": "B", "steps": 4}]}, 1, window=1)
        >>> ep = lambda r: {"episode": {"r": np.array([r])}, "_episode": np.array([True])}
        >>> for step, info in [(2, {"task": np.array([0]), **ep(1.0)}), (3, {"task": np.array([0])}),
        ...                    (5, {"task": np.array([0]), **ep(2.0)}), (6, {"task": np.array([1])}),
        ...                    (8, {"task": np.array([1]), **ep(5.0)})]:
        ...     tr.update(step, info)
        >>> tr.entered, [p["mean_return"] for p in tr.summary()["phases"]]
        ([{0: 0, 1: 6}], [1.5, 5.0])
    """

    STATE_FILE = "continual_state.json"
    SUMMARY_FILE = "continual.json"
    #: the figures :mod:`benchmarks.continual` prints, also put in ``result.json``
    HEADLINE = ("switches", "revisits", "phase_return_slope", "median_recovery_ratio", "recovery_ratio_count",
                "recovery_ratio_skipped", "unrecovered_fraction", "instant_recovery_fraction", "forgetting", "median_recovery_steps", "median_learning_steps",
                "relearning_transfer")

    def __init__(self, schedule, num_agents: int, *, total_steps: Optional[int] = None,
                 env_id: Optional[str] = None, window: int = 10, threshold: float = 0.9, eps: float = 1e-3,
                 surprise_window: Optional[int] = None, scratch_auc: Optional[Mapping[str, float]] = None,
                 novelty_enabled: bool = True):
        from spikegym.envs.schedule import TaskSchedule

        self.novelty_enabled = novelty_enabled  # the agents are curious: their novelty signal is tracked
        self.schedule = TaskSchedule.from_dict(schedule)
        self.B, self.total_steps, self.env_id = int(num_agents), total_steps, env_id
        self.window, self.threshold, self.eps = int(window), float(threshold), float(eps)
        if surprise_window is None:  # 1000 steps, or half the shortest phase
            surprise_window = max(1, min(1000, min(p.steps for p in self.schedule.phases) // 2))
        self.surprise_window, self.scratch_auc = int(surprise_window), scratch_auc
        self.task_ids = {name: i for i, name in enumerate(dict.fromkeys(p.name for p in self.schedule.phases))}
        B = self.B
        self.step = 0
        self.current = np.zeros(B, dtype=np.int64)  # phase occurrence each agent is in
        self.entered: list[dict[int, int]] = [{0: 0} for _ in range(B)]  # occurrence -> step it was entered
        self.ep_steps: list[list[int]] = [[] for _ in range(B)]
        self.ep_returns: list[list[float]] = [[] for _ in range(B)]
        self.ep_labels: list[list[int]] = [[] for _ in range(B)]
        self.history: list[dict] = []  # plasticity health at every log
        self.logged_phases = 0  # phases whose per-phase scalars are written
        self.logged_until = 0  # the last step log() ran at
        # Novelty around switches: a ring of each agent's last surprise_window values; since its last
        # switch, the mean before it (pre), and the sum and count of values after it (post, up to
        # surprise_window steps). Finished records: surprise[b][occurrence] = [pre, post sum, post n].
        self._ring = np.zeros((B, max(1, self.surprise_window)), dtype=np.float64)
        self._ring_n = 0
        self._pre = np.full(B, np.nan)
        self._post = np.zeros((B, 2))
        self.surprise: list[dict[int, list[float]]] = [{} for _ in range(B)]

    @classmethod
    def from_config(cls, cfg, **kwargs) -> "ContinualTracker":
        """The tracker of a run with config ``cfg`` (``cfg.env.schedule`` must be set)."""
        from spikegym.envs.schedule import TaskSchedule

        if not cfg.env.schedule:
            raise ValueError("ContinualTracker needs env.schedule")
        sched = TaskSchedule.from_dict(cfg.env.schedule, seed=cfg.run.seed)
        kwargs.setdefault("novelty_enabled", cfg.novelty.enabled)
        return cls(sched, cfg.env.num_agents, total_steps=cfg.run.steps, env_id=cfg.env.id, **kwargs)

    # ---- feeding ----------------------------------------------------------------------

    def update(self, step: int, info: Mapping, step_info=None) -> None:
        """Read one vector-env step's ``info`` (``step`` = env steps done, as ``EpisodeStats.update``).

        ``step_info`` (optional): the agent step's :class:`~spikegym.agents.step.StepInfo`; its novelty signal
        is averaged around switches (without curiosity but with TD surprise on, its acetylcholine gain, or
        ``1 + surprise`` where surprise drives no gain).
        """
        self.step = int(step)
        labels = self.current.copy()
        task, has_task = info.get("task"), info.get("_task")
        if task is not None:
            task = np.asarray(task, dtype=np.int64)
            labels = task if has_task is None else np.where(np.asarray(has_task, dtype=bool), task, labels)
        mask = info.get("_episode")
        if mask is not None and np.any(mask):
            ep = info["episode"]
            for b in np.flatnonzero(mask):
                self.ep_steps[b].append(self.step)
                self.ep_returns[b].append(float(ep["r"][b]))
                self.ep_labels[b].append(int(labels[b]))
        novelty = None
        if step_info is not None and self.novelty_enabled:
            novelty = _np(step_info.novelty).reshape(-1)
        elif step_info is not None and step_info.surprise is not None:  # TD surprise without curiosity
            gain = step_info.ach_gain
            novelty = _np(1.0 + step_info.surprise if gain is None else gain).reshape(-1)
        for b in np.flatnonzero(labels != self.current):  # these agents' worlds changed at this (reset) step
            self._close_surprise(b)
            self.current[b] = labels[b]
            self.entered[b].setdefault(int(labels[b]), self.step)
            filled = min(self._ring_n, self._ring.shape[1])
            self._pre[b] = self._ring[b, :filled].mean() if filled else np.nan
            self._post[b] = 0.0
        if novelty is not None:
            self._ring[:, self._ring_n % self._ring.shape[1]] = novelty
            self._ring_n += 1
            open_ = (self._post[:, 1] < self.surprise_window) & ~np.isnan(self._pre)
            self._post[open_, 0] += novelty[open_]
            self._post[open_, 1] += 1

    def _close_surprise(self, b: int) -> None:
        if not np.isnan(self._pre[b]) and self._post[b, 1] > 0:
            self.surprise[b][int(self.current[b])] = [float(self._pre[b]), float(self._post[b, 0]), int(self._post[b, 1])]
        self._pre[b] = np.nan

    def _surprise_records(self) -> list[dict[int, list[float]]]:
        out = [dict(sp) for sp in self.surprise]
        for b in range(self.B):
            if not np.isnan(self._pre[b]) and self._post[b, 1] > 0:
                out[b][int(self.current[b])] = [float(self._pre[b]), float(self._post[b, 0]), int(self._post[b, 1])]
        return out

    # ---- numbers ----------------------------------------------------------------------

    def _origins(self, P: int) -> list[list[Optional[int]]]:
        return [[e.get(p) for p in range(P)] for e in self.entered]

    def metrics(self, step: Optional[int] = None, *, phases: Optional[int] = None, weights=None, rates=None) -> dict:
        """:func:`continual_summary` of everything seen up to ``step`` (default: the last update),
        over the first ``phases`` phases only if given (later episodes left out)."""
        step = self.step if step is None else int(step)
        spans = self.schedule.spans(max(step, 1))[:phases]
        s = continual_summary([np.asarray(x, dtype=np.int64) for x in self.ep_steps],
                              [np.asarray(x, dtype=np.float64) for x in self.ep_returns], spans,
                              window=self.window, threshold=self.threshold, env_id=self.env_id,
                              labels=[np.asarray(x, dtype=np.int64) for x in self.ep_labels],
                              origins=self._origins(len(spans)), scratch_auc=self.scratch_auc,
                              weights=weights, rates=rates, eps=self.eps)
        # per phase: how late the agents switched, novelty around the switch
        surprise = self._surprise_records()
        for ph in s["phases"]:
            p = ph["index"]
            lags = [e[p] - ph["start"] for e in self.entered if p in e]
            ph["switch_lag"] = _median(lags)
            before = [sp[p][0] for sp in surprise if p in sp and sp[p][2]]
            after = [sp[p][1] / sp[p][2] for sp in surprise if p in sp and sp[p][2]]
            if before:
                ph["novelty_before"], ph["novelty_after"] = float(np.mean(before)), float(np.mean(after))
                ph["surprise"] = (float(np.mean(after) / np.mean(before)) if np.mean(before) > 0 else None)
        return _json(s)

    def health(self, agent) -> dict:
        """:func:`plasticity_health` of the agent's brain: every projection, every non-input population."""
        return plasticity_health(*_weights_rates(agent), eps=self.eps)

    def summary(self, agent=None) -> dict:
        """Everything, JSON-serialisable: :meth:`metrics` (with the agent's final plasticity health),
        the schedule, each agent's switch steps and the plasticity history."""
        kw = {}
        if agent is not None:
            kw = dict(zip(("weights", "rates"), _weights_rates(agent)))
        out = self.metrics(**kw)
        out.update({"steps": self.step, "env": self.env_id, "schedule": self.schedule.to_dict(),
                    "entered": [{str(k): v for k, v in e.items()} for e in self.entered],
                    "plasticity_history": self.history})
        return _json(out)

    def write(self, run_dir, agent=None) -> dict:
        """Write :meth:`summary` to ``run_dir/continual.json`` (atomically) and return it."""
        import json
        import os
        from pathlib import Path

        out = self.summary(agent)
        path = Path(run_dir) / self.SUMMARY_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(out, indent=1, allow_nan=False))
        os.replace(tmp, path)
        return out

    # ---- TensorBoard ------------------------------------------------------------------

    def log(self, writer, step: int, agent=None) -> None:
        """Write the ``task/`` and ``continual/`` scalars (see the class docstring); ``writer`` may be None."""
        from spikegym.training import tags as T

        step = int(step)
        occ, phase, values = self.schedule.phase_at(max(step - 1, 0))
        health = self.health(agent) if agent is not None else None
        if health is not None:
            self.history.append({"step": step, **{k: health[k] for k in (
                "dormant_fraction", "weight_abs_mean", "weight_abs_max", "rate_mean", "rate_std")}})
        if writer is not None:
            add = writer.add_scalar
            add(T.TASK_INDEX, self.task_ids[phase.name], step)
            add(T.TASK_PHASE, occ, step)
            add(T.TASK_SWITCHED_FRACTION, float(np.mean(self.current == occ)), step)
            writer.add_histogram(T.TASK_AGENT_PHASE, np.asarray(self.current, dtype=np.float64), step)
            for name, v in values.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    add(T.tag(T.TASK_PARAM, name=name), float(v), step)
            recent = [float(np.mean([r for r, lab in zip(self.ep_returns[b], self.ep_labels[b])
                                     if lab == self.current[b]][-self.window:] or [np.nan])) for b in range(self.B)]
            recent = [r for r, c in zip(recent, self.current) if c == occ and not math.isnan(r)]
            if recent:
                add(T.tag(T.TASK_EP_REW_MEAN, task=phase.name), float(np.median(recent)), step)
            for k in range(occ, 0, -1):  # the schedule's switches since the last log, at their own steps
                s = self.schedule.occurrence_start(k)
                if s < self.logged_until:
                    break
                add(T.TASK_SWITCH, 1.0, s)
            if self.schedule.occurrence_at(step) == occ:  # a switch exactly here is written next time
                add(T.TASK_SWITCH, 0.0, step)
            if health is not None:
                add(T.CONTINUAL_DORMANT_FRACTION, health["dormant_fraction"], step)
                add(T.CONTINUAL_WEIGHT_ABS_MEAN, health["weight_abs_mean"], step)
                add(T.CONTINUAL_WEIGHT_ABS_MAX, health["weight_abs_max"], step)
                add(T.CONTINUAL_RATE_SPREAD, health["rate_std"], step)
            if self._ring_n:
                add(T.CONTINUAL_NOVELTY, float(self._ring[:, : min(self._ring_n, self._ring.shape[1])].mean()), step)
        self.logged_until = step
        final = self.total_steps is not None and step >= self.total_steps
        done = [p for p in range(self.logged_phases, len(self.schedule.spans(max(step, 1))))
                if final or bool(np.all(self.current > p))]
        # phases are logged in order: stop at the first one some agent is still in
        done = [p for i, p in enumerate(done) if p == self.logged_phases + i]
        if not done:
            return
        m = self.metrics(step, phases=done[-1] + 1)  # the finished phases only, so the running figures are final ones
        if writer is not None:
            for p in done:
                ph = m["phases"][p]
                x, t = ph["end"], ph["task"]
                for tag, key in ((T.CONTINUAL_PHASE_RETURN, "mean_return"), (T.CONTINUAL_FINAL_RETURN, "final_return"),
                                 (T.CONTINUAL_RECOVERY_STEPS, "recovery_steps"),
                                 (T.CONTINUAL_RECOVERED_FRACTION, "recovered_fraction"), (T.CONTINUAL_AUC, "auc"),
                                 (T.CONTINUAL_FORGETTING, "forgetting"), (T.CONTINUAL_SURPRISE, "surprise")):
                    if ph.get(key) is not None:
                        writer.add_scalar(T.tag(tag, task=t), ph[key], x)
                ratio = self._phase_ratio(m, p)
                if ratio is not None:
                    writer.add_scalar(T.tag(T.CONTINUAL_RECOVERY_RATIO, task=t), ratio, x)
            x = m["phases"][done[-1]]["end"]
            for tag, key in ((T.CONTINUAL_PHASE_RETURN_SLOPE, "phase_return_slope"),
                             (T.CONTINUAL_MEAN_FORGETTING, "forgetting"),
                             (T.CONTINUAL_MEDIAN_RECOVERY_RATIO, "median_recovery_ratio")):
                if m.get(key) is not None:
                    writer.add_scalar(tag, m[key], x)
            for t, v in (m.get("forward_transfer") or {}).items():
                if v is not None:
                    writer.add_scalar(T.tag(T.CONTINUAL_FORWARD_TRANSFER, task=t), v, x)
        self.logged_phases = done[-1] + 1

    @staticmethod
    def _phase_ratio(m: dict, p: int) -> Optional[float]:
        """Median recovery steps of revisit ``p`` over those of its task's first visit (population medians)."""
        ph = m["phases"][p]
        if not ph["revisit"] or ph["recovery_steps"] is None:
            return None
        first = next(q for q in m["phases"] if q["task"] == ph["task"])
        return None if not first["recovery_steps"] else float(ph["recovery_steps"] / first["recovery_steps"])

    # ---- checkpoints ------------------------------------------------------------------

    def state(self) -> dict:
        """JSON-serialisable state (everything :meth:`load` needs to go on)."""
        return {"step": self.step, "entered": [{str(k): v for k, v in e.items()} for e in self.entered],
                "ep_steps": self.ep_steps, "ep_returns": self.ep_returns, "ep_labels": self.ep_labels,
                "history": self.history, "logged_until": self.logged_until, "logged_phases": self.logged_phases,
                "ring": self._ring.tolist(), "ring_n": self._ring_n,
                "pre": [None if np.isnan(v) else float(v) for v in self._pre], "post": self._post.tolist(),
                "surprise": [{str(k): v for k, v in sp.items()} for sp in self.surprise]}

    def load(self, state: Mapping, step: Optional[int] = None) -> None:
        """Restore :meth:`state`; with ``step`` (a checkpoint's), forget what happened after it.

        The novelty ring and an open post-switch average are kept as saved (approximate after a cut).
        """
        step = int(state["step"]) if step is None else min(int(step), int(state["step"]))
        keep = lambda xs, steps: [x for x, s in zip(xs, steps) if s <= step]  # noqa: E731
        self.ep_returns = [keep(r, s) for r, s in zip(state["ep_returns"], state["ep_steps"])]
        self.ep_labels = [keep(lab, s) for lab, s in zip(state["ep_labels"], state["ep_steps"])]
        self.ep_steps = [keep(s, s) for s in state["ep_steps"]]
        self.entered = [{int(k): int(v) for k, v in e.items() if int(v) <= step} for e in state["entered"]]
        self.current = np.array([max(e) for e in self.entered], dtype=np.int64)
        self.history = [h for h in state["history"] if h["step"] <= step]
        self.logged_until = min(int(state["logged_until"]), step)
        n = 0  # phases every agent had left by ``step``
        while all(n + 1 in e for e in self.entered):
            n += 1
        self.logged_phases = min(n, int(state["logged_phases"]))
        self._ring = np.asarray(state["ring"], dtype=np.float64).reshape(self.B, -1)
        self._ring_n = int(state["ring_n"])
        self._pre = np.array([np.nan if v is None else v for v in state["pre"]], dtype=np.float64)
        self._post = np.asarray(state["post"], dtype=np.float64).reshape(self.B, 2)
        self.surprise = [{int(k): list(v) for k, v in sp.items() if int(k) in e}
                         for sp, e in zip(state["surprise"], self.entered)]
        self.step = step

    def save_state(self, run_dir) -> None:
        """Write :meth:`state` next to the checkpoints (``run_dir/continual_state.json``, atomically)."""
        import json
        import os
        from pathlib import Path

        path = Path(run_dir) / self.STATE_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.state()))
        os.replace(tmp, path)

    def load_state(self, run_dir, step: int) -> bool:
        """Restore from ``run_dir/continual_state.json`` up to ``step``; False if there is none."""
        import json
        from pathlib import Path

        path = Path(run_dir) / self.STATE_FILE
        if not path.is_file():
            return False
        self.load(json.loads(path.read_text()), step)
        return True


def _weights_rates(agent) -> tuple[dict, dict]:
    """Every projection's weights and every non-input population's rates of an :class:`~spikegym.agents.agent.Agent`."""
    brain = agent.spec.brain
    return ({name: agent.weights(name) for name in brain.projs},
            {name: rate for name, rate in agent.rates().items() if name in brain.order})
