"""Shared pieces of the numba kernels: the counter hash, a vectorisable ``exp`` and torch's ``lerp``.

numba is optional: :data:`numba` is None without it and :func:`available` says so; the torch reference
step then runs instead. Every helper here is ``inline="always"`` so that loops around it vectorise.
"""

from __future__ import annotations

from typing import Literal, TypedDict

import numpy as np

from .random import UNIT, _A32, _B32

try:
    import numba
except ImportError:  # an optional speed-up: the torch reference step computes the same
    # mypy types the name as the module (or Any without numba); None is what available() tests
    numba = None  # type: ignore[assignment]


class _NjitOptions(TypedDict):
    """Keyword options of ``numba.njit`` that :data:`FAST` sets (typed, so that ``njit(**FAST)`` type-checks)."""

    fastmath: set[str]
    error_model: Literal["python", "numpy"]
    boundscheck: bool


#: fused multiply-adds and a zero-division model without checks let LLVM vectorise the loops; no
#: reassociation (serial and parallel builds then sum in the same order) and no finite-math assumption
FAST = _NjitOptions(fastmath={"contract", "nsz"}, error_model="numpy", boundscheck=False)
HALF_GRID = float(1 << 23)
GRID = float(1 << 24)


def available() -> bool:
    """True when numba can be imported (kernels compile on first use, then come from numba's cache)."""
    return numba is not None


if numba is not None:
    _A = np.int32(_A32)
    _B = np.int32(_B32)

    @numba.njit(inline="always")
    def hash24(c1, c2, row):
        """:func:`spikegym.brains.random.hash24` of one element: wrapping int32 arithmetic, arithmetic shifts."""
        x = np.int32(np.uint32(np.uint32(c1) + np.uint32(row)) * np.uint32(_A))
        x = np.int32(x ^ c2)
        x = np.int32(x ^ (x >> np.int32(15)))
        x = np.int32(np.uint32(x) * np.uint32(_B))
        return x >> np.int32(8)

    @numba.njit(inline="always")
    def uniform24(c1, c2, row):
        """:func:`spikegym.brains.random.to_uniform` of :func:`hash24`: a float32 in [0, 1) on the 2**-24 grid."""
        return np.float32(hash24(c1, c2, row)) * np.float32(UNIT) + np.float32(0.5)

    @numba.njit(inline="always", **FAST)
    def exp_(x, bits):
        """``x <- exp(x)`` in place (float32 [n]; bits: int32 [n] scratch), within 2 ulp.

        numba's ``math.exp`` is a scalar libm call (the PyPI llvmlite has no vector maths library), which
        would keep every loop around it scalar. Here ``exp(a) = 2**n p(r)`` with ``r = a - n ln 2`` in two
        parts (Cody and Waite), ``p`` the degree-6 Taylor polynomial, and ``2**n`` made from its bits.
        """
        scale = bits.view(np.float32)
        for i in range(x.shape[0]):
            a = min(max(x[i], np.float32(-87.0)), np.float32(88.0))
            t = a * np.float32(1.4426950408889634)
            n = np.int32(t + np.float32(0.5) if t >= 0 else t - np.float32(0.5))  # nearest integer
            r = a - np.float32(n) * np.float32(0.693145751953125)
            r = r - np.float32(n) * np.float32(1.428606765330187e-06)
            p = np.float32(1.0 / 720)
            p = p * r + np.float32(1.0 / 120)
            p = p * r + np.float32(1.0 / 24)
            p = p * r + np.float32(1.0 / 6)
            p = p * r + np.float32(0.5)
            p = p * r + np.float32(1.0)
            x[i] = p * r + np.float32(1.0)
            bits[i] = (n + np.int32(127)) << np.int32(23)
        for i in range(x.shape[0]):
            x[i] *= scale[i]

    @numba.njit(inline="always")
    def lerp(a, b, w):
        """torch.lerp of float32 scalars (the same two formulas, the same rounding)."""
        return a + w * (b - a) if w < 0.5 else b - (b - a) * (np.float32(1.0) - w)
