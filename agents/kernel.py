"""The agent step as one numba kernel on the CPU: the reference step (:mod:`.step`), agent by agent.

At ``B = 16`` the torch reference is hundreds of small operations per environment step, and its large ones pass
over ``W`` and ``e`` several times. The kernel runs the whole step of one agent while its ``W [P, Q]`` and
``e [P, Q]`` sit in the core's cache, agents in parallel (``prange``) when numba has more than one thread::

    obs -> fields -> input spikes [K, P] from the counter hash, and the indices of those that spiked
        -> per substep: current = sum of the rows of W of the inputs that spiked -> escape neurons, their noise
           -> spikes, eligibility factors Y [K, Q]
        -> V, novelty, the TD error of the previous decision, TD surprise, spike counts -> action
        -> one pass over W and e: W <- bound(W + lr gain delta e), e <- d^K e; then e += Y rows of the inputs
           that spiked; rates and homeostasis; autoreset of the fast state where an episode ended

The populations ``motor`` and ``critic`` sit side by side as columns of one ``[B, P, Q]`` weight tensor (their
state tensors become views into it: :meth:`KernelBackend.bind`). The noise is the same counter hash, bit for
bit, so the spikes are the reference's; sums run in another order and ``exp`` is a polynomial within 2 ulp, so
a probability can round to the other side of its noise value now and then. tests/test_equivalence.py holds
kernel and reference in lockstep for every shipped config.

:func:`unsupported` says in one line why the kernel cannot run an agent (None when it can).
"""

from __future__ import annotations

import math
import types
from typing import NamedTuple, Optional

import numpy as np
import torch
from torch import Tensor

from spikegym.brains.jit import FAST, GRID, HALF_GRID, numba
from spikegym.brains.random import UNIT, column_codes, row_codes
from spikegym.brains.step import rate_weight

from .decoders import push_pull
from .kernel_sense import encoder_consts, encoder_work_size, neuron_adaptation
from .novelty import SimHashParams, bonus_weight
from .spec import SENSOR_STREAM, TIE_STREAM, AgentSpec
from .state import AgentState
from .step import StepInfo

if numba is not None:
    from spikegym.brains.jit import exp_, hash24, lerp

    from .kernel_sense import encode_agent, novelty_neurons, simhash_novelty


def unsupported(spec: AgentSpec) -> Optional[str]:
    """Why the kernel cannot run these agents, in one line; None when it can."""
    brain = spec.brain
    if numba is None:
        return "numba is not installed"
    if spec.device.type != "cpu":
        return f"the kernel runs on the CPU, not {spec.device.type}"
    for name in ("motor", "critic"):
        pop = brain.pops[name]
        if pop.model != "escape" or not pop.memoryless:
            return f"population {name!r}: the kernel runs memoryless escape neurons (not {pop.model}, tau_mem)"
        if pop.homeostasis is not None and pop.homeostasis.scaling:
            return f"population {name!r}: synaptic scaling is not in the kernel"
    for proj in brain.projections:
        if proj.pre != "sensors":
            return f"projection {proj.name}: the kernel takes projections from the sensors only (lateral inhibition)"
        if proj.stp is not None or proj.masked or proj.soft_bound or proj.sign != 1:
            return f"projection {proj.name}: short-term plasticity, masks, soft bounds and signs are not in the kernel"
    return None


class Consts(NamedTuple):
    """What the kernel reads and never changes. ``P`` inputs, ``Q`` columns (motor then critic), ``G`` groups."""

    enc_work: int          # length of encode_agent's scratch
    punish: float          # sensitize the senses where the internal reward <= -punish (inf: never)
    sense_c1: np.ndarray   # i32 [B, P + G] hash column words of the sensors, then the tie breaks
    sense_c2: np.ndarray
    neuron_c1: np.ndarray  # i32 [B, Q] hash column words of the motor and critic neurons
    neuron_c2: np.ndarray
    bias: np.ndarray       # f32 [Q] escape neurons: p = sigmoid(slope (z + excite + bias))
    slope: np.ndarray      # f32 [Q]
    critic: np.ndarray     # bool [Q]: critic rule (y = c p (1 - p)) instead of node perturbation (y = s - p)
    critic_scale: np.ndarray  # f32 [Q]
    lr: np.ndarray         # f32 [Q]
    ahead: np.ndarray      # f32 [K, Q]: d^(K-1-k), the eligibility decay still ahead of substep k
    decay_k: np.ndarray    # f32 [Q]: d^K
    w_min: np.ndarray      # f32 [Q] (-inf: none)
    w_max: np.ndarray      # f32 [Q] (inf: none)
    rate_w: np.ndarray     # f32 [Q] weight of a window in the running rate
    rate_in_w: float
    homeo_eta: np.ndarray  # f32 [Q]: eta * K / target (0: no threshold homeostasis)
    homeo_target: np.ndarray  # f32 [Q]
    critic_lo: int
    critic_hi: int
    motor_size: int
    n_groups: int
    discrete: bool
    v_low: float
    v_span: float
    gamma: float
    clip: float            # < 0: none
    baseline: bool         # dopamine = r - running mean (else the TD error)
    baseline_decay: float
    failure_reward: float  # NaN: the scaled reward instead of the failure signal
    reward_scale: float
    novelty: int           # 0 none, 1 SimHash counts, 2 habituating novelty neurons
    projection: np.ndarray  # f32 [P, k] (hash bits) or [P, M] (novelty neurons)
    bit_weights: np.ndarray  # i64 [k]
    table_size: int
    active: int            # novelty neurons in a pattern's tag
    nov_adapt: float       # their habituation: decay_adapt, decay_recover, strength, divisive
    nov_recover: float
    nov_strength: float
    nov_divisive: bool
    beta: float
    ach_gain: float
    surprise: bool
    surprise_mode: int     # 0 |delta|, 1 disappointment, 2 punishment
    surprise_fast: float   # 1 / fast steps
    surprise_slow: float
    surprise_gain: float
    surprise_shrink: float
    motor_lo: int
    motor_hi: int


class Arrays(NamedTuple):
    """The state the kernel changes in place (numpy views of the agents' tensors)."""

    w: np.ndarray          # f32 [B, P, Q]
    e: np.ndarray          # f32 [B, P, Q]
    excite: np.ndarray     # f32 [B, Q]
    last: np.ndarray       # f32 [B, Q]
    rate: np.ndarray       # f32 [B, Q]
    rate_in: np.ndarray    # f32 [B, P]
    rn_count: np.ndarray   # i64 [B] running normalisation
    rn_mean: np.ndarray    # f32 [B, D]
    rn_var: np.ndarray     # f32 [B, D]
    level: np.ndarray      # f32 [B, F] sensory adaptation
    last_input: np.ndarray  # f32 [B, F]
    counts: np.ndarray     # i32 [B, T] novelty hash counts (T = 0: none)
    nov_level: np.ndarray  # f32 [B, M] novelty neurons' habituation (M = 0: none)
    nov_last: np.ndarray   # f32 [B, M]
    value_prev: np.ndarray  # f32 [B]
    learnable: np.ndarray  # bool [B]
    reward_mean: np.ndarray  # f32 [B]
    td_fast: np.ndarray    # f32 [B]
    td_slow: np.ndarray    # f32 [B]


class Outs(NamedTuple):
    """What one call writes (fresh every step)."""

    sensors: np.ndarray    # f32 [K, B, P]
    prob: np.ndarray       # f32 [B, K, Q]
    spikes: np.ndarray     # f32 [B, K, Q]
    r: np.ndarray          # f32 [B] internal reward
    delta: np.ndarray      # f32 [B]
    value: np.ndarray      # f32 [B]
    intrinsic: np.ndarray  # f32 [B]
    novelty: np.ndarray    # f32 [B]
    gain: np.ndarray       # f32 [B] plasticity gain
    surprise: np.ndarray   # f32 [B]
    counts: np.ndarray     # f32 [B, G] spikes per motor population
    action: np.ndarray     # i64 [B] (discrete)
    learnable: np.ndarray  # bool [B]: this step's dopamine was applied


def _agent_step(b, obs, reward, term, ended, learn, rows, bonus_w, c, enc, s, o):
    """One decision of agent ``b`` (it touches only its own rows): see the module docstring."""
    n_k, n_p = rows.shape[0], s.rate_in.shape[1]
    n_q, n_g = c.bias.shape[0], c.n_groups

    if c.failure_reward == c.failure_reward:  # not NaN: the failure signal
        r = c.failure_reward if term[b] else np.float32(0.0)
    else:
        r = reward[b] * c.reward_scale

    # --- sensing: population code with adaptation -> Bernoulli thresholds -> spikes, indices of those that spiked
    prob_in = np.empty(n_p, np.float32)
    thr = np.empty(n_p, np.float32)
    bits = np.empty(max(n_p, n_q), np.int32)
    encode_agent(obs[b], enc, s.rn_count[b:b + 1], s.rn_mean[b], s.rn_var[b], s.level[b], s.last_input[b],
                 r <= -c.punish, True, prob_in, np.empty(c.enc_work, np.float32))
    for i in range(n_p):
        thr[i] = math.ceil(prob_in[i] * np.float32(GRID)) - np.float32(HALF_GRID)  # a < thr <=> uniform < p
    active = np.empty((n_k, n_p), np.int32)
    n_active = np.zeros(n_k, np.int32)
    fired_in = np.zeros(n_p, np.float32)
    for k in range(n_k):
        row, spiked = rows[k], o.sensors[k, b]
        for i in range(n_p):  # branch-free: vectorised
            spiked[i] = np.float32(1.0) if hash24(c.sense_c1[b, i], c.sense_c2[b, i], row) < thr[i] else np.float32(0.0)
            fired_in[i] += spiked[i]
        n = 0
        for i in range(n_p):  # compaction without a branch
            active[k, n] = i
            n += np.int32(spiked[i])
        n_active[k] = n
    for i in range(n_p):
        s.rate_in[b, i] = lerp(s.rate_in[b, i], fired_in[i] / np.float32(n_k), c.rate_in_w)

    # --- acting: currents of the inputs that spiked, escape neurons, eligibility factors Y
    z = np.empty(n_q, np.float32)
    y = np.empty((n_k, n_q), np.float32)
    fired = np.zeros(n_q, np.float32)
    v = np.float32(0.0)
    for k in range(n_k):
        z[:] = 0.0
        for j in range(n_active[k]):
            wr = s.w[b, active[k, j]]
            for q in range(n_q):
                z[q] += wr[q]
        for q in range(n_q):
            z[q] = -c.slope[q] * (z[q] + s.excite[b, q] + c.bias[q])
        exp_(z, bits)
        row = rows[k]
        for q in range(n_q):
            p = np.float32(1.0) / (np.float32(1.0) + z[q])
            u = np.float32(hash24(c.neuron_c1[b, q], c.neuron_c2[b, q], row)) * np.float32(UNIT) + np.float32(0.5)
            sp = np.float32(1.0) if u < p else np.float32(0.0)
            o.prob[b, k, q] = p
            o.spikes[b, k, q] = sp
            y_np = sp - p
            y_c = c.critic_scale[q] * p * (np.float32(1.0) - p)
            y[k, q] = (y_c if c.critic[q] else y_np) * c.ahead[k, q]
            fired[q] += sp
        for q in range(c.critic_lo, c.critic_hi):
            v += o.prob[b, k, q]
    for q in range(n_q):
        s.last[b, q] = o.spikes[b, n_k - 1, q]
        s.rate[b, q] = lerp(s.rate[b, q], fired[q] / np.float32(n_k), c.rate_w[q])
    for g in range(n_g):
        cnt = np.float32(0.0)
        for q in range(c.motor_lo + g * c.motor_size, c.motor_lo + (g + 1) * c.motor_size):
            cnt += fired[q]
        o.counts[b, g] = cnt
    if c.discrete:
        best, best_score = 0, np.float32(-1.0)
        for g in range(n_g):
            tie = np.float32(hash24(c.sense_c1[b, n_p + g], c.sense_c2[b, n_p + g], rows[0])) * np.float32(UNIT)
            score = o.counts[b, g] + np.float32(0.5) * (tie + np.float32(0.5))
            if score > best_score:
                best, best_score = g, score
        o.action[b] = best

    # --- the dopamine about the previous decision
    v = v / np.float32(n_k * (c.critic_hi - c.critic_lo)) * c.v_span + c.v_low
    novelty, intrinsic = np.float32(0.0), np.float32(0.0)
    if c.novelty == 1 and learn:  # curiosity: the pattern's hash bucket is counted
        novelty = simhash_novelty(prob_in, c.projection, c.bit_weights, c.table_size, s.counts[b])
    elif c.novelty == 2 and learn:  # curiosity: the tagged novelty neurons habituate
        novelty = novelty_neurons(prob_in, c.projection, c.active, c.nov_adapt, c.nov_recover, c.nov_strength,
                                  c.nov_divisive, s.nov_level[b], s.nov_last[b],
                                  np.empty(c.projection.shape[1], np.float32))
    intrinsic = c.beta * novelty * bonus_w
    learnable = s.learnable[b]
    if c.baseline:
        dop = r + intrinsic - s.reward_mean[b]
    else:
        dop = (np.float32(0.0) if term[b] else c.gamma * v) + (r + intrinsic) - s.value_prev[b]
    if c.clip >= 0:
        dop = min(max(dop, -c.clip), c.clip)
    if not learnable:
        dop = np.float32(0.0)
    gain = np.float32(1.0) + c.ach_gain * novelty if c.novelty > 0 else np.float32(1.0)
    surprise = np.float32(0.0)
    if c.surprise and learn:
        if c.surprise_mode == 0:
            err = abs(dop)
        elif c.surprise_mode == 1:
            err = max(-dop, np.float32(0.0))
        else:
            err = max(-r, np.float32(0.0))
        fast, slow = s.td_fast[b], s.td_slow[b]
        if slow == 0:
            fast, slow = err, err
        else:
            fast = lerp(fast, err, c.surprise_fast)
            slow = lerp(slow, err, c.surprise_slow)
        ratio = fast / max(slow, np.float32(1e-12)) if slow > 0 else np.float32(1.0)
        surprise = min(max(ratio - np.float32(1.0), np.float32(0.0)), np.float32(4.0))
        if learnable:
            s.td_fast[b], s.td_slow[b] = fast, slow
        gain += c.surprise_gain * surprise
    if c.baseline and learn and learnable:
        s.reward_mean[b] = c.baseline_decay * s.reward_mean[b] + (np.float32(1.0) - c.baseline_decay) * r
    o.r[b], o.delta[b], o.value[b], o.intrinsic[b], o.novelty[b] = r, dop, v, intrinsic, novelty
    o.gain[b], o.surprise[b], o.learnable[b] = gain, surprise, learnable

    # --- learning: W <- bound(W + lr gain delta e); e <- d^K e + this window's events
    step_lr = np.empty(n_q, np.float32)
    for q in range(n_q):
        step_lr[q] = dop * gain * c.lr[q] if learn else np.float32(0.0)
    shrink = np.float32(1.0)
    if c.surprise_shrink > 0 and learn:
        shrink = max(np.float32(1.0) - c.surprise_shrink * surprise, np.float32(0.0))
    wb, eb = s.w[b], s.e[b]
    for i in range(n_p):
        for q in range(n_q):
            wq = min(max(wb[i, q] + step_lr[q] * eb[i, q], c.w_min[q]), c.w_max[q])
            wb[i, q] = wq * shrink if c.motor_lo <= q < c.motor_hi else wq
            eb[i, q] *= c.decay_k[q]
    for k in range(n_k):
        for j in range(n_active[k]):
            er = eb[active[k, j]]
            for q in range(n_q):
                er[q] += y[k, q]
    if learn:  # threshold homeostasis, once per window
        for q in range(n_q):
            s.excite[b, q] += c.homeo_eta[q] * (c.homeo_target[q] - s.rate[b, q])

    # --- autoreset: the next env step only resets this agent, so forget this decision
    if ended[b]:
        eb[:, :] = 0.0
        s.last[b, :] = 0.0
        if enc.adapt:
            s.level[b, :] = 0.0
            s.last_input[b, :] = 0.0
    s.learnable[b] = not ended[b]
    s.value_prev[b] = v


def _step(obs, reward, term, ended, learn, rows, bonus_w, c, enc, s, o):
    """One decision of every agent (in parallel in the parallel build: agents are independent).

    ``c``: :class:`Consts`, ``enc``: :class:`~spikegym.agents.kernel_sense.EncoderConsts` (apart: numba's
    parallel loops take a flat tuple of arrays, not a nested one), ``s``: :class:`Arrays`, ``o``: :class:`Outs`.
    """
    for b in numba.prange(obs.shape[0]):
        _agent_step(b, obs, reward, term, ended, learn, rows, bonus_w, c, enc, s, o)


def _renamed(fn, name: str):
    """``fn`` under another name: numba's cache files are named after the function, and the serial and the
    parallel build of one function would otherwise overwrite each other's."""
    code = fn.__code__.replace(co_name=name, co_qualname=name)
    return types.FunctionType(code, fn.__globals__, name, fn.__defaults__, fn.__closure__)


if numba is not None:
    # numba's parallel loops lose writes into arrays held by a tuple argument: the body is a function of its own
    _agent_step = numba.njit(cache=True, **FAST)(_agent_step)
    # one thread: a plain loop (no thread pool, nothing spinning between steps); more: agents in parallel
    _step_serial = numba.njit(cache=True, **FAST)(_renamed(_step, "_step_serial"))
    _step_parallel = numba.njit(cache=True, parallel=True, **FAST)(_renamed(_step, "_step_parallel"))


def _np(t: Tensor) -> np.ndarray:
    return t.detach().numpy()


def _f32(values) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(values, dtype=np.float32))


class KernelBackend:
    """:func:`~spikegym.agents.step.agent_step` of a supported agent as one kernel call."""

    name = "kernel"

    def __init__(self, spec: AgentSpec):
        reason = unsupported(spec)
        if reason is not None:
            raise ValueError(f"brain.engine 'kernel' cannot run this agent: {reason}")
        self.spec = spec
        self._bound: Optional[AgentState] = None
        self._threads = None
        self._row_block = (0, None)

    # ---------------------------------------------------------------- binding the state

    def bind(self, state: AgentState) -> AgentState:
        """The same state with its motor and critic tensors as views of fused ``[B, ., Q]`` storage
        (values kept), and the kernel's constants and views made for it. Cheap when ``state`` is the one
        the last call returned."""
        if state is self._bound:
            return state
        bs = state.brain
        posts = ("motor", "critic")
        names = [f"sensors->{p}" for p in posts]
        fused = {}

        def fuse(parts: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
            t = torch.cat(parts, dim=-1).contiguous()
            views, off = [], 0
            for p in parts:
                views.append(t.narrow(-1, off, p.shape[-1]))
                off += p.shape[-1]
            return t, views

        fused["w"], (wm, wc) = fuse([bs.w[n] for n in names])
        fused["e"], (em, ec) = fuse([bs.e[n] for n in names])
        brain = bs._replace(w={**bs.w, names[0]: wm, names[1]: wc}, e={**bs.e, names[0]: em, names[1]: ec})
        for kind in ("excite", "last", "rate"):
            fused[kind], views = fuse([getattr(bs, kind)[p] for p in posts])
            brain = brain._replace(**{kind: {**getattr(brain, kind), **dict(zip(posts, views))}})
        # the kernel changes these in place: copies of their own (a state handed in stays as it was)
        own = lambda t: t.clone().contiguous()  # noqa: E731
        state = state._replace(brain=brain, critic=state.critic._replace(**{k: own(v) for k, v in state.critic._asdict().items()}),
                               encoder=state.encoder._replace(**{k: own(v) for k, v in state.encoder._asdict().items()}),
                               novelty={k: own(v) for k, v in state.novelty.items()}, steps=own(state.steps))
        brain = state.brain._replace(counter=state.brain.counter.clone(), windows=state.brain.windows.clone())
        state = state._replace(brain=brain)
        n_b = bs.keys.shape[0]
        counts = state.novelty.get("counts", torch.zeros(n_b, 0, dtype=torch.int32))
        nov_level = state.novelty.get("level", torch.zeros(n_b, 0))
        nov_last = state.novelty.get("last_input", torch.zeros(n_b, 0))
        cr, en = state.critic, state.encoder
        self.arrays = Arrays(*(_np(fused[k]) for k in ("w", "e", "excite", "last", "rate")),
                             _np(brain.rate["sensors"]), _np(en.rn_count), _np(en.rn_mean), _np(en.rn_var),
                             _np(en.level), _np(en.last_input), _np(counts), _np(nov_level), _np(nov_last),
                             _np(cr.value_prev), _np(cr.learnable), _np(cr.reward_mean), _np(cr.td_fast),
                             _np(cr.td_slow))
        self.consts = self._consts(state)
        self._fused = fused
        self._bound = state
        return state

    def _consts(self, state: AgentState) -> Consts:
        spec, cfg = self.spec, self.spec.cfg
        brain, enc, k = spec.brain, spec.encoder, spec.K
        keys = state.brain.keys
        n_in = enc.n_out
        g = spec.n_groups if spec.discrete else 0
        sense = torch.cat([column_codes(keys, n_in, SENSOR_STREAM)] +
                          ([column_codes(keys, g, TIE_STREAM)] if g else []), dim=2)
        neuron = torch.cat([column_codes(keys, brain.pops[p].size, brain.stream[p]) for p in ("motor", "critic")], dim=2)
        cols = {}
        for p in ("motor", "critic"):
            proj, pop = brain.projs[f"sensors->{p}"], brain.pops[p]
            n = pop.size
            hp = pop.homeostasis
            eta = hp.eta * k / max(hp.target_rate, 1e-6) if hp is not None and hp.threshold else 0.0
            cols[p] = dict(bias=[pop.escape.bias] * n, slope=[pop.escape.slope] * n,
                           critic=[proj.rule == "critic"] * n, critic_scale=[proj.critic_scale] * n, lr=[proj.lr] * n,
                           d=[proj.trace_decay] * n, w_min=[-math.inf if proj.w_min is None else proj.w_min] * n,
                           w_max=[math.inf if proj.w_max is None else proj.w_max] * n,
                           rate_w=[rate_weight(brain, p, k)] * n, eta=[eta] * n,
                           target=[hp.target_rate if hp is not None else 0.0] * n)
        col = lambda key: [v for p in ("motor", "critic") for v in cols[p][key]]  # noqa: E731
        d = np.asarray(col("d"), dtype=np.float64)
        ahead = d[None, :] ** np.arange(k - 1, -1, -1, dtype=np.float64)[:, None]
        m, c_ = brain.pops["motor"].size, brain.pops["critic"].size
        dop = cfg.dopamine
        hashing = isinstance(spec.novelty, SimHashParams)
        env = cfg.env
        enc_consts = encoder_consts(enc, k)
        a = cfg.encoder.adaptation
        nov = spec.novelty
        if nov is None or hashing:
            nov_adapt = (np.float32(1.0), np.float32(1.0), np.float32(0.0), True)
        else:
            nov_adapt = neuron_adaptation(nov.adaptation, nov.dt)
        self.enc = enc_consts
        return Consts(
            enc_work=encoder_work_size(enc_consts),
            punish=np.float32(a.punishment_threshold if a.enabled and a.sensitize_on_punishment else math.inf),
            sense_c1=_np(sense[0]).copy(), sense_c2=_np(sense[1]).copy(),
            neuron_c1=_np(neuron[0]).copy(), neuron_c2=_np(neuron[1]).copy(),
            bias=_f32(col("bias")), slope=_f32(col("slope")), critic=np.asarray(col("critic"), dtype=np.bool_),
            critic_scale=_f32(col("critic_scale")), lr=_f32(col("lr")), ahead=_f32(ahead), decay_k=_f32(d ** k),
            w_min=_f32(col("w_min")), w_max=_f32(col("w_max")), rate_w=_f32(col("rate_w")),
            rate_in_w=np.float32(rate_weight(brain, "sensors", k)), homeo_eta=_f32(col("eta")),
            homeo_target=_f32(col("target")), critic_lo=m, critic_hi=m + c_, motor_size=spec.motor_size,
            n_groups=spec.n_groups, discrete=spec.discrete, v_low=np.float32(spec.value_low),
            v_span=np.float32(spec.value_high - spec.value_low), gamma=np.float32(dop.gamma),
            clip=np.float32(-1.0 if dop.clip is None else dop.clip), baseline=dop.mode == "baseline",
            baseline_decay=np.float32(dop.baseline_decay),
            failure_reward=np.float32(np.nan if env.failure_reward is None else env.failure_reward),
            reward_scale=np.float32(env.reward_scale),
            novelty=0 if spec.novelty is None else (1 if hashing else 2),
            projection=np.ascontiguousarray(_np(spec.novelty.projection), dtype=np.float32) if spec.novelty is not None
            else np.zeros((n_in, 0), np.float32),
            bit_weights=_np(spec.novelty.bit_weights).astype(np.int64) if hashing else np.zeros(0, np.int64),
            table_size=spec.novelty.table_size if hashing else 1,
            active=0 if nov is None or hashing else nov.active, nov_adapt=nov_adapt[0], nov_recover=nov_adapt[1],
            nov_strength=nov_adapt[2], nov_divisive=nov_adapt[3], beta=np.float32(cfg.novelty.beta),
            ach_gain=np.float32(cfg.novelty.ach_gain), surprise=spec.surprise,
            surprise_mode={"absolute": 0, "negative": 1, "punishment": 2}[cfg.novelty.surprise_errors],
            surprise_fast=np.float32(1.0 / cfg.novelty.surprise_fast_steps),
            surprise_slow=np.float32(1.0 / cfg.novelty.surprise_slow_steps),
            surprise_gain=np.float32(cfg.novelty.surprise_gain), surprise_shrink=np.float32(cfg.novelty.surprise_shrink),
            motor_lo=0, motor_hi=m)

    # ---------------------------------------------------------------- the step

    def step(self, state: AgentState, obs, reward, terminated, truncated, *, learn: bool = True
             ) -> tuple[Tensor, AgentState, StepInfo]:
        """What :func:`~spikegym.agents.step.agent_step` does, for a supported agent; same arguments and
        return. The state is updated in place and returned (the input state is consumed)."""
        spec = self.spec
        state = self.bind(state)
        b, k, g = state.brain.keys.shape[0], spec.K, spec.n_groups
        obs = np.ascontiguousarray(np.asarray(obs, dtype=np.float32))
        if obs.ndim == 1:
            obs = obs[:, None]
        term = np.ascontiguousarray(np.asarray(terminated, dtype=bool))
        ended = term | np.asarray(truncated, dtype=bool)
        reward = np.ascontiguousarray(np.asarray(reward, dtype=np.float32))
        q = self.consts.bias.shape[0]
        sensors, prob, spikes = torch.empty(k, b, spec.encoder.n_out), torch.empty(b, k, q), torch.empty(b, k, q)
        vec = [torch.empty(b) for _ in range(7)]
        counts = torch.empty(b, g)
        action = np.zeros(b, dtype=np.int64)
        learnable = torch.empty(b, dtype=torch.bool)
        outs = Outs(_np(sensors), _np(prob), _np(spikes), *(_np(t) for t in vec), _np(counts), action, _np(learnable))
        threads = min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)
        kernel = _step_serial if threads == 1 else _step_parallel
        if threads > 1 and threads != self._threads:
            numba.set_num_threads(threads)
            self._threads = threads
        counter = int(state.brain.counter)
        weight = np.float32(bonus_weight(int(state.steps), spec.cfg.novelty.decay_steps))
        kernel(obs, reward, term, ended, learn, self._rows(counter, k), weight, self.consts, self.enc, self.arrays,
               outs)
        brain = state.brain
        brain.counter.add_(k)
        brain.windows.add_(1)
        state.steps.add_(1)
        r, delta, value, intrinsic, novelty, gain, surprise = vec
        motor = spikes.transpose(0, 1)[..., : self.consts.critic_lo]
        cfg = spec.cfg
        info = StepInfo(delta, value, r, intrinsic, novelty, learnable,
                        gain if (spec.novelty is not None or cfg.novelty.surprise_gain > 0) and learn else None,
                        surprise if spec.surprise and learn else None,
                        state.encoder.level.mean(-1) if spec.encoder.adaptation is not None else None, sensors, motor,
                        spikes.sum(dim=(1, 2)))
        if spec.discrete:
            act = torch.from_numpy(action)
        else:
            act = push_pull(counts, k * spec.motor_size, spec.act_low, spec.act_high, gain=cfg.brain.action_gain)
        return act, state, info

    def _rows(self, counter: int, k: int) -> np.ndarray:
        """Row words ``[K]`` of steps ``counter .. counter + K - 1`` (from a cached block of 4096 steps)."""
        first, words = self._row_block
        if words is None or counter < first or counter + k > first + words.shape[0]:
            first, words = counter, row_codes(counter, max(4096, k)).numpy()
            self._row_block = (first, words)
        return words[counter - first:counter - first + k]
