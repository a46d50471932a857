"""Trained agents with learning off: load a run, evaluate it, evaluate during training (and keep
the best checkpoint), and the public :func:`load` that returns a policy with ``.predict(obs)``.

An evaluation runs every agent of the population on envs of its own (seeded apart from the
training envs) for a fixed number of episodes with learning off; it never disturbs training: the
agents are a copy, and the global random generators are put back as they were.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from spikegym.envs import make_vector_env, obs_bounds, reset_seeds
from spikegym.training.checkpoint import (CHECKPOINTS, latest_checkpoint, list_checkpoints, load_checkpoint, load_latest,
                                          rng_state, save_checkpoint, set_rng_state)
from spikegym.training.config import Config, config_to_dict, load_config
from spikegym.training.resume import agent_fits, agent_tensors
from spikegym.training.signals import decision_spikes

#: Evaluation envs are seeded this far from the training envs' seed.
EVAL_SEED_OFFSET = 10_000
BEST = "best"

Checkpoint = Union[None, int, str, os.PathLike]


def make_agent(cfg: Config, envs, *, device=None):
    from spikegym.agents.agent import Agent

    low, high = obs_bounds(envs.single_observation_space)  # Box bounds, or [start, start + n - 1] for Discrete
    return Agent(cfg, low, high, envs.single_action_space, num_agents=cfg.env.num_agents,
                 seed=cfg.run.seed, device=device or cfg.run.device)


def make_eval_envs(cfg: Config):
    """``num_agents`` envs for evaluation: the run's env without its task schedule, sync if it had one."""
    return make_vector_env(cfg.env.id, cfg.env.num_agents, cfg.run.seed + EVAL_SEED_OFFSET, kwargs=cfg.env.kwargs,
                           vectorization="sync" if cfg.env.schedule else cfg.env.vectorization,
                           max_episode_steps=cfg.env.max_episode_steps, schedule=None)


def resolve_checkpoint(run_dir, checkpoint: Checkpoint = None) -> Path:
    """The checkpoint folder meant by ``checkpoint``: None (the latest), ``"best"`` (the best
    evaluation, ``run.eval_every``), a step (``25000`` or ``"25000"``) or a folder."""
    run_dir = Path(run_dir)
    if checkpoint is None:
        found = latest_checkpoint(run_dir)
        if found is None:
            raise FileNotFoundError(f"no checkpoint in {run_dir}; train first")
        return found
    text = str(checkpoint)
    if text == BEST:
        path = run_dir / CHECKPOINTS / BEST
        if not (path / "state.pt").is_file():
            raise FileNotFoundError(f"no best checkpoint in {run_dir} (it is kept when run.eval_every is set)")
        return path
    if text.isdigit():
        path = run_dir / CHECKPOINTS / f"step_{int(text)}"
        if not (path / "state.pt").is_file():
            steps = ", ".join(p.name[5:] for p in list_checkpoints(run_dir)) or "none"
            raise FileNotFoundError(f"no checkpoint at step {int(text)} in {run_dir} (steps kept: {steps}; or 'best')")
        return path
    path = Path(checkpoint)
    if not (path / "state.pt").is_file():
        raise FileNotFoundError(f"not a checkpoint folder (no state.pt): {path}")
    return path


def load_run(run_dir, *, device="cpu", checkpoint: Checkpoint = None):
    """``(cfg, agent, envs, step)``: the run's agents restored from ``checkpoint`` (see
    :func:`resolve_checkpoint`) and fresh evaluation envs."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder not found: {run_dir}")
    cfg = load_config(run_dir / "config.yaml", [f"run.device={device}"])  # a CUDA run evaluates on a CPU machine
    if cfg.run.threads:  # as in training: small brains on a busy CPU are far slower with extra threads
        torch.set_num_threads(cfg.run.threads)
    envs = make_eval_envs(cfg)
    agent = make_agent(cfg, envs, device=device)
    try:
        if checkpoint is None:  # the newest checkpoint that reads back and fits; one pruned while read is skipped
            _, step, tensors, _ = load_latest(run_dir, agent_fits(agent))
        else:
            step, tensors, _ = load_checkpoint(resolve_checkpoint(run_dir, checkpoint))
    except BaseException:
        envs.close()
        raise
    agent.load_state_dict(agent_tensors(tensors))
    return cfg, agent, envs, step


def run_episodes(agent, envs, episodes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Play until every agent has finished ``episodes`` episodes, learning off, from fresh fast state.

    Returns ``(returns, lengths)``, each ``[B, episodes]``: every agent's first ``episodes`` episodes.
    """
    B = envs.num_envs
    returns: list[list[float]] = [[] for _ in range(B)]
    lengths: list[list[int]] = [[] for _ in range(B)]
    obs, _ = envs.reset(seed=reset_seeds(seed, B))
    reward, term, trunc = np.zeros(B), np.zeros(B, bool), np.zeros(B, bool)
    agent.reset()
    limit, n = episodes * 100_000, 0
    while min(len(r) for r in returns) < episodes and n < limit:
        action, _ = agent.step(obs, reward, term, trunc, learn=False)
        obs, reward, term, trunc, info = envs.step(action)
        n += 1
        mask = info.get("_episode")
        if mask is not None and np.any(mask):
            for b in np.flatnonzero(mask):
                returns[b].append(float(info["episode"]["r"][b]))
                lengths[b].append(int(info["episode"]["l"][b]))
    if min(len(r) for r in returns) < episodes:
        raise RuntimeError(f"evaluation did not finish {episodes} episodes per agent within {limit} steps")
    return (np.array([r[:episodes] for r in returns], dtype=np.float64),
            np.array([n[:episodes] for n in lengths], dtype=np.float64))


def summarize(returns: np.ndarray, lengths: np.ndarray) -> dict:
    """Per agent mean and std over its episodes; the population's mean, std and median of those means."""
    means = returns.mean(axis=1)
    return {"episodes": int(returns.shape[1]),
            "mean_return_per_agent": means.tolist(), "std_return_per_agent": returns.std(axis=1).tolist(),
            "mean_return": float(means.mean()), "std_return": float(means.std()),
            "median_return": float(np.median(means)), "mean_length": float(lengths.mean())}


def evaluate(run_dir, episodes: int = 10, *, seed: Optional[int] = None, checkpoint: Checkpoint = None) -> dict:
    """Run every agent of a trained population for ``episodes`` episodes (learning off) on fresh envs.

    ``seed``: the evaluation envs' seed (default: the run's seed + 10000, as during training).
    """
    cfg, agent, envs, step = load_run(run_dir, checkpoint=checkpoint)
    seed = cfg.run.seed + EVAL_SEED_OFFSET if seed is None else int(seed)
    try:
        returns, lengths = run_episodes(agent, envs, episodes, seed)
    finally:
        envs.close()
    return {"run_dir": str(run_dir), "env": cfg.env.id, "checkpoint_step": step,
            "checkpoint": str(resolve_checkpoint(run_dir, checkpoint)), "seed": seed, **summarize(returns, lengths)}


class PeriodicEval:
    """``run.eval_every``: evaluate a copy of the population during training and keep the best.

    The copy plays ``run.eval_episodes`` episodes per agent on envs of its own; the global random
    generators are restored afterwards, so a run with evaluations learns exactly as one without.
    The best evaluation so far (by ``mean_return``) is saved to ``checkpoints/best``, which
    pruning and resume never touch.
    """

    def __init__(self, cfg: Config, run_dir: Path):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.best = _best_score(self.run_dir)
        self.best_result: Optional[dict] = None
        self.envs = None
        self.agent = None

    def __call__(self, agent, step: int) -> dict:
        saved = rng_state()
        try:
            if self.envs is None:
                self.envs = make_eval_envs(self.cfg)
                self.agent = make_agent(self.cfg, self.envs, device=agent.device)
            self.agent.load_state_dict(agent.state_dict())
            returns, lengths = run_episodes(self.agent, self.envs, self.cfg.run.eval_episodes,
                                            self.cfg.run.seed + EVAL_SEED_OFFSET)
        finally:
            set_rng_state(saved)
        result = {"step": step, **summarize(returns, lengths)}
        if self.best is None or result["mean_return"] > self.best:
            self.best = result["mean_return"]
            save_best(self.run_dir, step, agent, result, self.cfg)
            self.best_result = result
        return result

    def close(self) -> None:
        if self.envs is not None:
            self.envs.close()


def save_best(run_dir: Path, step: int, agent, result: dict, cfg: Config) -> Path:
    """Write ``checkpoints/best/`` (agent tensors, the evaluation, the config) atomically."""
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-best-"))  # cleaned by pruning if we die here
    try:
        written = save_checkpoint(staging, step, {f"agent.{k}": v for k, v in agent.state_dict().items()},
                                  {"eval": result, "config": config_to_dict(cfg)}, keep=None)
        final = root / BEST
        if final.exists():
            old = root / f".old-best-{step}"
            os.replace(final, old)
            os.replace(written, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(written, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root / BEST


def _best_score(run_dir: Path) -> Optional[float]:
    try:
        _, _, meta = load_checkpoint(run_dir / CHECKPOINTS / BEST)
        return float(meta["eval"]["mean_return"])
    except Exception:  # noqa: BLE001 - no best yet (or an unreadable one): the next evaluation replaces it
        return None


# --------------------------------------------------------------------------- single-agent policies


def agent_policy(cfg: Config, agent, index: int, *, keep_spikes: int = 0):
    """A single-agent policy ``obs -> action`` for agent ``index`` of a population (learning off).

    It acts from a copy of the agent (``Agent.select``), so the population is never disturbed.
    ``policy.reset()`` clears the copy's fast state (neurons, traces, adaptation) for a new episode;
    ``record_episodes`` calls it. With ``keep_spikes=n``, ``policy.spikes`` collects the sensor and
    motor spikes ``[K, N_in + N_motor]`` of its first ``n`` decisions (for a raster).
    """
    single = agent.select(index)
    everyone = torch.ones(1, dtype=torch.bool, device=single.device)
    spikes: list[torch.Tensor] = []

    def policy(obs):
        z = np.zeros(1)
        a, info = single.step(np.asarray(obs)[None], z, np.zeros(1, bool), np.zeros(1, bool), learn=False)
        if len(spikes) < keep_spikes:
            spikes.append(decision_spikes(info))
        return a[0]

    def reset():
        single.reset(everyone)

    policy.reset, policy.spikes = reset, spikes
    return policy


class Policy:
    """One trained agent of a run, learning off: ``action = policy.predict(obs)``.

    ``predict`` takes one observation (as the env returns it) and returns one action (as the
    env takes it). The agent is spiking and stateful: call ``reset()`` at the start of each episode.
    """

    def __init__(self, cfg: Config, agent, index: int, step: int):
        self.cfg, self.index, self.step = cfg, index, step
        self.num_agents = cfg.env.num_agents
        self._act = agent_policy(cfg, agent, index)

    def predict(self, obs):
        return self._act(obs)

    def reset(self) -> None:
        self._act.reset()


def load(run_dir, checkpoint: Checkpoint = None, *, agent: int = 0, device: str = "cpu") -> Policy:
    """Agent ``agent`` of the run in ``run_dir`` at ``checkpoint`` (None: the latest; ``"best"``;
    a step; a folder), as a :class:`Policy` with ``.predict(obs) -> action`` and learning off."""
    cfg, population, envs, step = load_run(run_dir, device=device, checkpoint=checkpoint)
    envs.close()
    if not 0 <= agent < cfg.env.num_agents:
        raise ValueError(f"agent must be in 0..{cfg.env.num_agents - 1}, got {agent}")
    return Policy(cfg, population, agent, step)
