"""Continual-learning metrics on learning curves: pure numpy functions, JSON-friendly results.

A *curve* is one agent's episodes in order: ``curve_steps[e]`` is the env step at which episode
``e`` ended and ``returns[e]`` its return (``EpisodeStats.steps[b]`` / ``.returns[b]``). A schedule
is a list of *phases* ``[start, end)`` on the same step axis (``TaskSchedule.spans(total)``) with a
*task* name per phase; phases with the same name are the same task, seen again.

Which phase an episode belongs to (``assign``):
  * ``"start"`` (default): the phase in force when the episode *began*, i.e. at the end step of the
    agent's previous episode (0 for the first). This is exactly when
    :class:`~spikegym.envs.schedule.TaskScheduleWrapper` applies a change (at reset, reading a
    clock that equals the vector env's step count), so every episode is attributed to the world it
    was played in. It needs the agent's complete curve.
  * ``"end"``: the phase containing the step the episode ended at, ``start < step <= end``.
  * labels: one phase index per episode, e.g. ``info["task"]`` on the episode's last step (what
    :class:`ContinualTracker` records during a run; it equals ``"start"`` for the wrapper's clock).

Normalisation and signs. Returns can be negative (MountainCar -200..-110, Pendulum about
-1600..-150), so "90 % of the level" or "divide by the level" would flip meaning with the sign.
Every metric therefore measures performance *above a minimum reference* ``ref_min`` (the return
of an agent with no competence) and relative to the task's *level* ``ref_max``::

    score(R) = (R - ref_min) / (ref_max - ref_min)        # 0 = no competence, 1 = the task's level

``ref_min`` defaults to a known value for the env (:data:`REF_MIN`, when ``env_id`` is given) or
else to the worst return seen on that task; ``ref_max`` defaults to the best smoothed level
reached on that task. Both may be given per task as a dict.

Smoothing: a trailing running mean over ``window`` episodes *within one phase* (expanding over the
first episodes of the phase), so a switch never mixes two worlds in one average.

During training, :class:`ContinualTracker` (made by :func:`spikegym.training.loop.train` when
``env.schedule`` is set) collects the labelled curves and each agent's switch steps, writes the
``task/`` and ``continual/`` TensorBoard scalars, and ``continual.json`` at the end of the run.
"""

# The metrics, the summary and the tracker live in their own modules; every name is importable from here.
from spikegym.training.continual_metrics import (REF_MIN, episode_phases, forgetting, forward_transfer,
                                                 normalized_auc, phase_return_slope, phase_returns, plasticity_health,
                                                 recovery_steps, running_mean)
from spikegym.training.continual_summary import continual_summary
from spikegym.training.continual_tracker import ContinualTracker

__all__ = ["REF_MIN", "episode_phases", "phase_returns", "running_mean", "recovery_steps", "forgetting",
           "normalized_auc", "forward_transfer", "phase_return_slope", "plasticity_health", "continual_summary",
           "ContinualTracker"]
