"""One-dimensional linear interpolation as a matrix: the resizes of the CAM family and RISE.

A resize of ``(h, w)`` maps to ``(H, W)`` is ``M_H @ a @ M_Wᵀ`` with one ``(n_out, n_in)`` matrix per axis; the
three conventions the methods need differ only in the source coordinate each output reads.
"""
from __future__ import annotations

import numpy as np

#: ``edges`` of :func:`linear_interpolation_matrix` and whose resize each reproduces.
EDGES = {
    "clamp": "half-pixel centres, clamped at the border (PyTorch's interpolate, align_corners=False)",
    "reflect": "half-pixel centres, mirrored past the border (skimage.transform.resize, order=1, mode='reflect')",
    "corners": "corner pixels aligned (align_corners=True; tf-keras-vis' zoom of Score-CAM masks)",
}


def linear_interpolation_matrix(n_out, n_in, edges="clamp", dtype=np.float64):
    """``(n_out, n_in)`` weights of linear interpolation: row ``o`` mixes the two inputs around its source coordinate.

    The source coordinate of output ``o``: ``c = (o + ½)·n_in/n_out − ½`` (half-pixel centres) for ``"clamp"``
    (then clipped to ``[0, n_in − 1]``) and ``"reflect"`` (mirrored at ``0`` and ``n_in − 1``: at most half a cell
    past either edge); ``c = o·(n_in − 1)/(n_out − 1)`` for ``"corners"``.  Row ``o`` puts ``1 − t`` on
    ``⌊c⌋`` and ``t = c − ⌊c⌋`` on ``⌊c⌋ + 1``; every row sums to 1 with non-negative weights.  One input:
    every output reads it.

    Parameters
    ----------
    n_out, n_in : int
        Output and input lengths (at least 1).
    edges : {"clamp", "reflect", "corners"}
        The convention (:data:`EDGES`).
    dtype : numpy dtype

    Returns
    -------
    ndarray ``(n_out, n_in)``
    """
    if edges not in EDGES:
        raise ValueError(f"edges must be one of {sorted(EDGES)}, got {edges!r}")
    if n_in == 1:
        return np.ones((n_out, 1), dtype=dtype)
    o = np.arange(n_out)
    if edges == "corners":
        c = o * (n_in - 1) / (n_out - 1) if n_out > 1 else np.zeros(n_out)
    else:
        c = (o + 0.5) * (n_in / n_out) - 0.5
        if edges == "clamp":
            c = np.clip(c, 0, n_in - 1)
        else:
            c = np.where(c < 0, -c, c)
            c = np.where(c > n_in - 1, 2 * (n_in - 1) - c, c)
    lo = np.clip(np.floor(c).astype(np.intp), 0, n_in - 2)
    t = c - lo
    m = np.zeros((n_out, n_in), dtype=dtype)
    m[o, lo] = 1 - t
    m[o, lo + 1] += t
    return m
