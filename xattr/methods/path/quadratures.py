"""The named quadratures of integrated gradients: nodes and weights on ``[0, 1]`` (the table of
:mod:`xattr.methods.path`); every rule's weights sum to 1."""
from __future__ import annotations

import numbers

import numpy as np

from .. import _bounds

QUADRATURES = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre", "exact")


def quadrature_rule(name, steps):
    """Nodes and weights on ``[0, 1]`` of a named quadrature, float64.

    See the module docstring for the table.

    Parameters
    ----------
    name : str
        A quadrature of ``QUADRATURES`` other than ``"exact"`` (which has no nodes: it walks the path's kinks).
    steps : int
        The number of nodes ``n`` (gradient evaluations); at least 2 for ``"riemann_trapezoid"``.

    Returns
    -------
    alphas : ndarray ``(n,)``, float64
    weights : ndarray ``(n,)``, float64
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
