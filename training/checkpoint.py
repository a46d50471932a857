"""Atomic checkpoints, loading that validates and falls back, and RNG state.

A checkpoint is ``<run_dir>/checkpoints/step_<N>/`` with ``state.pt`` (a flat dict of tensors,
``torch.save``) and ``meta.json`` (JSON metadata, including ``"step"``); the run folder around it
is :mod:`spikegym.training.run_dir`'s. A checkpoint is written into a hidden temporary folder
beside the others and renamed into place, so a crash (or a full disk) mid-save leaves the previous
checkpoints as they were and never a half-written ``step_<N>``. ``state.pt`` holds only what
``torch.load(weights_only=True)`` reads back (tensors, Python numbers, strings, containers of
them): numpy arrays and scalars are converted on save, anything else is refused at save time
rather than at load time. Loading checks what it reads (:class:`CheckpointError` in one line, never
a raw traceback), and :func:`load_latest` falls back to the newest intact checkpoint.

>>> import tempfile, torch
>>> run = tempfile.mkdtemp()
>>> path = save_checkpoint(run, 100, {"w": torch.ones(2, 3)}, {"note": "hi"})
>>> path.name
'step_100'
>>> step, tensors, meta = load_checkpoint(latest_checkpoint(run))
>>> step, tensors["w"].shape, meta["note"]
(100, torch.Size([2, 3]), 'hi')
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from spikegym.training.config import config_to_dict
from spikegym.training.files import dumps_json, make_dir

__all__ = [
    "CHECKPOINTS",
    "RunFolderError",
    "CheckpointError",
    "RunStopped",
    "save_checkpoint",
    "list_checkpoints",
    "checkpoint_step",
    "latest_checkpoint",
    "load_checkpoint",
    "load_latest",
    "rng_state",
    "set_rng_state",
]

#: Name of the folder inside a run folder that holds ``step_<N>`` checkpoints.
CHECKPOINTS = "checkpoints"
_STEP_DIR = re.compile(r"step_(\d+)")
_TMP_PREFIX = ".tmp-"
_OLD_PREFIX = ".old-"


class RunFolderError(Exception):
    """A run folder that cannot be used as asked: locked by another run, not a spikegym run folder,
    not writable, or a resume that does not match its checkpoint. The message is one line; the CLI
    prints it and exits with status 2, and nothing in the folder has been written."""


class CheckpointError(RunFolderError):
    """A checkpoint that cannot be read back (truncated, garbage, empty, bad ``meta.json``, shapes
    that do not fit): loading falls back to the next older one."""


class RunStopped(RuntimeError):
    """The run stopped on a fault during training (non-finite values, a failed checkpoint write);
    the message says what happened and that the last good checkpoint is kept."""


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


def _loadable(obj: Any, where: str) -> Any:
    """``obj`` with numpy arrays -> tensors and numpy scalars -> Python numbers, so that
    ``torch.load(weights_only=True)`` reads it back. Tensors are detached, moved to CPU and, when
    they are views of a larger storage, copied (torch.save would write the whole storage)."""
    if isinstance(obj, Tensor):
        t = obj.detach().cpu()
        if t.untyped_storage().nbytes() != t.numel() * t.element_size():
            t = t.clone()
        return t
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise TypeError(f"checkpoint entry '{where}' is a numpy object array; store numbers only")
        return torch.from_numpy(np.array(obj, copy=True))
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str, torch.dtype, torch.device, torch.Size)):
        return obj
    if isinstance(obj, Mapping):
        return {(k.item() if isinstance(k, np.generic) else k): _loadable(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_loadable(v, f"{where}[{i}]") for i, v in enumerate(obj))
    raise TypeError(
        f"checkpoint entry '{where}' is a {type(obj).__name__}, which torch.load(weights_only=True) "
        "cannot read back; store tensors, numbers or strings"
    )


def _json_ready(obj: Any) -> Any:
    """Config dataclasses as :func:`config_to_dict` writes them (schema order); the rest as it is."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return config_to_dict(obj)
    if isinstance(obj, Mapping):
        return {k: _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    return obj


def _fsync_write(path: Path, write) -> None:
    with open(path, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    tensors: Mapping[str, Any],
    meta: Mapping[str, Any] | None = None,
    *,
    keep: int | None = 2,
) -> Path:
    """Write ``<run_dir>/checkpoints/step_<step>/`` atomically and keep the newest ``keep``.

    ``tensors`` is a flat ``{name: Tensor}`` dict (numpy arrays / scalars are converted);
    ``meta`` is JSON-serialisable metadata (``"step"`` is added). The checkpoint is written to a
    temporary folder and renamed into place, so an exception or a crash mid-save leaves the
    earlier checkpoints untouched. ``keep=None`` keeps all. Returns the checkpoint folder.
    """
    step = int(step)
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if keep is not None and keep < 1:
        raise ValueError(f"keep must be >= 1 or None, got {keep}")
    # Convert and serialise everything before touching the disk: a bad entry raises here.
    state = _loadable(dict(tensors), "tensors")
    meta_text = dumps_json(_json_ready({**(meta or {}), "step": step}), indent=2) + "\n"

    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step}"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f"{_TMP_PREFIX}step_{step}-"))
    try:
        make_dir(tmp)  # mkdtemp makes it 0700; a checkpoint is as readable as the rest of the run
        _fsync_write(tmp / "state.pt", lambda fh: torch.save(state, fh))
        _fsync_write(tmp / "meta.json", lambda fh: fh.write(meta_text.encode("utf-8")))
        if final.exists():  # re-saving a step: move the old one aside, then swap
            old = root / f"{_OLD_PREFIX}step_{step}-{uuid.uuid4().hex[:8]}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(root, keep, protect=final)
    return final


def _prune(root: Path, keep: int | None, protect: Path) -> None:
    for stale in root.iterdir():  # leftovers of saves that were killed mid-way
        if stale.is_dir() and stale.name.startswith((_TMP_PREFIX, _OLD_PREFIX)):
            shutil.rmtree(stale, ignore_errors=True)
    if keep is None:
        return
    done = list_checkpoints(root.parent)
    for path in done[: max(len(done) - keep, 0)]:
        if path != protect:
            shutil.rmtree(path, ignore_errors=True)


def checkpoint_step(path: str | Path) -> int | None:
    """The step of a checkpoint folder (``.../step_<N>``), or None if ``path`` is not one."""
    m = _STEP_DIR.fullmatch(Path(path).name)
    return int(m.group(1)) if m else None


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints (``state.pt`` and ``meta.json`` present) of a run, oldest step first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [
        p for p in root.iterdir()
        if p.is_dir() and checkpoint_step(p) is not None and (p / "state.pt").is_file() and (p / "meta.json").is_file()
    ]
    return sorted(found, key=checkpoint_step)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint folder with the highest step in ``run_dir``, or None if there is none."""
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> tuple[int, dict[str, Any], dict[str, Any]]:
    """``(step, tensors, meta)`` from a checkpoint folder (or a run folder: its newest intact one).

    Reads ``state.pt`` with ``torch.load(weights_only=True)``: no pickled code runs. Raises
    :class:`CheckpointError` (one line) when ``state.pt`` or ``meta.json`` cannot be read back:
    truncated, empty, garbage, not a dict, or a ``meta.json`` whose step is not the folder's; and
    ``FileNotFoundError`` when the folder vanished (pruned by a run that is still going).
    """
    path = Path(path)
    if not (path / "state.pt").exists() and checkpoint_step(path) is None:
        _, step, tensors, meta = load_latest(path, map_location=map_location)
        return step, tensors, meta
    try:
        tensors = torch.load(path / "state.pt", map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001 - zip, pickle, EOF and weights-only errors all mean "unreadable"
        raise CheckpointError(f"{path.name}/state.pt is unreadable ({_first_line(err)})") from None
    if not isinstance(tensors, dict) or not all(isinstance(k, str) for k in tensors):
        raise CheckpointError(f"{path.name}/state.pt does not hold a dict of named tensors")
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path.name}/meta.json is not valid JSON ({_first_line(err)})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path.name}/meta.json is not a JSON object")
    folder_step = checkpoint_step(path)
    try:
        step = int(meta.get("step", folder_step or 0))
    except (TypeError, ValueError):
        raise CheckpointError(f"{path.name}/meta.json has a bad step {meta.get('step')!r}") from None
    if folder_step is not None and step != folder_step:
        raise CheckpointError(f"{path.name}/meta.json says step {step}, not {folder_step}")
    return step, tensors, meta


def load_latest(
    run_dir: str | Path,
    accept: Callable[[int, dict[str, Any], dict[str, Any]], None] | None = None,
    *,
    map_location: Any = "cpu",
    warn: Callable[[str], None] | None = None,
) -> tuple[Path, int, dict[str, Any], dict[str, Any]]:
    """``(path, step, tensors, meta)`` of the newest intact checkpoint of ``run_dir``.

    A checkpoint that :func:`load_checkpoint` cannot read, or that ``accept(step, tensors, meta)``
    rejects with :class:`CheckpointError` (shapes that do not fit, non-finite values), is skipped
    with a one-line warning (``warn``, default: stderr) and the next older one is tried; one that
    vanishes while it is read (pruned by a run that is still going) is skipped silently and the
    folder listed again. Other exceptions from ``accept`` propagate (a resume that does not match
    the run is the user's mistake, not a damaged file). Raises ``FileNotFoundError`` when the run
    has no checkpoint and :class:`CheckpointError` when none is intact.
    """
    run_dir = Path(run_dir)
    warn = warn or (lambda message: print(f"spikegym: warning: {message}", file=sys.stderr))
    tried: set[Path] = set()
    damaged: list[str] = []
    while True:
        left = [p for p in reversed(list_checkpoints(run_dir)) if p not in tried]
        if not left:
            break
        path = left[0]
        tried.add(path)
        try:
            step, tensors, meta = load_checkpoint(path, map_location=map_location)
            if accept is not None:
                accept(step, tensors, meta)
        except FileNotFoundError:
            continue
        except CheckpointError as err:
            damaged.append(str(err))
            older = [p for p in reversed(list_checkpoints(run_dir)) if p not in tried]
            warn(f"{err}; " + (f"falling back to {older[0].name}" if older else "no older checkpoint"))
            continue
        return path, step, tensors, meta
    if not damaged:
        raise FileNotFoundError(2, "no checkpoint in the run folder (train first)", str(run_dir))
    raise CheckpointError(f"no intact checkpoint in '{run_dir}': {damaged[0]}"
                          + (f" (and {len(damaged) - 1} older)" if len(damaged) > 1 else ""))


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


# --------------------------------------------------------------------------------------------
# RNG state
# --------------------------------------------------------------------------------------------


def rng_state(generators: Mapping[str, torch.Generator] | None = None) -> dict[str, Tensor]:
    """The global RNG states as a flat dict of tensors (keys ``rng/...``), ready to merge into
    a checkpoint: torch CPU (and CUDA, when initialised), numpy's legacy global, Python
    ``random``, plus any named ``torch.Generator`` in ``generators`` (``rng/gen/<name>``)."""
    out: dict[str, Tensor] = {"rng/torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            out[f"rng/cuda/{i}"] = state
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    assert kind == "MT19937"
    out["rng/numpy/keys"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    out["rng/numpy/pos"] = torch.tensor(int(pos), dtype=torch.int64)
    out["rng/numpy/has_gauss"] = torch.tensor(int(has_gauss), dtype=torch.int64)
    out["rng/numpy/cached_gaussian"] = torch.tensor(float(cached), dtype=torch.float64)
    version, internal, gauss_next = random.getstate()
    out["rng/python/version"] = torch.tensor(int(version), dtype=torch.int64)
    out["rng/python/state"] = torch.tensor(internal, dtype=torch.int64)  # 624 words < 2**32, and a position
    out["rng/python/has_gauss"] = torch.tensor(int(gauss_next is not None), dtype=torch.int64)
    out["rng/python/gauss_next"] = torch.tensor(0.0 if gauss_next is None else float(gauss_next), dtype=torch.float64)
    for name, gen in (generators or {}).items():
        out[f"rng/gen/{name}"] = gen.get_state()
    return out


def set_rng_state(state: Mapping[str, Tensor], generators: Mapping[str, torch.Generator] | None = None) -> None:
    """Restore what :func:`rng_state` saved (other keys in ``state`` are ignored). Each named
    generator in ``generators`` must have a saved ``rng/gen/<name>`` entry."""
    if "rng/torch" in state:
        torch.set_rng_state(state["rng/torch"].to("cpu", torch.uint8))
    cuda = sorted((int(k.rsplit("/", 1)[1]), v) for k, v in state.items() if k.startswith("rng/cuda/"))
    if cuda and torch.cuda.is_available():
        for i, s in cuda:
            if i < torch.cuda.device_count():
                torch.cuda.set_rng_state(s.to("cpu", torch.uint8), device=i)
    if "rng/numpy/keys" in state:
        np.random.set_state(
            (
                "MT19937",
                state["rng/numpy/keys"].numpy().astype(np.uint32),
                int(state["rng/numpy/pos"]),
                int(state["rng/numpy/has_gauss"]),
                float(state["rng/numpy/cached_gaussian"]),
            )
        )
    if "rng/python/state" in state:
        gauss = float(state["rng/python/gauss_next"]) if int(state["rng/python/has_gauss"]) else None
        internal = tuple(int(x) for x in state["rng/python/state"].tolist())
        random.setstate((int(state["rng/python/version"]), internal, gauss))
    for name, gen in (generators or {}).items():
        key = f"rng/gen/{name}"
        if key not in state:
            raise KeyError(f"no saved state for generator {name!r} ({key})")
        gen.set_state(state[key].to("cpu", torch.uint8))


_MOVED = ("RunLock", "default_run_dir", "resolve_run_dir", "is_run_dir", "open_run_dir", "record_run",
          "prepare_run_dir")


def __getattr__(name: str):
    """The run-folder helpers moved to :mod:`spikegym.training.run_dir`; imports from here keep working."""
    if name in _MOVED:
        from spikegym.training import run_dir

        return getattr(run_dir, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
