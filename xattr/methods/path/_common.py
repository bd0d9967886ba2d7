"""What the gradient-path methods share: input checks, the target, gradients at path points summed
per image in chunks, and the affine-head shortcut."""
from __future__ import annotations

import numpy as np

from ... import _targets
from ..._conventions import as_float_array
from ...model import check_model, trace
from ...nn import INPUT


def _check_input(model, x):
    check_model(model, "gradient")
    x = as_float_array(x, "x")
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty batch of shape (N, ...), got shape {x.shape}")
    return x


def _resolve_target(model, x, target):
    """``(classes (N,), a float-valued callable or a ClassOf, scores at x)``: the target fixed at the input
    (:func:`xattr._targets.resolve`), so the class explained along a path or under noise is the input's."""
    scores = np.asarray(model.forward(x))
    return _targets.resolve(target, scores), scores


def _rows_target(target, img):
    return target if callable(target) else target[img]


def _scores_and_grads(model, pts, target, weight, start=None):
    """Scores ``(r, K)`` and ``weight[r] · ∂F/∂x`` at the points ``pts`` (one forward pass).

    ``start`` (a layered model only): the name of a node that every path from the input passes through;
    ``pts`` are its outputs and the gradients are with respect to them.
    """
    tape = model.trace(pts, start=start) if start is not None else trace(model, pts)
    scores = tape.output
    g = tape.pull(_targets.seed(target, scores) * weight[:, None].astype(scores.dtype))
    return scores, np.asarray(g)


def _accumulate(model, img, weight, points, target, batch_size, n_images, factor=None, start=None):
    """``acc[i] = Σ_{rows r of image i} weight[r] · factor(r) ⊙ ∂F/∂x (points[r])``, float64.

    ``points(sl)`` builds the chunk's path points, so at most ``batch_size`` rows exist at once;
    with ``start`` they are outputs of that node (see :func:`_affine_head`).
    """
    acc = None
    for a in range(0, len(img), batch_size):
        sl = slice(a, min(len(img), a + batch_size))
        pts = points(sl)
        _, g = _scores_and_grads(model, pts, _rows_target(target, img[sl]), weight[sl], start)
        if factor is not None:
            g = g.astype(np.float64) * factor(sl)
        if acc is None:
            acc = np.zeros((n_images,) + g.shape[1:])
        runs = _runs(img[sl])
        if runs is None:  # many short runs (few rows per image): one vectorised segment sum
            ii = img[sl]
            starts = np.flatnonzero(np.r_[True, ii[1:] != ii[:-1]])
            np.add.at(acc, ii[starts], np.add.reduceat(g, starts, axis=0, dtype=np.float64))
        else:  # a few long runs: one sum each (np.add.reduceat along axis 0 is ~10x slower)
            for i, run in runs:
                acc[i] += g[run].sum(axis=0, dtype=np.float64)
    return acc


#: a chunk whose rows fall into more runs (images) than this is handled by vectorised gathers/segment sums.
MAX_RUNS = 16


def _runs(ii):
    """``(image, slice)`` per run of equal consecutive entries of ``ii`` (a chunk's image ids), or None
    when there are more than :data:`MAX_RUNS` (then a loop over runs would be a loop over images)."""
    starts = np.flatnonzero(np.r_[True, ii[1:] != ii[:-1]])
    if len(starts) > MAX_RUNS:
        return None
    ends = np.r_[starts[1:], len(ii)]
    return [(int(ii[a]), slice(int(a), int(b))) for a, b in zip(starts, ends)]


def _affine_head(model):
    """The layer of the node that alone reads the model input, if it is affine and not the whole model; else None.

    Integrated gradients needs only ``Σ_k w_k ∂F/∂x (x_k)`` per image, and behind an affine first
    layer ``∂F/∂x = Lᵀ ∂F/∂h``, so the sum is ``Lᵀ Σ_k w_k ∂F/∂h (h_k)``: one transposed convolution
    per image instead of one per path point.  Along the straight path the head's outputs are
    ``h(x' + α (x − x')) = h(x') + α L (x − x')``: two head passes per image instead of one per
    point.  Exact in real arithmetic; in floating point the sums are taken in another order.
    The layer's ``affine`` trait says whether it qualifies (dense, conv and their subclasses).
    """
    consumers = getattr(model, "consumers", None)
    if consumers is None or len(model) < 2:
        return None
    heads = consumers(INPUT)
    if len(heads) != 1 or heads[0] == model.output:
        return None
    layer = model[heads[0]]
    return layer if layer.affine else None


def _explained(model, pts, target):
    scores = np.asarray(model.forward(pts))
    return _targets.selected(target, scores).astype(np.float64)
