"""Inference-time batch normalisation and dropout, and folding batch-norm into a conv.

At inference batch-norm is a per-channel affine map
``y = (x - mean) / sqrt(var + eps) * gamma + beta = a x + c`` (Ioffe & Szegedy 2015);
dropout is the identity (Srivastava et al. 2014; PyTorch's inverted dropout).
"""
from __future__ import annotations

import numbers

import numpy as np

from .._conventions import as_float_array, check_image_batch, count
from .base import Cache, Layer, defjvp, defrule, param_property
from .conv import Conv2D


class BatchNorm2D(Layer):
    """Batch normalisation at inference, PyTorch's ``BatchNorm2d`` in ``eval()`` mode.

    Parameters
    ----------
    num_features : int
        Channels ``C``.
    eps : float
        Added to the running variance (PyTorch's default ``1e-5``).

    Attributes
    ----------
    weight, bias, running_mean, running_var : ndarray ``(C,)``
        ``gamma``, ``beta`` and the running statistics (defaults 1, 0, 0, 1).

    Shapes: ``(N, C, H, W) -> (N, C, H, W)``.
    """

    short_name = "bn"

    weight = param_property("weight", lambda self: (self.num_features,))
    bias = param_property("bias", lambda self: (self.num_features,))
    running_mean = param_property("running_mean", lambda self: (self.num_features,))
    running_var = param_property("running_var", lambda self: (self.num_features,))

    def __init__(self, num_features, eps=1e-5):
        self.num_features = count(num_features, "num_features")
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not (np.isfinite(eps) and eps > 0):
            raise ValueError(f"eps must be a finite positive number, got {eps!r}")
        self.eps = float(eps)
        self.weight = np.ones(self.num_features)
        self.bias = np.zeros(self.num_features)
        self.running_mean = np.zeros(self.num_features)
        self.running_var = np.ones(self.num_features)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}"

    def scale_shift(self):
        """``(a, c)`` with ``y = a x + c`` per channel, shapes ``(C,)``."""
        if np.any(self.running_var < 0):
            raise ValueError(f"{self.describe()}: running_var must be non-negative")
        a = self.weight / np.sqrt(self.running_var + self.eps)
        return a, self.bias - a * self.running_mean

    def forward(self, x):
        x = check_image_batch(x, f"input of {self.describe()}", channels=self.num_features)
        a, c = (v.astype(x.dtype)[:, None, None] for v in self.scale_shift())
        return x * a + c, Cache()


@defrule(BatchNorm2D, "gradient", "deconvnet", "guided")
def _bn_scale(layer, g, cache, **_):
    """R · gamma / sqrt(var + eps) (per channel; an affine layer)
    Ioffe & Szegedy 2015; the same for all three rules"""
    return g * layer.scale_shift()[0].astype(g.dtype)[:, None, None]


class Dropout(Layer):
    """Dropout at inference: the identity (inverted dropout scales at training time)."""

    short_name = "dropout"

    def __init__(self, p=0.5):
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)

    def extra_repr(self):
        return f"p={self.p}"

    def forward(self, x):
        return as_float_array(x, f"input of {self.describe()}"), Cache()


@defrule(Dropout, "gradient", "deconvnet", "guided")
def _dropout_identity(layer, g, cache, **_):
    """R (identity at inference)
    Srivastava et al. 2014"""
    return g


def fold_batchnorm(model):
    """A new ``Sequential`` where every ``Conv2D -> BatchNorm2D`` pair is one ``Conv2D``.

    ``W' = a[:, None, None, None] * W`` and ``b' = a * b + c`` with ``(a, c)`` from
    :meth:`BatchNorm2D.scale_shift`.  The result computes the same function (to
    round-off); its conv takes the conv's name.  The input model is not changed.
    A batch-norm that does not follow a conv raises ``ValueError``.
    """
    import copy

    from .base import Sequential

    layers = []
    src = model.layers
    k = 0
    while k < len(src):
        layer = src[k]
        if isinstance(layer, BatchNorm2D):
            raise ValueError(f"{layer.describe()} does not follow a Conv2D; it cannot be folded")
        if isinstance(layer, Conv2D) and k + 1 < len(src) and isinstance(src[k + 1], BatchNorm2D):
            bn = src[k + 1]
            if bn.num_features != layer.out_channels:
                raise ValueError(f"{bn.describe()} has {bn.num_features} channels, {layer.describe()} outputs {layer.out_channels}")
            a, c = bn.scale_shift()
            conv = copy.deepcopy(layer)
            b = layer.bias if layer.bias is not None else np.zeros(layer.out_channels)
            conv.weight = layer.weight * a[:, None, None, None]
            conv.bias = a * b + c
            layers.append((layer.name, conv))
            k += 2
            continue
        layers.append((layer.name, copy.deepcopy(layer)))
        k += 1
    return Sequential(*layers)


# -- DeepLIFT and LRP columns ------------------------------------------------------------------
from .relevance import LRP_RULES  # noqa: E402

# batch-norm is affine at inference: DeepLIFT multipliers pass as gradients.  LRP has no cell:
# xattr.lrp folds every batch-norm into the preceding conv first (fold_batchnorm).
defrule(BatchNorm2D, "rescale", "revealcancel")(_bn_scale)
# dropout is the identity at inference; the RevealCancel pair (m⁺, m⁻) passes through unchanged
defrule(Dropout, "rescale", "revealcancel", *LRP_RULES)(_dropout_identity)
from .region import defregion  # noqa: E402  (region maps sit next to their layer)

# Pointwise at inference: an output pixel changes only where its input pixel changed (Nakandala et al. 2019).
defregion((BatchNorm2D, Dropout), "pointwise")(None)
@defjvp(BatchNorm2D)
def _bn_jvp(layer, dx, cache):
    """dX · gamma / sqrt(var + eps)  (per channel, without the shift)"""
    return dx * layer.scale_shift()[0].astype(dx.dtype)[:, None, None]


@defjvp(Dropout)
def _dropout_jvp(layer, dx, cache):
    """dX  (identity at inference)"""
    return dx
