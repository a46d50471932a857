"""Videos of behaviour: mp4s that decode to the frames the env rendered, MuJoCo included,
with no black frames on a second recording, grids of agents, TensorBoard videos."""

import gc
import io
import subprocess
import sys

import numpy as np
import pytest

from spikegym.training.tensorboard import frames_to_tensorboard
from spikegym.training.video import (  # sets MUJOCO_GL=egl before mujoco is imported
    record_episodes,
    record_grid,
    tile_frames,
)

gym = pytest.importorskip("gymnasium")
imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")


def cartpole():
    return gym.make("CartPole-v1", render_mode="rgb_array")


def pendulum():
    return gym.make("InvertedPendulum-v5", render_mode="rgb_array")


def random_policy(space, seed):
    rng = np.random.default_rng(seed)
    if isinstance(space, gym.spaces.Discrete):
        return lambda obs: int(rng.integers(space.n))
    return lambda obs: rng.uniform(space.low, space.high).astype(space.dtype)


def decode(path):
    """All frames of an mp4, uint8 [T, H, W, 3], and its metadata."""
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    frames = [np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in reader]
    return np.stack(frames), meta


def assert_not_black(frame):
    assert frame.max() > 60 and frame.std() > 5, (frame.mean(), frame.std(), frame.max())


def test_cartpole_video_decodes_to_the_rendered_frames(tmp_path):
    env = cartpole()
    policy = random_policy(env.action_space, 0)
    env.close()
    res = record_episodes(cartpole, policy, tmp_path / "vids" / "cp.mp4", episodes=2, seed=3, keep_frames=True)
    assert res["path"].endswith("cp.mp4") and len(res["returns"]) == 2
    assert res["frames"] == sum(res["lengths"]) + 2 == len(res["images"])
    assert res["returns"] == [float(n) for n in res["lengths"]]  # CartPole: +1 per step
    assert not list((tmp_path / "vids").glob("*.part*"))

    frames, meta = decode(res["path"])
    assert len(frames) == res["frames"]
    assert meta["size"] == (600, 400) and meta["fps"] == 50  # CartPole's render_fps
    assert_not_black(frames[0])
    for k in (0, len(frames) // 2, -1):  # lossy codec, but the same pictures, right way up
        assert np.abs(frames[k].astype(int) - res["images"][k]).mean() < 3


def test_seed_reproduces_the_first_frame_and_max_steps_caps(tmp_path):
    a = record_episodes(cartpole, lambda obs: 0, tmp_path / "a.mp4", seed=5, keep_frames=True, max_steps=4)
    b = record_episodes(cartpole, lambda obs: 0, tmp_path / "b.mp4", seed=5, keep_frames=True, max_steps=4)
    c = record_episodes(cartpole, lambda obs: 0, tmp_path / "c.mp4", seed=6, keep_frames=True, max_steps=4)
    np.testing.assert_array_equal(a["images"], b["images"])
    assert not np.array_equal(a["images"][0], c["images"][0])
    assert a["lengths"] == [4] and a["frames"] == 5


def test_torch_actions_and_policy_reset_hook(tmp_path):
    torch = pytest.importorskip("torch")

    class Stateful:
        resets = 0

        def reset(self):
            self.resets += 1

        def __call__(self, obs):
            return torch.tensor([1])  # a one-element tensor is a fine Discrete action

    policy = Stateful()
    res = record_episodes(cartpole, policy, tmp_path / "t.mp4", episodes=3, max_steps=5)
    assert policy.resets == 3 and res["lengths"] == [5, 5, 5]


def test_wrong_render_mode_is_a_clear_error_and_leaves_no_file(tmp_path):
    with pytest.raises(ValueError, match="rgb_array"):
        record_episodes(lambda: gym.make("CartPole-v1"), lambda o: 0, tmp_path / "x.mp4")
    assert not list(tmp_path.iterdir())


def test_mujoco_twice_in_a_row_never_renders_black(tmp_path):
    env = pendulum()
    space = env.action_space
    env.close()
    del env
    results = []
    for k in range(2):
        res = record_episodes(pendulum, random_policy(space, 0), tmp_path / f"ip{k}.mp4", seed=0, keep_frames=True, max_steps=40)
        frames, _ = decode(res["path"])
        assert len(frames) == res["frames"] == res["lengths"][0] + 1
        for frame in (frames[0], frames[-1], res["images"][-1]):
            assert_not_black(frame)
        results.append(res)
    # Same seed, same policy: the same video, so the second one is not black or off.
    np.testing.assert_array_equal(results[0]["images"], results[1]["images"])


def test_mujoco_old_env_collected_mid_recording_does_not_blacken(tmp_path):
    """The trap itself: the first recording's env is garbage-collected only after the second
    env has started rendering (the user's factory kept a reference to it)."""
    made = []

    def factory():
        made.append(pendulum())
        return made[-1]

    first = record_episodes(factory, lambda o: np.zeros(1), tmp_path / "a.mp4", max_steps=5, keep_frames=True)

    class DropOldEnvOnFirstCall:
        def __call__(self, obs):
            if len(made) == 2:
                del made[0]  # the last reference to the first, closed env
                gc.collect()
            return np.zeros(1)

    second = record_episodes(factory, DropOldEnvOnFirstCall(), tmp_path / "b.mp4", max_steps=5, keep_frames=True)
    assert len(made) == 1
    np.testing.assert_array_equal(second["images"], first["images"])
    assert_not_black(second["images"][-1])
    made.clear()
    gc.collect()


def test_record_grid_tiles_match_single_agent_recordings(tmp_path):
    torch = pytest.importorskip("torch")
    policies = [lambda o: 0, lambda o: torch.tensor(1), lambda o: int(o[2] > 0)]  # fail, fail, balance
    res = record_grid(cartpole, policies, tmp_path / "grid.mp4", seed=10, cols=2, max_steps=30, keep_frames=True)
    grid = res["images"]
    h, w = 400, 600
    assert grid.shape[1:] == (2 * h, 2 * w, 3)
    assert res["frames"] == len(grid) == max(res["lengths"]) + 1
    assert res["lengths"][2] == 30 > max(res["lengths"][:2])  # the balancing agent lasts
    np.testing.assert_array_equal(grid[:, h:, w:], 0)  # the empty cell stays black

    for i, policy in enumerate(policies):
        single = record_episodes(cartpole, policy, tmp_path / f"s{i}.mp4", seed=10 + i, max_steps=30, keep_frames=True)
        assert single["lengths"][0] == res["lengths"][i]
        r, c = divmod(i, 2)
        tiles = grid[:, r * h : (r + 1) * h, c * w : (c + 1) * w]
        n = len(single["images"])
        np.testing.assert_array_equal(tiles[:n], single["images"])  # its whole episode, bright
        dimmed = (single["images"][-1].astype(np.float32) * 0.35).astype(np.uint8)
        for t in range(n, len(grid)):  # then its last frame, dimmed
            np.testing.assert_array_equal(tiles[t], dimmed)

    frames, _ = decode(res["path"])
    assert frames.shape == grid.shape


def test_record_grid_mujoco_switches_gl_contexts(tmp_path):
    """Two different MuJoCo models alive at once: each frame must be drawn in its own env's
    GL context (drawn in the other one's, it comes out wrong)."""
    names = ["InvertedPendulum-v5", "InvertedDoublePendulum-v5"]
    made = []

    def alternating():
        made.append(names[len(made) % 2])
        return gym.make(made[-1], render_mode="rgb_array")

    policies = [lambda o: np.array([0.5]), lambda o: np.array([-0.5])]
    res = record_grid(alternating, policies, tmp_path / "g.mp4", seed=[1, 2], max_steps=8, keep_frames=True)
    grid = res["images"]
    assert grid.shape[1:] == (480, 960, 3)
    for i, (name, policy) in enumerate(zip(names, policies)):
        make = lambda name=name: gym.make(name, render_mode="rgb_array")  # noqa: E731
        single = record_episodes(make, policy, tmp_path / f"s{i}.mp4", seed=1 + i, max_steps=8, keep_frames=True)
        n = len(single["images"])
        np.testing.assert_array_equal(grid[:n, :, i * 480 : (i + 1) * 480], single["images"])
        assert_not_black(grid[n - 1, :, i * 480 : (i + 1) * 480])


def test_tile_frames_layout():
    frames = [np.full((2, 3, 3), v, np.uint8) for v in (10, 20, 30, 40, 50)]
    out = tile_frames(frames)  # 5 frames -> 3 columns, 2 rows
    assert out.shape == (4, 9, 3)
    np.testing.assert_array_equal(out[::2, ::3, 0], [[10, 20, 30], [40, 50, 0]])
    assert tile_frames(frames, cols=1).shape == (10, 3, 3)
    with pytest.raises(ValueError, match="shape"):
        tile_frames([np.zeros((2, 3, 3), np.uint8), np.zeros((3, 3, 3), np.uint8)])


def test_frames_to_tensorboard_writes_an_animated_gif(tmp_path):
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(6, 16, 24, 3), dtype=np.uint8)
    writer = SummaryWriter(str(tmp_path))
    assert frames_to_tensorboard(writer, "eval/video", frames, step=123, fps=10)
    writer.close()
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    (event,) = acc.Images("eval/video")
    assert (event.step, event.width, event.height) == (123, 24, 16)
    gif = Image.open(io.BytesIO(event.encoded_image_string))
    assert gif.format == "GIF" and gif.n_frames == 6 and gif.info["duration"] == 100


def test_import_is_light_and_sets_mujoco_gl():
    code = (
        "import os, sys; os.environ.pop('MUJOCO_GL', None)\n"
        "import spikegym.training.video\n"
        "assert 'mujoco' not in sys.modules and 'imageio_ffmpeg' not in sys.modules\n"
        "assert os.environ.get('MUJOCO_GL') == ('egl' if sys.platform.startswith('linux') else None)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_record_grid_labels_each_tile_with_its_agent_and_return(tmp_path):
    policies = [lambda o: 0, lambda o: 1]
    plain = record_grid(cartpole, policies, tmp_path / "plain.mp4", seed=3, max_steps=5, keep_frames=True)
    labelled = record_grid(cartpole, policies, tmp_path / "labels.mp4", seed=3, max_steps=5, keep_frames=True,
                           labels=["agent 0", "agent 1"])
    a, b = plain["images"], labelled["images"]
    h, w = 400, 600
    assert a.shape == b.shape and labelled["returns"] == plain["returns"]
    for c in range(2):  # each tile: a dark label box in its top-left corner, the rest as before
        corner = b[-1, :6, c * w : c * w + 6]
        assert (corner == 0).all() and not (a[-1, :6, c * w : c * w + 6] == 0).all()
        np.testing.assert_array_equal(b[:, 60:h, c * w : (c + 1) * w], a[:, 60:h, c * w : (c + 1) * w])
    with pytest.raises(ValueError, match="2 labels for 1 policies"):
        record_grid(cartpole, policies[:1], tmp_path / "bad.mp4", labels=["a", "b"])
