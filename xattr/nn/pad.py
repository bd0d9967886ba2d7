"""Constant padding of the spatial axes, asymmetric allowed (ONNX ``Pad``, TensorFlow's "SAME").

TensorFlow's ``padding="SAME"`` at stride 2 pads one pixel more at the bottom/right than at the top/left
(:func:`tf_same_padding`); PyTorch has no such conv padding, so an imported model carries the padding as
its own layer, ``Pad2D``, before an unpadded convolution.  The layer is affine (linear for ``value = 0``):
every backward rule crops the signal back to the input.
"""
from __future__ import annotations

import math

from .._conventions import check_image_batch, pair
from .base import Cache, Layer, defjvp, defrule
from .conv import pad_nchw, unpad
from .region import defregion, window_region_2d
from .relevance import LRP_RULES


def tf_same_padding(in_hw, kernel_size, stride, dilation=1):
    """``((top, bottom), (left, right))`` of TensorFlow's ``padding="SAME"`` for an input of size ``in_hw``.

    ``out = ceil(n / s)``; the total ``max((out − 1) s + d (k − 1) + 1 − n, 0)`` is split with the odd pixel
    at the bottom/right (TensorFlow's ``get_windowed_output_size``).

    Parameters
    ----------
    in_hw : (int, int)
    kernel_size, stride, dilation : int or (int, int)

    Returns
    -------
    ((int, int), (int, int))
    """
    pads = []
    for n, k, s, d in zip(in_hw, pair(kernel_size, "kernel_size"), pair(stride, "stride"), pair(dilation, "dilation")):
        out = math.ceil(n / s)
        total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


def _pad_pairs(padding):
    """``((top, bottom), (left, right))`` from an int, ``(ph, pw)`` or ``((top, bottom), (left, right))``."""
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(isinstance(p, (tuple, list)) for p in padding):
        return (pair(padding[0], "padding (top, bottom)"), pair(padding[1], "padding (left, right)"))
    ph, pw = pair(padding, "padding")
    return ((ph, ph), (pw, pw))


class Pad2D(Layer):
    """Pad the spatial axes of ``(N, C, H, W)`` with a constant: ``(N, C, H + t + b, W + l + r)``.

    Parameters
    ----------
    padding : int, ``(ph, pw)`` or ``((top, bottom), (left, right))``
        Non-negative (PyTorch's ``F.pad`` order ``(left, right, top, bottom)`` is *not* accepted: write the
        pairs).  See :func:`tf_same_padding` for TensorFlow's "SAME".
    value : float
        The constant (0: zero padding).
    """

    short_name = "pad"
    #: a window layer of kernel 1 for the region maps (incremental occlusion, receptive fields)
    kernel_size, stride, dilation = (1, 1), (1, 1), (1, 1)

    def __init__(self, padding, value=0.0):
        self.pads = _pad_pairs(padding)
        self.padding = self.pads
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"Pad2D value must be finite, got {value}")
        self.value = value

    def extra_repr(self):
        return f"padding={self.pads}" + (f", value={self.value}" if self.value else "")

    def output_hw(self, in_shape):
        (t, b), (l, r) = self.pads
        return in_shape[2] + t + b, in_shape[3] + l + r

    def forward(self, x):
        x = check_image_batch(x, f"input of {self.describe()}")
        return pad_nchw(x, self.pads, value=self.value), Cache(in_shape=x.shape)


def _crop(layer, g):
    return unpad(g, layer.pads)


@defrule(Pad2D, "gradient", "deconvnet", "guided")
def _pad_crop(layer, g, cache, **_):
    """R cropped to the input (the padded positions are constants: their signal is dropped)
    the adjoint of zero padding; the same for all three rules"""
    return _crop(layer, g)


# DeepLIFT: the padded positions have Δ = 0 (the same constant for input and reference): multipliers crop.
# LRP: relevance on padded positions is dropped.  After zero padding it is 0 anyway (the rules give R_j = a_j c_j,
# a_j = 0); a nonzero constant absorbs relevance like a bias does.
defrule(Pad2D, "rescale", *LRP_RULES)(_pad_crop)


@defrule(Pad2D, "revealcancel")
def _pad_crop_pairs(layer, g, cache, **_):
    """R (or each of the RevealCancel pair m⁺, m⁻) cropped to the input
    (the padded constants have Δ = 0); Shrikumar et al. 2017"""
    if isinstance(g, tuple):
        return tuple(_crop(layer, part) for part in g)
    return _crop(layer, g)


@defregion(Pad2D, "window", pad_value=0.0)
def _pad_region(layer, lo, size, in_hw):
    """input box shifted by (top, left): a window of kernel 1; it never reads the padding, so the layer's own
    constant is never needed
    Nakandala et al. 2019 (incremental inference)"""
    return window_region_2d(lo, size, in_hw, (1, 1), (1, 1), (1, 1), layer.pads)


@defjvp(Pad2D)
def _pad_jvp(layer, dx, cache):
    """dX padded with zeros  (the layer's linear part)"""
    return pad_nchw(dx, layer.pads)


__all__ = ["Pad2D", "tf_same_padding"]
