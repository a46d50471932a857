"""Figures a reader can read without the code: spike rasters and weight matrices with a title,
axis labels, group labels and a colour bar, and labelled video tiles. Drawn with Pillow on the
pixel maps of :mod:`spikegym.training.images`; every function returns uint8 ``[H, W, 3]``.

>>> fig = weight_figure(np.array([[-1.0, 0.0], [0.5, 1.0]]), pre="pre", post="post")
>>> fig.dtype, fig.ndim, fig.shape[1] > 2 * 64   # the matrix, its axes and a colour bar
(dtype('uint8'), 3, True)
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

from spikegym.training.images import DIVERGING, GROUP_COLORS, apply_colormap, spike_raster, weight_image

__all__ = ["raster_figure", "weight_figure", "label_image"]

BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
FONT_SIZE = 12
PAD = 6


@lru_cache(maxsize=4)
def _font(size: int = FONT_SIZE):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # scalable (FreeType), Pillow >= 10.1
    except TypeError:  # older Pillow: the fixed bitmap font
        return ImageFont.load_default()


def _text_size(text: str, font) -> tuple[int, int]:
    left, top, right, bottom = font.getbbox(text)
    return right - left, bottom - top


def _canvas(width: int, height: int):
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (int(width), int(height)), BACKGROUND)
    return img, ImageDraw.Draw(img)


def raster_figure(spikes, *, groups: Sequence[tuple[str, int]] | None = None, substeps: int = 0,
                  title: str = "", scale: int | None = None) -> np.ndarray:
    """A spike raster ``[T, N]`` with its title, the group names (in their colours) on the left,
    time on x with a tick at every 5th decision (``substeps`` per decision; 0: ticks every 10 steps)."""
    s = np.asarray(spikes)
    t_len, n = s.shape
    scale = scale or (2 if n <= 400 else 1)
    core = spike_raster(s, groups=groups, scale=scale)
    font = _font()
    groups = [("all", n)] if groups is None else [(str(g), int(k)) for g, k in groups]
    label_w = max(_text_size(f"{name} ({k})", font)[0] for name, k in groups) + 2 * PAD
    line_h = _text_size("Ag", font)[1] + 4
    top = PAD + (line_h if title else 0)
    bottom = 3 * line_h + PAD
    width = max(label_w + core.shape[1] + PAD, _text_size(title, font)[0] + 2 * PAD)
    img, draw = _canvas(width, top + core.shape[0] + bottom)
    from PIL import Image

    img.paste(Image.fromarray(core), (label_w, top))
    if title:
        draw.text((PAD, PAD // 2), title, fill=INK, font=font)
    row = 0
    for g, (name, k) in enumerate(groups):  # the name beside the middle of its band
        colour = tuple(int(c) for c in GROUP_COLORS[g % len(GROUP_COLORS)])
        y = top + (row + k / 2) * scale + g * scale - line_h / 2
        draw.text((PAD, y), f"{name} ({k})", fill=colour, font=font)
        row += k
    y0 = top + core.shape[0]
    step = (5 * substeps) if substeps else 10
    for t in range(0, t_len + 1, step):  # ticks and their labels: decisions (or steps)
        x = label_w + t * scale
        draw.line([(x, y0), (x, y0 + 4)], fill=INK)
        label = str(t // substeps) if substeps else str(t)
        draw.text((x - _text_size(label, font)[0] / 2, y0 + 5), label, fill=INK, font=font)
    xlabel = (f"decision ({substeps} substeps each)" if substeps else "substep") + " -> ; bright = spike"
    draw.text((label_w, y0 + 5 + line_h), xlabel, fill=INK, font=font)
    return np.asarray(img)


def weight_figure(w, *, pre: str = "presynaptic neuron", post: str = "postsynaptic neuron", title: str = "",
                  vmax: float | None = None) -> np.ndarray:
    """A weight matrix ``[N_pre, N_post]`` (pre on y, post on x) in the diverging map, with axis
    labels and index ticks, and a colour bar from ``-vmax`` (blue) through 0 (white) to ``+vmax`` (red)."""
    a = w.detach().cpu().numpy() if hasattr(w, "detach") else np.asarray(w, dtype=np.float64)
    if vmax is None:
        vmax = float(np.max(np.abs(a))) if a.size else 0.0
        vmax = vmax if vmax > 0 and np.isfinite(vmax) else 1.0
    core = weight_image(a, vmax=vmax)
    scale = core.shape[0] // max(a.shape[0], 1)
    font = _font()
    line_h = _text_size("Ag", font)[1] + 4
    tick_w = _text_size(str(a.shape[0] - 1), font)[0]
    left = PAD + line_h + tick_w + PAD  # the rotated y label, then the tick labels
    top = PAD + (line_h if title else 0)
    bar_w, bar_gap = 14, 12
    bar_labels = [f"{vmax:+.3g}", "0", f"{-vmax:+.3g}"]
    right = bar_gap + bar_w + PAD + max(_text_size(t, font)[0] for t in bar_labels) + PAD
    bottom = 2 * line_h + PAD + 4
    h, wd = core.shape[:2]
    width = max(left + wd + right, _text_size(title, font)[0] + 2 * PAD)
    img, draw = _canvas(width, top + h + bottom)
    from PIL import Image

    img.paste(Image.fromarray(core), (left, top))
    if title:
        draw.text((PAD, PAD // 2), title, fill=INK, font=font)
    for i in sorted({0, a.shape[0] - 1}):  # index ticks, first and last row / column
        label = str(i)
        draw.text((left - PAD - _text_size(label, font)[0], top + (i + 0.5) * scale - line_h / 2), label,
                  fill=INK, font=font)
    for j in sorted({0, a.shape[1] - 1}):
        label = str(j)
        draw.text((left + (j + 0.5) * scale - _text_size(label, font)[0] / 2, top + h + 2), label,
                  fill=INK, font=font)
    draw.text((left, top + h + 2 + line_h), f"{post} ->", fill=INK, font=font)
    ylabel = Image.new("RGB", (_text_size(f"{pre} ->", font)[0] + 2, line_h), BACKGROUND)
    from PIL import ImageDraw

    ImageDraw.Draw(ylabel).text((0, 0), f"{pre} ->", fill=INK, font=font)
    ylabel = ylabel.rotate(-90, expand=True)  # reads top to bottom, as the rows count
    img.paste(ylabel, (PAD, top))
    # the colour bar: +vmax at the top, -vmax at the bottom
    x0 = left + wd + bar_gap
    ramp = apply_colormap(np.linspace(1.0, 0.0, max(h, 2))[:, None].repeat(bar_w, axis=1), DIVERGING)
    img.paste(Image.fromarray(ramp), (x0, top))
    draw.rectangle([x0, top, x0 + bar_w - 1, top + max(h, 2) - 1], outline=INK)
    for frac, text in zip((0.0, 0.5, 1.0), bar_labels):
        y = top + frac * (max(h, 2) - 1)
        draw.line([(x0 + bar_w, y), (x0 + bar_w + 3, y)], fill=INK)
        draw.text((x0 + bar_w + 5, y - line_h / 2), text, fill=INK, font=font)
    return np.asarray(img)


def label_image(frame: np.ndarray, text: str) -> np.ndarray:
    """``frame`` with ``text`` in its top-left corner, white on a dark box (video tiles)."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(np.ascontiguousarray(frame[..., :3]))
    font = _font(max(12, frame.shape[0] // 24))
    tw, th = _text_size(text, font)
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 0, tw + 2 * PAD, th + 2 * PAD], fill=(0, 0, 0))
    draw.text((PAD, PAD - font.getbbox(text)[1]), text, fill=(255, 255, 255), font=font)
    return np.asarray(img)
