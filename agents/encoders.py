"""Observations -> input spikes: Gaussian population codes, running normalisation, sensory adaptation.

Everything is batched over ``B`` independent agents (tensors ``[B, ...]``), runs on the device of
its inputs and under ``torch.no_grad()``. The pieces, from pure functions to the stateful wrapper:

* :func:`gaussian_fields` -- each observation dimension is covered by ``fields`` Gaussian receptive
  fields with centres evenly spaced over ``[low, high]`` and width (sigma) equal to the spacing.
* :func:`running_norm_init` / :func:`running_norm_update` / :func:`running_norm_apply` -- per-agent
  running mean and variance (Welford, optionally capped into an exponential moving average) for
  observation dimensions without usable bounds (MuJoCo).
* :func:`adaptation_step` -- sensory adaptation of a population: habituation to constant strong
  input, recovery at rest, sensitization by a strong unexpected change or an aversive event
  (the Aplysia gill-withdrawal experiments: the response to a repeated touch fades, comes back
  after a rest, and a noxious stimulus restores it at once).
* :class:`PopulationEncoder` -- the thin stateful wrapper that turns observations into Bernoulli
  input spikes for ``K`` brain substeps.

Time base: the brain runs ``K`` substeps of ``dt_ms`` milliseconds per environment step; the
encoder steps its adaptation state once per environment step with ``dt = K * dt_ms / 1000``
**seconds**, so ``AdaptationParams.tau_adapt`` and ``tau_recover`` are in seconds.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from spikegym.brains.network import no_grad

from .adaptation import AdaptationParams, AdaptationState, adaptation_init, adaptation_step
from .fields import angle_dimensions, gaussian_fields, pair_fields, pair_products
from .normalization import RunningNormState, running_norm_apply, running_norm_init, running_norm_update

__all__ = [
    "UNBOUNDED_AT",
    "gaussian_fields",
    "pair_fields",
    "angle_dimensions",
    "RunningNormState",
    "running_norm_init",
    "running_norm_update",
    "running_norm_apply",
    "AdaptationParams",
    "AdaptationState",
    "adaptation_init",
    "adaptation_step",
    "EncoderState",
    "reset_adaptation",
    "PopulationEncoder",
]

#: An observation bound with ``|bound| >= UNBOUNDED_AT`` (or infinite) counts as unbounded:
#: Gymnasium writes "no bound" as ``inf`` or as ``float32`` max (CartPole's velocities).
UNBOUNDED_AT = 1e6


class EncoderState(NamedTuple):
    """Per-agent state of an encoder: running statistics ``rn_count [B]`` (int64), ``rn_mean``, ``rn_var``
    ``[B, D]``, and the adaptation state ``level``, ``last_input`` ``[B, F]`` of the ``F`` fields."""

    rn_count: Tensor
    rn_mean: Tensor
    rn_var: Tensor
    level: Tensor
    last_input: Tensor


def reset_adaptation(state: EncoderState, done: Tensor) -> EncoderState:
    """Unadapted fields for the agents where ``done [B]`` (bool); running statistics are kept."""
    m = done.view(-1, 1)
    return state._replace(level=state.level.masked_fill(m, 0.0), last_input=state.last_input.masked_fill(m, 0.0))


class PopulationEncoder(torch.nn.Module):
    """Observations ``[B, D]`` -> Bernoulli input spikes ``[K, B, N_in]`` for ``K`` substeps.

    The coded dimensions are the ``D`` observation dimensions and then one angle per ``(cos, sin)``
    pair in ``angles`` (``atan2(sin, cos)``, coded with circular fields: :func:`gaussian_fields`),
    ``D + A`` in all; ``pairs`` may name any of them. Layout of the
    ``N_in = ((D + A) * fields + P * pair_fields**2) * neurons_per_field + bias_neurons``
    inputs: neuron ``(d * fields + j) * neurons_per_field + c`` is copy ``c`` of field ``j`` of
    coded dimension ``d``; then come the conjunctive fields of the ``P`` ``pairs`` (:func:`pair_fields`,
    ``pair_fields`` per dimension), ``neurons_per_field`` copies each; the last ``bias_neurons``
    are always on. The spike probability per substep is
    ``max_prob * phi * gain`` (bias: ``max_prob``), where ``phi`` is :func:`gaussian_fields` and
    ``gain`` the sensory adaptation of each field (1 exactly when ``adaptation`` is None).

    Ranges (``normalize``): ``"bounds"`` codes every dimension over its observation-space bounds;
    ``"running"`` codes every dimension's per-agent running z-score, clipped to ``+-running_clip``,
    with fields over ``[-running_clip, running_clip]``; ``"auto"`` does the first for dimensions
    with finite bounds and the second for unbounded ones (``|bound| >= UNBOUNDED_AT``).

    Adaptation is stepped once per call, with ``dt = K * dt_ms / 1000`` seconds. Its state,
    the running statistics and the ranges are buffers (``state_dict`` and ``.to(device)`` carry them).

    >>> enc = PopulationEncoder([-1.0], [1.0], num_agents=2, fields=3, neurons_per_field=1, bias_neurons=1)
    >>> enc.n_out
    4
    >>> spikes = enc.encode(torch.zeros(2, 1), torch.Generator().manual_seed(0), K=20)
    >>> tuple(spikes.shape)
    (20, 2, 4)
    """

    # buffers (registered in __init__; declared here so that mypy reads them as tensors, not Module attributes)
    field_low: Tensor
    field_high: Tensor
    norm_mask: Tensor
    pairs: Tensor
    angles: Tensor
    circular: Tensor
    rn_count: Tensor
    rn_mean: Tensor
    rn_var: Tensor
    adapt_level: Tensor
    adapt_last_input: Tensor
    last_gain: Tensor
    code_dim: Tensor
    code_centre: Tensor
    code_width: Tensor

    def __init__(
        self,
        obs_low,
        obs_high,
        num_agents: int,
        *,
        fields: int = 15,
        neurons_per_field: int = 2,
        max_prob: float = 0.5,
        bias_neurons: int = 2,
        normalize: str = "auto",
        running_clip: float = 3.0,
        adaptation: AdaptationParams | None = None,
        dt_ms: float = 1.0,
        running_max_count: int | None = None,
        pairs=(),
        pair_fields: int = 7,
        angles=(),
        device="cpu",
    ):
        super().__init__()
        low = np.asarray(obs_low, dtype=np.float64).reshape(-1)
        high = np.asarray(obs_high, dtype=np.float64).reshape(-1)
        if low.shape != high.shape:
            raise ValueError(f"obs_low {low.shape} and obs_high {high.shape} differ in shape")
        if normalize not in ("auto", "running", "bounds"):
            raise ValueError(f"normalize must be 'auto', 'running' or 'bounds', got {normalize!r}")
        if not 0.0 <= max_prob <= 1.0:
            raise ValueError(f"max_prob must be in [0, 1], got {max_prob}")
        unbounded = ~(np.isfinite(low) & np.isfinite(high)) | (np.abs(low) >= UNBOUNDED_AT) | (np.abs(high) >= UNBOUNDED_AT)
        if normalize == "running":
            norm = np.ones_like(unbounded)
        elif normalize == "bounds":
            if unbounded.any():
                raise ValueError(
                    f"normalize='bounds' but observation dimensions {np.flatnonzero(unbounded).tolist()} are "
                    "unbounded; pass finite obs_low/obs_high for them or use normalize='auto'"
                )
            norm = np.zeros_like(unbounded)
        else:
            norm = unbounded
        bad = ~norm & ~(high > low)
        if bad.any():
            raise ValueError(f"obs_high must exceed obs_low; dimensions {np.flatnonzero(bad).tolist()} do not")
        angles = np.asarray(angles, dtype=np.int64).reshape(-1, 2)
        if angles.size and (angles.min() < 0 or angles.max() >= low.size or (angles[:, 0] == angles[:, 1]).any()):
            raise ValueError(f"angles must name two different observation dimensions (cos, sin) in [0, {low.size}), "
                             f"got {angles.tolist()}")
        coded = low.size + len(angles)  # the observation dimensions, then one angle per (cos, sin) pair
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        if pairs.size and (pairs.min() < 0 or pairs.max() >= coded or (pairs[:, 0] == pairs[:, 1]).any()):
            raise ValueError(f"pairs must name two different coded dimensions in [0, {coded}), got {pairs.tolist()}")
        if pairs.size and pair_fields < 2:
            raise ValueError(f"pair_fields must be >= 2, got {pair_fields}")
        field_low = np.concatenate([np.where(norm, -running_clip, low), np.full(len(angles), -np.pi)])
        field_high = np.concatenate([np.where(norm, running_clip, high), np.full(len(angles), np.pi)])
        circular = np.arange(coded) >= low.size

        self.num_agents = int(num_agents)
        self.obs_dim = int(low.size)
        self.fields = int(fields)
        self.neurons_per_field = int(neurons_per_field)
        self.max_prob = float(max_prob)
        self.bias_neurons = int(bias_neurons)
        self.normalize = normalize
        # fixed ranges and 1-D fields only: without adaptation, _bounds_code applies
        self._plain_code = not bool(np.any(norm)) and not len(pairs) and not len(angles)
        self.running_clip = float(running_clip)
        self.running_max_count = running_max_count
        self.adaptation = adaptation
        self.dt_ms = float(dt_ms)
        self.pair_fields = int(pair_fields)
        self.coded_dim = int(coded)
        self.n_fields = self.coded_dim * self.fields + len(pairs) * self.pair_fields ** 2

        f32 = dict(dtype=torch.float32, device=device)
        self.register_buffer("field_low", torch.tensor(field_low, **f32))
        self.register_buffer("field_high", torch.tensor(field_high, **f32))
        self.register_buffer("norm_mask", torch.tensor(norm, dtype=torch.bool, device=device))
        # a constant of the config, not state: not saved, so checkpoints from before pairs existed still load
        self.register_buffer("pairs", torch.tensor(pairs, dtype=torch.long, device=device).view(-1, 2), persistent=False)
        self.register_buffer("angles", torch.tensor(angles, dtype=torch.long, device=device).view(-1, 2), persistent=False)
        self.register_buffer("circular", torch.tensor(circular, dtype=torch.bool, device=device), persistent=False)
        rn = running_norm_init(self.obs_dim, self.num_agents, device=device)
        self.register_buffer("rn_count", rn.count)
        self.register_buffer("rn_mean", rn.mean)
        self.register_buffer("rn_var", rn.var)
        ad = adaptation_init(self.num_agents, self.n_fields, device=device)
        self.register_buffer("adapt_level", ad.level)
        self.register_buffer("adapt_last_input", ad.last_input)
        self.register_buffer("last_gain", torch.ones(self.num_agents, self.n_fields, **f32))
        # the flat code of fixed ranges (constants of the config, not state: not saved)
        for name, t in zip(("code_dim", "code_centre", "code_width"), self._flat_code()):
            self.register_buffer(name, t, persistent=False)

    # ---- sizes and logging ----------------------------------------------------------------

    @property
    def n_out(self) -> int:
        """Number of input neurons ``N_in``."""
        return self.n_fields * self.neurons_per_field + self.bias_neurons

    @property
    def device(self) -> torch.device:
        return self.field_low.device

    def adaptation_level(self) -> Tensor:
        """Mean adaptation level per agent ``[B]`` (0 = unadapted)."""
        return self.adapt_level.mean(-1)

    def last_gain_mean(self) -> Tensor:
        """Mean gain of the last call per agent ``[B]`` (1 = no adaptation)."""
        return self.last_gain.mean(-1)

    # ---- encoding ------------------------------------------------------------------------

    def _as_obs(self, obs, batch: int | None = None) -> Tensor:
        if isinstance(obs, np.ndarray) and obs.dtype == np.float32 and obs.flags.writeable and self.device.type == "cpu":
            obs = torch.from_numpy(obs)  # no copy, one dispatch
        else:
            obs = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        b = self.num_agents if batch is None else batch
        if obs.shape != (b, self.obs_dim):
            raise ValueError(f"PopulationEncoder expects obs of shape {(b, self.obs_dim)}, got {tuple(obs.shape)}")
        return obs

    def state(self) -> "EncoderState":
        """The encoder's own state (running statistics, adaptation) as an :class:`EncoderState`."""
        return EncoderState(self.rn_count, self.rn_mean, self.rn_var, self.adapt_level, self.adapt_last_input)

    def initial_state(self, batch: int | None = None) -> "EncoderState":
        """A fresh :class:`EncoderState` for ``batch`` agents (default: this encoder's)."""
        b = self.num_agents if batch is None else batch
        rn = running_norm_init(self.obs_dim, b, device=self.device)
        ad = adaptation_init(b, self.n_fields, device=self.device)
        return EncoderState(rn.count, rn.mean, rn.var, ad.level, ad.last_input)

    @no_grad
    def probabilities(
        self, obs, *, K: int = 1, sensitize: Tensor | None = None, update_stats: bool = True
    ) -> Tensor:
        """Spike probability per substep ``[B, N_in]``; steps the adaptation state once (``dt = K*dt_ms/1000`` s).

        The stateful form of :meth:`code` (the encoder keeps its own :class:`EncoderState`).

        Args:
            obs: ``[B, D]`` (tensor or array).
            K: substeps this env step lasts (sets the adaptation time step).
            sensitize: ``[B]`` bool, agents to sensitize (e.g. after a strongly negative reward).
            update_stats: add ``obs`` to the running statistics (normalised dimensions only matter).
        """
        p, st, gain = self.code(self.state(), obs, K=K, sensitize=sensitize, update_stats=update_stats)
        self.rn_count, self.rn_mean, self.rn_var, self.adapt_level, self.adapt_last_input = st
        if gain is not None:
            self.last_gain = gain
        return p

    @no_grad
    def code(self, state: "EncoderState", obs, *, K: int = 1, sensitize: Tensor | None = None,
             update_stats: bool = True) -> tuple[Tensor, "EncoderState", Tensor | None]:
        """Pure: ``(probabilities [B, N_in], new state, adaptation gain [B, F] or None)`` for ``obs [B, D]``.

        Args as :meth:`probabilities`; ``state`` is not changed.
        """
        obs = self._as_obs(obs, state.rn_mean.shape[0])
        if self.adaptation is None and self._plain_code:
            return self._bounds_code(obs), state, None
        if sensitize is not None:
            sensitize = torch.as_tensor(sensitize, dtype=torch.bool, device=self.device)
        x = obs
        if bool(self.norm_mask.any()):
            rn = RunningNormState(state.rn_count, state.rn_mean, state.rn_var)
            if update_stats:
                rn = running_norm_update(rn, obs, max_count=self.running_max_count)
                state = state._replace(rn_count=rn.count, rn_mean=rn.mean, rn_var=rn.var)
            z = running_norm_apply(rn, obs, self.running_clip)
            x = torch.where(self.norm_mask, z, obs)
        circular = None
        if len(self.angles):  # from the raw (cos, sin) pairs: bounded dimensions, never normalised
            x = torch.cat([x, angle_dimensions(obs, self.angles)], dim=1)
            circular = self.circular
        phi = gaussian_fields(x, self.field_low, self.field_high, self.fields, circular)  # [B, (D+A)*F]
        if len(self.pairs):
            grid = phi if self.pair_fields == self.fields else gaussian_fields(
                x, self.field_low, self.field_high, self.pair_fields, circular)  # the 1-D fields once per width
            phi = torch.cat([phi, pair_products(grid, self.pair_fields, self.pairs)], dim=1)
        gain = None
        if self.adaptation is None:
            p = self.max_prob * phi
        else:
            dt = K * self.dt_ms / 1000.0
            gain, st = adaptation_step(phi, AdaptationState(state.level, state.last_input), self.adaptation, dt,
                                       sensitize)
            state = state._replace(level=st.level, last_input=st.last_input)
            p = self.max_prob * phi * gain
        if self.neurons_per_field > 1:
            p = p.repeat_interleave(self.neurons_per_field, dim=1)
        if self.bias_neurons:
            bias = torch.full((p.shape[0], self.bias_neurons), self.max_prob, dtype=p.dtype, device=p.device)
            p = torch.cat([p, bias], dim=1)
        return p, state, gain

    def _bounds_code(self, obs: Tensor) -> Tensor:
        """:meth:`probabilities` without adaptation over fixed ranges, in a few fused ops.

        The same float operations as :func:`gaussian_fields`, the ``max_prob`` scaling and the copies per
        field, on a flat ``[B, N_in]`` layout: column ``i`` reads observation ``dim[i]`` and has centre
        ``centre[i]`` and width ``spacing[i]``; a bias column has width ``inf`` (``u = 0``, so ``max_prob``
        exactly). The result is bit-identical for finite observations. The constants are computed once (again
        if the ranges change).
        """
        dim, centre, width = self.code_constants()
        x = torch.clamp(obs, self.field_low, self.field_high)  # = maximum(minimum(obs, high), low) for low < high
        u = (x.index_select(1, dim) - centre).div_(width)  # [B, N_in]
        return (-0.5 * u).mul_(u).exp_().mul_(self.max_prob)

    def code_constants(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(dim, centre, width)``, each ``[N_in]``, of the flat code of :meth:`_bounds_code` (fixed ranges)."""
        return self.code_dim, self.code_centre, self.code_width

    def _flat_code(self) -> tuple[Tensor, Tensor, Tensor]:
        low, high = self.field_low[:self.obs_dim], self.field_high[:self.obs_dim]
        copies = self.neurons_per_field
        spacing = (high - low) / (self.fields - 1)  # as gaussian_fields
        j = torch.arange(self.fields, device=low.device, dtype=low.dtype)
        centres = low[:, None] + spacing[:, None] * j  # [D, F]
        dim = torch.arange(self.obs_dim, device=low.device).repeat_interleave(self.fields * copies)
        bias = self.bias_neurons
        dim = torch.cat([dim, dim.new_zeros(bias)])
        centre = torch.cat([centres.repeat_interleave(copies, dim=1).reshape(-1), centres.new_zeros(bias)])
        width = torch.cat([spacing.repeat_interleave(self.fields * copies), spacing.new_full((bias,), math.inf)])
        return dim, centre, width

    @no_grad
    def encode(
        self, obs, generator: torch.Generator, K: int, *, sensitize: Tensor | None = None, update_stats: bool = True
    ) -> Tensor:
        """Input spikes ``[K, B, N_in]`` (float 0/1), Bernoulli with :meth:`probabilities` per substep.

        ``generator`` must live on the encoder's device.
        """
        p = self.probabilities(obs, K=K, sensitize=sensitize, update_stats=update_stats)
        u = torch.rand((K, *p.shape), generator=generator, device=p.device, dtype=p.dtype)
        return (u < p).to(p.dtype)

    @no_grad
    def reset(self, mask: Tensor) -> None:
        """Reset the adaptation state of the agents in ``mask [B]`` (bool); running statistics are kept."""
        if self.adaptation is None:  # the adaptation state never leaves its initial values
            return
        m = torch.as_tensor(mask, dtype=torch.bool, device=self.device)[:, None]
        self.adapt_level = torch.where(m, torch.zeros_like(self.adapt_level), self.adapt_level)
        self.adapt_last_input = torch.where(m, torch.zeros_like(self.adapt_last_input), self.adapt_last_input)
        self.last_gain = torch.where(m, torch.ones_like(self.last_gain), self.last_gain)
