"""The reference agent step: ``(spec, state, obs, reward, terminated, truncated) -> (action, state, info)``.

One call per environment step, for ``B`` independent agents at once, in torch on any device::

    obs [B, D] -> encoder (Gaussian fields, sensory adaptation) -> input spikes [K, B, N_in]
      -> brain window of K substeps: motor populations (actor) and value neurons (critic)
      -> V(s) = low + (high - low) * mean firing probability of the value neurons
      -> dopamine for the PREVIOUS decision: delta = r + gamma V(s) (1 - terminated) - V(s_prev)
         (+ novelty bonus); W += lr * gain * delta * e; then this window's events enter e
      -> homeostasis, structural plasticity; autoreset; decoder: motor spike counts -> action

No replay buffer, no batch of episodes, no backward pass: the only learning is the brain's local
three-factor rule. Gymnasium's vector autoreset (NEXT_STEP) is handled here: the step after an episode ends
is a reset step whose action is ignored, so the decision made on a final observation is never learned from,
and the fast state (neurons, traces, eligibility, adaptation) of that agent is reset. ``terminated`` and
``truncated`` stay apart: truncation bootstraps from V of the final observation.

The numba kernel (:mod:`.kernel`) computes the same step agent by agent; tests/test_equivalence.py holds
them in lockstep for every shipped config.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor

from spikegym.brains import step as B
from spikegym.brains.random import uniform
from spikegym.brains.state import reset_state

from .decoders import continuous_action, discrete_action
from .adaptation import AdaptationState
from .encoders import reset_adaptation
from .modules import ACTOR, CRITIC, modules_update
from .renewal import renew, renewal_due
from .novelty import NoveltyState, SimHashParams, ach_gain, bonus_weight, novelty_neurons_step, novelty_step, td_surprise
from . import serotonin as S
from .spec import SENSOR_STREAM, TIE_STREAM, AgentSpec
from .state import AgentState


class StepInfo(NamedTuple):
    """What one step did, per agent ``[B]`` unless said: what the loop logs."""

    delta: Tensor                 # dopamine: the TD error (or reward - baseline) of the previous decision
    value: Tensor                 # V(s) of this observation
    extrinsic: Tensor             # the internal reward the learner saw (failure signal or scaled reward)
    intrinsic: Tensor             # the novelty bonus added to it (0 without curiosity)
    novelty: Tensor               # novelty of the sensory pattern in (0, 1] (0 without curiosity)
    learnable: Tensor             # bool: the previous decision may be learned from (not a reset step)
    ach_gain: Optional[Tensor]    # plasticity gain (None: 1 everywhere)
    surprise: Optional[Tensor]    # TD surprise (None: off)
    adaptation: Optional[Tensor]  # mean adaptation level of the sensory fields (None: no adaptation)
    sensors: Tensor               # [K, B, N_in] input spikes
    motor: Tensor                 # [K, B, N_motor] motor spikes
    spikes: Tensor                # [B] spikes of all non-input neurons in this decision (energy)
    module: Optional[Tensor] = None  # [B] int64 the active context module after this step (None: modules off)


def as_tensors(obs, reward, terminated, truncated, device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The env's arrays as tensors on ``device``: obs ``[B, D]`` float32 (``[B]`` becomes ``[B, 1]``),
    reward float32, terminated and ended (terminated or truncated) bool."""
    obs = torch.as_tensor(obs, dtype=torch.float32, device=device)
    if obs.dim() == 1:  # a Discrete observation space gives one number per agent
        obs = obs[:, None]
    term = torch.as_tensor(terminated, dtype=torch.bool, device=device)
    ended = term | torch.as_tensor(truncated, dtype=torch.bool, device=device)
    return obs, torch.as_tensor(reward, dtype=torch.float32, device=device), term, ended


def internal_reward(spec: AgentSpec, reward: Tensor, term: Tensor) -> Tensor:
    """What the learner sees: the failure signal (``env.failure_reward`` on termination, else 0) or the
    scaled reward."""
    env = spec.cfg.env
    if env.failure_reward is not None:
        return torch.where(term, env.failure_reward, 0.0)
    return reward * env.reward_scale


@torch.no_grad()
def agent_step(spec: AgentSpec, state: AgentState, obs, reward, terminated, truncated, *,
               learn: bool = True) -> tuple[Tensor, AgentState, StepInfo]:
    """Learn from the previous transition and choose the next action.

    Args:
        obs: ``[B, D]`` observation after the previous env step (a final observation if it ended).
        reward, terminated, truncated: ``[B]`` from the previous env step (zeros on the first call).
        learn: False acts without changing any weight: no dopamine, no homeostasis or structural plasticity,
            no novelty counts (evaluation). Fast state (neurons, traces, adaptation), the running observation
            statistics and the step count (which fades the curiosity bonus) move.
    Returns:
        ``(action, new state, info)``: actions ``[B]`` (int64) or ``[B, A]`` (float32), on the spec's device.
    """
    cfg, k_steps = spec.cfg, spec.K
    obs, reward, term, ended = as_tensors(obs, reward, terminated, truncated, spec.device)
    r = internal_reward(spec, reward, term)
    counter = int(state.brain.counter)
    keys = state.brain.keys

    # --- sensing: Gaussian fields with adaptation -> Bernoulli spikes from each agent's own stream
    a = cfg.encoder.adaptation
    punish = (r <= -a.punishment_threshold) if a.sensitize_on_punishment and a.enabled else None
    probs, encoder, gain_fields = spec.encoder.code(state.encoder, obs, K=k_steps, sensitize=punish)
    if "sensors" in state.lesion:  # lesioned sensor neurons (agents/lesion.py) never spike
        probs = probs * state.lesion["sensors"]
    b, n_in = probs.shape
    sensors = (uniform(keys, counter, (k_steps, b, n_in), stream=SENSOR_STREAM) < probs).float()

    # --- acting: K substeps of the brain; this decision's plasticity events wait for the dopamine
    out, brain = B.window(spec.brain, state.brain, {"sensors": sensors})
    value = out.prob["critic"].mean(dim=(0, 2)) * (spec.value_high - spec.value_low) + spec.value_low

    # --- learning (the only one there is): dopamine about the previous decision
    critic, novelty_state = state.critic, state.novelty
    intrinsic = novelty = torch.zeros_like(r)
    if spec.novelty is not None and learn:  # (an evaluation leaves the familiarity counts alone)
        bonus, novelty, novelty_state = _novelty(spec, state.novelty, probs)
        intrinsic = bonus * bonus_weight(int(state.steps), cfg.novelty.decay_steps)
    delta = _dopamine(spec, critic, r + intrinsic, value, term)
    delta = torch.where(critic.learnable, delta, 0.0)
    if cfg.dopamine.serotonin.enabled and learn:  # the running mean reward moves after this TD error used it
        critic = critic._replace(serotonin=S.update(critic.serotonin, r, critic.learnable, cfg.dopamine.serotonin))
    gain = surprise = None
    if learn:
        gain = ach_gain(novelty, cfg.novelty.ach_gain) if spec.novelty is not None else None
        if spec.surprise:
            surprise, critic = _surprise(spec, critic, delta, r)
            if cfg.novelty.surprise_gain > 0:
                gain = (1.0 if gain is None else gain) + cfg.novelty.surprise_gain * surprise
        brain = B.learn(spec.brain, brain, delta if gain is None else delta * gain)
        if surprise is not None and cfg.novelty.surprise_shrink > 0:
            brain = B.shrink(spec.brain, brain, "motor", (1.0 - cfg.novelty.surprise_shrink * surprise).clamp(min=0.0))
        if cfg.dopamine.mode == "baseline":
            m = cfg.dopamine.baseline_decay
            critic = critic._replace(reward_mean=torch.where(critic.learnable, m * critic.reward_mean + (1 - m) * r,
                                                             critic.reward_mean))
    brain = B.fold(spec.brain, brain, out.events)
    if learn:
        brain = B.structural(spec.brain, B.homeostasis(spec.brain, brain, k_steps))
        if spec.renewal is not None and renewal_due(spec.renewal, int(brain.windows)):
            brain, _ = renew(spec.brain, brain, spec.renewal)  # dormant and saturated motor neurons start afresh
    modules, switch = state.modules, None
    if learn and spec.modules is not None:  # context modules: a persistent surprise takes up another weight set
        brain, modules, switch = _modules(spec, modules, brain, delta, r, state.critic.learnable)

    # --- autoreset: the next env step only resets these agents, so forget this decision
    brain = reset_state(spec.brain, brain, ended)
    if gain_fields is not None:
        encoder = reset_adaptation(encoder, ended)
    # (a switch's next TD error would mix two critics: not learned from)
    critic = critic._replace(learnable=~ended if switch is None else ~ended & ~switch, value_prev=value)
    new = AgentState(brain, encoder, novelty_state, critic, state.steps + 1, state.lesion, modules)

    motor = out.spikes["motor"]
    if spec.discrete:
        ties = uniform(keys, counter, (b, spec.n_groups), stream=TIE_STREAM)
        action = discrete_action(motor, spec.n_groups, ties)
    else:
        action = continuous_action(motor, spec.act_low, spec.act_high, gain=cfg.brain.action_gain)
    info = StepInfo(delta, value, r, intrinsic, novelty, state.critic.learnable, gain, surprise,
                    None if gain_fields is None else encoder.level.mean(-1), sensors, motor,
                    sum(s.sum(dim=(0, 2)) for s in out.spikes.values()), modules.get("active"))
    return action, new, info


def _modules(spec: AgentSpec, mods: dict[str, Tensor], brain, delta: Tensor, r: Tensor, learnable: Tensor):
    """Context modules (:mod:`.modules`): ``(brain, module state, switch [B])``; a switch clears the eligibility."""
    assert spec.modules is not None
    live = {"actor": brain.w[ACTOR], "critic": brain.w[CRITIC]}
    if ACTOR in brain.consolidation:  # consolidation belongs to the weights: it switches with them
        live["consolidation"] = brain.consolidation[ACTOR]
    switch, mods, live = modules_update(spec.modules, mods, live, delta, r, learnable, brain.mask.get(ACTOR))
    if bool(switch.any()):
        keep = (~switch).float().view(-1, 1, 1)
        brain = brain._replace(w={**brain.w, ACTOR: live["actor"], CRITIC: live["critic"]},
                               e={**brain.e, ACTOR: brain.e[ACTOR] * keep, CRITIC: brain.e[CRITIC] * keep})
        if "consolidation" in live:
            brain = brain._replace(consolidation={**brain.consolidation, ACTOR: live["consolidation"]})
    return brain, mods, switch


def _novelty(spec: AgentSpec, state: dict[str, Tensor], probs: Tensor):
    """``(bonus, novelty, new state)`` of the sensory pattern (the noiseless one: same obs, same bucket)."""
    if isinstance(spec.novelty, SimHashParams):
        bonus, novelty, st = novelty_step(probs, NoveltyState(state["counts"]), spec.novelty)
        return bonus, novelty, {"counts": st.counts}
    assert spec.novelty is not None  # agent_step calls this only when novelty is on
    bonus, novelty, st = novelty_neurons_step(probs, _adaptation(state), spec.novelty)
    return bonus, novelty, {"level": st.level, "last_input": st.last_input}


def _adaptation(state: dict[str, Tensor]) -> AdaptationState:
    return AdaptationState(state["level"], state["last_input"])


def _dopamine(spec: AgentSpec, critic, r: Tensor, value: Tensor, term: Tensor) -> Tensor:
    d = spec.cfg.dopamine
    if d.mode == "baseline":
        delta = r - critic.reward_mean
    else:  # r + gamma V(s') (1 - terminated) - V(s); serotonin sets gamma per agent
        gamma = S.discount(critic.serotonin, d.serotonin) if d.serotonin.enabled else d.gamma
        delta = (gamma * value).masked_fill(term, 0.0) + r - critic.value_prev
    return delta if d.clip is None else delta.clamp(-d.clip, d.clip)


def _surprise(spec: AgentSpec, critic, delta: Tensor, r: Tensor):
    """TD surprise ``[B]`` of the errors ``novelty.surprise_errors`` picks, and the critic state with its means."""
    n = spec.cfg.novelty
    if n.surprise_errors == "absolute":
        errors = delta.abs()
    else:  # disappointment or pain only: while an agent learns, both grow rarer
        errors = (delta if n.surprise_errors == "negative" else r).neg().clamp_min(0.0)
    surprise, fast, slow = td_surprise(errors, critic.td_fast, critic.td_slow, fast_steps=n.surprise_fast_steps,
                                       slow_steps=n.surprise_slow_steps)
    # reset steps carry no TD error: they move neither mean
    return surprise, critic._replace(td_fast=torch.where(critic.learnable, fast, critic.td_fast),
                                     td_slow=torch.where(critic.learnable, slow, critic.td_slow))
