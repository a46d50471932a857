"""Counter-based random numbers: one independent stream per agent, the same on every device.

A brain's noise must not depend on how many agents share the batch (an agent run alone must
behave exactly as in a population) nor on the device. A global ``torch.Generator`` gives neither,
so noise here is a pure hash of ``(agent key, step counter, neuron index)`` (the splitmix64
finaliser), computed with int64 tensor ops.

>>> keys = agent_keys(seed=0, num_agents=3)
>>> a = uniform(keys, counter=5, shape=(3, 4))
>>> b = uniform(keys[1:2], counter=5, shape=(1, 4))
>>> bool((a[1:2] == b).all())
True
"""

from __future__ import annotations

import torch
from torch import Tensor

_M1 = 0xBF58476D1CE4E5B9 - (1 << 64)   # splitmix64 constants as signed int64
_M2 = 0x94D049BB133111EB - (1 << 64)
_GOLDEN = 0x9E3779B97F4A7C15 - (1 << 64)
_MASK24 = (1 << 24) - 1


def _shr(x: Tensor, n: int) -> Tensor:
    """Logical right shift of int64 (torch's ``>>`` is arithmetic)."""
    return (x >> n) & ((1 << (64 - n)) - 1)


def mix64(x: Tensor) -> Tensor:
    x = (x ^ _shr(x, 30)) * _M1
    x = (x ^ _shr(x, 27)) * _M2
    return x ^ _shr(x, 31)


def agent_keys(seed: int, num_agents: int, *, first: int = 0, device=None) -> Tensor:
    """Keys ``[B]`` for agents ``first .. first+B-1`` of a run seeded with ``seed``."""
    idx = torch.arange(first, first + num_agents, dtype=torch.int64, device=device)
    return mix64(idx * _GOLDEN + mix64(torch.tensor(seed, dtype=torch.int64, device=device)))


def uniform(keys: Tensor, counter: int, shape: tuple[int, ...], *, stream: int = 0, dtype=torch.float32) -> Tensor:
    """Uniform ``[0, 1)`` noise of ``shape = (..., B, N)``: leading axes are extra steps after ``counter``.

    Element ``[t, b, n]`` depends only on ``(keys[b], counter + t, stream, n)``.
    """
    *lead, b, n = shape
    steps = 1
    for s in lead:
        steps *= s
    t = torch.arange(steps, dtype=torch.int64, device=keys.device).view(steps, 1, 1) + counter
    j = torch.arange(n, dtype=torch.int64, device=keys.device).view(1, 1, n)
    x = keys.view(1, b, 1) + mix64(t * _GOLDEN + stream) + j * _M2
    bits = _shr(mix64(x), 40) & _MASK24
    return (bits.to(dtype) * (1.0 / (1 << 24))).view(shape)


def normal(keys: Tensor, counter: int, shape: tuple[int, ...], *, stream: int = 0, dtype=torch.float32) -> Tensor:
    """Standard normal noise of ``shape = (..., B, N)`` by Box-Muller over two uniform streams."""
    u1 = uniform(keys, counter, shape, stream=2 * stream + 1, dtype=torch.float64).clamp_min(1e-12)
    u2 = uniform(keys, counter, shape, stream=2 * stream + 2, dtype=torch.float64)
    return (torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2 * torch.pi * u2)).to(dtype)
