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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Optional

import torch
from torch import Tensor, nn

from . import plasticity as pl
from .neurons import EscapeParams, LIFParams, escape_step, lif_step, LIFState, EscapeState
from .random import agent_keys, normal, uniform
from .synapses import TMParams, TMState, propagate, propagate_events, tm_step

Model = Literal["input", "lif", "alif", "escape"]
Rule = Literal["none", "stdp", "node_perturbation", "critic"]


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
            shape = (n_pre, batch, n_post)
            w = proj.w_init_mean + proj.w_init_std * normal(self.keys, 0, shape, stream=(1 << 20) + i).transpose(0, 1)
            if proj.density < 1.0 or proj.structural is not None:
                mask = uniform(self.keys, 0, shape, stream=(1 << 21) + i).transpose(0, 1) < proj.density
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
        self.last_prob: dict[str, Tensor] = {}

    # ------------------------------------------------------------------ accessors

    def weights(self, proj: str) -> Tensor:
        """Weights ``[B, P, Q]`` of projection ``"pre->post"``."""
        return getattr(self, f"w__{_key(proj)}")

    def eligibility(self, proj: str) -> Tensor:
        return getattr(self, f"e__{_key(proj)}")

    def mask(self, proj: str) -> Optional[Tensor]:
        return getattr(self, f"mask__{_key(proj)}", None)

    def rate(self, pop: str) -> Tensor:
        """Running spike probability per substep ``[B, N]``."""
        return getattr(self, f"rate__{pop}")

    # ------------------------------------------------------------------ stepping

    @torch.no_grad()
    def step(self, inputs: dict[str, Tensor], dopamine: Optional[Tensor] = None) -> dict[str, Tensor]:
        """One substep. ``inputs[name]``: ``[B, N]`` spikes of input populations; ``dopamine``: ``[B]``."""
        out = self.run({k: v.unsqueeze(0) for k, v in inputs.items()},
                       None if dopamine is None else dopamine.unsqueeze(0))
        return {k: v[0] for k, v in out.items()}

    @torch.no_grad()
    def run(self, inputs: dict[str, Tensor], dopamine: Optional[Tensor] = None) -> dict[str, Tensor]:
        """Advance ``K`` substeps.

        Args:
            inputs: spikes ``[K, B, N]`` for every input population.
            dopamine: optional ``[K, B]`` neuromodulator applied after each substep (``dW = lr D e``).
        Returns:
            spikes ``[K, B, N]`` of every non-input population. Escape-noise firing probabilities are
            kept in ``self.last_prob[name]`` (``[K, B, N]``).
        """
        k_steps = next(iter(inputs.values())).shape[0]
        spikes = {name: s for name, s in inputs.items()}
        for name, pop in self.pops.items():
            if pop.model == "input" and name not in inputs:
                raise ValueError(f"missing input population {name!r}")

        # Presynaptic efficacy of input projections (short-term plasticity acts per substep).
        efficacy = {}
        for proj in self.projs.values():
            if self.pops[proj.pre].model == "input":
                efficacy[proj.name] = self._stp(proj, spikes[proj.pre])

        lazy = self.engine == "event"
        # Input-driven currents for the whole window [B, K, Q], read once.
        base = {}
        if lazy or dopamine is None:
            for proj in self.projs.values():
                if self.pops[proj.pre].model == "input":
                    pre = efficacy[proj.name].transpose(0, 1)
                    w = self.weights(proj.name)
                    dense = pre.mean() > 0.1 or not lazy
                    base[proj.name] = (propagate(pre, w) if dense else propagate_events(pre, w)) * proj.sign
        window = _Window(self, k_steps, dopamine) if lazy else None

        outs = {name: [] for name in self.order}
        probs = {}
        vectorized = dopamine is None and self._vectorizable()
        if vectorized:
            self._run_vectorized(base, k_steps, outs, probs)
        else:
            for t in range(k_steps):
                now = {}
                for name in self.order:
                    current = 0.0
                    for proj in self.projs.values():
                        if proj.post != name:
                            continue
                        if proj.name in base:
                            c = base[proj.name][:, t]
                            if window is not None:
                                c = c + window.correction(proj, efficacy[proj.name][t], t)
                        else:
                            src = efficacy[proj.name][t] if proj.name in efficacy else getattr(self, f"last__{proj.pre}")
                            if proj.name not in efficacy and proj.stp is not None:
                                src = self._stp(proj, src.unsqueeze(0))[0]
                            c = propagate(src, self.weights(proj.name)) * proj.sign
                        current = current + c
                    s, p = self._neurons(name, current, t)
                    now[name] = s
                    outs[name].append(s)
                    if p is not None:
                        probs.setdefault(name, []).append(p)
                for name, s in now.items():
                    getattr(self, f"last__{name}").copy_(s)
                step_spikes = {**{n: v[t] for n, v in inputs.items()}, **now}
                step_probs = {n: v[-1] for n, v in probs.items()}
                d_t = None if dopamine is None else dopamine[t]
                for proj in self.projs.values():
                    if proj.plastic:
                        x, y = self._factors(proj, step_spikes, step_probs, efficacy.get(proj.name, None), t)
                        if lazy:
                            window.add(proj, x, y)
                        else:
                            self._dense_learn(proj, x, y, d_t)
                if window is not None and d_t is not None:
                    window.advance(d_t)
                self.counter += 1
            outs = {n: torch.stack(v) for n, v in outs.items()}
            probs = {n: torch.stack(v) for n, v in probs.items()}
        if vectorized:
            self.counter += k_steps
        if window is not None:
            window.fold()
        self.last_prob = probs
        self._homeostasis(inputs, outs, k_steps)
        self.runs += 1
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

    def _run_vectorized(self, base, k_steps, outs, probs):
        counter = int(self.counter)
        for name in self.order:
            pop = self.pops[name]
            current = sum(base[p.name] for p in self.projs.values() if p.post == name).transpose(0, 1)  # [K, B, N]
            current = current + getattr(self, f"excite__{name}")
            noise = uniform(self.keys, counter, (k_steps, self.batch, pop.size), stream=self._offsets[name])
            s, p, _ = escape_step(current, EscapeState(current), pop.escape, self.dt, noise)
            outs[name], probs[name] = s, p
            getattr(self, f"last__{name}").copy_(s[-1])
        window = self._window_factors_vectorized(outs, probs, k_steps)
        for proj, (x, y) in window.items():
            e = self.eligibility(proj.name)
            pl.eligibility_step(e, x, y, proj.trace_decay ** k_steps, out=e)

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

    def _neurons(self, name: str, current, t: int):
        pop = self.pops[name]
        excite = getattr(self, f"excite__{name}")
        if not torch.is_tensor(current):
            current = torch.zeros_like(excite) + current
        if pop.model == "escape":
            noise = uniform(self.keys, int(self.counter), (self.batch, pop.size), stream=self._offsets[name])
            u = getattr(self, f"u__{name}")
            s, p, st = escape_step(current + excite, EscapeState(u), pop.escape, self.dt, noise)
            u.copy_(st.u)
            return s, p
        v, ref, theta = (getattr(self, f"{n}__{name}") for n in ("v", "ref", "theta"))
        params = pop.lif if pop.model == "alif" else pop.lif._replace(theta_plus=0.0)
        s, st = lif_step(current + excite, LIFState(v, ref, theta), params, self.dt)
        v.copy_(st.v), ref.copy_(st.refractory), theta.copy_(st.theta)
        return s, None

    def _factors(self, proj: Projection, spikes, probs, efficacy, t):
        pre = efficacy[t] if efficacy is not None else spikes[proj.pre]
        post = spikes[proj.post]
        if proj.rule == "node_perturbation":
            return pl.node_perturbation_factors(pre=pre, post_spikes=post, post_prob=probs[proj.post])
        if proj.rule == "critic":
            return pl.critic_factors(pre=pre, post_prob=probs[proj.post], scale=proj.critic_scale)
        k = _key(proj.name)
        xpre, xpost = getattr(self, f"xpre__{k}"), getattr(self, f"xpost__{k}")
        pre_before, pre_after = pl.trace_step(xpre, spikes[proj.pre], pl.trace_decay(proj.stdp.tau_plus, self.dt))
        post_before, post_after = pl.trace_step(xpost, post, pl.trace_decay(proj.stdp.tau_minus, self.dt))
        xpre.copy_(pre_after), xpost.copy_(post_after)
        return pl.stdp_factors(pre_spikes=spikes[proj.pre], post_spikes=post, pre_trace=pre_before,
                               post_trace=post_before, params=proj.stdp)

    def _dense_learn(self, proj: Projection, x: Tensor, y: Tensor, dopamine: Optional[Tensor]):
        w = self.weights(proj.name)
        if not proj.gated:
            dw = torch.bmm(x, y).mul_(proj.lr)
            if proj.soft_bound:
                dw.mul_(pl.soft_bound_factor(w, dw, proj.w_min, proj.w_max))
            pl.bound_weights(w.add_(dw), proj.w_min, proj.w_max, self.mask(proj.name))
            return
        e = self.eligibility(proj.name)
        pl.eligibility_step(e, x, y, proj.trace_decay, out=e)
        if dopamine is not None:
            self._apply_dopamine(proj, dopamine)

    def _apply_dopamine(self, proj: Projection, dopamine: Tensor):
        w, e = self.weights(proj.name), self.eligibility(proj.name)
        scale = (proj.lr * dopamine).view(-1, 1, 1)
        if proj.soft_bound:
            dw = e * scale
            w.add_(dw.mul_(pl.soft_bound_factor(w, dw, proj.w_min, proj.w_max)))
        else:
            w.addcmul_(e, scale)
        pl.bound_weights(w, proj.w_min, proj.w_max, self.mask(proj.name))

    @torch.no_grad()
    def learn(self, dopamine: Tensor, gain: Optional[Tensor] = None) -> None:
        """Third factor once per decision: ``W += lr * gain * dopamine * e`` for every gated plastic projection.

        Args:
            dopamine: ``[B]`` (e.g. the TD error); gain: ``[B]`` acetylcholine-like plasticity gain.
        """
        d = dopamine if gain is None else dopamine * gain
        for proj in self.projs.values():
            if proj.plastic and proj.gated:
                self._apply_dopamine(proj, d)

    # ------------------------------------------------------------------ slow processes

    def _homeostasis(self, inputs, outs, k_steps):
        for name, pop in self.pops.items():
            s = inputs[name] if name in inputs else outs[name]
            rate = getattr(self, f"rate__{name}")
            tau = pop.homeostasis.tau_rate if pop.homeostasis else 1000.0
            decay = math.exp(-self.dt * k_steps / tau)
            rate.mul_(decay).add_(s.float().mean(0) * (1 - decay))
            hp = pop.homeostasis
            if hp is None:
                continue
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

    @torch.no_grad()
    def reset(self, mask: Tensor) -> None:
        """Reset the fast state (membranes, traces, eligibility, STP) of agents where ``mask [B]`` is True.

        Weights, masks, homeostatic excitability and rate estimates are kept: they are what was learned.
        """
        m1 = mask.view(-1, 1)
        m2 = mask.view(-1, 1, 1)
        for name, buf in self.named_buffers():
            kind = name.split("__", 1)[0]
            if kind in ("v", "ref", "theta", "u", "last", "xpre", "xpost"):
                fill = self.pops[name.split("__", 1)[1]].lif.v_rest if kind == "v" else 0.0
                buf.copy_(torch.where(m1, torch.full_like(buf, fill), buf))
            elif kind == "e":
                buf.copy_(torch.where(m2, torch.zeros_like(buf), buf))
            elif kind == "stpu":
                proj = self.projs[name.split("__", 1)[1].replace("__", "->")]
                buf.copy_(torch.where(m1, torch.full_like(buf, proj.stp.U), buf))
            elif kind == "stpx":
                buf.copy_(torch.where(m1, torch.ones_like(buf), buf))


class _Window:
    """Bookkeeping of the event engine for one ``run``: stacked factors and dopamine coefficients.

    See :func:`plasticity.fold_window` for the algebra. With per-substep dopamine, the current of
    substep ``t`` also needs the weight change accumulated since the window began, which is applied
    here in low-rank form (only rows of inputs that spiked are read).
    """

    def __init__(self, brain: Brain, k_steps: int, dopamine: Optional[Tensor]):
        self.brain, self.k, self.t = brain, k_steps, 0
        self.x: dict[str, list[Tensor]] = {}
        self.y: dict[str, list[Tensor]] = {}
        self.has_dopamine = dopamine is not None
        b = brain.batch
        dev = brain.counter.device
        self.c = {p.name: torch.zeros(b, device=dev) for p in brain.projs.values() if p.plastic}
        self.a = {p.name: [] for p in brain.projs.values() if p.plastic}  # per step, gain [B]
        self.e_rows = {}

    def add(self, proj: Projection, x: Tensor, y: Tensor):
        self.x.setdefault(proj.name, []).append(x)
        self.y.setdefault(proj.name, []).append(y)
        self.a[proj.name].append(torch.zeros(self.brain.batch, device=x.device, dtype=x.dtype))

    def advance(self, d_t: Tensor):
        """Dopamine ``[B]`` arrived after substep ``t``: update c and a_m for m <= t."""
        for proj in self.brain.projs.values():
            if not proj.plastic:
                continue
            d = proj.trace_decay
            name = proj.name
            self.c[name] += d_t * d ** (self.t + 1)
            for m, a in enumerate(self.a[name]):
                a += d_t * d ** (self.t - m)
        self.t += 1

    def correction(self, proj: Projection, pre: Tensor, t: int) -> Tensor:
        """Extra current ``[B, Q]`` at substep ``t`` from weight changes made earlier in this window."""
        if not self.has_dopamine or not proj.plastic or t == 0:
            return 0.0
        b = self.brain
        if proj.name not in self.e_rows:
            eff = b._last_efficacy[proj.name].transpose(0, 1)  # [B, K, P]
            e0 = b.eligibility(proj.name)
            self.e_rows[proj.name] = propagate_events(eff, e0) if eff.mean() <= 0.1 else propagate(eff, e0)
        out = self.e_rows[proj.name][:, t] * self.c[proj.name].view(-1, 1)
        xs, ys = self.x[proj.name][:t], self.y[proj.name][:t]
        x = torch.cat(xs, dim=-1)  # [B, P, r t]
        y = torch.cat(ys, dim=-2)  # [B, r t, Q]
        r = xs[0].shape[-1]
        gain = torch.stack(self.a[proj.name][:t], dim=1).repeat_interleave(r, dim=1)  # [B, r t]
        proj_pre = torch.bmm(pre.unsqueeze(1), x).squeeze(1) * gain  # [B, r t]
        out = out + torch.bmm(proj_pre.unsqueeze(1), y).squeeze(1)
        return out * (proj.lr * proj.sign)

    def fold(self):
        b = self.brain
        for proj in b.projs.values():
            if not proj.plastic or proj.name not in self.x:
                continue
            xs, ys = self.x[proj.name], self.y[proj.name]
            r, n = xs[0].shape[-1], len(xs)
            x, y = torch.cat(xs, dim=-1), torch.cat(ys, dim=-2)
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
            if self.has_dopamine:
                gain = torch.stack(self.a[proj.name], dim=1).repeat_interleave(r, dim=1)
                w_new, e_new = pl.fold_window(w=w, e=e, x=x, y=y, step_decays=step_decays, total_decay=d ** n,
                                              event_gain=gain, trace_gain=self.c[proj.name], lr=proj.lr,
                                              w_min=proj.w_min, w_max=proj.w_max, soft_bound=proj.soft_bound,
                                              mask=mask)
                w.copy_(w_new)
                e.copy_(e_new)
            else:
                torch.baddbmm(e, x * step_decays, y, beta=d ** n, out=e)
