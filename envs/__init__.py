"""Worlds for spiking agents: Gymnasium / MuJoCo envs and task schedules that change them mid-life.

Importing this package sets ``MUJOCO_GL=egl`` (Linux, where libEGL exists, unless already set)
before anything imports mujoco; see :mod:`spikegym.envs.make`.
"""

from spikegym.envs.make import (  # first: sets MUJOCO_GL before mujoco can be imported
    VECTORIZATIONS,
    action_size,
    is_discrete,
    make_env,
    make_vector_env,
    obs_bounds,
    registered_id,
    reset_seeds,
)
from spikegym.envs.changes import CHANGES, Change, Interface, describe_changes, register_change
from spikegym.envs.schedule import Draw, Phase, PhaseSpan, ScheduleError, TaskSchedule, TaskScheduleWrapper
from spikegym.envs.cue_response import register as _register_cue_response

_register_cue_response()  # spikegym/CueResponse-v0

__all__ = [
    "make_env", "make_vector_env", "reset_seeds", "obs_bounds", "is_discrete", "action_size", "VECTORIZATIONS",
    "registered_id",
    "CHANGES", "Change", "Interface", "register_change", "describe_changes",
    "TaskSchedule", "Phase", "PhaseSpan", "Draw", "ScheduleError", "TaskScheduleWrapper",
]
