"""Toy models from the integrated-gradients paper, as test fixtures (Captum ships the same ones).

Sundararajan, Taly & Yan 2017, "Axiomatic attribution for deep networks":

* :func:`one_minus_relu`: ``f(x) = 1 − ReLU(1 − x)`` (section 2.1).  At ``x = 2`` its gradient is 0,
  yet ``f(2) − f(0) = 1``: gradients break *sensitivity*; IG from the zero baseline gives 1.
* :func:`ig_f1` / :func:`ig_f2`: ``f1(x1, x2) = ReLU(ReLU(x1) − 1 − ReLU(x2))`` and
  ``f2(x1, x2) = ReLU(ReLU(x1 − 1) − ReLU(x2))`` (section 3, implementation invariance): the same
  function written two ways; DeepLIFT and LRP give them different attributions, IG the same.
  At ``x = (3, 1)``, baseline 0, IG is ``(1.5, −0.5)`` for both.

Each comes as a :class:`xattr.nn.Sequential` (``kind="sequential"``, the default: inputs are images
``(N, C, 1, 1)`` with one channel per variable, flattened by the first layer) or as an autograd
function model (``kind="function"``, :func:`xattr.from_function`) that takes the same inputs.
:func:`linear_model` is the closed-form fixture ``F(x) = Σ w ⊙ x + b``.
"""
from __future__ import annotations

import numpy as np

from ..model import from_function
from ..nn import Dense, Flatten, ReLU, Sequential


def _dense(w, b):
    w = np.atleast_2d(np.asarray(w, dtype=np.float64))
    layer = Dense(w.shape[1], w.shape[0])
    layer.weight, layer.bias = w, np.asarray(b, dtype=np.float64).reshape(w.shape[0])
    return layer


def _check_kind(kind):
    if kind not in ("sequential", "function"):
        raise ValueError(f"kind must be 'sequential' or 'function', got {kind!r}")


def one_minus_relu(kind="sequential"):
    """``f(x) = 1 − ReLU(1 − x)``, input ``(N, 1, 1, 1)``, output ``(N, 1)``."""
    _check_kind(kind)
    if kind == "function":
        import autograd.numpy as anp

        return from_function(lambda x: 1 - anp.maximum(1 - anp.reshape(x, (x.shape[0], 1)), 0), "one_minus_relu")
    return Sequential(Flatten(), _dense([[-1.0]], [1.0]), ReLU(), _dense([[-1.0]], [1.0]))


def ig_f1(kind="sequential"):
    """``f1(x1, x2) = ReLU(ReLU(x1) − 1 − ReLU(x2))``, input ``(N, 2, 1, 1)``, output ``(N, 1)``."""
    _check_kind(kind)
    if kind == "function":
        import autograd.numpy as anp

        def f1(x):
            v = anp.reshape(x, (x.shape[0], 2))
            r = anp.maximum(v, 0)
            return anp.maximum(r[:, 0:1] - 1 - r[:, 1:2], 0)

        return from_function(f1, "ig_f1")
    return Sequential(Flatten(), _dense(np.eye(2), [0.0, 0.0]), ReLU(), _dense([[1.0, -1.0]], [-1.0]), ReLU())


def ig_f2(kind="sequential"):
    """``f2(x1, x2) = ReLU(ReLU(x1 − 1) − ReLU(x2))``, input ``(N, 2, 1, 1)``, output ``(N, 1)``."""
    _check_kind(kind)
    if kind == "function":
        import autograd.numpy as anp

        def f2(x):
            v = anp.reshape(x, (x.shape[0], 2))
            return anp.maximum(anp.maximum(v[:, 0:1] - 1, 0) - anp.maximum(v[:, 1:2], 0), 0)

        return from_function(f2, "ig_f2")
    return Sequential(Flatten(), _dense(np.eye(2), [-1.0, 0.0]), ReLU(), _dense([[1.0, -1.0]], [0.0]), ReLU())


def linear_model(weight, bias=None):
    """``F_k(x) = Σ weight[k] ⊙ x + bias[k]`` as ``Sequential(Flatten, Dense)``; ``weight (K, C, H, W)``.

    Parameters
    ----------
    weight : ndarray ``(K, C, H, W)``
    bias : ndarray ``(K,)``, optional

    Returns
    -------
    Sequential
    """
    w = np.asarray(weight, dtype=np.float64)
    k = w.shape[0]
    b = np.zeros(k) if bias is None else np.asarray(bias, dtype=np.float64)
    return Sequential(Flatten(), _dense(w.reshape(k, -1), b))
