"""Localisation against ground truth: pointing game, relevance mass, relevance rank accuracy,
top-k intersection, attribution localisation, ROC AUC, Focus, weakly supervised localisation
(Simonyan et al. 2013) and multi-instance coverage.

Maps are per-pixel ``(N, H, W)`` or ``(N, 1, H, W)`` (reduce channels first with
``xattr.reduce_channels``); masks are boolean ``(N, H, W)``.  Boxes are
``(top, left, bottom, right)`` with ``bottom``/``right`` exclusive (NumPy slices).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, stats

from ._common import constant_rows, maps2d, masks2d

__all__ = [
    "pointing_game", "relevance_mass", "relevance_rank_accuracy", "topk_mask_intersection",
    "attribution_localisation", "localisation_auc", "focus", "mosaic", "threshold_map", "largest_component",
    "bounding_box", "box_iou", "weakly_supervised_localisation", "Localisation", "multi_instance_coverage",
    "Coverage",
]


def pointing_game(maps, masks, tolerance=0.0):
    """Pointing game (Zhang et al. 2016, "Top-down neural attention by excitation backprop").

    A hit when the map's maximum lies inside the mask or within ``tolerance`` pixels of it
    (Euclidean; the paper uses 15 px on 224×224 images).  Tied maxima: the first in raster
    order is the point.  A constant map points nowhere and is refused.

    Parameters
    ----------
    maps : ndarray ``(N, H, W)`` or ``(N, 1, H, W)``
        Per-pixel maps (reduce channels first: :func:`xattr.reduce_channels`).
    masks : bool array ``(N, H, W)`` (or ``(H, W)``, ``(N, 1, H, W)``)
    tolerance : float
        Pixels, ``>= 0``.

    Returns
    -------
    ndarray ``(N,)`` of bool
    """
    m = maps2d(maps)
    mk = masks2d(masks, m.shape)
    bad = constant_rows(m.reshape(len(m), -1))
    if bad.size:
        raise ValueError(f"maps[{int(bad[0])}] is constant: it has no maximum to point with")
    if tolerance < 0:
        raise ValueError(f"tolerance must be non-negative, got {tolerance}")
    idx = np.argmax(m.reshape(len(m), -1), axis=1)
    r, c = np.unravel_index(idx, m.shape[1:])
    n = np.arange(len(m))
    if tolerance == 0:
        return mk[n, r, c]
    dist = np.stack([ndimage.distance_transform_edt(~k) for k in mk])  # distance to the nearest mask pixel
    return dist[n, r, c] <= tolerance


def relevance_mass(maps, masks, positive_only=True):
    """Relevance mass accuracy (Arras et al. 2022, CLEVR-XAI): ``Σ_mask R⁺ / Σ R⁺`` per image.

    With ``positive_only`` (the paper's choice) negative relevance is ignored; otherwise
    ``|R|`` is used.  A map without positive relevance has no mass and is refused.

    Parameters
    ----------
    maps : ndarray ``(N, H, W)`` or ``(N, 1, H, W)``
        Per-pixel maps (reduce channels first: :func:`xattr.reduce_channels`).
    masks : bool array ``(N, H, W)`` (or ``(H, W)``, ``(N, 1, H, W)``)
    positive_only : bool

    Returns
    -------
    ndarray ``(N,)`` in ``[0, 1]``
    """
    m = maps2d(maps)
    mk = masks2d(masks, m.shape)
    r = np.maximum(m, 0) if positive_only else np.abs(m)
    total = r.sum(axis=(1, 2))
    bad = np.flatnonzero(total == 0)
    if bad.size:
        what = "positive relevance" if positive_only else "relevance"
        raise ValueError(f"maps[{int(bad[0])}] has no {what}: relevance mass is undefined")
    return (r * mk).sum(axis=(1, 2)) / total


def _raster_order(m):
    """Pixel indices ``(N, H*W)`` by decreasing value, ties in raster order (first first)."""
    return np.argsort(-m.reshape(len(m), -1), axis=1, kind="stable")


def relevance_rank_accuracy(maps, masks):
    """Relevance rank accuracy (Arras et al. 2022, "CLEVR-XAI", §4.2): with ``K = |mask|``, the
    fraction of the ``K`` highest-ranked pixels that lie inside the mask.

    Ties in the ranking: raster order (Quantus sorts with an unstable ``argsort``).

    Parameters
    ----------
    maps : ndarray ``(N, H, W)`` or ``(N, 1, H, W)``
        Per-pixel maps (reduce channels first: :func:`xattr.reduce_channels`).
    masks : bool array ``(N, H, W)`` (or ``(H, W)``, ``(N, 1, H, W)``)

    Returns
    -------
    ndarray ``(N,)`` in ``[0, 1]``
    """
    m = maps2d(maps)
    mk = masks2d(masks, m.shape)
    K = mk.reshape(len(mk), -1).sum(axis=1)
    inside = np.take_along_axis(mk.reshape(len(mk), -1), _raster_order(m), axis=1)  # mask value in rank order
    top = np.arange(inside.shape[1])[None] < K[:, None]
    return (inside & top).sum(axis=1) / K


def topk_mask_intersection(maps, masks, k):
    """Top-k intersection with a mask (Theiner et al. 2022, "Interpretable semantic photo
    geolocation"; Quantus' ``TopKIntersection``): the fraction of the ``k`` highest-ranked pixels
    that lie inside the mask (ties: raster order).

    Not :func:`xattr.evaluation.similarity.topk_intersection`, which compares two maps.

    Parameters
    ----------
    maps : ndarray ``(N, H, W)`` or ``(N, 1, H, W)``
        Per-pixel maps (reduce channels first: :func:`xattr.reduce_channels`).
    masks : bool array ``(N, H, W)`` (or ``(H, W)``, ``(N, 1, H, W)``)
    k : int
        ``1 <= k <= H·W``.

    Returns
    -------
    ndarray ``(N,)`` in ``[0, 1]``
    """
    m = maps2d(maps)
    mk = masks2d(masks, m.shape)
    k = int(k)
    F = m.shape[1] * m.shape[2]
    if not 1 <= k <= F:
        raise ValueError(f"k must be between 1 and the number of pixels {F}, got {k}")
    top = _raster_order(m)[:, :k]
    return np.take_along_axis(mk.reshape(len(mk), -1), top, axis=1).mean(axis=1)


def attribution_localisation(maps, masks, weighted=False):
    """Attribution localisation (Kohlbrenner et al. 2020, "Towards best practice in explaining
    neural network decisions with LRP", §4.2).

    ``μ = R⁺_in / R⁺_tot``: the share of the positive relevance inside the object's mask (their
    bounding box); ``weighted`` gives ``μ_w = μ · S_tot / S_in``, which corrects for the object's
    size (``S``: pixel counts), 1 for a map that is uniform over the image.  The unweighted
    value is :func:`relevance_mass` with ``positive_only=True``.

    Parameters
    ----------
    maps : ndarray ``(N, H, W)`` or ``(N, 1, H, W)``
        Per-pixel maps (reduce channels first: :func:`xattr.reduce_channels`).
    masks : bool array ``(N, H, W)`` (or ``(H, W)``, ``(N, 1, H, W)``)
    weighted : bool

    Returns
    -------
    ndarray ``(N,)``
    """
    m = maps2d(maps)
    mk = masks2d(masks, m.shape)
    mu = relevance_mass(m, mk, positive_only=True)
    if not weighted:
        return mu
    s_in = mk.reshape(len(mk), -1).sum(axis=1)
    return mu * (m.shape[1] * m.shape[2]) / s_in


def localisation_auc(maps, masks):
    """Area under the ROC curve of the map as a detector of the mask's pixels (Fawcett 2006).

    The probability that a random pixel of the mask has a higher value than a random pixel
    outside it, ties counting one half: ``AUC = (R⁺ - n⁺(n⁺ + 1)/2) / (n⁺ n⁻)`` with ``R⁺`` the sum
    of the mask pixels' ranks (average ranks over ties; the Mann–Whitney statistic).  The mask
    must leave pixels on both sides.

    Parameters
    ----------
    maps : ndarray ``(N, H, W)`` or ``(N, 1, H, W)``
        Per-pixel maps (reduce channels first: :func:`xattr.reduce_channels`).
    masks : bool array ``(N, H, W)`` (or ``(H, W)``, ``(N, 1, H, W)``)

    Returns
    -------
    ndarray ``(N,)`` in ``[0, 1]``
    """
    m = maps2d(maps)
    mk = masks2d(masks, m.shape).reshape(len(m), -1)
    pos = mk.sum(axis=1)
    neg = mk.shape[1] - pos
    full = np.flatnonzero(neg == 0)
    if full.size:
        raise ValueError(f"masks[{int(full[0])}] covers the whole map: the ROC AUC needs pixels outside the mask")
    r = stats.rankdata(m.reshape(len(m), -1), axis=1)
    return ((r * mk).sum(axis=1) - pos * (pos + 1) / 2) / (pos * neg)


QUADRANTS = ("top-left", "top-right", "bottom-left", "bottom-right")


def mosaic(top_left, top_right, bottom_left, bottom_right):
    """A 2x2 mosaic of four image batches ``(N, C, H, W)`` -> ``(N, C, 2H, 2W)`` (for :func:`focus`).

    Parameters
    ----------
    top_left, top_right, bottom_left, bottom_right : ndarray ``(N, C, H, W)``
        One shape for all four.

    Returns
    -------
    ndarray ``(N, C, 2H, 2W)``
    """
    parts = [np.asarray(p) for p in (top_left, top_right, bottom_left, bottom_right)]
    if len({p.shape for p in parts}) != 1 or parts[0].ndim != 4:
        raise ValueError(f"mosaic needs four (N, C, H, W) batches of one shape, got {[p.shape for p in parts]}")
    return np.concatenate([np.concatenate(parts[:2], axis=3), np.concatenate(parts[2:], axis=3)], axis=2)


def focus(maps, quadrants):
    """Focus (Arias-Duart et al. 2022, "Focus! Rating XAI methods and finding biases"), on mosaics.

    A mosaic holds four images (:func:`mosaic`), some of the explained class; Focus is the
    share of the positive relevance that falls on the quadrants of that class:
    ``Σ_{q of the class} R⁺_q / Σ_q R⁺_q``.

    Parameters
    ----------
    maps : ``(N, 2H, 2W)`` or ``(N, 1, 2H, 2W)`` maps of mosaics (even height and width)
    quadrants : bool ``(N, 4)`` or ``(4,)``
        Which quadrants hold the class, in the order of :data:`QUADRANTS` (top-left,
        top-right, bottom-left, bottom-right).

    Returns
    -------
    ndarray ``(N,)`` in ``[0, 1]``
    """
    m = maps2d(maps)
    n, H, W = m.shape
    if H % 2 or W % 2:
        raise ValueError(f"focus needs maps of 2x2 mosaics with even height and width, got {H}x{W}")
    q = np.asarray(quadrants)
    if q.shape == (4,):
        q = np.broadcast_to(q, (n, 4))
    if q.shape != (n, 4):
        raise ValueError(f"quadrants must have shape (N, 4) = ({n}, 4) or (4,), got {q.shape}")
    if q.dtype != bool and not np.all(np.isin(q, (0, 1))):
        raise ValueError("quadrants must be boolean (or 0/1)")
    q = q.astype(bool)
    if not np.all(q.any(axis=1)):
        raise ValueError(f"quadrants[{int(np.flatnonzero(~q.any(axis=1))[0])}] marks no quadrant of the class")
    r = np.maximum(m, 0).reshape(n, 2, H // 2, 2, W // 2).sum(axis=(2, 4)).reshape(n, 4)  # R⁺ per quadrant
    total = r.sum(axis=1)
    bad = np.flatnonzero(total == 0)
    if bad.size:
        raise ValueError(f"maps[{int(bad[0])}] has no positive relevance: Focus is undefined")
    return (r * q).sum(axis=1) / total


def threshold_map(maps, method="quantile", level=0.95):
    """Foreground masks ``(N, H, W)`` from maps.

    ``method="quantile"``: pixels ``>=`` the ``level`` quantile of the map (Simonyan et al.
    2013 take the 95% quantile as foreground); ``method="max_fraction"``: pixels ``>=``
    ``level`` times the map's maximum (Zhou et al. 2016 use 20% of the max for CAM).

    Parameters
    ----------
    maps : ndarray ``(N, H, W)`` or ``(N, 1, H, W)``
        Per-pixel maps (reduce channels first: :func:`xattr.reduce_channels`).
    method : ``"quantile"`` or ``"max_fraction"``
    level : float
        In ``[0, 1]``.

    Returns
    -------
    bool array ``(N, H, W)``
    """
    m = maps2d(maps)
    if not 0 <= level <= 1:
        raise ValueError(f"level must be in [0, 1], got {level}")
    bad = constant_rows(m.reshape(len(m), -1))
    if bad.size:
        raise ValueError(f"maps[{int(bad[0])}] is constant: no foreground can be thresholded from it")
    if method == "quantile":
        t = np.quantile(m.reshape(len(m), -1), level, axis=1)
    elif method == "max_fraction":
        mx = m.max(axis=(1, 2))
        if np.any(mx <= 0):
            raise ValueError("method='max_fraction' needs a positive maximum in every map")
        t = level * mx
    else:
        raise ValueError(f"method must be 'quantile' or 'max_fraction', got {method!r}")
    return m >= t[:, None, None]


def largest_component(mask, connectivity=2):
    """The largest connected component of a 2-D boolean mask (``scipy.ndimage.label``).

    ``connectivity``: 1 (4-neighbours) or 2 (8-neighbours, default).  Equal sizes: the
    component whose first pixel comes first in raster order.

    Parameters
    ----------
    mask : bool array ``(H, W)``
    connectivity : 1 or 2

    Returns
    -------
    bool array ``(H, W)``
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    if connectivity not in (1, 2):
        raise ValueError(f"connectivity must be 1 or 2, got {connectivity}")
    labels, n = ndimage.label(mask, structure=ndimage.generate_binary_structure(2, connectivity))
    if n == 0:
        raise ValueError("the mask is empty: it has no connected component")
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (int(np.argmax(sizes)) + 1)  # labels are numbered in raster order; argmax takes the first


def bounding_box(mask):
    """``(top, left, bottom, right)`` of a non-empty 2-D mask, bottom/right exclusive."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2 or not mask.any():
        raise ValueError(
            f"bounding_box needs a non-empty 2-D mask, got shape {mask.shape} with {int(mask.sum())} pixels"
        )
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def box_iou(a, b):
    """Intersection over union of boxes ``(..., 4)`` ``(top, left, bottom, right)``, bottom/right exclusive.

    Parameters
    ----------
    a, b : array_like ``(..., 4)``
        Broadcastable, non-empty boxes.

    Returns
    -------
    ndarray, the broadcast shape ``(...)``, float64
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape[-1] != 4 or b.shape[-1] != 4:
        raise ValueError(f"boxes must have 4 coordinates (top, left, bottom, right), got {a.shape} and {b.shape}")
    for name, box in (("a", a), ("b", b)):
        if np.any(box[..., 2] <= box[..., 0]) or np.any(box[..., 3] <= box[..., 1]):
            raise ValueError(f"box {name} is empty (bottom <= top or right <= left): {box}")
    ih = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    iw = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = ih * iw
    area = lambda z: (z[..., 2] - z[..., 0]) * (z[..., 3] - z[..., 1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


@dataclass
class Localisation:
    """Weakly supervised localisation: predicted boxes ``(N, 4)``, their IoU ``(N,)`` with the truth, the masks used."""

    boxes: np.ndarray
    iou: np.ndarray
    components: np.ndarray

    def accuracy(self, iou_threshold=0.5):
        """Fraction of images localised with IoU ``>= iou_threshold`` (ILSVRC's criterion is 0.5)."""
        return float(np.mean(self.iou >= iou_threshold))


def weakly_supervised_localisation(maps, truth, method="quantile", level=0.95, connectivity=2):
    """Saliency-based localisation as in Simonyan et al. 2013, §3.1 (without their GraphCut step).

    Threshold the map (:func:`threshold_map`), keep the largest connected component
    (:func:`largest_component`), take its bounding box and its IoU with the ground truth.

    Parameters
    ----------
    maps : ``(N, H, W)`` or ``(N, 1, H, W)``
    truth : boolean masks ``(N, H, W)`` (their bounding boxes are the truth) or boxes ``(N, 4)``
    """
    m = maps2d(maps)
    t = np.asarray(truth)
    if t.ndim == 2 and t.shape == (len(m), 4):
        true_boxes = t.astype(np.float64)
    else:
        mk = masks2d(t, m.shape, name="truth")
        true_boxes = np.array([bounding_box(k) for k in mk], dtype=np.float64)
    fg = threshold_map(m, method, level)
    comps = np.stack([largest_component(f, connectivity) for f in fg])
    boxes = np.array([bounding_box(c) for c in comps])
    return Localisation(boxes, box_iou(boxes, true_boxes), comps)


@dataclass
class Coverage:
    """Relevance on each of several objects.

    ``mass (N, K)``: share of the positive relevance on instance ``k`` (0 where absent);
    ``present (N, K)``: whether image ``n`` contains instance ``k``; ``found (N, K)``:
    present and ``mass >= min_share``; ``n_found (N,)``.
    """

    mass: np.ndarray
    present: np.ndarray
    found: np.ndarray
    n_found: np.ndarray


def multi_instance_coverage(maps, instances, min_share=0.1):
    """How the positive relevance splits over several object instances (the seeds' point that
    maps often highlight one object of several).

    Parameters
    ----------
    maps : ``(N, H, W)`` or ``(N, 1, H, W)``
    instances : int array ``(N, H, W)``: 0 background, ``1..K`` the instances; or boolean masks
        ``(N, K, H, W)``, one per instance, as :func:`xattr.data.make_shapes` returns them in
        ``instance_masks`` (pass ``batch.instance_masks`` as it is)
    min_share : float
        An instance counts as found when it holds at least this share of the positive
        relevance (our threshold, stated; 0.1 by default).
    """
    m = maps2d(maps)
    lab = np.asarray(instances)
    if lab.ndim == 4 and lab.dtype == bool:  # one mask per instance (make_shapes' instance_masks)
        if (lab.shape[0],) + lab.shape[2:] != m.shape:
            raise ValueError(f"instance masks must have shape (N, K, H, W) with (N, H, W) = {m.shape}, got {lab.shape}")
        onehot = lab
        if not onehot.any():
            raise ValueError("instances holds no object (every instance mask is empty)")
        return _coverage(m, onehot, min_share)
    if lab.shape != m.shape:
        raise ValueError(
            f"instances must be labels of the maps' shape {m.shape} or boolean masks (N, K, H, W), got {lab.shape}"
        )
    if lab.dtype.kind not in "iu" or lab.min() < 0:
        raise ValueError("instances must be a non-negative integer label array (0 = background)")
    k = int(lab.max())
    if k == 0:
        raise ValueError("instances holds no object (all labels are 0)")
    return _coverage(m, lab[:, None] == np.arange(1, k + 1)[None, :, None, None], min_share)


def _coverage(m, onehot, min_share):
    """Coverage from maps ``(N, H, W)`` and instance masks ``onehot (N, K, H, W)``."""
    r = np.maximum(m, 0)
    total = r.sum(axis=(1, 2))
    bad = np.flatnonzero(total == 0)
    if bad.size:
        raise ValueError(f"maps[{int(bad[0])}] has no positive relevance: its coverage is undefined")
    mass = (onehot * r[:, None]).sum(axis=(2, 3)) / total[:, None]
    present = onehot.any(axis=(2, 3))
    found = present & (mass >= min_share)
    return Coverage(mass, present, found, found.sum(axis=1))
