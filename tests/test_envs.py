"""Envs and mid-life changes: each change takes effect at its step (at an episode boundary) and only
then, restoring the value restores the trajectory, wrapped envs pass Gymnasium's checker, vector
sub-envs switch at their own episode boundaries."""

import ctypes.util
import os
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from spikegym.envs import (ScheduleError, TaskSchedule, TaskScheduleWrapper, is_discrete, make_env, make_vector_env,
                           obs_bounds, reset_seeds)


def episode(env, seed, actions):
    """One episode with fixed actions: (obs [T+1, D], rewards [T], infos)."""
    obs, info = env.reset(seed=seed)
    traj, rewards, infos = [obs], [], [info]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        traj.append(obs)
        rewards.append(r)
        infos.append(info)
        if term or trunc:
            break
    return np.array(traj), np.array(rewards), infos


def same(a, b):
    return a[0].shape == b[0].shape and np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


# --------------------------------------------------------------------------- CartPole, every change

CARTPOLE_B = [
    {"gravity": 15.0}, {"length": 1.0}, {"masspole": 0.3}, {"masscart": 2.0}, {"force_mag": 15.0},
    {"action_map": [1, 0]}, {"reward_scale": 2.0}, {"sensor_gain": 2.0}, {"sensor_offset": [0.1, 0.0, 0.0, 0.0]},
    {"sensor_noise": 0.1}, {"sensor_dropout": 0.3},
]


@pytest.mark.parametrize("b_changes", CARTPOLE_B, ids=lambda c: next(iter(c)))
def test_cartpole_change_applies_at_its_step_and_only_at_a_reset(b_changes):
    # Episodes are truncated at 10 steps, so they start at env steps 0, 10, 20, ...
    # A lasts steps [0, 25), B [25, 50), A again [50, 75), B [75, 100).
    schedule = {"cycle": True, "phases": [{"name": "A", "steps": 25}, {"name": "B", "steps": 25, "changes": b_changes}]}
    env = make_env("CartPole-v1", schedule=schedule, max_episode_steps=10)
    base = make_env("CartPole-v1", max_episode_steps=10)
    always_b = make_env("CartPole-v1", schedule={"phases": [{"name": "B", "steps": 1, "changes": b_changes}]},
                        max_episode_steps=10)
    actions = [t % 2 for t in range(10)]
    # the episode starting at step 20 crosses step 25 mid-episode: it stays A; the next reset (step 30) switches
    expect = ["A", "A", "A", "B", "B", "A", "A", "A", "B", "B"]
    for k, task in enumerate(expect):
        assert env.clock == 10 * k
        got = episode(env, 100 + k, actions)
        assert len(got[1]) == 10  # truncated, not failed: the clock stays predictable
        assert env.task_name == task and got[2][0]["task"] == got[2][-1]["task"] == env.task_index
        ref_a, ref_b = episode(base, 100 + k, actions), episode(always_b, 100 + k, actions)
        if task == "A":
            assert same(got, ref_a), f"episode {k} should be the unchanged world"
        else:
            assert same(got, ref_b), f"episode {k} should be world B"
            assert not same(got, ref_a), f"episode {k}: the change had no effect"
    assert [i["task"] for i in got[2]] == [3] * 11  # the last episode began at step 90


def test_cartpole_physics_values_and_caches():
    env = make_env("CartPole-v1", schedule={"cycle": True, "phases": [
        {"name": "A", "steps": 5}, {"name": "B", "steps": 5, "changes": {"masspole": 0.3, "length": 1.0}}]},
        max_episode_steps=5)
    u = env.unwrapped
    base = (u.masspole, u.length, u.total_mass, u.polemass_length)
    for k in range(3):
        episode(env, k, [0] * 5)
    assert env.clock == 15 and env.task_name == "A"  # episodes at 0 (A), 5 (B), 10 (A)
    env.reset(seed=0)  # clock 15 -> occurrence 3 (B)
    assert env.task_name == "B"
    assert (u.masspole, u.length) == (0.3, 1.0)
    assert u.total_mass == pytest.approx(1.3) and u.polemass_length == pytest.approx(0.3)
    for _ in range(5):
        env.step(0)
    env.reset(seed=0)  # clock 20 -> A: every value, cached ones included, back to base
    assert (u.masspole, u.length, u.total_mass, u.polemass_length) == base


def test_external_step_counter_drives_the_schedule():
    clock = [0]
    env = TaskScheduleWrapper(gym.make("CartPole-v1"), {"phases": [
        {"name": "A", "steps": 100}, {"name": "B", "steps": 100, "changes": {"gravity": 20.0}}]},
        step_counter=lambda: clock[0])
    env.reset(seed=0)
    assert env.task_name == "A" and env.unwrapped.gravity == 9.8
    clock[0] = 150
    assert env.pending_task == 1 and env.unwrapped.gravity == 9.8  # pending until the reset
    env.step(0)
    assert env.unwrapped.gravity == 9.8
    _, info = env.reset(seed=0)
    assert info["task"] == 1 and env.unwrapped.gravity == 20.0


def test_sensor_noise_has_its_own_reproducible_generator():
    sched = {"phases": [{"name": "noisy", "steps": 10, "changes": {"sensor_noise": 0.5, "sensor_dropout": 0.2}}]}
    a, b = make_env("CartPole-v1", schedule=sched), make_env("CartPole-v1", schedule=sched)
    ea, eb = episode(a, 3, [0, 1] * 5), episode(b, 3, [0, 1] * 5)
    assert same(ea, eb)
    assert not same(ea, episode(a, 4, [0, 1] * 5))
    assert np.mean(ea[0] == 0) > 0.05  # dropout zeroes readings
    clean = episode(make_env("CartPole-v1"), 3, [0, 1] * 5)
    assert ea[0].dtype == clean[0].dtype == np.float32
    np.random.seed(0)  # the global RNG plays no part
    assert same(episode(a, 3, [0, 1] * 5), ea)


def test_schedule_state_round_trip():
    sched = {"cycle": True, "phases": [{"name": "A", "steps": 5},
                                       {"name": "B", "steps": 5, "changes": {"gravity": 15.0, "sensor_noise": 0.1}}]}
    env = make_env("CartPole-v1", schedule=sched, max_episode_steps=5)
    for k in range(3):
        episode(env, k, [0] * 5)
    env.reset()  # clock 15: B
    state = env.get_schedule_state()
    other = make_env("CartPole-v1", schedule=sched, max_episode_steps=5)
    other.set_schedule_state(state)
    assert (other.task_index, other.task_name, other.steps) == (env.task_index, "B", 15)
    assert other.unwrapped.gravity == 15.0 and other.interface.noise_std == 0.1
    assert other._rng.random() == env._rng.random()
    import json
    json.dumps(state)  # checkpoint meta is JSON


@pytest.mark.parametrize("changes, key, words", [
    ({"friction": 0.5}, "friction", "needs a MuJoCo env"),
    ({"action_map": [2, 0, 1]}, "action_map", "3 entries but the env has 2"),
    ({"sensor_gain": [1.0, 2.0]}, "sensor_gain", "2 entries but observations have 4"),
])
def test_changes_that_do_not_fit_the_env_are_refused(changes, key, words):
    with pytest.raises(ScheduleError) as err:
        make_env("CartPole-v1", schedule={"phases": [{"name": "A", "steps": 5}, {"name": "X", "steps": 5,
                                                                                  "changes": changes}]})
    assert err.value.phase == 1 and err.value.key == key and words in str(err.value)


def test_wrapped_envs_pass_the_gymnasium_checker():
    sched = {"cycle": True, "phases": [
        {"name": "A", "steps": 3, "changes": {"action_map": [1, 0], "sensor_noise": 0.01, "gravity": 12.0}},
        {"name": "B", "steps": 3, "changes": {"sensor_gain": 0.5, "reward_scale": 0.5}}]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(make_env("CartPole-v1", schedule=sched), skip_render_check=True)
        check_env(make_env("HalfCheetah-v5", schedule={"cycle": True, "phases": [
            {"name": "slippery", "steps": 4, "changes": {"friction": {"log_uniform": [0.02, 2.0]},
                                                         "direction": -1, "body_mass": 1.5}}]}),
                  skip_render_check=True)


# --------------------------------------------------------------------------- MuJoCo


@pytest.mark.parametrize("b_changes", [{"friction": 0.05}, {"friction_coef": 2.0}, {"body_mass": 2.0},
                                       {"gravity": 3.0}], ids=lambda c: next(iter(c)))
def test_mujoco_change_alters_halfcheetah_dynamics(b_changes):
    # 20-step episodes start at 0, 20, 40, 60; A is [0, 30), B [30, 60), A again from 60.
    schedule = {"cycle": True, "phases": [{"name": "A", "steps": 30}, {"name": "B", "steps": 30, "changes": b_changes}]}
    env = make_env("HalfCheetah-v5", schedule=schedule, max_episode_steps=20)
    base = make_env("HalfCheetah-v5", max_episode_steps=20)
    actions = np.random.default_rng(0).uniform(-1, 1, (20, 6)).astype(np.float32)
    for k, task in enumerate(["A", "A", "B", "A"]):
        got, ref = episode(env, k, actions), episode(base, k, actions)
        assert env.task_name == task
        assert same(got, ref) == (task == "A"), f"episode {k} ({task})"
        if task == "B":
            assert np.abs(got[0][-1] - ref[0][-1]).max() > 1e-3  # a real difference, not round-off


def test_mujoco_model_values_scale_from_base_and_restore():
    env = make_env("HalfCheetah-v5", schedule={"cycle": True, "phases": [
        {"name": "A", "steps": 2},
        {"name": "B", "steps": 2, "changes": {"friction": 0.1, "body_mass": 3.0, "gravity": 5.0}}]},
        max_episode_steps=2)
    m = env.unwrapped.model
    f0, mass0, inertia0, g0 = (m.geom_friction.copy(), m.body_mass.copy(), m.body_inertia.copy(),
                               m.opt.gravity.copy())
    episode(env, 0, np.zeros((2, 6)))
    env.reset(seed=0)
    assert env.task_name == "B"
    np.testing.assert_allclose(m.geom_friction[:, 0], 0.1 * f0[:, 0])
    np.testing.assert_array_equal(m.geom_friction[:, 1:], f0[:, 1:])  # torsional/rolling untouched
    np.testing.assert_allclose(m.body_mass, 3.0 * mass0)
    np.testing.assert_allclose(m.body_inertia, 3.0 * inertia0)
    np.testing.assert_allclose(m.opt.gravity, [0.0, 0.0, -5.0])
    for _ in range(2):
        env.step(np.zeros(6))
    env.reset(seed=0)  # back to A: exactly the base values, not a scale of a scale
    assert env.task_name == "A"
    for now, then in [(m.geom_friction, f0), (m.body_mass, mass0), (m.body_inertia, inertia0), (m.opt.gravity, g0)]:
        np.testing.assert_array_equal(now, then)


def test_halfcheetah_direction_rewards_running_backwards():
    env = make_env("HalfCheetah-v5", schedule={"phases": [{"name": "back", "steps": 1, "changes": {"direction": -1}}]})
    base = make_env("HalfCheetah-v5")
    env.reset(seed=1), base.reset(seed=1)
    for a in np.random.default_rng(1).uniform(-1, 1, (5, 6)):
        o, r, *_, info = env.step(a)
        ob, rb, *_, infob = base.step(a)
        np.testing.assert_array_equal(o, ob)  # same physics
        assert info["x_velocity"] == infob["x_velocity"] != 0
        assert r == pytest.approx(-infob["x_velocity"] + infob["reward_ctrl"])
        assert r == pytest.approx(rb - 2 * infob["reward_forward"])
        assert info["reward_forward"] == pytest.approx(-infob["reward_forward"])


# --------------------------------------------------------------------------- vector envs


def test_vector_sub_envs_switch_at_their_own_episode_boundaries():
    B, T = 6, 160
    bound = 40
    sched = {"cycle": True, "phases": [{"name": "A", "steps": bound},
                                       {"name": "B", "steps": bound, "changes": {"gravity": 15.0}}]}
    envs = make_vector_env("CartPole-v1", B, 0, schedule=sched)
    subs = envs.unwrapped.envs
    assert all(isinstance(e, TaskScheduleWrapper) for e in subs)
    s = TaskSchedule.from_dict(sched)
    _, info = envs.reset(seed=reset_seeds(0, B))
    task = info["task"].copy()
    assert (task == 0).all()
    rng = np.random.default_rng(0)
    done = np.zeros(B, bool)
    first_switch = np.full(B, -1)
    for t in range(1, T + 1):
        _, _, term, trunc, info = envs.step(rng.integers(0, 2, B))
        for i in range(B):
            # an autoreset step (the step after an episode ended) reads the clock = steps so far = t - 1
            expect = s.occurrence_at(t - 1) if done[i] else task[i]
            assert info["task"][i] == expect, (t, i)
            assert subs[i].unwrapped.gravity == (15.0 if expect % 2 else 9.8)
            if first_switch[i] < 0 and expect == 1:
                first_switch[i] = t
        task = info["task"].copy()
        done = term | trunc
    assert all(e.clock == T for e in subs)  # the clock is the vector env's step count
    # checkpoint and restore every sub-env's schedule state through the vector env
    states = envs.unwrapped.call("get_schedule_state")
    fresh = make_vector_env("CartPole-v1", B, 0, schedule=sched)
    fresh.unwrapped.call("set_schedule_state", list(states))
    assert fresh.unwrapped.call("get_schedule_state") == states
    assert [e.unwrapped.gravity for e in fresh.unwrapped.envs] == [e.unwrapped.gravity for e in subs]
    assert (first_switch > bound).all()  # never before the configured step
    assert len(set(first_switch.tolist())) > 1  # each at its own episode boundary
    envs.close()


def test_native_vector_cartpole_and_episode_statistics():
    envs = make_vector_env("CartPole-v1", 8, 0)
    assert type(envs.unwrapped).__name__ == "CartPoleVectorEnv"
    envs.reset(seed=reset_seeds(0, 8))
    rng = np.random.default_rng(0)
    seen = 0
    for _ in range(60):
        _, _, _, _, info = envs.step(rng.integers(0, 2, 8))
        if "_episode" in info:
            seen += int(info["_episode"].sum())
            assert (info["episode"]["r"][info["_episode"]] >= 8).all()
    assert seen > 0
    # same seed, same worlds
    a, b = make_vector_env("CartPole-v1", 4, 0), make_vector_env("CartPole-v1", 4, 0)
    np.testing.assert_array_equal(a.reset(seed=reset_seeds(5, 4))[0], b.reset(seed=reset_seeds(5, 4))[0])
    kw = make_vector_env("CartPole-v1", 2, 0, kwargs={"sutton_barto_reward": True}, max_episode_steps=7)
    assert type(kw.unwrapped).__name__ == "CartPoleVectorEnv" and kw.unwrapped.max_episode_steps == 7


def test_vectorization_choices():
    assert isinstance(make_vector_env("CartPole-v1", 2, 0, vectorization="sync").unwrapped, gym.vector.SyncVectorEnv)
    assert isinstance(make_vector_env("Pendulum-v1", 2, 0).unwrapped, gym.vector.SyncVectorEnv)  # no native one
    with pytest.raises(ValueError, match="did you mean 'sync'"):
        make_vector_env("CartPole-v1", 2, 0, vectorization="synk")
    with pytest.raises(ValueError, match="schedule"):
        make_vector_env("CartPole-v1", 2, 0, vectorization="native",
                        schedule={"phases": [{"name": "A", "steps": 5}]})
    with pytest.raises(ValueError, match="no native"):
        make_vector_env("Pendulum-v1", 2, 0, vectorization="native")


def test_module_prefixed_env_id_is_imported_first(tmp_path, monkeypatch):
    # 'module:Id' (the config's documented form for a user's own env) used to fail in the vectorization choice
    (tmp_path / "my_worlds.py").write_text(
        "import gymnasium as gym\n"
        "gym.register('MyPole-v0', entry_point='gymnasium.envs.classic_control:CartPoleEnv', max_episode_steps=50)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    envs = make_vector_env("my_worlds:MyPole-v0", 2, 0)
    assert isinstance(envs.unwrapped, gym.vector.SyncVectorEnv)  # a registration without a native vector entry
    obs, _ = envs.reset(seed=reset_seeds(0, 2))
    assert obs.shape == (2, 4)
    envs.close()


def test_async_vector_env_with_schedule():
    envs = make_vector_env("CartPole-v1", 2, 0, vectorization="async", schedule={"cycle": True, "phases": [
        {"name": "A", "steps": 5}, {"name": "B", "steps": 5, "changes": {"gravity": 20.0}}]})
    try:
        assert isinstance(envs.unwrapped, gym.vector.AsyncVectorEnv)
        envs.reset(seed=reset_seeds(0, 2))
        tasks = set()
        for _ in range(60):
            *_, info = envs.step(np.array([0, 1]))
            tasks |= set(info["task"].tolist())
        assert {0, 1} <= tasks
        assert set(envs.unwrapped.get_attr("gravity")) <= {9.8, 20.0}
    finally:
        envs.close()


# --------------------------------------------------------------------------- helpers


def test_reset_seeds_bounds_and_discreteness():
    s = reset_seeds(0, 16)
    assert s == reset_seeds(0, 16) and len(set(s)) == 16 and all(type(x) is int and x >= 0 for x in s)
    assert not set(reset_seeds(1, 16)) & set(s)
    lo, hi = obs_bounds(gym.spaces.Box(-2.0, 3.0, (2, 2)))
    assert lo.shape == (4,) and (lo == -2).all() and (hi == 3).all()
    assert [x.tolist() for x in obs_bounds(gym.spaces.Discrete(5, start=2))] == [[2.0], [6.0]]
    env = gym.make("CartPole-v1")
    lo, hi = obs_bounds(env.observation_space)
    assert hi[0] == pytest.approx(4.8) and hi[1] > 1e30  # CartPole's "unbounded" velocity
    assert is_discrete(env.action_space) and not is_discrete(gym.spaces.Box(-1, 1, (2,)))


@pytest.mark.skipif(not sys.platform.startswith("linux") or not ctypes.util.find_library("EGL"),
                    reason="MUJOCO_GL=egl is only chosen on Linux with libEGL")
def test_mujoco_gl_is_set_before_mujoco_is_imported():
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    code = ("import sys, os; import spikegym.envs; "
            "print(os.environ.get('MUJOCO_GL'), 'mujoco' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["egl", "False"]
    env["MUJOCO_GL"] = "glfw"  # the user's choice wins
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == "glfw"


@pytest.mark.parametrize("changes", [{"sensor_gain": 2.0}, {"sensor_offset": 0.5}, {"sensor_noise": 3.0},
                                     {"sensor_gain": [3.0, -2.0, 1.0], "sensor_dropout": 0.5}],
                         ids=["gain", "offset", "noise", "gain-vector-dropout"])
def test_sensor_changes_keep_observations_in_the_observation_space(changes):
    """Pendulum's cos/sin readings are bounded to [-1, 1]: a gain, offset or noise must not push them out
    (Gymnasium's checker, and every agent that trusts the space, rely on it)."""
    env = make_env("Pendulum-v1", schedule={"phases": [{"name": "A", "steps": 5, "changes": changes}]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    for _ in range(50):
        assert env.observation_space.contains(obs), obs  # dtype and shape too
        obs, *_ = env.step(env.action_space.sample())
