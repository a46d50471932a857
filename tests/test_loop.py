"""The training loop: checkpoints hold everything (save -> load -> the same agent), a resumed run equals an
uninterrupted one exactly, a brain gone NaN stops the run and leaves the last good checkpoint, the env's
live state survives a save/restore, and TensorBoard shows no duplicated points after a resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from spikegym.envs import make_vector_env, reset_seeds
from spikegym.envs.state import get_env_state, set_env_state
from spikegym.training import tags as T
from spikegym.training.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from spikegym.training.config import load_config
from spikegym.training.evaluate import load_run
from spikegym.training.loop import NonFiniteState, train

CARTPOLE = Path(__file__).resolve().parents[1] / "configs" / "cartpole.yaml"
SMALL = ["env.num_agents=3", "brain.substeps=5", "encoder.fields=4", "brain.motor_size=6", "brain.critic_size=6",
         "run.progress=off"]


pytestmark = pytest.mark.usefixtures("one_thread")


def small_cfg(steps, *overrides):
    return load_config(CARTPOLE, [*SMALL, f"run.steps={steps}", *overrides])


def agent_tensors(checkpoint_dir):
    step, tensors, meta = load_checkpoint(checkpoint_dir)
    return step, {k[len("agent."):]: v for k, v in tensors.items() if k.startswith("agent.")}, tensors


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_restores_the_agent_exactly(tmp_path):
    live = {}
    train(small_cfg(60, "run.checkpoint_every=60", "run.log_every=30"), run_dir=tmp_path,
          callback=lambda step, agent, stats: live.update(agent=agent))
    agent = live["agent"]
    step, saved, _ = agent_tensors(latest_checkpoint(tmp_path))
    assert step == 60
    mine = agent.state_dict()
    assert saved.keys() == mine.keys()
    for k in mine:
        assert torch.equal(saved[k], mine[k]), k

    _, restored, envs, step = load_run(tmp_path)
    envs.close()
    assert step == 60
    for k, v in restored.state_dict().items():
        assert torch.equal(v, mine[k]), k
    # nothing outside the state_dict matters: both act and learn alike from here
    rng = np.random.default_rng(0)
    for t in range(5):
        obs = rng.normal(size=(3, 4)).astype(np.float32)
        r, term, trunc = np.ones(3), np.array([False, t == 2, False]), np.zeros(3, bool)
        np.testing.assert_array_equal(agent.step(obs, r, term, trunc)[0], restored.step(obs, r, term, trunc)[0])
    for k, v in restored.state_dict().items():
        assert torch.equal(v, agent.state_dict()[k]), k


SCHEDULE = json.dumps({"cycle": True, "phases": [{"name": "A", "steps": 40, "changes": {"sensor_noise": 0.05}},
                                                 {"name": "B", "steps": 40, "changes": {"gravity": 14.0}}]})


@pytest.mark.parametrize("vectorization, schedule", [("native", None), ("sync", None), ("async", None),
                                                     ("sync", SCHEDULE), ("async", SCHEDULE)],
                         ids=["native", "sync", "async", "sync-schedule", "async-schedule"])
def test_resumed_run_equals_uninterrupted_run(tmp_path, vectorization, schedule):
    k = 75
    over = [f"env.vectorization={vectorization}", f"run.checkpoint_every={k}", "run.log_every=25"]
    over += [f"env.schedule={schedule}"] if schedule else []
    full = train(small_cfg(2 * k, *over), run_dir=tmp_path / "full")

    train(small_cfg(k, *over), run_dir=tmp_path / "resumed")
    seen = []
    resumed = train(small_cfg(2 * k, *over), run_dir=tmp_path / "resumed", resume=True,
                    callback=lambda step, agent, stats: seen.append(step))
    assert seen[0] == k + 1 and seen[-1] == 2 * k  # it continued from the checkpoint, not from 0

    assert sum(full["episodes_per_agent"]) > 6  # episodes ended (and reset their worlds) on both sides of k
    for key, value in full.items():
        if key != "run_dir":
            assert resumed[key] == value, key
    step_a, _, a = agent_tensors(latest_checkpoint(tmp_path / "full"))
    step_b, _, b = agent_tensors(latest_checkpoint(tmp_path / "resumed"))
    assert step_a == step_b == 2 * k
    assert a.keys() == b.keys()
    for name in a:  # weights, traces, noise counters, RNGs, the loop's last observation
        assert torch.equal(a[name], b[name]), name
    assert "resumed" in json.loads((tmp_path / "resumed" / "run.json").read_text())


def test_fresh_run_refuses_a_folder_with_checkpoints(tmp_path):
    train(small_cfg(20, "run.checkpoint_every=20"), run_dir=tmp_path)
    with pytest.raises(FileExistsError, match="resume"):
        train(small_cfg(10, "run.checkpoint_every=5"), run_dir=tmp_path)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_20"]


def test_non_finite_state_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    def poison(step, agent, stats):
        if step == 31:
            agent.weights("sensors->motor")[0, 0, 0] = float("nan")

    cfg = small_cfg(100, "run.checkpoint_every=30", "run.log_every=10")
    with pytest.raises(NonFiniteState, match=r"non-finite values in agent state .[\w.>-]+. at step 40.*last good checkpoint"):
        train(cfg, run_dir=tmp_path, callback=poison)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_30"]
    step, _, tensors = agent_tensors(latest_checkpoint(tmp_path))
    assert step == 30
    for name, t in tensors.items():
        if t.is_floating_point():
            assert bool(torch.isfinite(t).all()), name
    assert not (tmp_path / "result.json").exists()
    # the good checkpoint resumes
    result = train(small_cfg(40, "run.checkpoint_every=30", "run.log_every=10"), run_dir=tmp_path, resume=True)
    assert result["steps"] == 40


def test_resume_after_a_crash_leaves_no_duplicate_points_in_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    class Crash(Exception):
        pass

    def crash(step, agent, stats):
        if step == 175:
            raise Crash

    over = ["run.checkpoint_every=100", "run.log_every=50"]
    with pytest.raises(Crash):
        train(small_cfg(200, *over), run_dir=tmp_path, callback=crash)  # logged 50, 100, 150; saved 100
    train(small_cfg(200, *over), run_dir=tmp_path, resume=True)  # logs 150 again, then 200
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    for tag in (T.FPS, T.DOPAMINE_VALUE):
        assert [e.step for e in acc.Scalars(tag)] == [50, 100, 150, 200], tag


# --------------------------------------------------------------------------- live env state


def _stepped(envs, actions):
    out = envs.step(actions)
    info = out[4]
    mask = info.get("_episode", np.zeros(envs.num_envs, bool))
    returns = np.where(mask, info["episode"]["r"], 0.0) if mask.any() else np.zeros(envs.num_envs)
    return out[:4], returns


@pytest.mark.parametrize("env_id, vectorization, limit", [
    ("CartPole-v1", "native", None), ("CartPole-v1", "sync", None), ("Pendulum-v1", "sync", 10),
    ("CartPole-v1", "async", None)])
def test_env_state_round_trip_continues_identically(env_id, vectorization, limit):
    n = 3
    make = lambda: make_vector_env(env_id, n, 0, vectorization=vectorization, max_episode_steps=limit)  # noqa: E731
    a = make()
    a.reset(seed=reset_seeds(0, n))
    a.action_space.seed(1)
    actions = [a.action_space.sample() for _ in range(80)]
    for t in range(5):
        a.step(actions[t])
    state = json.loads(json.dumps(get_env_state(a)))  # it is JSON

    # restore into an env that has lived a life of its own, stopped right after an episode ended
    b = make()
    b.reset(seed=reset_seeds(99, n))
    b.action_space.seed(2)
    for _ in range(300):
        _, _, term, trunc, _ = b.step(b.action_space.sample())
        if (term | trunc).any():
            break
    assert (term | trunc).any()
    set_env_state(b, state)

    ended = 0
    for t in range(5, 80):
        (oa, ra, ta, ua), ea = _stepped(a, actions[t])
        (ob, rb, tb, ub), eb = _stepped(b, actions[t])
        for x, y, what in ((oa, ob, "obs"), (ra, rb, "reward"), (ta, tb, "terminated"), (ua, ub, "truncated"),
                           (ea, eb, "episode return")):
            np.testing.assert_array_equal(x, y, err_msg=f"{what} at step {t}")
        ended += int((ta | ua).sum())
    assert ended >= 2  # resets (drawing from the restored generators) happened after the restore
    a.close(), b.close()


@pytest.mark.parametrize("vectorization", ["native", "sync", "async"])
def test_env_state_saved_right_after_an_episode_ended_continues_identically(vectorization):
    """The step after an episode ends is the autoreset step; saved there, a restored env must play it too
    (the async worker keeps that flag where nothing can set it: the sub-env's wrapper plays the reset)."""
    n = 3
    make = lambda: make_vector_env("CartPole-v1", n, 0, vectorization=vectorization)  # noqa: E731
    a = make()
    a.reset(seed=reset_seeds(0, n))
    rng = np.random.default_rng(1)
    actions = rng.integers(0, 2, size=(400, n))
    t = 0
    while True:
        _, _, term, trunc, _ = a.step(actions[t])
        t += 1
        if (term | trunc).any():
            break
    state = json.loads(json.dumps(get_env_state(a)))
    b = make()
    b.reset(seed=reset_seeds(5, n))
    set_env_state(b, state)
    for u in range(t, t + 60):
        (oa, ra, ta, ua), ea = _stepped(a, actions[u])
        (ob, rb, tb, ub), eb = _stepped(b, actions[u])
        for x, y, what in ((oa, ob, "obs"), (ra, rb, "reward"), (ta, tb, "terminated"), (ua, ub, "truncated"),
                           (ea, eb, "episode return")):
            np.testing.assert_array_equal(x, y, err_msg=f"{what} at step {u}")
    a.close(), b.close()
