"""Pooling: max (with switches), average, global average.

Max-pool ties follow ``MAXPOOL_TIE_POLICY = "first"`` (see :mod:`xattr._conventions`): the
forward pass records, per window, the first maximal position in row-major window order
(the "switch" of Zeiler & Fergus); every rule routes the signal to that switch.
Padding of max-pool is by ``-inf`` (padded positions never win), of average pool by zeros
counted in the divisor (PyTorch's ``count_include_pad=True``).
Kernels loop over kernel offsets, never over pixels or images.
"""
from __future__ import annotations

import numpy as np

from .._conventions import MAXPOOL_TIE_POLICY, as_float_array, check_image_batch, pair
from .base import Cache, Layer, defjvp, defrule
from .conv import conv_output_size, pad_nchw, unpad, window_slices

assert MAXPOOL_TIE_POLICY == "first"  # strict '>' in the scan below keeps the first maximum


class _Pool2D(Layer):
    def __init__(self, kernel_size, stride=None, padding=0):
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else pair(stride, "stride")
        ph, pw = pair(padding, "padding")
        if min(self.kernel_size) < 1 or min(self.stride) < 1:
            raise ValueError(f"kernel_size and stride must be >= 1, got {self.kernel_size}, {self.stride}")
        if ph > self.kernel_size[0] // 2 or pw > self.kernel_size[1] // 2:
            raise ValueError(f"padding must be at most half the kernel size {self.kernel_size}, got {(ph, pw)}")
        self.padding = (ph, pw)
        self.pads = ((ph, ph), (pw, pw))

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    def output_hw(self, in_shape):
        H, W = in_shape[2:]
        Ho = conv_output_size(H, self.kernel_size[0], self.stride[0], 1, *self.pads[0])
        Wo = conv_output_size(W, self.kernel_size[1], self.stride[1], 1, *self.pads[1])
        if Ho < 1 or Wo < 1:
            raise ValueError(
                f"{self.describe()}: input of spatial size {(H, W)} is smaller than the kernel {self.kernel_size}"
            )
        return Ho, Wo

    def _offsets(self):
        kh, kw = self.kernel_size
        return [(i, j) for i in range(kh) for j in range(kw)]

    def _window(self, xp, i, j, out_hw):
        return xp[(slice(None), slice(None)) + window_slices(i, j, out_hw, self.stride, (1, 1))]


class MaxPool2D(_Pool2D):
    """Max pooling; ``(N, C, H, W) -> (N, C, Ho, Wo)``; overlapping windows allowed (e.g. 3×3 stride 2).

    Parameters
    ----------
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size``.
    padding : int or (int, int)
        At most half the kernel; padded by ``-inf``.
    """

    short_name = "maxpool"

    def forward(self, x):
        x = check_image_batch(x, f"input of {self.describe()}")
        out_hw = self.output_hw(x.shape)
        xp = pad_nchw(x, self.pads, value=-np.inf)
        best = None
        switch = np.zeros(x.shape[:2] + out_hw, dtype=np.intp)
        for k, (i, j) in enumerate(self._offsets()):
            v = self._window(xp, i, j, out_hw)
            if best is None:
                best = v.copy()
                continue
            better = v > best  # strict: ties keep the earlier offset ("first")
            np.copyto(best, v, where=better)
            np.copyto(switch, k, where=better)
        return best, Cache(switch=switch, padded_shape=xp.shape, out_hw=out_hw, in_shape=x.shape)

    def route(self, g, cache):
        """Send ``g`` ``(N, C, Ho, Wo)`` to the recorded switches; ``(N, C, H, W)``."""
        gx = np.zeros(cache.padded_shape, dtype=g.dtype)
        for k, (i, j) in enumerate(self._offsets()):
            sl = (slice(None), slice(None)) + window_slices(i, j, cache.out_hw, self.stride, (1, 1))
            gx[sl] += np.where(cache.switch == k, g, 0)
        return unpad(gx, self.pads)


@defrule(MaxPool2D, "gradient", "deconvnet", "guided")
def _maxpool_switches(layer, g, cache, **_):
    """R to the forward argmax (switches); ties: first in window order
    Zeiler & Fergus 2014 (switches); Springenberg et al. 2015"""
    return layer.route(g, cache)


class AvgPool2D(_Pool2D):
    """Average pooling; ``(N, C, H, W) -> (N, C, Ho, Wo)``; zero padding counted in the divisor."""

    short_name = "avgpool"

    def forward(self, x):
        x = check_image_batch(x, f"input of {self.describe()}")
        out_hw = self.output_hw(x.shape)
        xp = pad_nchw(x, self.pads)
        acc = np.zeros(x.shape[:2] + out_hw, dtype=x.dtype)
        for i, j in self._offsets():
            acc += self._window(xp, i, j, out_hw)
        acc /= self.kernel_size[0] * self.kernel_size[1]
        return acc, Cache(padded_shape=xp.shape, out_hw=out_hw)

    def spread(self, g, cache):
        """Adjoint: each window's signal spread evenly over its ``kH*kW`` positions."""
        gx = np.zeros(cache.padded_shape, dtype=g.dtype)
        share = g / (self.kernel_size[0] * self.kernel_size[1])
        for i, j in self._offsets():
            gx[(slice(None), slice(None)) + window_slices(i, j, cache.out_hw, self.stride, (1, 1))] += share
        return unpad(gx, self.pads)


@defrule(AvgPool2D, "gradient", "deconvnet", "guided")
def _avgpool_spread(layer, g, cache, **_):
    """R / (kH kW) to every position of its window (a linear layer: its adjoint)
    the same for all three rules"""
    return layer.spread(g, cache)


class GlobalAvgPool2D(Layer):
    """Global average pooling ``(N, C, H, W) -> (N, C)`` (Lin et al. 2014), the head CAM needs."""

    short_name = "gap"

    def forward(self, x):
        x = as_float_array(x, f"input of {self.describe()}")
        if x.ndim != 4:
            raise ValueError(f"input of {self.describe()} must have shape (N, C, H, W), got {x.shape}")
        return x.mean(axis=(2, 3)), Cache(in_shape=x.shape)


@defrule(GlobalAvgPool2D, "gradient", "deconvnet", "guided")
def _gap_spread(layer, g, cache, **_):
    """R / (H W) to every position (the adjoint of the mean)
    Lin et al. 2014; the same for all three rules"""
    H, W = cache.in_shape[2:]
    return np.broadcast_to((g / (H * W))[:, :, None, None], cache.in_shape).copy()


@defjvp(MaxPool2D)
def _maxpool_jvp(layer, dx, cache):
    """dX at the cached switch of each window  (ties: the recorded first maximum)"""
    dxp = pad_nchw(dx, layer.pads)  # padded positions never win, so their value is irrelevant
    out = np.zeros(cache.switch.shape, dtype=dx.dtype)
    for k, (i, j) in enumerate(layer._offsets()):
        np.copyto(out, layer._window(dxp, i, j, cache.out_hw), where=cache.switch == k)
    return out


@defjvp(AvgPool2D)
def _avgpool_jvp(layer, dx, cache):
    """mean of dX over each window  (a linear layer: the forward pass itself)"""
    return layer.forward(dx)[0]


@defjvp(GlobalAvgPool2D)
def _gap_jvp(layer, dx, cache):
    """mean of dX over (H, W)  (a linear layer)"""
    return dx.mean(axis=(2, 3))
