"""Class activation maps: CAM, Grad-CAM and Guided Grad-CAM.

* CAM (Zhou et al. 2016): for a ``... -> A (N, K, h, w) -> GAP -> Dense`` head,
  ``M_c = Σ_k W[c, k] A_k``.
* Grad-CAM (Selvaraju et al. 2017): at any layer with a spatial output ``A``,
  ``α_k = mean_{h,w} ∂S_c/∂A_k`` and ``M_c = ReLU(Σ_k α_k A_k)``.  The ReLU is the paper's;
  ``relu=False`` keeps the signs (Captum's ``LayerGradCam`` default, see peers).
  On a GAP -> Dense head Grad-CAM at the GAP's input equals ``ReLU(CAM) / (h w)``.
* Guided Grad-CAM: guided backprop ⊙ the upsampled Grad-CAM (broadcast over channels).

Maps are returned as ``(N, 1, h, w)`` (coarse) or ``(N, 1, H, W)`` upsampled to the input
with bilinear interpolation, half-pixel centres (``align_corners=False``, as PyTorch's
``F.interpolate`` and Captum's ``LayerAttribution.interpolate``).
"""
from __future__ import annotations

import numpy as np

from .. import _targets
from .._conventions import check_image_batch
from ..nn import Dense, Dropout, Flatten, GlobalAvgPool2D, Sequential
from .gradient import guided_backprop


def _require_sequential(model, method):
    if not isinstance(model, Sequential):
        raise TypeError(
            f"{method} needs a layered model (xattr.nn.Sequential) to read activations at a layer, "
            f"got {type(model).__name__}"
        )


def _interp_matrix(n_out, n_in, dtype):
    """``(n_out, n_in)`` linear-interpolation weights, half-pixel centres, edges clamped."""
    src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(src).astype(np.intp)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    m = np.zeros((n_out, n_in), dtype=dtype)
    np.add.at(m, (np.arange(n_out), lo), 1 - frac)
    np.add.at(m, (np.arange(n_out), hi), frac)
    return m


def upsample_bilinear(a, out_hw):
    """Bilinear resize ``(N, C, h, w) -> (N, C, H, W)``, ``align_corners=False`` (PyTorch's default)."""
    H, W = out_hw
    mh = _interp_matrix(H, a.shape[2], a.dtype)
    mw = _interp_matrix(W, a.shape[3], a.dtype)
    return np.einsum("Hh,nchw,Ww->ncHW", mh, a, mw, optimize=True)


def _finish(m, x, upsample):
    m = m[:, None]
    return upsample_bilinear(m, x.shape[2:]) if upsample else m


def _gap_head(model):
    """``(index of the GAP, dense layer)`` of a model ending GAP -> [Flatten/Dropout] -> Dense."""
    layers = model.layers
    if not layers or not isinstance(layers[-1], Dense):
        raise ValueError("CAM needs a model whose last layer is Dense (a GAP -> Dense head)")
    k = len(layers) - 2
    while k >= 0 and isinstance(layers[k], (Flatten, Dropout)):
        k -= 1
    if k < 0 or not isinstance(layers[k], GlobalAvgPool2D):
        raise ValueError("CAM needs GlobalAvgPool2D right before the final Dense layer (Zhou et al. 2016)")
    return k, layers[-1]


def cam(model, x, target, upsample=True):
    """Class activation map (Zhou et al. 2016).

    ``M = Σ_k w_k A_k`` with ``A`` the input of the global average pool and ``w`` the final
    dense layer's weights contracted with the target's seed (``W[c]`` for a class ``c``).
    The bias is not part of the map (as in the paper).

    Parameters
    ----------
    model : Sequential ending ``GlobalAvgPool2D -> [Flatten] -> Dense``
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable
    upsample : bool
        Bilinearly resize the ``(h, w)`` map to ``(H, W)``.

    Returns
    -------
    ndarray ``(N, 1, H, W)`` (or ``(N, 1, h, w)``), ``x.dtype``
    """
    _require_sequential(model, "cam")
    x = check_image_batch(x)
    k, dense = _gap_head(model)
    feats, _ = model.forward_all(x, stop=k)
    scores = model.forward(x)
    w = _targets.seed(target, scores) @ dense.weight.astype(x.dtype)  # (N, K)
    return _finish(np.einsum("nk,nkhw->nhw", w, feats), x, upsample)


def default_cam_layer(model, x):
    """Name of the last layer whose output is spatial ``(N, C, h, w)`` (the usual Grad-CAM layer)."""
    h = x
    last = None
    for layer in model:
        h = layer(h)
        if h.ndim == 4:
            last = layer.name
    if last is None:
        raise ValueError("grad_cam found no layer with a spatial (N, C, h, w) output")
    return last


def grad_cam(model, x, target, layer=None, relu=True, upsample=True):
    """Grad-CAM (Selvaraju et al. 2017).

    Parameters
    ----------
    model : Sequential
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable
    layer : str or int, optional
        The layer whose output ``A (N, K, h, w)`` is used; default: the last layer with a
        spatial output.
    relu : bool
        Apply the paper's final ReLU (default True).  Captum's default is without it.
    upsample : bool
        Bilinearly resize to ``(H, W)``.

    Returns
    -------
    ndarray ``(N, 1, H, W)`` (or ``(N, 1, h, w)``)
    """
    _require_sequential(model, "grad_cam")
    x = check_image_batch(x)
    if layer is None:
        layer = default_cam_layer(model, x)
    i = model.index(layer)
    feats, caches = model.forward_all(x, stop=i + 1)
    if feats.ndim != 4:
        raise ValueError(f"grad_cam needs a layer with a spatial output (N, C, h, w); {model[i].describe()} gives {feats.shape}")
    scores, tail = feats, []
    for lay in model.layers[i + 1 :]:
        scores, c = lay.forward(scores)
        tail.append(c)
    g = model.backward(_targets.seed(target, scores), caches + tail, "gradient", stop=i + 1)
    alpha = g.mean(axis=(2, 3))  # (N, K): global-average-pooled gradients
    m = np.einsum("nk,nkhw->nhw", alpha, feats)
    if relu:
        m = np.maximum(m, 0)
    return _finish(m, x, upsample)


def guided_grad_cam(model, x, target, layer=None):
    """Guided Grad-CAM (Selvaraju et al. 2017): guided backprop ⊙ upsampled Grad-CAM; ``(N, C, H, W)``."""
    return guided_backprop(model, x, target) * grad_cam(model, x, target, layer=layer, relu=True, upsample=True)
