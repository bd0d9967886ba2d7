"""Path methods: integrated gradients (named quadratures and an exact solver), expected gradients, saturation.

Integrated gradients (Sundararajan, Taly & Yan 2017, "Axiomatic attribution for deep networks")::

    IG_i(x) = (x_i − x'_i) · ∫_0^1 ∂F(x' + α (x − x')) / ∂x_i dα

``F`` is the explained value (the target class's score before softmax, or a callable on the scores),
``x'`` the baseline.  Completeness: ``Σ_i IG_i(x) = F(x) − F(x')``.

The integral is a quadrature ``Σ_k w_k ∂F(x' + α_k (x − x'))`` with named nodes ``α_k`` and weights
``w_k`` (``n = steps`` gradient evaluations in every rule, so rules compare at equal cost):

===================== ================================ ================================ ============================
quadrature            nodes ``α_k``                    weights ``w_k``                  error on a smooth path
===================== ================================ ================================ ============================
``riemann_left``      ``k / n``, ``k = 0 … n−1``       ``1 / n``                        ``O(1/n)``
``riemann_right``     ``k / n``, ``k = 1 … n``         ``1 / n``                        ``O(1/n)``
``riemann_middle``    ``(k + ½) / n``, ``k = 0 … n−1`` ``1 / n``                        ``O(1/n²)``
``riemann_trapezoid`` ``k / (n−1)``, ``k = 0 … n−1``   ``1/(n−1)``, ends ``1/(2(n−1))`` ``O(1/n²)``  (n ≥ 2)
``gausslegendre``     ``(1 + t_k) / 2``, ``t_k`` the   ``v_k / 2``, ``v_k`` the         exponential (``O(ρ^{−2n})``)
                      Legendre roots on [−1, 1]        Gauss weights
``exact``             the kinks of a piecewise-linear  segment lengths                  none (float64 round-off)
                      model along the path
===================== ================================ ================================ ============================

Every rule's weights sum to 1, so on a linear model every rule is exact (a test pins this; Captum's
``riemann_trapezoid`` uses nodes ``linspace(0, 1, n)`` with weights summing to ``(n−1)/n``, a
completeness gap of ``|ΔF|/n``).  The default is ``gausslegendre`` with ``steps=50``, as Captum: on a
smooth path it converges fastest; on a ReLU network the integrand is piecewise constant and every rule
is first order, which is what ``quadrature="exact"`` removes.  Peers' nodes: see ``peers.md``
(PAIR saliency counts both ends with equal weights, iNNvestigate left Riemann, Zennit right Riemann,
Xplique trapezoid).

Exact integrated gradients (``quadrature="exact"``, new in xattr): for a ``Sequential`` of
piecewise-linear layers (conv, dense, ReLU, max-pool, average pools, flatten, batch-norm, dropout)
the network is affine on the straight path between the points where a ReLU input crosses zero or a
max-pool argmax changes.  Those points are found analytically, layer by layer: on a segment where
all earlier nonlinearities are fixed, a layer's input is affine in ``α``, its value at the segment's
midpoint and its derivative along the path (the layers' forward-mode derivatives,
:meth:`xattr.nn.Layer.jvp`) give every crossing in closed form; the segment is split there and the
pieces go on to the next nonlinearity, many segments at a time.  The gradient is constant on each
final segment; ``IG = (x − x') · Σ_segments length · gradient``.

Expected gradients (Erion et al. 2021, "Improving performance of deep learning models with axiomatic
attribution priors and expected gradients"; shap's ``GradientExplainer``): the baseline is drawn from
``K`` reference images and ``α ~ U(0, 1)``.  Saturation (Sundararajan, Taly & Yan 2016, "Gradients of
counterfactuals"): the score and the gradient's size along ``α·x``.
"""
from __future__ import annotations

import numbers
from collections import namedtuple

import numpy as np

from .. import _targets
from . import _bounds, _chunks
from .._conventions import as_float_array, as_rng
from ..inputs import as_baseline, completeness_gap
from ..model import check_model, trace
from ..nn import INPUT, MaxPool2D, ReLU
from ..nn.base import _registered_layer_types, find_fact
from .registry import MethodSpec, register

QUADRATURES = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre", "exact")

#: path points (image × node rows) per call of the methods that take no input to size them (saturation).
DEFAULT_BATCH_SIZE = 128
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

Saturation = namedtuple("Saturation", "alphas scores gradient_norm")
Saturation.__doc__ = """Result of :func:`saturation`: ``alphas (A,)``, ``scores (N, A)``, ``gradient_norm (N, A)``."""


# -- quadratures -----------------------------------------------------------------------------
def quadrature_rule(name, steps):
    """Nodes and weights ``(alphas (n,), weights (n,))`` on ``[0, 1]`` of a named quadrature, float64.

    See the module docstring for the table.  ``steps`` is the number of nodes (gradient evaluations).
    """
    if name not in QUADRATURES or name == "exact":
        raise ValueError(
            f"quadrature must be one of {', '.join(QUADRATURES)}, got {name!r}"
            + (" (exact has no nodes: it walks the path's kinks)" if name == "exact" else "")
        )
    n = _check_steps(steps, minimum=2 if name == "riemann_trapezoid" else 1, what=name)
    if name == "riemann_left":
        a, w = np.arange(n) / n, np.full(n, 1.0 / n)
    elif name == "riemann_right":
        a, w = np.arange(1, n + 1) / n, np.full(n, 1.0 / n)
    elif name == "riemann_middle":
        a, w = (np.arange(n) + 0.5) / n, np.full(n, 1.0 / n)
    elif name == "riemann_trapezoid":
        # a true trapezoid: n nodes, n - 1 intervals of width h, end weights h/2; Σ w = 1 exactly.
        a, w = np.linspace(0.0, 1.0, n), np.full(n, 1.0 / (n - 1))
        w[[0, -1]] /= 2
    else:
        from scipy.special import roots_legendre  # O(n) memory; numpy's leggauss builds an n×n matrix

        t, v = roots_legendre(n)
        a, w = (t + 1) / 2, v / 2
    return a, w


def _check_steps(steps, minimum, what):
    if isinstance(steps, bool) or not isinstance(steps, (numbers.Integral, np.integer)):
        raise TypeError(f"steps must be an int, got {type(steps).__name__}")
    if steps < minimum:
        raise ValueError(f"steps must be >= {minimum} for {what}, got {steps}")
    if steps > _bounds.MAX_STEPS:  # N x steps index arrays are held at once (xattr.methods._bounds)
        raise ValueError(f"steps = {steps} for {what} is above the bound MAX_STEPS = {_bounds.MAX_STEPS}; "
                         "use quadrature='exact' or average several runs")
    return int(steps)


def _check_batch_size(batch_size, x=None):
    """``batch_size`` validated; None gives ``DEFAULT_BATCH_SIZE``, or with ``x`` the input-values rule of
    :func:`xattr.methods._chunks.values_rule` (the methods that know their model use :func:`_chunk_rows`)."""
    if batch_size is None:
        if x is None:
            return DEFAULT_BATCH_SIZE
        return _chunks.values_rule(np.asarray(x)[:1], DEFAULT_BATCH_SIZE)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (numbers.Integral, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
    return int(batch_size)


def _chunk_rows(batch_size, model, row, total, start=None):
    """Rows per call: ``batch_size`` if given, else the cost model's choice for ``total`` rows like ``row``
    ``(1, ...)`` (traced from node ``start``): :func:`xattr.methods._chunks.chunk_rows`."""
    if batch_size is not None:
        return _check_batch_size(batch_size)
    return _chunks.chunk_rows(model, row, total, start=start)


# -- shared plumbing -------------------------------------------------------------------------
def _check_input(model, x):
    check_model(model, "gradient")
    x = as_float_array(x, "x")
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty batch of shape (N, ...), got shape {x.shape}")
    return x


def _baseline(baseline, x):
    """The baseline as an array of ``x``'s shape and dtype (:func:`xattr.inputs.as_baseline`)."""
    return as_baseline(baseline, x)


def _resolve_target(model, x, target):
    """``(classes (N,) or a float-valued callable, scores at x)``.

    A callable returning integers is evaluated once, at ``x``: the class explained along a path or
    under noise is the one chosen at the input, not re-chosen at every path point.
    """
    scores = np.asarray(model.forward(x))
    if _targets.is_class_transform(target):  # (classes, transform): classes fixed here, one per image
        return _targets.resolve_class_transform(target, scores), scores
    if callable(target):
        value = np.asarray(target(scores))
        if value.dtype.kind not in "iu":
            if value.shape != (x.shape[0],):
                raise ValueError(f"a target callable must return shape (N,) = ({x.shape[0]},), got {value.shape}")
            return target, scores
        target = value
    if isinstance(target, bool):
        raise TypeError("target must be an int, an int array of shape (N,) or a callable, got bool")
    if not isinstance(target, (numbers.Integral, np.integer, np.ndarray, list, tuple)):
        raise TypeError(f"target must be an int, an int array of shape (N,) or a callable, got {type(target).__name__}")
    return _targets._classes(target, *scores.shape), scores


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


# -- integrated gradients ----------------------------------------------------------------------
def integrated_gradients(
    model, x, target, baseline=0.0, steps=50, quadrature="gausslegendre", batch_size=None, return_delta=False
):
    """Integrated gradients (Sundararajan et al. 2017) with a named quadrature.

    ``IG_i = (x_i − x'_i) Σ_k w_k ∂F(x' + α_k (x − x'))/∂x_i``; see the module docstring for the rules.

    Parameters
    ----------
    model : model protocol object
    x : ndarray ``(N, C, H, W)`` (or any ``(N, ...)`` the model takes)
    target : int, int array ``(N,)`` or callable on the scores
        A callable returning classes is evaluated at ``x`` once.
    baseline : float, array broadcastable to ``x``, or callable ``x -> baseline``
        ``x'``; default 0 (the black image, as the paper).
    steps : int
        Number of nodes (gradient evaluations per image); ignored by ``"exact"``.
    quadrature : str
        ``"riemann_left"``, ``"riemann_right"``, ``"riemann_middle"``, ``"riemann_trapezoid"``,
        ``"gausslegendre"`` (default, 50 nodes as Captum) or ``"exact"`` (piecewise-linear
        ``Sequential`` models; see :func:`exact_integrated_gradients`).
    batch_size : int, optional
        At most this many path points (image × node) are evaluated in one call (default: chosen by the
        cost model of :mod:`xattr.methods._chunks`, activation memory and weight traffic under a memory
        budget), so memory does not grow with ``steps``.
    return_delta : bool
        Also return the completeness gap ``Σ_i IG_i − (F(x) − F(x'))`` per image, ``(N,)`` float64
        (:func:`xattr.inputs.completeness_gap`: Captum's sign).

    Returns
    -------
    attributions : ndarray, ``x.shape``, ``x.dtype``
    delta : ndarray ``(N,)`` (only with ``return_delta``)
    """
    if quadrature == "exact":
        res = exact_integrated_gradients(model, x, target, baseline, batch_size=batch_size)
        return (res.attributions, res.delta) if return_delta else res.attributions
    alphas, weights = quadrature_rule(quadrature, steps)
    x = _check_input(model, x)
    rows_arg = batch_size if batch_size is None else _check_batch_size(batch_size)
    x0 = _baseline(baseline, x)
    d = x - x0
    tgt, scores = _resolve_target(model, x, target)
    n_img, n = x.shape[0], len(alphas)
    img = np.repeat(np.arange(n_img), n)
    node = np.tile(np.arange(n), n_img)
    head = _affine_head(model)
    if head is None:
        start, (h0, c0), hd = None, (x0, None), d
    else:  # path points at the head's output; see _affine_head
        start, (h0, c0) = head.name, head.forward(x0)
        hd = head.jvp(d, c0)
    a_rows = alphas.astype(x.dtype)[node].reshape((-1,) + (1,) * (h0.ndim - 1))
    batch_size = _chunk_rows(rows_arg, model, h0[:1], len(img), start)

    def points(sl):  # h0 + α hd, image by image when a chunk holds few (no gathered copies of h0, hd)
        runs = _runs(img[sl])
        if runs is None:
            return h0[img[sl]] + a_rows[sl] * hd[img[sl]]
        out = np.empty((sl.stop - sl.start,) + h0.shape[1:], dtype=h0.dtype)
        for i, run in runs:
            np.multiply(a_rows[sl][run], hd[i], out=out[run])
            out[run] += h0[i]
        return out

    acc = _accumulate(model, img, np.tile(weights, n_img), points, tgt, batch_size, n_img, start=start)

    if head is not None:
        acc = head.backward(acc, c0, "gradient")  # Lᵀ of the weighted sums, in float64
    attr = (d * acc).astype(x.dtype, copy=False)
    if not return_delta:
        return attr
    f_x = _targets.selected(tgt, scores).astype(np.float64)
    return attr, completeness_gap(attr, f_x, _explained(model, x0, tgt))


# -- exact integrated gradients ----------------------------------------------------------------
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
    rows = None if batch_size is None else _check_batch_size(batch_size)
    x64 = x_in.astype(np.float64)
    x0 = _baseline(baseline, x64)
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


# -- expected gradients --------------------------------------------------------------------------
def _references(references, x):
    r = as_float_array(references, "references")
    if r.ndim != x.ndim or r.shape[1:] != x.shape[1:] or r.shape[0] == 0:
        raise ValueError(
            f"references must have shape (K,) + {x.shape[1:]} with K >= 1 (K images of x's shape), got {r.shape}"
        )
    return r.astype(x.dtype, copy=False)


def expected_gradients(model, x, target, references, n_samples=50, rng=None, batch_size=None):
    """Expected gradients / gradient SHAP (Erion et al. 2021; Lundberg & Lee 2017's GradientExplainer).

    ``EG_i(x) = E_{x' ~ references, α ~ U(0,1)} [(x_i − x'_i) ∂F(x' + α (x − x'))/∂x_i]``, estimated with
    ``n_samples`` draws per image: a reference index uniform over the ``K`` references and ``α``
    uniform on ``[0, 1)``, both from ``rng``.  Completeness holds in expectation:
    ``E[Σ_i EG_i] = F(x) − mean_k F(r_k)``; :func:`expected_gradients_exact` takes the expectation.

    Parameters
    ----------
    references : ndarray ``(K,) + x.shape[1:]``
        The baseline distribution (e.g. training images): "the baseline can also be multiple images".
    n_samples : int
    rng : numpy.random.Generator or int
        Required.  Draws: ``k = rng.integers(0, K, (N, n_samples))`` then ``α = rng.random((N, n_samples))``.

    Returns
    -------
    ndarray, ``x.shape``, ``x.dtype``
    """
    rng = as_rng(rng)
    n_samples = _check_steps(n_samples, 1, "expected_gradients (n_samples)")
    rows_arg = batch_size if batch_size is None else _check_batch_size(batch_size)
    x = _check_input(model, x)
    refs = _references(references, x)
    tgt, _ = _resolve_target(model, x, target)
    n_img = x.shape[0]
    batch_size = _chunk_rows(rows_arg, model, x[:1], n_img * n_samples)
    k = rng.integers(0, refs.shape[0], size=(n_img, n_samples)).ravel()
    alpha = rng.random((n_img, n_samples)).ravel().astype(x.dtype).reshape((-1,) + (1,) * (x.ndim - 1))
    img = np.repeat(np.arange(n_img), n_samples)

    def points(sl):
        r = refs[k[sl]]
        return r + alpha[sl] * (x[img[sl]] - r)

    def factor(sl):
        return (x[img[sl]] - refs[k[sl]]).astype(np.float64)

    acc = _accumulate(model, img, np.full(len(img), 1.0 / n_samples), points, tgt, batch_size, n_img, factor)
    return acc.astype(x.dtype, copy=False)


def expected_gradients_exact(
    model, x, target, references, steps=50, quadrature="exact", batch_size=None, return_delta=False
):
    """Expected gradients with the expectation taken, not sampled: ``mean_k IG(x; baseline r_k)``.

    With ``quadrature="exact"`` (default; piecewise-linear ``Sequential`` models) completeness holds to
    round-off against the mean reference output: ``Σ_i EG_i = F(x) − mean_k F(r_k)``.  Other
    quadratures (any model) integrate over ``α`` with ``steps`` nodes.

    Returns
    -------
    attributions : ndarray, ``x.shape``, ``x.dtype``
    delta : ndarray ``(N,)``, ``Σ_i EG_i − (F(x) − mean_k F(r_k))`` (only with ``return_delta``)
    """
    x = _check_input(model, x)
    refs = _references(references, x)
    n_img, K = x.shape[0], refs.shape[0]
    tgt, _ = _resolve_target(model, x, target)
    t_rows = tgt if callable(tgt) else np.repeat(tgt, K)
    xs = np.repeat(x, K, axis=0)  # rows (image i, reference k)
    bs = np.tile(refs, (n_img,) + (1,) * (x.ndim - 1))
    attr, delta = integrated_gradients(model, xs, t_rows, bs, steps, quadrature, batch_size, return_delta=True)
    attr = attr.reshape((n_img, K) + x.shape[1:]).mean(axis=1, dtype=np.float64).astype(x.dtype, copy=False)
    return (attr, delta.reshape(n_img, K).mean(axis=1)) if return_delta else attr


# -- saturation ----------------------------------------------------------------------------------
def saturation(model, x, target, alphas=None, batch_size=None):
    """Score and gradient size along the scaled inputs ``α·x`` (Sundararajan, Taly & Yan 2016).

    "Gradients of counterfactuals": the score ``F(α x)`` rises and then saturates as ``α`` goes from 0
    to 1, while the gradient ``∂F/∂x(α x)`` shrinks, so the gradient at the input itself says little.

    Parameters
    ----------
    alphas : array_like ``(A,)``, optional
        Scales; default ``linspace(0, 1, 51)``.

    Returns
    -------
    Saturation
        ``alphas (A,)``, ``scores (N, A)`` the explained value ``F(α x)``, and ``gradient_norm (N, A)``
        the Euclidean norm of ``∂F/∂x`` at ``α x`` over all input entries; float64.
    """
    batch_size = _check_batch_size(batch_size)
    x = _check_input(model, x)
    alphas = np.linspace(0.0, 1.0, 51) if alphas is None else as_float_array(alphas, "alphas", ndim=1)
    alphas = np.asarray(alphas, dtype=np.float64)
    if alphas.size == 0:
        raise ValueError("alphas must hold at least one scale")
    tgt, _ = _resolve_target(model, x, target)
    n_img, A = x.shape[0], alphas.size
    img = np.repeat(np.arange(n_img), A)
    a_rows = np.tile(alphas, n_img).astype(x.dtype).reshape((-1,) + (1,) * (x.ndim - 1))
    scores, norms = np.empty(n_img * A), np.empty(n_img * A)
    for lo in range(0, len(img), batch_size):
        sl = slice(lo, min(len(img), lo + batch_size))
        t = _rows_target(tgt, img[sl])
        s, g = _scores_and_grads(model, a_rows[sl] * x[img[sl]], t, np.ones(sl.stop - sl.start))
        scores[sl] = _targets.selected(t, s)
        norms[sl] = np.sqrt((g.reshape(len(g), -1).astype(np.float64) ** 2).sum(axis=1))
    return Saturation(alphas, scores.reshape(n_img, A), norms.reshape(n_img, A))


# -- the registry -------------------------------------------------------------------------------------
register(MethodSpec("integrated_gradients", integrated_gradients, "path", paper="Sundararajan et al. 2017",
                    needs=("rule:gradient",), demo={"baseline": 0.0, "steps": 128}))
register(MethodSpec("expected_gradients", expected_gradients, "path", paper="Erion et al. 2021",
                    needs=("rule:gradient", "references", "rng"), demo={"n_samples": 16}))
