"""What a run tells its user (progress lines off a terminal, a readable end summary) and periodic
evaluation: it leaves training exactly as it was and keeps a best checkpoint that pruning never deletes."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
import torch

from spikegym.training import progress as P
from spikegym.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from spikegym.training.config import load_config
from spikegym.training.evaluate import load_run, resolve_checkpoint
from spikegym.training.loop import train

ROOT = Path(__file__).resolve().parents[1]
CARTPOLE = ROOT / "configs" / "cartpole.yaml"

pytestmark = pytest.mark.usefixtures("one_thread")


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_progress_lines_off_a_terminal_are_throttled_and_say_where_and_when(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(P.time, "perf_counter", clock)
    out = io.StringIO()  # not a terminal
    p = P.Progress("auto", total=1000, initial=0, num_agents=4, stream=out)
    assert p.style == "lines"
    p.start(Path("runs/x"), resume=False)
    for step in range(100, 1001, 100):
        clock.now += 3.0  # 3 s per 100 steps: a line at most every 10 s
        p.log(step, fps=133.0, median_return=12.5 if step > 100 else math.nan)
    lines = out.getvalue().splitlines()
    assert lines[0] == "spikegym: training: run folder runs/x (watch: tensorboard --logdir runs/x)"
    steps = [int(line.split()[2].split("/")[0].replace(",", "")) for line in lines[1:]]
    assert steps == [100, 500, 900, 1000]  # the first, then every >= 10 s, and the last
    assert lines[1] == ("spikegym: step 100/1,000 (10%) | 133 agent-steps/s | "
                        "median return n/a (no episode yet) | ETA 27s")
    assert lines[-1].endswith("median return 12.5 | ETA 0s")
    assert P.Progress("off", total=10, initial=0, num_agents=1, stream=io.StringIO()).style == "off"


def test_summary_text_says_what_was_reached_and_where_to_look():
    result = {"env": "CartPole-v1", "agents": 16, "steps": 200000, "agent_step": "torch", "solved": 15,
              "solved_threshold": 475.0, "median_steps_to_solve": 81800, "median_return_last100": 488.5,
              "run_dir": "runs/r"}
    text = P.summary_text(result)
    assert "15/16 agents reached a 100-episode mean >= 475; median agent solved at step 81,800" in text
    assert "median over agents 488.5" in text and "tensorboard --logdir runs/r" in text
    assert "results:     runs/r/result.json" in text
    unsolved = P.summary_text({**result, "solved": 3, "median_steps_to_solve": math.inf})
    assert "3/16" in unsolved and "the median agent has not solved it" in unsolved
    assert "no solved threshold" in P.summary_text({**result, "solved_threshold": None})


def _cfg(run_dir, *extra):
    return load_config(CARTPOLE, ["run.steps=300", "env.num_agents=3", "run.log_every=100", "run.progress=off",
                                  f"run.run_dir={run_dir}", *extra])


def test_periodic_evaluation_does_not_disturb_training(tmp_path):
    with_eval = train(_cfg(tmp_path / "eval", "run.eval_every=100", "run.eval_episodes=2"))
    plain = train(_cfg(tmp_path / "plain"))
    assert with_eval["eval_best"]["step"] in (100, 200, 300) and "eval_best" not in plain
    _, a, envs_a, _ = load_run(tmp_path / "eval")
    _, b, envs_b, _ = load_run(tmp_path / "plain")
    envs_a.close(), envs_b.close()
    for name, t in a.state_dict().items():
        assert torch.equal(t, b.state_dict()[name]), name
    assert with_eval["mean_return_last100_per_agent"] == plain["mean_return_last100_per_agent"]
    _, tensors, meta = load_checkpoint(tmp_path / "eval" / "checkpoints" / "best")
    assert meta["eval"]["mean_return"] == with_eval["eval_best"]["mean_return"]


def test_best_checkpoint_survives_pruning_and_is_never_the_latest(tmp_path):
    from spikegym.training.evaluate import save_best

    run_dir = tmp_path / "run"
    cfg = _cfg(run_dir)
    train(cfg)
    _, agent, envs, _ = load_run(run_dir)
    envs.close()
    save_best(run_dir, 300, agent, {"mean_return": 1.0}, cfg)
    for step in (400, 500, 600):  # later checkpoints, keeping one: every older step_<N> goes
        save_checkpoint(run_dir, step, {"x": torch.zeros(1)}, keep=1)
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == ["best", "step_600"]
    assert latest_checkpoint(run_dir).name == "step_600"
    assert resolve_checkpoint(run_dir, "best") == run_dir / "checkpoints" / "best"
    assert load_checkpoint(resolve_checkpoint(run_dir, "best"))[0] == 300
