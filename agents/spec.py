"""What ``B`` agents are, fixed for a run: the brain's spec, the encoder, the decoder and the modulators.

:class:`AgentSpec` is built once from a validated config and the env's spaces. It holds no state: the state is
:class:`~spikegym.agents.state.AgentState`, and both backends (the torch reference of :mod:`.step` and the
numba kernel of :mod:`.kernel`) read this spec. The network, for ``G`` action groups of ``M`` motor neurons::

    sensors (input, N_in) --plastic, actor rule--> motor (G * M)      [--fixed, inhibitory--> motor]
    sensors             --plastic, critic rule--> critic (C): V = low + (high - low) * mean firing probability
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from spikegym.brains.consolidation import ConsolidationParams
from spikegym.brains.neurons import EscapeParams, LIFParams
from spikegym.brains.plasticity import HomeostasisParams, StdpParams, StructuralParams
from spikegym.brains.spec import BrainSpec, Population, Projection
from spikegym.brains.synapses import TMParams

from .adaptation import AdaptationParams
from .encoders import PopulationEncoder
from .modules import ModuleParams, module_params
from .renewal import RenewalParams
from .novelty import NoveltyNeuronParams, SimHashParams, novelty_neuron_params, simhash_params

#: noise streams of the sensors' Bernoulli spikes and of the tie breaks between action populations
SENSOR_STREAM, TIE_STREAM = 1 << 30, (1 << 30) + 1


def brain_spec(cfg, n_inputs: int, n_motor: int) -> BrainSpec:
    """The agent's network from the config's ``brain`` and ``plasticity`` sections."""
    b, p = cfg.brain, cfg.plasticity
    model = b.neuron
    lif = LIFParams(tau_mem=b.tau_mem, v_th=b.v_th, t_ref=b.tau_ref, theta_plus=0.05 if model == "alif" else 0.0,
                    escape_slope=b.lif_escape_slope)
    homeo = None
    if b.homeostasis.enabled:
        h = b.homeostasis
        homeo = HomeostasisParams(target_rate=h.target_rate, eta=h.eta, tau_rate=h.tau_rate,
                                  threshold=h.mode in ("threshold", "both"), scaling=h.mode in ("scaling", "both"))
    pops = (
        Population("sensors", n_inputs, "input"),
        Population("motor", n_motor, model, lif=lif, escape=EscapeParams(slope=b.slope, bias=b.motor_bias),
                   homeostasis=homeo),
        Population("critic", b.critic_size, "escape", escape=EscapeParams(slope=b.slope, bias=critic_bias(cfg))),
    )
    k = b.substeps
    stp = TMParams(b.stp.U, b.stp.tau_facilitation, b.stp.tau_depression) if b.stp.enabled else None
    s = b.structural
    structural = StructuralParams(s.prune_below, s.prune_after, s.grow, s.max_density, s.w_init) if s.enabled else None
    bound = p.w_max
    c = p.consolidation
    consolidation = ConsolidationParams(c.rate, 1.0 - 1.0 / c.tau_steps) if c.enabled else None
    # node perturbation needs a firing probability: deterministic LIF/ALIF motor neurons learn by STDP
    noisy = model == "escape" or b.lif_escape_slope > 0
    actor_rule = "node_perturbation" if (p.rule == "node_perturbation" and noisy) else "stdp"
    projections = [
        Projection("sensors", "motor", rule=actor_rule, lr=p.actor_lr,
                   # eligibility decay is configured per decision; the brain applies it per substep
                   trace_decay=p.actor_trace_decay ** (1.0 / k), w_init_std=b.w_init_std,
                   w_min=None if bound is None else -bound, w_max=bound, soft_bound=p.soft_bound and bound is not None,
                   stdp=StdpParams(p.stdp.a_plus, p.stdp.a_minus, p.stdp.tau_plus, p.stdp.tau_minus, p.stdp.hetero_ltd,
                                   p.stdp.center),
                   stp=stp, structural=structural, structural_every=s.every,
                   density=s.max_density if structural else 1.0, consolidation=consolidation),
        Projection("sensors", "critic", rule="critic", lr=p.critic_lr, trace_decay=p.critic_trace_decay ** (1.0 / k),
                   w_init_std=b.w_init_std, critic_scale=p.critic_scale, w_min=None if bound is None else -bound,
                   w_max=bound),
    ]
    if b.lateral_inhibition > 0:
        projections.append(Projection("motor", "motor", sign=-1.0, w_init_mean=b.lateral_inhibition))
    return BrainSpec(pops, tuple(projections), b.dt)


def critic_bias(cfg) -> float:
    """The critic neurons' bias: ``brain.critic_bias``, or the one that starts the value at ``dopamine.value_init``.

    With zero initial weights every critic neuron fires with ``p0 = sigmoid(slope * bias)`` and
    ``V = low + (high - low) * p0``, so ``bias = logit((value_init - low) / (high - low)) / slope``.
    """
    v0 = cfg.dopamine.value_init
    if v0 is None:
        return cfg.brain.critic_bias
    low, high = cfg.dopamine.value_range(cfg.env.failure_reward)
    p0 = (v0 - low) / (high - low)
    return math.log(p0 / (1.0 - p0)) / cfg.brain.slope


class AgentSpec:
    """The fixed part of ``B`` agents (see the module docstring).

    Attributes: ``cfg``; ``K`` substeps per decision; ``encoder`` (:class:`PopulationEncoder`, used for its
    constants; the state it keeps is not the agents'); ``brain`` (:class:`BrainSpec`); ``discrete``;
    ``n_groups`` motor populations (actions, or a push-pull pair per action dimension); ``act_low``,
    ``act_high`` ``[A]``; ``novelty`` (:class:`SimHashParams`, :class:`NoveltyNeuronParams` or None);
    ``value_low``, ``value_high``; ``modules`` (:class:`~.modules.ModuleParams` or None); ``renewal`` (:class:`~.renewal.RenewalParams` or
    None); ``device``.
    """

    def __init__(self, cfg, obs_low, obs_high, action_space, *, num_agents: int, device="cpu",
                 seed: int | None = None):
        self.cfg, self.B, self.K, self.device = cfg, num_agents, cfg.brain.substeps, torch.device(device)
        e = cfg.encoder
        adaptation = None
        if e.adaptation.enabled:
            a = e.adaptation
            adaptation = AdaptationParams(a.tau_adapt, a.tau_recover, a.strength, a.sensitize_threshold)
        low = np.asarray(e.low if e.low is not None else obs_low, dtype=np.float64)
        high = np.asarray(e.high if e.high is not None else obs_high, dtype=np.float64)
        normalize = {"auto": "auto", "space": "bounds", "fixed": "bounds", "running": "running"}[e.normalize]
        self.encoder = PopulationEncoder(low, high, 1, fields=e.fields, neurons_per_field=e.neurons_per_field,
                                         max_prob=e.max_prob, bias_neurons=e.bias_neurons, normalize=normalize,
                                         running_clip=e.running_clip, adaptation=adaptation, dt_ms=cfg.brain.dt,
                                         pairs=e.pairs, pair_fields=e.pair_fields, angles=e.angles, device=self.device)
        self.discrete = hasattr(action_space, "n")
        if self.discrete:
            self.n_actions = int(action_space.n)
            self.n_groups = self.n_actions
        else:
            self.act_low = torch.as_tensor(action_space.low, dtype=torch.float32, device=self.device).reshape(-1)
            self.act_high = torch.as_tensor(action_space.high, dtype=torch.float32, device=self.device).reshape(-1)
            self.n_groups = 2 * self.act_low.numel()
        self.motor_size = cfg.brain.motor_size
        self.brain = brain_spec(cfg, self.encoder.n_out, self.n_groups * self.motor_size)
        self.novelty: Optional[SimHashParams | NoveltyNeuronParams] = None
        n, seed = cfg.novelty, cfg.run.seed if seed is None else seed  # the novelty projection's seed: the run's
        if n.enabled:
            if n.mode == "hash":
                self.novelty = simhash_params(self.encoder.n_out, beta=n.beta, hash_bits=n.hash_bits,
                                              seed=seed, device=self.device)
            else:
                habituation = AdaptationParams(n.habituation_steps, n.recovery_steps, n.habituation_strength,
                                               float("inf"))
                self.novelty = novelty_neuron_params(self.encoder.n_out, n_neurons=n.neurons, active=n.active,
                                                     beta=n.beta, seed=seed, adaptation=habituation,
                                                     device=self.device)
        self.value_low, self.value_high = cfg.dopamine.value_range(cfg.env.failure_reward)
        self.modules: Optional[ModuleParams] = module_params(cfg)  # context modules (None: one weight set)
        rn = cfg.plasticity.renewal
        self.renewal: Optional[RenewalParams] = RenewalParams(rn.every, rn.low, rn.high) if rn.enabled else None

    @property
    def surprise(self) -> bool:
        """TD surprise is computed (it drives a plasticity gain or the motor-weight shrink)."""
        return self.cfg.novelty.surprise_gain > 0 or self.cfg.novelty.surprise_shrink > 0

    def lateral_mask(self) -> torch.Tensor:
        """``[M_total, M_total]``: inhibition only between different motor populations (not within one)."""
        n = self.brain.pops["motor"].size
        g = torch.arange(n, device=self.device) // (n // self.n_groups)
        return (g.view(-1, 1) != g.view(1, -1)).float()
