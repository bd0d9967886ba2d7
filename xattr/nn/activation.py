"""ReLU and its three backward rules: the heart of the DeconvNet/backprop table.

With ``X`` the ReLU's input and ``R`` the signal arriving from above:

========== =========================
gradient   ``R · 1[X > 0]``          (backprop; ``ReLU'(0) = 0``)
deconvnet  ``max(R, 0)``             (Zeiler & Fergus 2014)
guided     ``max(R, 0) · 1[X > 0]``  (Springenberg et al. 2015)
========== =========================
"""
from __future__ import annotations

import numpy as np

from .._conventions import RELU_GRAD_AT_ZERO, as_float_array
from .base import Cache, Layer, defjvp, defrule

assert RELU_GRAD_AT_ZERO == 0.0  # the mask below is 1[X > 0]; change both together


class ReLU(Layer):
    """Rectified linear unit ``max(x, 0)``; any shape -> same shape."""

    short_name = "relu"

    def forward(self, x):
        x = as_float_array(x, f"input of {self.describe()}")
        active = x > 0
        return np.where(active, x, 0).astype(x.dtype, copy=False), Cache(active=active)


@defrule(ReLU, "gradient")
def _relu_gradient(layer, g, cache, **_):
    """R · 1[X > 0]
    backpropagation (Rumelhart et al. 1986); ReLU'(0) = 0"""
    return g * cache.active


@defrule(ReLU, "deconvnet")
def _relu_deconvnet(layer, g, cache, **_):
    """max(R, 0)
    DeconvNet (Zeiler & Fergus 2014)"""
    return np.maximum(g, 0)


@defrule(ReLU, "guided")
def _relu_guided(layer, g, cache, **_):
    """max(R, 0) · 1[X > 0]
    guided backpropagation (Springenberg et al. 2015)"""
    return np.maximum(g, 0) * cache.active


@defjvp(ReLU)
def _relu_jvp(layer, dx, cache):
    """dX · 1[X > 0]  (the linear part at the cached pattern; ReLU'(0) = 0)"""
    return dx * cache.active
