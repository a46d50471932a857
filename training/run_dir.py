"""Run folders: where a run is written, how it says how it was made, and one run at a time.

A run folder says how it was made and holds everything a run writes::

    <run_dir>/config.yaml                     the resolved config (every setting)
    <run_dir>/command.txt                     each command line that ran on this folder
    <run_dir>/run.json, seed.txt              seed, times, library versions
    <run_dir>/checkpoints/step_<N>/           checkpoints (spikegym.training.checkpoint)
    <run_dir>/events.out.tfevents.*, videos/  written by the training loop
    <run_dir>/result.json                     the summary, when the run ends

:func:`open_run_dir` checks a folder and locks it before anything is written in it; the loop
records the run (:func:`record_run`) only once the config is known to fit (on resume: once the
checkpoint has loaded). A fresh run never writes into a non-empty folder that is not a run folder.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

from spikegym.training.checkpoint import CHECKPOINTS, RunFolderError, list_checkpoints
from spikegym.training.config import Config, save_resolved_config
from spikegym.training.files import atomic_write_text, write_json

__all__ = ["RunLock", "default_run_dir", "resolve_run_dir", "is_run_dir", "open_run_dir", "record_run",
           "prepare_run_dir", "before_new_events"]

_CONFIG_HEADER = "# spikegym resolved config"  # what save_resolved_config writes first


def default_run_dir(cfg: Config, root: str | Path = "runs", now: float | None = None) -> Path:
    """``runs/<env id>-<YYYYmmdd-HHMMSS>`` (``/`` and ``:`` in the id become ``_``); a ``-2``,
    ``-3``, ... suffix when that folder already exists."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    name = re.sub(r"[/:\\\s]+", "_", cfg.env.id)
    path = Path(root) / f"{name}-{stamp}"
    n = 2
    while path.exists():
        path = Path(root) / f"{name}-{stamp}-{n}"
        n += 1
    return path


def resolve_run_dir(cfg: Config, run_dir: str | Path | None = None) -> Path:
    """The run folder: ``run_dir``, else ``cfg.run.run_dir``, else :func:`default_run_dir`."""
    return Path(run_dir if run_dir is not None else cfg.run.run_dir or default_run_dir(cfg))


def is_run_dir(path: str | Path) -> bool:
    """Does ``path`` look like a folder spikegym made (``run.json``, a resolved ``config.yaml`` or checkpoints)?"""
    path = Path(path)
    if (path / "run.json").is_file() or (path / CHECKPOINTS).is_dir():
        return True
    config = path / "config.yaml"
    try:
        return config.is_file() and config.read_text(encoding="utf-8", errors="replace").startswith(_CONFIG_HEADER)
    except OSError:
        return False


class RunLock:
    """An exclusive ``fcntl.flock`` on a run folder, held for the run's life (``release()`` or ``with``).

    The lock is taken on the folder itself (an open descriptor of the directory), so taking it
    writes nothing and leaves no stale lock file behind; the kernel drops it when the process dies.
    """

    def __init__(self, path: Path, created: bool = False):
        self.path, self._fd, self.created = Path(path), None, created
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock (documented)
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RunFolderError(f"run folder '{self.path}' is in use by another spikegym run (it is locked); "
                                 "wait for that run to end or pick another --run-dir") from None
        self._fd = fd

    def release(self, remove_if_empty: bool = False) -> None:
        """Drop the lock; with ``remove_if_empty``, also remove the folder if nothing was written in it."""
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
        if remove_if_empty:
            try:
                self.path.rmdir()  # only succeeds when empty
            except OSError:
                pass

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def open_run_dir(cfg: Config, run_dir: str | Path | None = None, *, resume: bool = False) -> RunLock:
    """Check a run folder and lock it, writing nothing but the folder itself (for a fresh run).

    A fresh run needs a new or empty folder, or a spikegym run folder without checkpoints (a run
    that stopped before its first one); a resume needs a spikegym run folder. Both need it
    writable and not locked by another run. Raises ``FileNotFoundError`` (resume: no folder),
    ``FileExistsError`` (fresh: the folder holds checkpoints) or :class:`RunFolderError`.
    """
    path = resolve_run_dir(cfg, run_dir)
    if resume and not path.is_dir():
        raise FileNotFoundError(2, "no run folder to resume", str(path))
    if path.exists() and not path.is_dir():
        raise RunFolderError(f"run folder '{path}' is a file, not a folder; pick another --run-dir")
    if not resume and path.is_dir() and any(path.iterdir()) and not is_run_dir(path):
        raise RunFolderError(f"'{path}' is not empty and is not a spikegym run folder (no run.json, no "
                             "checkpoints); a run would overwrite its files: pick a new or empty --run-dir")
    if resume and not is_run_dir(path):
        raise RunFolderError(f"'{path}' is not a spikegym run folder (no run.json, no checkpoints); nothing to resume")
    if not resume and list_checkpoints(path):
        raise FileExistsError(
            f"run folder '{path}' already holds checkpoints; resume it (--resume {path}) or pick another --run-dir"
        )
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunFolderError(f"cannot create run folder '{path}': {err.strerror or err}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise RunFolderError(f"run folder '{path}' is not writable; pick another --run-dir")
    return RunLock(path, created=created)


def record_run(cfg: Config, path: str | Path, *, resume: bool = False, command_line: str | None = None) -> Path:
    """Record how a run was made in its folder: the resolved ``config.yaml`` (on resume: the config
    the run continues with), ``command_line`` appended to ``command.txt``, ``run.json`` and ``seed.txt``."""
    path = Path(path)
    save_resolved_config(cfg, path / "config.yaml")
    if command_line:
        with open(path / "command.txt", "a", encoding="utf-8") as fh:
            fh.write(command_line.rstrip("\n") + "\n")
    info_path = path / "run.json"
    info = {}
    if resume and info_path.is_file():
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except ValueError:  # a damaged run.json is rewritten, not a reason to lose the run
            info = {}
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    info.setdefault("created", now)
    if resume:
        info.setdefault("resumed", []).append(now)
    info.update(seed=cfg.run.seed, env_id=cfg.env.id, num_agents=cfg.env.num_agents, versions=_versions())
    write_json(info_path, info, indent=2)
    atomic_write_text(path / "seed.txt", f"{cfg.run.seed}\n")
    return path


def prepare_run_dir(
    cfg: Config,
    run_dir: str | Path | None = None,
    *,
    resume: bool = False,
    command_line: str | None = None,
) -> Path:
    """:func:`open_run_dir` then :func:`record_run`, without keeping the lock. Returns the folder.

    Raises ``FileNotFoundError`` when resuming a folder that does not exist, ``FileExistsError``
    when starting afresh in a folder that already holds checkpoints, :class:`RunFolderError` for
    a folder that is locked, not writable, or (fresh) not empty and not a run folder.
    """
    with open_run_dir(cfg, run_dir, resume=resume) as lock:
        return record_run(cfg, lock.path, resume=resume, command_line=command_line)


def before_new_events(path: str | Path) -> bool:
    """Make the next TensorBoard event file sort after those already in ``path``; True if there were any.

    TensorBoard reads a folder's event files in name order, ``events.out.tfevents.<seconds>.<host>.<pid>``,
    and a resumed run's purge (``SummaryWriter(purge_step=...)``) drops only the points of files read
    before its own. A resume within the same second as the crash (a fast restart) could sort first,
    by its pid, and leave the crashed run's points doubled: wait (at most about a second) for the clock
    to pass the newest file's second. Files stamped in the future (clock skew) are not waited for.
    """
    stamps = []
    for p in Path(path).glob("events.out.tfevents.*"):
        m = re.match(r"events\.out\.tfevents\.(\d+)\.", p.name)
        if m:
            stamps.append(int(m.group(1)))
    if not stamps:
        return False
    newest = max(stamps)
    while newest - 2 <= int(time.time()) <= newest:
        time.sleep(0.05)
    return True


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__}
    for dist in ("spikegym", "gymnasium"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out
