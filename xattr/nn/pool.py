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
    kind = "window"

    def forward(self, x):
        x = check_image_batch(x, f"input of {self.describe()}")
        out_hw = self.output_hw(x.shape)
        xp = pad_nchw(x, self.pads, value=-np.inf)
        offsets = self._offsets()
        views = [self._window(xp, i, j, out_hw) for i, j in offsets]
        # One scan in window order with a strict '>': the switch is the first offset holding the
        # max ("first").  The switch only ever moves to a later offset k, so max(switch, k·[v > best])
        # updates it without a select (np.copyto(where=) is ~10x slower on random masks); -inf
        # padding never beats a window that holds an input.
        best = views[0].copy()
        switch = np.zeros(best.shape, dtype=np.uint8 if len(offsets) < 256 else np.intp)
        gt, step = np.empty(best.shape, dtype=bool), np.empty_like(switch)
        for k, v in enumerate(views[1:], start=1):
            np.greater(v, best, out=gt)
            np.maximum(best, v, out=best)
            np.multiply(gt, switch.dtype.type(k), out=step)
            np.maximum(switch, step, out=switch)
        return best, Cache(switch=switch, padded_shape=xp.shape, out_hw=out_hw, in_shape=x.shape)

    def route(self, g, cache):
        """Send ``g`` ``(N, C, Ho, Wo)`` to the recorded switches; ``(N, C, H, W)``."""
        gx = np.zeros(cache.padded_shape, dtype=g.dtype)
        if not np.isfinite(g).all():  # inf * 0 would be NaN: the exact (slower) selection
            for k, (i, j) in enumerate(self._offsets()):
                sl = (slice(None), slice(None)) + window_slices(i, j, cache.out_hw, self.stride, (1, 1))
                gx[sl] += np.where(cache.switch == k, g, 0)
            return unpad(gx, self.pads)
        # g · 1[switch == k]: a multiply, since np.where on a random mask is ~20x slower; where windows
        # do not overlap each position is written once, else added.  + 0 makes the -0.0 of g < 0 at
        # non-switch positions +0.0, so the result is np.where's bit for bit.
        disjoint = all(s >= k for s, k in zip(self.stride, self.kernel_size))
        hit = np.empty(cache.switch.shape, dtype=bool)
        for k, (i, j) in enumerate(self._offsets()):
            sl = (slice(None), slice(None)) + window_slices(i, j, cache.out_hw, self.stride, (1, 1))
            np.equal(cache.switch, k, out=hit)
            if disjoint:
                np.multiply(g, hit, out=gx[sl])
            else:
                gx[sl] += g * hit
        gx += 0
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
    kind = "global"

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


# -- DeepLIFT (Shrikumar et al. 2017) and LRP columns -----------------------------------------------
from .relevance import DEEPLIFT_NEAR_ZERO, LRP_RULES, need_reference, safe_divide, stabilize  # noqa: E402

#: DeepLIFT max-pool modes: "gradient" (the paper's reference code, default), "rescale" (summation-exact).
DEEPLIFT_MAXPOOL_MODES = ("gradient", "rescale")
#: LRP max-pool modes: "winner_take_all" (default), "proportional".
LRP_MAXPOOL_MODES = ("winner_take_all", "proportional")


def _at_switch(layer, xp, cache):
    """Value of the padded input ``xp`` at each window's recorded switch; ``(N, C, Ho, Wo)``."""
    out = np.zeros(cache.switch.shape, dtype=xp.dtype)
    for k, (i, j) in enumerate(layer._offsets()):
        np.copyto(out, layer._window(xp, i, j, cache.out_hw), where=cache.switch == k)
    return out


@defrule(MaxPool2D, "rescale", "revealcancel")
def _maxpool_deeplift(layer, g, cache, inp=None, ref=None, maxpool="gradient", threshold=DEEPLIFT_NEAR_ZERO, **_):
    """R to the input's argmax (gradient); maxpool="rescale": R Δy/Δx_a at the input's argmax a (else the reference's)
    DeepLIFT, Shrikumar et al. 2017 (its code's MaxPoolDeepLiftMode.gradient); "rescale": Rescale on each window, exact"""
    if isinstance(g, tuple):
        raise ValueError(f"{layer.describe()}: DeepLIFT through max-pool takes one multiplier, got a (m⁺, m⁻) pair")
    if maxpool not in DEEPLIFT_MAXPOOL_MODES:
        raise ValueError(f"DeepLIFT maxpool mode must be one of {DEEPLIFT_MAXPOOL_MODES}, got {maxpool!r}")
    if maxpool == "gradient":
        return layer.route(g, cache)  # the switches of the *input* pass, never the reference's
    need_reference(layer, "rescale", inp, ref)
    dy = inp.y - ref.y
    # Δx at the input's argmax a and at the reference's argmax b (padding is never a switch)
    dxa = inp.y - _at_switch(layer, pad_nchw(ref.x, layer.pads), cache)
    dxb = _at_switch(layer, pad_nchw(inp.x, layer.pads), ref.cache) - ref.y
    ok_a, ok_b = np.abs(dxa) > threshold, np.abs(dxb) > threshold
    coef_a = np.divide(dy, dxa, out=np.where(ok_b, 0.0, 1.0).astype(dy.dtype), where=ok_a)
    coef_b = np.divide(dy, dxb, out=np.zeros_like(dy), where=ok_b & ~ok_a)
    return layer.route(g * coef_a, cache) + layer.route(g * coef_b, ref.cache)


@defrule(MaxPool2D, *LRP_RULES)
def _maxpool_lrp(layer, R, cache, inp=None, maxpool="winner_take_all", **_):
    """R to the window's argmax (winner-take-all); maxpool="proportional": R_i = x_i R / Σ_window x
    Montavon et al. 2019 §10.3 (winner-take-all); proportional as a z-rule on the window"""
    if maxpool not in LRP_MAXPOOL_MODES:
        raise ValueError(f"LRP maxpool mode must be one of {LRP_MAXPOOL_MODES}, got {maxpool!r}")
    if maxpool == "winner_take_all":
        return layer.route(R, cache)
    if inp is None:
        raise ValueError(f"proportional LRP on {layer.describe()} needs the layer's input (inp=); use xattr.lrp")
    xp = pad_nchw(inp.x, layer.pads)  # zero padding: padded positions take no relevance
    z = np.zeros(cache.switch.shape, dtype=xp.dtype)
    for i, j in layer._offsets():
        z += layer._window(xp, i, j, cache.out_hw)
    s = safe_divide(R, z)
    c = np.zeros(cache.padded_shape, dtype=s.dtype)
    for i, j in layer._offsets():
        c[(slice(None), slice(None)) + window_slices(i, j, cache.out_hw, layer.stride, (1, 1))] += s
    return inp.x * unpad(c, layer.pads)


# average pools are linear: DeepLIFT multipliers pass as gradients; LRP treats them as a linear layer
# with positive weights (the z-rule: z⁺, γ, αβ all reduce to it for a ≥ 0; Zennit's Norm rule).
defrule(AvgPool2D, "rescale", "revealcancel")(_avgpool_spread)
defrule(GlobalAvgPool2D, "rescale", "revealcancel")(_gap_spread)


@defrule((AvgPool2D, GlobalAvgPool2D), *LRP_RULES)
def _avgpool_lrp(layer, R, cache, inp=None, epsilon=0.0, **_):
    """R_i = x_i Σ_w R_w / (kH kW z_w),  z_w = the window's mean (z = 0 → 0)
    LRP-0 on the linear pooling map; Montavon et al. 2019"""
    if inp is None:
        raise ValueError(f"LRP on {layer.describe()} needs the layer's input/output (inp=); use xattr.lrp")
    s = safe_divide(R, stabilize(inp.y, epsilon))
    return inp.x * layer.backward(s, cache, "gradient")
from .region import defregion, window_region_2d  # noqa: E402  (region maps sit next to their layer)


@defregion(MaxPool2D, "window", pad_value=-np.inf)
@defregion(AvgPool2D, "window", pad_value=0.0)
def _pool_region(layer, lo, size, in_hw):
    """Projective field of a pooling window: input box -> output box it can change, input box needed
    Nakandala et al. 2019 (incremental inference); max pool pads with -inf, average pool with 0"""
    return window_region_2d(lo, size, in_hw, layer.kernel_size, layer.stride, (1, 1), layer.pads)


@defregion(GlobalAvgPool2D, "global")
def _gap_region(layer, base_in, base_out, image, patch, lo):
    """mean with the box replaced: base mean + (sum(patch) - sum(base box)) / (H W)
    Nakandala et al. 2019 (incremental inference): only the box is read"""
    _, _, h, w = patch.shape
    H, W = base_in.shape[2:]
    r = lo[:, 0, None] + np.arange(h)  # (B, h): rows of each item's box
    c = lo[:, 1, None] + np.arange(w)
    old = base_in[image[:, None, None], :, r[:, :, None], c[:, None, :]]  # (B, h, w, C)
    delta = patch.sum(axis=(2, 3)) - old.sum(axis=(1, 2))
    return base_out[image] + delta / (H * W)
@defjvp(MaxPool2D)
def _maxpool_jvp(layer, dx, cache):
    """dX at the cached switch of each window  (ties: the recorded first maximum)"""
    return _at_switch(layer, pad_nchw(dx, layer.pads), cache)  # padded positions never win


@defjvp(AvgPool2D)
def _avgpool_jvp(layer, dx, cache):
    """mean of dX over each window  (a linear layer: the forward pass itself)"""
    return layer.forward(dx)[0]


@defjvp(GlobalAvgPool2D)
def _gap_jvp(layer, dx, cache):
    """mean of dX over (H, W)  (a linear layer)"""
    return dx.mean(axis=(2, 3))
