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

``AsyncVectorEnv`` sub-envs live in other processes: only their task schedules are restored
(through ``call``); their physics restart from the loop's saved observations' episode. The names
below are the attributes that change while an env runs; a new env with other dynamic attributes
adds them to ``_DYNAMIC``.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
from gymnasium.vector import AsyncVectorEnv

__all__ = ["get_env_state", "set_env_state"]

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


def get_env_state(envs) -> dict:
    """JSON-serialisable dynamic state of a vector env made by :func:`~spikegym.envs.make.make_vector_env`."""
    layers = _chain(envs)
    state = {"layers": [_layer_state(layer) for layer in layers]}
    inner = layers[-1]
    if isinstance(inner, AsyncVectorEnv):
        try:
            state["async_schedules"] = list(inner.call("get_schedule_state"))
        except AttributeError:
            pass
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
    if "async_schedules" in state:
        inner.call("set_schedule_state", state["async_schedules"])
    for sub, saved_chain in zip(getattr(inner, "envs", []), state.get("sub_envs", [])):
        for layer, saved in zip(_chain(sub), saved_chain):
            _set_layer_state(layer, saved)
