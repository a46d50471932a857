"""A ``Brain``: populations and projections of ``B`` independent spiking networks, stepped together.

The stateful wrapper over :mod:`neurons`, :mod:`synapses` and :mod:`plasticity`. Every state tensor
has the agent axis first (neurons ``[B, N]``, synapses ``[B, P, Q]``) and is a registered buffer, so
``state_dict()`` and ``.to(device)`` carry the whole brain. Everything runs under ``torch.no_grad()``.

One call to :meth:`Brain.run` advances ``K`` substeps of ``dt`` ms (one decision of an agent):

1. currents from input populations for all ``K`` substeps at once (dense product, or event-driven
   rows of the inputs that spiked);
2. per substep: neuron dynamics; currents along projections from non-input populations use the
   spikes of the previous substep (a one-substep synaptic delay);
3. plasticity events of plastic projections in factored form ``X_t @ Y_t`` (see :mod:`plasticity`);
   ``engine="dense"`` folds them into the eligibility trace every substep, ``engine="event"`` folds the
   whole window with one batched product at the end (exact; bounds are applied once per window).

Dopamine gates learning either per substep (``run(..., dopamine=[K, B])``, as in BindsNET's MSTDPET)
or once per decision (:meth:`Brain.learn`, what agents do after the environment answers).

**Fast path (feed-forward escape networks).** When one input population feeds every other population
through exactly one plastic projection each (rules ``node_perturbation`` / ``critic``, gated, no STP, no
connectivity mask) and every other population is made of memoryless escape-noise neurons, no substep
depends on the previous one. :meth:`Brain.run` then does the whole window without a loop over substeps:
the projections' weights (and eligibility, excitability, last spikes, rates) live side by side in one
storage per kind, and the registered buffers are views into it, so the currents of all ``K`` substeps
and all populations are one batched product ``[B, K, P] @ [B, P, Q1 + Q2 + ...]``, the noise of every
population one hash, the eligibility of every projection one product ``pre^T [B, P, K] @ Y [B, K, Q]``
and the dopamine update one ``addcmul``. Spikes, probabilities and weights equal those of the general
path (tests/test_brain_perf_paths.py); outputs are views, as the populations are columns of one tensor.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal, Optional

import torch
from torch import Tensor, nn

from . import plasticity as pl
from .neurons import EscapeParams, LIFParams, escape_step, lif_step, LIFState, EscapeState
from .random import CounterNoise, agent_keys, const, normal, uniform
from .synapses import TMParams, TMState, propagate, propagate_events, tm_step

Model = Literal["input", "lif", "alif", "escape"]
Rule = Literal["none", "stdp", "node_perturbation", "critic"]


def no_grad(fn):
    """``@torch.no_grad()`` that costs nothing when gradients are already off (calls from inside the engine).

    Entering and leaving the context manager costs several microseconds; an agent step calls half a dozen
    decorated methods, each within another one.
    """
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if torch.is_grad_enabled():
            with torch.no_grad():
                return fn(*args, **kwargs)
        return fn(*args, **kwargs)
    return wrapper


@dataclass(frozen=True)
class Population:
    """A group of neurons of one model. ``lif`` is used by lif/alif, ``escape`` by escape."""

    name: str
    size: int
    model: Model = "escape"
    lif: LIFParams = LIFParams()
    escape: EscapeParams = EscapeParams()
    homeostasis: Optional[pl.HomeostasisParams] = None


@dataclass(frozen=True)
class Projection:
    """Synapses ``pre -> post`` with their own weights per agent.

    ``sign`` multiplies the current (+1 excitatory, -1 inhibitory); weights stay in ``[w_min, w_max]``
    (``None`` = unbounded). ``trace_decay`` is the eligibility decay per substep. ``gated=False`` turns
    a rule into plain two-factor plasticity (``dW = lr * E`` with no dopamine).
    """

    pre: str
    post: str
    rule: Rule = "none"
    lr: float = 0.0
    trace_decay: float = 0.95
    gated: bool = True
    sign: float = 1.0
    w_init_mean: float = 0.0
    w_init_std: float = 0.0
    w_min: Optional[float] = None
    w_max: Optional[float] = None
    soft_bound: bool = False
    density: float = 1.0
    stdp: pl.StdpParams = pl.StdpParams()
    critic_scale: float = 1.0
    stp: Optional[TMParams] = None
    structural: Optional[pl.StructuralParams] = None
    structural_every: int = 1000

    @property
    def name(self) -> str:
        return f"{self.pre}->{self.post}"

    @property
    def plastic(self) -> bool:
        return self.rule != "none"


def _key(name: str) -> str:
    return name.replace("->", "__")


def _rows_noise(draw, keys: Tensor, n_pre: int, n_post: int, stream: int, block: int = 1 << 20) -> Tensor:
    """Counter-based noise ``[B, n_pre, n_post]`` whose row ``i`` is step ``i`` of ``draw(keys, 0, (n_pre, B, n_post))``.

    Drawn in blocks of rows (the same numbers, since an element depends only on its step, agent and
    column): the hash's int64 temporaries stay in cache instead of spanning gigabytes.
    """
    b = keys.shape[0]
    out = torch.empty(b, n_pre, n_post, device=keys.device)
    rows = max(1, block // max(1, b * n_post))
    for p0 in range(0, n_pre, rows):
        p1 = min(n_pre, p0 + rows)
        out[:, p0:p1] = draw(keys, p0, (p1 - p0, b, n_post), stream=stream).transpose(0, 1)
    return out


class Brain(nn.Module):
    """``B`` independent spiking networks in one tensor program.

    Args:
        populations, projections: the network's specification (shared by all agents; the weights are not).
        batch: number of agents ``B``.
        dt: substep length in ms.
        seed: run seed; agent ``b`` draws its noise from its own stream (``agent_index0 + b``), so an agent
            behaves the same alone or in any batch, on any device.
        engine: ``"dense"``, ``"event"`` or ``"auto"`` (event where it applies; it folds a window of
            plasticity in one product and reads only active input rows).
    """

    def __init__(
        self,
        populations: list[Population],
        projections: list[Projection],
        *,
        batch: int,
        dt: float = 1.0,
        seed: int = 0,
        agent_index0: int = 0,
        engine: Literal["auto", "dense", "event"] = "auto",
        device=None,
        dtype=torch.float32,
    ):
        super().__init__()
        self.pops = {p.name: p for p in populations}
        self.projs = {p.name: p for p in projections}
        for proj in projections:
            for end in (proj.pre, proj.post):
                if end not in self.pops:
                    raise ValueError(f"projection {proj.name}: unknown population {end!r}")
            if self.pops[proj.post].model == "input":
                raise ValueError(f"projection {proj.name}: an input population cannot receive synapses")
        self.batch, self.dt = batch, dt
        inputs_only = all(self.pops[p.pre].model == "input" for p in projections if p.plastic)
        if engine == "auto":
            engine = "event" if inputs_only else "dense"
        if engine == "event" and not inputs_only:
            raise ValueError("engine='event' needs every plastic projection to start at an input population")
        self.engine = engine
        self.order = [p.name for p in populations if p.model != "input"]
        self._offsets = {}
        off = 0
        for p in populations:
            self._offsets[p.name] = off
            off += p.size
        self.register_buffer("keys", agent_keys(seed, batch, first=agent_index0, device=device))
        self.register_buffer("counter", torch.zeros((), dtype=torch.int64, device=device))
        kw = dict(device=device, dtype=dtype)
        for p in populations:
            self.register_buffer(f"rate__{p.name}", torch.zeros(batch, p.size, **kw))
            if p.model in ("lif", "alif"):
                self.register_buffer(f"v__{p.name}", torch.full((batch, p.size), p.lif.v_rest, **kw))
                self.register_buffer(f"ref__{p.name}", torch.zeros(batch, p.size, **kw))
                self.register_buffer(f"theta__{p.name}", torch.zeros(batch, p.size, **kw))
            if p.model == "escape":
                self.register_buffer(f"u__{p.name}", torch.zeros(batch, p.size, **kw))
            if p.model != "input":
                self.register_buffer(f"excite__{p.name}", torch.zeros(batch, p.size, **kw))
                self.register_buffer(f"last__{p.name}", torch.zeros(batch, p.size, **kw))
        for i, proj in enumerate(projections):
            k, n_pre, n_post = _key(proj.name), self.pops[proj.pre].size, self.pops[proj.post].size
            # Initial weights from each agent's own stream: the same for an agent alone or in a batch.
            if proj.w_init_std:
                w = proj.w_init_mean + proj.w_init_std * _rows_noise(normal, self.keys, n_pre, n_post, (1 << 20) + i)
            else:
                w = torch.full((batch, n_pre, n_post), float(proj.w_init_mean), device=device)
            if proj.density < 1.0 or proj.structural is not None:
                mask = _rows_noise(uniform, self.keys, n_pre, n_post, (1 << 21) + i) < proj.density
                self.register_buffer(f"mask__{k}", mask)
                self.register_buffer(f"age__{k}", torch.zeros(batch, n_pre, n_post, dtype=torch.int16, device=device))
                w = w * mask
            w = w.contiguous()
            if proj.w_min is not None or proj.w_max is not None:
                w = w.clamp(proj.w_min, proj.w_max)
            self.register_buffer(f"w__{k}", w.to(**kw))
            if proj.plastic:
                self.register_buffer(f"e__{k}", torch.zeros(batch, n_pre, n_post, **kw))
                if proj.rule == "stdp":
                    self.register_buffer(f"xpre__{k}", torch.zeros(batch, n_pre, **kw))
                    self.register_buffer(f"xpost__{k}", torch.zeros(batch, n_post, **kw))
            if proj.stp is not None:
                self.register_buffer(f"stpu__{k}", torch.full((batch, n_pre), proj.stp.U, **kw))
                self.register_buffer(f"stpx__{k}", torch.ones(batch, n_pre, **kw))
        self.register_buffer("runs", torch.zeros((), dtype=torch.int64, device=device))
        self._rt = _RunState()  # per-run bookkeeping in a plain object: nn.Module.__setattr__ is slow per step
        self._noise = CounterNoise()
        self._ff = _FusedPlan.build(self)

    # ------------------------------------------------------------------ accessors

    @property
    def last_prob(self) -> dict[str, Tensor]:
        """Escape-noise firing probabilities ``[K, B, N]`` of the last :meth:`run`, per population."""
        return self._rt.last_prob

    @last_prob.setter
    def last_prob(self, value: dict[str, Tensor]) -> None:
        self._rt.last_prob = value

    @property
    def _pending(self):
        """The plasticity fold held back by ``run(..., defer=True)`` until :meth:`commit`."""
        return self._rt.pending

    @_pending.setter
    def _pending(self, fold) -> None:
        self._rt.pending = fold

    def weights(self, proj: str) -> Tensor:
        """Weights ``[B, P, Q]`` of projection ``"pre->post"``."""
        return getattr(self, f"w__{_key(proj)}")

    def eligibility(self, proj: str) -> Tensor:
        return getattr(self, f"e__{_key(proj)}")

    def mask(self, proj: str) -> Optional[Tensor]:
        return getattr(self, f"mask__{_key(proj)}", None)

    def step_count(self) -> int:
        """The substep counter (the noise streams' position) as a Python int, without a read of the
        tensor while it is only moved by :meth:`run` (a cached copy, checked against the buffer's version)."""
        c = self._buffers["counter"]
        try:
            version = c._version
        except RuntimeError:  # inference tensors keep no version counter
            return int(c)
        cached = self._rt.counter
        if cached is not None and cached[0] is c and cached[1] == version:
            return cached[2]
        value = int(c)
        self._rt.counter = (c, version, value)
        return value

    def _advance(self, k_steps: int) -> None:
        """``counter += k_steps``, keeping :meth:`step_count`'s cached copy in step."""
        value = self.step_count() + k_steps
        c = self._buffers["counter"]
        c.add_(k_steps)
        self._rt.counter = (c, c._version, value) if self._rt.counter is not None else None

    def rate(self, pop: str) -> Tensor:
        """Running spike probability per substep ``[B, N]``."""
        return getattr(self, f"rate__{pop}")

    # ------------------------------------------------------------------ stepping

    @no_grad
    def step(self, inputs: dict[str, Tensor], dopamine: Optional[Tensor] = None) -> dict[str, Tensor]:
        """One substep. ``inputs[name]``: ``[B, N]`` spikes of input populations; ``dopamine``: ``[B]``."""
        out = self.run({k: v.unsqueeze(0) for k, v in inputs.items()},
                       None if dopamine is None else dopamine.unsqueeze(0))
        return {k: v[0] for k, v in out.items()}

    @no_grad
    def run(self, inputs: dict[str, Tensor], dopamine: Optional[Tensor] = None, *, defer: bool = False,
            plastic: bool = True) -> dict[str, Tensor]:
        """Advance ``K`` substeps.

        Args:
            inputs: spikes ``[K, B, N]`` for every input population.
            dopamine: optional ``[K, B]`` neuromodulator applied after each substep (``dW = lr D e``).
            defer: keep this window's plasticity events pending until :meth:`commit`, so that a
                dopamine signal about the *previous* decision (known only now, e.g. a TD error that
                needs this state's value) can be applied first with :meth:`learn`. Needs ``dopamine=None``.
            plastic: False freezes the slow processes that change weights or excitability without
                dopamine (homeostasis, structural plasticity), e.g. for evaluation. Running rates still move.
        Returns:
            spikes ``[K, B, N]`` of every non-input population. Escape-noise firing probabilities are
            kept in ``self.last_prob[name]`` (``[K, B, N]``).
        """
        k_steps = next(iter(inputs.values())).shape[0]
        spikes = {name: s for name, s in inputs.items()}
        for name, pop in self.pops.items():
            if pop.model == "input" and name not in inputs:
                raise ValueError(f"missing input population {name!r}")
        if dopamine is None and self._ff is not None:
            return self._ff.run(self, inputs, defer, plastic)

        # Presynaptic efficacy of input projections (short-term plasticity acts per substep).
        efficacy = {}
        for proj in self.projs.values():
            if self.pops[proj.pre].model == "input":
                efficacy[proj.name] = self._stp(proj, spikes[proj.pre])

        lazy = self.engine == "event"
        # Input-driven currents for the whole window [B, K, Q], read once: wherever the weights stay fixed
        # during the window (no learning, or no per-substep dopamine) or the event engine corrects them.
        base = {}
        for proj in self.projs.values():
            if self.pops[proj.pre].model == "input" and (lazy or dopamine is None or not proj.plastic):
                pre = efficacy[proj.name].transpose(0, 1)
                base[proj.name] = _window_current(pre, self.weights(proj.name)) * proj.sign
        vectorized = dopamine is None and self._vectorizable()
        window = _Window(self, k_steps, dopamine) if lazy and not vectorized else None

        outs = {name: [] for name in self.order}
        probs = {}
        if defer and (dopamine is not None or not (vectorized or lazy)):
            raise ValueError("defer=True needs runs without per-substep dopamine, on the event engine or a vectorizable brain")
        if vectorized:
            self._run_vectorized(base, k_steps, outs, probs, defer)
        else:
            counter0 = int(self.counter)
            # Presynaptic factors of the whole window at once for plastic projections from inputs.
            xwin = {}
            for proj in self.projs.values():
                if proj.plastic and proj.name in efficacy:
                    if window is not None and proj.rule == "stdp" and not proj.stdp.hetero_ltd:
                        # rank K + 1 instead of 2K for the fold (see plasticity.stdp_window_basis)
                        d = pl.trace_decay(proj.stdp.tau_plus, self.dt)
                        window.set_basis(proj, *pl.stdp_window_basis(
                            pre_spikes=spikes[proj.pre], pre_trace0=getattr(self, f"xpre__{_key(proj.name)}") * d,
                            decay=d, params=proj.stdp))
                    xwin[proj.name] = self._pre_factors(proj, spikes[proj.pre], efficacy[proj.name])
                    if window is not None:
                        window.set_x(proj, xwin[proj.name])
            nxt = {}  # currents of this substep, computed by the previous substep's fused learning pass
            for t in range(k_steps):
                now = {}
                for name in self.order:
                    current = None
                    for proj in self.projs.values():
                        if proj.post != name:
                            continue
                        if proj.name in base:
                            c = base[proj.name][:, t]
                            if window is not None:
                                c = c + window.correction(proj, efficacy[proj.name][t], t)
                        elif proj.name in nxt:
                            c = nxt.pop(proj.name)
                        else:
                            src = efficacy[proj.name][t] if proj.name in efficacy else getattr(self, f"last__{proj.pre}")
                            if proj.name not in efficacy and proj.stp is not None:
                                src = self._stp(proj, src.unsqueeze(0))[0]
                            c = propagate(src, self.weights(proj.name)) * proj.sign
                        current = c if current is None else current + c
                    s, p = self._neurons(name, 0.0 if current is None else current, t, counter=counter0 + t)
                    now[name] = s
                    outs[name].append(s)
                    if p is not None:
                        probs.setdefault(name, []).append(p)
                for name, s in now.items():
                    getattr(self, f"last__{name}").copy_(s)
                d_t = None if dopamine is None else dopamine[t]
                for proj in self.projs.values():
                    if proj.plastic:
                        y = self._post_factors(proj, now[proj.post], probs[proj.post][-1] if proj.post in probs else None)
                        if lazy:
                            window.add_y(proj, y)
                            continue
                        if proj.name in xwin:
                            x = xwin[proj.name][:, :, t]
                        else:  # a plastic projection from a spiking population: this substep's spikes
                            pre = now[proj.pre].unsqueeze(0)
                            x = self._pre_factors(proj, pre, pre)[:, :, 0]
                        # The next substep's current of this projection is read in the same pass over W.
                        pre_next = None
                        if proj.name not in base:
                            if proj.name in efficacy:
                                pre_next = efficacy[proj.name][t + 1] if t + 1 < k_steps else None
                            elif proj.stp is None:
                                pre_next = now[proj.pre]
                        c_next = self._dense_learn(proj, x, y, d_t, pre_next)
                        if c_next is not None:
                            nxt[proj.name] = c_next
                if window is not None and d_t is not None:
                    window.advance(d_t)
            outs = {n: torch.stack(v) for n, v in outs.items()}
            probs = {n: torch.stack(v) for n, v in probs.items()}
        self.counter.add_(k_steps)
        if window is not None:
            if defer:
                self._pending = window.fold
            else:
                window.fold()
        self.last_prob = probs
        self._update_rates(inputs, outs, k_steps)
        if plastic:
            self._homeostasis(k_steps)
        self.runs.add_(1)
        if plastic:
            self._structural()
        return outs

    def _vectorizable(self) -> bool:
        """True when no substep depends on the previous one: memoryless escape neurons fed only by inputs."""
        for name in self.order:
            pop = self.pops[name]
            if pop.model != "escape" or pop.escape.tau_mem > 0:
                return False
        return all(self.pops[p.pre].model == "input" and p.rule in ("none", "node_perturbation", "critic")
                   and p.gated for p in self.projs.values())

    def _run_vectorized(self, base, k_steps, outs, probs, defer=False):
        counter = int(self.counter)
        for name in self.order:
            pop = self.pops[name]
            current = sum(base[p.name] for p in self.projs.values() if p.post == name).transpose(0, 1)  # [K, B, N]
            current = current + getattr(self, f"excite__{name}")
            noise = self._noise.uniform(self.keys, counter, (k_steps, self.batch, pop.size), stream=self._offsets[name])
            s, p, _ = escape_step(current, EscapeState(current), pop.escape, self.dt, noise)
            outs[name], probs[name] = s, p
            getattr(self, f"last__{name}").copy_(s[-1])
        window = self._window_factors_vectorized(outs, probs, k_steps)

        def fold():
            for proj, (x, y) in window.items():
                e = self.eligibility(proj.name)
                pl.eligibility_step(e, x, y, proj.trace_decay ** k_steps, out=e)

        if defer:
            self._pending = fold
        else:
            fold()

    def _window_factors_vectorized(self, outs, probs, k_steps):
        """Factors of the whole window, each substep weighted by its remaining eligibility decay."""
        res = {}
        for proj in self.projs.values():
            if not proj.plastic:
                continue
            pre = self._last_efficacy[proj.name]  # [K, B, P]
            decays = proj.trace_decay ** torch.arange(k_steps - 1, -1, -1, device=pre.device, dtype=pre.dtype)
            x = (pre * decays.view(-1, 1, 1)).permute(1, 2, 0)  # [B, P, K]
            if proj.rule == "node_perturbation":
                y = (outs[proj.post] - probs[proj.post]).transpose(0, 1)
            else:  # critic
                p = probs[proj.post]
                y = (proj.critic_scale * p * (1 - p)).transpose(0, 1)
            res[proj] = (x, y)
        return res

    def _stp(self, proj: Projection, pre: Tensor) -> Tensor:
        """Efficacy ``[K, B, P]`` of presynaptic spikes ``[K, B, P]`` (spikes themselves without STP)."""
        if getattr(self, "_last_efficacy", None) is None:
            self._last_efficacy = {}
        if proj.stp is None:
            self._last_efficacy[proj.name] = pre
            return pre
        k = _key(proj.name)
        state = TMState(getattr(self, f"stpu__{k}"), getattr(self, f"stpx__{k}"))
        out = []
        for t in range(pre.shape[0]):
            r, state = tm_step(pre[t], state, proj.stp, self.dt)
            out.append(r)
        getattr(self, f"stpu__{k}").copy_(state.u)
        getattr(self, f"stpx__{k}").copy_(state.x)
        eff = torch.stack(out)
        self._last_efficacy[proj.name] = eff
        return eff

    def _neurons(self, name: str, current, t: int, counter: Optional[int] = None):
        pop = self.pops[name]
        excite = getattr(self, f"excite__{name}")
        if not torch.is_tensor(current):
            current = torch.zeros_like(excite) + current
        if pop.model == "escape":
            counter = int(self.counter) if counter is None else counter
            noise = self._noise.uniform(self.keys, counter, (self.batch, pop.size), stream=self._offsets[name])
            u = getattr(self, f"u__{name}")
            s, p, st = escape_step(current + excite, EscapeState(u), pop.escape, self.dt, noise)
            u.copy_(st.u)
            return s, p
        v, ref, theta = (getattr(self, f"{n}__{name}") for n in ("v", "ref", "theta"))
        params = pop.lif if pop.model == "alif" else pop.lif._replace(theta_plus=0.0)
        s, st = lif_step(current + excite, LIFState(v, ref, theta), params, self.dt)
        v.copy_(st.v), ref.copy_(st.refractory), theta.copy_(st.theta)
        return s, None

    def _pre_factors(self, proj: Projection, pre_spikes: Tensor, pre_efficacy: Tensor) -> Tensor:
        """Presynaptic factors ``X [B, P, K, r]`` of the rule for ``K`` substeps ``[K, B, P]``.

        The events are ``E_t = X_t @ Y_t`` as in :func:`plasticity.stdp_factors`,
        :func:`plasticity.node_perturbation_factors` and :func:`plasticity.critic_factors`, whose ``X``
        depends on presynaptic activity only, so a window of inputs is done at once (updates the pre trace).
        """
        if proj.rule == "stdp":
            xpre = getattr(self, f"xpre__{_key(proj.name)}")
            before = pl.trace_window(xpre, pre_spikes, pl.trace_decay(proj.stdp.tau_plus, self.dt))
            return pl.stdp_pre_factors(pre_spikes=pre_spikes.permute(1, 2, 0), pre_trace=before.permute(1, 2, 0),
                                       params=proj.stdp)
        return pre_efficacy.permute(1, 2, 0).unsqueeze(-1)  # node perturbation, critic: X = pre

    def _post_factors(self, proj: Projection, post: Tensor, prob: Optional[Tensor]) -> Tensor:
        """Postsynaptic factor ``Y [B, r, Q]`` of one substep (updates the post trace)."""
        if proj.rule == "node_perturbation":
            return pl.node_perturbation_factors(pre=post, post_spikes=post, post_prob=prob)[1]
        if proj.rule == "critic":
            return pl.critic_factors(pre=post, post_prob=prob, scale=proj.critic_scale)[1]
        xpost = getattr(self, f"xpost__{_key(proj.name)}")
        before = pl.trace_window(xpost, post.unsqueeze(0), pl.trace_decay(proj.stdp.tau_minus, self.dt))[0]
        return pl.stdp_post_factors(post_spikes=post, post_trace=before, params=proj.stdp)

    def _dense_learn(self, proj: Projection, x: Tensor, y: Tensor, dopamine: Optional[Tensor],
                     pre_next: Optional[Tensor] = None) -> Optional[Tensor]:
        """One substep of learning in place; returns the signed current ``pre_next @ W_new`` when asked."""
        w = self.weights(proj.name)
        if not proj.gated:
            dw = torch.bmm(x, y).mul_(proj.lr)
            if proj.soft_bound:
                dw.mul_(pl.soft_bound_factor(w, dw, proj.w_min, proj.w_max))
            pl.bound_weights(w.add_(dw), proj.w_min, proj.w_max, self.mask(proj.name))
            return None
        cur = pl.three_factor_step_(
            w=w, e=self.eligibility(proj.name), x=x, y=y, decay=proj.trace_decay,
            scale=None if dopamine is None else proj.lr * dopamine, w_min=proj.w_min, w_max=proj.w_max,
            soft_bound=proj.soft_bound, mask=self.mask(proj.name), pre_next=pre_next)
        return None if cur is None else cur * proj.sign

    def _apply_dopamine(self, proj: Projection, dopamine: Tensor):
        pl.three_factor_step_(w=self.weights(proj.name), e=self.eligibility(proj.name), x=None, y=None, decay=1.0,
                              scale=proj.lr * dopamine, w_min=proj.w_min, w_max=proj.w_max,
                              soft_bound=proj.soft_bound, mask=self.mask(proj.name))

    @no_grad
    def commit(self) -> None:
        """Fold the plasticity events held back by ``run(..., defer=True)`` into the eligibility traces."""
        pending, self._rt.pending = self._rt.pending, None
        if pending is not None:
            pending()

    @no_grad
    def learn(self, dopamine: Tensor, gain: Optional[Tensor] = None) -> None:
        """Third factor once per decision: ``W += lr * gain * dopamine * e`` for every gated plastic projection.

        Args:
            dopamine: ``[B]`` (e.g. the TD error); gain: ``[B]`` acetylcholine-like plasticity gain.
        """
        d = dopamine if gain is None else dopamine * gain
        if self._ff is not None and self._ff.learn(self, d):
            return
        for proj in self.projs.values():
            if proj.plastic and proj.gated:
                self._apply_dopamine(proj, d)

    @no_grad
    def shrink(self, post: str, factor: Tensor) -> None:
        """Scale every weight onto population ``post`` by ``factor [B]`` (one factor per agent, in ``[0, 1]``).

        Shrinking a confident policy's weights brings its neurons back from saturation, where their noise
        (and so node-perturbation learning) has nothing left to explore (cf. shrink-and-perturb, Ash & Adams 2020).
        """
        for proj in self.projs.values():
            if proj.post == post:
                self.weights(proj.name).mul_(factor.view(-1, 1, 1))

    # ------------------------------------------------------------------ slow processes

    def _rate_weight(self, pop: Population, k_steps: int) -> float:
        """Weight of a window in the running rate: ``rate <- lerp(rate, mean spikes, 1 - exp(-K dt / tau))``."""
        tau = pop.homeostasis.tau_rate if pop.homeostasis else 1000.0
        return 1.0 - math.exp(-self.dt * k_steps / tau)

    def _update_rates(self, inputs, outs, k_steps, skip=()):
        weights = self._rt.rate_weights.get(k_steps)
        if weights is None:
            weights = {name: self._rate_weight(pop, k_steps) for name, pop in self.pops.items()}
            self._rt.rate_weights[k_steps] = weights
        for name, w in weights.items():
            if name in skip:
                continue
            s = inputs[name] if name in inputs else outs[name]
            mean = s.mean(0) if s.is_floating_point() else s.float().mean(0)
            self._buffers[f"rate__{name}"].lerp_(mean, w)

    def _homeostasis(self, k_steps):
        for name, pop in self.pops.items():
            hp = pop.homeostasis
            if hp is None:
                continue
            rate = getattr(self, f"rate__{name}")
            if hp.threshold:
                ex = getattr(self, f"excite__{name}")
                ex.copy_(pl.threshold_homeostasis(excitability=ex, rate=rate, params=hp._replace(eta=hp.eta * k_steps)))
            if hp.scaling:
                for proj in self.projs.values():
                    if proj.post == name:
                        w = self.weights(proj.name)
                        w.copy_(pl.synaptic_scaling(w=w, post_rate=rate, params=hp))

    def _structural(self):
        for proj in self.projs.values():
            sp = proj.structural
            if sp is None or int(self.runs) % proj.structural_every:
                continue
            k = _key(proj.name)
            w, mask, age = self.weights(proj.name), getattr(self, f"mask__{k}"), getattr(self, f"age__{k}")
            b, p, q = w.shape
            noise = uniform(self.keys, int(self.runs), (b, p * q), stream=1_000_003).view(b, p, q)
            w2, m2, a2 = pl.structural_step(w=w, mask=mask, weak_age=age.long(), pre_rate=self.rate(proj.pre),
                                            post_rate=self.rate(proj.post), uniform=noise, params=sp)
            w.copy_(w2), mask.copy_(m2), age.copy_(a2.to(age.dtype))
            if proj.plastic:
                self.eligibility(proj.name).mul_(m2)

    # ------------------------------------------------------------------ reset

    @no_grad
    def reset(self, mask: Tensor) -> None:
        """Reset the fast state (membranes, traces, eligibility, STP) of agents where ``mask [B]`` is True.

        Weights, masks, homeostatic excitability and rate estimates are kept: they are what was learned.
        """
        m1 = mask.view(-1, 1)
        rows = None  # indices of the agents to reset, for the [B, P, Q] tensors (only their rows are touched)
        done = frozenset()
        if self._ff is not None:  # one fill per fused storage instead of one per view
            rows = mask.nonzero().squeeze(1)
            done = self._ff.reset(self, m1, rows)
        for name, fill in self._reset_plan():
            if name in done:
                continue
            buf = self._buffers[name]
            if buf.dim() == 3:
                if rows is None:
                    rows = mask.nonzero().squeeze(1)
                buf.index_fill_(0, rows, fill)
            else:
                buf.masked_fill_(m1, fill)

    def _reset_plan(self) -> list[tuple[str, float]]:
        """``(buffer, value)`` of the fast state that :meth:`reset` restores (membranes of memoryless units,
        which never change, are left out)."""
        plan = self._rt.reset_plan
        if plan is None:
            plan = []
            for name in self._buffers:
                kind, _, rest = name.partition("__")
                if kind in ("v", "ref", "theta", "u", "last", "xpre", "xpost"):
                    pop = self.pops.get(rest)
                    if kind == "u" and pop.escape.tau_mem <= 0:
                        continue
                    plan.append((name, pop.lif.v_rest if kind == "v" else 0.0))
                elif kind == "e":
                    plan.append((name, 0.0))
                elif kind == "stpu":
                    plan.append((name, self.projs[rest.replace("__", "->")].stp.U))
                elif kind == "stpx":
                    plan.append((name, 1.0))
            self._rt.reset_plan = plan
        return plan


class _RunState:
    """Mutable bookkeeping of a :class:`Brain` between calls (not state: nothing here is saved)."""

    __slots__ = ("pending", "last_prob", "reset_plan", "rate_weights", "counter")

    def __init__(self):
        self.counter = None  # (buffer, its version, value): see Brain.step_count
        self.pending = None
        self.last_prob: dict[str, Tensor] = {}
        self.reset_plan = None
        self.rate_weights: dict = {}


class _FusedPlan:
    """The fast path of :class:`Brain` for feed-forward escape networks (see the module docstring).

    ``build`` returns None unless: one input population is the ``pre`` of every projection; every other
    population is the ``post`` of exactly one of them and is made of memoryless escape neurons; every
    projection is gated ``node_perturbation`` or ``critic`` without STP, structural plasticity or mask.
    Columns ``cols[post]`` of the fused tensors belong to population ``post`` (projection order).
    """

    #: fused kinds of state: buffer prefix and the axis along which the populations sit side by side
    GROUPS = (("w", 2), ("e", 2), ("excite", 1), ("last", 1), ("rate", 1))

    @classmethod
    def build(cls, brain: "Brain") -> Optional["_FusedPlan"]:
        projs = list(brain.projs.values())
        if not projs:
            return None
        pre = projs[0].pre
        posts = [p.post for p in projs]
        if brain.pops[pre].model != "input" or any(p.pre != pre for p in projs):
            return None
        if len(set(posts)) != len(posts) or set(posts) != set(brain.order):
            return None
        for p in projs:
            pop = brain.pops[p.post]
            if pop.model != "escape" or pop.escape.tau_mem > 0:
                return None
            if p.rule not in ("node_perturbation", "critic") or not p.gated:
                return None
            if p.stp is not None or p.structural is not None or p.density < 1.0:
                return None
        plan = cls(brain, projs)
        plan.tensors(brain)  # fuse the storage now
        return plan

    def __init__(self, brain: "Brain", projs: list[Projection]):
        self.pre = projs[0].pre
        self.projs = projs
        self.posts = [p.post for p in projs]
        self.cols: dict[str, slice] = {}
        off = 0
        for p in projs:
            n = brain.pops[p.post].size
            self.cols[p.post] = slice(off, off + n)
            off += n
        self.q = off
        # noise columns: population j of the window draws stream offset(post), neurons 0..n-1, as the general path
        self.blocks = tuple((brain._offsets[p.post], brain.pops[p.post].size) for p in projs)
        self.names = {}
        for kind, dim in self.GROUPS:
            if dim == 2:
                self.names[kind] = [f"{kind}__{_key(p.name)}" for p in projs]
            else:
                self.names[kind] = [f"{kind}__{p.post}" for p in projs]
        self.soft = any(p.soft_bound for p in projs)
        self._reset_names = frozenset(self.names["e"]) | frozenset(self.names["last"])
        self.bounded = [p for p in projs if p.w_min is not None or p.w_max is not None]
        self._views: dict[str, Tensor] = {}
        self._fused: dict[str, Tensor] = {}
        self._consts: dict = {}
        self._scratch: dict = {}

    # ---------------------------------------------------------------- storage

    def tensors(self, brain: "Brain") -> dict[str, Tensor]:
        """The fused tensors; re-fused (values kept) if any buffer was replaced (``.to()``, ``assign=True``)."""
        bufs = brain._buffers
        for name, view in self._views.items():
            if bufs[name] is not view:
                break
        else:
            if self._views:
                return self._fused
        fused = {}
        for kind, dim in self.GROUPS:
            parts = [bufs[n] for n in self.names[kind]]
            t = torch.cat(parts, dim=dim)
            off = 0
            for name, part in zip(self.names[kind], parts):
                view = t.narrow(dim, off, part.shape[dim])
                off += part.shape[dim]
                bufs[name] = view
                self._views[name] = view
            fused[kind] = t
        fused["excite_k"] = fused["excite"].unsqueeze(1)  # [B, 1, Q]: broadcast over the substeps
        self._fused = fused
        self._consts, self._scratch = {}, {}
        return fused

    def consts(self, brain: "Brain", k_steps: int, device) -> dict:
        """Per-column constants ``[Q]`` / ``[K, Q]`` on ``device`` for windows of ``k_steps``."""
        key = (k_steps, device)
        c = self._consts.get(key)
        if c is not None:
            return c
        f64 = dict(dtype=torch.float64, device=device)

        def per_col(values):
            return torch.cat([torch.full((brain.pops[p.post].size,), float(v), **f64) for p, v in zip(self.projs, values)])

        lr = per_col([p.lr for p in self.projs])
        sign = per_col([p.sign for p in self.projs])
        esc = [brain.pops[p.post].escape for p in self.projs]
        bias, slope = per_col([e.bias for e in esc]), per_col([e.slope for e in esc])
        decay = per_col([p.trace_decay for p in self.projs])
        critic = [p.rule == "critic" for p in self.projs]
        scale = per_col([p.critic_scale if is_c else 1.0 for p, is_c in zip(self.projs, critic)])
        steps = torch.arange(k_steps - 1, -1, -1, **f64).view(-1, 1)
        ahead = decay ** steps  # [K, Q]
        alpha = per_col([0.0 if is_c else 1.0 for is_c in critic])
        beta_p = per_col([1.0 if is_c else -1.0 for is_c in critic]) * scale
        gamma = per_col([-1.0 if is_c else 0.0 for is_c in critic]) * scale
        weights = [brain._rate_weight(brain.pops[p.post], k_steps) for p in self.projs]
        decays = [p.trace_decay ** k_steps for p in self.projs]
        # the eligibility decay of the widest projection goes into the product (beta); other columns are pre-scaled
        widest = max(range(len(self.projs)), key=lambda i: brain.pops[self.projs[i].post].size)
        beta = decays[widest] if decays[widest] > 0 else 1.0
        fixes = [(self.cols[p.post], torch.tensor(d / beta, device=device)) for p, d in zip(self.projs, decays) if d != beta]
        f32 = lambda t: t.to(torch.float32)
        c = {
            "lr": f32(lr),
            "sign": None if bool((sign == 1).all()) else f32(sign),
            "affine": None if bool((bias == 0).all() and (slope == 1).all()) else (f32(bias), f32(slope)),
            "y": (f32(ahead * alpha), f32(ahead * beta_p), f32(ahead * gamma)),  # [K, Q] each
            "beta": beta,
            "fixes": fixes,
            "rate_w": weights[0] if len(set(weights)) == 1 else f32(per_col(weights)),
        }
        self._consts[key] = c
        return c

    def scratch(self, k_steps: int, b: int, device) -> tuple[Tensor, Tensor, Tensor]:
        """Reused temporaries of the noise: two int32 ``[K, B, Q]`` buffers (the hash) and a float ``[B, K, Q]``."""
        key = (k_steps, b, device)
        t = self._scratch.get(key)
        if t is None:
            shape = (k_steps, b, self.q)
            t = (torch.empty(shape, dtype=torch.int32, device=device), torch.empty(shape, dtype=torch.int32, device=device),
                 torch.empty(b, k_steps, self.q, dtype=torch.float32, device=device))
            self._scratch[key] = t
        return t

    # ---------------------------------------------------------------- the window

    def run(self, brain: "Brain", inputs: dict[str, Tensor], defer: bool, plastic: bool = True) -> dict[str, Tensor]:
        s_in = inputs[self.pre]  # [K, B, P]
        k_steps, b = s_in.shape[0], s_in.shape[1]
        f = self.tensors(brain)
        dev = f["w"].device
        c = self.consts(brain, k_steps, dev)
        pre = s_in.transpose(0, 1)  # [B, K, P] (strided is fine for the batched products)
        counter = brain.step_count()

        # currents of every substep and population at once, then the escape-noise neurons
        z = torch.bmm(pre, f["w"])  # [B, K, Q]
        if c["sign"] is not None:
            z.mul_(c["sign"])
        z.add_(f["excite_k"])
        if c["affine"] is not None:
            z.add_(c["affine"][0]).mul_(c["affine"][1])
        prob = z.sigmoid_()
        # noise hashed as [K, B, Q] (rows on the outer axis: the fast layout), read as [B, K, Q] by the conversion
        ia, ib, u = self.scratch(k_steps, b, dev)
        a = brain._noise.hash(brain.keys, self.blocks, counter, k_steps, out=ia, tmp=ib)
        u.copy_(a.transpose(0, 1)).mul_(const("unit")).add_(const("half"))  # = to_uniform(a), transposed
        spikes = torch.lt(u, prob, out=torch.empty_like(prob))
        f["last"].copy_(spikes[:, -1])

        # eligibility factors Y [B, K, Q] = D (alpha s + beta p + gamma p^2), per column: node perturbation
        # s - p (1, -1, 0), critic c p (1 - p) (0, c, -c); D = d^(K-1-k), the decay still ahead in the window
        alpha, beta_p, gamma = c["y"]
        y = torch.addcmul(beta_p, prob, gamma).mul_(prob).addcmul_(spikes, alpha)
        e, beta, fixes = f["e"], c["beta"], c["fixes"]

        def fold():
            # e <- d^K e + pre^T Y, every projection in one product (columns of other decays pre-scaled)
            for sl, factor in fixes:
                e[..., sl].mul_(factor)
            e.baddbmm_(pre.transpose(1, 2), y, beta=beta)

        if defer:
            brain._rt.pending = fold
        else:
            fold()

        outs = self.finish(brain, spikes, prob)
        brain._update_rates(inputs, outs, k_steps, skip=self.cols)
        f["rate"].lerp_(spikes.mean(1), c["rate_w"])
        if plastic:
            brain._homeostasis(k_steps)
        return outs

    def finish(self, brain: "Brain", spikes: Tensor, prob: Tensor) -> dict[str, Tensor]:
        """Close a window of spikes and probabilities ``[B, K, Q]``: the step counter moves on, the last
        probabilities are kept; returns the spikes ``[K, B, n]`` of every population (views)."""
        brain._advance(spikes.shape[1])
        spikes_k, prob_k = spikes.transpose(0, 1), prob.transpose(0, 1)
        outs = {name: spikes_k[..., self.cols[name]] for name in self.posts}
        brain._rt.last_prob = {name: prob_k[..., self.cols[name]] for name in self.posts}
        brain.runs.add_(1)
        return outs

    def learn(self, brain: "Brain", dopamine: Tensor) -> bool:
        """``W += lr * dopamine * e`` for every projection in one op; False where the general code must do it."""
        if self.soft:
            return False
        f = self.tensors(brain)
        lr = self.consts(brain, 1, f["w"].device)["lr"]
        f["w"].addcmul_(f["e"], dopamine.view(-1, 1, 1) * lr)
        for p in self.bounded:
            pl.bound_weights(brain.weights(p.name), p.w_min, p.w_max, None)
        return True

    def reset(self, brain: "Brain", m1: Tensor, rows: Tensor) -> frozenset[str]:
        """Reset of the fused eligibility (the rows of agents ``rows``) and last spikes (``m1 [B, 1]``);
        returns the buffer names it covered."""
        f = self.tensors(brain)
        f["e"].index_fill_(0, rows, 0.0)
        f["last"].masked_fill_(m1, 0.0)
        return self._reset_names


def _window_current(pre: Tensor, w: Tensor) -> Tensor:
    """Current ``[B, K, Q]`` of a window of presynaptic activity ``[B, K, P]``.

    Gathering rows per spike (:func:`propagate_events`) beats one batched product only when there are
    fewer spikes in the window than a tenth of the rows; over a window of tens of substeps the product,
    which reads ``W`` once, wins even at a few percent firing.
    """
    b, _, p = pre.shape
    if w[0].numel() >= 65536 and int(torch.count_nonzero(pre)) < 0.1 * b * p:
        return propagate_events(pre, w)
    return propagate(pre, w)


class _Window:
    """Bookkeeping of the event engine for one ``run``: stacked factors and dopamine coefficients.

    See :func:`plasticity.fold_window` for the algebra. Factors go into preallocated ``X [B, P, rK]`` and
    ``Y [B, rK, Q]``; the gains ``a [B, K]`` and ``c [B]`` are updated with one op per substep. With
    per-substep dopamine, the current of substep ``t`` also needs the weight change accumulated since the
    window began, which is applied here in low rank (a ``[B, P] x [B, P, rt]`` product, no ``[B, P, Q]`` pass).
    """

    def __init__(self, brain: Brain, k_steps: int, dopamine: Optional[Tensor]):
        self.brain, self.k, self.t = brain, k_steps, 0
        self.has_dopamine = dopamine is not None
        self.x: dict[str, Tensor] = {}  # [B, P, r K]
        self.y: dict[str, Tensor] = {}  # [B, r K, Q]
        self.r: dict[str, int] = {}
        self.n: dict[str, int] = {}  # substeps added
        b = brain.batch
        dev = brain.counter.device
        steps = torch.arange(k_steps, device=dev)
        lag = steps.view(-1, 1) - steps.view(1, -1)  # t - m
        self.c, self.a, self.pows = {}, {}, {}
        for p in brain.projs.values():
            if not p.plastic:
                continue
            self.c[p.name] = torch.zeros(b, device=dev)
            self.a[p.name] = torch.zeros(b, k_steps, device=dev)  # a_m, per substep m
            d = torch.tensor(p.trace_decay, dtype=torch.float64, device=dev)
            self.pows[p.name] = torch.where(lag >= 0, d ** lag.clamp_min(0), 0.0).float()  # d^(t-m), m <= t
        self.e_rows = {}
        self.basis: dict[str, tuple[Tensor, Tensor]] = {}  # X = basis @ mix, see set_basis

    def set_x(self, proj: Projection, x: Tensor):
        """Presynaptic factors of the whole window ``[B, P, K, r]``, stored as ``X [B, P, K r]`` (column ``m r + k``)."""
        b, p, k, r = x.shape
        self.r[proj.name], self.n[proj.name] = r, 0
        self.x[proj.name] = x.reshape(b, p, k * r)
        self.y[proj.name] = x.new_empty(b, r * k, self.brain.pops[proj.post].size)

    def set_basis(self, proj: Projection, basis: Tensor, mix: Tensor):
        """A lower-rank form of the window's ``X = basis [B, P, R] @ mix [R, rK]``, used by :meth:`fold`."""
        self.basis[proj.name] = (basis, mix)

    def add_y(self, proj: Projection, y: Tensor):
        """Postsynaptic factor ``[B, r, Q]`` of the next substep."""
        name = proj.name
        m, r = self.n[name], self.r[name]
        self.y[name][:, m * r:(m + 1) * r] = y
        self.n[name] = m + 1

    def advance(self, d_t: Tensor):
        """Dopamine ``[B]`` arrived after substep ``t``: update c and a_m for m <= t."""
        for proj in self.brain.projs.values():
            if not proj.plastic:
                continue
            name = proj.name
            self.c[name].add_(d_t * proj.trace_decay ** (self.t + 1))
            self.a[name].addcmul_(d_t.view(-1, 1), self.pows[name][self.t])
        self.t += 1

    def correction(self, proj: Projection, pre: Tensor, t: int) -> Tensor:
        """Extra current ``[B, Q]`` at substep ``t`` from weight changes made earlier in this window."""
        if not self.has_dopamine or not proj.plastic or t == 0:
            return 0.0
        b = self.brain
        name = proj.name
        if name not in self.e_rows:
            eff = b._last_efficacy[name].transpose(0, 1)  # [B, K, P]
            self.e_rows[name] = _window_current(eff, b.eligibility(name))
        r = self.r[name]
        batch = pre.shape[0]
        out = (self.e_rows[name][:, t] * self.c[name].view(-1, 1)).unsqueeze(1)  # [B, 1, Q]
        # All columns of X in one product (faster than a strided slice), then the first r t.
        proj_pre = torch.bmm(pre.unsqueeze(1), self.x[name])[:, 0, :r * t]  # [B, r t]
        proj_pre = proj_pre.view(batch, t, r).mul(self.a[name][:, :t, None]).view(batch, 1, r * t)
        out.baddbmm_(proj_pre, self.y[name][:, :r * t])
        return out.squeeze(1) * (proj.lr * proj.sign)

    def fold(self):
        b = self.brain
        for proj in b.projs.values():
            if not proj.plastic or proj.name not in self.x:
                continue
            n, r = self.n[proj.name], self.r[proj.name]
            x, y = self.x[proj.name][:, :, :r * n], self.y[proj.name][:, :r * n]
            w, e = b.weights(proj.name), b.eligibility(proj.name)
            mask = b.mask(proj.name)
            if not proj.gated:
                dw = torch.bmm(x, y).mul_(proj.lr)
                if proj.soft_bound:
                    dw.mul_(pl.soft_bound_factor(w, dw, proj.w_min, proj.w_max))
                pl.bound_weights(w.add_(dw), proj.w_min, proj.w_max, mask)
                continue
            d = proj.trace_decay
            step_decays = torch.tensor([d ** (n - 1 - m) for m in range(n)], device=x.device,
                                       dtype=x.dtype).repeat_interleave(r)
            low_rank = proj.name in self.basis and n == self.k
            if low_rank:
                basis, mix = self.basis[proj.name]
            if self.has_dopamine:
                gain = self.a[proj.name][:, :n].repeat_interleave(r, dim=1)
                if low_rank:  # X diag(g) Y = basis (mix diag(g) Y)
                    pl.fold_window_(w=w, e=e, xa=basis, ya=torch.bmm(mix * gain.unsqueeze(1), y), xs=basis,
                                    ys=torch.bmm((mix * step_decays).expand(y.shape[0], -1, -1), y), total_decay=d ** n,
                                    trace_gain=self.c[proj.name], lr=proj.lr, w_min=proj.w_min, w_max=proj.w_max,
                                    soft_bound=proj.soft_bound, mask=mask)
                    continue
                pl.fold_window(w=w, e=e, x=x, y=y, step_decays=step_decays, total_decay=d ** n,
                               event_gain=gain, trace_gain=self.c[proj.name], lr=proj.lr,
                               w_min=proj.w_min, w_max=proj.w_max, soft_bound=proj.soft_bound,
                               mask=mask, out=(w, e))
            elif low_rank:
                pl.three_factor_step_(w=w, e=e, x=basis, y=torch.bmm((mix * step_decays).expand(y.shape[0], -1, -1), y),
                                      decay=d ** n, scale=None)
            else:
                pl.three_factor_step_(w=w, e=e, x=x * step_decays, y=y, decay=d ** n, scale=None)
