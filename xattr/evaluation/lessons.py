"""The measurements behind the lesson notebooks (``notebooks/08``–``10``), one code path for their text and tests.

Each function computes what a notebook states (a number, a curve, a table) and returns it as a small result;
each ``check_*`` function asserts the notebook's claim about it with a stated margin and raises
:class:`LessonClaimFailed` naming the measured value when it does not hold.  The notebooks call both (so
the docs build, which runs them at full size, checks every claim), the test suite runs the notebooks with
``XATTR_NOTEBOOK_QUICK=1`` (small crops, the same claims) and ``tests/test_lessons.py`` checks the
measurements against independent oracles on small models, and that each claim can fail.

The lessons (the seeds' list of why saliency maps mislead):

* saturation: the counterfactual curves along ``α·image`` (Sundararajan, Taly & Yan 2016) and integrated
  gradients' completeness (Sundararajan et al. 2017) — :func:`counterfactual_curve`, :func:`completeness`;
* perturbation saturation: a class that needs either of two features (an OR), where occluding one shows
  nothing and exact Shapley values give each half — :func:`or_model`, :func:`or_game`;
* input-shift invariance (Kindermans et al. 2019) — :func:`input_shift`;
* mode collapse: maps of the top classes compared pairwise — :func:`class_similarity`;
* fragility (Ghorbani, Abid & Zou 2019) — :func:`check_fragility` on
  :func:`xattr.evaluation.robustness.fragility_attack`;
* multi-instance and multi-label pictures — :func:`side_by_side`, :func:`mass_shares`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._conventions import check_image_batch
from .._errors import XattrError

__all__ = [
    "LessonClaimFailed", "Curve", "counterfactual_curve", "check_saturation", "Completeness", "completeness",
    "check_completeness", "or_model", "or_images", "OrGame", "or_game", "check_or_game", "InputShift", "input_shift",
    "check_input_shift", "ClassSimilarity", "class_similarity", "check_mode_collapse", "side_by_side", "mass_shares",
    "check_multi_instance", "check_multi_label", "check_fragility",
]


class LessonClaimFailed(XattrError, AssertionError):
    """A claim a lesson notebook states did not hold on the measured numbers (an ``AssertionError``)."""


def _claim(ok, message):
    if not ok:
        raise LessonClaimFailed(message)


# -- 10: saturation along α·image --------------------------------------------------------------------
@dataclass
class Curve:
    """The counterfactual curve of one image: ``alphas (A,)``, ``scores (A,)`` ``F(x' + α (x − x'))`` and
    ``gradient_norm (A,)`` ``||∂F/∂x||₂`` at those points."""

    alphas: np.ndarray
    scores: np.ndarray
    gradient_norm: np.ndarray

    def rise_by(self, alpha):
        """The share of the whole rise ``F(1) − F(0)`` reached at the first node ``α_k >= alpha``."""
        k = int(np.searchsorted(self.alphas, alpha))
        return float((self.scores[k] - self.scores[0]) / (self.scores[-1] - self.scores[0]))


def counterfactual_curve(model, x, target, baseline=0.0, alphas=None, batch_size=8):
    """Score and gradient norm along the straight path from ``baseline`` to one image (Sundararajan, Taly &
    Yan 2016, "Gradients of counterfactuals", their Fig. 2: the score saturates, the gradient fades).

    Parameters
    ----------
    model : model protocol object
    x : ndarray ``(1, C, H, W)``
    target : int
    baseline : number or array broadcastable to ``x``
        ``x'``: the black image in the model's input space reproduces the paper's ``α·image``.
    alphas : array_like ``(A,)``, default ``linspace(0, 1, 21)``
    batch_size : int
        Path points per model call.

    Returns
    -------
    Curve
    """
    from ..methods.gradient import gradient

    x = check_image_batch(x)
    if len(x) != 1:
        raise ValueError(f"counterfactual_curve takes one image (1, C, H, W), got {x.shape}")
    alphas = np.linspace(0.0, 1.0, 21) if alphas is None else np.asarray(alphas, dtype=np.float64)
    if alphas.ndim != 1 or alphas.size < 2 or np.any(np.diff(alphas) <= 0):
        raise ValueError(f"alphas must be increasing, at least two of them, got {alphas}")
    b = np.broadcast_to(np.asarray(baseline, dtype=x.dtype), x.shape)
    scores, norms = [], []
    for lo in range(0, alphas.size, int(batch_size)):
        a = alphas[lo:lo + int(batch_size)].reshape(-1, 1, 1, 1)
        pts = b + a * (x - b)
        scores.append(np.asarray(model(pts))[:, int(target)])
        g = gradient(model, pts, np.full(len(pts), int(target)))
        norms.append(np.sqrt((g.reshape(len(g), -1) ** 2).sum(1)))
    return Curve(alphas, np.concatenate(scores).astype(np.float64), np.concatenate(norms).astype(np.float64))


#: the saturation claim of notebook 10: by ``α = 0.25`` the score has made more than this share of its rise,
SATURATION_EARLY_ALPHA, SATURATION_EARLY_SHARE = 0.25, 0.5
#: and the gradient at the image is smaller than this fraction of its largest norm along the path.
SATURATION_GRADIENT_FRACTION = 0.5


def check_saturation(curve):
    """Notebook 10's claim: the score rises early (more than half of its rise by ``α = 0.25``) and the gradient
    at the image (``α = 1``) is less than half of its largest norm along the path."""
    share = curve.rise_by(SATURATION_EARLY_ALPHA)
    _claim(share > SATURATION_EARLY_SHARE,
           f"the score made {share:.0%} of its rise by α = {SATURATION_EARLY_ALPHA}, not more than "
           f"{SATURATION_EARLY_SHARE:.0%}")
    frac = curve.gradient_norm[-1] / curve.gradient_norm.max()
    _claim(frac < SATURATION_GRADIENT_FRACTION,
           f"the gradient at the image is {frac:.0%} of its largest norm on the path, not below "
           f"{SATURATION_GRADIENT_FRACTION:.0%}")
    return share, frac


@dataclass
class Completeness:
    """How much of ``ΔF = F(x) − F(x')`` two attributions account for, one image.

    ``delta_f``: ``ΔF``; ``gradient_x_delta``: ``Σ_i ∂F/∂x_i(x) · (x_i − x'_i)`` (the local linear model at the
    image, gradient × input with the baseline); ``ig_sum``: ``Σ_i IG_i``; ``ig_gap``: ``Σ IG − ΔF``;
    ``attributions``: the integrated gradients ``(1, C, H, W)``.
    """

    delta_f: float
    gradient_x_delta: float
    ig_sum: float
    ig_gap: float
    attributions: np.ndarray

    @property
    def gradient_share(self):
        """``gradient_x_delta / delta_f``: 1 for a linear model."""
        return self.gradient_x_delta / self.delta_f

    @property
    def ig_relative_gap(self):
        """``|Σ IG − ΔF| / |ΔF|``."""
        return abs(self.ig_gap) / abs(self.delta_f)


def completeness(model, x, target, baseline=0.0, pieces=10, nodes=48, min_nodes=2):
    """Integrated gradients' fix for saturation, measured (Sundararajan et al. 2017, completeness).

    The gradient at the image is the slope of a local linear model; summed against ``x − x'`` it need not give
    the score difference ``ΔF = F(x) − F(x')``.  IG integrates the gradient along the path, so
    ``Σ IG_i = ΔF`` up to the quadrature.  Where the score jumps within a short stretch of the path (the cat
    of notebook 10 makes nearly all of its score within ``α < 0.1``) a rule with evenly spread nodes
    misses or over-weights the jump, so the path is cut into ``pieces`` equal intervals and each gets a
    Gauss–Legendre rule with nodes in proportion to the score change ``|ΔF_j|`` across it (at least
    ``min_nodes``; about ``nodes`` in all): a composite rule placed by the curve, exact in the limit like any
    other.  IG is additive over the pieces: ``IG(x; x') = Σ_j IG(x_{j+1}; x_j)``.

    Parameters
    ----------
    model : model protocol object
    x : ndarray ``(1, C, H, W)``
    target : int
    baseline : number or array broadcastable to ``x``
    pieces, nodes, min_nodes : int
        The composite rule: ``pieces`` equal intervals, about ``nodes`` gradient evaluations in all, at least
        ``min_nodes`` per piece.

    Returns
    -------
    Completeness
    """
    from ..methods.gradient import gradient
    from ..methods.path import integrated_gradients

    x = check_image_batch(x)
    if len(x) != 1:
        raise ValueError(f"completeness takes one image (1, C, H, W), got {x.shape}")
    b = np.broadcast_to(np.asarray(baseline, dtype=x.dtype), x.shape)
    t = int(target)
    g = gradient(model, x, np.array([t]))
    cuts = np.linspace(0.0, 1.0, int(pieces) + 1).reshape(-1, 1, 1, 1)
    pts = b + cuts * (x - b)  # x_0 = x', ..., x_pieces = x
    s = np.asarray(model(pts))[:, t].astype(np.float64)
    change = np.abs(np.diff(s))
    share = change / change.sum() if change.sum() > 0 else np.full(len(change), 1.0 / len(change))
    per_piece = np.maximum(int(min_nodes), np.ceil(int(nodes) * share).astype(int))
    ig = np.zeros(x.shape, dtype=np.float64)
    for n in np.unique(per_piece):  # one call per node count
        j = np.flatnonzero(per_piece == n)
        ig += integrated_gradients(model, pts[j + 1], np.full(len(j), t), baseline=pts[j], steps=int(n)).sum(
            axis=0, keepdims=True)
    delta_f = float(s[-1] - s[0])
    ig_sum = float(ig.sum())
    return Completeness(delta_f, float((g * (x - b)).sum()), ig_sum, ig_sum - delta_f, ig.astype(x.dtype))


#: notebook 10: IG accounts for ΔF to within this share, while the gradient at the image misses it by more than
IG_GAP_MAX, GRADIENT_MISS_MIN = 0.05, 0.5


def check_completeness(c):
    """Notebook 10's claim: ``|Σ IG − ΔF| < 5 %`` of ``|ΔF|``, while gradient × (x − x') misses ``ΔF`` by more
    than half of it (``|share − 1| > 0.5``)."""
    _claim(c.ig_relative_gap < IG_GAP_MAX, f"IG misses ΔF by {c.ig_relative_gap:.1%}, not less than {IG_GAP_MAX:.0%}")
    miss = abs(c.gradient_share - 1)
    _claim(miss > GRADIENT_MISS_MIN,
           f"gradient × (x − x') accounts for {c.gradient_share:.0%} of ΔF: it misses by {miss:.0%}, not more "
           f"than {GRADIENT_MISS_MIN:.0%}")
    return c.ig_relative_gap, miss


# -- 10: perturbation saturation on an OR ------------------------------------------------------------
def or_model(size=8):
    """A hand-built ReLU network whose class 0 needs either of two features: ``F = min(s_L + s_R, 1)``.

    ``s_L`` and ``s_R`` are the mean intensities of the left and right halves of a one-channel
    ``size × size`` image in ``[0, 1]``; for such images ``s_L + s_R >= 0`` and
    ``F = ReLU(s_L + s_R) − ReLU(s_L + s_R − 1)``: an OR of the two halves (either one lit gives 1, both
    lit still give 1).  Class 1 is ``−F``.  Layers: ``Flatten → Dense(size² → 2) → ReLU → Dense(2 → 2)``.
    """
    from ..nn import Dense, Flatten, ReLU, Sequential

    size = int(size)
    if size < 2 or size % 2:
        raise ValueError(f"size must be an even number of at least 2 pixels, got {size}")
    half = np.zeros((size, size))
    half[:, : size // 2] = 1.0
    mean_l = half.ravel() / half.sum()
    mean_r = (1 - half).ravel() / half.sum()
    first = Dense(size * size, 2)
    first.weight = np.stack([mean_l + mean_r, mean_l + mean_r])
    first.bias = np.array([0.0, -1.0])
    last = Dense(2, 2)
    last.weight = np.array([[1.0, -1.0], [-1.0, 1.0]])
    last.bias = np.zeros(2)
    return Sequential(Flatten(), first, ReLU(), last)


def or_images(size=8):
    """Three ``(3, 1, size, size)`` images for :func:`or_model`: both halves lit, the left one, the right one;
    and their names."""
    size = int(size)
    x = np.zeros((3, 1, size, size))
    x[0] = 1.0
    x[1, :, :, : size // 2] = 1.0
    x[2, :, :, size // 2:] = 1.0
    return x, ["both lit", "left lit", "right lit"]


@dataclass
class OrGame:
    """Each half's attribution on :func:`or_images` under four methods, ``(3 images, 2 halves)`` each, and the
    scores ``(3,)``: ``occlusion`` (drop when the half is hidden), ``shapley`` (exact, the two halves as
    players), ``gradient`` and ``integrated_gradients`` (exact, zero baseline) summed over each half;
    ``occlusion_small_max`` ``(3,)``: the largest drop of occlusion with 2×2 windows (stride 2), per image."""

    scores: np.ndarray
    occlusion: np.ndarray
    shapley: np.ndarray
    gradient: np.ndarray
    integrated_gradients: np.ndarray
    occlusion_small_max: np.ndarray
    names: list

    def table(self):
        """Rows ``(image, method, left, right)`` for printing."""
        return [(n, m, *getattr(self, m)[i]) for i, n in enumerate(self.names)
                for m in ("occlusion", "shapley", "gradient", "integrated_gradients")]


def or_game(size=8):
    """Occlusion, exact Shapley, gradient and exact IG on :func:`or_model`, per half (the seeds' perturbation
    saturation: a class that needs either of two features)."""
    from ..methods.gradient import gradient
    from ..methods.path import integrated_gradients
    from ..methods.perturbation import occlusion, shapley

    model = or_model(size)
    x, names = or_images(size)
    h = size // 2
    halves = np.zeros((size, size), dtype=int)
    halves[:, h:] = 1
    t = np.zeros(len(x), dtype=int)

    def per_half(a):
        a = np.asarray(a).sum(axis=1)
        return np.stack([a[:, :, :h].sum((1, 2)), a[:, :, h:].sum((1, 2))], 1)

    occ = occlusion(model, x, t, window=(size, h), stride=(size, h), baseline=0.0)
    shap = shapley(model, x, t, segments=halves, baseline=0.0)
    return OrGame(
        scores=np.asarray(model(x))[:, 0],
        occlusion=np.stack([occ[:, 0, 0, 0], occ[:, 0, 0, -1]], 1),  # one window per half: its drop on every pixel
        shapley=np.stack([shap[:, 0, 0, 0], shap[:, 0, 0, -1]], 1),
        gradient=per_half(gradient(model, x, t)),
        integrated_gradients=per_half(integrated_gradients(model, x, t, baseline=0.0, quadrature="exact")),
        occlusion_small_max=np.abs(occlusion(model, x, t, window=2, stride=2, baseline=0.0)).max(axis=(1, 2, 3)),
        names=names,
    )


def check_or_game(game, tol=1e-12):
    """Notebook 10's claims, exact up to ``tol``: with both halves lit occlusion and the gradient give each half
    0 (and occlusion with 2×2 windows gives every pixel 0), exact Shapley and exact IG give each half 1/2 (the
    score 1, shared); with one half lit occlusion, Shapley and IG give it the whole score 1 and the dark half 0.

    Parameters
    ----------
    game : OrGame
        From :func:`or_game`; its fields ``occlusion``, ``gradient``, ``shapley``, ``integrated_gradients``
        (two values per image: one per half), ``occlusion_small_max``, ``scores``, ``names``.
    tol : float

    Returns
    -------
    None
        Raises :class:`~xattr.evaluation.lessons.LessonClaimFailed` (an ``AssertionError``) naming the first
        claim that fails.
    """
    both, left, right = 0, 1, 2
    want = {"occlusion": [0.0, 0.0], "gradient": [0.0, 0.0], "shapley": [0.5, 0.5], "integrated_gradients": [0.5, 0.5]}
    for m, w in want.items():
        got = getattr(game, m)[both]
        _claim(np.allclose(got, w, atol=tol, rtol=0), f"{m} with both halves lit: {got}, expected {w}")
    for m in ("occlusion", "shapley", "integrated_gradients"):
        for i, w in ((left, [1.0, 0.0]), (right, [0.0, 1.0])):
            got = getattr(game, m)[i]
            _claim(np.allclose(got, w, atol=tol, rtol=0), f"{m} with the {game.names[i]}: {got}, expected {w}")
    _claim(game.occlusion_small_max[both] <= tol,
           f"occlusion with 2×2 windows, both halves lit: largest drop {game.occlusion_small_max[both]}, expected 0")
    _claim(np.allclose(game.scores, 1.0, atol=tol, rtol=0), f"the OR's scores are {game.scores}, expected 1")


# -- 08: input shift (Kindermans et al. 2019) ---------------------------------------------------------------
@dataclass
class InputShift:
    """Result of :func:`input_shift`: ``model_change`` ``max |g(x + c) − f(x)|`` over the scores (the twin is the
    same function), and ``{method: relative change ||A' − A|| / ||A||}`` in ``change``."""

    shift: float
    model_change: float
    change: dict


def input_shift(model, x, target, shift, methods, in_channels=None):
    """Kindermans et al. 2019's input-shift test on one network, for several methods.

    The twin ``g`` takes ``x + c`` and computes exactly ``f(x)``: the constant ``c`` is taken back out in front
    of the first layer (:func:`xattr.testing.twins.shifted_input_twin`; the paper absorbs it into the first
    layer's bias, which is the same function when the first layer has no padding).  A method is *input
    invariant* when ``A(g, x + c) = A(f, x)`` (:func:`xattr.evaluation.robustness.input_shift_sensitivity`).

    Parameters
    ----------
    methods : dict ``name -> (method, baseline_arg, shift_baseline)``
        ``baseline_arg``: the name of the method's baseline argument or None; ``shift_baseline``: whether the
        baseline moves with the input (a zero baseline that stays zero does not).
    """
    from ..testing import twins
    from .robustness import input_shift_sensitivity

    x = check_image_batch(x)
    g = twins.shifted_input_twin(model, shift, in_channels=in_channels if in_channels is not None else x.shape[1])
    moved = float(np.abs(np.asarray(g(x + shift)) - np.asarray(model(x))).max())
    change = {}
    for name, (method, barg, shift_baseline) in methods.items():
        r = input_shift_sensitivity(method, model, x, target, shift=shift, baseline_arg=barg,
                                    shift_baseline=shift_baseline)
        change[name] = float(r["relative_l2"].max())
    return InputShift(float(shift), moved, change)


#: notebook 08: the twin equals the model to this (absolute, on logits); invariant methods change by less than
#: INVARIANT_MAX (relative), the others by more than VARIANT_MIN.
TWIN_MAX, INVARIANT_MAX, VARIANT_MIN = 1e-9, 1e-9, 0.1


def check_input_shift(r, invariant, variant):
    """Notebook 08's claim: the twin computes the same scores (to ``1e-9``); each method named in ``invariant``
    changes by less than ``1e-9`` (relative L2), each in ``variant`` by more than 10 %.

    Parameters
    ----------
    r : InputShift
        From :func:`input_shift`:
        ``r.model_change`` (float) and ``r.change`` (``{method: float}``).
    invariant, variant : iterable of str
        Method names.

    Returns
    -------
    None
        Raises :class:`~xattr.evaluation.lessons.LessonClaimFailed` (an ``AssertionError``) naming the first
        claim that fails.
    """
    _claim(r.model_change < TWIN_MAX, f"the shifted twin's scores differ by {r.model_change:.2e}")
    for name in invariant:
        _claim(r.change[name] < INVARIANT_MAX, f"{name} changed by {r.change[name]:.2e} under the input shift")
    for name in variant:
        _claim(r.change[name] > VARIANT_MIN, f"{name} changed by only {r.change[name]:.2%} under the input shift")


# -- 08: mode collapse ----------------------------------------------------------------------------------------
@dataclass
class ClassSimilarity:
    """Pairwise similarity of one image's maps for several classes: ``classes (K,)``, and ``spearman``,
    ``spearman_abs`` and ``ssim`` as ``(K, K)`` matrices (1 on the diagonal); ``mean(metric)`` averages the
    ``K (K − 1) / 2`` distinct pairs."""

    classes: np.ndarray
    spearman: np.ndarray
    spearman_abs: np.ndarray
    ssim: np.ndarray

    def mean(self, metric="spearman"):
        m = getattr(self, metric)
        iu = np.triu_indices(len(m), 1)
        return float(m[iu].mean())


def class_similarity(method, model, x, classes):
    """How alike one image's maps are for different classes (the seeds' *mode collapse*; Nie, Zhang & Patel 2018
    show guided backprop and DeconvNet reconstruct the image whatever the class).

    Maps of ``x`` ``(1, C, H, W)`` for each class in ``classes`` (one batched call), compared pairwise by
    Spearman rank correlation of the signed maps and of their magnitudes, and by SSIM of the per-pixel
    magnitude ``Σ_c |A|`` (Adebayo et al. 2018's measures; :mod:`xattr.evaluation.similarity`).

    Parameters
    ----------
    method : callable ``(model, x, target) -> (N, C, H, W)``
    model : model protocol object
    x : ndarray ``(1, C, H, W)``
    classes : int array ``(K,)``
        At least two classes.

    Returns
    -------
    ClassSimilarity
    """
    from .similarity import pixel_magnitude, spearman, ssim

    x = check_image_batch(x)
    if len(x) != 1:
        raise ValueError(f"class_similarity takes one image (1, C, H, W), got {x.shape}")
    classes = np.asarray(classes, dtype=int)
    K = len(classes)
    if K < 2:
        raise ValueError(f"class_similarity compares at least two classes, got {classes}")
    A = np.asarray(method(model, np.repeat(x, K, axis=0), classes))
    i, j = np.triu_indices(K, 1)
    out = {}
    for name, fn in (("spearman", lambda a, b: spearman(a, b)), ("spearman_abs", lambda a, b: spearman(a, b, True)),
                     ("ssim", lambda a, b: ssim(pixel_magnitude(a), pixel_magnitude(b)))):
        m = np.eye(K)
        m[i, j] = m[j, i] = fn(A[i], A[j])
        out[name] = m
    return ClassSimilarity(classes, **out)


# -- 08: multi-instance and multi-label pictures ----------------------------------------------------------
def side_by_side(left, right, background=0.5):
    """One picture of two: ``left`` and ``right`` ``(3, S, S)`` in ``[0, 1]`` shrunk to half size (area average of
    2×2 blocks) and set side by side, vertically centred, on a gray ``background``.

    Parameters
    ----------
    left, right : ndarray ``(3, S, S)``
        ``S`` a multiple of 4.
    background : float
        The gray level.

    Returns
    -------
    pixels : ndarray ``(1, 3, S, S)``
    instances : int array ``(1, S, S)``: 0 background, 1 the left picture, 2 the right one
    """
    left, right = np.asarray(left, dtype=np.float64), np.asarray(right, dtype=np.float64)
    if left.shape != right.shape or left.ndim != 3 or left.shape[1] != left.shape[2] or left.shape[1] % 4:
        raise ValueError(f"left and right must be (3, S, S) with S a multiple of 4, got {left.shape}, {right.shape}")
    S = left.shape[1]
    h = S // 2

    def shrink(p):
        return p.reshape(3, h, 2, h, 2).mean(axis=(2, 4))

    out = np.full((1, 3, S, S), float(background))
    lab = np.zeros((1, S, S), dtype=int)
    top = (S - h) // 2
    out[0, :, top:top + h, :h] = shrink(left)
    out[0, :, top:top + h, h:] = shrink(right)
    lab[0, top:top + h, :h] = 1
    lab[0, top:top + h, h:] = 2
    return out, lab


def mass_shares(maps, instances):
    """Share of each map's magnitude ``Σ_c |A|`` on each instance: ``(N, K)`` (:func:`multi_instance_coverage
    <xattr.evaluation.localisation.multi_instance_coverage>` of the magnitudes).

    Parameters
    ----------
    maps : ndarray ``(N, C, H, W)``
    instances : int array ``(N, H, W)`` (broadcastable)
        Instance labels, 0 the background.

    Returns
    -------
    ndarray ``(N, K)``
    """
    from .localisation import multi_instance_coverage
    from .similarity import pixel_magnitude

    mags = pixel_magnitude(maps)
    lab = np.broadcast_to(np.asarray(instances), mags.shape)
    return multi_instance_coverage(mags, np.ascontiguousarray(lab)).mass


#: notebook 08's mode-collapse claim: guided backprop's maps for the top classes are alike beyond this mean
#: pairwise Spearman correlation, the gradient's are below COLLAPSE_GRADIENT_MAX.
COLLAPSE_GUIDED_MIN, COLLAPSE_GRADIENT_MAX = 0.9, 0.7


def check_mode_collapse(guided, gradient):
    """Notebook 08's claim: mean pairwise Spearman of guided backprop's top-class maps above 0.9, the gradient's
    below 0.7 (two :class:`ClassSimilarity`).

    Parameters
    ----------
    guided, gradient : ClassSimilarity

    Returns
    -------
    None
        Raises :class:`~xattr.evaluation.lessons.LessonClaimFailed` (an ``AssertionError``) naming the first
        claim that fails.
    """
    _claim(guided.mean() > COLLAPSE_GUIDED_MIN,
           f"guided backprop's class maps correlate {guided.mean():.3f}, not above {COLLAPSE_GUIDED_MIN}")
    _claim(gradient.mean() < COLLAPSE_GRADIENT_MAX,
           f"the gradient's class maps correlate {gradient.mean():.3f}, not below {COLLAPSE_GRADIENT_MAX}")


#: notebook 08: an object counts as found by a map holding at least this share of its magnitude (the default
#: of multi_instance_coverage), and a class-discriminative map holds CLASS_RATIO_MIN times more on its own object.
FOUND_MIN_SHARE, CLASS_RATIO_MIN = 0.1, 1.5


def check_multi_instance(shares, methods):
    """Notebook 08's claim: each named method's map holds at least 10 % of its magnitude on each of the two
    instances (``shares``: ``{method: (1, 2)}`` from :func:`mass_shares`).

    Parameters
    ----------
    shares : dict str -> ndarray ``(1, 2)``
    methods : iterable of str

    Returns
    -------
    None
        Raises :class:`~xattr.evaluation.lessons.LessonClaimFailed` (an ``AssertionError``) naming the first
        claim that fails.
    """
    for m in methods:
        _claim(shares[m].min() >= FOUND_MIN_SHARE, f"{m} holds {shares[m].round(3)} of its map on the two objects")


def check_multi_label(own, other, same_map_spearman, discriminative, collapsed):
    """Notebook 08's claim on a picture of two classes: each ``discriminative`` method's map for each class
    holds more than 1.5× as much on its own object as on the other (``own``, ``other``:
    ``{method: (2,)}`` per class), and each ``collapsed`` method's two class maps correlate above 0.9
    (``same_map_spearman``: ``{method: float}``).

    Parameters
    ----------
    own, other : dict str -> array ``(2,)``
    same_map_spearman : dict str -> float
    discriminative, collapsed : iterable of str

    Returns
    -------
    None
        Raises :class:`~xattr.evaluation.lessons.LessonClaimFailed` (an ``AssertionError``) naming the first
        claim that fails.
    """
    for m in discriminative:
        ratio = np.asarray(own[m]) / np.asarray(other[m])
        _claim(np.all(ratio > CLASS_RATIO_MIN), f"{m}: own/other object mass ratios {ratio.round(2)}")
    for m in collapsed:
        _claim(same_map_spearman[m] > COLLAPSE_GUIDED_MIN,
               f"{m}: the two classes' maps correlate {same_map_spearman[m]:.3f}, not above {COLLAPSE_GUIDED_MIN}")


#: notebook 08's fragility claim: Ghorbani et al.'s top-k attack leaves a mean top-k intersection lower than the
#: paper's random-sign baseline (same budget and selection) by more than this.
ATTACK_MARGIN = 0.2


def check_fragility(attack, random):
    """Notebook 08's claim: the attack keeps every label and lowers the mean top-k intersection more than the
    random baseline by 0.2 (two :class:`~xattr.evaluation.robustness.FragilityAttack`).

    Parameters
    ----------
    attack, random : FragilityAttack
        The attack and the random-step baseline.

    Returns
    -------
    tuple of float
        The mean top-k intersections ``(attack, random)``.
    """
    _claim(bool(attack.label_kept.all() and random.label_kept.all()), "a perturbation changed the label")
    a, r = float(attack.intersection.mean()), float(random.intersection.mean())
    _claim(a < r - ATTACK_MARGIN, f"top-k intersection {a:.2f} under the attack, {r:.2f} under random steps")
    return a, r
