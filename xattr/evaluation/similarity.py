"""Similarity between attribution maps: Spearman and Pearson correlation, SSIM, HOG correlation,
top-k intersection.

These are the measures of Adebayo et al. 2018 ("Sanity checks for saliency maps": Spearman
rank correlation with and without absolute values, SSIM, Pearson correlation of the maps'
histograms of oriented gradients) and Ghorbani et al. 2019
("Interpretation of neural networks is fragile": top-k intersection).  Each compares two
batches map by map and returns one value per image ``(N,)``.  A constant map has no ranks
and no top-k set: it is refused with a ``ValueError``, never turned into NaN.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage, stats

from ._common import constant_rows, flat_per_image, maps2d

__all__ = ["spearman", "pearson", "ssim", "hog_pearson", "topk_intersection", "compare_maps", "TIE_ORDER",
           "SSIM_K1", "SSIM_K2"]

#: features with equal values are ordered by their flat (raster) index, first first.
TIE_ORDER = "raster"
#: SSIM stabilising constants (Wang et al. 2004, §III-B): C1 = (K1 L)², C2 = (K2 L)².
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _pair(a, b):
    fa, fb = flat_per_image(a, "a"), flat_per_image(b, "b")
    if fa.shape != fb.shape:
        raise ValueError(f"maps to compare must have the same shape, got {np.shape(a)} and {np.shape(b)}")
    return fa, fb


def _refuse_constant(flat, name, what):
    bad = constant_rows(flat)
    if bad.size:
        raise ValueError(f"{name}[{int(bad[0])}] is constant: {what} is undefined for a constant map")


def spearman(a, b, absolute=False):
    """Spearman rank correlation per image, ranks averaged over ties.

    Parameters
    ----------
    a, b : ndarray ``(N, ...)``, same shape
    absolute : bool
        Compare ``|a|`` and ``|b|`` (Adebayo et al. 2018 report both: the sign of a map can
        flip under randomisation while its magnitude pattern stays).

    Returns
    -------
    ndarray ``(N,)`` in ``[-1, 1]``
    """
    fa, fb = _pair(a, b)
    if absolute:
        fa, fb = np.abs(fa), np.abs(fb)
    _refuse_constant(fa, "a", "the rank correlation")
    _refuse_constant(fb, "b", "the rank correlation")
    ra = stats.rankdata(fa, axis=1)
    rb = stats.rankdata(fb, axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    r = (ra * rb).sum(axis=1) / np.sqrt((ra * ra).sum(axis=1) * (rb * rb).sum(axis=1))
    return np.clip(r, -1.0, 1.0)


def pearson(a, b):
    """Pearson correlation per image of two batches of maps ``(N, ...)``; a constant map is refused.

    Parameters
    ----------
    a, b : ndarray ``(N, ...)``
        One shape.

    Returns
    -------
    ndarray ``(N,)`` in ``[-1, 1]``
    """
    fa, fb = _pair(a, b)
    _refuse_constant(fa, "a", "the correlation")
    _refuse_constant(fb, "b", "the correlation")
    fa = fa - fa.mean(axis=1, keepdims=True)
    fb = fb - fb.mean(axis=1, keepdims=True)
    r = (fa * fb).sum(axis=1) / np.sqrt((fa * fa).sum(axis=1) * (fb * fb).sum(axis=1))
    return np.clip(r, -1.0, 1.0)


def hog_pearson(a, b, orientations=9, pixels_per_cell=8, cells_per_block=3):
    """Pearson correlation of the maps' histograms of oriented gradients (Dalal & Triggs 2005), per image.

    Adebayo et al. 2018 report it among the similarity measures of the randomisation tests.  The
    descriptors are scikit-image's ``skimage.feature.hog`` (the optional extra ``segments``) with
    its defaults (9 orientations, 8x8-pixel cells, 3x3-cell blocks, L2-Hys block norm); maps must
    hold at least one block.

    Parameters
    ----------
    a, b : ``(N, H, W)`` or ``(N, 1, H, W)``
    """
    try:
        from skimage.feature import hog
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("hog_pearson needs scikit-image (pip install 'xattr-ref[segments]')") from exc
    ma, mb = maps2d(a, "a"), maps2d(b, "b")
    if ma.shape != mb.shape:
        raise ValueError(f"maps to compare must have the same shape, got {ma.shape} and {mb.shape}")
    need = int(pixels_per_cell) * int(cells_per_block)
    if min(ma.shape[1:]) < need:
        raise ValueError(f"HOG with {pixels_per_cell}-pixel cells and {cells_per_block}-cell blocks needs maps of at "
                         f"least {need}x{need}, got {ma.shape[1:]}")
    kw = dict(orientations=int(orientations), pixels_per_cell=(int(pixels_per_cell),) * 2,
              cells_per_block=(int(cells_per_block),) * 2, feature_vector=True)
    ha = np.stack([hog(m, **kw) for m in ma])  # scikit-image describes one image at a time
    hb = np.stack([hog(m, **kw) for m in mb])
    return pearson(ha, hb)


def gaussian_window(sigma=1.5):
    """The normalised 1-D Gaussian of SSIM, ``2 round(3.5 σ) + 1`` taps (11 for σ = 1.5, Wang et al. 2004)."""
    r = int(3.5 * sigma + 0.5)
    t = np.arange(-r, r + 1, dtype=np.float64)
    w = np.exp(-0.5 * (t / sigma) ** 2)
    return w / w.sum()


def _local_mean(m, w):
    r = len(w) // 2
    out = ndimage.correlate1d(ndimage.correlate1d(m, w, axis=1, mode="constant"), w, axis=2, mode="constant")
    return out[:, r:-r or None, r:-r or None]  # keep only windows that lie inside the map


def ssim(a, b, data_range=None, sigma=1.5):
    """Structural similarity (Wang et al. 2004) per image, mean over the valid windows.

    ``SSIM = (2 μa μb + C1)(2 σab + C2) / ((μa² + μb² + C1)(σa² + σb² + C2))`` with local
    statistics under a Gaussian window (σ = 1.5, 11 taps; population covariance) computed
    only where the window lies inside the map (no padding convention needed).

    Parameters
    ----------
    a, b : ndarray ``(N, H, W)`` or ``(N, 1, H, W)``; ``H, W`` at least the window size
    data_range : float, optional
        ``L`` in ``C1 = (0.01 L)²``, ``C2 = (0.03 L)²``.  Default: per image pair,
        ``max(a, b) - min(a, b)``; a pair of equal constant maps has none and is refused.
    sigma : float

    Returns
    -------
    ndarray ``(N,)``
    """
    ma, mb = maps2d(a, "a"), maps2d(b, "b")
    if ma.shape != mb.shape:
        raise ValueError(f"maps to compare must have the same shape, got {ma.shape} and {mb.shape}")
    w = gaussian_window(sigma)
    if min(ma.shape[1:]) < len(w):
        raise ValueError(f"SSIM with sigma={sigma} needs maps of at least {len(w)}x{len(w)}, got {ma.shape[1:]}")
    if data_range is None:
        lo = np.minimum(ma.min(axis=(1, 2)), mb.min(axis=(1, 2)))
        hi = np.maximum(ma.max(axis=(1, 2)), mb.max(axis=(1, 2)))
        L = hi - lo
        bad = np.flatnonzero(L == 0)
        if bad.size:
            raise ValueError(f"a[{int(bad[0])}] and b[{int(bad[0])}] are the same constant map: SSIM has no data range")
    else:
        if not np.isfinite(data_range) or data_range <= 0:
            raise ValueError(f"data_range must be a positive number, got {data_range}")
        L = np.full(len(ma), float(data_range))
    c1 = ((SSIM_K1 * L) ** 2)[:, None, None]
    c2 = ((SSIM_K2 * L) ** 2)[:, None, None]
    mu_a, mu_b = _local_mean(ma, w), _local_mean(mb, w)
    var_a = _local_mean(ma * ma, w) - mu_a**2
    var_b = _local_mean(mb * mb, w) - mu_b**2
    cov = _local_mean(ma * mb, w) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.mean(axis=(1, 2))


def top_k(flat, k):
    """Indices of the ``k`` largest values per row, ties by raster order (:data:`TIE_ORDER`)."""
    order = np.argsort(-flat, axis=1, kind="stable")
    return order[:, :k]


def topk_intersection(a, b, k):
    """Fraction of ``a``'s top-``k`` features that are also among ``b``'s top-``k`` (Ghorbani et al. 2019).

    Compares the maps as given (pass ``Σ_c |A|`` maps to follow the paper); returns ``(N,)`` in ``[0, 1]``.

    Parameters
    ----------
    a, b : ndarray ``(N, ...)``
    k : int
        ``1 <= k <=`` the number of features.

    Returns
    -------
    ndarray ``(N,)`` in ``[0, 1]``
    """
    fa, fb = _pair(a, b)
    k = int(k)
    if not 1 <= k <= fa.shape[1]:
        raise ValueError(f"k must be between 1 and the number of features {fa.shape[1]}, got {k}")
    _refuse_constant(fa, "a", "a top-k set")
    _refuse_constant(fb, "b", "a top-k set")
    ta, tb = top_k(fa, k), top_k(fb, k)
    ina = np.zeros(fa.shape, dtype=bool)
    inb = np.zeros(fb.shape, dtype=bool)
    rows = np.arange(len(fa))[:, None]
    ina[rows, ta] = True
    inb[rows, tb] = True
    return (ina & inb).sum(axis=1) / k


METRICS = ("spearman", "spearman_abs", "pearson", "ssim", "hog", "topk")


def compare_maps(a, b, metrics=("spearman", "spearman_abs"), k=None):
    """Several similarities at once: ``{name: (N,)}`` for names in ``spearman, spearman_abs, pearson,
    ssim, hog, topk``.

    ``ssim``, ``hog`` and ``topk`` act on 2-D per-pixel maps ``Σ_c |A|`` (Adebayo et al. 2018 show
    absolute maps; Ghorbani et al. 2019 sum absolute values over channels); ``topk`` needs ``k``.

    Parameters
    ----------
    a, b : ndarray ``(N, C, H, W)``
    metrics : iterable of str
    k : int, optional
        For ``topk``.

    Returns
    -------
    dict str -> ndarray ``(N,)``
    """
    out = {}
    for name in metrics:
        if name == "spearman":
            out[name] = spearman(a, b)
        elif name == "spearman_abs":
            out[name] = spearman(a, b, absolute=True)
        elif name == "pearson":
            out[name] = pearson(a, b)
        elif name in ("ssim", "topk", "hog"):
            if name == "topk" and k is None:
                raise ValueError("compare_maps: metric 'topk' needs k")
            pa, pb = pixel_magnitude(a), pixel_magnitude(b)
            if name == "ssim":
                out[name] = ssim(pa, pb)
            elif name == "hog":
                out[name] = hog_pearson(pa, pb)
            else:
                out[name] = topk_intersection(pa, pb, k)
        else:
            raise ValueError(f"unknown metric {name!r}; expected one of {METRICS}")
    return out


def pixel_magnitude(a):
    """``Σ_c |A|`` ``(N, H, W)`` from ``(N, C, H, W)``; ``|A|`` of ``(N, H, W)``."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 4:
        return np.abs(a).sum(axis=1)
    if a.ndim == 3:
        return np.abs(a)
    raise ValueError(f"maps must be (N, C, H, W) or (N, H, W), got shape {a.shape}")
