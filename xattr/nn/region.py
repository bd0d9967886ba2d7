"""Region maps: which part of a layer's output an input region can change, for incremental inference.

Incremental occlusion (Nakandala et al., "Incremental and approximate inference for faster
occlusion-based deep CNN explanations", SIGMOD 2019) recomputes, layer after layer, only the
part of each activation that an occluding patch can reach (its *projective field*) and reuses
the unoccluded activations elsewhere.  What a layer must tell it is one small function,
registered next to the layer class with :func:`defregion`:

``"window"`` layers (convolution, max/average pooling), ``fn(layer, lo, size, in_hw)``
    ``lo`` ``(B, 2)`` are the top-left corners of changed input boxes, all of size ``size``
    ``(2,)``, in an input of spatial size ``in_hw``.  Returns ``(out_lo (B, 2), out_size (2,),
    need_lo (B, 2), need_size (2,))``: a box of the output that contains every output the input
    box can change (of one size for the whole batch, kept inside the output), and the box of the
    *padded-coordinates* input (``need_lo`` may be negative: padding) that recomputing it reads.
    The layer is then run without its own padding on that input box (:func:`without_padding`),
    the box having been read from the input padded with the layer's ``pad_value``.
``"pointwise"`` layers (ReLU, batch-norm, dropout)
    change exactly the pixels that changed; no function is needed.
``"global"`` layers (global average pooling), ``fn(layer, base_in, base_out, image, patch, lo)``
    return the layer's output ``(B, ...)`` for the base inputs ``base_in[image]`` (``base_in``
    ``(N, C, H, W)``, ``image`` ``(B,)`` indices) whose box at ``lo`` ``(B, 2)`` is replaced by
    ``patch`` ``(B, C, h, w)``; ``base_out`` ``(N, ...)`` is the layer's output on ``base_in``.  The layers after it run
    in full on this (small) output.

A model is run incrementally through its longest prefix of registered layers; a layer without
a region map ends the incremental part (the rest runs in full on the patched activation).
"""
from __future__ import annotations

import copy
from typing import Callable, NamedTuple, Optional

import numpy as np

REGION_KINDS = ("window", "pointwise", "global")


class RegionMap(NamedTuple):
    kind: str
    fn: Optional[Callable]
    pad_value: float


def defregion(layer_types, kind, pad_value=0.0):
    """Register the decorated function as the region map of ``layer_types`` (see the module docstring).

    ``pad_value`` is what the layer pads its input with (0 for convolution and average pooling,
    ``-inf`` for max pooling).  Used as ``@defregion(Conv2D, "window")``; pointwise layers
    register ``defregion(ReLU, "pointwise")(None)``.  Stored as the layer's ``"region"`` fact, so
    subclasses inherit it.

    Parameters
    ----------
    layer_types : type or tuple/list of types
    kind : str
        One of ``REGION_KINDS``.
    pad_value : float

    Returns
    -------
    callable
        The decorator; it returns the function unchanged.
    """
    from .base import deffact

    if kind not in REGION_KINDS:
        raise ValueError(f"kind must be one of {REGION_KINDS}, got {kind!r}")

    def register(fn):
        deffact(layer_types, "region")(RegionMap(kind, fn, float(pad_value)))
        return fn

    return register


def region_map(layer):
    """The :class:`RegionMap` of ``layer``'s type (own or inherited), or None if it has none or the layer's
    settings take it out of the map's reach (``layer.region_map_applies()`` False: e.g. a ceil-mode pool's
    input-dependent overhang)."""
    from .base import find_fact

    rm = find_fact(type(layer), "region")
    if rm is not None and not getattr(layer, "region_map_applies", lambda: True)():
        return None
    return rm


def window_region(lo, size, in_len, kernel, stride, dilation, pad_lo, pad_hi):
    """Projective field of a sliding-window op along one axis (vectorised over ``lo``).

    Output ``o`` reads padded input positions ``o*s .. o*s + d*(k-1)``, i.e. input rows
    ``o*s - pad_lo + [0, d*(k-1)]``.  The input rows ``[lo, lo + size)`` reach the outputs
    ``ceil((lo + pad_lo - d(k-1)) / s) .. floor((lo + size - 1 + pad_lo) / s)``: at most
    ``floor((size - 1 + d(k-1)) / s) + 1`` of them, which is the fixed box size returned
    (capped at the output length); the box start is clamped so the box stays inside the output
    and still covers every reachable output.

    Parameters
    ----------
    lo : int array
        First input rows of the boxes.
    size : int
        The boxes' length.
    in_len : int
    kernel, stride, dilation : int
    pad_lo, pad_hi : int

    Returns
    -------
    out_lo : int ndarray like ``lo``
    out_size : int
    need_lo : int ndarray like ``lo`` (input coordinates; negative = padding)
    need_size : int
    """
    from .conv import conv_output_size

    lo = np.asarray(lo, dtype=np.intp)
    span = dilation * (kernel - 1)
    out_len = conv_output_size(in_len, kernel, stride, dilation, pad_lo, pad_hi)
    out_size = min(out_len, (size - 1 + span) // stride + 1)
    first = -((span - lo - pad_lo) // stride)  # ceil((lo + pad_lo - span) / stride)
    out_lo = np.clip(first, 0, out_len - out_size)
    need_lo = out_lo * stride - pad_lo
    need_size = (out_size - 1) * stride + span + 1
    return out_lo, out_size, need_lo, need_size


def window_region_2d(lo, size, in_hw, kernel, stride, dilation, pads):
    """:func:`window_region` on both spatial axes; ``lo`` ``(B, 2)``, ``size``/``in_hw`` pairs.

    Parameters
    ----------
    lo : int array ``(B, 2)``
    size, in_hw, kernel, stride, dilation : pairs of int
    pads : ((int, int), (int, int))
        ``((top, bottom), (left, right))``.

    Returns
    -------
    out_lo : int array ``(B, 2)``
    out_size : (int, int)
    need_lo : int array ``(B, 2)``
    need_size : (int, int)
    """
    rows = window_region(lo[:, 0], size[0], in_hw[0], kernel[0], stride[0], dilation[0], *pads[0])
    cols = window_region(lo[:, 1], size[1], in_hw[1], kernel[1], stride[1], dilation[1], *pads[1])
    return (
        np.stack([rows[0], cols[0]], axis=1), (rows[1], cols[1]),
        np.stack([rows[2], cols[2]], axis=1), (rows[3], cols[3]),
    )


def finite_pad_value(rm, dtype):
    """The pad value in ``dtype``; ``-inf`` becomes the lowest finite value (layers refuse non-finite input,
    and a pooling window always holds at least one real input, so its maximum is unchanged).

    Parameters
    ----------
    rm : RegionMap
    dtype : numpy float dtype

    Returns
    -------
    float
    """
    return np.finfo(dtype).min if np.isneginf(rm.pad_value) else rm.pad_value


def without_padding(layer):
    """A shallow copy of a window layer with its padding removed (it runs on pre-padded boxes)."""
    clone = copy.copy(layer)
    clone.pads = ((0, 0), (0, 0))
    clone.padding = 0 if not isinstance(getattr(layer, "padding", 0), tuple) else (0, 0)
    return clone
