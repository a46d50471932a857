"""Context modules in numba, agent by agent: what :func:`spikegym.agents.modules.modules_update` computes.

The kernel backend calls :func:`modules_all` after its step (the reference calls the torch rule after its
learning; nothing between the two reads the weights). The state is changed in place: the fused ``w``, ``e``
``[B, P, Q]`` (motor columns ``[0, Qm)``, critic ``[Qm, Q)``), the module banks and statistics, and the
critic's ``learnable`` flags. tests/test_equivalence.py holds it in lockstep with the torch rule.
"""

from __future__ import annotations

import numpy as np

from spikegym.brains.jit import numba


def modules_all(delta, r, learnable_in, errors, fast_rate, slow_rate, min_error, switch_surprise, patience,
                recall, w, e, mask, learnable, active, n, fast, slow, failed, streak, held, bank_a, bank_c, consol, bank_cons):
    """One decision of the switching rule for every agent (see :mod:`spikegym.agents.modules`).

    Args:
        delta, r: f32 ``[B]`` this decision's dopamine and internal reward; learnable_in: bool ``[B]`` (counts).
        w, e: f32 ``[B, P, Q]``; mask: bool ``[B, P, Q]`` or ``[B, 0, 0]``; learnable: bool ``[B]`` (the state's).
        active: i64 ``[B]``; n, fast, slow: f32 ``[B, M]``; failed: bool ``[B, M]``; streak, held: f32 ``[B]``;
        bank_a: f32 ``[B, M, P, Qm]``; bank_c: f32 ``[B, M, P, Qc]``; consol: f32 ``[B, P, Qm]`` and bank_cons
            ``[B, M, P, Qm]`` where the actor consolidates (else ``[B, 0, 0]``, ``[B, 0, 0, 0]``): it switches too.
    """
    one, zero = np.float32(1.0), np.float32(0.0)
    n_b, n_m = n.shape
    qm = bank_a.shape[3]
    trial = np.float32(2.0 * patience)
    floor = np.float32(max(min_error, 1e-12))
    for b in range(n_b):
        a = active[b]
        if learnable_in[b]:
            if errors == 0:
                err = max(-r[b], zero)
            elif errors == 1:
                err = abs(delta[b])
            else:
                err = max(-delta[b], zero)
            n[b, a] += one
            inv = one / max(n[b, a], one)
            fast[b, a] = fast[b, a] + max(inv, fast_rate) * (err - fast[b, a])
            slow[b, a] = slow[b, a] + max(inv, slow_rate) * (err - slow[b, a])
            surprise = min(max(fast[b, a] / max(slow[b, a], floor) - one, zero), np.float32(4.0))
            streak[b] = streak[b] + one if surprise > switch_surprise else zero
            held[b] += one
        if held[b] >= trial:  # the module settled: earlier failed trials are forgotten
            for m in range(n_m):
                failed[b, m] = False
        if streak[b] < patience:
            if recall <= 0 or streak[b] < recall:
                continue
            known = False  # a used module that has not just failed may be taken up again sooner
            for m in range(n_m):
                if m != a and n[b, m] > 0 and not failed[b, m]:
                    known = True
            if not known:
                continue
        if held[b] < trial:
            failed[b, a] = True
        open_ = 0
        for m in range(n_m):
            if m != a and not failed[b, m]:
                open_ += 1
        target, best = a, np.inf
        for m in range(n_m):  # lowest long-run error; never used ones after used ones
            if m == a or (open_ > 0 and failed[b, m]):
                continue
            score = slow[b, m] if n[b, m] > 0 else np.float32(1e30)
            if score < best:
                target, best = m, score
        for i in range(w.shape[1]):
            for q in range(qm):
                bank_a[b, a, i, q] = w[b, i, q]
                w[b, i, q] = bank_a[b, target, i, q] * (mask[b, i, q] if mask.shape[1] else one)
                e[b, i, q] = zero
            for q in range(qm, w.shape[2]):
                bank_c[b, a, i, q - qm] = w[b, i, q]
                w[b, i, q] = bank_c[b, target, i, q - qm]
                e[b, i, q] = zero
            if bank_cons.shape[1]:
                for q in range(qm):
                    bank_cons[b, a, i, q] = consol[b, i, q]
                    consol[b, i, q] = bank_cons[b, target, i, q]
        if n[b, target] > 0:  # taken up again: its recent mean starts at its long-run one
            fast[b, target] = slow[b, target]
        active[b] = target
        streak[b], held[b] = zero, zero
        learnable[b] = False  # (the next TD error would mix two critics)


if numba is not None:
    modules_all = numba.njit(cache=True)(modules_all)
