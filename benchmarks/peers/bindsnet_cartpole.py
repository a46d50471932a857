#!/usr/bin/env python
"""The closest peer on our task: BindsNET's MSTDPET (reward-modulated STDP with eligibility trace) on CartPole-v1.

    python benchmarks/peers/bindsnet_cartpole.py [--agents 4] [--steps 50000] [--reward baseline]
                                                 [--nu 0.01] [--tc-e 25] [--threads 1] [--json FILE]

Runs inside the BindsNET venv (benchmarks/peers/README.md); it does not import spikegym. Each agent is its
own BindsNET ``Network`` (batch 1) built as a BindsNET user would, with BindsNET's API only:
``Input(240) --Connection(update_rule=MSTDPET, wmin=0, wmax=1)--> LIFNodes(40)`` (BindsNET's default LIF:
rest -65 mV, threshold -52 mV, tau 100 ms, refractory 5 ms), driven by ``network.run(inputs, time=20,
reward=r)`` once per env step (dt = 1 ms). It mirrors configs/cartpole_rstdp.yaml's sensing and decision:

- the observation is coded by Gaussian receptive fields (15 per dimension over x [-2.4, 2.4], v [-2, 2],
  angle [-0.21, 0.21], angular velocity [-2.5, 2.5], width = spacing, 4 neurons per field) into Bernoulli
  spikes with probability 0.9 x the field's value per 1-ms step, for 20 steps;
- the 40 LIF neurons are two populations of 20 (one per action); the action is the population with more
  spikes in the window, ties broken at random;
- the reward of an env step reaches MSTDPET during the next window (as BindsNET's EnvironmentPipeline
  does: ``Network.run`` takes one reward for the whole call); a failure's reward is delivered in one more
  20-ms window with silent input before the LIF state is reset.

Rewards (``--reward``), no critic (BindsNET has none): ``alive`` = +1 per step alive, -1 on failure;
``baseline`` = that reward minus its running mean (decay ``--baseline-decay`` per env step).
Prints one row per agent and ends with::

    summary: peer=bindsnet rule=MSTDPET env=CartPole-v1 agents=<n> steps=<n> solved=<k> median_return_last100=<f> env_steps_per_s=<f>
"""

import argparse
import importlib.util
import json
import math
import os
import statistics
import time
import warnings

import numpy as np
import torch

# PyPI's torchvision wheel is a CUDA build; next to a CPU torch its _C.so does not load and
# `import bindsnet` (which imports torchvision) dies on "operator torchvision::nms does not exist".
# Only then, define the two op schemas torchvision's meta registrations need (as shared/peers does).
_TV_STUB = None


def _torchvision_workaround():
    global _TV_STUB
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return
    try:
        torch.ops.load_library(os.path.join(os.path.dirname(spec.origin), "_C.so"))
    except Exception:
        _TV_STUB = torch.library.Library("torchvision", "DEF")
        _TV_STUB.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _TV_STUB.define("qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor")


_torchvision_workaround()
warnings.filterwarnings("ignore")

import gymnasium as gym  # noqa: E402
from bindsnet.learning import MSTDPET  # noqa: E402
from bindsnet.network import Network  # noqa: E402
from bindsnet.network.monitors import Monitor  # noqa: E402
from bindsnet.network.nodes import Input, LIFNodes  # noqa: E402
from bindsnet.network.topology import Connection  # noqa: E402

LOW = np.array([-2.4, -2.0, -0.21, -2.5])
HIGH = np.array([2.4, 2.0, 0.21, 2.5])
FIELDS, COPIES, MAX_PROB = 15, 4, 0.9
SUBSTEPS, POP = 20, 20
N_IN, N_OUT = LOW.size * FIELDS * COPIES, 2 * POP
THRESHOLD, WINDOW = 475.0, 100


def field_probs(obs):
    """Spike probability per input neuron for one observation: ``[4] -> [N_IN]`` (dimension-major, copies last)."""
    spacing = (HIGH - LOW) / (FIELDS - 1)
    centres = LOW[:, None] + spacing[:, None] * np.arange(FIELDS)  # [4, F]
    x = np.clip(obs, LOW, HIGH)
    u = (x[:, None] - centres) / spacing[:, None]
    p = MAX_PROB * np.exp(-0.5 * u * u)  # [4, F]
    return torch.as_tensor(np.repeat(p.reshape(-1), COPIES), dtype=torch.float32)


def build(args, seed):
    """One agent: a batch-1 BindsNET network, its plastic connection and the output monitor."""
    torch.manual_seed(seed)
    net = Network(dt=1.0, batch_size=1)
    inp, out = Input(n=N_IN), LIFNodes(n=N_OUT)
    # ~36 input spikes per ms; mean w = w0/2 gives ~1.4 mV/ms against the 13 mV to threshold,
    # so each output neuron fires a spike or two per 20-ms window before learning.
    w = torch.rand(N_IN, N_OUT) * args.w0
    conn = Connection(source=inp, target=out, w=w, update_rule=MSTDPET, nu=args.nu, wmin=0.0, wmax=1.0,
                      tc_e_trace=args.tc_e)
    net.add_layer(inp, name="X")
    net.add_layer(out, name="A")
    net.add_connection(conn, source="X", target="A")
    mon = Monitor(out, state_vars=["s"], time=SUBSTEPS)
    net.add_monitor(mon, name="A")
    return net, conn, mon


def window(net, mon, spikes, reward):
    """Run one 20-ms window with ``reward`` applied at every ms; returns the output spike counts ``[N_OUT]``."""
    net.run(inputs={"X": spikes}, time=SUBSTEPS, reward=reward)
    counts = mon.get("s").float().sum(0).reshape(-1)
    mon.reset_state_variables()
    return counts


def run_agent(args, index):
    seed = args.seed * 1000 + index
    net, conn, mon = build(args, seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=seed)
    silent = torch.zeros(SUBSTEPS, 1, N_IN, dtype=torch.bool)
    returns, solved_at, ep_return, pending, baseline = [], None, 0.0, 0.0, 0.0
    w_start = conn.w.clone()
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        probs = field_probs(obs)
        spikes = (torch.rand(SUBSTEPS, 1, N_IN, generator=gen) < probs).bool()
        counts = window(net, mon, spikes, pending)
        left, right = float(counts[:POP].sum()), float(counts[POP:].sum())
        action = int(rng.integers(2)) if left == right else int(right > left)
        obs, r_env, term, trunc, _ = env.step(action)
        ep_return += r_env
        r = -1.0 if term else 1.0
        if args.reward == "baseline":
            baseline += (1.0 - args.baseline_decay) * (r - baseline)
            r -= baseline
        pending = r
        if term or trunc:
            if term:  # deliver the failure now: the next episode's first window would dilute it
                window(net, mon, silent, pending)
            pending = 0.0
            net.reset_state_variables()
            returns.append(ep_return)
            ep_return = 0.0
            if solved_at is None and len(returns) >= WINDOW and np.mean(returns[-WINDOW:]) >= THRESHOLD:
                solved_at = step
            obs, _ = env.reset()
    wall = time.perf_counter() - t0
    last = float(np.mean(returns[-WINDOW:])) if returns else float("nan")
    return {"agent": index, "seed": seed, "episodes": len(returns), "return_last100": last,
            "steps_to_solve": solved_at, "wall_s": wall, "env_steps_per_s": args.steps / wall,
            "w_mean": float(conn.w.mean()), "w_change": float((conn.w - w_start).abs().mean())}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=4)
    ap.add_argument("--steps", type=lambda s: int(float(s)), default=50_000, help="env steps per agent")
    ap.add_argument("--reward", choices=["alive", "baseline"], default="baseline")
    ap.add_argument("--baseline-decay", type=float, default=0.99, help="running-mean decay per env step")
    ap.add_argument("--nu", type=float, default=1e-2, help="MSTDPET learning rate")
    ap.add_argument("--tc-e", type=float, default=25.0, help="MSTDPET eligibility-trace time constant (ms)")
    ap.add_argument("--w0", type=float, default=0.08, help="initial weights uniform in [0, w0]")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"bindsnet MSTDPET CartPole-v1: reward={args.reward} nu={args.nu} tc_e_trace={args.tc_e} "
          f"w0={args.w0} agents={args.agents} steps={args.steps} threads={torch.get_num_threads()}", flush=True)
    print(f"  {'agent':>5} {'episodes':>8} {'return_last100':>14} {'steps_to_solve':>14} {'wall_s':>8} "
          f"{'steps/s':>8} {'w_mean':>7} {'|dw|':>8}", flush=True)
    rows = []
    for i in range(args.agents):
        r = run_agent(args, i)
        rows.append(r)
        solve = "inf" if r["steps_to_solve"] is None else str(r["steps_to_solve"])
        print(f"  {i:>5} {r['episodes']:>8} {r['return_last100']:>14.1f} {solve:>14} {r['wall_s']:>8.0f} "
              f"{r['env_steps_per_s']:>8.1f} {r['w_mean']:>7.4f} {r['w_change']:>8.4f}", flush=True)
    solved = sum(r["steps_to_solve"] is not None for r in rows)
    med = statistics.median(r["return_last100"] for r in rows)
    sps = args.agents * args.steps / sum(r["wall_s"] for r in rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "agents": rows}, f, indent=1)
    print(f"summary: peer=bindsnet rule=MSTDPET env=CartPole-v1 agents={args.agents} steps={args.steps} "
          f"solved={solved} median_return_last100={med:.1f} env_steps_per_s={sps:.1f}")
    return 0 if not math.isnan(med) else 1


if __name__ == "__main__":
    raise SystemExit(main())
