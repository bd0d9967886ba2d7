"""Visualisation with Pillow: attribution maps to colour, overlays, and labelled grids as PNG.

Colormaps are a few anchor colours linearly interpolated (:data:`COLORMAPS`):

* ``"magnitude"`` black → red → yellow → white, for non-negative maps (``|map|`` is shown);
* ``"signed"`` blue → white → red, diverging and symmetric around zero (white = 0);
* ``"gray"`` black → white;
* ``"negative"`` black → blue → light blue → white, for the magnitudes of negative evidence
  (blue as in ``"signed"``).

Before mapping, values are scaled by a percentile of ``|map|`` (default 99.5) and clipped, so
a few extreme pixels do not wash out the rest (the convention of Smilkov et al. 2017's
visualisations and PAIR saliency's ``VisualizeImageGrayscale``).  For signed maps the same
scale is used on both sides, so equal magnitudes get equal intensities.

Everything returns ``uint8`` arrays ``(H, W, 3)`` or Pillow images (which notebooks display
inline); matplotlib is not needed. :func:`show` is the one-call view (Captum's
``visualize_image_attr``: heat map, blended, masked, alpha scaling, plus the seeds' views: the
image's intensities scaled by the map and the positive/negative split), with a colour bar and a
font that renders σ and ² (:func:`font`).
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field

import numpy as np

COLORMAPS = {
    "magnitude": np.array([[0, 0, 0], [180, 20, 20], [255, 200, 0], [255, 255, 255]], dtype=float),
    "signed": np.array([[30, 60, 200], [255, 255, 255], [200, 30, 30]], dtype=float),
    "gray": np.array([[0, 0, 0], [255, 255, 255]], dtype=float),
    "negative": np.array([[0, 0, 0], [20, 40, 180], [40, 170, 255], [255, 255, 255]], dtype=float),
}

#: default percentile of ``|map|`` at which maps are clipped.
CLIP_PERCENTILE = 99.5


def _check_cmap(cmap):
    if cmap not in COLORMAPS:
        raise ValueError(f"cmap must be one of {sorted(COLORMAPS)}, got {cmap!r}")


def colormap(t, cmap="magnitude"):
    """Map values ``t`` in ``[0, 1]`` (any shape) to RGB ``uint8`` (shape + ``(3,)``) by anchor interpolation.

    Parameters
    ----------
    t : array_like of float, any shape
        Clipped to ``[0, 1]``.
    cmap : str
        A name of ``COLORMAPS``.

    Returns
    -------
    uint8 array ``t.shape + (3,)``
    """
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

    Parameters
    ----------
    m : array_like of float, any shape
        Finite.
    signed : bool
    percentile : float
        In ``(0, 100]``.

    Returns
    -------
    ndarray, ``m.shape``, float64 in ``[0, 1]``
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
    """``(H, W)`` map -> ``(H, W, 3)`` uint8 image (``"signed"`` is diverging around zero).

    Parameters
    ----------
    m : ndarray ``(H, W)``
    cmap : str
        A name of ``COLORMAPS``.
    percentile : float
        The clipping percentile of :func:`normalize`.

    Returns
    -------
    uint8 array ``(H, W, 3)``
    """
    m = np.asarray(m, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"to_rgb takes a 2-D map (H, W), got shape {m.shape}")
    _check_cmap(cmap)
    return colormap(normalize(m, cmap == "signed", percentile), cmap)


def to_map(a, reduce="sum"):
    """One image's attribution ``(C, H, W)``, ``(1, H, W)`` or ``(H, W)`` -> ``(H, W)``.

    ``reduce`` names the channel reduction of :func:`xattr.methods.gradient.reduce_channels`
    (``"sum"`` signed, ``"sum_abs"``, ``"max_abs"``, ``"l2_squared"``); a single channel is taken as is.

    Parameters
    ----------
    a : ndarray ``(C, H, W)``, ``(1, H, W)`` or ``(H, W)``
    reduce : str

    Returns
    -------
    ndarray ``(H, W)``, float64
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

    Parameters
    ----------
    x : ndarray ``(C, H, W)``
    value_range : tuple of float ``(lo, hi)``, optional

    Returns
    -------
    uint8 array ``(H, W, 3)``
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
        raise ValueError(
            f"overlay takes an image (H, W, 3) and a map (H, W) of the same size, got {image.shape} and {m.shape}"
        )
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
    """Boolean mask ``(H, W)`` -> ``(H, W, 3)`` uint8 (``color`` inside, black outside).

    Parameters
    ----------
    mask : bool array ``(H, W)``
    color : tuple of int ``(r, g, b)``

    Returns
    -------
    uint8 array ``(H, W, 3)``
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask_to_rgb takes (H, W), got shape {mask.shape}")
    return (mask[..., None] * np.asarray(color, dtype=np.uint8)).astype(np.uint8)


def outline(image, mask, color=(0, 255, 0)):
    """Draw the boundary pixels of ``mask`` ``(H, W)`` on a copy of ``image`` ``(H, W, 3)``.

    Parameters
    ----------
    image : uint8 array ``(H, W, 3)``
    mask : bool array ``(H, W)``
    color : tuple of int ``(r, g, b)``

    Returns
    -------
    uint8 array ``(H, W, 3)``
        A copy; ``image`` is not modified.
    """
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


def grid_image(rows, titles=(), row_titles=None, scale=3, pad=4, font_size=11):
    """A labelled grid of tiles as a Pillow image (:func:`sheet` is the richer layout: one scale and a colour bar per
    column).

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
    font_size : int
        Of the labels, in :func:`font` (DejaVu Sans where available, so σ, ² and → render; symbols a font
        lacks are spelt out by :func:`fit_text`).
    """
    from PIL import Image, ImageDraw

    if not rows or not rows[0]:
        raise ValueError("grid needs at least one row with one tile")
    th, tw = np.asarray(rows[0][0]).shape[:2]
    th, tw = th * scale, tw * scale
    fnt = font(font_size)
    line = int(font_size * 1.25)
    heads = [_wrap_px(fnt, fit_text(fnt, str(t)), max(tw, 4 * font_size)) for t in titles]
    head = (2 + line * max([len(h) for h in heads] + [1])) if titles else pad
    labels = [fit_text(fnt, str(t)) for t in row_titles] if row_titles else []
    left = (int(max(fnt.getlength(t) for t in labels)) + 2 * pad) if labels else 0
    ncol = max(len(r) for r in rows)
    canvas = Image.new("RGB", (left + ncol * (tw + pad) + pad, head + len(rows) * (th + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for c, lines in enumerate(heads):
        for k, ln in enumerate(lines):
            draw.text((left + pad + c * (tw + pad), 2 + line * k), ln, fill="black", font=fnt)
    for r, row in enumerate(rows):
        y = head + pad + r * (th + pad)
        if labels:
            draw.text((pad, y + th // 2), labels[r], fill="black", font=fnt, anchor="lm")
        for c, tile in enumerate(row):
            tile = np.asarray(tile)
            if tile.dtype != np.uint8 or tile.ndim != 3 or tile.shape[2] != 3:
                raise ValueError(
                    f"grid tiles must be (H, W, 3) uint8, got {tile.shape} {tile.dtype} at row {r}, column {c}"
                )
            img = Image.fromarray(tile).resize((tw, th), Image.NEAREST)
            canvas.paste(img, (left + pad + c * (tw + pad), y))
    return canvas


def save_grid(path, rows, titles, scale=3, row_titles=None):
    """Save :func:`grid_image` as PNG at ``path``; returns ``path``.

    Parameters
    ----------
    path : str or path-like
    rows, titles, row_titles, scale
        As :func:`grid_image`.

    Returns
    -------
    ``path``
    """
    grid_image(rows, titles, row_titles=row_titles, scale=scale).save(path, format="PNG")
    return path


# -- one-call view: Captum's visualize_image_attr, and the views the seeds use ----------------------
#: the views of :func:`show` (see its docstring).
METHODS = ("heat_map", "blended_heat_map", "masked_image", "alpha_scaling", "scaled_image", "split", "original_image")
#: which part of the map is shown.
SIGNS = ("positive", "negative", "absolute", "all")
_SIGN_ALIASES = {"absolute_value": "absolute"}  # Captum's spelling
#: default share (in percent) of the largest values clipped as outliers: the complement of :data:`CLIP_PERCENTILE`.
OUTLIER_PERCENTILE = 100 - CLIP_PERCENTILE
THRESHOLDS = ("percentile", "cumulative")
_IMAGE_METHODS = ("blended_heat_map", "masked_image", "alpha_scaling", "scaled_image", "original_image")


@dataclass
class ColorBar:
    """A colour bar: ``cmap`` from ``lo`` (bottom) to ``hi`` (top), in attribution units.

    ``cmap`` names a :data:`COLORMAPS` entry, or ``"gray_inverted"`` (white at ``lo``: the
    opacity of ``"alpha_scaling"`` over a white background).
    """

    cmap: str
    lo: float
    hi: float


@dataclass
class Rendering:
    """What :func:`render` returns (and :func:`show` lays out).

    Attributes
    ----------
    tiles : list of ndarray ``(H, W, 3)`` uint8
        One tile, or two for ``"split"`` (positive, negative).
    titles : list of str
        One per tile.
    colorbars : list of ColorBar or None
        One per tile (None for ``"original_image"``).
    scale : float
        The clipping scale ``s``: values are shown as ``clip(m / s, -1, 1)``.
    normalized : ndarray ``(H, W)``
        That clipped map ``t`` in ``[-1, 1]``, after the sign filter (``"split"``: of the signed map).
    """

    tiles: list
    titles: list
    colorbars: list
    scale: float
    normalized: np.ndarray = field(repr=False)


def clip_scale(values, outlier_percentile=OUTLIER_PERCENTILE, threshold="percentile"):
    """The scale ``s`` at which a map's magnitudes are clipped, leaving out the top ``outlier_percentile`` %.

    ``threshold="percentile"``: ``s = np.percentile(|values|, 100 - outlier_percentile)``, the
    count percentile (PAIR saliency's and :func:`normalize`'s convention). ``"cumulative"``: the
    smallest sorted ``|value|`` whose cumulative sum reaches ``(100 - outlier_percentile)`` % of
    the total, Captum's ``visualize_image_attr`` (its ``outlier_perc``, default 2): a mass
    percentile, which ignores zeros and clips fewer pixels of a peaked map. If ``s`` comes out 0
    the largest magnitude is used, and 1 for an all-zero map (which then stays zero).

    Parameters
    ----------
    values : array_like of float, any shape
    outlier_percentile : float
        In ``[0, 100)``.
    threshold : ``"percentile"`` or ``"cumulative"``

    Returns
    -------
    float
        ``s > 0``.
    """
    if threshold not in THRESHOLDS:
        raise ValueError(f"threshold must be one of {THRESHOLDS}, got {threshold!r}")
    p = float(outlier_percentile)
    if not 0 <= p < 100:
        raise ValueError(f"outlier_percentile must be in [0, 100), got {outlier_percentile}")
    v = np.abs(np.asarray(values, dtype=np.float64)).ravel()
    if v.size == 0 or not v.max() > 0:
        return 1.0
    if threshold == "percentile":
        s = float(np.percentile(v, 100 - p))
    else:
        v = np.sort(v)
        cum = np.cumsum(v)
        s = float(v[min(np.searchsorted(cum, cum[-1] * (100 - p) / 100, side="left"), v.size - 1)])
    return s if s > 0 else float(v.max())


def _attr_map(attr, reduce):
    a = np.asarray(attr, dtype=np.float64)
    if a.ndim == 4:
        if a.shape[0] != 1:
            raise ValueError(f"show takes one image's attribution, got a batch of {a.shape[0]} (shape {a.shape})")
        a = a[0]
    if a.ndim not in (2, 3):
        raise ValueError(f"attr must be (H, W), (C, H, W) or (1, C, H, W), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("attr must be finite (it holds NaN or inf)")
    return to_map(a, reduce)


def _image_rgb(image, shape, value_range):
    x = np.asarray(image)
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.dtype == np.uint8 and x.ndim == 3 and x.shape[2] == 3:
        rgb = x
    elif x.ndim == 3 and x.shape[0] in (1, 3):
        rgb = image_to_rgb(x, value_range)
    elif x.ndim == 2:
        rgb = image_to_rgb(x[None], value_range)
    else:
        raise ValueError(f"image must be (C, H, W) with C = 1 or 3, (H, W), or (H, W, 3) uint8, got shape {x.shape} "
                         f"{x.dtype}")
    if rgb.shape[:2] != tuple(shape):
        raise ValueError(f"image is {rgb.shape[0]}x{rgb.shape[1]} but the attribution is {shape[0]}x{shape[1]}")
    return rgb


def render(attr, image=None, method="heat_map", sign=None, outlier_percentile=OUTLIER_PERCENTILE, *, reduce=None,
           threshold="percentile", alpha=0.5, value_range=None, clip_at=None):
    """The tiles of :func:`show` without the layout: see :func:`show` for the parameters; returns a :class:`Rendering`.

    ``clip_at``: a given clipping scale ``s > 0`` instead of the map's own (:func:`clip_scale`), so that
    several maps are drawn on one scale (:func:`sheet`).

    Parameters
    ----------
    attr, image, method, sign, outlier_percentile, reduce, threshold, alpha, value_range
        As :func:`show`.
    clip_at : float, optional
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    sign = ("all" if method == "split" else "absolute") if sign is None else _SIGN_ALIASES.get(sign, sign)
    if sign not in SIGNS:
        raise ValueError(f"sign must be one of {SIGNS}, got {sign!r}")
    if method == "split" and sign != "all":
        raise ValueError(f"method 'split' shows both signs side by side: sign must be 'all', got {sign!r}")
    if method in ("masked_image", "alpha_scaling", "scaled_image") and sign == "all":
        raise ValueError(f"method {method!r} scales the image by a magnitude: sign must be 'positive', 'negative' or "
                         "'absolute', not 'all'")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if reduce is None:  # Eq. (1) of Sundararajan et al. 2016 for their view; Captum's signed sum otherwise
        reduce = "sum_abs" if method == "scaled_image" else "sum"
    m = _attr_map(attr, reduce)
    rgb = None
    if method in _IMAGE_METHODS:
        if image is None:
            raise ValueError(f"method {method!r} needs the image")
        rgb = _image_rgb(image, m.shape, value_range)
    elif image is not None:
        _image_rgb(image, m.shape, value_range)  # still checked
    part = {"positive": np.maximum(m, 0), "negative": np.minimum(m, 0), "absolute": np.abs(m), "all": m}[sign]
    if clip_at is None:
        s = clip_scale(part, outlier_percentile, threshold)
    else:
        s = float(clip_at)
        if not (np.isfinite(s) and s > 0):
            raise ValueError(f"clip_at must be a finite positive scale, got {clip_at!r}")
    t = np.clip(part / s, -1, 1)
    mag = np.abs(t)
    heat_bar = {"all": ColorBar("signed", -s, s), "positive": ColorBar("magnitude", 0.0, s),
                "negative": ColorBar("negative", 0.0, -s), "absolute": ColorBar("magnitude", 0.0, s)}[sign]
    label = {"all": "attribution", "positive": "attribution > 0", "negative": "attribution < 0",
             "absolute": "|attribution|"}[sign]
    heat = colormap((t + 1) / 2, "signed") if sign == "all" else colormap(mag, heat_bar.cmap)
    if method == "heat_map":
        return Rendering([heat], [label], [heat_bar], s, t)
    if method == "blended_heat_map":
        gray = np.repeat((rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114]))[..., None], 3, axis=-1)
        out = (1 - alpha) * gray + alpha * heat
        return Rendering([np.round(out).astype(np.uint8)], [label], [heat_bar], s, t)
    if method in ("masked_image", "scaled_image"):
        out = rgb.astype(np.float64) * mag[..., None]
        what = "Σc|attribution|" if reduce == "sum_abs" and sign == "absolute" else label
        return Rendering([np.round(out).astype(np.uint8)], [f"image × {what}"], [ColorBar("gray", 0.0, heat_bar.hi)],
                         s, t)
    if method == "alpha_scaling":  # the image with opacity |t|, over white
        out = rgb.astype(np.float64) * mag[..., None] + 255.0 * (1 - mag[..., None])
        return Rendering([np.round(out).astype(np.uint8)], [f"opacity ∝ {label}"],
                         [ColorBar("gray_inverted", 0.0, heat_bar.hi)], s, t)
    if method == "split":
        pos, neg = colormap(np.maximum(t, 0), "magnitude"), colormap(np.maximum(-t, 0), "negative")
        return Rendering([pos, neg], ["attribution > 0", "attribution < 0"],
                         [ColorBar("magnitude", 0.0, s), ColorBar("negative", 0.0, -s)], s, t)
    return Rendering([rgb], ["image"], [None], s, t)  # original_image


# -- fonts that render σ and ² ------------------------------------------------------------------------
#: stand-ins for the symbols a font lacks (Pillow's built-in Aileron has none of these).
ASCII_FALLBACK = {"σ": "sigma", "²": "^2", "³": "^3", "−": "-", "×": "x", "·": "*", "∝": "~", "α": "alpha",
                  "β": "beta", "γ": "gamma", "ε": "eps", "Δ": "Delta", "⊙": "*", "→": "->", "≥": ">=", "≤": "<=",
                  "≈": "~", "±": "+/-", "|": "|"}


@functools.lru_cache(maxsize=1)
def font_path():
    """A TrueType font with Greek letters and superscripts, or None.

    DejaVu Sans, from matplotlib's bundled data (located without importing matplotlib) or from the
    system (Debian's ``fonts-dejavu-core``, found by Pillow's font search).
    """
    import importlib.util

    from PIL import ImageFont

    try:
        spec = importlib.util.find_spec("matplotlib")
    except (ImportError, ValueError):
        spec = None
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(root, "mpl-data", "fonts", "ttf", "DejaVuSans.ttf")
        if os.path.isfile(path):
            return path
    try:
        return ImageFont.truetype("DejaVuSans.ttf", 12).path
    except OSError:
        return None


@functools.lru_cache(maxsize=16)
def font(size=12):
    """DejaVu Sans at ``size`` px (:func:`font_path`), else Pillow's default font (whose missing glyphs :func:`fit_text`
    spells in ASCII)."""
    from PIL import ImageFont

    path = font_path()
    if path is not None:
        return ImageFont.truetype(path, size)
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 or no FreeType: the fixed bitmap font
        return ImageFont.load_default()


def has_glyphs(fnt, text):
    """Whether ``fnt`` draws every character of ``text`` (not the 'missing glyph' box).

    Parameters
    ----------
    fnt : PIL.ImageFont.FreeTypeFont or ImageFont
    text : str

    Returns
    -------
    bool
    """
    def bitmap(ch):
        m = fnt.getmask(ch)
        return m.size, bytes(m)

    missing = bitmap("\u0378")  # an unassigned code point: the font's .notdef glyph
    return all(ch.isascii() or ch.isspace() or bitmap(ch) != missing for ch in set(text))


def fit_text(fnt, text):
    """``text`` as ``fnt`` can draw it: symbols it lacks replaced by :data:`ASCII_FALLBACK` (else ``?``).

    Parameters
    ----------
    fnt : PIL.ImageFont.FreeTypeFont or ImageFont
    text : str

    Returns
    -------
    str
    """
    if has_glyphs(fnt, text):
        return text
    return "".join(ch if has_glyphs(fnt, ch) else ASCII_FALLBACK.get(ch, "?") for ch in text)


def _tick(v, fnt):
    s = "0" if v == 0 else f"{v:.3g}"
    return fit_text(fnt, s.replace("-", "−"))


def colorbar_image(bar, height, fnt, width=12):
    """A vertical colour bar ``(height, ...)`` as a Pillow image: gradient from ``bar.lo`` (bottom) to ``bar.hi`` with 3
    ticks.

    Parameters
    ----------
    bar : ColorBar
    height : int
        Pixels of the gradient.
    fnt : PIL.ImageFont.FreeTypeFont or ImageFont
        For the tick labels.
    width : int
        Pixels of the gradient.

    Returns
    -------
    PIL.Image.Image
    """
    from PIL import Image, ImageDraw

    t = np.linspace(1, 0, height)[:, None] * np.ones((1, width))  # top = 1
    if bar.cmap == "gray_inverted":  # alpha_scaling: opacity 0 shows the white background
        strip = colormap(1 - t, "gray")
    else:
        strip = colormap(t, bar.cmap)
    labels = [_tick(v, fnt) for v in (bar.hi, (bar.lo + bar.hi) / 2, bar.lo)]
    lw = int(max(fnt.getlength(s) for s in labels)) + 4
    asc = fnt.getbbox("0")[3]
    img = Image.new("RGB", (width + lw, height + asc), "white")
    img.paste(Image.fromarray(strip), (0, asc // 2))
    draw = ImageDraw.Draw(img)
    for s, y in zip(labels, (0, height / 2, height)):
        draw.line([(width - 3, asc // 2 + round(y) - (y == height)), (width, asc // 2 + round(y) - (y == height))],
                  fill="black")
        draw.text((width + 3, round(y)), s, fill="black", font=fnt, anchor="lm" if 0 < y < height else
                  ("lt" if y == 0 else "lb"))
    return img


def show(attr, image=None, method="heat_map", sign=None, outlier_percentile=OUTLIER_PERCENTILE, *, reduce=None,
         threshold="percentile", alpha=0.5, value_range=None, title=None, scale=None, font_size=12, colorbar=True,
         clip_at=None):
    """One attribution map as a labelled Pillow image with its colour bar (like Captum's ``visualize_image_attr``).

    The map is reduced over channels (``reduce``), its ``sign`` part kept, clipped at the scale
    ``s`` of :func:`clip_scale` (``outlier_percentile`` % of the largest magnitudes saturate) and
    shown as ``t = clip(part / s, -1, 1)``:

    * ``"heat_map"``: ``t`` in colour (``"signed"`` blue-white-red for ``sign="all"``,
      ``"magnitude"`` for positive/absolute, ``"negative"`` black-blue-white for negative);
    * ``"blended_heat_map"``: ``(1 - alpha)·luma(image) + alpha·heat``;
    * ``"masked_image"``: ``image · |t|`` (Captum's name);
    * ``"scaled_image"``: the same view with the channel reduction ``Σ_c |attr_c|`` by default:
      "scaling the intensities of the pixels in the original image in proportion to their
      respective scores" (Sundararajan, Taly & Yan 2016, Gradients of Counterfactuals, Eq. 1 and Fig. 1);
    * ``"alpha_scaling"``: the image with opacity ``|t|`` over white;
    * ``"split"``: positive and negative parts side by side on one scale (``s`` from ``|m|``),
      so equal magnitudes of either sign look equally strong;
    * ``"original_image"``: the image alone.

    Parameters
    ----------
    attr : ndarray ``(H, W)``, ``(C, H, W)`` or ``(1, C, H, W)``
    image : ndarray ``(C, H, W)``, ``(H, W)``, or ``(H, W, 3)`` uint8
        ``(C, H, W)`` with C = 1 or 3 is scaled by ``value_range`` (default min-max).  Needed by every method but
        ``"heat_map"`` and ``"split"``.
    method : str
        One of :data:`METHODS`.
    sign : str
        ``"positive"``, ``"negative"``, ``"absolute"`` (Captum's ``"absolute_value"`` is accepted) or
        ``"all"``; default ``"absolute"`` (Captum's default), ``"all"`` for ``"split"``.
    outlier_percentile : float in ``[0, 100)``
        Percent of the largest magnitudes clipped; default 0.5 (:data:`CLIP_PERCENTILE` 99.5).
        Captum's default is 2 with its cumulative threshold.
    reduce : str, optional
        Channel reduction of :func:`to_map` (``"sum"``, ``"sum_abs"``, ``"max_abs"``, ``"l2_squared"``);
        default ``"sum"`` (Captum), ``"sum_abs"`` for ``"scaled_image"``.
    threshold : ``"percentile"`` or ``"cumulative"``
        How ``s`` is found (:func:`clip_scale`); ``"cumulative"`` reproduces Captum's normalisation.
    alpha : float in ``[0, 1]``
        Opacity of the heat map in ``"blended_heat_map"``.
    title : str, optional
        Drawn on top (e.g. ``"SmoothGrad², σ = 0.15"``: the font renders σ and ², see :func:`font`).
    scale : int, optional
        Nearest-neighbour upscaling of the tiles; default: the smallest factor that makes them at
        least 160 pixels.
    font_size : int
    colorbar : bool
        Draw a colour bar right of each tile, in attribution units.
    clip_at : float, optional
        The clipping scale ``s`` itself (instead of :func:`clip_scale` of this map): one scale for
        several maps.

    Returns
    -------
    PIL.Image.Image
        RGB. The tiles sit at ``x = 6 + k·(tile + bar + 12)``, ``y =`` below the title lines.

    Raises
    ------
    ValueError
        Unknown method, sign or reduction; a sign the method cannot show; a missing image; shapes
        that do not match; a batch of more than one; non-finite values; parameters out of range.
    """
    from PIL import Image, ImageDraw

    r = render(attr, image, method, sign, outlier_percentile, reduce=reduce, threshold=threshold, alpha=alpha,
               value_range=value_range, clip_at=clip_at)
    h, w = r.tiles[0].shape[:2]
    if scale is None:
        scale = max(1, -(-160 // max(h, w)))
    scale = int(scale)
    if scale < 1:
        raise ValueError(f"scale must be a positive int, got {scale}")
    fnt = font(font_size)
    th, tw = h * scale, w * scale
    pad, line = 6, int(font_size * 1.4)
    bars = [colorbar_image(b, th, fnt) if (colorbar and b is not None) else None for b in r.colorbars]
    widths = [tw + (b.width + 6 if b is not None else 0) for b in bars]
    top = pad + (line if title else 0) + line
    canvas = Image.new("RGB", (pad + sum(wd + 2 * pad for wd in widths), top + th + pad + font_size // 2), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((pad, pad), fit_text(fnt, str(title)), fill="black", font=fnt)
    x = pad
    for tile, name, bar, wd in zip(r.tiles, r.titles, bars, widths):
        draw.text((x, top - line + 2), fit_text(fnt, name), fill="black", font=fnt)
        canvas.paste(Image.fromarray(tile).resize((tw, th), Image.NEAREST), (x, top))
        if bar is not None:
            canvas.paste(bar, (x + tw + 6, top - fnt.getbbox("0")[3] // 2))
        x += wd + 2 * pad
    return canvas


# -- sheets: rows of images, one column per method, one scale and one colour bar per column ----------------------
@dataclass
class Column:
    """One column of a :func:`sheet`.

    Attributes
    ----------
    title : str
        Drawn on top (wrapped; symbols the font lacks are spelt out, :func:`fit_text`).
    attrs : sequence of ndarray, or None
        One attribution per row (``(C, H, W)``, ``(1, H, W)`` or ``(H, W)``), drawn by :func:`render` with
        ``method``, ``sign``, ``reduce`` on **one clipping scale for the whole column** (the
        ``100 - outlier_percentile`` percentile of the column's values, :func:`clip_scale`), shown by one
        colour bar under the column.  None: the column shows ``tiles`` (or the images).
    tiles : sequence of ndarray ``(H, W, 3)`` uint8, optional
        Ready-made tiles (e.g. the ground truth) for a column without ``attrs``.
    subtitle : str
        A second line under the title (e.g. a metric).
    """

    title: str
    attrs: object = None
    method: str = "heat_map"
    sign: str = "all"
    reduce: str = "sum"
    outlier_percentile: float = OUTLIER_PERCENTILE
    tiles: object = None
    subtitle: str = ""


def colorbar_strip(bar, width, fnt, height=9):
    """A horizontal colour bar as a Pillow image ``width`` wide: ``bar.lo`` left, ``bar.hi`` right, 3 ticks below.

    Parameters
    ----------
    bar : ColorBar
    width : int
    fnt : PIL.ImageFont.FreeTypeFont or ImageFont
        For the tick labels.
    height : int
        Pixels of the gradient.

    Returns
    -------
    PIL.Image.Image
    """
    from PIL import Image, ImageDraw

    t = np.linspace(0, 1, width)[None, :] * np.ones((height, 1))
    strip = colormap(1 - t, "gray") if bar.cmap == "gray_inverted" else colormap(t, bar.cmap)
    def tick(v):
        a = abs(v)
        text = "0" if v == 0 else f"{v:.2g}" if 1e-2 <= a < 1e4 else f"{v:.1e}"
        return fit_text(fnt, text.replace("-", "−"))

    labels = [tick(v) for v in (bar.lo, (bar.lo + bar.hi) / 2, bar.hi)]
    if sum(fnt.getlength(t) for t in labels) + 8 > width:  # no room for three: the ends only
        labels[1] = ""
    asc = fnt.getbbox("0")[3]
    img = Image.new("RGB", (width, height + asc + 6), "white")
    img.paste(Image.fromarray(strip), (0, 0))
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 0, width - 1, height - 1], outline=(120, 120, 120))
    for label, x, anchor in zip(labels, (0, width // 2, width - 1), ("lt", "mt", "rt")):
        draw.line([(x, height), (x, height + 2)], fill="black")
        if label:
            draw.text((x, height + 3), label, fill="black", font=fnt, anchor=anchor)
    return img


def _wrap_px(fnt, text, width, lines=2):
    """``text`` wrapped into at most ``lines`` lines of at most ``width`` pixels (words, then underscores)."""
    words = str(text).replace("_", "_\u200b").replace(" ", " \u200b").split("\u200b")
    out, cur = [], ""
    for w in words:
        if cur and fnt.getlength(cur + w) > width:
            out.append(cur.rstrip())
            cur = ""
        cur += w
    out.append(cur.rstrip())
    return [ln for ln in out if ln][:lines]


def sheet(images, columns, row_titles=None, title=None, scale=1, font_size=13, value_range=(0.0, 1.0), note=None):
    """A figure a person can read: rows = images, columns = methods, each column on one scale with its colour bar.

    Parameters
    ----------
    images : sequence of ndarray ``(C, H, W)`` (values in ``value_range``) or ``(H, W, 3)`` uint8
        One per row, all the same size; columns that draw on the image (``"blended_heat_map"``, ...) use it.
    columns : sequence of :class:`Column`
        The first is usually ``Column("input")`` (no ``attrs``: the image itself).
    row_titles : sequence of str, optional
        One per row, drawn left of it; a newline separates lines (e.g. the top classes and probabilities).
    title : str, optional
        Drawn on top of the sheet.
    scale : int
        Nearest-neighbour upscaling of every tile.
    font_size : int
        DejaVu Sans where available (:func:`font`), so σ, ², Δ, × render.
    note : str, optional
        Small print under the sheet (e.g. how the maps are scaled).

    Returns
    -------
    PIL.Image.Image
    """
    from PIL import Image, ImageDraw

    images = list(images)
    if not images:
        raise ValueError("sheet needs at least one image (row)")
    rgbs = [_image_rgb(im, np.asarray(im).shape[:2] if np.asarray(im).dtype == np.uint8
                       else np.asarray(im).shape[-2:], value_range) for im in images]
    h, w = rgbs[0].shape[:2]
    if any(r.shape[:2] != (h, w) for r in rgbs):
        raise ValueError(f"sheet rows must have one size, got {sorted({r.shape[:2] for r in rgbs})}")
    if row_titles is not None and len(row_titles) != len(rgbs):
        raise ValueError(f"{len(row_titles)} row titles for {len(rgbs)} rows")
    scale = int(scale)
    if scale < 1:
        raise ValueError(f"scale must be a positive int, got {scale}")
    n = len(rgbs)
    grid, bars = [], []
    for col in columns:
        if col.attrs is None:
            tiles = list(col.tiles) if col.tiles is not None else rgbs
            if len(tiles) != n:
                raise ValueError(f"column {col.title!r} has {len(tiles)} tiles for {n} rows")
            grid.append([np.asarray(t, dtype=np.uint8) for t in tiles])
            bars.append(None)
            continue
        if len(col.attrs) != n:
            raise ValueError(f"column {col.title!r} has {len(col.attrs)} maps for {n} rows")
        sign = _SIGN_ALIASES.get(col.sign, col.sign)
        maps = [_attr_map(a, col.reduce) for a in col.attrs]
        parts = np.stack([{"positive": np.maximum(m, 0), "negative": np.minimum(m, 0), "absolute": np.abs(m),
                           "all": m}[sign] for m in maps])
        s = clip_scale(parts, col.outlier_percentile)
        renders = [render(a, rgb, col.method, sign, reduce=col.reduce, value_range=value_range, clip_at=s)
                   for a, rgb in zip(col.attrs, rgbs)]
        grid.append([r.tiles[0] for r in renders])
        bars.append(renders[0].colorbars[0])
    fnt, small = font(font_size), font(max(8, font_size - 2))
    pad, line = 8, int(font_size * 1.3)
    tw, th = w * scale, h * scale
    lefts = [ln for t in (row_titles or []) for ln in str(t).split("\n")]
    left = (int(max(fnt.getlength(fit_text(fnt, ln)) for ln in lefts)) + 2 * pad) if lefts else 0
    heads = [_wrap_px(fnt, fit_text(fnt, c.title), tw) + ([fit_text(small, c.subtitle)] if c.subtitle else [])
             for c in columns]
    head = pad + line * max(len(hd) for hd in heads) + 4
    top = (pad + line + 4) if title else 0
    bar_imgs = [colorbar_strip(b, tw, small) if b is not None else None for b in bars]
    bar_h = max((b.height for b in bar_imgs if b is not None), default=0)
    notes = [ln for para in str(note or "").split("\n") for ln in _wrap_px(small, fit_text(small, para),
                                                                             left + len(columns) * (tw + pad), 20)]
    width = left + len(columns) * (tw + pad) + pad
    height = top + head + n * (th + pad) + bar_h + pad + len(notes) * line + (pad if notes else 0)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((pad, pad), fit_text(fnt, str(title)), fill="black", font=fnt)
    for c, (col_tiles, hd) in enumerate(zip(grid, heads)):
        x = left + pad + c * (tw + pad)
        for k, ln in enumerate(hd):
            draw.text((x, top + pad + k * line), ln, fill="black" if k < len(hd) - bool(columns[c].subtitle) else
                      (90, 90, 90), font=fnt if k < len(hd) - bool(columns[c].subtitle) else small)
        for r, tile in enumerate(col_tiles):
            if tile.shape[:2] != (h, w):
                raise ValueError(f"column {columns[c].title!r}, row {r}: tile {tile.shape[:2]}, expected {(h, w)}")
            canvas.paste(Image.fromarray(tile).resize((tw, th), Image.NEAREST), (x, top + head + r * (th + pad)))
        if bar_imgs[c] is not None:
            canvas.paste(bar_imgs[c], (x, top + head + n * (th + pad)))
    for r, t in enumerate(row_titles or []):
        lines = str(t).split("\n")
        y0 = top + head + r * (th + pad) + max(0, (th - len(lines) * line) // 2)
        for k, ln in enumerate(lines):
            draw.text((pad, y0 + k * line), fit_text(fnt, ln), fill="black", font=fnt)
    y = top + head + n * (th + pad) + bar_h + pad
    for k, ln in enumerate(notes):
        draw.text((pad, y + k * line), ln, fill=(60, 60, 60), font=small)
    return canvas


__all__ = [
    "Column", "sheet", "colorbar_strip",
    "COLORMAPS", "CLIP_PERCENTILE", "colormap", "normalize", "to_rgb", "to_map", "image_to_rgb", "overlay",
    "mask_to_rgb", "outline", "grid_image", "save_grid", "METHODS", "SIGNS", "OUTLIER_PERCENTILE", "ColorBar",
    "Rendering", "clip_scale", "render", "show", "font", "font_path", "has_glyphs", "fit_text", "colorbar_image",
]
