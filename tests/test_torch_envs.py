"""Torch-native classic-control envs against Gymnasium's own, step for step.

Tolerances: observations are float32 in both, compared to 1e-6 (CartPole, MountainCar and Pendulum
states agree bit for bit in float64; Acrobot's sin/cos differ from numpy's by an ulp; MountainCarContinuous
mixes float32 and float64 arithmetic the way Gymnasium's scalar code happens to, approximated here:
1e-5). Rewards to 1e-8 (Pendulum's ``0.001 u**2`` uses numpy's float32 ``powf``, an ulp off ``u * u``).
Flags and episode statistics exactly.
"""

import json
import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from spikegym.envs import make_vector_env
from spikegym.envs.state import get_env_state, set_env_state
from spikegym.envs.torch_classic import WORLDS
from spikegym.envs.torch_vector import TorchVectorEnv

ROOT = Path(__file__).resolve().parents[1]
OBS_TOL = {"MountainCarContinuous-v0": 1e-5}


def _policy(env_id, rng):
    """Actions that reach every ending: random for CartPole/Pendulum, energy pumping (with noise) elsewhere."""
    def act(obs):
        B = len(obs)
        if env_id == "Acrobot-v1":
            return np.where(obs[:, 5] > 0, 2, 0) * (rng.random(B) > 0.1)
        if env_id == "MountainCar-v0":  # env 0 acts at random: it never reaches the flag (truncation)
            pump = np.where(obs[:, 1] > 0, 2, 0) * (rng.random(B) > 0.05)
            pump[0] = rng.integers(0, 3)
            return pump
        if env_id == "MountainCarContinuous-v0":  # beyond the bounds: the env clips the force, not the cost
            return (np.sign(obs[:, 1:2]) * rng.uniform(0.0, 1.5, (B, 1))).astype(np.float32)
        if env_id == "Pendulum-v1":
            return rng.uniform(-2.5, 2.5, (B, 1)).astype(np.float32)
        return rng.integers(0, 2, B)
    return act


def _gym_envs(env_id, B, max_episode_steps=None):
    fns = [lambda: gym.make(env_id, max_episode_steps=max_episode_steps) for _ in range(B)]
    return gym.wrappers.vector.RecordEpisodeStatistics(gym.vector.SyncVectorEnv(fns))


def _gym_state(genv) -> np.ndarray:
    return np.stack([np.asarray(e.unwrapped.state, dtype=np.float64) for e in genv.unwrapped.envs])


def _assert_step_equal(env_id, t_out, g_out):
    (to, tr, tt, tu, ti), (go, gr, gt, gu, gi) = t_out, g_out
    np.testing.assert_allclose(to.numpy(), go, rtol=0, atol=OBS_TOL.get(env_id, 1e-6))
    np.testing.assert_allclose(tr.numpy(), gr, rtol=0, atol=1e-8)
    np.testing.assert_array_equal(tt.numpy(), gt)
    np.testing.assert_array_equal(tu.numpy(), gu)
    assert ("_episode" in ti) == ("_episode" in gi)
    if "_episode" in gi:
        np.testing.assert_array_equal(ti["_episode"], gi["_episode"])
        np.testing.assert_allclose(ti["episode"]["r"], gi["episode"]["r"], rtol=1e-9, atol=1e-6)
        np.testing.assert_array_equal(ti["episode"]["l"], gi["episode"]["l"])


@pytest.mark.parametrize("env_id, steps, limit", [
    ("CartPole-v1", 300, 30),  # a short limit: truncations, and terminations on the same step as some
    ("Acrobot-v1", 400, 120),
    ("Pendulum-v1", 250, None),
    ("MountainCar-v0", 450, None),
    ("MountainCarContinuous-v0", 400, 130),
])
def test_matches_gymnasium_step_for_step(env_id, steps, limit):
    # Both start from the same seeded reset states and take the same actions; before each step the torch
    # state is set to Gymnasium's, so a chaotic world (Acrobot) cannot drift apart through rounding. Reset
    # states after autoreset are not synced: they must come out of the same seeded generators.
    B = 4
    genv, tenv = _gym_envs(env_id, B, limit), TorchVectorEnv(env_id, B, max_episode_steps=limit, reset_block=8)
    g_obs, _ = genv.reset(seed=11)
    t_obs, _ = tenv.reset(seed=11)
    np.testing.assert_array_equal(t_obs.numpy(), g_obs)
    act, seen = _policy(env_id, np.random.default_rng(0)), {"terminated": 0, "truncated": 0, "restart": 0}
    for _ in range(steps):
        tenv.state = tenv.world.state(*torch.as_tensor(_gym_state(genv).T))
        restart = tenv.autoreset.numpy().copy()
        a = act(g_obs)
        g_out, t_out = genv.step(a), tenv.step(a)
        _assert_step_equal(env_id, t_out, g_out)
        g_obs = g_out[0]
        seen["terminated"] += g_out[2].sum()
        seen["truncated"] += g_out[3].sum()
        seen["restart"] += restart.sum()
    print(env_id, seen)
    assert seen["restart"] > 0 and seen["truncated"] > 0
    assert seen["terminated"] > 0 or env_id == "Pendulum-v1", seen  # the pendulum never terminates


@pytest.mark.parametrize("reset_block", [1, 3, 64])
def test_cartpole_trajectory_is_gymnasiums_bit_for_bit(reset_block):
    # No syncing at all: 500 steps and dozens of autoresets from the seeds alone; a tiny reset_block
    # refills the reset states drawn ahead every step or three.
    B = 6
    genv, tenv = _gym_envs("CartPole-v1", B), TorchVectorEnv("CartPole-v1", B, reset_block=reset_block)
    seeds = [5, 900, 7, 3, 12345, 0]
    g_obs, _ = genv.reset(seed=seeds)
    t_obs, _ = tenv.reset(seed=seeds)
    act, ended = _policy("CartPole-v1", np.random.default_rng(1)), 0
    for _ in range(500):
        a = act(g_obs)
        g_out, t_out = genv.step(a), tenv.step(a)
        np.testing.assert_array_equal(t_out[0].numpy(), g_out[0])
        _assert_step_equal("CartPole-v1", t_out, g_out)
        g_obs, ended = g_out[0], ended + g_out[2].sum()
    assert ended > 50
    # a reset without a seed continues every env's generator, as Gymnasium's do
    np.testing.assert_array_equal(tenv.reset()[0].numpy(), genv.reset()[0])


@pytest.mark.parametrize("env_id", sorted(WORLDS))
def test_batch_equals_each_env_alone(env_id):
    B, seeds = 5, [3, 1, 4, 1, 5]
    batch = TorchVectorEnv(env_id, B, reset_block=4)
    alone = [TorchVectorEnv(env_id, 1, reset_block=4) for _ in range(B)]
    obs, _ = batch.reset(seed=seeds)
    for i, env in enumerate(alone):
        assert torch.equal(env.reset(seed=[seeds[i]])[0][0], obs[i])
    act, restarts = _policy(env_id, np.random.default_rng(2)), 0
    for _ in range({"CartPole-v1": 100, "Acrobot-v1": 150, "Pendulum-v1": 210}.get(env_id, 300)):  # past an end
        a = act(obs.numpy())
        out = batch.step(a)
        for i, env in enumerate(alone):
            one = env.step(a[i:i + 1])
            for x, y in zip(out[:4], one[:4]):
                assert torch.equal(x[i], y[0])
        obs, restarts = out[0], restarts + int(batch.autoreset.sum())
    assert restarts > 0


@pytest.mark.parametrize("env_id", ["CartPole-v1", "MountainCar-v0"])
def test_dense_and_sparse_resets_agree(env_id):
    # the masked torch.where over every env (the GPU's path) against writing only the restarting rows (CPU's)
    dense, sparse = (TorchVectorEnv(env_id, 6, sparse_resets=s, episode_stats=False, reset_block=2)
                     for s in (False, True))
    act = _policy(env_id, np.random.default_rng(4))
    obs = dense.reset(seed=9)[0]
    assert torch.equal(obs, sparse.reset(seed=9)[0])
    for _ in range(300):
        a = act(obs.numpy())
        out_d, out_s = dense.step(a), sparse.step(a)
        for x, y in zip(out_d[:4], out_s[:4]):
            assert torch.equal(x, y)
        obs = out_d[0]
    assert dense.episode_count == 0 and int(dense._used.min()) >= 2  # autoresets in every env; no statistics kept


def test_reset_step_ignores_the_action_and_gives_reward_zero():
    env = TorchVectorEnv("CartPole-v1", 2, max_episode_steps=3)
    env.reset(seed=0)
    for _ in range(3):
        _, reward, _, truncated, info = env.step(np.array([1, 0]))
    assert truncated.tolist() == [True, True] and info["episode"]["l"].tolist() == [3, 3]
    obs_a, reward, terminated, truncated, info = env.step(np.array([1, 1]))
    assert reward.tolist() == [0.0, 0.0] and not terminated.any() and not truncated.any() and info == {}
    env.reset(seed=0)
    for _ in range(3):
        env.step(np.array([1, 0]))
    obs_b = env.step(np.array([0, 0]))[0]  # another action on the reset step: the same new first obs
    assert torch.equal(obs_a, obs_b)
    assert env.episode_count == 4 and list(env.length_queue) == [3, 3, 3, 3]


def test_set_attr_changes_one_world_as_gymnasium_does():
    B = 3
    tenv, genv = TorchVectorEnv("CartPole-v1", B), _gym_envs("CartPole-v1", B)
    tenv.set_attr("length", [0.5, 1.0, 0.5])
    tenv.set_attr("gravity", 12.0)
    for i, e in enumerate(genv.unwrapped.envs):
        u = e.unwrapped
        u.length, u.gravity = [0.5, 1.0, 0.5][i], 12.0
        u.polemass_length = u.masspole * u.length  # Gymnasium caches it
    assert tenv.get_attr("length") == (0.5, 1.0, 0.5) and tenv.get_attr("gravity") == (12.0,) * 3
    g_obs, _ = genv.reset(seed=4)
    tenv.reset(seed=4)
    act = _policy("CartPole-v1", np.random.default_rng(3))
    for _ in range(100):
        a = act(g_obs)
        g_out, t_out = genv.step(a), tenv.step(a)
        _assert_step_equal("CartPole-v1", t_out, g_out)
        g_obs = g_out[0]
    with pytest.raises(AttributeError, match="did you mean 'gravity'"):
        tenv.set_attr("gravty", 1.0)


def test_checkpoint_round_trip_continues_identically():
    def run(envs, n, rng):
        out = []
        for _ in range(n):
            o, r, te, tr, info = envs.step(rng.integers(0, 2, 4))
            out.append((o.clone(), r.clone(), te.clone(), tr.clone(), info.get("_episode")))
        return out

    a = TorchVectorEnv("CartPole-v1", 4, reset_block=3)
    a.reset(seed=[1, 2, 3, 4])
    rng = np.random.default_rng(0)
    run(a, 150, rng)  # a few blocks of reset states used
    while not a.autoreset.any():  # and an env about to autoreset
        run(a, 1, rng)
    assert (a._loaded > 0).all() and a.autoreset.any()
    saved = json.loads(json.dumps(get_env_state(a)))
    rng_state = rng.bit_generator.state
    expected = run(a, 200, rng)
    b = TorchVectorEnv("CartPole-v1", 4, reset_block=3)
    set_env_state(b, saved)
    rng.bit_generator.state = rng_state
    got = run(b, 200, rng)
    for x, y in zip(expected, got):
        for u, v in zip(x[:4], y[:4]):
            assert torch.equal(u, v)
        assert (x[4] is None) == (y[4] is None)


def test_make_vector_env_torch_and_bad_input():
    envs = make_vector_env("CartPole-v1", 3, 0, vectorization="torch", max_episode_steps=7)
    assert isinstance(envs, TorchVectorEnv) and envs.max_episode_steps == 7 and envs.num_envs == 3
    assert envs.single_action_space == gym.spaces.Discrete(2) and envs.observation_space.shape == (3, 4)
    assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    envs.reset(seed=0)
    with pytest.raises(ValueError, match="not in"):
        envs.step(np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="expected 3 actions"):
        envs.step(torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="did you mean 'CartPole-v1'"):
        make_vector_env("CartPole-v0", 2, 0, vectorization="torch")
    with pytest.raises(ValueError, match="no keyword 'gravity'"):
        make_vector_env("CartPole-v1", 2, 0, vectorization="torch", kwargs={"gravity": 1.0})
    with pytest.raises(ValueError, match="task schedule"):
        make_vector_env("CartPole-v1", 2, 0, vectorization="torch", schedule={"phases": [{"steps": 5}]})
    pend = make_vector_env("Pendulum-v1", 2, 0, vectorization="torch", kwargs={"g": 9.81})
    assert pend.get_attr("g") == (9.81, 9.81)


def test_to_numpy_and_float32():
    envs = TorchVectorEnv("Acrobot-v1", 2, to_numpy=True, dtype=torch.float32)
    obs, _ = envs.reset(seed=0)
    obs2, reward, terminated, truncated, _ = envs.step(np.array([0, 2]))
    assert isinstance(obs2, np.ndarray) and obs2.shape == (2, 6) and reward.dtype == np.float32
    assert terminated.dtype == np.bool_ and not np.array_equal(obs, obs2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    cpu, cuda = TorchVectorEnv("CartPole-v1", 64), TorchVectorEnv("CartPole-v1", 64, device="cuda")
    obs_c, _ = cpu.reset(seed=0)
    obs_g, _ = cuda.reset(seed=0)
    assert obs_g.device.type == "cuda" and torch.equal(obs_g.cpu(), obs_c)
    rng, ended = np.random.default_rng(0), 0
    for _ in range(200):
        a = rng.integers(0, 2, 64)
        oc, rc, tc, uc, ic = cpu.step(a)
        og, rg, tg, ug, ig = cuda.step(torch.as_tensor(a, device="cuda"))
        assert og.device.type == rg.device.type == tg.device.type == "cuda"
        # CUDA's sin/cos may differ by an ulp: compare to float32 tolerance, flags exactly
        torch.testing.assert_close(og.cpu(), oc, rtol=0, atol=1e-5)
        assert torch.equal(tg.cpu(), tc) and torch.equal(ug.cpu(), uc) and torch.equal(rg.cpu(), rc)
        ended += int(tc.sum())
    assert ended > 100


def test_env_speed_benchmark_prints_its_table_and_summary(capsys):
    from conftest import load_benchmark

    load_benchmark("env_speed").main(["--batches", "8", "32", "--steps", "30"])
    out = capsys.readouterr().out
    assert re.search(r"^\s+32\s+[\d.e+]+\s+[\d.e+]+\s+[\d.e+]+\s+[\d.e+]+\s+[\d.]+$", out, re.M), out
    assert re.search(r"^summary: env=CartPole-v1 batch=32 torch_steps_per_s=[\d.e+]+ gymnasium_steps_per_s=[\d.e+]+$",
                     out.splitlines()[-1]), out


def test_training_on_torch_envs_equals_sync_and_resumes(tmp_path):
    # The same seeds give the same worlds: a run on vectorization 'torch' is the run on 'sync', bit for bit,
    # and a resumed one continues the same episodes. (EnvConfig.vectorization does not list 'torch' yet: set here.)
    from spikegym.training.config import load_config
    from spikegym.training.loop import train

    k = 75
    small = ["env.num_agents=3", "brain.substeps=5", "encoder.fields=4", "brain.motor_size=6", "brain.critic_size=6",
             f"run.checkpoint_every={k}", "run.log_every=25", "run.progress=off"]

    def cfg(vectorization, steps):
        c = load_config(ROOT / "configs" / "cartpole.yaml", [*small, f"run.steps={steps}"])
        c.env.vectorization = vectorization
        return c

    sync = train(cfg("sync", 2 * k), run_dir=tmp_path / "sync")
    full = train(cfg("torch", 2 * k), run_dir=tmp_path / "full")
    train(cfg("torch", k), run_dir=tmp_path / "resumed")
    resumed = train(cfg("torch", 2 * k), run_dir=tmp_path / "resumed", resume=True)
    assert sum(full["episodes_per_agent"]) > 6
    for key, value in sync.items():
        if key != "run_dir":
            assert full[key] == value == resumed[key], key
