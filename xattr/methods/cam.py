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
from ..nn import INPUT, Dense, Dropout, Flatten, GlobalAvgPool2D
from ._resize import linear_interpolation_matrix
from .registry import MethodSpec, register


def _require_layered(model, method):
    if not hasattr(model, "trace") or not hasattr(model, "node"):
        raise TypeError(
            f"{method} reads activations at a layer and needs a layered model (xattr.nn.Graph or Sequential), "
            f"got {type(model).__name__}"
        )


def _interp_matrix(n_out, n_in, dtype):
    """``(n_out, n_in)`` linear-interpolation weights, half-pixel centres, edges clamped (PyTorch's bilinear)."""
    return linear_interpolation_matrix(n_out, n_in, "clamp", dtype)


def upsample_bilinear(a, out_hw):
    """Bilinear resize ``(N, C, h, w) -> (N, C, H, W)``, ``align_corners=False`` (PyTorch's default).

    Parameters
    ----------
    a : ndarray ``(N, C, h, w)``
    out_hw : tuple of int ``(H, W)``

    Returns
    -------
    ndarray ``(N, C, H, W)``, ``a.dtype``
    """
    H, W = out_hw
    mh = _interp_matrix(H, a.shape[2], a.dtype)
    mw = _interp_matrix(W, a.shape[3], a.dtype)
    return np.einsum("Hh,nchw,Ww->ncHW", mh, a, mw, optimize=True)


def _finish(m, x, upsample):
    m = m[:, None]
    return upsample_bilinear(m, x.shape[2:]) if upsample else m


#: single-input layers that only relabel or pass units between a GAP and the final dense layer
_HEAD_PASS = (Flatten, Dropout)


def _gap_head(model):
    """``(name of the GAP's input node, dense layer)`` of a model whose output is GAP -> [Flatten/Dropout] -> Dense."""
    dense = model[model.output]
    if not isinstance(dense, Dense):
        raise ValueError(
            f"CAM needs a model whose last layer is Dense (its output node: a GAP -> Dense head); {dense.describe()} "
            "is the output"
        )
    n = model.inputs_of(model.output)[0]
    while n != INPUT and isinstance(model[n], _HEAD_PASS):
        n = model.inputs_of(n)[0]
    if n == INPUT or not isinstance(model[n], GlobalAvgPool2D):
        raise ValueError("CAM needs GlobalAvgPool2D right before the final Dense layer (Zhou et al. 2016)")
    for k in _head_nodes(model, n):
        if len(model.consumers(k)) != 1:
            raise ValueError(f"CAM needs the head GAP -> Dense to be a chain; node {k!r} also feeds other nodes")
    return model.inputs_of(n)[0], dense


def _head_nodes(model, gap):
    out, n = [], gap
    while n != model.output:
        out.append(n)
        n = model.consumers(n)[0]
    return out


def cam(model, x, target, upsample=True):
    """Class activation map (Zhou et al. 2016).

    ``M = Σ_k w_k A_k`` with ``A`` the input of the global average pool and ``w`` the final
    dense layer's weights contracted with the target's seed (``W[c]`` for a class ``c``).
    The bias is not part of the map (as in the paper).

    Parameters
    ----------
    model : Graph or Sequential whose output is ``GlobalAvgPool2D -> [Flatten] -> Dense``
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable
    upsample : bool
        Bilinearly resize the ``(h, w)`` map to ``(H, W)``.

    Returns
    -------
    ndarray ``(N, 1, H, W)`` (or ``(N, 1, h, w)``), ``x.dtype``
    """
    _require_layered(model, "cam")
    x = check_image_batch(x)
    feat_node, dense = _gap_head(model)
    tape = model.trace(x)
    feats = tape.value(feat_node)
    if feats.ndim != 4:
        raise ValueError(f"CAM needs spatial features (N, K, h, w) before the GAP, got {feats.shape}")
    w = _targets.seed(target, tape.output) @ dense.weight.astype(x.dtype)  # (N, K)
    return _finish(np.einsum("nk,nkhw->nhw", w, feats), x, upsample)


def default_cam_layer(model, x):
    """Name of the last node (in topological order) whose output is spatial ``(N, C, h, w)``: the usual Grad-CAM
    layer.

    Parameters
    ----------
    model : Graph or Sequential
    x : ndarray ``(N, C, H, W)``
        An input the model is traced on (for the nodes' output shapes).

    Returns
    -------
    str
    """
    return _last_spatial(model.trace(x))


def _last_spatial(tape):
    for n in reversed(tape.graph.order):
        if n in tape and tape.value(n).ndim == 4:
            return n
    raise ValueError("grad_cam found no layer with a spatial (N, C, h, w) output")


def activations_and_gradients(model, x, target, layer=None, node=None):
    """``(A, ∂S/∂A, name)`` at a node: its activations and the gradient of the explained score there, from one
    forward and one backward pass (the base of the CAM family).

    Parameters
    ----------
    model : Graph or Sequential
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable on the scores ``(N, K)``
    layer : str or int, optional
        A node name or index; default the last node with a spatial output.
    node : str or int, optional
        Explain a hidden unit instead of a class score (:func:`explained_unit`); ``layer`` must lie upstream of it.

    Returns
    -------
    feats : ndarray ``(N, K, h, w)``
        The activations ``A``.
    grads : ndarray ``(N, K, h, w)``
        ``∂S/∂A``.
    name : str
        The node's name.
    """
    _require_layered(model, "grad_cam")
    x = check_image_batch(x)
    tape = model.trace(x)
    name = _last_spatial(tape) if layer is None else model.name_of(layer)
    feats = tape.value(name)
    if feats.ndim != 4:
        raise ValueError(
            f"grad_cam needs a layer with a spatial output (N, C, h, w); {model[name].describe()} gives {feats.shape}"
        )
    if node is None:
        g = tape.pull(_targets.seed(target, tape.output), "gradient", to=name)
    else:
        out = model.name_of(node)
        if name not in model._ancestors(out) or name == out:
            raise ValueError(f"layer {name!r} must lie upstream of node {out!r} to explain it")
        g = tape.pull({out: explained_unit(tape.value(out), target, out)}, "gradient", to=name)
    return feats, g, name


def explained_unit(a, target, name="node"):
    """The seed at a hidden node's output ``a`` that explains its unit ``target``.

    A channel's spatial mean for a map ``(N, C, h, w)`` (``S = mean_{i,j} A_c``, the value a global average pool would
    pass on), a unit for a vector ``(N, K)``; ``target`` indexes the channels/units as it indexes classes.  Selvaraju
    et al. (2017, §3) note that Grad-CAM explains any differentiable activation, not only a class score.

    Parameters
    ----------
    a : ndarray ``(N, C, h, w)`` or ``(N, K)``
    target : int, int array ``(N,)`` or callable on ``(N, C)`` / ``(N, K)``
    name : str
        The node's name (for the error message).

    Returns
    -------
    ndarray, ``a.shape``
    """
    if a.ndim == 4:
        s = _targets.seed(target, a.mean(axis=(2, 3)))  # (N, C)
        return np.broadcast_to(s[:, :, None, None] / (a.shape[2] * a.shape[3]), a.shape).copy()
    if a.ndim == 2:
        return _targets.seed(target, a)
    raise ValueError(f"node {name!r} must give (N, C, h, w) or (N, K) to explain one of its units, got {a.shape}")


def grad_cam(model, x, target, layer=None, relu=True, upsample=True, node=None):
    """Grad-CAM (Selvaraju et al. 2017).

    Parameters
    ----------
    model : Graph or Sequential
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable
    layer : str or int, optional
        The node whose output ``A (N, K, h, w)`` is used (a name, or a position in topological order);
        default: the last node with a spatial output.
    relu : bool
        Apply the paper's final ReLU (default True).  Captum's default is without it.
    upsample : bool
        Bilinearly resize to ``(H, W)``.
    node : str or int, optional
        Explain a hidden unit instead of a class score: ``target`` then indexes this node's channels (their
        spatial mean) or units (:func:`explained_unit`); ``layer`` must lie upstream of it.

    Returns
    -------
    ndarray ``(N, 1, H, W)`` (or ``(N, 1, h, w)``)
    """
    feats, g, _ = activations_and_gradients(model, x, target, layer, node=node)
    x = check_image_batch(x)
    alpha = g.mean(axis=(2, 3))  # (N, K): global-average-pooled gradients
    m = np.einsum("nk,nkhw->nhw", alpha, feats)
    if relu:
        m = np.maximum(m, 0)
    return _finish(m, x, upsample)


def guided_grad_cam(model, x, target, layer=None, pixel="guided_backprop"):
    """Guided Grad-CAM (Selvaraju et al. 2017): a pixel-space map ⊙ the upsampled Grad-CAM.

    Parameters
    ----------
    model : Graph or Sequential
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable on the scores ``(N, K)``
    layer : str or int, optional
        The Grad-CAM layer (see :func:`grad_cam`).
    pixel : str or callable
        The pixel-space method, guided backprop by default (the paper's); the paper's §3 notes that Grad-CAM can lens
        any pixel-space map, so any registered method name (``"gradient"``, ``"smoothgrad"``,
        ``"integrated_gradients"``, ...) or a callable ``(model, x, target) -> (N, C, H, W)`` is accepted.

    Returns
    -------
    ndarray ``(N, C, H, W)``
    """
    if isinstance(pixel, str):
        from .registry import get_method

        pixel_fn = get_method(pixel)
    elif callable(pixel):
        pixel_fn = pixel
    else:
        raise TypeError(f"pixel must be a method name or a callable (model, x, target) -> map, got {pixel!r}")
    fine = np.asarray(pixel_fn(model, x, target))
    x = check_image_batch(x)
    if fine.shape != x.shape:
        raise ValueError(f"the pixel method must return a map of x's shape {x.shape}, got {fine.shape}")
    return fine * grad_cam(model, x, target, layer=layer, relu=True, upsample=True)


# -- the registry -------------------------------------------------------------------------------------
register(MethodSpec("cam", cam, "cam", paper="Zhou et al. 2016", needs=("layered", "gap head")))
register(MethodSpec("grad_cam", grad_cam, "cam", paper="Selvaraju et al. 2017", needs=("layered", "spatial node")))
register(MethodSpec("guided_grad_cam", guided_grad_cam, "cam", paper="Selvaraju et al. 2017",
                    needs=("layered", "spatial node", "rule:guided")))
