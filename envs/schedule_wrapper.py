"""The wrapper that puts a :class:`~spikegym.envs.schedule.TaskSchedule` on one env: it applies pending
changes only at reset, so an episode never changes its world halfway."""

from __future__ import annotations

from typing import Any, Callable, Optional

import gymnasium as gym
import numpy as np

from spikegym.envs.changes import CHANGES, Interface
from spikegym.envs.schedule import SENSOR_SALT, Draw, ScheduleError, TaskSchedule

__all__ = ["TaskScheduleWrapper"]


class TaskScheduleWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Changes the world of one env by a :class:`TaskSchedule`, only at episode boundaries.

    At every ``reset`` the wrapper reads its clock, and if the schedule has moved to another
    phase occurrence it applies that occurrence's changes (world changes on ``env.unwrapped``,
    from the base values captured when the wrapper was built; interface changes on a fresh
    :class:`~spikegym.envs.changes.Interface`) before resetting the inner env. Mid-episode nothing
    changes. ``info["task"]`` (the occurrence index) is put in every reset and step info.

    Args:
        env: the env (usually from ``gymnasium.make``).
        schedule: a :class:`TaskSchedule` or its dict.
        step_counter: where the clock comes from. ``None`` (default): this env's own steps
            (per-agent steps). Or a callable ``() -> int`` reading an external clock.
        stream: this agent's index (per-agent random draws; seeds the sensor-noise generator).
        count_resets: count a reset after the first as one step. A Gymnasium vector env with
            ``NEXT_STEP`` autoreset spends one step on every reset, so with this on the clock equals
            the vector env's step count (what the training loop and TensorBoard call "step");
            :func:`~spikegym.envs.make.make_vector_env` turns it on. Off: the clock counts transitions.

    Attributes:
        task_index: phase occurrence in force (-1 before the first reset); ``task_name``;
        task_changes: the resolved values in force; ``steps``: the own clock.
    """

    def __init__(self, env: gym.Env, schedule, step_counter: Optional[Callable[[], int]] = None, *,
                 stream: int = 0, count_resets: bool = False):
        schedule = TaskSchedule.from_dict(schedule)
        # recorded so that gymnasium can rebuild the env from env.spec (its checker does)
        gym.utils.RecordConstructorArgs.__init__(self, schedule=schedule.to_dict(), step_counter=step_counter,
                                                 stream=stream, count_resets=count_resets)
        gym.Wrapper.__init__(self, env)
        self.schedule = schedule
        self._external_clock = step_counter
        self.stream = int(stream)
        self.count_resets = bool(count_resets)
        self.steps = 0
        self._resets = 0
        u = env.unwrapped
        self._names = self.schedule.change_names()
        for name in self._names:
            why = CHANGES[name].supports(u)
            if why is not None:
                p = self.schedule.first_use(name)
                raise ScheduleError(f"does not apply to {_env_name(env)}: {why}", phase=p.index, key=name,
                                    phase_name=p.name, path=("phases", p.index, "changes", name))
        self._world = [n for n in self._names if CHANGES[n].target == "world"]
        self._iface_names = [n for n in self._names if CHANGES[n].target == "interface"]
        self._base = {n: CHANGES[n].capture(u) for n in self._world}
        self._check_interface_values()
        self.interface = Interface(env.observation_space, env.action_space)
        self._rng = np.random.default_rng([self.schedule.seed, self.stream, SENSOR_SALT])
        self.task_index = -1
        self.task_name: Optional[str] = None
        self.task_changes: dict[str, Any] = {}

    def _check_interface_values(self) -> None:
        """Try every constant and choice value of the interface changes against the spaces now."""
        for p in self.schedule.phases:
            for name in self._iface_names:
                if name not in p.changes:
                    continue
                spec = p.changes[name]
                values = spec.args if isinstance(spec, Draw) and spec.kind == "choice" else (
                    [spec.args[0]] if isinstance(spec, Draw) else [spec])
                for v in values:
                    try:
                        CHANGES[name].apply(Interface(self.env.observation_space, self.env.action_space), v, None)
                    except ValueError as e:
                        raise ScheduleError(str(e), phase=p.index, key=name, phase_name=p.name,
                                            path=("phases", p.index, "changes", name)) from None

    # ---- the clock --------------------------------------------------------------------------

    @property
    def clock(self) -> int:
        return int(self._external_clock()) if self._external_clock is not None else self.steps

    @property
    def pending_task(self) -> int:
        """The occurrence the next reset will switch to."""
        return self.schedule.occurrence_at(self.clock)

    # ---- gymnasium API ----------------------------------------------------------------------

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        occurrence = self.schedule.occurrence_at(self.clock)
        if occurrence != self.task_index:
            self._enter(occurrence)
        if self.count_resets and self._resets > 0:
            self.steps += 1
        self._resets += 1
        if seed is not None:
            self._rng = np.random.default_rng([int(seed), SENSOR_SALT])
        obs, info = self.env.reset(seed=seed, options=options)
        info["task"] = self.task_index
        return self.interface.observation(obs, self._rng), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(self.interface.action(action))
        self.steps += 1
        reward = self.interface.reward(reward, info)
        info["task"] = self.task_index
        return self.interface.observation(obs, self._rng), reward, terminated, truncated, info

    # ---- switching --------------------------------------------------------------------------

    def _enter(self, occurrence: int) -> None:
        phase = self.schedule.phase_of(occurrence)
        values = self.schedule.resolve(occurrence, stream=self.stream)
        u = self.env.unwrapped
        for name in self._world:  # names this phase leaves out go back to base
            CHANGES[name].apply(u, values.get(name), self._base[name])
        iface = Interface(self.env.observation_space, self.env.action_space)
        for name in self._iface_names:
            if name in values:
                CHANGES[name].apply(iface, values[name], None)
        self.interface = iface
        self.task_index, self.task_name, self.task_changes = occurrence, phase.name, values

    # ---- checkpoints ------------------------------------------------------------------------

    def get_schedule_state(self) -> dict:
        """JSON-serialisable state: the clock, the task in force and the sensor-noise generator."""
        return {"steps": self.steps, "resets": self._resets, "task_index": self.task_index,
                "rng": self._rng.bit_generator.state}

    def set_schedule_state(self, state) -> None:
        """Restore :meth:`get_schedule_state`; re-applies the changes of the task that was in force.

        ``state`` may also be the list of every sub-env's state (as ``vector_env.call("get_schedule_state")``
        returns it); this env takes entry ``stream``, so ``vector_env.call("set_schedule_state", states)``
        restores a whole sync or async vector env.
        """
        if isinstance(state, (list, tuple)):
            state = state[self.stream]
        self.steps, self._resets = int(state["steps"]), int(state["resets"])
        if int(state["task_index"]) >= 0:
            self._enter(int(state["task_index"]))
        self._rng = np.random.default_rng()
        self._rng.bit_generator.state = state["rng"]


def _env_name(env) -> str:
    spec = getattr(env, "spec", None)
    return spec.id if spec is not None else type(env.unwrapped).__name__
