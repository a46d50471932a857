"""Sweep benchmark: the CartPole grid of issue 18, three actor learning rates x four seeds, 16 agents each.

    python benchmarks/sweep.py [--workers N] [--address ADDR] [--out DIR] [--steps N] [--quick]

Runs :func:`spikegym.training.sweep.run_sweep` (what ``spikegym sweep`` runs) on ``configs/cartpole.yaml``
with ``--grid plasticity.actor_lr=0.002,0.005,0.01 --seeds 4``; each point is a separate run (packing
points into one batch needs per-agent settings in the engine, which do not exist yet). Prints the
sweep's table, best setting first, and ends with::

    summary: points=<n> runs=<k> wall_s=<f> best=<setting> best_median_steps_to_solve=<int>

(``runs``: points run now, not skipped as already done; a setting whose median agent never solved gives
``-1``). ``--quick``: 2 agents, tiny network, 40 steps per agent, run here one point after another
(``--workers 0``): a smoke test of the pipeline, not a measurement. Rerun with the same ``--out`` to
continue a stopped sweep.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

from spikegym.training.config import ConfigError
from spikegym.training.sweep import run_sweep

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "cartpole.yaml"
GRID = ["plasticity.actor_lr=0.002,0.005,0.01"]
SEEDS = 4
QUICK = ["env.num_agents=2", "brain.substeps=3", "encoder.fields=4", "brain.motor_size=4", "brain.critic_size=4",
         "run.log_every=20", "run.checkpoint_every=20"]


def summary_line(result: dict) -> str:
    best = result["settings"][0]
    steps = best["median_steps_to_solve"]
    steps_text = -1 if not math.isfinite(steps) else int(steps)
    return (f"summary: points={result['points']} runs={result['runs']} wall_s={result['wall_s']:.1f} "
            f"best={best['setting']} best_median_steps_to_solve={steps_text}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny agents and steps, no Ray: a smoke test")
    parser.add_argument("--steps", type=int, help="env steps per agent (default: the config's 200000)")
    parser.add_argument("--workers", type=int, help="points at a time on a local Ray (0: here, one after another)")
    parser.add_argument("--address", help="a running Ray cluster (ray start --head)")
    parser.add_argument("--out", help="sweep folder (default runs/sweep-cartpole-lr; --quick: a temporary one)")
    args = parser.parse_args(argv)

    overrides = QUICK if args.quick else []
    steps = args.steps or (40 if args.quick else None)
    workers = 0 if args.quick and args.workers is None else args.workers
    with tempfile.TemporaryDirectory(prefix="spikegym-sweep-") as tmp:
        out = args.out or (tmp if args.quick else str(ROOT / "runs" / "sweep-cartpole-lr"))
        try:
            result = run_sweep(CONFIG, GRID, seeds=SEEDS, steps=steps, out=out, overrides=overrides,
                               workers=workers, address=args.address)
        except ConfigError as err:
            print(f"sweep.py: error: {err}", file=sys.stderr)
            return 2
    print(summary_line(result))
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
