"""Gaussian population codes: 1-D receptive fields (also round a circle, for angles) and 2-D grids.

Batched over ``B`` agents, on the device of the observations, under ``torch.no_grad()``.
:class:`~spikegym.agents.encoders.PopulationEncoder` builds its code from these.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["gaussian_fields", "angle_dimensions", "pair_fields", "pair_products"]


@torch.no_grad()
def gaussian_fields(obs: Tensor, low: Tensor, high: Tensor, fields: int, circular: Tensor | None = None) -> Tensor:
    """Gaussian population code of each observation dimension.

    For dimension ``d`` the centres are ``c_j = low_d + j * s_d`` (``j = 0 .. fields-1``) with spacing
    ``s_d = (high_d - low_d) / (fields - 1)`` and ``phi_{d,j} = exp(-(x_d - c_j)^2 / (2 s_d^2))``,
    where ``x_d`` is ``obs_d`` clipped to ``[low_d, high_d]``. Values lie in ``(0, 1]`` (the field
    whose centre is at ``x`` gives 1; fields many widths away may underflow to 0 in float32).

    A *circular* dimension (an angle: ``low`` and ``high`` are the same point) has no edge: its
    fields sit evenly around the circle, ``s_d = (high_d - low_d) / fields``, and ``x_d - c_j`` is
    the shorter way round (wrapped into ``[-(high_d - low_d) / 2, (high_d - low_d) / 2)``).

    Args:
        obs: ``[B, D]``.
        low, high: ``[D]`` finite range per dimension, ``high > low``.
        fields: fields per dimension, ``>= 2``.
        circular: optional ``[D]`` bool, the dimensions that wrap around.
    Returns:
        ``phi [B, D * fields]``, dimension-major: column ``d * fields + j``.

    >>> phi = gaussian_fields(torch.tensor([[0.0]]), torch.tensor([-1.0]), torch.tensor([1.0]), 3)
    >>> [round(v, 4) for v in phi[0].tolist()]   # centres -1, 0, 1; sigma 1
    [0.6065, 1.0, 0.6065]
    """
    if fields < 2:
        raise ValueError(f"gaussian_fields needs fields >= 2, got {fields}")
    low = torch.as_tensor(low, dtype=obs.dtype, device=obs.device)
    high = torch.as_tensor(high, dtype=obs.dtype, device=obs.device)
    if not bool((high > low).all()):
        raise ValueError("gaussian_fields needs high > low in every dimension")
    span = high - low
    spacing = span / (fields - 1)  # [D]
    x = torch.maximum(torch.minimum(obs, high), low)  # [B, D]
    if circular is not None:  # angles: fields all the way round, no clipping
        circular = circular.to(device=obs.device)
        spacing = torch.where(circular, span / fields, spacing)
        x = torch.where(circular, obs, x)
    j = torch.arange(fields, device=obs.device, dtype=obs.dtype)  # [F]
    centres = low[:, None] + spacing[:, None] * j  # [D, F]
    diff = x[:, :, None] - centres  # [B, D, F]
    if circular is not None:
        half = (0.5 * span)[:, None]
        wrapped = torch.remainder(diff + half, span[:, None]) - half  # the shorter way round the circle
        diff = torch.where(circular[:, None], wrapped, diff)
    u = diff / spacing[:, None]
    return torch.exp(-0.5 * u * u).reshape(obs.shape[0], -1)


def angle_dimensions(obs: Tensor, angles: Tensor) -> Tensor:
    """Angles ``atan2(sin, cos)`` in ``[-pi, pi]`` of the ``(cos, sin)`` dimension pairs ``angles [A, 2]``.

    >>> angle_dimensions(torch.tensor([[0.0, 1.0, -1.0, 0.0]]), torch.tensor([[0, 1], [2, 3]])).tolist()
    [[1.5707963705062866, 3.1415927410125732]]
    """
    return torch.atan2(obs[:, angles[:, 1]], obs[:, angles[:, 0]])


def pair_fields(obs: Tensor, low: Tensor, high: Tensor, fields: int, pairs: Tensor,
                circular: Tensor | None = None) -> Tensor:
    """Conjunctive 2-D Gaussian fields over pairs of observation dimensions.

    Field ``(a, c)`` of pair ``(i, j)`` is ``phi_{i,a} * phi_{j,c}`` with the 1-D fields of
    :func:`gaussian_fields` (``fields`` per dimension): a bump over a grid of the ``(x_i, x_j)`` plane,
    so a linear readout can answer a conjunction ("moving left while leaning right") that a sum of
    1-D codes cannot.

    Args:
        obs: ``[B, D]``; low, high: ``[D]``; pairs: ``[P, 2]`` long dimension indices;
        circular: optional ``[D]`` bool (see :func:`gaussian_fields`).
    Returns:
        ``[B, P * fields * fields]``, pair-major, then ``a`` (first dimension), then ``c``.

    >>> phi = pair_fields(torch.tensor([[0.0, 1.0]]), torch.tensor([-1.0, -1.0]), torch.tensor([1.0, 1.0]),
    ...                   3, torch.tensor([[0, 1]]))
    >>> [round(v, 4) for v in phi[0].tolist()]   # x0 = 0 (fields .61 1 .61) times x1 = 1 (fields .14 .61 1)
    [0.0821, 0.3679, 0.6065, 0.1353, 0.6065, 1.0, 0.0821, 0.3679, 0.6065]
    """
    return pair_products(gaussian_fields(obs, low, high, fields, circular), fields, pairs)


def pair_products(phi: Tensor, fields: int, pairs: Tensor) -> Tensor:
    """The 2-D fields ``[B, P * fields**2]`` of :func:`pair_fields` from the 1-D ones ``phi [B, D * fields]``."""
    g = phi.view(phi.shape[0], -1, fields)  # [B, D, F]
    first, second = g[:, pairs[:, 0]], g[:, pairs[:, 1]]  # [B, P, F]
    return (first[:, :, :, None] * second[:, :, None, :]).reshape(phi.shape[0], -1)
