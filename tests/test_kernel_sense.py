"""The sensing functions of the numba kernel (agents/kernel_sense.py) compute what their torch twins compute.

* :func:`encode_agent` against :meth:`PopulationEncoder.probabilities` for several set-ups, ``B = 4`` agents
  stepped one by one beside the batched torch encoder over 50 observations with big jumps: the same
  probabilities, running statistics and adaptation state at every step;
* :func:`simhash_novelty` against :func:`novelty_step` (8, 12 and 24 folded hash bits): the same novelties and
  count tables; :func:`novelty_neurons` against :func:`novelty_neurons_step`: the same novelties and state;
* each mechanism changes the result on these inputs (adaptation, change and punishment sensitization, the
  capped running statistics, circular angles), so the lockstep tests cannot pass with one of them skipped.

Tolerance: both sides are float32; ``exp`` differs by up to 2 ulp and sums run in another order, so values agree
to ``rtol = 1e-5``, ``atol = 1e-6`` (a few ulp of values up to about 1; the states do not drift apart over 50
steps); integer state (counters, count tables) agrees exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from spikegym.agents import kernel_sense as ks
from spikegym.agents.encoders import AdaptationParams, PopulationEncoder
from spikegym.agents.novelty import NoveltyDetector
from spikegym.brains import jit

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(not jit.available(), reason="numba is not installed")]

B, STEPS = 4, 50
TOL = dict(rtol=1e-5, atol=1e-6)
F32_MAX = float(np.finfo(np.float32).max)
CARTPOLE = dict(obs_low=[-2.4, -3.0, -0.21, -3.5], obs_high=[2.4, 3.0, 0.21, 3.5])
CARTPOLE_GYM = dict(obs_low=[-4.8, -F32_MAX, -0.418, -F32_MAX], obs_high=[4.8, F32_MAX, 0.418, F32_MAX])
PENDULUM = dict(obs_low=[-1.0, -1.0, -8.0], obs_high=[1.0, 1.0, 8.0], angles=[(0, 1)])
MOUNTAINCAR = dict(obs_low=[-1.2, -0.07], obs_high=[0.6, 0.07])
SENSITIVE = AdaptationParams(tau_adapt=0.05, tau_recover=0.4, strength=2.0, sensitize_threshold=0.3)

#: name -> (PopulationEncoder keywords, K substeps, punishment flags on)
SETUPS = {
    "cartpole_fixed": (dict(CARTPOLE, normalize="bounds", fields=15, neurons_per_field=2, bias_neurons=2), 20, False),
    "running": (dict(CARTPOLE_GYM, normalize="auto", fields=11, neurons_per_field=1, bias_neurons=0), 10, False),
    "running_capped": (dict(CARTPOLE_GYM, normalize="running", running_max_count=10, running_clip=2.0,
                            fields=9, neurons_per_field=2, bias_neurons=1), 10, False),
    "pendulum_angles_pairs": (dict(PENDULUM, fields=9, pairs=[(3, 2), (0, 3)], pair_fields=5,
                                   neurons_per_field=2, bias_neurons=2), 20, False),
    "mountaincar_pairs": (dict(MOUNTAINCAR, fields=7, pairs=[(0, 1)], pair_fields=7, neurons_per_field=1,
                               bias_neurons=3), 20, False),
    "adapt_divisive_punish": (dict(CARTPOLE, normalize="bounds", fields=9, neurons_per_field=3, bias_neurons=2,
                                   adaptation=SENSITIVE), 20, True),
    "adapt_exp_running_pairs": (dict(CARTPOLE_GYM, fields=7, pairs=[(0, 2)], pair_fields=4, neurons_per_field=2,
                                     bias_neurons=1, running_max_count=20,
                                     adaptation=SENSITIVE._replace(form="exp", sensitize_reset=0.7)), 10, True),
}


def _observations(kw, seed: int = 0) -> np.ndarray:
    """``[STEPS, B, D]`` float32: small moves with a jump to a fresh point (up to twice the range) every few
    steps; unbounded dimensions around 1 with scale 2; (cos, sin) pairs on the unit circle."""
    rng = np.random.default_rng(seed)
    low, high = np.array(kw["obs_low"]), np.array(kw["obs_high"])
    finite = np.abs(high) < 1e6
    centre = np.where(finite, (low + high) / 2, 1.0)
    scale = np.where(finite, (high - low) / 2, 2.0)
    obs = np.empty((STEPS, B, len(low)))
    x = centre + scale * rng.uniform(-1, 1, (B, len(low)))
    for t in range(STEPS):
        jump = rng.random(B) < 0.2
        fresh = centre + scale * rng.uniform(-2, 2, (B, len(low)))
        x = np.where(jump[:, None], fresh, x + 0.05 * scale * rng.normal(size=(B, len(low))))
        obs[t] = x
    for cos, sin in kw.get("angles", ()):
        angle = np.arctan2(obs[..., sin], obs[..., cos]) + 0.1 * np.arange(STEPS)[:, None]
        obs[..., cos], obs[..., sin] = np.cos(angle), np.sin(angle)
    return obs.astype(np.float32)


def _kernel_state(encoder) -> dict[str, np.ndarray]:
    """The encoder's running statistics and adaptation state as numpy copies (the kernel's own arrays)."""
    names = ("rn_count", "rn_mean", "rn_var", "adapt_level", "adapt_last_input")
    return {n: getattr(encoder, n).numpy().copy() for n in names}


def _kernel_step(c, state, obs, flags, probs, work, update_stats=True):
    for b in range(obs.shape[0]):
        ks.encode_agent(obs[b], c, state["rn_count"][b:b + 1], state["rn_mean"][b], state["rn_var"][b],
                        state["adapt_level"][b], state["adapt_last_input"][b], bool(flags[b]), update_stats,
                        probs[b], work)


def _kernel_run(c, encoder, obs, flags):
    """Probabilities ``[STEPS, B, N_in]`` and the final state of the kernel from the encoder's initial state."""
    state = _kernel_state(encoder)
    probs = np.zeros((STEPS, B, encoder.n_out), np.float32)
    work = np.zeros(ks.encoder_work_size(c), np.float32)
    for t in range(STEPS):
        _kernel_step(c, state, obs[t], flags[t], probs[t], work)
    return probs, state


def _flags(on: bool, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((STEPS, B)) < 0.15 if on else np.zeros((STEPS, B), bool)


@pytest.mark.parametrize("name", list(SETUPS))
def test_encode_agent_matches_population_encoder(name):
    kw, K, punish = SETUPS[name]
    enc = PopulationEncoder(num_agents=B, **kw)
    c = ks.encoder_consts(enc, K)
    obs, flags = _observations(kw), _flags(punish)
    state = _kernel_state(enc)
    probs = np.zeros((B, enc.n_out), np.float32)
    work = np.full(ks.encoder_work_size(c), np.nan, np.float32)  # the kernel must not read scratch it did not write
    for t in range(STEPS):
        stats = t % 9 != 1  # now and then a call that leaves the statistics alone (first at count 1)
        expected = enc.probabilities(obs[t], K=K, sensitize=torch.from_numpy(flags[t]) if punish else None,
                                     update_stats=stats).numpy()
        _kernel_step(c, state, obs[t], flags[t], probs, work, update_stats=stats)
        np.testing.assert_allclose(probs, expected, **TOL, err_msg=f"{name} step {t}: probabilities")
        np.testing.assert_array_equal(state["rn_count"], enc.rn_count.numpy(), err_msg=f"{name} step {t}")
        for key in ("rn_mean", "rn_var", "adapt_level", "adapt_last_input"):
            np.testing.assert_allclose(state[key], getattr(enc, key).numpy(), **TOL, err_msg=f"{name} step {t}: {key}")
        n_f = enc.n_fields
        np.testing.assert_allclose(work[n_f:2 * n_f], enc.last_gain.numpy()[-1], **TOL, err_msg="the last gain")


def _differs(a, b) -> bool:
    return not np.allclose(a, b, rtol=1e-3, atol=1e-4)


def test_each_mechanism_changes_the_result():
    """On the lockstep inputs every mechanism matters: a kernel with one of them skipped would fail there."""
    kw, K, _ = SETUPS["adapt_divisive_punish"]
    enc = PopulationEncoder(num_agents=B, **kw)
    c = ks.encoder_consts(enc, K)
    obs, quiet, punish = _observations(kw), _flags(False), _flags(True)
    base, st = _kernel_run(c, enc, obs, quiet)
    assert _differs(base, _kernel_run(c._replace(adapt=False), enc, obs, quiet)[0]), "adaptation"
    _, st_off = _kernel_run(c._replace(sensitize_threshold=np.float32(np.inf)), enc, obs, quiet)
    assert _differs(st["adapt_level"], st_off["adapt_level"]), "change-triggered sensitization"
    assert _differs(st_off["adapt_level"], _kernel_run(c._replace(sensitize_threshold=np.float32(np.inf)), enc, obs,
                                                       punish)[1]["adapt_level"]), "punishment sensitization"
    assert _differs(base, _kernel_run(c._replace(sensitize_reset=0.5), enc, obs, quiet)[0]), "sensitize_reset"
    exp_form = c._replace(divisive=False)
    assert _differs(base, _kernel_run(exp_form, enc, obs, quiet)[0]), "the exp form"

    kw, K, _ = SETUPS["running_capped"]
    enc = PopulationEncoder(num_agents=B, **kw)
    c = ks.encoder_consts(enc, K)
    obs = _observations(kw)
    capped, st = _kernel_run(c, enc, obs, quiet)
    uncapped, st_u = _kernel_run(c._replace(max_count=-1), enc, obs, quiet)
    assert st["rn_count"].tolist() == [10] * B and st_u["rn_count"].tolist() == [STEPS] * B
    assert _differs(st["rn_mean"], st_u["rn_mean"]) and _differs(capped, uncapped), "running_max_count"

    kw, K, _ = SETUPS["pendulum_angles_pairs"]
    enc = PopulationEncoder(num_agents=B, **kw)
    c = ks.encoder_consts(enc, K)
    obs = _observations(kw)
    assert _differs(_kernel_run(c, enc, obs, quiet)[0],
                    _kernel_run(c._replace(circular=np.zeros_like(c.circular)), enc, obs, quiet)[0]), "circular"


@pytest.mark.parametrize("bits", [8, 12, 24])
def test_simhash_novelty_matches_novelty_step(bits):
    n_in = 40
    det = NoveltyDetector(n_in, B, hash_bits=bits, seed=3)
    rng = np.random.default_rng(bits)
    pool = (rng.random((6, n_in)) < 0.3).astype(np.float32)  # repeated patterns, so counts grow
    counts = det.counts.numpy().copy()
    projection, weights = det.projection.numpy(), det.bit_weights.numpy()
    seen = []
    for t in range(STEPS):
        pattern = pool[rng.integers(0, len(pool), B)]
        fresh = rng.random(B) < 0.3
        pattern[fresh] = rng.random((int(fresh.sum()), n_in)) * 2  # and new rates now and then
        expected = det(torch.from_numpy(pattern))[1].numpy()
        got = [ks.simhash_novelty(pattern[b], projection, weights, det.table_size, counts[b]) for b in range(B)]
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=0, err_msg=f"step {t}")
        seen += got
    np.testing.assert_array_equal(counts, det.counts.numpy())
    assert min(seen) < 0.5 and max(seen) == 1.0  # buckets visited many times and new ones


@pytest.mark.parametrize("form", ["divisive", "exp"])
def test_novelty_neurons_match_novelty_neurons_step(form):
    n_in, m, active = 30, 64, 5
    adaptation = AdaptationParams(tau_adapt=2.0, tau_recover=30.0, strength=9.0, sensitize_threshold=math.inf,
                                  form=form)
    det = NoveltyDetector(n_in, B, mode="neurons", n_neurons=m, active=active, adaptation=adaptation, dt=1.5, seed=2)
    consts = ks.neuron_adaptation(det.adaptation, det.dt)
    rng = np.random.default_rng(7)
    pool = rng.random((5, n_in)).astype(np.float32)
    level, last = det.level.numpy().copy(), det.last_input.numpy().copy()
    projection, work = det.projection.numpy(), np.zeros(m, np.float32)
    seen = []
    for t in range(STEPS):
        pattern = pool[rng.integers(0, len(pool), B)]
        expected = det(torch.from_numpy(pattern))[1].numpy()
        got = [ks.novelty_neurons(pattern[b], projection, active, *consts, level[b], last[b], work) for b in range(B)]
        np.testing.assert_allclose(got, expected, **TOL, err_msg=f"step {t}")
        np.testing.assert_allclose(level, det.level.numpy(), **TOL, err_msg=f"step {t}: level")
        np.testing.assert_array_equal(last, det.last_input.numpy(), err_msg=f"step {t}: last_input (the tag)")
        seen += got
    assert min(seen) < 0.3 and max(seen) == 1.0  # familiar patterns habituated, the first visits full


def test_novelty_neurons_ties_take_the_lower_index():
    """The documented tie rule: an all-zero pattern projects every unit to 0, and the first ``active`` are tagged."""
    projection = np.random.default_rng(0).normal(size=(6, 10)).astype(np.float32)
    level, last = np.zeros(10, np.float32), np.zeros(10, np.float32)
    novelty = ks.novelty_neurons(np.zeros(6, np.float32), projection, 3, np.float32(0.5), np.float32(0.9),
                                 np.float32(9.0), True, level, last, np.zeros(10, np.float32))
    assert novelty == 1.0
    assert last.tolist() == [1.0] * 3 + [0.0] * 7 and level[:3].tolist() == [0.5] * 3


def test_neuron_adaptation_refuses_change_sensitization():
    with pytest.raises(ValueError, match="sensitize_threshold=inf"):
        ks.neuron_adaptation(AdaptationParams(sensitize_threshold=0.5), 1.0)


def test_encode_agent_runs_inside_a_numba_loop():
    """The kernel step calls encode_agent from compiled code, an agent per iteration: the same bits as from Python."""
    @jit.numba.njit(**jit.FAST)
    def all_agents(obs, c, count, mean, var, level, last, flags, probs, work):
        for b in range(obs.shape[0]):
            ks.encode_agent(obs[b], c, count[b:b + 1], mean[b], var[b], level[b], last[b], flags[b], True, probs[b],
                            work[b])

    kw, K, _ = SETUPS["adapt_exp_running_pairs"]
    enc = PopulationEncoder(num_agents=B, **kw)
    c = ks.encoder_consts(enc, K)
    obs, flags = _observations(kw), _flags(True)
    expected, expected_state = np.zeros((B, enc.n_out), np.float32), _kernel_state(enc)
    probs, state = np.zeros_like(expected), _kernel_state(enc)
    work = np.zeros((B, ks.encoder_work_size(c)), np.float32)
    for t in range(5):
        _kernel_step(c, expected_state, obs[t], flags[t], expected, work[0])
        all_agents(obs[t], c, *state.values(), flags[t], probs, work)
        np.testing.assert_array_equal(probs, expected)
    for key in state:
        np.testing.assert_array_equal(state[key], expected_state[key], err_msg=key)
