"""The public API of spikegym's runs::

    from spikegym.training import load_config, train, load

    result = train(load_config("configs/cartpole.yaml", ["run.steps=20000"]))
    policy = load(result["run_dir"])            # agent 0 of the latest checkpoint, learning off
    action = policy.predict(obs)                # one observation in, one action out

``train(cfg) -> result`` (a dict; also in ``RUN_DIR/result.json``), ``load(run_dir,
checkpoint=None, agent=0) -> Policy``, ``evaluate(run_dir, episodes=10)``, ``record(run_dir)``.
Names are imported on first use, so ``import spikegym.training`` stays cheap (no torch, no gymnasium).
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "train": "spikegym.training.loop",
    "load": "spikegym.training.evaluate",
    "Policy": "spikegym.training.evaluate",
    "evaluate": "spikegym.training.evaluate",
    "record": "spikegym.training.record",
    "load_config": "spikegym.training.config",
    "Config": "spikegym.training.config",
    "solved_threshold": "spikegym.training.thresholds",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'spikegym.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
