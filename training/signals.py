"""What the run reads out of an agent to log it: the ONE place that touches agent internals.

Everything TensorBoard, the progress lines and the pictures show about the brain comes through
:func:`agent_signals`, :func:`decision_spikes` and :func:`raster_groups`, from the agent's public
accessors (``weights``, ``eligibility``, ``rates``, ``spec``) and the step's typed
:class:`~spikegym.agents.step.StepInfo`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from spikegym.agents import serotonin as S
from spikegym.agents.novelty import bonus_weight
from spikegym.training import tags as T


@dataclass
class Signals:
    """One log step's read-out: ``scalars`` ``{tag: value}``, ``histograms`` ``{tag: 1-D tensor}``."""

    scalars: dict[str, float] = field(default_factory=dict)
    histograms: dict[str, torch.Tensor] = field(default_factory=dict)


def proj_tag(name: str) -> str:
    """A projection name as it appears in tags: ``sensors->motor`` -> ``sensors_to_motor``."""
    return name.replace("->", "_to_")


def agent_signals(agent, info, step: int) -> Signals:
    """Firing rates, weights, eligibility, dopamine and novelty of the population at ``step``.

    ``info`` is the last step's :class:`~spikegym.agents.step.StepInfo` (None before the first step).
    Rates are in Hz (mean over agents and neurons); weights and eligibility are means over agents
    and synapses; the histogram is agent 0's weights. Dopamine and novelty describe the last step.
    """
    out = Signals()
    s = out.scalars
    brain, dt = agent.spec.brain, agent.cfg.brain.dt
    for pop, rate in agent.rates().items():
        s[T.tag(T.BRAIN_RATE, pop=pop)] = rate.mean().item() * 1000.0 / dt
    for name, proj in brain.projs.items():
        w, tag = agent.weights(name), proj_tag(name)
        s[T.tag(T.PLASTICITY_W_MEAN, proj=tag)] = w.mean().item()
        s[T.tag(T.PLASTICITY_W_ABS, proj=tag)] = w.abs().mean().item()
        s[T.tag(T.PLASTICITY_W_STD, proj=tag)] = w.std().item() if w.numel() > 1 else 0.0
        out.histograms[T.tag(T.PLASTICITY_W_HIST, proj=tag)] = w[0].flatten()
        if proj.plastic:
            s[T.tag(T.PLASTICITY_ELIG, proj=tag)] = agent.eligibility(name).abs().mean().item()
    if info is None:
        return out
    s[T.BRAIN_SPIKES_PER_DECISION] = info.spikes.float().mean().item()
    d = info.delta[info.learnable]
    if d.numel():
        s[T.DOPAMINE_MEAN] = d.mean().item()
        s[T.DOPAMINE_STD] = d.std().item() if d.numel() > 1 else 0.0
        s[T.DOPAMINE_ABS] = d.abs().mean().item()
    s[T.DOPAMINE_VALUE] = info.value.mean().item()
    sero = agent.cfg.dopamine.serotonin
    if sero.enabled:
        mean = agent.state.critic.serotonin
        s[T.DOPAMINE_SEROTONIN] = S.level(mean, sero).mean().item()
        s[T.DOPAMINE_GAMMA] = S.discount(mean, sero).mean().item()
    n_cfg = agent.cfg.novelty
    if n_cfg.enabled:
        novelty = info.novelty
        s[T.NOVELTY_INTRINSIC] = info.intrinsic.mean().item()
        s[T.NOVELTY_EXTRINSIC] = info.extrinsic.mean().item()
        s[T.NOVELTY_BONUS] = n_cfg.beta * novelty.mean().item()
        s[T.NOVELTY_SIGNAL] = novelty.mean().item()
        s[T.NOVELTY_WEIGHT] = bonus_weight(step, n_cfg.decay_steps)
        s[T.NOVELTY_NEW_FRACTION] = (novelty >= 1.0).float().mean().item()
        counts = agent.state.novelty.get("counts")
        if counts is not None:
            s[T.NOVELTY_OCCUPIED_BUCKETS] = (counts > 0).sum(-1).float().mean().item()
    if info.ach_gain is not None:
        s[T.PLASTICITY_ACH_GAIN] = info.ach_gain.mean().item()
    if info.surprise is not None:
        s[T.NOVELTY_SURPRISE] = info.surprise.mean().item()
    if info.adaptation is not None:
        s[T.NOVELTY_ADAPTATION] = info.adaptation.mean().item()
    if info.module is not None:  # context modules: which weight set the agents use now
        share = torch.bincount(info.module.cpu(), minlength=agent.cfg.modules.count).float() / info.module.numel()
        for m, v in enumerate(share.tolist()):
            s[T.tag(T.CONTINUAL_MODULE_SHARE, module=str(m))] = v
    return out


def decision_spikes(info, index: int = 0) -> torch.Tensor:
    """Sensor then motor spikes of agent ``index`` over the substeps of a decision (``info``: its StepInfo),
    ``[substeps, N_in + N_motor]`` on the CPU."""
    return torch.cat([info.sensors[:, index], info.motor[:, index]], dim=1).cpu()


def raster_groups(agent, motor_size: int) -> list[tuple[str, int]]:
    """Neuron groups of :func:`decision_spikes`' columns: the sensors, then each motor population."""
    spec = agent.spec
    groups = [("sensors", int(spec.encoder.n_out))]
    for i in range(spec.n_groups):
        groups.append((f"action {i}" if spec.discrete else f"a{i // 2}{'+-'[i % 2]}", int(motor_size)))
    return groups


def weight_matrix(agent, proj: str, index: int = 0) -> torch.Tensor:
    """Agent ``index``'s weights of projection ``proj``, ``[N_pre, N_post]``."""
    return agent.weights(proj)[index]
