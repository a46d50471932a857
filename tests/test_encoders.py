"""Encoders: Gaussian population code, running normalisation, habituation / sensitization, spikes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spikegym.agents.encoders import (
    AdaptationParams,
    AdaptationState,
    PopulationEncoder,
    adaptation_init,
    adaptation_step,
    angle_dimensions,
    gaussian_fields,
    pair_fields,
    running_norm_apply,
    running_norm_init,
    running_norm_update,
)

# Habituation constants used throughout: one step = 20 ms (K = 20 substeps of 1 ms).
DT = 0.02
HAB = AdaptationParams(tau_adapt=0.1, tau_recover=0.5, strength=2.0, sensitize_threshold=float("inf"))


def run_drive(drives, params=HAB, dt=DT, state=None, sensitize=None):
    """Feed a list of drives [B, N]; return the responses drive * gain as a list and the final state."""
    state = adaptation_init(*drives[0].shape) if state is None else state
    out = []
    for i, d in enumerate(drives):
        flag = None if sensitize is None else sensitize[i]
        gain, state = adaptation_step(d, state, params, dt, flag)
        out.append(d * gain)
    return out, state


# ---- Gaussian fields -------------------------------------------------------------------------


def test_gaussian_fields_analytic_at_centres():
    low, high, fields = torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 10.0]), 5
    spacing = (high - low) / (fields - 1)
    for j in range(fields):
        obs = (low + j * spacing)[None]  # both dims exactly at centre j
        phi = gaussian_fields(obs, low, high, fields).view(2, fields)
        expected = torch.tensor([math.exp(-0.5 * (i - j) ** 2) for i in range(fields)])
        torch.testing.assert_close(phi[0], expected, rtol=1e-6, atol=0)
        torch.testing.assert_close(phi[1], expected, rtol=1e-6, atol=0)
        assert phi[0, j] == 1.0
    # half-way between two centres: both fields at exp(-1/8); out of range clips to the bound
    phi = gaussian_fields(torch.tensor([[-1.5, 99.0]]), low, high, fields).view(2, fields)
    assert phi[0, 0].item() == pytest.approx(math.exp(-0.125), rel=1e-6)
    assert phi[0, 1].item() == pytest.approx(math.exp(-0.125), rel=1e-6)
    assert phi[1, -1].item() == 1.0
    assert bool((phi > 0).all()) and bool((phi <= 1).all())


def test_gaussian_fields_layout_is_dimension_major():
    obs = torch.tensor([[0.3, -0.7], [1.0, 0.0]])
    low, high = torch.tensor([-1.0, -1.0]), torch.tensor([1.0, 1.0])
    phi = gaussian_fields(obs, low, high, 7)
    for d in range(2):
        alone = gaussian_fields(obs[:, d : d + 1], low[d : d + 1], high[d : d + 1], 7)
        assert torch.equal(phi[:, d * 7 : (d + 1) * 7], alone)
    with pytest.raises(ValueError):
        gaussian_fields(obs, low, high, 1)


# ---- running normalisation -------------------------------------------------------------------


def test_running_norm_matches_batch_statistics_per_agent():
    g = torch.Generator().manual_seed(1)
    xs = torch.randn(200, 3, 4, generator=g) * torch.tensor([1.0, 10.0, 0.1])[None, :, None] + 5.0
    st = running_norm_init(4, 3)
    for x in xs:
        st = running_norm_update(st, x)
    assert st.count.tolist() == [200, 200, 200]
    torch.testing.assert_close(st.mean, xs.mean(0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(st.var, xs.var(0, unbiased=False), rtol=1e-4, atol=1e-6)
    z = running_norm_apply(st, xs[-1], clip=100.0)
    torch.testing.assert_close(z, (xs[-1] - xs.mean(0)) / xs.std(0, unbiased=False), rtol=1e-4, atol=1e-4)
    assert float(running_norm_apply(st, xs[-1] * 1e6, clip=3.0).abs().max()) == 3.0


def test_running_norm_mask_and_max_count():
    st = running_norm_init(1, 2)
    st = running_norm_update(st, torch.tensor([[1.0], [1.0]]))
    st = running_norm_update(st, torch.tensor([[3.0], [3.0]]), mask=torch.tensor([True, False]))
    assert st.count.tolist() == [2, 1]
    assert st.mean[:, 0].tolist() == [2.0, 1.0]
    # capped count = exponential moving average with rate 1/max_count
    st = running_norm_init(1, 1)
    for _ in range(50):
        st = running_norm_update(st, torch.tensor([[0.0]]), max_count=4)
    for k in range(1, 6):
        st = running_norm_update(st, torch.tensor([[1.0]]), max_count=4)
        assert st.mean.item() == pytest.approx(1 - 0.75**k, rel=1e-6)


# ---- habituation and sensitization -----------------------------------------------------------


def test_habituation_ten_repeats_halve_the_response():
    strong = torch.ones(1, 3)
    out, _ = run_drive([strong] * 10)
    assert torch.equal(out[0], strong)  # first touch: full response
    assert bool((out[9] <= 0.5 * out[0]).all())
    r = torch.stack(out)[:, 0, 0]
    assert bool((r[1:] < r[:-1]).all())  # decays monotonically


def test_habituation_curve_matches_time_constants():
    n_on, n_off = 12, 30
    d = 0.8
    drives = [torch.full((1, 1), d)] * n_on + [torch.zeros(1, 1)] * n_off
    state = adaptation_init(1, 1)
    levels, gains = [], []
    for x in drives:
        g, state = adaptation_step(x, state, HAB, DT)
        gains.append(g.item())
        levels.append(state.level.item())
    # closed form: charge toward d with tau_adapt, then relax to 0 with tau_recover
    exp_levels = [d * (1 - math.exp(-n * DT / HAB.tau_adapt)) for n in range(1, n_on + 1)]
    peak = exp_levels[-1]
    exp_levels += [peak * math.exp(-m * DT / HAB.tau_recover) for m in range(1, n_off + 1)]
    np.testing.assert_allclose(levels, exp_levels, rtol=1e-5, atol=1e-7)
    exp_gains = [1 / (1 + HAB.strength * lv) for lv in [0.0] + exp_levels[:-1]]
    np.testing.assert_allclose(gains, exp_gains, rtol=1e-5)

    # a weaker (non-zero) drive: the level relaxes toward it with tau_recover
    state = AdaptationState(torch.full((1, 1), 0.7), torch.full((1, 1), 0.2))
    for m in range(1, 6):
        _, state = adaptation_step(torch.full((1, 1), 0.2), state, HAB, DT)
        assert state.level.item() == pytest.approx(0.2 + 0.5 * math.exp(-m * DT / HAB.tau_recover), rel=1e-5)

    # the exponential form of the gain
    p = HAB._replace(form="exp")
    state = AdaptationState(torch.full((1, 1), 0.3), torch.zeros(1, 1))
    g, _ = adaptation_step(torch.ones(1, 1), state, p, DT)
    assert g.item() == pytest.approx(math.exp(-HAB.strength * 0.3), rel=1e-6)


def test_recovery_after_rest():
    strong = torch.ones(1, 1)
    out, state = run_drive([strong] * 10)
    first = out[0].item()
    # a short pause is not enough ...
    _, short = run_drive([torch.zeros(1, 1)], state=state)
    probe, _ = run_drive([strong], state=short)
    assert probe[0].item() < 0.9 * first
    # ... a rest of 2 s (4 tau_recover) restores at least 90 %
    _, rested = run_drive([torch.zeros(1, 1)] * 100, state=state)
    probe, _ = run_drive([strong], state=rested)
    assert probe[0].item() >= 0.9 * first


def test_sensitization_by_flag_restores_response_at_once_per_agent():
    strong = torch.ones(2, 4)
    out, state = run_drive([strong] * 10)
    first = out[0]
    assert bool((out[-1] <= 0.5 * first).all())
    gain, _ = adaptation_step(strong, state, HAB, DT, torch.tensor([True, False]))
    resp = strong * gain
    assert bool((resp[0] >= 0.8 * first[0]).all())  # sensitized agent: restored now
    assert bool((resp[1] <= 0.5 * first[1]).all())  # the other agent stays habituated
    # a partial reset restores in proportion
    gain, _ = adaptation_step(strong, state, HAB._replace(sensitize_reset=0.5), DT, torch.tensor([True, True]))
    lv = state.level[0, 0].item()
    assert gain[0, 0].item() == pytest.approx(1 / (1 + HAB.strength * 0.5 * lv), rel=1e-6)


def test_sensitization_by_large_unexpected_change():
    habituated = torch.tensor([[1.0, 1.0, 0.0]])  # touch on the siphon ...
    shock = torch.tensor([[1.0, 1.0, 1.0]])  # ... plus a strong new stimulus: relative change 1/5
    out, state = run_drive([habituated] * 10)
    first = out[0][0, :2]
    # with change-triggered sensitization off, the touch stays habituated
    gain, _ = adaptation_step(shock, state, HAB, DT)
    assert bool((gain[0, :2] <= 0.5).all())
    # with the threshold below the change, the habituated neurons respond again at once
    p = HAB._replace(sensitize_threshold=0.15)
    gain, _ = adaptation_step(shock, state, p, DT)
    assert bool(((shock * gain)[0, :2] >= 0.8 * first).all())
    # a small change (one neuron dimmed by 10 %) does not sensitize
    gain, _ = adaptation_step(torch.tensor([[1.0, 0.9, 0.0]]), state, p, DT)
    assert bool((gain[0, :2] <= 0.5).all())


# ---- the population encoder ------------------------------------------------------------------

LOW = [-2.4, -3.0, -0.21]
HIGH = [2.4, 3.0, 0.21]


def plain_code(enc: PopulationEncoder, obs: torch.Tensor) -> torch.Tensor:
    phi = gaussian_fields(obs, enc.field_low, enc.field_high, enc.fields)
    p = enc.max_prob * phi
    p = p.repeat_interleave(enc.neurons_per_field, dim=1)
    return torch.cat([p, torch.full((obs.shape[0], enc.bias_neurons), enc.max_prob)], dim=1)


def obs_stream(n, b, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, b, d, generator=g) * 4 - 2


@pytest.mark.parametrize("adaptation", [None, AdaptationParams(strength=0.0)])
def test_encoder_without_adaptation_is_exactly_the_gaussian_code(adaptation):
    enc = PopulationEncoder(LOW, HIGH, 3, fields=7, neurons_per_field=2, bias_neurons=2, adaptation=adaptation)
    assert enc.n_out == 3 * 7 * 2 + 2
    for obs in obs_stream(20, 3, 3):
        p = enc.probabilities(obs, K=20)
        assert torch.equal(p, plain_code(enc, obs))


def test_encoder_spike_rate_matches_probabilities():
    enc = PopulationEncoder(LOW, HIGH, 2, fields=5, neurons_per_field=2, max_prob=0.5, bias_neurons=2)
    obs = torch.tensor([[0.5, -1.0, 0.05], [-2.0, 2.9, 0.2]])
    p = enc.probabilities(obs)
    K = 4000
    spikes = enc.encode(obs, torch.Generator().manual_seed(3), K)
    assert spikes.shape == (K, 2, enc.n_out)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    rate = spikes.mean(0)
    tol = 5 * torch.sqrt(p * (1 - p) / K) + 1e-6
    assert bool(((rate - p).abs() <= tol).all())
    assert torch.equal(p, plain_code(enc, obs))
    assert bool((rate[:, -2:] > 0.45).all())  # bias neurons always on at max_prob


def test_encoder_is_deterministic_given_the_generator():
    def spikes(seed):
        enc = PopulationEncoder(LOW, HIGH, 2, fields=5, adaptation=AdaptationParams())
        out = [enc.encode(o, torch.Generator().manual_seed(seed), 20) for o in obs_stream(5, 2, 3)]
        return torch.stack(out)

    assert torch.equal(spikes(7), spikes(7))
    assert not torch.equal(spikes(7), spikes(8))


def test_encoder_adaptation_uses_env_step_time_base():
    # K substeps of dt_ms each = one adaptation step of K * dt_ms / 1000 seconds
    p = AdaptationParams(tau_adapt=0.5, tau_recover=2.0, strength=1.0, sensitize_threshold=float("inf"))
    enc = PopulationEncoder(LOW, HIGH, 1, fields=5, adaptation=p, dt_ms=1.0)
    obs = torch.tensor([[0.0, 1.0, -0.1]])
    phi = gaussian_fields(obs, enc.field_low, enc.field_high, 5)
    for n in range(1, 8):
        enc.probabilities(obs, K=25)
        expected = phi * (1 - math.exp(-n * 0.025 / p.tau_adapt))
        torch.testing.assert_close(enc.adapt_level, expected, rtol=1e-5, atol=1e-7)
    # the encoder habituates: the probability of the most active field falls, bias neurons do not
    before = plain_code(enc, obs)
    after = enc.probabilities(obs, K=25)
    assert bool((after[:, :-2] <= before[:, :-2]).all()) and bool((after[:, -2:] == before[:, -2:]).all())
    assert float(after[0, :-2].max()) < float(before[0, :-2].max())
    assert enc.adaptation_level().shape == (1,) and float(enc.adaptation_level()) > 0
    assert float(enc.last_gain_mean()) < 1.0


def test_encoder_batched_equals_each_agent_alone():
    p = AdaptationParams(tau_adapt=0.2, tau_recover=1.0, strength=2.0, sensitize_threshold=0.4)
    low, high = [-2.4, -np.inf, -0.21], [2.4, np.inf, 0.21]
    B = 3
    xs = obs_stream(30, B, 3, seed=5) * torch.tensor([1.0, 5.0, 0.1])
    flags = torch.zeros(30, B, dtype=torch.bool)
    flags[12, 1] = True
    batched = PopulationEncoder(low, high, B, fields=6, adaptation=p)
    alone = [PopulationEncoder(low, high, 1, fields=6, adaptation=p) for _ in range(B)]
    for t, x in enumerate(xs):
        if t == 20:
            batched.reset(torch.tensor([False, False, True]))
            alone[2].reset(torch.tensor([True]))
        pb = batched.probabilities(x, K=20, sensitize=flags[t])
        for b in range(B):
            pa = alone[b].probabilities(x[b : b + 1], K=20, sensitize=flags[t, b : b + 1])
            torch.testing.assert_close(pb[b : b + 1], pa, rtol=1e-6, atol=1e-7)
    assert not torch.equal(batched.adapt_level[0], batched.adapt_level[1])


def test_encoder_bounds_auto_running_and_errors():
    f32max = float(np.finfo(np.float32).max)
    cartpole_low = [-4.8, -f32max, -0.418, -f32max]
    enc = PopulationEncoder(cartpole_low, [-v for v in cartpole_low], 2, fields=5)
    assert enc.norm_mask.tolist() == [False, True, False, True]
    assert enc.field_high.tolist() == pytest.approx([4.8, 3.0, 0.418, 3.0])
    with pytest.raises(ValueError, match="unbounded"):
        PopulationEncoder(cartpole_low, [-v for v in cartpole_low], 2, normalize="bounds")
    with pytest.raises(ValueError, match="shape"):
        enc.probabilities(torch.zeros(3, 4))
    # running normalisation of unbounded dimensions: the coded value is the clipped z-score
    enc = PopulationEncoder([-np.inf], [np.inf], 1, fields=7, neurons_per_field=1, bias_neurons=0, running_clip=3.0)
    g = torch.Generator().manual_seed(0)
    xs = 100.0 + 20.0 * torch.randn(300, 1, 1, generator=g)
    for x in xs:
        p = enc.probabilities(x)
    z = ((xs[-1] - xs.mean()) / xs.std(unbiased=False)).clamp(-3, 3)
    expected = 0.5 * gaussian_fields(z, torch.tensor([-3.0]), torch.tensor([3.0]), 7)
    torch.testing.assert_close(p, expected, rtol=1e-3, atol=1e-4)


def test_encoder_reset_and_state_dict_round_trip():
    p = AdaptationParams(tau_adapt=0.2, tau_recover=1.0, strength=2.0)
    enc = PopulationEncoder([-1.0, -np.inf], [1.0, np.inf], 2, fields=5, adaptation=p)
    for x in obs_stream(10, 2, 2):
        enc.probabilities(x, K=20)
    copy = PopulationEncoder([-1.0, -np.inf], [1.0, np.inf], 2, fields=5, adaptation=p)
    copy.load_state_dict(enc.state_dict())
    x = torch.tensor([[0.1, 0.2], [-0.3, 5.0]])
    assert torch.equal(enc.probabilities(x, K=20), copy.probabilities(x, K=20))
    assert {"adapt_level", "adapt_last_input", "rn_mean", "rn_var", "rn_count", "field_low"} <= set(enc.state_dict())

    level0 = enc.adapt_level.clone()
    enc.reset(torch.tensor([True, False]))
    assert bool((enc.adapt_level[0] == 0).all()) and torch.equal(enc.adapt_level[1], level0[1])
    assert int(enc.rn_count[0]) == 11  # running statistics survive an episode reset
    enc.probabilities(x, K=20)
    assert bool((enc.last_gain[0] == 1).all())  # a reset agent responds in full again
    assert float(enc.last_gain[1].min()) < 1.0  # the other one is still habituated


def test_no_autograd_graph():
    enc = PopulationEncoder(LOW, HIGH, 2, adaptation=AdaptationParams())
    obs = torch.zeros(2, 3, requires_grad=True)
    s = enc.encode(obs, torch.Generator().manual_seed(0), 5)
    assert not s.requires_grad and s.grad_fn is None
    assert all(not b.requires_grad for b in enc.buffers())


def test_config_defaults_through_the_agent_give_the_aplysia_curves():
    """The encoder the Agent builds from ``encoder.adaptation`` (defaults, with the brain's K and dt):
    ten touches halve the response, the level follows tau_adapt / tau_recover, a rest of 3 s restores
    >= 90 %, and a sensitizing (aversive) event restores >= 80 % at once, per agent."""
    import gymnasium as gym

    from spikegym.agents.agent import Agent
    from spikegym.training.config import load_config

    # change-triggered sensitization off, so that rest (a different input) does not reset the level
    cfg = load_config(None, ["encoder.adaptation.enabled=true", "encoder.adaptation.sensitize_threshold=.inf",
                             "brain.motor_size=2", "brain.critic_size=2"])
    a = cfg.encoder.adaptation
    agent = Agent(cfg, [-1.0, -1.0], [1.0, 1.0], gym.spaces.Discrete(2), num_agents=2, seed=0)
    enc, K = agent.spec.encoder, agent.spec.K
    dt = K * cfg.brain.dt / 1000.0
    j = cfg.encoder.fields // 2  # the field centred on 0
    col = j * cfg.encoder.neurons_per_field
    touch = torch.zeros(2, 2)  # both dimensions at a field centre: drive 1
    rest = torch.full((2, 2), -1.0)  # seven field widths away: drive ~1e-11
    state = agent.state.encoder

    def probe(x, sensitize=None):
        nonlocal state
        p, state, _ = enc.code(state, x, K=K, sensitize=sensitize)
        return p

    # the agent's own step adapts its encoder state exactly as the pure code does
    z, f = np.zeros(2), np.zeros(2, bool)
    agent.step(touch.numpy(), z, f, f)
    probe(touch)
    torch.testing.assert_close(agent.state.encoder.level, state.level, rtol=1e-5, atol=1e-7)  # (kernel: float rounding)
    assert float(state.level.max()) > 0.01
    state = agent.spec.encoder.initial_state(2)

    resp = []
    for n in range(1, 11):
        resp.append(probe(touch)[:, col])
        assert state.level[0, j].item() == pytest.approx(1 - math.exp(-n * dt / a.tau_adapt), rel=1e-5)
    first = resp[0]
    assert torch.equal(first, torch.full((2,), cfg.encoder.max_prob))  # the first touch: full response
    assert bool((resp[9] <= 0.5 * first).all())

    peak = state.level[0, j].item()
    rest_steps = round(3.0 / dt)
    for m in range(1, rest_steps + 1):
        probe(rest)
        assert state.level[0, j].item() == pytest.approx(peak * math.exp(-m * dt / a.tau_recover), rel=1e-4, abs=1e-9)
    assert bool((probe(touch)[:, col] >= 0.9 * first).all())

    for _ in range(10):
        probe(touch)
    sensed = probe(touch, sensitize=torch.tensor([True, False]))[:, col]
    assert sensed[0].item() >= 0.8 * first[0].item()  # the sensitized agent responds again at once
    assert sensed[1].item() <= 0.5 * first[1].item()  # its neighbour stays habituated


# ---- conjunctive 2-D fields ------------------------------------------------------------------


def test_pair_fields_are_products_of_the_1d_fields_and_peak_at_the_grid_point():
    low, high = torch.tensor([-1.0, -2.0, 0.0]), torch.tensor([1.0, 2.0, 3.0])
    obs = torch.tensor([[0.5, -2.0, 1.5], [-1.0, 1.0, 3.0]])
    pairs = torch.tensor([[0, 2], [1, 0]])
    phi = pair_fields(obs, low, high, 5, pairs).view(2, 2, 5, 5)
    g = gaussian_fields(obs, low, high, 5).view(2, 3, 5)
    for k, (i, j) in enumerate(pairs.tolist()):
        for a in range(5):
            for c in range(5):
                assert phi[:, k, a, c].tolist() == pytest.approx((g[:, i, a] * g[:, j, c]).tolist())
    # obs 1 of agent 0 sits on centre 0 of dim 1, and obs 0 = 0.5 on centre 3 of dim 0 (-1, -.5, 0, .5, 1)
    assert phi[0, 1, 0, 3].item() == pytest.approx(1.0)
    assert phi[0, 1].max().item() == phi[0, 1, 0, 3].item()


def test_encoder_with_pairs_appends_the_grids_and_adapts_them():
    enc = PopulationEncoder(LOW, HIGH, 2, fields=5, neurons_per_field=2, bias_neurons=1, pairs=[[0, 1], [2, 0]],
                            pair_fields=4)
    assert enc.n_out == (3 * 5 + 2 * 16) * 2 + 1
    obs = obs_stream(1, 2, 3)[0]
    p = enc.probabilities(obs, K=20)
    one_d = gaussian_fields(obs, enc.field_low, enc.field_high, 5)
    two_d = pair_fields(obs, enc.field_low, enc.field_high, 4, torch.tensor([[0, 1], [2, 0]]))
    expected = torch.cat([enc.max_prob * torch.cat([one_d, two_d], 1).repeat_interleave(2, 1),
                          torch.full((2, 1), enc.max_prob)], 1)
    torch.testing.assert_close(p, expected)
    with pytest.raises(ValueError, match="pairs"):
        PopulationEncoder(LOW, HIGH, 2, fields=5, pairs=[[0, 3]])
    # adaptation covers the conjunctive fields too: a constant input habituates every field
    enc = PopulationEncoder(LOW, HIGH, 1, fields=5, neurons_per_field=1, bias_neurons=0, pairs=[[0, 1]], pair_fields=4,
                            adaptation=HAB)
    x = torch.tensor([[0.3, -0.2, 1.0]])
    first = enc.probabilities(x, K=20)
    for _ in range(20):
        last = enc.probabilities(x, K=20)
    strong = first[0, 15:] > 0.5 * enc.max_prob  # the grid fields near the input (weak ones adapt less)
    assert strong.sum() >= 2 and (last[0, 15:][strong] < 0.5 * first[0, 15:][strong]).all()


# ---- angles: circular fields -----------------------------------------------------------------


def test_circular_fields_wrap_around_and_match_the_analytic_bump():
    low, high = torch.tensor([-math.pi, -1.0]), torch.tensor([math.pi, 1.0])
    circular = torch.tensor([True, False])
    fields = 8
    spacing = 2 * math.pi / fields  # 8 centres around the circle, -pi (= pi) among them
    for theta in (-math.pi, -3.0, -0.4, 0.0, 1.0, 3.1, math.pi):
        phi = gaussian_fields(torch.tensor([[theta, 0.25]]), low, high, fields, circular).view(2, fields)
        for j in range(fields):
            c = -math.pi + j * spacing
            d = min(abs(theta - c), 2 * math.pi - abs(theta - c))  # the shorter way round
            assert phi[0, j].item() == pytest.approx(math.exp(-0.5 * (d / spacing) ** 2), abs=1e-5)
        # the other dimension is the ordinary code, untouched by its neighbour's wrapping
        torch.testing.assert_close(phi[1], gaussian_fields(torch.tensor([[0.25]]), low[1:], high[1:], fields)[0])
    # -pi and pi are the same angle, and the code is continuous across the seam
    at = lambda t: gaussian_fields(torch.tensor([[t, 0.0]]), low, high, fields, circular)
    torch.testing.assert_close(at(-math.pi), at(math.pi), atol=1e-6, rtol=0)
    assert (at(math.pi - 1e-4) - at(-math.pi + 1e-4)).abs().max().item() < 1e-3  # 2e-4 rad apart
    # without circular dimensions the result is the plain code, exactly
    x = torch.tensor([[0.3, -0.7]])
    assert torch.equal(gaussian_fields(x, low, high, 5, torch.tensor([False, False])), gaussian_fields(x, low, high, 5))


def test_encoder_angles_code_atan2_and_may_be_paired():
    # Pendulum's observation: cos, sin, angular velocity; the angle is coded dimension 3
    low, high = [-1.0, -1.0, -8.0], [1.0, 1.0, 8.0]
    enc = PopulationEncoder(low, high, 2, fields=6, neurons_per_field=1, bias_neurons=0, angles=[[0, 1]],
                            pairs=[[3, 2]], pair_fields=4)
    assert enc.coded_dim == 4 and enc.n_out == 4 * 6 + 16
    theta = torch.tensor([0.5, -2.9])
    obs = torch.stack([theta.cos(), theta.sin(), torch.tensor([1.0, -3.0])], 1)
    torch.testing.assert_close(angle_dimensions(obs, enc.angles), theta.view(2, 1))
    p = enc.probabilities(obs)
    ext_low, ext_high = torch.tensor([*low, -math.pi]), torch.tensor([*high, math.pi])
    circ = torch.tensor([False, False, False, True])
    x = torch.cat([obs, theta.view(2, 1)], 1)
    expected = enc.max_prob * torch.cat([gaussian_fields(x, ext_low, ext_high, 6, circ),
                                         pair_fields(x, ext_low, ext_high, 4, torch.tensor([[3, 2]]), circ)], 1)
    torch.testing.assert_close(p, expected)
    # the angle's fields peak where the angle is: centre j = 3 of 6 is 0 rad + pi/3 * ... (centres -pi + j pi/3)
    assert p[0, 18:24].argmax().item() == round((0.5 + math.pi) / (math.pi / 3)) % 6
    with pytest.raises(ValueError, match="angles"):
        PopulationEncoder(low, high, 2, angles=[[0, 3]])
    with pytest.raises(ValueError, match="pairs"):
        PopulationEncoder(low, high, 2, angles=[[0, 1]], pairs=[[4, 2]])  # only 4 coded dimensions
