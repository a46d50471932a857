"""``spikegym record``: videos of a run's trained agents, learning off, in envs of their own.

Two files: agent 0 alone (``agent0-step<N>.mp4``, ``episodes`` episodes), and a grid of the
first ``agents`` agents side by side (``grid<n>-step<N>.mp4``, one episode each), every tile
labelled with its agent and its return so far. Progress goes to stderr every few seconds: MuJoCo
bodies render in software on a CPU, so shadows and reflections are turned off (about 4x faster)
and a grid's tiles are rendered small (4 agents: 240 x 240 each, about 2x faster again).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Optional, TextIO

from spikegym.training.evaluate import Checkpoint, agent_policy, load_run

#: Seconds between progress lines.
PROGRESS_EVERY_S = 5.0
#: MuJoCo grids: tiles of GRID_SIDE / columns pixels (4 agents: 240 x 240 each, 480 x 480 in all).
GRID_SIDE = 480


def _is_mujoco(env_id: str) -> bool:
    import gymnasium

    try:
        return "mujoco" in str(gymnasium.spec(env_id).entry_point)
    except Exception:  # noqa: BLE001 - not registered: render as it comes
        return False


class _FrameCounter:
    """``on_frame`` hook: counts frames and prints a line every few seconds."""

    def __init__(self, what: str, expected: int, stream: Optional[TextIO]):
        self.what, self.expected, self.stream = what, expected, stream
        self.frames, self.t0 = 0, time.perf_counter()
        self.last = self.t0

    def __call__(self, frame) -> None:
        self.frames += 1
        now = time.perf_counter()
        if self.stream is not None and now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            print(f"spikegym record: {self.what}: {self.frames:,} frames (at most {self.expected:,}), "
                  f"{self.frames / (now - self.t0):.0f} frames/s", file=self.stream, flush=True)


def record(run_dir, episodes: int = 1, out=None, *, agents: int = 4, seed: Optional[int] = None,
           max_steps: Optional[int] = None, checkpoint: Checkpoint = None,
           stream: Optional[TextIO] = None, quiet: bool = False) -> list[Path]:
    """mp4 videos of trained agents acting in a separate evaluation env (agent 0, and a grid of several).

    Args:
        episodes: episodes in agent 0's video (the grid plays one per agent).
        agents: agents in the grid (the first ``agents`` of the population; 1: no grid).
        seed: the first reset's seed (default: the run's seed, as its videos during training);
            tile ``i`` of the grid starts from ``seed + i``.
        max_steps: cap on steps per episode (default: the env's time limit, or 1000).
        checkpoint: None (the latest), ``"best"``, a step or a folder.
        stream: where progress lines go (default: stderr); ``quiet``: nowhere.
    """
    from spikegym.envs import make_env
    from spikegym.training.video import record_episodes, record_grid

    stream = None if quiet else (stream or sys.stderr)
    cfg, agent, envs, step = load_run(run_dir, checkpoint=checkpoint)
    envs.close()
    out = Path(out) if out else Path(run_dir) / "videos"
    out.mkdir(parents=True, exist_ok=True)
    seed = cfg.run.seed if seed is None else int(seed)
    max_steps = int(max_steps or cfg.env.max_episode_steps or 1000)

    def make(tile: Optional[int] = None):
        kwargs = dict(cfg.env.kwargs or {})
        if tile is not None and _is_mujoco(cfg.env.id):  # software rendering costs per pixel: smaller tiles
            kwargs.update(width=tile, height=tile)
        return make_env(cfg.env.id, kwargs=kwargs, render_mode="rgb_array", max_episode_steps=cfg.env.max_episode_steps)

    n = min(agents, cfg.env.num_agents)
    paths = []
    name = out / f"agent0-step{step}.mp4"
    counter = _FrameCounter(f"agent 0, {episodes} episode(s)", episodes * (max_steps + 1), stream)
    res = record_episodes(make, agent_policy(cfg, agent, 0), name, episodes=episodes, seed=seed,
                          max_steps=max_steps, on_frame=counter)
    paths.append(Path(res["path"]))
    _done(stream, res["path"], res["returns"])
    if n > 1:
        counter = _FrameCounter(f"grid of {n} agents", max_steps + 1, stream)
        tile = max(GRID_SIDE // math.ceil(math.sqrt(n)), 64)  # the grid about as large as one video
        res = record_grid(lambda: make(tile), [agent_policy(cfg, agent, i) for i in range(n)],
                          out / f"grid{n}-step{step}.mp4",
                          seed=seed, max_steps=max_steps, labels=[f"agent {i}" for i in range(n)], on_frame=counter)
        paths.append(Path(res["path"]))
        _done(stream, res["path"], res["returns"])
    return paths


def _done(stream, path, returns) -> None:
    if stream is not None:
        rets = ", ".join(f"{r:.1f}" for r in returns)
        print(f"spikegym record: wrote {path} (returns {rets})", file=stream, flush=True)
