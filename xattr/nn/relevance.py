"""Relevance cells of the layers with weights (``Dense``, ``Conv2D``): the LRP rules and DeepLIFT's
linear rule with separate positive and negative multipliers.

Each rule is one small function, written once here (the math is the same for a dense layer and for a
convolution, which is a dense layer with a sparse, shared matrix) and registered next to each layer
class in ``dense.py`` and ``conv.py``.  A layer with modified weights ``ρ(W)`` is run through the
layer's own forward (``z``) and its own gradient rule (the transpose, ``c``), so the rules never
re-implement a convolution.

LRP (Bach et al. 2015; Montavon et al. 2019, "Layer-wise relevance propagation: an overview") in the
four steps of Montavon et al. 2019, §10.2.2, with ``a`` the layer's input, ``R`` the relevance of its
output, and ``ρ``/``ε`` chosen by the rule::

    z_k = ρ(b_k) + Σ_j a_j ρ(w_jk)        (forward pass with modified weights)
    s_k = R_k / stab(z_k)                 (element-wise division)
    c_j = Σ_k ρ(w_jk) s_k                 (backward pass: the transposed layer)
    R_j = a_j c_j                         (element-wise product)

Division conventions (named, tested): ``stab(z) = z + ε·sign(z)`` with ``sign(0) = +1`` (as Zennit);
where a denominator is exactly 0 the quotient is taken as 0 (relevance that would be divided by 0 is
dropped, never turned into NaN/inf).  Biases take part in the denominators with the rule's ``ρ``
(Montavon et al. 2019; Zennit does the same), so they absorb relevance: ``Σ_j R_j = Σ_k R_k (1 -
(ρ(b_k) + ε sign z_k) / stab(z_k))``.
"""
from __future__ import annotations

import numpy as np

from .base import replaced

#: ``ε`` of LRP-ε when none is given: Zennit's default 1e-6 (Captum's is 1e-9; Montavon et al. 2019
#: recommend an ε of the order of the activations' spread, e.g. 0.25 std: pass it explicitly).
LRP_EPSILON = 1e-6
#: ``γ`` of LRP-γ when none is given: Zennit's default 0.25 (Montavon et al. 2019 use 0.25 in their examples).
LRP_GAMMA = 0.25
#: ``(α, β)`` of LRP-αβ when none is given: α2β1 (Bach et al. 2015's most used setting).
LRP_ALPHA, LRP_BETA = 2.0, 1.0

#: ``|Δx|`` below which DeepLIFT's Rescale/RevealCancel multipliers ``Δy/Δx`` are replaced by their
#: limit, the gradient.  Captum's default ``eps`` (1e-10); the original DeepLIFT code uses 1e-7
#: (``NEAR_ZERO_THRESHOLD``, float32).  For the ReLU the quotient is well conditioned for any
#: ``Δx != 0`` (it is 0, 1, or in [0, 1] across the kink), so the threshold only guards 0/0.
DEEPLIFT_NEAR_ZERO = 1e-10

#: the LRP columns of the rule table (``lrp0`` ... ``lrp_w2``).
LRP_RULES = ("lrp0", "lrp_epsilon", "lrp_gamma", "lrp_alphabeta", "lrp_zplus", "lrp_zbox", "lrp_flat", "lrp_w2")


# -- small helpers ----------------------------------------------------------------------------------
def safe_divide(num, den):
    """``num / den`` with 0 where ``den == 0`` (never NaN or inf from a zero denominator).

    Parameters
    ----------
    num, den : array_like
        Broadcastable.

    Returns
    -------
    ndarray, the broadcast shape
    """
    out = np.zeros(np.broadcast_shapes(np.shape(num), np.shape(den)), dtype=np.result_type(num, den))
    np.divide(num, den, out=out, where=den != 0)
    return out


def stabilize(z, epsilon):
    """``z + ε·sign(z)`` with ``sign(0) = +1``.

    Parameters
    ----------
    z : ndarray
    epsilon : float

    Returns
    -------
    ndarray, ``z.shape``, ``z.dtype``
    """
    if epsilon == 0:
        return z
    return z + np.where(z >= 0, epsilon, -epsilon).astype(z.dtype)


def pos(a):
    """``max(a, 0)``, elementwise.

    Parameters
    ----------
    a : ndarray

    Returns
    -------
    ndarray, ``a.shape``
    """
    return np.maximum(a, 0)


def neg(a):
    """``min(a, 0)``, elementwise.

    Parameters
    ----------
    a : ndarray

    Returns
    -------
    ndarray, ``a.shape``
    """
    return np.minimum(a, 0)


def layer_input(layer, cache, inp=None):
    """The input ``a`` of a Dense/Conv2D layer: ``inp.x`` if given, else read back from the forward cache.

    Parameters
    ----------
    layer : Dense or Conv2D
    cache : object
        The layer's forward cache (Conv2D keeps the padded input: the padding is cut off).
    inp : object, optional

    Returns
    -------
    ndarray
        The layer's input ``(N, ...)``.
    """
    if inp is not None:
        return inp.x
    if hasattr(cache, "x"):  # Dense
        return cache.x
    (t, b), (l, r) = layer.pads  # Conv2D keeps the padded input
    xp = cache.xp
    return xp[:, :, t : xp.shape[2] - b, l : xp.shape[3] - r]


def forward_with(layer, a, weight, bias=None):
    """``z`` of the layer run on ``a`` with ``weight``/``bias`` in place of its own.

    Parameters
    ----------
    layer : Dense or Conv2D
    a : ndarray
        An input of the layer's shape.
    weight : ndarray
        Of ``layer.weight``'s shape.
    bias : ndarray, optional

    Returns
    -------
    ndarray
        The layer's output ``(N, ...)``.
    """
    return replaced(layer, weight=weight, bias=bias).forward(a)[0]


def transpose_with(layer, s, cache, weight):
    """``c = ρ(W)ᵀ s``: the gradient rule (transposed layer) with ``weight`` in place of the layer's own.

    Parameters
    ----------
    layer : Dense or Conv2D
    s : ndarray
        A signal at the layer's output.
    cache : object
        The layer's forward cache.
    weight : ndarray
        Of ``layer.weight``'s shape.

    Returns
    -------
    ndarray
        At the layer's input.
    """
    return replaced(layer, weight=weight, bias=None).backward(s, cache, "gradient")


def _own_output(layer, a, inp):
    """``z`` with the layer's own weights: its recorded output when given (no second forward pass)."""
    return inp.y if inp is not None else forward_with(layer, a, layer.weight, _bias(layer))


def _bias(layer, fn=lambda b: b):
    return None if layer.bias is None else fn(layer.bias)


def check_epsilon(epsilon):
    """Refuse an LRP-ε ``epsilon`` that is not finite and ``>= 0`` (``ValueError``).

    Parameters
    ----------
    epsilon : float

    Returns
    -------
    None
    """
    if not np.isfinite(epsilon) or epsilon < 0:
        raise ValueError(f"LRP-ε needs a finite epsilon >= 0, got {epsilon}")


def check_gamma(gamma):
    """Refuse an LRP-γ ``gamma`` that is not finite and ``>= 0`` (``ValueError``; Montavon et al. 2019).

    Parameters
    ----------
    gamma : float

    Returns
    -------
    None
    """
    if not np.isfinite(gamma) or gamma < 0:
        raise ValueError(f"LRP-γ needs a finite gamma >= 0 (Montavon et al. 2019), got {gamma}")


def check_alpha_beta(alpha, beta):
    """Refuse LRP-αβ parameters unless ``alpha >= 1``, ``beta >= 0`` and ``alpha - beta = 1`` (conservation,
    Bach et al. 2015); ``ValueError``.

    Parameters
    ----------
    alpha, beta : float

    Returns
    -------
    None
    """
    if not (np.isfinite(alpha) and np.isfinite(beta)) or beta < 0 or alpha < 1:
        raise ValueError(f"LRP-αβ needs alpha >= 1 and beta >= 0, got alpha={alpha}, beta={beta}")
    if not np.isclose(alpha - beta, 1.0, rtol=0, atol=1e-12):
        raise ValueError(
            f"LRP-αβ needs alpha - beta = 1 (conservation, Bach et al. 2015), got alpha={alpha}, beta={beta} "
            f"(alpha - beta = {alpha - beta})"
        )


# -- LRP rules ------------------------------------------------------------------------------------
def lrp_0(layer, R, cache, inp=None, **_):
    """R_j = a_j Σ_k w_jk R_k / z_k,  z_k = b_k + Σ_j a_j w_jk  (z_k = 0 → 0)
    LRP-0, Bach et al. 2015; Montavon et al. 2019 eq. (1)

    Parameters
    ----------
    layer : Dense or Conv2D
    R : ndarray
        The relevance at the layer's output ``(N, ...)``.
    cache : object
        The layer's forward cache.
    inp : object, optional
        The layer's recorded input (``inp.x``); default: read back from ``cache``.
    **_
        Other context options, ignored.

    Returns
    -------
    ndarray
        The relevance at the layer's input (its shape).
    """
    a = layer_input(layer, cache, inp)
    z = _own_output(layer, a, inp)
    return a * transpose_with(layer, safe_divide(R, z), cache, layer.weight)


def lrp_epsilon(layer, R, cache, inp=None, epsilon=LRP_EPSILON, **_):
    """R_j = a_j Σ_k w_jk R_k / (z_k + ε sign z_k)
    LRP-ε, Bach et al. 2015; Montavon et al. 2019 eq. (2)

    Parameters
    ----------
    layer : Dense or Conv2D
    R : ndarray
        The relevance at the layer's output ``(N, ...)``.
    cache : object
        The layer's forward cache.
    inp : object, optional
        The layer's recorded input (``inp.x``); default: read back from ``cache``.
    epsilon : float
        ``>= 0``.
    **_
        Other context options, ignored.

    Returns
    -------
    ndarray
        The relevance at the layer's input (its shape).
    """
    check_epsilon(epsilon)
    a = layer_input(layer, cache, inp)
    z = stabilize(_own_output(layer, a, inp), epsilon)
    return a * transpose_with(layer, safe_divide(R, z), cache, layer.weight)


def lrp_gamma(layer, R, cache, inp=None, gamma=LRP_GAMMA, **_):
    """R_j = a_j Σ_k ρ(w_jk) R_k / Σ_j a_j ρ(w_jk),  ρ(w) = w + γ w⁺ (bias too)
    LRP-γ, Montavon et al. 2019 eq. (3)

    Parameters
    ----------
    layer : Dense or Conv2D
    R : ndarray
        The relevance at the layer's output ``(N, ...)``.
    cache : object
        The layer's forward cache.
    inp : object, optional
        The layer's recorded input (``inp.x``); default: read back from ``cache``.
    gamma : float
        ``>= 0``.
    **_
        Other context options, ignored.

    Returns
    -------
    ndarray
        The relevance at the layer's input (its shape).
    """
    check_gamma(gamma)
    a = layer_input(layer, cache, inp)
    w = layer.weight + gamma * pos(layer.weight)
    z = forward_with(layer, a, w, _bias(layer, lambda b: b + gamma * pos(b)))
    return a * transpose_with(layer, safe_divide(R, z), cache, w)


def lrp_alphabeta(layer, R, cache, inp=None, alpha=LRP_ALPHA, beta=LRP_BETA, **_):
    """R_j = Σ_k (α (a_j w_jk)⁺ / z⁺_k − β (a_j w_jk)⁻ / z⁻_k) R_k,  z^±_k = b^±_k + Σ_j (a_j w_jk)^±,  α − β = 1
    LRP-αβ, Bach et al. 2015 eq. (60); Montavon et al. 2019 §10.2

    Parameters
    ----------
    layer : Dense or Conv2D
    R : ndarray
        The relevance at the layer's output ``(N, ...)``.
    cache : object
        The layer's forward cache.
    inp : object, optional
        The layer's recorded input (``inp.x``); default: read back from ``cache``.
    alpha, beta : float
        ``alpha - beta = 1``, ``beta >= 0``.
    **_
        Other context options, ignored.

    Returns
    -------
    ndarray
        The relevance at the layer's input (its shape).
    """
    check_alpha_beta(alpha, beta)
    a = layer_input(layer, cache, inp)
    ap, an, wp, wn = pos(a), neg(a), pos(layer.weight), neg(layer.weight)

    def part(w_for_pos_a, w_for_neg_a, b):
        # the products a_j w_jk of one sign: a⁺ with w of that sign, a⁻ with w of the other
        z = forward_with(layer, ap, w_for_pos_a, b) + forward_with(layer, an, w_for_neg_a)
        s = safe_divide(R, z)
        return ap * transpose_with(layer, s, cache, w_for_pos_a) + an * transpose_with(layer, s, cache, w_for_neg_a)

    out = alpha * part(wp, wn, _bias(layer, pos))
    if beta != 0:
        out = out - beta * part(wn, wp, _bias(layer, neg))
    return out


def lrp_zplus(layer, R, cache, inp=None, **_):
    """R_j = a_j Σ_k w⁺_jk R_k / (b⁺_k + Σ_j a_j w⁺_jk)  (for a ≥ 0; there = α1β0)
    z⁺ rule, Montavon et al. 2017 (deep Taylor decomposition)

    Parameters
    ----------
    layer : Dense or Conv2D
    R : ndarray
        The relevance at the layer's output ``(N, ...)``.
    cache : object
        The layer's forward cache.
    inp : object, optional
        The layer's recorded input (``inp.x``); default: read back from ``cache``.
    **_
        Other context options, ignored.

    Returns
    -------
    ndarray
        The relevance at the layer's input (its shape).
    """
    a = layer_input(layer, cache, inp)
    wp = pos(layer.weight)
    z = forward_with(layer, a, wp, _bias(layer, pos))
    return a * transpose_with(layer, safe_divide(R, z), cache, wp)


def lrp_zbox(layer, R, cache, inp=None, low=None, high=None, **_):
    """R_j = Σ_k (x_j w_jk − l_j w⁺_jk − h_j w⁻_jk) R_k / Σ_j (x_j w_jk − l_j w⁺_jk − h_j w⁻_jk)
    z^B rule for inputs in a box l ≤ x ≤ h, Montavon et al. 2017 (deep Taylor decomposition)

    Parameters
    ----------
    layer : Dense or Conv2D
    R : ndarray
        The relevance at the layer's output ``(N, ...)``.
    cache : object
        The layer's forward cache.
    inp : object, optional
        The layer's recorded input (``inp.x``); default: read back from ``cache``.
    low, high : float or ndarray
        The input's box bounds ``l ≤ x ≤ h`` (broadcastable to the input).
    **_
        Other context options, ignored.

    Returns
    -------
    ndarray
        The relevance at the layer's input (its shape).
    """
    a = layer_input(layer, cache, inp)
    if low is None or high is None:
        raise ValueError(
            f"the z^B rule on {layer.describe()} needs the input's box bounds low= and high= "
            f"(scalars or arrays broadcastable to the input {a.shape[1:]})"
        )
    try:
        lo = np.broadcast_to(np.asarray(low, dtype=a.dtype), a.shape)
        hi = np.broadcast_to(np.asarray(high, dtype=a.dtype), a.shape)
    except ValueError:
        raise ValueError(
            f"the z^B bounds must be scalars or broadcast to the input of {layer.describe()} {a.shape} "
            f"(e.g. one sample {a.shape[1:]}), got shapes {np.shape(low)} and {np.shape(high)}"
        ) from None
    if np.any(lo > hi):
        raise ValueError("the z^B rule needs low <= high everywhere")
    w, wp, wn = layer.weight, pos(layer.weight), neg(layer.weight)
    z = forward_with(layer, a, w) - forward_with(layer, lo, wp) - forward_with(layer, hi, wn)
    s = safe_divide(R, z)
    return (
        a * transpose_with(layer, s, cache, w)
        - lo * transpose_with(layer, s, cache, wp)
        - hi * transpose_with(layer, s, cache, wn)
    )


def lrp_flat(layer, R, cache, inp=None, **_):
    """R_j = Σ_k R_k / #{j → k}  (ρ(w) = 1, a = 1: uniform over the receptive field)
    flat rule, Lapuschkin et al. 2019; Montavon et al. 2019 §10.3

    Parameters
    ----------
    layer : Dense or Conv2D
    R : ndarray
        The relevance at the layer's output ``(N, ...)``.
    cache : object
        The layer's forward cache.
    inp : object, optional
        The layer's recorded input (``inp.x``); default: read back from ``cache``.
    **_
        Other context options, ignored.

    Returns
    -------
    ndarray
        The relevance at the layer's input (its shape).
    """
    a = layer_input(layer, cache, inp)
    ones_w = np.ones_like(layer.weight)
    z = forward_with(layer, np.ones_like(a), ones_w)
    return transpose_with(layer, safe_divide(R, z), cache, ones_w)


def lrp_w2(layer, R, cache, inp=None, **_):
    """R_j = Σ_k w²_jk R_k / Σ_j w²_jk
    w² rule, Montavon et al. 2017 (deep Taylor decomposition, unbounded input domain)

    Parameters
    ----------
    layer : Dense or Conv2D
    R : ndarray
        The relevance at the layer's output ``(N, ...)``.
    cache : object
        The layer's forward cache.
    inp : object, optional
        The layer's recorded input (``inp.x``); default: read back from ``cache``.
    **_
        Other context options, ignored.

    Returns
    -------
    ndarray
        The relevance at the layer's input (its shape).
    """
    a = layer_input(layer, cache, inp)
    w2 = layer.weight**2
    z = forward_with(layer, np.ones_like(a), w2)
    return transpose_with(layer, safe_divide(R, z), cache, w2)


#: registry name -> rule function, registered on Dense and Conv2D next to each class.
LRP_WEIGHTED_RULES = {
    "lrp0": lrp_0, "lrp_epsilon": lrp_epsilon, "lrp_gamma": lrp_gamma, "lrp_alphabeta": lrp_alphabeta,
    "lrp_zplus": lrp_zplus, "lrp_zbox": lrp_zbox, "lrp_flat": lrp_flat, "lrp_w2": lrp_w2,
}


# -- DeepLIFT ---------------------------------------------------------------------------------------
def need_reference(layer, rule, inp, ref):
    """Refuse a DeepLIFT rule called without the layer's input/output on the input and on the reference
    (``ValueError``: use :func:`xattr.deeplift`).

    Parameters
    ----------
    layer : Layer
    rule : str
        The rule's name (for the message).
    inp, ref : object or None
        The layer's records on the input and on the reference.

    Returns
    -------
    None
    """
    if inp is None or ref is None:
        raise ValueError(
            f"the DeepLIFT rule {rule!r} on {layer.describe()} needs the layer's input/output on the input "
            f"(inp=) and on the reference (ref=); use xattr.deeplift(...)"
        )


def deeplift_linear_revealcancel(layer, g, cache, inp=None, ref=None, **_):
    """Σ_k w_jk m_k with m_k = m⁺_k if w_jk Δa_j > 0, m⁻_k if < 0, ½(m⁺_k + m⁻_k) if Δa_j = 0
    DeepLIFT linear rule with separate positive/negative terms, Shrikumar et al. 2017 §3.5.1

    Parameters
    ----------
    layer : Dense or Conv2D
    g : ndarray or (ndarray, ndarray)
        The multiplier at the layer's output, or the pair ``(m⁺, m⁻)`` from a RevealCancel unit above.
    cache : object
        The layer's forward cache.
    inp, ref : object
        The layer's records on the input and on the reference (needed with a pair).
    **_
        Other context options, ignored.

    Returns
    -------
    ndarray
        The multiplier at the layer's input.
    """
    if not isinstance(g, tuple):  # a single multiplier (no RevealCancel unit above): the gradient
        return layer.backward(g, cache, "gradient")
    need_reference(layer, "revealcancel", inp, ref)
    mp, mn = g
    da = inp.x - ref.x
    w, wp, wn = layer.weight, pos(layer.weight), neg(layer.weight)
    up, down = da > 0, da < 0
    out = up * (transpose_with(layer, mp, cache, wp) + transpose_with(layer, mn, cache, wn))
    out += down * (transpose_with(layer, mp, cache, wn) + transpose_with(layer, mn, cache, wp))
    still = ~(up | down)
    if still.any():
        out += still * transpose_with(layer, 0.5 * (mp + mn), cache, w)
    return out


def deeplift_split(layer, inp, ref):
    """``(Δz⁺, Δz⁻)``: the positive and negative terms of ``Δz = Σ_j w_jk Δa_j`` (biases cancel in Δ).

    ``Δz⁺_k = Σ_j [w_jk Δa_j > 0] w_jk Δa_j`` (Shrikumar et al. 2017 §3.5.1); computed as
    ``W⁺Δa⁺ + W⁻Δa⁻`` and ``W⁻Δa⁺ + W⁺Δa⁻``.

    Parameters
    ----------
    layer : Dense or Conv2D
    inp, ref : object
        The layer's records on the input and on the reference (``.x``: its input).

    Returns
    -------
    dz_pos, dz_neg : ndarray
        The layer's output shape.
    """
    da = inp.x - ref.x
    dp, dn = pos(da), neg(da)
    wp, wn = pos(layer.weight), neg(layer.weight)
    return (forward_with(layer, dp, wp) + forward_with(layer, dn, wn),
            forward_with(layer, dp, wn) + forward_with(layer, dn, wp))
