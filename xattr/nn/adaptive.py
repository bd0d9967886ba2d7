"""Adaptive pooling to a fixed output size, with PyTorch's bins (``AdaptiveAvgPool2d``, ``AdaptiveMaxPool2d``).

Output row ``i`` of ``Ho`` pools the input rows ``[floor(i H / Ho), ceil((i + 1) H / Ho))`` (columns alike):
bins of ``floor(H/Ho)`` or ``ceil(H/Ho)`` (+1 where they overlap), overlapping when ``Ho`` does not divide
``H``, repeated when ``Ho > H``.  VGG and AlexNet end their features with one (7×7, 6×6), ResNet and
MobileNet with the 1×1 global one.

The average is separable, ``y = A_H x A_Wᵀ`` with ``A[i, h] = 1/|bin i|`` on bin ``i``: two small matrix
products, and the adjoint ``A_Hᵀ g A_W``.  The maximum scans bin offsets like :class:`MaxPool2D` scans kernel
offsets, offsets past a short bin repeating its last element (never a strictly greater value, so the switch
stays the first maximum in row-major bin order: ``MAXPOOL_TIE_POLICY``); the signal is routed back with one
``bincount``.
"""
from __future__ import annotations

import numpy as np

from .._conventions import MAXPOOL_TIE_POLICY, check_image_batch, pair
from . import pool as _pool
from .base import Cache, Layer, defjvp, defrule
from .region import defregion
from .relevance import LRP_RULES

assert MAXPOOL_TIE_POLICY == "first"


def adaptive_bins(size, out):
    """``(start, end)`` int arrays ``(out,)``: PyTorch's bins ``[floor(i n / out), ceil((i + 1) n / out))``.

    Parameters
    ----------
    size : int
        The input length ``n``.
    out : int
        The output length.

    Returns
    -------
    start, end : int arrays ``(out,)``
    """
    i = np.arange(out)
    return (i * size) // out, -((-(i + 1) * size) // out)


def _output_size(output_size):
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != 2:
            raise ValueError(f"output_size must be an int or a pair (None keeps the input's size), got {output_size!r}")
        return tuple(None if v is None else pair(v, "output_size")[0] for v in output_size)
    return pair(output_size, "output_size")


class _AdaptivePool2D(Layer):
    def __init__(self, output_size):
        self.output_size = _output_size(output_size)
        if any(v is not None and v < 1 for v in self.output_size):
            raise ValueError(f"output_size must be >= 1, got {output_size!r}")

    def extra_repr(self):
        return f"output_size={self.output_size}"

    def output_hw(self, in_shape):
        return tuple(n if o is None else o for n, o in zip(in_shape[2:], self.output_size))

    def _check(self, x):
        return check_image_batch(x, f"input of {self.describe()}")

    def bin_matrices(self, in_hw, dtype, average=True):
        """``(A_H (Ho, H), A_W (Wo, W))``: ``1/|bin|`` (``average``) or 1 on each output's bin."""
        mats = []
        for n, o in zip(in_hw, self.output_hw((1, 1) + tuple(in_hw))):
            start, end = adaptive_bins(n, o)
            pos = np.arange(n)
            inside = (pos >= start[:, None]) & (pos < end[:, None])
            mats.append((inside / (end - start)[:, None] if average else inside).astype(dtype))
        return tuple(mats)


class AdaptiveAvgPool2D(_AdaptivePool2D):
    """Average over PyTorch's adaptive bins; ``(N, C, H, W) -> (N, C, *output_size)``.

    Parameters
    ----------
    output_size : int or (int or None, int or None)
        ``None`` keeps that axis' input size.  ``1`` is the global average (``GlobalAvgPool2D`` without the
        flattening: the output stays ``(N, C, 1, 1)``).
    """

    short_name = "adaptiveavgpool"

    def forward(self, x):
        x = self._check(x)
        ah, aw = self.bin_matrices(x.shape[2:], x.dtype)
        return np.matmul(ah, x @ aw.T), Cache(in_shape=x.shape, mats=(ah, aw))

    def spread(self, g, cache):
        """Adjoint: ``A_Hᵀ g A_W`` (each bin's signal spread evenly over its positions)."""
        ah, aw = (m.astype(g.dtype, copy=False) for m in cache.mats)
        return np.matmul(ah.T, g @ aw)


@defrule(AdaptiveAvgPool2D, "gradient", "deconvnet", "guided")
def _adaptive_avg_spread(layer, g, cache, **_):
    """A_Hᵀ R A_W: R / |bin| to every position of its bin (a linear layer: its adjoint)
    the same for all three rules; PyTorch's bins"""
    return layer.spread(g, cache)


class AdaptiveMaxPool2D(_AdaptivePool2D):
    """Maximum over PyTorch's adaptive bins; ``(N, C, H, W) -> (N, C, *output_size)``; ties: the first maximum
    in row-major bin order (``MAXPOOL_TIE_POLICY``, as PyTorch)."""

    short_name = "adaptivemaxpool"
    kind = "window"  # the graph's layer kind (a nonlinear window: exact IG cuts at its switches)

    def _tables(self, in_hw):
        """``(rows (Kh, Ho), cols (Kw, Wo))``: input row/column of bin offset ``k`` of each output, offsets past a
        short bin repeating its last row/column."""
        out = []
        for n, o in zip(in_hw, self.output_hw((1, 1) + tuple(in_hw))):
            start, end = adaptive_bins(n, o)
            k = int((end - start).max())
            out.append(np.minimum(start[None, :] + np.arange(k)[:, None], end[None, :] - 1))
        return tuple(out)

    def windows(self, x, fill=None):
        """``[(N, C, Ho, Wo)]``: ``x`` at each bin offset, in row-major offset order (``fill`` is unused: no
        padding)."""
        rows, cols = self._tables(x.shape[2:])
        return [x[:, :, r[:, None], c[None, :]] for r in rows for c in cols]

    def forward(self, x):
        x = self._check(x)
        views = self.windows(x)
        best = views[0].copy()
        switch = np.zeros(best.shape, dtype=np.uint8 if len(views) < 256 else np.intp)
        gt, step = np.empty(best.shape, dtype=bool), np.empty_like(switch)
        for k, v in enumerate(views[1:], start=1):  # strict '>': the first maximum keeps the switch
            np.greater(v, best, out=gt)
            np.maximum(best, v, out=best)
            np.multiply(gt, switch.dtype.type(k), out=step)  # offsets only grow: max(switch, k·[v > best])
            np.maximum(switch, step, out=switch)
        rows, cols = self._tables(x.shape[2:])
        Ho, Wo = best.shape[2:]
        # flat input position of each output's switch: rows[k // Kw, i] * W + cols[k % Kw, j]
        kw = cols.shape[0]
        flat = rows[switch // kw, np.arange(Ho)[:, None]] * x.shape[3] + cols[switch % kw, np.arange(Wo)[None, :]]
        return best, Cache(switch=switch, flat=flat, in_shape=x.shape)

    def route(self, g, cache):
        """Send ``g`` ``(N, C, Ho, Wo)`` to the recorded switches (summed where bins share one); ``(N, C, H, W)``."""
        N, C, H, W = cache.in_shape
        base = (np.arange(N * C) * (H * W)).reshape(N, C, 1, 1)
        out = np.bincount((base + cache.flat).ravel(), weights=g.ravel(), minlength=N * C * H * W)
        return out.reshape(cache.in_shape).astype(g.dtype, copy=False)

    def at_switch(self, x, cache):
        """Value of ``x`` ``(N, C, H, W)`` at each bin's recorded switch; ``(N, C, Ho, Wo)``."""
        N, C = x.shape[:2]
        flat = cache.flat.reshape(N, C, -1)
        return np.take_along_axis(x.reshape(N, C, -1), flat, axis=2).reshape(cache.flat.shape)

    def window_sum(self, x, cache):
        """``Σ_bin x`` per output (``A_H x A_Wᵀ`` with 0/1 bins); its adjoint is :meth:`spread_sum`."""
        ah, aw = self.bin_matrices(x.shape[2:], x.dtype, average=False)
        return np.matmul(ah, x @ aw.T)

    def spread_sum(self, s, cache):
        """Adjoint of :meth:`window_sum`."""
        ah, aw = self.bin_matrices(cache.in_shape[2:], s.dtype, average=False)
        return np.matmul(ah.T, s @ aw)


@defrule(AdaptiveMaxPool2D, "gradient", "deconvnet", "guided")
def _adaptive_max_switches(layer, g, cache, **_):
    """R to each bin's argmax (switches); ties: first in row-major bin order
    Zeiler & Fergus 2014 (switches); Springenberg et al. 2015"""
    return layer.route(g, cache)


# -- DeepLIFT and LRP: the cells of the fixed-window pools, on the same switch/sum protocol ---------------

defrule(AdaptiveMaxPool2D, "rescale", "revealcancel")(_pool._maxpool_deeplift)
defrule(AdaptiveMaxPool2D, *LRP_RULES)(_pool._maxpool_lrp)
# the average is linear: DeepLIFT multipliers pass as gradients; LRP-0 on its (positive) linear map
defrule(AdaptiveAvgPool2D, "rescale", "revealcancel")(_adaptive_avg_spread)
defrule(AdaptiveAvgPool2D, *LRP_RULES)(_pool._avgpool_lrp)


@defregion(AdaptiveAvgPool2D, "global")
def _adaptive_avg_region(layer, base_in, base_out, image, patch, lo):
    """base output + A_H[:, box rows] (patch − base box) A_W[:, box cols]ᵀ  (only the box is read)
    Nakandala et al. 2019 (incremental inference); the layers after it run in full"""
    _, _, h, w = patch.shape
    ah, aw = layer.bin_matrices(base_in.shape[2:], patch.dtype)
    r = lo[:, 0, None] + np.arange(h)  # (B, h): rows of each item's box
    c = lo[:, 1, None] + np.arange(w)
    old = base_in[image[:, None, None], :, r[:, :, None], c[:, None, :]].transpose(0, 3, 1, 2)  # (B, C, h, w)
    return base_out[image] + np.einsum("obh,bchw,pbw->bcop", ah[:, r], patch - old, aw[:, c], optimize=True)


@defjvp(AdaptiveAvgPool2D)
def _adaptive_avg_jvp(layer, dx, cache):
    """A_H dX A_Wᵀ  (a linear layer: the forward pass itself)"""
    ah, aw = (m.astype(dx.dtype, copy=False) for m in cache.mats)
    return np.matmul(ah, dx @ aw.T)


@defjvp(AdaptiveMaxPool2D)
def _adaptive_max_jvp(layer, dx, cache):
    """dX at the cached switch of each bin"""
    return layer.at_switch(dx, cache)


__all__ = ["AdaptiveAvgPool2D", "AdaptiveMaxPool2D", "adaptive_bins"]
