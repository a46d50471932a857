"""Curiosity without a trained predictor: count-based and habituation-based novelty, per agent.

Two detectors of how new the current sensory pattern is, both batched over ``B`` independent agents
and running on the brain's device under ``torch.no_grad()``:

* **SimHash counts** (Tang et al. 2017, "#Exploration"): a fixed random projection
  ``A [N, k]`` (seeded; columns centred to sum 0 by default, so the hash ignores the pattern's
  overall level) maps the sensory pattern (spike counts or rates) ``x`` to ``k`` sign bits
  ``sign(x A)``; the bits index a per-agent count table ``[B, T]``. After incrementing the count
  ``n`` of the current bucket, ``novelty = 1 / sqrt(n)`` and ``bonus = beta * novelty``: a new
  pattern earns the full ``beta``, its ``n``-th visit ``beta / sqrt(n)``. For ``k <= 20`` the
  bucket is the bits read as a binary number (``T = 2**k``, no collisions beyond SimHash's own);
  for ``k > 20`` the bits are folded into ``T = 2**20`` buckets by a random linear hash
  ``sum_i bit_i w_i mod 2**20`` (``w_i`` uniform, seeded), whose pairwise collision probability is
  exactly ``2**-20``.
  Note: Bernoulli spike counts are noisy, so the same observation can hash to different buckets;
  hash the encoder's probabilities (rates) or use few bits when that matters.
* **Habituating novelty neurons** (after the fly mushroom body, Dasgupta et al. 2018): a random
  projection to ``M`` Kenyon-cell-like units and a k-winners-take-all give each pattern a sparse
  tag; the tagged units' response habituates with repeats through
  :func:`spikegym.agents.encoders.adaptation_step` and recovers slowly. ``novelty`` is the mean
  response of the tagged units relative to their drive, in ``(0, 1]``.

Plus :func:`ach_gain`, an acetylcholine-like plasticity gain ``1 + g * novelty``;
:func:`td_surprise`, a second source for that gain: the TD error's recent size against its long-run
size, which jumps when the world changes under the agent (Yu & Dayan 2005: acetylcholine and
norepinephrine report expected and unexpected uncertainty); and :func:`bonus_weight`, a linear decay
schedule for the intrinsic reward's weight.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from spikegym.agents.adaptation import AdaptationParams, AdaptationState, adaptation_init, adaptation_step

__all__ = [
    "MAX_TABLE_BITS",
    "SimHashParams",
    "NoveltyState",
    "simhash_params",
    "novelty_init",
    "simhash_bucket",
    "novelty_step",
    "NoveltyNeuronParams",
    "novelty_neuron_params",
    "novelty_neurons_init",
    "novelty_neurons_step",
    "NoveltyDetector",
    "ach_gain",
    "td_surprise",
    "bonus_weight",
]

#: Count tables never exceed ``2**MAX_TABLE_BITS`` buckets per agent.
MAX_TABLE_BITS = 20


def _random_projection(n_inputs: int, n_out: int, seed: int, center: bool) -> Tensor:
    """Standard normal ``[n_inputs, n_out]`` from a CPU generator (the same draw on every device).

    With ``center`` each column is shifted to sum to zero, so ``x @ A == (x - mean(x)) @ A``: the
    projection ignores the overall level of the pattern. Non-negative spike counts all lie near the
    diagonal; without centring most random hyperplanes would not separate them.
    """
    a = torch.randn((n_inputs, n_out), generator=torch.Generator().manual_seed(int(seed)))
    return a - a.mean(0, keepdim=True) if center and n_inputs > 1 else a


# --------------------------------------------------------------------------------------------
# SimHash count-based novelty
# --------------------------------------------------------------------------------------------


class SimHashParams(NamedTuple):
    """``projection [N, k]`` (float), ``bit_weights [k]`` (int64), ``table_size`` T, ``beta``."""

    projection: Tensor
    bit_weights: Tensor
    table_size: int
    beta: float


class NoveltyState(NamedTuple):
    """``counts [B, T]`` (int32): visits of each hash bucket, per agent."""

    counts: Tensor


def simhash_params(
    n_inputs: int, *, beta: float = 0.1, hash_bits: int = 16, seed: int = 0, center: bool = True, device="cpu"
) -> SimHashParams:
    """Fixed random projection (columns centred unless ``center=False``) and bucket weights,
    drawn from ``seed`` (the same on every device)."""
    if hash_bits < 1:
        raise ValueError(f"hash_bits must be >= 1, got {hash_bits}")
    projection = _random_projection(n_inputs, hash_bits, seed, center)
    if hash_bits <= MAX_TABLE_BITS:
        table_size = 2**hash_bits
        bit_weights = 2 ** torch.arange(hash_bits, dtype=torch.int64)
    else:
        table_size = 2**MAX_TABLE_BITS
        gen = torch.Generator().manual_seed(int(seed) + 1)
        bit_weights = torch.randint(0, table_size, (hash_bits,), generator=gen, dtype=torch.int64)
    return SimHashParams(projection.to(device), bit_weights.to(device), table_size, float(beta))


def novelty_init(num_agents: int, params: SimHashParams, *, device=None) -> NoveltyState:
    """Empty count tables ``[B, T]``."""
    device = params.projection.device if device is None else device
    return NoveltyState(torch.zeros(num_agents, params.table_size, dtype=torch.int32, device=device))


@torch.no_grad()
def simhash_bucket(pattern: Tensor, params: SimHashParams) -> Tensor:
    """Bucket index ``[B]`` (int64) of each agent's pattern ``[B, N]``.

    ``bits = (pattern @ projection > 0)``, ``bucket = sum_i bits_i * bit_weights_i mod T``.
    """
    proj = pattern.to(params.projection.dtype) @ params.projection  # [B, k]
    bits = (proj > 0).to(torch.int64)
    return (bits * params.bit_weights).sum(-1) % params.table_size


@torch.no_grad()
def novelty_step(
    pattern: Tensor,
    state: NoveltyState,
    params: SimHashParams,
    *,
    mask: Tensor | None = None,
    inplace: bool = False,
) -> tuple[Tensor, Tensor, NoveltyState]:
    """Count the current pattern and return its novelty.

    Args:
        pattern: sensory spike counts or rates ``[B, N]``.
        state: :class:`NoveltyState` ``[B, T]``.
        mask: ``[B]`` bool, agents whose visit is counted (default: all). Uncounted agents get the
            novelty their visit *would* have (``n = count + 1``) and their table is left alone.
        inplace: increment ``state.counts`` in place (no copy of the table; the stateful wrapper
            uses this). Otherwise the input state is left untouched.
    Returns:
        ``(bonus [B], novelty [B], new_state)`` with ``novelty = 1 / sqrt(n)`` in ``(0, 1]`` and
        ``bonus = beta * novelty``, ``n`` the bucket's count after incrementing.

    >>> p = simhash_params(3, beta=1.0, hash_bits=4, seed=0)
    >>> s = novelty_init(1, p)
    >>> x = torch.tensor([[1.0, 0.0, 2.0]])
    >>> [round(float(novelty_step(x, s, p, inplace=True)[0]), 4) for _ in range(4)]
    [1.0, 0.7071, 0.5774, 0.5]
    """
    idx = simhash_bucket(pattern, params)[:, None]  # [B, 1]
    counts = state.counts
    if mask is None:
        inc = torch.ones_like(idx, dtype=counts.dtype)
    else:
        inc = mask.to(device=counts.device, dtype=counts.dtype)[:, None]
    if inplace:
        counts.scatter_add_(1, idx, inc)
    else:
        counts = counts.scatter_add(1, idx, inc)
    n = counts.gather(1, idx) + (1 - inc)  # uncounted agents: the hypothetical next count
    novelty = torch.rsqrt(n.squeeze(1).to(params.projection.dtype))
    return params.beta * novelty, novelty, NoveltyState(counts)


# --------------------------------------------------------------------------------------------
# Habituating novelty neurons
# --------------------------------------------------------------------------------------------


class NoveltyNeuronParams(NamedTuple):
    """``projection [N, M]``; ``active``: units in each pattern's tag (k-WTA); ``adaptation``
    (time constants in calls of the step, with ``dt``); ``beta``."""

    projection: Tensor
    active: int
    adaptation: AdaptationParams
    dt: float
    beta: float


def novelty_neuron_params(
    n_inputs: int,
    *,
    n_neurons: int = 256,
    active: int = 8,
    beta: float = 0.1,
    seed: int = 0,
    adaptation: AdaptationParams | None = None,
    dt: float = 1.0,
    center: bool = True,
    device="cpu",
) -> NoveltyNeuronParams:
    """Random projection and habituation constants for :func:`novelty_neurons_step`.

    Default adaptation: habituate within a few visits (``tau_adapt = 2`` steps), forget over
    ``tau_recover = 10_000`` steps, ``gain = 1 / (1 + 9 level)`` (a fully familiar pattern gives
    novelty 0.1), no change-triggered sensitization (every new pattern would trigger it).
    """
    if not 1 <= active <= n_neurons:
        raise ValueError(f"need 1 <= active <= n_neurons, got active={active}, n_neurons={n_neurons}")
    if adaptation is None:
        adaptation = AdaptationParams(
            tau_adapt=2.0, tau_recover=10_000.0, strength=9.0, sensitize_threshold=float("inf")
        )
    projection = _random_projection(n_inputs, n_neurons, seed, center).to(device)
    return NoveltyNeuronParams(projection, int(active), adaptation, float(dt), float(beta))


def novelty_neurons_init(num_agents: int, params: NoveltyNeuronParams, *, device=None) -> AdaptationState:
    device = params.projection.device if device is None else device
    return adaptation_init(num_agents, params.projection.shape[1], device=device, dtype=params.projection.dtype)


@torch.no_grad()
def novelty_neurons_tag(pattern: Tensor, params: NoveltyNeuronParams) -> Tensor:
    """Sparse binary tag ``[B, M]``: the ``active`` units with the largest projection."""
    proj = pattern.to(params.projection.dtype) @ params.projection  # [B, M]
    top = proj.topk(params.active, dim=-1).indices
    return torch.zeros_like(proj).scatter_(1, top, 1.0)


@torch.no_grad()
def novelty_neurons_step(
    pattern: Tensor,
    state: AdaptationState,
    params: NoveltyNeuronParams,
    *,
    mask: Tensor | None = None,
    sensitize: Tensor | None = None,
) -> tuple[Tensor, Tensor, AdaptationState]:
    """Response of habituating novelty neurons to ``pattern [B, N]``.

    ``drive = tag(pattern)`` (0/1, ``active`` units on), ``gain, state = adaptation_step(drive, ...)``,
    ``novelty = sum(drive * gain) / sum(drive)`` in ``(0, 1]`` (1 for a pattern whose tag units are
    all unadapted), ``bonus = beta * novelty``. Agents outside ``mask`` keep their state.

    Returns:
        ``(bonus [B], novelty [B], new_state)``.
    """
    drive = novelty_neurons_tag(pattern, params)
    gain, new = adaptation_step(drive, state, params.adaptation, params.dt, sensitize)
    novelty = (drive * gain).sum(-1) / drive.sum(-1)
    if mask is not None:
        m = mask.to(device=drive.device, dtype=torch.bool)[:, None]
        new = AdaptationState(torch.where(m, new.level, state.level), torch.where(m, new.last_input, state.last_input))
    return params.beta * novelty, novelty, new


# --------------------------------------------------------------------------------------------
# Stateful wrapper and helpers
# --------------------------------------------------------------------------------------------


class NoveltyDetector(torch.nn.Module):
    """Per-agent novelty of sensory patterns; ``mode="simhash"`` (counts) or ``"neurons"`` (habituation).

    ``detector(pattern [B, N], mask=None) -> (bonus [B], novelty [B])``. The projection and the
    count tables (or adaptation state) are buffers, so ``state_dict`` and ``.to(device)`` carry them.

    >>> det = NoveltyDetector(4, 2, beta=1.0, hash_bits=8, seed=0)
    >>> x = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 1.0]])
    >>> _ = det(x)
    >>> det(x)[0].tolist()    # second visit: beta / sqrt(2)
    [0.7071067690849304, 0.7071067690849304]
    """

    # buffers (registered in __init__; declared here so that mypy reads them as tensors, not Module attributes)
    projection: Tensor
    bit_weights: Tensor  # simhash mode
    counts: Tensor       # simhash mode
    level: Tensor        # neurons mode
    last_input: Tensor   # neurons mode
    last_novelty: Tensor

    def __init__(
        self,
        n_inputs: int,
        num_agents: int,
        *,
        beta: float = 0.1,
        hash_bits: int = 16,
        seed: int = 0,
        device="cpu",
        mode: str = "simhash",
        n_neurons: int = 256,
        active: int = 8,
        adaptation: AdaptationParams | None = None,
        dt: float = 1.0,
        center: bool = True,
    ):
        super().__init__()
        if mode not in ("simhash", "neurons"):
            raise ValueError(f"mode must be 'simhash' or 'neurons', got {mode!r}")
        self.mode = mode
        self.n_inputs = int(n_inputs)
        self.num_agents = int(num_agents)
        self.beta = float(beta)
        if mode == "simhash":
            hp = simhash_params(n_inputs, beta=beta, hash_bits=hash_bits, seed=seed, center=center, device=device)
            self.table_size = hp.table_size
            self.register_buffer("projection", hp.projection)
            self.register_buffer("bit_weights", hp.bit_weights)
            self.register_buffer("counts", novelty_init(num_agents, hp).counts)
        else:
            p = novelty_neuron_params(
                n_inputs, n_neurons=n_neurons, active=active, beta=beta, seed=seed,
                adaptation=adaptation, dt=dt, center=center, device=device,
            )
            self.active = p.active
            self.adaptation = p.adaptation
            self.dt = p.dt
            self.register_buffer("projection", p.projection)
            st = novelty_neurons_init(num_agents, p)
            self.register_buffer("level", st.level)
            self.register_buffer("last_input", st.last_input)
        self.register_buffer("last_novelty", torch.ones(num_agents, device=device))

    def simhash_params(self) -> SimHashParams:
        return SimHashParams(self.projection, self.bit_weights, self.table_size, self.beta)

    def neuron_params(self) -> NoveltyNeuronParams:
        return NoveltyNeuronParams(self.projection, self.active, self.adaptation, self.dt, self.beta)

    @torch.no_grad()
    def forward(self, pattern: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(bonus [B], novelty [B])`` for ``pattern [B, N]``; counts (habituates) agents in ``mask``."""
        if tuple(pattern.shape) != (self.num_agents, self.n_inputs):
            raise ValueError(
                f"NoveltyDetector expects a pattern of shape {(self.num_agents, self.n_inputs)}, got {tuple(pattern.shape)}"
            )
        if self.mode == "simhash":
            bonus, novelty, _ = novelty_step(pattern, NoveltyState(self.counts), self.simhash_params(), mask=mask, inplace=True)
        else:
            bonus, novelty, st = novelty_neurons_step(
                pattern, AdaptationState(self.level, self.last_input), self.neuron_params(), mask=mask
            )
            self.level, self.last_input = st
        self.last_novelty = novelty
        return bonus, novelty

    @torch.no_grad()
    def reset_counts(self, mask: Tensor) -> None:
        """Forget everything the agents in ``mask [B]`` (bool) have seen."""
        m = torch.as_tensor(mask, dtype=torch.bool, device=self.projection.device)[:, None]
        if self.mode == "simhash":
            self.counts.masked_fill_(m, 0)
        else:
            self.level = torch.where(m, torch.zeros_like(self.level), self.level)
            self.last_input = torch.where(m, torch.zeros_like(self.last_input), self.last_input)


def ach_gain(novelty: Tensor, gain_per_novelty: float) -> Tensor:
    """Acetylcholine-like plasticity gain ``1 + g * novelty`` ``[B]``: surprise raises learning rates.

    >>> ach_gain(torch.tensor([0.0, 0.5, 1.0]), 2.0).tolist()
    [1.0, 2.0, 3.0]
    """
    return 1.0 + gain_per_novelty * novelty


def td_surprise(abs_delta: Tensor, fast: Tensor, slow: Tensor, *, fast_steps: float, slow_steps: float,
                max_surprise: float = 4.0) -> tuple[Tensor, Tensor, Tensor]:
    """Surprise ``[B]`` in ``[0, max_surprise]``: how far the recent ``|TD error|`` exceeds its long-run mean.

    ``fast`` and ``slow`` ``[B]`` are running means of ``|delta|`` over about ``fast_steps`` and
    ``slow_steps`` decisions; ``surprise = clamp(fast / slow - 1, 0, max_surprise)``. A settled agent
    (fast = slow) is not surprised; when the world changes, TD errors grow faster than the slow mean
    follows, and surprise rises until the agent has learned again. Where ``slow`` is still 0 (no
    history), both means start at ``abs_delta``: surprise 0.
    Returns ``(surprise, fast, slow)`` with the means updated by ``abs_delta [B]``.

    >>> s, f, m = td_surprise(torch.tensor([3.0, 1.0]), torch.ones(2), torch.ones(2), fast_steps=2, slow_steps=1e9)
    >>> f.tolist(), s.tolist()       # the fast mean moves half-way to 3; the slow one stays at 1
    ([2.0, 1.0], [1.0, 0.0])
    """
    fresh = slow == 0  # no history yet: both means start at the first error (no surprise at birth)
    fast = torch.where(fresh, abs_delta, torch.lerp(fast, abs_delta, 1.0 / fast_steps))
    slow = torch.where(fresh, abs_delta, torch.lerp(slow, abs_delta, 1.0 / slow_steps))
    ratio = torch.where(slow > 0, fast / slow.clamp_min(1e-12), torch.ones_like(fast))
    return (ratio - 1.0).clamp_(0.0, max_surprise), fast, slow


def bonus_weight(step: int, decay_steps: int | None) -> float:
    """Weight of the intrinsic bonus: ``1 -> 0`` linearly over ``decay_steps`` env steps; None: always 1.

    >>> bonus_weight(0, 100), bonus_weight(25, 100), bonus_weight(500, 100), bonus_weight(500, None)
    (1.0, 0.75, 0.0, 1.0)
    """
    if decay_steps is None:
        return 1.0
    if decay_steps <= 0:
        return 0.0
    return max(0.0, 1.0 - step / decay_steps)
