"""Videos of behaviour: record agents acting in an environment to mp4 (TensorBoard's animated
images of them: ``tensorboard.py``).

A *policy* here is any callable ``obs -> action`` (a NumPy array, a Python int, or a torch
tensor on any device). If the callable also has a ``reset()`` method (a stateful spiking
policy, for example), it is called at the start of every episode it plays.

Record from a separate evaluation env (``make_env`` builds it with
``render_mode="rgb_array"``), so that a video never disturbs training.

Headless MuJoCo: ``MUJOCO_GL`` must name a working OpenGL backend *before* anything imports
mujoco; this module sets ``MUJOCO_GL=egl`` on Linux unless the user chose one, which works
with no extra packages (software EGL on a CPU-only machine, the fast path on NVIDIA).

Example (writes a short CartPole video with a random policy)::

    >>> import gymnasium as gym, numpy as np, tempfile, os
    >>> rng = np.random.default_rng(0)
    >>> out = os.path.join(tempfile.mkdtemp(), "cartpole.mp4")
    >>> res = record_episodes(lambda: gym.make("CartPole-v1", render_mode="rgb_array"),
    ...                       lambda obs: int(rng.integers(2)), out, seed=0)
    >>> res["frames"] == res["lengths"][0] + 1   # the reset frame, then one per step
    True
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import gymnasium

# Must happen before mujoco is first imported (gymnasium imports it lazily, when a MuJoCo env
# is made). "egl" does not exist on macOS/Windows, where MuJoCo's default (glfw) is right.
if sys.platform.startswith("linux"):
    os.environ.setdefault("MUJOCO_GL", "egl")

Policy = Callable[[np.ndarray], Any]
EnvFactory = Callable[[], "gymnasium.Env"]

__all__ = ["record_episodes", "record_grid", "tile_frames"]


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def record_episodes(
    make_env: EnvFactory,
    policy: Policy,
    out_path: str | os.PathLike,
    *,
    episodes: int = 1,
    seed: int = 0,
    fps: float | None = None,
    max_steps: int = 1000,
    keep_frames: bool = False,
    on_frame: Callable[[np.ndarray], Any] | None = None,
) -> dict:
    """Play ``episodes`` episodes of ``policy`` in ONE env and write them to an mp4.

    Args:
        make_env: builds the env, with ``render_mode="rgb_array"``.
        policy: ``obs -> action``; ``policy.reset()`` is called per episode if it exists.
        out_path: the ``.mp4`` to write (parent folders are created; the file appears
            atomically, only once the video is complete).
        episodes: episodes played one after the other into the same video.
        seed: the first ``reset`` uses ``seed`` (later resets continue its RNG, the
            Gymnasium convention); the action space is seeded with it too.
        fps: frames per second; default: the env's ``metadata["render_fps"]`` or 30.
        max_steps: cap on steps per episode (on top of the env's own time limit).
        keep_frames: also return the frames as ``"images"``, uint8 ``[T, H, W, 3]``
            (memory: T x H x W x 3 bytes; slice it before logging it to TensorBoard).
        on_frame: called with every frame written, uint8 ``[H, W, 3]`` (e.g. a
            :class:`FrameSampler` that keeps a small copy for TensorBoard).

    Returns:
        ``{"path": str, "frames": int (frames written: the reset frame plus one per step,
        per episode), "fps": float, "returns": list[float], "lengths": list[int]}`` (+ ``"images"``).
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    env = make_env()
    writer = None
    kept: list[np.ndarray] = []
    returns: list[float] = []
    lengths: list[int] = []
    try:
        _check_render_mode(env)
        fps = _default_fps(env) if fps is None else fps
        writer = _Mp4Writer(out_path, fps)
        env.action_space.seed(seed)
        for ep in range(episodes):
            obs, _ = env.reset(seed=seed if ep == 0 else None)
            _reset_policy(policy)
            ep_return, steps = 0.0, 0
            _emit(writer, kept, _render(env), keep_frames, on_frame)  # the reset frame
            while steps < max_steps:
                obs, reward, terminated, truncated, _ = env.step(
                    _to_action(policy(obs), env.action_space)
                )
                ep_return += float(reward)
                steps += 1
                _emit(writer, kept, _render(env), keep_frames, on_frame)
                if terminated or truncated:
                    break
            returns.append(ep_return)
            lengths.append(steps)
        path = writer.finish()
    finally:
        if writer is not None:
            writer.abort()  # no-op after finish(); removes a partial file after an error
        _close_env(env)
        del env
        gc.collect()  # see _close_env: stale GL objects must die now, not later
    result = {"path": path, "frames": writer.frames, "fps": fps, "returns": returns, "lengths": lengths}
    if keep_frames:
        result["images"] = np.stack(kept)
    return result


def record_grid(
    make_env: EnvFactory,
    policies: Sequence[Policy],
    out_path: str | os.PathLike,
    *,
    seed: int | Sequence[int] = 0,
    cols: int | None = None,
    max_steps: int = 1000,
    fps: float | None = None,
    dim: float = 0.35,
    keep_frames: bool = False,
    labels: Sequence[str] | None = None,
    on_frame: Callable[[np.ndarray], Any] | None = None,
) -> dict:
    """Several agents of a population side by side: one episode each, tiled into one video.

    Each policy gets its own env (``make_env()`` is called once per policy) and all of them
    step in lockstep; tile ``i`` shows policy ``i``, filled row by row. An agent whose
    episode ended shows its last frame dimmed (multiplied by ``dim``) until the slowest
    agent is done.

    Args:
        seed: an int ``s`` resets agent ``i``'s env with ``s + i`` (so tile ``i`` starts
            exactly like ``record_episodes(..., seed=s + i)``); a sequence gives one seed per
            agent (``[s] * n`` puts every agent in the same starting state).
        cols: grid columns; default ``ceil(sqrt(n))``.
        labels: one per policy (e.g. ``"agent 3"``): drawn in the tile's corner with the
            episode's return so far (Pillow).
        Other arguments as in :func:`record_episodes`.

    Returns:
        ``{"path", "frames", "returns", "lengths"}`` with one return and length per agent
        (+ ``"images"`` ``[T, rows*H, cols*W, 3]`` when ``keep_frames``).
    """
    n = len(policies)
    if n == 0:
        raise ValueError("record_grid needs at least one policy")
    seeds = [int(seed) + i for i in range(n)] if np.isscalar(seed) else [int(s) for s in seed]
    if len(seeds) != n:
        raise ValueError(f"got {len(seeds)} seeds for {n} policies")
    if labels is not None and len(labels) != n:
        raise ValueError(f"got {len(labels)} labels for {n} policies")

    envs: list = []
    writer = None
    kept: list[np.ndarray] = []
    try:
        for _ in range(n):
            envs.append(make_env())
            _check_render_mode(envs[-1])
        fps = _default_fps(envs[0]) if fps is None else fps
        writer = _Mp4Writer(out_path, fps)
        obs, frames = [], []
        for env, policy, s in zip(envs, policies, seeds):
            env.action_space.seed(s)
            o, _ = env.reset(seed=s)
            _reset_policy(policy)
            obs.append(o)
            frames.append(_render(env))
        returns = [0.0] * n
        lengths = [0] * n
        active = [max_steps > 0] * n  # episode still running
        dimmed = [False] * n  # ended, and its final frame was already shown bright once
        while True:
            shown = frames if labels is None else _labelled(frames, labels, returns)
            _emit(writer, kept, tile_frames(shown, cols, dimmed=dimmed, dim=dim), keep_frames, on_frame)
            if not any(active):
                break
            dimmed = [not a for a in active]
            for i in range(n):
                if not active[i]:
                    continue
                obs[i], reward, terminated, truncated, _ = envs[i].step(
                    _to_action(policies[i](obs[i]), envs[i].action_space)
                )
                returns[i] += float(reward)
                lengths[i] += 1
                frames[i] = _render(envs[i])
                if terminated or truncated or lengths[i] >= max_steps:
                    active[i] = False
        path = writer.finish()
    finally:
        if writer is not None:
            writer.abort()
        for env in envs:
            _close_env(env)
        envs.clear()
        env = None  # drop the loop variables' last references too, then collect now
        gc.collect()
    result = {"path": path, "frames": writer.frames, "returns": returns, "lengths": lengths}
    if keep_frames:
        result["images"] = np.stack(kept)
    return result


def tile_frames(
    frames: Sequence[np.ndarray],
    cols: int | None = None,
    *,
    dimmed: Sequence[bool] | None = None,
    dim: float = 0.35,
) -> np.ndarray:
    """Tile ``n`` equal-sized frames ``[H, W, 3]`` row by row into ``[rows*H, cols*W, 3]``.

    ``cols`` defaults to ``ceil(sqrt(n))``; empty cells are black; frames whose ``dimmed``
    flag is true are multiplied by ``dim``.

    >>> tile_frames([np.full((2, 3, 3), 200, np.uint8)] * 3, dimmed=[0, 0, 1])[2:, :3, 0]
    array([[70, 70, 70],
           [70, 70, 70]], dtype=uint8)
    """
    n = len(frames)
    if n == 0:
        raise ValueError("tile_frames needs at least one frame")
    cols = int(np.ceil(np.sqrt(n))) if cols is None else int(cols)
    if cols < 1:
        raise ValueError(f"cols must be >= 1, got {cols}")
    rows = -(-n // cols)
    h, w = frames[0].shape[:2]
    out = np.zeros((rows * h, cols * w, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        if frame.shape[:2] != (h, w):
            raise ValueError(f"frame {i} has shape {frame.shape}, frame 0 has {frames[0].shape}")
        if dimmed is not None and dimmed[i]:
            frame = (frame.astype(np.float32) * dim).astype(np.uint8)
        r, c = divmod(i, cols)
        out[r * h : (r + 1) * h, c * w : (c + 1) * w] = frame[..., :3]
    return out


# --------------------------------------------------------------------------------------------
# Rendering and closing envs (MuJoCo GL contexts need care)
# --------------------------------------------------------------------------------------------


def _check_render_mode(env) -> None:
    if getattr(env, "render_mode", None) != "rgb_array":
        raise ValueError(
            "record_* needs an env made with render_mode='rgb_array', e.g. "
            "lambda: gymnasium.make('CartPole-v1', render_mode='rgb_array'); "
            f"got render_mode={getattr(env, 'render_mode', None)!r}"
        )


def _default_fps(env) -> float:
    fps = (getattr(env, "metadata", None) or {}).get("render_fps")
    return float(fps) if fps else 30.0


def _mujoco_viewer(env):
    """The offscreen viewer of a Gymnasium MuJoCo env, or None (not MuJoCo / not yet made)."""
    renderer = getattr(env.unwrapped, "mujoco_renderer", None)
    return getattr(renderer, "viewer", None) if renderer is not None else None


def _fast_render_flags(viewer) -> None:
    """Turn off shadows and reflections: 2.5-5x faster software (CPU) rendering, and the
    behaviour stays just as visible. Best effort: the attribute layout is Gymnasium's and
    MuJoCo's, not ours, so any failure leaves the default (slower, prettier) rendering."""
    try:
        import mujoco

        viewer.scn.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        viewer.scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
    except Exception:  # noqa: BLE001 - purely an optimisation
        pass


def _render(env) -> np.ndarray:
    """One frame, uint8 [H, W, 3].

    MuJoCo: each env owns an OpenGL context and Gymnasium's offscreen viewer does not make
    it current before rendering, so with several envs alive (``record_grid``) a frame would
    be drawn in another env's context (wrong textures or black). Make ours current first.
    The viewer is created by the first render; its scene flags are set then and that first
    frame is drawn again so that every frame is rendered the same way.
    """
    viewer = _mujoco_viewer(env)
    if viewer is not None:
        try:
            viewer.make_context_current()
        except Exception:  # noqa: BLE001 - e.g. a non-GL viewer; render as is
            pass
        frame = env.render()
    else:
        frame = env.render()
        viewer = _mujoco_viewer(env)
        if viewer is not None:  # first MuJoCo frame: the viewer exists only now
            _fast_render_flags(viewer)
            frame = env.render()
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[-1] not in (3, 4):
        raise ValueError(f"env.render() returned shape {frame.shape}, expected [H, W, 3]")
    return np.ascontiguousarray(frame[..., :3], dtype=np.uint8)


def _close_env(env) -> None:
    """Close an env so that it can never black out a later env's frames.

    The trap (reproduced with Gymnasium 1.4 / MuJoCo 4.0 on EGL): ``env.close()`` destroys
    the EGL context but leaves the ``MjrContext`` (MuJoCo's GL objects) to the garbage
    collector; when that runs after a new env started rendering, ``mjr_freeContext``
    deletes the *new* context's framebuffers (GL object names coincide), and the new env
    renders black. So: free the MjrContext while its own context is current, then close;
    the caller drops its reference and calls ``gc.collect()`` right away too.
    """
    renderer = getattr(getattr(env, "unwrapped", env), "mujoco_renderer", None)
    viewers = getattr(renderer, "_viewers", None) or {}
    for viewer in list(viewers.values()):
        try:
            viewer.make_context_current()
            viewer.con.free()
        except Exception:  # noqa: BLE001 - best effort; close() + gc below still run
            pass
    env.close()


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _emit(writer: "_Mp4Writer", kept: list, frame: np.ndarray, keep: bool, on_frame=None) -> None:
    writer.add(frame)
    if keep:
        kept.append(frame)
    if on_frame is not None:
        on_frame(frame)


def _labelled(frames, labels, returns) -> list:
    from spikegym.training.figures import label_image

    return [label_image(f, f"{label}  return {ret:.1f}") for f, label, ret in zip(frames, labels, returns)]


def _reset_policy(policy) -> None:
    reset = getattr(policy, "reset", None)
    if callable(reset):
        reset()


def _to_action(action, space):
    """Policy output -> what ``env.step`` accepts (torch tensors become NumPy)."""
    if hasattr(action, "detach"):  # a torch tensor, without importing torch here
        action = action.detach().cpu().numpy()
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return int(np.asarray(action).reshape(()))
    if isinstance(space, spaces.Box):
        return np.asarray(action, dtype=space.dtype).reshape(space.shape)
    return action


def _import_imageio_ffmpeg():
    try:
        import imageio_ffmpeg
    except ImportError as e:
        raise ImportError(
            "Recording videos needs imageio-ffmpeg, which comes with moviepy (its wheel bundles "
            "an ffmpeg binary, no system ffmpeg needed): pip install moviepy"
        ) from e
    return imageio_ffmpeg


class _Mp4Writer:
    """Streams frames to ffmpeg (H.264, yuv420p: plays everywhere), so a long video never
    sits in memory. Odd frame sizes are padded by one edge row/column (yuv420p needs even
    sizes). Writes to ``<name>.part.mp4`` and renames when finished."""

    def __init__(self, path: str | os.PathLike, fps: float):
        self._ffmpeg = _import_imageio_ffmpeg()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(self.path.stem + ".part" + (self.path.suffix or ".mp4"))
        self.fps = float(fps)
        self.frames = 0
        self._gen = None
        self._shape: tuple[int, ...] | None = None
        self._finished = False

    def add(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        if h % 2 or w % 2:
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        if self._gen is None:
            self._shape = frame.shape
            self._gen = self._ffmpeg.write_frames(
                str(self._tmp),
                (frame.shape[1], frame.shape[0]),
                fps=self.fps,
                codec="libx264",
                macro_block_size=2,  # sizes are even already: never rescale
                ffmpeg_log_level="error",
            )
            self._gen.send(None)
        elif frame.shape != self._shape:
            raise ValueError(f"frame shape {frame.shape} differs from the first {self._shape}")
        self._gen.send(np.ascontiguousarray(frame))
        self.frames += 1

    def finish(self) -> str:
        if self._gen is None:
            raise RuntimeError("no frames were recorded")
        self._gen.close()
        self._gen = None
        os.replace(self._tmp, self.path)
        self._finished = True
        return str(self.path)

    def abort(self) -> None:
        if self._finished:
            return
        if self._gen is not None:
            try:
                self._gen.close()
            except Exception:  # noqa: BLE001 - already failing; don't mask the first error
                pass
            self._gen = None
        self._tmp.unlink(missing_ok=True)
