"""Element-wise activations and their rules: the heart of the DeconvNet/backprop table.

With ``X`` the unit's input and ``R`` the signal arriving from above, the ReLU's three rules:

========== =========================
gradient   ``R · 1[X > 0]``          (backprop; ``ReLU'(0) = 0``)
deconvnet  ``max(R, 0)``             (Zeiler & Fergus 2014)
guided     ``max(R, 0) · 1[X > 0]``  (Springenberg et al. 2015)
========== =========================

The other activations of the model zoo, in two groups (xattr's choice, stated once here):

*Rectifiers* (``ReLU6``, ``Hardtanh``, ``Clamp``, ``LeakyReLU``, ``PReLU``): piecewise-linear units with
an identity piece, clipped or leaky elsewhere.  DeconvNet rectifies the signal whatever ``X`` is,
``max(R, 0)``, as at the ReLU; guided backpropagation combines backprop's slope at ``X`` with DeconvNet's
positive-signal mask, ``max(R, 0) · f'(X)`` (at ``Hardtanh``: ``R · 1[lo < X < hi] · 1[R > 0]``).

*Other units* (``Hardsigmoid``, ``Sigmoid``, ``Tanh``, ``SiLU``, ``Hardswish``, ``GELU``, ``Softplus``):
DeconvNet and guided backpropagation are defined by their papers at rectified linear units only (every
other layer is propagated by its ordinary backward map), so these pass the plain gradient ``R · f'(X)``
in all three columns.

Peers: Captum's ``GuidedBackprop``/``Deconvolution`` and Zennit's ``GuidedBackprop``/``DeconvNet``
composites modify ``torch.nn.ReLU`` modules only, so for them a ``ReLU6`` or ``LeakyReLU`` is a plain
gradient; xattr's ``guided`` rule differs there.  To reproduce them, pass the composite
``lambda i, layer: ("guided" if type(layer) is ReLU else "gradient", {})`` to ``Sequential.backward``
(tested against Captum in ``tests/test_activation.py``).

Kinks follow ``KINK_POLICY`` (:mod:`xattr._conventions`, PyTorch's choices): ``ReLU6'(0) = ReLU6'(6) = 0``.

DeepLIFT's Rescale rule (Shrikumar et al. 2017 §3.5.2) is the secant slope ``Δy/Δx`` for any element-wise
unit, its limit ``f'(X)`` where ``|Δx| ≤ threshold``; summation-to-delta ``m Δx = Δy`` holds whatever ``f``.
For a monotone unit (all here except ``SiLU``, ``GELU``, ``Hardswish``, and a ``LeakyReLU``/``PReLU``
with a negative slope) the multiplier lies between the unit's smallest and largest slope (mean value
theorem); for the non-monotone ones it can have the opposite sign of the gradient at the input (e.g.
SiLU from ``x₀ = −6`` to ``x = −0.5``: ``Δy/Δx = −0.032`` where ``f'(x) = +0.26``): a contribution then
says "the difference of the unit's outputs", not "the local sensitivity".  RevealCancel
(§3.5.3) is written for any element-wise ``f`` too.  LRP passes relevance through every activation
unchanged (Bach et al. 2015 for the ReLU; Zennit's ``Pass`` rule on its ``Activation`` types).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import special

from .._conventions import KINK_POLICY, RELU_GRAD_AT_ZERO, as_float_array
from .base import Cache, Layer, defjvp, defrule, param_property
from .region import defregion
from .relevance import DEEPLIFT_NEAR_ZERO, LRP_RULES, need_reference

assert RELU_GRAD_AT_ZERO == 0.0  # the mask below is 1[X > 0]; change both together
assert KINK_POLICY == "outer"  # the strict/non-strict comparisons of the derivatives below


class ReLU(Layer):
    """Rectified linear unit ``max(x, 0)``; any shape -> same shape."""

    short_name = "relu"
    kind = "pointwise"

    def forward(self, x):
        x = as_float_array(x, f"input of {self.describe()}")
        active = x > 0
        # max(x, 0), then + 0 turns a -0.0 into +0.0 (np.maximum may return either zero when x is -0.0): np.where's
        # output bit for bit.  np.where on a random mask runs ~20x slower; x · 1[x > 0] (a float-by-bool
        # multiply) ~1.5x slower than these two passes at ResNet's 64 × 112² (float32, one thread)
        y = np.maximum(x, x.dtype.type(0))
        y += 0
        return y, Cache(active=active)


@defrule(ReLU, "gradient")
def _relu_gradient(layer, g, cache, **_):
    """R · 1[X > 0]
    backpropagation (Rumelhart et al. 1986); ReLU'(0) = 0"""
    return g * cache.active


@defrule(ReLU, "deconvnet")
def _relu_deconvnet(layer, g, cache, **_):
    """max(R, 0)
    DeconvNet (Zeiler & Fergus 2014)"""
    return np.maximum(g, 0)


@defrule(ReLU, "guided")
def _relu_guided(layer, g, cache, **_):
    """max(R, 0) · 1[X > 0]
    guided backpropagation (Springenberg et al. 2015)"""
    return np.maximum(g, 0) * cache.active


# -- DeepLIFT (Shrikumar et al. 2017) and LRP columns -----------------------------------------------


def _relu(v):
    return np.maximum(v, 0)


@defrule(ReLU, "rescale")
def _relu_rescale(layer, g, cache, inp=None, ref=None, threshold=DEEPLIFT_NEAR_ZERO, **_):
    """R · Δy/Δx  (R · 1[X > 0] where |Δx| ≤ threshold)
    DeepLIFT Rescale rule, Shrikumar et al. 2017 §3.5.2"""
    need_reference(layer, "rescale", inp, ref)
    if isinstance(g, tuple):
        raise ValueError(f"{layer.describe()}: the Rescale rule takes one multiplier, got a (m⁺, m⁻) pair")
    dx, dy = inp.x - ref.x, inp.y - ref.y
    far = np.abs(dx) > threshold
    # gradient at the input as the limit (Captum); the original DeepLIFT code takes it at the reference
    ratio = np.divide(dy, dx, out=cache.active.astype(dy.dtype), where=far)
    return g * ratio


@defrule(ReLU, "revealcancel")
def _relu_revealcancel(layer, g, cache, inp=None, ref=None, split=None, threshold=DEEPLIFT_NEAR_ZERO, **_):
    """(R Δy⁺/Δx⁺, R Δy⁻/Δx⁻),  Δy^± = ½(f(x₀ + Δx^±) − f(x₀)) + ½(f(x) − f(x₀ + Δx^∓))
    DeepLIFT RevealCancel rule, Shrikumar et al. 2017 §3.5.3"""
    need_reference(layer, "revealcancel", inp, ref)
    if split is None:
        raise ValueError(
            f"{layer.describe()}: RevealCancel needs split=(Δx⁺, Δx⁻) of the ReLU's input; use xattr.deeplift"
        )
    if isinstance(g, tuple):
        raise ValueError(f"{layer.describe()}: RevealCancel takes one multiplier from above, got a (m⁺, m⁻) pair")
    dp, dn = split
    x0, y0, y = ref.x, ref.y, inp.y
    yp, yn = _relu(x0 + dp), _relu(x0 + dn)
    dyp = 0.5 * ((yp - y0) + (y - yn))
    dyn = 0.5 * ((yn - y0) + (y - yp))
    # limits as Δx^± -> 0: the average of the two gradients the two terms take (ReLU'(0) = 0)
    lim_p = 0.5 * ((x0 > 0).astype(y.dtype) + (x0 + dn > 0))
    lim_n = 0.5 * ((x0 > 0).astype(y.dtype) + (x0 + dp > 0))
    mp = np.divide(dyp, dp, out=lim_p, where=np.abs(dp) > threshold)
    mn = np.divide(dyn, dn, out=lim_n, where=np.abs(dn) > threshold)
    return g * mp, g * mn


@defrule(ReLU, *LRP_RULES)
def _relu_lrp(layer, R, cache, **_):
    """R (relevance passes the ReLU unchanged; its rule is in the layer below)
    Bach et al. 2015; Montavon et al. 2019"""
    return R

# Pointwise: an output pixel changes only where its input pixel changed (Nakandala et al. 2019).
defregion(ReLU, "pointwise")(None)
@defjvp(ReLU)
def _relu_jvp(layer, dx, cache):
    """dX · 1[X > 0]  (the linear part at the cached pattern; ReLU'(0) = 0)"""
    return dx * cache.active


# == the other element-wise activations ==============================================================
class Activation(Layer):
    """Base of the element-wise activations ``y = f(x)`` (any shape -> same shape); the cache keeps ``x``.

    A subclass gives ``f(x)`` and its derivative ``df(x)`` (at kinks: ``KINK_POLICY``); a piecewise-linear
    one also ``kinks()``, the inputs where its slope changes (exact integrated gradients cuts the path there).
    """

    kind = "pointwise"

    def f(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def df(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def kinks(self):
        """Inputs at which the slope changes (piecewise-linear units); ``()`` for smooth ones."""
        return ()

    def forward(self, x):
        x = as_float_array(x, f"input of {self.describe()}")
        return self.f(x), Cache(x=x)


def _finite_float(v, name, owner):
    try:
        out = float(v)
    except (TypeError, ValueError):
        raise TypeError(f"{owner}: {name} must be a real number, got {v!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{owner}: {name} must be finite, got {v!r}")
    return out


class Hardtanh(Activation):
    """``clip(x, min_val, max_val)`` (PyTorch's ``Hardtanh``); ``f' = 1[min_val < x < max_val]`` (0 at both bounds).

    Parameters
    ----------
    min_val, max_val : float
        ``min_val < max_val`` (defaults −1, 1).
    """

    short_name = "hardtanh"

    def __init__(self, min_val=-1.0, max_val=1.0):
        self.min_val = _finite_float(min_val, "min_val", type(self).__name__)
        self.max_val = _finite_float(max_val, "max_val", type(self).__name__)
        if not self.min_val < self.max_val:
            raise ValueError(f"{type(self).__name__} needs min_val < max_val, got {min_val} and {max_val}")

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}"

    def f(self, x):
        return np.clip(x, self.min_val, self.max_val)

    def df(self, x):
        return ((x > self.min_val) & (x < self.max_val)).astype(x.dtype)

    def kinks(self):
        return (self.min_val, self.max_val)


class ReLU6(Hardtanh):
    """``min(max(x, 0), 6)`` (MobileNet's unit); ``ReLU6'(0) = ReLU6'(6) = 0`` (``KINK_POLICY``)."""

    short_name = "relu6"

    def __init__(self):
        super().__init__(0.0, 6.0)

    def extra_repr(self):
        return ""


class Clamp(Activation):
    """``torch.clamp(x, min, max)``: either bound may be None (one-sided); ``f' = 1`` strictly inside, 0 at the bounds.

    ``Clamp(min=0)`` is the ReLU, ``Clamp(0, 6)`` the ReLU6 (same derivatives at the kinks, as in PyTorch).
    """

    short_name = "clamp"

    def __init__(self, min=None, max=None):  # noqa: A002 - torch's names
        owner = type(self).__name__
        self.min = None if min is None else _finite_float(min, "min", owner)
        self.max = None if max is None else _finite_float(max, "max", owner)
        if self.min is None and self.max is None:
            raise ValueError(f"{owner} needs at least one of min= and max=")
        if self.min is not None and self.max is not None and not self.min <= self.max:
            raise ValueError(f"{owner} needs min <= max, got min={min}, max={max}")

    def extra_repr(self):
        return f"min={self.min}, max={self.max}"

    def f(self, x):
        return np.clip(x, self.min, self.max)

    def df(self, x):
        inside = np.ones(x.shape, dtype=bool)
        if self.min is not None:
            inside &= x > self.min
        if self.max is not None:
            inside &= x < self.max
        return inside.astype(x.dtype)

    def kinks(self):
        return tuple(v for v in (self.min, self.max) if v is not None)


class LeakyReLU(Activation):
    """``x`` for ``x > 0``, ``α x`` otherwise (PyTorch's ``LeakyReLU``, default ``α = 0.01``); ``f'(0) = α``."""

    short_name = "leakyrelu"

    def __init__(self, negative_slope=0.01):
        self.negative_slope = _finite_float(negative_slope, "negative_slope", type(self).__name__)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"

    def f(self, x):
        return np.where(x > 0, x, x * self.negative_slope)

    def df(self, x):
        return np.where(x > 0, 1.0, self.negative_slope).astype(x.dtype)

    def kinks(self):
        return (0.0,)


class PReLU(Activation):
    """Parametric ReLU (He et al. 2015): ``x`` for ``x > 0``, ``a_c x`` otherwise, one slope per channel.

    Parameters
    ----------
    num_parameters : int
        1 (one slope for all) or the number of channels ``C`` (axis 1 of the input).
    init : float
        Initial slope (PyTorch's default 0.25).

    Attributes
    ----------
    weight : ndarray ``(num_parameters,)``
        The slopes; :meth:`param_grads` gives ``dL/da``.  ``f'(0) = a`` (``KINK_POLICY``).
    """

    short_name = "prelu"

    weight = param_property("weight", lambda self: (self.num_parameters,))

    def __init__(self, num_parameters=1, init=0.25):
        self.num_parameters = int(num_parameters)
        if self.num_parameters < 1:
            raise ValueError(f"PReLU needs num_parameters >= 1, got {num_parameters}")
        self.weight = np.full(self.num_parameters, _finite_float(init, "init", "PReLU"))

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"

    def slopes(self, x):
        """The slopes broadcast against ``x`` (channel axis 1), in ``x``'s dtype."""
        w = self.weight.astype(x.dtype, copy=False)
        if self.num_parameters == 1:
            return w.reshape(())
        if x.ndim < 2 or x.shape[1] != self.num_parameters:
            raise ValueError(
                f"input of {self.describe()} must have {self.num_parameters} channels on axis 1, got shape {x.shape}"
            )
        return w.reshape((1, -1) + (1,) * (x.ndim - 2))

    def f(self, x):
        return np.where(x > 0, x, x * self.slopes(x))

    def df(self, x):
        return np.where(x > 0, np.ones((), x.dtype), self.slopes(x)).astype(x.dtype, copy=False)

    def kinks(self):
        return (0.0,)

    def param_grads(self, g, cache):
        """``dL/da_c = Σ g · x · 1[x ≤ 0]`` over every axis but the channel one (all axes if one slope)."""
        x = cache.x
        contrib = g * np.where(x > 0, 0, x)
        if self.num_parameters == 1:
            return {"weight": contrib.sum().reshape(1)}
        return {"weight": contrib.sum(axis=(0,) + tuple(range(2, x.ndim)))}


class Hardsigmoid(Activation):
    """``clip(x + 3, 0, 6) / 6`` (PyTorch's ``Hardsigmoid``): piecewise linear; ``f' = 1/6`` on ``(−3, 3)``, 0 at ±3."""

    short_name = "hardsigmoid"

    def f(self, x):
        return np.clip(x + 3, 0, 6) / 6

    def df(self, x):
        return np.where((x > -3) & (x < 3), 1 / 6, 0.0).astype(x.dtype)

    def kinks(self):
        return (-3.0, 3.0)


class Sigmoid(Activation):
    """``σ(x) = 1 / (1 + e^{−x})`` (scipy's ``expit``: no overflow); ``f' = σ(1 − σ)``."""

    short_name = "sigmoid"
    piecewise_linear = False

    def f(self, x):
        return special.expit(x)

    def df(self, x):
        s = special.expit(x)
        return s * (1 - s)


class Tanh(Activation):
    """``tanh(x)``; ``f' = 1 − tanh²``."""

    short_name = "tanh"
    piecewise_linear = False

    def f(self, x):
        return np.tanh(x)

    def df(self, x):
        return 1 - np.tanh(x) ** 2


class SiLU(Activation):
    """``x σ(x)`` (swish, Ramachandran et al. 2017; Elfwing et al. 2018); ``f' = σ(x)(1 + x(1 − σ(x)))``.

    Not monotone: its minimum is at ``x ≈ −1.278``.
    """

    short_name = "silu"
    piecewise_linear = False

    def f(self, x):
        return x * special.expit(x)

    def df(self, x):
        s = special.expit(x)
        return s * (1 + x * (1 - s))


class Hardswish(Activation):
    """``x · clip(x + 3, 0, 6) / 6`` (Howard et al. 2019, MobileNetV3): piecewise *quadratic*, not monotone.

    ``f' = 0`` for ``x ≤ −3``, ``x/3 + 1/2`` on ``(−3, 3)``, 1 for ``x ≥ 3`` (PyTorch's choices at the kinks).
    """

    short_name = "hardswish"
    piecewise_linear = False

    def f(self, x):
        return x * np.clip(x + 3, 0, 6) / 6

    def df(self, x):
        return np.where(x <= -3, 0.0, np.where(x < 3, x / 3 + 0.5, 1.0)).astype(x.dtype, copy=False)

    def kinks(self):
        return (-3.0, 3.0)


#: ``GELU`` approximations PyTorch offers.
GELU_APPROXIMATIONS = ("none", "tanh")


class GELU(Activation):
    """``x Φ(x)`` (Hendrycks & Gimpel 2016), ``Φ`` the standard normal CDF in its erf form (PyTorch's default).

    ``approximate="tanh"``: ``½ x (1 + tanh(√(2/π)(x + 0.044715 x³)))`` (PyTorch's option).  Not monotone:
    its minimum is at ``x ≈ −0.752``.
    """

    short_name = "gelu"
    piecewise_linear = False

    def __init__(self, approximate="none"):
        if approximate not in GELU_APPROXIMATIONS:
            raise ValueError(f"GELU approximate must be one of {GELU_APPROXIMATIONS}, got {approximate!r}")
        self.approximate = approximate

    def extra_repr(self):
        return f"approximate={self.approximate!r}"

    _C = math.sqrt(2 / math.pi)

    def f(self, x):
        if self.approximate == "tanh":
            return 0.5 * x * (1 + np.tanh(self._C * (x + 0.044715 * x**3)))
        return 0.5 * x * (1 + special.erf(x / math.sqrt(2)))

    def df(self, x):
        if self.approximate == "tanh":
            t = np.tanh(self._C * (x + 0.044715 * x**3))
            return 0.5 * (1 + t) + 0.5 * x * (1 - t**2) * self._C * (1 + 3 * 0.044715 * x**2)
        cdf = 0.5 * (1 + special.erf(x / math.sqrt(2)))
        pdf = np.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)
        return cdf + x * pdf


class Softplus(Activation):
    """``log(1 + e^{βx}) / β``, and ``x`` where ``βx > threshold`` (PyTorch's ``Softplus``, β = 1, threshold 20).

    ``f' = σ(βx)``, and 1 where ``βx > threshold``.  Computed as ``logaddexp(0, βx) / β`` (no overflow).
    """

    short_name = "softplus"
    piecewise_linear = False

    def __init__(self, beta=1.0, threshold=20.0):
        self.beta = _finite_float(beta, "beta", "Softplus")
        self.threshold = _finite_float(threshold, "threshold", "Softplus")
        if self.beta <= 0:
            raise ValueError(f"Softplus needs beta > 0, got {beta}")

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"

    def f(self, x):
        bx = x * self.beta
        return np.where(bx > self.threshold, x, np.logaddexp(0, bx) / self.beta).astype(x.dtype, copy=False)

    def df(self, x):
        bx = x * self.beta
        return np.where(bx > self.threshold, 1.0, special.expit(bx)).astype(x.dtype, copy=False)


#: rectifiers: an identity piece, clipped or leaky elsewhere (DeconvNet and guided rules as the ReLU's).
RECTIFIERS = (Hardtanh, ReLU6, Clamp, LeakyReLU, PReLU)
#: every other activation: DeconvNet and guided backprop pass the plain gradient.
OTHER_UNITS = (Hardsigmoid, Sigmoid, Tanh, SiLU, Hardswish, GELU, Softplus)
ACTIVATIONS = RECTIFIERS + OTHER_UNITS
#: the piecewise-linear activations besides the ReLU (jvp registered; exact IG cuts at their ``kinks()``).
PIECEWISE_LINEAR_UNITS = tuple(t for t in ACTIVATIONS if t.piecewise_linear)
#: units whose RevealCancel split xattr.deeplift computes (the ReLU and every activation here).
NONLINEAR_UNITS = (ReLU,) + ACTIVATIONS


@defrule(OTHER_UNITS, "gradient", "deconvnet", "guided")
@defrule(RECTIFIERS, "gradient")
def _activation_gradient(layer, g, cache, **_):
    """R · f'(X)
    backpropagation; f' at the kinks: KINK_POLICY (as PyTorch); DeconvNet/guided modify rectifiers only"""
    return g * layer.df(cache.x)


@defrule(RECTIFIERS, "deconvnet")
def _rectifier_deconvnet(layer, g, cache, **_):
    """max(R, 0)
    DeconvNet (Zeiler & Fergus 2014): the signal rectified whatever X, as at the ReLU"""
    return np.maximum(g, 0)


@defrule(RECTIFIERS, "guided")
def _rectifier_guided(layer, g, cache, **_):
    """max(R, 0) · f'(X)  (Hardtanh: R · 1[lo < X < hi] · 1[R > 0])
    guided backpropagation (Springenberg et al. 2015): backprop's slope and DeconvNet's mask"""
    return np.maximum(g, 0) * layer.df(cache.x)


@defrule(ACTIVATIONS, "rescale")
def _activation_rescale(layer, g, cache, inp=None, ref=None, threshold=DEEPLIFT_NEAR_ZERO, **_):
    """R · Δy/Δx  (R · f'(X) where |Δx| ≤ threshold)
    DeepLIFT Rescale rule, Shrikumar et al. 2017 §3.5.2 (the secant slope of any element-wise unit)"""
    need_reference(layer, "rescale", inp, ref)
    if isinstance(g, tuple):
        raise ValueError(f"{layer.describe()}: the Rescale rule takes one multiplier, got a (m⁺, m⁻) pair")
    dx, dy = inp.x - ref.x, inp.y - ref.y
    ratio = np.divide(dy, dx, out=layer.df(inp.x).astype(dy.dtype), where=np.abs(dx) > threshold)
    return g * ratio


@defrule(ACTIVATIONS, "revealcancel")
def _activation_revealcancel(layer, g, cache, inp=None, ref=None, split=None, threshold=DEEPLIFT_NEAR_ZERO, **_):
    """(R Δy⁺/Δx⁺, R Δy⁻/Δx⁻),  Δy^± = ½(f(x₀ + Δx^±) − f(x₀)) + ½(f(x) − f(x₀ + Δx^∓))
    DeepLIFT RevealCancel rule, Shrikumar et al. 2017 §3.5.3 (any element-wise f)"""
    need_reference(layer, "revealcancel", inp, ref)
    if split is None:
        raise ValueError(
            f"{layer.describe()}: RevealCancel needs split=(Δx⁺, Δx⁻) of the unit's input; use xattr.deeplift"
        )
    if isinstance(g, tuple):
        raise ValueError(f"{layer.describe()}: RevealCancel takes one multiplier from above, got a (m⁺, m⁻) pair")
    dp, dn = split
    f, df = layer.f, layer.df
    x0, y0, y = ref.x, ref.y, inp.y
    yp, yn = f(x0 + dp), f(x0 + dn)
    dyp = 0.5 * ((yp - y0) + (y - yn))
    dyn = 0.5 * ((yn - y0) + (y - yp))
    # limits as Δx^± -> 0: the average of the two derivatives the two terms take
    lim_p = (0.5 * (df(x0) + df(x0 + dn))).astype(y.dtype, copy=False)
    lim_n = (0.5 * (df(x0) + df(x0 + dp))).astype(y.dtype, copy=False)
    mp = np.divide(dyp, dp, out=lim_p, where=np.abs(dp) > threshold)
    mn = np.divide(dyn, dn, out=lim_n, where=np.abs(dn) > threshold)
    return g * mp, g * mn


@defrule(ACTIVATIONS, *LRP_RULES)
def _activation_lrp(layer, R, cache, **_):
    """R (relevance passes the unit unchanged; its rule is in the layer below)
    Bach et al. 2015; Zennit's Pass rule on activations"""
    return R


# Pointwise: an output pixel changes only where its input pixel changed (Nakandala et al. 2019).
defregion(ACTIVATIONS, "pointwise")(None)


@defjvp(Hardtanh)
@defjvp(ReLU6)
@defjvp(Clamp)
@defjvp(LeakyReLU)
@defjvp(PReLU)
@defjvp(Hardsigmoid)
def _piecewise_linear_jvp(layer, dx, cache):
    """dX · f'(X)  (the linear part at the cached pattern; kinks: KINK_POLICY)"""
    return dx * layer.df(cache.x)
