"""TensorBoard of a run: the writer, the custom-scalars layout, the scalars of each log step and
the pictures of agent 0 (spike raster, weight matrix, an evaluation video).

Every tag comes from :mod:`spikegym.training.tags`; everything read out of the agents comes
through :mod:`spikegym.training.signals`.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Optional

import numpy as np

from spikegym.training import tags as T
from spikegym.training.signals import agent_signals, raster_groups, weight_matrix

#: Per-agent return tags (``agents/return_<i>``) are written for this many agents at most: past
#: that TensorBoard's page becomes a wall of charts; the population tags cover everyone.
MAX_AGENT_TAGS = 32

#: The Custom Scalars tab: the main curve first (median over agents with its interquartile band).
LAYOUT = {
    "spikegym": {
        "return: population median and interquartile band": ["Margin", [T.POP_MEDIAN, T.POP_P25, T.POP_P75]],
        "return: mean over agents (training) and evaluation": ["Multiline", [T.EP_REW_MEAN, T.EVAL_MEAN_REWARD]],
        "return of each agent": ["Multiline", [r"agents/return_\d+"]],
        "solved fraction": ["Multiline", [T.POP_SOLVED_FRACTION]],
    },
}


def summary_writer(run_dir: Path, purge_step: Optional[int] = None):
    """A ``SummaryWriter`` on ``run_dir`` with the custom-scalars layout, or None (with a message)
    if TensorBoard cannot be imported."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency, but keep training if it is broken
        print("spikegym: tensorboard not importable; no TensorBoard logs", file=sys.stderr)
        return None
    writer = SummaryWriter(str(run_dir), purge_step=purge_step)
    writer.add_custom_scalars(LAYOUT)
    return writer


def log_step(writer, agent, stats, step: int, *, fps: float, elapsed: float, num_agents: int) -> None:
    """The scalars of a log step: returns (population, per agent, CleanRL's raw points), speed,
    and the brain's signals."""
    if writer is None:
        return
    for tag, value in stats.scalars().items():
        writer.add_scalar(tag, value, step)
    for s, b, ret, length in stats.drain_points():
        writer.add_scalar(T.EPISODIC_RETURN, ret, s)
        writer.add_scalar(T.EPISODIC_LENGTH, length, s)
        if b < MAX_AGENT_TAGS:
            writer.add_scalar(T.tag(T.AGENT_RETURN, agent=str(b)), ret, s)
    writer.add_scalar(T.FPS, fps, step)
    writer.add_scalar(T.TIME_ELAPSED, elapsed, step)
    writer.add_scalar(T.TIME_TOTAL_TIMESTEPS, step * num_agents, step)
    signals = agent_signals(agent, step)
    for tag, value in signals.scalars.items():
        writer.add_scalar(tag, value, step)
    for tag, values in signals.histograms.items():
        writer.add_histogram(tag, values, step)


def log_eval(writer, result: dict, step: int) -> None:
    """``eval/mean_reward`` (mean over agents), ``eval/median_reward`` and ``eval/mean_ep_length``."""
    if writer is None:
        return
    writer.add_scalar(T.EVAL_MEAN_REWARD, result["mean_return"], step)
    writer.add_scalar(T.EVAL_MEDIAN_REWARD, result["median_return"], step)
    writer.add_scalar(T.EVAL_MEAN_EP_LENGTH, result["mean_length"], step)


def snapshot(cfg, agent, run_dir: Path, writer, step: int, *, video: bool, files: bool,
             decisions: int = 25) -> None:
    """Pictures of agent 0 at ``step``, made from a copy of it in an env of its own (training is
    not disturbed).

    ``video``: one evaluation episode as ``RUN_DIR/videos/agent0-step<N>.mp4`` and as an animated
    image (``eval/video``). Always: a spike raster of its first ``decisions`` decisions (sensors,
    then each motor population) and its sensors->motor weight matrix, as TensorBoard images and,
    with ``files``, PNGs in ``RUN_DIR/images``. A failure (e.g. no OpenGL) warns; training goes on.
    """
    from spikegym.envs import make_env
    from spikegym.training.checkpoint import rng_state, set_rng_state
    from spikegym.training.evaluate import agent_policy
    from spikegym.training.figures import raster_figure, weight_figure
    from spikegym.training.images import save_png, to_tensorboard_image
    from spikegym.training.video import FrameSampler, frames_to_tensorboard, record_episodes

    saved = rng_state()  # a run with pictures learns exactly as one without
    policy = agent_policy(cfg, agent, 0, keep_spikes=decisions)
    seed = cfg.run.seed  # as `spikegym record` does: its video of the same checkpoint is this one
    make = lambda mode=None: make_env(cfg.env.id, kwargs=cfg.env.kwargs, render_mode=mode,  # noqa: E731
                                      max_episode_steps=cfg.env.max_episode_steps)
    try:
        if video:
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
        spikes = np.concatenate([s.numpy() for s in policy.spikes[:decisions]])
        substeps = spikes.shape[0] // max(decisions, 1)
        raster = raster_figure(spikes, groups=raster_groups(agent, cfg.brain.motor_size), substeps=substeps,
                               title=f"agent 0, step {step}: spikes over {decisions} decisions")
        weights = weight_figure(weight_matrix(agent, "sensors->motor"), pre="sensor neuron", post="motor neuron",
                                title=f"agent 0, step {step}: sensors -> motor weights")
        images = {"raster": (T.BRAIN_RASTER, raster),
                  "weights-sensors_to_motor": (T.tag(T.PLASTICITY_W_IMAGE, proj="sensors_to_motor"), weights)}
        for name, (tag, img) in images.items():
            if files:
                save_png(img, run_dir / "images" / f"{name}-step{step}.png")
            if writer is not None:
                writer.add_image(tag, to_tensorboard_image(img), step)
    except Exception as err:  # noqa: BLE001 - pictures are never worth a lost run
        warnings.warn(f"spikegym: pictures of agent 0 at step {step} failed ({err!r}); training goes on", stacklevel=2)
    finally:
        set_rng_state(saved)


__all__ = ["LAYOUT", "MAX_AGENT_TAGS", "summary_writer", "log_step", "log_eval", "snapshot"]
