"""Flatten: ``(N, C, H, W) -> (N, C*H*W)`` in C order (as PyTorch's ``Flatten``)."""
from __future__ import annotations

from .._conventions import as_float_array
from .base import Cache, Layer, defjvp, defrule


class Flatten(Layer):
    """``(N, ...) -> (N, prod(...))``, C order."""

    short_name = "flatten"

    def forward(self, x):
        x = as_float_array(x, f"input of {self.describe()}")
        if x.ndim < 2:
            raise ValueError(f"input of {self.describe()} must have rank >= 2, got shape {x.shape}")
        return x.reshape(x.shape[0], -1), Cache(in_shape=x.shape)


@defrule(Flatten, "gradient", "deconvnet", "guided")
def _flatten_reshape(layer, g, cache, **_):
    """reshape R back to the input's shape
    (a relabelling of units: every rule passes it through)"""
    return g.reshape(cache.in_shape)


@defjvp(Flatten)
def _flatten_jvp(layer, dx, cache):
    """dX reshaped to (N, -1)"""
    return dx.reshape(dx.shape[0], -1)
