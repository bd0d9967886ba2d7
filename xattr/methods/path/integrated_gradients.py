"""Integrated gradients (Sundararajan, Taly & Yan 2017) with a named quadrature or the exact solver."""
from __future__ import annotations

import numpy as np

from ... import _targets
from ...inputs import as_baseline, check_batch_size, completeness_gap, rows_per_call
from .._chunks import planned
from ..registry import MethodSpec, register
from ._common import _accumulate, _affine_head, _check_input, _explained, _resolve_target, _runs
from .exact import exact_integrated_gradients
from .quadratures import quadrature_rule


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
    given, model = model, planned(model, x[:1], x.shape[0] * len(alphas))  # batch-norms folded: gradient_plan
    rows_arg = check_batch_size(batch_size)
    x0 = as_baseline(baseline, x)
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
    batch_size = rows_per_call(rows_arg, given, h0[:1], len(img), start)  # the given model's profile is cached

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


register(MethodSpec("integrated_gradients", integrated_gradients, "path", paper="Sundararajan et al. 2017",
                    needs=("rule:gradient",), demo={"baseline": 0.0, "steps": 128}))
