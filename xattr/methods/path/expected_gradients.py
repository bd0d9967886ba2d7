"""Expected gradients (Erion et al. 2021; shap's ``GradientExplainer``): integrated gradients averaged over
reference images, sampled or with the expectation taken."""
from __future__ import annotations

import numpy as np

from ..._conventions import as_float_array, as_rng
from ...inputs import check_batch_size, rows_per_call
from .._chunks import planned
from ..registry import MethodSpec, register
from ._common import _accumulate, _check_input, _resolve_target
from .integrated_gradients import integrated_gradients
from .quadratures import _check_steps


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
    rows_arg = check_batch_size(batch_size)
    x = _check_input(model, x)
    given, model = model, planned(model, x[:1], x.shape[0] * n_samples)  # batch-norms folded: gradient_plan
    refs = _references(references, x)
    tgt, _ = _resolve_target(model, x, target)
    n_img = x.shape[0]
    batch_size = rows_per_call(rows_arg, given, x[:1], n_img * n_samples)  # the given model's profile is cached
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

    Parameters
    ----------
    model : model protocol object (``forward``, ``vjp``)
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable on the scores ``(N, K)``
    references : ndarray ``(M, C, H, W)``
        The references ``r_k``, each one a baseline.
    steps : int
        Quadrature nodes (ignored by ``"exact"``).
    quadrature : str
        ``"exact"`` or a name of :func:`quadrature_rule`.
    batch_size : int, optional
    return_delta : bool

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


register(MethodSpec("expected_gradients", expected_gradients, "path", paper="Erion et al. 2021",
                    needs=("rule:gradient", "references", "rng"), demo={"n_samples": 16}))
