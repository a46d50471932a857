"""Serotonin: the TD discount follows the agent's recent fortune (Doya 2002: serotonin sets the time scale of
reward prediction).

Each agent keeps a running mean ``m`` of its internal reward (``critic.serotonin``, over ``tau_steps``
decisions, moved only by decisions that may be learned from). Its serotonin level and discount::

    level = sigmoid(gain * (m - reference))          gamma = gamma_low + (gamma_high - gamma_low) * level

An agent that keeps being punished (CartPole's failure signal) looks less far ahead; one that is rarely punished
looks far. The reference step (:mod:`.step`) uses these functions, the kernel (:mod:`.kernel_step`) the same
formulas in float32; ``dopamine/serotonin`` and ``dopamine/gamma`` log them.

>>> import torch
>>> from spikegym.training.config_schema import SerotoninConfig
>>> s = SerotoninConfig(enabled=True, gain=20.0, gamma_low=0.9, gamma_high=0.99)
>>> [round(v, 4) for v in discount(torch.tensor([-1.0, 0.0, 1.0]), s).tolist()]
[0.9, 0.945, 0.99]
"""

from __future__ import annotations

import torch
from torch import Tensor


def level(mean: Tensor, s) -> Tensor:
    """Serotonin level ``[B]`` in (0, 1) of the running mean reward ``mean [B]`` (``s``: SerotoninConfig)."""
    return torch.sigmoid(s.gain * (mean - s.reference))


def discount(mean: Tensor, s) -> Tensor:
    """The TD discount ``[B]`` at the running mean reward ``mean [B]``."""
    return s.gamma_low + (s.gamma_high - s.gamma_low) * level(mean, s)


def update(mean: Tensor, r: Tensor, learnable: Tensor, s) -> Tensor:
    """The running mean after the internal reward ``r [B]`` (kept where the decision is not ``learnable``)."""
    return torch.where(learnable, torch.lerp(mean, r, 1.0 / s.tau_steps), mean)
