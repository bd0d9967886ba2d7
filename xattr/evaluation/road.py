"""ROAD: RemOve And Debias (Rong et al. 2022, "A consistent and efficient evaluation strategy for
attribution methods", ICML).

Removing pixels and replacing them by a constant leaks the removal mask's shape to the model
(the model can recognise *where* pixels were removed, and so which pixels the explanation
ranked first).  ROAD replaces removed pixels by a *noisy linear imputation*: each removed pixel
takes the weighted mean of its 8 neighbours (direct neighbours weight 1/6, diagonal ones 1/12;
at the border, the neighbours that exist), a sparse linear system over all removed pixels
solved at once per channel, plus Gaussian noise of standard deviation ``noise`` (0.01 in
the paper's code).  The curve is the model's accuracy (or score) on images with a growing
fraction of pixels removed, most relevant first (MoRF) or least relevant first (LeRF), without
retraining the model.
"""
from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import spsolve

from .._conventions import as_rng
from . import _perturb as P
from ._common import maps2d
from .faithfulness import Curve, _trapz

__all__ = ["road_curve", "noisy_linear_imputation", "NEIGHBOUR_WEIGHTS", "ROAD_FRACTIONS", "ROAD_NOISE"]

#: (row offset, column offset, weight) of the imputation: Rong et al. 2022 weight the 4 direct
#: neighbours 1/6 and the 4 diagonal ones 1/12 (they sum to 1).
NEIGHBOUR_WEIGHTS = (
    (-1, -1, 1 / 12), (-1, 0, 1 / 6), (-1, 1, 1 / 12), (0, -1, 1 / 6),
    (0, 1, 1 / 6), (1, -1, 1 / 12), (1, 0, 1 / 6), (1, 1, 1 / 12),
)
#: fractions of pixels removed along the curve: 10%, 20%, ..., 90% (Rong et al. 2022, Fig. 4).
ROAD_FRACTIONS = tuple(np.round(np.arange(1, 10) / 10, 10))
#: standard deviation of the noise added to imputed values (the paper's released code: 0.01).
ROAD_NOISE = 0.01


def noisy_linear_imputation(x, removed, noise=ROAD_NOISE, rng=None):
    """Fill the ``removed`` pixels of ``x`` by ROAD's noisy linear imputation.

    Every removed pixel ``p`` satisfies ``Σ_q w_pq (u_p - v_q) = 0`` over its in-image neighbours
    ``q`` (weights :data:`NEIGHBOUR_WEIGHTS`), ``v_q`` the kept value or the unknown ``u_q``: ``u_p``
    is the weighted mean of its neighbours.  One sparse system for every image and channel
    (channels share the matrix), solved by SuperLU; then ``N(0, noise²)`` is added to every
    imputed value (drawn in the order pixel-major, channel-minor over the batch).

    Parameters
    ----------
    x : ndarray ``(N, C, H, W)``
    removed : bool ``(N, H, W)``
        True where a pixel is removed; every image must keep at least one pixel (the system is
        singular otherwise).
    noise : float
        Standard deviation of the added noise; 0 gives the plain linear imputation.
    rng : Generator or int; required when ``noise > 0``.

    Returns
    -------
    ndarray of ``x``'s shape and dtype
    """
    x = P.images(x)
    n, c, h, w = x.shape
    rem = np.asarray(removed)
    if rem.shape != (n, h, w):
        raise ValueError(f"removed must be a boolean mask (N, H, W) = ({n}, {h}, {w}), got {rem.shape}")
    rem = rem.astype(bool)
    full = np.flatnonzero(rem.reshape(n, -1).all(axis=1))
    if full.size:
        raise ValueError(f"removed[{int(full[0])}] removes every pixel: nothing is left to impute from")
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a non-negative number, got {noise}")
    if noise > 0 and rng is None:
        raise TypeError("noisy_linear_imputation draws noise: pass rng (a Generator or an int seed), or noise=0")
    out = np.array(x, dtype=np.float64)
    flat_rem = rem.ravel()
    idx = np.flatnonzero(flat_rem)  # removed pixels, flat over (N, H, W)
    M = len(idx)
    if M == 0:
        return out.astype(x.dtype, copy=False)
    var = np.full(n * h * w, -1, dtype=np.intp)
    var[idx] = np.arange(M)
    img, r, col = np.unravel_index(idx, (n, h, w))
    values = out.transpose(0, 2, 3, 1).reshape(n * h * w, c)  # pixel-major rows, one column per channel
    diag = np.zeros(M)
    rhs = np.zeros((M, c))
    rows, cols, vals = [], [], []
    for dr, dc, wt in NEIGHBOUR_WEIGHTS:  # 8 vectorised passes, one per neighbour offset
        rr, cc = r + dr, col + dc
        inside = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        q = np.where(inside, (img * h + np.clip(rr, 0, h - 1)) * w + np.clip(cc, 0, w - 1), 0)
        diag += wt * inside
        known = inside & ~flat_rem[q]
        rhs[known] += wt * values[q[known]]
        unknown = inside & flat_rem[q]
        rows.append(np.flatnonzero(unknown))
        cols.append(var[q[unknown]])
        vals.append(np.full(int(unknown.sum()), -wt))
    A = sparse.csc_matrix((np.concatenate(vals + [diag]),
                           (np.concatenate(rows + [np.arange(M)]), np.concatenate(cols + [np.arange(M)]))),
                          shape=(M, M))
    u = np.asarray(spsolve(A, rhs)).reshape(M, c)
    if noise > 0:
        u = u + noise * as_rng(rng).standard_normal((M, c))
    values[idx] = u
    out = values.reshape(n, h, w, c).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(out).astype(x.dtype, copy=False)


def road_curve(model, x, target, attribution, fractions=ROAD_FRACTIONS, order="morf", noise=ROAD_NOISE, rng=None,
         score="accuracy", batch_size=None, progress=False):
    """ROAD curve (Rong et al. 2022): the score of images with the first ``fraction`` of pixels
    (in the map's order) removed and filled by :func:`noisy_linear_imputation`.

    ``k = round(fraction · H W)`` pixels are removed, ranked by the map (MoRF: decreasing, LeRF:
    increasing; ties raster).  A faithful map makes the MoRF curve fall fast and the LeRF curve
    stay high.

    Parameters
    ----------
    model : any object with ``forward(x) -> (N, K)``
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable
    attribution : per-pixel maps ``(N, H, W)`` or ``(N, 1, H, W)`` (the imputation works on
        whole pixels: reduce channels first, e.g. ``xattr.reduce_channels``)
    fractions : sequence of floats in ``[0, 1)``
        Default 0.1, 0.2, ..., 0.9 (the paper's).
    order : ``"morf"`` or ``"lerf"``
    noise : float
        Standard deviation of the imputation noise (0.01, the paper's).
    rng : Generator or int; required when ``noise > 0``.
    score : ``"accuracy"`` (1 where the arg-max is the target class, the paper's), ``"probability"``
        or ``"logit"``
    batch_size : int
        Images imputed and scored together (one sparse solve per chunk).

    Returns
    -------
    Curve: ``fractions (P,)``, ``scores (N, P)``; the mean over images of an accuracy curve is
    the paper's accuracy curve.
    """
    x = P.images(x)
    m = maps2d(attribution, "attribution")
    n, c, h, w = x.shape
    if m.shape != (n, h, w):
        raise ValueError(f"attribution must be per-pixel maps (N, H, W) = ({n}, {h}, {w}) for ROAD's pixel "
                         f"imputation (reduce channels first), got {np.shape(attribution)}")
    fr = np.asarray(fractions, dtype=np.float64).ravel()
    if fr.size == 0 or np.any(~np.isfinite(fr)) or np.any(fr < 0) or np.any(fr >= 1):
        raise ValueError(f"fractions must be numbers in [0, 1) (a curve point keeps some pixels), got {fractions}")
    counts = np.round(fr * h * w).astype(np.intp)
    if np.any(counts >= h * w):
        raise ValueError(f"a fraction of {fr[np.argmax(counts)]} removes every one of the {h * w} pixels")
    if noise > 0 and rng is None:
        raise TypeError("road draws imputation noise: pass rng (a Generator or an int seed), or noise=0")
    gen = as_rng(rng) if rng is not None else None
    ranks = P.ranking(m.reshape(n, -1), order).reshape(n, h, w)
    scorer = P.Scorer(model, x, target, score)

    def make(lo, hi):
        removed = ranks[None] < counts[lo:hi, None, None, None]  # (S', N, H, W)
        xs = np.broadcast_to(x[None], (hi - lo,) + x.shape).reshape((-1,) + x.shape[1:])
        return noisy_linear_imputation(xs, removed.reshape(-1, h, w), noise, gen).reshape((hi - lo,) + x.shape)

    bar = P.progress_bar(len(counts) * n, progress, "ROAD")
    try:
        scores = P.score_stack(scorer, make, len(counts), n, batch_size, bar).T
    finally:
        bar.close()
    return Curve(fr, scores, _trapz(scores, fr), f"noisy linear imputation (noise={noise:g})", order)
