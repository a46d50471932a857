"""Bodies in MuJoCo: the shipped configs, continuous actions within bounds, a short online run through
``train()`` on CPU, videos of it (``record`` and ``run.video_every``) whose frames are not black, and
pictures of the trained brain (spike raster, weights) in the run folder and TensorBoard."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from spikegym.envs import make_env  # sets MUJOCO_GL=egl before mujoco is imported

pytest.importorskip("mujoco")
imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")

from spikegym.agents.agent import Agent  # noqa: E402
from spikegym.agents.decoders import continuous_action  # noqa: E402
from spikegym.training import tags as T  # noqa: E402
from spikegym.training.checkpoint import latest_checkpoint  # noqa: E402
from spikegym.training.config import load_config  # noqa: E402
from spikegym.training.loop import train  # noqa: E402
from spikegym.training.record import record  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "InvertedPendulum-v5": "inverted_pendulum",
    "InvertedDoublePendulum-v5": "inverted_double_pendulum",
    "Hopper-v5": "hopper",
    "HalfCheetah-v5": "halfcheetah",
    "Ant-v5": "ant",
}


def decode(path):
    """All frames of an mp4, uint8 ``[T, H, W, 3]``."""
    reader = imageio_ffmpeg.read_frames(str(path))
    w, h = next(reader)["size"]
    return np.stack([np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in reader])


def assert_not_black(frame):
    assert frame.max() > 60 and frame.std() > 5, (frame.mean(), frame.std(), frame.max())


# --------------------------------------------------------------------------- continuous decoding


def test_continuous_action_respects_bounds_and_maps_the_push_pull_difference():
    gen = torch.Generator().manual_seed(0)
    low, high = torch.tensor([-3.0, 0.0, -0.4]), torch.tensor([3.0, 2.0, 1.0])
    K, B, M = 20, 64, 5
    for gain in (0.5, 1.0, 4.0, 50.0):
        for p in (0.05, 0.5, 0.95):
            spikes = (torch.rand(K, B, 2 * 3 * M, generator=gen) < p).float()
            a = continuous_action(spikes, low, high, gain=gain)
            assert a.shape == (B, 3) and bool((a >= low).all() and (a <= high).all())
    push = torch.zeros(K, 1, 2 * 3 * M)
    push.view(K, 1, 3, 2, M)[:, :, :, 0] = 1  # every push population fires at every substep
    np.testing.assert_allclose(continuous_action(push, low, high)[0], high)
    pull = push.view(K, 1, 3, 2, M).flip(3).reshape(K, 1, -1)
    np.testing.assert_allclose(continuous_action(pull, low, high)[0], low)
    np.testing.assert_allclose(continuous_action(torch.zeros(K, 1, 6 * M), low, high)[0], (low + high) / 2)
    # 3 of 5 push neurons firing: 60 % of the way from the middle to the top (gain 1); past it, clipped (gain 2)
    some = push * (torch.arange(M).repeat(6) % 2 == 0)
    np.testing.assert_allclose(continuous_action(some, low, high)[0], (low + high) / 2 + 0.6 * (high - low) / 2,
                               rtol=1e-6)
    np.testing.assert_allclose(continuous_action(some, low, high, gain=2.0)[0], high)


@pytest.mark.parametrize("env_id", list(CONFIGS))
def test_shipped_config_builds_an_agent_whose_actions_fit_the_body(env_id):
    """Every configs/mujoco/*.yaml loads, builds an agent for its env, and acts within the action bounds,
    also after its motor weights are pushed to extremes."""
    cfg = load_config(ROOT / "configs" / "mujoco" / f"{CONFIGS[env_id]}.yaml", ["env.num_agents=3"])
    assert cfg.env.id == env_id
    env = make_env(env_id, kwargs=cfg.env.kwargs)
    obs_space, act_space = env.observation_space, env.action_space
    obs, _ = env.reset(seed=0)
    env.close()
    agent = Agent(cfg, obs_space.low, obs_space.high, act_space, num_agents=3, seed=0)
    obs = np.stack([obs, 10 * obs, -100 * np.ones_like(obs)])  # and far outside any coded range
    zeros = np.zeros(3)
    for w in (0.0, 50.0, -50.0):
        flat = agent.state_dict()
        flat["brain.w.sensors->motor"] = torch.full_like(flat["brain.w.sensors->motor"], w)
        agent.load_state_dict(flat)
        a, _ = agent.step(obs, zeros, zeros.astype(bool), zeros.astype(bool), learn=False)
        assert bool((agent.weights("sensors->motor") == w).all())  # learn=False: the extremes held
        assert a.shape == (3, *act_space.shape) and np.isfinite(a).all()
        assert (a >= act_space.low).all() and (a <= act_space.high).all(), (w, a)


# --------------------------------------------------------------------------- a short run, its videos and pictures


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """InvertedPendulum-v5, 3 agents x 200 steps of online learning, a video every 100 steps."""
    run_dir = tmp_path_factory.mktemp("ip_run")
    cfg = load_config(ROOT / "configs" / "mujoco" / "inverted_pendulum.yaml",
                      ["env.num_agents=3", "run.steps=200", "run.log_every=50", "run.checkpoint_every=100",
                       "run.video_every=100", "run.progress=off", "run.threads=1"])
    result = train(cfg, run_dir=run_dir)
    return cfg, run_dir, result


def _events(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    return acc


def test_smoke_run_learns_online_and_leaves_a_complete_run_folder(run):
    cfg, run_dir, result = run
    assert result["steps"] == 200 and result["agents"] == 3
    assert all(n >= 1 for n in result["episodes_per_agent"])  # untrained agents drop the pole: episodes end
    assert json.loads((run_dir / "result.json").read_text())["env"] == "InvertedPendulum-v5"
    ckpt = latest_checkpoint(run_dir)
    assert ckpt is not None and "200" in ckpt.name
    from spikegym.training.evaluate import load_run

    _, agent, envs, step = load_run(run_dir)
    envs.close()
    assert step == 200
    w = agent.weights("sensors->motor")
    assert w.shape == (3, agent.spec.encoder.n_out, 2 * cfg.brain.motor_size)
    assert bool(torch.isfinite(w).all()) and float(w.abs().max()) > 0  # starts at zero: it learned something
    assert not torch.equal(w[0], w[1])  # independent agents, independent weights
    for name, t in agent.state_dict().items():
        assert not t.is_floating_point() or bool(torch.isfinite(t).all()), name
    acc = _events(run_dir)
    scalars = acc.Tags()["scalars"]
    assert T.EP_REW_MEAN in scalars and T.DOPAMINE_ABS in scalars
    assert [e.step for e in acc.Scalars(T.FPS)] == [50, 100, 150, 200]


def test_video_every_writes_playable_videos_and_pictures(run):
    cfg, run_dir, _ = run
    videos = sorted(p.name for p in (run_dir / "videos").glob("*.mp4"))
    assert videos == ["agent0-step100.mp4", "agent0-step200.mp4"]
    frames = decode(run_dir / "videos" / "agent0-step200.mp4")
    assert len(frames) >= 2 and frames.shape[1:] == (480, 480, 3)
    assert_not_black(frames[0])
    assert_not_black(frames[-1])
    images = sorted(p.name for p in (run_dir / "images").glob("*.png"))
    assert images == ["raster-step100.png", "raster-step200.png",
                      "weights-sensors_to_motor-step100.png", "weights-sensors_to_motor-step200.png"]
    from PIL import Image

    weights = np.asarray(Image.open(run_dir / "images" / "weights-sensors_to_motor-step200.png"))
    n_in = 4 * 15 * 2 + 2
    assert weights.shape[0] > n_in and weights.shape[1] > 2 * cfg.brain.motor_size  # the matrix, axes, colour bar
    raster = np.asarray(Image.open(run_dir / "images" / "raster-step200.png"))
    assert raster.shape[1] > 2 * 25 * cfg.brain.substeps  # 25 decisions of K substeps, 2 px each, and labels
    acc = _events(run_dir)
    tags = acc.Tags()["images"]
    assert {T.EVAL_VIDEO, T.BRAIN_RASTER, T.tag(T.PLASTICITY_W_IMAGE, proj="sensors_to_motor")} <= set(tags)
    video = acc.Images(T.EVAL_VIDEO)
    assert [e.step for e in video] == [100, 200]
    assert [e.step for e in acc.Images(T.tag(T.PLASTICITY_W_IMAGE, proj="sensors_to_motor"))] == [100, 200]
    gif = Image.open(__import__("io").BytesIO(video[-1].encoded_image_string))
    assert gif.format == "GIF" and max(gif.size) <= 240


def test_record_writes_mp4s_whose_frames_are_not_black(run, tmp_path):
    _, run_dir, _ = run
    paths = record(run_dir, out=tmp_path, agents=2)
    assert [p.name for p in paths] == ["agent0-step200.mp4", "grid2-step200.mp4"]
    single, grid = decode(paths[0]), decode(paths[1])
    assert single.shape[1:] == (480, 480, 3) and grid.shape[1:] == (240, 480, 3)  # tiles rendered at 240 x 240
    for frame in (single[0], single[-1], grid[0][:, :240], grid[0][:, 240:]):
        assert_not_black(frame)
    # `record` plays the checkpoint's agent 0 as the run's last video did: the same episode, frame for frame
    during_training = decode(run_dir / "videos" / "agent0-step200.mp4")
    assert len(single) == len(during_training)
    assert np.abs(single.astype(int) - during_training).mean() < 1


def test_videos_do_not_disturb_training(run, tmp_path):
    """The same run without videos ends with exactly the same weights: videos use a copy of agent 0
    in an env of its own, never the training envs or the agents' noise streams."""
    cfg, run_dir, _ = run
    quiet = load_config(run_dir / "config.yaml", ["run.video_every=null", f"run.run_dir={tmp_path}"])
    train(quiet)
    from spikegym.training.evaluate import load_run

    _, a, envs_a, _ = load_run(run_dir)
    _, b, envs_b, _ = load_run(tmp_path)
    envs_a.close(), envs_b.close()
    for name, t in a.state_dict().items():
        assert torch.equal(t, b.state_dict()[name]), name
    assert not (tmp_path / "videos").exists()
    assert sorted(p.name for p in (tmp_path / "images").glob("*.png")) == [
        "raster-step200.png", "weights-sensors_to_motor-step200.png"]  # pictures at the end of every run
