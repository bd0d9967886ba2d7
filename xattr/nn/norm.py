"""Inference-time batch normalisation and dropout, and folding batch-norm into a conv.

At inference batch-norm is a per-channel affine map
``y = (x - mean) / sqrt(var + eps) * gamma + beta = a x + c`` (Ioffe & Szegedy 2015);
dropout is the identity (Srivastava et al. 2014; PyTorch's inverted dropout).
"""
from __future__ import annotations

import copy
import numbers

import numpy as np

from .._conventions import as_float_array, check_image_batch, count
from .base import Cache, Layer, defjvp, defrule, param_property
from .conv import Conv2D
from .region import defregion
from .relevance import LRP_RULES, safe_divide, stabilize


class BatchNorm2D(Layer):
    """Batch normalisation at inference, PyTorch's ``BatchNorm2d`` in ``eval()`` mode.

    Parameters
    ----------
    num_features : int
        Channels ``C``.
    eps : float
        Added to the running variance (PyTorch's default ``1e-5``).

    Attributes
    ----------
    weight, bias, running_mean, running_var : ndarray ``(C,)``
        ``gamma``, ``beta`` and the running statistics (defaults 1, 0, 0, 1).

    Shapes: ``(N, C, H, W) -> (N, C, H, W)``.
    """

    short_name = "bn"

    weight = param_property("weight", lambda self: (self.num_features,))
    bias = param_property("bias", lambda self: (self.num_features,))
    running_mean = param_property("running_mean", lambda self: (self.num_features,))
    running_var = param_property("running_var", lambda self: (self.num_features,))

    def __init__(self, num_features, eps=1e-5):
        self.num_features = count(num_features, "num_features")
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not (np.isfinite(eps) and eps > 0):
            raise ValueError(f"eps must be a finite positive number, got {eps!r}")
        self.eps = float(eps)
        self.weight = np.ones(self.num_features)
        self.bias = np.zeros(self.num_features)
        self.running_mean = np.zeros(self.num_features)
        self.running_var = np.ones(self.num_features)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}"

    def scale_shift(self):
        """``(a, c)`` with ``y = a x + c`` per channel, shapes ``(C,)``."""
        if np.any(self.running_var < 0):
            raise ValueError(f"{self.describe()}: running_var must be non-negative")
        a = self.weight / np.sqrt(self.running_var + self.eps)
        return a, self.bias - a * self.running_mean

    def forward(self, x):
        x = check_image_batch(x, f"input of {self.describe()}", channels=self.num_features)
        a, c = (v.astype(x.dtype)[:, None, None] for v in self.scale_shift())
        y = x * a
        y += c  # in place: one new array, not two
        return y, Cache()


@defrule(BatchNorm2D, "gradient", "deconvnet", "guided")
def _bn_scale(layer, g, cache, **_):
    """R · gamma / sqrt(var + eps) (per channel; an affine layer)
    Ioffe & Szegedy 2015; the same for all three rules"""
    return g * layer.scale_shift()[0].astype(g.dtype)[:, None, None]


class Dropout(Layer):
    """Dropout at inference: the identity (inverted dropout scales at training time)."""

    short_name = "dropout"

    def __init__(self, p=0.5):
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)

    def extra_repr(self):
        return f"p={self.p}"

    def forward(self, x):
        return as_float_array(x, f"input of {self.describe()}"), Cache()


@defrule(Dropout, "gradient", "deconvnet", "guided")
def _dropout_identity(layer, g, cache, **_):
    """R (identity at inference)
    Srivastava et al. 2014"""
    return g


def fold_batchnorm(model, strict=True):
    """A new model where every ``Conv2D -> BatchNorm2D`` pair is one ``Conv2D`` (a canonizer, as Zennit's).

    ``W' = a[:, None, None, None] * W`` and ``b' = a * b + c`` with ``(a, c)`` from
    :meth:`BatchNorm2D.scale_shift`.  The result computes the same function (to round-off); the
    folded conv keeps the conv's node name and the batch-norm's node is bypassed.  A pair is folded
    when the batch-norm's input is a ``Conv2D`` (or a subclass) that feeds nothing else.  The input model
    is not changed.  Any other batch-norm raises ``ValueError`` (``strict=False``: it is kept).

    Parameters
    ----------
    model : Graph or Sequential
    strict : bool

    Returns
    -------
    Graph or Sequential
        A new model.
    """
    layers = {}
    pairs = _conv_bn_pairs(model, strict)
    for bn_name, conv_name in pairs:
        folded = copy.deepcopy(model[conv_name])
        folded.weight, folded.bias = _folded_params(model[conv_name], model[bn_name])
        layers[conv_name] = folded
    return model.rebuild(layers=layers, remove=[bn for bn, _ in pairs])


#: gradient-rule walks (:func:`gradient_plan`) run with each ``Conv2D -> BatchNorm2D`` pair folded into one conv.
FOLD_FOR_GRADIENTS = True


def gradient_plan(model, fold=None):
    """The model that the input-gradient walks run on: ``model`` with its ``Conv2D -> BatchNorm2D`` pairs folded.

    Gradient, DeconvNet and guided backprop treat a conv and an inference batch-norm as the linear maps they
    are (the same cell in all three columns), so the pair's backward is the folded conv's transposed
    convolution, and its forward is the same function (Ioffe & Szegedy 2015's affine map, to round-off).
    Folded, each pair costs one pass over its activations fewer in each direction, for the price of one pass
    over the conv's weights per call.  The gradient family (gradient, gradient × input, DeconvNet, guided
    backprop), integrated and expected gradients, the saturation curves and SmoothGrad of those run on it, with the
    pairs whose folding pays for itself in the call (:func:`xattr.methods._chunks.planned`: rows × positions
    against the conv's fan-in).  On torchvision's MobileNetV2 at 224×224 float32 a gradient went 123 → 105 ms and
    IG-50 5.36 → 4.17 s; ResNet-18's gradient folds only its first stages and stays at 147 ms
    (benchmarks/README.md).  These methods return input-space maps only, so no node is missed; methods that read
    a node by name (Grad-CAM, LRP, DeepLIFT, taps) run on the model as given.

    Unlike :func:`fold_batchnorm`, the plan shares every layer but the folded convs with ``model`` (no copies:
    it lives for one call) and keeps batch-norms that do not follow a conv feeding only them.
    ``FOLD_FOR_GRADIENTS = False`` turns it off (the model as given).

    Parameters
    ----------
    model : any model; only a :class:`xattr.nn.Graph` with such pairs is changed
    fold : callable ``(conv node name, Conv2D) -> bool``, optional
        Which pairs to fold (default: all); the methods decide by the cost model,
        :func:`xattr.methods._chunks.planned`.

    Returns
    -------
    model, or a new Graph / Sequential (same node names, the folded batch-norms' nodes bypassed)
    """
    from .graph import Graph

    if not FOLD_FOR_GRADIENTS or not isinstance(model, Graph):
        return model
    pairs = _conv_bn_pairs(model, strict=False)
    if fold is not None:
        pairs = [(bn, conv) for bn, conv in pairs if fold(conv, model[conv])]
    if not pairs:
        return model
    layers = {}
    for bn_name, conv_name in pairs:
        conv = model[conv_name]
        folded = copy.copy(conv)  # shares geometry; the parameters below are new arrays
        folded._weight, folded._bias = _folded_params(conv, model[bn_name], conv.weight.dtype)
        layers[conv_name] = folded
    plan = model.rebuild(layers=layers, remove=[bn for bn, _ in pairs], share=True)
    plan.is_gradient_plan = True  # a method handed a plan (SmoothGrad's inner gradient) does not plan again
    return plan


def _conv_bn_pairs(model, strict):
    """``[(batch-norm node, conv node)]``: the batch-norms whose input is a Conv2D feeding only them."""
    pairs = []
    for name in model.order:
        bn = model[name]
        if not isinstance(bn, BatchNorm2D):
            continue
        src = model.inputs_of(name)[0]
        conv = None if src == "input" else model[src]
        if not isinstance(conv, Conv2D) or len(model.consumers(src)) != 1:
            if strict:
                raise ValueError(f"{bn.describe()} does not follow a Conv2D that feeds only it; it cannot be folded")
            continue
        if bn.num_features != conv.out_channels:
            raise ValueError(
                f"{bn.describe()} has {bn.num_features} channels, {conv.describe()} outputs {conv.out_channels}"
            )
        pairs.append((name, src))
    return pairs


def _folded_params(conv, bn, dtype=None):
    """``(a W, a b + c)``, ``(a, c)`` the batch-norm's :meth:`~BatchNorm2D.scale_shift` (cast to ``dtype`` if given)."""
    a, c = bn.scale_shift()
    b = conv.bias if conv.bias is not None else np.zeros(conv.out_channels)
    w, b = conv.weight * a[:, None, None, None], a * b + c
    return (w, b) if dtype is None else (w.astype(dtype, copy=False), b.astype(dtype, copy=False))


# -- DeepLIFT and LRP columns ------------------------------------------------------------------

# batch-norm is affine at inference: DeepLIFT multipliers pass as gradients.  xattr.lrp folds every
# batch-norm that follows a conv into it first (fold_batchnorm); the others (pre-activation blocks, as
# DenseNet's bn-relu-conv, or a batch-norm after a sum) take the z-rule on their own affine map.
defrule(BatchNorm2D, "rescale", "revealcancel")(_bn_scale)

#: stabiliser of the z-rule at a batch-norm that cannot be folded (as at a residual sum: Zennit's Norm default)
LRP_BN_STABILIZER = 1e-6


@defrule(BatchNorm2D, *LRP_RULES)
def _bn_lrp(layer, R, cache, inp=None):
    """R_i = a x_i R / stab(a x_i + c),  stab(z) = z + 1e-6·sign(z)
    the z-rule on the batch-norm's affine map y = a x + c (its shift c absorbs relevance as a bias does); Bach et al. 2015"""  # noqa: E501  (a rule cell: line 1 is the rule table's formula, line 2 its citation)
    if inp is None:
        raise ValueError(f"LRP on {layer.describe()} needs the layer's input/output (inp=); use xattr.lrp")
    a = layer.scale_shift()[0].astype(R.dtype)[:, None, None]
    return safe_divide(R * a * inp.x, stabilize(inp.y, LRP_BN_STABILIZER))
# dropout is the identity at inference; the RevealCancel pair (m⁺, m⁻) passes through unchanged
defrule(Dropout, "rescale", "revealcancel", *LRP_RULES)(_dropout_identity)

# Pointwise at inference: an output pixel changes only where its input pixel changed (Nakandala et al. 2019).
defregion((BatchNorm2D, Dropout), "pointwise")(None)
@defjvp(BatchNorm2D)
def _bn_jvp(layer, dx, cache):
    """dX · gamma / sqrt(var + eps)  (per channel, without the shift)"""
    return dx * layer.scale_shift()[0].astype(dx.dtype)[:, None, None]


@defjvp(Dropout)
def _dropout_jvp(layer, dx, cache):
    """dX  (identity at inference)"""
    return dx
