"""The arguments of the numba agent step (:mod:`.kernel_step`): named tuples of numpy arrays and scalars.

``Q`` columns: the motor population ``[0, M)``, then the critic ``[M, Q)``; ``P`` sensors; ``G`` action groups.
:class:`~.kernel.KernelBackend` builds :class:`Consts` from the spec, :class:`Arrays` as views of the agents'
state tensors and :class:`Outs` once per binding (every step overwrites them).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

ESCAPE, LIF = 0, 2  # motor neuron models


class Consts(NamedTuple):
    """What the kernel reads and never changes (``Q`` columns: motor ``[0, M)``, critic ``[M, Q)``)."""

    enc_work: int          # length of encode_agent's scratch
    punish: float          # sensitize the senses where the internal reward <= -punish (inf: never)
    sense_c1: np.ndarray   # i32 [B, P + G] hash column words of the sensors, then the tie breaks
    sense_c2: np.ndarray
    neuron_c1: np.ndarray  # i32 [B, Q] hash column words of the motor and critic neurons
    neuron_c2: np.ndarray
    bias: np.ndarray       # f32 [Q] escape neurons: p = sigmoid(slope (z + excite + bias))
    slope: np.ndarray      # f32 [Q]
    critic_scale: np.ndarray  # f32 [Q] (critic rule: y = c p (1 - p))
    lr: np.ndarray         # f32 [Q]
    ahead: np.ndarray      # f32 [K, Q]: d^(K-1-k), the eligibility decay still ahead of substep k
    decay_k: np.ndarray    # f32 [Q]: d^K
    w_min: np.ndarray      # f32 [Q] (-inf: none)
    w_max: np.ndarray      # f32 [Q] (inf: none)
    soft: np.ndarray       # bool [Q]: soft (multiplicative) bounds
    any_soft: bool
    unbounded: bool        # no column has a bound
    any_scaling: bool      # some column has synaptic scaling
    rate_w: np.ndarray     # f32 [Q] weight of a window in the running rate
    rate_in_w: float
    homeo_eta: np.ndarray  # f32 [Q]: eta * K / target (0: no threshold homeostasis)
    homeo_target: np.ndarray  # f32 [Q]
    scale_eta: np.ndarray  # f32 [Q]: eta / target of synaptic scaling (0: none)
    lateral_sign: float    # sign of the motor -> motor projection (-1: inhibition)
    motor: int             # M, the motor columns
    model: int             # the motor neurons: ESCAPE or LIF
    alpha: float           # exp(-dt / tau_mem) of LIF membranes
    v_rest: float
    v_reset: float
    v_th: float
    t_ref: float
    dt: float
    theta_decay: float     # ALIF: exp(-dt / tau_theta)
    theta_plus: float      # ALIF threshold jump (0: LIF)
    lif_slope: float       # noisy LIF: p = sigmoid(lif_slope (v - v_th - theta)) (0: the deterministic threshold)
    stdp: bool             # the motor columns learn by pair STDP (else node perturbation)
    a_plus: float
    a_minus: float
    hetero: float
    center: int            # STDP's post signal: the spikes (0), minus their probability (1), minus the rate (2)
    pre_decay: float       # exp(-dt / tau_plus)
    post_decay: float      # exp(-dt / tau_minus)
    stp: bool              # short-term plasticity of the sensors -> motor synapses
    stp_u: float           # U
    stp_f: float           # exp(-dt / tau_f)
    stp_d: float           # exp(-dt / tau_d)
    motor_size: int        # neurons per action group
    n_groups: int
    discrete: bool
    v_low: float
    v_span: float
    gamma: float
    clip: float            # < 0: none
    baseline: bool         # dopamine = r - running mean (else the TD error)
    baseline_decay: float
    failure_reward: float  # NaN: the scaled reward instead of the failure signal
    reward_scale: float
    novelty: int           # 0 none, 1 SimHash counts, 2 habituating novelty neurons
    projection: np.ndarray  # f32 [P, k] (hash bits) or [P, N] (novelty neurons)
    bit_weights: np.ndarray  # i64 [k]
    table_size: int
    active: int            # novelty neurons in a pattern's tag
    nov_adapt: float       # their habituation: decay_adapt, decay_recover, strength, divisive
    nov_recover: float
    nov_strength: float
    nov_divisive: bool
    beta: float
    ach_gain: float
    surprise: bool
    surprise_mode: int     # 0 |delta|, 1 disappointment, 2 punishment
    surprise_fast: float   # 1 / fast steps
    surprise_slow: float
    surprise_gain: float
    surprise_shrink: float
    serotonin: bool        # the TD discount from the running mean reward (agents/serotonin.py)
    sero_rate: float       # 1 / tau_steps
    sero_gain: float
    sero_ref: float
    sero_low: float        # gamma_low
    sero_span: float       # gamma_high - gamma_low
    consolidate: bool      # the motor columns learn at lr / (1 + c) (brains/consolidation.py)
    consol_rate: float     # capture per unit of max(D, 0) |e|
    consol_keep: float     # 1 - 1 / tau_steps


class Arrays(NamedTuple):
    """The state the kernel changes in place (numpy views of the agents' tensors; ``[B, 0]``: not there)."""

    w: np.ndarray          # f32 [B, P, Q]
    e: np.ndarray          # f32 [B, P, Q]
    mask: np.ndarray       # bool [B, P, Q] or [B, 0, 0]
    w_rec: np.ndarray      # f32 [B, M, M] lateral inhibition (times lateral_sign) or [B, 0, 0]
    excite: np.ndarray     # f32 [B, Q]
    last: np.ndarray       # f32 [B, Q]
    rate: np.ndarray       # f32 [B, Q]
    rate_in: np.ndarray    # f32 [B, P]
    v: np.ndarray          # f32 [B, M] LIF membranes
    ref: np.ndarray        # f32 [B, M] refractory ms left
    theta: np.ndarray      # f32 [B, M] ALIF threshold offsets
    xpre: np.ndarray       # f32 [B, P] STDP traces
    xpost: np.ndarray      # f32 [B, M]
    stp_u: np.ndarray      # f32 [B, P] short-term plasticity
    stp_x: np.ndarray      # f32 [B, P]
    rn_count: np.ndarray   # i64 [B] running normalisation
    rn_mean: np.ndarray    # f32 [B, D]
    rn_var: np.ndarray     # f32 [B, D]
    level: np.ndarray      # f32 [B, F] sensory adaptation
    last_input: np.ndarray  # f32 [B, F]
    counts: np.ndarray     # i32 [B, T] novelty hash counts
    nov_level: np.ndarray  # f32 [B, N] novelty neurons' habituation
    nov_last: np.ndarray   # f32 [B, N]
    value_prev: np.ndarray  # f32 [B]
    learnable: np.ndarray  # bool [B]
    reward_mean: np.ndarray  # f32 [B]
    td_fast: np.ndarray    # f32 [B]
    td_slow: np.ndarray    # f32 [B]
    serotonin: np.ndarray  # f32 [B] running mean of the internal reward (agents/serotonin.py)
    alive_in: np.ndarray   # f32 [B, P]: 0 where a sensor neuron is lesioned (agents/lesion.py), or [B, 0]
    consol: np.ndarray     # f32 [B, P, M] consolidation of the motor columns or [B, 0, 0]


class Outs(NamedTuple):
    """What one call writes."""

    sensors: np.ndarray    # f32 [K, B, P]
    spikes: np.ndarray     # f32 [B, K, Q]
    r: np.ndarray          # f32 [B] internal reward
    delta: np.ndarray      # f32 [B]
    value: np.ndarray      # f32 [B]
    intrinsic: np.ndarray  # f32 [B]
    novelty: np.ndarray    # f32 [B]
    gain: np.ndarray       # f32 [B] plasticity gain
    surprise: np.ndarray   # f32 [B]
    counts: np.ndarray     # f32 [B, G] spikes per motor population
    action: np.ndarray     # i64 [B] (discrete)
    learnable: np.ndarray  # bool [B]: the previous decision may be learned from (not a reset step)
    n_spikes: np.ndarray   # f32 [B] spikes of the motor and critic neurons in this decision (energy)
