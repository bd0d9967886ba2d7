"""KernelSHAP (Lundberg & Lee 2017): Shapley values of segments by Shapley-kernel weighted least squares.

``n_samples="auto"`` is ``2 M + 2048`` (the ``shap`` package's default); when that reaches ``2^M - 2`` every
coalition is enumerated with its exact kernel weight and the result is the exact Shapley values.
"""
from __future__ import annotations

import numbers
from math import comb

import numpy as np

from ..._conventions import as_rng
from ...inputs import DEFAULT_BATCH_SIZE
from .. import _bounds
from .. import segments as _seg
from ..registry import MethodSpec, register
from ._coalitions import DEFAULT_GRID, _all_coalitions, _games, _painted, _per_image, _prepare


def _kernel_size_weights(M):
    """Shapley kernel per coalition size ``s = 1 .. M-1``: ``(M-1) / (C(M, s) s (M-s))`` (Lundberg & Lee 2017)."""
    s = np.arange(1, M)
    return (M - 1) / (np.array([comb(M, int(k)) for k in s], dtype=np.float64) * s * (M - s))


def _constrained_wls(Z, y, w, total):
    """``argmin sum_k w_k (y_k - z_k . phi)^2`` subject to ``sum(phi) = total`` (exact, by elimination).

    Substituting ``phi_M = total - sum_{j<M} phi_j`` leaves an unconstrained weighted least squares
    in ``phi_1 .. phi_{M-1}`` (as the ``shap`` package does); solved by ``lstsq`` on sqrt(w) rows.
    """
    Zr = Z[:, :-1] - Z[:, -1:]
    yr = y - Z[:, -1] * total
    sw = np.sqrt(w)
    head = np.linalg.lstsq(Zr * sw[:, None], yr * sw, rcond=None)[0]
    return np.append(head, total - head.sum())


def kernel_shap(model, x, target, segments=None, n_samples="auto", rng=None, baseline=0.0,
                batch_size=DEFAULT_BATCH_SIZE, progress=False, return_values=False, sigma=_seg.BLUR_SIGMA,
                locality="auto"):
    """KernelSHAP (Lundberg & Lee 2017): Shapley values of segments by Shapley-kernel weighted regression.

    Fits ``v(S) - v(empty) ≈ sum_{j in S} phi_j`` over coalitions ``S`` weighted by the Shapley
    kernel ``pi(S) = (M - 1) / (C(M, |S|) |S| (M - |S|))``; the empty and full coalitions (infinite
    weight) become the exact constraint ``sum(phi) = v(all) - v(empty)`` (efficiency).

    * ``n_samples >= 2^M - 2``: every coalition is enumerated with its kernel weight; the solution is
      then the exact Shapley values (Charnes et al. 1988; Lundberg & Lee 2017, Theorem 2) and ``rng``
      is not used.
    * otherwise ``n_samples`` coalitions are drawn from the kernel itself (size ``s`` with probability
      proportional to ``(M - 1) / (s (M - s))``, then a uniform subset of that size) as
      complementary pairs ``S``, ``not S`` (paired sampling, Covert & Lee 2021), and weighted equally.
      The estimate converges to the Shapley values as ``n_samples`` grows.

    Parameters
    ----------
    model, x, target, segments, baseline : as :func:`shapley` (default segments: a 4 x 4 grid)
    n_samples : int or ``"auto"``
        ``"auto"``: ``2 M + 2048`` (the ``shap`` package's default); odd counts are rounded up (pairs).
    rng : numpy.random.Generator or int
        Needed when sampling.
    return_values : bool
        Also return the per-segment values ``(N, M)`` (a list if ``M`` differs per image).
    locality : ``"auto"``, True or False
        Coalition values from receptive-field tables, as :func:`shapley` (``"auto"``: when that needs
        fewer model evaluations than the coalitions asked for).

    Returns
    -------
    ndarray ``(N, 1, H, W)``
    """
    if not (isinstance(n_samples, str) and n_samples == "auto"):  # before any arithmetic (xattr.methods._bounds)
        if isinstance(n_samples, str) or not isinstance(n_samples, numbers.Real):
            raise ValueError(f"n_samples must be a positive int or 'auto', got {n_samples!r}")
        _bounds.kernel_shap_options(n_samples)
    x, labels, counts, fill, value, batch_size = _prepare(model, x, target, segments, DEFAULT_GRID, baseline,
                                                          sigma, batch_size)
    plans, gen = [], None
    for M in counts:
        k = 2 * M + 2048 if n_samples == "auto" else int(n_samples)
        plans.append(("enumerate", 2**M - 2) if k >= 2**M - 2 else ("sample", k + (k % 2)))
        _bounds.fit_size(plans[-1][1], M, "kernel_shap")  # before the coalitions are drawn or enumerated
    if any(p[0] == "sample" for p in plans):
        gen = as_rng(rng)
    games, bar = _games(model, value, x, fill, labels, counts, [p[1] + 2 for p in plans], locality, batch_size,
                        progress, "kernel_shap")
    phis = []
    try:
        for game, M, (how, k) in zip(games, counts, plans):
            ends = game(np.array([[False] * M, [True] * M]))
            total = ends[1] - ends[0]
            if M == 1:
                phis.append(np.array([total]))
                continue
            if how == "enumerate":
                Z = _all_coalitions(M, 1, 2**M - 1)
                w = _kernel_size_weights(M)[Z.sum(1) - 1]
            else:
                Z = _sample_kernel_pairs(M, k // 2, gen)
                w = np.ones(len(Z))
            y = game(Z) - ends[0]
            phis.append(_constrained_wls(Z.astype(np.float64), y, w, total))
    finally:
        bar.close()
    out = _painted(phis, labels, x.dtype)
    return (out, _per_image(phis)) if return_values else out


def _sample_kernel_pairs(M, n_pairs, gen):
    """``2 n_pairs`` coalitions ``(2 n_pairs, M)``: ``n_pairs`` drawn from the Shapley kernel, then their
    complements."""
    s = np.arange(1, M)
    p = 1.0 / (s * (M - s))
    size = gen.choice(s, size=n_pairs, p=p / p.sum())
    # a uniform subset of each size: the `size` smallest of M uniform keys (vectorised over samples)
    keys = gen.random((n_pairs, M))
    rank = keys.argsort(axis=1).argsort(axis=1)
    Z = rank < size[:, None]
    return np.concatenate([Z, ~Z])


register(MethodSpec("kernel_shap", kernel_shap, "perturbation", paper="Lundberg & Lee 2017", needs=("segments", "rng"),
                    demo={"n_samples": 300}))
