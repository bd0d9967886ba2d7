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
  docstring warns.  ``"rescale"`` sends ``m · Δy/Δx_a`` to the input's argmax ``a`` (the Rescale rule
  on each window's maximum), or ``m · Δy/Δx_b`` to the reference's argmax ``b`` when ``Δx_a ≈ 0``:
  summation-to-delta then holds exactly, but ``Δy/Δx_a`` is
  unbounded where the input's maximum barely moved.  ``"captum"`` is Captum's rule: the part of ``Δy`` by
  which the input's maximum exceeds the reference's goes to ``a``, the part by which it falls short to ``b``,
  each divided by its ``Δx`` (multipliers in ``[0, 1]``); it conserves too.  See docs/peers.md, "DeepLIFT
  through max-pool", for when Captum itself computes it and the three modes measured on VGG and AlexNet.

Attributions are ``C = m ⊙ Δx`` (contribution scores); they satisfy summation-to-delta
``Σ_i C_i = Δt`` (§3.2) up to round-off, which ``return_delta=True`` reports.

DeepSHAP (Lundberg & Lee 2017, §4.2; shap's ``DeepExplainer``) averages DeepLIFT over K references
drawn from a background distribution: ``Σ_i C_i = t(x) − mean_k t(x₀ₖ)``.
"""
from __future__ import annotations

import numpy as np

from .. import _targets
from .._conventions import as_float_array
from ..inputs import as_baseline, completeness_gap
from ..nn import INPUT, Add, Concat, Conv2D, Dense, Dropout, Flatten
from ..nn.activation import NONLINEAR_UNITS
from ..nn.norm import BatchNorm2D, fold_batchnorm
from ..nn.pool import DEEPLIFT_MAXPOOL_MODES
from ..nn.relevance import DEEPLIFT_NEAR_ZERO, deeplift_split
from .registry import MethodSpec, register

DEEPLIFT_RULES = ("rescale", "revealcancel")


def require_layered(model, method):
    """Refuse models without a tape of nodes (DeepLIFT and LRP propagate through the layers' rule table).

    Parameters
    ----------
    model : object
        Must have ``trace`` and ``node`` (:class:`xattr.nn.Graph` or ``Sequential``), else ``TypeError``.
    method : str
        The method's name, for the error message.

    Returns
    -------
    None
    """
    if not hasattr(model, "trace") or not hasattr(model, "node"):
        raise TypeError(
            f"{method} propagates through the layers' rule table and needs a layered model "
            f"(xattr.nn.Graph or Sequential), got {type(model).__name__}"
        )


def as_reference(reference, x, name="reference"):
    """A reference of ``x``'s shape and dtype (:func:`xattr.inputs.as_baseline`).

    Parameters
    ----------
    reference : float, ndarray or callable
        A scalar, one sample, an array broadcastable to ``x`` or a callable ``x -> reference``.
    x : ndarray ``(N, C, H, W)``
    name : str
        For error messages.

    Returns
    -------
    ndarray, ``x.shape``, ``x.dtype``
    """
    return as_baseline(reference, x, name)


def _check_options(rule, maxpool, threshold):
    if rule not in DEEPLIFT_RULES:
        raise ValueError(f"DeepLIFT rule must be one of {DEEPLIFT_RULES}, got {rule!r}")
    if maxpool not in DEEPLIFT_MAXPOOL_MODES:
        raise ValueError(f"maxpool must be one of {DEEPLIFT_MAXPOOL_MODES}, got {maxpool!r}")
    if not np.isfinite(threshold) or threshold < 0:
        raise ValueError(f"threshold must be finite and >= 0, got {threshold}")


def _canonical(model, rule):
    """RevealCancel splits the terms of each conv: fold batch-norms into their convs first (where they follow one)."""
    if rule == "revealcancel" and any(isinstance(layer, BatchNorm2D) for layer in model):
        return fold_batchnorm(model, strict=False)
    return model


#: single-input layers that relabel units, so the (Δx⁺, Δx⁻) terms (and the (m⁺, m⁻) pair) pass through them
_RELABEL = (Flatten, Dropout)


def _terms(model, tx, tr, name, memo):
    """``(Δz⁺, Δz⁻)``: the positive and negative terms of node ``name``'s output difference (RevealCancel).

    A dense or conv node's terms are ``w_jk Δa_j`` (Shrikumar et al. 2017 §3.5.1); flatten/dropout relabel
    their input's terms; a sum adds its inputs' terms and a concat joins them; any other node (the model
    input, a ReLU, a pool, ...) is one term per unit, its own ``Δ`` split by sign.  The backward pass
    must treat the pair the same way: :func:`_collapse` does it at the last kind of node.
    """
    if name in memo:
        return memo[name]
    layer = None if name == INPUT else model[name]
    if isinstance(layer, (Dense, Conv2D)):
        parts = deeplift_split(layer, tx[name], tr[name])
    elif isinstance(layer, _RELABEL):
        parts = tuple(layer(p) for p in _terms(model, tx, tr, model.inputs_of(name)[0], memo))
    elif isinstance(layer, (Add, Concat)):
        each = [_terms(model, tx, tr, i, memo) for i in model.inputs_of(name)]
        if isinstance(layer, Add):
            parts = tuple(sum(p[k] for p in each) for k in (0, 1))
        else:
            parts = tuple(np.concatenate([p[k] for p in each], axis=1) for k in (0, 1))
    else:
        d = tx[name].y - tr[name].y
        parts = (np.maximum(d, 0), np.minimum(d, 0))
    memo[name] = parts
    return parts


def _passes_pairs(layer):
    return isinstance(layer, (Dense, Conv2D, Add, Concat) + _RELABEL)


def _collapse(tx, tr):
    """A tap: a ``(m⁺, m⁻)`` pair arriving at a node that is one term per unit becomes one multiplier,
    ``m⁺`` where the node's ``Δ > 0``, ``m⁻`` where ``< 0``, their mean where ``Δ = 0`` (the linear rule, §3.5.1,
    with unit weights)."""

    def tap(name, rec, g):
        if not isinstance(g, tuple):
            return None
        d = tx[name].y - tr[name].y
        return np.where(d > 0, g[0], np.where(d < 0, g[1], 0.5 * (g[0] + g[1])))

    return tap


def _multipliers(model, x, ref, seed, rule, maxpool, threshold):
    """Multipliers ``m = ∂t/∂x`` in DeepLIFT's sense (§3.3) at the input for aligned batches ``x``, ``ref`` and a seed
    ``(N, K)`` (a ``(m⁺, m⁻)`` pair under RevealCancel); also the scores of ``x`` and ``ref``.

    ``seed`` may be a callable on the input's scores (the target), so that the input's forward pass
    is run once.
    """
    tx, tr = model.trace(x), model.trace(ref)
    if callable(seed):
        seed = seed(tx.output)
    splits, taps = {}, {}
    if rule == "revealcancel":
        memo, tap = {}, _collapse(tx, tr)
        for name in model.order:
            if isinstance(model[name], NONLINEAR_UNITS):  # the ReLU and every other element-wise unit
                splits[name] = _terms(model, tx, tr, model.inputs_of(name)[0], memo)
            if not _passes_pairs(model[name]):
                taps[name] = tap

    def cell(name, layer):
        opts = {"inp": tx[name], "ref": tr[name], "maxpool": maxpool, "threshold": threshold}
        if name in splits:
            opts["split"] = splits[name]
        return rule, opts

    return tx.pull(seed, cell, taps=taps), tx.output, tr.output


def _multipliers_x_delta(model, x, ref, seed, rule, maxpool, threshold):
    """Contributions ``m ⊙ Δx`` for aligned batches ``x``, ``ref`` and a seed ``(N, K)``; also the scores
    (:func:`_multipliers`)."""
    m, sx, sr = _multipliers(model, x, ref, seed, rule, maxpool, threshold)
    d = x - ref
    if isinstance(m, tuple):  # the model input is one term per unit: m⁺ for Δx⁺, m⁻ for Δx⁻
        contrib = m[0] * np.maximum(d, 0) + m[1] * np.minimum(d, 0)
    else:
        contrib = m * d
    return contrib, sx, sr


def _gap(contrib, seed, scores, ref_scores):
    """Summation-to-delta gap per image: ``Σ_i C_i − Σ_k seed_k (t_k(x) − t_k(x₀))``
    (:func:`xattr.inputs.completeness_gap`)."""
    return completeness_gap(contrib, (seed * scores).sum(axis=1), (seed * ref_scores).sum(axis=1))


def deeplift(model, x, target, reference=0.0, rule="rescale", maxpool="gradient", threshold=DEEPLIFT_NEAR_ZERO,
             return_delta=False):
    """DeepLIFT contribution scores (Shrikumar et al. 2017).

    Parameters
    ----------
    model : xattr.nn.Graph or Sequential
    x : ndarray ``(N, C, H, W)`` (or any ``(N, ...)`` the model takes)
    target : int, int array ``(N,)`` or callable on the scores
    reference : float or ndarray
        A scalar, one sample ``x.shape[1:]`` or one reference per image ``x.shape``.  Default 0
        (the paper's black image).  For a distribution of references use :func:`deepshap`.
    rule : ``"rescale"`` (default) or ``"revealcancel"``
        The nonlinearity rule (§3.5.2 / §3.5.3).
    maxpool : ``"gradient"`` (default, the reference code's), ``"rescale"`` (summation-exact) or ``"captum"``
        (Captum's cross-maximum split, summation-exact, multipliers in [0, 1])
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
    require_layered(model, "deeplift")
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
    require_layered(model, "deepshap")
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


# -- the registry -------------------------------------------------------------------------------------
register(
    MethodSpec("deeplift", deeplift, "relevance", paper="Shrikumar et al. 2017", needs=("layered", "rule:rescale"))
)
register(MethodSpec("deepshap", deepshap, "relevance", paper="Lundberg & Lee 2017 (§4.2); Shrikumar et al. 2017",
                    needs=("layered", "rule:rescale", "references")))
