"""Sanity checks for saliency maps: model and data randomisation (Adebayo et al. 2018), smooth and
efficient MPRT (Hedström et al. 2023) and the random logit test (Sixt et al. 2020).

A map that explains the model must change when the model's parameters are randomised
(*model randomisation test*) and when the model is trained on randomly permuted labels
(*data randomisation test*).  Similarity to the original map is reported as Spearman rank
correlation with and without absolute values, and SSIM (:mod:`xattr.evaluation.similarity`).
:func:`edge_detector` is the paper's control: a map that depends on the image only, so it
passes through randomisation unchanged by construction.

Re-initialisation (:func:`xattr.testing.twins.random_weights_like`) draws each layer's new
weights from ``N(0, s²)`` with ``s`` the standard deviation of the weights they replace
(the paper re-draws from the network's initialiser, which a loaded model does not record).
Only ``model.layers`` and each layer's ``weight``/``bias`` are touched, on a copy.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .. import _targets
from .._conventions import as_rng, check_image_batch
from ..testing import twins
from . import _perturb as P
from .similarity import compare_maps
from .sparsity import discrete_entropy

__all__ = [
    "edge_detector", "cascading_randomization", "independent_randomization", "data_randomization",
    "permuted_labels", "RandomizationResult", "smooth_mprt", "efficient_mprt", "EfficientMPRT", "random_logit",
    "RandomLogit", "smoothed", "redraw",
]

DEFAULT_METRICS = ("spearman", "spearman_abs", "ssim")


def edge_detector(model, x, target=None):
    """Sobel gradient magnitude of the channel mean, ``(N, 1, H, W)``: ignores ``model`` and ``target``.

    ``sqrt((S_h * m)² + (S_w * m)²)`` with ``m`` the mean over channels and ``S`` the Sobel
    operators (``[1, 2, 1] ⊗ [-1, 0, 1]``, borders reflected).  Adebayo et al. 2018 use an edge
    detector as the model-independent control of the randomisation tests.

    Parameters
    ----------
    model : object
        Ignored.
    x : ndarray ``(N, C, H, W)``
    target : object, optional
        Ignored.

    Returns
    -------
    ndarray ``(N, 1, H, W)``, ``x.dtype``
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


ORDERS = ("top_down", "bottom_up")


def _layer_order(model, layers, order="top_down"):
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    names = twins.parametric_layer_names(model) if layers is None else [model[k].name for k in layers]
    if not names:
        raise ValueError("the model has no layers with weights to randomise")
    if layers is not None:
        return names
    return names[::-1] if order == "top_down" else names


def redraw(model, name, gen):
    """The default re-initialisation: layer ``name`` re-drawn from ``N(0, s²)`` (a new model).

    Parameters
    ----------
    model : Graph or Sequential
    name : str
        The layer to re-draw.
    gen : numpy.random.Generator

    Returns
    -------
    Graph or Sequential
        A new model; ``model`` is not modified.
    """
    return twins.random_weights_like(model, gen, layers=[name])


def _randomization(method, model, x, target, rng, layers, metrics, cascade, method_kwargs, order="top_down", k=None,
                   randomize=None):
    gen = as_rng(rng)
    randomize = redraw if randomize is None else randomize
    order = _layer_order(model, layers, order)
    original = _run(method, model, x, target, method_kwargs)
    current = model
    maps, scores = [], {m: [] for m in metrics}
    for name in order:
        base = current if cascade else model
        current = randomize(base, name, gen)
        a = _run(method, current, x, target, method_kwargs)
        maps.append(a)
        try:
            sim = compare_maps(original, a, metrics, k=k)
        except ValueError as exc:
            raise ValueError(f"after randomising {name!r}: {exc}") from None
        for m in metrics:
            scores[m].append(sim[m])
    return RandomizationResult(order, {m: np.stack(v) for m, v in scores.items()}, original, maps)


def cascading_randomization(method, model, x, target, rng, layers=None, metrics=DEFAULT_METRICS,
                            method_kwargs=None, order="top_down", k=None, randomize=None):
    """Cascading model-parameter randomisation (Adebayo et al. 2018, §3.1).

    Randomise the layers with weights from the top (logits) down, cumulatively, and compare
    each step's maps with the original ones.  A map that explains the model degrades as
    more layers lose their trained weights.  The paper's similarity measures are Spearman rank
    correlation with and without absolute values, SSIM and the Pearson correlation of the
    maps' histograms of gradients (``"hog"``).

    Parameters
    ----------
    method : callable ``(model, x, target, **method_kwargs) -> ndarray``
    model : Sequential
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable
    rng : Generator or int
    layers : list of layer names or indices, optional
        Randomisation order (default: every layer with weights, top down).
    metrics : tuple of names from :func:`xattr.evaluation.similarity.compare_maps`
        (``"spearman"``, ``"spearman_abs"``, ``"ssim"``, ``"hog"``, ``"pearson"``, ``"topk"``);
        ``ssim`` needs maps of at least 11x11, ``topk`` needs ``k``.
    order : ``"top_down"`` (the paper's, default) or ``"bottom_up"`` (when ``layers`` is None)
    randomize : callable ``(model, layer_name, rng) -> model``, optional
        How a layer is re-initialised (default :func:`redraw`); it must return a new model and
        leave its argument unchanged.  E.g. a framework's own initialiser, to compare with a peer.

    Returns
    -------
    RandomizationResult
    """
    return _randomization(method, model, x, target, rng, layers, metrics, True, method_kwargs, order, k, randomize)


def independent_randomization(method, model, x, target, rng, layers=None, metrics=DEFAULT_METRICS,
                              method_kwargs=None, order="top_down", k=None, randomize=None):
    """Independent (layer-by-layer) randomisation (Adebayo et al. 2018, §3.1): one layer at a time.

    Parameters as :func:`cascading_randomization`; every step starts from the trained model.

    Parameters
    ----------
    method, model, x, target, rng, layers, metrics, method_kwargs, order, k, randomize
        As :func:`cascading_randomization`.

    Returns
    -------
    RandomizationResult
    """
    return _randomization(method, model, x, target, rng, layers, metrics, False, method_kwargs, order, k, randomize)


def smoothed(method, noise, rng, n_samples=50, batch_size=64, draws=None):
    """``method`` averaged over noisy copies of its input: ``ê(x) = 1/S Σ_s e(x + ε_s)``.

    ``ε_s ~ N(0, σ²)`` with ``σ = noise · (max x_n - min x_n)`` per image (Hedström et al. 2023,
    as SmoothGrad's noise level).  The draws are made once, on the first call, and reused on every
    later call with images of that shape, so the original and the randomised models see the
    same noisy inputs.  ``draws`` ``(S, *x.shape)``: explicit standard-normal draws instead.

    Parameters
    ----------
    method : callable ``(model, x, target, **method_kwargs) -> (N, ...)``
        The explanation method.
    noise : float
        The noise level relative to each image's range.
    rng : numpy.random.Generator or int
    n_samples : int
        ``S``.
    batch_size : int
        Noisy images per call of ``method``.
    draws : ndarray ``(S, N, C, H, W)``, optional

    Returns
    -------
    callable ``(model, x, target, **kw) -> (N, ...)``
    """
    gen = None if draws is not None else as_rng(rng)
    cache = {}

    def explain(model, x, target, **kw):
        x = check_image_batch(x)
        if x.shape not in cache:
            z = P.check_perturbations(draws, x, "draws") if draws is not None else \
                gen.standard_normal((int(n_samples),) + x.shape)
            cache[x.shape] = z
        z = cache[x.shape]
        sigma = noise * (x.max(axis=(1, 2, 3), keepdims=True) - x.min(axis=(1, 2, 3), keepdims=True))
        total = None
        for _lo, _hi, a in P.explained_chunks(method, model, x, target, x[None] + sigma[None] * z, kw, batch_size):
            part = a.sum(axis=0)
            total = part if total is None else total + part
        return total / len(z)

    explain.__name__ = f"smoothed({getattr(method, '__name__', 'method')})"
    return explain


def smooth_mprt(method, model, x, target, rng, n_samples=50, noise=0.1, cascade=True, order="bottom_up",
                layers=None, metrics=("spearman",), method_kwargs=None, batch_size=64, k=None, randomize=None,
                draws=None):
    """Smooth MPRT, sMPRT (Hedström et al. 2023, "Sanity checks revisited: an exploration to repair
    the model parameter randomisation test", §3).

    The model-parameter randomisation test on *denoised* explanations: every map (of the original
    and of each randomised model) is the mean of the method over ``n_samples`` noisy copies of the
    input, ``σ = noise · (max - min)`` per image (:func:`smoothed`; the same noise for every
    model), which removes the shattered-gradient noise that MPRT otherwise mistakes for a change.
    Defaults as Quantus' ``SmoothMPRT``: bottom-up order, Spearman rank correlation.
    ``randomize`` as in :func:`cascading_randomization`; ``draws`` ``(S, *x.shape)``: explicit
    standard-normal noise (:func:`smoothed`).

    Parameters
    ----------
    method : callable ``(model, x, target, **method_kwargs) -> (N, ...)``
        The explanation method.
    model : model protocol object (``forward``, ``vjp``)
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable on the scores ``(N, K)``
    rng : numpy.random.Generator or int
    n_samples : int
    noise : float
    cascade : bool
        Cascading (True) or independent randomisation.
    order : ``"bottom_up"`` or ``"top_down"``
    layers : list of str, optional
    metrics : tuple of str
        Names of :func:`xattr.evaluation.similarity.compare_maps`.
    method_kwargs : dict, optional
        Options passed to ``method``.
    batch_size : int
    k : int, optional
        For the ``topk`` metric.
    randomize : callable ``(model, name, gen) -> model``, optional
    draws : ndarray ``(S, N, C, H, W)``, optional

    Returns
    -------
    RandomizationResult (``original`` and ``maps`` are the smoothed maps)
    """
    gen = as_rng(rng)
    smooth = smoothed(method, noise, gen, n_samples, batch_size, draws)
    return _randomization(smooth, model, x, target, gen, layers, metrics, cascade, method_kwargs, order, k,
                          randomize)


@dataclass
class EfficientMPRT:
    """Result of :func:`efficient_mprt`: ``rise (N,) = H_random / H_original - 1``, the two entropies, the maps."""

    rise: np.ndarray
    complexity_original: np.ndarray
    complexity_random: np.ndarray
    original: np.ndarray
    randomised: np.ndarray


def efficient_mprt(method, model, x, target, rng, n_bins=100, method_kwargs=None, absolute=False, randomize=None,
                   order="bottom_up"):
    """Efficient MPRT, eMPRT (Hedström et al. 2023, §3): the relative rise in explanation complexity
    when every layer's parameters are randomised.

    ``eMPRT = (H(ê) - H(e)) / H(e)`` with ``e`` the map of the trained model, ``ê`` the map of the
    fully randomised model (every layer with weights re-drawn, as in :func:`cascading_randomization`)
    and ``H`` the discrete entropy of the map's histogram with ``n_bins`` bins
    (:func:`xattr.evaluation.sparsity.discrete_entropy`).  A map that depends on the
    parameters becomes noise-like, hence more complex: a positive rise.  ``absolute``: histogram
    of ``|map|``.  An original map of zero entropy (constant) is refused.  With ``randomize``
    (see :func:`cascading_randomization`) the layers are re-initialised one after the other in
    ``order``; by default all at once (:func:`xattr.testing.twins.random_weights_like`).

    Parameters
    ----------
    method : callable ``(model, x, target, **method_kwargs) -> (N, ...)``
        The explanation method.
    model : model protocol object (``forward``, ``vjp``)
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable on the scores ``(N, K)``
    rng : numpy.random.Generator or int
    n_bins : int
    method_kwargs : dict, optional
        Options passed to ``method``.
    absolute : bool
    randomize : callable ``(model, name, gen) -> model``, optional
    order : ``"bottom_up"`` or ``"top_down"``

    Returns
    -------
    EfficientMPRT
    """
    gen = as_rng(rng)
    e = _run(method, model, x, target, method_kwargs)
    if randomize is None:
        full = twins.random_weights_like(model, gen)
    else:
        full = model
        for name in _layer_order(model, None, order):
            full = randomize(full, name, gen)
    r = _run(method, full, x, target, method_kwargs)
    if absolute:
        e, r = np.abs(e), np.abs(r)
    h0 = discrete_entropy(e, n_bins)
    h1 = discrete_entropy(r, n_bins)
    bad = np.flatnonzero(h0 == 0)
    if bad.size:
        raise ValueError(f"the original map of image {int(bad[0])} has zero entropy (constant): the relative rise "
                         "is undefined")
    return EfficientMPRT(h1 / h0 - 1.0, h0, h1, e, r)


@dataclass
class RandomLogit:
    """Result of :func:`random_logit`: ``similarity {metric: (N,)}``, the classes explained (``target``, ``other``)."""

    similarity: dict
    target: np.ndarray
    other: np.ndarray


def random_logit(method, model, x, target, rng, metrics=("ssim",), method_kwargs=None, k=None):
    """Random logit test (Sixt et al. 2020, "When explanations lie: why many modified BP attributions
    fail", §5): the similarity between the map of the target class and the map of a class drawn
    uniformly among the others.  A class-sensitive explanation gives dissimilar maps.

    Parameters
    ----------
    target : int, int array ``(N,)`` or callable returning classes
    rng : Generator or int
    metrics : names from :func:`xattr.evaluation.similarity.compare_maps` (default SSIM, as Sixt et
        al. and Quantus; xattr's SSIM compares 2-D maps ``Σ_c |A|``)

    Returns
    -------
    RandomLogit
    """
    gen = as_rng(rng)
    x = check_image_batch(x)
    s = np.asarray(model.forward(x))
    n, K = s.shape
    if K < 2:
        raise ValueError("random_logit needs a model with at least two outputs")
    if callable(target):
        target = np.asarray(target(s))
    t = _targets._classes(target, n, K)
    o = gen.integers(0, K - 1, n)
    o = o + (o >= t)  # uniform over the K - 1 other classes
    kw = dict(method_kwargs or {})
    sim = compare_maps(method(model, x, t, **kw), method(model, x, o, **kw), metrics, k=k)
    return RandomLogit(sim, t, o)


def permuted_labels(y, rng):
    """A random permutation of the labels ``y`` (the data randomisation test trains on these).

    Parameters
    ----------
    y : array ``(M,)``
    rng : numpy.random.Generator or int

    Returns
    -------
    array ``(M,)``
    """
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

    Parameters
    ----------
    method : callable ``(model, x, target, **method_kwargs) -> (N, ...)``
        The explanation method.
    model, model_random_labels : model protocol objects
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable
    metrics : tuple of str
        Names of :func:`xattr.evaluation.similarity.compare_maps`.
    method_kwargs : dict, optional
        Options passed to ``method``.

    Returns
    -------
    dict str -> ndarray ``(N,)``
    """
    a = _run(method, model, x, target, method_kwargs)
    b = _run(method, model_random_labels, x, target, method_kwargs)
    return compare_maps(a, b, metrics)
