"""A ``Brain``: the thin stateful wrapper over :mod:`spec`, :mod:`state` and the reference :mod:`step`.

It holds the :class:`~spikegym.brains.state.BrainState` of ``B`` independent spiking networks and calls the
pure step functions; it is what a script or a test uses to run a brain on its own. (An agent drives the same
functions itself, with its own learning signal: see :mod:`spikegym.agents.step`.)

>>> from spikegym.brains.neurons import LIFParams
>>> brain = Brain([Population("in", 8, "input"), Population("out", 3, "lif", lif=LIFParams(tau_mem=10.0))],
...               [Projection("in", "out", rule="stdp", lr=0.01, w_init_mean=0.5)], batch=2)
>>> out = brain.run({"in": torch.ones(5, 2, 8)}, dopamine=torch.ones(5, 2))
>>> tuple(out["out"].shape)
(5, 2, 3)
"""

from __future__ import annotations

import functools
from typing import Optional

import torch
from torch import Tensor

from . import step as S
from .spec import BrainSpec, Population, Projection
from .state import BrainState, flatten, init_state, reset_state, unflatten

__all__ = ["Brain", "Population", "Projection", "no_grad"]


def no_grad(fn):
    """``@torch.no_grad()`` that costs nothing when gradients are already off (calls from inside the engine)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if torch.is_grad_enabled():
            with torch.no_grad():
                return fn(*args, **kwargs)
        return fn(*args, **kwargs)
    return wrapper


class Brain:
    """``B`` independent spiking networks in one tensor program (the reference step).

    Args:
        populations, projections: the network (:class:`~spikegym.brains.spec.BrainSpec`); shared by all
            agents, their weights are not.
        batch: number of agents ``B``; seed, agent_index0: agent ``b`` draws from stream ``agent_index0 + b``
            of the run seeded ``seed``, so an agent behaves the same alone or in any batch, on any device.
    """

    def __init__(self, populations: list[Population], projections: list[Projection], *, batch: int,
                 dt: float = 1.0, seed: int = 0, agent_index0: int = 0, device=None):
        self.spec = BrainSpec(tuple(populations), tuple(projections), dt)
        self.batch = batch
        self.state: BrainState = init_state(self.spec, batch, seed, first=agent_index0, device=device)
        self.last_prob: dict[str, Tensor] = {}

    @no_grad
    def run(self, inputs: dict[str, Tensor], dopamine: Optional[Tensor] = None, *, plastic: bool = True
            ) -> dict[str, Tensor]:
        """Advance ``K`` substeps; returns the spikes ``[K, B, N]`` of every non-input population.

        Args:
            inputs: spikes ``[K, B, N]`` of every input population.
            dopamine: ``[K, B]``: after each substep its events enter the eligibility and
                ``W += lr D_t e`` (MSTDPET, Florian 2007). None: the window's events enter the eligibility,
                and learning waits for :meth:`learn`.
            plastic: False freezes homeostasis and structural plasticity (rates still move).
        """
        spec = self.spec
        if dopamine is None:
            out, state = S.window(spec, self.state, inputs)
            state = S.fold(spec, state, out.events)
            spikes, prob = out.spikes, out.prob
        else:
            k_steps = dopamine.shape[0]
            state, steps = self.state, []
            for t in range(k_steps):
                out, state = S.window(spec, state, {k: v[t:t + 1] for k, v in inputs.items()})
                state = S.learn(spec, S.fold(spec, state, out.events), dopamine[t])
                steps.append(out)
            spikes = {n: torch.cat([o.spikes[n] for o in steps]) for n in steps[0].spikes}
            prob = {n: torch.cat([o.prob[n] for o in steps]) for n in steps[0].prob}
        if plastic:
            state = S.structural(spec, S.homeostasis(spec, state, next(iter(inputs.values())).shape[0]))
        self.state, self.last_prob = state, prob
        return spikes

    @no_grad
    def learn(self, dopamine: Tensor, gain: Optional[Tensor] = None) -> None:
        """Third factor once per decision: ``W += lr * gain * dopamine * e``; dopamine, gain ``[B]``."""
        self.state = S.learn(self.spec, self.state, dopamine if gain is None else dopamine * gain)

    @no_grad
    def reset(self, done: Tensor) -> None:
        """Reset the fast state (membranes, traces, eligibility, STP) of the agents where ``done [B]``."""
        self.state = reset_state(self.spec, self.state, done)

    def weights(self, proj: str) -> Tensor:
        """Weights ``[B, P, Q]`` of projection ``"pre->post"``."""
        return self.state.w[proj]

    def eligibility(self, proj: str) -> Tensor:
        return self.state.e[proj]

    def mask(self, proj: str) -> Optional[Tensor]:
        return self.state.mask.get(proj)

    def rate(self, pop: str) -> Tensor:
        """Running spike probability per substep ``[B, N]``."""
        return self.state.rate[pop]

    def state_dict(self) -> dict[str, Tensor]:
        return flatten(self.state)

    def load_state_dict(self, flat: dict[str, Tensor]) -> None:
        self.state = unflatten(self.state, flat)

    def to(self, device) -> "Brain":
        self.state = unflatten(init_state(self.spec, self.batch, 0, device=device), self.state_dict())
        return self
