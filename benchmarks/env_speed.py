#!/usr/bin/env python
"""Env-steps per second of the torch-native vector env against Gymnasium's vector env, random actions.

    python benchmarks/env_speed.py [--env CartPole-v1] [--batches 16 256 1024 4096] [--steps N]
                                   [--device cpu|cuda|auto] [--dtype float64|float32] [--threads T] [--quick]

For every batch size ``B`` it times ``--steps`` steps (default ``400000 / B``, at least 100) of:

* ``torch``        -- :class:`~spikegym.envs.torch_vector.TorchVectorEnv` with ``episode_stats=False``,
  actions drawn on the device with ``torch.randint``/``torch.rand``: the same work as Gymnasium's;
* ``torch+stats``  -- the same with ``info["episode"]`` (what the training loop gets; one device sync per step);
* ``gymnasium``    -- ``gymnasium.make_vec(env, num_envs=B, vectorization_mode="vector_entry_point")``
  (numpy; ``sync`` for envs without a vector entry point), actions from a numpy generator;
* ``gym+stats``    -- the same in ``gymnasium.wrappers.vector.RecordEpisodeStatistics``.

Each figure is ``B * steps / seconds``, the median of three timed segments after a warm-up. On CUDA the
device is synchronised before each clock read. torch runs with ``--threads`` threads (default 1: numpy's
vector env is single-threaded). The last line is::

    summary: env=CartPole-v1 batch=1024 torch_steps_per_s=<f> gymnasium_steps_per_s=<f>

(``torch`` and ``gymnasium`` above, at ``B = 1024`` or the nearest batch run).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import gymnasium as gym
import numpy as np
import torch

from spikegym.envs.torch_vector import TORCH_ENV_IDS, TorchVectorEnv


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_torch(env_id: str, B: int, steps: int, device: torch.device, dtype: torch.dtype, stats: bool) -> float:
    envs = TorchVectorEnv(env_id, B, device=device, dtype=dtype, episode_stats=stats)
    envs.reset(seed=0)
    gen = torch.Generator(device=device).manual_seed(0)
    if envs.discrete:
        n = int(envs.single_action_space.n)
        act = lambda: torch.randint(0, n, (B,), generator=gen, device=device)  # noqa: E731
    else:
        act = lambda: torch.rand(B, 1, generator=gen, device=device) * 4 - 2  # noqa: E731
    return _segments(lambda k: [envs.step(act()) for _ in range(k)], B, steps, device)


def time_gymnasium(env_id: str, B: int, steps: int, stats: bool) -> tuple[float, str]:
    mode = "vector_entry_point" if gym.spec(env_id).vector_entry_point is not None else "sync"
    envs = gym.make_vec(env_id, num_envs=B, vectorization_mode=mode)
    if stats:
        envs = gym.wrappers.vector.RecordEpisodeStatistics(envs)
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    space = envs.single_action_space
    if isinstance(space, gym.spaces.Discrete):
        act = lambda: rng.integers(0, space.n, B)  # noqa: E731
    else:
        act = lambda: rng.uniform(-2, 2, (B, 1)).astype(np.float32)  # noqa: E731
    return _segments(lambda k: [envs.step(act()) for _ in range(k)], B, steps, torch.device("cpu")), mode


def _segments(run, B: int, steps: int, device: torch.device, segments: int = 3) -> float:
    run(max(10, steps // 10))  # warm-up
    k = max(1, steps // segments)
    rates = []
    for _ in range(segments):
        _sync(device)
        t = time.perf_counter()
        run(k)
        _sync(device)
        rates.append(B * k / (time.perf_counter() - t))
    return statistics.median(rates)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="CartPole-v1", choices=TORCH_ENV_IDS)
    p.add_argument("--batches", type=int, nargs="+", default=[16, 256, 1024, 4096])
    p.add_argument("--steps", type=int, default=None, help="timed env steps per row (default 400000 / B, >= 100)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (CUDA when present)")
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--quick", action="store_true", help="a tenth of the steps")
    args = p.parse_args(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.exit(2, "env_speed.py: --device cuda but this torch has no CUDA (try --device cpu or auto)\n")
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    print(f"# {args.env}, random actions; torch {torch.__version__} on {device} ({args.dtype}, "
          f"{args.threads} thread(s)), gymnasium {gym.__version__}; load {os.getloadavg()[0]:.2f}")
    print(f"{'B':>6} {'torch/s':>12} {'torch+stats/s':>14} {'gymnasium/s':>12} {'gym+stats/s':>12} {'torch/gym':>9}")
    rows = {}
    for B in args.batches:
        steps = args.steps or max(100, 400_000 // B)
        steps = max(10, steps // 10) if args.quick else steps
        t, ts = (time_torch(args.env, B, steps, device, dtype, stats) for stats in (False, True))
        (g, mode), (gs, _) = (time_gymnasium(args.env, B, steps, stats) for stats in (False, True))
        rows[B] = (t, g)
        print(f"{B:>6} {t:>12.4g} {ts:>14.4g} {g:>12.4g} {gs:>12.4g} {t / g:>9.2f}", flush=True)
    print(f"# gymnasium vectorization: {mode}; load {os.getloadavg()[0]:.2f}")
    B = min(rows, key=lambda b: abs(b - 1024))
    print(f"summary: env={args.env} batch={B} torch_steps_per_s={rows[B][0]:.6g} "
          f"gymnasium_steps_per_s={rows[B][1]:.6g}")


if __name__ == "__main__":
    main()
