"""Pooling: max (with switches), average, global average.

Max-pool ties follow the layer's ``tie`` policy (default ``MAXPOOL_TIE_POLICY = "first"``, see
:mod:`xattr._conventions`): the forward pass records, per window, the first maximal position in row-major window
order (the "switch" of Zeiler & Fergus; PyTorch's ``max_pool2d``); every rule routes the signal to that switch.
With ``tie="split"`` (autograd's ``balanced_eq``) the signal is split evenly between the window's tied maxima
instead, in every rule that routes through the switch (gradient, DeconvNet, guided backprop, DeepLIFT, LRP
winner-take-all, the forward-mode derivative).
Padding of max-pool is by ``-inf`` (padded positions never win), of average pool by zeros.
Kernels loop over kernel offsets, never over pixels or images.

Output sizes and divisors follow PyTorch (``max_pool2d``/``avg_pool2d``):
``Ho = floor((H + 2p − k) / s) + 1``, or with ``ceil_mode`` ``ceil(...) + 1`` less one if the last window
would start past the input and its left padding (``(Ho − 1) s ≥ H + p``).  The ceil-mode overhang of the
last window is extra bottom/right padding (``-inf`` / 0) that depends on the input size
(:meth:`_Pool2D.pads_for`).  The average divides by the window's positions inside the input and its
explicit padding (``count_include_pad=True``, the default: the ceil-mode overhang is never counted) or
inside the input only (``count_include_pad=False``).
"""
from __future__ import annotations

import numpy as np

from .._conventions import MAXPOOL_TIE_POLICIES, MAXPOOL_TIE_POLICY, as_float_array, check_image_batch, pair
from .base import Cache, Layer, defjvp, defrule
from .conv import pad_nchw, unpad, window_slices
from .region import defregion, window_region_2d
from .relevance import DEEPLIFT_NEAR_ZERO, LRP_RULES, need_reference, safe_divide, stabilize


def pool_output_size(size, k, s, p, ceil_mode=False):
    """Output length of a pooling window along one axis, PyTorch's rule (``pooling_output_shape``).

    Parameters
    ----------
    size : int
        The input length.
    k, s, p : int
        Kernel, stride, padding.
    ceil_mode : bool

    Returns
    -------
    int
    """
    num = size + 2 * p - k
    out = (num + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:  # the last window must start inside the input or left padding
        out -= 1
    return out


class _Pool2D(Layer):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else pair(stride, "stride")
        ph, pw = pair(padding, "padding")
        if min(self.kernel_size) < 1 or min(self.stride) < 1:
            raise ValueError(f"kernel_size and stride must be >= 1, got {self.kernel_size}, {self.stride}")
        if ph > self.kernel_size[0] // 2 or pw > self.kernel_size[1] // 2:
            raise ValueError(f"padding must be at most half the kernel size {self.kernel_size}, got {(ph, pw)}")
        if not isinstance(ceil_mode, (bool, np.bool_)):
            raise TypeError(f"ceil_mode must be a bool, got {ceil_mode!r}")
        self.padding = (ph, pw)
        self.pads = ((ph, ph), (pw, pw))
        self.ceil_mode = bool(ceil_mode)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
                + (", ceil_mode=True" if self.ceil_mode else ""))

    def output_hw(self, in_shape):
        H, W = in_shape[2:]
        Ho = pool_output_size(H, self.kernel_size[0], self.stride[0], self.padding[0], self.ceil_mode)
        Wo = pool_output_size(W, self.kernel_size[1], self.stride[1], self.padding[1], self.ceil_mode)
        if Ho < 1 or Wo < 1:
            raise ValueError(
                f"{self.describe()}: input of spatial size {(H, W)} is smaller than the kernel {self.kernel_size}"
            )
        return Ho, Wo

    def pads_for(self, in_hw):
        """``((top, bottom), (left, right))`` for an input of spatial size ``in_hw``: the explicit padding, plus
        the ceil-mode overhang of the last window at the bottom/right (0 in floor mode)."""
        out_hw = self.output_hw((1, 1) + tuple(in_hw))
        pads = []
        for n, o, k, s, p in zip(in_hw, out_hw, self.kernel_size, self.stride, self.padding):
            pads.append((p, p + max(0, (o - 1) * s + k - (n + 2 * p))))
        return tuple(pads)

    def region_map_applies(self):
        """Incremental occlusion's fixed-window region map holds (no input-size-dependent ceil-mode overhang)."""
        return not self.ceil_mode

    def windows(self, x, fill=0.0):
        """``[(N, C, Ho, Wo)]``: ``x`` (padded with ``fill``, ceil-mode overhang included) at each kernel offset."""
        out_hw = self.output_hw(x.shape)
        xp = pad_nchw(x, self.pads_for(x.shape[2:]), value=fill)
        return [self._window(xp, i, j, out_hw) for i, j in self._offsets()]

    def _offsets(self):
        kh, kw = self.kernel_size
        return [(i, j) for i in range(kh) for j in range(kw)]

    def _window(self, xp, i, j, out_hw):
        return xp[(slice(None), slice(None)) + window_slices(i, j, out_hw, self.stride, (1, 1))]

    def _scatter(self, part, cache):
        """``part`` ``(N, C, Ho, Wo)`` added at every position of each window; ``(N, C, H, W)``."""
        gx = np.zeros(cache.padded_shape, dtype=part.dtype)
        for i, j in self._offsets():
            gx[(slice(None), slice(None)) + window_slices(i, j, cache.out_hw, self.stride, (1, 1))] += part
        return unpad(gx, cache.pads)


class MaxPool2D(_Pool2D):
    """Max pooling; ``(N, C, H, W) -> (N, C, Ho, Wo)``; overlapping windows allowed (e.g. 3×3 stride 2).

    Parameters
    ----------
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size``.
    padding : int or (int, int)
        At most half the kernel; padded by ``-inf``.
    ceil_mode : bool
        PyTorch's ``ceil_mode`` (module docstring): a partial last window where the input does not fill it.
    tie : ``"first"`` or ``"split"``
        Where the signal goes when several inputs of a window equal its maximum: all of it to the first in
        row-major window order (``"first"``, the default ``MAXPOOL_TIE_POLICY``: the switch PyTorch's
        ``max_pool2d`` records), or split evenly between them (``"split"``: autograd's ``balanced_eq``, the
        derivative of ``np.max`` there).  Every rule that routes through the switch follows it; saved with
        the model.
    """

    short_name = "maxpool"
    kind = "window"
    #: the default policy; an instance holds its own ``tie`` only when it differs (so a default layer's attributes,
    #: and the model hashes of ``xattr.batch`` jobs, are what they were before the parameter existed).
    tie = MAXPOOL_TIE_POLICY

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, tie=MAXPOOL_TIE_POLICY):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        if not isinstance(tie, str) or tie not in MAXPOOL_TIE_POLICIES:
            raise ValueError(f"tie must be 'first' (PyTorch's switch) or 'split' (autograd's even split), got {tie!r}")
        if tie != type(self).tie:
            self.tie = tie

    def extra_repr(self):
        return super().extra_repr() + (f", tie={self.tie!r}" if self.tie != MAXPOOL_TIE_POLICY else "")

    def forward(self, x):
        x = check_image_batch(x, f"input of {self.describe()}")
        out_hw = self.output_hw(x.shape)
        pads = self.pads_for(x.shape[2:])
        xp = pad_nchw(x, pads, value=-np.inf)
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
        cache = Cache(switch=switch, padded_shape=xp.shape, out_hw=out_hw, in_shape=x.shape, pads=pads)
        if self.tie == "split":
            # which offsets hold the maximum, and how many: the even split of autograd's balanced_eq
            cache.tied = np.stack([v == best for v in views])  # (K, N, C, Ho, Wo) bool
            cache.share = 1.0 / cache.tied.sum(axis=0)  # (N, C, Ho, Wo): 1 / number of tied maxima
        return best, cache

    def route(self, g, cache):
        """Send ``g`` ``(N, C, Ho, Wo)`` to the recorded switches (``tie="split"``: evenly to the tied maxima);
        ``(N, C, H, W)``."""
        gx = np.zeros(cache.padded_shape, dtype=g.dtype)
        if getattr(cache, "tied", None) is not None:  # tie="split": g / count to each tied maximum
            part = g * cache.share.astype(g.dtype, copy=False)
            for k, (i, j) in enumerate(self._offsets()):
                sl = (slice(None), slice(None)) + window_slices(i, j, cache.out_hw, self.stride, (1, 1))
                gx[sl] += np.where(cache.tied[k], part, 0)
            return unpad(gx, cache.pads)
        if not np.isfinite(g).all():  # inf * 0 would be NaN: the exact (slower) selection
            for k, (i, j) in enumerate(self._offsets()):
                sl = (slice(None), slice(None)) + window_slices(i, j, cache.out_hw, self.stride, (1, 1))
                gx[sl] += np.where(cache.switch == k, g, 0)
            return unpad(gx, cache.pads)
        # g · 1[switch == k]: a multiply, since np.where on a random mask is ~20x slower; where windows
        # do not overlap each position is written once, else added.  g < 0 at a non-switch position gives
        # -0.0: written (disjoint windows), the + 0 pass makes it +0.0, so the result is np.where's bit for
        # bit; added to the +0.0 of np.zeros (overlapping windows) it leaves +0.0 already.
        disjoint = all(s >= k for s, k in zip(self.stride, self.kernel_size))
        hit = np.empty(cache.switch.shape, dtype=bool)
        part = None if disjoint else np.empty(g.shape, dtype=g.dtype)  # one buffer for the nine products
        for k, (i, j) in enumerate(self._offsets()):
            sl = (slice(None), slice(None)) + window_slices(i, j, cache.out_hw, self.stride, (1, 1))
            np.equal(cache.switch, k, out=hit)
            if disjoint:
                np.multiply(g, hit, out=gx[sl])
            else:
                gx[sl] += np.multiply(g, hit, out=part)
        if disjoint:
            gx += 0
        return unpad(gx, cache.pads)

    def at_switch(self, x, cache):
        """Value of ``x`` ``(N, C, H, W)`` at each window's recorded switch (``tie="split"``: the mean over the tied
        maxima, the adjoint of :meth:`route`); ``(N, C, Ho, Wo)``."""
        xp = pad_nchw(x, cache.pads)  # padding is never a switch: its value is not read
        out = np.zeros(cache.switch.shape, dtype=x.dtype)
        if getattr(cache, "tied", None) is not None:
            for k, (i, j) in enumerate(self._offsets()):
                out += np.where(cache.tied[k], self._window(xp, i, j, cache.out_hw), 0)
            return out * cache.share.astype(x.dtype, copy=False)
        for k, (i, j) in enumerate(self._offsets()):
            np.copyto(out, self._window(xp, i, j, cache.out_hw), where=cache.switch == k)
        return out

    def window_sum(self, x, cache):
        """``Σ_window x`` (zero padding), ``(N, C, Ho, Wo)``; its adjoint is :meth:`spread_sum`."""
        xp = pad_nchw(x, cache.pads)
        z = np.zeros(cache.switch.shape, dtype=x.dtype)
        for i, j in self._offsets():
            z += self._window(xp, i, j, cache.out_hw)
        return z

    def spread_sum(self, s, cache):
        """Adjoint of :meth:`window_sum`: each window's ``s`` added at every position of the window."""
        return self._scatter(s, cache)


@defrule(MaxPool2D, "gradient", "deconvnet", "guided")
def _maxpool_switches(layer, g, cache, **_):
    """R to the forward argmax (switches); ties: the layer's tie policy (first in window order, or split)
    Zeiler & Fergus 2014 (switches); Springenberg et al. 2015"""
    return layer.route(g, cache)


class AvgPool2D(_Pool2D):
    """Average pooling; ``(N, C, H, W) -> (N, C, Ho, Wo)``; zero padding.

    Parameters
    ----------
    kernel_size, stride, padding, ceil_mode
        As :class:`MaxPool2D`.
    count_include_pad : bool
        Divide by the window's positions inside the input *and its explicit padding* (True, the default, as
        PyTorch) or inside the input only (False).  The ceil-mode overhang is never counted (PyTorch).
    """

    short_name = "avgpool"

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        if not isinstance(count_include_pad, (bool, np.bool_)):
            raise TypeError(f"count_include_pad must be a bool, got {count_include_pad!r}")
        self.count_include_pad = bool(count_include_pad)

    def extra_repr(self):
        return super().extra_repr() + ("" if self.count_include_pad else ", count_include_pad=False")

    def region_map_applies(self):
        """The region map runs the window on padded boxes with a fixed divisor ``kH kW``: not with a divisor that
        leaves the padding out, nor with a ceil-mode overhang."""
        return super().region_map_applies() and (self.count_include_pad or self.padding == (0, 0))

    def divisor(self, in_hw, out_hw):
        """Each window's divisor: ``kH kW`` (a scalar) or an ``(Ho, Wo)`` array where windows are cut (module
        docstring)."""
        counts = []
        for n, o, k, s, p in zip(in_hw, out_hw, self.kernel_size, self.stride, self.padding):
            start = np.arange(o) * s - p  # input coordinates; the padding is [-p, 0) and [n, n + p)
            end = np.minimum(start + k, n + p)
            if not self.count_include_pad:
                start, end = np.maximum(start, 0), np.minimum(end, n)
            counts.append(end - start)
        d = np.outer(counts[0], counts[1])
        full = self.kernel_size[0] * self.kernel_size[1]
        return full if np.all(d == full) else d

    def forward(self, x):
        x = check_image_batch(x, f"input of {self.describe()}")
        out_hw = self.output_hw(x.shape)
        pads = self.pads_for(x.shape[2:])
        xp = pad_nchw(x, pads)
        acc = np.zeros(x.shape[:2] + out_hw, dtype=x.dtype)
        for i, j in self._offsets():
            acc += self._window(xp, i, j, out_hw)
        divisor = self.divisor(x.shape[2:], out_hw)
        acc /= divisor
        return acc, Cache(padded_shape=xp.shape, out_hw=out_hw, pads=pads, divisor=divisor)

    def spread(self, g, cache):
        """Adjoint: each window's signal spread evenly over its positions (``g / divisor`` at each)."""
        return self._scatter(g / cache.divisor, cache)


@defrule(AvgPool2D, "gradient", "deconvnet", "guided")
def _avgpool_spread(layer, g, cache, **_):
    """R / (kH kW) to every position of its window (a linear layer: its adjoint; cut windows: their own count)
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

#: DeepLIFT max-pool modes: "gradient" (the paper's reference code, default), "rescale" (summation-exact),
#: "captum" (Captum's cross-maximum split between the input's and the reference's switches).
DEEPLIFT_MAXPOOL_MODES = ("gradient", "rescale", "captum")
#: LRP max-pool modes: "winner_take_all" (default), "proportional".
LRP_MAXPOOL_MODES = ("winner_take_all", "proportional")


@defrule(MaxPool2D, "rescale", "revealcancel")
def _maxpool_deeplift(layer, g, cache, inp=None, ref=None, maxpool="gradient", threshold=DEEPLIFT_NEAR_ZERO, **_):
    """R to the input's argmax a (gradient); "rescale": R Δy/Δx_a at a (else at the reference's argmax b); "captum": (R (y⁺ − y₀) at a + R (y − y⁺) at b) / Δx, y⁺ = max(y, y₀)
    DeepLIFT, Shrikumar et al. 2017 (its code's MaxPoolDeepLiftMode.gradient); "rescale": Rescale on each window, exact; "captum": Captum's maxpool rule"""  # noqa: E501  (a rule cell: line 1 is the rule table's formula, line 2 its citation)
    if isinstance(g, tuple):
        raise ValueError(f"{layer.describe()}: DeepLIFT through max-pool takes one multiplier, got a (m⁺, m⁻) pair")
    if maxpool not in DEEPLIFT_MAXPOOL_MODES:
        raise ValueError(f"DeepLIFT maxpool mode must be one of {DEEPLIFT_MAXPOOL_MODES}, got {maxpool!r}")
    if maxpool == "gradient":
        return layer.route(g, cache)  # the switches of the *input* pass, never the reference's
    need_reference(layer, maxpool, inp, ref)
    if maxpool == "captum":
        return _captum_maxpool(layer, g, cache, inp, ref, threshold)
    dy = inp.y - ref.y
    # Δx at the input's argmax a and at the reference's argmax b (padding is never a switch)
    dxa = inp.y - layer.at_switch(ref.x, cache)
    dxb = layer.at_switch(inp.x, ref.cache) - ref.y
    ok_a, ok_b = np.abs(dxa) > threshold, np.abs(dxb) > threshold
    coef_a = np.divide(dy, dxa, out=np.where(ok_b, 0.0, 1.0).astype(dy.dtype), where=ok_a)
    coef_b = np.divide(dy, dxb, out=np.zeros_like(dy), where=ok_b & ~ok_a)
    return layer.route(g * coef_a, cache) + layer.route(g * coef_b, ref.cache)


def _captum_maxpool(layer, g, cache, inp, ref, threshold):
    """Captum's DeepLift max-pool rule (``captum.attr._core.deep_lift.maxpool``), written out.

    With ``y⁺ = max(y, y₀)`` per window, ``U = route_a(m (y⁺ − y₀)) + route_b(m (y − y⁺))`` (``a``/``b`` the
    input's/reference's switches: the part of ``Δy`` by which the input's maximum exceeds the reference's goes
    to ``a``, the part by which it falls short to ``b``) and the multiplier is ``U / Δx`` where
    ``|Δx| ≥ threshold``, the gradient ``route_a(m)`` elsewhere (Captum's ``abs(delta_in) < eps``).  Per
    window ``Σ m_i Δx_i = m Δy`` whenever the receiving switch has ``|Δx| ≥ threshold``, which always holds up
    to ``threshold`` (``Δx_a ≥ y − y₀ ≥ 0`` when ``y ≥ y₀``, ``Δx_b ≤ y − y₀ < 0`` otherwise); the multipliers
    are secant slopes in ``[0, 1]``.
    """
    top = np.maximum(inp.y, ref.y)
    U = layer.route(g * (top - ref.y), cache) + layer.route(g * (inp.y - top), ref.cache)
    dx = inp.x - ref.x
    return np.divide(U, dx, out=layer.route(g, cache), where=np.abs(dx) >= threshold)


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
    # zero padding: padded positions take no relevance
    return inp.x * layer.spread_sum(safe_divide(R, layer.window_sum(inp.x, cache)), cache)


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


@defregion(MaxPool2D, "window", pad_value=-np.inf)
@defregion(AvgPool2D, "window", pad_value=0.0)
def _pool_region(layer, lo, size, in_hw):
    """Projective field of a pooling window: input box -> output box it can change, input box needed
    Nakandala et al. 2019 (incremental inference); max pool pads with -inf, average pool with 0; not in ceil mode"""
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
    """dX at the cached switch of each window  (ties: the layer's tie policy)"""
    return layer.at_switch(dx, cache)  # padded positions never win


@defjvp(AvgPool2D)
def _avgpool_jvp(layer, dx, cache):
    """mean of dX over each window  (a linear layer: the forward pass itself)"""
    return layer.forward(dx)[0]


@defjvp(GlobalAvgPool2D)
def _gap_jvp(layer, dx, cache):
    """mean of dX over (H, W)  (a linear layer)"""
    return dx.mean(axis=(2, 3))
