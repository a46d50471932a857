"""The population summary of a run on a task schedule: :func:`continual_summary` (JSON-ready dict).

It combines the per-curve metrics of :mod:`spikegym.training.continual_metrics` over agents (medians)
and phases; :class:`~spikegym.training.continual_tracker.ContinualTracker` calls it during a run.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from spikegym.training.continual_metrics import (REF_MIN, RefArg, _ref, _spans, _tail, _task_refs, _tasks,
                                                 episode_phases, forgetting, forward_transfer, normalized_auc,
                                                 phase_return_slope, phase_returns, plasticity_health, recovery_steps,
                                                 running_mean)
from spikegym.training.files import to_json

__all__ = ["continual_summary"]


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
    return to_json(out)
