"""benchmarks/lesion.py: a tiny run prints its table and the summary line; a second call loads the run."""

import re

from conftest import load_benchmark

SMALL = ["brain.substeps=4", "brain.motor_size=4", "brain.critic_size=4", "encoder.fields=4"]
SUMMARY = (r"summary: env=CartPole-v1 agents=2 trained_steps=300 intact=\S+ off_sensors=\S+/\S+ off_synapses=\S+/\S+ "
           r"off_motor=\S+/\S+ after_sensors=\S+/\S+ after_synapses=\S+/\S+ after_motor=\S+/\S+ cliffs=\S+")


def test_tiny_lesion_run_prints_the_table_and_summary(tmp_path, capsys):
    bench = load_benchmark("lesion")
    args = ["--steps", "300", "--agents", "2", "--episodes", "1", "--relearn", "50", "--fractions", "0", "1",
            "--run-dir", str(tmp_path / "run"), "--set", *SMALL]
    assert bench.main(args) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(SUMMARY, out[-1]), out[-1]
    rows = [line.split() for line in out if re.match(r"\s+(sensors|synapses|motor)\s", line)]
    assert [(r[0], float(r[1])) for r in rows] == [(k, f) for k in ("sensors", "synapses", "motor") for f in (0, 1)]
    assert out[0].startswith("trained 2 agents x 300 steps")
    assert bench.main(args) == 0  # the finished run is loaded, not trained again
    again = capsys.readouterr().out.strip().splitlines()
    assert not again[0].startswith("trained") and again[-1] == out[-1]
