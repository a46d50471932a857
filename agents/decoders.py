"""Motor spikes -> actions. Pure functions over a batch of agents.

* Discrete: one motor population per action; the population with the most spikes over the ``K``
  substeps of a decision wins (ties broken by the agent's own noise). Competition between the
  populations is the winner-take-all readout (and, optionally, lateral inhibition in the brain).
* Continuous: a push-pull pair of populations per action dimension; the normalised difference of
  their spike counts is a population vector in ``[-1, 1]``, mapped onto the action bounds and clipped.
"""

from __future__ import annotations

import torch
from torch import Tensor


def discrete_action(motor_spikes: Tensor, n_actions: int, tie_noise: Tensor) -> Tensor:
    """Winner by spike count.

    Args:
        motor_spikes: ``[K, B, n_actions * M]`` spikes of the motor populations (population-major).
        tie_noise: ``[B, n_actions]`` in ``[0, 1)``; only breaks ties.
    Returns:
        actions ``[B]`` (int64).

    >>> s = torch.zeros(3, 1, 4); s[:, 0, 2:] = 1   # action 1's population fires
    >>> discrete_action(s, 2, torch.zeros(1, 2)).tolist()
    [1]
    """
    counts = population_counts(motor_spikes, n_actions)
    return counts.add_(tie_noise, alpha=0.5).argmax(dim=1)


def population_counts(motor_spikes: Tensor, n_groups: int) -> Tensor:
    """Spike counts per population ``[B, n_groups]`` from ``[K, B, n_groups * M]``."""
    k, b, n = motor_spikes.shape
    return motor_spikes.reshape(k, b, n_groups, n // n_groups).sum(dim=(0, 3))


def continuous_action(motor_spikes: Tensor, low: Tensor, high: Tensor, gain: float = 1.0) -> Tensor:
    """Push-pull population vector.

    Args:
        motor_spikes: ``[K, B, 2 * A * M]``: for each action dimension ``a``, population ``2a`` pushes
            the action up and ``2a + 1`` pulls it down.
        low, high: action bounds ``[A]``.
        gain: how far a full-count difference reaches, relative to the half range.
    Returns:
        actions ``[B, A]`` within ``[low, high]``.
    """
    k, _, n = motor_spikes.shape
    a = low.numel()
    return push_pull(population_counts(motor_spikes, 2 * a), k * (n // (2 * a)), low, high, gain)


def push_pull(counts: Tensor, most: int, low: Tensor, high: Tensor, gain: float = 1.0) -> Tensor:
    """Actions ``[B, A]`` from spike counts ``[B, 2 * A]`` of push-pull pairs; ``most``: a population's
    largest possible count (substeps x neurons)."""
    b = counts.shape[0]
    counts = counts.view(b, -1, 2)
    drive = (counts[..., 0] - counts[..., 1]) / most  # in [-1, 1]
    mid, half = (high + low) / 2, (high - low) / 2
    return torch.maximum(torch.minimum(mid + half * (gain * drive), high), low)
