"""What keeps a run from saving garbage or losing work: non-finite guards and stop signals.

* :func:`check_observations` runs on every env step (``numpy.isfinite`` on ``[B, D]``: cheap), so a
  NaN or inf from the env never reaches the agent (with running normalisation one NaN would poison
  the encoder's statistics for good);
* :func:`check_state` runs on the whole ``agent.state_dict()`` before every checkpoint, so a
  non-finite agent is never saved as a good checkpoint;
* :class:`StopSignals` turns SIGINT (Ctrl-C) and SIGTERM (``kill``, SLURM, a container stop) into a
  flag that the loop reads after each step: it saves a checkpoint and raises :class:`RunInterrupted`.
  A second signal interrupts at once (the checkpoint writes are atomic, so that is safe too).

>>> import numpy as np
>>> check_observations(np.zeros((2, 3)), np.zeros(2), step=5)
>>> check_observations(np.array([[0.0, np.nan], [0.0, 0.0]]), np.zeros(2), step=5)
Traceback (most recent call last):
...
spikegym.training.guards.NonFiniteState: non-finite observation (NaN/inf) from agent 0's env at step 5 (dimensions [1]); ...
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Mapping
from typing import Any, Optional

import numpy as np
import torch

from spikegym.training.checkpoint import RunStopped

__all__ = ["NonFiniteState", "RunInterrupted", "StopSignals", "check_observations", "check_state"]

_KEPT = "the run stops and the last good checkpoint is kept"


class NonFiniteState(RunStopped):
    """An observation or the agent's state became NaN/inf; the run stops and the last good checkpoint is kept."""


class RunInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped the run after a checkpoint was saved.

    Attributes: ``signum``; ``exit_code`` (128 + signum: 130 for SIGINT, 143 for SIGTERM); ``step``;
    ``checkpoint`` (the folder saved, or None).
    """

    def __init__(self, message: str, *, signum: int, step: int, checkpoint=None):
        super().__init__(message)
        self.signum, self.step, self.checkpoint = int(signum), int(step), checkpoint
        self.exit_code = 128 + int(signum)


def check_observations(obs, reward, *, step: int) -> None:
    """Raise :class:`NonFiniteState` if an observation ``[B, ...]`` or a reward ``[B]`` is NaN/inf."""
    for what, x in (("observation", obs), ("reward", reward)):
        x = np.asarray(x)
        if x.dtype.kind not in "fc" or np.isfinite(x).all():
            continue
        bad = ~np.isfinite(x.reshape(x.shape[0], -1)) if x.ndim else ~np.isfinite(x.reshape(1, 1))
        agents = np.flatnonzero(bad.any(axis=1)).tolist()
        where = f"agent {agents[0]}'s env" if len(agents) == 1 else f"the envs of agents {agents[:8]}"
        dims = f" (dimensions {np.flatnonzero(bad.any(axis=0)).tolist()[:8]})" if what == "observation" else ""
        raise NonFiniteState(f"non-finite {what} (NaN/inf) from {where} at step {step}{dims}; {_KEPT}")


def check_state(state: Mapping[str, Any], *, step: int, what: str = "agent state") -> None:
    """Raise :class:`NonFiniteState` naming the first floating tensor of ``state`` (a ``state_dict``) that
    holds NaN/inf."""
    for name, t in state.items():
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise NonFiniteState(f"non-finite values in {what} '{name}' at step {step}; {_KEPT} "
                                 "(lower the learning rates?)")


class StopSignals:
    """While active (``with StopSignals() as stop``), SIGINT and SIGTERM set ``stop.signum`` instead of
    killing the process; a second signal raises ``KeyboardInterrupt`` at once. Outside the main thread
    (where Python cannot install handlers) it does nothing. The previous handlers come back on exit."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._before: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._before[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._before.items():
            signal.signal(sig, handler)
        self._before.clear()

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""
