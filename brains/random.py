"""Counter-based random numbers: one independent stream per agent, the same on every device.

A brain's noise must not depend on how many agents share the batch (an agent run alone must
behave exactly as in a population) nor on the device. A global ``torch.Generator`` gives neither,
so noise here is a pure hash of ``(agent key, stream, neuron index, step counter)``.

The hash is split so that the per-element work is a handful of 32-bit integer ops:

* a **column word pair** per ``(agent key, stream, neuron)``: the splitmix64 finaliser of the three,
  cut into two 32-bit words ``c1, c2`` (:func:`column_codes`; 64 bits, so two columns never share
  their noise). Engines compute these once and keep them.
* a **row word** per step counter ``s``: a bijective 32-bit mixer of ``s`` (:func:`row_codes`; two
  steps never share their word below ``2**32`` steps).
* per element (:func:`hash24`), seven int32 ops (wrapping; ``>>`` is torch's arithmetic shift)::

      x = (c1 + row) * A;  x ^= c2;  x ^= x >> 15;  x *= B;  a = x >> 8

  with the multipliers of Wellons' ``lowbias32``. ``a`` is a signed 24-bit integer and the uniform is
  ``u = (a + 2**23) / 2**24``, exact in float32 and in ``[0, 1)``; a Bernoulli draw ``u < p`` is
  ``a < bernoulli_threshold(p)``, exactly. Statistical checks (uniformity of high, middle and low bits;
  correlations between neighbouring steps, neurons and agents and between all pairs of 768 columns;
  joint Bernoulli rates) are in ``tests/test_random.py``.

The previous version hashed every element with two rounds of splitmix64 in int64 (about 20 int64 ops);
this one draws the same kind of numbers (per agent, stream, neuron and step; batch- and device-invariant)
several times faster, but not the same numbers.

>>> keys = agent_keys(seed=0, num_agents=3)
>>> a = uniform(keys, counter=5, shape=(3, 4))
>>> b = uniform(keys[1:2], counter=5, shape=(1, 4))
>>> bool((a[1:2] == b).all())
True
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

_M1 = 0xBF58476D1CE4E5B9 - (1 << 64)   # splitmix64 constants as signed int64
_M2 = 0x94D049BB133111EB - (1 << 64)
_GOLDEN = 0x9E3779B97F4A7C15 - (1 << 64)
_A32 = 0x7FEB352D                      # lowbias32 multipliers (C. Wellons), as signed int32
_B32 = 0x846CA68B - (1 << 32)
_MASK32 = (1 << 32) - 1
_STREAM_SALT = 0x5851F42D4C957F2D - (1 << 64)
#: 2**-24: one step of the 24-bit uniform grid.
UNIT = 2.0 ** -24
#: Rows drawn with Python integers up to this many steps (cheaper than tensor ops for one decision).
_PY_ROWS = 64
# The hash's constants as 0-dim tensors: on CPU, int32 ops with a Python-number operand take a slow
# (scalar-converting) kernel, about 3x slower than with a 0-dim tensor of the same dtype.
_C = {"a": torch.tensor(_A32, dtype=torch.int32), "b": torch.tensor(_B32, dtype=torch.int32),
      "15": torch.tensor(15, dtype=torch.int32), "8": torch.tensor(8, dtype=torch.int32),
      "unit": torch.tensor(UNIT), "half": torch.tensor(0.5)}


def const(name: str) -> Tensor:
    """A 0-dim CPU tensor constant of the hash (usable as a scalar operand on any device)."""
    return _C[name]


def _shr(x: Tensor, n: int) -> Tensor:
    """Logical right shift of int64 (torch's ``>>`` is arithmetic)."""
    return (x >> n) & ((1 << (64 - n)) - 1)


def mix64(x: Tensor) -> Tensor:
    """The splitmix64 finaliser on int64 tensors (a bijection of 64-bit words)."""
    x = (x ^ _shr(x, 30)) * _M1
    x = (x ^ _shr(x, 27)) * _M2
    return x ^ _shr(x, 31)


def _wrap64(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= 1 << 63 else v


def _signed32(v: int) -> int:
    return v - (1 << 32) if v >= 1 << 31 else v


def agent_keys(seed: int, num_agents: int, *, first: int = 0, device=None) -> Tensor:
    """Keys ``[B]`` (int64) for agents ``first .. first+B-1`` of a run seeded with ``seed``."""
    idx = torch.arange(first, first + num_agents, dtype=torch.int64, device=device)
    return mix64(idx * _GOLDEN + mix64(torch.tensor(seed, dtype=torch.int64, device=device)))


# --------------------------------------------------------------------------- the two halves of the hash


def column_codes(keys: Tensor, n: int, stream: int = 0, *, first: int = 0) -> Tensor:
    """Column words ``[2, B, n]`` (int32) of neurons ``first .. first+n-1`` of ``stream`` for agents ``keys [B]``.

    Word pair ``[:, b, j]`` is the splitmix64 finaliser of ``(keys[b], stream, j)`` cut in two halves.
    """
    s = mix64(torch.tensor(_wrap64(stream * _GOLDEN + _STREAM_SALT), dtype=torch.int64, device=keys.device))
    j = torch.arange(first, first + n, dtype=torch.int64, device=keys.device)
    h = mix64(keys.view(-1, 1) + s + j * _M2)
    lo = (h & _MASK32).to(torch.int32)          # int64 -> int32 keeps the low 32 bits (two's complement)
    hi = _shr(h, 32).to(torch.int32)
    return torch.stack([lo, hi])


def _mix32(v: int) -> int:
    """lowbias32 on a Python int in ``[0, 2**32)`` (a bijection)."""
    v ^= v >> 16
    v = (v * 0x7FEB352D) & _MASK32
    v ^= v >> 15
    v = (v * 0x846CA68B) & _MASK32
    return v ^ (v >> 16)


def _mix32_t(v: Tensor) -> Tensor:
    """:func:`_mix32` on int64 tensors holding values in ``[0, 2**32)``."""
    v = v ^ (v >> 16)
    v = (v * 0x7FEB352D) & _MASK32
    v = v ^ (v >> 15)
    v = (v * 0x846CA68B) & _MASK32  # wraps mod 2**64 in int64; the low 32 bits are exact
    return v ^ (v >> 16)


def row_codes(counter: int, steps: int, device=None) -> Tensor:
    """Row words ``[steps]`` (int32) of step counters ``counter .. counter+steps-1``.

    ``row(s) = mix32((s mod 2**32) ^ mix32(s >> 32))``: a bijection of ``s`` below ``2**32``.
    """
    counter = int(counter)
    if counter < 0:
        raise ValueError(f"step counter must be >= 0, got {counter}")
    if steps <= _PY_ROWS:
        vals = []
        for s in range(counter, counter + steps):
            hi = s >> 32
            vals.append(_signed32(_mix32((s & _MASK32) ^ (_mix32(hi & _MASK32) if hi else 0))))
        return torch.tensor(vals, dtype=torch.int32, device=device)
    s_t = torch.arange(counter, counter + steps, dtype=torch.int64, device=device)
    hi_t = _mix32_t(_shr(s_t, 32) & _MASK32)  # mix32(0) == 0
    return _mix32_t((s_t & _MASK32) ^ hi_t).to(torch.int32)


def hash24(c1: Tensor, c2: Tensor, rows: Tensor, *, out: Optional[Tensor] = None,
           tmp: Optional[Tensor] = None) -> Tensor:
    """Signed 24-bit noise ``a`` in ``[-2**23, 2**23)`` (int32) of column words and row words.

    ``c1``, ``c2`` and ``rows`` are int32 and broadcast together (e.g. ``[1, B, N]`` and ``[K, 1, 1]``).
    ``out`` and ``tmp`` are optional int32 buffers of the broadcast shape (scratch; ``out`` is returned).
    """
    x = torch.add(c1, rows, out=out) if out is not None else torch.add(c1, rows)
    x.mul_(_C["a"])
    x.bitwise_xor_(c2)
    s15 = _C["15"]
    t = torch.bitwise_right_shift(x, s15, out=tmp) if tmp is not None else torch.bitwise_right_shift(x, s15)
    x.bitwise_xor_(t)
    x.mul_(_C["b"])
    return torch.bitwise_right_shift(x, _C["8"], out=x)


def to_uniform(a: Tensor, dtype=torch.float32, *, out: Optional[Tensor] = None) -> Tensor:
    """``(a + 2**23) / 2**24`` in ``[0, 1)`` for the output of :func:`hash24` (exact in float32)."""
    u = a.to(dtype) if out is None else out.copy_(a)
    return u.mul_(_C["unit"]).add_(_C["half"])


def bernoulli_threshold(prob: Tensor) -> Tensor:
    """``thr`` with ``a < thr  <=>  to_uniform(a) < prob`` for every 24-bit ``a`` (exact; float32 ``prob``).

    For integer ``n`` and real ``y``, ``n < y <=> n < ceil(y)``; ``ceil(prob 2**24) - 2**23`` is exact in float32.
    """
    return torch.ceil(prob * (1 << 24)).sub_(1 << 23)


# --------------------------------------------------------------------------- the draws


def uniform(keys: Tensor, counter: int, shape: tuple[int, ...], *, stream: int = 0, dtype=torch.float32) -> Tensor:
    """Uniform ``[0, 1)`` noise of ``shape = (..., B, N)``: leading axes are extra steps after ``counter``.

    Element ``[t, b, n]`` depends only on ``(keys[b], counter + t, stream, n)``; values lie on the
    ``2**-24`` grid.
    """
    *lead, b, n = shape
    steps = 1
    for s in lead:
        steps *= s
    cols = column_codes(keys, n, stream)
    rows = row_codes(counter, steps, device=keys.device).view(steps, 1, 1)
    a = hash24(cols[0].unsqueeze(0), cols[1].unsqueeze(0), rows)
    return to_uniform(a, dtype).view(shape)


def normal(keys: Tensor, counter: int, shape: tuple[int, ...], *, stream: int = 0, dtype=torch.float32) -> Tensor:
    """Standard normal noise of ``shape = (..., B, N)`` by Box-Muller over two uniform streams."""
    u1 = uniform(keys, counter, shape, stream=2 * stream + 1, dtype=torch.float64).clamp_min(1e-12)
    u2 = uniform(keys, counter, shape, stream=2 * stream + 2, dtype=torch.float64)
    return (torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2 * torch.pi * u2)).to(dtype)
