"""Faithfulness as agreement between attributions and the effect of removing features.

* :func:`faithfulness_correlation` (Bhatt et al. 2020): random subsets, Pearson correlation.
* :func:`faithfulness_estimate` (Alvarez-Melis & Jaakkola 2018): one feature (group) at a time.
* :func:`sensitivity_n` (Ancona et al. 2018): random subsets of each size ``n``.
* :func:`monotonicity` (Arya et al. 2019): the score grows as features are added back in
  increasing order of attribution.
* :func:`monotonicity_correlation` (Nguyen & Martínez 2020): Spearman correlation between
  ``|attribution|`` and the expected squared change of the score when a feature is resampled.

Features, baselines, scores and chunking as in :mod:`xattr.evaluation.faithfulness`: a map of
``x``'s shape ranks elements, a map ``(N, [1,] H, W)`` ranks pixels; a removed feature takes the
baseline's value; scores are read from ``model.forward`` in chunks of ``batch_size`` images.
"""
from __future__ import annotations

import numpy as np

from .._conventions import as_rng
from . import _perturb as P

__all__ = ["faithfulness_correlation", "faithfulness_estimate", "sensitivity_n", "monotonicity",
           "monotonicity_correlation"]


def _subset_masks(idx, F):
    """Index arrays ``(S, N, k)`` -> boolean masks ``(S, N, F)``."""
    m = np.zeros(idx.shape[:2] + (F,), dtype=bool)
    np.put_along_axis(m, idx, True, axis=2)
    return m


def _check_subsets(subsets, n, F):
    idx = np.asarray(subsets)
    if idx.dtype.kind not in "iu" or idx.ndim != 3 or idx.shape[1] != n or idx.shape[0] < 2:
        raise ValueError(f"subsets must be an int array (S, N, k) = (S, {n}, k) of feature indices with S >= 2, "
                         f"got {idx.dtype} {idx.shape}")
    if idx.min() < 0 or idx.max() >= F:
        raise ValueError(f"subsets hold feature indices out of range 0..{F - 1}")
    if np.any(np.diff(np.sort(idx, axis=2), axis=2) == 0):
        raise ValueError("subsets must not repeat a feature within a subset")
    return idx.astype(np.intp)


def _draw_subsets(gen, n_subsets, n, F, k):
    """``(S, N, k)`` subsets of ``k`` distinct features, drawn uniformly, one image after another per subset."""
    if not 1 <= k < F:
        raise ValueError(f"subset size must be between 1 and F - 1 = {F - 1}, got {k}")
    if int(n_subsets) < 2:
        raise ValueError(f"n_subsets must be at least 2 (a correlation needs two points), got {n_subsets}")
    return np.stack([np.argsort(gen.random((n, F)), axis=1)[:, :k] for _ in range(int(n_subsets))])


def _removal_scores(model, x, target, feats, masks_of, n_steps, base, score, batch_size, progress, desc):
    """``(f(x) (N,), f(x with masks_of(lo, hi) (S', N, F) features replaced) (S, N))``."""
    scorer = P.Scorer(model, x, target, score)

    def make(lo, hi):
        return np.where(feats.expand(masks_of(lo, hi)), base[None], x[None])

    bar = P.progress_bar(n_steps * x.shape[0], progress, desc)
    try:
        return scorer.original, P.score_stack(scorer, make, n_steps, x.shape[0], batch_size, bar)
    finally:
        bar.close()


def _subset_correlation(model, x, target, feats, idx, base, score, batch_size, progress, desc):
    F = feats.count
    f0, fs = _removal_scores(model, x, target, feats, lambda lo, hi: _subset_masks(idx[lo:hi], F), len(idx),
                             base, score, batch_size, progress, desc)
    sums = np.take_along_axis(np.broadcast_to(feats.values[None], (len(idx),) + feats.values.shape), idx,
                              axis=2).sum(axis=2)  # (S, N)
    return P.pearson(sums.T, (f0[None] - fs).T)


def faithfulness_correlation(model, x, target, attribution, subset_size=None, n_subsets=100, baseline=0.0, rng=None,
                             subsets=None, score="logit", batch_size=None, progress=False):
    """Faithfulness correlation (Bhatt et al. 2020, "Evaluating and aggregating feature-based model
    explanations", §3.2).

    ``μ_F = corr_{S ⊂ {1..d}, |S| = k} ( Σ_{i∈S} a_i , f(x) - f(x_{[x_S = x̄_S]}) )``: the Pearson
    correlation, over random subsets ``S`` of ``k`` features, between the attribution they hold
    and the drop of the score when they are set to the baseline ``x̄``.  1 for attributions that
    add up to every such drop (e.g. ``w ⊙ (x - x̄)`` on a linear model).

    Parameters
    ----------
    attribution : ``x``'s shape (features = elements) or ``(N, [1,] H, W)`` (features = pixels)
    subset_size : int, optional
        ``k``; default 10% of the features (our choice; Quantus uses 224).
    n_subsets : int
        Subsets per image, each drawn uniformly (``k`` distinct features).
    baseline : see :func:`xattr.evaluation.deletion_curve`
    rng : Generator or int; required unless ``subsets`` is given.
    subsets : int array ``(S, N, k)``, optional
        Explicit feature indices (each row ``k`` distinct features).
    score : ``"logit"`` (default), ``"probability"``

    Returns
    -------
    ndarray ``(N,)`` in ``[-1, 1]``
    """
    x = P.images(x)
    feats = P.Features(attribution, x, allow_constant=True)
    n, F = feats.values.shape
    if subsets is None:
        if rng is None:
            raise TypeError("faithfulness_correlation draws random subsets: pass rng (a Generator or an int seed)")
        k = max(1, F // 10) if subset_size is None else int(subset_size)
        gen = as_rng(rng)
        idx = _draw_subsets(gen, n_subsets, n, F, k)
    else:
        idx = _check_subsets(subsets, n, F)
        gen = rng
    base, _ = P.replacement(baseline, x, gen)
    return _subset_correlation(model, x, target, feats, idx, base, score, batch_size, progress,
                               "faithfulness correlation")


def sensitivity_n(model, x, target, attribution, ns, n_subsets=100, baseline=0.0, rng=None, score="logit",
                  batch_size=None, progress=False):
    """Sensitivity-n (Ancona et al. 2018, "Towards better understanding of gradient-based attribution
    methods for deep neural networks", §4).

    An attribution satisfies sensitivity-n when ``Σ_{i∈S} R_i = f(x) - f(x_{[x_S = 0]})`` for every
    subset ``S`` of ``n`` features; the paper measures it by the Pearson correlation of the two
    sides over ``n_subsets`` random subsets of each size ``n`` (with a zero baseline).

    Parameters
    ----------
    ns : sequence of int
        Subset sizes ``n`` (each between 1 and F - 1).
    baseline : default 0, the paper's.
    rng : Generator or int (required)

    Returns
    -------
    ndarray ``(N, len(ns))``
    """
    if rng is None:
        raise TypeError("sensitivity_n draws random subsets: pass rng (a Generator or an int seed)")
    x = P.images(x)
    feats = P.Features(attribution, x, allow_constant=True)
    n, F = feats.values.shape
    ns = [int(v) for v in np.atleast_1d(ns)]
    if not ns:
        raise ValueError("ns must hold at least one subset size")
    gen = as_rng(rng)
    base, _ = P.replacement(baseline, x, gen)
    out = np.empty((n, len(ns)))
    for j, size in enumerate(ns):  # one batch of subsets per size n
        idx = _draw_subsets(gen, n_subsets, n, F, size)
        out[:, j] = _subset_correlation(model, x, target, feats, idx, base, score, batch_size, progress,
                                        f"sensitivity-{size}")
    return out


def faithfulness_estimate(model, x, target, attribution, baseline=0.0, features_per_step=1, score="logit",
                          batch_size=None, progress=False):
    """Faithfulness estimate (Alvarez-Melis & Jaakkola 2018, "Towards robust interpretability with
    self-explaining neural networks", §3).

    The Pearson correlation, over features ``i``, between the attribution ``a_i`` and the drop
    ``f(x) - f(x_{[x_i = x̄_i]})`` when feature ``i`` alone is set to the baseline.  Features
    may be grouped: groups of ``features_per_step`` consecutive features in decreasing
    attribution order (ties raster) are removed one group at a time, each from ``x``, and the
    group's attribution is the sum over it (as Quantus does).

    Parameters
    ----------
    model : model protocol object (``forward``, ``vjp``)
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable on the scores ``(N, K)``
    attribution : ndarray, ``x.shape`` (or one value per pixel ``(N, 1, H, W)``)
    baseline : float or ndarray
        The value a removed feature is set to (``x̄``).
    features_per_step : int
        Features removed together (``1 <= features_per_step <= F // 2``).
    score : ``"logit"`` or ``"probability"``
        The explained output ``f``.
    batch_size : int, optional
    progress : bool
        Show a progress bar.

    Returns
    -------
    ndarray ``(N,)`` in ``[-1, 1]``
    """
    x = P.images(x)
    feats = P.Features(attribution, x)
    n, F = feats.values.shape
    step = int(features_per_step)
    if not 1 <= step <= F // 2:
        raise ValueError(f"features_per_step must be between 1 and F // 2 = {F // 2} (at least two groups), "
                         f"got {features_per_step}")
    group = feats.ranks("morf") // step  # (N, F): group of each feature
    G = -(-F // step)
    base, _ = P.replacement(baseline, x)
    f0, fs = _removal_scores(model, x, target, feats,
                             lambda lo, hi: group[None] == np.arange(lo, hi)[:, None, None], G, base, score,
                             batch_size, progress, "faithfulness estimate")
    sums = P.group_sums(group, feats.values, G)  # (N, G)
    return P.pearson(sums, (f0[None] - fs).T)


def monotonicity(model, x, target, attribution, baseline=0.0, features_per_step=1, score="probability",
                 batch_size=None, return_curve=False, progress=False):
    """Monotonicity (Arya et al. 2019, "One explanation does not fit all", AIX360).

    Start from the baseline and add the features of ``x`` back in *increasing* order of
    attribution, ``features_per_step`` at a time (ties raster); the explanation is monotonic
    when the target's probability never decreases from one addition to the next:
    ``all(diff(p_1, ..., p_L) >= 0)``, the baseline's own score ``p_0`` not compared (as AIX360's
    ``monotonicity_metric``, which records the probability after each addition).  The
    attribution is used as given (Quantus takes ``|a|`` by default: pass ``abs(a)`` for that).

    Parameters
    ----------
    model : model protocol object (``forward``, ``vjp``)
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable on the scores ``(N, K)``
    attribution : ndarray, ``x.shape`` (or one value per pixel ``(N, 1, H, W)``)
    baseline : float or ndarray
        The start image's value of every feature.
    features_per_step : int
        Features added together (``1 <= features_per_step <= F``).
    score : ``"probability"`` or ``"logit"``
    batch_size : int, optional
    return_curve : bool
    progress : bool
        Show a progress bar.

    Returns
    -------
    ndarray ``(N,)`` of bool, and the curve ``(N, ceil(F / features_per_step) + 1)`` (from
    the baseline to ``x``) when ``return_curve``.
    """
    x = P.images(x)
    feats = P.Features(attribution, x)
    F = feats.count
    step = int(features_per_step)
    if not 1 <= step <= F:
        raise ValueError(f"features_per_step must be between 1 and the number of features {F}, "
                         f"got {features_per_step}")
    counts = np.minimum(np.arange(0, F + step, step), F)[: -(-F // step) + 1]
    ranks = feats.ranks("lerf")
    base, _ = P.replacement(baseline, x)
    _, fs = _removal_scores(model, x, target, feats, lambda lo, hi: ranks[None] >= counts[lo:hi, None, None],
                            len(counts), base, score, batch_size, progress, "monotonicity")
    curve = fs.T
    mono = np.all(np.diff(curve[:, 1:], axis=1) >= 0, axis=1)
    return (mono, curve) if return_curve else mono


def monotonicity_correlation(model, x, target, attribution, n_samples=16, baseline="uniform", rng=None,
                             samples=None, features_per_step=1, absolute=True, score="logit",
                             batch_size=None, progress=False):
    """Monotonicity correlation (Nguyen & Martínez 2020, "On quantitative aspects of model
    interpretability", §4).

    ``ρ_S(|a_i|, e_i)`` with ``e_i = E_s[(f(x) - f(x_{[x_i = u^s_i]}))²]``: the Spearman
    correlation (average ranks for ties) between the magnitude of each feature's attribution
    and the expected squared change of the score when that feature alone is replaced by a
    sample ``u^s`` (default: uniform noise over each image's range).  Features may be grouped
    as in :func:`faithfulness_estimate` (the group's attribution is the sum of ``|a|``).

    Parameters
    ----------
    n_samples : int
        Replacement draws per feature.
    baseline : how the samples are drawn (see :func:`xattr.evaluation.deletion_curve`); drawn
        ``n_samples`` times.
    samples : ndarray ``(S, *x.shape)``, optional
        Explicit replacement images (feature ``i`` of sample ``s`` is ``samples[s, ..., i]``).
    absolute : bool
        Correlate ``|a|`` (the paper's) or ``a``.

    Returns
    -------
    ndarray ``(N,)`` in ``[-1, 1]``
    """
    x = P.images(x)
    feats = P.Features(np.abs(attribution) if absolute else attribution, x)
    n, F = feats.values.shape
    step = int(features_per_step)
    if not 1 <= step <= F // 2:
        raise ValueError(f"features_per_step must be between 1 and F // 2 = {F // 2} (at least two groups), "
                         f"got {features_per_step}")
    if samples is None:
        if baseline == "uniform" and rng is None:
            raise TypeError("monotonicity_correlation draws random samples: pass rng (a Generator or an int seed)")
        gen = None if rng is None else as_rng(rng)
        samples = np.stack([P.replacement(baseline, x, gen)[0] for _ in range(int(n_samples))])
    else:
        samples = P.check_perturbations(samples, x, "samples")
    S = len(samples)
    group = feats.ranks("lerf") // step
    G = -(-F // step)
    scorer = P.Scorer(model, x, target, score)

    def make(lo, hi):  # step j = (group g, sample s), g-major
        j = np.arange(lo, hi)
        g, s = j // S, j % S
        m = feats.expand(group[None] == g[:, None, None])
        return np.where(m, samples[s], x[None]).astype(x.dtype, copy=False)

    bar = P.progress_bar(G * S * n, progress, "monotonicity correlation")
    try:
        fs = P.score_stack(scorer, make, G * S, n, batch_size, bar).reshape(G, S, n)
    finally:
        bar.close()
    e = ((fs - scorer.original[None, None]) ** 2).mean(axis=1).T  # (N, G)
    sums = P.group_sums(group, feats.values, G)
    return P.spearman_rows(sums, e)
