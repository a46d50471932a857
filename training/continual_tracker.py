"""The continual-learning bookkeeping of a training run: :class:`ContinualTracker`.

The training loop feeds it every env step, it writes the ``task/`` and ``continual/`` TensorBoard
scalars and ``continual.json``, and saves its state beside the checkpoints.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Optional

import numpy as np

from spikegym.training.continual_metrics import _np, plasticity_health
from spikegym.training.continual_summary import _median, continual_summary
from spikegym.training.files import to_json, write_json

__all__ = ["ContinualTracker"]


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
        return to_json(s)

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
        return to_json(out)

    def write(self, run_dir, agent=None) -> dict:
        """Write :meth:`summary` to ``run_dir/continual.json`` (atomically) and return it."""
        out = self.summary(agent)
        write_json(Path(run_dir) / self.SUMMARY_FILE, out)
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
        write_json(Path(run_dir) / self.STATE_FILE, self.state(), indent=None)

    def load_state(self, run_dir, step: int) -> bool:
        """Restore from ``run_dir/continual_state.json`` up to ``step``; False if there is none."""
        import json

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
