"""Learning curves of a sweep: per setting, the median agent's return over env steps with the
interquartile band, all agents of all its seeds pooled. Drawn with Pillow (no matplotlib).

Each run's per-agent episode returns come from its newest checkpoint's ``meta.json`` (``stats``:
the env step at which each episode ended and its return); an agent's value at a step is the mean of
its last :data:`WINDOW` episodes that ended by then.

>>> curve = agent_curve([10, 30, 50], [1.0, 2.0, 3.0], np.array([0, 20, 40, 60]), window=2)
>>> [None if np.isnan(v) else float(v) for v in curve]   # episodes ended at steps 10, 30 and 50
[None, 1.0, 1.5, 2.5]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

__all__ = ["agent_curve", "run_curves", "setting_curves", "curves_figure", "curves_figure_for"]

WINDOW = 20     # episodes per point of an agent's curve: smooth enough to read, short enough to follow
POINTS = 100    # points on the step axis
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def agent_curve(ends: Sequence[int], returns: Sequence[float], steps: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """``[len(steps)]``: the mean return of the last ``window`` episodes ended by each step (NaN before the first)."""
    ends_a, rets = np.asarray(ends, dtype=float), np.asarray(returns, dtype=float)
    csum = np.concatenate([[0.0], np.cumsum(rets)])
    n = np.searchsorted(ends_a, steps, side="right")  # episodes ended by each step
    lo = np.maximum(n - window, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (csum[n] - csum[lo]) / np.maximum(n - lo, 1), np.nan)


def run_curves(run_dir: Path, steps: np.ndarray) -> Optional[np.ndarray]:
    """``[B, len(steps)]`` per-agent curves of one run (None: no readable checkpoint)."""
    from spikegym.training.checkpoint import list_checkpoints

    for ckpt in reversed(list_checkpoints(run_dir)):
        try:
            stats = json.loads((ckpt / "meta.json").read_text(encoding="utf-8"))["stats"]
            return np.stack([agent_curve(e, r, steps) for e, r in zip(stats["steps"], stats["returns"])])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def setting_curves(runs: dict[str, list[Path]], total_steps: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``steps [P]`` and, per setting, ``[3, P]``: the 25th, 50th and 75th percentile over all its agents."""
    steps = np.linspace(0, total_steps, POINTS + 1)[1:]
    out = {}
    for name, dirs in runs.items():
        curves = [c for c in (run_curves(d, steps) for d in dirs) if c is not None]
        if not curves:
            continue
        pooled = np.concatenate(curves)
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns before the first episode
                out[name] = np.nanpercentile(pooled, [25, 50, 75], axis=0)
    return steps, out


def curves_figure(steps: np.ndarray, curves: dict[str, np.ndarray], *, title: str = "",
                  width: int = 900, height: int = 520) -> np.ndarray:
    """A line chart (uint8 ``[H, W, 3]``): a median line and a translucent interquartile band per setting,
    axes with ticks, a legend under the plot."""
    from PIL import Image, ImageDraw

    from spikegym.training.figures import _font, _text_size  # the figures' own font helpers

    font = _font()
    line_h = _text_size("Ag", font)[1] + 6
    legend_h = line_h * len(curves) + 8
    img = Image.new("RGB", (width, height + legend_h), (255, 255, 255))
    draw = ImageDraw.Draw(img, "RGBA")
    left, right, top, bottom = 70, width - 20, 12 + 2 * line_h, height - 45
    finite = [v for c in curves.values() for v in c.ravel() if np.isfinite(v)]
    y_lo, y_hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    if y_hi - y_lo < 1e-9:
        y_lo, y_hi = y_lo - 1.0, y_hi + 1.0
    x_hi = float(steps[-1]) if len(steps) else 1.0
    px = lambda x: left + (right - left) * x / x_hi  # noqa: E731
    py = lambda y: bottom - (bottom - top) * (y - y_lo) / (y_hi - y_lo)  # noqa: E731

    ink = (20, 20, 20)
    draw.text((left, 4), title, fill=ink, font=font)
    draw.line([(left, top), (left, bottom), (right, bottom)], fill=ink, width=1)
    for i in range(6):
        x, y = x_hi * i / 5, y_lo + (y_hi - y_lo) * i / 5
        draw.line([(px(x), bottom), (px(x), bottom + 4)], fill=ink)
        label = f"{x / 1000:g}k" if x_hi >= 5000 else f"{x:g}"
        draw.text((px(x) - _text_size(label, font)[0] / 2, bottom + 6), label, fill=ink, font=font)
        draw.line([(left - 4, py(y)), (left, py(y))], fill=ink)
        draw.line([(left + 1, py(y)), (right, py(y))], fill=(0, 0, 0, 25))
        ylab = f"{y:.4g}"
        draw.text((left - 8 - _text_size(ylab, font)[0], py(y) - line_h / 2 + 2), ylab, fill=ink, font=font)
    xlab, ylab = "env steps per agent", "episode return (median agent, IQR band)"
    draw.text(((left + right - _text_size(xlab, font)[0]) / 2, bottom + 8 + line_h), xlab, fill=ink, font=font)
    draw.text((left, 6 + line_h), ylab, fill=(90, 90, 90), font=font)

    for i, (name, (q25, q50, q75)) in enumerate(curves.items()):
        color = PALETTE[i % len(PALETTE)]
        ok = np.isfinite(q50)
        pts = [(px(x), py(y)) for x, y in zip(steps[ok], q50[ok])]
        band = [(px(x), py(y)) for x, y in zip(steps[ok], q75[ok])] + \
               [(px(x), py(y)) for x, y in zip(steps[ok][::-1], q25[ok][::-1])]
        if len(band) >= 3:
            draw.polygon(band, fill=(*color, 50))
        if len(pts) >= 2:
            draw.line(pts, fill=color, width=2)
        ly = height + 4 + i * line_h
        draw.rectangle([left, ly + 3, left + 18, ly + line_h - 5], fill=color)
        draw.text((left + 26, ly), name, fill=ink, font=font)
    return np.asarray(img)


def curves_figure_for(out: Path, plan, path: Path) -> Optional[Path]:
    """Draw the sweep's curves (one per setting, its seeds pooled) to ``path``; None if no run has a checkpoint."""
    from spikegym.training.images import save_png

    runs: dict[str, list[Path]] = {}
    for point, _ in plan:
        runs.setdefault(point.setting_name, []).append(out / point.name)
    steps, curves = setting_curves(runs, plan[0][1].run.steps)
    if not curves:
        return None
    cfg = plan[0][1]
    title = f"{cfg.env.id}: {cfg.env.num_agents} agents x {len(plan) // len(runs)} seeds per setting"
    save_png(curves_figure(steps, curves, title=title), path)
    return path
