"""Pairwise interactions of segments: the Shapley interaction index and SHAP interaction values.

A saliency map gives one number per pixel or segment and cannot say that two parts act together (both needed: an
AND) or stand in for each other (either suffices: an OR).  The Shapley interaction index (Grabisch & Roubens
1999) measures it from the same ``2^M`` coalition values as exact Shapley values::

    I_ij = Σ_{S ⊆ N∖{i,j}} |S|! (M − |S| − 2)! / (M − 1)! · [v(S ∪ {i,j}) − v(S ∪ {i}) − v(S ∪ {j}) + v(S)]

positive for an AND, negative for an OR.  SHAP interaction values (Lundberg et al. 2020, "From local explanations
to global understanding", eq. 5–6) split it in half over the pair, ``Φ_ij = I_ij / 2`` for ``i ≠ j``, and keep the
main effect on the diagonal, ``Φ_ii = φ_i − Σ_{j≠i} Φ_ij``, so that each row sums to the Shapley value ``φ_i`` and
the whole matrix to ``v(N) − v(∅)``.  Exact, by enumeration (``M ≤ MAX_EXACT_SHAPLEY_SEGMENTS``).
"""
from __future__ import annotations

from math import factorial

import numpy as np

from ..inputs import DEFAULT_BATCH_SIZE
from . import segments as _seg
from .perturbation._coalitions import MAX_EXACT_SHAPLEY_SEGMENTS, _all_coalitions, _games, _per_image, _prepare
from .perturbation.shapley import DEFAULT_GRID_EXACT, _popcount, shapley_from_values


def interaction_index_from_values(v):
    """The Shapley interaction index ``I`` ``(M, M)`` (zero diagonal) from the values of all ``2^M`` coalitions.

    Parameters
    ----------
    v : ndarray ``(2^M,)``
        ``v[Σ_{j ∈ S} 2^j]``: the value of coalition ``S`` (as :func:`~xattr.methods.perturbation.shapley_from_values`).

    Returns
    -------
    ndarray ``(M, M)`` float64, symmetric: ``I_ij`` of Grabisch & Roubens (1999) for ``i ≠ j``.
    """
    v = np.asarray(v, dtype=np.float64)
    M = int(np.log2(len(v))) if len(v) else -1
    if M < 2 or len(v) != 2**M:
        raise ValueError(f"v must hold the values of all 2^M coalitions with M >= 2 players, got length {len(v)}")
    sizes = _popcount(M)
    weight = np.array([factorial(s) * factorial(M - s - 2) / factorial(M - 1) for s in range(M - 1)])
    idx = np.arange(2**M, dtype=np.int64)
    out = np.zeros((M, M))
    for i in range(M):  # M(M-1)/2 vectorised sums over the 2^(M-2) coalitions without i and j
        for j in range(i + 1, M):
            S = idx[(((idx >> i) & 1) == 0) & (((idx >> j) & 1) == 0)]
            d = v[S | (1 << i) | (1 << j)] - v[S | (1 << i)] - v[S | (1 << j)] + v[S]
            out[i, j] = out[j, i] = np.dot(weight[sizes[S]], d)
    return out


def shap_interaction_from_values(v):
    """SHAP interaction values ``Φ`` ``(M, M)``: ``I_ij / 2`` off the diagonal, ``φ_i − Σ_{j≠i} Φ_ij`` on it
    (Lundberg et al. 2020); rows sum to the Shapley values, the matrix to ``v(N) − v(∅)``.

    Parameters
    ----------
    v : ndarray ``(2^M,)``

    Returns
    -------
    ndarray ``(M, M)`` float64, symmetric.
    """
    half = interaction_index_from_values(v) / 2
    phi = shapley_from_values(v)
    np.fill_diagonal(half, phi - half.sum(axis=1))
    return half


def shapley_interactions(model, x, target, segments=None, baseline=0.0, kind="shap", batch_size=DEFAULT_BATCH_SIZE,
                         progress=False, sigma=_seg.BLUR_SIGMA, locality="auto"):
    """Pairwise interactions of segments for each image, by enumerating all ``2^M`` coalitions.

    Parameters
    ----------
    model : anything with ``forward(x) -> scores (N, K)``
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)``, callable or ``(classes, transform)``
        As :func:`~xattr.methods.perturbation.shapley` (class targets fixed at the unperturbed image).
    segments : int array ``(H, W)`` or ``(N, H, W)``, optional
        The players; default a ``DEFAULT_GRID_EXACT`` × ``DEFAULT_GRID_EXACT`` grid (9 segments).
    baseline : number, array, ``"mean"`` or ``"blur"``
        What a hidden segment becomes (:func:`xattr.methods.segments.fill_image`).
    kind : ``"shap"`` or ``"index"``
        SHAP interaction values ``Φ`` (Lundberg et al. 2020) or the Shapley interaction index ``I`` (Grabisch &
        Roubens 1999; zero diagonal).
    batch_size, progress, sigma, locality
        As :func:`~xattr.methods.perturbation.shapley`.

    Returns
    -------
    ndarray ``(N, M, M)`` float64 (a list of ``(M_n, M_n)`` arrays if the segment count differs per image).
    """
    if kind not in ("shap", "index"):
        raise ValueError(f"kind must be 'shap' (SHAP interaction values) or 'index' (Shapley interaction index), "
                         f"got {kind!r}")
    x, labels, counts, fill, value, batch_size = _prepare(model, x, target, segments, DEFAULT_GRID_EXACT, baseline,
                                                          sigma, batch_size)
    if max(counts) > MAX_EXACT_SHAPLEY_SEGMENTS or min(counts) < 2:
        raise ValueError(f"interactions need 2 to MAX_EXACT_SHAPLEY_SEGMENTS = {MAX_EXACT_SHAPLEY_SEGMENTS} "
                         f"segments (2^M model evaluations), got {sorted(set(counts))}")
    games, bar = _games(model, value, x, fill, labels, counts, [2**M for M in counts], locality, batch_size,
                        progress, "interactions")
    out = []
    try:
        for game, M in zip(games, counts):
            v = np.concatenate([game(_all_coalitions(M, a, min(2**M, a + 2**16))) for a in range(0, 2**M, 2**16)])
            out.append(shap_interaction_from_values(v) if kind == "shap" else interaction_index_from_values(v))
    finally:
        bar.close()
    return _per_image(out)
