#!/usr/bin/env python
"""Throughput of the spiking engine with three-factor plasticity on, against the machine's memory bandwidth.

Network (the same as ``../shared/peers/bindsnet_mstdpet.py``): Input(N_in) Bernoulli spikes -> LIF(N_out),
dt = 1 ms, one plastic projection with the STDP-eligibility rule (``rule="stdp"``), weights bounded to
``[0, 1]``, a fresh reward every substep (``dopamine [K, B]`` passed to ``Brain.run``). Every one of the
``B`` agents has its own weights and eligibility ``[B, N_in, N_out]``.

It times the brain's one step, the torch reference (:mod:`spikegym.brains.step`): with a reward every
substep, each substep is a window of one (:meth:`Brain.run`): its events fold into ``e`` and ``W`` moves, as
pure functions (new ``W`` and ``e`` tensors every substep). The minimum traffic of this rule is 16 bytes per
synapse per substep (fp32 ``W`` and ``e``, read + write), so the *bandwidth fraction*
``16 B N_in N_out / (seconds per substep) / copy bandwidth`` says how close it runs to the memory system.
(Earlier versions kept a dense in-place path and an event engine that folded windows lazily; issue 15
replaced them with one reference step and the agent's numba kernel.)

Updates per second = ``B * N_in * N_out * T / seconds`` (every synapse of every agent, every substep).
Copy bandwidth is measured in this process (``dst.copy_(src)`` of a 256 MiB buffer, read + write counted).

    python benchmarks/brain_throughput.py                     # 3 sizes x batches 1, 16, 64, rates 0.2 and 0.05
    python benchmarks/brain_throughput.py --quick             # 1000x1000, B = 16; ends with a summary line
    python benchmarks/brain_throughput.py --quick --vs-bindsnet .bindsnet-venv/bin/python
    python benchmarks/brain_throughput.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from spikegym.brains.network import Brain, Population, Projection
from spikegym.brains.neurons import LIFParams
from spikegym.brains.plasticity import StdpParams

PEER_SCRIPT = Path(__file__).resolve().parents[1].parent / "shared" / "peers" / "bindsnet_mstdpet.py"
TAU_E = 25.0  # ms, eligibility time constant (BindsNET MSTDPET's tc_e_trace)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def copy_bandwidth(device: torch.device, nbytes: int = 256 << 20, repeats: int = 5) -> float:
    """Bytes per second of ``dst.copy_(src)`` on a large buffer, read + write counted (median of repeats)."""
    src = torch.empty(nbytes // 4, device=device).uniform_()
    dst = torch.empty_like(src)
    dst.copy_(src)
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        dst.copy_(src)
        sync(device)
        times.append(time.perf_counter() - t0)
    return 2 * nbytes / statistics.median(times)


def build(engine: str, n_in: int, n_out: int, batch: int, rate: float, device: torch.device, seed: int = 0) -> Brain:
    """The benchmark network; initial weights uniform in ``[0, 2 m]`` with mean drive ``rate N_in m = 1.2``."""
    m = 1.2 / (rate * n_in)
    pops = [Population("in", n_in, "input"), Population("out", n_out, "lif", lif=LIFParams(tau_mem=20.0, t_ref=2.0))]
    proj = Projection("in", "out", rule="stdp", lr=0.01 * m, trace_decay=math.exp(-1.0 / TAU_E),
                      w_init_mean=m, w_min=0.0, w_max=1.0, stdp=StdpParams(tau_plus=20.0, tau_minus=20.0))
    brain = Brain(pops, [proj], batch=batch, device=device)
    g = torch.Generator(device=device).manual_seed(seed)
    flat = brain.state_dict()
    flat["w.in->out"] = torch.rand(flat["w.in->out"].shape, generator=g, device=device) * (2 * m)
    brain.load_state_dict(flat)
    return brain


def bench_one(engine, n_in, n_out, batch, rate, window, device, budget, repeats, seed=0) -> dict:
    brain = build(engine, n_in, n_out, batch, rate, device, seed)
    g = torch.Generator(device=device).manual_seed(seed + 1)
    n_windows_data = 4  # distinct input windows, cycled (input generation is not timed)
    inputs = [(torch.rand(window, batch, n_in, generator=g, device=device) < rate).float() for _ in range(n_windows_data)]
    rewards = [torch.rand(window, batch, generator=g, device=device) * 2 - 1 for _ in range(n_windows_data)]

    def run(n):
        sync(device)
        t0 = time.perf_counter()
        for i in range(n):
            out = brain.run({"in": inputs[i % n_windows_data]}, dopamine=rewards[i % n_windows_data])
        sync(device)
        dt = time.perf_counter() - t0
        return dt, out["out"]

    t_warm, _ = run(1)  # first call: allocations, caches
    t_warm, _ = run(1)
    n = max(1, round(budget / max(t_warm, 1e-9)))
    bw = copy_bandwidth(device)
    times, post = [], []
    for _ in range(repeats):
        dt, out = run(n)
        times.append(dt)
        post.append(float(out.mean()))
    steps = n * window
    sec = statistics.median(times)
    per_step = sec / steps
    syn = batch * n_in * n_out
    w = brain.weights("in->out")
    ok = bool(torch.isfinite(w).all()) and float(w.min()) >= 0.0 and float(w.max()) <= 1.0
    return {
        "engine": engine, "n_in": n_in, "n_out": n_out, "batch": batch, "rate": rate, "window": window,
        "T": steps, "repeats": repeats, "times_s": times, "median_s": sec, "ms_per_step": 1e3 * per_step,
        "updates_per_s": syn / per_step, "copy_bw_GBps": bw / 1e9,
        "bandwidth_fraction": 16.0 * syn / per_step / bw, "post_rate": statistics.mean(post), "weights_ok": ok,
    }


def fmt_row(r: dict) -> str:
    kind = ""
    return (f"{r['engine']:6s} {r['n_in']:5d}x{r['n_out']:<5d} {r['batch']:4d} {r['rate']:5.2f} {r['window']:4d} "
            f"{r['T']:6d} {r['ms_per_step']:10.3f} {r['updates_per_s']:11.3e} {r['copy_bw_GBps']:8.1f} "
            f"{r['bandwidth_fraction']:7.2f}{kind:>4s} {r['post_rate']:6.3f}")


HEADER = (f"{'engine':6s} {'size':11s} {'B':>4s} {'rate':>5s} {'K':>4s} {'T':>6s} {'ms/step':>10s} "
          f"{'upd/s':>11s} {'copyGB/s':>8s} {'bw frac':>11s} {'post':>6s}")


def run_bindsnet(python: str, threads: int, sizes: list[tuple[int, int]], batches: list[int], rate: float,
                 script: Path, budget: float, repeats: int) -> list[dict]:
    if not script.exists():
        raise SystemExit(f"--vs-bindsnet: peer script not found at {script} (pass --peer-script)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bindsnet.json"
        cmd = [python, str(script), "--threads", str(threads), "--sizes", ",".join(f"{a}x{b}" for a, b in sizes),
               "--batches", ",".join(map(str, batches)), "--modes", "step", "--rate", str(rate),
               "--budget", str(budget), "--repeats", str(repeats), "--json", str(out)]
        print("$ " + " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        return json.loads(out.read_text())["results"]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="only 1000x1000 at batch 16")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--sizes", default="100x100,1000x1000,4000x1000")
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--engines", default="reference", help="the brain's step (one: the torch reference)")
    ap.add_argument("--rate", type=float, default=0.2, help="input firing probability per substep")
    ap.add_argument("--sparse-rate", type=float, default=0.05,
                    help="second input rate for the event-vs-dense comparison (0 to skip)")
    ap.add_argument("--dense-window", type=int, default=20,
                    help="substeps per Brain.run call (its cost per substep does not depend on it)")
    ap.add_argument("--budget", type=float, default=0.6, help="target seconds per timed repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--vs-bindsnet", metavar="PYTHON", default="", help="a python with bindsnet installed")
    ap.add_argument("--peer-script", default=str(PEER_SCRIPT))
    ap.add_argument("--bindsnet-sizes", default="", help="sizes for the peer (default: the sizes run here)")
    ap.add_argument("--bindsnet-batches", default="", help="batches for the peer (default: the batches run here)")
    ap.add_argument("--json", default="")
    a = ap.parse_args(argv)
    if a.quick:
        a.sizes, a.batches = "1000x1000", "16"
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch.cuda.is_available() is False")
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)  # decaying traces reach denormals; the peer script sets the same
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in a.sizes.split(",")]
    batches = [int(b) for b in a.batches.split(",")]
    engines = a.engines.split(",")
    rates = [a.rate] + ([a.sparse_rate] if a.sparse_rate and a.sparse_rate != a.rate else [])
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    meta = {"python": platform.python_version(), "torch": torch.__version__, "device": str(device), "device_name": dev_name,
            "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "window": a.dense_window}
    print(json.dumps(meta), flush=True)
    print(f"three-factor STDP (rule='stdp', tau_e={TAU_E:g} ms), reward every substep, weights in [0, 1]; "
          f"K = substeps per Brain.run call", flush=True)
    print(HEADER, flush=True)
    t_start = time.perf_counter()
    results = []
    for rate in rates:
        for n_in, n_out in sizes:
            for b in batches:
                for engine in engines:
                    k = a.dense_window
                    r = bench_one(engine, n_in, n_out, b, rate, k, device, a.budget, a.repeats)
                    results.append(r)
                    print(fmt_row(r), flush=True)

    print("\nbw frac = 16 bytes x B x N_in x N_out per substep (fp32 W and e, read + write) / time per substep "
          "/ copy bandwidth: the traffic the rule needs, so the fraction is how close it runs to memory speed.")

    def find(engine, n_in, n_out, b, rate):
        for r in results:
            if (r["engine"], r["n_in"], r["n_out"], r["batch"], r["rate"]) == (engine, n_in, n_out, b, rate):
                return r
        return None

    if a.vs_bindsnet:
        if device.type != "cpu":
            print(f"\nwarning: the peer runs on the CPU ({a.threads} threads); ratios compare {device} with CPU")
        p_sizes = sizes
        if a.bindsnet_sizes:
            p_sizes = [tuple(int(v) for v in s.lower().split("x")) for s in a.bindsnet_sizes.split(",")]
        p_batches = [int(b) for b in a.bindsnet_batches.split(",")] if a.bindsnet_batches else batches
        peer = run_bindsnet(a.vs_bindsnet, a.threads, p_sizes, p_batches, a.rate, Path(a.peer_script),
                            budget=max(2.0, 4 * a.budget), repeats=a.repeats)
        print(f"\nvs BindsNET 0.3.4 MSTDPET (step mode: network.run(time=1, reward=r_t) per substep), rate {a.rate:g}, "
              f"{a.threads} threads, same network and counting (B x N_in x N_out per substep).")
        print("NOTE: BindsNET keeps ONE weight matrix shared by the whole batch (it sums the B per-sample updates "
              "into it); spikegym keeps B independent weight matrices and eligibility traces, one per agent.")
        print(f"{'size':11s} {'B':>4s} {'bindsnet upd/s':>15s} "
              + " ".join(f"{e + ' upd/s':>14s} {'ratio':>7s}" for e in engines))
        for p in peer:
            cells = []
            for engine in engines:
                r = find(engine, p["n_in"], p["n_out"], p["batch"], a.rate)
                cells.append(f"{'-':>14s} {'-':>7s}" if r is None else
                             f"{r['updates_per_s']:14.3e} {r['updates_per_s'] / p['updates_per_s']:6.1f}x")
            print(f"{p['n_in']:5d}x{p['n_out']:<5d} {p['batch']:4d} {p['updates_per_s']:15.3e} " + " ".join(cells))
        meta["bindsnet"] = peer

    if a.json:
        from spikegym.training.files import write_json

        write_json(a.json, {"meta": meta, "results": results})
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")
    if a.quick:
        d = find(engines[0], 1000, 1000, 16, a.rate) or results[0]
        print(f"summary: size=1000x1000 batch=16 updates_per_s={d['updates_per_s']:.4g} "
              f"bandwidth_fraction={d['bandwidth_fraction']:.4g}")


if __name__ == "__main__":
    main()
