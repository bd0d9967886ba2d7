"""The CAM family beyond Grad-CAM: Grad-CAM++, Score-CAM, Faster Score-CAM, LayerCAM, XGrad-CAM, HiResCAM,
Eigen-CAM and Ablation-CAM, at any node of a graph.

Every method reads the activations ``A (N, K, h, w)`` of one node (default: the last node with a spatial output,
as :func:`xattr.grad_cam`) and, for the gradient-based ones, the gradient ``g = ∂S_c/∂A`` of the explained score
from the same single forward and backward pass (``model.trace`` and ``tape.pull(..., to=node)``).  The node may sit
anywhere in a DAG (a residual ``Add``, a ``Concat``, a ReLU inside a block): gradients arriving through every path
are summed by the walk, and the perturbation methods (Score-CAM masks the input, Ablation-CAM re-runs only the
nodes downstream of the chosen one) see the graph as it is.

Shared conventions (each method's docstring repeats what it uses):

* ``S_c`` is the explained score: the target class's score (logit), or the value of a target callable
  (:mod:`xattr._targets`).
* Maps are computed at the node's resolution, the final ReLU (where the paper has one; ``relu=``) is applied there,
  then the ``(N, 1, h, w)`` map is resized to the input with bilinear interpolation, half-pixel centres
  (``upsample=True``; :func:`xattr.methods.cam.upsample_bilinear`, as Grad-CAM).
* Divisions that the papers write without a guard are exact here; where a denominator is exactly 0 the result is
  the one stated in the docstring (never a silent ``ε``).  The small constants that peers add are an ``epsilon``
  option, 0 by default, so that their numbers can be reproduced (``docs/peers.md``).
* dtype: float32 in, float32 out; float64 in, float64 out.  Caller arrays are never modified.
* Overflow (inputs near the dtype's range): where a term ``w_k A_k`` overflows, ``Σ_k w_k A_k`` is summed again
  with the activations divided by a power of two per image (exact; Ablation-CAM's ``y − y_k`` likewise), and
  Grad-CAM++ applies an ``exp(S)`` that overflows alone as ``exp(S + log M)``, so a map that is representable is
  returned; one that is not (its values exceed the dtype's range) is refused with a ``ValueError``, never
  returned as inf or NaN.
* Score-CAM and Ablation-CAM evaluate their ``N·K`` perturbed inputs in chunks of ``batch_size`` images, with no
  Python loop over images or channels inside a chunk.
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import _targets
from .._conventions import check_image_batch
from ..inputs import DEFAULT_BATCH_SIZE, as_baseline, check_batch_size, rows_per_call
from ..nn import INPUT
from ._resize import linear_interpolation_matrix
from .cam import _finish, _interp_matrix, _last_spatial, _require_layered, upsample_bilinear
from .registry import MethodSpec, register

__all__ = [
    "grad_cam_plus_plus", "score_cam", "faster_score_cam", "layer_cam", "xgrad_cam", "hires_cam", "eigen_cam",
    "ablation_cam", "GRAD_CAM_PLUS_PLUS_SCORES", "SCORE_CAM_SCORES", "MASK_INTERPOLATIONS", "MASK_NORMALIZATIONS",
]

#: Grad-CAM++ class scores: ``"exp"`` Y = exp(S) (the paper, §3.3; its code; tf-keras-vis), ``"raw"`` Y = S
#: (pytorch-grad-cam, torchcam).
GRAD_CAM_PLUS_PLUS_SCORES = ("exp", "raw")
#: Score-CAM channel scores (see :func:`score_cam`).
SCORE_CAM_SCORES = ("softmax", "logit", "channel_softmax")
#: How Score-CAM resizes a channel to the input: ``"half_pixel"`` (``align_corners=False``: the authors' code,
#: torchcam, Grad-CAM's upsampling) or ``"align_corners"`` (pytorch-grad-cam's ``UpsamplingBilinear2d``,
#: tf-keras-vis's ``scipy.ndimage.zoom(order=1)``).
MASK_INTERPOLATIONS = ("half_pixel", "align_corners")
#: When Score-CAM scales a mask to [0, 1]: ``"upsampled"`` s(Up(A_k)) (the paper, its code, pytorch-grad-cam,
#: tf-keras-vis) or ``"coarse"`` Up(s(A_k)) (torchcam).
MASK_NORMALIZATIONS = ("upsampled", "coarse")


# -- shared pieces ------------------------------------------------------------------------------------
def _setup(model, x, method):
    _require_layered(model, method)
    return check_image_batch(x)


def _layer_names(layer):
    """A list of layer keys from ``None``, one key, or a sequence of keys."""
    if layer is None or isinstance(layer, (str, numbers.Integral)):
        return [layer]
    try:
        keys = list(layer)
    except TypeError:
        raise TypeError(f"layer must be a node name, an index or a list of them, got {layer!r}") from None
    if not keys:
        raise ValueError("layer: give at least one node")
    return keys


def _spatial_node(model, tape, layer, method):
    """``(name, A)`` of the node given by ``layer`` (default: the last spatial node); its output must be 4-D."""
    name = _last_spatial(tape) if layer is None else model.name_of(layer)
    if name not in tape:
        raise ValueError(f"{method}: node {name!r} was not run by this trace")
    A = tape.value(name)
    if A.ndim != 4:
        raise ValueError(
            f"{method} needs a layer with spatial maps (N, K, h, w); node {name!r} ({model[name].describe()}) "
            f"outputs shape {A.shape}"
        )
    return name, A


def _forward_backward(model, x, target, layers, method):
    """One forward and one backward pass: ``(tape, names, [A], [∂S/∂A])`` for the nodes ``layers``."""
    tape = model.trace(x)
    names, feats = [], []
    for key in layers:
        name, A = _spatial_node(model, tape, key, method)
        if name in names:
            raise ValueError(f"{method}: node {name!r} is given twice")
        names.append(name)
        feats.append(A)
    grads = tape.pull(_targets.seed(target, tape.output), "gradient", to=names)
    return tape, names, feats, [grads[n] for n in names]


def _safe_divide(num, den):
    """``num / den`` with 0 where ``den == 0`` (the stated policy wherever a paper's ratio can be 0/0)."""
    num, den = np.broadcast_arrays(num, den)
    out = np.zeros(num.shape, dtype=np.result_type(num, den))
    np.divide(num, den, out=out, where=den != 0)
    return out


def _check_epsilon(epsilon):
    try:
        eps = float(epsilon)
    except (TypeError, ValueError):
        raise TypeError(f"epsilon must be a real number >= 0, got {epsilon!r}") from None
    if not (np.isfinite(eps) and eps >= 0):
        raise ValueError(f"epsilon must be finite and >= 0, got {epsilon!r}")
    return eps


def _check_choice(value, choices, name):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def _pow2_scale(a, axes):
    """Per-image powers of two ``s`` with ``max |a| / s`` in ``[1, 2)`` (``s = 1/2`` where ``a`` is all 0), shaped
    to broadcast against ``a``: dividing by ``s`` is exact, so it keeps intermediate sums in range at no cost.
    (``2^(e−1)`` for ``max |a| = f · 2^e``, ``f ∈ [0.5, 1)``: ``2^e`` itself overflows when ``max |a|`` is near the
    dtype's largest value.)"""
    _, e = np.frexp(np.abs(a).max(axis=axes, keepdims=True))
    return np.ldexp(np.ones((), a.dtype), e - 1).astype(a.dtype, copy=False)


def _check_map(m, method):
    """Refuse a map that is not finite (it overflowed the dtype): inf or NaN would pass for attributions."""
    ok = np.isfinite(m).reshape(len(m), -1).all(axis=1)
    if not ok.all():
        bad = int(np.flatnonzero(~ok)[0])
        hint = "rescale the input" + (" or pass float64 input" if m.dtype != np.float64 else "")
        raise ValueError(f"{method}: the map is not finite in {m.dtype} for image {bad} (its values exceed the "
                         f"dtype's range); {hint}")
    return m


def _weighted_sum(weights, A):
    if weights.ndim == 2:
        return np.einsum("nk,nkhw->nhw", weights, A)
    return (weights * A).sum(axis=1)


def _combine(weights, A, relu, method):
    """``Σ_k w_k A_k`` ``(N, h, w)`` for weights ``(N, K)`` (or ``(N, K, h, w)`` per position), then the ReLU.

    An image whose sum overflows (a term ``w_k A_k`` or a partial sum beyond the dtype's range) is summed again as
    ``s · Σ_k w_k (A_k / s)``, ``s`` a power of two (:func:`_pow2_scale`, exact), so that the map is finite wherever
    it is representable; one that is not raises ``ValueError``.  Other images keep the plain sum's bits.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        m = _weighted_sum(weights, A)
        bad = ~np.isfinite(m).reshape(len(m), -1).all(axis=1)
        if bad.any():
            s = _pow2_scale(A[bad], (1, 2, 3))
            scaled = _weighted_sum(weights[bad], A[bad] / s)
            if relu:  # before the product: ReLU(c·z) = c·ReLU(z), and a sum below −max is 0, not −inf
                scaled = np.maximum(scaled, 0)
            m[bad] = scaled * s[:, 0]
    if relu:
        m = np.maximum(m, 0)
    return _check_map(m, method)


def _times_exp(m, s):
    """``exp(s_n) · m_n`` per image, finite wherever the product is representable although ``exp(s)`` alone may
    overflow (or underflow): there it is ``sign(m) · exp(s + log |m|)``, computed in float64."""
    with np.errstate(over="ignore", under="ignore", divide="ignore"):  # the caller refuses what is not finite
        e = np.exp(s)
        direct = np.isfinite(e) & (e > 0)
        out = m * np.where(direct, e, 0).astype(m.dtype)[:, None, None]
        if not direct.all():
            rows = ~direct
            mr = m[rows].astype(np.float64)
            log_mag = np.log(np.abs(mr)) + s[rows].astype(np.float64)[:, None, None]
            out[rows] = (np.sign(mr) * np.exp(log_mag)).astype(m.dtype)
    return out


# -- gradient-weighted maps ------------------------------------------------------------------------------
def grad_cam_plus_plus(model, x, target, layer=None, score="exp", normalize_alpha=False, epsilon=0.0, relu=True,
                       upsample=True):
    r"""Grad-CAM++ (Chattopadhay et al. 2018): Grad-CAM with per-position weights of the positive gradients.

    With ``g = ∂S_c/∂A`` at the node and ``Y_c = exp(S_c)`` (§3.3; exp makes the higher derivatives non-zero), the
    closed form of Eq. 19 for a network that is piecewise linear from ``A`` to ``S_c`` (ReLU, max-pool, linear
    layers: ``∂²S/∂A² = 0``, so ``∂ⁿY/∂Aⁿ = exp(S) gⁿ``) is::

        α_kij = g_kij² / (2 g_kij² + Σ_ab A_kab · g_kij³)                  (the exp(S) factors cancel)
        w_k   = Σ_ij α_kij · ReLU(∂Y_c/∂A_kij) = exp(S_c) · Σ_ij α_kij · ReLU(g_kij)
        M     = ReLU(Σ_k w_k A_k)

    Parameters
    ----------
    model : Graph or Sequential
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable
    layer : str or int, optional
        The node whose output ``A (N, K, h, w)`` is explained; default the last node with a spatial output.
    score : ``"exp"`` or ``"raw"``
        ``"exp"`` (the paper's ``Y = exp(S)``; its released code and tf-keras-vis): the weights carry the
        factor ``exp(S_c)``, one positive number per image.  ``"raw"`` (pytorch-grad-cam, torchcam): the same
        α with ``ReLU(∂S/∂A)``, i.e. the map divided by ``exp(S_c)``.  α is the same in both: "the gradients
        squared and cubed of the raw score" that the libraries compute *is* the paper's α, because exp(S)
        cancels in Eq. 19.  Where ``exp(S_c)`` alone overflows (S > 709 in float64, > 88 in float32) the map is
        computed as ``exp(S_c + log M)``; ``"exp"`` raises if the map itself is not representable in the dtype
        (use ``"raw"``).
    normalize_alpha : bool
        Divide α by ``Σ_ij α_kij`` (per channel) before weighting: not in the paper, done by the authors'
        released TensorFlow code and tf-keras-vis (a channel whose α sum is 0 is left as is).
    epsilon : float
        Added to α's denominator (0 here: where ``g = 0`` α is 0, and a denominator that is exactly 0 gives
        α = 0).  pytorch-grad-cam adds 1e-6, torchcam 1e-8 (where ``g ≠ 0``).
    relu : bool
        The paper's final ReLU (default True).
    upsample : bool
        Bilinearly resize ``(h, w)`` to ``(H, W)`` (half-pixel centres).

    Returns
    -------
    ndarray ``(N, 1, H, W)`` (or ``(N, 1, h, w)``), ``x.dtype``

    Notes
    -----
    On a ``GAP -> Dense`` head at the GAP's input ``g_kij = W_ck / (hw)`` for every position, so
    ``α_kij = 1 / (2 + Σ_ab A_kab · W_ck / (hw))`` and ``w_k = hw · ReLU(W_ck/(hw)) / (2 + Σ_ab A_kab W_ck/(hw))``
    (times ``exp(S_c)``): the closed form the tests check.  Lerma & Lucas (2022) note that, as α is nearly
    constant in practice, Grad-CAM++ is close to Grad-CAM with positive gradients.
    """
    x = _setup(model, x, "grad_cam_plus_plus")
    _check_choice(score, GRAD_CAM_PLUS_PLUS_SCORES, "score")
    eps = _check_epsilon(epsilon)
    tape, _, (A,), (g,) = _forward_backward(model, x, target, [layer], "grad_cam_plus_plus")
    g2 = g * g
    g3 = g2 * g
    total = A.sum(axis=(2, 3), keepdims=True)
    alpha = _safe_divide(g2, 2 * g2 + total * g3 + eps)
    if normalize_alpha:
        s = alpha.sum(axis=(2, 3), keepdims=True)
        alpha = alpha / np.where(s == 0, 1, s)
    w = (alpha * np.maximum(g, 0)).sum(axis=(2, 3))
    m = _combine(w, A, relu, "grad_cam_plus_plus")
    if score == "exp":  # ReLU(Σ_k exp(S) w_k A_k) = exp(S) · ReLU(Σ_k w_k A_k): exp(S) > 0 multiplies the map
        s_c = _targets.selected(target, tape.output)
        m = _times_exp(m, s_c)
        ok = np.isfinite(m).reshape(len(m), -1).all(axis=1)
        if not ok.all():
            bad = int(np.flatnonzero(~ok)[0])
            raise ValueError(
                f"grad_cam_plus_plus(score='exp'): exp(S) overflows {m.dtype} in the map exp(S)·M of image {bad} "
                f"(S = {s_c[bad]:.6g}), which is not finite; score='raw' gives the same map divided by exp(S)"
            )
    return _finish(m, x, upsample)


def xgrad_cam(model, x, target, layer=None, epsilon=0.0, relu=True, upsample=True):
    r"""XGrad-CAM (Fu et al. 2020, "Axiom-based Grad-CAM"): gradients averaged with the activations as weights.

    ``w_k = Σ_ij (A_kij / Σ_ab A_kab) · ∂S_c/∂A_kij``, ``M = ReLU(Σ_k w_k A_k)``: the weights that satisfy the
    paper's sensitivity and conservation axioms as closely as possible (its Eq. 14, for non-negative ``A``).

    Parameters
    ----------
    model, x, target, layer, relu, upsample
        As :func:`grad_cam_plus_plus`.  The final ReLU is the one of the authors' code (default True).
    epsilon : float
        Added to ``Σ_ab A_kab`` (0 here: a channel whose activations sum to exactly 0 gets ``w_k = 0``).  The
        authors' code adds 1e-6, pytorch-grad-cam 1e-7, torchcam 1e-8.

    Returns
    -------
    ndarray ``(N, 1, H, W)`` (or ``(N, 1, h, w)``)

    Notes
    -----
    On a ``GAP -> Dense`` head at the GAP's input ``∂S_c/∂A_kij = W_ck/(hw)`` is constant, so
    ``w_k = W_ck/(hw)``: XGrad-CAM **equals** Grad-CAM there (not only up to scale).  The normaliser is the sum of
    the activations, as in the paper and every implementation; at a node with signed outputs (a residual ``Add``
    before its ReLU) it is not the L1 norm.
    """
    x = _setup(model, x, "xgrad_cam")
    eps = _check_epsilon(epsilon)
    _, _, (A,), (g,) = _forward_backward(model, x, target, [layer], "xgrad_cam")
    w = _safe_divide((A * g).sum(axis=(2, 3)), A.sum(axis=(2, 3)) + eps)
    return _finish(_combine(w, A, relu, "xgrad_cam"), x, upsample)


def hires_cam(model, x, target, layer=None, relu=True, upsample=True):
    r"""HiResCAM (Draelos & Carin 2020): the gradient times the activation, summed over channels.

    ``M = ReLU(Σ_k ∂S_c/∂A_k ⊙ A_k)``: Grad-CAM without the averaging of the gradients over positions.

    Parameters
    ----------
    model, x, target, layer, upsample
        As :func:`grad_cam_plus_plus`.
    relu : bool
        Default True: the authors' code clips the map (``clip_and_norm_volume``) before display.  ``relu=False``
        keeps the signed map of the equation, for which the identities below hold.

    Returns
    -------
    ndarray ``(N, 1, H, W)`` (or ``(N, 1, h, w)``)

    Notes
    -----
    When everything after the node is linear, ``S_c = Σ_kij W_ckij A_kij + b_c`` (a ``Flatten -> Dense`` head, or
    ``GAP -> Dense`` with ``W_ckij = W_ck/(hw)``), ``∂S_c/∂A_kij = W_ckij`` and the signed map is each position's
    exact share of the score: ``M_ij = Σ_k W_ckij A_kij`` and ``Σ_ij M_ij = S_c − b_c`` (the paper's proof that
    HiResCAM generalises CAM: on ``GAP -> Dense`` it is CAM / (hw)).  Grad-CAM's averaged gradient breaks this.
    """
    x = _setup(model, x, "hires_cam")
    _, _, (A,), (g,) = _forward_backward(model, x, target, [layer], "hires_cam")
    return _finish(_combine(g, A, relu, "hires_cam"), x, upsample)


def layer_cam(model, x, target, layer=None, relu=True, upsample=True, gamma=2.0):
    r"""LayerCAM (Jiang et al. 2021): every position weighted by its own positive gradient; several layers fused.

    At one node: ``M = ReLU(Σ_k ReLU(∂S_c/∂A_k) ⊙ A_k)``.

    Several nodes (``layer=[...]``, one forward and one backward pass for all): each node's map ``M_l`` is scaled
    by ``tanh(γ · M_l / max|M_l|)`` (the paper's Eq. 9, per image; an all-zero map stays 0), resized to the input
    (or, with ``upsample=False``, to the largest node's size) with half-pixel bilinear interpolation, and the maps
    are fused by their element-wise maximum (as torchcam's ``LayerCAM.fuse_cams``).

    Parameters
    ----------
    model, x, target, upsample
        As :func:`grad_cam_plus_plus`.
    layer : node, or a list of nodes
        Any node(s) with a spatial output (LayerCAM is meant for shallow layers too); default the last spatial one.
    relu : bool
        The paper's final ReLU on each node's map (default True).
    gamma : float or None
        The scale of Eq. 9 (default 2, the paper's); ``None`` fuses the unscaled maps.  Not used for one node.

    Returns
    -------
    ndarray ``(N, 1, H, W)`` (or the coarse size of the node / the largest node)
    """
    x = _setup(model, x, "layer_cam")
    if gamma is not None and not (isinstance(gamma, numbers.Real) and np.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma must be a positive number or None, got {gamma!r}")
    _, names, feats, grads = _forward_backward(model, x, target, _layer_names(layer), "layer_cam")
    maps = [_combine(np.maximum(g, 0), A, relu, "layer_cam") for A, g in zip(feats, grads)]
    if len(maps) == 1:
        return _finish(maps[0], x, upsample)
    size = tuple(x.shape[2:]) if upsample else tuple(max(s) for s in zip(*(m.shape[1:] for m in maps)))
    fused = None
    for m in maps:
        if gamma is not None:
            top = np.abs(m).max(axis=(1, 2), keepdims=True)
            m = np.tanh(gamma * _safe_divide(m, top))
        if m.shape[1:] != size:
            m = upsample_bilinear(m[:, None], size)[:, 0]
        fused = m if fused is None else np.maximum(fused, m)
    return fused[:, None]


# -- principal components -------------------------------------------------------------------------------
def eigen_cam(model, x, target, layer=None, center=False, relu=False, upsample=True):
    r"""Eigen-CAM (Muhammad & Yeasin 2020): the activations projected on their first principal direction.

    Per image, the activations form a matrix ``F (hw, K)`` (positions × channels); with ``F = U Σ Vᵀ`` the map
    is ``M = F v₁`` (= σ₁ u₁), ``v₁`` the first right singular vector.  Class-agnostic: the map does not depend
    on ``target``, which is checked like every method's (so that a wrong target is an error, not a map that looks
    like an answer to it).

    Sign convention: a singular vector is defined up to sign; xattr takes the ``v₁`` whose entries sum to a
    positive number (for non-negative activations, e.g. after a ReLU, the Perron vector: ``v₁ ≥ 0`` and
    ``M ≥ 0``); if they sum to exactly 0, its largest-magnitude entry is made positive.  (pytorch-grad-cam keeps
    whatever sign LAPACK returns, then applies a ReLU, so its map can come out all zero.)  When ``σ₁ = σ₂`` the
    direction itself is not unique.

    Parameters
    ----------
    model, x, layer, upsample
        As :func:`grad_cam_plus_plus`.
    target : int, int array ``(N,)`` or callable
        Checked against the model's scores (:mod:`xattr._targets`: range, shape, a callable's values and
        derivative), then not used: any valid target gives the same map.
    center : bool
        Subtract each channel's mean over positions before the SVD (PCA proper; pytorch-grad-cam does).  The
        paper decomposes the activations as they are (default False).
    relu : bool
        Clip the map (pytorch-grad-cam does, for every method); the paper shows the projection (default False).

    Returns
    -------
    ndarray ``(N, 1, H, W)`` (or ``(N, 1, h, w)``)
    """
    x = _setup(model, x, "eigen_cam")
    tape = model.trace(x)  # the scores too: the target is checked like every method's
    _targets.seed(target, tape.output)
    _, A = _spatial_node(model, tape, layer, "eigen_cam")
    N, K, h, w = A.shape
    F = A.reshape(N, K, h * w).transpose(0, 2, 1)  # (N, hw, K)
    if center:
        F = F - F.mean(axis=1, keepdims=True)
    _, _, vt = np.linalg.svd(F, full_matrices=False)
    v = vt[:, 0, :]  # (N, K)
    sign = np.sign(v.sum(axis=1))
    tie = sign == 0
    if tie.any():
        lead = v[np.arange(N), np.abs(v).argmax(axis=1)]
        sign[tie] = np.sign(lead[tie])
    v = v * np.where(sign == 0, 1, sign)[:, None]
    m = np.einsum("npk,nk->np", F, v).reshape(N, h, w).astype(x.dtype, copy=False)
    if relu:
        m = np.maximum(m, 0)
    return _finish(m, x, upsample)


# -- perturbation-weighted maps ---------------------------------------------------------------------------
def _corner_matrix(n_out, n_in, dtype):
    """``(n_out, n_in)`` linear-interpolation weights with the corner pixels aligned (``align_corners=True``)."""
    return linear_interpolation_matrix(n_out, n_in, "corners", dtype)


def _minmax(a, eps):
    """``(a − min) / (max − min + eps)`` over the last two axes; 0 where that denominator is 0 (a constant map)."""
    lo = a.min(axis=(-2, -1), keepdims=True)
    hi = a.max(axis=(-2, -1), keepdims=True)
    return _safe_divide(a - lo, (hi - lo) + eps)


def _target_values(target, scores):
    """``values(out, rows) -> (B,)``: the explained quantity on model outputs ``out`` of images ``rows``.

    Classes are fixed once from the original ``scores`` (a callable returning classes is asked once);
    a callable returning floats is applied to each batch of outputs.
    """
    if callable(target):
        v = np.asarray(target(scores))
        if v.dtype.kind not in "iu":
            _targets.selected(target, scores)  # validates the shape
            return lambda out, rows: np.asarray(target(out), dtype=out.dtype)
        target = v
    seed = _targets.seed(target, scores)  # validates classes and range
    cls = seed.argmax(axis=1)
    return lambda out, rows: out[np.arange(out.shape[0]), cls[rows]]


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _score_cam(model, x, target, layer, k, score, baseline, batch_size, mask_interpolation, mask_normalization,
               epsilon, relu, upsample, return_weights, method):
    x = _setup(model, x, method)
    _check_choice(score, SCORE_CAM_SCORES, "score")
    _check_choice(mask_interpolation, MASK_INTERPOLATIONS, "mask_interpolation")
    _check_choice(mask_normalization, MASK_NORMALIZATIONS, "mask_normalization")
    eps = _check_epsilon(epsilon)
    check_batch_size(batch_size)
    base = as_baseline(baseline, x, allow_callable=False)
    tape = model.trace(x)
    name, A = _spatial_node(model, tape, layer, method)
    values = _target_values(target, tape.output)
    N, K, h, w = A.shape
    H, W = x.shape[2:]
    if k is None:
        chans = np.broadcast_to(np.arange(K), (N, K))
    else:
        if k == "top10":
            k = min(10, K)
        elif k > K:
            raise ValueError(f"{method}: k = {k} is larger than the {K} channels of node {name!r}")
        # Faster Score-CAM: the k channels of largest spatial standard deviation (population std, as
        # tf.math.reduce_std), ties to the lower channel index (tf.math.top_k's order)
        spread = A.reshape(N, K, h * w).std(axis=2)
        chans = np.argsort(-spread, axis=1, kind="stable")[:, :k]
    n_sel = chans.shape[1]
    rows = np.repeat(np.arange(N), n_sel)
    cols = chans.reshape(-1)
    interp = _interp_matrix if mask_interpolation == "half_pixel" else _corner_matrix
    mh, mw = interp(H, h, x.dtype), interp(W, w, x.dtype)
    out = np.empty(rows.size, dtype=x.dtype)
    bs = rows_per_call(batch_size, model, x[:1], rows.size)  # masked images per call (None: the cost model)
    for s in range(0, rows.size, bs):
        r, c = rows[s:s + bs], cols[s:s + bs]
        a = A[r, c]  # (B, h, w)
        if mask_normalization == "coarse":
            a = _minmax(a, eps)
        up = np.einsum("Hh,bhw,Ww->bHW", mh, a, mw, optimize=True)
        if mask_normalization == "upsampled":
            up = _minmax(up, eps)
        scores = model.forward(x[r] * up[:, None])
        if score == "softmax":
            scores = _softmax(scores)
        out[s:s + bs] = values(scores, r)
    v = out.reshape(N, n_sel)
    if score == "logit":
        v = v - values(model.forward(base), np.arange(N))[:, None]
    elif score == "channel_softmax":
        v = _softmax(v)
    m = _combine(v, A[np.arange(N)[:, None], chans], relu, method)
    cam_map = _finish(m, x, upsample)
    if not return_weights:
        return cam_map
    weights = np.zeros((N, K), dtype=x.dtype)
    weights[np.arange(N)[:, None], chans] = v
    return cam_map, weights


_SCORE_CAM_PARAMS = """
    Parameters
    ----------
    model : Graph or Sequential
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable
        Classes are fixed from the scores of ``x``; a callable returning floats is applied to the outputs
        of the masked images (after the softmax for ``score="softmax"``).
    layer : str or int, optional
        The node whose channels become masks; default the last node with a spatial output.
    score : ``"softmax"``, ``"logit"`` or ``"channel_softmax"``
        The weight ``w_k`` of channel k, from the masked input ``X ∘ H_k``:

        * ``"softmax"`` (default): ``softmax(f(X ∘ H_k))_c``, the target's probability among the classes
          (the authors' released code; tf-keras-vis);
        * ``"logit"``: ``f_c(X ∘ H_k) − f_c(X_b)``, the raw score increase over the baseline image
          (the paper's "channel-wise increase of confidence", Def. 2);
        * ``"channel_softmax"``: the increases normalised by a softmax over the channels
          (torchcam, pytorch-grad-cam; the baseline cancels).
    baseline : float or array broadcastable to ``x``
        ``X_b`` of ``score="logit"`` (default 0: the black image of the paper); finite, checked for every
        ``score``.
    batch_size : int or None
        Masked images per forward pass (model input rows per call, :func:`xattr.inputs.rows_per_call`; default
        None: the cost model's choice).
    mask_interpolation : ``"half_pixel"`` or ``"align_corners"``
        Bilinear resizing of ``A_k`` to ``(H, W)``: half-pixel centres (default; the authors' code, torchcam and
        Grad-CAM's upsampling) or corners aligned (pytorch-grad-cam, tf-keras-vis).
    mask_normalization : ``"upsampled"`` or ``"coarse"``
        ``H_k = s(Up(A_k))`` (default; the paper) or ``Up(s(A_k))`` (torchcam), with
        ``s(M) = (M − min M) / (max M − min M + epsilon)``.
    epsilon : float
        Added to ``max − min`` (default 0; pytorch-grad-cam and torchcam 1e-8, tf-keras-vis 1e-7).  With 0, a
        constant channel gives the all-zero mask (the limit of the peers' rule as ε → 0; the authors' code skips
        such a channel instead).
    relu : bool
        The paper's final ReLU (default True).
    upsample : bool
        Bilinearly resize the ``(h, w)`` map to ``(H, W)`` (half-pixel centres), after the ReLU.
    return_weights : bool
        Also return the channel weights ``(N, K)`` (channels not evaluated: 0).

    Returns
    -------
    ndarray ``(N, 1, H, W)`` (or ``(N, 1, h, w)``); with ``return_weights``, ``(map, weights)``
"""


def score_cam(model, x, target, layer=None, score="softmax", baseline=0.0, batch_size=DEFAULT_BATCH_SIZE,
              mask_interpolation="half_pixel", mask_normalization="upsampled", epsilon=0.0, relu=True, upsample=True,
              return_weights=False):
    """Score-CAM (Wang et al. 2020): each channel weighted by the score of the input it masks.

    ``H_k = s(Up(A_k))`` (the channel resized to the input and scaled to [0, 1]), ``w_k`` = the target's score of
    ``X ∘ H_k`` (see ``score``), ``M = ReLU(Σ_k w_k A_k)``.  No gradient is used; ``N·K`` masked images are
    evaluated in chunks of ``batch_size``.
    """
    return _score_cam(model, x, target, layer, None, score, baseline, batch_size, mask_interpolation,
                      mask_normalization, epsilon, relu, upsample, return_weights, "score_cam")


def faster_score_cam(model, x, target, layer=None, k=None, score="softmax", baseline=0.0, batch_size=DEFAULT_BATCH_SIZE,
                     mask_interpolation="half_pixel", mask_normalization="upsampled", epsilon=0.0, relu=True,
                     upsample=True, return_weights=False):
    """Faster Score-CAM (tabayashi0117's; tf-keras-vis ``Scorecam(max_N=k)``): Score-CAM on the ``k`` channels
    whose activations vary most.

    Per image, the channels are ranked by the standard deviation of ``A_k`` over positions (population std),
    ties to the lower index; Score-CAM (:func:`score_cam`, same options) runs on the top ``k`` and
    ``M = ReLU(Σ_{k ∈ top} w_k A_k)``.  tf-keras-vis ranks per image too but then keeps the *union* of every
    image's top-k for the whole batch (``tf.unique``), so its batch results depend on the other images.

    ``k``: int, 1 ≤ k ≤ K (default ``min(10, K)``); larger than the node's channel count is an error.
    """
    if k is not None and (isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1):
        raise ValueError(f"k must be a positive int, got {k!r}")
    return _score_cam(model, x, target, layer, "top10" if k is None else int(k), score, baseline, batch_size,
                      mask_interpolation, mask_normalization, epsilon, relu, upsample, return_weights,
                      "faster_score_cam")


score_cam.__doc__ += _SCORE_CAM_PARAMS
faster_score_cam.__doc__ += _SCORE_CAM_PARAMS


def _downstream(model, name):
    """Nodes that depend on ``name`` (topological order) and the other nodes they read."""
    order = model.order
    down, names = {name}, []
    for n in order[order.index(name) + 1:]:
        if any(i in down for i in model.inputs_of(n)):
            down.add(n)
            names.append(n)
    outside = sorted({i for n in names for i in model.inputs_of(n) if i not in down})
    return names, outside


def ablation_cam(model, x, target, layer=None, ablation_value=0.0, batch_size=DEFAULT_BATCH_SIZE, relu=True,
                 upsample=True, return_weights=False):
    r"""Ablation-CAM (Desai & Ramaswamy 2020): each channel weighted by the score drop when it is removed.

    ``w_k = (y_c − y_c^k) / y_c`` with ``y_c`` the explained score and ``y_c^k`` the score when channel ``k`` of the
    node's output is set to ``ablation_value`` (0: the paper's ablation), ``M = ReLU(Σ_k w_k A_k)``.  Only the
    nodes downstream of the chosen one are re-run (the other inputs they read come from the recorded pass, so
    skip connections around the node keep their values); ``N·K`` ablated copies run in chunks of ``batch_size``.

    Parameters
    ----------
    model, x, target, layer, relu, upsample
        As :func:`grad_cam_plus_plus`; the final ReLU is the paper's (default True).
    ablation_value : float
        What an ablated channel is set to (default 0).  pytorch-grad-cam uses 0 when the node's smallest
        activation is 0 and ``min − 1e7`` otherwise.
    batch_size : int or None
        Ablated copies per pass from the node on (default None: the cost model's choice for whole-model rows).
    return_weights : bool
        Also return the slopes ``w (N, K)``.

    Returns
    -------
    ndarray ``(N, 1, H, W)`` (or ``(N, 1, h, w)``); with ``return_weights``, ``(map, weights)``

    Notes
    -----
    The division by ``y_c`` is the paper's (Eq. 3): a negative score flips every weight's sign, and a score of
    exactly 0 is refused (ValueError naming the image).  Where ``y_c − y_c^k`` overflows the dtype, the slope is
    computed with both scores divided by a power of two (exact).
    """
    x = _setup(model, x, "ablation_cam")
    check_batch_size(batch_size)
    try:
        value = float(ablation_value)
    except (TypeError, ValueError):
        raise TypeError(f"ablation_value must be a real number, got {ablation_value!r}") from None
    tape = model.trace(x)
    name, A = _spatial_node(model, tape, layer, "ablation_cam")
    values = _target_values(target, tape.output)
    N, K = A.shape[:2]
    y = values(tape.output, np.arange(N))
    if (y == 0).any():
        bad = int(np.flatnonzero(y == 0)[0])
        raise ValueError(f"ablation_cam divides by the explained score y_c (Desai & Ramaswamy 2020, Eq. 3); "
                         f"image {bad} has y_c = 0")
    names, outside = _downstream(model, name)
    if model.output not in names:  # the node is the output itself: not spatial, refused above
        raise ValueError(f"ablation_cam: node {name!r} does not lead to the output {model.output!r}")
    rows, cols = np.repeat(np.arange(N), K), np.tile(np.arange(K), N)
    ablated = np.empty(rows.size, dtype=x.dtype)
    # rows per call as for whole-model rows: an upper bound on the memory of a run from the node on (a node inside
    # a residual block cannot be traced alone: its skip path needs values from before it)
    bs = rows_per_call(batch_size, model, x[:1], rows.size)
    for s in range(0, rows.size, bs):
        r, c = rows[s:s + bs], cols[s:s + bs]
        a = A[r].copy()
        a[np.arange(r.size), c] = value
        env = {name: a}
        for i in outside:
            env[i] = (tape.x if i == INPUT else tape.value(i))[r]
        model.run(env, names)
        ablated[s:s + bs] = values(env[model.output], r)
    yk = ablated.reshape(N, K)
    with np.errstate(over="ignore", invalid="ignore"):
        drop = y[:, None] - yk
        w = drop / y[:, None]
        bad = ~np.isfinite(drop).all(axis=1)
        if bad.any():  # y − y_k beyond the dtype's range: the ratio with both divided by a power of two (exact)
            s = _pow2_scale(np.concatenate([y[bad, None], yk[bad]], axis=1), (1,))
            w[bad] = (y[bad, None] / s - yk[bad] / s) / (y[bad, None] / s)
    cam_map = _finish(_combine(w, A, relu, "ablation_cam"), x, upsample)
    return (cam_map, w) if return_weights else cam_map


# -- the registry (claims: xattr/testing/claims_cam_family.py) ------------------------------------------
_CAM = ("layered", "spatial node")
register(MethodSpec("grad_cam_plus_plus", grad_cam_plus_plus, "cam", paper="Chattopadhay et al. 2018", needs=_CAM))
register(MethodSpec("score_cam", score_cam, "cam", paper="Wang et al. 2020", needs=_CAM))
register(MethodSpec("faster_score_cam", faster_score_cam, "cam", paper="Wang et al. 2020; tf-keras-vis", needs=_CAM))
register(MethodSpec("layer_cam", layer_cam, "cam", paper="Jiang et al. 2021", needs=_CAM))
register(MethodSpec("xgrad_cam", xgrad_cam, "cam", paper="Fu et al. 2020", needs=_CAM))
register(MethodSpec("hires_cam", hires_cam, "cam", paper="Draelos & Carin 2020", needs=_CAM))
register(MethodSpec("eigen_cam", eigen_cam, "cam", paper="Muhammad & Yeasin 2020", needs=_CAM))
register(MethodSpec("ablation_cam", ablation_cam, "cam", paper="Desai & Ramaswamy 2020", needs=_CAM))
