"""Class-wide conclusions from per-image maps: class-averaged maps and their spread.

A saliency map explains one input (seed 002: "the maps are per input"); a statement about a class
("the model looks at the corners for squares") needs many maps of that class, averaged, and how
much they disagree.  :func:`class_maps` streams the maps of a batch store (:func:`xattr.batch.
attribute_dataset`) or an array chunk by chunk and returns, per class, the mean map, the per-pixel
standard deviation and the count.  Averaging pixel by pixel is only meaningful when the images are
*registered* (the object at the same place in every image, as the seed's class-average figures
assume); on unregistered data the mean map shows where objects tend to be, not what the model uses.

Streaming: each chunk's per-class counts, means and centred sums of squares are merged into the
running ones by Chan, Golub & LeVeque's pairwise update (1979, "Updating formulae and a pairwise
algorithm for computing sample variances"), in float64, so memory does not grow with the number
of images and the result does not depend on the chunk size beyond round-off.
"""
from __future__ import annotations

import numbers
import os
from dataclasses import dataclass

import numpy as np

__all__ = ["ClassMaps", "class_maps", "NORMALISATIONS"]

#: per-image normalisations before averaging: None (raw maps), "sum_abs" (divide by Σ|A|, so every
#: image weighs the same whatever its map's scale), "max_abs" (divide by max|A|).
NORMALISATIONS = (None, "sum_abs", "max_abs")


@dataclass
class ClassMaps:
    """Result of :func:`class_maps`.

    Fields: ``classes`` ``(K,)`` int, the classes seen, sorted; ``count`` ``(K,)`` int, images averaged per
    class; ``mean`` ``(K, ...)`` float64, the class-averaged map (the maps' own shape after the first axis);
    ``std`` ``(K, ...)`` float64, per-pixel standard deviation over the class's maps (population, ``ddof = 0``;
    divide by ``sqrt(count)`` for the standard error of the mean up to ``ddof``); ``skipped`` int, images left
    out: invalid in the store, non-finite maps, or (with a normalisation) all-zero maps.
    """

    classes: np.ndarray
    count: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    skipped: int

    def of(self, c):
        """``(mean, std, count)`` of class ``c``; ``KeyError`` naming the classes seen otherwise."""
        hit = np.flatnonzero(self.classes == c)
        if not hit.size:
            raise KeyError(f"class {c!r} has no maps; classes seen: {self.classes.tolist()}")
        i = int(hit[0])
        return self.mean[i], self.std[i], int(self.count[i])


def _open_store(path, label):
    from ..batch.errors import _require_extra

    _require_extra()
    import zarr

    root = zarr.open_group(os.fspath(path), mode="r")
    names = sorted(root["maps"].array_keys()) if "maps" in root else []
    if not names:
        raise ValueError(f"{os.fspath(path)!r} holds no maps: is it a store written by xattr.batch.attribute_dataset?")
    if label is None:
        if len(names) > 1:
            raise ValueError(f"the store holds maps of several methods {names}; choose one with label=")
        label = names[0]
    if label not in names:
        raise ValueError(f"the store has no maps labelled {label!r}; labels: {names}")
    return root[f"maps/{label}"], root["target"], root["valid"]


def _check_labels(labels, n):
    lab = np.asarray(labels)
    if lab.dtype.kind not in "iu":
        raise TypeError(f"labels must be integer classes of shape (N,), got dtype {lab.dtype}")
    if lab.shape != (n,):
        raise ValueError(f"labels must have shape (N,) = ({n},), one class per map, got {lab.shape}")
    return lab.astype(np.int64)


def _normalised(block, normalise):
    flat = block.reshape(len(block), -1)
    if normalise is None:
        return block, np.ones(len(block), dtype=bool)
    scale = np.abs(flat).sum(1) if normalise == "sum_abs" else np.abs(flat).max(1)
    ok = scale > 0
    out = block / np.where(ok, scale, 1.0).reshape((-1,) + (1,) * (block.ndim - 1))
    return out, ok


def class_maps(source, labels=None, label=None, normalise=None, chunk=256):
    """Class-averaged maps and their per-pixel spread, streamed from a batch store or an array.

    Parameters
    ----------
    source : str or PathLike (a Zarr store from :func:`xattr.batch.attribute_dataset`), or an array
        ``(N, ...)`` of maps (NumPy, or anything sliceable along the first axis, such as a Zarr or
        Dask array)
    labels : int array ``(N,)``, optional
        The class of each map.  Default for a store: its ``target`` array (the class each map
        explains); an array source needs them.  Pass the true labels to group by ground truth.
    label : str, optional
        Which method's maps in a store (needed when the store holds several).
    normalise : None, ``"sum_abs"`` or ``"max_abs"``
        Per-image scaling before averaging (see :data:`NORMALISATIONS`); maps whose scale is 0
        are skipped with a normalisation.
    chunk : int
        Maps read and merged at a time.

    Returns
    -------
    ClassMaps
    """
    if normalise not in NORMALISATIONS:
        raise ValueError(f"normalise must be one of {NORMALISATIONS}, got {normalise!r}")
    if isinstance(chunk, bool) or not isinstance(chunk, (numbers.Integral, np.integer)) or chunk < 1:
        raise ValueError(f"chunk must be a positive int, got {chunk!r}")
    valid = None
    if isinstance(source, (str, os.PathLike)):
        maps, targets, valid = _open_store(source, label)
        labels = targets if labels is None else labels
    else:
        if label is not None:
            raise ValueError("label= selects a method in a store; the source here is an array of maps")
        maps = source if hasattr(source, "shape") and hasattr(source, "__getitem__") else np.asarray(source)
        if labels is None:
            raise ValueError("labels (one class per map, shape (N,)) are needed for an array of maps")
    if len(maps.shape) < 2 or maps.shape[0] == 0:
        raise ValueError(f"maps must be a non-empty batch (N, ...), got shape {tuple(maps.shape)}")
    n, shape = int(maps.shape[0]), tuple(maps.shape[1:])
    lab = _check_labels(labels[:] if not isinstance(labels, np.ndarray) else labels, n)

    count = np.zeros(0, dtype=np.int64)  # running statistics of the classes seen so far (sorted)
    classes = np.zeros(0, dtype=np.int64)
    mean = np.zeros((0,) + shape)
    m2 = np.zeros((0,) + shape)
    skipped = 0
    for a in range(0, n, int(chunk)):
        b = min(n, a + int(chunk))
        block = np.asarray(maps[a:b], dtype=np.float64)
        keep = np.isfinite(block.reshape(b - a, -1)).all(1) & (lab[a:b] >= 0)
        if valid is not None:
            keep &= np.asarray(valid[a:b], dtype=bool)
        block, ok = _normalised(np.where(keep.reshape((-1,) + (1,) * len(shape)), block, 0.0), normalise)
        keep &= ok
        skipped += int((~keep).sum())
        if not keep.any():
            continue
        block, cl = block[keep], lab[a:b][keep]
        # this chunk's statistics per class: counts, means, centred sums of squares (two passes, vectorised)
        uc, inv = np.unique(cl, return_inverse=True)
        nb = np.bincount(inv, minlength=len(uc)).astype(np.int64)
        sb = np.zeros((len(uc),) + shape)
        np.add.at(sb, inv, block)
        mb = sb / nb.reshape((-1,) + (1,) * len(shape))
        qb = np.zeros_like(sb)
        np.add.at(qb, inv, (block - mb[inv]) ** 2)
        # merge into the running statistics (Chan et al. 1979): classes new to us start at zero
        allc = np.union1d(classes, uc)
        na = np.zeros(len(allc), dtype=np.int64)
        ma, qa = np.zeros((len(allc),) + shape), np.zeros((len(allc),) + shape)
        ia = np.searchsorted(allc, classes)
        na[ia], ma[ia], qa[ia] = count, mean, m2
        ib = np.searchsorted(allc, uc)
        n_old = na[ib].reshape((-1,) + (1,) * len(shape)).astype(np.float64)
        n_new = nb.reshape(n_old.shape).astype(np.float64)
        delta = mb - ma[ib]
        tot = n_old + n_new
        ma[ib] = ma[ib] + delta * (n_new / tot)
        qa[ib] = qa[ib] + qb + delta**2 * (n_old * n_new / tot)
        na[ib] += nb
        classes, count, mean, m2 = allc, na, ma, qa
    if not len(classes):
        raise ValueError(f"no usable map: all {n} were invalid, non-finite or (with normalise) zero")
    std = np.sqrt(np.maximum(m2, 0) / count.reshape((-1,) + (1,) * len(shape)))
    return ClassMaps(classes, count, mean, std, skipped)
