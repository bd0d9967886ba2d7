"""Merge layers: ``Add``, ``Concat`` and ``Multiply``, with their cells of the rule table.

A merge takes a tuple of inputs, ``forward((x1, x2, ...)) -> (y, cache)``, and its cells return one
part per input, ``backward(g, cache, rule) -> (g1, g2, ...)``.  Fan-out (one node feeding several)
is not a layer: the graph's walk sums what comes back (:meth:`xattr.nn.Tape.pull`), for every rule.

* gradient: ``Add`` gives R to each input (linear); ``Concat`` splits R by channel; ``Multiply`` gives ``g·b`` to
  ``a`` and ``g·a`` to ``b`` (the product rule).
* DeconvNet, guided backprop: as the gradient (they modify ReLUs only).
* DeepLIFT Rescale and RevealCancel: multipliers pass ``Add`` (linear, Shrikumar et al. 2017 §3.5.1) and are split by
  channel at ``Concat``; at ``Multiply`` the Shapley split of ``Δ(ab)``: ``m·b̄`` to ``a``, ``m·ā`` to ``b`` with
  ``x̄ = (x + x₀)/2``.
* LRP (every column): at ``Add``, ``R_i = x_i R / stab(Σ x)`` (Zennit's ``Norm`` rule on its residual ``Sum``); at
  ``Concat`` split by channel; at ``Multiply`` all of R to the signal, none to the gate.
"""
from __future__ import annotations

import numpy as np

from .base import Cache, Layer, defjvp, defrule
from .region import defregion
from .relevance import LRP_RULES, need_reference, safe_divide, stabilize

#: stabiliser of the LRP rule at a residual sum: Zennit's ``Norm`` default (its ResNet canonizers' ``Sum``).
LRP_SUM_STABILIZER = 1e-6


class Merge(Layer):
    """Base of layers with several inputs (``forward`` takes a tuple)."""

    kind = "merge"
    arity = None

    def _check(self, xs):
        if not isinstance(xs, (tuple, list)):
            raise TypeError(f"{self.describe()} takes a tuple of inputs, got {type(xs).__name__}")
        if self.arity is None and len(xs) < 2 or isinstance(self.arity, int) and len(xs) != self.arity:
            want = "two or more" if self.arity is None else str(self.arity)
            raise ValueError(f"{self.describe()} takes {want} inputs, got {len(xs)}")
        return tuple(xs)


class Add(Merge):
    """Element-wise sum of two or more inputs of one shape (a residual connection)."""

    short_name = "add"

    def forward(self, xs):
        xs = self._check(xs)
        shapes = [np.shape(x) for x in xs]
        if len(set(shapes)) != 1:
            raise ValueError(f"{self.describe()} adds inputs of one shape, got {shapes}")
        y = xs[0].copy()
        for x in xs[1:]:
            y += x
        return y, Cache(n=len(xs))


@defrule(Add, "gradient", "deconvnet", "guided", "rescale", "revealcancel")
def _add_fanin(layer, g, cache):
    """R to every input
    linear merge: ∂(Σ x_i)/∂x_i = 1 (DeepLIFT's linear rule, Shrikumar et al. 2017 §3.5.1)"""
    return (g,) * cache.n


@defrule(Add, *LRP_RULES)
def _add_lrp(layer, R, cache, inp=None):
    """R_i = x_i R / stab(Σ_j x_j),  stab(z) = z + 1e-6·sign(z)
    LRP at a sum (Zennit's Norm rule on its residual Sum; Bach et al. 2015's z-rule with unit weights)"""
    if inp is None:
        raise ValueError(f"LRP on {layer.describe()} needs the node's inputs (inp=); use xattr.lrp")
    s = safe_divide(R, stabilize(inp.y, LRP_SUM_STABILIZER))
    return tuple(x * s for x in inp.x)


@defjvp(Add)
def _add_jvp(layer, dxs, cache):
    """Σ_i dX_i"""
    out = dxs[0].copy()
    for d in dxs[1:]:
        out += d
    return out


defregion(Add, "pointwise")(None)


class Concat(Merge):
    """Concatenation along the channel axis (``axis=1``), as DenseNet's and Inception's blocks."""

    short_name = "concat"

    def __init__(self, axis=1):
        if axis != 1:
            raise ValueError(f"Concat joins along the channel axis (axis=1) only, got axis={axis!r}")
        self.axis = 1

    def extra_repr(self):
        return "axis=1"

    def forward(self, xs):
        xs = self._check(xs)
        rest = {(np.shape(x)[:1] + np.shape(x)[2:]) for x in xs}
        if len(rest) != 1 or any(np.ndim(x) < 2 for x in xs):
            raise ValueError(
                f"{self.describe()} joins inputs that differ only in channels, got shapes {[np.shape(x) for x in xs]}"
            )
        sizes = [x.shape[1] for x in xs]
        return np.concatenate(xs, axis=1), Cache(bounds=np.cumsum(sizes)[:-1])


@defrule(Concat, "gradient", "deconvnet", "guided", "rescale", "revealcancel", *LRP_RULES)
def _concat_split(layer, g, cache):
    """R split by channel back to the inputs (each of a RevealCancel pair m⁺, m⁻ alike)
    a relabelling of units: every rule passes it unchanged"""
    if isinstance(g, tuple):
        parts = [np.split(p, cache.bounds, axis=1) for p in g]
        return tuple(zip(*parts))
    return tuple(np.split(g, cache.bounds, axis=1))


@defjvp(Concat)
def _concat_jvp(layer, dxs, cache):
    """concat(dX_1, ..., dX_n) along channels"""
    return np.concatenate(dxs, axis=1)


defregion(Concat, "pointwise")(None)


class Multiply(Merge):
    """Element-wise product ``a ⊙ b`` of a signal ``a`` and a gate ``b`` (squeeze-and-excitation).

    The gate may broadcast against the signal (``(N, C, 1, 1)`` against ``(N, C, H, W)``).  ``gate``
    names which input is the gate (default the second); LRP gives all relevance to the signal.
    """

    short_name = "multiply"
    arity = 2
    piecewise_linear = False  # bilinear: the product of two path-dependent factors is not piecewise linear

    def __init__(self, gate=1):
        if gate not in (0, 1):
            raise ValueError(f"gate is the index of the gating input, 0 or 1, got {gate!r}")
        self.gate = gate

    def extra_repr(self):
        return f"gate={self.gate}"

    def forward(self, xs):
        a, b = self._check(xs)
        try:
            y = a * b
        except ValueError:
            raise ValueError(
                f"{self.describe()} multiplies broadcastable inputs, got {np.shape(a)} and {np.shape(b)}"
            ) from None
        if y.shape != np.shape(xs[1 - self.gate]):
            raise ValueError(
                f"{self.describe()}: the gate (input {self.gate}, shape {np.shape(xs[self.gate])}) must broadcast to "
                f"the signal's shape {np.shape(xs[1 - self.gate])}"
            )
        return y, Cache(a=a, b=b)


def _unbroadcast(g, shape):
    """Sum ``g`` over the axes along which an input of ``shape`` was broadcast."""
    if g.shape == tuple(shape):
        return g
    axes = tuple(k for k, (s, t) in enumerate(zip(shape, g.shape)) if s == 1 and t != 1)
    return g.sum(axis=axes, keepdims=True)


@defrule(Multiply, "gradient", "deconvnet", "guided")
def _multiply_gradient(layer, g, cache):
    """(R·b, R·a)
    product rule; DeconvNet and guided backprop modify ReLUs only, so a product passes the gradient"""
    return _unbroadcast(g * cache.b, np.shape(cache.a)), _unbroadcast(g * cache.a, np.shape(cache.b))


@defrule(Multiply, "rescale", "revealcancel")
def _multiply_deeplift(layer, g, cache, inp=None, ref=None):
    """(m·(b + b₀)/2, m·(a + a₀)/2):  Δ(ab) = ½(b + b₀)Δa + ½(a + a₀)Δb exactly
    the Shapley split of a product of two inputs (Shrikumar et al. 2017 leave gating open; this conserves Δ)"""
    need_reference(layer, "rescale", inp, ref)
    if isinstance(g, tuple):
        raise ValueError(f"{layer.describe()}: DeepLIFT through a product takes one multiplier, got a (m⁺, m⁻) pair")
    (a, b), (a0, b0) = inp.x, ref.x
    return _unbroadcast(g * 0.5 * (b + b0), np.shape(a)), _unbroadcast(g * 0.5 * (a + a0), np.shape(b))


@defrule(Multiply, *LRP_RULES)
def _multiply_lrp(layer, R, cache):
    """R to the signal, 0 to the gate
    the gate is treated as a constant weight (Arras et al. 2017, LRP for gated units)"""
    zero = np.zeros(np.shape(cache.b if layer.gate == 1 else cache.a), dtype=R.dtype)
    return (R, zero) if layer.gate == 1 else (zero, R)


@defjvp(Multiply)
def _multiply_jvp(layer, dxs, cache):
    """dA·b + a·dB"""
    return dxs[0] * cache.b + cache.a * dxs[1]


defregion(Multiply, "pointwise")(None)
