"""The kernel backend: the agent step as one numba kernel on the CPU (:mod:`.kernel_step`), the reference's twin.

At ``B = 16`` the torch reference is hundreds of small operations per environment step, and its large ones pass
over ``W`` and ``e`` several times. The kernel runs the whole step of one agent while its ``W [P, Q]`` and
``e [P, Q]`` sit in the core's cache, agents in parallel (``prange``) when numba has more than one thread.

The populations ``motor`` and ``critic`` sit side by side as columns of one ``[B, P, Q]`` weight tensor: binding
a state (:meth:`KernelBackend.bind`) makes its tensors views into fused storage and the kernel's arrays views of
those. The noise is the same counter hash, bit for bit, so the spikes are the reference's; sums run in another
order and ``exp`` is a polynomial within 2 ulp, so a probability can round to the other side of its noise value
now and then. tests/test_equivalence.py holds kernel and reference in lockstep for every shipped config and for
each mechanism. Structural plasticity (every ``structural.every`` decisions) runs in torch on the same state.

:func:`unsupported` says in one line why the kernel cannot run an agent (None when it can).
"""

from __future__ import annotations

import math
import types
from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor

from spikegym.brains import step as B
from spikegym.brains.jit import FAST, numba
from spikegym.brains.random import column_codes, row_codes
from spikegym.brains.step import rate_weight
from spikegym.brains.synapses import TMParams

from .kernel_sense import encoder_consts, encoder_work_size, neuron_adaptation
from .kernel_step import step_all
from .kernel_types import ESCAPE, LIF, Arrays, Consts, Outs
from .kernel_modules import modules_all
from .renewal import renew, renewal_due
from .novelty import SimHashParams, bonus_weight
from .spec import SENSOR_STREAM, TIE_STREAM, AgentSpec
from .state import AgentState
from .step import StepInfo

ACTOR, CRITIC, LATERAL = "sensors->motor", "sensors->critic", "motor->motor"


def unsupported(spec: AgentSpec) -> Optional[str]:
    """Why the kernel cannot run these agents, in one line; None when it can."""
    brain = spec.brain
    if numba is None:
        return "numba is not installed"
    if spec.device.type != "cpu":
        return f"the kernel runs on the CPU, not {spec.device.type}"
    if not brain.pops["critic"].memoryless or brain.pops["critic"].homeostasis is not None:
        return "the critic must be memoryless escape neurons without homeostasis"
    if brain.pops["motor"].model == "escape" and not brain.pops["motor"].memoryless:
        return "leaky escape membranes (escape tau_mem > 0) are not in the kernel"
    for proj in brain.projections:
        if proj.name not in (ACTOR, CRITIC, LATERAL):
            return f"projection {proj.name}: not one of the agent's ({ACTOR}, {CRITIC}, {LATERAL})"
        if proj.name != ACTOR and (proj.stp is not None or proj.masked or proj.soft_bound):
            return f"projection {proj.name}: short-term plasticity, masks and soft bounds only on {ACTOR}"
        if proj.name != LATERAL and proj.sign != 1:
            return f"projection {proj.name}: inhibitory input projections are not in the kernel"
    return None


def _renamed(fn, name: str):
    """``fn`` under another name: numba's cache files are named after the function, and the serial and the
    parallel build of one function would otherwise overwrite each other's."""
    code = fn.__code__.replace(co_name=name, co_qualname=name)
    return types.FunctionType(code, fn.__globals__, name, fn.__defaults__, fn.__closure__)


if numba is not None:
    # one thread: a plain loop (no thread pool, nothing spinning between steps); more: agents in parallel
    _step_serial = numba.njit(cache=True, **FAST)(_renamed(step_all, "_step_serial"))
    _step_parallel = numba.njit(cache=True, parallel=True, **FAST)(_renamed(step_all, "_step_parallel"))


def _np(t: Tensor) -> np.ndarray:
    return t.detach().numpy()


def _f32(values) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(values, dtype=np.float32))


def _fuse(parts: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
    """One contiguous tensor of ``parts`` side by side on the last axis, and views of it in their place."""
    t = torch.cat(parts, dim=-1).contiguous()
    views, off = [], 0
    for p in parts:
        views.append(t.narrow(-1, off, p.shape[-1]))
        off += p.shape[-1]
    return t, views


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
        self._row_block: tuple[int, Optional[np.ndarray]] = (0, None)

    # ---------------------------------------------------------------- binding the state

    def bind(self, state: AgentState) -> AgentState:
        """The same state, its motor and critic tensors now views of fused ``[B, ., Q]`` storage (values
        kept; a state handed in is copied, never changed), with the kernel's constants and array views made
        for it. Free when ``state`` is the one the last step returned: that one the kernel updates in place
        (so tensors read from it, e.g. ``Agent.weights``, are live views; clone to keep)."""
        if state is self._bound:
            return state
        bs = state.brain
        n_b = bs.keys.shape[0]
        own = lambda t: t.clone().contiguous()  # noqa: E731 - the kernel changes these in place
        fused = {}
        fused["w"], (wm, wc) = _fuse([bs.w[ACTOR], bs.w[CRITIC]])
        fused["e"], (em, ec) = _fuse([bs.e[ACTOR], bs.e[CRITIC]])
        brain = bs._replace(w={**{k: own(v) for k, v in bs.w.items() if k not in (ACTOR, CRITIC)}, ACTOR: wm, CRITIC: wc},
                            e={ACTOR: em, CRITIC: ec}, counter=own(bs.counter), windows=own(bs.windows))
        if ACTOR in bs.mask:
            fused["mask"], (mm, _) = _fuse([bs.mask[ACTOR], torch.ones_like(bs.mask[ACTOR][..., :1]).expand(
                -1, -1, bs.w[CRITIC].shape[2])])
            brain = brain._replace(mask={ACTOR: mm}, age={ACTOR: own(bs.age[ACTOR])})
        for kind in ("excite", "last", "rate"):
            fused[kind], views = _fuse([getattr(bs, kind)["motor"], getattr(bs, kind)["critic"]])
            brain = brain._replace(**{kind: {**getattr(brain, kind), "motor": views[0], "critic": views[1]}})
        brain = brain._replace(rate={**brain.rate, "sensors": own(bs.rate["sensors"])},
                               **{k: {n: own(t) for n, t in getattr(bs, k).items()}
                                  for k in ("v", "refractory", "theta", "u", "xpre", "xpost", "stp_u", "stp_x",
                                            "consolidation")})
        # the three counters as one int64 [3] (one numpy add a step moves them all)
        fused["count"], (counter, windows, steps) = _fuse([bs.counter.view(1), bs.windows.view(1), state.steps.view(1)])
        brain = brain._replace(counter=counter.view(()), windows=windows.view(()))
        state = state._replace(
            brain=brain, critic=state.critic._replace(**{k: own(v) for k, v in state.critic._asdict().items()}),
            encoder=state.encoder._replace(**{k: own(v) for k, v in state.encoder._asdict().items()}),
            novelty={k: own(v) for k, v in state.novelty.items()}, steps=steps.view(()),
            lesion={k: own(v) for k, v in state.lesion.items()}, modules={k: own(v) for k, v in state.modules.items()})
        none1, none2 = np.zeros((n_b, 0), np.float32), np.zeros((n_b, 0, 0), np.float32)
        pick = lambda kind, key, empty: _np(getattr(brain, kind)[key]) if key in getattr(brain, kind) else empty  # noqa
        cr, en, nov = state.critic, state.encoder, state.novelty
        self.arrays = Arrays(
            w=_np(fused["w"]), e=_np(fused["e"]),
            mask=_np(fused["mask"]) if "mask" in fused else np.zeros((n_b, 0, 0), np.bool_),
            w_rec=pick("w", LATERAL, none2), excite=_np(fused["excite"]), last=_np(fused["last"]),
            rate=_np(fused["rate"]), rate_in=_np(brain.rate["sensors"]), v=pick("v", "motor", none1), ref=pick("refractory", "motor", none1), theta=pick("theta", "motor", none1),
            xpre=pick("xpre", ACTOR, none1), xpost=pick("xpost", ACTOR, none1), stp_u=pick("stp_u", ACTOR, none1),
            stp_x=pick("stp_x", ACTOR, none1), rn_count=_np(en.rn_count), rn_mean=_np(en.rn_mean),
            rn_var=_np(en.rn_var), level=_np(en.level), last_input=_np(en.last_input),
            counts=_np(nov["counts"]) if "counts" in nov else np.zeros((n_b, 0), np.int32),
            nov_level=_np(nov["level"]) if "level" in nov else none1,
            nov_last=_np(nov["last_input"]) if "last_input" in nov else none1,
            value_prev=_np(cr.value_prev), learnable=_np(cr.learnable), reward_mean=_np(cr.reward_mean),
            td_fast=_np(cr.td_fast), td_slow=_np(cr.td_slow), serotonin=_np(cr.serotonin),
            alive_in=_np(state.lesion["sensors"]) if "sensors" in state.lesion else none1,
            consol=pick("consolidation", ACTOR, none2))
        self.consts = self._consts(state)
        self.counters = _np(fused["count"])  # substeps, windows, decisions
        self._outputs(n_b)
        self._entries: dict[bool, Any] = {}  # serial or parallel build -> its compiled entry point
        self._bound = state
        return state

    def _outputs(self, n_b: int) -> None:
        """The kernel's outputs (:class:`Outs`) and the :class:`StepInfo` of their torch views, made once: every
        step overwrites them (a StepInfo holds until the next step; clone to keep)."""
        spec, k, q, m = self.spec, self.spec.K, self.consts.bias.shape[0], self.consts.motor
        sensors, spikes = torch.empty(k, n_b, spec.encoder.n_out), torch.empty(n_b, k, q)
        vec = torch.empty(8, n_b)  # r, delta, value, intrinsic, novelty, gain, surprise, spikes
        counts, learnable = torch.empty(n_b, spec.n_groups), torch.empty(n_b, dtype=torch.bool)
        action = torch.zeros(n_b, dtype=torch.int64)
        o = _np(vec)
        self.outs = Outs(_np(sensors), _np(spikes), o[0], o[1], o[2], o[3], o[4], o[5], o[6], _np(counts),
                         _np(action), _np(learnable), o[7])
        r, delta, value, intrinsic, novelty, gain, surprise, n_spikes = vec
        info = StepInfo(delta, value, r, intrinsic, novelty, learnable, None, None, None, sensors,
                        spikes.transpose(0, 1)[..., :m], n_spikes)
        gained = spec.novelty is not None or spec.cfg.novelty.surprise_gain > 0
        self._info = {False: info, True: info._replace(ach_gain=gain if gained else None,
                                                       surprise=surprise if spec.surprise else None)}
        if not spec.discrete:  # push_pull's constants, as it computes them
            low, high = spec.act_low, spec.act_high
            self._push_pull = (_np(low), _np(high), _np((high + low) / 2), _np((high - low) / 2),
                               k * spec.motor_size, spec.cfg.brain.action_gain)
        self._structural_on = any(p.structural is not None for p in spec.brain.projections)
        self._step_add = np.array([k, 1, 1], dtype=np.int64)

    def _consts(self, state: AgentState) -> Consts:
        spec, cfg = self.spec, self.spec.cfg
        brain, enc, k = spec.brain, spec.encoder, spec.K
        keys = state.brain.keys
        n_in = enc.n_out
        g = spec.n_groups if spec.discrete else 0
        sense = torch.cat([column_codes(keys, n_in, SENSOR_STREAM)] +
                          ([column_codes(keys, g, TIE_STREAM)] if g else []), dim=2)
        neuron = torch.cat([column_codes(keys, brain.pops[p].size, brain.stream[p]) for p in ("motor", "critic")], dim=2)
        cols: dict[str, dict[str, list]] = {}
        for p in ("motor", "critic"):
            proj, pop = brain.projs[f"sensors->{p}"], brain.pops[p]
            n = pop.size
            hp = pop.homeostasis
            eta = hp.eta * k / max(hp.target_rate, 1e-6) if hp is not None and hp.threshold else 0.0
            scale = hp.eta / max(hp.target_rate, 1e-6) if hp is not None and hp.scaling else 0.0
            cols[p] = {key: [value] * n for key, value in dict(
                bias=pop.escape.bias, slope=pop.escape.slope, critic_scale=proj.critic_scale, lr=proj.lr,
                d=proj.trace_decay, w_min=-math.inf if proj.w_min is None else proj.w_min,
                w_max=math.inf if proj.w_max is None else proj.w_max, soft=proj.soft_bound,
                rate_w=rate_weight(brain, p, k), eta=eta, scale=scale,
                target=hp.target_rate if hp is not None else 0.0).items()}
        col = lambda key: [v for p in ("motor", "critic") for v in cols[p][key]]  # noqa: E731
        d = np.asarray(col("d"), dtype=np.float64)
        ahead = d[None, :] ** np.arange(k - 1, -1, -1, dtype=np.float64)[:, None]
        motor, actor, dt = brain.pops["motor"], brain.projs[ACTOR], brain.dt
        model = {"escape": ESCAPE, "lif": LIF, "alif": LIF}[motor.model]
        stp = actor.stp or TMParams()
        dop, nov, env = cfg.dopamine, spec.novelty, cfg.env
        hashing = isinstance(nov, SimHashParams)
        nov_adapt = (np.float32(1.0), np.float32(1.0), np.float32(0.0), True)
        if nov is not None and not isinstance(nov, SimHashParams):
            nov_adapt = neuron_adaptation(nov.adaptation, nov.dt)
        a, n = cfg.encoder.adaptation, cfg.novelty
        consol = actor.consolidation
        self.enc = encoder_consts(enc, k)
        f32 = np.float32
        return Consts(
            enc_work=encoder_work_size(self.enc),
            punish=f32(a.punishment_threshold if a.enabled and a.sensitize_on_punishment else math.inf),
            sense_c1=_np(sense[0]).copy(), sense_c2=_np(sense[1]).copy(),
            neuron_c1=_np(neuron[0]).copy(), neuron_c2=_np(neuron[1]).copy(),
            bias=_f32(col("bias")), slope=_f32(col("slope")), critic_scale=_f32(col("critic_scale")),
            lr=_f32(col("lr")), ahead=_f32(ahead), decay_k=_f32(d ** k), w_min=_f32(col("w_min")),
            w_max=_f32(col("w_max")), soft=np.asarray(col("soft"), dtype=np.bool_), any_soft=any(col("soft")),
            unbounded=all(math.isinf(v) for v in col("w_min") + col("w_max")), any_scaling=any(col("scale")),
            rate_w=_f32(col("rate_w")),
            rate_in_w=f32(rate_weight(brain, "sensors", k)), homeo_eta=_f32(col("eta")),
            homeo_target=_f32(col("target")), scale_eta=_f32(col("scale")),
            lateral_sign=f32(brain.projs[LATERAL].sign if LATERAL in brain.projs else 1.0), motor=motor.size, model=model,
            alpha=f32(math.exp(-dt / motor.lif.tau_mem)), v_rest=f32(motor.lif.v_rest),
            v_reset=f32(motor.lif.v_reset), v_th=f32(motor.lif.v_th), t_ref=f32(motor.lif.t_ref), dt=f32(dt),
            theta_decay=f32(math.exp(-dt / motor.lif.tau_theta)),
            theta_plus=f32(motor.lif.theta_plus if motor.model == "alif" else 0.0),
            lif_slope=f32(motor.lif.escape_slope if motor.model != "escape" else 0.0),
            stdp=actor.rule == "stdp", a_plus=f32(actor.stdp.a_plus), a_minus=f32(actor.stdp.a_minus),
            hetero=f32(actor.stdp.hetero_ltd), center={"none": 0, "expected": 1, "rate": 2}[actor.stdp.center],
            pre_decay=f32(math.exp(-dt / actor.stdp.tau_plus)),
            post_decay=f32(math.exp(-dt / actor.stdp.tau_minus)), stp=actor.stp is not None, stp_u=f32(stp.U),
            stp_f=f32(math.exp(-dt / stp.tau_f)), stp_d=f32(math.exp(-dt / stp.tau_d)),
            motor_size=spec.motor_size, n_groups=spec.n_groups, discrete=spec.discrete, v_low=f32(spec.value_low),
            v_span=f32(spec.value_high - spec.value_low), gamma=f32(dop.gamma),
            clip=f32(-1.0 if dop.clip is None else dop.clip), baseline=dop.mode == "baseline",
            baseline_decay=f32(dop.baseline_decay),
            failure_reward=f32(np.nan if env.failure_reward is None else env.failure_reward),
            reward_scale=f32(env.reward_scale), novelty=0 if nov is None else (1 if hashing else 2),
            projection=np.ascontiguousarray(_np(nov.projection), dtype=np.float32) if nov is not None
            else np.zeros((n_in, 0), np.float32),
            bit_weights=_np(nov.bit_weights).astype(np.int64) if isinstance(nov, SimHashParams) else np.zeros(0, np.int64),
            table_size=nov.table_size if isinstance(nov, SimHashParams) else 1,
            active=nov.active if nov is not None and not isinstance(nov, SimHashParams) else 0,
            nov_adapt=nov_adapt[0], nov_recover=nov_adapt[1], nov_strength=nov_adapt[2], nov_divisive=nov_adapt[3],
            beta=f32(n.beta), ach_gain=f32(n.ach_gain), surprise=spec.surprise,
            surprise_mode={"absolute": 0, "negative": 1, "punishment": 2}[n.surprise_errors],
            surprise_fast=f32(1.0 / n.surprise_fast_steps), surprise_slow=f32(1.0 / n.surprise_slow_steps),
            surprise_gain=f32(n.surprise_gain), surprise_shrink=f32(n.surprise_shrink),
            serotonin=dop.serotonin.enabled, sero_rate=f32(1.0 / dop.serotonin.tau_steps),
            sero_gain=f32(dop.serotonin.gain), sero_ref=f32(dop.serotonin.reference),
            sero_low=f32(dop.serotonin.gamma_low), sero_span=f32(dop.serotonin.gamma_high - dop.serotonin.gamma_low),
            consolidate=consol is not None, consol_rate=f32(consol.rate if consol else 0.0),
            consol_keep=f32(consol.keep if consol else 1.0))

    # ---------------------------------------------------------------- the step

    def step(self, state: AgentState, obs, reward, terminated, truncated, *, learn: bool = True
             ) -> tuple[Tensor, AgentState, StepInfo]:
        """What :func:`~spikegym.agents.step.agent_step` does, for a supported agent; same arguments and
        return. The state the last step returned is updated in place and returned; any other is copied first
        (:meth:`bind`). The StepInfo's tensors are overwritten by the next step (clone to keep)."""
        spec = self.spec
        state = self.bind(state)
        k = spec.K
        obs = np.ascontiguousarray(obs, dtype=np.float32)
        if obs.ndim == 1:
            obs = obs[:, None]
        term = np.ascontiguousarray(terminated, dtype=np.bool_)
        ended = term | np.asarray(truncated, dtype=np.bool_)
        reward = np.ascontiguousarray(reward, dtype=np.float32)
        if not (obs.flags.writeable and term.flags.writeable and reward.flags.writeable):
            obs, term, reward = obs.copy(), term.copy(), reward.copy()  # the kernel's types are of writeable arrays
        counter, _, steps = self.counters.tolist()
        weight = np.float32(bonus_weight(steps, spec.cfg.novelty.decay_steps))
        args = (obs, reward, term, ended, bool(learn), self._rows(counter, k), weight, self.consts, self.enc,
                self.arrays, self.outs)
        self._kernel(args)(*args)
        self.counters += self._step_add  # substeps, windows, decisions (views of the state's counters)
        if learn and self._structural_on:
            self._structural(state)
        info = self._info[bool(learn)]
        if learn and spec.renewal is not None and renewal_due(spec.renewal, int(self.counters[1])):
            self._renewal(state)
        if learn and spec.modules is not None:
            self._modules(state, info.delta, info.extrinsic, info.learnable)
        if spec.modules is not None:
            info = info._replace(module=state.modules["active"])
        if spec.encoder.adaptation is not None:
            info = info._replace(adaptation=state.encoder.level.mean(-1))
        if spec.discrete:
            act = torch.from_numpy(self.outs.action.copy())  # its own array: the next step overwrites outs
        else:  # decoders.push_pull's operations in numpy (the same roundings; a torch op costs several us here)
            low, high, mid, half, most, gain = self._push_pull
            counts = self.outs.counts.reshape(self.outs.counts.shape[0], -1, 2)
            drive = (counts[..., 0] - counts[..., 1]) / most
            act = torch.from_numpy(np.maximum(np.minimum(mid + half * (gain * drive), high), low))
        return act, state, info

    def _kernel(self, args: tuple):
        """The compiled kernel (serial or parallel, as torch's thread count says) for the types of ``args``.

        numba's dispatcher finds the types of every argument on every call, all the arrays inside the named
        tuples included (tens of microseconds a call); the types of the named tuples are fixed from
        :meth:`bind` on, and those of the per-step arrays by :meth:`step`, so the entry point is looked up once
        (``Dispatcher.compile`` returns it, from numba's cache when it is there)."""
        threads = min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)
        entry = self._entries.get(threads == 1)
        if entry is None:
            kernel = _step_serial if threads == 1 else _step_parallel
            entry = kernel.compile(tuple(numba.typeof(a) for a in args))
            self._entries[threads == 1] = entry
        if threads > 1 and threads != self._threads:
            numba.set_num_threads(threads)
            self._threads = threads
        return entry

    def _structural(self, state: AgentState) -> None:
        """Structural plasticity in torch (:func:`spikegym.brains.step.structural`), written into the bound
        tensors (so the kernel's views stay the state)."""
        brain = state.brain
        new = B.structural(self.spec.brain, brain)
        for kind in ("w", "mask", "age", "e"):
            for name, t in getattr(new, kind).items():
                old = getattr(brain, kind)[name]
                if t is not old:
                    old.copy_(t)

    def _renewal(self, state: AgentState) -> None:
        """Renewal of dormant and saturated motor neurons in torch (:func:`spikegym.agents.renewal.renew`), written
        into the bound tensors."""
        assert self.spec.renewal is not None
        brain = state.brain
        new, renewed = renew(self.spec.brain, brain, self.spec.renewal)
        if bool(renewed.any()):
            for kind in ("w", "e", "excite", "rate"):
                for name, t in getattr(new, kind).items():
                    old = getattr(brain, kind)[name]
                    if t is not old:
                        old.copy_(t)

    def _modules(self, state: AgentState, delta: Tensor, r: Tensor, learnable: Tensor) -> None:
        """Context modules (:func:`.kernel_modules.modules_all`, the twin of the torch rule the reference calls
        after its learning), in place on the bound state."""
        p, a, mods = self.spec.modules, self.arrays, state.modules
        assert p is not None
        f32 = np.float32
        banks = [_np(mods[k]) for k in ("active", "n", "fast", "slow", "failed", "streak", "held", "actor", "critic")]
        bank_c = _np(mods["consolidation"]) if "consolidation" in mods else np.zeros((1, 0, 0, 0), np.float32)
        modules_all(*[_np(delta), _np(r), _np(learnable), p.errors, f32(p.fast), f32(p.slow), f32(p.min_error),
                      f32(p.switch_surprise), p.patience, p.recall, a.w, a.e, a.mask, a.learnable, *banks, a.consol, bank_c])

    def _rows(self, counter: int, k: int) -> np.ndarray:
        """Row words ``[K]`` of steps ``counter .. counter + K - 1`` (from a cached block of 4096 steps)."""
        first, words = self._row_block
        if words is None or counter < first or counter + k > first + words.shape[0]:
            first, words = counter, row_codes(counter, max(4096, k)).numpy()
            self._row_block = (first, words)
        return words[counter - first:counter - first + k]
