"""Differentiable stand-ins of attribution maps, for attacks on the interpretation (Ghorbani et al. 2019).

An attack that moves ``x`` to change a map ``A(x)`` needs ``∂D(A(x))/∂x``: a second derivative of the
network for gradient-based maps.  On a ReLU network the gradient map is piecewise constant in ``x``
(its derivative is 0 almost everywhere), so Ghorbani, Abid & Zou take the direction from a *surrogate*:
the same weights with every ReLU replaced by a softplus, ``softplus_β(z) = log(1 + e^{βz}) / β``
(``β → ∞`` gives the ReLU back).  The map itself is always measured on the true model with xattr; the
surrogate only chooses the step.

:class:`SoftplusTwin` re-expresses an :class:`xattr.nn.Sequential` in ``autograd.numpy`` (conv, dense,
pools, flatten, batch-norm, dropout; ReLU → softplus) and runs each method's backward pass there, so
``autograd.grad`` of any function of the map is the attack's direction.  What stands in for each method:

===================== ==================================================================================
method                surrogate map (on the softplus twin)
===================== ==================================================================================
gradient              ``∂S_c/∂x``: the ReLU's ``1[z > 0]`` becomes ``σ(βz)``
gradient × input      ``x ⊙ ∂S_c/∂x``
integrated gradients  ``(x − x') ⊙ Σ_k w_k ∂S_c/∂x (x' + α_k (x − x'))``, Gauss–Legendre nodes
                      (``steps`` of the surrogate; the true map keeps its own quadrature)
DeepLIFT (Rescale)    multipliers ``(sp(z) − sp(z₀)) / (z − z₀)`` at each softplus (``sp'(z)`` when
                      ``|z − z₀| <= 1e-7``), max-pool through the input's switch (xattr's default
                      ``maxpool="gradient"``); RevealCancel has no surrogate
guided backprop       ``max(R, 0) ⊙ σ(βz)``: the guided rule's ``1[z > 0]`` is not differentiable in
                      ``x``; its softplus derivative stands in, ``max(R, 0)`` stays (differentiable a.e.)
DeconvNet             none: its map depends on ``x`` only through the max-pool switches (piecewise
                      constant, derivative 0), and the softplus twin does not change that
Grad-CAM              ``ReLU(Σ_k α_k A_k)`` with ``A`` and ``α`` from the twin; the final ReLU is kept
                      (its derivative is 0 where the map is 0: those pixels cannot be pushed up)
===================== ==================================================================================

Max-pool ties: autograd's ``max`` splits the gradient between tied inputs (xattr sends it to the first);
the twin is a direction finder, so this only matters at exact ties.
"""
from __future__ import annotations

import numpy as np

from ..nn import AvgPool2D, BatchNorm2D, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, MaxPool2D, ReLU, Sequential

#: surrogates available, by name; the methods that map to them are in :data:`METHOD_SURROGATES`.
SURROGATES = ("gradient", "gradient_x_input", "integrated_gradients", "deeplift", "guided_backprop", "grad_cam")
#: ``|z − z₀|`` below which DeepLIFT's secant becomes the derivative (as xattr's DeepLIFT threshold).
SECANT_NEAR_ZERO = 1e-7


def _anp():
    import autograd.numpy as anp

    return anp


def softplus(z, beta):
    """``log(1 + e^{βz}) / β``, computed as ``logaddexp(0, βz) / β`` (no overflow)."""
    return _anp().logaddexp(0.0, beta * z) / beta


def softplus_slope(z, beta):
    """``σ(βz)``, the derivative of :func:`softplus` (as ``(1 + tanh(βz/2)) / 2``: no overflow)."""
    return 0.5 * (1.0 + _anp().tanh(0.5 * beta * z))


def _windows(xp, kernel, stride, dilation, out_hw):
    (kh, kw), (sh, sw), (dh, dw), (Ho, Wo) = kernel, stride, dilation, out_hw
    for i in range(kh):
        for j in range(kw):
            yield i, j, xp[:, :, i * dh: i * dh + sh * (Ho - 1) + 1: sh, j * dw: j * dw + sw * (Wo - 1) + 1: sw]


def _pad(x, pads, value=0.0):
    (t, b), (l, r) = pads
    if not (t or b or l or r):
        return x
    return _anp().pad(x, ((0, 0), (0, 0), (t, b), (l, r)), mode="constant", constant_values=value)


def _layer_function(layer):
    """``f(x)`` of one layer in autograd.numpy (ReLU excepted: the twin treats it)."""
    anp = _anp()
    if isinstance(layer, Conv2D):
        def conv(x):
            out_hw = layer.output_shape(x.shape)[2:]
            y = 0.0
            for i, j, win in _windows(_pad(x, layer.pads), layer.kernel_size, layer.stride, layer.dilation, out_hw):
                y = y + anp.einsum("oc,nchw->nohw", layer.weight[:, :, i, j], win)
            return y if layer.bias is None else y + layer.bias[None, :, None, None]
        return conv
    if isinstance(layer, MaxPool2D):
        def maxpool(x):
            out_hw = layer.output_hw(x.shape)
            wins = [w for _, _, w in _windows(_pad(x, layer.pads, -np.inf), layer.kernel_size, layer.stride, (1, 1),
                                              out_hw)]
            return anp.max(anp.stack(wins), axis=0)
        return maxpool
    if isinstance(layer, AvgPool2D):
        def avgpool(x):
            out_hw = layer.output_hw(x.shape)
            wins = [w for _, _, w in _windows(_pad(x, layer.pads), layer.kernel_size, layer.stride, (1, 1), out_hw)]
            return sum(wins) / len(wins)  # zero padding counted in the divisor, as xattr's AvgPool2D
        return avgpool
    if isinstance(layer, GlobalAvgPool2D):
        return lambda x: anp.mean(x, axis=(2, 3))
    if isinstance(layer, Flatten):
        return lambda x: anp.reshape(x, (x.shape[0], -1))
    if isinstance(layer, Dense):
        return lambda x: anp.dot(x, layer.weight.T) + (0.0 if layer.bias is None else layer.bias)
    if isinstance(layer, BatchNorm2D):
        a, c = layer.scale_shift()
        return lambda x: x * a[:, None, None] + c[:, None, None]
    if isinstance(layer, Dropout):
        return lambda x: x
    raise ValueError(
        f"the softplus surrogate supports Conv2D, Dense, ReLU, MaxPool2D, AvgPool2D, GlobalAvgPool2D, Flatten, "
        f"BatchNorm2D and Dropout; got {layer.describe()}"
    )


class SoftplusTwin:
    """``model`` with each ReLU replaced by ``softplus_β``, in autograd.numpy; its maps are differentiable in ``x``."""

    def __init__(self, model, beta=1.0):
        if not isinstance(model, Sequential):
            raise TypeError(f"the softplus surrogate needs an xattr.nn.Sequential, got {type(model).__name__}")
        if not beta > 0:
            raise ValueError(f"beta (softplus sharpness) must be positive, got {beta}")
        self.model, self.beta = model, float(beta)
        self.fns = [None if isinstance(layer, ReLU) else _layer_function(layer) for layer in model.layers]

    def forward(self, x, stop=None):
        """Scores (or the output of layer ``stop - 1``) and the input of every layer run."""
        inputs, h = [], x
        for fn in self.fns[:stop]:
            inputs.append(h)
            h = softplus(h, self.beta) if fn is None else fn(h)
        return h, inputs

    def backward(self, g, inputs, rule="gradient", ref_inputs=None, stop=0):
        """Pull ``g`` (at the output of the last layer run) back to the input of layer ``stop``.

        ``rule``: ``"gradient"``, ``"guided"`` or ``"rescale"`` (needs ``ref_inputs``,
        the reference's layer inputs).  Linear layers and max-pool pass ``g`` by their vector-Jacobian
        product at the recorded input (autograd, nested: still differentiable in ``x``).
        """
        from autograd import make_vjp

        anp = _anp()
        for i in range(len(inputs) - 1, stop - 1, -1):
            fn, z = self.fns[i], inputs[i]
            if fn is not None:
                g = make_vjp(fn)(z)[0](g)
            elif rule == "gradient":
                g = g * softplus_slope(z, self.beta)
            elif rule == "guided":
                g = anp.maximum(g, 0.0) * softplus_slope(z, self.beta)
            elif rule == "rescale":
                dz = z - ref_inputs[i]
                far = anp.abs(dz) > SECANT_NEAR_ZERO
                safe = anp.where(far, dz, 1.0)
                secant = (softplus(z, self.beta) - softplus(ref_inputs[i], self.beta)) / safe
                g = g * anp.where(far, secant, softplus_slope(z, self.beta))
            else:
                raise ValueError(f"unknown surrogate rule {rule!r}")
        return g


def _seed(classes, k):
    out = np.zeros((len(classes), k))
    out[np.arange(len(classes)), classes] = 1.0
    return out


def surrogate_map(twin, name, x, classes, options=None, steps=16):
    """The surrogate of method ``name`` (see the module table) at ``x``; differentiable with autograd.

    ``classes (N,)`` are fixed; ``options`` are the method's own keyword arguments where they shape the map
    (IG ``baseline``; DeepLIFT ``reference``, ``rule``, ``maxpool``; Grad-CAM ``layer``, ``relu``, ``upsample``).
    """
    anp = _anp()
    opts = dict(options or {})
    rule = {"gradient": "gradient", "gradient_x_input": "gradient", "guided_backprop": "guided"}.get(name)
    if rule is not None:
        scores, inputs = twin.forward(x)
        g = twin.backward(_seed(classes, scores.shape[1]), inputs, rule)
        return x * g if name == "gradient_x_input" else g
    if name == "integrated_gradients":
        from ..methods.path import quadrature_rule

        base = opts.get("baseline", 0.0)
        base = np.broadcast_to(np.asarray(base, dtype=np.float64), np.shape(x))
        alphas, weights = quadrature_rule("gausslegendre", steps)
        n = np.shape(x)[0]
        d = x - base
        pts = anp.concatenate([base + a * d for a in alphas])  # node-major rows
        scores, inputs = twin.forward(pts)
        seed = _seed(np.tile(classes, len(alphas)), scores.shape[1]) * np.repeat(weights, n)[:, None]
        g = twin.backward(seed, inputs, "gradient")
        return d * anp.sum(anp.reshape(g, (len(alphas),) + np.shape(x)), axis=0)
    if name == "deeplift":
        if opts.get("rule", "rescale") != "rescale" or opts.get("maxpool", "gradient") != "gradient":
            raise ValueError("the DeepLIFT surrogate covers rule='rescale' with maxpool='gradient' (xattr's defaults)")
        ref = np.broadcast_to(np.asarray(opts.get("reference", 0.0), dtype=np.float64), np.shape(x))
        _, ref_inputs = twin.forward(np.array(ref))
        scores, inputs = twin.forward(x)
        g = twin.backward(_seed(classes, scores.shape[1]), inputs, "rescale", ref_inputs)
        return (x - ref) * g
    if name == "grad_cam":
        from ..methods.cam import _interp_matrix, default_cam_layer

        model = twin.model
        layer = opts.get("layer")
        i = model.index(default_cam_layer(model, np.asarray(getattr(x, "_value", x))) if layer is None else layer)
        scores, inputs = twin.forward(x)
        feats = inputs[i + 1] if i + 1 < len(inputs) else scores  # A: the output of layer i
        ga = twin.backward(_seed(classes, scores.shape[1]), inputs, "gradient", stop=i + 1)  # ∂S_c/∂A
        alpha = anp.mean(ga, axis=(2, 3))
        cam = anp.einsum("nk,nkhw->nhw", alpha, feats)
        if opts.get("relu", True):
            cam = anp.maximum(cam, 0.0)
        cam = cam[:, None]
        if opts.get("upsample", True):
            H, W = np.shape(x)[2:]
            mh, mw = _interp_matrix(H, cam.shape[2], np.float64), _interp_matrix(W, cam.shape[3], np.float64)
            cam = anp.einsum("Hh,nchw,Ww->ncHW", mh, cam, mw)
        return cam
    raise ValueError(f"no surrogate for {name!r}; surrogates: {', '.join(SURROGATES)}")
