"""Graceful damage: the return of a trained population as a fraction of its sensors, synapses or motor neurons is
silenced, with learning off and after a short relearning period.

    python benchmarks/lesion.py [--config configs/cartpole.yaml] [--steps 1e5] [--agents 16] [--seed 0]
                                [--run-dir DIR] [--fractions 0 0.1 0.25 0.5 0.75] [--episodes 5]
                                [--relearn 5000] [--threads 1] [--quick]

Trains a population (or, with ``--run-dir`` holding a finished run, loads its newest checkpoint), then for each
kind of lesion (``agents/lesion.py``: sensor neurons, ``sensors->motor`` synapses, motor neurons) and each
fraction silences that fraction of every agent's units (each agent its own, drawn from ``--seed``) and measures,
median over agents of each agent's mean return:

* ``off``: ``--episodes`` episodes with learning off, right after the lesion;
* ``during``: the episodes that end while the lesioned agents learn for ``--relearn`` steps (learning on);
* ``after``: ``--episodes`` episodes with learning off after that relearning.

A curve "has a cliff" where one step of the fraction grid loses more than half of the intact return. Ends with::

    summary: env=<id> agents=<n> trained_steps=<n> intact=<r> off_sensors=<r>/<r>/... off_synapses=...
             off_motor=... after_sensors=... after_synapses=... after_motor=... cliffs=<kind:f0->f1,...|none>

(one line; the returns listed in the order of ``--fractions``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from spikegym.agents.lesion import KINDS, lesion
from spikegym.envs import reset_seeds
from spikegym.training.config import load_config
from spikegym.training.evaluate import load_run, run_episodes
from spikegym.training.loop import train

ROOT = Path(__file__).resolve().parents[1]


def relearn(agent, envs, steps: int, seed: int) -> np.ndarray:
    """``steps`` env steps with learning on; each agent's mean return over the episodes that ended (NaN: none)."""
    b = envs.num_envs
    returns: list[list[float]] = [[] for _ in range(b)]
    obs, _ = envs.reset(seed=reset_seeds(seed, b))
    reward, term, trunc = np.zeros(b), np.zeros(b, bool), np.zeros(b, bool)
    agent.reset()
    for _ in range(steps):
        action, _ = agent.step(obs, reward, term, trunc, learn=True)
        obs, reward, term, trunc, info = envs.step(action)
        mask = info.get("_episode")
        if mask is not None and np.any(mask):
            for i in np.flatnonzero(mask):
                returns[i].append(float(info["episode"]["r"][i]))
    return np.array([np.mean(r) if r else np.nan for r in returns])


def median(values: np.ndarray) -> float:
    return float(np.nanmedian(values)) if np.isfinite(values).any() else float("nan")


def cliffs(curve: list[float], fractions: list[float], intact: float) -> list[str]:
    """Steps of the grid that lose more than half of the intact return."""
    return [f"{fractions[i]:g}->{fractions[i + 1]:g}" for i in range(len(curve) - 1)
            if curve[i] - curve[i + 1] > 0.5 * abs(intact)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "cartpole.yaml"))
    p.add_argument("--steps", type=lambda s: int(float(s)), default=100_000, help="training steps per agent")
    p.add_argument("--agents", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run-dir", default=None, help="a finished run to load (or where to keep the one trained)")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.0, 0.1, 0.25, 0.5, 0.75])
    p.add_argument("--episodes", type=int, default=5, help="evaluation episodes per agent")
    p.add_argument("--relearn", type=lambda s: int(float(s)), default=5000, help="relearning steps per agent")
    p.add_argument("--kinds", nargs="+", choices=KINDS, default=["sensors", "synapses", "motor"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides for the training run")
    p.add_argument("--quick", action="store_true", help="a tiny run (2 agents, 2k steps) to check the pipeline")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.agents, args.episodes, args.relearn = 2000, 2, 2, 300
        args.fractions = [0.0, 0.5]

    start = time.perf_counter()
    run_dir = Path(args.run_dir) if args.run_dir else Path(tempfile.mkdtemp(prefix="spikegym-lesion-"))
    if not (run_dir / "result.json").is_file():
        cfg = load_config(args.config, [f"env.num_agents={args.agents}", f"run.seed={args.seed}",
                                        f"run.steps={args.steps}", f"run.threads={args.threads}", "run.progress=off",
                                        *args.set])
        res = train(cfg, run_dir=run_dir, command_line=" ".join(sys.argv))
        print(f"trained {res['agents']} agents x {res['steps']} steps on {res['env']}: {res['solved']} solved, "
              f"median return (last 100) {res['median_return_last100']:.1f}, {time.perf_counter() - start:.0f} s",
              flush=True)
    cfg, agent, envs, step = load_run(run_dir)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    intact = agent.state  # never changed: a backend copies a state it did not return before changing it
    spec = agent.spec
    print(f"population: {run_dir} at step {step}, {agent.B} agents; {args.episodes} evaluation episodes, "
          f"{args.relearn} relearning steps; median over agents of each agent's mean return")
    print(f"  {'kind':<9} {'fraction':>8} {'off':>8} {'during':>8} {'after':>8}")
    table: dict[str, dict[str, list[float]]] = {k: {"off": [], "during": [], "after": []} for k in args.kinds}
    cache: dict[str, tuple[float, float, float]] = {}
    for kind in args.kinds:
        for f in args.fractions:
            if f == 0 and "intact" in cache:  # no lesion: the same population for every kind
                off, during, after = cache["intact"]
            else:
                agent.state = lesion(spec, intact, kind, f, seed=args.seed)
                off = median(run_episodes(agent, envs, args.episodes, seed=args.seed + 1)[0].mean(1))
                during = median(relearn(agent, envs, args.relearn, seed=args.seed + 2))
                after = median(run_episodes(agent, envs, args.episodes, seed=args.seed + 1)[0].mean(1))
                if f == 0:
                    cache["intact"] = (off, during, after)
            for col, v in zip(("off", "during", "after"), (off, during, after)):
                table[kind][col].append(v)
            print(f"  {kind:<9} {f:>8g} {off:>8.1f} {during:>8.1f} {after:>8.1f}", flush=True)
    envs.close()
    base = cache.get("intact", (table[args.kinds[0]]["off"][0],))[0]
    found = [f"{kind}{'' if col == 'off' else '(after)'}:{c}" for kind in args.kinds for col in ("off", "after")
             for c in cliffs(table[kind][col], args.fractions, base)]
    curve = lambda kind, col: "/".join(f"{v:.0f}" for v in table[kind][col])  # noqa: E731
    print(f"  wall {time.perf_counter() - start:.0f} s")
    print(f"summary: env={cfg.env.id} agents={agent.B} trained_steps={step} intact={base:.1f} "
          + " ".join(f"off_{k}={curve(k, 'off')}" for k in args.kinds) + " "
          + " ".join(f"after_{k}={curve(k, 'after')}" for k in args.kinds)
          + f" cliffs={','.join(found) if found else 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
