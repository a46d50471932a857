"""The Agent: ``B`` spiking agents acting in a vector env and learning at every step.

A thin wrapper: it holds the :class:`~spikegym.agents.spec.AgentSpec` (what the agents are) and the
:class:`~spikegym.agents.state.AgentState` (what they have become), and calls a backend's step:

* ``reference`` -- :func:`spikegym.agents.step.agent_step`, torch on any device (CPU or CUDA);
* ``kernel`` -- :class:`spikegym.agents.kernel.KernelBackend`, the same step as one numba kernel on the CPU.

``brain.engine: auto`` takes the kernel where it applies and says once why not where it does not
(:func:`choose_backend`); the run's ``result.json`` names the backend that ran.
"""

from __future__ import annotations

import warnings
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from spikegym.brains.state import reset_state

from .encoders import reset_adaptation
from .kernel import KernelBackend, unsupported
from .spec import AgentSpec
from .state import AgentState, flatten, init_state, load_flat
from .step import StepInfo, agent_step


class ReferenceBackend:
    """The torch reference step (:func:`~spikegym.agents.step.agent_step`)."""

    name = "reference"

    def __init__(self, spec: AgentSpec):
        self.spec = spec

    def step(self, state, obs, reward, terminated, truncated, *, learn: bool = True):
        return agent_step(self.spec, state, obs, reward, terminated, truncated, learn=learn)


def choose_backend(spec: AgentSpec, engine: str = "auto"):
    """The backend that runs these agents: ``engine`` (``auto``, ``reference`` or ``kernel``).

    ``kernel`` where it cannot run the agent raises ``ValueError`` with the reason; ``auto`` then takes the
    reference and warns once with the same reason (only where a kernel was possible at all: on the CPU).
    """
    if engine == "reference":
        return ReferenceBackend(spec)
    if engine == "kernel":
        return KernelBackend(spec)
    reason = unsupported(spec)
    if reason is None:
        return KernelBackend(spec)
    if spec.device.type == "cpu":
        warnings.warn(f"spikegym: brain.engine auto takes the torch reference step ({reason})", stacklevel=3)
    return ReferenceBackend(spec)


class Agent:
    """``B`` independent spiking agents (see the module docstring).

    Args:
        cfg: the run's :class:`spikegym.training.config.Config`.
        obs_low, obs_high: observation bounds ``[D]`` (infinite where unbounded).
        action_space: a single env's action space (``Discrete`` or ``Box``).
        num_agents, seed, agent_index0: agents ``agent_index0 ..`` of the run seeded ``seed``.
        engine: overrides ``cfg.brain.engine``.
    """

    def __init__(self, cfg, obs_low, obs_high, action_space, *, num_agents: int, seed: int, device="cpu",
                 agent_index0: int = 0, engine: Optional[str] = None):
        self.cfg, self.seed = cfg, seed
        self._init_args = (obs_low, obs_high, action_space)
        self.spec = AgentSpec(cfg, obs_low, obs_high, action_space, num_agents=num_agents, device=device, seed=seed)
        self.state: AgentState = init_state(self.spec, seed, first=agent_index0)
        if engine is None:  # run.kernels: torch is the older name of brain.engine: reference
            engine = "reference" if cfg.run.kernels == "torch" else cfg.brain.engine
        self.backend = choose_backend(self.spec, engine)

    @property
    def B(self) -> int:
        return self.spec.B

    @property
    def device(self) -> torch.device:
        return self.spec.device

    def step(self, obs, reward, terminated, truncated, *, learn: bool = True) -> tuple[np.ndarray, StepInfo]:
        """Learn from the previous transition and choose the next action.

        Args:
            obs: ``[B, D]`` observation after the previous env step (a final observation if it ended).
            reward, terminated, truncated: ``[B]`` from the previous env step (zeros on the first call).
            learn: False acts without changing any weight (evaluation); fast state still moves.
        Returns:
            ``(actions, info)``: actions for the vector env, ``[B]`` ints or ``[B, A]`` floats as numpy, and
            the step's :class:`~spikegym.agents.step.StepInfo`. On the kernel backend its tensors are
            overwritten by the next step (made anew each step they cost ~20% of CartPole's loop): clone what
            you keep.
        """
        action, self.state, info = self.backend.step(self.state, obs, reward, terminated, truncated, learn=learn)
        return action.cpu().numpy(), info

    def predict(self, obs) -> np.ndarray:
        """Actions for ``obs [B, D]`` with learning off (the agents' fast state moves as in an episode)."""
        z = np.zeros(self.B)
        return self.step(obs, z, np.zeros(self.B, bool), np.zeros(self.B, bool), learn=False)[0]

    def reset(self, done: Optional[Tensor] = None) -> None:
        """Start new episodes for the agents where ``done [B]`` (default: all): fast state reset, nothing learned
        from the last decision."""
        done = torch.ones(self.B, dtype=torch.bool, device=self.device) if done is None else done
        s = self.state
        self.state = s._replace(brain=reset_state(self.spec.brain, s.brain, done),
                                encoder=reset_adaptation(s.encoder, done),
                                critic=s.critic._replace(learnable=s.critic.learnable & ~done))

    # ------------------------------------------------------------------ what the agents are now

    def weights(self, proj: str) -> Tensor:
        """Weights ``[B, P, Q]`` of projection ``"pre->post"``."""
        return self.state.brain.w[proj]

    def eligibility(self, proj: str) -> Tensor:
        """Eligibility traces ``[B, P, Q]`` of plastic projection ``"pre->post"``."""
        return self.state.brain.e[proj]

    def rates(self) -> dict[str, Tensor]:
        """Running spike probability per substep ``[B, N]`` of every population."""
        return dict(self.state.brain.rate)

    # ------------------------------------------------------------------ persistence

    def select(self, index: int) -> "Agent":
        """A one-agent copy of agent ``index`` (same weights, same noise stream), e.g. for videos."""
        obs_low, obs_high, action_space = self._init_args
        single = Agent(self.cfg, obs_low, obs_high, action_space, num_agents=1, seed=self.seed, device=self.device,
                       agent_index0=index, engine=self.backend.name)
        mine = flatten(self.state)
        fresh = flatten(single.state)
        single.state = load_flat(single.state, {k: v if v.shape == fresh[k].shape else v[index:index + 1]
                                                for k, v in mine.items()})
        return single

    def state_dict(self) -> dict[str, Tensor]:
        """Everything needed to continue exactly (see :func:`~spikegym.agents.state.flatten`)."""
        return flatten(self.state)

    def load_state_dict(self, flat: dict[str, Tensor]) -> None:
        """Load :meth:`state_dict` (or an earlier version's checkpoint form); one line names what does not fit."""
        self.state = load_flat(self.state, flat)
