"""Stability of explanations under small input perturbations: local Lipschitz estimate
(Alvarez-Melis & Jaakkola 2018) and average / maximum sensitivity (Yeh et al. 2019).

Each takes the explanation method ``method(model, x, target, **method_kwargs) -> maps`` and
re-explains perturbed copies of ``x``: perturbations are drawn with an explicit ``rng`` (or
given as an array ``(S, *x.shape)``), and the perturbed images go through ``method`` in chunks
of about ``batch_size`` images.  Distances are Euclidean (Frobenius) over the whole map.
"""
from __future__ import annotations

import numpy as np

from . import _perturb as P

__all__ = ["local_lipschitz_estimate", "avg_sensitivity", "sensitivities"]


def _draws(x, perturbations, perturbation, n_samples, scale, rng, name):
    if perturbations is not None:
        return P.check_perturbations(perturbations, x)
    return P.perturbation_draws(perturbation, x, n_samples, scale, rng, name)


def sensitivities(method, model, x, target, perturbations, method_kwargs=None, batch_size=64, normalize=False):
    """``||Φ(f, x + δ_s) - Φ(f, x)||₂`` for every perturbation: ``(S, N)`` float64.

    ``normalize`` divides by ``||Φ(f, x)||₂`` (refused where that is 0).

    Parameters
    ----------
    method : callable ``(model, x, target, **method_kwargs) -> (N, ...)``
        The explanation method.
    model : model protocol object (``forward``, ``vjp``)
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable on the scores ``(N, K)``
    perturbations : ndarray ``(S, N, C, H, W)``
    method_kwargs : dict, optional
        Options passed to ``method``.
    batch_size : int
    normalize : bool

    Returns
    -------
    ndarray ``(S, N)``, float64
    """
    x = P.images(x)
    d = P.check_perturbations(perturbations, x)
    a0 = np.asarray(method(model, x, target, **dict(method_kwargs or {})), dtype=np.float64)
    if a0.shape[0] != x.shape[0]:
        raise ValueError(f"the explanation method returned {a0.shape[0]} maps for {x.shape[0]} images")
    out = np.empty(d.shape[:2])
    for lo, hi, a in P.explained_chunks(method, model, x, target, x[None] + d, method_kwargs, batch_size):
        out[lo:hi] = np.sqrt(((a - a0[None]) ** 2).reshape(hi - lo, len(x), -1).sum(axis=2))
    if normalize:
        ref = np.linalg.norm(a0.reshape(len(a0), -1), axis=1)
        if np.any(ref == 0):
            raise ValueError(f"normalize=True: the attribution of image {int(np.flatnonzero(ref == 0)[0])} is zero")
        out = out / ref[None]
    return out


def avg_sensitivity(method, model, x, target, radius=0.02, n_samples=16, rng=None, perturbations=None,
                    normalize=False, method_kwargs=None, batch_size=64):
    """Average sensitivity (Yeh et al. 2019, "On the (in)fidelity and sensitivity of explanations", eq. 6).

    ``SENS_AVG(Φ, f, x, r) = E_{δ ~ U(||δ||∞ <= r)} ||Φ(f, x + δ) - Φ(f, x)||₂``, estimated by
    the mean over ``n_samples`` draws (or over explicit ``perturbations`` ``(S, *x.shape)``).
    ``normalize`` divides by ``||Φ(f, x)||₂`` (Quantus always does).

    Parameters
    ----------
    method : callable ``(model, x, target, **method_kwargs) -> maps``
    model, x, target : as the method takes them
    radius : float
        L∞ radius of the ball the perturbations are drawn from.
    rng : Generator or int; required unless ``perturbations`` is given.
    batch_size : int
        Images per call of ``method``.

    Returns
    -------
    ndarray ``(N,)``
    """
    x = P.images(x)
    d = _draws(x, perturbations, "uniform", n_samples, radius, rng, "avg_sensitivity")
    return sensitivities(method, model, x, target, d, method_kwargs, batch_size, normalize).mean(axis=0)


def local_lipschitz_estimate(method, model, x, target, radius=0.1, n_samples=16, rng=None, perturbation="uniform",
                             perturbations=None, method_kwargs=None, batch_size=64):
    """Local Lipschitz estimate (Alvarez-Melis & Jaakkola 2018, "On the robustness of interpretability
    methods", eq. 3).

    ``L(x) = max_{x' ∈ B_ε(x)} ||Φ(f, x) - Φ(f, x')||₂ / ||x - x'||₂``, estimated by the maximum
    over ``n_samples`` random points ``x' = x + δ``: ``perturbation="uniform"`` draws ``δ``
    uniformly in the L∞ ball of radius ``radius`` (the paper's ``B_ε``), ``"gaussian"`` from
    ``N(0, radius²)`` (Quantus' choice, σ = 0.1); or explicit ``perturbations`` ``(S, *x.shape)``
    (a zero perturbation is refused: the ratio is undefined there).  Alvarez-Melis & Jaakkola
    also maximise with Bayesian optimisation; random search gives a lower bound.

    Parameters
    ----------
    method : callable ``(model, x, target, **method_kwargs) -> (N, ...)``
        The explanation method.
    model : model protocol object (``forward``, ``vjp``)
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable on the scores ``(N, K)``
    radius : float
    n_samples : int
    rng : numpy.random.Generator or int
    perturbation : ``"uniform"`` or ``"gaussian"``
    perturbations : ndarray ``(S, N, C, H, W)``, optional
    method_kwargs : dict, optional
        Options passed to ``method``.
    batch_size : int

    Returns
    -------
    ndarray ``(N,)``
    """
    x = P.images(x)
    d = _draws(x, perturbations, perturbation, n_samples, radius, rng, "local_lipschitz_estimate")
    dist = np.sqrt((d * d).reshape(d.shape[0], d.shape[1], -1).sum(axis=2))
    if np.any(dist == 0):
        s, i = np.argwhere(dist == 0)[0]
        raise ValueError(f"perturbation {s} of image {i} is zero: the Lipschitz ratio is undefined there")
    return (sensitivities(method, model, x, target, d, method_kwargs, batch_size) / dist).max(axis=0)
