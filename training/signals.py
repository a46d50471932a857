"""What the run reads out of an agent to log it: the ONE place that touches agent internals.

Everything TensorBoard, the progress lines and the pictures show about the brain comes through
:func:`agent_signals`, :func:`decision_spikes` and :func:`raster_groups`, so that when the agent
hands out a typed step record instead of ``agent.last``/``agent.brain``, only this file changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

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


def agent_signals(agent, step: int) -> Signals:
    """Firing rates, weights, eligibility, dopamine and novelty of the population at ``step``.

    Rates are in Hz (mean over agents and neurons); weights and eligibility are means over agents
    and synapses; the histogram is agent 0's weights. Dopamine and novelty describe the last step.
    """
    out = Signals()
    s = out.scalars
    brain = agent.brain
    for pop in brain.pops:
        s[T.tag(T.BRAIN_RATE, pop=pop)] = brain.rate(pop).mean().item() * 1000.0 / brain.dt
    for name, proj in brain.projs.items():
        w, tag = brain.weights(name), proj_tag(name)
        s[T.tag(T.PLASTICITY_W_MEAN, proj=tag)] = w.mean().item()
        s[T.tag(T.PLASTICITY_W_ABS, proj=tag)] = w.abs().mean().item()
        s[T.tag(T.PLASTICITY_W_STD, proj=tag)] = w.std().item() if w.numel() > 1 else 0.0
        out.histograms[T.tag(T.PLASTICITY_W_HIST, proj=tag)] = w[0].flatten()
        if proj.plastic:
            s[T.tag(T.PLASTICITY_ELIG, proj=tag)] = brain.eligibility(name).abs().mean().item()
    last = agent.last
    if not last:
        return out
    d = last["delta"][last["learnable"]]
    if d.numel():
        s[T.DOPAMINE_MEAN] = d.mean().item()
        s[T.DOPAMINE_STD] = d.std().item() if d.numel() > 1 else 0.0
        s[T.DOPAMINE_ABS] = d.abs().mean().item()
    s[T.DOPAMINE_VALUE] = last["value"].mean().item()
    if agent.novelty is not None:
        novelty = last["novelty"]
        s[T.NOVELTY_INTRINSIC] = last["intrinsic"].mean().item()
        if "extrinsic" in last:
            s[T.NOVELTY_EXTRINSIC] = last["extrinsic"].mean().item()
        s[T.NOVELTY_BONUS] = agent.novelty.beta * novelty.mean().item()
        s[T.NOVELTY_SIGNAL] = novelty.mean().item()
        s[T.NOVELTY_WEIGHT] = bonus_weight(step, agent.cfg.novelty.decay_steps)
        s[T.NOVELTY_NEW_FRACTION] = (novelty >= 1.0).float().mean().item()
        if agent.novelty.mode == "simhash":
            s[T.NOVELTY_OCCUPIED_BUCKETS] = (agent.novelty.counts > 0).sum(-1).float().mean().item()
    if last.get("ach_gain") is not None:
        s[T.PLASTICITY_ACH_GAIN] = last["ach_gain"].mean().item()
    if "surprise" in last:
        s[T.NOVELTY_SURPRISE] = last["surprise"].mean().item()
    if agent.encoder.adaptation is not None:
        s[T.NOVELTY_ADAPTATION] = agent.encoder.adaptation_level().mean().item()
    return out


def decision_spikes(agent, index: int = 0) -> torch.Tensor:
    """Sensor then motor spikes of agent ``index`` over the substeps of its last decision,
    ``[substeps, N_in + N_motor]`` on the CPU (empty before the first step)."""
    last = agent.last
    if not last:
        return torch.zeros(0, 0)
    return torch.cat([last["sensors"][:, index], last["motor"][:, index]], dim=1).cpu()


def raster_groups(agent, motor_size: int) -> list[tuple[str, int]]:
    """Neuron groups of :func:`decision_spikes`' columns: the sensors, then each motor population."""
    groups = [("sensors", int(agent.encoder.n_out))]
    for i in range(agent.n_groups):
        groups.append((f"action {i}" if agent.discrete else f"a{i // 2}{'+-'[i % 2]}", int(motor_size)))
    return groups


def weight_matrix(agent, proj: str, index: int = 0) -> torch.Tensor:
    """Agent ``index``'s weights of projection ``proj``, ``[N_pre, N_post]``."""
    return agent.brain.weights(proj)[index]

