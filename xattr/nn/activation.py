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
    kind = "pointwise"

    def forward(self, x):
        x = as_float_array(x, f"input of {self.describe()}")
        active = x > 0
        # x · 1[x > 0], then + 0 turns the -0.0 of negative inputs into +0.0 (np.where's output, bit
        # for bit); np.where on a random mask runs ~20x slower than these two passes (benchmarks/)
        y = np.multiply(x, active)
        y += 0
        return y, Cache(active=active)


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


# -- DeepLIFT (Shrikumar et al. 2017) and LRP columns -----------------------------------------------
from .relevance import DEEPLIFT_NEAR_ZERO, LRP_RULES, need_reference  # noqa: E402


def _relu(v):
    return np.maximum(v, 0)


@defrule(ReLU, "rescale")
def _relu_rescale(layer, g, cache, inp=None, ref=None, threshold=DEEPLIFT_NEAR_ZERO, **_):
    """R · Δy/Δx  (R · 1[X > 0] where |Δx| ≤ threshold)
    DeepLIFT Rescale rule, Shrikumar et al. 2017 §3.5.2"""
    need_reference(layer, "rescale", inp, ref)
    if isinstance(g, tuple):
        raise ValueError(f"{layer.describe()}: the Rescale rule takes one multiplier, got a (m⁺, m⁻) pair")
    dx, dy = inp.x - ref.x, inp.y - ref.y
    far = np.abs(dx) > threshold
    # gradient at the input as the limit (Captum); the original DeepLIFT code takes it at the reference
    ratio = np.divide(dy, dx, out=cache.active.astype(dy.dtype), where=far)
    return g * ratio


@defrule(ReLU, "revealcancel")
def _relu_revealcancel(layer, g, cache, inp=None, ref=None, split=None, threshold=DEEPLIFT_NEAR_ZERO, **_):
    """(R Δy⁺/Δx⁺, R Δy⁻/Δx⁻),  Δy^± = ½(f(x₀ + Δx^±) − f(x₀)) + ½(f(x) − f(x₀ + Δx^∓))
    DeepLIFT RevealCancel rule, Shrikumar et al. 2017 §3.5.3"""
    need_reference(layer, "revealcancel", inp, ref)
    if split is None:
        raise ValueError(f"{layer.describe()}: RevealCancel needs split=(Δx⁺, Δx⁻) of the ReLU's input; use xattr.deeplift")
    if isinstance(g, tuple):
        raise ValueError(f"{layer.describe()}: RevealCancel takes one multiplier from above, got a (m⁺, m⁻) pair")
    dp, dn = split
    x0, y0, y = ref.x, ref.y, inp.y
    yp, yn = _relu(x0 + dp), _relu(x0 + dn)
    dyp = 0.5 * ((yp - y0) + (y - yn))
    dyn = 0.5 * ((yn - y0) + (y - yp))
    # limits as Δx^± -> 0: the average of the two gradients the two terms take (ReLU'(0) = 0)
    lim_p = 0.5 * ((x0 > 0).astype(y.dtype) + (x0 + dn > 0))
    lim_n = 0.5 * ((x0 > 0).astype(y.dtype) + (x0 + dp > 0))
    mp = np.divide(dyp, dp, out=lim_p, where=np.abs(dp) > threshold)
    mn = np.divide(dyn, dn, out=lim_n, where=np.abs(dn) > threshold)
    return g * mp, g * mn


@defrule(ReLU, *LRP_RULES)
def _relu_lrp(layer, R, cache, **_):
    """R (relevance passes the ReLU unchanged; its rule is in the layer below)
    Bach et al. 2015; Montavon et al. 2019"""
    return R
from .region import defregion  # noqa: E402  (region maps sit next to their layer)

# Pointwise: an output pixel changes only where its input pixel changed (Nakandala et al. 2019).
defregion(ReLU, "pointwise")(None)
@defjvp(ReLU)
def _relu_jvp(layer, dx, cache):
    """dX · 1[X > 0]  (the linear part at the cached pattern; ReLU'(0) = 0)"""
    return dx * cache.active
