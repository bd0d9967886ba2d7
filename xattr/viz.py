"""Minimal visualisation with Pillow: maps to RGB and a labelled grid saved as PNG.

Colormaps are a few anchor colours linearly interpolated: ``"magnitude"`` (black → red →
yellow → white, for non-negative maps) and ``"signed"`` (blue → white → red, symmetric
around zero).  Values are clipped at a percentile of ``|map|`` (default 99.5) before mapping.
"""
from __future__ import annotations

import numpy as np

COLORMAPS = {
    "magnitude": np.array([[0, 0, 0], [180, 20, 20], [255, 200, 0], [255, 255, 255]], dtype=float),
    "signed": np.array([[30, 60, 200], [255, 255, 255], [200, 30, 30]], dtype=float),
}


def to_rgb(m, cmap="magnitude", percentile=99.5):
    """``(H, W)`` map -> ``(H, W, 3)`` uint8 image."""
    m = np.asarray(m, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"to_rgb takes a 2-D map (H, W), got shape {m.shape}")
    if cmap not in COLORMAPS:
        raise ValueError(f"cmap must be one of {sorted(COLORMAPS)}, got {cmap!r}")
    scale = np.percentile(np.abs(m), percentile)
    scale = scale if scale > 0 else 1.0
    if cmap == "signed":
        t = (np.clip(m / scale, -1, 1) + 1) / 2
    else:
        t = np.clip(np.abs(m) / scale, 0, 1)
    anchors = COLORMAPS[cmap]
    pos = t * (len(anchors) - 1)
    lo = np.minimum(np.floor(pos).astype(int), len(anchors) - 2)
    frac = (pos - lo)[..., None]
    return np.round(anchors[lo] * (1 - frac) + anchors[lo + 1] * frac).astype(np.uint8)


def image_to_rgb(x):
    """``(C, H, W)`` image (any range) -> ``(H, W, 3)`` uint8, min-max scaled."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"image_to_rgb takes (C, H, W), got shape {x.shape}")
    lo, hi = x.min(), x.max()
    x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    x = np.repeat(x, 3, axis=0) if x.shape[0] == 1 else x[:3]
    return np.round(255 * np.moveaxis(x, 0, -1)).astype(np.uint8)


def save_grid(path, rows, titles, scale=3):
    """Save a grid of ``(H, W, 3)`` uint8 tiles (``rows``: list of lists) with column titles as PNG."""
    from PIL import Image, ImageDraw

    th, tw = rows[0][0].shape[:2]
    th, tw = th * scale, tw * scale
    pad, head = 4, 14
    ncol = max(len(r) for r in rows)
    canvas = Image.new("RGB", (ncol * (tw + pad) + pad, head + len(rows) * (th + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for c, t in enumerate(titles):
        draw.text((pad + c * (tw + pad), 2), t[: max(4, tw // 6)], fill="black")
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            img = Image.fromarray(tile).resize((tw, th), Image.NEAREST)
            canvas.paste(img, (pad + c * (tw + pad), head + pad + r * (th + pad)))
    canvas.save(path)
    return path
