"""Sparsity and complexity of an explanation: how concentrated its attribution is.

* :func:`sparseness`: the Gini index of ``|a|`` (Chalasani et al. 2020), 0 for a uniform map,
  ``(F - 1) / F`` for a map with a single non-zero feature.
* :func:`complexity`: the entropy of the fractional contributions ``|a_i| / Σ|a|`` (Bhatt et al.
  2020), ``log F`` for a uniform map, 0 for a single feature.
* :func:`effective_complexity`: the number of features with ``|a_i| > ε`` (Nguyen & Martínez 2020).
* :func:`discrete_entropy`: the entropy of the histogram of the attribution values (the
  complexity measure of efficient MPRT, Hedström et al. 2023).

Each takes attributions ``(N, ...)`` of any shape (one map per image, every entry a feature) and
returns one value per image.  Natural logarithms.
"""
from __future__ import annotations

import numpy as np

from ._common import flat_per_image

__all__ = ["sparseness", "complexity", "effective_complexity", "discrete_entropy"]


def _magnitudes(a, what):
    m = np.abs(flat_per_image(a, "attribution"))
    bad = np.flatnonzero(m.sum(axis=1) == 0)
    if bad.size:
        raise ValueError(f"attribution[{int(bad[0])}] is zero everywhere: {what} is undefined")
    return m


def sparseness(attribution):
    """Sparseness, the Gini index of ``|a|`` (Chalasani et al. 2020, "Concise explanations of neural
    networks using adversarial training", §4; Hurley & Rickard 2009).

    ``G = Σ_{k=1}^{F} (2k - F - 1) c_(k) / (F Σ_k c_(k))`` with ``c_(1) <= ... <= c_(F)`` the sorted
    magnitudes ``|a_i|``.  Quantus adds 1e-7 to every ``|a_i|`` first (xattr does not).

    Returns
    -------
    ndarray ``(N,)`` in ``[0, (F - 1) / F]``
    """
    c = np.sort(_magnitudes(attribution, "the Gini index"), axis=1)
    F = c.shape[1]
    k = np.arange(1, F + 1)
    return ((2 * k - F - 1) * c).sum(axis=1) / (F * c.sum(axis=1))


def complexity(attribution):
    """Complexity, the entropy of the fractional contributions (Bhatt et al. 2020, "Evaluating and
    aggregating feature-based model explanations", §3.3).

    ``H = -Σ_i P_i log P_i`` with ``P_i = |a_i| / Σ_j |a_j|`` and ``0 log 0 = 0``.  Quantus
    computes ``-Σ P_i log(P_i + 1e-12)``.

    Returns
    -------
    ndarray ``(N,)`` in ``[0, log F]``
    """
    m = _magnitudes(attribution, "the entropy of the contributions")
    p = m / m.sum(axis=1, keepdims=True)
    logp = np.log(np.where(p > 0, p, 1.0))
    return -(p * logp).sum(axis=1)


def effective_complexity(attribution, eps=1e-5):
    """Effective complexity (Nguyen & Martínez 2020, "On quantitative aspects of model
    interpretability", §4): the number of features with ``|a_i| > eps``.

    Parameters
    ----------
    attribution : ndarray ``(N, ...)``
    eps : float
        ``>= 0``.

    Returns
    -------
    ndarray ``(N,)`` of int
    """
    if not np.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a non-negative number, got {eps}")
    return (np.abs(flat_per_image(attribution, "attribution")) > eps).sum(axis=1)


def discrete_entropy(attribution, n_bins=100):
    """Entropy of the histogram of each map's values (``n_bins`` equal bins between its min and max).

    ``H = -Σ_b p_b log p_b`` with ``p_b`` the fraction of entries in bin ``b`` (``numpy.histogram``'s
    bins: the last one closed).  Hedström et al. 2023 measure an explanation's complexity this
    way in efficient MPRT.  A constant map has all its entries in one bin: ``H = 0``.

    Parameters
    ----------
    attribution : ndarray ``(N, ...)``
    n_bins : int

    Returns
    -------
    ndarray ``(N,)`` in ``[0, log n_bins]``
    """
    flat = flat_per_image(attribution, "attribution")
    n_bins = int(n_bins)
    if n_bins < 1:
        raise ValueError(f"n_bins must be a positive int, got {n_bins}")
    lo, hi = flat.min(axis=1, keepdims=True), flat.max(axis=1, keepdims=True)
    const = hi == lo
    lo, hi = np.where(const, lo - 0.5, lo), np.where(const, hi + 0.5, hi)  # numpy.histogram's range for a constant
    edges = np.arange(n_bins + 1) * ((hi - lo) / n_bins) + lo  # (N, B+1), as numpy.linspace computes them
    edges[:, -1:] = hi
    b = np.clip(((flat - lo) * (n_bins / (hi - lo))).astype(np.intp), 0, n_bins - 1)
    # the first guess can be one bin off by rounding: settle it against the edges, as numpy.histogram does
    b -= flat < np.take_along_axis(edges, b, axis=1)
    b += (flat >= np.take_along_axis(edges, b + 1, axis=1)) & (b != n_bins - 1)
    counts = np.bincount((b + n_bins * np.arange(len(b))[:, None]).ravel(),
                         minlength=n_bins * len(b)).reshape(-1, n_bins)
    p = counts / flat.shape[1]
    return -(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=1) + 0.0  # + 0.0: no -0.0 for one-bin maps
