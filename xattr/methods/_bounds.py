"""Bounds on the methods' options, checked before any arithmetic (one line each, naming the bound).

The methods hold some per-draw or per-node arrays in memory at once (path nodes × images, LIME's masks
and its normal equations, ...).  Rather than start and run out of memory (or silently compute with
weights that underflowed to zero), options beyond these stated bounds are refused:

=========================  ==============================================================================
``MAX_STEPS = 65536``      quadrature nodes of integrated gradients and draws of expected gradients per
                           image (index arrays of ``N × steps``; past this, Gauss–Legendre's error is far
                           below round-off: use ``quadrature="exact"`` or average several runs)
``MAX_SAMPLES = 131072``   LIME / KernelSHAP coalitions and SmoothGrad noise draws per image
``MAX_FIT_BYTES = 2 GiB``  LIME / KernelSHAP regression in float64: the ``n × M`` design three times (mask,
                           centred, weighted) and the ``M × M`` normal equations twice
``MAX_BLUR_SIGMA = 1e4``   pixels, the "blur" fill's Gaussian (wider is the image mean to round-off)
=========================  ==============================================================================

Real-valued options must be finite: LIME's ``kernel_width`` also so that ``kernel_width²`` is a normal
float (``1e-200`` squared is 0, and the kernel ``exp(−d²/σ²)`` divides by it); ``alpha = inf`` is refused
(the ridge solve would return LAPACK noise).
"""
from __future__ import annotations

import numbers

import numpy as np

MAX_STEPS = 1 << 16
MAX_SAMPLES = 1 << 17
MAX_FIT_BYTES = 2 << 30
MAX_BLUR_SIGMA = 1e4
#: smallest LIME kernel width whose square is a normal float64 (``sqrt(finfo.tiny)`` ≈ 1.49e-154).
MIN_KERNEL_WIDTH = float(np.sqrt(np.finfo(np.float64).tiny))


def count(value, name, minimum=1, maximum=None, why=""):
    """``value`` as an int in ``[minimum, maximum]``; ``TypeError``/``ValueError`` naming the bound otherwise."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} = {value} is above the bound {maximum}{why}")
    return int(value)


def real(value, name, minimum=None, positive=False):
    """``value`` as a finite float (``> 0`` if ``positive``, ``>= minimum`` if given)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if positive and not value > 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return float(value)


def lime_options(n_samples, kernel_width, alpha):
    """LIME's options (top of :func:`xattr.methods.perturbation.lime`)."""
    count(n_samples, "n_samples", 2, MAX_SAMPLES, " (LIME holds every mask at once; average several runs instead)")
    real(kernel_width, "kernel_width", positive=True)
    if kernel_width < MIN_KERNEL_WIDTH:
        raise ValueError(f"kernel_width = {kernel_width!r} is below {MIN_KERNEL_WIDTH:.3g}: its square underflows to 0 "
                         "and the kernel exp(-d^2 / kernel_width^2) is undefined")
    real(alpha, "alpha", minimum=0.0)


def kernel_shap_options(n_samples):
    if n_samples != "auto":
        count(
            n_samples,
            "n_samples",
            1,
            MAX_SAMPLES,
            " (KernelSHAP holds every coalition at once; average several runs instead)",
        )


def fit_size(n_samples, M, method):
    """Refuse a regression on ``n_samples × M`` masks whose float64 arrays exceed :data:`MAX_FIT_BYTES`."""
    need = 8 * (3 * int(n_samples) * int(M) + 2 * int(M) * int(M))
    if need > MAX_FIT_BYTES:
        raise ValueError(
            f"{method} with {n_samples} samples over M = {M} segments needs {need / 2**30:.3g} GiB for its "
            f"regression, above the bound {MAX_FIT_BYTES / 2**30:g} GiB; use fewer samples or larger segments"
        )


def blur_sigma(sigma):
    real(sigma, "sigma", minimum=0.0)
    if sigma > MAX_BLUR_SIGMA:
        raise ValueError(
            f"sigma = {sigma!r} pixels is above the bound {MAX_BLUR_SIGMA:g} (a wider blur is the image mean)"
        )
    return float(sigma)
