"""Run folders, atomic checkpoints and RNG state.

A run folder says how it was made and holds everything a run writes::

    <run_dir>/config.yaml                     the resolved config (every setting)
    <run_dir>/command.txt                     each command line that ran on this folder
    <run_dir>/run.json                        seed, times, library versions
    <run_dir>/checkpoints/step_<N>/state.pt   flat dict of tensors (torch.save)
    <run_dir>/checkpoints/step_<N>/meta.json  JSON metadata, including "step"
    <run_dir>/events.out.tfevents.*, videos/  written by the training loop

A checkpoint is written into a hidden temporary folder beside the others and renamed into
place, so a crash mid-save leaves the previous checkpoints as they were and never a half-written
``step_<N>``. ``state.pt`` holds only what ``torch.load(weights_only=True)`` reads back
(tensors, Python numbers, strings, containers of them): numpy arrays and scalars are converted
on save, anything else is refused at save time rather than at load time.

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
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from spikegym.training.config import Config, atomic_write_text, config_to_dict, save_resolved_config

__all__ = [
    "CHECKPOINTS",
    "default_run_dir",
    "prepare_run_dir",
    "save_checkpoint",
    "list_checkpoints",
    "checkpoint_step",
    "latest_checkpoint",
    "load_checkpoint",
    "rng_state",
    "set_rng_state",
]

#: Name of the folder inside a run folder that holds ``step_<N>`` checkpoints.
CHECKPOINTS = "checkpoints"
_STEP_DIR = re.compile(r"step_(\d+)")
_TMP_PREFIX = ".tmp-"
_OLD_PREFIX = ".old-"


# --------------------------------------------------------------------------------------------
# Run folders
# --------------------------------------------------------------------------------------------


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


def prepare_run_dir(
    cfg: Config,
    run_dir: str | Path | None = None,
    *,
    resume: bool = False,
    command_line: str | None = None,
) -> Path:
    """Create (or, with ``resume``, reopen) a run folder and record how it was made.

    The folder is ``run_dir``, else ``cfg.run.run_dir``, else :func:`default_run_dir`. Writes the
    resolved ``config.yaml`` (on resume: the config the run continues with), appends
    ``command_line`` to ``command.txt`` and writes ``run.json``.

    Raises ``FileNotFoundError`` when resuming a folder that does not exist, and
    ``FileExistsError`` when starting afresh in a folder that already holds checkpoints.
    """
    path = Path(run_dir if run_dir is not None else cfg.run.run_dir or default_run_dir(cfg))
    if resume and not path.is_dir():
        raise FileNotFoundError(2, "no run folder to resume", str(path))
    if not resume and list_checkpoints(path):
        raise FileExistsError(
            f"run folder '{path}' already holds checkpoints; resume it (--resume {path}) or pick another --run-dir"
        )
    path.mkdir(parents=True, exist_ok=True)
    save_resolved_config(cfg, path / "config.yaml")
    if command_line:
        with open(path / "command.txt", "a", encoding="utf-8") as fh:
            fh.write(command_line.rstrip("\n") + "\n")
    info_path = path / "run.json"
    info = json.loads(info_path.read_text()) if resume and info_path.is_file() else {}
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    info.setdefault("created", now)
    if resume:
        info.setdefault("resumed", []).append(now)
    info.update(seed=cfg.run.seed, env_id=cfg.env.id, num_agents=cfg.env.num_agents, versions=_versions())
    atomic_write_text(info_path, json.dumps(info, indent=2) + "\n")
    return path


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__}
    for dist in ("spikegym", "gymnasium"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


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


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (np.ndarray, Tensor)):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return config_to_dict(obj)
    raise TypeError(f"meta value of type {type(obj).__name__} is not JSON serialisable")


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
    meta_text = json.dumps({**(meta or {}), "step": step}, indent=2, default=_json_default) + "\n"

    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step}"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f"{_TMP_PREFIX}step_{step}-"))
    try:
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
    """``(step, tensors, meta)`` from a checkpoint folder (or a run folder: its latest).

    Reads ``state.pt`` with ``torch.load(weights_only=True)``: no pickled code runs.
    """
    path = Path(path)
    if not (path / "state.pt").is_file():
        latest = latest_checkpoint(path)
        if latest is None:
            raise FileNotFoundError(2, "no checkpoint (no state.pt, no checkpoints/step_<N>)", str(path))
        path = latest
    tensors = torch.load(path / "state.pt", map_location=map_location, weights_only=True)
    meta = json.loads((path / "meta.json").read_text(encoding="utf-8")) if (path / "meta.json").is_file() else {}
    step = int(meta.get("step", checkpoint_step(path) or 0))
    return step, tensors, meta


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
