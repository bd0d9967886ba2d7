"""DeepLIFT (Rescale and RevealCancel) and DeepSHAP: multipliers on the rule table.

DeepLIFT (Shrikumar et al. 2017, "Learning important features through propagating activation
differences") explains ``Δt = t(x) − t(x₀)`` by the differences ``Δx = x − x₀`` from a reference
``x₀``.  It runs the model forward on the input and on the reference, then propagates *multipliers*
``m`` back with the chain rule for multipliers (§3.3), using the ``rescale`` or ``revealcancel``
column of the rule table (see :func:`xattr.rule_table`):

* linear layers (dense, conv, average pools, batch-norm, flatten, dropout): ``m_in = Wᵀ m_out``
  (the Linear rule, §3.5.1: the gradient);
* ReLU, Rescale rule (§3.5.2): ``m_in = m_out · Δy/Δx``; where ``|Δx| ≤ threshold``
  (``DEEPLIFT_NEAR_ZERO = 1e-10``, Captum's ``eps``; the original code uses 1e-7) the limit, the
  gradient at the input, is used;
* ReLU, RevealCancel rule (§3.5.3): the positive and negative terms ``Δx⁺, Δx⁻`` of the unit's input
  (from the linear layer below: ``Δx⁺_k = Σ_j [w_jk Δa_j > 0] w_jk Δa_j``) get separate multipliers
  ``Δy⁺/Δx⁺`` and ``Δy⁻/Δx⁻`` with ``Δy^± = ½(f(x₀ + Δx^±) − f(x₀)) + ½(f(x) − f(x₀ + Δx^∓))``;
  the linear layer below takes ``m⁺`` for its terms with ``w Δa > 0``, ``m⁻`` for those with
  ``w Δa < 0`` and their mean where ``Δa = 0`` (§3.5.1).  Each ReLU's input must come from a dense or
  conv layer (through flatten/dropout only); batch-norm is folded into its conv first.
* max-pool (``maxpool=``): the DeepLIFT paper gives rules for element-wise nonlinearities only; its
  reference code (kundajelab/deeplift, ``MaxPoolDeepLiftMode.gradient``, its only mode) propagates
  multipliers through max-pooling as the gradient: to the argmax **of the input pass** (never the
  reference's: cf. captum#1276).  That is the default, ``"gradient"``.  It conserves ``Δt`` only
  where the reference is constant within each window (e.g. zero reference, zero biases), as the code's
  docstring warns.  ``"rescale"`` sends ``m · Δy/Δx_a`` to the input's argmax ``a`` (Captum's
  max-pool rule), or ``m · Δy/Δx_b`` to the reference's argmax ``b`` when ``Δx_a ≈ 0`` (where Captum
  falls back to the gradient and loses ``Δy``): summation-to-delta then holds exactly.

Attributions are ``C = m ⊙ Δx`` (contribution scores); they satisfy summation-to-delta
``Σ_i C_i = Δt`` (§3.2) up to round-off, which ``return_delta=True`` reports.

DeepSHAP (Lundberg & Lee 2017, §4.2; shap's ``DeepExplainer``) averages DeepLIFT over K references
drawn from a background distribution: ``Σ_i C_i = t(x) − mean_k t(x₀ₖ)``.
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import _targets
from .._conventions import as_float_array
from ..nn import Conv2D, Dense, Dropout, Flatten, ReLU, Sequential
from ..nn.base import Cache
from ..nn.norm import BatchNorm2D, fold_batchnorm
from ..nn.pool import DEEPLIFT_MAXPOOL_MODES
from ..nn.relevance import DEEPLIFT_NEAR_ZERO, deeplift_split

DEEPLIFT_RULES = ("rescale", "revealcancel")


def require_sequential(model, method):
    if not isinstance(model, Sequential):
        raise TypeError(
            f"{method} propagates through the layers' rule table and needs an xattr.nn.Sequential model, "
            f"got {type(model).__name__}"
        )


def trace(model, x):
    """Forward pass keeping every layer's input, output and cache: ``[Cache(x, y, cache)] * len(model)``."""
    out = []
    for layer in model:
        y, cache = layer.forward(x)
        out.append(Cache(x=x, y=y, cache=cache))
        x = y
    return out


def as_reference(reference, x, name="reference"):
    """A reference of ``x``'s shape and dtype from a scalar, one sample ``x.shape[1:]`` or ``x.shape``."""
    if isinstance(reference, bool):
        raise TypeError(f"{name} must be a number or an array, got bool")
    if isinstance(reference, numbers.Real):
        reference = float(reference)
    r = as_float_array(reference, name)
    if r.ndim == 0:  # a scalar, also as a 0-d array
        return np.full_like(x, r)
    if r.shape == x.shape:
        return r.astype(x.dtype, copy=False)
    if r.shape in (x.shape[1:], (1,) + x.shape[1:]):
        return np.broadcast_to(r.reshape(x.shape[1:]), x.shape).astype(x.dtype)
    raise ValueError(
        f"{name} must be a scalar, one sample of shape {x.shape[1:]}, or one per image of shape {x.shape}; "
        f"got shape {r.shape} (for K references use xattr.deepshap)"
    )


def _check_options(rule, maxpool, threshold):
    if rule not in DEEPLIFT_RULES:
        raise ValueError(f"DeepLIFT rule must be one of {DEEPLIFT_RULES}, got {rule!r}")
    if maxpool not in DEEPLIFT_MAXPOOL_MODES:
        raise ValueError(f"maxpool must be one of {DEEPLIFT_MAXPOOL_MODES}, got {maxpool!r}")
    if not np.isfinite(threshold) or threshold < 0:
        raise ValueError(f"threshold must be finite and >= 0, got {threshold}")


def _canonical(model, rule):
    """RevealCancel needs each ReLU fed by a dense/conv layer: fold batch-norms into their convs."""
    if rule == "revealcancel" and any(isinstance(layer, BatchNorm2D) for layer in model):
        return fold_batchnorm(model)
    return model


def _splits(model, tx, tr):
    """``{ReLU index: (Δx⁺, Δx⁻)}``: positive and negative terms of each ReLU's input (RevealCancel)."""
    layers, out = model.layers, {}
    for i, layer in enumerate(layers):
        if not isinstance(layer, ReLU):
            continue
        j = i - 1
        while j >= 0 and isinstance(layers[j], (Flatten, Dropout)):
            j -= 1
        if j < 0:  # the ReLU sees the model input: its terms are the input's own signs
            d = tx[0].x - tr[0].x
            parts = (np.maximum(d, 0), np.minimum(d, 0))
        elif isinstance(layers[j], (Dense, Conv2D)):
            parts = deeplift_split(layers[j], tx[j], tr[j])
        else:
            raise ValueError(
                f"RevealCancel needs the input of {layer.describe()} to come from a Dense or Conv2D layer "
                f"(through Flatten/Dropout only), but {layers[j].describe()} feeds it; use rule='rescale'"
            )
        for k in range(j + 1, i):  # flatten/dropout relabel the terms
            parts = tuple(layers[k](p) for p in parts)
        out[i] = parts
    return out


def _multipliers_x_delta(model, x, ref, seed, rule, maxpool, threshold):
    """Contributions ``m ⊙ Δx`` for aligned batches ``x``, ``ref`` and a seed ``(N, K)``; also the scores.

    ``seed`` may be a callable on the input's scores (the target), so that the input's forward pass
    is run once.
    """
    tx, tr = trace(model, x), trace(model, ref)
    if callable(seed):
        seed = seed(tx[-1].y)
    splits = _splits(model, tx, tr) if rule == "revealcancel" else {}

    def cell(i, layer):
        opts = {"inp": tx[i], "ref": tr[i], "maxpool": maxpool, "threshold": threshold}
        if i in splits:
            opts["split"] = splits[i]
        return rule, opts

    m = model.backward(seed, [t.cache for t in tx], cell)
    d = x - ref
    if isinstance(m, tuple):  # a RevealCancel ReLU reads the input directly: m⁺ for Δx⁺, m⁻ for Δx⁻
        contrib = m[0] * np.maximum(d, 0) + m[1] * np.minimum(d, 0)
    else:
        contrib = m * d
    return contrib, tx[-1].y, tr[-1].y


def _gap(contrib, seed, scores, ref_scores):
    """Summation-to-delta gap per image: ``Σ_i C_i − Σ_k seed_k (t_k(x) − t_k(x₀))``."""
    total = contrib.reshape(contrib.shape[0], -1).sum(axis=1)
    return total - (seed * (scores - ref_scores)).sum(axis=1)


def deeplift(model, x, target, reference=0.0, rule="rescale", maxpool="gradient", threshold=DEEPLIFT_NEAR_ZERO,
             return_delta=False):
    """DeepLIFT contribution scores (Shrikumar et al. 2017).

    Parameters
    ----------
    model : xattr.nn.Sequential
    x : ndarray ``(N, C, H, W)`` (or any ``(N, ...)`` the model takes)
    target : int, int array ``(N,)`` or callable on the scores
    reference : float or ndarray
        A scalar, one sample ``x.shape[1:]`` or one reference per image ``x.shape``.  Default 0
        (the paper's black image).  For a distribution of references use :func:`deepshap`.
    rule : ``"rescale"`` (default) or ``"revealcancel"``
        The nonlinearity rule (§3.5.2 / §3.5.3).
    maxpool : ``"gradient"`` (default, the reference code's) or ``"rescale"`` (summation-exact)
    threshold : float
        ``|Δx|`` up to which a multiplier ``Δy/Δx`` is replaced by the gradient.
    return_delta : bool
        Also return the summation-to-delta gap ``Σ_i C_i − (t(x) − t(x₀))`` per image ``(N,)``.  For a
        callable target the explained difference is ``Σ_k seed_k (s_k(x) − s_k(x₀))``, ``seed`` its
        derivative at ``x``'s scores: ``t(x) − t(x₀)`` when the callable is linear in the scores.

    Returns
    -------
    ndarray ``x.shape`` (and the gap ``(N,)`` if ``return_delta``)
    """
    require_sequential(model, "deeplift")
    _check_options(rule, maxpool, threshold)
    x = as_float_array(x, "x")
    if x.ndim < 2:
        raise ValueError(f"x must be a batch of shape (N, ...), got shape {x.shape}")
    ref = as_reference(reference, x)
    model = _canonical(model, rule)
    seeds = []

    def seed(scores):
        seeds.append(_targets.seed(target, scores))
        return seeds[0]

    contrib, sx, sr = _multipliers_x_delta(model, x, ref, seed, rule, maxpool, threshold)
    if return_delta:
        return contrib, _gap(contrib, seeds[0], sx, sr)
    return contrib


def deepshap(model, x, target, references=None, rule="rescale", maxpool="gradient", threshold=DEEPLIFT_NEAR_ZERO,
             return_delta=False, batch_size=256):
    """DeepSHAP: DeepLIFT averaged over K references (Lundberg & Lee 2017; Shrikumar et al. 2017 §3.4).

    Parameters
    ----------
    references : ndarray ``(K, C, H, W)``
        Background samples, shared by every image (each image is explained against each of them).
        ``None`` (so that the method runs by name with ``(model, x, target)``): the single zero image,
        i.e. DeepLIFT with the zero reference; pass a background sample for DeepSHAP proper.
    batch_size : int
        At most this many (image, reference) pairs go through the model at once.
    model, x, target, rule, maxpool, threshold, return_delta
        As in :func:`deeplift`.

    Returns
    -------
    ndarray ``x.shape``: ``mean_k deeplift(x, x₀ₖ)``, so ``Σ_i C_i = t(x) − mean_k t(x₀ₖ)``; and with
    ``return_delta`` the gap to that ``(N,)``.
    """
    require_sequential(model, "deepshap")
    _check_options(rule, maxpool, threshold)
    x = as_float_array(x, "x")
    if x.ndim < 2:
        raise ValueError(f"x must be a batch of shape (N, ...), got shape {x.shape}")
    if references is None:
        references = np.zeros((1,) + x.shape[1:], dtype=x.dtype)
    refs = as_float_array(references, "references")
    if refs.ndim != x.ndim or refs.shape[1:] != x.shape[1:] or refs.shape[0] < 1:
        raise ValueError(f"references must have shape (K,) + {x.shape[1:]} with K >= 1, got {refs.shape}")
    refs = refs.astype(x.dtype, copy=False)
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    model = _canonical(model, rule)
    N, K = x.shape[0], refs.shape[0]
    seed = _targets.seed(target, model.forward(x))
    total = np.zeros_like(x)
    gap = np.zeros(N, dtype=x.dtype)
    per_chunk = max(1, int(batch_size) // N)  # references per chunk (whole images at a time)
    for a in range(0, K, per_chunk):
        r = refs[a : a + per_chunk]
        k = r.shape[0]
        xs = np.concatenate([x] * k)
        rs = np.repeat(r, N, axis=0)  # reference a+q for block q of images
        seeds = np.concatenate([seed] * k)
        contrib, sx, sr = _multipliers_x_delta(model, xs, rs, seeds, rule, maxpool, threshold)
        total += contrib.reshape((k, N) + x.shape[1:]).sum(axis=0)
        gap += _gap(contrib, seeds, sx, sr).reshape(k, N).sum(axis=0)
    if return_delta:
        return total / K, gap / K
    return total / K
