"""Making envs: a vector env of B agents' worlds for training, a single env for evaluation and video.

Headless rendering: MuJoCo chooses its OpenGL backend from ``MUJOCO_GL`` once, when it is first
imported (``mujoco.rendering.classic.gl_context`` reads it at import), and Gymnasium's MuJoCo
renderer reads it again when it opens a context. Unset, both fall back to GLFW, which needs a
display and fails on a server; ``osmesa`` needs ``libosmesa6`` and otherwise breaks ``import mujoco``
itself. ``egl`` renders headless (software EGL on CPU, the fast path on NVIDIA GPUs). So this
module sets ``MUJOCO_GL=egl`` *before anything imports mujoco* -- on Linux, only where ``libEGL``
exists, and with ``setdefault`` so that a value the user set wins. Import ``spikegym.envs`` (or
this module) before ``mujoco`` for it to take effect.
"""

from __future__ import annotations

import os
import sys


def _default_mujoco_gl() -> None:
    if "MUJOCO_GL" in os.environ or not sys.platform.startswith("linux"):
        return
    import ctypes.util

    if ctypes.util.find_library("EGL"):
        os.environ.setdefault("MUJOCO_GL", "egl")


_default_mujoco_gl()  # must run before gymnasium's MuJoCo envs (and so mujoco) are imported

import difflib  # noqa: E402
import importlib  # noqa: E402
import inspect  # noqa: E402
from functools import partial  # noqa: E402
from typing import Optional, Union  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv, VectorWrapper  # noqa: E402
from gymnasium.wrappers.vector import RecordEpisodeStatistics  # noqa: E402

from spikegym.envs.schedule import TaskSchedule, TaskScheduleWrapper  # noqa: E402

__all__ = ["make_env", "make_vector_env", "reset_seeds", "obs_bounds", "is_discrete", "action_size", "registered_id",
           "VECTORIZATIONS"]

#: ``auto``: the env's native numpy vector env when it has one and no schedule is given (CartPole),
#: else ``sync``. ``sync`` beats ``async`` by 2.5-10x for cheap envs on 2 cores; ``async`` runs each
#: sub-env in its own process (worth it only for expensive envs on many cores). ``torch``: the worlds' state
#: in torch on ``device`` (classic control only, :mod:`spikegym.envs.torch_vector`); never chosen by ``auto``.
VECTORIZATIONS = ("auto", "native", "sync", "async", "torch")


def make_env(env_id: str, *, kwargs: Optional[dict] = None, render_mode: Optional[str] = None,
             schedule: Union[TaskSchedule, dict, None] = None, max_episode_steps: Optional[int] = None,
             stream: int = 0, count_resets: bool = False) -> gym.Env:
    """One env (evaluation, video, tests): ``gymnasium.make`` plus an optional task schedule.

    Args:
        kwargs: keyword arguments of the env's constructor (e.g. ``{"forward_reward_weight": 1.0}``).
        schedule: a :class:`~spikegym.envs.schedule.TaskSchedule` or its dict; wraps the env in
            :class:`~spikegym.envs.schedule.TaskScheduleWrapper`.
        max_episode_steps: overrides the registered time limit.
        stream, count_resets: passed to the schedule wrapper (agent index; vector-env clock).
    """
    env = gym.make(env_id, render_mode=render_mode, max_episode_steps=max_episode_steps, **(kwargs or {}))
    if schedule is not None:
        env = TaskScheduleWrapper(env, TaskSchedule.from_dict(schedule), stream=stream, count_resets=count_resets)
    return env


def make_vector_env(env_id: str, num_envs: int, seed: int, *, kwargs: Optional[dict] = None,
                    vectorization: str = "auto", max_episode_steps: Optional[int] = None,
                    schedule: Union[TaskSchedule, dict, None] = None,
                    device: str = "cpu") -> gym.vector.VectorEnv:
    """``num_envs`` worlds, one per agent, with Gymnasium's episode statistics.

    The caller seeds with ``envs.reset(seed=reset_seeds(seed, num_envs))``; ``seed`` here seeds the
    schedule's random draws when the schedule names no seed of its own. Autoreset is Gymnasium's
    ``NEXT_STEP``: the step after an episode ends is a reset step (action ignored, reward 0).

    Args:
        vectorization: one of :data:`VECTORIZATIONS`.
        schedule: a task schedule dict (or :class:`TaskSchedule`): every sub-env gets its own
            :class:`TaskScheduleWrapper` (stream = its index, clock = the vector step count), so
            each changes at its own episode boundary. Needs ``sync`` or ``async``.
        device: where a ``torch`` env keeps its worlds (its observations, rewards and flags are tensors there).
    Returns:
        the vector env wrapped in ``gymnasium.wrappers.vector.RecordEpisodeStatistics``
        (``info["episode"]`` and ``info["_episode"]`` when episodes end; ``info["task"]`` with a schedule);
        ``torch``: a :class:`~spikegym.envs.torch_vector.TorchVectorEnv`, which records the same statistics itself.
    """
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    if vectorization not in VECTORIZATIONS:
        hint = difflib.get_close_matches(str(vectorization), VECTORIZATIONS, n=1)
        raise ValueError(f"unknown vectorization {vectorization!r}"
                         + (f"; did you mean {hint[0]!r}?" if hint else f"; valid: {', '.join(VECTORIZATIONS)}"))
    kwargs = dict(kwargs or {})
    sched = None if schedule is None else TaskSchedule.from_dict(schedule, seed=seed)
    mode = vectorization
    if mode == "auto":
        mode = "native" if sched is None and _native_supports(env_id, kwargs) else "sync"
    if mode == "torch":
        if sched is not None:
            raise ValueError("a task schedule needs a wrapper per sub-env: use vectorization 'sync' or 'async'")
        from spikegym.envs.torch_vector import TorchVectorEnv  # torch stays out of the import of this module

        return TorchVectorEnv(registered_id(env_id), num_envs, device=device, max_episode_steps=max_episode_steps,
                              **kwargs)
    if mode == "native":
        if sched is not None:
            raise ValueError("a task schedule needs a wrapper per sub-env: use vectorization 'sync' or 'async'")
        if _spec(env_id).vector_entry_point is None:
            raise ValueError(f"{env_id} has no native vector env; use vectorization 'sync'")
        extra = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
        envs = _SeedList(gym.make_vec(env_id, num_envs, vectorization_mode="vector_entry_point", **kwargs, **extra))
    else:
        fns = [partial(make_env, env_id, kwargs=kwargs, schedule=sched, max_episode_steps=max_episode_steps,
                       stream=i, count_resets=True) for i in range(num_envs)]
        if mode == "sync":
            envs = SyncVectorEnv(fns)
        else:  # each sub-env's state is read and restored in its worker process (checkpoints)
            from spikegym.envs.state import async_sub_env

            envs = AsyncVectorEnv([partial(async_sub_env, fn, i) for i, fn in enumerate(fns)])
    return RecordEpisodeStatistics(envs)


def _native_supports(env_id: str, kwargs: dict) -> bool:
    """Does ``env_id`` have a native vector env that accepts ``kwargs``?"""
    entry = _spec(env_id).vector_entry_point
    if entry is None:
        return False
    try:
        from gymnasium.envs.registration import load_env_creator

        params = inspect.signature(load_env_creator(entry)).parameters
    except Exception:  # an entry point we cannot inspect: do not guess
        return False
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return True
    return all(k in params for k in kwargs)


def registered_id(env_id: str) -> str:
    """The registry id of ``env_id``: for ``module:Id``, ``Id`` after importing ``module`` (as ``gym.make``
    does; an ``ImportError`` propagates), else ``env_id`` itself."""
    if ":" not in env_id:
        return env_id
    module, _, name = env_id.rpartition(":")
    importlib.import_module(module)
    return name


def _spec(env_id: str):
    """``gym.spec`` that also takes ``module:Id``."""
    return gym.spec(registered_id(env_id))


class _SeedList(VectorWrapper):
    """Lets a native vector env (one generator for all sub-envs) take a list of seeds like SyncVectorEnv."""

    def reset(self, *, seed=None, options=None):
        if isinstance(seed, (list, tuple, np.ndarray)):
            seed = int(np.random.SeedSequence([int(s) for s in seed]).generate_state(1)[0])
        return self.env.reset(seed=seed, options=options)


def reset_seeds(seed: int, n: int) -> list[int]:
    """``n`` reset seeds for the sub-envs of a run with seed ``seed``.

    Drawn from ``numpy.random.SeedSequence(seed)``, so runs with neighbouring seeds do not share
    worlds (``seed + i`` would give run 0's agent 1 the world of run 1's agent 0).

        >>> reset_seeds(0, 3) == reset_seeds(0, 3), len(set(reset_seeds(0, 100)))
        (True, 100)
    """
    return [int(s) for s in np.random.SeedSequence(int(seed)).generate_state(int(n))]


def is_discrete(space: gym.Space) -> bool:
    """True for ``Discrete`` spaces (one integer action), False for ``Box`` and others."""
    return isinstance(space, gym.spaces.Discrete)


def obs_bounds(space: gym.Space) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` per observation dimension, flattened, as float64 (``inf`` where unbounded).

    ``Box``: its bounds; ``Discrete(n, start)``: ``[start, start + n - 1]``.

        >>> obs_bounds(gym.spaces.Discrete(4))
        (array([0.]), array([3.]))
    """
    if isinstance(space, gym.spaces.Box):
        return space.low.astype(np.float64).reshape(-1), space.high.astype(np.float64).reshape(-1)
    if isinstance(space, gym.spaces.Discrete):
        lo = float(space.start)
        return np.array([lo]), np.array([lo + space.n - 1])
    raise TypeError(f"obs_bounds supports Box and Discrete spaces, not {type(space).__name__}")


def action_size(space: gym.Space) -> int:
    """Number of discrete actions, or the number of continuous action dimensions."""
    return int(space.n) if is_discrete(space) else int(np.prod(space.shape))
