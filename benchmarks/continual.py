"""Continual-learning benchmark: a population of spiking agents in a world whose task keeps changing.

    python benchmarks/continual.py --config configs/continual/cartpole_cycle.yaml [--agents 16]
                                   [--steps N] [--quick | --scale F] [--threads 1] [--set key=value ...]
                                   [--baseline ppo] [--scratch] [--run-dir DIR]

Runs the config's task schedule through the same :func:`spikegym.training.loop.train` the CLI uses
(its :class:`~spikegym.training.continual.ContinualTracker` writes ``continual.json`` and the
``task/`` / ``continual/`` TensorBoard scalars), prints one row per phase and ends with::

    summary: schedule=<name> switches=<n> phase_return_slope=<f> median_recovery_ratio=<f> forgetting=<f>

* ``phase_return_slope``: trend of each task's final return (mean of its last 10 episodes in a phase)
  over its visits, as a fraction of the task's level per visit; median over agents of the agent's
  mean over tasks. >= 0: no loss of plasticity. Target: >= 0 over >= 10 switches.
* ``median_recovery_ratio``: steps a revisit took to get back to 90 % of the level the task had at the
  end of its previous visit / steps its first visit took to reach 90 % of its own final level; median
  over agents and revisits (a revisit that never gets there counts as infinite). Target: <= 0.25.
* ``forgetting``: Continual World's forgetting, (end of the previous visit - start of the revisit) /
  the task's level, mean over revisits of the population median. Target: < 0.2.

``--quick`` (= ``--scale 0.25``) shortens every phase (and the run) by the factor, so the schedule keeps
its shape: for ``cartpole_cycle.yaml`` a 25k-step warm-up and 6.25k-step phases, 100k steps in all.

``--baseline ppo`` also trains Stable-Baselines3 PPO with rl-baselines3-zoo's hyperparameters on the same
schedule in the same process and prints its figures beside ours. PPO counts every transition of its
``n_envs`` parallel envs (as the zoo does) and each of its envs runs the schedule with every phase
divided by ``n_envs``, so PPO also gets one phase's length of transitions per phase: the same
experience per task as one of our agents. Its learning rate and clip range decay linearly to 0 over
the run (the zoo's schedule), so late phases are learned with little plasticity by design.

``--scratch`` measures forward transfer: for every task first met after the first phase, a fresh
population learns it alone for as long as its first visit lasted; forward transfer is the first visit's
normalised AUC against that one (Continual World).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from torch.utils.tensorboard import SummaryWriter

from spikegym.envs import TaskSchedule, make_env
from spikegym.training import tags as T
from spikegym.training.config import load_config
from spikegym.training.continual import ContinualTracker, continual_summary, normalized_auc
from spikegym.training.files import write_json
from spikegym.training.loop import train



def _learning_module():
    """benchmarks/learning.py (the zoo's PPO hyperparameters live there, in one place)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("spikegym_benchmarks_learning", Path(__file__).with_name("learning.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_learning = _learning_module()
ppo_hyperparameters, _schedule = _learning.ppo_hyperparameters, _learning._schedule

HEADLINE = ("switches", "phase_return_slope", "median_recovery_ratio", "forgetting")


def scaled_schedule(schedule: dict, factor: float) -> dict:
    """The schedule with every phase's ``steps`` multiplied by ``factor`` (at least 1 step)."""
    out = copy.deepcopy(dict(schedule))
    out["phases"] = [{**p, "steps": max(1, int(round(float(p["steps"]) * factor)))} for p in out["phases"]]
    return out


def _fmt(x, digits: int = 3, none: str = "nan") -> str:
    if x is None:
        return none
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    if isinstance(x, (int, np.integer)) or (isinstance(x, float) and x.is_integer() and abs(x) >= 1000):
        return str(int(x))
    return f"{x:.{digits}f}"


def _ratio_text(s: dict) -> str:
    # None with ratios means the median revisit never recovered (infinite)
    return _fmt(s.get("median_recovery_ratio"), none="inf" if s.get("recovery_ratio_count") else "nan")


def ratio_details(s: dict) -> str:
    return (f"recovery ratios over {s.get('recovery_ratio_count')} agent-revisits ({s.get('recovery_ratio_skipped')} "
            f"left out: the task's first visit was already at its level), never recovered "
            f"{_fmt(s.get('unrecovered_fraction'))}, at the level from the first episode {_fmt(s.get('instant_recovery_fraction'))}")


def _task_final(s: dict, task: str) -> float:
    """Median over a task's visits of the phase's final return (population median)."""
    vals = [p["final_return"] for p in s["phases"] if p["task"] == task and p.get("final_return") is not None]
    return float(np.median(vals)) if vals else float("nan")


def summary_line(name: str, s: dict, prefix: str = "summary") -> str:
    return (f"{prefix}: schedule={name} switches={s['switches']} "
            f"phase_return_slope={_fmt(s.get('phase_return_slope'), 4)} "
            f"median_recovery_ratio={_ratio_text(s)} forgetting={_fmt(s.get('forgetting'), 4)}")


def print_phases(s: dict) -> None:
    cols = ("phase", "task", "start", "end", "episodes", "mean_ret", "final_ret", "recovery", "recov_frac",
            "instant", "forgetting", "auc", "surprise")
    print("  " + " ".join(f"{c:>10}" for c in cols))
    for p in s["phases"]:
        vals = (p["index"], p["task"], p["start"], p["end"], p["episodes"], p["mean_return"], p.get("final_return"),
                p["recovery_steps"], p["recovered_fraction"], p.get("instant_fraction"), p["forgetting"], p["auc"],
                p.get("surprise"))
        print("  " + " ".join(f"{(v if isinstance(v, str) else _fmt(v, 2, '-')):>10}" for v in vals))


# --------------------------------------------------------------------------- ours


def run_spiking(args, config: Path, schedule: dict, steps: int) -> dict:
    overrides = [f"env.num_agents={args.agents}", f"run.seed={args.seed}", "run.progress=off",
                 f"run.checkpoint_every={10**12}", f"run.steps={steps}", f"env.schedule={json.dumps(schedule)}",
                 *args.set]
    if args.threads:
        overrides.append(f"run.threads={args.threads}")
    cfg = load_config(config, overrides)
    run_dir = Path(args.run_dir) if args.run_dir else Path(tempfile.mkdtemp(prefix="spikegym-continual-"))
    start = time.perf_counter()
    result = train(cfg, run_dir=run_dir, command_line=" ".join(sys.argv))
    result["wall_s"] = time.perf_counter() - start
    result["agent_steps_per_s"] = cfg.env.num_agents * steps / result["wall_s"]
    result["cfg"] = cfg
    result["summary"] = json.loads((run_dir / ContinualTracker.SUMMARY_FILE).read_text())
    return result


def from_run(run_dir, base, schedule: dict, steps: int) -> dict:
    """The figures of a finished run, recomputed from its ``continual_state.json`` (same schedule and steps)."""
    run_dir = Path(run_dir)
    cfg = load_config(run_dir / "config.yaml")
    tracker = ContinualTracker(schedule, cfg.env.num_agents, total_steps=steps, env_id=cfg.env.id,
                               surprise_window=None)
    if not tracker.load_state(run_dir, steps):
        sys.exit(f"continual.py: no {ContinualTracker.STATE_FILE} in {run_dir}")
    if tracker.step != steps:
        sys.exit(f"continual.py: {run_dir} holds {tracker.step} steps, not {steps}; pass the same --scale/--steps")
    summary = tracker.summary()
    old = json.loads((run_dir / ContinualTracker.SUMMARY_FILE).read_text())
    for key in ("plasticity", "plasticity_history"):  # the brain is gone; keep what the run measured
        if key in old:
            summary[key] = old[key]
    wall = json.loads((run_dir / "benchmark.json").read_text()).get("wall_s") if (run_dir / "benchmark.json").is_file() else None
    return {"summary": summary, "run_dir": str(run_dir), "cfg": cfg, "wall_s": wall or float("nan"),
            "agent_steps_per_s": cfg.env.num_agents * steps / wall if wall else float("nan")}


def scratch_aucs(args, config: Path, schedule: dict, summary: dict, run_dir: Path) -> dict[str, float]:
    """Median normalised AUC of a fresh population learning each later-met task alone."""
    out = {}
    sched = TaskSchedule.from_dict(schedule)
    first = {}
    for p in summary["phases"]:
        first.setdefault(p["task"], p)
    for task, p in first.items():
        if p["index"] == 0:
            continue  # the first phase *is* learning from scratch
        length = p["end"] - p["start"]
        phase = next(x for x in sched.phases if x.name == task)
        only = {"phases": [{"name": task, "steps": length, "changes": phase.to_dict()["changes"]}]}
        sub = copy.copy(args)
        sub.run_dir = str(run_dir / f"scratch-{task}")
        res = run_spiking(sub, config, only, length)
        ref = summary["tasks"][task]
        tr = res["summary"]
        aucs = []
        state = json.loads((Path(sub.run_dir) / ContinualTracker.STATE_FILE).read_text())
        for s, r in zip(state["ep_steps"], state["ep_returns"]):
            if s and ref["ref_max"] > ref["ref_min"]:
                aucs.append(normalized_auc(s, r, 0, length, ref_min=ref["ref_min"], ref_max=ref["ref_max"]))
        out[task] = float(np.median(aucs)) if aucs else float("nan")
        print(f"  from scratch: task {task}, {length} steps, {res['wall_s']:.0f} s, median AUC {out[task]:.3f} "
              f"(continual first visit {_fmt(p['auc'])}), final return {_fmt(tr['phases'][0]['final_return'], 1)}")
    return out


# --------------------------------------------------------------------------- PPO


def run_ppo(cfg, schedule: dict, steps: int, seed: int) -> dict:
    """Stable-Baselines3 PPO (zoo hyperparameters) on the schedule; the same continual summary as ours."""
    try:
        from stable_baselines3 import PPO
        from stable_baselines3.common.callbacks import BaseCallback
        from stable_baselines3.common.monitor import Monitor
        from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize
    except ImportError:
        sys.exit('continual.py: --baseline ppo needs stable-baselines3 (pip install -e ".[bench]")')
    import torch

    env_id = cfg.env.id
    hp = ppo_hyperparameters(env_id)
    n_envs, normalize = hp.pop("n_envs"), hp.pop("normalize", False)
    for key in ("learning_rate", "clip_range"):
        if key in hp:
            hp[key] = _schedule(hp[key])
    # each env's own clock counts its transitions; n_envs step together, so divide the phases by n_envs
    per_env = scaled_schedule(schedule, 1.0 / n_envs)
    per_env.setdefault("seed", cfg.run.seed)  # the same random draws as our run (make_vector_env's default)

    def make(i):
        return lambda: Monitor(make_env(env_id, kwargs=cfg.env.kwargs, schedule=per_env, stream=i,
                                        max_episode_steps=cfg.env.max_episode_steps))

    envs = DummyVecEnv([make(i) for i in range(n_envs)])
    if normalize:
        envs = VecNormalize(envs, gamma=hp.get("gamma", 0.99))

    class Watch(BaseCallback):
        def __init__(self):
            super().__init__()
            self.steps, self.returns, self.labels, self.entered = [], [], [], {0: 0}

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                task = int(info.get("task", 0))
                self.entered.setdefault(task, self.num_timesteps)
                if "episode" in info:
                    self.steps.append(self.num_timesteps)
                    self.returns.append(float(info["episode"]["r"]))
                    self.labels.append(task)
            return True

    torch.set_num_threads(1)
    watch = Watch()
    start = time.perf_counter()
    model = PPO("MlpPolicy", envs, seed=seed, verbose=0, device="cpu", **hp)
    model.learn(total_timesteps=steps, callback=watch)
    wall = time.perf_counter() - start
    spans = TaskSchedule.from_dict(schedule).spans(steps)  # PPO overshoots to a whole rollout; not counted
    s = continual_summary([np.asarray(watch.steps)], [np.asarray(watch.returns)], spans, env_id=env_id,
                          labels=[np.asarray(watch.labels, dtype=np.int64)],
                          origins=[[watch.entered.get(p) for p in range(len(spans))]])
    s["wall_s"], s["steps"], s["seed"] = wall, watch.num_timesteps, seed
    return s


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="a config with env.schedule (configs/continual/*.yaml)")
    p.add_argument("--agents", type=int, default=16)
    p.add_argument("--steps", type=lambda s: int(float(s)), default=None,
                   help="env steps per agent (default: the config's run.steps, times --scale)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every phase's length (and the run) by this")
    p.add_argument("--quick", action="store_true", help="--scale 0.25: the schedule's shape in a quarter of the steps")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--run-dir", default=None, help="keep the run folder here (default: a temp folder)")
    p.add_argument("--baseline", choices=["ppo"], default=None)
    p.add_argument("--ppo-seeds", type=int, default=1)
    p.add_argument("--scratch", action="store_true", help="measure forward transfer against from-scratch runs")
    p.add_argument("--from-run", default=None, metavar="DIR",
                   help="do not train: recompute the figures from a finished run folder (its continual_state.json)")
    args = p.parse_args(argv)
    if args.quick and args.scale == 1.0:
        args.scale = 0.25

    config = Path(args.config)
    base = load_config(config, list(args.set))
    if not base.env.schedule:
        sys.exit(f"continual.py: {config} has no env.schedule")
    name = config.stem
    schedule = scaled_schedule(base.env.schedule, args.scale)
    steps = args.steps or max(1, int(round(base.run.steps * args.scale)))
    sched = TaskSchedule.from_dict(schedule)
    spans = sched.spans(steps)
    print(f"schedule {name}: {len(spans)} phases ({len(spans) - 1} switches) in {steps} steps per agent, "
          f"scale {args.scale:g}: " + " ".join(f"{s.name}[{s.start}:{s.end}]" for s in spans[:6])
          + (" ..." if len(spans) > 6 else ""))

    res = from_run(args.from_run, base, schedule, steps) if args.from_run else run_spiking(args, config, schedule, steps)
    s = res["summary"]
    agents = res["cfg"].env.num_agents
    print(f"spiking agents: {base.env.id}, {agents} agents x {steps} steps, config {config}"
          + (f" (recomputed from {args.from_run})" if args.from_run else ""))
    print(f"  wall {res['wall_s']:.0f} s, {res['agent_steps_per_s']:.0f} agent-steps/s, run folder {res['run_dir']}")
    print_phases(s)
    h = s.get("plasticity_history") or []
    if h:
        print(f"  plasticity health (first -> last log): dormant fraction {h[0]['dormant_fraction']:.3f} -> "
              f"{h[-1]['dormant_fraction']:.3f}, |w| mean {h[0]['weight_abs_mean']:.3f} -> {h[-1]['weight_abs_mean']:.3f}, "
              f"|w| max {h[0]['weight_abs_max']:.2f} -> {h[-1]['weight_abs_max']:.2f}, rate spread "
              f"{h[0]['rate_std']:.3f} -> {h[-1]['rate_std']:.3f}")
    print("  tasks: " + ", ".join(f"{t} level {v['ref_max']:.1f} visits {v['visits']} slope {_fmt(v['slope'], 4)}"
                                   for t, v in s["tasks"].items()))
    print(f"  median recovery steps (revisits) {_fmt(s['median_recovery_steps'], 0)}, median learning steps "
          f"(first visits) {_fmt(s['median_learning_steps'], 0)}, relearning transfer {_fmt(s['relearning_transfer'])}")
    print("  " + ratio_details(s))
    bench = {"schedule": name, "config": str(config), "scale": args.scale, "steps": steps, "agents": agents,
             "wall_s": res["wall_s"], "spiking": {k: s.get(k) for k in (*HEADLINE, "revisits", "unrecovered_fraction")}}

    if args.scratch:
        scratch = scratch_aucs(args, config, schedule, s, Path(res["run_dir"]))
        tracker = ContinualTracker(sched, agents, env_id=base.env.id, scratch_auc=scratch)
        tracker.load_state(res["run_dir"], steps)
        ft = tracker.metrics().get("forward_transfer", {})
        print("  forward transfer (first visit vs from scratch): "
              + (", ".join(f"{t} {_fmt(v)}" for t, v in ft.items()) or "none (every task was met first)"))
        bench["spiking"]["forward_transfer"] = ft
        with SummaryWriter(str(res["run_dir"])) as writer:  # beside the run's own continual/ curves
            for t, v in ft.items():
                if v is not None:
                    writer.add_scalar(T.tag(T.CONTINUAL_FORWARD_TRANSFER, task=t), v, steps)

    if args.baseline == "ppo":
        print(f"PPO (Stable-Baselines3, rl-zoo hyperparameters) on the same schedule, {steps} transitions per seed:")
        runs = []
        for i in range(args.ppo_seeds):
            r = run_ppo(res["cfg"], schedule, steps, args.seed + i)
            runs.append(r)
            print(f"  seed {r['seed']}: wall {r['wall_s']:.0f} s, {r['steps'] / r['wall_s']:.0f} steps/s")
            print_phases(r)
            print("  " + ratio_details(r))
            print("  " + summary_line(name, r, prefix=f"ppo seed {r['seed']}"))
        med = {k: (float(np.median([r[k] if r.get(k) is not None else math.nan for r in runs]))
                   if k != "switches" else runs[0]["switches"]) for k in HEADLINE}
        med = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in med.items()}
        med["recovery_ratio_count"] = sum(r["recovery_ratio_count"] for r in runs)
        print(f"  {'':>22} {'spiking':>10} {'ppo':>10}   target")
        for k, target in zip(HEADLINE, ("", ">= 0", "<= 0.25", "< 0.2")):
            a = s.get(k) if k != "median_recovery_ratio" else _ratio_text(s)
            b = med.get(k) if k != "median_recovery_ratio" else _ratio_text(med)
            a = a if isinstance(a, str) else _fmt(a, 4)
            b = b if isinstance(b, str) else _fmt(b, 4)
            print(f"  {k:>22} {a:>10} {b:>10}   {target}")
        # the figures above are relative to each learner's own level of a task; the returns say what that level is
        for task in s["tasks"]:
            a = _task_final(s, task)
            b = float(np.median([_task_final(r, task) for r in runs]))
            print(f"  {'final return ' + task:>22} {_fmt(a, 1):>10} {_fmt(b, 1):>10}   (median over visits)")
        print(summary_line(name, med, prefix="ppo summary"))
        bench["ppo"] = {**med, "seeds": [{k: r.get(k) for k in (*HEADLINE, "wall_s", "seed")} for r in runs]}

    write_json(Path(res["run_dir"]) / "benchmark.json", bench)
    print(summary_line(name, s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
