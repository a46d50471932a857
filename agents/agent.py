"""The Agent: observations -> spikes -> actions, learning at every environment step.

One :meth:`Agent.step` per environment step, for ``B`` independent agents at once::

    obs [B, D] -> encoder (Gaussian fields, sensory adaptation) -> input spikes [K, B, N_in]
      -> brain.run over K substeps: motor populations (actor) and value neurons (critic)
      -> critic value V(s) = low + (high - low) * mean firing probability of the value neurons
      -> dopamine for the PREVIOUS decision: delta = r + gamma V(s) (1 - terminated) - V(s_prev)
         (+ novelty bonus); brain.learn(delta, acetylcholine gain); then this decision's
         plasticity events enter the eligibility traces (Brain.run(defer=True) / commit)
      -> decoder: motor spike counts -> action

No replay buffer, no batch of episodes, no backward pass: the only learning is the brain's local
three-factor rule. Gymnasium's vector autoreset (NEXT_STEP) is handled here: the step after an
episode ends is a reset step whose action is ignored, so the decision made on a final observation is
never learned from, and the fast state (neurons, traces, eligibility, adaptation) of that agent is
reset. ``terminated`` and ``truncated`` stay apart: truncation bootstraps from V of the final observation.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from spikegym.brains.network import Brain, Population, Projection, no_grad
from spikegym.brains.neurons import EscapeParams, LIFParams
from spikegym.brains.plasticity import HomeostasisParams, StdpParams, StructuralParams
from spikegym.brains.random import UNIT, CounterNoise, bernoulli_threshold
from spikegym.brains.synapses import TMParams

from .decoders import continuous_action, discrete_action
from .encoders import AdaptationParams, PopulationEncoder
from .fastpath import FastStep
from .novelty import NoveltyDetector, ach_gain, bonus_weight, td_surprise

_SENSOR_STREAM = 1 << 30
_TIE_STREAM = (1 << 30) + 1


def build_brain(cfg, n_inputs: int, n_motor: int, *, batch: int, seed: int, device, agent_index0: int = 0) -> Brain:
    """The agent's network: sensors -> motor populations (actor) and sensors -> value neurons (critic)."""
    b, p = cfg.brain, cfg.plasticity
    model = b.neuron
    lif = LIFParams(tau_mem=b.tau_mem, v_th=b.v_th, t_ref=b.tau_ref, theta_plus=0.05 if model == "alif" else 0.0)
    homeo = None
    if b.homeostasis.enabled:
        h = b.homeostasis
        homeo = HomeostasisParams(target_rate=h.target_rate, eta=h.eta, tau_rate=h.tau_rate,
                                  threshold=h.mode in ("threshold", "both"), scaling=h.mode in ("scaling", "both"))
    pops = [
        Population("sensors", n_inputs, "input"),
        Population("motor", n_motor, model, lif=lif, escape=EscapeParams(slope=b.slope, bias=b.motor_bias), homeostasis=homeo),
        Population("critic", b.critic_size, "escape", escape=EscapeParams(slope=b.slope, bias=critic_bias(cfg))),
    ]
    k = b.substeps
    stp = TMParams(b.stp.U, b.stp.tau_facilitation, b.stp.tau_depression) if b.stp.enabled else None
    structural = None
    if b.structural.enabled:
        s = b.structural
        structural = StructuralParams(s.prune_below, s.prune_after, s.grow, s.max_density, s.w_init)
    w_bound = p.w_max
    actor_rule = "node_perturbation" if (p.rule == "node_perturbation" and model == "escape") else "stdp"
    projections = [
        Projection("sensors", "motor", rule=actor_rule, lr=p.actor_lr,
                   # eligibility decay is configured per decision; the brain applies it per substep
                   trace_decay=p.actor_trace_decay ** (1.0 / k), w_init_std=b.w_init_std,
                   w_min=None if w_bound is None else -w_bound, w_max=w_bound, soft_bound=p.soft_bound and w_bound is not None,
                   stdp=StdpParams(p.stdp.a_plus, p.stdp.a_minus, p.stdp.tau_plus, p.stdp.tau_minus, p.stdp.hetero_ltd),
                   stp=stp, structural=structural, structural_every=s.every if structural else 1000,
                   density=b.structural.max_density if structural else 1.0),
        Projection("sensors", "critic", rule="critic", lr=p.critic_lr, trace_decay=p.critic_trace_decay ** (1.0 / k),
                   w_init_std=b.w_init_std, critic_scale=p.critic_scale, w_min=None if w_bound is None else -w_bound, w_max=w_bound),
    ]
    if b.lateral_inhibition > 0:
        projections.append(Projection("motor", "motor", sign=-1.0, w_init_mean=b.lateral_inhibition))
    engine = b.engine
    return Brain(pops, projections, batch=batch, dt=b.dt, seed=seed, agent_index0=agent_index0,
                 engine=engine, device=device)


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


def _lateral_mask(brain: Brain, groups: int):
    """Inhibition only between different motor populations (not within one)."""
    if "motor->motor" not in brain.projs:
        return
    w = brain.weights("motor->motor")
    n = w.shape[1]
    g = torch.arange(n, device=w.device) // (n // groups)
    w.mul_((g.view(-1, 1) != g.view(1, -1)).to(w.dtype))


class Agent:
    """``B`` independent spiking agents acting in a vector env and learning online.

    Args:
        cfg: the run's :class:`spikegym.training.config.Config`.
        obs_low, obs_high: observation bounds ``[D]`` (infinite where unbounded).
        action_space: a single env's action space (``Discrete`` or ``Box``).
    """

    def __init__(self, cfg, obs_low, obs_high, action_space, *, num_agents: int, seed: int, device="cpu",
                 agent_index0: int = 0):
        self.cfg = cfg
        self._init_args = (obs_low, obs_high, action_space, seed)
        self.device = torch.device(device)
        self.B = num_agents
        self.K = cfg.brain.substeps
        e = cfg.encoder
        adaptation = None
        if e.adaptation.enabled:
            a = e.adaptation
            adaptation = AdaptationParams(a.tau_adapt, a.tau_recover, a.strength, a.sensitize_threshold)
        low = np.asarray(e.low if e.low is not None else obs_low, dtype=np.float64)
        high = np.asarray(e.high if e.high is not None else obs_high, dtype=np.float64)
        normalize = {"auto": "auto", "space": "bounds", "fixed": "bounds", "running": "running"}[e.normalize]
        self.encoder = PopulationEncoder(low, high, num_agents, fields=e.fields, neurons_per_field=e.neurons_per_field,
                                         max_prob=e.max_prob, bias_neurons=e.bias_neurons, normalize=normalize,
                                         running_clip=e.running_clip, adaptation=adaptation, dt_ms=cfg.brain.dt,
                                         pairs=e.pairs, pair_fields=e.pair_fields, angles=e.angles,
                                         device=self.device)
        self.discrete = hasattr(action_space, "n")
        if self.discrete:
            self.n_actions = int(action_space.n)
            n_groups = self.n_actions
        else:
            self.act_low = torch.as_tensor(action_space.low, dtype=torch.float32, device=self.device).reshape(-1)
            self.act_high = torch.as_tensor(action_space.high, dtype=torch.float32, device=self.device).reshape(-1)
            n_groups = 2 * self.act_low.numel()
        self.n_groups = n_groups
        self.brain = build_brain(cfg, self.encoder.n_out, n_groups * cfg.brain.motor_size, batch=num_agents,
                                 seed=seed, device=self.device, agent_index0=agent_index0)
        _lateral_mask(self.brain, n_groups)
        self.novelty = None
        if cfg.novelty.enabled:
            n = cfg.novelty
            habituation = AdaptationParams(n.habituation_steps, n.recovery_steps, n.habituation_strength, float("inf"))
            self.novelty = NoveltyDetector(self.encoder.n_out, num_agents, beta=n.beta, hash_bits=n.hash_bits,
                                           seed=seed, device=self.device,
                                           mode={"hash": "simhash", "neurons": "neurons"}[n.mode],
                                           n_neurons=n.neurons, active=n.active, adaptation=habituation)
        # V = value_low + (value_high - value_low) * mean critic firing probability
        self.value_low, self.value_high = cfg.dopamine.value_range(cfg.env.failure_reward)
        z = lambda dtype=torch.float32: torch.zeros(num_agents, device=self.device, dtype=dtype)
        self.state = {"value_prev": z(), "learnable": z(torch.bool), "reward_mean": z(), "steps": torch.zeros((), dtype=torch.int64)}
        if cfg.novelty.surprise_gain > 0 or cfg.novelty.surprise_shrink > 0:  # recent and long-run means for td_surprise
            self.state.update(td_fast=z(), td_slow=z())
        self.last: dict[str, Tensor] = {}
        self._noise = CounterNoise()  # cached hash words of the sensor and tie-break streams
        self._scratch: dict = {}
        # the same step as one compiled kernel (agents/fastpath.py), where this agent allows it
        self.fast = FastStep.build(self) if cfg.run.kernels == "auto" else None

    # ------------------------------------------------------------------ one environment step

    @no_grad
    def step(self, obs, reward, terminated, truncated, *, learn: bool = True, global_step: int = 0):
        """Learn from the previous transition and choose the next action.

        Args:
            obs: ``[B, D]`` observation after the previous env step (a final observation if it ended).
            reward, terminated, truncated: ``[B]`` from the previous env step (zeros on the first call).
            learn: False acts without changing any weight: no dopamine, no homeostasis or structural
                plasticity, no novelty counts (evaluation). Fast state (neurons, traces, adaptation) moves.
        Returns:
            actions for the vector env: ``[B]`` ints (discrete) or ``[B, A]`` floats, as numpy.
        """
        if self.fast is not None:
            return self.fast.step(obs, reward, terminated, truncated, learn=learn)
        dev = self.device
        if np.ndim(obs) == 1:  # a Discrete observation space gives one number per agent: [B] -> [B, 1]
            obs = obs[:, None]
        term_np = np.asarray(terminated, dtype=bool)
        ended_np = term_np | np.asarray(truncated, dtype=bool)
        reward = _tensor(np.asarray(reward, dtype=np.float32), dev)
        term = _tensor(term_np, dev)
        ended = _tensor(ended_np, dev)
        r = self._internal_reward(reward, term)

        # --- sensing: Gaussian fields with adaptation -> Bernoulli spikes from each agent's own stream
        a = self.cfg.encoder.adaptation
        punish = (r <= -a.punishment_threshold) if a.sensitize_on_punishment and self.encoder.adaptation is not None else None
        probs = self.encoder.probabilities(obs, K=self.K, sensitize=punish)
        sensors, ties = self._sense(probs, self.brain.step_count())

        # --- acting: K substeps of the brain; this decision's plasticity events wait for the dopamine
        out = self.brain.run({"sensors": sensors}, defer=True, plastic=learn)
        value = self.brain.last_prob["critic"].mean(dim=(0, 2))  # mean firing probability -> value range
        if self.value_high - self.value_low != 1.0:
            value.mul_(self.value_high - self.value_low)
        value.add_(self.value_low)

        # --- learning (the only one there is): dopamine about the previous decision
        curious = self.novelty is not None and learn  # (an evaluation leaves the familiarity counts alone)
        if curious:
            intrinsic, novelty = self.novelty(probs)  # the noiseless pattern: same obs, same bucket
            intrinsic = intrinsic * bonus_weight(global_step, self.cfg.novelty.decay_steps)
            delta = self._dopamine(r + intrinsic, value, term)
        else:
            intrinsic = novelty = torch.zeros_like(r)  # (r + 0 == r)
            delta = self._dopamine(r, value, term)
        learnable = self.state["learnable"]
        delta = torch.where(learnable, delta, 0.0)
        gain = surprise = None
        if learn:
            gain, surprise = self._ach_gain(novelty if curious else None, delta, r, learnable)
            self.brain.learn(delta, gain)
            if surprise is not None and self.cfg.novelty.surprise_shrink > 0:
                self.brain.shrink("motor", (1.0 - self.cfg.novelty.surprise_shrink * surprise).clamp_(min=0.0))
            if self.cfg.dopamine.mode == "baseline":
                m = self.cfg.dopamine.baseline_decay
                rm = self.state["reward_mean"]
                self.state["reward_mean"] = torch.where(learnable, m * rm + (1 - m) * r, rm)
        self.brain.commit()

        # --- autoreset: the next env step only resets these agents, so forget this decision
        if ended_np.any():
            self.brain.reset(ended)
            self.encoder.reset(ended)
        self.state["learnable"] = ~ended
        self.state["value_prev"] = value
        self.state["steps"] += 1

        motor = out["motor"]
        if self.discrete:
            action = discrete_action(motor, self.n_groups, ties)
        else:
            action = continuous_action(motor, self.act_low, self.act_high, gain=self.cfg.brain.action_gain)
        self.last = {"delta": delta, "value": value, "intrinsic": intrinsic, "novelty": novelty, "extrinsic": r,
                     "learnable": learnable, "motor": motor, "sensors": sensors,
                     "ach_gain": gain}  # None: no acetylcholine gain (1 everywhere)
        if surprise is not None:
            self.last["surprise"] = surprise
        return action.numpy() if action.device.type == "cpu" else action.cpu().numpy()

    def _sense(self, probs: Tensor, counter: int) -> tuple[Tensor, Optional[Tensor]]:
        """Input spikes ``[K, B, N_in]`` (Bernoulli ``probs [B, N_in]`` in every substep) and tie-break noise ``[B, G]``.

        Both come from one hash over ``[K, B, N_in (+ G)]`` (:class:`~spikegym.brains.random.CounterNoise`):
        the sensors are exactly ``uniform(keys, counter, (K, B, N_in), stream=_SENSOR_STREAM) < probs`` and the
        ties ``uniform(keys, counter, (B, G), stream=_TIE_STREAM)``.
        """
        b, n = probs.shape
        g = self.n_groups if self.discrete else 0
        blocks = self._sense_blocks(n)
        key = (self.K, n + g, probs.device)
        bufs = self._scratch.get(key)
        if bufs is None:
            shape = (self.K, b, n + g)
            bufs = self._scratch[key] = (torch.empty(shape, dtype=torch.int32, device=probs.device),
                                         torch.empty(shape, dtype=torch.int32, device=probs.device),
                                         torch.empty(shape, dtype=probs.dtype, device=probs.device))
        a = self._noise.hash(self.brain.keys, blocks, counter, self.K, out=bufs[0], tmp=bufs[1])
        a = bufs[2].copy_(a)  # the 24-bit integers, exactly, as floats
        spikes = torch.empty(self.K, b, n, dtype=probs.dtype, device=probs.device)  # fresh: the brain keeps it
        torch.lt(a[..., :n], bernoulli_threshold(probs), out=spikes)
        ties = a[0, :, n:].mul(UNIT).add_(0.5) if g else None  # = to_uniform of the tie stream's words
        return spikes, ties

    def _sense_blocks(self, n_in: int) -> tuple[tuple[int, int], ...]:
        """The noise column blocks ``(stream, n)`` of the sensors and, for discrete actions, the tie breaks."""
        g = self.n_groups if self.discrete else 0
        return ((_SENSOR_STREAM, n_in), (_TIE_STREAM, g)) if g else ((_SENSOR_STREAM, n_in),)

    def _ach_gain(self, novelty: Optional[Tensor], delta: Tensor, r: Tensor,
                  learnable: Tensor) -> tuple[Optional[Tensor], Optional[Tensor]]:
        """Acetylcholine-like plasticity gain ``[B]`` (None: 1 everywhere) and TD surprise ``[B]`` (None: off).

        ``1 + ach_gain * novelty`` (with a novelty detector) ``+ surprise_gain * surprise`` (with TD surprise
        on: the world changed, errors outgrow their habit). Surprise is also computed for ``surprise_shrink``.
        """
        n = self.cfg.novelty
        gain = None if novelty is None else ach_gain(novelty, n.ach_gain)
        if n.surprise_gain <= 0 and n.surprise_shrink <= 0:
            return gain, None
        if n.surprise_errors == "absolute":
            errors = delta.abs()
        else:  # disappointment or pain only: while an agent learns, both grow rarer
            errors = (delta if n.surprise_errors == "negative" else r).neg().clamp_min_(0.0)
        surprise, fast, slow = td_surprise(errors, self.state["td_fast"], self.state["td_slow"],
                                           fast_steps=n.surprise_fast_steps, slow_steps=n.surprise_slow_steps)
        # reset steps carry no TD error: they move neither mean
        self.state["td_fast"] = torch.where(learnable, fast, self.state["td_fast"])
        self.state["td_slow"] = torch.where(learnable, slow, self.state["td_slow"])
        if n.surprise_gain > 0:
            gain = (1.0 if gain is None else gain) + n.surprise_gain * surprise
        return gain, surprise

    def _internal_reward(self, reward: Tensor, term: Tensor) -> Tensor:
        env = self.cfg.env
        if env.failure_reward is not None:
            return torch.where(term, env.failure_reward, 0.0)  # float32, as reward
        return reward * env.reward_scale

    def _dopamine(self, r: Tensor, value: Tensor, term: Tensor) -> Tensor:
        d = self.cfg.dopamine
        if d.mode == "baseline":
            delta = r - self.state["reward_mean"]
        else:
            # r + gamma V(s') (1 - terminated) - V(s)
            delta = (d.gamma * value).masked_fill_(term, 0.0).add_(r).sub_(self.state["value_prev"])
        if d.clip is not None:
            delta = delta.clamp(-d.clip, d.clip)
        return delta

    # ------------------------------------------------------------------ persistence

    def select(self, index: int) -> "Agent":
        """A one-agent copy of agent ``index`` (same weights, same noise stream), e.g. for videos."""
        obs_low, obs_high, action_space, seed = self._init_args
        single = Agent(self.cfg, obs_low, obs_high, action_space, num_agents=1, seed=seed, device=self.device,
                       agent_index0=index)
        fresh = single.state_dict()
        mine = {}
        for k, v in self.state_dict().items():
            # per-agent tensors have the agent axis first; shared ones (ranges, projections) have the same shape
            mine[k] = v if v.shape == fresh[k].shape else v[index:index + 1]
        single.load_state_dict(mine)
        return single

    def state_dict(self) -> dict[str, Tensor]:
        """Everything needed to continue exactly: brain, encoder, novelty and the agent's own tensors."""
        out = {f"brain.{k}": v for k, v in self.brain.state_dict().items()}
        out.update({f"encoder.{k}": v for k, v in self.encoder.state_dict().items()})
        if self.novelty is not None:
            out.update({f"novelty.{k}": v for k, v in self.novelty.state_dict().items()})
        out.update({f"agent.{k}": v for k, v in self.state.items()})
        return out

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        def part(prefix):
            return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        self.brain.load_state_dict(part("brain."))
        self.encoder.load_state_dict(part("encoder."))
        if self.novelty is not None:
            self.novelty.load_state_dict(part("novelty."))
        for k, v in part("agent.").items():
            # a copy: never share tensors with the source (select(i) would otherwise step the population's counter)
            self.state[k] = v.to(self.state[k].device if k in self.state else self.device, copy=True)


def _tensor(a: np.ndarray, device: torch.device) -> Tensor:
    """A numpy array as a tensor on ``device`` (shares memory on CPU: one dispatch instead of two)."""
    t = torch.from_numpy(a if a.flags.writeable else a.copy())
    return t if device.type == "cpu" else t.to(device)

