"""Checkpoints (atomic, keep-last-N, weights_only-loadable), RNG state, run folders."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from spikegym.training import checkpoint as ckpt
from spikegym.training.checkpoint import (
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from spikegym.training.run_dir import default_run_dir, prepare_run_dir
from spikegym.training.config import load_config


def steps_on_disk(run_dir) -> list[int]:
    return [int(p.name.split("_")[1]) for p in list_checkpoints(run_dir)]


def test_round_trip_converts_numpy_and_loads_weights_only(tmp_path):
    w = torch.randn(3, 4, 5)
    tensors = {
        "brain/w": w,
        "encoder/low": np.array([-2.4, -2.0], dtype=np.float32),
        "episodes": np.int64(12),
        "ratio": np.float32(0.25),
        "flag": True,
    }
    meta = {"env": "CartPole-v1", "returns": np.array([1.0, 2.0]), "best": np.float64(3.5)}
    path = save_checkpoint(tmp_path, 1000, tensors, meta)
    assert path == tmp_path / "checkpoints" / "step_1000"
    # state.pt is readable by the strictest loader (no pickled numpy)
    raw = torch.load(path / "state.pt", weights_only=True)
    assert set(raw) == set(tensors)

    step, loaded, meta2 = load_checkpoint(path)
    assert step == 1000
    assert torch.equal(loaded["brain/w"], w)
    assert isinstance(loaded["encoder/low"], torch.Tensor) and loaded["encoder/low"].dtype == torch.float32
    assert torch.equal(loaded["encoder/low"], torch.tensor([-2.4, -2.0]))
    assert loaded["episodes"] == 12 and type(loaded["episodes"]) is int
    assert loaded["ratio"] == 0.25 and type(loaded["ratio"]) is float
    assert meta2 == {"env": "CartPole-v1", "returns": [1.0, 2.0], "best": 3.5, "step": 1000}
    assert json.loads((path / "meta.json").read_text())["step"] == 1000
    # a run folder loads its latest checkpoint
    assert load_checkpoint(tmp_path)[0] == 1000


def test_views_are_saved_without_their_whole_storage(tmp_path):
    big = torch.zeros(1000, 1000)
    path = save_checkpoint(tmp_path, 1, {"row": big[3]}, {})
    assert (path / "state.pt").stat().st_size < 100_000  # 4 MB storage not written
    assert torch.equal(load_checkpoint(path)[1]["row"], torch.zeros(1000))


def test_unsupported_values_refused_before_touching_disk(tmp_path):
    with pytest.raises(TypeError, match="'tensors.bad'"):
        save_checkpoint(tmp_path, 5, {"ok": torch.ones(1), "bad": object()}, {})
    with pytest.raises(TypeError, match="not JSON serialisable"):
        save_checkpoint(tmp_path, 5, {"ok": torch.ones(1)}, {"bad": object()})
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


def test_keep_last_n(tmp_path):
    for step in (100, 200, 300, 400, 500):
        save_checkpoint(tmp_path, step, {"x": torch.tensor(step)}, {}, keep=2)
    assert steps_on_disk(tmp_path) == [400, 500]
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoints" / "step_500"
    for step in (600, 700):
        save_checkpoint(tmp_path, step, {"x": torch.tensor(step)}, {}, keep=None)
    assert steps_on_disk(tmp_path) == [400, 500, 600, 700]
    save_checkpoint(tmp_path, 800, {"x": torch.tensor(800)}, {}, keep=1)
    assert steps_on_disk(tmp_path) == [800]


def test_latest_orders_numerically_and_ignores_incomplete(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    for step in (9, 10, 100):  # 'step_9' > 'step_100' as strings
        save_checkpoint(tmp_path, step, {"x": torch.tensor(step)}, {}, keep=None)
    (tmp_path / "checkpoints" / "step_999").mkdir()  # no files: not a checkpoint
    (tmp_path / "checkpoints" / ".tmp-step_1000-abc").mkdir()
    assert latest_checkpoint(tmp_path).name == "step_100"
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nothing-here")


def test_crashed_save_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, 100, {"w": torch.full((4,), 1.0)}, {"tag": "good"})
    save_checkpoint(tmp_path, 200, {"w": torch.full((4,), 2.0)}, {"tag": "good"})
    real_save = torch.save

    def dies_midway(obj, f, *args, **kwargs):
        f.write(b"PARTIAL")  # some bytes reach the disk, then the process "crashes"
        raise RuntimeError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", dies_midway)
    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(tmp_path, 300, {"w": torch.full((4,), 3.0)}, {"tag": "bad"}, keep=1)
    with pytest.raises(RuntimeError, match="disk full"):  # re-saving an existing step fails too
        save_checkpoint(tmp_path, 200, {"w": torch.full((4,), 9.0)}, {"tag": "bad"}, keep=1)
    monkeypatch.setattr(ckpt.torch, "save", real_save)

    assert steps_on_disk(tmp_path) == [100, 200]  # nothing pruned, no step_300
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_100", "step_200"]  # no temp left
    step, tensors, meta = load_checkpoint(latest_checkpoint(tmp_path))
    assert step == 200 and torch.equal(tensors["w"], torch.full((4,), 2.0)) and meta["tag"] == "good"


def test_hard_kill_leftovers_are_ignored_then_cleaned(tmp_path):
    save_checkpoint(tmp_path, 100, {"w": torch.ones(2)}, {})
    junk = tmp_path / "checkpoints" / ".tmp-step_200-dead"  # what a SIGKILL mid-save leaves
    junk.mkdir()
    (junk / "state.pt").write_bytes(b"PARTIAL")
    assert latest_checkpoint(tmp_path).name == "step_100"
    save_checkpoint(tmp_path, 200, {"w": torch.ones(2)}, {})
    assert not junk.exists()


def test_resave_same_step_replaces_it(tmp_path):
    save_checkpoint(tmp_path, 50, {"w": torch.zeros(2)}, {"v": 1})
    save_checkpoint(tmp_path, 50, {"w": torch.ones(2)}, {"v": 2})
    step, tensors, meta = load_checkpoint(tmp_path)
    assert step == 50 and torch.equal(tensors["w"], torch.ones(2)) and meta["v"] == 2
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_50"]


def _draw(gen: torch.Generator):
    return (
        torch.rand(5).tolist(),
        np.random.rand(5).tolist(),
        np.random.standard_normal(3).tolist(),  # odd count leaves a cached gaussian
        [random.random() for _ in range(5)],
        random.gauss(0, 1),  # leaves gauss_next set
        torch.rand(5, generator=gen).tolist(),
    )


def test_rng_state_round_trip_through_checkpoint(tmp_path):
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    gen = torch.Generator().manual_seed(4)
    _draw(gen)  # get every generator into a non-trivial state (cached gaussians included)
    np.random.standard_normal(1)
    random.gauss(0, 1)

    state = rng_state({"agent": gen})
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    save_checkpoint(tmp_path, 1, {**state, "w": torch.ones(1)}, {})
    expected = _draw(gen)
    _draw(gen)  # move on

    _, loaded, _ = load_checkpoint(tmp_path)  # through torch.load(weights_only=True)
    set_rng_state(loaded, {"agent": gen})
    assert _draw(gen) == expected

    with pytest.raises(KeyError, match="other"):
        set_rng_state(loaded, {"other": torch.Generator()})


def test_prepare_run_dir_records_how_it_was_made(tmp_path):
    cfg = load_config(None, ["run.seed=11", "run.steps=500"])
    run = prepare_run_dir(cfg, tmp_path / "run", command_line="spikegym train a.yaml --seed 11")
    assert load_config(run / "config.yaml") == cfg
    assert (run / "command.txt").read_text() == "spikegym train a.yaml --seed 11\n"
    info = json.loads((run / "run.json").read_text())
    assert info["seed"] == 11 and info["env_id"] == "CartPole-v1" and "torch" in info["versions"]

    save_checkpoint(run, 100, {"w": torch.ones(1)}, {})
    with pytest.raises(FileExistsError, match="--resume"):
        prepare_run_dir(cfg, run)
    cfg.run.steps = 1000
    assert prepare_run_dir(cfg, run, resume=True, command_line="spikegym train --resume run") == run
    lines = (run / "command.txt").read_text().splitlines()
    assert lines == ["spikegym train a.yaml --seed 11", "spikegym train --resume run"]
    assert load_config(run / "config.yaml").run.steps == 1000
    assert len(json.loads((run / "run.json").read_text())["resumed"]) == 1
    with pytest.raises(FileNotFoundError):
        prepare_run_dir(cfg, tmp_path / "absent", resume=True)


def test_default_run_dir_names_env_and_time_and_is_unique(tmp_path):
    cfg = load_config(None, ["env.id=gymnasium.envs.classic_control:CartPole-v1"])
    first = default_run_dir(cfg, root=tmp_path, now=0)
    assert first.parent == tmp_path and first.name.startswith("gymnasium.envs.classic_control_CartPole-v1-19")
    first.mkdir()
    second = default_run_dir(cfg, root=tmp_path, now=0)
    assert second.name == first.name + "-2"
