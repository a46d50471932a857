"""Save and restore the live state of a vector env, so a resumed run continues the same episodes.

A checkpoint that kept only the agents would restart every world from a fresh reset, and a run of
2N steps would no longer equal N steps stopped and resumed for N. So the dynamic state of every
layer of the env stack is saved as JSON-friendly data:

- ``RecordEpisodeStatistics`` (vector): running returns/lengths and the episode queues;
- the vector env: native numpy vector envs (CartPole's ``state``, ``steps``, ``prev_done``) or
  ``SyncVectorEnv``'s ``_autoreset_envs``;
- every sub-env wrapper: ``TimeLimit._elapsed_steps``, ``OrderEnforcing._has_reset``, the task
  schedule (:meth:`TaskScheduleWrapper.get_schedule_state`);
- a torch-native vector env: everything, through its own ``get_json_state``/``set_json_state``;
- every base env: classic-control ``state`` (and the like), its ``np_random`` generator, and for
  MuJoCo envs the physical state ``qpos``/``qvel``/``act``/``time`` (restored with ``set_state``).

``AsyncVectorEnv`` sub-envs live in other processes, so :func:`~spikegym.envs.make.make_vector_env`
wraps each in :class:`StatefulEnv`, whose methods read and restore the same per-layer state there
(through ``call``). The async worker keeps its "reset on the next step" flag in a local variable
that nothing can set; :class:`StatefulEnv` keeps its own copy and, restored after an episode ended,
plays that reset step itself, so a resumed async run continues exactly as a sync one does.
The names below are the attributes that change while an env runs; a new env with other dynamic
attributes adds them to ``_DYNAMIC``.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AsyncVectorEnv

__all__ = ["get_env_state", "set_env_state", "StatefulEnv", "async_sub_env"]

# Attributes that change while an env runs (looked up on every layer of the stack).
_DYNAMIC = (
    # vector RecordEpisodeStatistics
    "episode_count", "episode_start_times", "episode_returns", "episode_lengths", "prev_dones",
    "time_queue", "return_queue", "length_queue",
    # native vector envs / SyncVectorEnv
    "prev_done", "steps", "_autoreset_envs",
    # wrappers
    "_elapsed_steps", "_has_reset",
    # classic-control base envs
    "state", "steps_beyond_terminated", "last_u",
)


def _encode(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {"ndarray": value.tolist(), "dtype": str(value.dtype), "shape": list(value.shape)}
    if isinstance(value, deque):
        return {"deque": [_encode(v) for v in value], "maxlen": value.maxlen}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, list)):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and "ndarray" in value:
        return np.asarray(value["ndarray"], dtype=value["dtype"]).reshape(value["shape"])
    if isinstance(value, dict) and "deque" in value:
        return deque((_decode(v) for v in value["deque"]), maxlen=value["maxlen"])
    return value


def _layer_state(obj) -> dict:
    if hasattr(obj, "get_json_state"):  # a torch-native vector env (TorchVectorEnv) saves itself
        return {"json_state": obj.get_json_state()}
    out = {}
    attrs = vars(obj)
    for name in _DYNAMIC:
        # None is state too (CartPole's steps_beyond_terminated, Pendulum's last_u): an env restored
        # into one that was already running must get it back, not keep its own value.
        if name in attrs and not callable(attrs[name]):
            out[name] = _encode(attrs[name])
    rng = attrs.get("_np_random")
    if rng is not None:
        out["_np_random"] = rng.bit_generator.state
    if hasattr(obj, "get_schedule_state"):
        out["schedule"] = obj.get_schedule_state()
    data = attrs.get("data")
    if data is not None and hasattr(data, "qpos") and hasattr(obj, "set_state"):  # MuJoCo
        out["mujoco"] = {k: getattr(data, k).tolist() for k in ("qpos", "qvel", "act")}
        out["mujoco"]["time"] = float(data.time)
    return out


def _set_layer_state(obj, state: dict) -> None:
    for name, value in state.items():
        if name == "_np_random":
            rng = getattr(obj, "_np_random", None) or np.random.default_rng()
            rng.bit_generator.state = value
            obj._np_random = rng
        elif name == "schedule":
            obj.set_schedule_state(value)
        elif name == "json_state":
            obj.set_json_state(value)
        elif name == "mujoco":
            obj.set_state(np.asarray(value["qpos"]), np.asarray(value["qvel"]))
            if len(value["act"]):
                obj.data.act[:] = value["act"]
            obj.data.time = value["time"]
        else:
            setattr(obj, name, _decode(value))


def _chain(env) -> list:
    """``env`` and every object it wraps, outermost first."""
    out = [env]
    while hasattr(out[-1], "env"):
        out.append(out[-1].env)
    return out


class StatefulEnv(gym.Wrapper):
    """The outermost wrapper of an async sub-env: its state can be read and restored through
    ``AsyncVectorEnv.call`` (``get_chain_state`` / ``set_chain_state``), NEXT_STEP autoreset included.

    Args:
        index: the sub-env's index in the vector env (its entry in the list ``set_chain_state`` gets).
    """

    def __init__(self, env: gym.Env, index: int):
        super().__init__(env)
        self.index = int(index)
        self._ended = False  # the last step ended an episode: the worker resets on the next step
        self._reset_next = False  # restored with an episode just ended: this wrapper plays the reset step

    def reset(self, **kwargs):
        self._ended = self._reset_next = False
        return self.env.reset(**kwargs)

    def step(self, action):
        if self._reset_next:  # what the worker would do on the step after an episode ended
            self._reset_next = False
            obs, info = self.env.reset()
            return obs, 0, False, False, info
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._ended = bool(terminated or truncated)
        return obs, reward, terminated, truncated, info

    def get_chain_state(self) -> dict:
        return {"ended": self._ended, "layers": [_layer_state(layer) for layer in _chain(self.env)]}

    def set_chain_state(self, states: list) -> None:
        state = states[self.index]
        for layer, saved in zip(_chain(self.env), state["layers"]):
            _set_layer_state(layer, saved)
        self._ended = self._reset_next = bool(state["ended"])


def async_sub_env(make, index: int) -> gym.Env:
    """``make()`` wrapped in :class:`StatefulEnv`, for ``AsyncVectorEnv``. In a worker process SIGINT is
    ignored: Ctrl-C reaches the whole process group, and the main process saves a checkpoint first
    (it needs the workers alive for that), then closes them."""
    import multiprocessing
    import signal

    if multiprocessing.parent_process() is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return StatefulEnv(make(), index)


def get_env_state(envs) -> dict:
    """JSON-serialisable dynamic state of a vector env made by :func:`~spikegym.envs.make.make_vector_env`."""
    layers = _chain(envs)
    state = {"layers": [_layer_state(layer) for layer in layers]}
    inner = layers[-1]
    if isinstance(inner, AsyncVectorEnv):
        state["async_envs"] = list(inner.call("get_chain_state"))
    elif hasattr(inner, "envs"):  # SyncVectorEnv
        state["sub_envs"] = [[_layer_state(layer) for layer in _chain(sub)] for sub in inner.envs]
    return state


def set_env_state(envs, state: dict) -> None:
    """Restore :func:`get_env_state` into an env built the same way (same id, count and wrappers)."""
    layers = _chain(envs)
    if len(layers) != len(state["layers"]):
        raise ValueError(f"env stack has {len(layers)} layers but the saved state has {len(state['layers'])}")
    for layer, saved in zip(layers, state["layers"]):
        _set_layer_state(layer, saved)
    inner = layers[-1]
    if isinstance(inner, AsyncVectorEnv):
        if len(state.get("async_envs", [])) != inner.num_envs:
            raise ValueError(f"the saved state has {len(state.get('async_envs', []))} async sub-envs, "
                             f"not {inner.num_envs}")
        inner.reset()  # clears each worker's own "reset on the next step" flag; the state below overwrites the rest
        inner.call("set_chain_state", state["async_envs"])
    for sub, saved_chain in zip(getattr(inner, "envs", []), state.get("sub_envs", [])):
        for layer, saved in zip(_chain(sub), saved_chain):
            _set_layer_state(layer, saved)
