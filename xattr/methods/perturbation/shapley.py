"""Exact Shapley values of segments (Shapley 1953), by enumerating all ``2^M`` coalitions."""
from __future__ import annotations

from math import comb

import numpy as np

from ...inputs import DEFAULT_BATCH_SIZE, completeness_gap
from .. import segments as _seg
from ..registry import MethodSpec, register
from ._coalitions import MAX_EXACT_SHAPLEY_SEGMENTS, _all_coalitions, _games, _painted, _per_image, _prepare

#: ... and 9 for exact Shapley values (2^9 = 512 model evaluations per image instead of 65,536).
DEFAULT_GRID_EXACT = 3


def _popcount(M):
    sizes = np.zeros(1, dtype=np.int64)
    for _ in range(M):  # sizes of 0..2^M-1, doubling: 2^M work, no loop over coalitions
        sizes = np.concatenate([sizes, sizes + 1])
    return sizes


def shapley_from_values(v):
    """Exact Shapley values from the values of all ``2^M`` coalitions (Shapley 1953).

    ``phi_i = sum_{S not containing i} |S|! (M - |S| - 1)! / M! * (v(S + i) - v(S))``,
    with coalition ``S`` stored at index ``sum_{j in S} 2^j``.

    Parameters
    ----------
    v : ndarray ``(2^M,)``

    Returns
    -------
    ndarray ``(M,)`` float64
    """
    v = np.asarray(v, dtype=np.float64)
    M = int(np.log2(len(v))) if len(v) else -1
    if M < 1 or len(v) != 2**M:
        raise ValueError(f"v must hold the values of all 2^M coalitions (M >= 1), got length {len(v)}")
    sizes = _popcount(M)
    weight = np.array([1.0 / (M * comb(M - 1, s)) for s in range(M)])
    phi = np.empty(M)
    half = np.arange(2 ** (M - 1), dtype=np.int64)
    for i in range(M):  # M passes over 2^(M-1) pairs (S, S + i)
        low = half & ((1 << i) - 1)
        without = ((half >> i) << (i + 1)) | low
        phi[i] = np.dot(weight[sizes[without]], v[without | (1 << i)] - v[without])
    return phi


def shapley(model, x, target, segments=None, baseline=0.0, batch_size=DEFAULT_BATCH_SIZE, progress=False,
            return_values=False, sigma=_seg.BLUR_SIGMA, locality="auto", return_delta=False):
    """Exact Shapley values of segments (Shapley 1953), by enumerating all ``2^M`` coalitions.

    The players are the segments; the value of a coalition ``S`` is the explained score of the
    image where the segments outside ``S`` are hidden (replaced by ``baseline``).  Efficiency
    holds to round-off: ``sum(phi) = f(x) - f(everything hidden)``.  Costs ``2^M`` model
    evaluations per image (batched), so more than ``MAX_EXACT_SHAPLEY_SEGMENTS`` (20) segments are
    refused: use :func:`kernel_shap`.  (Enumerating coalitions, not the ``M!`` permutations.)

    Parameters
    ----------
    model, x, target : as :func:`occlusion`
    segments : int array ``(H, W)`` or ``(N, H, W)``, optional
        Any labels; default a ``DEFAULT_GRID_EXACT`` x ``DEFAULT_GRID_EXACT`` grid (9 segments).
    baseline : number, array, ``"mean"`` or ``"blur"``
        What a hidden segment becomes (:func:`xattr.methods.segments.fill_image`).
    return_values : bool
        Also return the per-segment values: ``(N, M)`` array (a list if ``M`` differs per image).
    return_delta : bool
        Also return the efficiency gap ``Σ_segments φ − (f(x) − f(everything hidden))`` ``(N,)`` float64
        (:func:`xattr.inputs.completeness_gap` over the players, the segments: the map itself paints each
        segment's value on all its pixels, so its pixel sum is not the players' sum).  Last in the returned tuple.
    locality : ``"auto"``, True or False
        For an :class:`xattr.nn.Sequential` whose local layers (conv, pooling, pointwise) end in global
        average pooling, each position of the last local activation sees only the segments its
        receptive field touches (from the layers' region maps): its contribution to the pooled vector
        is tabulated over the subsets of those segments only, and every coalition's pooled vector is a
        sum of look-ups (then the layers after the pooling run on it).  Same values up to summation
        order, with far fewer model evaluations when segments are large compared with the receptive
        field.  ``"auto"`` uses it when possible and it needs fewer evaluations than ``2^M``.

    Returns
    -------
    ndarray ``(N, 1, H, W)``: each pixel carries its segment's Shapley value.
    """
    x, labels, counts, fill, value, batch_size = _prepare(model, x, target, segments, DEFAULT_GRID_EXACT, baseline,
                                                          sigma, batch_size)
    if max(counts) > MAX_EXACT_SHAPLEY_SEGMENTS:
        raise ValueError(
            f"exact Shapley values need 2^M model evaluations; M = {max(counts)} segments is above the limit "
            f"MAX_EXACT_SHAPLEY_SEGMENTS = {MAX_EXACT_SHAPLEY_SEGMENTS}; use kernel_shap or fewer segments"
        )
    games, bar = _games(model, value, x, fill, labels, counts, [2**M for M in counts], locality, batch_size,
                        progress, "shapley")
    phis, gaps = [], []
    try:
        for game, M in zip(games, counts):  # per image: its own 2^M coalitions
            v = np.empty(2**M)
            for a in range(0, 2**M, 2**16):  # masks made in blocks: bounded memory for M up to 20
                b = min(2**M, a + 2**16)
                v[a:b] = game(_all_coalitions(M, a, b))
            phis.append(shapley_from_values(v))
            gaps.append(completeness_gap(phis[-1][None], v[-1], v[0])[0])  # all present minus all hidden
    finally:
        bar.close()
    out = _painted(phis, labels, x.dtype)
    extra = ((_per_image(phis),) if return_values else ()) + ((np.array(gaps),) if return_delta else ())
    return (out,) + extra if extra else out


register(MethodSpec("shapley", shapley, "perturbation", paper="Shapley 1953", needs=("segments",)))
