"""The numba agent step, one agent a call: what :func:`spikegym.agents.step.agent_step` computes for agent ``b``.

The network is the agent's (:mod:`.spec`): ``Q`` columns, the motor population ``[0, M)`` then the critic
``[M, Q)``; one input population of ``P`` sensors. The motor population may be memoryless escape-noise
neurons or LIF/ALIF neurons, learn by node perturbation or pair STDP, take short-term plasticity on its input
and inhibit itself (lateral inhibition, one substep late); the critic is memoryless escape neurons with the
critic rule. Per agent::

    sensing (kernel_sense.encode_agent) -> input spikes [K, P], the indices of those that spiked
    per substep: short-term plasticity of the inputs; currents = rows of W of the inputs that spiked (x their
        efficacy) + lateral inhibition of the last substep's motor spikes; neurons; traces; eligibility factors
    value, novelty, TD error, TD surprise -> the plasticity gain; motor spike counts -> action
    one pass over W and e: W <- mask * bound(scale * shrink * bound(W + lr gain delta e)); e <- d^K e
    then this window's events enter e: rows of the inputs that spiked (node perturbation, critic, STDP's
    depression), columns of the motor neurons that spiked (STDP's potentiation and heterosynaptic depression)
    threshold homeostasis; autoreset of the fast state where the episode ended

The constants (:class:`~.kernel_types.Consts`), the state views (:class:`~.kernel_types.Arrays`) and the
outputs (:class:`~.kernel_types.Outs`) are named tuples of numpy arrays and scalars (:mod:`.kernel_types`);
:mod:`.kernel` builds them and calls :func:`agent_step` for every agent (in parallel with more than one thread).
"""

from __future__ import annotations

import math
import numpy as np

from spikegym.brains.jit import FAST, GRID, HALF_GRID, numba
from spikegym.brains.random import UNIT

if numba is not None:
    from spikegym.brains.jit import exp_, hash24, lerp

    from .kernel_sense import encode_agent, novelty_neurons, simhash_novelty

from .kernel_types import ESCAPE, LIF


def agent_step(b, obs, reward, term, ended, learn, rows, bonus_w, c, enc, s, o):
    """One decision of agent ``b`` (it touches only its own rows): see the module docstring."""
    n_k, n_p, n_q, m = rows.shape[0], s.rate_in.shape[1], c.bias.shape[0], c.motor
    one, zero = np.float32(1.0), np.float32(0.0)
    if c.failure_reward == c.failure_reward:  # not NaN: the failure signal
        r = c.failure_reward if term[b] else zero
    else:
        r = reward[b] * c.reward_scale

    # --- sensing: population code with adaptation -> Bernoulli thresholds -> spikes, indices of those that spiked
    prob_in = np.empty(n_p, np.float32)
    thr = np.empty(n_p, np.float32)
    bits = np.empty(max(n_p, n_q), np.int32)
    encode_agent(obs[b], enc, s.rn_count[b:b + 1], s.rn_mean[b], s.rn_var[b], s.level[b], s.last_input[b],
                 r <= -c.punish, True, prob_in, np.empty(c.enc_work, np.float32))
    if s.alive_in.shape[1]:  # lesioned sensor neurons (agents/lesion.py) never spike
        for i in range(n_p):
            prob_in[i] *= s.alive_in[b, i]
    for i in range(n_p):
        thr[i] = math.ceil(prob_in[i] * np.float32(GRID)) - np.float32(HALF_GRID)  # a < thr <=> uniform < p
    active = np.empty((n_k, n_p), np.int32)
    n_active = np.zeros(n_k, np.int32)
    fired_in = np.zeros(n_p, np.float32)
    for k in range(n_k):
        row, spiked = rows[k], o.sensors[k, b]
        for i in range(n_p):  # branch-free: vectorised
            spiked[i] = one if hash24(c.sense_c1[b, i], c.sense_c2[b, i], row) < thr[i] else zero
            fired_in[i] += spiked[i]
        n = 0
        for i in range(n_p):  # compaction without a branch
            active[k, n] = i
            n += np.int32(spiked[i])
        n_active[k] = n
    for i in range(n_p):
        s.rate_in[b, i] = lerp(s.rate_in[b, i], fired_in[i] / np.float32(n_k), c.rate_in_w)

    # --- acting, substep by substep: currents, neurons, traces, eligibility factors
    z = np.empty(n_q, np.float32)
    y = np.empty((n_k, n_q), np.float32)        # factor of the rows of the inputs that spiked, decay ahead in
    eff = np.ones((n_k, n_p if c.stp else 0), np.float32)  # efficacy of each spike (short-term plasticity)
    hetero = c.stdp and c.hetero > 0
    pre_tr = np.empty((n_k, n_p if hetero else 0), np.float32)  # heterosynaptic LTD: pre traces before each substep
    x0 = s.xpre[b].copy() if c.stdp else np.empty(0, np.float32)  # STDP: the pre traces at the window's start
    ltp = np.empty((n_k, m if c.stdp else 0), np.float32)  # STDP: a+ u d^(K-1-k), u the post signal
    u_post = np.empty((n_k, m if hetero else 0), np.float32)
    fired = np.zeros(n_q, np.float32)
    spikes = o.spikes[b]
    v = zero
    for k in range(n_k):
        spiked = o.sensors[k, b]
        if c.stp:  # Tsodyks-Markram: facilitation and depletion of every input, the release of each spike
            for i in range(n_p):
                uu = c.stp_u + (s.stp_u[b, i] - c.stp_u) * c.stp_f
                xx = one + (s.stp_x[b, i] - one) * c.stp_d
                if spiked[i] > 0:
                    uu = uu + c.stp_u * (one - uu)
                rel = uu * xx * spiked[i]
                s.stp_u[b, i], s.stp_x[b, i] = uu, xx - rel
                eff[k, i] = rel
        z[:] = 0.0
        if c.stp:  # the motor columns take each spike's efficacy
            for j in range(n_active[k]):
                wr, ef = s.w[b, active[k, j]], eff[k, active[k, j]]
                for q in range(m):
                    z[q] += ef * wr[q]
                for q in range(m, n_q):
                    z[q] += wr[q]
        else:
            for j in range(n_active[k]):
                wr = s.w[b, active[k, j]]
                for q in range(n_q):
                    z[q] += wr[q]
        if s.w_rec.shape[1]:  # lateral inhibition: the motor spikes of the substep before
            for mm in range(m):
                if (spikes[k - 1, mm] if k else s.last[b, mm]) > 0:
                    wr = s.w_rec[b, mm]
                    for q in range(m):
                        z[q] += c.lateral_sign * wr[q]
        if c.stdp:
            for i in range(n_p):
                before = s.xpre[b, i] * c.pre_decay
                if hetero:
                    pre_tr[k, i] = before
                s.xpre[b, i] = before + spiked[i]
        row = rows[k]
        lo = 0 if c.model == ESCAPE else m  # escape columns: [lo, Q)
        if c.model == LIF:  # membranes; then noisy LIF: z <- exp(-slope (v - threshold)) for the firing probability
            for q in range(m):
                v_inf = c.v_rest + (z[q] + s.excite[b, q])
                vv = v_inf + (s.v[b, q] - v_inf) * c.alpha
                s.v[b, q] = vv if s.ref[b, q] <= 0 else c.v_reset
                z[q] = -c.lif_slope * (s.v[b, q] - c.v_th - s.theta[b, q])
            if c.lif_slope > 0:
                exp_(z[:m], bits[:m])
            for q in range(m):  # spikes; z <- the firing probability (the spike itself for the hard threshold)
                vv = s.v[b, q]
                ready = s.ref[b, q] <= 0
                if c.lif_slope > 0:
                    z[q] = one / (one + z[q]) if ready else zero
                    u = np.float32(hash24(c.neuron_c1[b, q], c.neuron_c2[b, q], row)) * np.float32(UNIT) + np.float32(0.5)
                    sp = one if u < z[q] else zero
                else:
                    sp = one if ready and vv >= c.v_th + s.theta[b, q] else zero
                    z[q] = sp
                if sp > 0:
                    vv = c.v_reset
                s.ref[b, q] = c.t_ref if sp > 0 else max(s.ref[b, q] - c.dt, zero)
                if c.theta_plus > 0:
                    s.theta[b, q] = s.theta[b, q] * c.theta_decay + c.theta_plus * sp
                s.v[b, q] = vv
                spikes[k, q] = sp
                fired[q] += sp
        for q in range(lo, n_q):
            z[q] = -c.slope[q] * (z[q] + s.excite[b, q] + c.bias[q])
        if lo == 0:
            exp_(z, bits)
        else:
            exp_(z[lo:], bits[lo:])
        for q in range(lo, n_q):  # escape neurons: p = sigmoid, spike when the hash's uniform lies below (z <- p)
            z[q] = one / (one + z[q])
            u = np.float32(hash24(c.neuron_c1[b, q], c.neuron_c2[b, q], row)) * np.float32(UNIT) + np.float32(0.5)
            sp = one if u < z[q] else zero
            spikes[k, q] = sp
            fired[q] += sp
        if not c.stdp:  # node perturbation: y = s - p
            for q in range(m):
                y[k, q] = (spikes[k, q] - z[q]) * c.ahead[k, q]
        for q in range(m, n_q):  # the critic: y = c p (1 - p); V from the mean firing probability
            y[k, q] = c.critic_scale[q] * z[q] * (one - z[q]) * c.ahead[k, q]
            v += z[q]
        if c.stdp:  # depression: the trace of the post signal before this substep, on the rows of inputs that spiked
            for q in range(m):
                uu = spikes[k, q]  # the post signal: the spike, or centred, minus its probability or the rate
                if c.center == 1:
                    uu -= z[q]
                elif c.center == 2:
                    uu -= s.rate[b, q]
                post = s.xpost[b, q] * c.post_decay
                y[k, q] = -c.a_minus * post * c.ahead[k, q]
                s.xpost[b, q] = post + uu
                ltp[k, q] = c.a_plus * uu * c.ahead[k, q]
                if hetero:
                    u_post[k, q] = uu
    # STDP's potentiation sum_k x_pre[k, i] ltp[k, q], with x_pre[k] = p^(k+1) x0 + sum_(j<k) p^(k-j) s_in[j]
    # (p: the pre-trace decay), regrouped by input spike: the rows of substep j take h[j] = sum_(k>j) p^(k-j) ltp[k]
    # and the start traces take g_ltp = sum_k p^(k+1) ltp[k] -- no pass over every input for every post spike
    g_ltp = np.zeros(m if c.stdp else 0, np.float32)
    if c.stdp:
        for k in range(n_k - 1, -1, -1):
            for q in range(m):
                y[k, q] += g_ltp[q]
                g_ltp[q] = c.pre_decay * (g_ltp[q] + ltp[k, q])
    n_spikes = zero
    for q in range(n_q):
        s.last[b, q] = spikes[n_k - 1, q]
        s.rate[b, q] = lerp(s.rate[b, q], fired[q] / np.float32(n_k), c.rate_w[q])
        n_spikes += fired[q]
    o.n_spikes[b] = n_spikes
    for g in range(c.n_groups):
        cnt = zero
        for q in range(g * c.motor_size, (g + 1) * c.motor_size):
            cnt += fired[q]
        o.counts[b, g] = cnt
    if c.discrete:
        best, best_score = 0, np.float32(-1.0)
        for g in range(c.n_groups):
            tie = np.float32(hash24(c.sense_c1[b, n_p + g], c.sense_c2[b, n_p + g], rows[0])) * np.float32(UNIT)
            score = o.counts[b, g] + np.float32(0.5) * (tie + np.float32(0.5))
            if score > best_score:
                best, best_score = g, score
        o.action[b] = best

    # --- the dopamine about the previous decision
    v = v / np.float32(n_k * (n_q - m)) * c.v_span + c.v_low
    novelty = zero
    if c.novelty == 1 and learn:  # curiosity: the pattern's hash bucket is counted
        novelty = simhash_novelty(prob_in, c.projection, c.bit_weights, c.table_size, s.counts[b])
    elif c.novelty == 2 and learn:  # curiosity: the tagged novelty neurons habituate
        novelty = novelty_neurons(prob_in, c.projection, c.active, c.nov_adapt, c.nov_recover, c.nov_strength,
                                  c.nov_divisive, s.nov_level[b], s.nov_last[b],
                                  np.empty(c.projection.shape[1], np.float32))
    intrinsic = c.beta * novelty * bonus_w
    learnable = s.learnable[b]
    gamma = c.gamma
    if c.serotonin:  # the discount of the running mean reward (agents/serotonin.py), then the mean moves
        gamma = c.sero_low + c.sero_span * (one / (one + math.exp(-(c.sero_gain * (s.serotonin[b] - c.sero_ref)))))
        if learn and learnable:
            s.serotonin[b] = lerp(s.serotonin[b], r, c.sero_rate)
    if c.baseline:
        dop = r + intrinsic - s.reward_mean[b]
    else:
        dop = (zero if term[b] else gamma * v) + (r + intrinsic) - s.value_prev[b]
    if c.clip >= 0:
        dop = min(max(dop, -c.clip), c.clip)
    if not learnable:
        dop = zero
    gain = one + c.ach_gain * novelty if c.novelty > 0 else one
    surprise = zero
    if c.surprise and learn:
        if c.surprise_mode == 0:
            err = abs(dop)
        elif c.surprise_mode == 1:
            err = max(-dop, zero)
        else:
            err = max(-r, zero)
        fast, slow = s.td_fast[b], s.td_slow[b]
        if slow == 0:
            fast, slow = err, err
        else:
            fast = lerp(fast, err, c.surprise_fast)
            slow = lerp(slow, err, c.surprise_slow)
        ratio = fast / max(slow, np.float32(1e-12)) if slow > 0 else one
        surprise = min(max(ratio - one, zero), np.float32(4.0))
        if learnable:
            s.td_fast[b], s.td_slow[b] = fast, slow
        gain += c.surprise_gain * surprise
    if c.baseline and learn and learnable:
        s.reward_mean[b] = c.baseline_decay * s.reward_mean[b] + (one - c.baseline_decay) * r
    o.r[b], o.delta[b], o.value[b], o.intrinsic[b], o.novelty[b] = r, dop, v, intrinsic, novelty
    o.gain[b], o.surprise[b], o.learnable[b] = gain, surprise, learnable

    # --- learning: W <- mask * bound(scale * shrink * bound(W + lr gain delta e)); e <- d^K e; then the events
    step_lr = np.empty(n_q, np.float32)
    factor = np.ones(n_q, np.float32)  # synaptic scaling and the surprised agent's shrink, per column
    shrink = max(one - c.surprise_shrink * surprise, zero) if c.surprise_shrink > 0 and learn else one
    for q in range(n_q):
        step_lr[q] = dop * gain * c.lr[q] if learn else zero
        if learn and c.scale_eta[q] > 0:
            factor[q] = max(one + c.scale_eta[q] * (c.homeo_target[q] - s.rate[b, q]), zero)
        if q < m:
            factor[q] *= shrink
    masked = s.mask.shape[1] > 0
    consol = c.consolidate and learn  # consolidation: the motor columns learn at lr / (1 + c), c captures
    d_pos = max(dop * gain, zero) * c.consol_rate
    plain = not masked and not c.any_soft and not consol  # the common case, branch-free inner loop: vectorised
    free = c.unbounded and shrink == one and not c.any_scaling
    wb, eb = s.w[b], s.e[b]
    for i in range(n_p):
        wr, er = wb[i], eb[i]
        if not learn:  # an evaluation moves no weight: the eligibility only decays
            for q in range(n_q):
                er[q] *= c.decay_k[q]
            continue
        if plain and free:  # no bounds, no scaling: one multiply-add per synapse
            for q in range(n_q):
                wr[q] += step_lr[q] * er[q]
                er[q] *= c.decay_k[q]
            continue
        if plain:
            for q in range(n_q):
                wq = min(max(wr[q] + step_lr[q] * er[q], c.w_min[q]), c.w_max[q])
                wr[q] = min(max(wq * factor[q], c.w_min[q]), c.w_max[q])  # scaling stays inside the bounds
                er[q] *= c.decay_k[q]
            continue
        for q in range(n_q):
            dw = step_lr[q] * er[q]
            if consol and q < m:
                cq = s.consol[b, i, q]
                dw = dw / (one + cq)
                s.consol[b, i, q] = cq * c.consol_keep + d_pos * abs(er[q])
            if c.soft[q]:
                span = c.w_max[q] - c.w_min[q]
                dw *= (c.w_max[q] - wr[q]) / span if dw > 0 else (wr[q] - c.w_min[q]) / span
            wq = min(max(wr[q] + dw, c.w_min[q]), c.w_max[q])
            wq = min(max(wq * factor[q], c.w_min[q]), c.w_max[q])
            wr[q] = wq * s.mask[b, i, q] if masked else wq
            er[q] *= c.decay_k[q]
    if s.w_rec.shape[1]:
        for mm in range(m):
            for q in range(m):
                s.w_rec[b, mm, q] *= factor[q]
    scaled = c.stp and not c.stdp  # node perturbation's pre factor is the spike's efficacy
    for k in range(n_k):  # rows of the inputs that spiked: node perturbation and critic (x efficacy), STDP's LTD
        yk = y[k]
        if not masked and not scaled:  # the common case: one branch-free loop per row (vectorised)
            for j in range(n_active[k]):
                er = eb[active[k, j]]
                for q in range(n_q):
                    er[q] += yk[q]
            continue
        for j in range(n_active[k]):
            i = active[k, j]
            er = eb[i]
            ef = eff[k, i] if scaled else one
            for q in range(m):
                er[q] += yk[q] * ef * (s.mask[b, i, q] if masked else one)
            for q in range(m, n_q):
                er[q] += yk[q]
    if c.stdp:  # potentiation by the window's start traces x0 (the rows above held the rest), heterosynaptic LTD
        for i in range(n_p):
            if x0[i] != 0:
                er = eb[i]
                for q in range(m):
                    add = x0[i] * g_ltp[q]
                    er[q] += add * s.mask[b, i, q] if masked else add
        for k in range(n_k if hetero else 0):
            for q in range(m):
                if u_post[k, q] != 0:
                    d = -c.hetero * u_post[k, q] * c.ahead[k, q]
                    for i in range(n_p):
                        add = d * (one - min(pre_tr[k, i], one))
                        eb[i, q] += add * s.mask[b, i, q] if masked else add
    if learn:  # threshold homeostasis, once per window
        for q in range(n_q):
            s.excite[b, q] += c.homeo_eta[q] * (c.homeo_target[q] - s.rate[b, q])

    # --- autoreset: the next env step only resets this agent, so forget this decision
    if ended[b]:
        eb[:, :] = 0.0
        s.last[b, :] = 0.0
        s.v[b, :] = c.v_rest
        s.ref[b, :] = 0.0
        s.theta[b, :] = 0.0
        s.xpre[b, :] = 0.0
        s.xpost[b, :] = 0.0
        s.stp_u[b, :] = c.stp_u
        s.stp_x[b, :] = 1.0
        if enc.adapt:
            s.level[b, :] = 0.0
            s.last_input[b, :] = 0.0
    s.learnable[b] = not ended[b]
    s.value_prev[b] = v


def step_all(obs, reward, term, ended, learn, rows, bonus_w, c, enc, s, o):
    """One decision of every agent (in parallel in the parallel build: agents are independent).

    ``c``: :class:`Consts`, ``enc``: :class:`~spikegym.agents.kernel_sense.EncoderConsts` (apart: numba's
    parallel loops take a flat tuple of arrays, not a nested one), ``s``: :class:`Arrays`, ``o``: :class:`Outs`.
    """
    for b in numba.prange(obs.shape[0]):
        agent_step(b, obs, reward, term, ended, learn, rows, bonus_w, c, enc, s, o)


if numba is not None:
    # numba's parallel loops lose writes into arrays held by a tuple argument: the body is a function of its own,
    # which step_all (compiled by .kernel, serial and parallel) calls
    agent_step = numba.njit(cache=True, **FAST)(agent_step)
