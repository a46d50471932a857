"""Where config values come from: YAML files (read with bounds), ``extends:`` chains, ``--set`` overrides.

Every value's origin is kept (:class:`Origins`) so that an error names the file and line it came from,
or the ``--set`` override that set it. Reading is bounded, so that no file can make the CLI hang or
eat memory (a 507-byte "billion laughs" alias bomb expands to 10**9 values):

* a file may be at most :data:`MAX_FILE_BYTES` long;
* values may nest at most :data:`MAX_DEPTH` levels deep (PyYAML's composer recurses per level);
* aliases may be used at most :data:`MAX_ALIASES` times, and the document may hold at most
  :data:`MAX_VALUES` values once every alias is expanded;
* an alias to a value that contains it (``&a [*a]``) is refused.

The bounds are checked while the document is composed, so a bomb stops at its first excess alias,
and the line bookkeeping walks every YAML node once: an alias's expansion is never walked again.

``extends: ../base.yaml`` (top level, a path relative to the including file) makes a file start from
another: the child's keys override the parent's, mappings merge key by key, anything else (lists,
numbers, null) replaces. Chains work; a cycle is refused.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Callable

import yaml

__all__ = ["ConfigError", "KeyPath", "dotted", "Origins", "read_yaml", "read_config_file", "apply_override",
           "deep_merge", "MAX_FILE_BYTES", "MAX_DEPTH", "MAX_ALIASES", "MAX_VALUES", "MAX_EXTENDS"]

MAX_FILE_BYTES = 1 << 20  # a config is a few kB; a generated sweep file may be larger, but not megabytes
MAX_DEPTH = 64  # the deepest real key, env.schedule.phases[i].changes.x.uniform[0], is 7 levels down
MAX_ALIASES = 1000
MAX_VALUES = 100_000  # scalars, lists and mappings, aliases expanded
MAX_EXTENDS = 16  # files in one extends: chain


class ConfigError(Exception):
    """A config that cannot be used. ``str(err)`` is one line: ``source:line[:col]: message``.

    Attributes: ``message``, ``source`` (file name, ``--set k=v`` or ``<dict>``), ``line`` and
    ``column`` (1-based, or None), ``key`` (dotted key, or None).
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        column: int | None = None,
        key: str | None = None,
    ):
        self.message = " ".join(str(message).split())  # always one line
        self.source = source
        self.line = line
        self.column = column
        self.key = key
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.source or ""
        if where and self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.message}" if where else self.message


KeyPath = tuple  # a key path: ("brain", "stp", "U") or ("encoder", "low", 2)


def dotted(path: KeyPath) -> str:
    """``("env", "schedule", "phases", 1, "changes")`` -> ``'env.schedule.phases[1].changes'``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


# --------------------------------------------------------------------------------------------
# Origins: which file line (or --set override) each value came from
# --------------------------------------------------------------------------------------------

_Lines = dict  # KeyPath -> 1-based line


class Origins:
    """Maps key paths to the file line (or ``--set`` override) they came from.

    ``layers`` holds one ``(file, value_lines, key_lines)`` per file of an ``extends:`` chain, the base
    first; a path is found in the layer that knows the longest part of it (the child on a tie).
    """

    def __init__(self, source: str):
        self.source = source
        self.layers: list[tuple[str, _Lines, _Lines]] = []
        self.overrides: list[tuple[KeyPath, str]] = []  # in the order applied

    def locate(self, path: KeyPath, *, key: bool = False) -> tuple[str, int | None]:
        for opath, label in reversed(self.overrides):
            if path[: len(opath)] == opath:
                return label, None
        found: tuple[str, int | None] = (self.source, None)
        best = 0
        for source, values, keys in self.layers:
            table = keys if key else values
            p = tuple(path)
            while p and p not in table:
                p = p[:-1]
            if p and len(p) >= best:
                found, best = (source, table[p]), len(p)
        return found

    def error(self, path: KeyPath, message: str, *, key: bool = False) -> ConfigError:
        source, line = self.locate(path, key=key)
        return ConfigError(message, source=source, line=line, key=dotted(path))


# --------------------------------------------------------------------------------------------
# Bounded YAML
# --------------------------------------------------------------------------------------------


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that counts, while composing, depth, aliases and values (aliases expanded)."""

    def __init__(self, text: str, where: str):
        super().__init__(text)
        self.where = where
        self.depth = 0  # of the node being composed
        self.deepest = 0  # deepest level reached inside the node being composed (aliases expanded)
        self.values = 0
        self.aliases = 0
        self.sizes: dict[int, int] = {}  # id(node) -> values in it, aliases expanded
        self.heights: dict[int, int] = {}  # id(node) -> levels in it, itself included

    def _fail(self, mark: Any, message: str) -> ConfigError:
        return ConfigError(message, source=self.where, line=mark.line + 1 if mark is not None else None)

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            node = self.anchors.get(event.anchor)
            if node is not None:  # (an undefined alias: PyYAML's own error follows)
                if id(node) not in self.sizes:
                    raise self._fail(event.start_mark, f"alias *{event.anchor} is used inside the value it names "
                                                       "(a recursive structure); a config cannot hold one")
                self.aliases += 1
                self.values += self.sizes[id(node)]
                self.deepest = max(self.deepest, self.depth + self.heights[id(node)])
                if self.aliases > MAX_ALIASES:
                    raise self._fail(event.start_mark, f"more than {MAX_ALIASES} YAML aliases (*name) in one file "
                                                       f"(limit {MAX_ALIASES})")
                self._check(event.start_mark)
            return super().compose_node(parent, index)
        self.depth += 1
        self.values += 1
        start_values, outer_deepest = self.values, self.deepest
        self.deepest = self.depth
        self._check(event.start_mark)
        node = super().compose_node(parent, index)
        self.sizes[id(node)] = self.values - start_values + 1
        self.heights[id(node)] = self.deepest - self.depth + 1
        self.deepest = max(outer_deepest, self.deepest)
        self.depth -= 1
        return node

    def _check(self, mark: Any) -> None:
        if self.deepest > MAX_DEPTH:
            raise self._fail(mark, f"values nested more than {MAX_DEPTH} levels deep (limit {MAX_DEPTH})")
        if self.values > MAX_VALUES:
            raise self._fail(mark, f"more than {MAX_VALUES} values once YAML aliases are expanded "
                                   f"(limit {MAX_VALUES}; an alias bomb?)")


def read_yaml(text: str, where: str) -> tuple[Any, yaml.Node | None]:
    """``(data, node)`` of one YAML document, within the bounds above; :class:`ConfigError` otherwise."""
    loader = _BoundedLoader(text, where)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        message = f"YAML syntax error: {err.problem or err.context or 'cannot parse'}"
        if err.context and err.problem and err.context_mark is not None:
            message += f" ({err.context} started on line {err.context_mark.line + 1})"
        raise ConfigError(
            message,
            source=where,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"YAML syntax error: {err}", source=where) from None
    finally:
        loader.dispose()
    return data, node


def _record_lines(node: yaml.Node, path: KeyPath, where: str, values: _Lines, keys: _Lines, seen: set[int]) -> None:
    """Note the line of every key and value of a composed YAML tree; reject duplicate keys.

    Each node is walked once: the nodes under an alias are those of its anchor, already walked (a
    value inside an alias is located at the line of the key that uses the alias).
    """
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for knode, vnode in node.value:
            if knode.tag == "tag:yaml.org,2002:merge" or not isinstance(knode, yaml.ScalarNode):
                continue
            sub = path + (knode.value,)
            line = knode.start_mark.line + 1
            if knode.value in first:
                raise ConfigError(
                    f"duplicate key '{dotted(sub)}' (first given on line {first[knode.value]})",
                    source=where,
                    line=line,
                    key=dotted(sub),
                )
            first[knode.value] = line
            keys[sub] = line
            values[sub] = line if id(vnode) in seen else vnode.start_mark.line + 1  # an alias: where it is used
            _record_lines(vnode, sub, where, values, keys, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            values[path + (i,)] = keys[path + (i,)] = item.start_mark.line + 1
            _record_lines(item, path + (i,), where, values, keys, seen)


# --------------------------------------------------------------------------------------------
# Files and extends:
# --------------------------------------------------------------------------------------------


def _read_text(path: Path, *, source: str, line: int | None, what: str) -> str:
    """The text of a config file, or a :class:`ConfigError` at ``source:line`` (``what``: how to name it)."""
    if path.is_dir():
        hint = f" (did you mean '{path / 'config.yaml'}'?)" if (path / "config.yaml").is_file() else ""
        raise ConfigError(f"{what}is a folder, not a YAML config file{hint}", source=source, line=line)
    if not path.is_file():
        hint = ""
        if path.parent.is_dir():
            stems = {p.stem: p.name for p in path.parent.iterdir() if p.suffix in (".yaml", ".yml")}
            close = difflib.get_close_matches(path.stem, list(stems), n=1, cutoff=0.6)
            if close:
                hint = f" (did you mean '{path.parent / stems[close[0]]}'?)"
        raise ConfigError(f"{what}no such config file{hint}", source=source, line=line)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ConfigError(f"{what}the file is {size} bytes; a config file may be at most {MAX_FILE_BYTES} bytes",
                          source=source, line=line)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{what}is not a UTF-8 text file", source=source, line=line) from None


def deep_merge(base: dict, over: dict, keep: Callable[[KeyPath], bool] = lambda path: False,
               path: KeyPath = ()) -> dict:
    """``over`` on top of ``base``: mappings merge key by key, anything else replaces.

    ``keep(path)`` says where a ``null`` in ``over`` leaves ``base``'s mapping as it is (a config section
    left empty, ``novelty:``, changes nothing; a ``schedule: null`` does remove the schedule).
    """
    out = dict(base)
    for k, v in over.items():
        sub = path + (k,)
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v, keep, sub)
        elif not (v is None and isinstance(out.get(k), dict) and keep(sub)):
            out[k] = v
    return out


def read_config_file(path: Path, origins: Origins, *, keep: Callable[[KeyPath], bool] = lambda path: False,
                     chain: tuple[Path, ...] = (), at: tuple[str, int | None] | None = None) -> Any:
    """The data of a YAML config file with its ``extends:`` chain resolved; its lines go to ``origins``.

    ``at``: where an ``extends:`` named this file (errors about the file itself point there);
    ``keep``: see :func:`deep_merge`.
    """
    source, line = at if at is not None else (str(path), None)
    what = f"'extends' {str(path)!r}: " if at is not None else ""
    text = _read_text(path, source=source, line=line, what=what)
    where = str(path)
    data, node = read_yaml(text, where)
    values: _Lines = {}
    keys: _Lines = {}
    if node is not None:
        _record_lines(node, (), where, values, keys, set())
    if data is not None and not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping of sections (env:, brain:, run:, ...), got "
                          + ("a list" if isinstance(data, list) else repr(data)), source=where, line=1)
    if isinstance(data, dict) and "extends" in data:
        ref = data.pop("extends")
        here = (where, keys.get(("extends",)))
        if not isinstance(ref, str) or not ref.strip():
            raise ConfigError("'extends' must be the path of another config file, e.g. extends: ../cartpole.yaml",
                              source=here[0], line=here[1], key="extends")
        parent = path.parent / ref
        chain = chain or (path.resolve(),)
        if parent.resolve() in chain:
            cycle = " -> ".join(str(p) for p in (*chain, parent.resolve()))
            raise ConfigError(f"'extends' makes a cycle: {cycle}", source=here[0], line=here[1], key="extends")
        if len(chain) >= MAX_EXTENDS:
            raise ConfigError(f"'extends' chain longer than {MAX_EXTENDS} files (limit {MAX_EXTENDS})",
                              source=here[0], line=here[1], key="extends")
        base = read_config_file(parent, origins, keep=keep, chain=(*chain, parent.resolve()), at=here)
        data = deep_merge(base or {}, data, keep)
    origins.layers.append((where, values, keys))
    return data


# --------------------------------------------------------------------------------------------
# --set overrides
# --------------------------------------------------------------------------------------------


def apply_override(data: dict, item: str | tuple[str, str], origins: Origins) -> None:
    """Merge one ``a.b.c=value`` (value parsed as bounded YAML, never eval) into ``data``.

    ``item`` may be ``(override, label)``: errors then name ``label`` (the CLI's ``--seed -1``) as the source.
    """
    item, label = item if isinstance(item, tuple) else (item, f"--set {item}")
    label = label if len(label) <= 80 else label[:77] + "..."
    key, eq, text = item.partition("=")
    key = key.strip()
    parts = key.split(".")
    if not eq or not key or not all(parts):
        raise ConfigError("expected key=value, e.g. --set brain.substeps=20 (put CONFIG before --set)", source=label)
    try:
        value, _ = read_yaml(text, label)
    except ConfigError as err:
        problem = err.message.removeprefix("YAML syntax error: ")
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise ConfigError(f"cannot read the value {shown!r} as YAML: {problem}", source=label, key=key) from None
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"cannot set '{key}': '{'.'.join(parts[: i + 1])}' is not a section", source=label, key=key)
        node = child
    node[parts[-1]] = value
    origins.overrides.append((tuple(parts), label))
