"""Pictures of brains: spike rasters and weight matrices as RGB pixel maps (NumPy), and PNG files.

Every function returns (or takes) a uint8 image ``[H, W, 3]``. Inputs may be NumPy arrays or
CPU/GPU torch tensors (converted with ``.detach().cpu().numpy()``); pick one agent of a
batched population first (``spikes[:, b]``, ``w[b]``).

- :func:`spike_raster` — time on x, neurons on y, population groups as coloured bands.
- :func:`weight_image` — a diverging blue-white-red map for signed weights, a sequential
  black-red-yellow-white map for non-negative ones.
- :func:`save_png` — a PNG file, written by Pillow.
- :func:`to_tensorboard_image` — ``[H, W, 3]`` -> ``[3, H, W]`` for ``SummaryWriter.add_image``.

>>> img = spike_raster(np.eye(3, dtype=bool), scale=1)
>>> img.shape, bool(img[1, 1].min() > 100), bool(img[1, 0].max() < 60)  # neuron 1 fires at t=1
((3, 3, 3), True, True)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = [
    "spike_raster",
    "weight_image",
    "save_png",
    "to_tensorboard_image",
    "apply_colormap",
    "GROUP_COLORS",
    "DIVERGING",
    "SEQUENTIAL",
]

# Group colours (Tableau 10): distinct, and bright enough that a spike drawn in a light tint
# of any of them stands out on a dark tint of the same colour.
GROUP_COLORS = np.array(
    [
        [31, 119, 180],  # blue
        [255, 127, 14],  # orange
        [44, 160, 44],  # green
        [214, 39, 40],  # red
        [148, 103, 189],  # purple
        [140, 86, 75],  # brown
        [227, 119, 194],  # pink
        [127, 127, 127],  # grey
        [188, 189, 34],  # olive
        [23, 190, 207],  # cyan
    ],
    dtype=np.float32,
)

# Colour maps as piecewise-linear stops (position in [0, 1], RGB 0-255).
# Diverging: the end colours of Moreland's "cool to warm", through white. R - B rises
# monotonically from the blue end to the red end.
DIVERGING = (
    (0.0, (59, 76, 192)),
    (0.5, (255, 255, 255)),
    (1.0, (180, 4, 38)),
)
# Sequential ("hot"-like): luminance rises monotonically from black to white.
SEQUENTIAL = (
    (0.0, (0, 0, 0)),
    (0.4, (180, 20, 0)),
    (0.75, (255, 190, 0)),
    (1.0, (255, 255, 255)),
)

_SPIKE_TINT = 0.4  # spike colour = group colour mixed 40 % towards white
_BACKGROUND_TINT = 0.12  # group background = group colour at 12 % brightness


def spike_raster(
    spikes,
    *,
    groups: Sequence[tuple[str, int]] | None = None,
    scale: int = 2,
    band: int | None = None,
) -> np.ndarray:
    """Spike raster: time on x (left to right), neurons on y (neuron 0 at the top).

    Args:
        spikes: ``[T, N]`` bool, or float in [0, 1] (a rate or probability is drawn as a
            blend between background and spike colour).
        groups: ``[(name, size), ...]`` summing to N, in neuron order (e.g.
            ``[("input", 64), ("motor", 40), ("critic", 40)]``). Group ``g`` is drawn on a
            dark tint of ``GROUP_COLORS[g]`` with spikes in a light tint of it, and groups
            are separated by a ``band``-pixel band in the colour of the group below it.
            ``None``: one group.
        scale: each spike is a ``scale`` x ``scale`` block.
        band: separator height in pixels; default ``scale``.

    Returns:
        uint8 ``[N*scale + band*(len(groups)-1), T*scale, 3]``. Neuron ``n`` of group ``g``
        (index ``k`` within it) starts at row ``(offset_g + k)*scale + g*band``.
    """
    s = _to_numpy(spikes).astype(np.float32)
    if s.ndim != 2:
        raise ValueError(f"spikes must be [T, N], got shape {s.shape}")
    t_len, n = s.shape
    scale = int(scale)
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    band = scale if band is None else int(band)
    groups = [("all", n)] if groups is None else [(str(g), int(k)) for g, k in groups]
    if sum(k for _, k in groups) != n or any(k < 0 for _, k in groups):
        raise ValueError(f"group sizes {[k for _, k in groups]} must be >= 0 and sum to N={n}")
    s = np.clip(s, 0.0, 1.0)

    white = np.float32(255.0)
    parts = []
    start = 0
    for g, (_, size) in enumerate(groups):
        colour = GROUP_COLORS[g % len(GROUP_COLORS)]
        if g > 0 and band > 0:
            parts.append(np.broadcast_to(colour, (band, t_len * scale, 3)))
        block = s[:, start : start + size].T[..., None]  # [size, T, 1], neurons on y
        start += size
        bg = colour * _BACKGROUND_TINT
        fg = colour + _SPIKE_TINT * (white - colour)
        rgb = bg + block * (fg - bg)  # [size, T, 3]
        parts.append(np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1))
    img = np.concatenate(parts, axis=0) if parts else np.zeros((0, t_len * scale, 3))
    return np.rint(img).astype(np.uint8)


def weight_image(
    w,
    *,
    scale: int | None = None,
    signed: bool = True,
    vmax: float | None = None,
) -> np.ndarray:
    """A weight matrix as a colour image: row ``i`` = presynaptic neuron, column ``j`` =
    postsynaptic neuron, each weight a ``scale`` x ``scale`` block.

    Args:
        w: ``[N_pre, N_post]``.
        scale: block size; default the largest integer keeping both sides <= 512 px (>= 1).
        signed: ``True``: diverging map, ``-vmax`` blue, 0 white, ``+vmax`` red.
            ``False``: sequential map, 0 black -> red -> yellow -> ``vmax`` white (negative
            values clip to 0).
        vmax: colour limit; default ``max|w|`` (1 if all zero). Values beyond clip.

    Returns:
        uint8 ``[N_pre*scale, N_post*scale, 3]``.

    >>> weight_image(np.array([[-1.0, 0.0, 1.0]]), scale=1)[0].tolist()
    [[59, 76, 192], [255, 255, 255], [180, 4, 38]]
    """
    a = _to_numpy(w).astype(np.float64)
    if a.ndim != 2:
        raise ValueError(f"w must be [N_pre, N_post] (pick one agent of [B, pre, post]), got {a.shape}")
    if scale is None:
        scale = max(1, 512 // max(a.shape + (1,)))
    scale = int(scale)
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    if vmax is None:
        vmax = float(np.max(np.abs(a))) if a.size else 0.0
        vmax = vmax if vmax > 0 and np.isfinite(vmax) else 1.0
    if vmax <= 0:
        raise ValueError(f"vmax must be > 0, got {vmax}")
    if signed:
        x = 0.5 + 0.5 * np.clip(a / vmax, -1.0, 1.0)
        rgb = apply_colormap(x, DIVERGING)
    else:
        rgb = apply_colormap(np.clip(a / vmax, 0.0, 1.0), SEQUENTIAL)
    return np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)


def apply_colormap(x: np.ndarray, stops) -> np.ndarray:
    """Map values in [0, 1] (any shape ``S``) to uint8 colours ``[*S, 3]`` by linear
    interpolation between ``stops`` = ``((position, (r, g, b)), ...)``; NaN -> black."""
    pos = np.array([p for p, _ in stops], dtype=np.float64)
    cols = np.array([c for _, c in stops], dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    finite = np.isfinite(x)
    xc = np.clip(np.where(finite, x, 0.0), 0.0, 1.0)
    out = np.stack([np.interp(xc, pos, cols[:, k]) for k in range(3)], axis=-1)
    out[~finite] = 0.0
    return np.rint(out).astype(np.uint8)


def save_png(img, path: str | os.PathLike) -> str:
    """Write a uint8 ``[H, W, 3]`` (or ``[H, W]`` grey) image as an RGB PNG (Pillow); returns the path.

    Parent folders are created.
    """
    from PIL import Image

    a = np.asarray(img)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"img must be [H, W, 3] or [H, W], got {a.shape}")
    if a.dtype != np.uint8:
        raise ValueError(f"img must be uint8, got {a.dtype}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"cannot write an empty image {a.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(a)).save(path, format="PNG")
    return str(path)


def to_tensorboard_image(img) -> np.ndarray:
    """uint8 ``[H, W, 3]`` (or ``[H, W]`` grey) -> ``[3, H, W]``, the layout
    ``SummaryWriter.add_image`` expects by default (``dataformats="CHW"``)."""
    a = np.asarray(img)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"img must be [H, W, 3] or [H, W], got {a.shape}")
    return np.ascontiguousarray(a.transpose(2, 0, 1))


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x)
