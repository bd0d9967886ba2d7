"""Exact integrated gradients on a piecewise-linear layered model: the path cut at its kinks, new in xattr.

The network is affine on the straight path between the points where a ReLU input crosses zero or a max-pool
argmax changes; those points are found analytically, layer by layer (see :mod:`xattr.methods.path`).
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from ... import _targets
from ...inputs import as_baseline, check_batch_size, completeness_gap
from ...nn import INPUT, MaxPool2D, ReLU
from ...nn.base import _registered_layer_types, find_fact
from ._common import _check_input, _explained, _resolve_target

#: IG, expected gradients and SmoothGrad size their chunks by the cost model of :mod:`xattr.methods._chunks`
#: (activation memory and weight traffic under a memory budget, in bytes).

#: bytes the exact solver's per-chunk state may take (segment values and tangents at one layer).
EXACT_BUDGET = 64 * 2**20


ExactIG = namedtuple("ExactIG", "attributions delta segments breakpoints")


ExactIG.__doc__ = """Result of :func:`exact_integrated_gradients`.

attributions : ndarray, ``x.shape``
delta : ndarray ``(N,)``, ``Σ attributions − (F(x) − F(x'))`` (float64 round-off; :func:`xattr.inputs.completeness_gap`)
segments : int ndarray ``(N,)``, number of linear pieces of each path
breakpoints : list of N float64 arrays, the kinks ``0 < α < 1`` of each path, sorted
"""


def _check_piecewise_linear(model):
    if not hasattr(model, "run") or not hasattr(model, "node"):
        raise TypeError(
            f"exact integrated gradients needs a layered model (xattr.nn.Graph or Sequential) of piecewise-linear "
            f"layers; {model!r} is not one (a plain function's kinks cannot be found analytically: use a quadrature)"
        )
    for layer in model:
        if find_fact(type(layer), "jvp") is None or not layer.piecewise_linear:
            have = sorted(t.__name__ for t in _registered_layer_types()
                          if find_fact(t, "jvp") is not None and t.piecewise_linear and not t.__name__.startswith("_"))
            raise ValueError(
                f"exact integrated gradients needs piecewise-linear layers with a forward-mode derivative; "
                f"layer {layer.describe()} is not one (supported: {', '.join(have)})"
            )
        if layer.kind not in ("linear", "merge", "global") and find_fact(type(layer), "kinks") is None:
            raise ValueError(f"exact integrated gradients has no kink finder for {layer.describe()}")


def _split(a, b, seg, alpha):
    """Children of segments ``(a, b)`` cut at ``(seg, alpha)``: ``(starts, ends, parent)`` sorted by parent, α."""
    S = len(a)
    all_seg = np.concatenate([np.arange(S), seg])
    all_start = np.concatenate([a, alpha])
    order = np.lexsort((all_start, all_seg))
    parent, start = all_seg[order], all_start[order]
    keep = np.r_[True, (parent[1:] != parent[:-1]) | (start[1:] != start[:-1])]  # equal kinks: one cut
    parent, start = parent[keep], start[keep]
    end = np.r_[start[1:], 0.0]
    last = np.r_[parent[1:] != parent[:-1], True]
    end[last] = b[parent[last]]
    return start, end, parent


def _sum_by(parent, g, n):
    """``out[p] = Σ_{rows r with parent[r] = p} g[r]`` (``parent`` sorted)."""
    out = np.zeros((n,) + g.shape[1:])
    starts = np.flatnonzero(np.r_[True, parent[1:] != parent[:-1]])
    out[parent[starts]] = np.add.reduceat(g, starts, axis=0)
    return out


def _stages(model):
    """``[(lo, hi)]``: positions in the topological order of each node with a kink finder; a ReLU whose only
    consumer is the max-pool right after it makes one block with it (``hi = lo + 2``)."""
    order, out, k = model.order, [], 0
    while k < len(order):
        layer = model[order[k]]
        if find_fact(type(layer), "kinks") is None:
            k += 1
            continue
        nxt = order[k + 1] if k + 1 < len(order) else None
        if (isinstance(layer, ReLU) and nxt is not None and isinstance(model[nxt], MaxPool2D)
                and model.consumers(order[k]) == [nxt]):
            out.append((k, k + 2))
            k += 2
        else:
            out.append((k, k + 1))
            k += 1
    return out


def _live(model, done, upto):
    """Names among ``done`` (computed nodes, ``"input"`` included) read by a node at position ``>= upto``."""
    later = set(model.order[upto:])
    return [n for n in done if any(c in later for c in model.consumers(n))]


def _walk(model, x0, d, classes, budget, rows=None):
    """Walk the paths ``x0 + α d``; return ``(Σ_pieces length · ∂F/∂x (N, ...), pieces)``.

    Stage ``s`` gets segments on which every nonlinearity before its block is fixed, with the values
    of the *live* nodes (computed before the block and read at or after it: on a chain, the block's
    input; on a residual net also the skip connections) at their midpoints and their derivatives along
    the path (``tape.push`` in the same pass: :meth:`xattr.nn.Graph.run`).  The block's kinks cut the
    segments; the pieces' values (extrapolated from the parent: affine there) run through the block and
    the nodes up to the next block, and go to the next stage.  On the way back each stage returns, per
    segment, the length-weighted gradient at its live nodes summed over its pieces (one ``tape.pull``
    per chunk), so a layer's backward runs once per segment of its level, not once per piece.
    ``pieces`` is ``(starts, ends, image ids)`` of the final linear pieces.  At most ``rows`` pieces
    (default: as many as fit ``budget`` bytes of the live values, four copies) are processed at once.
    """
    order = model.order
    stages = _stages(model)
    N = x0.shape[0]
    pieces = []

    def back_through(tape, seeds, live):
        """Gradients at the ``live`` values from ``seeds`` on the span's nodes or on live values themselves."""
        inner = {n: g for n, g in seeds.items() if n in tape.records}
        back = tape.pull(inner, "gradient", to=list(live)) if inner else {}
        out = {}
        for n in live:
            g = back.get(n)
            if n in seeds:  # a live value read again after the span: its gradient comes straight back
                g = seeds[n] if g is None else g + seeds[n]
            out[n] = g
        return out

    def stage(s, a, b, img, live):
        lo, hi = stages[s]
        block = [model[n] for n in order[lo:hi]]
        u, du = live[model.inputs_of(order[lo])[0]]
        seg, alpha = find_fact(type(block[-1]), "kinks")(block, u, du, a, b)
        ca, cb, parent = _split(a, b, seg, alpha)
        last = s + 1 == len(stages)
        end = len(order) if last else stages[s + 1][0]
        span = order[lo:end]
        pm = (a + b) / 2
        R = {n: np.zeros(v.shape) for n, (v, _) in live.items()}
        step = rows or max(1, budget // (4 * sum(v[0].nbytes for v, _ in live.values())))
        for c0 in range(0, len(ca), step):
            sl = slice(c0, c0 + step)
            p = parent[sl]
            shift = (ca[sl] + cb[sl]) / 2 - pm[p]
            # within the parent everything up to this block is affine: extrapolate to the piece's midpoint
            env = {n: v[p] + shift.reshape((-1,) + (1,) * (v.ndim - 1)) * dv[p] for n, (v, dv) in live.items()}
            tangents = None if last else {n: dv[p] for n, (_, dv) in live.items()}
            tape = model.run(env, span, tangents)
            if last:
                pieces.append((ca[sl], cb[sl], img[p]))
                g = np.zeros(env[model.output].shape)
                g[np.arange(len(p)), classes[img[p]]] = cb[sl] - ca[sl]
                seeds = {model.output: g}
            else:
                nxt = _live(model, list(live) + span, end)
                seeds = stage(s + 1, ca[sl], cb[sl], img[p], {n: (env[n], tangents[n]) for n in nxt})
            for n, g in back_through(tape, seeds, live).items():
                if g is not None:
                    R[n] += _sum_by(p, g, len(a))
        return R

    if not stages:  # an affine model: one piece, constant gradient
        tape = model.trace(x0 + 0.5 * d)
        g = np.zeros(tape.output.shape)
        g[np.arange(N), classes] = 1.0
        return tape.pull(g, "gradient"), (np.zeros(N), np.ones(N), np.arange(N))
    prefix = order[: stages[0][0]]
    env, tangents = {INPUT: x0 + 0.5 * d}, {INPUT: d}
    tape = model.run(env, prefix, tangents)
    live = _live(model, [INPUT] + prefix, stages[0][0])
    R = stage(0, np.zeros(N), np.ones(N), np.arange(N), {n: (env[n], tangents[n]) for n in live})
    G = back_through(tape, R, [INPUT])[INPUT]
    starts, ends, imgs = (np.concatenate([pc[i] for pc in pieces]) for i in range(3))
    srt = np.lexsort((starts, imgs))
    return G, (starts[srt], ends[srt], imgs[srt])


def exact_integrated_gradients(model, x, target, baseline=0.0, batch_size=None):
    """Integrated gradients computed exactly on a piecewise-linear ``Sequential`` model.

    The path ``x' + α (x − x')`` is cut at every ``α`` where a ReLU input crosses zero or a max-pool
    argmax changes (found analytically from each layer's value and forward-mode derivative on a
    segment; see the module docstring); on each piece the gradient is constant, so
    ``IG = (x − x') · Σ_pieces length · ∂F/∂x(piece)`` and completeness holds to round-off.
    Computed in float64 whatever ``x``'s dtype (the result is cast back to it).

    Precision: completeness holds to round-off always.  Per pixel, a switch between two max-pool
    inputs whose lines along the path are (nearly) parallel and meet where the values are only known to
    round-off (equal pixels in ``x`` and ``x'``, or pixels differing by ``δ``) is placed only to about
    ``1e-16/δ`` in ``α``; attribution may then move between those near-identical pixels by that much
    (exact ties follow ``MAXPOOL_TIE_POLICY`` at the computed values).

    Parameters
    ----------
    model : Sequential
        Of Conv2D, Dense, ReLU, MaxPool2D, AvgPool2D, GlobalAvgPool2D, Flatten, BatchNorm2D, Dropout.
        Any other layer (or a non-Sequential model) raises an error naming it.
    x, target, baseline
        As :func:`integrated_gradients`; ``target`` must pick classes (an int, an int array or a
        callable returning ints): a float-valued callable of the scores is not piecewise linear.
    batch_size : int, optional
        Pieces of the path processed at once at each nonlinearity (default: as many as fit
        ``EXACT_BUDGET`` bytes of that layer's input, four copies).

    Returns
    -------
    ExactIG
        ``(attributions x.shape, delta (N,), segments (N,), breakpoints list of N arrays)``.
    """
    _check_piecewise_linear(model)
    x_in = _check_input(model, x)
    rows = check_batch_size(batch_size)
    x64 = x_in.astype(np.float64)
    x0 = as_baseline(baseline, x64)
    d = x64 - x0
    tgt, scores = _resolve_target(model, x64, target)
    if callable(tgt) or isinstance(tgt, _targets.ClassOf):
        raise ValueError(
            "exact integrated gradients needs a class target (int, int array or a callable returning ints); "
            "a float-valued target callable or a (classes, transform) target is not piecewise linear in the scores"
        )
    G, (starts, ends, img) = _walk(model, x0, d, tgt, EXACT_BUDGET, rows)
    attr = d * G
    if x_in.dtype != np.float64 and np.abs(attr).max(initial=0.0) > np.finfo(x_in.dtype).max:  # as float32 methods do
        raise ValueError(f"attributions overflow {x_in.dtype} (largest |value| {np.abs(attr).max():.3g}); "
                         "pass float64 input")
    f_x = _targets.selected(tgt, scores).astype(np.float64)
    delta = completeness_gap(attr, f_x, _explained(model, x0, tgt))
    counts = np.bincount(img, minlength=len(x64))
    breaks = np.split(starts, np.cumsum(counts)[:-1])
    return ExactIG(attr.astype(x_in.dtype, copy=False), delta, counts, [bp[1:] for bp in breaks])
