"""Prediction difference analysis (Zintgraf, Cohen, Adel & Welling 2017, "Visualizing deep neural network
decisions: prediction difference analysis", ICLR; after Robnik-Šikonja & Kononenko 2008).

The relevance of a ``k × k`` window ``x_w`` of image ``x`` for class ``c`` is how much the class's
probability drops when the window is *unknown*, i.e. marginalised out under a model of the data::

    p(c | x_\\w) = E_{x_w ~ p(x_w | x_\\w)} [ p(c | x_\\w, x_w) ]          (Monte Carlo, n_samples draws)
    WE_w(c | x) = log2 odds(c | x) − log2 odds(c | x_\\w),    odds(p) = p / (1 − p)

the *weight of evidence* in bits.  Probabilities get the paper's Laplace correction
``p ← (p N + 1) / (N + K)`` before the odds (``N`` training instances, ``K`` classes), so that 0 and 1
stay finite.  Windows slide with stride 1 (the paper's overlapping windows) and a pixel's relevance is
the average of the weights of evidence of the windows that contain it (Algorithm 1).

Two samplers of the unknown window (``sampling=``):

* ``"conditional"`` (the paper's contribution): ``x_w`` is drawn from a Gaussian conditioned on the
  surrounding frame: a multivariate normal over ``l × l`` patches, ``l = k + 2·padding``, with mean and
  covariance estimated from all ``l × l`` patches of a set of reference images (stationary: one model
  for every position), each colour channel modelled separately (the authors' code) or jointly
  (``channels="joint"``).  Given the frame values ``x_2`` (the patch minus the window),
  ``x_w | x_2 ~ N(μ_1 + Σ_12 Σ_22⁻¹ (x_2 − μ_2), Σ_11 − Σ_12 Σ_22⁻¹ Σ_21)``.  Near the border the
  ``l × l`` frame is moved inside the image and the window sits off-centre in it (as the authors' code).
* ``"marginal"``: ``x_w`` is the same window of a reference image drawn uniformly (the empirical
  marginal at that position; Robnik-Šikonja & Kononenko's univariate sampling, per patch).

Defaults are the paper's ImageNet settings: ``window = 10``, ``padding = 2`` (``l = 14``),
``n_samples = 10``, stride 1, and the authors' code's Laplace ``N = 100 000``.  Differences from the
authors' code, stated: samples are not clipped to the per-pixel range of the data unless ``clip`` is
given (their code clips to the per-pixel min/max of their ImageNet set); the Gaussian is fitted on
every ``l × l`` patch of the references (their code: random positions); the paper also explains hidden
units, here only the output class.

Costs ``n_samples`` forward passes per window position: ``(H − k + 1)(W − k + 1) n_samples`` per image
(5 290 for a 32 × 32 image with the defaults), batched in ``batch_size`` rows.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from .. import _targets
from .._conventions import as_float_array, as_rng, check_image_batch
from .._progress import Progress
from ..inputs import DEFAULT_BATCH_SIZE, check_batch_size, rows_per_call
from .registry import MethodSpec, register

__all__ = ["PatchGaussian", "fit_patch_gaussian", "conditional_gaussian", "weight_of_evidence",
           "prediction_difference", "PredictionDifference"]

#: the paper's window (``k``), frame padding (``l = k + 2 · padding``) and samples per window.
DEFAULT_WINDOW, DEFAULT_PADDING, DEFAULT_SAMPLES = 10, 2, 10
#: training-set size ``N`` of the Laplace correction in the authors' code (ImageNet experiments).
DEFAULT_LAPLACE_N = 100_000


# -- the Gaussian patch model ------------------------------------------------------------------------
@dataclass
class PatchGaussian:
    """A Gaussian model of ``l × l`` image patches, ``l = window + 2 · padding``.

    ``mean (G, D)`` and ``cov (G, D, D)``: ``G = C`` groups of ``D = l²`` values (one per channel,
    ``channels="independent"``) or ``G = 1`` group of ``D = C l²`` (``"joint"``, channel-major).
    Build it with :func:`fit_patch_gaussian`, or directly when the distribution is known.
    """

    mean: np.ndarray
    cov: np.ndarray
    window: int
    padding: int
    channels: str
    n_channels: int

    def __post_init__(self):
        l, C = self.window + 2 * self.padding, self.n_channels
        G, D = (C, l * l) if self.channels == "independent" else (1, C * l * l)
        if self.channels not in ("independent", "joint"):
            raise ValueError(f"channels must be 'independent' or 'joint', got {self.channels!r}")
        self.mean = np.asarray(self.mean, dtype=np.float64)
        self.cov = np.asarray(self.cov, dtype=np.float64)
        if self.mean.shape != (G, D) or self.cov.shape != (G, D, D):
            raise ValueError(
                f"a {self.channels} patch model of {C} channel(s), l = {l}, needs mean (G, D) = {(G, D)} and "
                f"cov (G, D, D) = {(G, D, D)}, got {self.mean.shape} and {self.cov.shape}"
            )

    @property
    def size(self):
        return self.window + 2 * self.padding


#: jitter added to the fitted covariance's diagonal, relative to its mean variance: constant regions in the
#: references (flat backgrounds, saturated pixels) would otherwise make it singular (scikit-learn's
#: GaussianMixture adds ``reg_covar = 1e-6`` the same way).
DEFAULT_RIDGE = 1e-6


def fit_patch_gaussian(references, window=DEFAULT_WINDOW, padding=DEFAULT_PADDING, channels="independent",
                       chunk=16, ridge=DEFAULT_RIDGE):
    """Mean and covariance of every ``l × l`` patch (stride 1) of ``references``; float64.

    The covariance is the maximum-likelihood one (divided by the patch count), accumulated over chunks
    of images around the per-channel pixel mean (so that large offsets do not cost digits), plus
    ``ridge`` times its mean variance on the diagonal (:data:`DEFAULT_RIDGE`; 1 if every variance is 0).

    Parameters
    ----------
    references : ndarray ``(M, C, H, W)``
    window : int
        The window side ``k``.
    padding : int
        The frame around it, ``l = k + 2 · padding``.
    channels : ``"independent"`` or ``"joint"``
        One Gaussian per colour channel (``D = l²``) or one over all channels (``D = C·l²``).
    chunk : int
        Images per accumulation step.
    ridge : float

    Returns
    -------
    PatchGaussian
        ``mean (G, D)``, ``cov (G, D, D)``.
    """
    r = check_image_batch(references, "references")
    k, p = _window_padding(window, padding)
    l = k + 2 * p
    M, C, H, W = r.shape
    if l > H or l > W:
        raise ValueError(f"patches of l = window + 2 padding = {l} do not fit the references' {(H, W)} pixels")
    if channels not in ("independent", "joint"):
        raise ValueError(f"channels must be 'independent' or 'joint', got {channels!r}")
    from numpy.lib.stride_tricks import sliding_window_view

    shift = r.mean(axis=(0, 2, 3), dtype=np.float64)  # per channel
    G, D = (C, l * l) if channels == "independent" else (1, C * l * l)
    s1, s2, count = np.zeros((G, D)), np.zeros((G, D, D)), 0
    for a in range(0, M, int(chunk)):
        block = r[a:a + int(chunk)].astype(np.float64) - shift[:, None, None]
        v = sliding_window_view(block, (l, l), axis=(2, 3))  # (m, C, H-l+1, W-l+1, l, l)
        v = v.transpose(0, 2, 3, 1, 4, 5).reshape(-1, C, l * l)  # (P, C, l²)
        v = v.transpose(1, 0, 2) if channels == "independent" else v.reshape(1, len(v), D)  # (G, P, D)
        s1 += v.sum(axis=1)
        s2 += np.einsum("gpi,gpj->gij", v, v, optimize=True)
        count += v.shape[1]
    if count <= D:
        raise ValueError(
            f"{count} patches cannot give a full-rank covariance of dimension {D}: use more or larger references, "
            "or a smaller window/padding"
        )
    mean = s1 / count
    cov = s2 / count - np.einsum("gi,gj->gij", mean, mean)
    cov = (cov + cov.transpose(0, 2, 1)) / 2
    if ridge:
        scale = np.trace(cov, axis1=1, axis2=2) / D  # mean variance per group
        cov = cov + (float(ridge) * np.where(scale > 0, scale, 1.0))[:, None, None] * np.eye(D)
    back = np.repeat(shift, l * l)[None] if channels == "joint" else shift[:, None]
    return PatchGaussian(mean + back, cov, k, p, channels, C)


def _window_padding(window, padding):
    if isinstance(window, bool) or not isinstance(window, (numbers.Integral, np.integer)) or window < 1:
        raise ValueError(f"window must be a positive int (the paper's k), got {window!r}")
    if isinstance(padding, bool) or not isinstance(padding, (numbers.Integral, np.integer)) or padding < 0:
        raise ValueError(f"padding must be a non-negative int (l = k + 2 padding), got {padding!r}")
    return int(window), int(padding)


def _inner_indices(g, offset):
    """Indices (into one group's ``D`` values) of the window at ``offset (dy, dx)`` in the frame, sorted."""
    k, l = g.window, g.size
    rows = offset[0] + np.arange(k)
    cols = offset[1] + np.arange(k)
    plane = (rows[:, None] * l + cols[None, :]).ravel()
    if g.channels == "independent":
        return plane
    return (np.arange(g.n_channels)[:, None] * l * l + plane[None, :]).ravel()  # channel-major


def conditional_gaussian(g, offset):
    """``(inner, outer, B, S)`` for the window at ``offset = (dy, dx)`` inside the ``l × l`` frame.

    Parameters
    ----------
    g : PatchGaussian
    offset : tuple of int ``(dy, dx)``

    Returns
    -------
    inner, outer : int arrays ``(d_in,)``, ``(d_out,)``
        Indices of the window's and the frame's values in a group's ``D``.
    B : ndarray ``(G, d_in, d_out)``
        ``Σ_12 Σ_22⁻¹`` (so the conditional mean is ``μ_1 + B (x_2 − μ_2)``).
    S : ndarray ``(G, d_in, d_in)``
        A square root of the conditional covariance ``Σ_11 − B Σ_21 = S Sᵀ``: its Cholesky factor (as the
        authors' code), or, when round-off makes it singular, the symmetric root from its eigendecomposition with
        negative eigenvalues set to 0.
    """
    from scipy.linalg import LinAlgError, cho_factor, cho_solve

    inner = _inner_indices(g, offset)
    outer = np.setdiff1d(np.arange(g.mean.shape[1]), inner)
    Bs, Ss = [], []
    for cov in g.cov:  # per group (colour channel): a few small dense solves
        s11, s12, s22 = cov[np.ix_(inner, inner)], cov[np.ix_(inner, outer)], cov[np.ix_(outer, outer)]
        if len(outer):
            try:
                B = cho_solve(cho_factor(s22), s12.T).T
            except LinAlgError:
                raise ValueError(
                    "the frame's covariance Σ_22 is not positive definite: fit the patch model on more varied "
                    "references (or use sampling='marginal')"
                ) from None
            cond = s11 - B @ s12.T
        else:
            B, cond = np.zeros((len(inner), 0)), s11
        cond = (cond + cond.T) / 2
        try:  # the Cholesky factor, as the authors' code; a singular conditional falls back to eigh
            root = np.linalg.cholesky(cond)
        except np.linalg.LinAlgError:
            lam, V = np.linalg.eigh(cond)
            root = (V * np.sqrt(np.clip(lam, 0, None))) @ V.T
        Bs.append(B)
        Ss.append(root)
    return inner, outer, np.stack(Bs), np.stack(Ss)


def _frame_offsets(starts, size, k, p):
    """Top of the ``l``-frame (moved inside the image) and the window's offset in it, per window start."""
    l = k + 2 * p
    top = np.clip(starts - p, 0, size - l)
    return top, starts - top


def _conditional_samples(g, x, image, r0, c0, n_samples, gen, cache):
    """Samples ``(B, S, C, k, k)`` of the windows at ``(r0, c0)`` of images ``x[image]`` given their frames."""
    k, l, C = g.window, g.size, g.n_channels
    H, W = x.shape[2:]
    top, dy = _frame_offsets(r0, H, k, g.padding)
    left, dx = _frame_offsets(c0, W, k, g.padding)
    from numpy.lib.stride_tricks import sliding_window_view

    frames = sliding_window_view(x, (l, l), axis=(2, 3))[image, :, top, left].astype(np.float64)  # (B, C, l, l)
    G = g.mean.shape[0]
    vec = frames.reshape(len(image), G, -1)  # (B, G, D): channel-major for "joint"
    d_in = k * k * (C if g.channels == "joint" else 1)
    z = gen.standard_normal((len(image), n_samples, G, d_in))  # drawn in window order, before grouping
    out = np.empty((len(image), n_samples, G, d_in))
    code = dy * (2 * g.padding + 1) + dx
    for o in np.unique(code):  # at most (2 padding + 1)² distinct placements of the window in its frame
        sel = np.flatnonzero(code == o)
        off = (int(dy[sel[0]]), int(dx[sel[0]]))
        if off not in cache:
            cache[off] = conditional_gaussian(g, off)
        inner, outer, Bm, S = cache[off]
        x2 = vec[sel][:, :, outer] - g.mean[:, outer]
        mean = g.mean[:, inner] + np.einsum("gio,bgo->bgi", Bm, x2, optimize=True)
        out[sel] = mean[:, None] + np.einsum("gij,bsgj->bsgi", S, z[sel], optimize=True)
    return out.reshape(len(image), n_samples, C, k, k)


# -- the weight of evidence ----------------------------------------------------------------------------
def weight_of_evidence(p, p_without, n_train=DEFAULT_LAPLACE_N, n_classes=None):
    """``log2 odds(p) − log2 odds(p_without)`` in bits, with the Laplace correction ``(p N + 1)/(N + K)``.

    Parameters
    ----------
    p, p_without : array_like of float
        Probabilities with and without the feature (broadcastable).
    n_train : int, optional
        The correction's ``N``; ``None`` skips the correction (probabilities of exactly 0 or 1 then give infinite
        evidence and are refused).
    n_classes : int, optional
        ``K``, needed with the correction.

    Returns
    -------
    ndarray, the broadcast shape, float64
    """
    p, q = np.asarray(p, dtype=np.float64), np.asarray(p_without, dtype=np.float64)
    if n_train is not None:
        if n_classes is None or n_classes < 2:
            raise ValueError(f"the Laplace correction needs the number of classes K >= 2, got {n_classes!r}")
        if not (isinstance(n_train, numbers.Real) and n_train > 0):
            raise ValueError(f"n_train (the Laplace correction's N) must be positive, got {n_train!r}")
        p, q = (p * n_train + 1) / (n_train + n_classes), (q * n_train + 1) / (n_train + n_classes)
    bad = ~((p > 0) & (p < 1) & (q > 0) & (q < 1))
    if np.any(bad):
        raise ValueError(
            "probabilities of exactly 0 or 1 have infinite log-odds: use the Laplace correction (laplace=N)"
        )
    return (np.log2(p) - np.log2(1 - p)) - (np.log2(q) - np.log2(1 - q))


# -- the method ------------------------------------------------------------------------------------------
@dataclass
class PredictionDifference:
    """What :func:`prediction_difference` returns with ``return_windows=True``.

    ``relevance (N, 1, H, W)``: the map; ``evidence (N, nr, nc)``: the weight of evidence of the window
    starting at ``rows[i], cols[j]``; ``p_without (N, nr, nc)``: the Monte Carlo ``p(c | x_\\w)``;
    ``p (N,)``: ``p(c | x)``; ``rows``, ``cols``: the window starts.
    """

    relevance: np.ndarray
    evidence: np.ndarray
    p_without: np.ndarray
    p: np.ndarray
    rows: np.ndarray
    cols: np.ndarray


def _starts(size, k, stride):
    s = np.arange(0, size - k + 1, stride)
    return s if s[-1] == size - k else np.append(s, size - k)  # the last window ends at the border


def _probabilities(model, x, how):
    s = np.asarray(model.forward(x), dtype=np.float64)
    if s.ndim != 2 or s.shape[0] != x.shape[0]:
        raise ValueError(f"model.forward must return scores of shape (N, K) = ({x.shape[0]}, K), got {s.shape}")
    if how == "softmax":
        if s.shape[1] == 1:  # one output: a binary classifier's logit, p = σ(s) (and 1 − p for the other class)
            p1 = 0.5 * (1.0 + np.tanh(0.5 * s))
            return np.concatenate([p1, 1.0 - p1], axis=1)[:, :1]
        return _targets._softmax(s)
    if np.any(s < 0) or np.any(s > 1):
        raise ValueError("probabilities='identity' needs model outputs in [0, 1] (class probabilities)")
    return s


def prediction_difference(model, x, target, references=None, window=DEFAULT_WINDOW, padding=DEFAULT_PADDING,
                          sampling="conditional", n_samples=DEFAULT_SAMPLES, rng=None, stride=1,
                          probabilities="softmax", laplace=DEFAULT_LAPLACE_N, channels="independent", clip=None,
                          batch_size=DEFAULT_BATCH_SIZE, progress=False, return_windows=False, ridge=DEFAULT_RIDGE):
    """Prediction difference analysis (Zintgraf et al. 2017): weight of evidence of each window, in bits.

    Parameters
    ----------
    model : anything with ``forward(x) -> (N, K)``
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or a callable on the scores returning ints
        The class explained (its probability; the weight of evidence is defined for classes).
    references : ndarray ``(M, C, H', W')``, a :class:`PatchGaussian`, or None
        The data the unknown window is drawn from.  Conditional sampling fits its Gaussian on them
        (:func:`fit_patch_gaussian`) or takes the given model; marginal sampling draws the same window
        of a reference image (``H' = H``, ``W' = W``).  None (conditional sampling only): the Gaussian is
        fitted on ``x`` itself (stated fallback, so that the method runs as ``fn(model, x, target)``; a
        training set is the paper's choice).
    window, padding : int
        ``k`` and the frame padding (``l = k + 2 padding``); the paper's 10 and 2.
    sampling : ``"conditional"`` or ``"marginal"``
    n_samples : int
        Monte Carlo draws per window (the paper's 10).
    rng : numpy.random.Generator or int (required)
    stride : int
        Window step; 1 is the paper's overlapping windows (``stride = window``: the faster
        non-overlapping variant).  The last window of each axis ends at the border.
    probabilities : ``"softmax"`` (the model returns pre-softmax scores; a single output is read as a
        binary classifier's logit, ``p = σ(s)``) or ``"identity"`` (the model returns probabilities)
    laplace : int or None
        ``N`` of the Laplace correction (``K`` = the model's number of outputs, 2 for a single logit); None: none.
    channels : ``"independent"`` (the authors' code) or ``"joint"``
        Conditional sampling's model of the colour channels (ignored with a given PatchGaussian).
    clip : (low, high), optional
        Clip the sampled values to this range.
    ridge : float
        Diagonal jitter of the fitted covariance, relative to its mean variance (:func:`fit_patch_gaussian`).
    batch_size : int, optional
        Rows (window × sample) per forward call (model input rows per call; default: the cost model's choice,
        :func:`xattr.inputs.rows_per_call`).  Whole windows go together: at least one window (``n_samples`` rows).
    progress : bool
    return_windows : bool
        Return a :class:`PredictionDifference` with the per-window evidence and probabilities.

    Returns
    -------
    ndarray ``(N, 1, H, W)`` in ``x.dtype`` (positive: evidence for the class), or PredictionDifference.
    """
    if not callable(getattr(model, "forward", None)):
        raise TypeError(f"model must have forward(x) -> scores (N, K); {type(model).__name__} lacks forward()")
    x = check_image_batch(x)
    N, C, H, W = x.shape
    k, p = _window_padding(window, padding)
    if k > min(H, W):
        raise ValueError(f"window k = {k} does not fit the image {(H, W)}")
    if sampling not in ("conditional", "marginal"):
        raise ValueError(f"sampling must be 'conditional' or 'marginal', got {sampling!r}")
    if probabilities not in ("softmax", "identity"):
        raise ValueError(f"probabilities must be 'softmax' or 'identity', got {probabilities!r}")
    batch_size = check_batch_size(batch_size)
    for name, v, low in (("n_samples", n_samples, 1), ("stride", stride, 1)):
        if isinstance(v, bool) or not isinstance(v, (numbers.Integral, np.integer)) or v < low:
            raise ValueError(f"{name} must be an int >= {low}, got {v!r}")
    if rng is None:
        raise TypeError("prediction_difference samples the unknown windows: pass rng (a Generator or an int seed)")
    gen = as_rng(rng)
    S = int(n_samples)

    # the class explained, fixed at x
    probs = _probabilities(model, x, probabilities)
    K = probs.shape[1]
    if callable(target):
        target = np.asarray(target(np.asarray(model.forward(x))))
        if target.dtype.kind not in "iu":
            raise TypeError("the weight of evidence explains a class: a target callable must return ints (N,)")
    if isinstance(target, bool) or not isinstance(target, (numbers.Integral, np.integer, np.ndarray, list, tuple)):
        raise TypeError(f"target must be an int, an int array of shape (N,) or a callable, got {type(target).__name__}")
    cls = _targets._classes(target, N, K)
    p_x = probs[np.arange(N), cls]

    # the sampler
    refs = x if references is None else references
    if sampling == "conditional":
        if k + 2 * p > min(H, W):
            raise ValueError(f"the frame l = window + 2 padding = {k + 2 * p} does not fit the image {(H, W)}")
        g = refs if isinstance(refs, PatchGaussian) else fit_patch_gaussian(refs, k, p, channels, ridge=ridge)
        if (g.window, g.padding, g.n_channels) != (k, p, C):
            raise ValueError(
                f"the patch model is for window {g.window}, padding {g.padding}, {g.n_channels} channel(s); "
                f"asked for window {k}, padding {p} on {C} channel(s)"
            )
        if g.size > min(H, W):
            raise ValueError(f"the frame l = window + 2 padding = {g.size} does not fit the image {(H, W)}")
        cache = {}
    else:
        if references is None:
            raise ValueError(
                "marginal sampling draws each window from reference images: pass references (M, C, H, W); x itself "
                "would draw the explained image's own window back"
            )
        if isinstance(refs, PatchGaussian):
            raise TypeError("marginal sampling draws windows of reference images: pass images, not a PatchGaussian")
        refs = as_float_array(refs, "references", ndim=4)
        if refs.shape[1:] != x.shape[1:] or len(refs) == 0:
            raise ValueError(
                f"marginal sampling takes the same window of a reference image: references must be (M,) + "
                f"{x.shape[1:]}, got {refs.shape}"
            )
    if clip is not None:
        lo, hi = (float(v) for v in clip)

    rows, cols = _starts(H, k, int(stride)), _starts(W, k, int(stride))
    nr, nc = len(rows), len(cols)
    img, ii, jj = (a.ravel() for a in np.meshgrid(np.arange(N), np.arange(nr), np.arange(nc), indexing="ij"))
    T = len(img)
    pick = gen.integers(0, len(refs), size=(T, S)) if sampling == "marginal" else None
    p_wo = np.empty(T)
    per = max(1, rows_per_call(batch_size, model, x[:1], T * S) // S)  # windows per forward call
    bar = Progress(T * S, progress, "prediction_difference")
    try:
        for a in range(0, T, per):
            sl = slice(a, min(T, a + per))
            b_img, r0, c0 = img[sl], rows[ii[sl]], cols[jj[sl]]
            B = len(b_img)
            if sampling == "conditional":
                samp = _conditional_samples(g, x, b_img, r0, c0, S, gen, cache)
            else:
                from numpy.lib.stride_tricks import sliding_window_view

                view = sliding_window_view(refs, (k, k), axis=(2, 3))  # (M, C, ., ., k, k), no copy
                samp = view[pick[sl], :, r0[:, None], c0[:, None]]  # (B, S, C, k, k)
            if clip is not None:
                samp = np.clip(samp, lo, hi)
            imgs = np.repeat(x[b_img], S, axis=0)  # (B S, C, H, W)
            rr = np.repeat(r0, S)[:, None] + np.arange(k)
            cc = np.repeat(c0, S)[:, None] + np.arange(k)
            imgs[np.arange(B * S)[:, None, None], :, rr[:, :, None], cc[:, None, :]] = (
                samp.reshape(B * S, C, k, k).transpose(0, 2, 3, 1).astype(x.dtype, copy=False))
            pr = _probabilities(model, imgs, probabilities)[np.arange(B * S), np.repeat(cls[b_img], S)]
            p_wo[sl] = pr.reshape(B, S).mean(axis=1)
            bar.update(B * S)
    finally:
        bar.close()

    p_wo = p_wo.reshape(N, nr, nc)
    we = weight_of_evidence(p_x[:, None, None], p_wo, laplace, max(K, 2))  # one logit: two classes
    # Algorithm 1: a pixel's relevance is the mean over the windows that contain it (indicator matrices)
    R = ((rows[:, None] <= np.arange(H)) & (np.arange(H) < rows[:, None] + k)).astype(np.float64)
    Cm = ((cols[:, None] <= np.arange(W)) & (np.arange(W) < cols[:, None] + k)).astype(np.float64)
    rel = np.einsum("ih,nij,jw->nhw", R, we, Cm, optimize=True) / np.outer(R.sum(0), Cm.sum(0))
    rel = rel[:, None].astype(x.dtype)
    if return_windows:
        return PredictionDifference(rel, we, p_wo, p_x, rows, cols)
    return rel


#: the registry entry's window on images too small for the paper's: a quarter of the image side.
SMALL_IMAGE_WINDOW_FRACTION = 4


def _registered(model, x, target, rng=0, **options):
    """Registry entry ``fn(model, x, target)``: :func:`prediction_difference` with a stated seed 0 (as the
    SmoothGrad entries) and, when neither ``window`` nor ``padding`` nor ``references`` is given, the paper's
    window 10 and padding 2 if the images allow them (the 14 x 14 frame fits and the batch holds more such
    patches than the frame's 196 values, so the Gaussian fitted on the batch has full rank), else
    ``window = max(1, min(H, W) // 4)`` and ``padding = 1`` (small images, e.g. the conformance models' 8 x 8).
    """
    x = check_image_batch(x)
    if not {"window", "padding", "references"} & set(options):
        N, _, H, W = x.shape
        l = DEFAULT_WINDOW + 2 * DEFAULT_PADDING
        if not (min(H, W) >= l and N * (H - l + 1) * (W - l + 1) > l * l):
            options.update(window=max(1, min(H, W) // SMALL_IMAGE_WINDOW_FRACTION), padding=1)
    return prediction_difference(model, x, target, rng=rng, **options)


# -- the registry: the entry with its stated default seed 0 and the paper's window where it fits --------
register(MethodSpec("prediction_difference", _registered, "perturbation", paper="Zintgraf et al. 2017", needs=("rng",),
                    demo={"window": 4, "padding": 2, "stride": 4}))  # the paper's k = 10 needs larger images and
# references; non-overlapping windows (stride = k) keep the demo fast
