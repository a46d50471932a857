"""The run: ``train(config) -> result``, one readable online loop.

The CLI, the tests and the benchmarks all call :func:`train`. Boilerplate (run folder, logging,
checkpoints, evaluation) is kept apart from the three lines that matter::

    action = agent.step(obs, reward, terminated, truncated)     # learn from the last step, act
    obs, reward, terminated, truncated, info = envs.step(action)

Logging lives in ``tensorboard.py``, progress lines in ``progress.py``, evaluation (and ``load``)
in ``evaluate.py``, videos in ``record.py``.
"""

from __future__ import annotations

import json
import random
import shlex
import sys
import time
from typing import Any, Optional

import numpy as np
import torch

from spikegym.agents.agent import Agent
from spikegym.envs import make_vector_env, reset_seeds
from spikegym.envs.state import get_env_state, set_env_state
from spikegym.training.checkpoint import (latest_checkpoint, load_checkpoint, prepare_run_dir, rng_state, save_checkpoint,
                                          set_rng_state)
from spikegym.training.config import Config, config_to_dict, load_config
from spikegym.training.continual import ContinualTracker
from spikegym.training.evaluate import PeriodicEval, make_agent
from spikegym.training.progress import Progress
from spikegym.training.stats import EpisodeStats
from spikegym.training.tensorboard import log_eval, log_step, snapshot, summary_writer
from spikegym.training.thresholds import solved_threshold

__all__ = ["train", "make_agent", "NonFiniteState", "train_from_file"]


class NonFiniteState(RuntimeError):
    """The brain's state became NaN/inf; the run stops and the last good checkpoint is kept."""


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(cfg: Config, *, run_dir=None, resume: bool = False, command_line: Optional[str] = None,
          callback=None) -> dict:
    """Train ``cfg.env.num_agents`` independent agents online for ``cfg.run.steps`` env steps each.

    Args:
        run_dir: the run folder (config, command line, TensorBoard events, checkpoints, videos).
        resume: continue from the latest checkpoint in ``run_dir``.
        callback: optional ``callback(step, agent, stats)`` called after every env step (benchmarks).
    Returns:
        a JSON-serialisable summary (returns, solved agents, steps to solve, fps, run folder).
    """
    run = cfg.run
    threads_before = torch.get_num_threads()
    if run.threads:
        torch.set_num_threads(run.threads)
    # The run folder says how it was made (config.yaml, command.txt, run.json, seed.txt). A fresh run
    # refuses a folder that holds checkpoints: an older, longer run's would stay "latest" (FileExistsError).
    run_dir = prepare_run_dir(cfg, run_dir, resume=resume,
                              command_line=command_line or " ".join(shlex.quote(a) for a in sys.argv))
    (run_dir / "seed.txt").write_text(f"{run.seed}\n")
    _seed_everything(run.seed)

    # ---- world and agents
    B = cfg.env.num_agents
    envs = make_vector_env(cfg.env.id, B, run.seed, kwargs=cfg.env.kwargs, vectorization=cfg.env.vectorization,
                           max_episode_steps=cfg.env.max_episode_steps, schedule=cfg.env.schedule, device=run.device)
    agent = make_agent(cfg, envs)
    stats = EpisodeStats(B, solved_at=solved_threshold(cfg.env.id))
    tracker = ContinualTracker.from_config(cfg) if cfg.env.schedule else None  # task/ and continual/ metrics
    obs, _ = envs.reset(seed=reset_seeds(run.seed, B))
    reward, terminated, truncated = np.zeros(B), np.zeros(B, bool), np.zeros(B, bool)
    start = 0
    if resume:
        ckpt = latest_checkpoint(run_dir)
        if ckpt is None:
            raise FileNotFoundError(f"no checkpoint to resume in {run_dir}")
        start, tensors, meta = load_checkpoint(ckpt)
        agent.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("agent.")})
        set_rng_state({k[4:]: v for k, v in tensors.items() if k.startswith("rng.")})
        set_env_state(envs, meta["env_state"])
        obs = tensors["loop.obs"].numpy()
        reward, terminated, truncated = (tensors[f"loop.{k}"].numpy() for k in ("reward", "terminated", "truncated"))
        stats.load(meta["stats"])
        if tracker is not None:
            tracker.load_state(run_dir, start)

    # After a crash, points logged past the checkpoint are logged again: drop the old ones from TensorBoard.
    writer = summary_writer(run_dir, purge_step=start + 1 if resume else None)
    progress = Progress(run.progress, total=run.steps, initial=start, num_agents=B)
    progress.start(run_dir, resume=resume)
    evaluator = PeriodicEval(cfg, run_dir) if run.eval_every else None
    t_start = t_log = time.perf_counter()
    s_log = start
    result: dict[str, Any] = {}
    try:
        for step in range(start, run.steps):
            # ---- the learning rule lives in agent.step: dopamine for the last transition, then act
            action, step_info = agent.step(obs, reward, terminated, truncated)
            obs, reward, terminated, truncated, info = envs.step(action)
            stats.update(step + 1, info)
            if tracker is not None:
                tracker.update(step + 1, info, step_info)
            if callback is not None:
                callback(step + 1, agent, stats)

            # ---- boilerplate: logging, checkpoints, progress
            done = step + 1
            if done % run.log_every == 0 or done == run.steps:
                _check_finite(agent, done)
                fps = B * (done - s_log) / max(time.perf_counter() - t_log, 1e-9)
                t_log, s_log = time.perf_counter(), done
                log_step(writer, agent, step_info, stats, done, fps=fps, elapsed=time.perf_counter() - t_start,
                         num_agents=B)
                if tracker is not None:
                    tracker.log(writer, done, agent)
                progress.log(done, fps=fps, median_return=stats.recent_median())
            if evaluator is not None and done % run.eval_every == 0:  # learning off, envs of its own
                log_eval(writer, evaluator(agent, done), done)
            if done % run.checkpoint_every == 0 or done == run.steps:
                _check_finite(agent, done)
                _save(run_dir, done, agent, envs, stats, obs, reward, terminated, truncated, run.keep_checkpoints, cfg)
                if tracker is not None:
                    tracker.save_state(run_dir)
            video = bool(run.video_every) and done % run.video_every == 0
            if done == run.steps or video or done % (10 * run.log_every) == 0:
                # agent 0 in its own env: spike raster and weights (files at the end and with videos), video
                snapshot(cfg, agent, run_dir, writer, done, video=video, files=video or done == run.steps)
            progress.update()
    finally:
        torch.set_num_threads(threads_before)
        progress.close()
        if evaluator is not None:
            evaluator.close()
        if writer is not None:
            writer.close()
        envs.close()
    result = stats.summary()
    result.update({"run_dir": str(run_dir), "steps": run.steps, "agents": B, "env": cfg.env.id,
                   "engine": agent.backend.name})
    if evaluator is not None and evaluator.best_result is not None:
        result["eval_best"] = {k: evaluator.best_result[k] for k in ("step", "mean_return", "median_return")}
    if tracker is not None:  # continual.json: per-phase returns, recovery, forgetting, plasticity health
        result["continual"] = {k: v for k, v in tracker.write(run_dir, agent).items() if k in tracker.HEADLINE}
    (run_dir / "result.json").write_text(json.dumps(result, indent=1))
    return result


# --------------------------------------------------------------------------- helpers of the loop


def _check_finite(agent: Agent, step: int) -> None:
    for name, t in agent.state_dict().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise NonFiniteState(f"non-finite values in agent state '{name}' at step {step}; "
                                 "the last good checkpoint is kept (lower the learning rates?)")


def _save(run_dir, step, agent, envs, stats, obs, reward, terminated, truncated, keep, cfg):
    tensors = {f"agent.{k}": v for k, v in agent.state_dict().items()}
    tensors.update({f"rng.{k}": v for k, v in rng_state().items()})
    tensors.update({"loop.obs": torch.as_tensor(np.asarray(obs)), "loop.reward": torch.as_tensor(np.asarray(reward)),
                    "loop.terminated": torch.as_tensor(np.asarray(terminated)),
                    "loop.truncated": torch.as_tensor(np.asarray(truncated))})
    meta = {"env_state": get_env_state(envs), "stats": stats.state(), "config": config_to_dict(cfg)}
    save_checkpoint(run_dir, step, tensors, meta, keep=keep)


def train_from_file(path, overrides=()) -> dict:
    return train(load_config(path, overrides))
