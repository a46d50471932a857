"""Curiosity benchmark: the same population trained twice, with the novelty bonus on and off.

    python benchmarks/curiosity.py --env MountainCar-v0 [--agents 16] [--steps N] [--threads 1]
                                   [--config FILE] [--set key=value ...] [--only curious|plain] [--parallel]

For MountainCar-v0 it first prints the mean return of two hand-written policies, for scale (the
solved line, -110, asks for about as good as the better of them).

Both runs use the env's config (``configs/<name>.yaml``), the same seed, the same agents and the same
budget of env steps per agent, through :func:`spikegym.training.loop.train`; the only difference is
``novelty.enabled`` (``--set`` overrides apply to both). ``--parallel`` trains the two at once in two
processes (same results, about half the wall-clock on a machine with two free cores). For each run it
prints a short learning curve (population median of each agent's mean return over its last 100
episodes), each agent's figures, and ends with::

    summary: env=<id> curious_median_return=<f> plain_median_return=<f> curious_goal_rate=<f> plain_goal_rate=<f>

*Median return*: the population median of each agent's mean return over its last 100 episodes.
*Goal rate*: the fraction of the last 100 episodes (of every agent, pooled) that reached the goal. For
envs whose goal ends the episode (MountainCar, Acrobot) that is an episode that terminated before the
time limit, i.e. a return above ``-limit`` on MountainCar-v0; for envs where ending is failure
(CartPole, ...) it is an episode that lasted to the time limit.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from spikegym.training.config import load_config
from spikegym.training.loop import train
from spikegym.training.thresholds import solved_threshold

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"MountainCar-v0": "mountaincar.yaml", "CartPole-v1": "cartpole.yaml", "Acrobot-v1": "acrobot.yaml",
           "Pendulum-v1": "pendulum.yaml"}
# Envs whose episode ends early when the goal is reached (success = terminated before the time limit).
GOAL_TERMINATES = {"MountainCar-v0", "Acrobot-v1", "MountainCarContinuous-v0"}


def time_limit(cfg) -> int:
    if cfg.env.max_episode_steps:
        return int(cfg.env.max_episode_steps)
    import gymnasium

    return int(gymnasium.spec(cfg.env.id).max_episode_steps)


def goal_flags(lengths, limit: int, terminates: bool) -> np.ndarray:
    """Per episode: reached the goal (``terminates``: ended before the limit; else: lasted to it)."""
    lengths = np.asarray(lengths)
    return lengths < limit if terminates else lengths >= limit


def run_one(name: str, args, config: Path, enabled: bool) -> dict:
    overrides = [f"env.num_agents={args.agents}", f"run.seed={args.seed}", "run.progress=off",
                 f"run.checkpoint_every={10**12}", *args.set, f"novelty.enabled={str(enabled).lower()}"]
    if args.steps:
        overrides.append(f"run.steps={args.steps}")
    if args.threads:
        overrides.append(f"run.threads={args.threads}")
    cfg = load_config(config, overrides)
    if cfg.env.id != args.env:
        sys.exit(f"curiosity.py: {config} is for {cfg.env.id}, not {args.env}")
    limit, terminates = time_limit(cfg), cfg.env.id in GOAL_TERMINATES
    first_goal = [None] * cfg.env.num_agents
    curve, seen = [], {}
    every = max(1, cfg.run.steps // args.curve_points)

    def watch(step, agent, stats):
        seen["stats"] = stats
        for b, lens in enumerate(stats.lengths):
            if first_goal[b] is None and lens and goal_flags(lens[-1:], limit, terminates)[0]:
                first_goal[b] = stats.steps[b][-1]
        if step % every == 0:
            rate = _goal_rate(stats.lengths, limit, terminates)
            curve.append((step, stats.recent_median(), rate))
            print(f"  [{name}] step {step:>8}  median_return_last100 {stats.recent_median():8.1f}  "
                  f"goal_rate {rate:.3f}  ({time.perf_counter() - start:.0f} s)", flush=True)

    run_dir = Path(args.run_dir) / name if args.run_dir else Path(tempfile.mkdtemp(prefix=f"spikegym-curiosity-{name}-"))
    start = time.perf_counter()
    res = train(cfg, run_dir=run_dir, command_line=" ".join(sys.argv), callback=watch)
    res["wall_s"] = time.perf_counter() - start
    res["first_goal"] = first_goal
    res["curve"] = curve
    lengths = seen["stats"].lengths
    res["goal_rate"] = _goal_rate(lengths, limit, terminates)
    res["goal_rate_per_agent"] = [float(goal_flags(l[-100:], limit, terminates).mean()) if l else float("nan")
                                  for l in lengths]
    return res


# Hand-written policies that put a population's return in context (observation -> action).
REFERENCE_POLICIES = {
    "MountainCar-v0": {
        # push the way the car rolls (at rest: right)
        "push with velocity": lambda o: 2 if o[1] >= 0 else 0,
        # the same, but the first push (at rest) away from the nearer hill: -110 needs this much
        "push with velocity, first push by start position": lambda o: (2 if o[1] > 0 else 0) if o[1] != 0
        else (0 if o[0] > -0.5 else 2),
    },
}


def reference_returns(env_id: str, episodes: int = 500) -> dict[str, float]:
    """Mean return of each hand-written policy of ``env_id`` over ``episodes`` episodes (seeds 0..episodes-1)."""
    import gymnasium

    out = {}
    for name, policy in REFERENCE_POLICIES.get(env_id, {}).items():
        env, total = gymnasium.make(env_id), 0.0
        for seed in range(episodes):
            obs, _ = env.reset(seed=seed)
            done = False
            while not done:
                obs, r, term, trunc, _ = env.step(policy(obs))
                total += float(r)
                done = term or trunc
        env.close()
        out[name] = total / episodes
    return out


def _goal_rate(lengths, limit, terminates) -> float:
    flags = [goal_flags(l[-100:], limit, terminates) for l in lengths if l]
    return float(np.concatenate(flags).mean()) if flags else float("nan")


def _fmt(s) -> str:
    return "-" if s is None or s == math.inf else str(int(s))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="MountainCar-v0")
    p.add_argument("--agents", type=int, default=16)
    p.add_argument("--steps", type=lambda s: int(float(s)), default=None, help="env steps per agent (default: config)")
    p.add_argument("--config", default=None, help="config file (default configs/<env>.yaml)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides for both runs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--only", choices=["curious", "plain"], default=None, help="run one of the two (tuning)")
    p.add_argument("--curve-points", type=int, default=10, help="learning-curve lines per run")
    p.add_argument("--run-dir", default=None, help="keep the run folders here (default: temp folders)")
    p.add_argument("--parallel", action="store_true",
                   help="train the two populations at once, in two processes (two free cores: half the wall-clock)")
    args = p.parse_args(argv)

    config = Path(args.config) if args.config else ROOT / "configs" / CONFIGS.get(args.env, "")
    if not config.is_file():
        sys.exit(f"curiosity.py: no config for {args.env}; pass --config FILE")
    for name, ret in reference_returns(args.env).items():
        print(f"reference: {name}: mean return {ret:.1f} (500 episodes)")
    todo = [(name, enabled) for name, enabled in (("curious", True), ("plain", False)) if args.only in (None, name)]
    parallel = args.parallel and len(todo) > 1
    runs, done = {}, {}
    if parallel:  # each process prints its own progress lines, tagged [curious] / [plain]
        for name, enabled in todo:
            print(f"{name}: {args.env}, novelty.enabled={str(enabled).lower()}, config {config}", flush=True)
        with ProcessPoolExecutor(len(todo), mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {name: pool.submit(run_one, name, args, config, enabled) for name, enabled in todo}
            done = {name: f.result() for name, f in futures.items()}
    for name, enabled in todo:
        if parallel:
            print(f"{name}:", flush=True)
        else:
            print(f"{name}: {args.env}, novelty.enabled={str(enabled).lower()}, config {config}", flush=True)
        runs[name] = res = done[name] if parallel else run_one(name, args, config, enabled)
        print(f"  {res['agents']} agents x {res['steps']} steps, wall {res['wall_s']:.0f} s, "
              f"{res['agents'] * res['steps'] / res['wall_s']:.0f} agent-steps/s, threshold {solved_threshold(args.env)}")
        print(f"  {'agent':>5} {'return_last100':>14} {'goal_rate':>9} {'first_goal':>10} {'steps_to_solve':>14} {'episodes':>8}")
        for i in range(res["agents"]):
            print(f"  {i:>5} {res['mean_return_last100_per_agent'][i]:>14.1f} {res['goal_rate_per_agent'][i]:>9.2f} "
                  f"{_fmt(res['first_goal'][i]):>10} {_fmt(res['steps_to_solve'][i]):>14} {res['episodes_per_agent'][i]:>8}")
        firsts = [s if s is not None else math.inf for s in res["first_goal"]]
        print(f"  {name}: median_return_last100={res['median_return_last100']:.1f} goal_rate={res['goal_rate']:.3f} "
              f"solved={res['solved']} median_steps_to_solve={_fmt(res['median_steps_to_solve'])} "
              f"median_first_goal={_fmt(float(np.median(firsts)))} agents_reaching_goal={sum(f < math.inf for f in firsts)} "
              f"spikes_per_decision={res['energy']['spikes_per_decision']['total']:.1f} "
              f"synaptic_events_per_decision={res['energy']['synaptic_events_per_decision']['total']:.0f}",
              flush=True)

    def fig(name, key):
        return f"{runs[name][key]:.3f}" if name in runs else "nan"

    print(f"summary: env={args.env} curious_median_return={fig('curious', 'median_return_last100')} "
          f"plain_median_return={fig('plain', 'median_return_last100')} "
          f"curious_goal_rate={fig('curious', 'goal_rate')} plain_goal_rate={fig('plain', 'goal_rate')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
