#!/usr/bin/env python
"""Speed of the whole online training loop: agent-steps per second, and where the time goes.

    python benchmarks/loop_speed.py --all-configs [--threads 1] [--batch 16] [--steps N] [--device cuda]
    python benchmarks/loop_speed.py [--config configs/cartpole.yaml] [--batches 16 64 256] [--threads 1 2]
                                    [--engine auto|reference|kernel] [--steps N] [--quick] [--set key=value ...]

It builds the real vector env and :class:`~spikegym.agents.agent.Agent` the way
:func:`spikegym.training.loop.train` does (same config, same seeds), warms up, then times ``--steps``
iterations of the loop's lines (logging and checkpoints left out: they run every few thousand steps)::

    action, info = agent.step(obs, reward, terminated, truncated)     # learn from the last step, act
    obs, reward, terminated, truncated, env_info = envs.step(action)
    stats.update(step, env_info)

**--all-configs** times every config under ``configs/`` twice, side by side in one run: with the torch
reference step and with the engine ``brain.engine: auto`` chooses, at ``B = --batch`` (16) on ``--threads``
(1) threads. Per config it prints the engine chosen, the whole loop's agent-steps per second with each step,
the speedup of the loop and of the agent step alone, and the env's share of the chosen loop's time, and ends::

    summary: configs=<n> fast=<k> min_speedup=<f> cartpole_agent_steps_per_s=<f> halfcheetah_agent_steps_per_s=<f>

``fast`` counts configs that run on a backend other than the reference; ``min_speedup`` is the smallest
agent-step speedup. Targets (issue 15): fast == configs; every speedup >= 3; CartPole >= 30,000 and
HalfCheetah >= 15,000 agent-steps/s at B = 16 on one thread.

**One config** (the default mode): a table over ``--batches`` and ``--threads`` with, per row, the loop's
agent-steps/s (median over ``--segments`` segments), the best segment, the agent step alone, ms per env step,
agent-steps per CPU second (the better figure under load), and episodes ended; the last line is::

    summary: env=CartPole-v1 batch=16 agent_steps_per_s=<float> target=30000

The machine's load average is printed before and after: compare figures taken under similar load, or better
in the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from spikegym.envs import make_vector_env, reset_seeds
from spikegym.training.config import load_config
from spikegym.training.loop import make_agent
from spikegym.training.stats import EpisodeStats
from spikegym.training.thresholds import solved_threshold

ROOT = Path(__file__).resolve().parents[1]
TARGET = 30_000


def build(config: Path, batch: int, seed: int, sets=(), engine: str | None = None, device: str = "cpu"):
    """``(cfg, envs, agent, stats)`` exactly as :func:`spikegym.training.loop.train` builds them."""
    overrides = [*sets, f"env.num_agents={batch}", f"run.seed={seed}", f"run.device={device}"]
    if engine:
        overrides.append(f"brain.engine={engine}")
    cfg = load_config(config, overrides)
    envs = make_vector_env(cfg.env.id, batch, cfg.run.seed, kwargs=cfg.env.kwargs, vectorization=cfg.env.vectorization,
                           max_episode_steps=cfg.env.max_episode_steps, schedule=cfg.env.schedule, device=device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # auto's "takes the reference" note: the table says which ran
        agent = make_agent(cfg, envs)
    return cfg, envs, agent, EpisodeStats(batch, solved_at=solved_threshold(cfg.env.id))


def time_loop(config: Path, batch: int, steps: int, warmup: int, seed: int, segments: int, sets=(),
              engine: str | None = None, device: str = "cpu") -> dict:
    """Seconds (wall, CPU, inside ``agent.step``) of ``steps`` loop iterations after ``warmup`` untimed
    ones, in ``segments`` equal segments (so a burst of load elsewhere on the machine shows as an outlier)."""
    cfg, envs, agent, stats = build(config, batch, seed, sets, engine, device)
    obs, _ = envs.reset(seed=reset_seeds(cfg.run.seed, batch))
    reward, terminated, truncated = np.zeros(batch), np.zeros(batch, bool), np.zeros(batch, bool)
    clock = time.perf_counter
    seg_len = max(1, steps // segments)
    bounds = {warmup + i * seg_len for i in range(segments + 1)}
    marks, in_agent, episodes = [], 0.0, 0
    for step in range(warmup + segments * seg_len + 1):
        if step in bounds:
            marks.append((clock(), time.process_time(), in_agent, episodes))
            if step == warmup + segments * seg_len:
                break
        a0 = clock()
        action, _ = agent.step(obs, reward, terminated, truncated)
        if device != "cpu":
            torch.cuda.synchronize()
        in_agent += clock() - a0
        obs, reward, terminated, truncated, info = envs.step(action)
        stats.update(step + 1, info)
        episodes += int(np.count_nonzero(np.asarray(terminated) | np.asarray(truncated)))
    envs.close()
    segs = [tuple(b - a for a, b in zip(m0, m1)) for m0, m1 in zip(marks, marks[1:])]
    spec = agent.spec
    return {"env": cfg.env.id, "seg_len": seg_len, "segments": segs, "n_in": spec.encoder.n_out, "substeps": spec.K,
            "motor": spec.brain.pops["motor"].size, "critic": spec.brain.pops["critic"].size,
            "engine": agent.backend.name}


def rates(r: dict, batch: int) -> dict:
    """Medians over the segments: the loop's and the agent step's agent-steps/s, and more."""
    n = batch * r["seg_len"]
    wall = sorted(n / s[0] for s in r["segments"])
    med = statistics.median
    return {"loop": med(wall), "best": wall[-1], "agent": med(n / s[2] for s in r["segments"]),
            "cpu_loop": med(n / s[1] for s in r["segments"]), "ms_per_step": 1000 * batch / med(wall),
            "env_share": med(1 - s[2] / s[0] for s in r["segments"]), "episodes": sum(s[3] for s in r["segments"])}


def all_configs(args) -> dict:
    configs = sorted(p for p in (ROOT / "configs").rglob("*.yaml"))
    torch.set_num_threads(args.threads[0])
    steps = args.steps or 400
    print(f"# B = {args.batch}, {args.threads[0]} thread(s), {steps} timed env steps per config and engine "
          f"({steps // 10} warm-up), device {args.device}")
    print(f"{'config':<42} {'engine':>9} {'reference/s':>11} {'chosen/s':>9} {'loop x':>7} {'step x':>7} "
          f"{'env share':>9}")
    rows = []
    for config in configs:
        name = str(config.relative_to(ROOT / "configs"))
        ref = time_loop(config, args.batch, max(100, steps // 4), 20, args.seed, 2, args.sets, "reference", args.device)
        fast = time_loop(config, args.batch, steps, max(20, steps // 10), args.seed, args.segments, args.sets, None,
                         args.device)
        r_ref, r_fast = rates(ref, args.batch), rates(fast, args.batch)
        row = {"config": name, "env": fast["env"], "engine": fast["engine"], "reference": r_ref["loop"],
               "chosen": r_fast["loop"], "loop_speedup": r_fast["loop"] / r_ref["loop"],
               "step_speedup": r_fast["agent"] / r_ref["agent"], "env_share": r_fast["env_share"]}
        rows.append(row)
        print(f"{name:<42} {row['engine']:>9} {row['reference']:>11.0f} {row['chosen']:>9.0f} "
              f"{row['loop_speedup']:>7.2f} {row['step_speedup']:>7.2f} {row['env_share']:>9.2f}", flush=True)
    print(f"# load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    first = lambda env: next((r["chosen"] for r in rows if r["config"] == env), float("nan"))  # noqa: E731
    fast_n = sum(r["engine"] != "reference" for r in rows)
    min_speedup = min(r["step_speedup"] for r in rows)
    print(f"summary: configs={len(rows)} fast={fast_n} min_speedup={min_speedup:.2f} "
          f"cartpole_agent_steps_per_s={first('cartpole.yaml'):.1f} "
          f"halfcheetah_agent_steps_per_s={first('mujoco/halfcheetah.yaml'):.1f}")
    return {"rows": rows}


def one_config(args) -> dict:
    batches = args.batches or ([16] if args.quick else [16, 64, 256])
    head = (f"{'B':>5} {'threads':>7} {'loop/s':>9} {'best':>9} {'agent/s':>9} {'ms/step':>8} "
            f"{'cpu loop/s':>10} {'episodes':>8}")
    results, env = [], None
    for b in batches:
        steps = args.steps or (400 if args.quick else max(200, 32000 // b))
        for t in args.threads:
            torch.set_num_threads(t)
            r = time_loop(args.config, b, steps, max(50, steps // 10), args.seed, args.segments, args.sets, args.engine,
                          args.device)
            env = r["env"]
            if not results:
                print(f"# network: {r['n_in']} inputs, {r['motor']} motor and {r['critic']} critic neurons, "
                      f"K = {r['substeps']} substeps" + (f"; overrides: {' '.join(args.sets)}" if args.sets else ""))
                print(f"# engine: {r['engine']}")
                print(head)
            row = {"batch": b, "threads": t, "engine": r["engine"], **rates(r, b)}
            results.append(row)
            print(f"{b:>5} {t:>7} {row['loop']:>9.0f} {row['best']:>9.0f} {row['agent']:>9.0f} "
                  f"{row['ms_per_step']:>8.3f} {row['cpu_loop']:>10.0f} {row['episodes']:>8}", flush=True)
    print(f"# load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    at16 = [r["loop"] for r in results if r["batch"] == 16]
    best = max(at16) if at16 else max(r["loop"] for r in results)
    batch = 16 if at16 else results[0]["batch"]
    print(f"summary: env={env} batch={batch} agent_steps_per_s={best:.1f} target={TARGET}")
    return {"rows": results, "summary": best}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--all-configs", action="store_true", help="every config under configs/, reference vs chosen")
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "cartpole.yaml")
    ap.add_argument("--batches", type=int, nargs="+", default=None, help="agents per run (default 16 64 256)")
    ap.add_argument("--batch", type=int, default=16, help="agents per run with --all-configs (default 16)")
    ap.add_argument("--steps", type=int, default=None,
                    help="timed env steps per row (default 32000 / B, at least 200; --quick 400; --all-configs 400)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1],
                    help="torch CPU threads to try, e.g. --threads 1 2 (default 1: with other jobs on the "
                         "machine, more threads than free cores make these small ops many times slower)")
    ap.add_argument("--engine", choices=["auto", "reference", "kernel"], default=None,
                    help="the agent step (default: the config's brain.engine)")
    ap.add_argument("--device", default="cpu", help="torch device of the agents (cuda: the reference on the GPU)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--segments", type=int, default=5, help="timed segments per row; medians are reported")
    ap.add_argument("--quick", action="store_true", help="B = 16 only, fewer steps")
    ap.add_argument("--set", dest="sets", nargs="*", default=[], metavar="KEY=VALUE",
                    help="config overrides, as for spikegym train (e.g. encoder.neurons_per_field=2)")
    args = ap.parse_args(argv)
    print(f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(f"# load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return all_configs(args) if args.all_configs else one_config(args)


if __name__ == "__main__":
    main()
