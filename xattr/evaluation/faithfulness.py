"""Faithfulness: curves that remove features in the attribution's order, and Yeh et al.'s measures.

* Deletion and insertion curves (Petsiuk et al. 2018), pixel flipping (Bach et al. 2015), region
  perturbation with MoRF/LeRF orders and AOPC (Samek et al. 2017), IROF (Rieger & Hansen 2020).
* Sufficiency (Dasgupta et al. 2022).
* Infidelity and max-sensitivity (Yeh et al. 2019).

The unit of a *feature* follows the map's shape: a map of ``x``'s shape ranks every input
element; a map ``(N, H, W)`` or ``(N, 1, H, W)`` ranks pixels (all channels of a pixel move
together).  Ties in the ranking: raster order (first first).  Scores: ``"logit"``,
``"probability"`` (softmax) or ``"accuracy"`` (arg-max is the target); see
:mod:`xattr.evaluation._perturb`.  Perturbed images go through ``model.forward`` in chunks of
``batch_size`` images; nothing but ``forward`` is asked of the model.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial.distance import cdist

from .. import _targets
from .._conventions import as_float_array, as_rng, check_image_batch
from . import _perturb as P

__all__ = [
    "deletion_curve", "insertion_curve", "Curve", "pixel_flipping", "region_perturbation", "irof", "Irof",
    "sufficiency", "Sufficiency", "infidelity", "max_sensitivity", "blurred",
]

#: default sigma (pixels) of the blurred image that insertion starts from (our choice, stated).
BLUR_SIGMA = 5.0
#: default points of a deletion/insertion curve after 0: Petsiuk et al. 2018 move 224 pixels per step
#: on 224x224 images, i.e. 1/224 of the features per step (one per feature when there are fewer).
CURVE_STEPS = 224


@dataclass
class Curve:
    """A perturbation curve: the target's score as features are removed (or inserted) in order.

    Attributes
    ----------
    fractions : ndarray ``(S + 1,)``
        Fraction of features (or regions) moved, from 0 to at most 1.
    scores : ndarray ``(N, S + 1)``
        The target score (logit, probability or accuracy) at each fraction.
    auc : ndarray ``(N,)``
        Trapezoid area under ``scores`` over ``fractions``.
    baseline : str
        What replaced the features (``"0"``, ``"blur(sigma=5)"``, ``"array"``, ...).
    order : str
        ``"morf"`` (most relevant first) or ``"lerf"`` (least relevant first).
    """

    fractions: np.ndarray
    scores: np.ndarray
    auc: np.ndarray
    baseline: str
    order: str = "morf"

    def aopc(self):
        """Area over the perturbation curve (Samek et al. 2017, eq. 12), per image ``(N,)``.

        ``AOPC = 1/(L+1) Σ_{k=0}^{L} (f(x⁽⁰⁾) - f(x⁽ᵏ⁾))`` over the ``L + 1`` points of the curve:
        large for a faithful MoRF order, small (or negative) for a faithful LeRF order.
        """
        return (self.scores[:, :1] - self.scores).mean(axis=1)


def blurred(x, sigma=BLUR_SIGMA):
    """``x`` with each channel blurred by a Gaussian of ``sigma`` pixels (borders reflected).

    Parameters
    ----------
    x : ndarray ``(N, C, H, W)``
    sigma : float
        Pixels.

    Returns
    -------
    ndarray ``(N, C, H, W)``, ``x.dtype``
    """
    x = check_image_batch(x)
    return ndimage.gaussian_filter(np.asarray(x, dtype=np.float64), sigma=(0, 0, sigma, sigma),
                                   mode="reflect").astype(x.dtype, copy=False)


def _trapz(y, x):
    return ((y[..., 1:] + y[..., :-1]) / 2 * np.diff(x)).sum(axis=-1)


def _curve_counts(n_steps, F):
    if n_steps is None:
        steps = min(CURVE_STEPS, F)
    elif isinstance(n_steps, str):
        if n_steps != "all":
            raise ValueError(f"n_steps must be an int, None or 'all', got {n_steps!r}")
        steps = F
    else:
        steps = int(n_steps)
    if not 1 <= steps <= F:
        raise ValueError(f"n_steps must be between 1 and the number of features {F}, got {n_steps}")
    return np.round(np.linspace(0, F, steps + 1)).astype(np.intp)


def _moving_curve(model, x, target, feats, ranks, counts, total, base, label, score, batch_size, insert, order,
                  progress, desc):
    """Scores after moving the features of rank ``< counts[s]`` from ``x`` to ``base`` (or back, ``insert``)."""
    scorer = P.Scorer(model, x, target, score)
    src, dst = (base, x) if insert else (x, base)

    def make(lo, hi):
        moved = feats(ranks[None] < counts[lo:hi, None, None])
        return np.where(moved, dst[None], src[None])

    n = x.shape[0]
    bar = P.progress_bar(len(counts) * n, progress, desc)
    try:
        scores = P.score_stack(scorer, make, len(counts), n, batch_size, bar).T
    finally:
        bar.close()
    fr = counts / total
    return Curve(fr, scores, _trapz(scores, fr), label, order)


def _element_curve(model, x, target, attribution, baseline, counts_of, score, batch_size, blur_sigma, insert, order,
                   rng, progress, desc):
    x = P.images(x)
    feats = P.Features(attribution, x)
    base, label = P.replacement(baseline, x, rng, blur_sigma)
    counts = counts_of(feats.count)
    return _moving_curve(model, x, target, feats.expand, feats.ranks(order), counts, feats.count, base, label, score,
                         batch_size, insert, order, progress, desc)


def deletion_curve(model, x, target, attribution, baseline=0.0, n_steps=None, score="probability",
                   batch_size=None, blur_sigma=BLUR_SIGMA, order="morf", rng=None, progress=False):
    """Deletion curve and its AUC (Petsiuk et al. 2018, "RISE"): lower is more faithful.

    Features are replaced by ``baseline`` in decreasing order of attribution and the target's
    probability is recorded: ``s_k = p_t(x⁽ᵏ⁾)`` with ``x⁽ᵏ⁾`` the image with the ``c_k`` most
    relevant features deleted, ``c_k = round(k F / S)``; AUC by the trapezoid rule over the
    fraction ``c_k / F``.

    Parameters
    ----------
    model : any object with ``forward(x) -> (N, K)``
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable
    attribution : ndarray, ``x``'s shape or ``(N, [1,] H, W)``
    baseline : float, array, callable ``x -> array``, ``"blur"``, ``"mean"`` or ``"uniform"``
        What a deleted feature becomes; default 0 (the paper's deletion uses a constant).
    n_steps : int, ``"all"`` or None
        Points of the curve after 0.  Default ``min(224, F)``: 1/224 of the features per step,
        as the paper (224 pixels per step at 224x224).  ``"all"``: one feature per step (xattr's
        behaviour before this default changed).
    score : ``"probability"`` (softmax of the target, the paper's, default), ``"logit"`` or ``"accuracy"``
    order : ``"morf"`` (default) or ``"lerf"`` (least relevant first)
    rng : Generator or int; only for ``baseline="uniform"``
    batch_size : int, optional
        Images per forward pass (bounds memory); default about 2 million input values per pass.
    progress : bool
        Show a progress bar (tqdm when installed).

    Returns
    -------
    Curve
    """
    return _element_curve(model, x, target, attribution, baseline, lambda F: _curve_counts(n_steps, F), score,
                          batch_size, blur_sigma, False, order, rng, progress, "deletion")


def insertion_curve(model, x, target, attribution, baseline="blur", n_steps=None, score="probability",
                    batch_size=None, blur_sigma=BLUR_SIGMA, order="morf", rng=None, progress=False):
    """Insertion curve and its AUC (Petsiuk et al. 2018): higher is more faithful.

    Starts from ``baseline`` (default a Gaussian blur of ``x``, as the paper's insertion)
    and puts back features in decreasing order of attribution.  Parameters as
    :func:`deletion_curve` (same defaults: probability, ``min(224, F)`` steps).

    Parameters
    ----------
    model : model protocol object (``forward``, ``vjp``)
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable on the scores ``(N, K)``
    attribution : ndarray, ``x.shape`` (or one value per pixel ``(N, 1, H, W)``)
    baseline, n_steps, score, batch_size, blur_sigma, order, rng, progress
        As :func:`deletion_curve`; ``baseline="blur"`` (default) starts from the blurred ``x``.

    Returns
    -------
    Curve
    """
    return _element_curve(model, x, target, attribution, baseline, lambda F: _curve_counts(n_steps, F), score,
                          batch_size, blur_sigma, True, order, rng, progress, "insertion")


def pixel_flipping(model, x, target, attribution, order="morf", baseline=0.0, features_per_step=1, score="logit",
                   rng=None, batch_size=None, progress=False):
    """Pixel flipping (Bach et al. 2015, "On pixel-wise explanations ... by layer-wise relevance propagation").

    Features are flipped (replaced by ``baseline``) cumulatively in the attribution's order,
    ``features_per_step`` at a time, and the classifier's output ``f(x⁽ᵏ⁾)`` is recorded after
    every step (``k = 0`` is the unperturbed image).  A faithful map makes the MoRF curve fall
    fast; :meth:`Curve.aopc` summarises it (Samek et al. 2017).  Bach et al. flip binary MNIST
    pixels; for real-valued images the replacement is the caller's choice (default 0).

    The other parameters are those of :func:`deletion_curve`.

    Parameters
    ----------
    order : ``"morf"`` or ``"lerf"``
    features_per_step : int
        Features flipped per step; the last step flips what remains.
    score : ``"logit"`` (the classifier's output, default), ``"probability"`` or ``"accuracy"``

    Returns
    -------
    Curve, with ``ceil(F / features_per_step) + 1`` points.
    """
    step = int(features_per_step)

    def counts(F):
        if not 1 <= step <= F:
            raise ValueError(f"features_per_step must be between 1 and the number of features {F}, "
                             f"got {features_per_step}")
        return np.minimum(np.arange(0, F + step, step), F)[: -(-F // step) + 1]

    return _element_curve(model, x, target, attribution, baseline, counts, score, batch_size, BLUR_SIGMA, False,
                          order, rng, progress, "pixel flipping")


def region_perturbation(model, x, target, attribution, patch=9, order="morf", baseline="uniform", rng=None,
                        n_regions=None, score="logit", batch_size=None, progress=False):
    """Region perturbation (Samek et al. 2017, "Evaluating the visualization of what a deep neural
    network has learned"), MoRF or LeRF.

    The image is tiled by ``patch x patch`` regions from the top-left corner (the last row and
    column of regions are cut at the border); a region's relevance is the sum of the attribution
    over its pixels (and channels).  Regions are replaced cumulatively in the order of their
    relevance (ties: region raster order) by ``baseline`` (default uniform noise over each
    image's range, as the paper) and the target's score is recorded after each.  Samek et al.
    perturb 9x9 regions and report ``AOPC`` (:meth:`Curve.aopc`).

    The other parameters are those of :func:`pixel_flipping`.

    Parameters
    ----------
    patch : int
        Region side in pixels.
    n_regions : int, optional
        Regions to perturb (curve points after 0); default all.
    rng : Generator or int; needed by ``baseline="uniform"``.

    Returns
    -------
    Curve, ``fractions`` = fraction of the regions perturbed.
    """
    x = P.images(x)
    feats = P.Features(attribution, x)
    n, c, h, w = x.shape
    patch = int(patch)
    if not 1 <= patch <= min(h, w):
        raise ValueError(f"patch must be between 1 and min(H, W) = {min(h, w)}, got {patch}")
    cols = -(-w // patch)
    region = ((np.arange(h) // patch)[:, None] * cols + (np.arange(w) // patch)[None, :]).ravel()  # (H*W,)
    R = int(region.max()) + 1
    pix = feats.values.reshape(n, -1, h * w).sum(axis=1) if feats.unit == "element" else feats.values
    rel = P.group_sums(np.broadcast_to(region, (n, h * w)), pix, R)
    region_rank = P.ranking(rel, order)  # (N, R)
    pixel_rank = region_rank[:, region]  # (N, H*W): a pixel moves with its region
    L = R if n_regions is None else int(n_regions)
    if not 1 <= L <= R:
        raise ValueError(f"n_regions must be between 1 and the number of regions {R}, got {n_regions}")
    base, label = P.replacement(baseline, x, rng)

    def expand(mask):
        lead = mask.shape[:-2]
        return np.broadcast_to(mask.reshape(lead + (n, 1, h, w)), lead + (n, c, h, w))

    return _moving_curve(model, x, target, expand, pixel_rank, np.arange(L + 1), R, base, label, score, batch_size,
                         False, order, progress, "region perturbation")


@dataclass
class Irof:
    """Result of :func:`irof`.

    ``aoc (N,)``: area over the normalised curve; ``curves``: per image ``(K_n + 1,)`` scores
    ``f(x⁽ᵏ⁾) / f(x)`` after removing the ``k`` most relevant segments; ``n_segments (N,)``.
    """

    aoc: np.ndarray
    curves: list
    n_segments: np.ndarray


def irof(model, x, target, attribution, segments=None, baseline="mean", score="probability",
         batch_size=None, rng=None, progress=False):
    """Iterative removal of features, IROF (Rieger & Hansen 2020, "IROF: a low resource evaluation
    metric for explanation methods").

    The image is cut into superpixels; a segment's relevance is the *mean* attribution over its
    pixels (and channels); segments are removed (replaced by ``baseline``, default each image's
    per-channel mean) cumulatively in decreasing order of relevance (ties: lower label first)
    and the target's probability is recorded relative to the original,
    ``y_k = f(x⁽ᵏ⁾) / f(x)``.  ``IROF = 1 - ∫ y`` over the fraction ``k / K`` of segments
    removed (trapezoid rule): the area over the curve, higher is more faithful.

    Parameters
    ----------
    segments : int labels ``(H, W)`` or ``(N, H, W)``, optional
        Default: SLIC superpixels (:func:`xattr.slic_segments`, needs scikit-image).
    baseline : see :func:`deletion_curve`
    score : ``"probability"`` (default, the paper's) or ``"logit"``; ``f(x)`` must not be 0.

    Returns
    -------
    Irof
    """
    from ..methods import segments as seg

    x = P.images(x)
    feats = P.Features(attribution, x)
    n, c, h, w = x.shape
    if segments is None:
        segments = seg.slic_segments(x)
    labels, counts = seg.check_segments(segments, x.shape)
    lab = np.stack(labels).reshape(n, -1)  # (N, H*W), labels 0 .. K_n - 1
    K = np.asarray(counts)
    Kmax = int(K.max())
    pix = feats.values.reshape(n, -1, h * w).sum(axis=1) / (c if feats.unit == "element" else 1)
    sums = P.group_sums(lab, pix, Kmax)
    sizes = P.group_sums(lab, np.ones_like(pix), Kmax)
    mean = np.where(sizes > 0, sums / np.maximum(sizes, 1), -np.inf)  # labels >= K_n (absent) go last
    seg_rank = P.ranking(mean, "morf")
    pixel_rank = np.take_along_axis(seg_rank, lab, axis=1)
    base, _ = P.replacement(baseline, x, rng)

    def expand(mask):
        lead = mask.shape[:-2]
        return np.broadcast_to(mask.reshape(lead + (n, 1, h, w)), lead + (n, c, h, w))

    curve = _moving_curve(model, x, target, expand, pixel_rank, np.arange(Kmax + 1), Kmax, base, "", score,
                          batch_size, False, "morf", progress, "IROF")
    f0 = curve.scores[:, 0]
    bad = np.flatnonzero(f0 == 0)
    if bad.size:
        raise ValueError(f"image {int(bad[0])}: the target's score is 0, so IROF's normalised curve is undefined")
    curves = [curve.scores[i, : K[i] + 1] / f0[i] for i in range(n)]
    aoc = np.array([1.0 - _trapz(y, np.arange(K[i] + 1) / K[i]) for i, y in enumerate(curves)])
    return Irof(aoc, curves, K)


@dataclass
class Sufficiency:
    """Result of :func:`sufficiency`: ``score (N,)`` (0 where an image has no neighbour), ``neighbours (N,)``."""

    score: np.ndarray
    neighbours: np.ndarray

    def mean(self):
        """Mean score over the images that have at least one neighbour."""
        ok = self.neighbours > 0
        if not ok.any():
            raise ValueError("no image has a neighbour within the threshold: sufficiency is undefined")
        return float(self.score[ok].mean())


def sufficiency(model, x, attribution, threshold, metric="euclidean", **metric_kwargs):
    """Sufficiency (Dasgupta et al. 2022, "Framework for evaluating faithfulness of local explanations").

    An explanation is sufficient when the inputs that receive the same explanation receive
    the same prediction.  Over a batch, the neighbours of image ``i`` are the other images
    ``j`` with ``d(a_i, a_j) <= threshold`` and ``score_i`` is the fraction of them predicted
    (arg-max of ``model.forward``) as ``i`` is.

    Parameters
    ----------
    x : ndarray ``(N, C, H, W)``
    attribution : ndarray ``(N, ...)``
    threshold : float
        Largest distance between explanations that still counts as "the same".
    metric : str or callable
        Any ``scipy.spatial.distance.cdist`` metric (default Euclidean; Quantus uses the
        standardised ``"seuclidean"``); ``metric_kwargs`` go to ``cdist``.

    Returns
    -------
    Sufficiency
    """
    x = P.images(x)
    a = as_float_array(attribution, "attribution")
    if a.shape[0] != x.shape[0]:
        raise ValueError(f"attribution must hold one map per image ({x.shape[0]}), got shape {a.shape}")
    if not np.isfinite(threshold) or threshold < 0:
        raise ValueError(f"threshold must be a non-negative number, got {threshold}")
    pred = np.argmax(P.forward(P.check_forward(model), x), axis=1)
    flat = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    d = cdist(flat, flat, metric, **metric_kwargs)
    if not np.all(np.isfinite(d)):
        raise ValueError(f"the {metric!r} distances between the maps are not all finite (constant features "
                         "under 'seuclidean'?)")
    near = (d <= threshold) & ~np.eye(len(flat), dtype=bool)
    count = near.sum(axis=1)
    same = (near & (pred[None, :] == pred[:, None])).sum(axis=1)
    return Sufficiency(np.where(count > 0, same / np.maximum(count, 1), 0.0), count)


# -- Yeh et al. 2019 ---------------------------------------------------------------------------
def _perturbations(kind_of_noise, x, n_samples, sigma, square, gen):
    n = x.shape[0]
    if kind_of_noise == "gaussian":
        return gen.normal(0.0, sigma, (n_samples,) + x.shape)
    if kind_of_noise == "square":
        h, w = x.shape[2:]
        if not 1 <= square <= min(h, w):
            raise ValueError(f"square must be between 1 and {min(h, w)}, got {square}")
        top = gen.integers(0, h - square + 1, (n_samples, n))
        left = gen.integers(0, w - square + 1, (n_samples, n))
        rows = np.arange(h)[None, None, :, None]
        cols = np.arange(w)[None, None, None, :]
        m = ((rows >= top[..., None, None]) & (rows < top[..., None, None] + square)
             & (cols >= left[..., None, None]) & (cols < left[..., None, None] + square))
        return np.broadcast_to(m[:, :, None], (n_samples,) + x.shape).astype(np.float64)
    raise ValueError(f"perturbation must be 'gaussian', 'square' or an array, got {kind_of_noise!r}")


def infidelity(model, x, target, attribution, perturbation="gaussian", n_samples=64, rng=None, sigma=0.1,
               square=4, kind="local", baseline=0.0, normalize=False, batch_size=256):
    """Infidelity (Yeh et al. 2019): ``E_I[(Iᵀ Φ - (f(x) - f(x - I)))²]`` per image.

    Parameters
    ----------
    model, x, target
    attribution : ndarray, ``x``'s shape
    perturbation : ``"gaussian"``, ``"square"`` or ndarray ``(S, *x.shape)``
        ``"gaussian"``: entries ``N(0, sigma²)``.  ``"square"``: a random ``square x square``
        patch (all channels) moved to the baseline.  An array gives the perturbations
        explicitly (``I`` for ``kind="local"``, ``z`` for ``kind="global"``).
    kind : ``"local"`` or ``"global"``
        ``"local"`` for gradient-like attributions: ``I`` as drawn (for ``"square"``:
        ``I = 1_square ⊙ (x - baseline)``) and the dot product ``Iᵀ Φ``.  ``"global"`` for
        attributions that already multiply by ``x - baseline`` (gradient×input, IG,
        DeepLIFT): the draw is a fraction ``z``, ``I = z ⊙ (x - baseline)`` and the dot
        product ``zᵀ Φ`` (Captum's ``multiply_by_inputs``, without its division).
    normalize : bool
        Scale ``Φ`` by the optimal ``β = E[IᵀΦ Δf] / E[(IᵀΦ)²]`` first (Yeh et al. 2019, §3).
    rng : Generator or int; required unless ``perturbation`` is an array.
    batch_size : int
        Perturbed images per forward pass (bounds memory).

    Returns
    -------
    ndarray ``(N,)``, non-negative.
    """
    P.check_forward(model)
    x = check_image_batch(x)
    x_dtype = x.dtype
    x = np.asarray(x, dtype=np.float64)
    phi = as_float_array(attribution, "attribution")
    if phi.shape != x.shape:
        raise ValueError(f"attribution must have x's shape {x.shape}, got {phi.shape}")
    if kind not in ("local", "global"):
        raise ValueError(f"kind must be 'local' or 'global', got {kind!r}")
    base = np.broadcast_to(as_float_array(baseline, "baseline"), x.shape)
    if isinstance(perturbation, str):
        if rng is None:
            raise TypeError("infidelity draws random perturbations: pass rng (a Generator or an int seed)")
        draws = _perturbations(perturbation, x, int(n_samples), sigma, int(square), as_rng(rng))
        if perturbation == "square" and kind == "local":
            draws = draws * (x - base)
    else:
        draws = as_float_array(perturbation, "perturbation")
        if draws.ndim != x.ndim + 1 or draws.shape[1:] != x.shape:
            raise ValueError(f"perturbation array must have shape (S, *x.shape) = (S, {x.shape}), got {draws.shape}")
    I = draws * (x - base) if kind == "global" else draws
    s, n = I.shape[:2]
    fx = _targets.selected(target, np.asarray(model.forward(x), dtype=np.float64))
    delta = np.empty((s, n))
    per_chunk = max(1, int(batch_size) // n)
    for lo in range(0, s, per_chunk):
        chunk = I[lo : lo + per_chunk]
        reps = target if callable(target) or np.ndim(target) == 0 else np.tile(np.asarray(target), len(chunk))
        xs = (x[None] - chunk).reshape((-1,) + x.shape[1:]).astype(x_dtype, copy=False)
        f_minus = _targets.selected(reps, np.asarray(model.forward(xs), dtype=np.float64))
        delta[lo : lo + len(chunk)] = fx[None] - f_minus.reshape(len(chunk), n)
    dot = (draws.reshape(s, n, -1) * np.asarray(phi, dtype=np.float64).reshape(1, n, -1)).sum(axis=2)  # (S, N)
    if normalize:
        den = (dot * dot).mean(axis=0)
        beta = np.divide((dot * delta).mean(axis=0), den, out=np.ones_like(den), where=den > 0)
        dot = dot * beta
    return ((dot - delta) ** 2).mean(axis=0)


def max_sensitivity(method, model, x, target, radius=0.02, n_samples=16, rng=None, perturbations=None,
                    normalize=False, method_kwargs=None, batch_size=64):
    """Max-sensitivity (Yeh et al. 2019): ``max_{||y - x||∞ <= r} ||Φ(f, y) - Φ(f, x)||₂`` per image.

    Estimated by Monte Carlo over ``n_samples`` points drawn uniformly in the L∞ ball of
    radius ``radius`` (as Captum's ``sensitivity_max``), or over explicit ``perturbations``
    ``(S, *x.shape)``.  ``normalize`` divides by ``||Φ(f, x)||₂`` (refused if that is 0).
    The perturbed images go through ``method`` in chunks of about ``batch_size`` images.
    See also :func:`xattr.evaluation.stability.avg_sensitivity`.

    Parameters
    ----------
    method : callable ``(model, x, target, **method_kwargs) -> (N, ...)``
        The explanation method.
    model : model protocol object (``forward``, ``vjp``)
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable on the scores ``(N, K)``
    radius : float
        ``r``, ``> 0``.
    n_samples : int
        Monte Carlo points ``S``.
    rng : numpy.random.Generator or int
        Required unless ``perturbations`` are given.
    perturbations : ndarray ``(S, N, C, H, W)``, optional
    normalize : bool
    method_kwargs : dict, optional
        Options passed to ``method``.
    batch_size : int

    Returns
    -------
    ndarray ``(N,)``
    """
    from .stability import sensitivities

    x = check_image_batch(x)
    if perturbations is None:
        if rng is None:
            raise TypeError("max_sensitivity draws random perturbations: pass rng (a Generator or an int seed)")
        if not radius > 0:
            raise ValueError(f"radius must be positive, got {radius}")
        perturbations = as_rng(rng).uniform(-radius, radius, (int(n_samples),) + x.shape)
    return sensitivities(method, model, x, target, perturbations, method_kwargs, batch_size, normalize).max(axis=0)
