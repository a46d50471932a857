"""Sensory adaptation of a population: habituation to constant strong input, recovery at rest, and
sensitization by a strong unexpected change or an aversive event (the Aplysia gill-withdrawal experiments:
the response to a repeated touch fades, comes back after a rest, and a noxious stimulus restores it at once).

Batched over ``B`` agents, under ``torch.no_grad()``; used by the encoder (per receptive field) and by the
habituating novelty neurons (:mod:`spikegym.agents.novelty`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["AdaptationParams", "AdaptationState", "adaptation_init", "adaptation_gain", "adaptation_step"]


class AdaptationParams(NamedTuple):
    """Constants of sensory adaptation.

    * ``tau_adapt`` -- time constant with which the adaptation level charges toward the drive
      while the drive exceeds it (habituation), in the caller's time unit (seconds in the encoder).
    * ``tau_recover`` -- time constant with which the level relaxes toward a lower drive, i.e. to 0
      at rest (recovery).
    * ``strength`` -- how strongly the level suppresses the response; 0 turns adaptation off exactly.
    * ``sensitize_threshold`` -- a relative input change above this sensitizes (``inf`` disables
      change-triggered sensitization; the external flag still works).
    * ``form`` -- ``"divisive"``: ``gain = 1 / (1 + strength * level)``;
      ``"exp"``: ``gain = exp(-strength * level)``.
    * ``sensitize_reset`` -- fraction of the level removed by a sensitizing event (1 = full reset).
    """

    tau_adapt: float = 1.0
    tau_recover: float = 5.0
    strength: float = 1.0
    sensitize_threshold: float = 0.5
    form: str = "divisive"
    sensitize_reset: float = 1.0


class AdaptationState(NamedTuple):
    """``level [B, N]``: adaptation level (same units as the drive); ``last_input [B, N]``: previous drive."""

    level: Tensor
    last_input: Tensor


def adaptation_init(batch: int, n: int, *, device=None, dtype=torch.float32) -> AdaptationState:
    """Unadapted state: ``level = 0``, ``last_input = 0`` for every agent."""
    zeros = torch.zeros(batch, n, device=device, dtype=dtype)
    return AdaptationState(zeros, zeros.clone())


def adaptation_gain(level: Tensor, params: AdaptationParams) -> Tensor:
    """Response gain for an adaptation ``level`` (``[B, N]``), in ``(0, 1]`` for ``level >= 0``."""
    if params.form == "divisive":
        return 1.0 / (1.0 + params.strength * level)
    if params.form == "exp":
        return torch.exp(-params.strength * level)
    raise ValueError(f"AdaptationParams.form must be 'divisive' or 'exp', got {params.form!r}")


@torch.no_grad()
def adaptation_step(
    drive: Tensor,
    state: AdaptationState,
    params: AdaptationParams,
    dt: float,
    sensitize: Tensor | None = None,
) -> tuple[Tensor, AdaptationState]:
    """One step of habituation / sensitization. The response is ``drive * gain``.

    Order within a step, for every agent and neuron:

    1. *Sensitization.* The relative change of the input,
       ``c = sum_n |drive - last_input| / (sum_n |drive| + sum_n |last_input|)`` (in ``[0, 1]``:
       0 = same pattern, 1 = a disjoint one), above ``sensitize_threshold``, or the external
       ``sensitize`` flag (e.g. a strongly negative reward), removes ``sensitize_reset`` of that
       agent's level: ``level <- (1 - sensitize_reset) * level``.
    2. *Gain* from the level the stimulus finds: ``gain = 1 / (1 + strength * level)`` (divisive,
       default) or ``exp(-strength * level)``. The first presentation therefore gets the full response.
    3. *Level update*, exact for a drive held constant over ``dt``::

           level <- drive + (level - drive) * exp(-dt / tau)
           tau = tau_adapt   where drive >= level  (charging: habituation)
                 tau_recover where drive <  level  (relaxing; at rest drive = 0, recovery to 0)

       The level approaches the drive monotonically without crossing it, so the choice of ``tau``
       is constant over the step and the exponential is exact.

    Args:
        drive: non-negative input ``[B, N]`` (e.g. Gaussian field activations).
        state: :class:`AdaptationState` ``[B, N]``.
        dt: step length, in the unit of the time constants.
        sensitize: ``[B]`` bool or None.
    Returns:
        ``(gain [B, N], new_state)``.

    >>> p = AdaptationParams(tau_adapt=1.0, tau_recover=1.0, strength=1.0, sensitize_threshold=float("inf"))
    >>> s = adaptation_init(1, 1)
    >>> g, s = adaptation_step(torch.ones(1, 1), s, p, dt=1.0)
    >>> float(g), round(float(s.level), 4)     # full first response; level = 1 - exp(-1)
    (1.0, 0.6321)
    >>> g, s = adaptation_step(torch.ones(1, 1), s, p, dt=1.0)
    >>> round(float(g), 4)                     # 1 / (1 + 0.6321)
    0.6127
    """
    level = state.level
    sens = None
    if math.isfinite(params.sensitize_threshold):
        diff = (drive - state.last_input).abs().sum(-1)
        total = drive.abs().sum(-1) + state.last_input.abs().sum(-1)
        change = diff / total.clamp_min(torch.finfo(drive.dtype).tiny)
        sens = change > params.sensitize_threshold
    if sensitize is not None:
        flag = sensitize.to(device=drive.device, dtype=torch.bool)
        sens = flag if sens is None else sens | flag
    if sens is not None:
        level = torch.where(sens[:, None], level * (1.0 - params.sensitize_reset), level)

    gain = adaptation_gain(level, params)

    decay_adapt = math.exp(-dt / params.tau_adapt)
    decay_recover = math.exp(-dt / params.tau_recover)
    decay = torch.where(drive >= level, decay_adapt, decay_recover).to(drive.dtype)
    new_level = drive + (level - drive) * decay
    return gain, AdaptationState(new_level, drive.clone())
