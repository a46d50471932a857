"""Episode statistics of a population of agents, read the Gymnasium >= 1.0 way.

``RecordEpisodeStatistics`` on a vector env puts ``info["episode"]["r"]`` / ``["l"]`` and the mask
``info["_episode"]`` on the step where an episode ends. Each agent keeps its own curve; the
population is summarised by its median and quartiles (``population/``), and by the mean that
Stable-Baselines3 users expect under ``rollout/ep_rew_mean``.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from spikegym.training import tags as T
from spikegym.training.energy import EnergyMeter


class EpisodeStats:
    """Per-agent episode returns and lengths with the env step at which each episode ended."""

    def __init__(self, num_agents: int, solved_at: Optional[float] = None, window: int = 100):
        self.B, self.solved_at, self.window = num_agents, solved_at, window
        self.steps: list[list[int]] = [[] for _ in range(num_agents)]
        self.returns: list[list[float]] = [[] for _ in range(num_agents)]
        self.lengths: list[list[int]] = [[] for _ in range(num_agents)]
        self.solved_step: list[Optional[int]] = [None] * num_agents
        self._points: list[tuple[int, int, float, int]] = []
        self.energy = EnergyMeter(num_agents)  # spikes and synaptic events per decision (the loop feeds it)

    def update(self, step: int, info: dict) -> None:
        mask = info.get("_episode")
        if mask is None or not np.any(mask):
            return
        ep = info["episode"]
        for b in np.flatnonzero(mask):
            r, l = float(ep["r"][b]), int(ep["l"][b])
            self.steps[b].append(step)
            self.returns[b].append(r)
            self.lengths[b].append(l)
            self._points.append((step, int(b), r, l))
            if self.solved_at is not None and self.solved_step[b] is None and len(self.returns[b]) >= self.window:
                if np.mean(self.returns[b][-self.window:]) >= self.solved_at:
                    self.solved_step[b] = step

    # ---- summaries --------------------------------------------------------------------

    def mean_returns(self, last: Optional[int] = None) -> list[float]:
        last = last or self.window
        return [float(np.mean(r[-last:])) if r else float("nan") for r in self.returns]

    def min_episodes(self) -> int:
        return min(len(r) for r in self.returns)

    def recent_median(self) -> float:
        vals = [v for v in self.mean_returns() if not np.isnan(v)]
        return float(np.median(vals)) if vals else float("nan")

    def scalars(self) -> dict[str, float]:
        """Each agent's "recent" return is its mean over its last 100 episodes. The population:
        median, quartiles, min and max over agents (``population/``), and their mean under SB3's
        names (``rollout/ep_rew_mean``, ``rollout/ep_len_mean``)."""
        rets = np.array([v for v in self.mean_returns() if not np.isnan(v)])
        if rets.size == 0:
            return {}
        lens = np.array([np.mean(n[-self.window:]) for n in self.lengths if n])
        out = {T.EP_REW_MEAN: float(rets.mean()), T.EP_LEN_MEAN: float(lens.mean()),
               T.EPISODES: float(sum(len(r) for r in self.returns)),
               T.POP_MEDIAN: float(np.median(rets)), T.POP_P25: float(np.percentile(rets, 25)),
               T.POP_P75: float(np.percentile(rets, 75)), T.POP_MIN: float(rets.min()), T.POP_MAX: float(rets.max())}
        if self.solved_at is not None:
            out[T.POP_SOLVED_FRACTION] = sum(s is not None for s in self.solved_step) / self.B
        return out

    def drain_points(self) -> list[tuple[int, int, float, int]]:
        """Episode ends since the last call, as ``(step, agent, return, length)``."""
        pts, self._points = self._points, []
        return pts

    def summary(self) -> dict:
        finite = [s for s in self.solved_step if s is not None]
        steps = [s if s is not None else float("inf") for s in self.solved_step]
        med = float(np.median(steps)) if steps else float("inf")
        rets = self.mean_returns()
        return {
            "solved": len(finite),
            "solved_threshold": self.solved_at,
            "steps_to_solve": [None if s == float("inf") else int(s) for s in steps],
            "median_steps_to_solve": med if med == float("inf") else int(med),
            "median_return_last100": float(np.nanmedian(rets)) if not all(np.isnan(rets)) else float("nan"),
            "mean_return_last100_per_agent": rets,
            "episodes_per_agent": [len(r) for r in self.returns],
            "energy": self.energy.summary(),
        }

    # ---- checkpointing (JSON) ------------------------------------------------------------

    def state(self) -> dict:
        return {"steps": self.steps, "returns": self.returns, "lengths": self.lengths, "solved_step": self.solved_step,
                "energy": self.energy.state()}

    def load(self, state: dict) -> None:
        self.steps, self.returns = state["steps"], state["returns"]
        self.lengths, self.solved_step = state["lengths"], state["solved_step"]
        self.energy.load(state.get("energy"))  # absent in checkpoints from before energy was counted
