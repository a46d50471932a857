"""What a run tells the person who started it: the run folder at start, progress while it runs, a
readable summary at the end (and the ``eval`` table).

On a terminal progress is a tqdm bar. Off a terminal (nohup, SLURM, CI) it is plain log lines,
one per log step (``run.log_every``) but at most one every :data:`LINE_EVERY_S` seconds, the
first and the last always::

    spikegym: step 20,000/200,000 (10%) | 31,204 agent-steps/s | median return 45.3 | ETA 1m52s

Everything goes to stderr; stdout keeps the end summary (or ``--json``) alone.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Optional, TextIO

#: Off a terminal, at most one progress line this often (seconds).
LINE_EVERY_S = 10.0


def duration(seconds: float) -> str:
    """``95`` -> ``'1m35s'``; ``3725`` -> ``'1h02m'``.

    >>> duration(95), duration(3725), duration(7.2)
    ('1m35s', '1h02m', '7s')
    """
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class Progress:
    """Progress of ``train``: ``mode`` is ``run.progress`` (auto: a bar on a terminal, lines off it;
    on: a bar always; off: nothing)."""

    def __init__(self, mode: str, *, total: int, initial: int, num_agents: int, stream: Optional[TextIO] = None):
        self.stream = stream or sys.stderr
        self.total, self.initial, self.B = total, initial, num_agents
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.style = "off" if mode == "off" else ("bar" if mode == "on" or tty else "lines")
        self.t0 = time.perf_counter()
        self.last_line: Optional[float] = None
        self.bar = None
        if self.style == "bar":
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, file=self.stream)

    def start(self, run_dir: Path, *, resume: bool) -> None:
        if self.style == "off":
            return
        what = f"resuming at step {self.initial:,}" if resume else "training"
        self._print(f"spikegym: {what}: run folder {run_dir} (watch: tensorboard --logdir {run_dir})")

    def update(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def log(self, step: int, *, fps: float, median_return: float) -> None:
        """At a log step: the bar's postfix, or (off a terminal) a line when one is due."""
        if self.bar is not None:
            self.bar.set_postfix(ret=f"{median_return:.1f}", fps=f"{fps:.0f}")
            return
        if self.style != "lines":
            return
        now = time.perf_counter()
        due = self.last_line is None or now - self.last_line >= LINE_EVERY_S or step >= self.total
        if not due:
            return
        self.last_line = now
        done = step - self.initial
        eta = (self.total - step) * (now - self.t0) / done if done > 0 else float("nan")
        ret = "median return n/a (no episode yet)" if math.isnan(median_return) else f"median return {median_return:.1f}"
        self._print(f"spikegym: step {step:,}/{self.total:,} ({100 * step / self.total:.0f}%) | "
                    f"{fps:,.0f} agent-steps/s | {ret} | ETA {duration(eta)}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def _print(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)


def summary_text(result: dict) -> str:
    """The end of ``spikegym train``: what was reached and where to look."""
    run_dir = result.get("run_dir", "?")
    lines = [f"spikegym: done: {result.get('env', '?')}, {result.get('agents', '?')} agents x "
             f"{result.get('steps', 0):,} steps ({result.get('agent_step', '?')} step)"]
    threshold = result.get("solved_threshold")
    agents = result.get("agents") or len(result.get("steps_to_solve", [])) or "?"
    if threshold is None:
        lines.append("  solved:      no solved threshold for this env")
    else:
        median = result.get("median_steps_to_solve")
        reached = (f"median agent solved at step {median:,}" if isinstance(median, int)
                   else "the median agent has not solved it")
        lines.append(f"  solved:      {result.get('solved', 0)}/{agents} agents reached a 100-episode mean "
                     f">= {threshold:g}; {reached}")
    ret = result.get("median_return_last100")
    if ret is not None and not (isinstance(ret, float) and math.isnan(ret)):
        lines.append(f"  return:      median over agents {ret:.1f} (each agent's mean of its last 100 episodes)")
    else:
        lines.append("  return:      no episode finished yet")
    if "eval_best" in result:
        best = result["eval_best"]
        lines.append(f"  best eval:   mean {best['mean_return']:.1f} at step {best['step']:,} (checkpoints/best)")
    lines += [f"  run folder:  {run_dir}",
              f"  results:     {Path(run_dir) / 'result.json'}",
              f"  TensorBoard: tensorboard --logdir {run_dir}",
              f"  evaluate:    spikegym eval {run_dir}"]
    return "\n".join(lines)


def eval_table(result: dict) -> str:
    """The ``spikegym eval`` report: per agent mean +- std, then the population."""
    means, stds = result["mean_return_per_agent"], result["std_return_per_agent"]
    lines = [f"{result.get('env', '')} checkpoint step {result['checkpoint_step']:,} ({result.get('checkpoint', '')}), "
             f"{result['episodes']} episodes per agent, learning off, seed {result.get('seed')}",
             f"{'agent':>5}  {'mean return':>12}  {'std':>9}"]
    lines += [f"{i:>5}  {m:>12.2f}  {s:>9.2f}" for i, (m, s) in enumerate(zip(means, stds))]
    lines.append(f"population: mean {result['mean_return']:.2f} +- {result['std_return']:.2f} "
                 f"(std over agents' means), median {result['median_return']:.2f}, "
                 f"mean episode length {result['mean_length']:.1f}")
    return "\n".join(lines)
