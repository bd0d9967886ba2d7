"""Sanity checks for saliency maps (Adebayo et al. 2018).

A map that explains the model must change when the model's parameters are randomised
(*model randomisation test*) and when the model is trained on randomly permuted labels
(*data randomisation test*).  Similarity to the original map is reported as Spearman rank
correlation with and without absolute values, and SSIM (:mod:`xattr.evaluation.similarity`).
:func:`edge_detector` is the paper's control: a map that depends on the image only, so it
passes through randomisation unchanged by construction.

Re-initialisation (:func:`xattr.testing.twins.random_weights_like`) draws each layer's new
weights from ``N(0, s²)`` with ``s`` the standard deviation of the weights they replace
(the paper re-draws from the network's initialiser, which a loaded model does not record).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .._conventions import as_rng, check_image_batch
from ..testing import twins
from .similarity import compare_maps

__all__ = [
    "edge_detector", "cascading_randomization", "independent_randomization", "data_randomization",
    "permuted_labels", "RandomizationResult",
]

DEFAULT_METRICS = ("spearman", "spearman_abs", "ssim")


def edge_detector(model, x, target=None):
    """Sobel gradient magnitude of the channel mean, ``(N, 1, H, W)``: ignores ``model`` and ``target``.

    ``sqrt((S_h * m)² + (S_w * m)²)`` with ``m`` the mean over channels and ``S`` the Sobel
    operators (``[1, 2, 1] ⊗ [-1, 0, 1]``, borders reflected).  Adebayo et al. 2018 use an edge
    detector as the model-independent control of the randomisation tests.
    """
    x = check_image_batch(x)
    m = np.asarray(x, dtype=np.float64).mean(axis=1)
    # ndimage.sobel on (N, H, W) would also smooth across the batch axis: apply the two 1-D
    # factors of each Sobel kernel along the spatial axes only.
    d, s = [-1.0, 0.0, 1.0], [1.0, 2.0, 1.0]
    gh = ndimage.correlate1d(ndimage.correlate1d(m, d, axis=1, mode="reflect"), s, axis=2, mode="reflect")
    gw = ndimage.correlate1d(ndimage.correlate1d(m, d, axis=2, mode="reflect"), s, axis=1, mode="reflect")
    return np.sqrt(gh * gh + gw * gw)[:, None].astype(x.dtype, copy=False)


@dataclass
class RandomizationResult:
    """Similarity of the maps after each randomisation step to the original maps.

    Attributes
    ----------
    layers : list of str
        Step ``i`` randomised ``layers[i]`` (cascading: together with all before it).
    metrics : dict ``name -> ndarray (steps, N)``
    original : ndarray
        The maps of the unchanged model.
    maps : list of ndarray
        The maps after each step (same order as ``layers``).
    """

    layers: list
    metrics: dict
    original: np.ndarray
    maps: list = field(default_factory=list)

    def mean(self):
        """``{metric: (steps,)}``: the mean over images of each step."""
        return {k: v.mean(axis=1) for k, v in self.metrics.items()}


def _run(method, model, x, target, method_kwargs):
    return np.asarray(method(model, x, target, **(method_kwargs or {})))


def _layers_top_down(model, layers):
    names = twins.parametric_layer_names(model) if layers is None else [model[k].name for k in layers]
    if not names:
        raise ValueError("the model has no layers with weights to randomise")
    return names[::-1] if layers is None else names


def _randomization(method, model, x, target, rng, layers, metrics, cascade, method_kwargs):
    gen = as_rng(rng)
    order = _layers_top_down(model, layers)
    original = _run(method, model, x, target, method_kwargs)
    current = model
    maps, scores = [], {m: [] for m in metrics}
    for name in order:
        base = current if cascade else model
        current = twins.random_weights_like(base, gen, layers=[name])
        a = _run(method, current, x, target, method_kwargs)
        maps.append(a)
        try:
            sim = compare_maps(original, a, metrics)
        except ValueError as exc:
            raise ValueError(f"after randomising {name!r}: {exc}") from None
        for m in metrics:
            scores[m].append(sim[m])
    return RandomizationResult(order, {m: np.stack(v) for m, v in scores.items()}, original, maps)


def cascading_randomization(method, model, x, target, rng, layers=None, metrics=DEFAULT_METRICS,
                            method_kwargs=None):
    """Cascading model-parameter randomisation (Adebayo et al. 2018, §3.1).

    Randomise the layers with weights from the top (logits) down, cumulatively, and compare
    each step's maps with the original ones.  A map that explains the model degrades as
    more layers lose their trained weights.

    Parameters
    ----------
    method : callable ``(model, x, target, **method_kwargs) -> ndarray``
    model : Sequential
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable
    rng : Generator or int
    layers : list of layer names or indices, optional
        Randomisation order (default: every layer with weights, top down).
    metrics : tuple of ``"spearman"``, ``"spearman_abs"``, ``"ssim"``, ``"topk"``
        ``ssim`` needs maps of at least 11x11.

    Returns
    -------
    RandomizationResult
    """
    return _randomization(method, model, x, target, rng, layers, metrics, True, method_kwargs)


def independent_randomization(method, model, x, target, rng, layers=None, metrics=DEFAULT_METRICS,
                              method_kwargs=None):
    """Independent (layer-by-layer) randomisation (Adebayo et al. 2018, §3.1): one layer at a time."""
    return _randomization(method, model, x, target, rng, layers, metrics, False, method_kwargs)


def permuted_labels(y, rng):
    """A random permutation of the labels ``y`` (the data randomisation test trains on these)."""
    y = np.asarray(y)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {y.shape}")
    return as_rng(rng).permutation(y)


def data_randomization(method, model, model_random_labels, x, target, metrics=DEFAULT_METRICS,
                       method_kwargs=None):
    """Data randomisation test (Adebayo et al. 2018, §3.2): maps of a model and of the same
    architecture trained on permuted labels (:func:`permuted_labels`), compared per image.

    Training is the caller's (xattr's stack has parameter gradients; see ``xattr.data``).
    Returns ``{metric: (N,)}``; high similarity means the map does not depend on what the
    model learned from the labels.
    """
    a = _run(method, model, x, target, method_kwargs)
    b = _run(method, model_random_labels, x, target, method_kwargs)
    return compare_maps(a, b, metrics)
