"""Flatten: ``(N, C, H, W) -> (N, C*H*W)`` in C order (as PyTorch's ``Flatten``); Identity."""
from __future__ import annotations

from .._conventions import as_float_array
from .base import Cache, Layer, defjvp, defrule
from .region import defregion
from .relevance import LRP_RULES


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


# -- DeepLIFT and LRP columns: a relabelling of units passes every signal through ----------------

defrule(Flatten, "rescale", *LRP_RULES)(_flatten_reshape)


@defrule(Flatten, "revealcancel")
def _flatten_reshape_pairs(layer, g, cache, **_):
    """reshape R (or each of the RevealCancel pair m⁺, m⁻) back to the input's shape
    (a relabelling of units); Shrikumar et al. 2017"""
    if isinstance(g, tuple):
        return tuple(part.reshape(cache.in_shape) for part in g)
    return g.reshape(cache.in_shape)
@defjvp(Flatten)
def _flatten_jvp(layer, dx, cache):
    """dX reshaped to (N, -1)"""
    return dx.reshape(dx.shape[0], -1)


class Identity(Layer):
    """``x -> x`` (PyTorch's ``nn.Identity``, ONNX ``Identity``): a placeholder that keeps a source model's names."""

    short_name = "identity"

    def forward(self, x):
        return as_float_array(x, f"input of {self.describe()}"), Cache()


@defrule(Identity, "gradient", "deconvnet", "guided", "rescale", *LRP_RULES)
def _identity(layer, g, cache, **_):
    """R (the identity's adjoint; every rule passes the signal through)
    a relabelling of nothing"""
    return g


@defrule(Identity, "revealcancel")
def _identity_pairs(layer, g, cache, **_):
    """R, or the RevealCancel pair (m⁺, m⁻) unchanged
    Shrikumar et al. 2017"""
    return g


defregion(Identity, "pointwise")(None)


@defjvp(Identity)
def _identity_jvp(layer, dx, cache):
    """dX"""
    return dx
