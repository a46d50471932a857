"""The command line end to end: ``spikegym train`` writes a complete run folder (config, command line,
checkpoint, TensorBoard events with the documented tags) and tells where it is at the start, how it goes
(log lines off a terminal) and what it reached at the end; ``eval`` prints a table (or JSON), ``record``
writes mp4s,
``train --resume`` continues from the checkpoint, and every config mistake is one line on stderr with
exit status 2 (no traceback)."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from spikegym.training import tags as T
from spikegym.training.checkpoint import latest_checkpoint, load_checkpoint
from spikegym.training.cli import main

CARTPOLE = Path(__file__).resolve().parents[1] / "configs" / "cartpole.yaml"


pytestmark = pytest.mark.usefixtures("one_thread")


def run_main(argv):
    """``(exit status, stdout, stderr)`` of ``main(argv)``."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def scalars(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [e.step for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 300-step CartPole run of 4 agents made through the CLI, evaluated at 150 and 300, progress
    "auto" with stderr off a terminal: (run folder, stdout, stderr)."""
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    code, out, err = run_main(["train", CARTPOLE, "--steps", "300", "--run-dir", run_dir,
                               "--set", "env.num_agents=4", "run.log_every=100", "run.eval_every=150",
                               "run.eval_episodes=1"])
    assert code == 0, err
    return run_dir, out, err


def test_train_writes_a_complete_run_folder(trained):
    run_dir, out, _ = trained
    result = json.loads((run_dir / "result.json").read_text())
    assert result["steps"] == 300 and result["agents"] == 4 and len(result["episodes_per_agent"]) == 4
    assert "env:" in (run_dir / "config.yaml").read_text()
    assert "num_agents: 4" in (run_dir / "config.yaml").read_text()
    command = (run_dir / "command.txt").read_text().splitlines()
    assert len(command) == 1 and command[0].startswith("spikegym train ") and "--steps 300" in command[0]
    assert json.loads((run_dir / "run.json").read_text())["seed"] == 0
    step, tensors, meta = load_checkpoint(latest_checkpoint(run_dir))
    assert step == 300 and "agent.brain.w.sensors->motor" in tensors and meta["step"] == 300

    steps = scalars(run_dir)
    want = [T.EP_REW_MEAN, T.EP_LEN_MEAN, T.POP_MEDIAN, T.POP_P25, T.POP_P75, T.FPS, T.TIME_TOTAL_TIMESTEPS,
            T.tag(T.BRAIN_RATE, pop="motor"), T.tag(T.PLASTICITY_W_MEAN, proj="sensors_to_motor"),
            T.tag(T.PLASTICITY_ELIG, proj="sensors_to_critic"), T.DOPAMINE_MEAN, T.DOPAMINE_VALUE,
            T.EPISODIC_RETURN, T.EVAL_MEAN_REWARD]
    missing = [tag for tag in want if tag not in steps]
    assert not missing, f"missing tags {missing}; have {sorted(steps)}"
    for prefix in ("rollout/", "population/", "agents/", "time/", "eval/", "brain/", "plasticity/", "dopamine/"):
        assert any(tag.startswith(prefix) for tag in steps), prefix
    for tag, xs in steps.items():
        assert xs and max(xs) <= 300, tag  # x axis = env steps per agent
    assert steps[T.FPS] == [100, 200, 300]


def test_train_says_where_at_the_start_and_progress_off_a_terminal(trained):
    run_dir, _, err = trained
    lines = err.strip().splitlines()
    assert lines[0] == f"spikegym: training: run folder {run_dir} (watch: tensorboard --logdir {run_dir})"
    progress = [line for line in lines if line.startswith("spikegym: step ")]
    assert progress[0].startswith("spikegym: step 100/300 (33%) | ") and progress[-1].startswith("spikegym: step 300/300 (100%)")
    assert all("agent-steps/s | median return " in line and "| ETA " in line for line in progress)


def test_train_ends_with_a_readable_summary(trained):
    run_dir, out, _ = trained
    result = json.loads((run_dir / "result.json").read_text())
    text = out.strip()
    assert not text.startswith("{")  # not a JSON dump
    assert f"solved:      {result['solved']}/4 agents reached a 100-episode mean >= 475" in text
    assert f"median over agents {result['median_return_last100']:.1f}" in text
    for line in (f"run folder:  {run_dir}", f"results:     {run_dir / 'result.json'}",
                 f"TensorBoard: tensorboard --logdir {run_dir}"):
        assert line in text


def test_eval_every_logs_eval_and_keeps_a_best_checkpoint(trained):
    run_dir, _, _ = trained
    assert scalars(run_dir)[T.EVAL_MEAN_REWARD] == [150, 300]
    best = run_dir / "checkpoints" / "best"
    step, tensors, meta = load_checkpoint(best)
    assert step in (150, 300) and "agent.brain.w.sensors->motor" in tensors
    assert meta["eval"]["episodes"] == 1 and len(meta["eval"]["mean_return_per_agent"]) == 4
    assert load_checkpoint(latest_checkpoint(run_dir))[0] == 300  # "best" is never taken for the latest


def test_eval_prints_a_table_and_json(trained, capsys):
    run_dir, _, _ = trained
    assert main(["eval", str(run_dir), "--episodes", "2"]) == 0
    table = capsys.readouterr().out.strip().splitlines()
    assert table[0].startswith("CartPole-v1 checkpoint step 300") and "2 episodes per agent" in table[0]
    assert [line.split()[0] for line in table[2:6]] == ["0", "1", "2", "3"]
    assert table[-1].startswith("population: mean ") and " +- " in table[-1] and "median" in table[-1]
    assert main(["eval", str(run_dir), "--episodes", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["checkpoint_step"] == 300 and out["episodes"] == 2
    assert len(out["mean_return_per_agent"]) == 4 == len(out["std_return_per_agent"])
    assert isinstance(out["median_return"], float) and 8 <= out["median_return"] <= 500  # CartPole returns
    assert abs(out["mean_return"] - sum(out["mean_return_per_agent"]) / 4) < 1e-9


def test_eval_seed_and_checkpoint_flags(trained, capsys):
    run_dir, _, _ = trained

    def evaluate(*flags):
        assert main(["eval", str(run_dir), "--episodes", "2", "--json", *flags]) == 0
        return json.loads(capsys.readouterr().out)

    a, b, c = evaluate("--seed", "3"), evaluate("--seed", "3"), evaluate("--seed", "4")
    assert a["mean_return_per_agent"] == b["mean_return_per_agent"] and a["seed"] == 3
    assert c["seed"] == 4 and c["mean_return_per_agent"] != a["mean_return_per_agent"]
    best = evaluate("--checkpoint", "best")
    assert best["checkpoint"].endswith("best") and best["checkpoint_step"] in (150, 300)
    assert evaluate("--checkpoint", "300")["checkpoint_step"] == 300
    code, _, err = run_main(["eval", run_dir, "--checkpoint", "7"])
    assert code == 2 and err.startswith("spikegym: error: no checkpoint at step 7") and "300" in err


def test_record_writes_mp4(trained, tmp_path, capsys):
    pytest.importorskip("imageio_ffmpeg")
    run_dir, _, _ = trained
    assert main(["record", str(run_dir), "--episodes", "1", "--agents", "2", "--seed", "3", "--max-steps", "20",
                 "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    printed = [Path(p) for p in captured.out.split()]
    assert printed and all(p.parent == tmp_path for p in printed)
    assert "spikegym record: wrote" in captured.err  # progress on stderr
    names = sorted(p.name for p in tmp_path.glob("*.mp4"))
    assert names == ["agent0-step300.mp4", "grid2-step300.mp4"]
    for p in tmp_path.glob("*.mp4"):
        head = p.read_bytes()[:12]
        assert head[4:8] == b"ftyp", p  # an ISO media file
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(tmp_path / "grid2-step300.mp4"))
    next(reader)
    assert sum(1 for _ in reader) <= 21  # --max-steps 20: the reset frame and at most 20 steps


def test_resume_continues_from_the_checkpoint(trained, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(trained[0], run_dir)  # leave the shared run as it was
    code, out, err = run_main(["train", "--resume", run_dir, "--steps", "600", "--json"])
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["steps"] == 600
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir() if not p.name.startswith("."))
    assert names == ["best", "step_300", "step_600"]  # pruning keeps 2 step_<N> and never touches best
    assert load_checkpoint(latest_checkpoint(run_dir))[0] == 600
    command = (run_dir / "command.txt").read_text().splitlines()
    assert len(command) == 2 and "--resume" in command[1]
    assert "num_agents: 4" in (run_dir / "config.yaml").read_text()  # the run's own config was used
    fps = scalars(run_dir)[T.FPS]
    assert fps == [100, 200, 300, 400, 500, 600]  # continued at 301, nothing logged twice


def test_fresh_train_into_a_run_folder_with_checkpoints_is_refused(trained, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(trained[0], run_dir)
    code, out, err = run_main(["train", CARTPOLE, "--steps", "10", "--run-dir", run_dir])
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "--resume" in err and "Traceback" not in err
    assert load_checkpoint(latest_checkpoint(run_dir))[0] == 300


# --------------------------------------------------------------------------- mistakes: one line, status 2


def _bad_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("env:\n  id: CartPole-v1\n  num_agents: [4\nrun:\n  steps: 10\n")
    return path


def _typo_yaml(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("env:\n  id: CartPole-v1\nbrian:\n  substeps: 4\n")
    return path


MISTAKES = {
    "unknown key": (lambda p: ["train", CARTPOLE, "--set", "brain.substep=10"],
                    ["unknown key 'brain.substep'", "did you mean 'brain.substeps'"]),
    "unknown key in a file": (lambda p: ["train", _typo_yaml(p)], ["typo.yaml:3:", "did you mean 'brain'"]),
    "YAML syntax": (lambda p: ["train", _bad_yaml(p)], ["bad.yaml:4", "YAML syntax error", "line 3"]),
    "wrong type": (lambda p: ["train", CARTPOLE, "--set", "run.steps=abc"],
                   ["'run.steps' expected an integer, got 'abc'"]),
    "out of range": (lambda p: ["train", CARTPOLE, "--set", "dopamine.gamma=1.5"],
                     ["'dopamine.gamma' must be between 0.0 and 1.0, got 1.5"]),
    "bad choice": (lambda p: ["train", CARTPOLE, "--set", "brain.neuron=lif2"], ["did you mean 'lif'"]),
    "unknown env id": (lambda p: ["train", CARTPOLE, "--set", "env.id=CartPol-v1"],
                       ["unknown env id 'CartPol-v1'", "did you mean 'CartPole-v1'"]),
    "missing file": (lambda p: ["train", p / "nope.yaml"], ["nope.yaml", "no such config file"]),
    "missing file, close name": (lambda p: ["train", CARTPOLE.with_name("cartpol.yaml")],
                                 ["no such config file", "cartpole.yaml'?"]),
    "missing run folder (eval)": (lambda p: ["eval", p / "absent"], ["no such run folder"]),
    "missing run folder (resume)": (lambda p: ["train", "--resume", p / "absent"], ["no such run folder"]),
    "run folder without checkpoint": (lambda p: ["eval", shutil.copy(CARTPOLE, p / "config.yaml") and p],
                                      ["no checkpoint"]),
}


@pytest.mark.parametrize("name", list(MISTAKES))
def test_config_mistakes_are_one_line_and_exit_2(name, tmp_path):
    argv, expected = MISTAKES[name]
    code, out, err = run_main(argv(tmp_path))
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("spikegym: error: ") and "Traceback" not in err
    for text in expected:
        assert text in lines[0], lines[0]
    assert not list(tmp_path.rglob("checkpoints"))  # nothing was trained
