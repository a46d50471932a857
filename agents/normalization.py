"""Per-agent running mean and variance of observations (Welford, optionally capped into a moving average),
for observation dimensions without usable bounds (MuJoCo)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["RunningNormState", "running_norm_init", "running_norm_update", "running_norm_apply"]


class RunningNormState(NamedTuple):
    """``count [B]`` (int64, samples seen), ``mean [B, D]``, ``var [B, D]`` (population variance)."""

    # the field shadows tuple.count (as namedtuple allows); renaming it would change the public fields
    count: Tensor  # type: ignore[assignment]
    mean: Tensor
    var: Tensor


def running_norm_init(dim: int, num_agents: int = 1, *, device=None, dtype=torch.float32) -> RunningNormState:
    """Empty statistics for ``num_agents`` agents with ``dim``-dimensional observations."""
    return RunningNormState(
        torch.zeros(num_agents, dtype=torch.int64, device=device),
        torch.zeros(num_agents, dim, dtype=dtype, device=device),
        torch.ones(num_agents, dim, dtype=dtype, device=device),
    )


@torch.no_grad()
def running_norm_update(
    state: RunningNormState, obs: Tensor, *, mask: Tensor | None = None, max_count: int | None = None
) -> RunningNormState:
    """Add one observation per agent (Welford).

    With ``n = count + 1``: ``mean += (x - mean) / n``, ``var += ((x - mean_old)(x - mean_new) - var) / n``,
    which is the exact population mean and variance of everything seen. With ``max_count`` the
    divisor stops growing at ``max_count``, turning the statistics into an exponential moving
    average with rate ``1 / max_count`` (useful when the world changes mid-life).

    Args:
        state: :class:`RunningNormState` for ``B`` agents.
        obs: ``[B, D]``.
        mask: ``[B]`` bool, agents to update (default: all).
    """
    obs = obs.to(state.mean.dtype)
    count = state.count + 1
    if max_count is not None:
        count = count.clamp_max(int(max_count))
    n = count.to(obs.dtype)[:, None]
    delta = obs - state.mean
    mean = state.mean + delta / n
    var = state.var + (delta * (obs - mean) - state.var) / n
    if mask is None:
        return RunningNormState(count, mean, var)
    m = mask.to(torch.bool)
    return RunningNormState(
        torch.where(m, count, state.count),
        torch.where(m[:, None], mean, state.mean),
        torch.where(m[:, None], var, state.var),
    )


@torch.no_grad()
def running_norm_apply(state: RunningNormState, obs: Tensor, clip: float, eps: float = 1e-8) -> Tensor:
    """``z = clip((obs - mean) / sqrt(var + eps), -clip, clip)`` per agent, ``[B, D]``.

    Agents that have seen fewer than two samples use unit variance (their variance is not known yet).
    """
    var = torch.where((state.count >= 2)[:, None], state.var, torch.ones_like(state.var))
    z = (obs.to(state.mean.dtype) - state.mean) / torch.sqrt(var + eps)
    return z.clamp(-clip, clip)
