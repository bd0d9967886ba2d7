"""Kink finders: where a piecewise-linear layer changes its linear piece along a straight path.

Exact integrated gradients (:func:`xattr.exact_integrated_gradients`) cuts the path
``x' + α (x − x')`` at every ``α`` where a nonlinearity switches.  On a segment ``(a, b)`` on which
every earlier nonlinearity is fixed, a layer's input is affine in ``α``: ``u + (α − m) du`` with ``u``
its value at the midpoint ``m`` and ``du`` its derivative along the path.  A kink finder, registered as
the layer's ``"kinks"`` fact, returns the crossings inside each segment::

    fn(block, u (S, ...), du (S, ...), a (S,), b (S,)) -> (segment ids, alphas)

``block`` is the layers run on ``u``: one layer, or a ReLU followed by a max-pool (fused: a ReLU flip
inside a window that does not win changes nothing downstream).
"""
from __future__ import annotations

import numpy as np

from .activation import PIECEWISE_LINEAR_UNITS, ReLU
from .adaptive import AdaptiveMaxPool2D
from .base import deffact
from .pool import MaxPool2D


def _relu_kinks(block, u, du, a, b):
    """``α = m − u/du`` where a ReLU input crosses zero inside ``(a, b)``; ``(segment ids, alphas)``."""
    S = u.shape[0]
    uf, duf = u.reshape(S, -1), du.reshape(S, -1)
    m = ((a + b) / 2)[:, None]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        t = m - uf / duf
    ok = (duf != 0) & (t > a[:, None]) & (t < b[:, None])
    seg = np.nonzero(ok)[0]
    return seg, t[ok]


def _maxpool_kinks(block, u, du, a, b):
    """Where the argmax of a max-pool window changes inside ``(a, b)``: the upper envelope of lines.

    Each window position is a line ``v_k + (α − m) dv_k``; walking right from ``a``, the current
    maximum is overtaken by the steepest line that meets it first.  A window of ``K`` lines has at
    most ``K − 1`` switches (slopes increase along the envelope), so at most ``K − 1`` sweeps.
    For a ReLU followed by a max-pool (``block`` of two layers), ``maxpool(relu(u)) = max(0, max u)``:
    the zero line joins every window, and a ReLU flip of a unit that is not its window's maximum
    (which changes nothing downstream) makes no cut.
    """
    pool = block[-1]
    S = u.shape[0]
    V = pool.windows(u, fill=-np.inf)  # each window offset's view (padding, ceil-mode overhang, adaptive bins)
    D = pool.windows(du, fill=0.0)
    if len(block) == 2:  # ReLU -> MaxPool2D
        V.append(np.zeros_like(V[0]))
        D.append(np.zeros_like(D[0]))
    V, D = np.stack(V, axis=-1), np.stack(D, axis=-1)
    shape = (S,) + (1,) * (V.ndim - 2)
    m = ((a + b) / 2).reshape(shape)
    bb = b.reshape(shape)
    t = np.broadcast_to(a.reshape(shape), V.shape[:-1]).copy()
    finite = np.isfinite(V)
    cur = np.argmax(np.where(finite, V + (t - m)[..., None] * D, -np.inf), axis=-1)
    aa = a.reshape(shape)
    segs, alphas = [], []
    for _ in range(V.shape[-1] - 1):
        vc = np.take_along_axis(V, cur[..., None], -1)
        dc = np.take_along_axis(D, cur[..., None], -1)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            tk = m[..., None] + (vc - V) / (D - dc)
        # a steeper line that meets the current one at or before t (a tie at t, or round-off in
        # picking the maximum) leads from t on: switch now.  Every switch is to a steeper line.
        valid = finite & (D > dc)
        tk = np.where(valid, np.maximum(tk, t[..., None]), np.inf)
        tnext = tk.min(axis=-1)
        found = tnext < bb
        if not found.any():
            break
        nxt = np.argmax(np.where(valid & (tk == tnext[..., None]), D, -np.inf), axis=-1)
        inside = found & (tnext > aa)
        segs.append(np.nonzero(inside)[0])
        alphas.append(tnext[inside])
        cur = np.where(found, nxt, cur)
        t = np.where(found, tnext, np.inf)  # a window without a further switch is done
    if not segs:
        return np.zeros(0, dtype=np.intp), np.zeros(0)
    return np.concatenate(segs), np.concatenate(alphas)






def _pointwise_kinks(block, u, du, a, b):
    """``α = m + (c − u)/du`` where a unit's input crosses one of its kinks ``c`` (``layer.kinks()``) inside
    ``(a, b)``."""
    S = u.shape[0]
    uf, duf = u.reshape(S, -1), du.reshape(S, -1)
    m = ((a + b) / 2)[:, None]
    segs, alphas = [np.zeros(0, dtype=np.intp)], [np.zeros(0)]
    for c in block[-1].kinks():
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            t = m + (c - uf) / duf
        ok = (duf != 0) & (t > a[:, None]) & (t < b[:, None])
        segs.append(np.nonzero(ok)[0])
        alphas.append(t[ok])
    return np.concatenate(segs), np.concatenate(alphas)


deffact(PIECEWISE_LINEAR_UNITS, "kinks")(_pointwise_kinks)
deffact(ReLU, "kinks")(_relu_kinks)
deffact((MaxPool2D, AdaptiveMaxPool2D), "kinks")(_maxpool_kinks)
