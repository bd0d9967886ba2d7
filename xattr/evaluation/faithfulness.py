"""Faithfulness: deletion and insertion curves (Petsiuk et al. 2018), infidelity and
max-sensitivity (Yeh et al. 2019).

Deletion removes features in decreasing order of attribution, replacing them by a named
baseline, and records the target score; a faithful map makes it fall fast (low AUC).
Insertion starts from the baseline and puts features back; a faithful map makes it rise
fast (high AUC).  The unit of a *feature* follows the map's shape: a map of ``x``'s shape
ranks every input element; a map ``(N, H, W)`` or ``(N, 1, H, W)`` ranks pixels (all
channels of a pixel move together).  Ties in the ranking: raster order (first first).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .. import _targets
from .._conventions import as_float_array, as_rng, check_image_batch
from ..model import check_model

__all__ = ["deletion_curve", "insertion_curve", "Curve", "infidelity", "max_sensitivity", "blurred"]

#: default sigma (pixels) of the blurred image that insertion starts from (our choice, stated).
BLUR_SIGMA = 5.0


@dataclass
class Curve:
    """A deletion or insertion curve.

    Attributes
    ----------
    fractions : ndarray ``(S + 1,)``
        Fraction of features removed (deletion) or inserted (insertion), from 0 to 1.
    scores : ndarray ``(N, S + 1)``
        The target score (or probability) at each fraction.
    auc : ndarray ``(N,)``
        Trapezoid area under ``scores`` over ``fractions``.
    baseline : str
        What replaced the features (``"0.0"``, ``"blur(sigma=5)"``, ``"array"``, ...).
    """

    fractions: np.ndarray
    scores: np.ndarray
    auc: np.ndarray
    baseline: str


def blurred(x, sigma=BLUR_SIGMA):
    """``x`` with each channel blurred by a Gaussian of ``sigma`` pixels (borders reflected)."""
    x = check_image_batch(x)
    return ndimage.gaussian_filter(np.asarray(x, dtype=np.float64), sigma=(0, 0, sigma, sigma),
                                   mode="reflect").astype(x.dtype, copy=False)


def _baseline(baseline, x, blur_sigma):
    if isinstance(baseline, str):
        if baseline != "blur":
            raise ValueError(f"baseline must be a number, an array, a callable or 'blur', got {baseline!r}")
        return blurred(x, blur_sigma), f"blur(sigma={blur_sigma:g})"
    if callable(baseline):
        b, label = baseline(x), getattr(baseline, "__name__", "callable")
    else:
        b = baseline
        label = f"{float(b):g}" if np.ndim(b) == 0 else "array"
    b = as_float_array(b, "baseline")
    try:
        b = np.broadcast_to(b, x.shape).astype(x.dtype)
    except ValueError:
        raise ValueError(f"baseline of shape {b.shape} does not broadcast to x's shape {x.shape}") from None
    return b, label


def _feature_ranks(attribution, x):
    """``(ranks (N, F), expand)``: rank 0 = most important feature; ``expand`` maps ``(N, F)`` masks to ``x``."""
    a = as_float_array(attribution, "attribution")
    n, c, h, w = x.shape
    if a.shape == x.shape:
        flat = a.reshape(n, -1)
        expand = lambda m: m.reshape(x.shape)  # noqa: E731
    elif a.shape in ((n, h, w), (n, 1, h, w)):
        flat = a.reshape(n, -1)
        expand = lambda m: np.broadcast_to(m.reshape(n, 1, h, w), x.shape)  # noqa: E731
    else:
        raise ValueError(
            f"attribution must have x's shape {x.shape} (features = elements) or (N, H, W) / (N, 1, H, W) = "
            f"({n}, {h}, {w}) (features = pixels), got {a.shape}"
        )
    const = np.flatnonzero(np.ptp(flat, axis=1) == 0)
    if const.size:
        raise ValueError(f"attribution[{int(const[0])}] is constant: it gives no order to remove features in")
    order = np.argsort(-flat, axis=1, kind="stable")  # ties: raster order
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(flat.shape[1])[None], axis=1)
    return ranks, expand


def _score_fn(model, target, score):
    if score not in ("logit", "probability"):
        raise ValueError(f"score must be 'logit' or 'probability', got {score!r}")

    def f(xs, reps):
        s = np.asarray(model.forward(xs), dtype=np.float64)
        if score == "probability":
            if callable(target):
                raise ValueError("score='probability' needs a class target (int or int array), not a callable")
            s = np.exp(s - s.max(axis=1, keepdims=True))
            s /= s.sum(axis=1, keepdims=True)
        t = target if callable(target) or np.ndim(target) == 0 else np.tile(np.asarray(target), reps)
        return _targets.selected(t, s)

    return f


def _curve(model, x, target, attribution, baseline, n_steps, score, batch_size, blur_sigma, insert):
    check_model(model)
    x = check_image_batch(x)
    base, label = _baseline(baseline, x, blur_sigma)
    ranks, expand = _feature_ranks(attribution, x)
    n, F = ranks.shape
    steps = F if n_steps is None else int(n_steps)
    if not 1 <= steps <= F:
        raise ValueError(f"n_steps must be between 1 and the number of features {F}, got {n_steps}")
    counts = np.round(np.linspace(0, F, steps + 1)).astype(np.intp)
    f = _score_fn(model, target, score)
    scores = np.empty((n, steps + 1))
    per_chunk = max(1, int(batch_size) // n)
    for lo in range(0, steps + 1, per_chunk):
        ks = counts[lo : lo + per_chunk]
        moved = expand_many(ranks, ks, expand)  # (len(ks), N, ...) True where a feature has moved
        src, dst = (base, x) if insert else (x, base)
        xs = np.where(moved, dst, src).reshape((-1,) + x.shape[1:])
        scores[:, lo : lo + len(ks)] = f(xs, len(ks)).reshape(len(ks), n).T
    fr = counts / F
    auc = ((scores[:, 1:] + scores[:, :-1]) / 2 * np.diff(fr)).sum(axis=1)
    return Curve(fr, scores, auc, label)


def expand_many(ranks, ks, expand):
    return np.stack([expand(ranks < k) for k in ks])


def deletion_curve(model, x, target, attribution, baseline=0.0, n_steps=None, score="logit", batch_size=256,
                   blur_sigma=BLUR_SIGMA):
    """Deletion curve and its AUC (Petsiuk et al. 2018, "RISE"): lower is more faithful.

    Parameters
    ----------
    model : model protocol object
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable
    attribution : ndarray, ``x``'s shape or ``(N, [1,] H, W)``
    baseline : float, array, callable ``x -> array`` or ``"blur"``
        What a deleted feature becomes; default 0 (the paper's deletion uses a constant).
    n_steps : int, optional
        Points of the curve after 0; default one per feature.  Step ``k`` moves
        ``round(k F / n_steps)`` features.
    score : ``"logit"`` (the target's score, default) or ``"probability"`` (softmax, as the paper)
    batch_size : int
        Images per forward pass (bounds memory).

    Returns
    -------
    Curve
    """
    return _curve(model, x, target, attribution, baseline, n_steps, score, batch_size, blur_sigma, insert=False)


def insertion_curve(model, x, target, attribution, baseline="blur", n_steps=None, score="logit", batch_size=256,
                    blur_sigma=BLUR_SIGMA):
    """Insertion curve and its AUC (Petsiuk et al. 2018): higher is more faithful.

    Starts from ``baseline`` (default a Gaussian blur of ``x``, as the paper's insertion)
    and puts back features in decreasing order of attribution.  Parameters as
    :func:`deletion_curve`.
    """
    return _curve(model, x, target, attribution, baseline, n_steps, score, batch_size, blur_sigma, insert=True)


# -- Yeh et al. 2019 ---------------------------------------------------------------------------
def _perturbations(kind_of_noise, x, n_samples, sigma, square, gen):
    n = x.shape[0]
    if kind_of_noise == "gaussian":
        return gen.normal(0.0, sigma, (n_samples,) + x.shape)
    if kind_of_noise == "square":
        h, w = x.shape[2:]
        if not 1 <= square <= min(h, w):
            raise ValueError(f"square must be between 1 and {min(h, w)}, got {square}")
        top = gen.integers(0, h - square + 1, (n_samples, n))
        left = gen.integers(0, w - square + 1, (n_samples, n))
        rows = np.arange(h)[None, None, :, None]
        cols = np.arange(w)[None, None, None, :]
        m = ((rows >= top[..., None, None]) & (rows < top[..., None, None] + square)
             & (cols >= left[..., None, None]) & (cols < left[..., None, None] + square))
        return np.broadcast_to(m[:, :, None], (n_samples,) + x.shape).astype(np.float64)
    raise ValueError(f"perturbation must be 'gaussian', 'square' or an array, got {kind_of_noise!r}")


def infidelity(model, x, target, attribution, perturbation="gaussian", n_samples=64, rng=None, sigma=0.1,
               square=4, kind="local", baseline=0.0, normalize=False, batch_size=256):
    """Infidelity (Yeh et al. 2019): ``E_I[(Iᵀ Φ - (f(x) - f(x - I)))²]`` per image.

    Parameters
    ----------
    model, x, target
    attribution : ndarray, ``x``'s shape
    perturbation : ``"gaussian"``, ``"square"`` or ndarray ``(S, *x.shape)``
        ``"gaussian"``: entries ``N(0, sigma²)``.  ``"square"``: a random ``square x square``
        patch (all channels) moved to the baseline.  An array gives the perturbations
        explicitly (``I`` for ``kind="local"``, ``z`` for ``kind="global"``).
    kind : ``"local"`` or ``"global"``
        ``"local"`` for gradient-like attributions: ``I`` as drawn (for ``"square"``:
        ``I = 1_square ⊙ (x - baseline)``) and the dot product ``Iᵀ Φ``.  ``"global"`` for
        attributions that already multiply by ``x - baseline`` (gradient×input, IG,
        DeepLIFT): the draw is a fraction ``z``, ``I = z ⊙ (x - baseline)`` and the dot
        product ``zᵀ Φ`` (Captum's ``multiply_by_inputs``, without its division).
    normalize : bool
        Scale ``Φ`` by the optimal ``β = E[IᵀΦ Δf] / E[(IᵀΦ)²]`` first (Yeh et al. 2019, §3).
    rng : Generator or int; required unless ``perturbation`` is an array.
    batch_size : int
        Perturbed images per forward pass (bounds memory).

    Returns
    -------
    ndarray ``(N,)``, non-negative.
    """
    check_model(model)
    x = check_image_batch(x)
    x_dtype = x.dtype
    x = np.asarray(x, dtype=np.float64)
    phi = as_float_array(attribution, "attribution")
    if phi.shape != x.shape:
        raise ValueError(f"attribution must have x's shape {x.shape}, got {phi.shape}")
    if kind not in ("local", "global"):
        raise ValueError(f"kind must be 'local' or 'global', got {kind!r}")
    base = np.broadcast_to(as_float_array(baseline, "baseline"), x.shape)
    if isinstance(perturbation, str):
        if rng is None:
            raise TypeError("infidelity draws random perturbations: pass rng (a Generator or an int seed)")
        draws = _perturbations(perturbation, x, int(n_samples), sigma, int(square), as_rng(rng))
        if perturbation == "square" and kind == "local":
            draws = draws * (x - base)
    else:
        draws = as_float_array(perturbation, "perturbation")
        if draws.ndim != x.ndim + 1 or draws.shape[1:] != x.shape:
            raise ValueError(f"perturbation array must have shape (S, *x.shape) = (S, {x.shape}), got {draws.shape}")
    I = draws * (x - base) if kind == "global" else draws
    s, n = I.shape[:2]
    fx = _targets.selected(target, np.asarray(model.forward(x), dtype=np.float64))
    delta = np.empty((s, n))
    per_chunk = max(1, int(batch_size) // n)
    for lo in range(0, s, per_chunk):
        chunk = I[lo : lo + per_chunk]
        reps = target if callable(target) or np.ndim(target) == 0 else np.tile(np.asarray(target), len(chunk))
        xs = (x[None] - chunk).reshape((-1,) + x.shape[1:]).astype(x_dtype, copy=False)
        f_minus = _targets.selected(reps, np.asarray(model.forward(xs), dtype=np.float64))
        delta[lo : lo + len(chunk)] = fx[None] - f_minus.reshape(len(chunk), n)
    dot = (draws.reshape(s, n, -1) * np.asarray(phi, dtype=np.float64).reshape(1, n, -1)).sum(axis=2)  # (S, N)
    if normalize:
        den = (dot * dot).mean(axis=0)
        beta = np.divide((dot * delta).mean(axis=0), den, out=np.ones_like(den), where=den > 0)
        dot = dot * beta
    return ((dot - delta) ** 2).mean(axis=0)


def max_sensitivity(method, model, x, target, radius=0.02, n_samples=16, rng=None, perturbations=None,
                    normalize=False, method_kwargs=None):
    """Max-sensitivity (Yeh et al. 2019): ``max_{||y - x||∞ <= r} ||Φ(f, y) - Φ(f, x)||₂`` per image.

    Estimated by Monte Carlo over ``n_samples`` points drawn uniformly in the L∞ ball of
    radius ``radius`` (as Captum's ``sensitivity_max``), or over explicit ``perturbations``
    ``(S, *x.shape)``.  ``normalize`` divides by ``||Φ(f, x)||₂`` (refused if that is 0).

    Returns
    -------
    ndarray ``(N,)``
    """
    check_model(model)
    x = check_image_batch(x)
    kw = dict(method_kwargs or {})
    a0 = np.asarray(method(model, x, target, **kw), dtype=np.float64)
    if perturbations is None:
        if rng is None:
            raise TypeError("max_sensitivity draws random perturbations: pass rng (a Generator or an int seed)")
        if not radius > 0:
            raise ValueError(f"radius must be positive, got {radius}")
        perturbations = as_rng(rng).uniform(-radius, radius, (int(n_samples),) + x.shape)
    d = as_float_array(perturbations, "perturbations")
    if d.ndim != x.ndim + 1 or d.shape[1:] != x.shape:
        raise ValueError(f"perturbations must have shape (S, *x.shape), got {d.shape}")
    best = np.zeros(x.shape[0])
    for delta in d:
        a = np.asarray(method(model, (x + delta).astype(x.dtype), target, **kw), dtype=np.float64)
        best = np.maximum(best, np.linalg.norm((a - a0).reshape(len(a0), -1), axis=1))
    if normalize:
        ref = np.linalg.norm(a0.reshape(len(a0), -1), axis=1)
        if np.any(ref == 0):
            raise ValueError(f"normalize=True: the attribution of image {int(np.flatnonzero(ref == 0)[0])} is zero")
        best = best / ref
    return best
