"""Independent autograd versions of every layer's forward pass (test oracle).

Written from the definitions with ``autograd.numpy``; ``model_function(model)`` chains them
for a Sequential, so ``autograd.grad`` gives the reference gradient of the whole network.
Max uses autograd's ``np.max`` (ties split evenly: only compare away from ties).
"""
import math

import autograd.numpy as anp
import autograd.scipy.special as asp
from autograd import make_vjp

from xattr.nn import (
    GELU,
    AvgPool2D,
    BatchNorm2D,
    Clamp,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    LeakyReLU,
    MaxPool2D,
    PReLU,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softplus,
    Tanh,
)


def _pad(x, pads, value=0.0):
    (t, b), (l, r) = pads
    return anp.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), mode="constant", constant_values=value)


def _windows(xp, kernel, stride, dilation, out_hw):
    (kh, kw), (sh, sw), (dh, dw), (Ho, Wo) = kernel, stride, dilation, out_hw
    return [
        xp[:, :, i * dh : i * dh + sh * (Ho - 1) + 1 : sh, j * dw : j * dw + sw * (Wo - 1) + 1 : sw]
        for i in range(kh)
        for j in range(kw)
    ]


def conv2d(x, layer):
    """Each group's channels convolved with its own filters, the groups' outputs concatenated."""
    out_hw = layer.output_shape(x.shape)[2:]
    wins = _windows(_pad(x, layer.pads), layer.kernel_size, layer.stride, layer.dilation, out_hw)
    kh, kw = layer.kernel_size
    G = getattr(layer, "groups", 1)
    Cg, Og = layer.in_channels // G, layer.out_channels // G
    outs = []
    for grp in range(G):
        y = 0.0
        for k, win in enumerate(wins):
            w = layer.weight[grp * Og : (grp + 1) * Og, :, k // kw, k % kw]
            y = y + anp.einsum("oc,nchw->nohw", w, win[:, grp * Cg : (grp + 1) * Cg])
        outs.append(y)
    y = anp.concatenate(outs, axis=1)
    if layer.bias is not None:
        y = y + layer.bias[None, :, None, None]
    return y


def maxpool2d(x, layer):
    out_hw = layer.output_hw(x.shape)
    wins = _windows(_pad(x, layer.pads_for(x.shape[2:]), -1e300), layer.kernel_size, layer.stride, (1, 1), out_hw)
    return anp.max(anp.stack(wins), axis=0)


def avgpool2d(x, layer):
    """Window sums over the zero-padded input divided by the window sums of a mask of the counted positions
    (the input and its explicit padding, or the input only; never the ceil-mode overhang)."""
    out_hw = layer.output_hw(x.shape)
    pads = layer.pads_for(x.shape[2:])
    wins = _windows(_pad(x, pads), layer.kernel_size, layer.stride, (1, 1), out_hw)
    (t, b), (l, r) = pads
    (ph, pw), (H, W) = layer.padding, x.shape[2:]
    mask = anp.zeros((1, 1, H + t + b, W + l + r))
    if layer.count_include_pad:
        mask[:, :, : H + 2 * ph, : W + 2 * pw] = 1.0
    else:
        mask[:, :, ph : ph + H, pw : pw + W] = 1.0
    count = sum(_windows(mask, layer.kernel_size, layer.stride, (1, 1), out_hw))
    return sum(wins) / count


def _sigmoid(x):
    return 0.5 * (anp.tanh(0.5 * x) + 1)  # = 1 / (1 + e^-x), without overflow


def activation(x, layer):
    """The activations from their textbook formulas (differentiated by autograd away from kinks)."""
    t = type(layer)
    if t in (ReLU6, Hardtanh):
        return anp.minimum(anp.maximum(x, layer.min_val), layer.max_val)
    if t is Clamp:
        lo = -anp.inf if layer.min is None else layer.min
        hi = anp.inf if layer.max is None else layer.max
        return anp.minimum(anp.maximum(x, lo), hi)
    if t is LeakyReLU:
        return anp.where(x > 0, x, layer.negative_slope * x)
    if t is PReLU:
        a = layer.weight if layer.num_parameters > 1 else layer.weight[0]
        a = anp.reshape(a, (1, -1) + (1,) * (x.ndim - 2)) if layer.num_parameters > 1 else a
        return anp.where(x > 0, x, a * x)
    if t is Hardsigmoid:
        return anp.minimum(anp.maximum(x + 3, 0), 6) / 6
    if t is Hardswish:
        return x * anp.minimum(anp.maximum(x + 3, 0), 6) / 6
    if t is Sigmoid:
        return _sigmoid(x)
    if t is Tanh:
        return anp.tanh(x)
    if t is SiLU:
        return x * _sigmoid(x)
    if t is GELU and layer.approximate == "tanh":
        return 0.5 * x * (1 + anp.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    if t is GELU:
        return 0.5 * x * (1 + asp.erf(x / math.sqrt(2)))
    if t is Softplus:
        bx = layer.beta * x
        return anp.where(bx > layer.threshold, x, anp.logaddexp(0, bx) / layer.beta)
    raise TypeError(layer)


def layer_function(layer):
    if isinstance(layer, Conv2D):
        return lambda x: conv2d(x, layer)
    if isinstance(layer, MaxPool2D):
        return lambda x: maxpool2d(x, layer)
    if isinstance(layer, AvgPool2D):
        return lambda x: avgpool2d(x, layer)
    if isinstance(layer, ReLU):
        return lambda x: anp.maximum(x, 0.0)
    if isinstance(layer, GlobalAvgPool2D):
        return lambda x: anp.mean(x, axis=(2, 3))
    if isinstance(layer, Flatten):
        return lambda x: anp.reshape(x, (x.shape[0], -1))
    if isinstance(layer, Dense):
        return lambda x: anp.dot(x, layer.weight.T) + (0.0 if layer.bias is None else layer.bias)
    if isinstance(layer, BatchNorm2D):
        a = layer.weight / anp.sqrt(layer.running_var + layer.eps)
        c = layer.bias - a * layer.running_mean
        return lambda x: x * a[:, None, None] + c[:, None, None]
    if isinstance(layer, Dropout):
        return lambda x: x
    return lambda x: activation(x, layer)


def model_function(model):
    fns = [layer_function(layer) for layer in model]

    def f(x):
        for fn in fns:
            x = fn(x)
        return x

    return f


def graph_function(model):
    """The graph's forward pass in autograd, node by node: merges are written out (sum, concat, product)."""
    from xattr.nn import Add, Concat, Multiply

    order = [(n, model.inputs_of(n), model[n]) for n in model.order]
    fns = {n: None if isinstance(layer, (Add, Concat, Multiply)) else layer_function(layer) for n, _, layer in order}

    def f(x):
        env = {"input": x}
        for n, ins, layer in order:
            args = [env[i] for i in ins]
            if isinstance(layer, Add):
                env[n] = sum(args[1:], args[0])
            elif isinstance(layer, Concat):
                env[n] = anp.concatenate(args, axis=1)
            elif isinstance(layer, Multiply):
                env[n] = args[0] * args[1]
            else:
                env[n] = fns[n](args[0])
        return env[model.output]

    return f


def vjp(fn, x, u):
    """autograd's vector-Jacobian product ``uᵀ J_fn(x)``."""
    back, _ = make_vjp(fn)(x)
    return back(u)
