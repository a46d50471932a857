"""Energy of a population of agents: spikes and synaptic events per decision, per population.

A spike costs little; what it sets off costs more: every synapse it reaches is an event (a weight read, an
add). So a decision's energy is counted two ways, per population of the agent (``sensors``, ``motor``,
``critic``):

* spikes: spikes of the population over the decision's ``K`` substeps;
* synaptic events: each neuron's spikes x its existing outgoing synapses (a masked-off synapse, e.g. pruned
  or lesioned, does not count; nor does a zero of a fixed projection, such as lateral inhibition within a
  motor population). The critic has no outgoing synapses: its spikes cost no events.

Everything is read from the step's :class:`~spikegym.agents.step.StepInfo` (``sensors``, ``motor``, and
``spikes`` = motor + critic) and the agents' connectivity, so both backends are measured alike.
:class:`EnergyMeter` adds up spike counts per neuron at every step (a few small tensor ops) and turns them
into events at each log step with the out-degrees of that moment (exact unless structural plasticity
rewires within a log interval).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from spikegym.training import tags as T

POPULATIONS = ("sensors", "motor", "critic")


def out_degrees(brain_spec, brain_state) -> dict[str, Tensor]:
    """Existing outgoing synapses of every neuron ``{population: [B, N] float64}`` (0 for a population
    without outgoing projections).

    A synapse exists where the projection's mask is set; an unmasked plastic projection has all of its
    ``N_pre x N_post`` synapses (a weight of 0 may grow), a fixed one those with a nonzero weight.
    """
    b = brain_state.keys.shape[0]
    deg = {p.name: torch.zeros(b, p.size, dtype=torch.float64, device=brain_state.keys.device)
           for p in brain_spec.populations}
    for name, proj in brain_spec.projs.items():
        if name in brain_state.mask:
            n = brain_state.mask[name].sum(-1)
        elif proj.plastic:
            n = torch.full_like(deg[proj.pre], float(brain_spec.pops[proj.post].size))
        else:
            n = (brain_state.w[name] != 0).sum(-1)
        deg[proj.pre] = deg[proj.pre] + n.to(torch.float64)
    return deg


def decision_counts(info) -> dict[str, Tensor]:
    """Spikes of one decision per neuron ``{population: [B, N]}`` (float64); the critic as ``[B, 1]``
    (StepInfo carries its total only: it has no outgoing synapses, so per-neuron counts are not needed)."""
    motor = info.motor.sum(0).to(torch.float64)
    critic = info.spikes.to(torch.float64) - motor.sum(-1)
    return {"sensors": info.sensors.sum(0).to(torch.float64), "motor": motor, "critic": critic[:, None]}


def decision_energy(info, degrees: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """``(spikes, events)`` of one decision, each ``{population: [B]}``: what :class:`EnergyMeter` adds up."""
    counts = decision_counts(info)
    spikes = {p: c.sum(-1) for p, c in counts.items()}
    events = {p: (c * degrees[p]).sum(-1) if p != "critic" else torch.zeros_like(c[:, 0])  # no outgoing synapses
              for p, c in counts.items()}
    return spikes, events


class EnergyMeter:
    """Spikes and synaptic events per decision of ``B`` agents, per population.

    Call :meth:`add` with every step's StepInfo and :meth:`flush` at every log step (it returns the
    TensorBoard scalars of the interval); :meth:`summary` gives the run's figures (per agent, and the mean
    over agents), :meth:`state` / :meth:`load` carry the totals across a resume.
    """

    def __init__(self, num_agents: int):
        self.B = num_agents
        self._acc: Optional[dict[str, Tensor]] = None
        self._n = 0  # decisions in the running interval
        self.decisions = 0  # decisions flushed into the totals
        self.spikes = {p: torch.zeros(num_agents, dtype=torch.float64) for p in POPULATIONS}
        self.events = {p: torch.zeros(num_agents, dtype=torch.float64) for p in POPULATIONS}

    def add(self, info) -> None:
        """Count one decision's spikes per neuron (``info``: its StepInfo)."""
        counts = decision_counts(info)
        if self._acc is None:
            self._acc = counts
        else:
            for p, c in counts.items():
                self._acc[p] += c
        self._n += 1

    def flush(self, agent) -> dict[str, float]:
        """Fold the interval's counts into the totals with the agents' out-degrees now; the interval's
        ``energy/...`` scalars (per decision, mean over agents), ``{}`` when no decision was counted."""
        if self._acc is None or self._n == 0:
            return {}
        deg = out_degrees(agent.spec.brain, agent.state.brain)
        out: dict[str, float] = {}
        tot_s = tot_e = 0.0
        for p, c in self._acc.items():
            c = c.cpu()
            s = c.sum(-1)
            e = (c * deg[p].cpu()).sum(-1) if p != "critic" else torch.zeros_like(s)
            self.spikes[p] += s
            self.events[p] += e
            out[T.tag(T.ENERGY_SPIKES, pop=p)] = s.mean().item() / self._n
            out[T.tag(T.ENERGY_EVENTS, pop=p)] = e.mean().item() / self._n
            tot_s, tot_e = tot_s + s.mean().item(), tot_e + e.mean().item()
        out[T.ENERGY_SPIKES_TOTAL] = tot_s / self._n
        out[T.ENERGY_EVENTS_TOTAL] = tot_e / self._n
        self.decisions += self._n
        self._acc, self._n = None, 0
        return out

    def summary(self) -> dict:
        """The flushed decisions' figures: per population and in total, the mean over agents of spikes and
        synaptic events per decision, and each agent's totals per decision."""
        n = max(self.decisions, 1)
        per_agent_s = sum(self.spikes.values()) / n
        per_agent_e = sum(self.events.values()) / n
        return {
            "decisions": self.decisions,
            "spikes_per_decision": {**{p: float(v.mean()) / n for p, v in self.spikes.items()},
                                    "total": float(per_agent_s.mean())},
            "synaptic_events_per_decision": {**{p: float(v.mean()) / n for p, v in self.events.items()},
                                             "total": float(per_agent_e.mean())},
            "spikes_per_decision_per_agent": per_agent_s.tolist(),
            "synaptic_events_per_decision_per_agent": per_agent_e.tolist(),
        }

    def state(self) -> dict:
        """The totals as JSON (the running interval is empty at a checkpoint: checkpoints are log steps)."""
        return {"decisions": self.decisions, "spikes": {p: v.tolist() for p, v in self.spikes.items()},
                "events": {p: v.tolist() for p, v in self.events.items()}}

    def load(self, state: Optional[dict]) -> None:
        """Totals from :meth:`state` (None: a checkpoint from before energy was counted; start at 0)."""
        if not state:
            return
        self.decisions = int(state["decisions"])
        self.spikes = {p: torch.tensor(state["spikes"][p], dtype=torch.float64) for p in POPULATIONS}
        self.events = {p: torch.tensor(state["events"][p], dtype=torch.float64) for p in POPULATIONS}
