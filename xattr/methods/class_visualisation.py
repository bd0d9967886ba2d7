"""Class model visualisation (Simonyan, Vedaldi & Zisserman 2013, "Deep inside convolutional networks").

Find an image that the network finds typical of class ``c``::

    I* = argmax_I  S_c(I) − λ ‖I‖₂²

by gradient ascent from the zero image (the paper's start), ``S_c`` the class score *before* the
softmax (the paper notes that maximising the softmax output ``P_c`` visualises worse, since it can be
raised by lowering the other classes).  The regulariser's gradient is ``2 λ I``, so a step is
``I ← I + lr (∂S_c/∂I − 2 λ I)``.  For a linear score ``S_c = w_c·I + b_c`` the optimum is
``I* = w_c / (2 λ)`` (a test pins this).

Optional regularisers as tf-keras-vis' activation maximisation and Yosinski et al. 2015 ("Understanding
neural networks through deep visualization") use them, both off by default (the paper uses neither):

* ``jitter``: before each gradient, the image is rolled by a random offset of at most ``jitter``
  pixels in each spatial direction (the gradient is rolled back), from ``rng``;
* ``blur_sigma`` / ``blur_every``: every ``blur_every`` steps the image is smoothed with a Gaussian
  of standard deviation ``blur_sigma`` pixels (``scipy.ndimage.gaussian_filter`` over H and W).
"""
from __future__ import annotations

import numbers
from collections import namedtuple

import numpy as np

from .. import _targets
from .._conventions import as_rng
from ..model import check_model

ClassVisualisation = namedtuple("ClassVisualisation", "image scores objective")
ClassVisualisation.__doc__ = """Result of :func:`class_model_visualisation`.

image : ndarray ``(1,) + shape``, the final image
scores : ndarray ``(steps + 1,)``, ``S_c`` at every iterate (the first is the zero image's)
objective : ndarray ``(steps + 1,)``, ``S_c − λ ‖I‖²`` at every iterate
"""


def _positive(value, name, allow_zero=False, integer=False):
    kinds = (numbers.Integral, np.integer) if integer else (numbers.Real, np.floating, np.integer)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise TypeError(f"{name} must be {'an int' if integer else 'a real number'}, got {type(value).__name__}")
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'} and finite, got {value}")
    return value


def class_model_visualisation(
    model, target_class, shape, lam=0.01, lr=1.0, steps=200, jitter=0, blur_sigma=0.0, blur_every=0, rng=None,
    dtype=np.float64,
):
    """Gradient ascent on ``S_c(I) − λ ‖I‖²`` from the zero image (Simonyan et al. 2013).

    Parameters
    ----------
    model : model protocol object
    target_class : int
        ``c``; ``S_c`` is the model's output ``c`` (pre-softmax score).
    shape : tuple ``(C, H, W)``
        One image's shape.
    lam : float
        ``λ >= 0``, the L2 weight.
    lr : float
        Step size (plain gradient ascent; converges for a linear model when ``lr · 2λ < 2``).
    steps : int
        Number of ascent steps.
    jitter : int
        Random roll of up to ``jitter`` pixels per step (0: off).  Needs ``rng``.
    blur_sigma, blur_every : float, int
        Gaussian blur of ``blur_sigma`` pixels every ``blur_every`` steps (0: off).
    rng : numpy.random.Generator or int, optional
        Needed only for ``jitter``.
    dtype : float32 or float64

    Returns
    -------
    ClassVisualisation
        ``(image (1, C, H, W), scores (steps + 1,), objective (steps + 1,))``.
    """
    check_model(model, "gradient")
    shape = tuple(int(s) for s in shape)
    if len(shape) < 1 or min(shape) < 1:
        raise ValueError(f"shape must be one image's shape, e.g. (C, H, W), with positive sizes, got {shape}")
    if isinstance(target_class, bool) or not isinstance(target_class, (numbers.Integral, np.integer)):
        raise TypeError(f"target_class must be an int, got {type(target_class).__name__}")
    lam = float(_positive(lam, "lam", allow_zero=True))
    lr = float(_positive(lr, "lr"))
    steps = int(_positive(steps, "steps", allow_zero=True, integer=True))
    jitter = int(_positive(jitter, "jitter", allow_zero=True, integer=True))
    blur_every = int(_positive(blur_every, "blur_every", allow_zero=True, integer=True))
    blur_sigma = float(_positive(blur_sigma, "blur_sigma", allow_zero=True))
    if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    gen = as_rng(rng) if jitter else None
    if jitter and len(shape) < 3:
        raise ValueError(f"jitter rolls the two spatial axes; shape must be (C, H, W), got {shape}")
    blur = None
    if blur_every and blur_sigma > 0:
        from scipy.ndimage import gaussian_filter

        sig = (0,) * (len(shape) - 2) + (blur_sigma, blur_sigma) if len(shape) >= 2 else blur_sigma

        def blur(img):
            return gaussian_filter(img, sigma=sig, mode="nearest")

    image = np.zeros((1,) + shape, dtype=dtype)
    k = np.array([int(target_class)])

    def score_and_grad(img):
        scores = np.asarray(model.forward(img))
        seed = _targets.seed(k, scores)  # also checks that the class exists
        return float(scores[0, k[0]]), np.asarray(model.vjp(img, seed), dtype=np.float64)

    scores_trace, objective = [], []
    for step in range(steps + 1):
        s, g = score_and_grad(image)
        scores_trace.append(s)
        objective.append(s - lam * float((image.astype(np.float64) ** 2).sum()))
        if step == steps:
            break
        if jitter:
            dy, dx = gen.integers(-jitter, jitter + 1, size=2)
            rolled = np.roll(image, (int(dy), int(dx)), axis=(-2, -1))
            _, g = score_and_grad(rolled)
            g = np.roll(g, (-int(dy), -int(dx)), axis=(-2, -1))
        image = (image + lr * (g - 2 * lam * image)).astype(dtype, copy=False)
        if blur is not None and (step + 1) % blur_every == 0:
            image = blur(image[0])[None].astype(dtype, copy=False)
    return ClassVisualisation(image, np.array(scores_trace), np.array(objective))
