"""Typed run configuration: YAML -> validated dataclasses, with one-line errors.

A config is a tree of dataclass *sections* (:class:`Config` holds ``env``, ``encoder``, ``brain``,
``plasticity``, ``dopamine``, ``novelty`` and ``run``). Every field has a default, a ``help`` text
and, where it makes sense, limits, all in the field's metadata::

    gamma: float = setting(0.99, "TD discount", min=0.0, max=1.0)

This module is the front door; the work is split by job:

* :mod:`~spikegym.training.config_schema` -- the sections, their defaults, help texts and limits;
* :mod:`~spikegym.training.config_source` -- reading YAML (bounded: size, depth, aliases), ``extends:``,
  ``--set`` overrides, and where each value came from (file and line);
* :mod:`~spikegym.training.config_validate` -- the generic validator (types, limits, cross-checks);
* :mod:`~spikegym.training.config_checks` -- checks against the world (env id and keywords, spaces,
  schedule, device), all made before a run writes anything.

Errors are :class:`ConfigError`; ``str()`` is one line that names the file, the line, the key and,
for a typo, the nearest valid name::

    configs/x.yaml:12: unknown key 'brain.substep' (did you mean 'brain.substeps'?)
    --set run.steps=abc: 'run.steps' expected an integer, got 'abc'

>>> cfg = load_config(None, ["brain.substeps=10", "plasticity.actor_lr=3e-4"])
>>> cfg.brain.substeps, cfg.plasticity.actor_lr
(10, 0.0003)
>>> try:
...     config_from_dict({"brain": {"substep": 10}}, source="x.yaml")
... except ConfigError as err:
...     print(err)
x.yaml: unknown key 'brain.substep' (did you mean 'brain.substeps'?)
"""

from __future__ import annotations

import copy
import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

import yaml

from spikegym.training.config_checks import (check_device, check_env_id, check_plasticity, check_value_init, check_world,
                                             resolve_device)
from spikegym.training.config_schema import (
    LIMITS,
    AdaptationConfig,
    BrainConfig,
    Config,
    DopamineConfig,
    EncoderConfig,
    EnvConfig,
    HomeostasisConfig,
    NoveltyConfig,
    PlasticityConfig,
    RunConfig,
    StdpConfig,
    StpConfig,
    StructuralConfig,
    section,
    setting,
)
from spikegym.training.config_source import ConfigError, KeyPath, Origins, apply_override, dotted, read_config_file
from spikegym.training.config_validate import (Validator, field_hints, is_optional, is_section, section_paths, show,
                                                type_name)
from spikegym.training.files import atomic_write_text  # noqa: F401 - one atomic writer (re-exported)

__all__ = [
    "ConfigError",
    "setting",
    "section",
    "EnvConfig",
    "AdaptationConfig",
    "EncoderConfig",
    "StpConfig",
    "HomeostasisConfig",
    "StructuralConfig",
    "BrainConfig",
    "StdpConfig",
    "PlasticityConfig",
    "DopamineConfig",
    "NoveltyConfig",
    "RunConfig",
    "Config",
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "config_to_yaml",
    "save_resolved_config",
    "atomic_write_text",
    "check_env_id",
    "config_reference",
]


Overrides = typing.Iterable["str | tuple[str, str]"]  # "key=value", or ("key=value", label for errors)


def _validate(data: Any, origins: Origins, overrides: Overrides = (), schema: type = Config) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"the top level must be a mapping of sections (env:, brain:, run:, ...), got {show(data)}",
            source=origins.source,
            line=1 if origins.source.endswith((".yaml", ".yml")) else None,
        )
    data = copy.deepcopy(data)
    if isinstance(overrides, str):
        overrides = [overrides]
    for item in overrides:
        apply_override(data, item, origins)
    return Validator(schema, origins).section(schema, data, ())


def config_from_dict(
    d: dict | None, source: str = "<dict>", overrides: Overrides = (), *, schema: type = Config
) -> Any:
    """Validate a plain dict (as YAML would give) into a :class:`Config` (or into any other
    dataclass tree given as ``schema``); missing keys keep their defaults.

    >>> config_from_dict({"run": {"steps": "1e6"}}).run.steps
    1000000
    """
    return _validate(d, Origins(source), overrides, schema)


def load_config(path: str | Path | None, overrides: Overrides = ()) -> Config:
    """Read a YAML config (``None``: all defaults) and its ``extends:`` chain, merge ``--set`` style
    overrides (``"brain.substeps=10"``, or ``("run.seed=-1", "--seed -1")`` to name a flag in errors),
    validate, and check it against the world: the env id and its constructor's keywords, its spaces,
    the schedule, the device (``auto`` is resolved here).

    Raises :class:`ConfigError` (one line, with file, line and key) for anything wrong.
    """
    if path is None:
        origins = Origins("<defaults>")
        data: Any = {}
    else:
        path = Path(path)
        origins = Origins(str(path))
        sections = section_paths(Config)
        data = read_config_file(path, origins, keep=lambda p: p in sections)
    cfg = _validate(data, origins, overrides)
    source, line = origins.locate(("env", "id"))
    check_env_id(cfg, source=source, line=line)
    cfg.run.device = resolve_device(cfg.run.device)
    check_device(cfg, origins)
    check_value_init(cfg, origins)
    check_plasticity(cfg, origins)
    check_world(cfg, origins)
    return cfg


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return copy.deepcopy(value)


def config_to_dict(cfg: Any) -> dict:
    """A config (or one section) as plain nested dicts/lists, in schema order; safe to YAML-dump."""
    return _plain(cfg)


def config_to_yaml(cfg: Any) -> str:
    """The resolved config as YAML text that :func:`load_config` reads back to an equal config."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=None)


def save_resolved_config(cfg: Config, path: str | Path) -> Path:
    """Write the resolved config as YAML (atomically: temp file then rename). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "# spikegym resolved config: every setting, defaults included\n" + config_to_yaml(cfg))
    return path


def config_reference(cls: type = Config) -> str:
    """A Markdown table of every key: type, default, limits and help (``spikegym config --reference``).

    >>> print(config_reference().splitlines()[3])
    | env.id | a string | 'CartPole-v1' | Gymnasium env id (CartPole-v1, HalfCheetah-v5, ...); 'module:Id' imports module first |
    """
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]

    def walk(c: type, prefix: KeyPath) -> None:
        hints = field_hints(c)
        for f in dataclasses.fields(c):
            path = prefix + (f.name,)
            optional, tp = is_optional(hints[f.name])
            if is_section(tp):
                rows.append(f"| **{dotted(path)}** | section | | {f.metadata.get('help', '')} |")
                walk(tp, path)
                continue
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            limits = [f"{k} {f.metadata[k]}" for k in LIMITS if k in f.metadata]
            help_text = f.metadata.get("help", "") + (f" [{', '.join(limits)}]" if limits else "")
            type_text = type_name(tp) + (" or null" if optional else "")
            shown = json.dumps(default) if isinstance(default, (dict, list)) else show(default)
            rows.append(f"| {dotted(path)} | {type_text} | {shown} | {help_text.replace('|', '/')} |")

    walk(cls, ())
    return "\n".join(rows)
