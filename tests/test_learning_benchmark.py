"""benchmarks/learning.py: a tiny run ends with the summary line, and --resume continues it exactly."""

import json
import re
from pathlib import Path

import pytest
from conftest import load_benchmark

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["brain.substeps=4", "brain.motor_size=4", "brain.critic_size=4", "encoder.fields=4", "run.log_every=100"]
SUMMARY = (r"summary: env=CartPole-v1 agents=2 solved=(\d+) median_steps_to_solve=(\S+) median_return_last100=(\S+) "
           r"spikes_per_decision=(\S+) synaptic_events_per_decision=(\S+)")


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("learning")


def run(bench, capsys, *args):
    assert bench.main(["--env", "CartPole-v1", "--agents", "2", "--threads", "1", *args, "--set", *SMALL]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(SUMMARY, out[-1]), out[-1]
    return out


def test_resume_continues_to_the_same_result_as_one_run(bench, tmp_path, capsys):
    whole = run(bench, capsys, "--steps", "400", "--run-dir", str(tmp_path / "whole"))
    run(bench, capsys, "--steps", "200", "--run-dir", str(tmp_path / "split"))
    split = run(bench, capsys, "--steps", "400", "--run-dir", str(tmp_path / "split"), "--resume")
    assert split[-1] == whole[-1]
    per_agent = lambda out: [line for line in out if re.match(r"\s+\d+\s", line)]  # the per-agent table
    assert per_agent(split) == per_agent(whole) and len(per_agent(whole)) == 2
    result = json.loads((tmp_path / "split" / "result.json").read_text())
    assert result["steps"] == 400 and sum(result["episodes_per_agent"]) > 10
    with pytest.raises(SystemExit, match="--resume needs --run-dir"):
        bench.main(["--env", "CartPole-v1", "--steps", "10", "--run-dir", str(tmp_path / "empty"), "--resume"])
