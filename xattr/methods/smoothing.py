"""Noise averaging around any attribution method: SmoothGrad, SmoothGrad², VarGrad.

For a method ``M`` (any function ``M(model, x, target, **options) -> (N, ...)``) and noisy copies
``x + ε_s``, ``ε_s ~ N(0, σ² I)``, ``s = 1 … n``:

============ ============================================ =====================================================
variant      value                                        paper
============ ============================================ =====================================================
``mean``     ``(1/n) Σ_s M(x + ε_s)``                     Smilkov et al. 2017, "SmoothGrad: removing noise by
                                                          adding noise"
``squared``  ``(1/n) Σ_s M(x + ε_s)²``                    SmoothGrad² (Hooker et al. 2019, "A benchmark for
                                                          interpretability methods in deep neural networks")
``vargrad``  ``(1/n) Σ_s (M(x + ε_s) − mean)²``           VarGrad (Adebayo et al. 2018, "Local explanation
                                                          methods for deep neural networks lack sensitivity
                                                          to parameter randomization"); the population
                                                          variance (divisor n)
============ ============================================ =====================================================

Noise scale.  ``sigma_is="range"`` (default, the paper's): ``σ = sigma · (max(x_i) − min(x_i))`` per
image ``x_i`` (over all its channels and pixels); the paper recommends 10–20 %, xattr's default is
``sigma=0.15``.  ``sigma_is="absolute"``: ``σ = sigma`` in input units.  Peers differ (``peers.md``):
Captum's ``NoiseTunnel`` uses an absolute ``stdevs=1.0`` with 5 samples, PAIR saliency 0.15·range with
25 samples (squared in its examples), tf-keras-vis 0.2·range, Zennit 0.1·range with 20 samples,
Xplique an absolute 0.2 with 50 samples, and iNNvestigate always uses std 1.0 (its ``noise_scale`` is
ignored).  xattr uses ``n=50`` samples (the paper's).

Randomness and batching.  The noise is ``σ_i · z`` with ``z = rng.standard_normal((N, n) + x.shape[1:])``
in C order, drawn chunk by chunk in that order, so the result does not depend on ``batch_size``
(at most ``batch_size`` noisy images go into one call of the method).  Same seed, same bits.

SmoothGrad proper (``method=xattr.gradient``, ``variant="mean"``) on a Sequential that starts with an
affine layer ``h = L x + b`` averages ``∂F/∂h`` and applies ``Lᵀ`` once per image at the end:
``(1/n) Σ_s Lᵀ ∂F/∂h (x + ε_s) = Lᵀ (1/n) Σ_s ∂F/∂h (x + ε_s)`` (see :func:`xattr.methods.path._common._affine_head`).
"""
from __future__ import annotations

import numbers

import numpy as np

from .._conventions import as_float_array, as_rng
from ..inputs import DEFAULT_BATCH_SIZE, check_batch_size, rows_per_call
from ..model import check_model
from . import _bounds
from ._chunks import planned
from .gradient import deconvnet, gradient, gradient_x_input, guided_backprop
from .path._common import _affine_head, _resolve_target, _rows_target, _runs, _scores_and_grads
from .registry import MethodSpec, register

VARIANTS = ("mean", "squared", "vargrad")
SIGMA_KINDS = ("range", "absolute")


def noise_scale(x, sigma=0.15, sigma_is="range"):
    """Per-image noise standard deviation ``(N,)``, float64.

    ``"range"``: ``sigma · (max − min)`` of each image (Smilkov et al. 2017); ``"absolute"``: ``sigma``.

    Parameters
    ----------
    x : ndarray ``(N, ...)``
    sigma : float
        Finite and ``>= 0``.
    sigma_is : ``"range"`` or ``"absolute"``

    Returns
    -------
    ndarray ``(N,)``, float64
    """
    if sigma_is not in SIGMA_KINDS:
        raise ValueError(f"sigma_is must be one of {SIGMA_KINDS}, got {sigma_is!r}")
    if isinstance(sigma, bool) or not isinstance(sigma, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"sigma must be a real number, got {type(sigma).__name__}")
    if not np.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be finite and >= 0, got {sigma}")
    x = as_float_array(x, "x")
    n = x.shape[0]
    if sigma_is == "absolute":
        return np.full(n, float(sigma))
    flat = x.reshape(n, -1).astype(np.float64)
    return float(sigma) * (flat.max(axis=1) - flat.min(axis=1))


def _method(method):
    if isinstance(method, str):
        from .registry import get_method

        return get_method(method)
    if not callable(method):
        raise TypeError(f"method must be a callable M(model, x, target, ...) or a registered name, got {method!r}")
    return method


#: methods whose walks run on :func:`xattr.nn.gradient_plan` (batch-norms folded into their convs).
_PLANNED_METHODS = (gradient, gradient_x_input, deconvnet, guided_backprop)


def smoothgrad(
    method, model, x, target, n=50, sigma=0.15, sigma_is="range", variant="mean", rng=None, batch_size=None,
    **method_options,
):
    """Average an attribution method over noisy copies of the input (Smilkov et al. 2017).

    Parameters
    ----------
    method : callable ``M(model, x, target, **method_options) -> (N, ...)`` or a registered name
        E.g. :func:`xattr.gradient` (SmoothGrad proper), :func:`xattr.integrated_gradients`, ...
    model : model protocol object
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable
        A callable returning classes is evaluated once on the clean ``x`` (the class explained does
        not change with the noise).
    n : int
        Noisy samples per image (paper: 50).
    sigma : float
        Noise level; see ``sigma_is``.
    sigma_is : ``"range"`` or ``"absolute"``
        ``σ = sigma · (max − min)`` of each image (default, the paper's) or ``σ = sigma``.
    variant : ``"mean"``, ``"squared"`` or ``"vargrad"``
        See the module docstring.
    rng : numpy.random.Generator or int
        Required.
    batch_size : int, optional
        Noisy images per call of ``method`` (default: for the gradient, the cost model of
        :mod:`xattr.methods._chunks`; for other methods chunks of ``_chunks.VALUES_PER_CHUNK`` input values).

    Returns
    -------
    ndarray, the method's output shape, ``x.dtype``
    """
    rng = as_rng(rng)
    batch_size_arg = batch_size
    fn = _method(method)
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if isinstance(n, bool) or not isinstance(n, (numbers.Integral, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    _bounds.count(n, "n", 1, _bounds.MAX_SAMPLES, " (N x n noise draws are indexed at once; average several runs)")
    batch_size = check_batch_size(batch_size)  # validated here, sized below once x is known
    check_model(model)
    given = model
    x = as_float_array(x, "x")
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty batch of shape (N, ...), got shape {x.shape}")
    if fn in _PLANNED_METHODS:  # planned once for all N·n rows here, not per chunk inside the method
        model = planned(model, x[:1], x.shape[0] * int(n))
    scale = noise_scale(x, sigma, sigma_is)
    tgt, _ = _resolve_target(model, x, target)
    N, n = x.shape[0], int(n)
    img = np.repeat(np.arange(N), n)
    bshape = (-1,) + (1,) * (x.ndim - 1)
    # SmoothGrad proper behind an affine first layer: average ∂F/∂h, apply Lᵀ once (module docstring)
    head = _affine_head(model) if fn is gradient and variant == "mean" and not method_options else None
    if batch_size_arg is None:  # a gradient per noisy image: the cost model; other methods: the values rule
        if head is not None:
            batch_size = rows_per_call(None, given, head.forward(x[:1])[0], N * n, start=head.name)
        elif fn is gradient and not method_options:
            batch_size = rows_per_call(None, given, x[:1], N * n)
        else:
            batch_size = rows_per_call(None, None, x[:1], N * n)  # the values rule
    # running per-image mean and sum of squared deviations (Chan et al.'s pairwise update), float64
    count, mean, m2 = np.zeros(N), None, None
    for lo in range(0, N * n, batch_size):
        sl = slice(lo, min(N * n, lo + batch_size))
        ii = img[sl]
        z = rng.standard_normal((sl.stop - sl.start,) + x.shape[1:])
        noisy = (x[ii] + (scale[ii].reshape(bshape) * z)).astype(x.dtype, copy=False)
        if head is None:
            a = np.asarray(fn(model, noisy, _rows_target(tgt, ii), **method_options))
        else:
            a = _scores_and_grads(
                model, head.forward(noisy)[0], _rows_target(tgt, ii), np.ones(len(ii)), start=head.name
            )[1]
        if a.shape[0] != len(ii):
            raise ValueError(f"method returned {a.shape[0]} maps for a batch of {len(ii)} images")
        if variant == "squared":
            a = np.asarray(a, dtype=np.float64) ** 2
        if mean is None:
            mean, m2 = np.zeros((N,) + a.shape[1:]), np.zeros((N,) + a.shape[1:])
        runs = _runs(ii)  # rows come in runs per image: views, not masked copies
        for i, rows in runs if runs is not None else ((i, ii == i) for i in np.unique(ii)):
            block = a[rows]
            nb, mb = len(block), block.mean(axis=0, dtype=np.float64)
            delta = mb - mean[i]
            tot = count[i] + nb
            mean[i] += delta * (nb / tot)
            if variant == "vargrad":  # the sum of squared deviations only VarGrad reads
                m2[i] += ((block - mb) ** 2).sum(axis=0) + delta**2 * (count[i] * nb / tot)
            count[i] = tot
    out = m2 / n if variant == "vargrad" else mean
    if head is not None:
        out = head.backward(out, head.forward(x)[1], "gradient")  # Lᵀ of the mean, in float64
    return out.astype(x.dtype, copy=False)


def smoothgrad_gradient(model, x, target, n=50, sigma=0.15, sigma_is="range", rng=0, batch_size=None):
    """SmoothGrad of the vanilla gradient (registry entry ``"smoothgrad"``; default seed 0, stated).

    Parameters
    ----------
    model : model protocol object (``forward``, ``vjp``)
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable on the scores ``(N, K)``
    n : int
        Noisy samples per image (paper: 50).
    sigma : float
        Noise level; see ``sigma_is``.
    sigma_is : ``"range"`` or ``"absolute"``
        See :func:`noise_scale`.
    rng : numpy.random.Generator or int
        Default 0 (a fixed, stated seed).
    batch_size : int, optional
        Noisy images per gradient call (see :func:`smoothgrad`).

    Returns
    -------
    ndarray ``(N, C, H, W)``
    """
    from .gradient import gradient

    return smoothgrad(gradient, model, x, target, n, sigma, sigma_is, "mean", rng, batch_size)


def smoothgrad_squared_gradient(model, x, target, n=50, sigma=0.15, sigma_is="range", rng=0, batch_size=None):
    """SmoothGrad² of the vanilla gradient (registry entry ``"smoothgrad_squared"``; default seed 0).

    Parameters
    ----------
    model : model protocol object (``forward``, ``vjp``)
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable on the scores ``(N, K)``
    n : int
        Noisy samples per image (paper: 50).
    sigma : float
        Noise level; see ``sigma_is``.
    sigma_is : ``"range"`` or ``"absolute"``
        See :func:`noise_scale`.
    rng : numpy.random.Generator or int
        Default 0 (a fixed, stated seed).
    batch_size : int, optional
        Noisy images per gradient call (see :func:`smoothgrad`).

    Returns
    -------
    ndarray ``(N, C, H, W)``
    """
    from .gradient import gradient

    return smoothgrad(gradient, model, x, target, n, sigma, sigma_is, "squared", rng, batch_size)


def vargrad_gradient(model, x, target, n=50, sigma=0.15, sigma_is="range", rng=0, batch_size=None):
    """VarGrad of the vanilla gradient (registry entry ``"vargrad"``; default seed 0).

    Parameters
    ----------
    model : model protocol object (``forward``, ``vjp``)
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable on the scores ``(N, K)``
    n : int
        Noisy samples per image (paper: 50).
    sigma : float
        Noise level; see ``sigma_is``.
    sigma_is : ``"range"`` or ``"absolute"``
        See :func:`noise_scale`.
    rng : numpy.random.Generator or int
        Default 0 (a fixed, stated seed).
    batch_size : int, optional
        Noisy images per gradient call (see :func:`smoothgrad`).

    Returns
    -------
    ndarray ``(N, C, H, W)``
    """
    from .gradient import gradient

    return smoothgrad(gradient, model, x, target, n, sigma, sigma_is, "vargrad", rng, batch_size)


__all__ = ["smoothgrad", "noise_scale", "smoothgrad_gradient", "smoothgrad_squared_gradient", "vargrad_gradient",
           "DEFAULT_BATCH_SIZE"]


# -- the registry: SmoothGrad and its variants of the vanilla gradient, with a stated default seed 0 ----
register(MethodSpec("smoothgrad", smoothgrad_gradient, "smoothing", paper="Smilkov et al. 2017", needs=("rng",),
                    demo={"n": 16}))
register(MethodSpec("smoothgrad_squared", smoothgrad_squared_gradient, "smoothing", paper="Hooker et al. 2019",
                    needs=("rng",), demo={"n": 16}))
register(MethodSpec("vargrad", vargrad_gradient, "smoothing", paper="Adebayo et al. 2018", needs=("rng",),
                    demo={"n": 16}))
