"""Learning benchmark: does a population of spiking agents solve the task, and how fast?

    python benchmarks/learning.py --env CartPole-v1 [--agents 16] [--steps N] [--quick]
                                  [--config FILE] [--set key=value ...] [--baseline ppo]

Trains ``--agents`` independent agents online with the env's config (``configs/<name>.yaml``) through
the same :func:`spikegym.training.loop.train` the CLI uses, prints each agent's steps to solve
(Gymnasium's threshold over the mean of its last 100 episodes) and ends with::

    summary: env=<id> agents=<n> solved=<k> median_steps_to_solve=<int or inf> median_return_last100=<float>
             spikes_per_decision=<float> synaptic_events_per_decision=<float>

(one line; energy: spikes of every population and synaptic events per decision, mean over the run's decisions
and over agents; the per-agent table has them per agent, ``training/energy.py``).

``--baseline ppo`` also trains Stable-Baselines3 PPO with rl-baselines3-zoo's hyperparameters on the
same env, for the same number of env steps as one of our agents, in the same process (``--ppo-seeds``
seeds, one after the other) and prints its steps to solve and wall-clock beside ours. PPO's steps
count every transition of its ``n_envs`` parallel envs, as the zoo does; ours count one agent's
transitions (each agent has its own world and its own weights).
Needs ``pip install -e ".[bench]"`` for the baseline.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from spikegym.training.config import load_config
from spikegym.training.loop import train

ROOT = Path(__file__).resolve().parents[1]

CONFIGS = {
    "CartPole-v1": "cartpole.yaml",
    "Acrobot-v1": "acrobot.yaml",
    "MountainCar-v0": "mountaincar.yaml",
    "Pendulum-v1": "pendulum.yaml",
    "InvertedPendulum-v5": "mujoco/inverted_pendulum.yaml",
    "InvertedDoublePendulum-v5": "mujoco/inverted_double_pendulum.yaml",
    "Hopper-v5": "mujoco/hopper.yaml",
    "HalfCheetah-v5": "mujoco/halfcheetah.yaml",
    "Ant-v5": "mujoco/ant.yaml",
}

# rl-baselines3-zoo hyperparams/ppo.yml (v2.x), the entries for these envs.
PPO_ZOO = {
    "CartPole-v1": dict(n_envs=8, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
                        ent_coef=0.0, learning_rate=("lin", 1e-3), clip_range=("lin", 0.2)),
    "Acrobot-v1": dict(n_envs=16, n_steps=256, gae_lambda=0.94, gamma=0.99, n_epochs=4, ent_coef=0.0,
                       normalize=True),
    "MountainCar-v0": dict(n_envs=16, n_steps=16, gae_lambda=0.98, gamma=0.99, n_epochs=4, ent_coef=0.0,
                           normalize=True),
    "Pendulum-v1": dict(n_envs=4, n_steps=1024, gae_lambda=0.95, gamma=0.9, n_epochs=10, ent_coef=0.0,
                        learning_rate=1e-3, clip_range=0.2, use_sde=True, sde_sample_freq=4),
}
# The zoo's MuJoCo default (normalised observations and rewards, one env).
PPO_MUJOCO = dict(n_envs=1, n_steps=512, batch_size=64, gae_lambda=0.9, gamma=0.99, n_epochs=20, ent_coef=0.0,
                  learning_rate=("const", 3e-4), clip_range=0.2, normalize=True)


def ppo_hyperparameters(env_id: str) -> dict:
    """The zoo's PPO hyperparameters for ``env_id`` (a fresh dict): its own entry, else the MuJoCo default."""
    return dict(PPO_ZOO.get(env_id, PPO_MUJOCO))


def _fmt_steps(s) -> str:
    return "inf" if s is None or s == math.inf else str(int(s))


def run_spiking(args) -> dict:
    config = Path(args.config) if args.config else ROOT / "configs" / CONFIGS.get(args.env, "")
    if not config.is_file():
        sys.exit(f"learning.py: no config for {args.env}; pass --config FILE")
    overrides = [f"env.num_agents={args.agents}", f"run.seed={args.seed}", "run.progress=off",
                 f"run.checkpoint_every={10**12}", *args.set]
    if args.steps:
        overrides.append(f"run.steps={args.steps}")
    if args.threads:
        overrides.append(f"run.threads={args.threads}")
    cfg = load_config(config, overrides)
    if cfg.env.id != args.env:
        sys.exit(f"learning.py: {config} is for {cfg.env.id}, not {args.env}")
    run_dir = Path(args.run_dir) if args.run_dir else Path(tempfile.mkdtemp(prefix="spikegym-learning-"))
    first = 0
    if args.resume:  # a finished run's last checkpoint is its final step: go on from there to --steps
        from spikegym.training.checkpoint import checkpoint_step, latest_checkpoint

        ckpt = latest_checkpoint(run_dir) if args.run_dir else None
        if ckpt is None:
            sys.exit(f"learning.py: --resume needs --run-dir with a checkpoint ({args.run_dir} has none)")
        first = checkpoint_step(ckpt)
    start = time.perf_counter()
    result = train(cfg, run_dir=run_dir, resume=args.resume, command_line=" ".join(sys.argv))
    result["wall_s"] = time.perf_counter() - start
    result["agent_steps_per_s"] = cfg.env.num_agents * (cfg.run.steps - first) / result["wall_s"]
    result["config"] = str(config)
    return result


def _schedule(spec):
    if isinstance(spec, tuple):
        kind, value = spec
        return (lambda p: p * value) if kind == "lin" else value
    return spec


def run_ppo(env_id: str, steps: int, seed: int, threshold: float) -> dict:
    """Stable-Baselines3 PPO with the zoo's hyperparameters; steps to reach ``threshold``."""
    try:
        from stable_baselines3 import PPO
        from stable_baselines3.common.callbacks import BaseCallback
        from stable_baselines3.common.env_util import make_vec_env
        from stable_baselines3.common.vec_env import VecNormalize
    except ImportError:
        sys.exit('learning.py: --baseline ppo needs stable-baselines3 (pip install -e ".[bench]")')
    import torch

    hp = ppo_hyperparameters(env_id)
    n_envs, normalize = hp.pop("n_envs"), hp.pop("normalize", False)
    for key in ("learning_rate", "clip_range"):
        if key in hp:
            hp[key] = _schedule(hp[key])
    envs = make_vec_env(env_id, n_envs=n_envs, seed=seed)
    if normalize:
        envs = VecNormalize(envs, gamma=hp.get("gamma", 0.99))

    class Solved(BaseCallback):
        def __init__(self):
            super().__init__()
            self.returns, self.solved_at = [], None

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    self.returns.append(info["episode"]["r"])
                    if self.solved_at is None and len(self.returns) >= 100 and np.mean(self.returns[-100:]) >= threshold:
                        self.solved_at = self.num_timesteps
            return True

    torch.set_num_threads(1)
    watch = Solved()
    start = time.perf_counter()
    model = PPO("MlpPolicy", envs, seed=seed, verbose=0, device="cpu", **hp)
    model.learn(total_timesteps=steps, callback=watch)
    wall = time.perf_counter() - start
    last = float(np.mean(watch.returns[-100:])) if watch.returns else float("nan")
    return {"seed": seed, "solved_at": watch.solved_at, "return_last100": last, "wall_s": wall, "fps": steps / wall}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--agents", type=int, default=16)
    p.add_argument("--steps", type=lambda s: int(float(s)), default=None, help="env steps per agent (default: config)")
    p.add_argument("--quick", action="store_true", help="a short run (20k steps) to check the pipeline")
    p.add_argument("--config", default=None, help="config file (default configs/<env>.yaml)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--run-dir", default=None, help="keep the run folder here (default: a temp folder)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --run-dir (same settings) up to --steps; the summary covers the whole run")
    p.add_argument("--baseline", choices=["ppo"], default=None)
    p.add_argument("--ppo-seeds", type=int, default=3)
    args = p.parse_args(argv)
    if args.quick and not args.steps:
        args.steps = 20_000

    res = run_spiking(args)
    threshold = res["solved_threshold"]
    print(f"spiking agents: {args.env}, {res['agents']} agents x {res['steps']} steps, config {res['config']}")
    print(f"  wall {res['wall_s']:.0f} s, {res['agent_steps_per_s']:.0f} agent-steps/s, threshold {threshold}")
    energy = res["energy"]
    print(f"  {'agent':>5} {'steps_to_solve':>14} {'return_last100':>14} {'episodes':>8} {'spikes/dec':>10} "
          f"{'events/dec':>10}")
    for i, (s, r, n, sp, ev) in enumerate(zip(res["steps_to_solve"], res["mean_return_last100_per_agent"],
                                              res["episodes_per_agent"], energy["spikes_per_decision_per_agent"],
                                              energy["synaptic_events_per_decision_per_agent"])):
        print(f"  {i:>5} {_fmt_steps(s):>14} {r:>14.1f} {n:>8} {sp:>10.1f} {ev:>10.0f}")
    pops = [p for p in energy["spikes_per_decision"] if p != "total"]
    print("  energy per decision, mean over agents: " + ", ".join(
        f"{p} {energy['spikes_per_decision'][p]:.1f} spikes / {energy['synaptic_events_per_decision'][p]:.0f} events"
        for p in pops))

    if args.baseline == "ppo":
        budget = res["steps"]
        print(f"PPO (Stable-Baselines3, rl-zoo hyperparameters), {budget} env steps per seed:")
        print(f"  {'seed':>5} {'steps_to_solve':>14} {'return_last100':>14} {'wall_s':>8} {'fps':>8}")
        runs = [run_ppo(args.env, budget, args.seed + i, threshold if threshold is not None else math.inf)
                for i in range(args.ppo_seeds)]
        for r in runs:
            print(f"  {r['seed']:>5} {_fmt_steps(r['solved_at']):>14} {r['return_last100']:>14.1f} "
                  f"{r['wall_s']:>8.0f} {r['fps']:>8.0f}")
        ppo_steps = statistics.median([r["solved_at"] if r["solved_at"] is not None else math.inf for r in runs])
        print(f"  PPO median steps to solve {_fmt_steps(ppo_steps)}, wall {statistics.median(r['wall_s'] for r in runs):.0f} s "
              f"per seed; spiking median {_fmt_steps(res['median_steps_to_solve'])}, wall {res['wall_s']:.0f} s "
              f"for all {res['agents']} agents")

    print(f"summary: env={args.env} agents={res['agents']} solved={res['solved']} "
          f"median_steps_to_solve={_fmt_steps(res['median_steps_to_solve'])} "
          f"median_return_last100={res['median_return_last100']:.1f} "
          f"spikes_per_decision={energy['spikes_per_decision']['total']:.1f} "
          f"synaptic_events_per_decision={energy['synaptic_events_per_decision']['total']:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
