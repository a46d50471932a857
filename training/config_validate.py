"""The generic validator: a plain dict (as YAML gives it) -> a tree of typed config sections.

It knows nothing about particular sections: it walks the dataclass fields (``typing.get_type_hints``)
and understands nested dataclasses, ``int``, ``float``, ``bool``, ``str``, ``Optional[...]``,
``Literal[...]``, ``list[X]`` and ``dict[str, X]`` / ``dict[str, Any]`` (free-form), the limits of
:func:`~spikegym.training.config_schema.setting` and each section's ``cross_check``.

Quirks of PyYAML handled here: ``1e6`` and ``3e-4`` load as *strings* (YAML 1.1 wants ``1.0e+6``), so
numeric strings are converted for ``int`` / ``float`` fields (an ``int`` field takes ``1e6`` when it is
a whole number); ``on`` / ``off`` load as booleans, so a ``Literal`` with the choices ``"on"`` / ``"off"``
takes them back. A ``bool`` field wants a real YAML boolean. Floats must be finite (``.inf`` and
``.nan`` are refused) unless the field says ``allow_inf``.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import types
import typing
from typing import Any, Literal, Union

from spikegym.training.config_schema import LIMITS
from spikegym.training.config_source import ConfigError, KeyPath, Origins, dotted

__all__ = ["Validator", "show", "alternatives", "is_optional", "is_section", "type_name", "field_hints", "all_keys",
           "section_paths",
           "as_float", "as_int"]



def show(value: Any) -> str:
    """A value as the user wrote it (YAML spelling)."""
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return str(value)


def alternatives(names: list[str]) -> str:
    """``['a']`` -> ``'a'``; ``['a', 'b', 'c']`` -> ``'a', 'b' or 'c'``."""
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def is_optional(tp: Any) -> tuple[bool, Any]:
    """``Optional[X]`` -> ``(True, X)``; anything else -> ``(False, tp)``."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = typing.get_args(tp)
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and len(rest) < len(args):
            return True, rest[0]
        raise TypeError(f"config fields support Optional[X] only, not {tp!r}")
    return False, tp


def type_name(tp: Any, plural: bool = False) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return "sections (mappings)" if plural else "a section (a mapping of keys)"
    if origin is Literal:
        return "one of " + ", ".join(show(a) for a in args)
    if tp is bool:
        return "booleans" if plural else "true or false"
    if tp is int:
        return "integers" if plural else "an integer"
    if tp is float:
        return "numbers" if plural else "a float"
    if tp is str:
        return "strings" if plural else "a string"
    if tp is list or origin is list:
        inner = f" of {type_name(args[0], plural=True)}" if args and args[0] is not Any else ""
        return ("lists" if plural else "a list") + inner
    if tp is dict or origin is dict:
        return "mappings" if plural else "a mapping"
    return getattr(tp, "__name__", str(tp))


def is_section(tp: Any) -> bool:
    """Is ``tp`` a section (a dataclass type)?"""
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def field_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def all_keys(cls: type, prefix: KeyPath = ()) -> list[KeyPath]:
    """Every dotted key path under a section, nested sections included."""
    out = []
    hints = field_hints(cls)
    for f in dataclasses.fields(cls):
        path = prefix + (f.name,)
        out.append(path)
        _, tp = is_optional(hints[f.name])
        if is_section(tp):
            out.extend(all_keys(tp, path))
    return out


def section_paths(cls: type, prefix: KeyPath = ()) -> set[KeyPath]:
    """The key paths of every nested section under ``cls``: ``{("env",), ("brain", "stp"), ...}``."""
    out: set[KeyPath] = set()
    hints = field_hints(cls)
    for f in dataclasses.fields(cls):
        _, tp = is_optional(hints[f.name])
        if is_section(tp):
            out |= {prefix + (f.name,)} | section_paths(tp, prefix + (f.name,))
    return out


class Validator:
    def __init__(self, root: type, origins: Origins):
        self.root = root
        self.origins = origins

    # -- sections ---------------------------------------------------------------------------

    def section(self, cls: type, data: Any, path: KeyPath) -> Any:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            where = f"'{dotted(path)}'" if path else "the top level"
            raise self.origins.error(path, f"{where} must be a section (a mapping of keys), got {show(data)}")
        names = {f.name: f for f in dataclasses.fields(cls)}
        for key in data:
            if not isinstance(key, str) or key not in names:
                raise self.origins.error(path + (key,), self.unknown_key(cls, path, key), key=True)
        hints = field_hints(cls)
        values = {name: self.value(hints[name], value, path + (name,), names[name].metadata) for name, value in data.items()}
        obj = cls(**values)
        check = getattr(obj, "cross_check", None)
        if check is not None:
            for name, message in check():
                sub = path + (name,)
                raise self.origins.error(sub, f"'{dotted(sub)}' {message}")
        return obj

    def unknown_key(self, cls: type, path: KeyPath, key: Any) -> str:
        full = dotted(path + (str(key),))
        if not isinstance(key, str):
            return f"key {show(key)} in '{dotted(path) or 'the top level'}' is not a name"
        rel = {dotted(p[len(path):]): p for p in all_keys(cls, path)}
        scored = sorted(
            ((difflib.SequenceMatcher(None, key.lower(), r.lower()).ratio(), r) for r in rel),
            key=lambda sr: -sr[0],
        )
        best = [r for s, r in scored if s >= 0.6 and s == scored[0][0]][:3] if scored else []
        if not best:  # a known name in the wrong section? e.g. brain.gamma -> dopamine.gamma
            best = [dotted(p) for p in all_keys(self.root) if p[-1] == key and p != path + (key,)][:3]
            suggestions = best
        else:
            suggestions = [dotted(rel[r]) for r in best]
        if suggestions:
            return f"unknown key '{full}' (did you mean {alternatives(suggestions)}?)"
        valid = ", ".join(f.name for f in dataclasses.fields(cls))
        return f"unknown key '{full}' (valid keys here: {valid})"

    # -- values -----------------------------------------------------------------------------

    def value(self, tp: Any, value: Any, path: KeyPath, meta: typing.Mapping) -> Any:
        optional, tp = is_optional(tp)
        if value is None and optional:
            return None
        if is_section(tp):
            return self.section(tp, value, path)
        key = dotted(path)
        expected = type_name(tp) + (" or null" if optional else "")

        def bad(hint: str = "") -> ConfigError:
            return self.origins.error(path, f"'{key}' expected {expected}, got {show(value)}{hint}")

        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if tp is Any:
            return copy.deepcopy(value)
        if origin is Literal:
            return self.choice(args, value, path)
        if tp is bool:
            if not isinstance(value, bool):
                raise bad()
            return value
        if tp is int:
            whole = as_int(value)
            if whole is None:
                raise bad(" (write e.g. 200000 or 2e5)" if isinstance(value, str) else "")
            return self.limits(whole, value, path, meta)
        if tp is float:
            out = as_float(value)
            if out is None and str(value).strip().lower() in ("nan", ".nan"):
                raise self.origins.error(path, f"'{key}' must be a finite number, got .nan")
            if out is None:
                raise bad(" (write e.g. 0.0003 or 3e-4)" if isinstance(value, str) else "")
            if math.isinf(out) and not meta.get("allow_inf", False):
                shown = value.strip() if isinstance(value, str) else ("-.inf" if out < 0 else ".inf")
                raise self.origins.error(path, f"'{key}' must be a finite number, got {shown}")
            return self.limits(out, value, path, meta)
        if tp is str:
            if not isinstance(value, str):
                raise bad(" (put it in quotes)" if value is not None else "")
            return value
        if tp is list or origin is list:
            if not isinstance(value, (list, tuple)):
                raise bad()
            item = args[0] if args else Any
            return [self.value(item, v, path + (i,), meta) for i, v in enumerate(value)]
        if tp is dict or origin is dict:
            if not isinstance(value, dict):
                raise bad()
            key_tp, item = args if args else (Any, Any)
            mapping = {}
            for k, v in value.items():
                if key_tp is str and not isinstance(k, str):
                    raise self.origins.error(path + (k,), f"'{key}' keys must be strings, got {show(k)}", key=True)
                mapping[k] = self.value(item, v, path + (k,), {})
            return mapping
        raise TypeError(f"config field '{key}' has an unsupported type {tp!r}")

    def choice(self, choices: tuple, value: Any, path: KeyPath) -> Any:
        if isinstance(value, bool) and all(isinstance(c, str) for c in choices):
            # YAML 1.1 reads on/off/yes/no as booleans; take them back for string choices.
            for spelling in (("on", "true", "yes") if value else ("off", "false", "no")):
                if spelling in choices:
                    return spelling
        for c in choices:
            if type(c) is type(value) and c == value:
                return c
        hint = ""
        if isinstance(value, str):
            close = difflib.get_close_matches(value, [str(c) for c in choices], n=1, cutoff=0.5)
            if close:
                hint = f" (did you mean {close[0]!r}?)"
        options = ", ".join(show(c) for c in choices)
        raise self.origins.error(path, f"'{dotted(path)}' must be one of {options}; got {show(value)}{hint}")

    def limits(self, value: float, raw: Any, path: KeyPath, meta: typing.Mapping) -> float:
        """``value`` (converted from ``raw``, as written) within the field's limits, or an error."""
        lo, hi, gt, lt = (meta.get(k) for k in LIMITS)
        ok = (
            (lo is None or value >= lo)
            and (hi is None or value <= hi)
            and (gt is None or value > gt)
            and (lt is None or value < lt)
        )
        if ok:
            return value
        parts = []
        if lo is not None and hi is not None:
            parts.append(f"between {lo} and {hi}")
        elif lo is not None:
            parts.append(f">= {lo}")
        elif hi is not None:
            parts.append(f"<= {hi}")
        if gt is not None:
            parts.append(f"> {gt}")
        if lt is not None:
            parts.append(f"< {lt}")
        shown = raw.strip() if isinstance(raw, str) else show(raw)
        raise self.origins.error(path, f"'{dotted(path)}' must be {' and '.join(parts)}, got {shown}")


def as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            return None
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, str):
        try:
            out = float(value.strip())
        except ValueError:
            return None
        return None if math.isnan(out) else out
    return None


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    number = as_float(value)
    if number is None or not math.isfinite(number) or not number.is_integer():
        return None
    return int(number)


