"""TensorBoard of a run: the writer, the custom-scalars layout, the scalars of each log step and
the pictures of agent 0 (spike raster, weight matrix, an evaluation video).

Every tag comes from :mod:`spikegym.training.tags`; everything read out of the agents comes
through :mod:`spikegym.training.signals`.
"""

from __future__ import annotations

import io
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


def log_step(writer, agent, info, stats, step: int, *, fps: float, elapsed: float, num_agents: int) -> None:
    """The scalars of a log step: returns (population, per agent, CleanRL's raw points), speed,
    and the brain's signals (``info``: the last step's StepInfo); energy per decision over the interval."""
    energy = stats.energy.flush(agent)  # also without a writer: the run's totals (result.json) need it
    if writer is None:
        return
    for tag, value in energy.items():
        writer.add_scalar(tag, value, step)
    for tag, value in stats.scalars().items():
        writer.add_scalar(tag, value, step)
    for s, b, ret, _ in stats.drain_points():  # a point per episode: kept to two writes (early episodes are short)
        writer.add_scalar(T.EPISODIC_RETURN, ret, s)
        if b < MAX_AGENT_TAGS:
            writer.add_scalar(T.tag(T.AGENT_RETURN, agent=str(b)), ret, s)
    writer.add_scalar(T.FPS, fps, step)
    writer.add_scalar(T.TIME_ELAPSED, elapsed, step)
    writer.add_scalar(T.TIME_TOTAL_TIMESTEPS, step * num_agents, step)
    signals = agent_signals(agent, info, step)
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
    from spikegym.training.video import record_episodes

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


__all__ = ["LAYOUT", "MAX_AGENT_TAGS", "summary_writer", "log_step", "log_eval", "snapshot", "FrameSampler",
           "frames_to_tensorboard"]


# --------------------------------------------------------------------------- animated images


def frames_to_tensorboard(writer, tag: str, frames: np.ndarray, step: int, fps: float = 30) -> bool:
    """Log frames ``[T, H, W, 3]`` uint8 as a TensorBoard video (an animated GIF, shown
    under the Images tab, exactly what ``SummaryWriter.add_video`` writes).

    ``add_video`` itself needs ``moviepy.editor``, which moviepy 2.x removed: with
    moviepy >= 2 it prints a message and logs nothing. So the GIF is encoded here, with
    Pillow (installed with moviepy/imageio). Returns False, with a warning, if Pillow or
    TensorBoard is missing. Keep videos small (e.g. ``frames[::2, ::2, ::2]``): a GIF
    stores every frame losslessly.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    try:
        from PIL import Image
        from tensorboard.compat.proto.summary_pb2 import Summary
    except ImportError as e:
        warnings.warn(
            f"frames_to_tensorboard skipped ({e}); install moviepy (brings Pillow) and tensorboard",
            stacklevel=2,
        )
        return False
    t, h, w, _ = frames.shape
    buf = io.BytesIO()
    images = [Image.fromarray(f) for f in frames]
    images[0].save(
        buf,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=max(int(round(1000.0 / fps)), 10),  # GIF timing unit is 10 ms
        loop=0,
    )
    image = Summary.Image(height=h, width=w, colorspace=3, encoded_image_string=buf.getvalue())
    summary = Summary(value=[Summary.Value(tag=tag, image=image)])
    writer._get_file_writer().add_summary(summary, step)  # what add_video does
    return True


class FrameSampler:
    """A small copy of a video for TensorBoard: every ``stride``-th frame, shrunk by an integer
    factor until its longer side is at most ``max_side`` pixels, at most ``max_frames`` frames.

    Pass it as ``record_episodes(..., on_frame=sampler)``; then ``sampler.frames()`` is uint8
    ``[T, h, w, 3]`` for :func:`frames_to_tensorboard` at ``fps / sampler.stride`` (real time).
    A GIF stores every frame losslessly, so this keeps TensorBoard's event file small (a
    1000-step MuJoCo episode at 480x480: 250 frames of 240x240, about 2-5 MB).

    >>> s = FrameSampler(stride=2, max_side=4, max_frames=2)
    >>> for t in range(5):
    ...     s(np.full((8, 6, 3), t, np.uint8))
    >>> s.frames().shape, s.frames()[:, 0, 0, 0].tolist(), s.seen
    ((2, 4, 3, 3), [0, 2], 5)
    """

    def __init__(self, stride: int = 4, max_side: int = 240, max_frames: int = 250):
        if stride < 1 or max_side < 1 or max_frames < 1:
            raise ValueError("stride, max_side and max_frames must be >= 1")
        self.stride, self.max_side, self.max_frames = int(stride), int(max_side), int(max_frames)
        self.seen = 0
        self._kept: list[np.ndarray] = []

    def __call__(self, frame: np.ndarray) -> None:
        if self.seen % self.stride == 0 and len(self._kept) < self.max_frames:
            f = int(np.ceil(max(frame.shape[:2]) / self.max_side))
            self._kept.append(np.ascontiguousarray(frame[::f, ::f, :3]))
        self.seen += 1

    def frames(self) -> np.ndarray:
        """The kept frames, uint8 ``[T, h, w, 3]`` (``T = 0`` before any frame)."""
        if not self._kept:
            return np.zeros((0, 1, 1, 3), np.uint8)
        return np.stack(self._kept)
