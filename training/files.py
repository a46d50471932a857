"""Writing files: atomic (temp file + rename), strict JSON, normal permissions.

Every file spikegym writes goes through here, so three promises hold everywhere:

* **atomic**: the text goes to a temporary file beside the target, is flushed to disk and renamed
  over it, so a reader (or a crash) never sees half a file and a failed write (a full disk) leaves
  the previous file as it was;
* **strict JSON**: NaN and +-inf become ``null`` (``json.dumps`` would write ``NaN``/``Infinity``,
  which is not JSON and which other tools refuse); numpy and torch values, paths and sets are
  converted;
* **normal permissions**: ``tempfile`` creates files 0600 and folders 0700; here they get what
  ``open``/``mkdir`` would give (0666 / 0777 less the umask), like every other file the user makes.

>>> to_json({"a": float("nan"), "b": [1.5, float("inf")], "c": (1, 2)})
{'a': None, 'b': [1.5, None], 'c': [1, 2]}
>>> dumps_json({"x": float("-inf")})
'{"x": null}'
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, IO

__all__ = ["to_json", "dumps_json", "write_json", "atomic_write_text", "atomic_write", "make_dir", "umask"]


def umask() -> int:
    """The process umask (read without changing it for longer than two calls)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def to_json(obj: Any) -> Any:
    """``obj`` as plain JSON data: non-finite floats -> None, numpy/torch values -> numbers or lists,
    tuples and sets -> lists, paths -> strings, dataclasses -> dicts; dict keys -> strings."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return [to_json(v) for v in sorted(obj, key=repr)]
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_json(dataclasses.asdict(obj))
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        return to_json(obj.tolist())
    if hasattr(obj, "item"):
        return to_json(obj.item())
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def dumps_json(obj: Any, indent: int | None = None) -> str:
    """Strict JSON text of ``obj`` (see :func:`to_json`); never ``NaN`` or ``Infinity``."""
    return json.dumps(to_json(obj), indent=indent, allow_nan=False)


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(fh)`` on a temp file beside ``path``, fsync it and rename it over ``path``.

    On any error (``OSError`` from a full disk included) the temp file is removed and ``path`` is as
    it was. The file gets the permissions a plain ``open`` would give it (0666 less the umask).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_write`)."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda fh: fh.write(data))


def write_json(path: str | Path, obj: Any, indent: int | None = 1) -> Path:
    """Write ``obj`` as strict JSON (:func:`dumps_json`, plus a newline) to ``path`` atomically."""
    return atomic_write_text(path, dumps_json(obj, indent=indent) + "\n")


def make_dir(path: str | Path) -> Path:
    """``mkdtemp``'s folders are 0700: give ``path`` the permissions ``mkdir`` would (0777 less the umask)."""
    os.chmod(path, 0o777 & ~umask())
    return Path(path)
