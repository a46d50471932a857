"""The run folder under faults: a resume that does not fit writes nothing, one run at a time (a lock), a
folder that is not a run's is never written into, damaged checkpoints fall back to the newest intact one,
a full disk keeps the previous checkpoint, NaN observations stop the run before they poison anything,
SIGINT/SIGTERM save a checkpoint, result.json is strict JSON, and files get normal permissions."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.envs.classic_control import CartPoleEnv

from spikegym.training import checkpoint as ckpt_module
from spikegym.training.checkpoint import (CheckpointError, RunFolderError, latest_checkpoint, list_checkpoints,
                                          load_checkpoint, save_checkpoint)
from spikegym.training.config import load_config
from spikegym.training.guards import RunInterrupted
from spikegym.training.evaluate import load_run
from spikegym.training.loop import NonFiniteState, train
from spikegym.training.run_dir import RunLock

from test_cli_run import run_main  # noqa: E402  (tests/ is on sys.path under pytest)

CARTPOLE = Path(__file__).resolve().parents[1] / "configs" / "cartpole.yaml"
SMALL = ["env.num_agents=3", "brain.substeps=5", "encoder.fields=4", "brain.motor_size=6", "brain.critic_size=6",
         "run.progress=off"]

pytestmark = pytest.mark.usefixtures("one_thread")


def small_cfg(steps, *overrides):
    return load_config(CARTPOLE, [*SMALL, f"run.steps={steps}", *overrides])


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` (hidden ones too) -> (sha1 of its bytes, mtime)."""
    return {str(p.relative_to(folder)): (hashlib.sha1(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line_error(code, err, *words, status=2):
    assert code == status, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)


@pytest.fixture()
def cli_run(tmp_path):
    """A 60-step CLI run of 3 small agents, made with --set; checkpoints at 30 and 60."""
    run_dir = tmp_path / "run"
    code, out, err = run_main(["train", CARTPOLE, "--steps", "60", "--run-dir", run_dir, "--set", *SMALL,
                               "run.checkpoint_every=30", "run.log_every=30"])
    assert code == 0, err
    return run_dir


# --------------------------------------------------------------------------- item 1: a failed resume writes nothing


@pytest.mark.parametrize("how", ["num_agents", "original config file", "fewer steps", "same steps"])
def test_a_resume_that_does_not_fit_is_one_line_and_leaves_the_folder_untouched(cli_run, how):
    before = snapshot(cli_run)
    argv = {"num_agents": ["--steps", "120", "--set", "env.num_agents=8"],
            "original config file": [CARTPOLE, "--steps", "120"],  # the run was made with --set
            "fewer steps": ["--steps", "40"],
            "same steps": ["--steps", "60"]}[how]
    code, out, err = run_main(["train", "--resume", cli_run, *argv])
    one_line_error(code, err, "cannot resume")
    assert snapshot(cli_run) == before
    # and the folder still evaluates and resumes
    code, out, err = run_main(["eval", cli_run, "--episodes", "1"])
    assert code == 0, err
    code, out, err = run_main(["train", "--resume", cli_run, "--steps", "90"])
    assert code == 0, err
    assert json.loads((cli_run / "result.json").read_text())["steps"] == 90


# --------------------------------------------------------------------------- item 4: lock, foreign folders, unwritable


def test_a_second_run_into_a_locked_folder_is_refused(cli_run):
    before = snapshot(cli_run)
    with RunLock(cli_run):  # as a run in progress holds it
        code, _, err = run_main(["train", "--resume", cli_run, "--steps", "90"])
        one_line_error(code, err, "in use", "locked")
        code, _, err = run_main(["train", CARTPOLE, "--steps", "90", "--run-dir", cli_run, "--set", *SMALL])
        assert code == 2 and "Traceback" not in err  # (refused for its checkpoints, or for the lock)
    assert snapshot(cli_run) == before
    code, _, err = run_main(["train", "--resume", cli_run, "--steps", "90"])  # the lock went with its holder
    assert code == 0, err


def test_the_lock_is_held_for_the_whole_run(tmp_path):
    seen = []

    def probe(step, agent, stats):
        if step == 5:
            with pytest.raises(RunFolderError, match="in use"):
                RunLock(tmp_path / "run")
            seen.append(step)

    train(small_cfg(10), run_dir=tmp_path / "run", callback=probe)
    assert seen == [5]
    RunLock(tmp_path / "run").release()  # free again once the run ended


def test_a_folder_that_is_not_a_run_folder_is_never_written_into(tmp_path, monkeypatch):
    mine = tmp_path / "project"
    mine.mkdir()
    (mine / "config.yaml").write_text("my: own config\n")
    (mine / "notes.txt").write_text("keep me\n")
    before = snapshot(mine)
    monkeypatch.chdir(mine)
    code, _, err = run_main(["train", CARTPOLE, "--steps", "10", "--run-dir", ".", "--set", *SMALL])
    one_line_error(code, err, "not a spikegym run folder")
    assert snapshot(mine) == before


def test_resuming_a_folder_that_is_not_a_run_folder_is_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("mine\n")
    before = snapshot(tmp_path)
    code, _, err = run_main(["train", "--resume", tmp_path, CARTPOLE, "--steps", "10"])
    one_line_error(code, err, "not a spikegym run folder")
    assert snapshot(tmp_path) == before


def test_an_unwritable_run_dir_is_one_line_before_anything_is_written(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, _, err = run_main(["train", CARTPOLE, "--steps", "10", "--run-dir", blocker / "run", "--set", *SMALL])
    one_line_error(code, err, "cannot create run folder")

    ro = tmp_path / "read-only"
    ro.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: make the check say no
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == ro else real(p, mode, **kw))
    else:
        ro.chmod(0o555)
    code, _, err = run_main(["train", CARTPOLE, "--steps", "10", "--run-dir", ro, "--set", *SMALL])
    one_line_error(code, err, "not writable")
    assert list(ro.iterdir()) == []


def test_a_run_that_fails_before_writing_leaves_no_empty_folder(tmp_path, monkeypatch):
    import spikegym.training.loop as loop

    def broken(*args, **kwargs):
        raise RuntimeError("the env cannot be made")

    monkeypatch.setattr(loop, "make_vector_env", broken)
    cfg = small_cfg(10)
    with pytest.raises(RuntimeError, match="cannot be made"):
        train(cfg, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- item 6: damaged checkpoints


def _truncate(p):
    data = (p / "state.pt").read_bytes()
    (p / "state.pt").write_bytes(data[: len(data) // 2])


def _wrong_shape(p):
    tensors = torch.load(p / "state.pt", weights_only=True)
    name = next(k for k, v in tensors.items() if k.startswith("agent.") and v.is_floating_point() and v.dim() >= 2)
    tensors[name] = torch.zeros(1, 2)
    torch.save(tensors, p / "state.pt")


DAMAGE = {
    "truncated": _truncate,
    "garbage": lambda p: (p / "state.pt").write_bytes(os.urandom(2000)),
    "empty": lambda p: (p / "state.pt").write_bytes(b""),
    "wrong shapes": _wrong_shape,
    "bad meta.json": lambda p: (p / "meta.json").write_text('{"step": 60, "env_st'),
    "meta.json of another step": lambda p: (p / "meta.json").write_text(
        json.dumps({**json.loads((p / "meta.json").read_text()), "step": 7})),
    "env state of another env": lambda p: (p / "meta.json").write_text(
        json.dumps({**json.loads((p / "meta.json").read_text()), "env_state": {"layers": []}})),
    "nan weights": lambda p: torch.save({k: (v * float("nan") if v.is_floating_point() and k.startswith("agent.")
                                             else v) for k, v in torch.load(p / "state.pt", weights_only=True).items()},
                                        p / "state.pt"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_resume_falls_back_to_the_newest_intact_checkpoint(cli_run, damage):
    DAMAGE[damage](cli_run / "checkpoints" / "step_60")
    cfg, agent, envs, step = load_run(cli_run)  # eval and record load the same way (they need no env state)
    envs.close()
    assert step == (60 if damage == "env state of another env" else 30)
    seen = []
    result = train(load_config(cli_run / "config.yaml", ["run.steps=90"]), run_dir=cli_run, resume=True,
                   callback=lambda step, agent, stats: seen.append(step))
    assert seen[0] == 31  # continued from step_30
    assert result["steps"] == 90
    code, out, err = run_main(["eval", cli_run, "--episodes", "1"])
    assert code == 0, err


def test_resume_warns_in_one_line_and_fails_in_one_line_when_nothing_is_intact(cli_run):
    _truncate(cli_run / "checkpoints" / "step_60")
    DAMAGE["garbage"](cli_run / "checkpoints" / "step_30")
    before = snapshot(cli_run)
    code, _, err = run_main(["train", "--resume", cli_run, "--steps", "90"])
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err
    assert lines[-1].startswith("spikegym: error: no intact checkpoint") and "step_60" in lines[-1]
    assert any("warning" in line and "step_60" in line and "step_30" in line for line in lines[:-1]), err
    assert snapshot(cli_run) == before
    code, _, err = run_main(["eval", cli_run])
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("spikegym: error: no intact checkpoint")


def test_loading_a_damaged_checkpoint_is_a_checkpoint_error(tmp_path):
    path = save_checkpoint(tmp_path, 10, {"w": torch.ones(3)}, {})
    (path / "state.pt").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="step_10/state.pt is unreadable"):
        load_checkpoint(path)


def test_eval_skips_a_checkpoint_pruned_while_it_is_read(cli_run, monkeypatch):
    real = ckpt_module.load_checkpoint
    calls = []

    def pruned_first(path, **kw):  # a running train prunes the checkpoint between listing and reading
        calls.append(Path(path).name)
        if len(calls) == 1:
            import shutil
            shutil.rmtree(path)
        return real(path, **kw)

    monkeypatch.setattr(ckpt_module, "load_checkpoint", pruned_first)
    cfg, agent, envs, step = load_run(cli_run)
    envs.close()
    assert calls == ["step_60", "step_30"] and step == 30


def test_a_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    first = save_checkpoint(tmp_path, 10, {"w": torch.ones(3)}, {"a": 1})
    real_save = torch.save

    def full(obj, fh, *a, **kw):
        fh.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path, 20, {"w": torch.zeros(3)}, {"a": 2})
    monkeypatch.setattr(torch, "save", real_save)
    assert list_checkpoints(tmp_path) == [first]
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step_10"]  # no temp folder left
    step, tensors, meta = load_checkpoint(first)
    assert step == 10 and torch.equal(tensors["w"], torch.ones(3)) and meta["a"] == 1


def test_a_full_disk_during_training_stops_in_one_line_keeping_the_last_checkpoint(tmp_path, monkeypatch):
    real_save = torch.save

    def full_after_first(obj, fh, *a, **kw):
        if list_checkpoints(tmp_path / "run"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, fh, *a, **kw)

    monkeypatch.setattr(torch, "save", full_after_first)
    code, _, err = run_main(["train", CARTPOLE, "--steps", "60", "--run-dir", tmp_path / "run", "--set", *SMALL,
                             "run.checkpoint_every=30"])
    one_line_error(code, err, "disk is full", "step_30 is kept", status=1)
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["step_30"]


# --------------------------------------------------------------------------- item 7: non-finite observations


class NaNPole(CartPoleEnv):
    """CartPole whose second instance reports a NaN velocity on its 25th step."""

    made = 0

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.index, self.t = NaNPole.made, 0
        NaNPole.made += 1

    def step(self, action):
        obs, r, term, trunc, info = super().step(action)
        self.t += 1
        if self.index == 1 and self.t == 25:
            obs = obs.copy()
            obs[1] = np.nan
        return obs, r, term, trunc, info


def test_a_nan_observation_stops_the_run_before_it_reaches_the_agent(tmp_path):
    gym.register("NaNPole-v0", entry_point=NaNPole, max_episode_steps=500)
    live = {}
    cfg = small_cfg(60, "env.id=NaNPole-v0", "env.vectorization=sync", "encoder.normalize=running",
                    "encoder.low=null", "encoder.high=null", "run.checkpoint_every=20", "run.log_every=20")
    NaNPole.made = 0  # (the config check made one to read its spaces)
    with pytest.raises(NonFiniteState, match=r"non-finite observation .* agent 1's env at step \d+ \(dimensions \[1\]"):
        train(cfg, run_dir=tmp_path, callback=lambda step, agent, stats: live.update(agent=agent))
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_20"]
    for name, t in live["agent"].state_dict().items():  # the encoder's running statistics never saw it
        if t.is_floating_point():
            assert bool(torch.isfinite(t).all()), name


def test_a_non_finite_agent_outside_the_brain_is_never_checkpointed(tmp_path):
    def poison(step, agent, stats):
        if step == 25:
            for name, t in agent.state_dict().items():
                if not name.startswith("brain.") and t.is_floating_point() and t.numel():
                    t.view(-1)[0] = float("inf")
                    return

    with pytest.raises(NonFiniteState, match="non-finite values in agent state"):
        train(small_cfg(60, "run.checkpoint_every=20", "run.log_every=60"), run_dir=tmp_path, callback=poison)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_20"]


# --------------------------------------------------------------------------- item 8: signals, JSON, TensorBoard, modes


def test_sigint_saves_a_checkpoint_that_resumes_exactly(tmp_path):
    over = ["run.checkpoint_every=1000", "run.log_every=20"]
    full = train(small_cfg(60, *over), run_dir=tmp_path / "full")

    def ctrl_c(step, agent, stats):
        if step == 37:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(RunInterrupted) as stopped:
        train(small_cfg(60, *over), run_dir=tmp_path / "cut", callback=ctrl_c)
    assert stopped.value.exit_code == 130 and stopped.value.step == 37
    assert [p.name for p in list_checkpoints(tmp_path / "cut")] == ["step_37"]
    assert not (tmp_path / "cut" / "result.json").exists()
    resumed = train(small_cfg(60, *over), run_dir=tmp_path / "cut", resume=True)
    for key, value in full.items():
        if key != "run_dir":
            assert resumed[key] == value, key
    _, a, _ = load_checkpoint(latest_checkpoint(tmp_path / "full"))
    _, b, _ = load_checkpoint(latest_checkpoint(tmp_path / "cut"))
    for name in a:
        if name.startswith(("agent.", "loop.")):
            assert torch.equal(a[name], b[name]), name


def test_sigterm_on_the_command_line_saves_a_checkpoint_and_exits_143(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "spikegym.training.cli", "train", str(CARTPOLE), "--steps", "1e6",
                             "--run-dir", str(run_dir), "--set", *SMALL, "run.checkpoint_every=1000000",
                             "run.log_every=100"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not list(run_dir.glob("events.out.tfevents.*")) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert len(err.strip().splitlines()) == 1 and "SIGTERM at step" in err and "--resume" in err, err
    (saved,) = list_checkpoints(run_dir)
    assert 0 < load_checkpoint(saved)[0] < 1_000_000


def test_result_json_is_strict_json(tmp_path):
    result = train(small_cfg(5), run_dir=tmp_path)  # no episode ends in 5 steps: the medians are undefined
    text = (tmp_path / "result.json").read_text()

    def refuse(name):
        raise ValueError(f"{name} is not JSON")

    data = json.loads(text, parse_constant=refuse)
    assert data["median_return_last100"] is None
    assert np.isnan(result["median_return_last100"])  # the Python result keeps its float


def test_files_get_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        train(small_cfg(10), run_dir=tmp_path / "run")
    finally:
        os.umask(old)
    run = tmp_path / "run"
    for name in ("config.yaml", "run.json", "result.json", "seed.txt"):
        assert (run / name).stat().st_mode & 0o777 == 0o644, name
    (ckpt,) = list_checkpoints(run)
    assert ckpt.stat().st_mode & 0o777 == 0o755
    assert (ckpt / "state.pt").stat().st_mode & 0o777 == 0o644


CRASH = """
import os, sys
from spikegym.training.config import load_config
from spikegym.training.loop import train
cfg = load_config(sys.argv[1], sys.argv[4:])
def crash(step, agent, stats):
    if step == int(sys.argv[3]):
        os._exit(3)  # a hard kill: no finally, no flush
train(cfg, run_dir=sys.argv[2], callback=crash)
"""


@pytest.mark.parametrize("every, log_every, crash_at", [(100, 50, 160), (100, 50, 110), (75, 50, 90)])
def test_tensorboard_after_a_crash_and_resume_equals_an_uninterrupted_run(tmp_path, every, log_every, crash_at):
    """Every point of an uninterrupted run is there once (none lost with the writer's buffer, none
    written twice): read back with TensorBoard's own EventAccumulator."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    over = [*SMALL, "run.steps=200", f"run.checkpoint_every={every}", f"run.log_every={log_every}"]
    train(load_config(CARTPOLE, over), run_dir=tmp_path / "full")
    proc = subprocess.run([sys.executable, "-c", CRASH, str(CARTPOLE), str(tmp_path / "cut"), str(crash_at), *over],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr
    train(load_config(CARTPOLE, over), run_dir=tmp_path / "cut", resume=True)

    def points(run):
        acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
        acc.Reload()
        return {tag: [(e.step, round(e.value, 5)) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]
                if "fps" not in tag and tag != "time/time_elapsed"}  # wall-clock figures differ between runs

    full, cut = points(tmp_path / "full"), points(tmp_path / "cut")
    assert full.keys() == cut.keys()
    for tag in full:
        assert sorted(cut[tag]) == sorted(full[tag]), tag


# --------------------------------------------------------------------------- one writer; continual split


ROOT = Path(__file__).resolve().parents[1]


def test_json_files_are_written_by_one_module():
    """Strict JSON and atomic writes live in training/files.py; nothing else dumps JSON to a file."""
    offenders = []
    for folder in ("training", "envs", "agents", "brains", "benchmarks"):
        for path in (ROOT / folder).glob("*.py"):
            if path.name == "files.py":
                continue
            text = path.read_text()
            for needle in ("json.dump(", "write_text(json.dumps", "allow_nan", "tempfile.mkstemp"):
                if needle in text:
                    offenders.append(f"{folder}/{path.name}: {needle}")
    assert offenders == []


def test_continual_is_split_into_modules_of_one_job_each():
    import spikegym.training.continual as continual

    for name in continual.__all__:  # every name imported from it before the split
        assert getattr(continual, name) is not None, name
    for path in ROOT.glob("training/continual*.py"):
        assert len(path.read_text().splitlines()) <= 450, path.name


def test_a_fresh_run_in_the_folder_of_one_that_stopped_early_shows_only_its_own_points(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from spikegym.training import tags as T

    class Failed(Exception):
        pass

    def fail(step, agent, stats):
        if step == 50:
            raise Failed

    over = ["run.checkpoint_every=1000", "run.log_every=20"]
    with pytest.raises(Failed):
        train(small_cfg(100, *over), run_dir=tmp_path, callback=fail)  # logged 20 and 40, no checkpoint
    train(small_cfg(60, *over), run_dir=tmp_path)  # allowed: a run folder without checkpoints
    acc = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    acc.Reload()
    assert [e.step for e in acc.Scalars(T.DOPAMINE_VALUE)] == [20, 40, 60]
