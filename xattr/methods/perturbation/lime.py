"""LIME for images (Ribeiro et al. 2016): a weighted ridge surrogate over segments.

The paper's kernel ``exp(-d^2 / sigma^2)`` with cosine distance ``d`` to the all-present mask and
``sigma = 0.25`` (the ``lime`` package computes ``sqrt(exp(-d^2 / sigma^2))``, i.e. the paper's kernel with
``sigma * sqrt(2)``), masks uniform on ``{0, 1}^M`` with the first sample all-present, ridge ``alpha = 1``
with an unpenalised intercept (both as the ``lime`` package).
"""
from __future__ import annotations

import numpy as np

from ..._conventions import as_rng
from ...inputs import DEFAULT_BATCH_SIZE
from .. import _bounds
from .. import segments as _seg
from ..registry import MethodSpec, register
from ._coalitions import DEFAULT_GRID, _games, _painted, _per_image, _prepare


def lime(model, x, target, segments=None, n_samples=1000, kernel_width=0.25, rng=None, baseline=0.0, alpha=1.0,
         batch_size=DEFAULT_BATCH_SIZE, progress=False, return_weights=False, sigma=_seg.BLUR_SIGMA, locality="auto"):
    """LIME for images (Ribeiro et al. 2016): a weighted linear surrogate over segments.

    Draws ``n_samples`` binary masks ``z`` (the first all ones, the others uniform on ``{0, 1}^M``,
    as the ``lime`` package), scores each masked image ``f(z)``, weights it by
    ``pi(z) = exp(-d(z)^2 / sigma^2)`` with ``d`` the cosine distance of ``z`` to the all-ones mask
    (``1 - sqrt(|z| / M)``; 1 for the empty mask) and ``sigma = kernel_width``, and fits a weighted
    ridge regression ``f(z) ≈ b + sum_j w_j z_j`` with penalty ``alpha ||w||^2`` (the intercept
    is not penalised).  ``alpha = 0`` is weighted least squares.

    Parameters
    ----------
    model, x, target, segments, baseline : as :func:`kernel_shap` (default segments: a 4 x 4 grid)
    n_samples : int
    kernel_width : float
        ``sigma`` of the paper's kernel (see the module docstring for the ``lime`` package's variant).
    rng : numpy.random.Generator or int (required)
    alpha : float
        Ridge penalty (the ``lime`` package uses scikit-learn's ``Ridge(alpha=1)``).
    return_weights : bool
        Also return ``(weights, intercepts)``: ``(N, M)`` (a list if ``M`` differs per image) and ``(N,)``.
    locality : ``"auto"``, True or False
        Coalition values from receptive-field tables, as :func:`shapley` (``"auto"``: when that needs
        fewer model evaluations than ``n_samples``).

    Returns
    -------
    ndarray ``(N, 1, H, W)``: each pixel carries its segment's weight.
    """
    _bounds.lime_options(n_samples, kernel_width, alpha)  # before any arithmetic (xattr.methods._bounds)
    x, labels, counts, fill, value, batch_size = _prepare(model, x, target, segments, DEFAULT_GRID, baseline,
                                                          sigma, batch_size)
    _bounds.fit_size(n_samples, max(counts), "lime")
    gen = as_rng(rng)
    games, bar = _games(model, value, x, fill, labels, counts, [int(n_samples)] * len(counts), locality, batch_size,
                        progress, "lime")
    weights, intercepts = [], []
    try:
        for game, M in zip(games, counts):
            Z = gen.integers(0, 2, size=(int(n_samples), M)).astype(bool)
            Z[0] = True
            y = game(Z)
            d = 1.0 - np.sqrt(Z.sum(1) / M)  # cosine distance to the all-ones mask (empty mask: 1)
            pi = np.exp(-(d**2) / kernel_width**2)
            w, b = _weighted_ridge(Z.astype(np.float64), y, pi, float(alpha))
            weights.append(w)
            intercepts.append(b)
    finally:
        bar.close()
    out = _painted(weights, labels, x.dtype)
    return (out, (_per_image(weights), np.array(intercepts))) if return_weights else out


def _weighted_ridge(Z, y, pi, alpha):
    """``argmin_{w, b} sum_k pi_k (y_k - b - z_k . w)^2 + alpha |w|^2``: centre by the weighted means, solve."""
    mz = pi @ Z / pi.sum()
    my = pi @ y / pi.sum()
    Zc, yc = Z - mz, y - my
    A = Zc.T @ (pi[:, None] * Zc) + alpha * np.eye(Z.shape[1])
    w = np.linalg.lstsq(A, Zc.T @ (pi * yc), rcond=None)[0]
    return w, my - mz @ w


register(MethodSpec("lime", lime, "perturbation", paper="Ribeiro et al. 2016", needs=("segments", "rng"),
                    demo={"n_samples": 300}))
