"""Sweeps: one run folder per setting x seed, sweep.csv and the table, a stopped sweep continues (finished
points skipped, partial ones resumed), a bad grid key stops before anything runs, Ray is optional."""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

import pytest

from spikegym.training import loop
from spikegym.training.cli import main
from spikegym.training.config import ConfigError
from spikegym.training.sweep import CURVES_PNG, SWEEP_CSV, parse_grid, run_sweep, sweep_settings

from conftest import load_benchmark

CARTPOLE = Path(__file__).resolve().parents[1] / "configs" / "cartpole.yaml"
SMALL = ["env.num_agents=2", "brain.substeps=3", "encoder.fields=4", "brain.motor_size=4", "brain.critic_size=4",
         "run.log_every=20", "run.checkpoint_every=20"]
GRID = ["plasticity.actor_lr=0.005,1e-2"]

pytestmark = pytest.mark.usefixtures("one_thread")


def sweep(out, *, grid=GRID, seeds=2, steps=40, **kw):
    return run_sweep(CARTPOLE, grid, seeds=seeds, steps=steps, out=out, overrides=SMALL, workers=0,
                     echo=lambda line: None, **kw)


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_sweep_writes_one_folder_and_one_csv_row_per_point(tmp_path):
    result = sweep(tmp_path / "out")
    out = tmp_path / "out"
    names = sorted(p.name for p in out.iterdir() if p.is_dir())
    # the config's seed is 0: seeds 0 and 1; "1e-2" keeps its spelling in the folder name
    assert names == ["plasticity.actor_lr=0.005-seed0", "plasticity.actor_lr=0.005-seed1",
                     "plasticity.actor_lr=1e-2-seed0", "plasticity.actor_lr=1e-2-seed1"]
    for name in names:
        assert (out / name / "result.json").is_file()
    rows = read_csv(out / SWEEP_CSV)
    assert list(rows[0]) == ["plasticity.actor_lr", "seed", "steps_to_solve", "final_median_return", "solved",
                             "agents", "wall_s", "resumed", "status", "run_dir"]
    assert [(float(r["plasticity.actor_lr"]), int(r["seed"])) for r in rows] == [
        (0.005, 0), (0.005, 1), (0.01, 0), (0.01, 1)]  # the value the config resolved, not the text
    for r in rows:
        assert r["status"] == "done" and r["agents"] == "2" and r["solved"] == "0"
        assert r["steps_to_solve"] == ""  # 40 steps: nobody solves CartPole, the median agent never did
        assert 0 < float(r["final_median_return"]) <= 40  # +1 per step, episodes of at most 40 steps
        assert float(r["wall_s"]) > 0 and r["resumed"] == "False"
    assert (out / CURVES_PNG).stat().st_size > 1000
    assert result["points"] == 4 and result["runs"] == 4 and result["failed"] == 0
    returns = [s["final_median_return"] for s in result["settings"]]
    assert returns == sorted(returns, reverse=True)  # nobody solved: the higher return first


def test_two_grid_keys_make_every_combination(tmp_path):
    result = sweep(tmp_path, grid=["plasticity.actor_lr=0.005,0.01", "brain.substeps=2,3"], seeds=1, steps=20)
    names = {r["run_dir"] for r in result["rows"]}
    assert names == {f"plasticity.actor_lr={lr},brain.substeps={k}-seed0" for lr in ("0.005", "0.01") for k in (2, 3)}
    rows = read_csv(tmp_path / SWEEP_CSV)
    assert {(r["plasticity.actor_lr"], r["brain.substeps"]) for r in rows} == {
        ("0.005", "2"), ("0.005", "3"), ("0.01", "2"), ("0.01", "3")}


class Killed(Exception):
    pass


def test_a_stopped_sweep_skips_finished_points_and_resumes_partial_ones(tmp_path, monkeypatch):
    real_train = loop.train
    calls, killed = [], []

    def stopping_train(cfg, *, run_dir=None, resume=False, **kw):
        calls.append((Path(run_dir).name, resume))
        if len(calls) == 2 and not killed:  # the second point is killed after its checkpoint at step 20
            killed.append(True)
            def kill(step, agent, stats):
                if step == 30:
                    raise Killed
            kw["callback"] = kill
        return real_train(cfg, run_dir=run_dir, resume=resume, **kw)

    monkeypatch.setattr(loop, "train", stopping_train)
    with pytest.raises(Killed):  # the sweep stops with it (a real kill leaves the same folders)
        sweep(tmp_path)
    first, second = "plasticity.actor_lr=0.005-seed0", "plasticity.actor_lr=0.005-seed1"
    assert calls == [(first, False), (second, False)]
    assert not (tmp_path / second / "result.json").exists()
    assert [p.name for p in (tmp_path / second / "checkpoints").iterdir()] == ["step_20"]

    calls.clear()
    result = sweep(tmp_path)
    assert calls == [(second, True), ("plasticity.actor_lr=1e-2-seed0", False), ("plasticity.actor_lr=1e-2-seed1", False)]
    assert result["runs"] == 3 and result["points"] == 4
    rows = {r["run_dir"]: r for r in read_csv(tmp_path / SWEEP_CSV)}
    assert rows[second]["resumed"] == "True" and rows[first]["resumed"] == "False"
    assert float(rows[first]["wall_s"]) > 0  # a skipped point keeps the wall time it was run with
    assert all(r["status"] == "done" for r in rows.values())

    calls.clear()
    assert sweep(tmp_path)["runs"] == 0 and calls == []  # all done: nothing runs again


def test_a_rerun_with_other_arguments_is_refused(tmp_path):
    sweep(tmp_path, seeds=1, steps=20)
    with pytest.raises(ConfigError, match="holds a different sweep .*steps"):
        sweep(tmp_path, seeds=1, steps=40)


@pytest.mark.parametrize("grid, words", [
    ("plasticity.actor_lrr=0.1", ["plasticity.actor_lrr", "plasticity.actor_lr"]),  # did you mean
    ("plasticity.actor_lr=0.1,fast", ["--grid plasticity.actor_lr=fast"]),           # the second value is bad
])
def test_a_bad_grid_key_or_value_is_one_line_and_exit_2_before_anything_runs(tmp_path, capsys, monkeypatch, grid, words):
    monkeypatch.setattr(loop, "train", lambda *a, **k: pytest.fail("a point ran"))
    out = tmp_path / "out"
    code = main(["sweep", str(CARTPOLE), "--grid", grid, "--workers", "0", "--out", str(out), "--steps", "20"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("spikegym: error: ") and "Traceback" not in err
    for word in words:
        assert word in err
    assert not out.exists()


@pytest.mark.parametrize("texts, message", [
    (["plasticity.actor_lr"], "expected KEY=V1,V2"),
    (["plasticity.actor_lr=0.1,,0.2"], "empty value"),
    (["plasticity.actor_lr=0.1", "plasticity.actor_lr=0.2"], "given twice"),
    (["run.seed=1,2"], "--seeds"),
    ([], "at least one --grid"),
])
def test_malformed_grids_are_refused(texts, message):
    with pytest.raises(ConfigError, match=message):
        parse_grid(texts)


def test_grid_values_may_be_yaml_lists():
    assert parse_grid(["env.kwargs.x=[1, 2],[3, 4]", "a.b=1,2"]) == [("env.kwargs.x", ["[1, 2]", "[3, 4]"]),
                                                                     ("a.b", ["1", "2"])]


def test_without_ray_the_error_names_the_extra_and_nothing_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    out = tmp_path / "out"
    code = main(["sweep", str(CARTPOLE), "--grid", "plasticity.actor_lr=0.1", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert 'pip install -e ".[sweep]"' in err and "--workers 0" in err
    assert not out.exists()


def test_settings_sort_by_median_steps_to_solve_then_return():
    def row(setting, steps, ret):
        return {"setting": setting, "k": setting, "status": "done", "steps_to_solve": steps,
                "final_median_return": ret, "solved": 1, "agents": 2, "wall_s": 1.0}
    rows = [row("never", None, 400.0), row("never", None, 300.0), row("slow", 900, 10.0), row("slow", 700, 10.0),
            row("fast", 100, 0.0), row("fast", None, 0.0), row("fast", 200, 0.0), row("low", None, 5.0)]
    settings = sweep_settings(rows, ["k"])
    assert [s["setting"] for s in settings] == ["fast", "slow", "never", "low"]
    assert settings[0]["median_steps_to_solve"] == 200  # median of 100, 200 and never
    assert settings[1]["median_steps_to_solve"] == 800


def test_the_benchmark_quick_mode_prints_its_summary_line(capsys):
    bench = load_benchmark("sweep")
    assert bench.main(["--quick"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    m = re.fullmatch(r"summary: points=(\d+) runs=(\d+) wall_s=([\d.]+) best=(\S+) best_median_steps_to_solve=(-?\d+)",
                     lines[-1])
    assert m, lines[-1]
    assert m.group(1) == "12" and m.group(2) == "12"  # 3 learning rates x 4 seeds, each a run
    assert m.group(4) in {"plasticity.actor_lr=0.002", "plasticity.actor_lr=0.005", "plasticity.actor_lr=0.01"}
    assert m.group(5) == "-1"  # 40 steps: never solved
    assert any(line.startswith("setting") for line in lines)  # the table came before it


@pytest.mark.slow
def test_on_a_local_ray_the_points_equal_those_run_here(tmp_path):
    """Ray (one local CPU) runs the same points as --workers 0: the same results, seed for seed (~20 s: Ray starts)."""
    pytest.importorskip("ray")
    grid = ["plasticity.actor_lr=0.005,0.01"]
    here = run_sweep(CARTPOLE, grid, seeds=1, steps=40, out=tmp_path / "here", overrides=SMALL, workers=0,
                     echo=lambda line: None)
    on_ray = run_sweep(CARTPOLE, grid, seeds=1, steps=40, out=tmp_path / "ray", overrides=SMALL, workers=1,
                       echo=lambda line: None)
    assert on_ray["runs"] == 2 and on_ray["failed"] == 0
    keep = ("plasticity.actor_lr", "seed", "steps_to_solve", "final_median_return", "solved", "agents", "run_dir")
    assert [{k: r[k] for k in keep} for r in on_ray["rows"]] == [{k: r[k] for k in keep} for r in here["rows"]]
    for name in (r["run_dir"] for r in here["rows"]):
        assert (tmp_path / "ray" / name / "result.json").read_text().replace(str(tmp_path / "ray"), "") == \
               (tmp_path / "here" / name / "result.json").read_text().replace(str(tmp_path / "here"), "")


def test_the_cli_runs_a_sweep_and_prints_the_table(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["sweep", str(CARTPOLE), "--grid", "plasticity.actor_lr=0.005", "--workers", "0", "--out", str(out),
                 "--steps", "20", "--seeds", "2", "--set", *SMALL])
    printed = capsys.readouterr().out
    assert code == 0
    assert "[2/2] plasticity.actor_lr=0.005-seed1" in printed
    assert re.search(r"^plasticity\.actor_lr=0\.005 +2/2 +never ", printed, re.M), printed
    assert len(read_csv(out / SWEEP_CSV)) == 2


@pytest.mark.slow
def test_a_killed_sweep_process_continues_where_it_stopped(tmp_path):
    """A real SIGKILL of `spikegym sweep --workers 0` while its second point runs; the same command then
    skips the first point, resumes the second from its checkpoint and runs the third."""
    import os
    import signal
    import subprocess
    import time

    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "spikegym.training.cli", "sweep", str(CARTPOLE), "--grid",
           "plasticity.actor_lr=0.005,0.01,0.02", "--workers", "0", "--out", str(out), "--steps", "3000",
           "--set", *SMALL]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = out / "plasticity.actor_lr=0.01-seed0"
    deadline = time.time() + 120
    while not list((second / "checkpoints").glob("step_*")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (out / "plasticity.actor_lr=0.005-seed0" / "result.json").is_file()
    assert not (second / "result.json").exists(), "the kill came too late: the second point had finished"

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "[1/3] plasticity.actor_lr=0.005-seed0: already done" in done.stdout
    assert "[2/3] plasticity.actor_lr=0.01-seed0: resumed" in done.stdout
    rows = {r["run_dir"]: r for r in read_csv(out / SWEEP_CSV)}
    assert [rows[n]["resumed"] for n in sorted(rows)] == ["False", "True", "False"]
    assert all(r["status"] == "done" for r in rows.values())


@pytest.mark.slow
def test_an_address_without_a_cluster_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    code = main(["sweep", str(CARTPOLE), "--grid", "plasticity.actor_lr=0.005", "--address", "auto",
                 "--out", str(tmp_path / "out"), "--steps", "20"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot start or join the Ray cluster at auto" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_learning_curves_pool_the_agents_of_all_seeds_of_a_setting(tmp_path):
    """Median and quartiles over every agent of every seed; an agent's value is the mean of its recent episodes."""
    import json

    import numpy as np

    from spikegym.training.sweep_plot import setting_curves

    def fake_run(name, returns_per_agent):
        ckpt = tmp_path / name / "checkpoints" / "step_100"
        ckpt.mkdir(parents=True)
        (ckpt / "state.pt").write_bytes(b"")
        stats = {"steps": [[10 * (i + 1) for i in range(len(r))] for r in returns_per_agent],
                 "returns": returns_per_agent}
        (ckpt / "meta.json").write_text(json.dumps({"step": 100, "stats": stats}))
        return tmp_path / name

    a = fake_run("a-seed0", [[1.0] * 5, [2.0] * 5])
    b = fake_run("a-seed1", [[3.0] * 5, [4.0, 4.0, 4.0, 4.0, 8.0]])  # the last agent's mean moves to 4.8
    c = fake_run("b-seed0", [[9.0] * 3])
    steps, curves = setting_curves({"a": [a, b], "b": [c], "none": [tmp_path / "missing"]}, 100)
    assert set(curves) == {"a", "b"}  # a setting without any checkpoint has no curve
    end = steps.tolist().index(50)
    q25, q50, q75 = curves["a"][:, end]
    assert (q25, q50, q75) == pytest.approx(np.percentile([1, 2, 3, 4.8], [25, 50, 75]))
    assert np.isnan(curves["a"][1, 0])  # step 1: no episode has ended yet
    assert curves["b"][1, -1] == 9.0


def test_a_point_that_ran_all_its_steps_but_lost_its_result_is_reported_not_rerun(tmp_path, capsys):
    sweep(tmp_path, seeds=1, steps=20)
    lost = tmp_path / "plasticity.actor_lr=0.005-seed0"
    (lost / "result.json").unlink()  # as if killed between the last checkpoint and result.json
    result = sweep(tmp_path, seeds=1, steps=20)
    assert result["failed"] == 1 and result["runs"] == 0
    row = next(r for r in result["rows"] if r["run_dir"] == lost.name)
    assert row["status"] == "failed"
    code = main(["sweep", str(CARTPOLE), "--grid", *GRID, "--workers", "0", "--out", str(tmp_path), "--steps", "20",
                 "--set", *SMALL])
    assert code == 1  # a failed point: exit status 1, the others' results are written
    assert "remove the folder to run the point again" in capsys.readouterr().out
