"""Plumbing shared by the perturbation metrics: features, orders, replacement values, scores in chunks.

* A *feature* follows the attribution's shape: an attribution of ``x``'s shape ranks every input
  element; a map ``(N, H, W)`` or ``(N, 1, H, W)`` ranks pixels (all channels of a pixel move together).
* Orders: ``"morf"`` (most relevant first, Samek et al. 2017) sorts by decreasing attribution,
  ``"lerf"`` (least relevant first) by increasing attribution; ties keep raster order (first first).
* Scores: ``"logit"`` (the target's output), ``"probability"`` (its softmax), ``"accuracy"``
  (1 where the arg-max is the target class, else 0).  Class targets are fixed on the
  unperturbed images, so a perturbed image is always scored on the class being explained.
* Only ``model.forward(x) -> (N, K)`` is used; perturbed images go through it in chunks of at most
  ``batch_size`` images (bounded memory), in ``x``'s dtype; scores are read as float64.
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import _targets
from .._conventions import as_float_array, as_rng, check_image_batch
from .._progress import Progress  # tqdm when installed, else a counter on stderr
from ..inputs import check_batch_size
from ..methods.perturbation._common import _check_model, _scores

SCORES = ("logit", "probability", "accuracy")
ORDERS = ("morf", "lerf")
#: ``batch_size`` is model input rows per call (:mod:`xattr.inputs`); when it is None (the default) the metrics'
#: forward-only scorers take this many input values per pass: 13 images at 3x224x224, 256 (the cap) at 3x32x32.
#: Measured for a 225-point deletion curve at 224x224 (small CNN, float64, this 2-core machine): 1, 4, 16, 64
#: images per pass took 27, 16, 12.6, 20 s.  (The cost model of :func:`xattr.inputs.rows_per_call` sizes
#: forward–backward chunks; a scorer is a function of the images, with no layers to profile.)
DEFAULT_CHUNK_VALUES = 2**21
MAX_BATCH_SIZE = 256


#: refuse objects without ``forward``: the metrics need nothing else of a model (the perturbation methods' check)
check_forward = _check_model


def forward(model, x):
    """The scores ``(N, K)`` float64 of ``model.forward(x)``, refused in one line if another shape comes back."""
    return _scores(model, x).astype(np.float64, copy=False)


def batch_size_arg(batch_size, values_per_image=None):
    """``batch_size`` validated; None -> about :data:`DEFAULT_CHUNK_VALUES` input values per pass."""
    if batch_size is None:
        if values_per_image is None:
            return 64
        return int(min(MAX_BATCH_SIZE, max(1, DEFAULT_CHUNK_VALUES // int(values_per_image))))
    return check_batch_size(batch_size, allow_none=False)


def softmax(s):
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class Scorer:
    """The explained score of images of the batch ``x``: ``scorer(images (B, C, H, W), rows (B,)) -> (B,)``.

    ``rows[b]`` is the index in ``x`` of the image that ``images[b]`` perturbs.
    """

    def __init__(self, model, x, target, score="logit"):
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {score!r}")
        check_forward(model)
        self.model, self.score = model, score
        self.values_per_image = int(np.prod(x.shape[1:]))
        s0 = forward(model, x)
        n, k = s0.shape
        self.classes = None
        self.fn = None
        if callable(target):
            v = np.asarray(target(s0))
            if v.dtype.kind in "iu":
                target = v
            else:
                if score != "logit":
                    raise ValueError(f"score={score!r} needs a class target (int or int array), not a callable "
                                     "returning values; use score='logit' to score the callable's value")
                if v.shape != (n,):
                    raise ValueError(f"a target callable must return shape (N,) = ({n},), got {v.shape}")
                self.fn = target
        if self.fn is None:
            if isinstance(target, bool) or not isinstance(target, (numbers.Integral, np.integer, np.ndarray, list,
                                                                   tuple)):
                raise TypeError(f"target must be an int, an int array of shape (N,) or a callable, "
                                f"got {type(target).__name__}")
            self.classes = _targets._classes(target, n, k)
        self.original = self(x, np.arange(n), scores=s0)

    def __call__(self, images, rows, scores=None):
        s = forward(self.model, images) if scores is None else scores
        if self.fn is not None:
            out = np.asarray(self.fn(s), dtype=np.float64)
            if out.shape != (s.shape[0],):
                raise ValueError(f"a target callable must return one value per row, got shape {out.shape}")
            return out
        cls = self.classes[rows]
        if self.score == "accuracy":
            return (np.argmax(s, axis=1) == cls).astype(np.float64)
        if self.score == "probability":
            s = softmax(s)
        return s[np.arange(len(s)), cls]


def score_stack(scorer, make, n_steps, n_images, batch_size, progress=None):
    """Scores ``(S, N)`` of the ``S x N`` images ``make(lo, hi) -> (hi - lo, N, C, H, W)``, in chunks."""
    out = np.empty((n_steps, n_images))
    per_chunk = max(1, batch_size_arg(batch_size, scorer.values_per_image) // n_images)
    rows = np.arange(n_images)
    for lo in range(0, n_steps, per_chunk):
        hi = min(n_steps, lo + per_chunk)
        xs = make(lo, hi)
        out[lo:hi] = scorer(xs.reshape((-1,) + xs.shape[2:]), np.tile(rows, hi - lo)).reshape(hi - lo, n_images)
        if progress is not None:
            progress.update((hi - lo) * n_images)
    return out


def progress_bar(total, enabled, desc):
    return Progress(total, enabled, desc)


class Features:
    """The features an attribution ranks.

    Attributes
    ----------
    values : ndarray ``(N, F)`` float64, the attribution of each feature
    unit : ``"element"`` or ``"pixel"``
    """

    def __init__(self, attribution, x, name="attribution", allow_constant=False):
        a = as_float_array(attribution, name)
        n, c, h, w = x.shape
        self.x_shape = x.shape
        if a.shape == x.shape:
            self.unit = "element"
        elif a.shape in ((n, h, w), (n, 1, h, w)):
            self.unit = "pixel"
        else:
            raise ValueError(
                f"{name} must have x's shape {x.shape} (features = elements) or (N, H, W) / (N, 1, H, W) = "
                f"({n}, {h}, {w}) (features = pixels), got {a.shape}"
            )
        self.values = np.asarray(a, dtype=np.float64).reshape(n, -1)
        if not allow_constant:
            const = np.flatnonzero(np.ptp(self.values, axis=1) == 0)
            if const.size:
                raise ValueError(f"{name}[{int(const[0])}] is constant: it gives no order to perturb features in")

    @property
    def count(self):
        return self.values.shape[1]

    def expand(self, mask):
        """``(..., N, F)`` feature mask -> ``(..., N, C, H, W)`` element mask (a view where possible)."""
        n, c, h, w = self.x_shape
        lead = mask.shape[:-2]
        if self.unit == "element":
            return mask.reshape(lead + (n, c, h, w))
        return np.broadcast_to(mask.reshape(lead + (n, 1, h, w)), lead + (n, c, h, w))

    def order(self, order="morf"):
        """Feature indices ``(N, F)``, first perturbed first; ties in raster order."""
        return ordering(self.values, order)

    def ranks(self, order="morf"):
        """Rank of each feature ``(N, F)``: 0 = perturbed first."""
        return ranking(self.values, order)


def ordering(values, order="morf"):
    """Indices ``(N, F)`` of the rows of ``values`` by decreasing (``"morf"``) or increasing
    (``"lerf"``) value, ties in raster order."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    return np.argsort(-values if order == "morf" else values, axis=1, kind="stable")


def ranking(values, order="morf"):
    """Rank ``(N, F)`` of each entry in :func:`ordering` (0 = first)."""
    idx = ordering(values, order)
    r = np.empty_like(idx)
    np.put_along_axis(r, idx, np.arange(idx.shape[1])[None], axis=1)
    return r


def replacement(baseline, x, rng=None, blur_sigma=5.0, name="baseline"):
    """What a removed element becomes: ``(array of x's shape, label)``.

    ``baseline`` is a number, an array broadcastable to ``x``, a callable ``x -> array``, or a
    name: ``"blur"`` (Gaussian blur of ``blur_sigma`` pixels), ``"mean"`` (each image's
    per-channel mean), ``"uniform"`` (values drawn from ``U(min x_n, max x_n)`` per image, the
    image's own range; needs ``rng``; Samek et al. 2017 replace regions by uniform noise).
    """
    if isinstance(baseline, str):
        if baseline == "blur":
            from .faithfulness import blurred

            return blurred(x, blur_sigma), f"blur(sigma={blur_sigma:g})"
        if baseline == "mean":
            return np.broadcast_to(x.mean(axis=(2, 3), keepdims=True), x.shape).astype(x.dtype), "mean"
        if baseline == "uniform":
            if rng is None:
                raise TypeError(f"{name}='uniform' draws random values: pass rng (a Generator or an int seed)")
            lo = x.min(axis=(1, 2, 3), keepdims=True)
            hi = x.max(axis=(1, 2, 3), keepdims=True)
            u = as_rng(rng).uniform(0.0, 1.0, x.shape)
            return (lo + u * (hi - lo)).astype(x.dtype), "uniform"
        raise ValueError(f"{name} must be a number, an array, a callable or one of 'blur', 'mean', 'uniform', "
                         f"got {baseline!r}")
    if callable(baseline):
        b, label = baseline(x), getattr(baseline, "__name__", "callable")
    else:
        b = baseline
        label = f"{float(b):g}" if np.ndim(b) == 0 else "array"
    b = as_float_array(b, name)
    try:
        b = np.broadcast_to(b, x.shape).astype(x.dtype)
    except ValueError:
        raise ValueError(f"{name} of shape {b.shape} does not broadcast to x's shape {x.shape}") from None
    return b, label


def images(x, name="x"):
    return check_image_batch(x, name)


def pearson(a, b):
    """Pearson correlation of the rows of ``a`` and ``b`` ``(N, S)``; a constant row is refused."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    da = np.sqrt((a * a).sum(axis=1))
    db = np.sqrt((b * b).sum(axis=1))
    for d, what in ((da, "attribution sums"), (db, "score changes")):
        bad = np.flatnonzero(d == 0)
        if bad.size:
            raise ValueError(f"image {int(bad[0])}: the {what} are constant over the perturbations, "
                             "so their correlation is undefined")
    return np.clip((a * b).sum(axis=1) / (da * db), -1.0, 1.0)


def spearman_rows(a, b):
    """Spearman correlation (average ranks for ties) of the rows of ``a`` and ``b``."""
    from scipy import stats

    return pearson(stats.rankdata(a, axis=1), stats.rankdata(b, axis=1))


def _tile_target(target, reps):
    if callable(target) or np.ndim(target) == 0:
        return target
    return np.tile(np.asarray(target), reps)


def explained_chunks(method, model, x, target, inputs, method_kwargs=None, batch_size=64):
    """Maps of ``inputs[s]`` (``(S, N, C, H, W)``), one method call per chunk of about ``batch_size`` images.

    Yields ``(lo, hi, maps)`` with ``maps`` float64 ``(hi - lo, N, ...)``.  The target is tiled
    to the stacked batch (a callable target sees the scores of the whole chunk).
    """
    kw = dict(method_kwargs or {})
    s, n = inputs.shape[:2]
    per_chunk = max(1, batch_size_arg(batch_size) // n)
    for lo in range(0, s, per_chunk):
        hi = min(s, lo + per_chunk)
        xs = inputs[lo:hi].reshape((-1,) + x.shape[1:]).astype(x.dtype, copy=False)
        a = np.asarray(method(model, xs, _tile_target(target, hi - lo), **kw), dtype=np.float64)
        if a.shape[0] != xs.shape[0]:
            raise ValueError(f"the explanation method returned {a.shape[0]} maps for {xs.shape[0]} images")
        yield lo, hi, a.reshape((hi - lo, n) + a.shape[1:])


def perturbation_draws(kind, x, n_samples, scale, rng, name):
    """``(S, *x.shape)`` draws: ``"uniform"`` in the L∞ ball of radius ``scale``, ``"gaussian"`` ``N(0, scale²)``."""
    if rng is None:
        raise TypeError(f"{name} draws random perturbations: pass rng (a Generator or an int seed)")
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"the perturbation scale must be positive, got {scale}")
    gen = as_rng(rng)
    shape = (int(n_samples),) + x.shape
    if kind == "uniform":
        return gen.uniform(-scale, scale, shape)
    if kind == "gaussian":
        return gen.normal(0.0, scale, shape)
    raise ValueError(f"perturbation must be 'uniform', 'gaussian' or an array (S, *x.shape), got {kind!r}")


def check_perturbations(d, x, name="perturbations"):
    d = as_float_array(d, name)
    if d.ndim != x.ndim + 1 or d.shape[1:] != x.shape or d.shape[0] == 0:
        raise ValueError(f"{name} must have shape (S, *x.shape) = (S, {', '.join(map(str, x.shape))}) with S >= 1, "
                         f"got {d.shape}")
    return np.asarray(d, dtype=np.float64)


def group_sums(group, values, G):
    """``out[n, g] = Σ_{i: group[n, i] = g} values[n, i]``, ``(N, G)`` (one bincount for the batch)."""
    n = group.shape[0]
    off = (group + G * np.arange(n)[:, None]).ravel()
    return np.bincount(off, weights=np.asarray(values, dtype=np.float64).ravel(), minlength=n * G).reshape(n, G)
