"""The sensing part of the numba agent kernel: population code, sensory adaptation and novelty, one agent a call.

The torch reference (agents/encoders.py, agents/novelty.py) works on ``[B, ...]`` tensors; the kernel step runs
the agents one by one (``for b in prange(B)``) and calls these functions with that agent's rows (1-D views):

* :func:`encode_agent` -- :meth:`~spikegym.agents.encoders.PopulationEncoder.probabilities`: running z-scores,
  angles, 1-D and 2-D Gaussian fields, sensory adaptation, copies and bias neurons; the running statistics and
  the adaptation state are updated in place.
* :func:`simhash_novelty` -- :func:`~spikegym.agents.novelty.novelty_step` (SimHash counts, ``inplace=True``).
* :func:`novelty_neurons` -- :func:`~spikegym.agents.novelty.novelty_neurons_step` (k-WTA tag, habituation).

Each computes what its torch twin computes for that agent, in float32, up to rounding: ``exp`` is
:func:`~spikegym.brains.jit.exp_` (within 2 ulp of torch's), sums run in index order (torch's reductions and
matrix products add in another order), and ``FAST`` lets LLVM fuse a multiply and an add that torch rounds
twice. The constants of an encoder travel in :class:`EncoderConsts` (:func:`encoder_consts` reads them from a
built encoder). tests/test_kernel_sense.py steps both side by side.

Called from a kernel's ``for b in numba.prange(B)``, each agent needs its own scratch row (``work[b]``): the
functions keep nothing between calls but what their state arguments hold. Agents that are not counted this
step (the torch functions' ``mask``) are simply not passed (for a hypothetical SimHash novelty without counting,
``1 / sqrt(count + 1)`` of the bucket).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from spikegym.brains.jit import FAST, exp_, numba

__all__ = ["EncoderConsts", "encoder_consts", "encoder_work_size", "neuron_adaptation", "encode_agent",
           "simhash_novelty", "novelty_neurons"]

_TINY = np.float32(np.finfo(np.float32).tiny)  # the clamp of the relative change's denominator (adaptation_step)


class EncoderConsts(NamedTuple):
    """Constants of :func:`encode_agent` (numba takes a NamedTuple of arrays and scalars as one argument).

    ``C = D + A`` coded dimensions (the observation dimensions, then one angle per ``(cos, sin)`` pair);
    ``F = C * fields + R * pair_fields**2`` fields before copies; ``N_in = F * copies + bias_neurons``.
    """

    field_low: np.ndarray  # f32 [C]: coding range of each coded dimension
    field_high: np.ndarray  # f32 [C]
    circular: np.ndarray  # bool [C]: angle dimensions (fields all the way round)
    norm_mask: np.ndarray  # bool [D]: dimensions coded as a running z-score
    angles: np.ndarray  # int64 [A, 2]: (cos, sin) observation dims of each angle
    pairs: np.ndarray  # int64 [R, 2]: coded dims of each 2-D grid
    fields: int  # fields per coded dimension (1-D)
    pair_fields: int  # fields per dimension of each grid
    copies: int  # input neurons per field (neurons_per_field)
    bias_neurons: int
    max_prob: float  # np.float32
    running_clip: float  # np.float32
    max_count: int  # running_max_count, or -1 for none
    adapt: bool  # sensory adaptation on
    decay_adapt: float  # np.float32 exp(-dt / tau_adapt), dt = K * dt_ms / 1000
    decay_recover: float  # np.float32 exp(-dt / tau_recover)
    strength: float  # np.float32
    sensitize_threshold: float  # np.float32; inf: change-triggered sensitization off
    sensitize_reset: float  # a Python float (double): torch rounds 1 - sensitize_reset once, from the double
    divisive: bool  # AdaptationParams.form == "divisive" (else "exp")


def _np(t, dtype) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=dtype)


def encoder_consts(encoder, K: int) -> EncoderConsts:
    """The :class:`EncoderConsts` of a built :class:`~spikegym.agents.encoders.PopulationEncoder` stepped
    every ``K`` substeps (the adaptation's time step is ``K * dt_ms / 1000`` seconds)."""
    ad = encoder.adaptation
    if ad is not None and ad.form not in ("divisive", "exp"):
        raise ValueError(f"AdaptationParams.form must be 'divisive' or 'exp', got {ad.form!r}")
    dt = K * encoder.dt_ms / 1000.0
    f32 = np.float32
    return EncoderConsts(
        field_low=_np(encoder.field_low, np.float32),
        field_high=_np(encoder.field_high, np.float32),
        circular=_np(encoder.circular, np.bool_),
        norm_mask=_np(encoder.norm_mask, np.bool_),
        angles=_np(encoder.angles, np.int64).reshape(-1, 2),
        pairs=_np(encoder.pairs, np.int64).reshape(-1, 2),
        fields=int(encoder.fields),
        pair_fields=int(encoder.pair_fields),
        copies=int(encoder.neurons_per_field),
        bias_neurons=int(encoder.bias_neurons),
        max_prob=f32(encoder.max_prob),
        running_clip=f32(encoder.running_clip),
        max_count=-1 if encoder.running_max_count is None else int(encoder.running_max_count),
        adapt=ad is not None,
        decay_adapt=f32(1.0 if ad is None else math.exp(-dt / ad.tau_adapt)),
        decay_recover=f32(1.0 if ad is None else math.exp(-dt / ad.tau_recover)),
        strength=f32(0.0 if ad is None else ad.strength),
        sensitize_threshold=f32(math.inf if ad is None else ad.sensitize_threshold),
        sensitize_reset=float(0.0 if ad is None else ad.sensitize_reset),
        divisive=ad is None or ad.form == "divisive",
    )


def _sizes(c: EncoderConsts) -> tuple[int, int, int]:
    """``(C, F, G)``: coded dimensions, fields before copies, and the 1-D fields of the grids' own width
    (0 where the grids reuse the 1-D fields)."""
    n_c = len(c.field_low)
    n_r = len(c.pairs)
    n_grid = n_c * c.pair_fields if n_r and c.pair_fields != c.fields else 0
    return n_c, n_c * c.fields + n_r * c.pair_fields ** 2, n_grid


def encoder_work_size(c: EncoderConsts) -> int:
    """Length of the float32 scratch ``work`` of :func:`encode_agent`: ``[phi F | gain F | x C | grid G | bits]``,
    bits (int32 for ``exp_``) as long as the longest ``exp_`` call."""
    n_c, n_f, n_grid = _sizes(c)
    return 2 * n_f + n_c + n_grid + max(n_f, n_grid)


def neuron_adaptation(params, dt: float) -> tuple[np.float32, np.float32, np.float32, bool]:
    """``(decay_adapt, decay_recover, strength, divisive)`` of :func:`novelty_neurons` from a novelty detector's
    :class:`~spikegym.agents.encoders.AdaptationParams` and ``dt`` (its ``NoveltyNeuronParams.dt``).

    The kernel has no change-triggered sensitization: ``params.sensitize_threshold`` must be inf (the default).
    """
    if math.isfinite(params.sensitize_threshold):
        raise ValueError("novelty_neurons has no change-triggered sensitization; need sensitize_threshold=inf, "
                         f"got {params.sensitize_threshold}")
    if params.form not in ("divisive", "exp"):
        raise ValueError(f"AdaptationParams.form must be 'divisive' or 'exp', got {params.form!r}")
    return (np.float32(math.exp(-dt / params.tau_adapt)), np.float32(math.exp(-dt / params.tau_recover)),
            np.float32(params.strength), params.form == "divisive")


if numba is not None:

    @numba.njit(inline="always", **FAST)
    def _remainder(a, b):
        """torch.remainder of float32 scalars: ``fmod`` (exact), moved into the sign of ``b``."""
        m = np.fmod(a, b)
        if m != 0 and ((b < 0) != (m < 0)):
            m += b
        return m

    @numba.njit(inline="always", **FAST)
    def _fields(x, low, high, circular, nf, out, bits):
        """``out[d * nf + j]`` = :func:`~spikegym.agents.encoders.gaussian_fields` of the coded values x [C]
        (out: at least C * nf; bits: int32 scratch as long)."""
        for d in range(x.shape[0]):
            span = high[d] - low[d]
            half = np.float32(0.5) * span
            if circular[d]:  # angles: fields all the way round, no clipping, the shorter way round
                spacing = span / np.float32(nf)
                xd = x[d]
            else:
                spacing = span / np.float32(nf - 1)
                xd = max(min(x[d], high[d]), low[d])
            for j in range(nf):
                diff = xd - (low[d] + spacing * np.float32(j))
                if circular[d]:
                    diff = _remainder(diff + half, span) - half
                u = diff / spacing
                out[d * nf + j] = np.float32(-0.5) * u * u
        n = x.shape[0] * nf
        exp_(out[:n], bits[:n])

    @numba.njit(cache=True, **FAST)
    def encode_agent(obs, c, rn_count, rn_mean, rn_var, level, last_input, sensitize, update_stats, probs, work):
        """One agent's :meth:`PopulationEncoder.probabilities`: probs f32 [N_in] for obs f32 [D].

        c: :class:`EncoderConsts`. rn_count int64 [1] (a view of the agent's counter), rn_mean, rn_var f32 [D]:
        running statistics, updated in place when ``update_stats`` and some dimension is normalised (all ``D``
        dimensions, as torch). level, last_input f32 [F]: adaptation state, stepped in place when ``c.adapt``;
        sensitize (bool): the external punishment flag. work: f32 [:func:`encoder_work_size`] scratch; after
        the call ``work[F:2F]`` holds the gain of each field (the encoder's ``last_gain``; 1 without adaptation).
        """
        n_d = obs.shape[0]
        nf, pf = c.fields, c.pair_fields
        n_r = c.pairs.shape[0]
        n_c = n_d + c.angles.shape[0]
        n_1d = n_c * nf
        n_f = n_1d + n_r * pf * pf
        n_grid = n_c * pf if n_r > 0 and pf != nf else 0
        phi = work[:n_f]
        gain = work[n_f:2 * n_f]
        x = work[2 * n_f:2 * n_f + n_c]
        grid = work[2 * n_f + n_c:2 * n_f + n_c + n_grid]
        start = 2 * n_f + n_c + n_grid
        bits = work[start:start + max(n_f, n_grid)].view(np.int32)

        # --- coded values: running z-scores where normalised (running_norm_update, running_norm_apply), angles
        normalised = False
        for d in range(n_d):
            normalised = normalised or c.norm_mask[d]
        if normalised:
            if update_stats:
                count = rn_count[0] + 1
                if c.max_count >= 0:
                    count = min(count, c.max_count)
                rn_count[0] = count
                n = np.float32(count)
                for d in range(n_d):
                    delta = obs[d] - rn_mean[d]
                    mean = rn_mean[d] + delta / n
                    rn_var[d] = rn_var[d] + (delta * (obs[d] - mean) - rn_var[d]) / n
                    rn_mean[d] = mean
            known = rn_count[0] >= 2  # fewer samples: unit variance
            clip = np.float32(c.running_clip)
            for d in range(n_d):
                if c.norm_mask[d]:
                    var = rn_var[d] if known else np.float32(1.0)
                    z = (obs[d] - rn_mean[d]) / math.sqrt(var + np.float32(1e-8))
                    x[d] = min(max(z, -clip), clip)
                else:
                    x[d] = obs[d]
        else:
            for d in range(n_d):
                x[d] = obs[d]
        for a in range(c.angles.shape[0]):  # from the raw (cos, sin) pair
            x[n_d + a] = math.atan2(obs[c.angles[a, 1]], obs[c.angles[a, 0]])

        # --- 1-D fields, then the 2-D grids (pair_fields): products of the 1-D fields of their width
        _fields(x, c.field_low, c.field_high, c.circular, nf, phi, bits)
        if n_r > 0:
            src = phi
            if pf != nf:
                _fields(x, c.field_low, c.field_high, c.circular, pf, grid, bits)
                src = grid
            for r in range(n_r):
                first = c.pairs[r, 0] * pf
                second = c.pairs[r, 1] * pf
                base = n_1d + r * pf * pf
                for a in range(pf):
                    fa = src[first + a]
                    for b in range(pf):
                        phi[base + a * pf + b] = fa * src[second + b]

        # --- sensory adaptation (adaptation_step): sensitization, gain from the level found, level update
        max_prob = np.float32(c.max_prob)
        if c.adapt:
            sens = sensitize
            if c.sensitize_threshold < np.float32(np.inf):  # the relative change over the agent's F fields
                diff = np.float32(0.0)
                s_drive = np.float32(0.0)
                s_last = np.float32(0.0)
                for f in range(n_f):
                    diff += abs(phi[f] - last_input[f])
                    s_drive += abs(phi[f])
                    s_last += abs(last_input[f])
                change = diff / max(s_drive + s_last, _TINY)
                sens = sens or change > np.float32(c.sensitize_threshold)
            if sens:
                keep = np.float32(1.0 - c.sensitize_reset)
                for f in range(n_f):
                    level[f] = level[f] * keep
            strength = np.float32(c.strength)
            if c.divisive:
                for f in range(n_f):
                    gain[f] = np.float32(1.0) / (np.float32(1.0) + strength * level[f])
            else:
                for f in range(n_f):
                    gain[f] = -strength * level[f]
                exp_(gain, bits[:n_f])
            decay_adapt, decay_recover = np.float32(c.decay_adapt), np.float32(c.decay_recover)
            for f in range(n_f):
                drive = phi[f]
                lv = level[f]
                decay = decay_adapt if drive >= lv else decay_recover  # charging or relaxing
                level[f] = drive + (lv - drive) * decay
                last_input[f] = drive
                phi[f] = max_prob * drive * gain[f]
        else:
            for f in range(n_f):
                gain[f] = np.float32(1.0)
                phi[f] = max_prob * phi[f]

        # --- copies of each field, then the bias neurons
        copies = c.copies
        for f in range(n_f):
            for k in range(copies):
                probs[f * copies + k] = phi[f]
        for i in range(c.bias_neurons):
            probs[n_f * copies + i] = max_prob

    @numba.njit(inline="always", **FAST)
    def _project(pattern, projection, out):
        """``out[j] = sum_i pattern[i] projection[i, j]`` (out zeroed here; zero inputs skipped: spikes are sparse)."""
        for j in range(out.shape[0]):
            out[j] = np.float32(0.0)
        for i in range(pattern.shape[0]):
            v = pattern[i]
            if v != 0:
                row = projection[i]
                for j in range(out.shape[0]):
                    out[j] += v * row[j]

    @numba.njit(cache=True, **FAST)
    def simhash_novelty(pattern, projection, bit_weights, table_size, counts):
        """One agent's :func:`novelty_step` (``inplace=True``, counted): the novelty ``1 / sqrt(n)`` (float32).

        pattern f32 [N_in]; projection f32 [N_in, k]; bit_weights int64 [k]; counts int32 [T] (the agent's
        table, incremented in place). ``bucket = sum(bit_j * w_j) % T`` with ``bit_j = (pattern @ projection)_j > 0``;
        ``n`` is the bucket's count after the increment. A projection within rounding of 0 may give the other bit.
        """
        proj = np.empty(projection.shape[1], np.float32)
        _project(pattern, projection, proj)
        bucket = 0
        for j in range(proj.shape[0]):
            if proj[j] > 0:
                bucket += bit_weights[j]
        bucket = bucket % table_size
        counts[bucket] += 1
        return np.float32(1.0) / math.sqrt(np.float32(counts[bucket]))

    @numba.njit(cache=True, **FAST)
    def novelty_neurons(pattern, projection, active, decay_adapt, decay_recover, strength, divisive, level,
                        last_input, work):
        """One agent's :func:`novelty_neurons_step` (no mask, no sensitization): the novelty (float32).

        pattern f32 [N_in]; projection f32 [N_in, M]; active: units in the tag; decay_adapt, decay_recover,
        strength, divisive: :func:`neuron_adaptation`; level, last_input f32 [M]: stepped in place; work: f32 [M]
        scratch. The tag is the ``active`` units with the largest projection; on exact ties the lower index wins,
        where torch.topk's choice is unspecified (an all-zero pattern ties every unit, and the two tags differ;
        a Gaussian projection of a non-zero pattern has no ties). ``novelty = sum of the tagged units' gain
        (from the level they find) / active``; then every unit's level moves toward its drive (1 tagged, else 0).
        """
        proj = work[:projection.shape[1]]
        _project(pattern, projection, proj)
        marked = np.float32(-np.inf)  # a picked unit (a finite pattern never projects to -inf)
        for _ in range(active):
            best = -1
            for j in range(proj.shape[0]):
                if proj[j] != marked and (best < 0 or proj[j] > proj[best]):
                    best = j
            proj[best] = marked
        total = np.float32(0.0)
        for j in range(proj.shape[0]):
            drive = np.float32(1.0) if proj[j] == marked else np.float32(0.0)
            lv = level[j]
            if drive > 0:
                if divisive:
                    total += np.float32(1.0) / (np.float32(1.0) + strength * lv)
                else:
                    total += math.exp(-strength * lv)
            decay = decay_adapt if drive >= lv else decay_recover
            level[j] = drive + (lv - drive) * decay
            last_input[j] = drive
        return total / np.float32(active)
