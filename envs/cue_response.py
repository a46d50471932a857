"""A cue-response world on Gymnasium's API: each episode is one trial, a cue shown and an action answered.

``spikegym/CueResponse-v0`` (registered when :mod:`spikegym.envs` is imported)::

    reset -> one of the live cues, one-hot: obs [n_cues] float32 in {0, 1}
    step(action) -> reward +1 if action == pairing[cue] else wrong_reward; terminated; obs all 0 (the cue is off)

The task is what a few-shot benchmark changes between trials (:meth:`CueResponseEnv.set_task`): which cues appear
(pre-train on some, then show a cue never seen) and which action each cue asks for (a reversal). On a vector env:
``envs.call("set_task", cues=[4])``; the change applies from the next reset.

>>> env = CueResponseEnv(n_cues=3, n_actions=2, pairing=[1, 0, 1])
>>> obs, _ = env.reset(seed=0)
>>> cue = int(obs.argmax())
>>> env.step(env.pairing[cue])[1:3], env.step(1 - env.pairing[cue])[1]
((1.0, True), 0.0)
"""

from __future__ import annotations

from typing import Optional, Sequence

import gymnasium as gym
import numpy as np

ID = "spikegym/CueResponse-v0"


class CueResponseEnv(gym.Env):
    """One trial per episode (see the module docstring).

    Args:
        n_cues: cues that exist (the observation's size).
        n_actions: possible responses.
        pairing: the correct action of each cue (default ``cue % n_actions``).
        cues: the cues that appear, drawn uniformly (default: all).
        wrong_reward: the reward of a wrong response.
    """

    metadata = {"render_modes": []}

    def __init__(self, n_cues: int = 6, n_actions: int = 4, pairing: Optional[Sequence[int]] = None,
                 cues: Optional[Sequence[int]] = None, wrong_reward: float = 0.0, render_mode: Optional[str] = None):
        if n_cues < 1 or n_actions < 2:
            raise ValueError(f"CueResponse needs n_cues >= 1 and n_actions >= 2, got {n_cues}, {n_actions}")
        self.n_cues, self.n_actions, self.wrong_reward = int(n_cues), int(n_actions), float(wrong_reward)
        self.render_mode = render_mode  # nothing to draw
        self.observation_space = gym.spaces.Box(0.0, 1.0, (self.n_cues,), np.float32)
        self.action_space = gym.spaces.Discrete(self.n_actions)
        self.pairing = [i % self.n_actions for i in range(self.n_cues)]
        self.cues = list(range(self.n_cues))
        self.set_task(cues=cues, pairing=pairing)
        self.cue = 0

    def set_task(self, cues: Optional[Sequence[int]] = None, pairing: Optional[Sequence[int]] = None) -> None:
        """Which cues appear from the next reset on, and the correct action of each cue (None: unchanged)."""
        if pairing is not None:
            pairing = [int(a) for a in pairing]
            if len(pairing) != self.n_cues or not all(0 <= a < self.n_actions for a in pairing):
                raise ValueError(f"pairing {pairing}: one action in [0, {self.n_actions}) per cue ({self.n_cues})")
            self.pairing = pairing
        if cues is not None:
            cues = [int(c) for c in cues]
            if not cues or not all(0 <= c < self.n_cues for c in cues):
                raise ValueError(f"cues {cues}: a non-empty list of cues in [0, {self.n_cues})")
            self.cues = cues

    def _obs(self, on: bool) -> np.ndarray:
        obs = np.zeros(self.n_cues, np.float32)
        if on:
            obs[self.cue] = 1.0
        return obs

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        super().reset(seed=seed)
        self.cue = self.cues[int(self.np_random.integers(len(self.cues)))]
        return self._obs(True), {"cue": self.cue}

    def step(self, action):
        correct = int(action) == self.pairing[self.cue]
        reward = 1.0 if correct else self.wrong_reward
        return self._obs(False), reward, True, False, {"cue": self.cue, "correct": correct}


def register() -> None:
    """Register :data:`ID` with Gymnasium (idempotent)."""
    if ID not in gym.registry:
        gym.register(ID, entry_point=CueResponseEnv)  # episodes end by themselves: no time limit
