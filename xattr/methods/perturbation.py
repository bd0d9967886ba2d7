"""Perturbation methods: occlusion (full or incremental), LIME, KernelSHAP and exact Shapley values.

They need only ``model.forward(x) -> scores (N, K)``, so they work on any forward-only model.
Every map is ``(N, 1, H, W)`` in ``x``'s dtype (the occluding window and the segments cover all
channels at once).

===========  ============================================  ==============================
method       what is computed                              paper
===========  ============================================  ==============================
occlusion    drop of the target when a window is hidden    Zeiler & Fergus 2014
incremental  only the patch's projective field recomputed  Nakandala et al. 2019 (SIGMOD)
lime         weighted ridge on random binary masks         Ribeiro et al. 2016
kernel_shap  Shapley-kernel weighted least squares         Lundberg & Lee 2017
shapley      exact, all 2^M coalitions                     Shapley 1953
===========  ============================================  ==============================

Coalition values for LIME, KernelSHAP and exact Shapley come either from batched model evaluations
or, for an :class:`xattr.nn.Sequential` whose local layers end in global average pooling, from
receptive-field tables (``locality="auto"``): each position of the last local activation depends
only on the segments its receptive field touches, so its contribution to the pooled vector is
tabulated over the subsets of those few segments; the values are the same up to summation order.
The same region maps (projective fields) drive incremental occlusion.

Numerical choices, named (see each function for details):

* occlusion overlaps are **averaged** (``aggregate="mean"``, as Captum); PAIR saliency **sums**
  (``aggregate="sum"``); windows at the bottom/right border are clipped to the image, as Captum.
* LIME: the paper's kernel ``exp(-d^2 / sigma^2)`` with cosine distance ``d`` to the all-present
  mask and ``sigma = 0.25`` (the ``lime`` package computes ``sqrt(exp(-d^2 / sigma^2))``, i.e. the
  paper's kernel with ``sigma * sqrt(2)``), masks uniform on ``{0, 1}^M`` with the first sample
  all-present, ridge ``alpha = 1`` with an unpenalised intercept (both as the ``lime`` package).
* KernelSHAP: ``n_samples="auto"`` is ``2 M + 2048`` (the ``shap`` package's default); when that
  reaches ``2^M - 2`` every coalition is enumerated with its exact kernel weight and the result is
  the exact Shapley values.
* Hidden segments (LIME, SHAP) and occluded windows take the ``baseline``: a number (0 by
  default), an array, ``"mean"`` (segment means; LIME/SHAP only) or ``"blur"``
  (:mod:`xattr.methods.segments`).
"""
from __future__ import annotations

import numbers
import sys
import time
from math import comb

import numpy as np

from .. import _targets
from .._conventions import as_rng, check_image_batch, pair
from ..inputs import completeness_gap
from . import _bounds
from . import incremental as _inc
from . import segments as _seg
from .registry import MethodSpec, register

#: exact Shapley values enumerate 2^M coalitions; above this many segments they are refused.
MAX_EXACT_SHAPLEY_SEGMENTS = 20
#: default grid (cells per axis) when no segmentation is given: 16 features for LIME/KernelSHAP ...
DEFAULT_GRID = 4
#: ... and 9 for exact Shapley values (2^9 = 512 model evaluations per image instead of 65,536).
DEFAULT_GRID_EXACT = 3
#: model evaluations per forward call (bounded memory); every method takes ``batch_size``.
DEFAULT_BATCH_SIZE = 64


# -- shared plumbing -----------------------------------------------------------------------------
class _Progress:
    """A progress bar: tqdm when installed, else a one-line counter on stderr; silent when disabled."""

    def __init__(self, total, enabled, desc):
        self.bar, self.total, self.done, self.enabled, self.desc = None, total, 0, bool(enabled), desc
        self._last = 0.0
        if self.enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc=desc, unit="eval")
            except ImportError:
                pass

    def update(self, n):
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled and (time.monotonic() - self._last > 0.5 or self.done >= self.total):
            self._last = time.monotonic()
            sys.stderr.write(f"\r{self.desc}: {self.done}/{self.total} evaluations")
            if self.done >= self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _check_model(model):
    if not callable(getattr(model, "forward", None)):
        raise TypeError(f"model must have forward(x) -> scores (N, K); {type(model).__name__} lacks forward()")
    return model


def _scores(model, x):
    s = np.asarray(model.forward(x))
    if s.ndim != 2 or s.shape[0] != x.shape[0]:
        raise ValueError(f"model.forward must return scores of shape (N, K) = ({x.shape[0]}, K), got {s.shape}")
    return s


def _explained(model, x, target):
    """``f(x)`` per image ``(N,)`` and ``value(scores, image) -> (B,)``, the explained quantity of a batch.

    Class targets (ints, or a callable returning ints) are fixed by the unperturbed image, so a
    perturbed image is always scored on the class being explained; a callable returning floats
    is applied to the perturbed scores.
    """
    scores = _scores(model, x)
    n, k = scores.shape
    if _targets.is_class_transform(target):  # (classes, transform): each copy scored on its image's class
        t = _targets.resolve_class_transform(target, scores)
        return t.values(scores), lambda s, image: t[image].values(s)
    if callable(target):
        v = np.asarray(target(scores))
        if v.dtype.kind not in "iu":
            if v.shape != (n,):
                raise ValueError(f"a target callable must return shape (N,) = ({n},), got {v.shape}")

            def value(s, image):
                out = np.asarray(target(s), dtype=np.float64)
                if out.shape != (s.shape[0],):
                    raise ValueError(f"a target callable must return one value per row, got shape {out.shape}")
                return _targets._finite(out, "returned")  # NaN would become every drop

            return _targets._finite(v, "returned").astype(np.float64), value
        target = v
    if isinstance(target, bool) or not isinstance(target, (numbers.Integral, np.integer, np.ndarray, list, tuple)):
        raise TypeError(f"target must be an int, an int array of shape (N,) or a callable, got {type(target).__name__}")
    cls = _targets._classes(target, n, k)
    return scores[np.arange(n), cls].astype(np.float64), lambda s, image: s[np.arange(s.shape[0]), cls[image]]


def _batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (numbers.Integral, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return int(batch_size)


def _segmentation(x, segments, grid):
    if segments is None:
        segments = _seg.grid_segments(x.shape, grid)
    return _seg.check_segments(segments, x.shape)


def _coalition_values(model, value, xn, filln, labels, masks, image, batch_size, bar):
    """Explained value for each coalition ``masks (B, M)`` (True = present), batched; float64 ``(B,)``."""
    out = np.empty(len(masks), dtype=np.float64)
    for a in range(0, len(masks), batch_size):
        b = min(len(masks), a + batch_size)
        imgs = _seg.compose(xn, filln, labels, masks[a:b])
        out[a:b] = value(_scores(model, imgs), np.full(b - a, image))
        bar.update(b - a)
    return out


def _painted(weights, labels, dtype):
    """Per-segment values painted onto their pixels: ``(N, 1, H, W)``."""
    return np.stack([w[lab] for w, lab in zip(weights, labels)])[:, None].astype(dtype)


def _per_image(arrays):
    """One ``(N, M)`` array when every image has M segments, else a list of ``(M_n,)`` arrays."""
    return np.stack(arrays) if len({len(a) for a in arrays}) == 1 else list(arrays)


# -- occlusion -----------------------------------------------------------------------------------
def _window_starts(size, k, s):
    """Window starts along an axis: ``0, s, 2s, ...`` until a window reaches the border (clipped there)."""
    count = -(-(size - k) // s) + 1  # ceil((size - k) / s) + 1: every pixel covered (Captum's count) ...
    starts = np.arange(count) * s
    return starts[starts < size]  # ... except gaps when stride > window; a start past the border is dropped


def occlusion(model, x, target, window=8, stride=4, baseline=0.0, aggregate="mean", batch_size=DEFAULT_BATCH_SIZE,
              incremental="auto", progress=False, sigma=_seg.BLUR_SIGMA, fill=None, invert=False, rng=None):
    """Occlusion sensitivity (Zeiler & Fergus 2014): drop of the target when a window is hidden.

    A ``window`` of the ``baseline`` slides over the image with ``stride``; for each position the
    drop ``d = f(x) - f(x with the window hidden)`` is credited to every pixel under the window.
    Windows start at ``0, s, 2s, ...``; the last one along each axis is clipped at the border so
    that every pixel is covered (``ceil((H - k) / s) + 1`` positions, as Captum).  With a stride larger
    than the window, pixels in the gaps are never hidden and get 0.

    Parameters
    ----------
    model : anything with ``forward(x) -> (N, K)``
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable on the scores
    window, stride : int or (int, int)
        Spatial window (all channels are hidden together) and its step; ``1 <= window <= (H, W)``.
    baseline : number, array broadcastable to ``x``, or ``"blur"``
        What hidden pixels become (``"blur"``: Gaussian blur of width ``sigma`` pixels).
    aggregate : ``"mean"`` or ``"sum"``
        How overlapping windows combine at a pixel: the mean of the drops of the windows covering it
        (default, as Captum) or their sum (as PAIR saliency).
    batch_size : int
        Occluded images per forward call.
    incremental : ``"auto"``, True or False
        Recompute only the patch's projective field layer by layer (Nakandala et al. 2019); needs an
        :class:`xattr.nn.Sequential` whose first layers have region maps.  ``"auto"`` uses it when
        possible and the estimated work is less than half of full recomputation.  The result equals
        full recomputation up to round-off.
    progress : bool
        Show a progress bar (tqdm if installed).
    fill : None, number, array, ``"blur"``, ``"image_mean"``, ``"shuffle"`` or ``"swap"``
        What hidden pixels become, with the seed's alternatives: values taken from the image
        (its mean colour, its own pixels shuffled), feature swap (the window of another image);
        :func:`xattr.methods.occlusion_fill.fill_image`.  ``None``: ``baseline``.  Give one of the two.
    invert : bool
        Keep only the window and hide the rest: the credit of a window is then
        ``f(x on the window, fill elsewhere) - f(fill)`` (what the window alone adds), instead of
        ``f(x) - f(x with the window hidden)`` (what is lost without it).  The incremental path
        applies to it too: the window of ``x`` is pasted into the fill image.
    rng : numpy.random.Generator or int
        For ``fill="shuffle"``.

    Returns
    -------
    ndarray ``(N, 1, H, W)``, ``x.dtype``.
    """
    _check_model(model)
    x = check_image_batch(x)
    N, C, H, W = x.shape
    kh, kw = pair(window, "window")
    sh, sw = pair(stride, "stride")
    if min(kh, kw) < 1 or kh > H or kw > W:
        raise ValueError(f"window must be between 1 and the image size {(H, W)} per axis, got {(kh, kw)}")
    if min(sh, sw) < 1:
        raise ValueError(f"stride must be at least 1 per axis, got {(sh, sw)}")
    if aggregate not in ("mean", "sum"):
        raise ValueError(f"aggregate must be 'mean' (Captum) or 'sum' (PAIR saliency), got {aggregate!r}")
    if incremental not in ("auto", True, False):
        raise ValueError(f"incremental must be 'auto', True or False, got {incremental!r}")
    batch_size = _batch_size(batch_size)
    if isinstance(baseline, str) and baseline != "blur":
        raise ValueError(f"occlusion baseline must be a number, an array or 'blur', got {baseline!r}")
    if invert not in (True, False):
        raise ValueError(f"invert must be True or False, got {invert!r}")
    if fill is None:
        fill = _seg.fill_image(x, baseline, sigma=sigma)
    elif not (isinstance(baseline, numbers.Real) and baseline == 0.0):
        raise ValueError("give the occluding values once: fill= (any fill) or baseline= (number, array, 'blur')")
    else:
        from .occlusion_fill import fill_image

        fill = fill_image(x, fill, rng=rng, sigma=sigma)
    fx, value = _explained(model, x, target)

    rows, cols = _window_starts(H, kh, sh), _window_starts(W, kw, sw)
    use_inc = _inc.use_incremental(model, x, (kh, kw), incremental)
    if invert:  # the roles swap: the fill is the image, the window shows x (incremental inference applies)
        base = np.ascontiguousarray(fill)
        f_fill = np.asarray(value(_scores(model, base), np.arange(N)), dtype=np.float64)
        drops = occluded_scores(model, base, x, value, rows, cols, (kh, kw), batch_size, use_inc, progress
                                ) - f_fill[:, None, None]
    else:
        drops = fx[:, None, None] - occluded_scores(
            model, x, fill, value, rows, cols, (kh, kw), batch_size, use_inc, progress
        )  # (N, nr, nc)

    # Which window covers which pixel: indicator matrices, so the map is R^T D C (no loop over windows).
    R = (rows[:, None] <= np.arange(H)) & (np.arange(H) < rows[:, None] + kh)
    Cm = (cols[:, None] <= np.arange(W)) & (np.arange(W) < cols[:, None] + kw)
    R, Cm = R.astype(np.float64), Cm.astype(np.float64)
    total = np.einsum("ih,nij,jw->nhw", R, drops, Cm, optimize=True)
    if aggregate == "mean":  # pixels no window covers (stride > window) get 0
        count = np.outer(R.sum(0), Cm.sum(0))
        total = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return total[:, None].astype(x.dtype)


def occluded_scores(model, x, fill, value, rows, cols, window, batch_size=DEFAULT_BATCH_SIZE, incremental=False,
                    progress=False):
    """Explained value with each window hidden: ``(N, len(rows), len(cols))`` float64.

    ``value(scores, image)`` gives the explained quantity of a batch (see :func:`occlusion`);
    ``incremental`` chooses between full recomputation and incremental inference.
    """
    N, _, H, W = x.shape
    nr, nc = len(rows), len(cols)
    image, i, j = (a.ravel() for a in np.meshgrid(np.arange(N), np.arange(nr), np.arange(nc), indexing="ij"))
    out = np.empty(N * nr * nc, dtype=np.float64)
    bar = _Progress(len(out), progress, "occlusion")
    runner = _inc.IncrementalRunner(model, x, fill, window) if incremental else None
    try:
        for a in range(0, len(out), batch_size):
            sl = slice(a, min(len(out), a + batch_size))
            r0, c0 = rows[i[sl]], cols[j[sl]]
            if runner is not None:
                scores = runner.scores(image[sl], r0, c0)
            else:
                inside = (
                    ((r0[:, None] <= np.arange(H)) & (np.arange(H) < r0[:, None] + window[0]))[:, :, None]
                    & ((c0[:, None] <= np.arange(W)) & (np.arange(W) < c0[:, None] + window[1]))[:, None, :]
                )
                scores = _scores(model, np.where(inside[:, None], fill[image[sl]], x[image[sl]]))
            out[sl] = value(scores, image[sl])
            bar.update(sl.stop - sl.start)
    finally:
        bar.close()
    return out.reshape(N, nr, nc)


# -- Shapley values ------------------------------------------------------------------------------
def _all_coalitions(M, start, stop):
    """Coalitions ``start .. stop-1`` in binary order as bool masks ``(stop-start, M)`` (bit j = segment j)."""
    codes = np.arange(start, stop, dtype=np.int64)
    return ((codes[:, None] >> np.arange(M)) & 1).astype(bool)


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


# Exact Shapley values through receptive fields: for a Sequential whose local layers (conv, pooling,
# pointwise) end in global average pooling, each position of the last local activation depends only
# on the few segments its receptive field touches, and the pooled vector is a sum over positions.
# Each position's contribution is tabulated for the 2^k subsets of its k segments only; the pooled
# vector of every coalition is then a sum of table look-ups, and the layers after the pooling run on it.
def _segment_sets(lab, M, fields):
    """Which segments each position's receptive field touches: bool ``(M, Ho, Wo)`` (2-D prefix sums)."""
    (rlo, rhi), (clo, chi) = fields
    onehot = (lab[None] == np.arange(M)[:, None, None]).astype(np.int64)
    cs = np.zeros((M, lab.shape[0] + 1, lab.shape[1] + 1), dtype=np.int64)
    cs[:, 1:, 1:] = onehot.cumsum(1).cumsum(2)
    r0, r1 = rlo[:, None], rhi[:, None] + 1
    c0, c1 = clo[None, :], chi[None, :] + 1
    return (cs[:, r1, c1] - cs[:, r0, c1] - cs[:, r1, c0] + cs[:, r0, c0]) > 0


class _LocalPlan:
    """Positions of the last local activation grouped by the set of segments their receptive fields touch."""

    def __init__(self, split, groups, gid):
        # split: the GAP node; groups: bool (G, M); gid: (positions,)
        self.split, self.groups, self.gid = split, groups, gid
        # prefix evaluations needed for the tables, in floats: 2^k overflows int64 for k >= 63 (per-pixel segments)
        self.cost = float(np.exp2(groups.sum(1).astype(np.float64)).sum())


def _local_plan(model, x_shape, lab, M):
    """A :class:`_LocalPlan`, or None when the model is not local layers followed by global average pooling."""
    split = _inc.gap_split(model)
    if split is None:
        return None
    fields, _ = _inc.receptive_fields(model, model.inputs_of(split)[0], np.zeros((1,) + tuple(x_shape[1:])))
    touched = _segment_sets(lab, M, fields).reshape(M, -1).T  # (positions, M)
    groups, gid = np.unique(touched, axis=0, return_inverse=True)
    return _LocalPlan(split, groups, gid.ravel())


class _LocalGame:
    """Values of any coalitions from per-group tables (exact up to summation order).

    For each group of positions (segments set ``R``), the summed prefix activation over its positions
    is tabulated for the ``2^|R|`` subsets of ``R`` (``plan.cost`` prefix evaluations in all).  The
    pooled vector of a coalition ``S`` is then ``sum_g table_g[S ∩ R_g] / P`` and the layers after the
    pooling run on it.
    """

    def __init__(self, model, value, xn, filln, lab, M, image, plan, batch_size, bar):
        self.value, self.image, self.dtype = value, image, xn.dtype
        self.model, self.split = model, plan.split
        self._build = (model, xn, filln, lab, M, plan, batch_size, bar)
        self.tables = None

    def _tabulate(self, model, xn, filln, lab, M, plan, batch_size, bar):
        G = (plan.gid[None, :] == np.arange(len(plan.groups))[:, None]).astype(np.float64)  # (groups, positions)
        self.P = G.shape[1]
        self.tables, self.members = [], []
        for g, touched in enumerate(plan.groups):  # per group of positions (a handful), never per pixel
            members = np.flatnonzero(touched)
            k = len(members)
            sub = ((np.arange(2**k)[:, None] >> np.arange(k)) & 1).astype(bool)  # subsets, by compressed code
            present = np.zeros((2**k, M), dtype=bool)
            present[:, members] = sub
            rows = []
            for a in range(0, 2**k, batch_size):
                h = _seg.compose(xn, filln, lab, present[a:a + batch_size])
                h = model.trace(h, stop=model.inputs_of(plan.split)[0]).output
                rows.append(h.reshape(h.shape[0], h.shape[1], -1).astype(np.float64) @ G[g])
                bar.update(len(h))
            self.tables.append(np.concatenate(rows))  # (2^k, C)
            self.members.append(members)

    def values(self, masks):
        """Explained values ``(B,)`` float64 of coalitions ``masks`` (bool ``(B, M)``, True = present)."""
        if self.tables is None:
            self._tabulate(*self._build)
        pooled = np.zeros((len(masks), self.tables[0].shape[1]))
        for table, members in zip(self.tables, self.members):
            code = masks[:, members].astype(np.int64) @ (np.int64(1) << np.arange(len(members)))
            pooled += table[code]
        out = (pooled / self.P).astype(self.dtype)
        if self.split != self.model.output:  # the nodes after the pooling, on the pooled vectors
            out = self.model.trace(out, start=self.split).output
        return np.asarray(self.value(_scores_of(out, len(masks)), np.full(len(masks), self.image)), dtype=np.float64)


def _games(model, value, x, fill, labels, counts, needed, locality, batch_size, progress, desc):
    """Per image, a function ``masks (B, M) -> values (B,)``: tables (locality) or batched model evaluations;
    and the progress bar counting the model evaluations both will make.

    ``needed[n]`` is how many coalitions image ``n`` will ask for; ``"auto"`` builds tables only when
    they cost fewer evaluations than that.
    """
    if locality not in ("auto", True, False):
        raise ValueError(f"locality must be 'auto', True or False, got {locality!r}")
    plans = []
    for lab, M, k in zip(labels, counts, needed):
        plan = _local_plan(model, x.shape, lab, M) if locality is not False else None
        if locality is True and plan is None:
            raise ValueError(
                "locality=True needs a layered model (xattr.nn.Graph or Sequential) whose local layers (Conv2D, "
                "pooling, ReLU, BatchNorm2D, Dropout, merges) end in a GlobalAvgPool2D that every path passes "
                f"through; got {type(model).__name__}"
            )
        if locality is True and plan.cost > 2.0**MAX_EXACT_SHAPLEY_SEGMENTS * len(plan.groups):
            raise ValueError(
                f"locality=True would tabulate 2^{int(plan.groups.sum(1).max())} subsets (segments under one receptive "
                f"field), above 2^MAX_EXACT_SHAPLEY_SEGMENTS = 2^{MAX_EXACT_SHAPLEY_SEGMENTS}; use locality='auto'"
            )
        plans.append(plan if plan is not None and (locality is True or plan.cost < k) else None)
    bar = _Progress(sum(k if p is None else p.cost for p, k in zip(plans, needed)), progress, desc)
    games = []
    for n, (lab, M, plan) in enumerate(zip(labels, counts, plans)):
        if plan is not None:
            games.append(_LocalGame(model, value, x[n], fill[n], lab, M, n, plan, batch_size, bar).values)
        else:
            games.append(_evaluator(model, value, x[n], fill[n], lab, n, batch_size, bar))
    return games, bar


def _evaluator(model, value, xn, filln, lab, image, batch_size, bar):
    def values(masks):
        return _coalition_values(model, value, xn, filln, lab, masks, image, batch_size, bar)
    return values


def _scores_of(s, n):
    if s.ndim != 2 or s.shape[0] != n:
        raise ValueError(f"model must return scores of shape (N, K) = ({n}, K), got {s.shape}")
    return s


def _prepare(model, x, target, segments, grid, baseline, sigma, batch_size):
    _check_model(model)
    x = check_image_batch(x)
    labels, counts = _segmentation(x, segments, grid)
    fill = _seg.fill_image(x, baseline, labels=labels, sigma=sigma)
    fx, value = _explained(model, x, target)
    return x, labels, counts, fill, value, _batch_size(batch_size)


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
        for n, (game, M) in enumerate(zip(games, counts)):  # per image: its own 2^M coalitions
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
        for n, (game, M, (how, k)) in enumerate(zip(games, counts, plans)):
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
    """``2 n_pairs`` coalitions ``(2 n_pairs, M)``: ``n_pairs`` drawn from the Shapley kernel, then their complements."""
    s = np.arange(1, M)
    p = 1.0 / (s * (M - s))
    size = gen.choice(s, size=n_pairs, p=p / p.sum())
    # a uniform subset of each size: the `size` smallest of M uniform keys (vectorised over samples)
    keys = gen.random((n_pairs, M))
    rank = keys.argsort(axis=1).argsort(axis=1)
    Z = rank < size[:, None]
    return np.concatenate([Z, ~Z])


# -- LIME ----------------------------------------------------------------------------------------
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


# -- the registry -------------------------------------------------------------------------------------
register(MethodSpec("occlusion", occlusion, "perturbation", paper="Zeiler & Fergus 2014",
                    demo={"window": 4, "stride": 2, "baseline": 0.0}))
register(MethodSpec("lime", lime, "perturbation", paper="Ribeiro et al. 2016", needs=("segments", "rng"),
                    demo={"n_samples": 300}))
register(MethodSpec("kernel_shap", kernel_shap, "perturbation", paper="Lundberg & Lee 2017", needs=("segments", "rng"),
                    demo={"n_samples": 300}))
register(MethodSpec("shapley", shapley, "perturbation", paper="Shapley 1953", needs=("segments",)))
