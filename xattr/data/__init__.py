"""Synthetic shapes with ground truth: the data the demo model is trained on and explained with.

:func:`make_shapes` draws ``n`` small RGB images, each holding one object (or, with
``instances=2``, two objects) of one of a few shape classes (:data:`SHAPES`) at a random
position, size, rotation and colour, over a textured background (random colour gratings and
pixel noise) with small distractors (thin line segments and dots, never a class shape).
It returns the images ``(N, 3, H, W)`` in ``[0, 1]``, the labels ``(N,)`` and the ground-truth
masks ``(N, H, W)`` of exactly the pixels the object(s) cover.  Objects are drawn opaque and
last, so an image's object pixels all carry the object's colour.

Everything is vectorized over the batch (a loop over the handful of distractors and instances
only) and deterministic under the ``rng`` seed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._conventions import as_rng

#: the shape classes, in label order.
SHAPES = ("square", "disk", "triangle", "cross")

#: default image side.  32 pixels keep the pure-NumPy training of the shipped model to a few
#: minutes on 2 cores (64×64 costs 4× more per image) while every shape stays recognisable:
#: object radii are 4.5-8 pixels (see :func:`make_shapes`).
DEFAULT_SIZE = 32


@dataclass
class ShapesBatch:
    """What :func:`make_shapes` returns.

    Attributes
    ----------
    images : ndarray ``(N, 3, H, W)``, values in ``[0, 1]``
    labels : ndarray ``(N,)`` int64, indices into ``classes``
    masks : ndarray ``(N, H, W)`` bool, the pixels covered by the object(s)
    instance_masks : ndarray ``(N, k, H, W)`` bool, one mask per instance (``k = instances``)
    params : dict of ndarrays
        The drawn objects: ``center (N, k, 2)`` as (row, col), ``radius (N, k)``,
        ``angle (N, k)`` in radians, ``color (N, 3)``.
    classes : tuple of str
    """

    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    instance_masks: np.ndarray
    params: dict = field(default_factory=dict)
    classes: tuple = SHAPES

    def __len__(self):
        return len(self.labels)

    def __iter__(self):  # images, labels, masks = make_shapes(...)
        return iter((self.images, self.labels, self.masks))


def shape_mask(kind, rows, cols, center, radius, angle):
    """Pixels inside a shape, vectorized over a batch.

    Parameters
    ----------
    kind : str, one of :data:`SHAPES`
    rows, cols : ndarray ``(H, W)``
        Pixel-centre coordinates.
    center : ndarray ``(N, 2)`` (row, col); radius, angle : ndarray ``(N,)``

    Returns
    -------
    ndarray ``(N, H, W)`` bool

    In the shape's own frame ``(u, v)`` (rotated by ``angle``, in units of ``radius``):
    square ``max(|u|, |v|) <= 0.8``; disk ``u² + v² <= 1``; triangle: equilateral with
    circumradius 1 (three half-planes at distance 0.5 from the centre); cross: two bars of
    half-width 0.3 and half-length 1.
    """
    dr = rows[None] - center[:, 0, None, None]
    dc = cols[None] - center[:, 1, None, None]
    c, s = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    r = radius[:, None, None]
    u = (c * dc + s * dr) / r
    v = (-s * dc + c * dr) / r
    if kind == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.8
    if kind == "disk":
        return u * u + v * v <= 1.0
    if kind == "triangle":
        inside = np.ones(u.shape, dtype=bool)
        for t in (np.pi / 2, np.pi / 2 + 2 * np.pi / 3, np.pi / 2 + 4 * np.pi / 3):
            inside &= np.cos(t) * u + np.sin(t) * v <= 0.5
        return inside
    if kind == "cross":
        return ((np.abs(u) <= 0.3) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= 0.3) & (np.abs(u) <= 1.0))
    raise ValueError(f"shape kind must be one of {SHAPES}, got {kind!r}")


def _background(gen, n, size):
    """Textured backgrounds ``(N, 3, H, W)``: a base colour, two colour gratings, pixel noise."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    base = gen.uniform(0.15, 0.85, (n, 3, 1, 1))
    img = np.broadcast_to(base, (n, 3, size, size)).copy()
    for _ in range(2):
        theta = gen.uniform(0, np.pi, n)
        period = gen.uniform(3.0, 12.0, n)  # pixels: from fine stripes to broad waves
        phase = gen.uniform(0, 2 * np.pi, n)
        amp = gen.uniform(0.03, 0.12, (n, 3))
        t = (np.cos(theta)[:, None, None] * xx + np.sin(theta)[:, None, None] * yy) / period[:, None, None]
        wave = np.sin(2 * np.pi * t + phase[:, None, None])  # (N, H, W)
        img += amp[:, :, None, None] * wave[:, None]
    img += gen.normal(0.0, 0.03, img.shape)
    return img, base[:, :, 0, 0]


def _contrasting_colors(gen, n, against, min_dist=0.45):
    """Random RGB colours at least ``min_dist`` (Euclidean) from ``against`` ``(N, 3)``.

    A colour too close is replaced by its complement ``1 - c``; if that is still too close it is
    pushed away from ``against`` along their difference (so the loop-free result always contrasts).
    """
    col = gen.uniform(0, 1, (n, 3))
    close = np.linalg.norm(col - against, axis=1) < min_dist
    col[close] = 1.0 - col[close]
    dist = np.linalg.norm(col - against, axis=1)
    still = dist < min_dist
    if np.any(still):
        direction = np.where(against[still] < 0.5, 1.0, -1.0)  # towards the far end of each channel
        col[still] = np.clip(against[still] + direction * min_dist, 0, 1)
    return col


def make_shapes(n, rng, size=DEFAULT_SIZE, instances=1, distractors=3, classes=SHAPES, dtype=np.float64):
    """Draw a batch of synthetic shape images with labels and ground-truth masks.

    Parameters
    ----------
    n : int
        Number of images.
    rng : numpy.random.Generator or int
        Seed; the same seed gives the same bits.
    size : int
        Image side ``H = W`` (at least 16).  Object radii scale with it: ``U(0.14, 0.25) * size``
        for one instance, ``U(0.12, 0.18) * size`` for two.
    instances : int, 1 or 2
        Objects of the image's class per image.  Two instances are placed in opposite halves
        (left/right or top/bottom, at random) so that they never overlap.
    distractors : int
        Small distractors per image, drawn before the object: thin line segments and dots in
        random colours (no distractor is a class shape).
    classes : sequence of str
        Subset of :data:`SHAPES` (its order gives the labels).
    dtype : float32 or float64

    Returns
    -------
    ShapesBatch
        ``images (N, 3, H, W)``, ``labels (N,)``, ``masks (N, H, W)``, ``instance_masks``,
        ``params``.  Unpacks as ``images, labels, masks = make_shapes(...)``.
    """
    gen = as_rng(rng)
    n, size, instances, distractors = int(n), int(size), int(instances), int(distractors)
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    if instances not in (1, 2):
        raise ValueError(f"instances must be 1 or 2, got {instances}")
    if distractors < 0:
        raise ValueError(f"distractors must be non-negative, got {distractors}")
    classes = tuple(classes)
    unknown = [c for c in classes if c not in SHAPES]
    if not classes or unknown:
        raise ValueError(f"classes must be a non-empty subset of {SHAPES}, got {classes!r}")
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")

    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    labels = gen.integers(0, len(classes), n)
    img, base = _background(gen, n, size)

    for _ in range(distractors):
        color = gen.uniform(0, 1, (n, 3))
        p0 = gen.uniform(1, size - 2, (n, 2))
        is_dot = gen.random(n) < 0.4
        length = gen.uniform(0.15, 0.35, n) * size
        theta = gen.uniform(0, 2 * np.pi, n)
        p1 = p0 + np.where(is_dot, 0.0, length)[:, None] * np.stack([np.sin(theta), np.cos(theta)], 1)
        half_width = np.where(is_dot, gen.uniform(1.0, 1.6, n), 0.6)[:, None, None]
        # a dot is a small disk (a zero-length segment), a line about one pixel wide
        m = _seg_dist2(rows, cols, p0, p1) <= half_width**2
        img = np.where(m[:, None], color[:, :, None, None], img)

    color = _contrasting_colors(gen, n, base)
    if instances == 1:
        radius = gen.uniform(0.14, 0.25, (n, 1)) * size
        margin = radius + 1.0
        center = margin[:, :, None] + gen.random((n, 1, 2)) * (size - 2 * margin)[:, :, None]
    else:
        radius = gen.uniform(0.12, 0.18, (n, 2)) * size
        half = size / 2.0
        # position inside its own half (first: top/left, second: bottom/right), then the axis at random
        along = np.stack(
            [
                radius[:, 0] + 1.0 + gen.random(n) * (half - 2 * radius[:, 0] - 1.0),
                half + radius[:, 1] + gen.random(n) * (half - 2 * radius[:, 1] - 1.0),
            ],
            1,
        )
        across = radius + 1.0 + gen.random((n, 2)) * (size - 2 * radius - 2.0)
        vertical = gen.random(n) < 0.5
        center = np.where(
            vertical[:, None, None], np.stack([along, across], 2), np.stack([across, along], 2)
        )
    angle = gen.uniform(0, 2 * np.pi, (n, instances))

    inst = np.zeros((n, instances, size, size), dtype=bool)
    for k in range(instances):
        for c, kind in enumerate(classes):
            sel = labels == c
            if np.any(sel):
                inst[sel, k] = shape_mask(kind, rows, cols, center[sel, k], radius[sel, k], angle[sel, k])
    masks = inst.any(axis=1)
    img = np.where(masks[:, None], color[:, :, None, None], np.clip(img, 0, 1))
    return ShapesBatch(
        images=img.astype(dtype, copy=False),
        labels=labels.astype(np.int64),
        masks=masks,
        instance_masks=inst,
        params={"center": center, "radius": radius, "angle": angle, "color": color},
        classes=classes,
    )


def _seg_dist2(rows, cols, p0, p1):
    """Squared distance of every pixel centre to the segments ``p0 -> p1`` (each ``(N, 2)``); ``(N, H, W)``."""
    d = p1 - p0
    length2 = np.maximum((d * d).sum(axis=1), 1e-12)[:, None, None]
    pr = rows[None] - p0[:, 0, None, None]
    pc = cols[None] - p0[:, 1, None, None]
    t = np.clip((pr * d[:, 0, None, None] + pc * d[:, 1, None, None]) / length2, 0, 1)
    er = pr - t * d[:, 0, None, None]
    ec = pc - t * d[:, 1, None, None]
    return er * er + ec * ec


__all__ = ["SHAPES", "DEFAULT_SIZE", "ShapesBatch", "make_shapes", "shape_mask"]
