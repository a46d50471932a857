"""The agent step as one compiled kernel (numba), for the common feed-forward escape agent on CPU.

:meth:`Agent.step <spikegym.agents.agent.Agent.step>` is about a hundred small torch operations per
environment step around three large ones (the window's currents ``[B, K, P] @ [B, P, Q]``, the dopamine
update of ``W`` and the eligibility product). At ``B = 16`` the small ones cost most of the time (each is
microseconds of dispatch for little work), and the large ones pass over ``W`` and ``e`` six times. The
kernel does the same step agent by agent, each agent's ``W [P, Q]`` and ``e [P, Q]`` touched while they sit
in the core's cache::

    obs -> Gaussian fields -> input spikes [K, P] from the counter hash, the indices of those that spiked
        -> per substep: current = sum of the rows of W of the inputs that spiked (no product with zeros)
           -> escape neurons, their hash noise -> spikes, eligibility factors Y [K, Q]
        -> V, the TD error of the previous decision, spike counts -> action
        -> one pass over W and e: W += lr * delta * e, e *= d^K; then e += Y rows of the inputs that spiked
        -> autoreset of e and the last spikes where the episode ended

Agents are independent, so with more than one torch thread the kernel runs them in parallel (numba
``prange``); the serial and parallel builds give the same bits. The noise is the same counter hash, bit
for bit, so the spikes are those of the torch step; sums are taken in another order and ``exp`` is a
polynomial within 2 ulp, so a probability can round to the other side of its noise value now and then:
the step is the torch step up to float rounding and such rare spikes (tests/test_fastpath.py), with the
same state, checkpoints and logs.

:meth:`FastStep.build` returns None (the agent keeps its torch step) unless: numba is installed, the
device is the CPU, the brain takes its fused feed-forward path with no homeostasis, sign flips or weight
bounds, the encoder codes fixed ranges without adaptation, angles or 2-D fields, there is no novelty
detector or TD surprise, and the dopamine is the TD error. ``run.kernels`` chooses (``auto``: this step
where it applies).
"""

from __future__ import annotations

import math
import operator
import types
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from spikegym.brains.jit import FAST as _FAST, GRID as _GRID, HALF_GRID as _HALF_GRID, numba
from spikegym.brains.random import UNIT, row_codes

from .decoders import push_pull

if numba is not None:
    from spikegym.brains.jit import exp_ as _exp_, hash24 as _hash24, lerp as _lerp

    def _step(obs, low, high, dim, centre, width, max_prob, sc1, sc2, rows, sensors, ties, sensor_rate, sensor_rate_w,
              w, e, decay, excite, bias, slope, mc1, mc2, y_alpha, y_beta, y_gamma, prob, spikes, last, rate, rate_w,
              critic_lo, critic_hi, v_low, v_span, reward, failure_reward, reward_scale, term, ended, learnable,
              value_prev, gamma, clip, lr, learn, r, delta, value, counts, motor_lo, motor_size, action, learnable_next):
        """One decision of every agent (agents in parallel: each touches only its own rows).

        Sensing: obs [B, D] clipped to low, high [D]; input ``i`` codes ``obs[:, dim[i]]`` with a Gaussian
        of centre[i], width[i] [P] scaled by max_prob; Bernoulli spikes sensors [K, B, P] from the hash of
        column words sc1, sc2 [B, P + G] (sensors, then tie breaks: ties [B, G]) and row words rows [K];
        sensor_rate [B, P] moves towards the mean spike.
        Acting: currents sum the rows of w [B, P, Q] of the inputs that spiked; escape neurons
        p = sigmoid(slope (z + excite + bias)) (excite [B, Q]; bias, slope [Q]) fire when the hash of
        mc1, mc2 [B, Q] lies below p: prob, spikes [B, K, Q]; last [B, Q]; rate [B, Q] (weights rate_w [Q]);
        counts [B, G] of the motor populations (motor_size columns each, from motor_lo).
        Deciding: action [B] (empty: continuous actions) is the population with the most spikes, ties broken
        by 0.5 ties.
        Learning: the internal reward r [B] is failure_reward where term [B] (else 0), or reward * reward_scale
        where failure_reward is NaN; value [B] from the critic columns [critic_lo, critic_hi); TD error
        delta [B] from r, term, learnable, value_prev [B] (clip < 0: none); if learn, w += lr delta e; then
        e <- decay e + sum over substeps of sensors x Y, Y = y_alpha s + (y_beta + y_gamma p) p ([K, Q] each).
        Autoreset: where ended [B], e and last are zeroed (the brain's fast state); learnable_next [B] = not ended.
        """
        n_b = obs.shape[0]
        n_k = rows.shape[0]
        n_p = dim.shape[0]
        n_g = ties.shape[1]
        n_q = w.shape[2]
        n_m = counts.shape[1]
        for b in numba.prange(n_b):
            # --- sensing
            thr = np.empty(n_p, np.float32)
            bits = np.empty(max(n_p, n_q), np.int32)
            for i in range(n_p):
                d = dim[i]
                x = min(max(obs[b, d], low[d]), high[d])
                u = (x - centre[i]) / width[i]
                thr[i] = np.float32(-0.5) * u * u
            _exp_(thr, bits)
            for i in range(n_p):  # a < thr <=> uniform < p
                thr[i] = math.ceil(thr[i] * max_prob * np.float32(_GRID)) - np.float32(_HALF_GRID)
            active = np.empty((n_k, n_p), np.int32)  # indices of the inputs that spiked, per substep
            n_active = np.zeros(n_k, np.int32)
            count = np.zeros(n_p, np.float32)
            for k in range(n_k):
                row = rows[k]
                spiked = sensors[k, b]
                for i in range(n_p):  # branch-free: vectorised
                    spiked[i] = np.float32(1.0) if _hash24(sc1[b, i], sc2[b, i], row) < thr[i] else np.float32(0.0)
                    count[i] += spiked[i]
                n = 0
                for i in range(n_p):  # compaction without a branch
                    active[k, n] = i
                    n += np.int32(spiked[i])
                n_active[k] = n
            for g in range(n_g):
                tie = _hash24(sc1[b, n_p + g], sc2[b, n_p + g], rows[0])
                ties[b, g] = np.float32(tie) * np.float32(UNIT) + np.float32(0.5)
            for i in range(n_p):
                sensor_rate[b, i] = _lerp(sensor_rate[b, i], count[i] / np.float32(n_k), sensor_rate_w)

            # --- acting: currents of the inputs that spiked, escape neurons, eligibility factors Y
            z = np.empty(n_q, np.float32)
            y = np.empty((n_k, n_q), np.float32)
            fired = np.zeros(n_q, np.float32)
            v = np.float32(0.0)
            for k in range(n_k):
                z[:] = 0.0
                for j in range(n_active[k]):
                    wr = w[b, active[k, j]]
                    for q in range(n_q):
                        z[q] += wr[q]
                for q in range(n_q):
                    z[q] = -slope[q] * (z[q] + excite[b, q] + bias[q])
                _exp_(z, bits)
                row = rows[k]
                for q in range(n_q):
                    p = np.float32(1.0) / (np.float32(1.0) + z[q])
                    u = np.float32(_hash24(mc1[b, q], mc2[b, q], row)) * np.float32(UNIT) + np.float32(0.5)
                    s = np.float32(1.0) if u < p else np.float32(0.0)
                    prob[b, k, q] = p
                    spikes[b, k, q] = s
                    y[k, q] = (y_beta[k, q] + p * y_gamma[k, q]) * p + s * y_alpha[k, q]
                    fired[q] += s
                for q in range(critic_lo, critic_hi):
                    v += prob[b, k, q]
            for q in range(n_q):
                last[b, q] = spikes[b, n_k - 1, q]
                rate[b, q] = _lerp(rate[b, q], fired[q] / np.float32(n_k), rate_w[q])
            for g in range(n_m):
                c = np.float32(0.0)
                for q in range(motor_lo + g * motor_size, motor_lo + (g + 1) * motor_size):
                    c += fired[q]
                counts[b, g] = c
            if action.shape[0]:
                best = 0
                for g in range(n_m):
                    if counts[b, g] + np.float32(0.5) * ties[b, g] > counts[b, best] + np.float32(0.5) * ties[b, best]:
                        best = g
                action[b] = best
            learnable_next[b] = not ended[b]

            # --- the dopamine about the previous decision, then this decision's events enter e
            v = v / np.float32(n_k * (critic_hi - critic_lo)) * v_span + v_low
            if failure_reward == failure_reward:  # not NaN
                r[b] = failure_reward if term[b] else np.float32(0.0)
            else:
                r[b] = reward[b] * reward_scale
            dop = np.float32(0.0) if term[b] else gamma * v
            dop = dop + r[b] - value_prev[b]
            if clip >= 0:
                dop = min(max(dop, -clip), clip)
            if not learnable[b]:
                dop = np.float32(0.0)
            delta[b] = dop
            value[b] = v
            gain = np.empty(n_q, np.float32)
            for q in range(n_q):
                gain[q] = dop * lr[q] if learn else np.float32(0.0)
            wb, eb = w[b], e[b]
            for i in range(n_p):
                for q in range(n_q):
                    wb[i, q] += gain[q] * eb[i, q]
                    eb[i, q] *= decay[q]
            for k in range(n_k):
                for j in range(n_active[k]):
                    er = eb[active[k, j]]
                    for q in range(n_q):
                        er[q] += y[k, q]
            if ended[b]:
                eb[:, :] = 0.0
                last[b, :] = 0.0


def _renamed(fn, name: str):
    """``fn`` under another name: numba's cache files are named after the function, and the serial and the
    parallel build of one function would otherwise overwrite each other's."""
    code = fn.__code__.replace(co_name=name, co_qualname=name)
    return types.FunctionType(code, fn.__globals__, name, fn.__defaults__, fn.__closure__)


if numba is not None:
    # one thread: a plain loop (no thread pool, nothing spinning between steps); more: agents in parallel
    _step_serial = numba.njit(cache=True, **_FAST)(_renamed(_step, "_step_serial"))
    _step_parallel = numba.njit(cache=True, parallel=True, **_FAST)(_renamed(_step, "_step_parallel"))


def available() -> bool:
    """True when numba can be imported (the kernels compile on first use, then come from numba's cache)."""
    return numba is not None


class FastStep:
    """:meth:`Agent.step` of a supported agent as one kernel call (see the module docstring)."""

    @classmethod
    def build(cls, agent) -> Optional["FastStep"]:
        """The fast step of ``agent``, or None where it does not apply (the reasons are in the module docstring)."""
        cfg, brain, encoder = agent.cfg, agent.brain, agent.encoder
        plan = brain._ff
        if not available() or agent.device.type != "cpu" or plan is None or sorted(plan.posts) != ["critic", "motor"]:
            return None
        if any(pop.homeostasis is not None for pop in brain.pops.values()):
            return None
        if encoder.adaptation is not None or not encoder._plain_code:
            return None
        n = cfg.novelty
        if agent.novelty is not None or n.surprise_gain > 0 or n.surprise_shrink > 0 or cfg.dopamine.mode != "td":
            return None
        if plan.consts(brain, agent.K, agent.device)["sign"] is not None or plan.bounded or plan.soft:
            return None
        if not {name for name, _ in brain._reset_plan()} <= plan._reset_names:  # the kernel resets e and last only
            return None
        return cls(agent)

    def __init__(self, agent):
        self.agent = agent
        brain, k = agent.brain, agent.K
        plan = brain._ff
        c = plan.consts(brain, k, agent.device)
        q = plan.q
        f32 = lambda t: np.ascontiguousarray(_np(torch.as_tensor(t, dtype=torch.float32).expand(q)))
        bias, slope = c["affine"] if c["affine"] is not None else (0.0, 1.0)
        self.bias, self.slope, self.lr, self.rate_w = f32(bias), f32(slope), f32(c["lr"]), f32(c["rate_w"])
        self.y = tuple(np.ascontiguousarray(_np(t)) for t in c["y"])  # [K, Q] each
        decay = torch.full((q,), c["beta"], dtype=torch.float32)  # the eligibility's decay over a window
        for columns, factor in c["fixes"]:
            decay[columns] *= factor
        self.decay = _np(decay)
        self.sensor_rate_w = np.float32(brain._rate_weight(brain.pops["sensors"], k))
        critic, motor = plan.cols["critic"], plan.cols["motor"]
        self.critic = (critic.start, critic.stop)
        self.motor_lo, self.motor_size = motor.start, agent.cfg.brain.motor_size
        d = agent.cfg.dopamine
        self.gamma = np.float32(d.gamma)
        self.clip = np.float32(-1.0 if d.clip is None else d.clip)
        self.v_low, self.v_span = np.float32(agent.value_low), np.float32(agent.value_high - agent.value_low)
        self.max_prob = np.float32(agent.encoder.max_prob)
        env = agent.cfg.env
        self.failure_reward = np.float32(np.nan if env.failure_reward is None else env.failure_reward)
        self.reward_scale = np.float32(env.reward_scale)
        self._zeros = torch.zeros(agent.B)  # no curiosity: no intrinsic reward, no novelty
        self._key, self._views, self._versions = None, None, None
        self._threads = None
        # buffers whose replacement means new views: the fused ones (see Brain._FusedPlan), rates and keys
        self._watched = [n for names in plan.names.values() for n in names] + ["rate__sensors", "keys"]
        self._row_block = (0, None)

    def step(self, obs, reward, terminated, truncated, *, learn: bool = True) -> np.ndarray:
        """What :meth:`Agent.step` does, for a supported agent; same arguments, same return."""
        agent = self.agent
        brain, encoder, plan = agent.brain, agent.encoder, agent.brain._ff
        b, k, g = agent.B, agent.K, agent.n_groups
        obs = np.ascontiguousarray(obs, dtype=np.float32)
        if obs.ndim == 1:
            obs = obs[:, None]
        term = np.asarray(terminated, dtype=bool)
        ended = term | np.asarray(truncated, dtype=bool)
        reward = np.asarray(reward, dtype=np.float32)

        threads = min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)  # as many threads as torch uses
        kernel = _step_serial if threads == 1 else _step_parallel
        if threads > 1 and threads != self._threads:
            numba.set_num_threads(threads)
            self._threads = threads
        f, sense_words, motor_words, dim, code = self._state()
        sensors = torch.empty(k, b, dim.shape[0])  # fresh every step: agent.last keeps them
        ties = np.empty((b, g if agent.discrete else 0), dtype=np.float32)
        prob, spikes = torch.empty(b, k, plan.q), torch.empty(b, k, plan.q)
        r, delta, value = torch.empty(b), torch.empty(b), torch.empty(b)
        counts = torch.empty(b, g)
        action = np.empty(b if agent.discrete else 0, dtype=np.int64)
        state = agent.state
        learnable, learnable_next = state["learnable"], torch.empty(b, dtype=torch.bool)
        kernel(obs, *code, self.max_prob, sense_words[0], sense_words[1], self._rows(brain.step_count(), k),
              _np(sensors), ties, f["sensor_rate"], self.sensor_rate_w, f["w"], f["e"], self.decay, f["excite"],
              self.bias, self.slope, motor_words[0], motor_words[1], *self.y, _np(prob), _np(spikes), f["last"],
              f["rate"], self.rate_w, *self.critic, self.v_low, self.v_span, reward, self.failure_reward,
              self.reward_scale, term, ended, _np(learnable), _np(state["value_prev"]), self.gamma, self.clip, self.lr,
              learn, _np(r), _np(delta), _np(value), _np(counts), self.motor_lo, self.motor_size, action,
              _np(learnable_next))
        out = plan.finish(brain, spikes, prob)

        state["learnable"] = learnable_next
        state["value_prev"] = value
        state["steps"] += 1

        none = self._zeros
        agent.last = {"delta": delta, "value": value, "intrinsic": none, "novelty": none, "extrinsic": r,
                      "learnable": learnable, "motor": out["motor"], "sensors": sensors, "ach_gain": None}
        if agent.discrete:
            return action
        return push_pull(counts, k * self.motor_size, agent.act_low, agent.act_high,
                         gain=agent.cfg.brain.action_gain).numpy()

    def _state(self) -> tuple:
        """numpy views of the tensors the kernel reads and changes, made again when one of them was replaced
        or changed from outside (``load_state_dict``, ``.to()``, new observation ranges or noise keys)."""
        agent = self.agent
        brain, encoder, plan = agent.brain, agent.encoder, agent.brain._ff
        bufs, enc = brain._buffers, encoder._buffers
        key = [bufs[name] for name in self._watched] + [enc["field_low"], enc["field_high"]]
        versions = (bufs["keys"]._version, enc["field_low"]._version, enc["field_high"]._version)
        if self._key is not None and versions == self._versions and all(map(operator.is_, key, self._key)):
            return self._views
        f = plan.tensors(brain)
        dim, centre, width = encoder.code_constants()
        sense = agent._noise.columns(brain.keys, agent._sense_blocks(dim.shape[0]))
        motor = brain._noise.columns(brain.keys, plan.blocks)
        arrays = {name: _np(f[name]) for name in ("w", "e", "excite", "last", "rate")}
        arrays["sensor_rate"] = _np(brain.rate("sensors"))
        code = (_np(encoder.field_low), _np(encoder.field_high), _np(dim), _np(centre), _np(width))
        self._views = (arrays, _np(sense), _np(motor), dim, code)
        self._key = [bufs[name] for name in self._watched] + [enc["field_low"], enc["field_high"]]
        self._versions = versions
        return self._views

    def _rows(self, counter: int, k: int) -> np.ndarray:
        """Row words ``[K]`` of steps ``counter .. counter + K - 1`` (from a cached block of 4096 steps)."""
        first, words = self._row_block
        if words is None or counter < first or counter + k > first + words.shape[0]:
            first, words = counter, row_codes(counter, max(4096, k)).numpy()
            self._row_block = (first, words)
        return words[counter - first:counter - first + k]


def _np(t: Tensor) -> np.ndarray:
    return t.detach().numpy()
