"""Few-shot learning: trials to criterion on a new cue-action pairing and on a reversal, after pre-training.

    python benchmarks/fewshot.py [--config configs/cue_response.yaml] [--agents 16] [--pretrain 600]
                                 [--max-trials 100] [--seed 0] [--threads 1] [--set KEY=VALUE ...]
                                 [--baseline ppo] [--ppo-seeds 8] [--quick]

The world is ``spikegym/CueResponse-v0`` (``envs/cue_response.py``): 6 cues, 4 actions, one trial per episode,
+1 for the paired action. Pre-training shows cues 0-3 with the pairing ``cue -> cue`` for ``--pretrain`` trials,
learning on. Then, each test from the same pre-trained agents, learning on:

* ``new``: only cue 4, never shown before, paired with action 2;
* ``reversal``: cues 0-3 with the pairing shifted by one (``cue -> cue + 1 mod 4``).

Trials to criterion: the trial at which 8 of the last 10 trials are correct for the first time (10 at best;
``>max`` where never within ``--max-trials``). The spiking agents' median over agents; with ``--baseline ppo``,
Stable-Baselines3 PPO (one env, ``--ppo-seeds`` seeds, updates every 16 trials) through the same phases and the
same count, median over seeds. Target: the median agent reaches criterion on a new pairing within 10 trials.
Ends with::

    summary: world=CueResponse agents=<n> pretrain=<n> pretrain_accuracy=<f> new_median_trials=<int|>max>
             reversal_median_trials=<...> [ppo_new_median_trials=<...> ppo_reversal_median_trials=<...>]
             target_new_within_10=<reached|not reached>
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from spikegym.envs import make_vector_env, reset_seeds
from spikegym.training.config import load_config
from spikegym.training.evaluate import make_agent

ROOT = Path(__file__).resolve().parents[1]
N_CUES, N_ACTIONS = 6, 4
PRETRAIN = dict(cues=[0, 1, 2, 3], pairing=[0, 1, 2, 3, 2, 0])
TESTS = {
    "new": dict(cues=[4], pairing=PRETRAIN["pairing"]),
    "reversal": dict(cues=[0, 1, 2, 3], pairing=[1, 2, 3, 0, 2, 0]),
}
WINDOW, HITS = 10, 8


def trials_to_criterion(correct: np.ndarray) -> float:
    """The 1-based trial at which ``HITS`` of the last ``WINDOW`` trials are correct for the first time; inf never."""
    c = np.concatenate([[0], np.cumsum(np.asarray(correct, dtype=np.int64))])
    for t in range(WINDOW, len(correct) + 1):
        if c[t] - c[t - WINDOW] >= HITS:
            return float(t)
    return math.inf


def _fmt(x: float, cap: int) -> str:
    return f">{cap}" if x == math.inf else str(int(x))


# --------------------------------------------------------------------------- spiking agents


def run_trials(agent, envs, trials: int, state: dict) -> np.ndarray:
    """``trials`` trials with learning on; ``[B, trials]`` bool, correct or not. ``state`` carries the loop's
    ``obs, reward, term, trunc`` between calls (every env is at a trial's start when this is called)."""
    out = np.zeros((agent.B, trials), bool)
    for t in range(trials):
        action, _ = agent.step(state["obs"], state["reward"], state["term"], state["trunc"])  # answer the cue
        obs, reward, term, trunc, _ = envs.step(action)
        out[:, t] = reward > 0
        action, _ = agent.step(obs, reward, term, trunc)  # learn from the trial (the reset step's action is ignored)
        state["obs"], state["reward"], state["term"], state["trunc"], _ = envs.step(action)
    return out


def spiking(args) -> dict:
    cfg = load_config(args.config, [f"env.num_agents={args.agents}", f"run.seed={args.seed}",
                                    f"run.threads={args.threads}", *args.set])
    torch.set_num_threads(args.threads)
    envs = make_vector_env(cfg.env.id, cfg.env.num_agents, args.seed, kwargs=cfg.env.kwargs, vectorization="sync")
    agent = make_agent(cfg, envs)

    def start(task: dict) -> dict:
        envs.unwrapped.call("set_task", **task)
        obs, _ = envs.reset(seed=reset_seeds(args.seed, envs.num_envs))
        b = envs.num_envs
        return {"obs": obs, "reward": np.zeros(b), "term": np.zeros(b, bool), "trunc": np.zeros(b, bool)}

    t0 = time.perf_counter()
    pre = run_trials(agent, envs, args.pretrain, start(PRETRAIN))
    trained = {k: v.clone() for k, v in agent.state_dict().items()}
    out = {"pretrain_accuracy": float(pre[:, -50:].mean()), "pretrain_curve": pre.mean(0)}
    for name, task in TESTS.items():
        agent.load_state_dict(trained)
        agent.reset()
        correct = run_trials(agent, envs, args.max_trials, start(task))
        out[name] = [trials_to_criterion(c) for c in correct]
        out[f"{name}_first10"] = correct[:, :10].mean(1)
    envs.close()
    out["wall_s"] = time.perf_counter() - t0
    return out


# --------------------------------------------------------------------------- PPO


def ppo(args, seed: int) -> dict:
    try:
        import gymnasium as gym
        from stable_baselines3 import PPO
        from stable_baselines3.common.callbacks import BaseCallback
    except ImportError:
        sys.exit('fewshot.py: --baseline ppo needs stable-baselines3 (pip install -e ".[bench]")')
    cfg = load_config(args.config, [])
    env = gym.make(cfg.env.id, **cfg.env.kwargs)

    class Trials(BaseCallback):
        def __init__(self):
            super().__init__()
            self.correct: list[bool] = []

        def _on_step(self) -> bool:
            self.correct.extend(bool(r > 0) for r in self.locals["rewards"])
            return True

    torch.set_num_threads(1)
    env.unwrapped.set_task(**PRETRAIN)
    model = PPO("MlpPolicy", env, seed=seed, verbose=0, device="cpu", n_steps=16, batch_size=16, n_epochs=10)
    watch = Trials()
    model.learn(total_timesteps=args.pretrain, callback=watch)
    out = {"pretrain_accuracy": float(np.mean(watch.correct[-50:]))}
    trained = {k: v.clone() for k, v in model.policy.state_dict().items()}
    for name, task in TESTS.items():
        model.policy.load_state_dict(trained)
        env.unwrapped.set_task(**task)
        watch = Trials()
        model.learn(total_timesteps=args.max_trials, callback=watch, reset_num_timesteps=True)  # resets the env
        out[name] = trials_to_criterion(np.array(watch.correct[:args.max_trials]))
    env.close()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "cue_response.yaml"))
    p.add_argument("--agents", type=int, default=16)
    p.add_argument("--pretrain", type=int, default=600, help="pre-training trials")
    p.add_argument("--max-trials", type=int, default=100, help="trials of each test")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--baseline", choices=["ppo"], default=None)
    p.add_argument("--ppo-seeds", type=int, default=8)
    p.add_argument("--quick", action="store_true", help="4 agents, 60 pre-training trials, 30-trial tests")
    args = p.parse_args(argv)
    if args.quick:
        args.agents, args.pretrain, args.max_trials, args.ppo_seeds = 4, 60, 30, 2

    res = spiking(args)
    cap = args.max_trials
    print(f"spiking agents: {args.agents} agents, {args.pretrain} pre-training trials (accuracy of the last 50: "
          f"{res['pretrain_accuracy']:.2f}), {cap}-trial tests, wall {res['wall_s']:.0f} s")
    curve = res["pretrain_curve"]
    blocks = [f"{curve[i:i + 50].mean():.2f}" for i in range(0, len(curve), 50)]
    print(f"  pre-training accuracy per 50 trials: {' '.join(blocks)}")
    print(f"  {'agent':>5} {'new':>6} {'new_first10':>11} {'reversal':>8} {'rev_first10':>11}")
    for i in range(args.agents):
        print(f"  {i:>5} {_fmt(res['new'][i], cap):>6} {res['new_first10'][i]:>11.1f} "
              f"{_fmt(res['reversal'][i], cap):>8} {res['reversal_first10'][i]:>11.1f}")
    med = {name: float(np.median(res[name])) for name in TESTS}
    print("  median trials to criterion: " + ", ".join(f"{n} {_fmt(v, cap)}" for n, v in med.items()))
    line = (f"summary: world=CueResponse agents={args.agents} pretrain={args.pretrain} "
            f"pretrain_accuracy={res['pretrain_accuracy']:.2f} new_median_trials={_fmt(med['new'], cap)} "
            f"reversal_median_trials={_fmt(med['reversal'], cap)}")
    if args.baseline == "ppo":
        runs = [ppo(args, args.seed + i) for i in range(args.ppo_seeds)]
        print(f"PPO (Stable-Baselines3, n_steps 16, batch 16, 10 epochs), {args.ppo_seeds} seeds:")
        print(f"  {'seed':>5} {'pre_acc':>7} {'new':>6} {'reversal':>8}")
        for i, r in enumerate(runs):
            print(f"  {args.seed + i:>5} {r['pretrain_accuracy']:>7.2f} {_fmt(r['new'], cap):>6} "
                  f"{_fmt(r['reversal'], cap):>8}")
        ppo_med = {name: float(np.median([r[name] for r in runs])) for name in TESTS}
        line += (f" ppo_new_median_trials={_fmt(ppo_med['new'], cap)} "
                 f"ppo_reversal_median_trials={_fmt(ppo_med['reversal'], cap)}")
    line += f" target_new_within_10={'reached' if med['new'] <= 10 else 'not reached'}"
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
