#!/usr/bin/env python
"""Speed of the whole online training loop: agent-steps per second, and where the time goes.

    python benchmarks/loop_speed.py [--env CartPole-v1] [--config configs/cartpole.yaml]
                                    [--batches 16 64 256] [--steps N] [--threads T [T ...]] [--quick]
                                    [--set key=value ...]

For every batch size ``B`` (independent agents, one world each) and torch thread count, it builds the
real vector env and :class:`~spikegym.agents.agent.Agent` the way :func:`spikegym.training.loop.train`
does (same config, same seeds), warms up, then times ``--steps`` iterations of the loop's three lines::

    action = agent.step(obs, reward, terminated, truncated)      # learn from the last step, act
    obs, reward, terminated, truncated, info = envs.step(action)
    stats.update(step, info)

(logging and checkpoints left out: they run every few thousand steps). The timed steps are cut into
``--segments`` equal segments; each figure is the median over them. It prints, per row:

* ``loop/s``     -- agent-steps per second of the whole loop (``B * steps / wall seconds``);
* ``best``       -- the fastest segment's ``loop/s``;
* ``agent/s``    -- the same counting only the time spent inside ``agent.step``;
* ``ms/step``    -- wall milliseconds per environment step (all ``B`` agents) of the whole loop;
* ``cpu loop/s`` -- ``B * steps / CPU seconds of this process``: with other jobs on the machine the wall
  figures fall with the share of the CPU this process gets, this one much less (it still suffers from
  caches shared with the other jobs), so it is the better figure to compare runs taken under load;
* ``episodes``   -- episodes that ended in the timed steps (resets cost time: early, short episodes are slower).

The machine's load (``os.getloadavg``) is printed before and after: compare figures taken under similar
load, or better in the same run. The last line is::

    summary: env=CartPole-v1 batch=16 agent_steps_per_s=<float> target=30000

with the whole-loop figure (``loop/s``, a median) at ``B = 16``, the best over the thread counts tried.
Each row times ``--steps`` env steps (default ``32000 / B``, at least 200) after ``steps / 10`` (at least
50) warm-up steps. Target (issue 3): 30,000 agent-steps/s at ``B = 16`` on 2 CPU cores with
``configs/cartpole.yaml``. That config's agent step runs as one numba kernel (agents/fastpath.py; the
second comment line says which step was timed), which runs the agents in parallel with ``--threads 2``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from spikegym.envs import make_vector_env, reset_seeds
from spikegym.training.config import load_config
from spikegym.training.loop import make_agent
from spikegym.training.thresholds import solved_threshold
from spikegym.training.stats import EpisodeStats

ROOT = Path(__file__).resolve().parents[1]
TARGET = 30_000


def build(config: Path, env_id: str | None, batch: int, seed: int, sets=()):
    """``(cfg, envs, agent, stats)`` exactly as :func:`spikegym.training.loop.train` builds them."""
    overrides = [*sets, f"env.num_agents={batch}", f"run.seed={seed}"]
    if env_id:
        overrides.append(f"env.id={env_id}")
    cfg = load_config(config, overrides)
    envs = make_vector_env(cfg.env.id, batch, cfg.run.seed, kwargs=cfg.env.kwargs, vectorization=cfg.env.vectorization,
                           max_episode_steps=cfg.env.max_episode_steps, schedule=cfg.env.schedule)
    agent = make_agent(cfg, envs)
    stats = EpisodeStats(batch, solved_at=solved_threshold(cfg.env.id))
    return cfg, envs, agent, stats


def time_loop(config: Path, env_id: str | None, batch: int, steps: int, warmup: int, seed: int,
              segments: int, sets=()) -> dict:
    """Seconds (wall, CPU, inside ``agent.step``) of ``steps`` loop iterations after ``warmup`` untimed
    ones, in ``segments`` equal segments (so a burst of load elsewhere on the machine shows as an outlier)."""
    cfg, envs, agent, stats = build(config, env_id, batch, seed, sets)
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
        action = agent.step(obs, reward, terminated, truncated, global_step=step)
        in_agent += clock() - a0
        obs, reward, terminated, truncated, info = envs.step(action)
        stats.update(step + 1, info)
        episodes += int(np.count_nonzero(terminated | truncated))
    envs.close()
    segs = [tuple(b - a for a, b in zip(m0, m1)) for m0, m1 in zip(marks, marks[1:])]
    return {"env": cfg.env.id, "seg_len": seg_len, "segments": segs, "n_in": agent.encoder.n_out,
            "substeps": agent.K, "motor": agent.brain.pops["motor"].size, "critic": agent.brain.pops["critic"].size,
            "fast_path": getattr(agent.brain, "_ff", None) is not None, "kernels": agent.fast is not None}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--env", default=None, help="env id (default: the config's)")
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "cartpole.yaml")
    ap.add_argument("--batches", type=int, nargs="+", default=None, help="agents per run (default 16 64 256)")
    ap.add_argument("--steps", type=int, default=None,
                    help="timed env steps per row (default 32000 / B, at least 200; --quick 400)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1],
                    help="torch CPU threads to try, e.g. --threads 1 2 (default 1: with other jobs on the "
                         "machine, more threads than free cores make these small ops many times slower)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--segments", type=int, default=5, help="timed segments per row; medians are reported")
    ap.add_argument("--quick", action="store_true", help="B = 16 only, fewer steps")
    ap.add_argument("--set", dest="sets", nargs="*", default=[], metavar="KEY=VALUE",
                    help="config overrides, as for spikegym train (e.g. encoder.neurons_per_field=2)")
    args = ap.parse_args(argv)

    batches = args.batches or ([16] if args.quick else [16, 64, 256])
    cores = os.cpu_count() or 1
    print(f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, {cores} CPUs, "
          f"config {args.config}")
    print(f"# load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    head = (f"{'B':>5} {'threads':>7} {'loop/s':>9} {'best':>9} {'agent/s':>9} {'ms/step':>8} "
            f"{'cpu loop/s':>10} {'episodes':>8}")
    results, env = [], None
    for b in batches:
        steps = args.steps or (400 if args.quick else max(200, 32000 // b))
        for t in args.threads:
            torch.set_num_threads(t)
            r = time_loop(args.config, args.env, b, steps, max(50, steps // 10), args.seed, args.segments, args.sets)
            env, n = r["env"], b * r["seg_len"]
            if not results:
                print(f"# network: {r['n_in']} inputs, {r['motor']} motor and {r['critic']} critic neurons, "
                      f"K = {r['substeps']} substeps" + (f"; overrides: {' '.join(args.sets)}" if args.sets else ""))
                print("# agent step: " + ("numba kernels (agents/fastpath.py; agents in parallel on more than one "
                                          "thread)" if r["kernels"] else "torch operations (run.kernels=torch, or "
                                          "the agent needs what the kernels leave out)"))
                print(head)
            wall = sorted(n / s[0] for s in r["segments"])
            agent = sorted(n / s[2] for s in r["segments"])
            cpu = sorted(n / s[1] for s in r["segments"])
            med = lambda v: statistics.median(v)
            row = {"batch": b, "threads": t, "loop": med(wall), "best": wall[-1], "agent": med(agent),
                   "ms_per_step": 1000 * b / med(wall), "cpu_loop": med(cpu),
                   "episodes": sum(s[3] for s in r["segments"]), "fast_path": r["fast_path"]}
            results.append(row)
            print(f"{b:>5} {t:>7} {row['loop']:>9.0f} {row['best']:>9.0f} {row['agent']:>9.0f} "
                  f"{row['ms_per_step']:>8.3f} {row['cpu_loop']:>10.0f} {row['episodes']:>8}", flush=True)
    print(f"# load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if not all(r["fast_path"] for r in results):
        print("# note: this config does not take the brain's feed-forward fast path (see brains/network.py)")
    at16 = [r["loop"] for r in results if r["batch"] == 16]
    best = max(at16) if at16 else max(r["loop"] for r in results)
    batch = 16 if at16 else results[0]["batch"]
    print(f"summary: env={env} batch={batch} agent_steps_per_s={best:.1f} target={TARGET}")
    return {"rows": results, "summary": best}


if __name__ == "__main__":
    main()
