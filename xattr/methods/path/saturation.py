"""Saturation (Sundararajan, Taly & Yan 2016, "Gradients of counterfactuals"): the score and the gradient's size
along the scaled inputs ``α·x``."""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from ... import _targets
from ..._conventions import as_float_array
from ...inputs import check_batch_size, rows_per_call
from .._chunks import planned
from ._common import _check_input, _resolve_target, _rows_target, _scores_and_grads

Saturation = namedtuple("Saturation", "alphas scores gradient_norm")


Saturation.__doc__ = """Result of :func:`saturation`: ``alphas (A,)``, ``scores (N, A)``, ``gradient_norm (N, A)``."""


def saturation(model, x, target, alphas=None, batch_size=None):
    """Score and gradient size along the scaled inputs ``α·x`` (Sundararajan, Taly & Yan 2016).

    "Gradients of counterfactuals": the score ``F(α x)`` rises and then saturates as ``α`` goes from 0
    to 1, while the gradient ``∂F/∂x(α x)`` shrinks, so the gradient at the input itself says little.

    Parameters
    ----------
    alphas : array_like ``(A,)``, optional
        Scales; default ``linspace(0, 1, 51)``.
    batch_size : int, optional
        Scaled inputs per call (default: the cost model's choice, :func:`xattr.inputs.rows_per_call`).

    Returns
    -------
    Saturation
        ``alphas (A,)``, ``scores (N, A)`` the explained value ``F(α x)``, and ``gradient_norm (N, A)``
        the Euclidean norm of ``∂F/∂x`` at ``α x`` over all input entries; float64.
    """
    batch_size = check_batch_size(batch_size)
    x = _check_input(model, x)
    alphas = np.linspace(0.0, 1.0, 51) if alphas is None else as_float_array(alphas, "alphas", ndim=1)
    alphas = np.asarray(alphas, dtype=np.float64)
    if alphas.size == 0:
        raise ValueError("alphas must hold at least one scale")
    given, model = model, planned(model, x[:1], x.shape[0] * alphas.size)  # batch-norms folded: gradient_plan
    tgt, _ = _resolve_target(model, x, target)
    n_img, A = x.shape[0], alphas.size
    img = np.repeat(np.arange(n_img), A)
    batch_size = rows_per_call(batch_size, given, x[:1], len(img))  # the given model's profile is cached
    a_rows = np.tile(alphas, n_img).astype(x.dtype).reshape((-1,) + (1,) * (x.ndim - 1))
    scores, norms = np.empty(n_img * A), np.empty(n_img * A)
    for lo in range(0, len(img), batch_size):
        sl = slice(lo, min(len(img), lo + batch_size))
        t = _rows_target(tgt, img[sl])
        s, g = _scores_and_grads(model, a_rows[sl] * x[img[sl]], t, np.ones(sl.stop - sl.start))
        scores[sl] = _targets.selected(t, s)
        norms[sl] = np.sqrt((g.reshape(len(g), -1).astype(np.float64) ** 2).sum(axis=1))
    return Saturation(alphas, scores.reshape(n_img, A), norms.reshape(n_img, A))
