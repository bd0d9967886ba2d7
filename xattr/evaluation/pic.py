"""Performance information curves, PIC (Kapishnikov et al. 2019, "XRAI: better attributions through
regions", §4; PAIR's ``saliency.metrics.pic``): SIC (softmax information curve) and AIC (accuracy
information curve).

An image is "blurred" by keeping only a few random pixels (1%) plus its 4 corners and filling
every other pixel by linear interpolation over the Delaunay triangulation of the kept ones.
Then the pixels the map ranks highest (the top 0.5%, 1%, ..., 75%) are revealed, the image is
re-interpolated, and for each step two numbers are recorded: its information content, estimated
by the size of its lossless WebP encoding, and the model's softmax score of the target (SIC) or
whether the model is right (AIC), both normalised so that the fully blurred image is 0 and the
original is 1.  The curve is the score as a function of the information, interpolated at
``n_points`` equally spaced information levels; a good map buys score with little information
(high AUC).  Images on which the method cannot be used (model not confident enough on the
original, or the blurred image scoring or weighing as much as the original) are flagged in
``valid`` and left out of :meth:`Pic.aggregate`, where PAIR raises ``ComputePicMetricError``.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from scipy import interpolate

from .._conventions import as_rng
from . import _perturb as P
from ._common import maps2d

__all__ = ["pic_curve", "Pic", "random_pixel_mask", "interpolated_image", "image_entropy", "PIC_THRESHOLDS"]

#: fractions of the most salient pixels revealed (PAIR's example thresholds, used in the XRAI paper).
PIC_THRESHOLDS = (0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.07, 0.10, 0.13, 0.21, 0.34, 0.5, 0.75)
#: fraction of random pixels kept in the fully blurred image (PAIR's ``generate_random_mask`` default).
RANDOM_FRACTION = 0.01


def random_pixel_mask(shape, rng, fraction=RANDOM_FRACTION):
    """Boolean masks ``(N, H, W)`` with ``int(H W · fraction)`` pixels per image chosen without replacement.

    Parameters
    ----------
    shape : tuple of int ``(N, H, W)`` or ``(H, W)`` (then ``N = 1``)
    rng : numpy.random.Generator or int
    fraction : float
        In ``[0, 1]``.

    Returns
    -------
    bool array ``(N, H, W)``
    """
    n, h, w = (1,) + tuple(shape) if len(shape) == 2 else tuple(shape)
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    k = int(h * w * fraction)
    gen = as_rng(rng)
    order = np.argsort(gen.random((n, h * w)), axis=1)[:, :k]
    m = np.zeros((n, h * w), dtype=bool)
    np.put_along_axis(m, order, True, axis=1)
    return m.reshape(n, h, w)


def interpolated_image(x, known):
    """PAIR's blurred image: ``known`` pixels (and always the 4 corners) kept, the others interpolated.

    Linear interpolation over the Delaunay triangulation of the kept pixels' (row, column)
    positions (``scipy.interpolate.LinearNDInterpolator``, all channels at once); with the
    corners kept every pixel lies inside the hull.

    Parameters
    ----------
    x : ndarray ``(N, C, H, W)``
    known : bool ``(N, H, W)``

    Returns
    -------
    ndarray of ``x``'s shape and dtype
    """
    x = P.images(x)
    n, c, h, w = x.shape
    k = np.array(known, dtype=bool)
    if k.shape != (n, h, w):
        raise ValueError(f"known must be a boolean mask (N, H, W) = ({n}, {h}, {w}), got {k.shape}")
    k[:, [0, 0, h - 1, h - 1], [0, w - 1, 0, w - 1]] = True
    out = np.array(x, dtype=np.float64)
    grid = np.argwhere(np.ones((h, w), dtype=bool))
    for i in range(n):  # one triangulation per mask
        if k[i].all():
            continue
        pts = np.argwhere(k[i])
        vals = out[i][:, k[i]].T  # (P, C)
        f = interpolate.LinearNDInterpolator(pts, vals, fill_value=np.nan)
        miss = ~k[i].ravel()
        filled = f(grid[miss])
        mean = out[i].mean(axis=(1, 2))
        filled = np.where(np.isnan(filled), mean[None], filled)  # outside the hull: the channel mean (PAIR's fill)
        flat = out[i].reshape(c, -1)
        flat[:, miss] = filled.T
    return out.astype(x.dtype, copy=False)


def _quantised(x, data_range):
    n = x.shape[0]
    if data_range is None:
        lo = x.min(axis=(1, 2, 3), keepdims=True)
        hi = x.max(axis=(1, 2, 3), keepdims=True)
    else:
        lo, hi = (np.full((n, 1, 1, 1), float(v)) for v in data_range)
    span = np.where(hi > lo, hi - lo, 1.0)
    return np.clip(np.round((x - lo) / span * 255.0), 0, 255).astype(np.uint8)


def image_entropy(x, data_range=None):
    """Estimated information content of each image ``(N,)``: the byte size of its lossless WebP encoding.

    PAIR's ``estimate_image_entropy`` encodes uint8 images; here each image is quantised to
    uint8 over ``data_range = (lo, hi)`` (default its own min and max).  One or three channels
    are encoded as a grey or RGB image; other channel counts as one grey image per channel,
    sizes summed (our choice).

    Parameters
    ----------
    x : ndarray ``(N, C, H, W)``
    data_range : tuple of float ``(lo, hi)``, optional

    Returns
    -------
    ndarray ``(N,)``
        Bytes.
    """
    from PIL import Image

    x = P.images(x)
    q = _quantised(np.asarray(x, dtype=np.float64), data_range)
    sizes = np.empty(len(q))
    for i, img in enumerate(q):  # the encoder works on one image at a time
        planes = [img.transpose(1, 2, 0)] if img.shape[0] == 3 else [p for p in img]
        total = 0
        for p in planes:
            buf = io.BytesIO()
            Image.fromarray(np.ascontiguousarray(p)).save(buf, format="webp", lossless=True, quality=100)
            total += buf.tell()
        sizes[i] = total
    return sizes


@dataclass
class Pic:
    """Result of :func:`pic_curve`.

    Attributes
    ----------
    curve_x : ndarray ``(P,)``
        Normalised information levels ``0, 1/n, ..., (n-1)/n, 1``.
    curve_y : ndarray ``(N, P)``
        Normalised score at each level (zeros for invalid images).
    auc : ndarray ``(N,)``
        Trapezoid area under each curve (0 for invalid images).
    valid : ndarray ``(N,)`` of bool
    reasons : list of str
        Why each invalid image was left out ("" for valid ones).
    information, scores : ndarray ``(N, T + 2)``
        Raw entropy estimates and scores of the fully blurred image, each threshold, the original.
    thresholds : tuple
    """

    curve_x: np.ndarray
    curve_y: np.ndarray
    auc: np.ndarray
    valid: np.ndarray
    reasons: list
    information: np.ndarray
    scores: np.ndarray
    thresholds: tuple = field(default=PIC_THRESHOLDS)

    def aggregate(self, method="median"):
        """The aggregated curve over valid images ``(curve_y (P,), auc)``: median (PAIR's default) or mean."""
        if not self.valid.any():
            raise ValueError("no valid image: the PIC cannot be aggregated")
        ys = self.curve_y[self.valid]
        if method == "median":
            y = np.median(ys, axis=0)
        elif method == "mean":
            y = ys.mean(axis=0)
        else:
            raise ValueError(f"method must be 'median' or 'mean', got {method!r}")
        return y, float(((y[1:] + y[:-1]) / 2 * np.diff(self.curve_x)).sum())


def pic_curve(model, x, target, attribution, kind="sic", thresholds=PIC_THRESHOLDS, random_mask=None, rng=None,
        random_fraction=RANDOM_FRACTION, min_pred_value=0.8, keep_monotonous=True, n_points=1000, data_range=None,
        batch_size=None, quantise=False):
    """Softmax (SIC) or accuracy (AIC) information curve of each image (Kapishnikov et al. 2019).

    For threshold ``t``: reveal the pixels with ``map >= quantile(map, 1 - t)`` together with the
    random mask, interpolate the rest (:func:`interpolated_image`), estimate the information
    ``e_t`` (:func:`image_entropy`) and the score ``s_t``; normalise
    ``ê_t = clip((e_t - e_b) / (e_o - e_b), 0, 1)``, ``ŝ_t = clip((s_t - s_b) / (s_o - s_b), 0, 1)``
    (``b``: fully blurred, ``o``: original); with ``keep_monotonous`` (the paper's) ``ŝ_t`` is the
    running maximum over thresholds.  The points ``(ê_t, ŝ_t)`` plus ``(0, 0)`` and ``(1, 1)``,
    sorted by ``ê`` (stable), are linearly interpolated at ``n_points`` levels ``k / n_points``
    and the level 1 is appended with score 1 (as PAIR).

    Parameters
    ----------
    kind : ``"sic"`` (softmax of the target) or ``"aic"`` (1 where the arg-max is the target)
    thresholds : increasing fractions in ``(0, 1]``
    random_mask : bool ``(N, H, W)`` or ``(H, W)``, optional
        The pixels kept in the fully blurred image; default drawn with ``rng``
        (:func:`random_pixel_mask`, ``random_fraction`` of the pixels).  Use the same mask to
        compare methods on an image.
    min_pred_value : float
        Images whose original score is below it are invalid (PAIR: 0.8).
    data_range : (lo, hi), optional
        Range quantised to uint8 for the entropy estimate; default each image's own.

    quantise : bool
        Give the model the interpolated images rounded to the 256 levels of the entropy estimate's
        quantisation (PAIR's pipeline works on uint8 images and rounds after interpolating); by
        default the model sees them in floating point.

    Returns
    -------
    Pic
    """
    x = P.images(x)
    m = maps2d(attribution, "attribution")
    n, c, h, w = x.shape
    if m.shape != (n, h, w):
        raise ValueError(f"attribution must be per-pixel maps (N, H, W) = ({n}, {h}, {w}), got {np.shape(attribution)}")
    if kind not in ("sic", "aic"):
        raise ValueError(f"kind must be 'sic' or 'aic', got {kind!r}")
    t = np.asarray(thresholds, dtype=np.float64).ravel()
    if t.size == 0 or np.any(t <= 0) or np.any(t > 1) or np.any(np.diff(t) <= 0):
        raise ValueError(f"thresholds must be increasing fractions in (0, 1], got {thresholds}")
    if random_mask is None:
        if rng is None:
            raise TypeError("pic draws the random pixel mask: pass rng (a Generator or an int seed) or random_mask")
        random_mask = random_pixel_mask((n, h, w), rng, random_fraction)
    rm = np.asarray(random_mask)
    if rm.shape == (h, w):
        rm = np.broadcast_to(rm, (n, h, w))
    if rm.shape != (n, h, w) or rm.dtype != bool:
        raise ValueError(f"random_mask must be boolean (N, H, W) or (H, W), got {rm.dtype} {rm.shape}")
    n_points = int(n_points)
    if n_points < 1:
        raise ValueError(f"n_points must be a positive int, got {n_points}")
    flat = m.reshape(n, -1)
    q = np.quantile(flat, 1 - t, axis=1).T  # (N, T), numpy's linear quantile as PAIR
    reveal = flat[:, None, :] >= q[:, :, None]  # (N, T, H*W)
    masks = np.concatenate([rm.reshape(n, 1, -1), reveal | rm.reshape(n, 1, -1)], axis=1)  # blurred, thresholds
    T1 = masks.shape[1]
    xs = np.broadcast_to(x[:, None], (n, T1) + x.shape[1:]).reshape((-1,) + x.shape[1:])
    blurred = interpolated_image(xs, masks.reshape(-1, h, w)).reshape((n, T1) + x.shape[1:])
    if data_range is None:  # every step is quantised over its original image's range
        lo, hi = x.min(axis=(1, 2, 3)), x.max(axis=(1, 2, 3))
    else:
        lo, hi = np.full(n, float(data_range[0])), np.full(n, float(data_range[1]))
    if quantise:
        l4, s4 = lo[:, None, None, None, None], np.where(hi > lo, hi - lo, 1.0)[:, None, None, None, None]
        blurred = (l4 + np.clip(np.round((blurred - l4) / s4 * 255.0), 0, 255) * s4 / 255.0).astype(x.dtype)
    stack = np.concatenate([blurred, x[:, None]], axis=1)  # (N, T + 2, C, H, W)
    info = np.stack([_entropies(stack[:, j], lo, hi) for j in range(T1 + 1)], axis=1)
    scorer = P.Scorer(model, x, target, "probability" if kind == "sic" else "accuracy")
    scores = P.score_stack(scorer, lambda a, b: np.moveaxis(stack[:, a:b], 1, 0), T1 + 1, n, batch_size).T
    e_b, e_o, s_b, s_o = info[:, 0], info[:, -1], scores[:, 0], scores[:, -1]
    reasons = []
    for i in range(n):
        if s_o[i] < min_pred_value:
            reasons.append(f"the score on the original image {s_o[i]:.4g} is below min_pred_value={min_pred_value}")
        elif e_b[i] >= e_o[i]:
            reasons.append("the fully blurred image holds as much information as the original")
        elif s_b[i] >= s_o[i]:
            reasons.append("the fully blurred image scores at least as high as the original")
        else:
            reasons.append("")
    valid = np.array([r == "" for r in reasons])
    curve_x = np.append(np.linspace(0.0, 1.0, n_points, endpoint=False), 1.0)
    curve_y = np.zeros((n, n_points + 1))
    for i in np.flatnonzero(valid):  # a handful of points per image
        ex = np.clip((info[i, 1:-1] - e_b[i]) / (e_o[i] - e_b[i]), 0.0, 1.0)
        sy = np.clip((scores[i, 1:-1] - s_b[i]) / (s_o[i] - s_b[i]), 0.0, 1.0)
        if keep_monotonous:
            sy = np.maximum.accumulate(sy)
        px = np.concatenate([ex, [0.0, 1.0]])
        py = np.concatenate([sy, [0.0, 1.0]])
        o = np.argsort(px, kind="stable")
        curve_y[i, :-1] = np.interp(curve_x[:-1], px[o], py[o])
        curve_y[i, -1] = 1.0
    auc = np.where(valid, ((curve_y[:, 1:] + curve_y[:, :-1]) / 2 * np.diff(curve_x)).sum(axis=1), 0.0)
    return Pic(curve_x, curve_y, auc, valid, reasons, info, scores, tuple(t))


def _entropies(imgs, lo, hi):
    """:func:`image_entropy` of ``imgs (N, C, H, W)`` quantised over per-image ranges ``lo, hi (N,)``."""
    out = np.empty(len(imgs))
    for i in range(len(imgs)):
        out[i] = image_entropy(imgs[i : i + 1], (lo[i], hi[i]))[0]
    return out
