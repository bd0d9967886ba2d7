"""Localisation against ground truth: pointing game, relevance mass, weakly supervised
localisation (Simonyan et al. 2013) and multi-instance coverage.

Maps are per-pixel ``(N, H, W)`` or ``(N, 1, H, W)`` (reduce channels first with
``xattr.reduce_channels``); masks are boolean ``(N, H, W)``.  Boxes are
``(top, left, bottom, right)`` with ``bottom``/``right`` exclusive (NumPy slices).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ._common import constant_rows, maps2d, masks2d

__all__ = [
    "pointing_game", "relevance_mass", "threshold_map", "largest_component", "bounding_box", "box_iou",
    "weakly_supervised_localisation", "Localisation", "multi_instance_coverage", "Coverage",
]


def pointing_game(maps, masks, tolerance=0.0):
    """Pointing game (Zhang et al. 2016, "Top-down neural attention by excitation backprop").

    A hit when the map's maximum lies inside the mask or within ``tolerance`` pixels of it
    (Euclidean; the paper uses 15 px on 224×224 images).  Tied maxima: the first in raster
    order is the point.  A constant map points nowhere and is refused.

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


def threshold_map(maps, method="quantile", level=0.95):
    """Foreground masks ``(N, H, W)`` from maps.

    ``method="quantile"``: pixels ``>=`` the ``level`` quantile of the map (Simonyan et al.
    2013 take the 95% quantile as foreground); ``method="max_fraction"``: pixels ``>=``
    ``level`` times the map's maximum (Zhou et al. 2016 use 20% of the max for CAM).
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
        raise ValueError(f"bounding_box needs a non-empty 2-D mask, got shape {mask.shape} with {int(mask.sum())} pixels")
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def box_iou(a, b):
    """Intersection over union of boxes ``(..., 4)`` ``(top, left, bottom, right)``, bottom/right exclusive."""
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
