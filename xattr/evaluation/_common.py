"""Validation shared by the evaluation metrics: maps, masks, targets (clear errors, never NaN)."""
from __future__ import annotations

import numpy as np

from .._conventions import as_float_array


def maps2d(maps, name="maps"):
    """Per-image 2-D maps ``(N, H, W)`` from ``(N, H, W)`` or ``(N, 1, H, W)``, as float64.

    A map with several channels is refused: reduce it first (``xattr.reduce_channels``),
    since how channels are combined (sum, max-abs, ...) is a choice the caller must make.
    """
    m = as_float_array(maps, name)
    if m.ndim == 4:
        if m.shape[1] != 1:
            raise ValueError(
                f"{name} must be (N, H, W) or (N, 1, H, W), got shape {m.shape} with {m.shape[1]} channels; "
                "reduce the channels first, e.g. xattr.reduce_channels(a, 'sum_abs')"
            )
        m = m[:, 0]
    if m.ndim != 3:
        raise ValueError(f"{name} must be (N, H, W) or (N, 1, H, W), got shape {m.shape}")
    if m.shape[0] == 0 or m.shape[1] == 0 or m.shape[2] == 0:
        raise ValueError(f"{name} must hold at least one non-empty map, got shape {m.shape}")
    return np.asarray(m, dtype=np.float64)


def masks2d(masks, shape, name="masks", allow_empty=False):
    """Boolean masks ``(N, H, W)`` matching ``shape``; an empty mask is refused unless allowed."""
    m = np.asarray(masks)
    if m.ndim == 4 and m.shape[1] == 1:
        m = m[:, 0]
    if m.ndim == 2 and len(shape) == 3 and shape[0] == 1:
        m = m[None]
    if m.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} (one (H, W) mask per map), got {m.shape}")
    if m.dtype != bool:
        if not np.all(np.isin(m, (0, 1))):
            raise ValueError(f"{name} must be boolean (or 0/1), got values other than 0 and 1")
        m = m.astype(bool)
    if not allow_empty:
        empty = np.flatnonzero(~m.reshape(len(m), -1).any(axis=1))
        if empty.size:
            raise ValueError(f"{name}[{int(empty[0])}] is empty: the metric needs at least one pixel inside the mask")
    return m


def flat_per_image(a, name):
    a = as_float_array(a, name)
    if a.ndim < 2:
        raise ValueError(f"{name} must be a batch (N, ...) of maps, got shape {a.shape}")
    return np.asarray(a, dtype=np.float64).reshape(a.shape[0], -1)


def constant_rows(flat):
    return np.flatnonzero(np.ptp(flat, axis=1) == 0)
