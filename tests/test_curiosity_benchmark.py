"""benchmarks/curiosity.py: the hand-written reference policies it prints for scale; --parallel."""

import subprocess
import sys
from pathlib import Path

from conftest import load_benchmark


def test_mountaincar_reference_policies_reach_the_flag_and_the_first_push_matters():
    bench = load_benchmark("curiosity")
    ref = bench.reference_returns("MountainCar-v0", episodes=20)
    plain, first_push = ref["push with velocity"], ref["push with velocity, first push by start position"]
    # both reach the flag in every episode (a return of -200 is a timeout), and choosing the first push by
    # the start position saves steps
    assert -200 < plain < first_push < -100
    assert bench.reference_returns("CartPole-v1") == {}


def test_parallel_runs_give_the_sequential_figures():
    # as a user runs it: the workers must import the script by its path
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "curiosity.py"
    argv = [sys.executable, str(script), "--env", "MountainCar-v0", "--agents", "2", "--steps", "600", "--threads", "1",
            "--curve-points", "1", "--set", "novelty.beta=0.5"]

    def figures(extra):
        out = subprocess.run(argv + extra, capture_output=True, text=True, timeout=300, check=True).stdout
        lines = [l for l in out.splitlines() if l.startswith(("summary:", "  curious:", "  plain:"))]
        assert len(lines) == 3
        return lines

    assert figures(["--parallel"]) == figures([])
