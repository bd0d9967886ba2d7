"""The coalition games of LIME, KernelSHAP and exact Shapley values: segments, coalition values, painted maps.

A coalition ``S`` (bool mask ``(M,)``, True = present) is valued by the explained score of the image whose
segments outside ``S`` are hidden (replaced by the fill).  The values come either from batched model
evaluations or, for a layered model whose local layers end in global average pooling, from receptive-field
tables (``locality``): each position of the last local activation depends only on the segments its receptive
field touches, so its contribution to the pooled vector is tabulated over the subsets of those few segments.
"""
from __future__ import annotations

import numpy as np

from ..._conventions import check_image_batch
from ..._progress import Progress
from ...inputs import check_batch_size, rows_per_call
from .. import incremental as _inc
from .. import segments as _seg
from ._common import _check_model, _explained, _scores

#: exact Shapley values enumerate 2^M coalitions; above this many segments they are refused.
MAX_EXACT_SHAPLEY_SEGMENTS = 20


#: default grid (cells per axis) when no segmentation is given: 16 features for LIME/KernelSHAP ...
DEFAULT_GRID = 4


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


def _all_coalitions(M, start, stop):
    """Coalitions ``start .. stop-1`` in binary order as bool masks ``(stop-start, M)`` (bit j = segment j)."""
    codes = np.arange(start, stop, dtype=np.int64)
    return ((codes[:, None] >> np.arange(M)) & 1).astype(bool)


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
    rows = [rows_per_call(batch_size, model, x[:1], k) for k in needed]  # per image: its own coalitions
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
    bar = Progress(sum(k if p is None else p.cost for p, k in zip(plans, needed)), progress, desc)
    games = []
    for n, (lab, M, plan) in enumerate(zip(labels, counts, plans)):
        if plan is not None:
            games.append(_LocalGame(model, value, x[n], fill[n], lab, M, n, plan, rows[n], bar).values)
        else:
            games.append(_evaluator(model, value, x[n], fill[n], lab, n, rows[n], bar))
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
    return x, labels, counts, fill, value, check_batch_size(batch_size)
