"""Checks of a validated config against the world: env id, constructor keywords, spaces, schedule, device.

These run in :func:`~spikegym.training.config.load_config`, before anything is written, so that a run
that cannot start fails with one line (file:line, key, nearest valid name) instead of a traceback after
its run folder exists. Gymnasium and torch are imported here lazily, and only when a check needs them.
"""

from __future__ import annotations

import difflib
import inspect
import re
from typing import Any

from spikegym.training.config_schema import Config
from spikegym.training.config_source import ConfigError, Origins, dotted
from spikegym.training.config_validate import alternatives

__all__ = ["check_env_id", "check_world", "check_value_init", "check_plasticity", "check_device", "resolve_device"]

#: ``gymnasium.make`` keywords that ``env.kwargs`` must not carry: spikegym passes them itself.
_MAKE_OWN = {"render_mode": "it is chosen by train/eval/record",
             "max_episode_steps": "use env.max_episode_steps"}
#: ``gymnasium.make`` keywords that are not the constructor's.
_MAKE_EXTRA = ("disable_env_checker",)


def check_env_id(cfg: Config, *, source: str | None = None, line: int | None = None) -> None:
    """Raise :class:`ConfigError` unless ``cfg.env.id`` is a registered Gymnasium env id.

    ``module:EnvId`` imports ``module`` first (as ``gymnasium.make`` does). ``spikegym.envs`` is
    imported too, so envs it registers count. Gymnasium is imported here, lazily.
    """
    import gymnasium

    from spikegym.envs import registered_id  # (importing spikegym.envs registers our own envs, if any)

    env_id = cfg.env.id
    try:
        name = registered_id(env_id)
    except ImportError as err:
        module = env_id.rpartition(":")[0]
        raise ConfigError(
            f"'env.id' {env_id!r}: cannot import module {module!r} ({err})", source=source, line=line, key="env.id"
        ) from None
    registry = gymnasium.envs.registry
    if name in registry:
        return
    by_lower = {k.lower(): k for k in registry}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.6)
    if close:
        hint = f" (did you mean {alternatives([by_lower[c] for c in close])}?)"
    elif "/" in name:
        hint = f" (if a plugin package registers it, write 'package:{name}' so it is imported first)"
    else:
        hint = " (see gymnasium.envs.registry for the ids)"
    raise ConfigError(f"unknown env id {env_id!r} for 'env.id'{hint}", source=source, line=line, key="env.id")


def _constructor_params(env_id: str) -> tuple[list[str], bool] | None:
    """``(keyword names, takes **kwargs too)`` of the env's constructor, or None when it cannot be read."""
    import gymnasium
    from gymnasium.envs.registration import load_env_creator

    from spikegym.envs import registered_id

    entry = gymnasium.spec(registered_id(env_id)).entry_point
    try:
        creator: Any = load_env_creator(entry) if isinstance(entry, str) else entry
        params = inspect.signature(creator).parameters
    except (ImportError, AttributeError, TypeError, ValueError):  # an entry point we cannot inspect: do not guess
        return None
    names = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n != "self"]
    return names, any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _unknown_kwarg(cfg: Config, origins: Origins, key: str, params: list[str]) -> ConfigError:
    valid = [p for p in params if p not in _MAKE_OWN]
    close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}?" if close else (
        f"it takes {', '.join(valid)}" if valid else "it takes no keyword arguments")
    return origins.error(("env", "kwargs", key), f"unknown keyword 'env.kwargs.{key}' for {cfg.env.id} ({hint})",
                         key=True)


def _check_kwargs(cfg: Config, origins: Origins) -> None:
    """Every ``env.kwargs`` key must be a keyword of the env's constructor (read from its signature)."""
    found = _constructor_params(cfg.env.id)
    for key in cfg.env.kwargs:
        path = ("env", "kwargs", key)
        if key in _MAKE_OWN:
            raise origins.error(path, f"'{dotted(path)}': spikegym passes {key} itself ({_MAKE_OWN[key]})", key=True)
        if found is None or found[1] or key in found[0] or key in _MAKE_EXTRA:
            continue  # (a constructor with **kwargs: gymnasium.make finds out, see check_world)
        raise _unknown_kwarg(cfg, origins, key, found[0])


def _check_spaces(env: Any, cfg: Config, origins: Origins) -> None:
    import gymnasium

    obs, act = env.observation_space, env.action_space
    if not isinstance(obs, (gymnasium.spaces.Box, gymnasium.spaces.Discrete)):
        raise origins.error(("env", "id"), f"{cfg.env.id} has a {type(obs).__name__} observation space; spikegym "
                                           "agents take Box or Discrete observations")
    if not isinstance(act, (gymnasium.spaces.Box, gymnasium.spaces.Discrete)):
        raise origins.error(("env", "id"), f"{cfg.env.id} has a {type(act).__name__} action space; spikegym "
                                           "agents take Discrete or Box actions")


def _check_encoder_dimensions(env: Any, cfg: Config, origins: Origins) -> None:
    """``encoder.low/high/angles/pairs`` must name dimensions the env's observations have."""
    from spikegym.envs import obs_bounds

    e = cfg.encoder
    dims = len(obs_bounds(env.observation_space)[0])
    for name in ("low", "high"):
        values = getattr(e, name)
        if values is not None and len(values) != dims:
            raise origins.error(("encoder", name), f"'encoder.{name}' has {len(values)} values but {cfg.env.id} "
                                                   f"observations have {dims} dimensions")
    for i, pair in enumerate(e.angles):
        if max(pair) >= dims:
            raise origins.error(("encoder", "angles", i), f"'encoder.angles' names dimension {max(pair)}, but "
                                                          f"{cfg.env.id} observations have {dims} (0 .. {dims - 1})")
    coded = dims + len(e.angles)
    for i, pair in enumerate(e.pairs):
        if max(pair) >= coded:
            raise origins.error(("encoder", "pairs", i), f"'encoder.pairs' names dimension {max(pair)}, but {cfg.env.id} "
                                                         f"has {coded} coded dimensions ({dims} observed + {len(e.angles)} angles)")


def _schedule_error(err: Any, origins: Origins) -> ConfigError:
    path = ("env", "schedule", *getattr(err, "path", ()))
    problem = getattr(err, "problem", str(err))
    return origins.error(path, f"'{dotted(path)}': {problem}", key=bool(getattr(err, "path", ())))


def _check_vectorization(cfg: Config, origins: Origins) -> None:
    """``native`` needs the env's own vector entry point, and cannot carry a schedule (a wrapper per sub-env)."""
    import gymnasium

    from spikegym.envs import registered_id

    if cfg.env.vectorization != "native":
        return
    path = ("env", "vectorization")
    if cfg.env.schedule is not None:
        raise origins.error(path, "'env.vectorization' native cannot carry a task schedule (it needs a wrapper "
                                  "per sub-env): use sync, async or auto")
    if gymnasium.spec(registered_id(cfg.env.id)).vector_entry_point is None:
        raise origins.error(path, f"'env.vectorization' native: {cfg.env.id} has no native vector env; use sync, "
                                  "async or auto")


def check_world(cfg: Config, origins: Origins) -> None:
    """Check ``env.kwargs`` names, the schedule, the spaces and the encoder's dimensions.

    The env is made once (never reset or stepped) to read its spaces and to try the schedule's changes
    on it; an env that cannot be made is a :class:`ConfigError` at ``env.kwargs`` (or ``env.id``).
    """
    from spikegym.envs import make_env
    from spikegym.envs.schedule import ScheduleError, TaskSchedule

    _check_kwargs(cfg, origins)
    schedule = None
    if cfg.env.schedule is not None:
        try:
            schedule = TaskSchedule.from_dict(cfg.env.schedule, seed=cfg.run.seed)
        except ScheduleError as err:
            raise _schedule_error(err, origins) from None
    _check_vectorization(cfg, origins)
    try:
        env = make_env(cfg.env.id, kwargs=cfg.env.kwargs, max_episode_steps=cfg.env.max_episode_steps,
                       schedule=schedule)
    except ScheduleError as err:  # a change that does not apply to this env
        raise _schedule_error(err, origins) from None
    except Exception as err:  # the constructor refused its keywords, or a dependency is missing
        bad = re.search(r"unexpected keyword argument '(\w+)'", str(err))
        found = _constructor_params(cfg.env.id)
        if bad and bad.group(1) in cfg.env.kwargs and found is not None:  # a **kwargs constructor passed it on
            raise _unknown_kwarg(cfg, origins, bad.group(1), found[0]) from None
        where = ("env", "kwargs") if cfg.env.kwargs else ("env", "id")
        raise origins.error(where, f"cannot make {cfg.env.id} with '{dotted(where)}': "
                                   f"{type(err).__name__}: {err}") from None
    try:
        _check_spaces(env, cfg, origins)
        _check_encoder_dimensions(env, cfg, origins)
    finally:
        env.close()


def check_value_init(cfg: Config, origins: Origins) -> None:
    """``dopamine.value_init`` must lie strictly inside the critic's value range (the bias would be infinite
    at an end), and replaces ``brain.critic_bias``: setting both is a mistake."""
    v0 = cfg.dopamine.value_init
    if v0 is None:
        return
    low, high = cfg.dopamine.value_range(cfg.env.failure_reward)
    if not low < v0 < high:
        raise origins.error(("dopamine", "value_init"), f"'dopamine.value_init' must lie strictly between the critic's "
                                                         f"value range ends {low:g} and {high:g} (dopamine.value_low/high)")
    if cfg.brain.critic_bias != 0.0:
        raise origins.error(("dopamine", "value_init"), "'dopamine.value_init' sets the critic's bias: leave "
                                                         "'brain.critic_bias' out, or drop 'dopamine.value_init'")


def check_plasticity(cfg: Config, origins: Origins) -> None:
    """STDP centred on the firing probability needs motor neurons that have one (escape, or noisy LIF)."""
    b, stdp = cfg.brain, cfg.plasticity.stdp
    if cfg.plasticity.rule == "stdp" and stdp.center == "expected" and b.neuron != "escape" and b.lif_escape_slope <= 0:
        raise origins.error(("plasticity", "stdp", "center"), "'plasticity.stdp.center: expected' needs noisy motor "
                            "neurons: set 'brain.lif_escape_slope' > 0, or use center: rate")


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a CUDA device, else ``cpu``; any other name unchanged."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def check_device(cfg: Config, origins: Origins) -> None:
    """``run.device`` must exist in this torch build, on this machine (``cuda:N``: N < the device count)."""
    device = cfg.run.device
    kind, _, index = device.partition(":")
    if kind == "cpu":
        return
    import torch

    path = ("run", "device")
    if kind == "cuda":
        if not torch.cuda.is_available():
            build = "is a CPU-only build" if torch.version.cuda is None else "sees no CUDA device"
            raise origins.error(path, f"'run.device' {device!r}: this torch ({torch.__version__}) {build}; "
                                      "use cpu, or auto (cuda when available, else cpu)")
        count = torch.cuda.device_count()
        if index and int(index) >= count:
            raise origins.error(path, f"'run.device' {device!r}: there {'is' if count == 1 else 'are'} {count} CUDA "
                                      f"device{'s' if count != 1 else ''} (cuda:0 .. cuda:{count - 1})")
        return
    backend = getattr(torch.backends, kind, None) if kind == "mps" else getattr(torch, kind, None)
    available = getattr(backend, "is_available", None)
    if available is None or not available():
        raise origins.error(path, f"'run.device' {device!r}: no {kind} device in this torch ({torch.__version__}) "
                                  "on this machine; use cpu, or auto (cuda when available, else cpu)")
    count_of = getattr(backend, "device_count", None)
    if index and count_of is not None and int(index) >= count_of():
        raise origins.error(path, f"'run.device' {device!r}: there are {count_of()} {kind} devices")
