"""The run: ``train(config) -> result``, one readable online loop.

The CLI, the tests and the benchmarks all call :func:`train`. Boilerplate (run folder, logging,
checkpoints, evaluation) is kept apart from the three lines that matter::

    action, info = agent.step(obs, reward, terminated, truncated)     # learn from the last step, act
    obs, reward, terminated, truncated, env_info = envs.step(action)

Logging lives in ``tensorboard.py``, progress lines in ``progress.py``, evaluation (and ``load``)
in ``evaluate.py``, videos in ``record.py``, the run folder in ``run_dir.py``, checkpoints in
``resume.py`` and ``checkpoint.py``, guards against NaN and signals in ``guards.py``.
"""

from __future__ import annotations

import random
import shlex
import sys
import time
from typing import Optional

import numpy as np
import torch

from spikegym.envs import make_vector_env, reset_seeds
from spikegym.training.checkpoint import CHECKPOINTS
from spikegym.training.config import Config, load_config
from spikegym.training.continual import ContinualTracker
from spikegym.training.evaluate import PeriodicEval, make_agent
from spikegym.training.files import write_json
from spikegym.training.guards import NonFiniteState  # noqa: F401 - re-exported: `from ...loop import NonFiniteState`
from spikegym.training.guards import RunInterrupted, StopSignals, check_observations, check_state
from spikegym.training.progress import Progress
from spikegym.training.resume import restore, save
from spikegym.training.run_dir import before_new_events, open_run_dir, record_run
from spikegym.training.stats import EpisodeStats
from spikegym.training.tensorboard import log_eval, log_step, snapshot, summary_writer
from spikegym.training.thresholds import solved_threshold

__all__ = ["train", "make_agent", "NonFiniteState", "train_from_file"]


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(cfg: Config, *, run_dir=None, resume: bool = False, command_line: Optional[str] = None,
          callback=None) -> dict:
    """Train ``cfg.env.num_agents`` independent agents online for ``cfg.run.steps`` env steps each.

    Args:
        run_dir: the run folder (config, command line, TensorBoard events, checkpoints, videos).
        resume: continue from the newest intact checkpoint in ``run_dir``.
        callback: optional ``callback(step, agent, stats)`` called after every env step (benchmarks).
    Returns:
        a JSON-serialisable summary (returns, solved agents, steps to solve, fps, run folder, engine).
    Raises:
        RunFolderError (the folder is locked, not a run folder, unwritable; a resume does not match its
        checkpoint; no checkpoint is intact) before anything is written; NonFiniteState (NaN/inf in an
        observation or the agent) and RunInterrupted (SIGINT/SIGTERM, after saving a checkpoint).
    """
    run = cfg.run
    # The folder is checked and locked for the run's life; nothing in it is written until the config
    # is known to fit (on resume: until the checkpoint has loaded into the agent and the envs).
    lock = open_run_dir(cfg, run_dir, resume=resume)
    run_dir = lock.path
    threads_before = torch.get_num_threads()
    if run.threads:
        torch.set_num_threads(run.threads)
    envs = writer = progress = evaluator = None
    try:
        _seed_everything(run.seed)

        # ---- world and agents
        B = cfg.env.num_agents
        envs = make_vector_env(cfg.env.id, B, run.seed, kwargs=cfg.env.kwargs, vectorization=cfg.env.vectorization,
                               max_episode_steps=cfg.env.max_episode_steps, schedule=cfg.env.schedule,
                               device=run.device)
        agent = make_agent(cfg, envs)
        stats = EpisodeStats(B, solved_at=solved_threshold(cfg.env.id))
        tracker = ContinualTracker.from_config(cfg) if cfg.env.schedule else None  # task/ and continual/ metrics
        obs, _ = envs.reset(seed=reset_seeds(run.seed, B))
        reward, terminated, truncated = np.zeros(B), np.zeros(B, bool), np.zeros(B, bool)
        start = 0
        if resume:
            start, obs, reward, terminated, truncated = restore(run_dir, cfg, agent, envs, stats, tracker)
        # The run folder says how it was made (config.yaml, command.txt, run.json, seed.txt).
        record_run(cfg, run_dir, resume=resume, command_line=command_line or " ".join(shlex.quote(a) for a in sys.argv))
        lock.created = False  # from here on the folder is the run's, even if it fails

        # After a crash, points logged past the checkpoint are logged again: drop the old ones from TensorBoard
        # (a fresh run in the folder of one that stopped before its first checkpoint drops all of them).
        old_events = before_new_events(run_dir)
        writer = summary_writer(run_dir, purge_step=start + 1 if resume else (0 if old_events else None))
        progress = Progress(run.progress, total=run.steps, initial=start, num_agents=B)
        progress.start(run_dir, resume=resume)
        evaluator = PeriodicEval(cfg, run_dir) if run.eval_every else None
        t_start = t_log = time.perf_counter()
        s_log = start
        with StopSignals() as stop:
            for step in range(start, run.steps):
                # ---- the learning rule lives in agent.step: dopamine for the last transition, then act
                action, step_info = agent.step(obs, reward, terminated, truncated)
                stats.energy.add(step_info)  # spikes per neuron: energy/ at the log steps
                obs, reward, terminated, truncated, info = envs.step(action)
                check_observations(obs, reward, step=step + 1)  # a NaN never reaches the agent
                stats.update(step + 1, info)
                if tracker is not None:
                    tracker.update(step + 1, info, step_info)
                if callback is not None:
                    callback(step + 1, agent, stats)

                # ---- boilerplate: logging, checkpoints, evaluation, progress
                done = step + 1
                checkpoint = done % run.checkpoint_every == 0 or done == run.steps
                # A checkpoint step is a logging step too: every point up to a checkpoint is on disk with it.
                if done % run.log_every == 0 or checkpoint:
                    check_state(agent.state_dict(), step=done)
                    fps = B * (done - s_log) / max(time.perf_counter() - t_log, 1e-9)
                    t_log, s_log = time.perf_counter(), done
                    log_step(writer, agent, step_info, stats, done, fps=fps, elapsed=time.perf_counter() - t_start,
                             num_agents=B)
                    if tracker is not None:
                        tracker.log(writer, done, agent)
                    progress.log(done, fps=fps, median_return=stats.recent_median())
                if evaluator is not None and done % run.eval_every == 0:  # learning off, envs of its own
                    log_eval(writer, evaluator(agent, done), done)
                if checkpoint:
                    if writer is not None:
                        writer.flush()
                    save(run_dir, done, agent, envs, stats, tracker, (obs, reward, terminated, truncated), cfg)
                video = bool(run.video_every) and done % run.video_every == 0
                if done == run.steps or video or done % (10 * run.log_every) == 0:
                    # agent 0 in its own env: spike raster and weights (files at the end and with videos), video
                    snapshot(cfg, agent, run_dir, writer, done, video=video, files=video or done == run.steps)
                progress.update()
                if stop.signum is not None:  # SIGINT/SIGTERM: keep this step's work, then stop
                    if not checkpoint:
                        stats.energy.flush(agent)  # the energy counts since the last log step go into the checkpoint
                        if writer is not None:
                            writer.flush()
                        save(run_dir, done, agent, envs, stats, tracker, (obs, reward, terminated, truncated), cfg)
                    raise RunInterrupted(f"{stop.name} at step {done}: checkpoint step_{done} saved; continue with "
                                         f"spikegym train --resume {shlex.quote(str(run_dir))}", signum=stop.signum,
                                         step=done, checkpoint=run_dir / CHECKPOINTS / f"step_{done}")
        result = stats.summary()
        result.update({"run_dir": str(run_dir), "steps": run.steps, "agents": B, "env": cfg.env.id,
                       "engine": agent.backend.name})
        if evaluator is not None and evaluator.best_result is not None:
            result["eval_best"] = {k: evaluator.best_result[k] for k in ("step", "mean_return", "median_return")}
        if tracker is not None:  # continual.json: per-phase returns, recovery, forgetting, plasticity health
            result["continual"] = {k: v for k, v in tracker.write(run_dir, agent).items() if k in tracker.HEADLINE}
        write_json(run_dir / "result.json", result)
        return result
    finally:
        torch.set_num_threads(threads_before)
        if progress is not None:
            progress.close()
        if evaluator is not None:
            evaluator.close()
        if writer is not None:
            writer.close()
        if envs is not None:
            envs.close()
        lock.release(remove_if_empty=lock.created)  # a run that failed before writing leaves no empty folder


def train_from_file(path, overrides=()) -> dict:
    return train(load_config(path, overrides))
