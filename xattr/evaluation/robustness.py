"""The seeds' failure modes, measured: class sensitivity (mode collapse), fragility
(Ghorbani et al. 2019) and input-shift sensitivity (Kindermans et al. 2019).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._conventions import as_rng, check_image_batch
from ..testing import twins
from .similarity import compare_maps, pixel_magnitude, topk_intersection

__all__ = ["class_sensitivity", "fragility", "Fragility", "input_shift_sensitivity"]


def _predicted(model, x):
    return np.argmax(np.asarray(model.forward(x)), axis=1)


def class_sensitivity(method, model, x, target=None, other=None, metrics=("spearman", "spearman_abs"),
                      method_kwargs=None):
    """Similarity between the maps for two classes of the same image (seed 002: mode collapse).

    A method that explains the class gives different maps for the predicted class and for a
    class that is not in the image; guided backprop and DeconvNet are known to return
    nearly the same map for every class (Nie et al. 2018; Adebayo et al. 2018).

    Parameters
    ----------
    target : int or int array ``(N,)``, optional
        Default: the predicted class.
    other : int or int array ``(N,)``, optional
        Default: the lowest-scoring class (the one least present).
    metrics : see :func:`xattr.evaluation.similarity.compare_maps`

    Returns
    -------
    dict ``{metric: (N,)}`` plus ``"target"`` and ``"other"`` (the classes compared)
    """
    x = check_image_batch(x)
    s = np.asarray(model.forward(x))
    t = np.argmax(s, axis=1) if target is None else np.broadcast_to(np.asarray(target), (len(x),))
    o = np.argmin(s, axis=1) if other is None else np.broadcast_to(np.asarray(other), (len(x),))
    if np.any(t == o):
        raise ValueError("class_sensitivity compares two different classes; target and other coincide")
    kw = dict(method_kwargs or {})
    out = compare_maps(method(model, x, np.asarray(t), **kw), method(model, x, np.asarray(o), **kw), metrics)
    out.update(target=np.asarray(t), other=np.asarray(o))
    return out


@dataclass
class Fragility:
    """Result of :func:`fragility`.

    ``intersection (N,)``: top-k intersection after the search; ``random_intersection (N,)``:
    after the search's first random proposal (a random sign perturbation of size ``step``);
    ``perturbation``: the best ``δ`` found, ``|δ| <= epsilon``; ``label_kept (N,)``: the
    predicted label of ``x + δ`` equals that of ``x`` (always True: proposals that change it
    are rejected).
    """

    intersection: np.ndarray
    random_intersection: np.ndarray
    perturbation: np.ndarray
    label_kept: np.ndarray


def fragility(method, model, x, target=None, k=None, epsilon=0.05, step=None, n_iter=20, rng=None,
              clip=None, method_kwargs=None):
    """Fragility of interpretation (Ghorbani et al. 2019), with a simple random local search.

    The paper's measure: the top-``k`` intersection between the map of ``x`` and the map of
    ``x + δ``, for a perturbation ``||δ||∞ <= epsilon`` that keeps the predicted label.  The
    paper finds ``δ`` by gradient steps on a dissimilarity (which needs second derivatives);
    here each iteration proposes ``δ' = clip(δ + step · sign(N(0, 1)), -ε, ε)`` for every
    image and keeps it where the label is kept and the intersection drops.  Maps are
    compared per pixel as ``Σ_c |A|`` (the paper's saliency).

    Parameters
    ----------
    target : int or int array, optional
        Class explained; default the predicted class.
    k : int, optional
        Top-k size; default 10% of the pixels.
    epsilon, step : float
        L∞ radius; proposal size (default ``epsilon / 2``).
    n_iter : int
    rng : Generator or int (required)
    clip : (low, high), optional
        Valid data range of ``x + δ``.

    Returns
    -------
    Fragility
    """
    if rng is None:
        raise TypeError("fragility searches randomly: pass rng (a Generator or an int seed)")
    gen = as_rng(rng)
    x = check_image_batch(x)
    if not epsilon > 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")
    step = epsilon / 2 if step is None else float(step)
    if clip is not None and (np.any(x < clip[0]) or np.any(x > clip[1])):
        raise ValueError(f"x must lie inside the data range clip={tuple(clip)} to be perturbed within it")
    kw = dict(method_kwargs or {})
    label = _predicted(model, x)
    t = label if target is None else np.broadcast_to(np.asarray(target), (len(x),))
    m0 = pixel_magnitude(method(model, x, np.asarray(t), **kw))
    k = max(1, m0[0].size // 10) if k is None else int(k)
    delta = np.zeros_like(x)
    best = np.ones(len(x))
    first = None
    for _ in range(int(n_iter)):
        prop = np.clip(delta + step * np.sign(gen.normal(size=x.shape)), -epsilon, epsilon).astype(x.dtype)
        xp = x + prop
        if clip is not None:
            xp = np.clip(xp, *clip)
            prop = xp - x
        kept = _predicted(model, xp) == label
        inter = topk_intersection(m0, pixel_magnitude(method(model, xp, np.asarray(t), **kw)), k)
        if first is None:
            first = np.where(kept, inter, 1.0)
        better = kept & (inter < best)
        delta[better] = prop[better]
        best[better] = inter[better]
    label_kept = _predicted(model, x + delta) == label
    return Fragility(best, first if first is not None else best.copy(), delta, label_kept)


def input_shift_sensitivity(method, model, x, target, shift=1.0, baseline_arg=None, baseline=0.0,
                            shift_baseline=True, method_kwargs=None):
    """How much a map changes under Kindermans et al.'s constant input shift (0 = invariant).

    Compares ``A(f, x)`` with ``A(g, x + shift)`` where ``g(x + shift) = f(x)``
    (:func:`xattr.testing.twins.shifted_input_twin`).  For methods with a baseline
    (``baseline_arg``), the baseline moves with the input when ``shift_baseline``.

    Returns
    -------
    dict with ``"relative_l2"`` ``(N,)`` (``||A' - A|| / ||A||``, refused if ``A`` is 0) and
    ``"max_abs"`` ``(N,)`` (``max |A' - A|``)
    """
    x = check_image_batch(x)
    g = twins.shifted_input_twin(model, shift, in_channels=x.shape[1])
    c = np.asarray(shift, dtype=x.dtype)
    c = c.reshape((1, -1, 1, 1)) if c.ndim == 1 else c
    kw1 = dict(method_kwargs or {})
    kw2 = dict(kw1)
    if baseline_arg is not None:
        kw1[baseline_arg] = baseline
        kw2[baseline_arg] = np.asarray(baseline) + c if shift_baseline else baseline
    a = np.asarray(method(model, x, target, **kw1), dtype=np.float64).reshape(len(x), -1)
    b = np.asarray(method(g, x + c, target, **kw2), dtype=np.float64).reshape(len(x), -1)
    ref = np.linalg.norm(a, axis=1)
    if np.any(ref == 0):
        raise ValueError(f"the map of image {int(np.flatnonzero(ref == 0)[0])} is zero: relative change undefined")
    return {"relative_l2": np.linalg.norm(b - a, axis=1) / ref, "max_abs": np.abs(b - a).max(axis=1)}
