"""Fully connected layer ``y = x Wᵀ + b``."""
from __future__ import annotations

import numpy as np

from .._conventions import as_float_array, count
from . import relevance as _relevance
from .base import Cache, Layer, default_rng, defjvp, defrule, param_property


class Dense(Layer):
    """Fully connected layer, PyTorch's ``Linear``.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
    rng : numpy.random.Generator or int, optional
        Initialisation ``N(0, 1 / in_features)`` (LeCun); bias 0.  Default: seed 0.

    Attributes
    ----------
    weight : ndarray ``(out, in)``
    bias : ndarray ``(out,)`` or None

    Shapes: ``(N, in) -> (N, out)``.
    """

    short_name = "dense"
    weighted = True
    affine = True

    weight = param_property("weight", lambda self: (self.out_features, self.in_features))
    bias = param_property("bias", lambda self: (self.out_features,))

    def __init__(self, in_features, out_features, bias=True, rng=None):
        self.in_features, self.out_features = count(in_features, "in_features"), count(out_features, "out_features")
        gen = default_rng(rng)
        self.weight = gen.normal(0.0, np.sqrt(1.0 / self.in_features), (self.out_features, self.in_features))
        self.bias = np.zeros(self.out_features) if bias else None

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"

    def forward(self, x):
        x = as_float_array(x, f"input of {self.describe()}")
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"input of {self.describe()} must have shape (N, {self.in_features}), got {x.shape}"
                + (" (add a Flatten or GlobalAvgPool2D before it)" if x.ndim > 2 else "")
            )
        y = x @ self.weight.T.astype(x.dtype, copy=False)
        if self.bias is not None:
            y += self.bias.astype(x.dtype, copy=False)
        return y, Cache(x=x)

    def param_grads(self, g, cache):
        """``dW = gᵀ x``, ``db = sum_n g``."""
        out = {"weight": g.T @ cache.x}
        if self.bias is not None:
            out["bias"] = g.sum(axis=0)
        return out


@defrule(Dense, "gradient", "deconvnet", "guided")
def _dense_transpose(layer, g, cache, **_):
    """R W (the adjoint of x ↦ x Wᵀ; identical for all three rules)
    backpropagation; Zeiler & Fergus 2014; Springenberg et al. 2015"""
    return g @ layer.weight.astype(g.dtype, copy=False)


# -- relevance columns (DeepLIFT, LRP): the formulas live in relevance.py, shared with Conv2D --------

# DeepLIFT's Linear rule: multipliers pass through a linear layer like gradients (Shrikumar et al. 2017).
defrule(Dense, "rescale")(_dense_transpose)
defrule(Dense, "revealcancel")(_relevance.deeplift_linear_revealcancel)
for _name, _fn in _relevance.LRP_WEIGHTED_RULES.items():
    defrule(Dense, _name)(_fn)
@defjvp(Dense)
def _dense_jvp(layer, dx, cache):
    """dX Wᵀ  (without the bias)"""
    return dx @ layer.weight.T.astype(dx.dtype, copy=False)
