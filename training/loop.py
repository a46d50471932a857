"""The run: ``train(config) -> result``, one readable online loop, plus ``evaluate`` and ``record``.

The CLI, the tests and the benchmarks all call :func:`train`. Boilerplate (run folder, logging,
checkpoints) is kept apart from the three lines that matter::

    action = agent.step(obs, reward, terminated, truncated)     # learn from the last step, act
    obs, reward, terminated, truncated, info = envs.step(action)
"""

from __future__ import annotations

import random
import shlex
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from spikegym.agents.agent import Agent
from spikegym.agents.novelty import bonus_weight
from spikegym.envs import make_env, make_vector_env, obs_bounds, reset_seeds
from spikegym.training import tags as T
from spikegym.training.checkpoint import CHECKPOINTS, load_latest
from spikegym.training.config import Config, load_config
from spikegym.training.continual import ContinualTracker
from spikegym.training.files import write_json
from spikegym.training.guards import NonFiniteState  # noqa: F401 - re-exported: `from ...loop import NonFiniteState`
from spikegym.training.guards import RunInterrupted, StopSignals, check_observations, check_state
from spikegym.training.resume import agent_fits, agent_tensors, restore, save
from spikegym.training.run_dir import before_new_events, open_run_dir, record_run
from spikegym.training.stats import EpisodeStats

# Gymnasium's "solved" thresholds (mean return over the last 100 episodes).
SOLVED_AT = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0, "MountainCar-v0": -110.0, "Pendulum-v1": -200.0,
             "InvertedPendulum-v5": 950.0, "InvertedDoublePendulum-v5": 9100.0, "HalfCheetah-v5": 1000.0,
             "Hopper-v5": 1000.0, "Ant-v5": 1000.0, "MountainCarContinuous-v0": 90.0}


def make_agent(cfg: Config, envs, *, device=None) -> Agent:
    low, high = obs_bounds(envs.single_observation_space)  # Box bounds, or [start, start + n - 1] for Discrete
    return Agent(cfg, low, high, envs.single_action_space, num_agents=cfg.env.num_agents,
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
        resume: continue from the newest intact checkpoint in ``run_dir``.
        callback: optional ``callback(step, agent, stats)`` called after every env step (benchmarks).
    Returns:
        a JSON-serialisable summary (returns, solved agents, steps to solve, fps, run folder).
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
    envs = writer = progress = None
    try:
        _seed_everything(run.seed)

        # ---- world and agents
        B = cfg.env.num_agents
        envs = make_vector_env(cfg.env.id, B, run.seed, kwargs=cfg.env.kwargs, vectorization=cfg.env.vectorization,
                               max_episode_steps=cfg.env.max_episode_steps, schedule=cfg.env.schedule)
        agent = make_agent(cfg, envs)
        stats = EpisodeStats(B, solved_at=SOLVED_AT.get(cfg.env.id))
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
        writer = _summary_writer(run_dir, purge_step=start + 1 if resume else (0 if old_events else None))
        progress = _progress_bar(run.progress, total=run.steps, initial=start)
        t_log, s_log = time.perf_counter(), start
        with StopSignals() as stop:
            for step in range(start, run.steps):
                # ---- the learning rule lives in agent.step: dopamine for the last transition, then act
                action = agent.step(obs, reward, terminated, truncated, global_step=step)
                obs, reward, terminated, truncated, info = envs.step(action)
                check_observations(obs, reward, step=step + 1)  # a NaN never reaches the agent
                stats.update(step + 1, info)
                if tracker is not None:
                    tracker.update(step + 1, info, agent)
                if callback is not None:
                    callback(step + 1, agent, stats)

                # ---- boilerplate: logging, checkpoints, progress
                done = step + 1
                checkpoint = done % run.checkpoint_every == 0 or done == run.steps
                # A checkpoint step is a logging step too: every point up to a checkpoint is on disk with it.
                if done % run.log_every == 0 or checkpoint:
                    check_state(agent.state_dict(), step=done)
                    fps = B * (done - s_log) / max(time.perf_counter() - t_log, 1e-9)
                    t_log, s_log = time.perf_counter(), done
                    _log(writer, agent, stats, done, fps, run.log_every)
                    if tracker is not None:
                        tracker.log(writer, done, agent)
                    progress.set_postfix(ret=f"{stats.recent_median():.1f}", fps=f"{fps:.0f}")
                if checkpoint:
                    if writer is not None:
                        writer.flush()
                    save(run_dir, done, agent, envs, stats, tracker, (obs, reward, terminated, truncated), cfg)
                if done == run.steps or (run.video_every and done % run.video_every == 0):
                    _snapshot(cfg, agent, run_dir, writer, done)  # agent 0 in its own env: video, spike raster, weights
                progress.update(1)
                if stop.signum is not None:  # SIGINT/SIGTERM: keep this step's work, then stop
                    if not checkpoint:
                        if writer is not None:
                            writer.flush()
                        save(run_dir, done, agent, envs, stats, tracker, (obs, reward, terminated, truncated), cfg)
                    raise RunInterrupted(f"{stop.name} at step {done}: checkpoint step_{done} saved; continue with "
                                         f"spikegym train --resume {shlex.quote(str(run_dir))}", signum=stop.signum,
                                         step=done, checkpoint=run_dir / CHECKPOINTS / f"step_{done}")
        result = stats.summary()
        result.update({"run_dir": str(run_dir), "steps": run.steps, "agents": B, "env": cfg.env.id,
                       "agent_step": "numba kernel" if agent.fast is not None else "torch"})
        if tracker is not None:  # continual.json: per-phase returns, recovery, forgetting, plasticity health
            result["continual"] = {k: v for k, v in tracker.write(run_dir, agent).items() if k in tracker.HEADLINE}
        write_json(run_dir / "result.json", result)
        return result
    finally:
        torch.set_num_threads(threads_before)
        if progress is not None:
            progress.close()
        if writer is not None:
            writer.close()
        if envs is not None:
            envs.close()
        lock.release(remove_if_empty=lock.created)  # a run that failed before writing leaves no empty folder


# --------------------------------------------------------------------------- helpers of the loop


def _summary_writer(run_dir: Path, purge_step: Optional[int] = None):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency, but keep training if it is broken
        print("spikegym: tensorboard not importable; no TensorBoard logs", file=sys.stderr)
        return None
    return SummaryWriter(str(run_dir), purge_step=purge_step)


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
            n_cfg, novelty = agent.cfg.novelty, last["novelty"]
            writer.add_scalar(T.NOVELTY_INTRINSIC, last["intrinsic"].mean().item(), step)
            if "extrinsic" in last:
                writer.add_scalar(T.NOVELTY_EXTRINSIC, last["extrinsic"].mean().item(), step)
            writer.add_scalar(T.NOVELTY_BONUS, agent.novelty.beta * novelty.mean().item(), step)
            writer.add_scalar(T.NOVELTY_SIGNAL, novelty.mean().item(), step)
            writer.add_scalar(T.NOVELTY_WEIGHT, bonus_weight(step, n_cfg.decay_steps), step)
            writer.add_scalar(T.NOVELTY_NEW_FRACTION, (novelty >= 1.0).float().mean().item(), step)
            if agent.novelty.mode == "simhash":
                writer.add_scalar(T.NOVELTY_OCCUPIED_BUCKETS, (agent.novelty.counts > 0).sum(-1).float().mean().item(), step)
        if last.get("ach_gain") is not None:
            writer.add_scalar(T.PLASTICITY_ACH_GAIN, last["ach_gain"].mean().item(), step)
        if "surprise" in last:
            writer.add_scalar(T.NOVELTY_SURPRISE, last["surprise"].mean().item(), step)
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
    if cfg.run.threads:  # as in training: small brains on a busy CPU are far slower with extra threads
        torch.set_num_threads(cfg.run.threads)
    envs = make_vector_env(cfg.env.id, cfg.env.num_agents, cfg.run.seed + 10_000, kwargs=cfg.env.kwargs,
                           vectorization="sync" if cfg.env.schedule else cfg.env.vectorization,
                           max_episode_steps=cfg.env.max_episode_steps, schedule=None)
    agent = make_agent(cfg, envs, device=device)
    try:  # the newest checkpoint that reads back and fits the agent; one pruned while it is read is skipped
        _, step, tensors, _ = load_latest(run_dir, agent_fits(agent))
    except BaseException:
        envs.close()
        raise
    agent.load_state_dict(agent_tensors(tensors))
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


def agent_policy(cfg: Config, agent: Agent, index: int, *, keep_spikes: int = 0):
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
        a = single.step(np.asarray(obs)[None], z, np.zeros(1, bool), np.zeros(1, bool), learn=False)
        if len(spikes) < keep_spikes:
            spikes.append(torch.cat([single.last["sensors"][:, 0], single.last["motor"][:, 0]], dim=1).cpu())
        return a[0]

    def reset():
        single.brain.reset(everyone)
        single.encoder.reset(everyone)

    policy.reset, policy.spikes = reset, spikes
    return policy


def _snapshot(cfg: Config, agent: Agent, run_dir: Path, writer, step: int, decisions: int = 25) -> None:
    """Pictures of agent 0 at ``step``, made from a copy of it in an env of its own (training is not disturbed).

    With ``run.video_every`` set: one evaluation episode as ``RUN_DIR/videos/agent0-step<N>.mp4`` and as an
    animated image in TensorBoard (``eval/video``). Always: a spike raster of its first ``decisions``
    decisions (sensors, then each motor population in its own colour; unrendered episodes fill it up when
    the recorded one is shorter) and its sensors->motor weight matrix, as PNGs in ``RUN_DIR/images`` and
    TensorBoard images. A failure (e.g. no OpenGL) warns; training goes on.
    """
    import warnings

    from spikegym.training.images import save_png, spike_raster, to_tensorboard_image, weight_image
    from spikegym.training.video import FrameSampler, frames_to_tensorboard, record_episodes

    policy = agent_policy(cfg, agent, 0, keep_spikes=decisions)
    seed = cfg.run.seed  # as `spikegym record` does: its video of the same checkpoint is this one
    make = lambda mode=None: make_env(cfg.env.id, kwargs=cfg.env.kwargs, render_mode=mode,  # noqa: E731
                                      max_episode_steps=cfg.env.max_episode_steps)
    try:
        if cfg.run.video_every:
            thumbs = FrameSampler()
            res = record_episodes(lambda: make("rgb_array"), policy, run_dir / "videos" / f"agent0-step{step}.mp4",
                                  seed=seed, max_steps=cfg.env.max_episode_steps or 1000, on_frame=thumbs)
            if writer is not None:
                frames_to_tensorboard(writer, T.EVAL_VIDEO, thumbs.frames(), step, fps=res["fps"] / thumbs.stride)
        if len(policy.spikes) < decisions:  # no video, or a short episode: play on (unrendered) for the raster
            env = make()
            obs, _ = env.reset(seed=seed + 1)
            policy.reset()
            while len(policy.spikes) < decisions:
                obs, _, term, trunc, _ = env.step(policy(obs))
                if term or trunc:
                    obs, _ = env.reset()
                    policy.reset()
            env.close()
        m, groups = cfg.brain.motor_size, [("sensors", agent.encoder.n_out)]
        groups += [(f"action {i}" if agent.discrete else f"a{i // 2}{'+-'[i % 2]}", m) for i in range(agent.n_groups)]
        spikes = torch.cat(policy.spikes[:decisions]).numpy()
        images = {"raster": (T.BRAIN_RASTER, spike_raster(spikes, groups=groups, scale=2 if spikes.shape[1] <= 400 else 1)),
                  "weights-sensors_to_motor": (T.tag(T.PLASTICITY_W_IMAGE, proj="sensors_to_motor"),
                                               weight_image(agent.brain.weights("sensors->motor")[0]))}
        for name, (tag, img) in images.items():
            save_png(img, run_dir / "images" / f"{name}-step{step}.png")
            if writer is not None:
                writer.add_image(tag, to_tensorboard_image(img), step)
    except Exception as err:  # noqa: BLE001 - pictures are never worth a lost run
        warnings.warn(f"spikegym: pictures of agent 0 at step {step} failed ({err!r}); training goes on", stacklevel=2)


def train_from_file(path, overrides=()) -> dict:
    return train(load_config(path, overrides))
