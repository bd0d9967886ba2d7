"""A gradient checker for models: central differences along random directions against the vjp.

As autograd's ``check_grads`` (``autograd/test_util.py``): for random unit directions
``v`` in input space and random output weights ``u``,

    d/dt <u, f(x + t v)> at t = 0  ≈  (<u, f(x + h v)> - <u, f(x - h v)>) / (2 h)

must equal ``<vjp(x, u), v>``.  The central difference has error ``O(h²)`` for smooth
functions; a ReLU network is piecewise linear, so the difference is exact unless the
segment ``x ± h v`` crosses a kink (a ReLU input or a max-pool tie at 0 distance): keep
``h`` small and inputs away from exact zeros and ties, or expect a reported mismatch.
"""
from __future__ import annotations

import numpy as np

from .._conventions import as_float_array, as_rng

__all__ = ["check_model_gradient", "numerical_directional_derivatives"]


def numerical_directional_derivatives(model, x, u, directions, eps):
    """Central differences ``(<u, f(x + h v)> - <u, f(x - h v)>) / 2h`` for each direction ``v``.

    ``directions`` ``(D, *x.shape)``; returns ``(D,)`` float64.  All ``2D`` points are
    evaluated in one batch per direction.

    Parameters
    ----------
    model : model protocol object
    x : ndarray ``(N, ...)``
    u : ndarray ``(N, K)``
        The output weights.
    directions : ndarray ``(D, N, ...)``
    eps : float
        The step ``h``.

    Returns
    -------
    ndarray ``(D,)``, float64
    """
    out = np.empty(len(directions))
    for k, v in enumerate(directions):
        plus = np.asarray(model.forward(x + eps * v), dtype=np.float64)
        minus = np.asarray(model.forward(x - eps * v), dtype=np.float64)
        out[k] = np.sum(u * (plus - minus)) / (2 * eps)
    return out


def check_model_gradient(model, x, rule="gradient", n_directions=4, eps=1e-6, rtol=1e-5, atol=1e-8, rng=0):
    """Check ``model.vjp(x, u, rule)`` against central differences of ``model.forward`` (float64).

    Parameters
    ----------
    model : model protocol object (``forward``, ``vjp``)
    x : ndarray ``(N, ...)``; cast to float64 (the check needs its precision)
    rule : str
        The vjp rule checked; only ``"gradient"`` is a derivative, other rules are expected to fail.
    n_directions : int
        Random unit directions ``v`` (Gaussian, normalised).
    eps : float
        Step ``h`` of the central difference.
    rtol, atol : float
        Pass when ``|numeric - analytic| <= atol + rtol * max(|numeric|, |analytic|)`` per direction.
    rng : Generator or int

    Raises
    ------
    AssertionError
        Listing each direction's numeric and analytic derivative and their difference.
    """
    x = np.array(as_float_array(x, "x"), dtype=np.float64)
    gen = as_rng(rng)
    scores = np.asarray(model.forward(x), dtype=np.float64)
    u = gen.normal(size=scores.shape)
    g = np.asarray(model.vjp(x, u, rule), dtype=np.float64)
    if g.shape != x.shape:
        raise AssertionError(f"vjp returned shape {g.shape}, expected the input's shape {x.shape}")
    dirs = gen.normal(size=(n_directions,) + x.shape)
    dirs /= np.linalg.norm(dirs.reshape(n_directions, -1), axis=1).reshape((-1,) + (1,) * x.ndim)
    numeric = numerical_directional_derivatives(model, x, u, dirs, eps)
    analytic = dirs.reshape(n_directions, -1) @ g.ravel()
    err = np.abs(numeric - analytic)
    tol = atol + rtol * np.maximum(np.abs(numeric), np.abs(analytic))
    bad = np.flatnonzero(err > tol)
    if bad.size:
        rows = "\n".join(
            f"  direction {k}: central difference {numeric[k]:.10g}, vjp {analytic[k]:.10g}, |diff| {err[k]:.3g} "
            f"(tolerance {tol[k]:.3g})" for k in bad
        )
        raise AssertionError(
            f"vjp (rule {rule!r}) disagrees with central differences (h = {eps:g}) in {bad.size} of {n_directions} "
            f"random directions:\n{rows}"
        )
