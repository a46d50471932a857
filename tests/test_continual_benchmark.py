"""benchmarks/continual.py: schedule scaling, and a tiny run that ends with the machine-readable summary line."""

import json
import re
from pathlib import Path

import pytest
from conftest import load_benchmark

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("continual")


def test_scaled_schedule_keeps_the_shape(bench):
    sched = {"cycle": True, "cycle_from": 1, "phases": [{"name": "A", "steps": 100000}, {"name": "B", "steps": "2.5e4"},
                                                        {"name": "A", "steps": 25000}]}
    q = bench.scaled_schedule(sched, 0.25)
    assert [p["steps"] for p in q["phases"]] == [25000, 6250, 6250] and q["cycle_from"] == 1
    assert sched["phases"][1]["steps"] == "2.5e4"  # the input is left alone
    assert [p["steps"] for p in bench.scaled_schedule(sched, 1 / 8)["phases"]] == [12500, 3125, 3125]
    assert bench.scaled_schedule(sched, 1e-9)["phases"][0]["steps"] == 1


def test_tiny_run_prints_the_summary_line(bench, tmp_path, capsys):
    small = ["brain.substeps=4", "brain.motor_size=4", "brain.critic_size=4", "encoder.fields=4", "run.log_every=50"]
    bench.main(["--config", str(ROOT / "configs" / "continual" / "cartpole_cycle.yaml"), "--agents", "2",
                "--scale", "0.001", "--threads", "1", "--run-dir", str(tmp_path), "--set", *small])
    out = capsys.readouterr().out.strip().splitlines()
    # warm-up 100 steps, then 25-step phases: 13 phases in 400 steps
    m = re.fullmatch(r"summary: schedule=cartpole_cycle switches=12 phase_return_slope=(\S+) "
                     r"median_recovery_ratio=(\S+) forgetting=(\S+)", out[-1])
    assert m, out[-1]
    for value in m.groups():
        assert value in ("nan", "inf") or float(value) == float(value)
    saved = json.loads((tmp_path / "benchmark.json").read_text())
    assert saved["steps"] == 400 and saved["spiking"]["switches"] == 12
    assert (tmp_path / "continual.json").is_file()


def test_scratch_runs_give_forward_transfer_in_json_and_tensorboard(bench, tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    small = ["brain.substeps=4", "brain.motor_size=4", "brain.critic_size=4", "encoder.fields=4", "run.log_every=50"]
    bench.main(["--config", str(ROOT / "configs" / "continual" / "cartpole_cycle.yaml"), "--agents", "2",
                "--scale", "0.002", "--steps", "300", "--threads", "1", "--run-dir", str(tmp_path), "--scratch",
                "--set", *small])
    out = capsys.readouterr().out
    assert "forward transfer (first visit vs from scratch):" in out
    ft = json.loads((tmp_path / "benchmark.json").read_text())["spiking"]["forward_transfer"]
    assert list(ft) == ["B"] and ft["B"] is not None and -1.0 <= ft["B"] <= 1.0  # the one task met after the first phase
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    [point] = acc.Scalars("continual/forward_transfer/B")
    assert point.step == 300 and point.value == pytest.approx(ft["B"])


def test_ppo_baseline_has_hyperparameters_for_every_shipped_schedule(bench):
    """--baseline ppo must not find out after the spiking run that it has no PPO settings (slippery HalfCheetah
    did): the zoo's own entry, else its MuJoCo default, shared with learning.py."""
    from spikegym.training.config import load_config

    for path in sorted((ROOT / "configs" / "continual").glob("*.yaml")):
        env_id = load_config(path).env.id  # (its extends: chain resolved)
        hp = bench.ppo_hyperparameters(env_id)
        assert hp["n_envs"] >= 1 and hp["n_steps"] >= 1, path.name
        hp["n_envs"] = -1  # a fresh dict each time: callers pop from it
        assert bench.ppo_hyperparameters(env_id)["n_envs"] >= 1
    assert bench.ppo_hyperparameters("HalfCheetah-v5")["normalize"] is True  # the MuJoCo default
