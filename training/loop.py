"""The run: ``train(config) -> result``, one readable online loop, plus ``evaluate`` and ``record``.

The CLI, the tests and the benchmarks all call :func:`train`. Boilerplate (run folder, logging,
checkpoints) is kept apart from the three lines that matter::

    action = agent.step(obs, reward, terminated, truncated)     # learn from the last step, act
    obs, reward, terminated, truncated, info = envs.step(action)
"""

from __future__ import annotations

import json
import math
import os
import random
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from spikegym.agents.agent import Agent
from spikegym.envs import make_env, make_vector_env, reset_seeds
from spikegym.envs.state import get_env_state, set_env_state
from spikegym.training import tags as T
from spikegym.training.checkpoint import latest_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from spikegym.training.config import Config, config_to_dict, load_config, save_resolved_config
from spikegym.training.stats import EpisodeStats

# Gymnasium's "solved" thresholds (mean return over the last 100 episodes).
SOLVED_AT = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0, "MountainCar-v0": -110.0, "Pendulum-v1": -200.0,
             "InvertedPendulum-v5": 950.0, "InvertedDoublePendulum-v5": 9100.0, "HalfCheetah-v5": 1000.0,
             "Hopper-v5": 1000.0, "Ant-v5": 1000.0, "MountainCarContinuous-v0": 90.0}


class NonFiniteState(RuntimeError):
    """The brain's state became NaN/inf; the run stops and the last good checkpoint is kept."""


def _default_run_dir(cfg: Config) -> Path:
    return Path("runs") / f"{cfg.env.id}-{time.strftime('%Y%m%d-%H%M%S')}"


def make_agent(cfg: Config, envs, *, device=None) -> Agent:
    space = envs.single_observation_space
    return Agent(cfg, space.low, space.high, envs.single_action_space, num_agents=cfg.env.num_agents,
                 seed=cfg.run.seed, device=device or cfg.run.device)


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
    if run.threads:
        torch.set_num_threads(run.threads)
    run_dir = Path(run_dir or run.run_dir or _default_run_dir(cfg))
    run_dir.mkdir(parents=True, exist_ok=True)
    _seed_everything(run.seed)
    save_resolved_config(cfg, run_dir / "config.yaml")
    with open(run_dir / "command.txt", "a") as f:
        f.write((command_line or " ".join(shlex.quote(a) for a in sys.argv)) + "\n")
    (run_dir / "seed.txt").write_text(f"{run.seed}\n")

    # ---- world and agents
    B = cfg.env.num_agents
    envs = make_vector_env(cfg.env.id, B, run.seed, kwargs=cfg.env.kwargs, vectorization=cfg.env.vectorization,
                           max_episode_steps=cfg.env.max_episode_steps, schedule=cfg.env.schedule)
    agent = make_agent(cfg, envs)
    stats = EpisodeStats(B, solved_at=SOLVED_AT.get(cfg.env.id))
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

    writer = _summary_writer(run_dir)
    progress = _progress_bar(run.progress, total=run.steps, initial=start)
    t_log, s_log = time.perf_counter(), start
    result: dict[str, Any] = {}
    try:
        for step in range(start, run.steps):
            # ---- the learning rule lives in agent.step: dopamine for the last transition, then act
            action = agent.step(obs, reward, terminated, truncated, global_step=step)
            obs, reward, terminated, truncated, info = envs.step(action)
            stats.update(step + 1, info)
            if callback is not None:
                callback(step + 1, agent, stats)

            # ---- boilerplate: logging, checkpoints, progress
            done = step + 1
            if done % run.log_every == 0 or done == run.steps:
                _check_finite(agent, done)
                fps = B * (done - s_log) / max(time.perf_counter() - t_log, 1e-9)
                t_log, s_log = time.perf_counter(), done
                _log(writer, agent, stats, done, fps, run.log_every)
                progress.set_postfix(ret=f"{stats.recent_median():.1f}", fps=f"{fps:.0f}")
            if done % run.checkpoint_every == 0 or done == run.steps:
                _check_finite(agent, done)
                _save(run_dir, done, agent, envs, stats, obs, reward, terminated, truncated, run.keep_checkpoints, cfg)
            progress.update(1)
    finally:
        progress.close()
        if writer is not None:
            writer.close()
        envs.close()
    result = stats.summary()
    result.update({"run_dir": str(run_dir), "steps": run.steps, "agents": B, "env": cfg.env.id})
    (run_dir / "result.json").write_text(json.dumps(result, indent=1))
    return result


# --------------------------------------------------------------------------- helpers of the loop


def _check_finite(agent: Agent, step: int) -> None:
    for name, t in agent.brain.state_dict().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise NonFiniteState(f"non-finite values in brain state '{name}' at step {step}; "
                                 "the last good checkpoint is kept (lower the learning rates?)")


def _save(run_dir, step, agent, envs, stats, obs, reward, terminated, truncated, keep, cfg):
    tensors = {f"agent.{k}": v for k, v in agent.state_dict().items()}
    tensors.update({f"rng.{k}": v for k, v in rng_state().items()})
    tensors.update({"loop.obs": torch.as_tensor(np.asarray(obs)), "loop.reward": torch.as_tensor(np.asarray(reward)),
                    "loop.terminated": torch.as_tensor(np.asarray(terminated)),
                    "loop.truncated": torch.as_tensor(np.asarray(truncated))})
    meta = {"env_state": get_env_state(envs), "stats": stats.state(), "config": config_to_dict(cfg)}
    save_checkpoint(run_dir, step, tensors, meta, keep=keep)


def _summary_writer(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency, but keep training if it is broken
        print("spikegym: tensorboard not importable; no TensorBoard logs", file=sys.stderr)
        return None
    return SummaryWriter(str(run_dir))


def _progress_bar(mode: str, total: int, initial: int):
    from tqdm import tqdm
    disable = {"on": False, "off": True}.get(mode, not sys.stderr.isatty())
    return tqdm(total=total, initial=initial, disable=disable, unit="step", dynamic_ncols=True)


def _log(writer, agent: Agent, stats, step: int, fps: float, log_every: int) -> None:
    if writer is None:
        return
    for tag, value in stats.scalars().items():
        writer.add_scalar(tag, value, step)
    for s, ret in stats.drain_points():
        writer.add_scalar(T.EPISODIC_RETURN, ret, s)
    writer.add_scalar(T.FPS, fps, step)
    brain = agent.brain
    for pop in brain.pops:
        writer.add_scalar(T.BRAIN_RATE.format(pop=pop), brain.rate(pop).mean().item() * 1000.0 / brain.dt, step)
    for name, proj in brain.projs.items():
        w = brain.weights(name)
        tag = name.replace("->", "_to_")
        writer.add_scalar(T.PLASTICITY_W_MEAN.format(proj=tag), w.mean().item(), step)
        writer.add_scalar(T.PLASTICITY_W_ABS.format(proj=tag), w.abs().mean().item(), step)
        writer.add_histogram(T.PLASTICITY_W_HIST.format(proj=tag), w[0].flatten(), step)
        if proj.plastic:
            writer.add_scalar(T.PLASTICITY_ELIG.format(proj=tag), brain.eligibility(name).abs().mean().item(), step)
    last = agent.last
    if last:
        d = last["delta"][last["learnable"]]
        if d.numel():
            writer.add_scalar(T.DOPAMINE_MEAN, d.mean().item(), step)
            writer.add_scalar(T.DOPAMINE_STD, d.std().item() if d.numel() > 1 else 0.0, step)
            writer.add_scalar(T.DOPAMINE_ABS, d.abs().mean().item(), step)
        writer.add_scalar(T.DOPAMINE_VALUE, last["value"].mean().item(), step)
        if agent.novelty is not None:
            writer.add_scalar(T.NOVELTY_BONUS, last["intrinsic"].mean().item(), step)
            writer.add_scalar(T.NOVELTY_SIGNAL, last["novelty"].mean().item(), step)
        if agent.encoder.adaptation is not None:
            writer.add_scalar(T.NOVELTY_ADAPTATION, agent.encoder.adaptation_level().mean().item(), step)
    if last and step % (10 * log_every) == 0:
        from spikegym.training.images import spike_raster, to_tensorboard_image
        raster = torch.cat([last["sensors"][:, 0], last["motor"][:, 0]], dim=1).cpu().numpy()
        writer.add_image(T.BRAIN_RASTER, to_tensorboard_image(spike_raster(raster)), step)


# --------------------------------------------------------------------------- evaluation and video


def load_run(run_dir, *, device="cpu"):
    """``(cfg, agent, envs, step)`` restored from the latest checkpoint of ``run_dir``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder not found: {run_dir}")
    cfg = load_config(run_dir / "config.yaml")
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise FileNotFoundError(f"no checkpoint in {run_dir}; train first")
    step, tensors, _ = load_checkpoint(ckpt)
    envs = make_vector_env(cfg.env.id, cfg.env.num_agents, cfg.run.seed + 10_000, kwargs=cfg.env.kwargs,
                           vectorization="sync" if cfg.env.schedule else cfg.env.vectorization,
                           max_episode_steps=cfg.env.max_episode_steps, schedule=None)
    agent = make_agent(cfg, envs, device=device)
    agent.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("agent.")})
    return cfg, agent, envs, step


def evaluate(run_dir, episodes: int = 10, *, learn: bool = False) -> dict:
    """Run every agent of a trained population for ``episodes`` episodes (learning off) on fresh envs."""
    cfg, agent, envs, step = load_run(run_dir)
    B = cfg.env.num_agents
    stats = EpisodeStats(B, solved_at=SOLVED_AT.get(cfg.env.id))
    obs, _ = envs.reset(seed=reset_seeds(cfg.run.seed + 10_000, B))
    reward, term, trunc = np.zeros(B), np.zeros(B, bool), np.zeros(B, bool)
    agent.brain.reset(torch.ones(B, dtype=torch.bool))
    agent.state["learnable"].zero_()
    n = 0
    limit = episodes * 100_000
    while stats.min_episodes() < episodes and n < limit:
        action = agent.step(obs, reward, term, trunc, learn=learn)
        obs, reward, term, trunc, info = envs.step(action)
        n += 1
        stats.update(n, info)
    envs.close()
    per_agent = stats.mean_returns(last=episodes)
    out = {"run_dir": str(run_dir), "checkpoint_step": step, "episodes": episodes,
           "mean_return_per_agent": per_agent, "median_return": float(np.median(per_agent))}
    _log_eval(run_dir, out, step)
    return out


def _log_eval(run_dir, out, step):
    writer = _summary_writer(Path(run_dir))
    if writer is not None:
        writer.add_scalar(T.EVAL_MEAN_REWARD, out["median_return"], step)
        writer.close()


def record(run_dir, episodes: int = 1, out=None, *, agents: int = 4) -> list[Path]:
    """mp4 videos of trained agents acting in a separate evaluation env (agent 0, and a grid of several)."""
    from spikegym.training.video import record_episodes, record_grid

    cfg, agent, envs, step = load_run(run_dir)
    envs.close()
    out = Path(out) if out else Path(run_dir) / "videos"
    out.mkdir(parents=True, exist_ok=True)
    make = lambda: make_env(cfg.env.id, kwargs=cfg.env.kwargs, render_mode="rgb_array",
                            max_episode_steps=cfg.env.max_episode_steps)
    n = min(agents, cfg.env.num_agents)
    singles = [agent_policy(cfg, agent, i) for i in range(n)]
    paths = [Path(record_episodes(make, singles[0], out / f"agent0-step{step}.mp4", episodes=episodes,
                                  seed=cfg.run.seed)["path"])]
    if n > 1:
        grid = [agent_policy(cfg, agent, i) for i in range(n)]
        paths.append(Path(record_grid(make, grid, out / f"grid{n}-step{step}.mp4", seed=cfg.run.seed)["path"]))
    return paths


def agent_policy(cfg: Config, agent: Agent, index: int):
    """A single-agent policy ``obs -> action`` for agent ``index`` of a population (learning off)."""
    single = agent.select(index)

    def policy(obs):
        z = np.zeros(1)
        a = single.step(np.asarray(obs)[None], z, np.zeros(1, bool), np.zeros(1, bool), learn=False)
        return a[0]

    return policy


def train_from_file(path, overrides=()) -> dict:
    return train(load_config(path, overrides))
