"""Visualisation with Pillow: attribution maps to colour, overlays, and labelled grids as PNG.

Colormaps are a few anchor colours linearly interpolated (:data:`COLORMAPS`):

* ``"magnitude"`` black → red → yellow → white, for non-negative maps (``|map|`` is shown);
* ``"signed"`` blue → white → red, diverging and symmetric around zero (white = 0);
* ``"gray"`` black → white.

Before mapping, values are scaled by a percentile of ``|map|`` (default 99.5) and clipped, so
a few extreme pixels do not wash out the rest (the convention of Smilkov et al. 2017's
visualisations and PAIR saliency's ``VisualizeImageGrayscale``).  For signed maps the same
scale is used on both sides, so equal magnitudes get equal intensities.

Everything returns ``uint8`` arrays ``(H, W, 3)`` or Pillow images (which notebooks display
inline); matplotlib is not needed.
"""
from __future__ import annotations

import numpy as np

COLORMAPS = {
    "magnitude": np.array([[0, 0, 0], [180, 20, 20], [255, 200, 0], [255, 255, 255]], dtype=float),
    "signed": np.array([[30, 60, 200], [255, 255, 255], [200, 30, 30]], dtype=float),
    "gray": np.array([[0, 0, 0], [255, 255, 255]], dtype=float),
}

#: default percentile of ``|map|`` at which maps are clipped.
CLIP_PERCENTILE = 99.5


def _check_cmap(cmap):
    if cmap not in COLORMAPS:
        raise ValueError(f"cmap must be one of {sorted(COLORMAPS)}, got {cmap!r}")


def colormap(t, cmap="magnitude"):
    """Map values ``t`` in ``[0, 1]`` (any shape) to RGB ``uint8`` (shape + ``(3,)``) by anchor interpolation."""
    _check_cmap(cmap)
    t = np.clip(np.asarray(t, dtype=np.float64), 0, 1)
    anchors = COLORMAPS[cmap]
    pos = t * (len(anchors) - 1)
    lo = np.minimum(np.floor(pos).astype(int), len(anchors) - 2)
    frac = (pos - lo)[..., None]
    return np.round(anchors[lo] * (1 - frac) + anchors[lo + 1] * frac).astype(np.uint8)


def normalize(m, signed=False, percentile=CLIP_PERCENTILE):
    """Scale a map to ``[0, 1]`` after percentile clipping.

    ``signed=False``: ``clip(|m| / s, 0, 1)``; ``signed=True``: ``(clip(m / s, -1, 1) + 1) / 2``
    (zero at 0.5), with ``s`` the ``percentile`` of ``|m|`` (1 if that is 0, so an all-zero map
    stays at zero).
    """
    m = np.asarray(m, dtype=np.float64)
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    if not np.all(np.isfinite(m)):
        raise ValueError("the map must be finite")
    scale = np.percentile(np.abs(m), percentile) if m.size else 1.0
    scale = scale if scale > 0 else 1.0
    if signed:
        return (np.clip(m / scale, -1, 1) + 1) / 2
    return np.clip(np.abs(m) / scale, 0, 1)


def to_rgb(m, cmap="magnitude", percentile=CLIP_PERCENTILE):
    """``(H, W)`` map -> ``(H, W, 3)`` uint8 image (``"signed"`` is diverging around zero)."""
    m = np.asarray(m, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"to_rgb takes a 2-D map (H, W), got shape {m.shape}")
    _check_cmap(cmap)
    return colormap(normalize(m, cmap == "signed", percentile), cmap)


def to_map(a, reduce="sum"):
    """One image's attribution ``(C, H, W)``, ``(1, H, W)`` or ``(H, W)`` -> ``(H, W)``.

    ``reduce`` names the channel reduction of :func:`xattr.methods.gradient.reduce_channels`
    (``"sum"`` signed, ``"sum_abs"``, ``"max_abs"``, ``"l2_squared"``); a single channel is taken as is.
    """
    from .methods.gradient import reduce_channels

    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 2:
        return a
    if a.ndim != 3:
        raise ValueError(f"to_map takes (C, H, W), (1, H, W) or (H, W), got shape {a.shape}")
    if a.shape[0] == 1:
        return a[0]
    return reduce_channels(a[None], reduce)[0]


def image_to_rgb(x, value_range=None):
    """``(C, H, W)`` image -> ``(H, W, 3)`` uint8.

    ``value_range=(lo, hi)`` maps ``lo..hi`` to ``0..255`` (clipped); default: min-max scaling.
    One channel is shown grey; more than three channels show the first three.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"image_to_rgb takes (C, H, W), got shape {x.shape}")
    lo, hi = (x.min(), x.max()) if value_range is None else value_range
    x = np.clip((x - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(x)
    x = np.repeat(x, 3, axis=0) if x.shape[0] == 1 else x[:3]
    return np.round(255 * np.moveaxis(x, 0, -1)).astype(np.uint8)


def overlay(image, m, cmap="magnitude", alpha=0.6, percentile=CLIP_PERCENTILE, weighted=True, gray=0.0):
    """Blend a map over an image; ``(H, W, 3)`` uint8.

    Parameters
    ----------
    image : ndarray ``(H, W, 3)`` uint8 (see :func:`image_to_rgb`)
    m : ndarray ``(H, W)``
    alpha : float in ``[0, 1]``
        Opacity of the map.
    weighted : bool
        If True the opacity at a pixel is ``alpha`` times the map's normalised strength there
        (``|m|`` scaled as :func:`normalize`), so unimportant pixels show the image.
    gray : float in ``[0, 1]``
        Fade the image towards its dimmed luminance first (0: the image as is; 1: grey at 60%
        brightness), so the map's colours stand out on colourful images.
    """
    image = np.asarray(image)
    m = np.asarray(m, dtype=np.float64)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[:2] != m.shape:
        raise ValueError(f"overlay takes an image (H, W, 3) and a map (H, W) of the same size, got {image.shape} and {m.shape}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if not 0 <= gray <= 1:
        raise ValueError(f"gray must be in [0, 1], got {gray}")
    base = image.astype(np.float64)
    if gray:
        lum = 0.6 * (base @ np.array([0.299, 0.587, 0.114]))  # ITU-R BT.601 luma, dimmed
        base = (1 - gray) * base + gray * lum[..., None]
    heat = to_rgb(m, cmap, percentile).astype(np.float64)
    w = alpha * (normalize(m, False, percentile) if weighted else np.ones(m.shape))
    out = (1 - w[..., None]) * base + w[..., None] * heat
    return np.round(out).astype(np.uint8)


def mask_to_rgb(mask, color=(255, 255, 255)):
    """Boolean mask ``(H, W)`` -> ``(H, W, 3)`` uint8 (``color`` inside, black outside)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask_to_rgb takes (H, W), got shape {mask.shape}")
    return (mask[..., None] * np.asarray(color, dtype=np.uint8)).astype(np.uint8)


def outline(image, mask, color=(0, 255, 0)):
    """Draw the boundary pixels of ``mask`` ``(H, W)`` on a copy of ``image`` ``(H, W, 3)``."""
    mask = np.asarray(mask, dtype=bool)
    pad = np.pad(mask, 1)
    interior = pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]
    edge = mask & ~interior
    out = np.array(image, dtype=np.uint8, copy=True)
    out[edge] = color
    return out


def _wrap(text, width):
    words, lines, cur = str(text).replace("_", "_\u200b").split(), [], ""
    for w in words:
        for piece in w.split("\u200b"):
            if cur and len(cur) + len(piece) > width:
                lines.append(cur)
                cur = ""
            cur += piece
        cur += " "
    lines.append(cur.strip())
    return [ln for ln in lines if ln][:2] or [""]


def grid_image(rows, titles=(), row_titles=None, scale=3, pad=4):
    """A labelled grid of tiles as a Pillow image.

    Parameters
    ----------
    rows : list of lists of ndarray ``(H, W, 3)`` uint8
        ``rows[r][c]``: the tile of image ``r`` under column ``c``; all tiles the same size.
    titles : list of str
        Column titles (e.g. method names), wrapped to two lines.
    row_titles : list of str, optional
        One label per row, written to the left (e.g. ``"disk → disk"``).
    scale : int
        Nearest-neighbour upscaling of each tile.
    """
    from PIL import Image, ImageDraw

    if not rows or not rows[0]:
        raise ValueError("grid needs at least one row with one tile")
    th, tw = np.asarray(rows[0][0]).shape[:2]
    th, tw = th * scale, tw * scale
    char = 6  # Pillow's default bitmap font is about 6 px per character
    head = 26 if titles else pad
    left = (max(len(t) for t in row_titles) * char + 2 * pad) if row_titles else 0
    ncol = max(len(r) for r in rows)
    canvas = Image.new("RGB", (left + ncol * (tw + pad) + pad, head + len(rows) * (th + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for c, t in enumerate(titles):
        for k, line in enumerate(_wrap(t, max(4, tw // char))):
            draw.text((left + pad + c * (tw + pad), 2 + 11 * k), line, fill="black")
    for r, row in enumerate(rows):
        y = head + pad + r * (th + pad)
        if row_titles:
            draw.text((pad, y + th // 2 - 5), str(row_titles[r]), fill="black")
        for c, tile in enumerate(row):
            tile = np.asarray(tile)
            if tile.dtype != np.uint8 or tile.ndim != 3 or tile.shape[2] != 3:
                raise ValueError(f"grid tiles must be (H, W, 3) uint8, got {tile.shape} {tile.dtype} at row {r}, column {c}")
            img = Image.fromarray(tile).resize((tw, th), Image.NEAREST)
            canvas.paste(img, (left + pad + c * (tw + pad), y))
    return canvas


def save_grid(path, rows, titles, scale=3, row_titles=None):
    """Save :func:`grid_image` as PNG at ``path``; returns ``path``."""
    grid_image(rows, titles, row_titles=row_titles, scale=scale).save(path, format="PNG")
    return path


__all__ = [
    "COLORMAPS", "CLIP_PERCENTILE", "colormap", "normalize", "to_rgb", "to_map", "image_to_rgb", "overlay",
    "mask_to_rgb", "outline", "grid_image", "save_grid",
]
