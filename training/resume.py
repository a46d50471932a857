"""What a checkpoint of a training run holds, and resuming from one without touching the run folder.

A checkpoint of :func:`~spikegym.training.loop.train` is the agent (``agent.state_dict()``, keys
``agent.*``), the global RNGs (``rng.*``), the loop's last transition (``loop.obs``, ``loop.reward``,
``loop.terminated``, ``loop.truncated``) and, in ``meta.json``, the live env state, the episode
statistics and the config it was made with. The contact with the agent is ``state_dict()`` and
``load_state_dict()`` only.

:func:`restore` is all or nothing: it picks the newest checkpoint that loads *and* fits the agent
(names, shapes, dtypes, finite values; older intact ones are the fallback), refuses a resume that
is not a continuation of the same run (a setting outside ``run`` changed, or ``run.steps`` not past
the checkpoint) with a one-line :class:`~spikegym.training.checkpoint.RunFolderError`, and writes
nothing: the caller records the run only once it has returned.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spikegym.envs.state import get_env_state, set_env_state
from spikegym.training.checkpoint import (CheckpointError, RunFolderError, RunStopped, latest_checkpoint, load_latest,
                                          rng_state, save_checkpoint, set_rng_state)
from spikegym.training.config import Config, config_to_dict
from spikegym.training.guards import check_state

__all__ = ["save", "restore", "config_differences", "agent_fits", "agent_tensors"]

LOOP_KEYS = ("obs", "reward", "terminated", "truncated")


def save(run_dir: Path, step: int, agent, envs, stats, tracker, loop: tuple, cfg: Config) -> Path:
    """Check the whole agent is finite, then write checkpoint ``step`` (atomically; the newest
    ``run.keep_checkpoints`` are kept). A failed write (a full disk) raises
    :class:`~spikegym.training.checkpoint.RunStopped` and leaves the earlier checkpoints intact."""
    state = agent.state_dict()
    check_state(state, step=step)  # a non-finite agent is never saved as a good checkpoint
    tensors = {f"agent.{k}": v for k, v in state.items()}
    tensors.update({f"rng.{k}": v for k, v in rng_state().items()})
    tensors.update({f"loop.{k}": torch.as_tensor(np.asarray(v)) for k, v in zip(LOOP_KEYS, loop)})
    meta = {"env_state": get_env_state(envs), "stats": stats.state(), "config": config_to_dict(cfg)}
    try:
        path = save_checkpoint(run_dir, step, tensors, meta, keep=cfg.run.keep_checkpoints)
        if tracker is not None:
            tracker.save_state(run_dir)
    except OSError as err:
        kept = latest_checkpoint(run_dir)
        why = "the disk is full" if err.errno == errno.ENOSPC else (err.strerror or str(err))
        raise RunStopped(f"could not write checkpoint step_{step} in '{run_dir}' ({why}); the run stops and "
                         + (f"{kept.name} is kept" if kept is not None else "no checkpoint was written")) from None
    return path


def agent_tensors(tensors: dict) -> dict:
    """The agent's ``state_dict`` in a checkpoint's flat tensors (keys ``agent.*``)."""
    return {k[len("agent."):]: v for k, v in tensors.items() if k.startswith("agent.")}


def agent_fits(agent):
    """An ``accept(step, tensors, meta)`` for :func:`~spikegym.training.checkpoint.load_latest` that raises
    :class:`~spikegym.training.checkpoint.CheckpointError` unless the checkpoint's agent state loads into the
    agent (names, shapes and dtypes; this version's form or an earlier one's) and is finite (so loading it
    cannot fail half-way). The agent itself is not changed."""
    from spikegym.agents.state import load_flat

    def accept(step: int, tensors: dict, meta: dict) -> None:
        theirs = agent_tensors(tensors)
        bad = [k for k, t in theirs.items() if not isinstance(t, torch.Tensor)]
        if bad:
            raise CheckpointError(f"step_{step}: agent.{bad[0]} is {type(theirs[bad[0]]).__name__}, not a tensor")
        try:
            load_flat(agent.state, theirs)
        except (KeyError, ValueError) as err:
            raise CheckpointError(f"step_{step} does not fit the agent ({str(err).strip(chr(39))})") from None
        try:
            check_state(theirs, step=step)
        except RunStopped as err:
            raise CheckpointError(f"step_{step} holds non-finite values ({str(err).split(';')[0]})") from None

    return accept


def config_differences(saved: dict, given: dict, prefix: str = "") -> list[str]:
    """Dotted keys outside ``run`` where two config dicts differ (keys only one side has are skipped:
    the schema may have grown since the checkpoint was written)."""
    out = []
    for key in saved.keys() & given.keys():
        path = f"{prefix}{key}"
        if path == "run":
            continue
        a, b = saved[key], given[key]
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, f"{path}.")
        elif json.dumps(a, sort_keys=True) != json.dumps(b, sort_keys=True):
            out.append(path)
    return sorted(out)


def _lookup(d: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        d = d[part]
    return d


def restore(run_dir: Path, cfg: Config, agent, envs, stats, tracker) -> tuple[int, Any, Any, Any, Any]:
    """Load the newest checkpoint of ``run_dir`` that fits into ``agent``, ``envs``, ``stats`` and
    ``tracker``; returns ``(step, obs, reward, terminated, truncated)``. Writes nothing."""
    given = json.loads(json.dumps(config_to_dict(cfg)))
    B = cfg.env.num_agents
    fits = agent_fits(agent)

    def accept(step: int, tensors: dict, meta: dict) -> None:
        # the user's mistakes: the same for every checkpoint, so no fallback
        saved_cfg = meta.get("config")
        if isinstance(saved_cfg, dict):
            diff = config_differences(saved_cfg, given)
            if diff:
                k = diff[0]
                more = f" (and {len(diff) - 1} more: {', '.join(diff[1:4])})" if len(diff) > 1 else ""
                raise RunFolderError(f"cannot resume '{run_dir}': {k} is {_lookup(saved_cfg, k)!r} in its checkpoint "
                                     f"but {_lookup(given, k)!r} now{more}; a resume continues the same run (only "
                                     "run.* settings may change): start a new run instead")
        if step >= cfg.run.steps:
            raise RunFolderError(f"cannot resume '{run_dir}': its checkpoint is at step {step} and run.steps is "
                                 f"{cfg.run.steps}; pass a larger --steps to continue it")
        # damaged files: fall back to an older checkpoint
        fits(step, tensors, meta)
        for k in LOOP_KEYS:
            t = tensors.get(f"loop.{k}")
            if not isinstance(t, torch.Tensor) or t.shape[:1] != (B,):
                raise CheckpointError(f"step_{step}: loop.{k} is missing or not one entry per agent")
        if not isinstance(meta.get("env_state"), dict) or not isinstance(meta.get("stats"), dict):
            raise CheckpointError(f"step_{step}/meta.json lacks the env state or the episode statistics")
        try:  # last: an older checkpoint tried after this one overwrites the same attributes
            set_env_state(envs, meta["env_state"])
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
            raise CheckpointError(f"step_{step}: its env state does not fit these envs ({err})") from None

    path, step, tensors, meta = load_latest(run_dir, accept)
    agent.load_state_dict(agent_tensors(tensors))
    set_rng_state({k[len("rng."):]: v for k, v in tensors.items() if k.startswith("rng.")})
    stats.load(meta["stats"])
    if tracker is not None:
        try:
            tracker.load_state(run_dir, step)
        except (ValueError, KeyError, TypeError) as err:
            raise RunFolderError(f"cannot resume '{run_dir}': its {tracker.STATE_FILE} is damaged ({err})") from None
    obs, reward, terminated, truncated = (tensors[f"loop.{k}"].numpy() for k in LOOP_KEYS)
    return step, obs, reward, terminated, truncated

