"""Energy benchmark: what sparsity costs. The same population trained plain and with a homeostatic rate target.

    python benchmarks/energy.py [--config configs/cartpole.yaml] [--steps 1e5] [--agents 16] [--seed 0]
                                [--target 0.25 0.05] [--eta 0.01] [--threads 1] [--quick]

Trains the population with the same seeds and budget: plain, and with threshold homeostasis pulling every
motor neuron's firing probability per substep to each ``--target`` (``brain.homeostasis``: the option that
rewards sparsity; plain escape motor neurons fire at about 0.5 per substep, their noise is the exploration). Prints one table (spikes and synaptic events per decision per population, solved agents, median
return of the last 100 episodes) and ends with::

    summary: env=<id> steps=<n> agents=<n> plain_spikes_per_decision=<f> plain_median_return=<f>
             target<t>_spikes_per_decision=<f> target<t>_motor_spikes_ratio=<f> target<t>_median_return=<f> ...

(one line, a triple per target). Spikes and events are means over the whole run (training), mean over agents.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from spikegym.training.config import load_config
from spikegym.training.loop import train

ROOT = Path(__file__).resolve().parents[1]
POPS = ("sensors", "motor", "critic")


def run(config: Path, overrides: list[str]) -> dict:
    cfg = load_config(config, overrides)
    with tempfile.TemporaryDirectory(prefix="spikegym-energy-") as d:
        return train(cfg, run_dir=Path(d) / "run")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "cartpole.yaml"))
    p.add_argument("--steps", type=lambda s: int(float(s)), default=100_000)
    p.add_argument("--agents", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--target", type=float, nargs="+", default=[0.25, 0.05],
                   help="homeostatic targets: spike probability per substep")
    p.add_argument("--eta", type=float, default=0.01, help="homeostasis rate (brain.homeostasis.eta)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="2k steps, 2 agents: a check of the pipeline")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides for both runs")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.agents = 2000, 2
    base = [f"env.num_agents={args.agents}", f"run.seed={args.seed}", f"run.steps={args.steps}",
            f"run.threads={args.threads}", "run.progress=off", f"run.checkpoint_every={10**12}", *args.set]
    variants = {"plain": base}
    for t in args.target:
        variants[f"homeostasis target {t:g}"] = base + [
            "brain.homeostasis.enabled=true", f"brain.homeostasis.target_rate={t}",
            f"brain.homeostasis.eta={args.eta}", "brain.homeostasis.mode=threshold"]
    results = {name: run(Path(args.config), ov) for name, ov in variants.items()}
    env = next(iter(results.values()))["env"]
    print(f"{env}: {args.agents} agents x {args.steps} steps, seed {args.seed}; per decision, mean over agents")
    head = " ".join(f"{'spk ' + p:>12}" for p in POPS) + " " + " ".join(f"{'evt ' + p:>12}" for p in POPS)
    print(f"  {'variant':<26} {head} {'spikes':>9} {'events':>10} {'solved':>7} {'median_ret':>10}")
    for name, r in results.items():
        e = r["energy"]
        s, ev = e["spikes_per_decision"], e["synaptic_events_per_decision"]
        cells = " ".join(f"{s[p]:>12.1f}" for p in POPS) + " " + " ".join(f"{ev[p]:>12.0f}" for p in POPS)
        print(f"  {name:<26} {cells} {s['total']:>9.1f} {ev['total']:>10.0f} {r['solved']:>4}/{r['agents']:<2} "
              f"{r['median_return_last100']:>10.1f}")
    plain = results["plain"]
    ps = plain["energy"]["spikes_per_decision"]
    line = (f"summary: env={env} steps={args.steps} agents={args.agents} plain_spikes_per_decision={ps['total']:.1f} "
            f"plain_median_return={plain['median_return_last100']:.1f}")
    for t, r in zip(args.target, list(results.values())[1:]):
        ss = r["energy"]["spikes_per_decision"]
        line += (f" target{t:g}_spikes_per_decision={ss['total']:.1f}"
                 f" target{t:g}_motor_spikes_ratio={ss['motor'] / max(ps['motor'], 1e-12):.3f}"
                 f" target{t:g}_median_return={r['median_return_last100']:.1f}")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
