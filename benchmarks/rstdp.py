"""Reward-modulated STDP with LIF neurons: each requirement of the rule off and on, in one table (issue 21).

    python benchmarks/rstdp.py [--env CartPole-v1] [--config configs/cartpole_rstdp.yaml] [--steps N]
                               [--agents 16] [--variants full uncentred ...] [--run-root DIR] [--threads 1]

Every variant is the config plus a few overrides (:data:`VARIANTS`), trained with the same seed and budget
through :func:`spikegym.training.loop.train` (as ``benchmarks/learning.py`` does). Frémaux, Sprekeler &
Gerstner (2010) name what R-STDP needs: a reward signal with zero mean given the state (the TD error vs the
raw reward against a running baseline), an eligibility with zero mean without reward (the window centred on
the post spikes' probability, or on their rate, vs plain STDP), postsynaptic variability the rule can
correlate with reward (noisy LIF vs the hard threshold), and an eligibility on the task's time scale (trace
length). ``node_perturbation`` is the rule without a timing window on the same noisy LIF neurons, and
``with_ltd`` adds the window's post-before-pre half. With ``--run-root`` each variant's run folder is kept
there and a finished variant is read back, not run again (a killed ablation continues where it stopped).
Ends with::

    summary: env=<id> variants=<n> agents=<n> steps=<n> full_solved=<k> full_median_steps_to_solve=<int or inf> best=<variant>
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: name -> (what it tests, overrides on top of the config)
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "full": ("the config: noisy LIF, causal 5 ms window centred on the spike probability, TD dopamine", []),
    "uncentred": ("plain STDP: the window on the spikes themselves", ["plasticity.stdp.center=none"]),
    "rate_centred": ("the window centred on the running rate", ["plasticity.stdp.center=rate"]),
    "no_noise": ("deterministic LIF (hard threshold), rate-centred",
                 ["brain.lif_escape_slope=0", "plasticity.stdp.center=rate"]),
    "raw_reward": ("dopamine = reward - running mean instead of the TD error", ["dopamine.mode=baseline"]),
    "short_trace": ("eligibility decay 0.8 per env step instead of 0.95", ["plasticity.actor_trace_decay=0.8"]),
    "long_trace": ("eligibility decay 0.99 per env step", ["plasticity.actor_trace_decay=0.99"]),
    "wide_window": ("a 20 ms potentiation window instead of 5 ms", ["plasticity.stdp.tau_plus=20"]),
    "with_ltd": ("the classic pair window: post-before-pre depression too (a- 1.05, 20 ms)",
                 ["plasticity.stdp.a_minus=1.05", "plasticity.stdp.tau_minus=20"]),
    "node_perturbation": ("no timing window: pre spike x (post spike - probability), same neurons",
                          ["plasticity.rule=node_perturbation", "plasticity.actor_lr=0.005"]),
}


def _learning():
    spec = importlib.util.spec_from_file_location("spikegym_benchmarks_learning", Path(__file__).with_name("learning.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_variant(learning, name: str, args) -> dict:
    """Train one variant, or read its finished run back from ``--run-root``."""
    run_dir = Path(args.run_root) / name if args.run_root else None
    done = run_dir / "result.json" if run_dir else None
    if done is not None and done.is_file():
        result = json.loads(done.read_text())
        if result.get("steps") == args.steps and result.get("agents") == args.agents:
            result.setdefault("agent_steps_per_s", math.nan)
            return result
    ns = argparse.Namespace(env=args.env, agents=args.agents, steps=args.steps, config=args.config,
                            set=[*VARIANTS[name][1], *args.set], seed=args.seed, threads=args.threads,
                            run_dir=str(run_dir) if run_dir else None, resume=False)
    return learning.run_spiking(ns)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--config", default=str(ROOT / "configs" / "cartpole_rstdp.yaml"))
    p.add_argument("--steps", type=lambda s: int(float(s)), default=150_000, help="env steps per agent")
    p.add_argument("--agents", type=int, default=16)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="overrides for every variant")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--run-root", default=None, help="keep each variant's run folder here; finished ones are reused")
    args = p.parse_args(argv)

    learning = _learning()
    rows = []
    for name in args.variants:
        res = run_variant(learning, name, args)
        rows.append((name, res))
        print(f"  done {name}: solved {res['solved']}/{res['agents']}, median steps to solve "
              f"{learning._fmt_steps(res['median_steps_to_solve'])}", flush=True)

    print(f"R-STDP ablation: {args.env}, {args.agents} agents x {args.steps} steps, seed {args.seed}, config {args.config}")
    print(f"  {'variant':<18} {'solved':>7} {'median_steps':>12} {'return_last100':>14} {'agent/s':>8}  what")
    for name, res in rows:
        print(f"  {name:<18} {res['solved']:>4}/{res['agents']:<2} {learning._fmt_steps(res['median_steps_to_solve']):>12} "
              f"{res['median_return_last100']:>14.1f} {res.get('agent_steps_per_s', math.nan):>8.0f}  {VARIANTS[name][0]}")

    def score(res):  # more agents solved, then sooner, then a higher return
        s = res["median_steps_to_solve"]
        return (-res["solved"], math.inf if s is None else s, -res["median_return_last100"])

    best = min(rows, key=lambda r: score(r[1]))[0]
    full = dict(rows).get("full")
    full_solved = full["solved"] if full else "na"
    full_steps = learning._fmt_steps(full["median_steps_to_solve"]) if full else "na"
    print(f"summary: env={args.env} variants={len(rows)} agents={args.agents} steps={args.steps} "
          f"full_solved={full_solved} full_median_steps_to_solve={full_steps} best={best}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
