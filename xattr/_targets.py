"""What "explain the target" means, in one place.

``target`` may be

* an int ``c``: the score of class ``c`` for every image;
* an int array of shape ``(N,)``: one class per image;
* a callable on the scores ``(N, K)``: if it returns integers ``(N,)`` they are the
  classes; if it returns floats ``(N,)`` they are the quantity explained (any function
  of the output neurons), and it must be written with ``autograd.numpy`` so that its
  derivative with respect to the scores can be taken.

:func:`seed` turns a target into the ``(N, K)`` vector that starts the backward pass
(one-hot rows for classes) and :func:`selected` returns the explained value per image.
"""
from __future__ import annotations

import numbers

import numpy as np


def _classes(target, n, k):
    t = np.asarray(target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"target must be an int, an int array of shape (N,) or a callable, got dtype {t.dtype}")
    if t.ndim == 0:
        t = np.full(n, int(t))
    if t.shape != (n,):
        raise ValueError(f"target array must have shape (N,) = ({n},), got {t.shape}")
    bad = (t < 0) | (t >= k)
    if bad.any():
        raise ValueError(f"target {t[bad][0]} out of range for a model with {k} outputs (expected 0 <= target < {k})")
    return t.astype(np.intp)


def _finite(value, what):
    """A target callable's value or derivative must be finite: NaN would become every attribution (issue 18 fuzz)."""
    value = np.asarray(value)
    if value.dtype.kind in "fc" and not np.all(np.isfinite(value)):
        bad = int(value.size - np.count_nonzero(np.isfinite(value)))
        raise ValueError(f"a target callable {what} {bad} NaN/inf value(s) at these scores")
    return value


def seed(target, scores):
    """The ``(N, K)`` signal that starts the backward pass, in the scores' dtype."""
    n, k = scores.shape
    if callable(target):
        value = np.asarray(target(scores))
        if value.dtype.kind in "iu":
            return seed(value, scores)
        if value.shape != (n,):
            raise ValueError(f"a target callable must return shape (N,) = ({n},), got {value.shape}")
        _finite(value, "returned")
        from autograd import grad

        g = grad(lambda s: target(s).sum())(np.asarray(scores, dtype=np.float64))
        return np.asarray(_finite(g, "has a derivative with"), dtype=scores.dtype)
    if isinstance(target, bool):
        raise TypeError("target must be an int, an int array of shape (N,) or a callable, got bool")
    if not isinstance(target, (numbers.Integral, np.integer, np.ndarray, list, tuple)):
        raise TypeError(f"target must be an int, an int array of shape (N,) or a callable, got {type(target).__name__}")
    cls = _classes(target, n, k)
    out = np.zeros_like(scores)
    out[np.arange(n), cls] = 1
    return out


def selected(target, scores):
    """The explained value per image ``(N,)``: the target class's score, or the callable's value."""
    if callable(target):
        value = np.asarray(target(scores))
        if value.dtype.kind not in "iu":
            return _finite(value, "returned").astype(scores.dtype, copy=False)
        target = value
    cls = _classes(target, *scores.shape)
    return scores[np.arange(scores.shape[0]), cls]
