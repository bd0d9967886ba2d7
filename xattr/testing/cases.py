"""Small deterministic models and inputs on which the axiom checks run by default.

Every check accepts its own ``model, x, target``; when none is given it uses
:func:`default_case`, a tiny CNN chosen so that each construction of
:mod:`xattr.testing.twins` applies (e.g. even pooled widths for the mirror twin).
"""
from __future__ import annotations

import numpy as np

from .._conventions import as_rng
from ..nn import Conv2D, Dense, Flatten, GlobalAvgPool2D, MaxPool2D, ReLU, Sequential


def small_cnn(rng=0, in_channels=3, n_classes=3, bias=True, padding=1, head="gap", size=8):
    """``conv3x3(C→4) - ReLU - maxpool2 - conv3x3(4→6, pad 1) - ReLU - {GAP | Flatten} - Dense(→K)``.

    Weights He/LeCun-initialised from ``rng``; biases ``N(0, 0.1²)`` when ``bias`` (so they
    matter), none otherwise.  ``padding`` is the first convolution's.

    Parameters
    ----------
    rng : numpy.random.Generator or int
    in_channels, n_classes : int
    bias : bool
    padding : int
    head : ``"gap"`` or ``"flatten"``
    size : int
        The input side (for the flatten head's width).

    Returns
    -------
    Sequential
    """
    gen = as_rng(rng)
    c1 = Conv2D(in_channels, 4, 3, padding=padding, bias=bias, rng=gen)
    c2 = Conv2D(4, 6, 3, padding=1, bias=bias, rng=gen)
    h = (size + 2 * padding - 2) // 2
    if head == "gap":
        tail = [GlobalAvgPool2D(), Dense(6, n_classes, bias=bias, rng=gen)]
    elif head == "flatten":
        tail = [Flatten(), Dense(6 * h * h, n_classes, bias=bias, rng=gen)]
    else:
        raise ValueError(f"head must be 'gap' or 'flatten', got {head!r}")
    model = Sequential(c1, ReLU(), MaxPool2D(2), c2, ReLU(), *tail)
    if bias:
        for layer in model:
            if getattr(layer, "bias", None) is not None:
                layer.bias = gen.normal(0.0, 0.1, layer.bias.shape)
    return model


def images(rng=1, n=2, channels=3, size=8):
    """``(n, channels, size, size)`` float64 ``N(0, 1)`` images.

    Parameters
    ----------
    rng : numpy.random.Generator or int
    n, channels, size : int

    Returns
    -------
    ndarray ``(n, channels, size, size)``, float64
    """
    return as_rng(rng).normal(0.0, 1.0, (n, channels, size, size))


def saturating_model():
    """The IG paper's saturation example as a ``Sequential``: ``f(x) = mean_pixels(1 - ReLU(1 - x))``.

    Sundararajan et al. 2017, §2.1: at ``x = 2`` the function is flat (gradient 0) although
    ``f(2) - f(0) = 1``; gradient-type methods then give no attribution to the feature that
    changed the output (they violate sensitivity(a)).  One input channel, two classes
    (``f`` and ``-f``).
    """
    a = Conv2D(1, 1, 1)
    a.weight, a.bias = -np.ones((1, 1, 1, 1)), np.ones(1)
    b = Conv2D(1, 1, 1)
    b.weight, b.bias = -np.ones((1, 1, 1, 1)), np.ones(1)
    d = Dense(1, 2)
    d.weight, d.bias = np.array([[1.0], [-1.0]]), np.zeros(2)
    return Sequential(a, ReLU(), b, GlobalAvgPool2D(), d)


def ig_paper_pair():
    """The IG paper's functionally equal pair as image models, and an input: ``(f1, f2, x, target)``.

    Sundararajan et al. 2017, §3.2: ``f1 = ReLU(ReLU(x1) - 1 - ReLU(x2))`` and
    ``f2 = ReLU(ReLU(x1 - 1) - ReLU(x2))`` are the same function but differ in structure
    (where the bias sits).  Here ``x1, x2`` are the two channels of every pixel (1x1
    convolutions), averaged by a GAP; ``x`` is ``(1, 2, 8, 8)`` with ``x1 = 3, x2 = 1``
    everywhere, where DeepLIFT gives ``(1.5, -0.5)`` on ``f1`` but ``(2, -1)`` on ``f2`` per pixel
    (up to the GAP's 1/64).
    """
    def net(bias_first):
        a, b = Conv2D(2, 2, 1), Conv2D(2, 1, 1)
        a.weight, a.bias = np.eye(2)[:, :, None, None], np.array([-1.0 if bias_first else 0.0, 0.0])
        b.weight, b.bias = np.array([[1.0, -1.0]])[:, :, None, None], np.array([0.0 if bias_first else -1.0])
        d = Dense(1, 1)
        d.weight, d.bias = np.ones((1, 1)), np.zeros(1)
        return Sequential(a, ReLU(), b, ReLU(), GlobalAvgPool2D(), d)

    x = np.empty((1, 2, 8, 8))
    x[:, 0], x[:, 1] = 3.0, 1.0
    return net(False), net(True), x, 0


def default_case(check, **options):
    """``(model, x, target)`` used by ``check`` (a check name) when the caller gives none.

    ``options`` go to :func:`small_cnn` (``bias``, ``padding``, ``head``, ``n_classes``) and
    ``n`` (batch size) / ``size`` to :func:`images`.  ``arch="resnet" | "densenet" | "mobilenet"`` runs the check on
    a reference graph of :mod:`xattr.testing.networks` instead (``bias=False``: no biases and batch-norms
    without shift); ``padding`` and ``head`` then do not apply.

    Parameters
    ----------
    check : str
        A check's name.
    **options
        See above.

    Returns
    -------
    (model, ndarray ``(N, C, H, W)``, target)
    """
    arch = options.pop("arch", "cnn")
    n = options.pop("n", 3 if check == "batch_invariance" else 2)
    if arch != "cnn" and check != "sensitivity":
        return _graph_case(arch, check, n, **options)
    size = options.get("size", 8)
    if check == "sensitivity":
        x = np.zeros((1, 1, 8, 8))  # 8x8 so that segment-based methods' default grids fit
        x[0, 0, 0, 0] = 2.0
        return saturating_model(), x, 0
    if check == "input_shift_invariance":
        options.setdefault("padding", 0)
    model = small_cnn(**options)
    x = images(n=n, channels=model[0].in_channels, size=size)
    target = np.arange(n) % model.layers[-1].out_features if check == "batch_invariance" else 1
    return model, x, target


def _graph_case(arch, check, n, bias=True, n_classes=3, size=None, rng=1, **ignored):
    """A reference graph (:mod:`xattr.testing.networks`) and images for :func:`default_case`.

    Sizes are chosen so that every stride-2 window tiles the width symmetrically (the symmetry check's mirror twin
    needs it): the ResNet without its stem max-pool on 9×9 (a 3×3/2 conv needs an odd width, a max-pool an even
    output), the DenseNet block with a 2×2 max-pool after its stem on 8×8.  Weights ``rng=1``: Grad-CAM's map of
    target 1 is not all zero there (with ``rng=0`` the DenseNet's is, and every claim about it would hold trivially).
    """
    from functools import partial

    from . import networks

    makers = {"resnet": (partial(networks.small_resnet, maxpool=False), 9),
              "densenet": (partial(networks.dense_block_net, maxpool=(2, 2, 0)), 8),
              "mobilenet": (networks.inverted_residual_net, 8)}
    if arch not in makers:
        raise ValueError(f"arch must be 'cnn' or one of {sorted(makers)}, got {arch!r}")
    make, default_size = makers[arch]
    size = default_size if size is None else size
    model = make(in_channels=3, classes=n_classes, rng=rng)
    if not bias:
        for layer in model:
            if getattr(layer, "bias", None) is not None:
                layer.bias = np.zeros_like(layer.bias)
            if hasattr(layer, "running_mean"):
                layer.running_mean = np.zeros_like(layer.running_mean)
    x = images(n=n, channels=3, size=size)
    target = np.arange(n) % n_classes if check == "batch_invariance" else 1
    return model, x, target
