"""``from_torch``: a ``torch.nn.Sequential`` -> :class:`xattr.nn.Sequential` with float64 weights."""
from __future__ import annotations

import warnings

from ..nn import AvgPool2D, BatchNorm2D, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, MaxPool2D, ReLU, Sequential
from ._common import ConversionError, f64, require

SUPPORTED = (
    "Conv2d, ReLU, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d(1), Flatten, Linear, BatchNorm2d (eval), "
    "Dropout/Dropout2d, Identity, nested Sequential (and a final Softmax, dropped)"
)


def _fail(name, module, why):
    raise ConversionError(f"cannot convert layer {name!r} ({module!r}): {why}")


def _conv(name, m):
    if m.groups != 1:
        _fail(name, m, f"grouped convolution (groups={m.groups}) is not supported")
    if m.padding_mode != "zeros":
        _fail(name, m, f"padding_mode={m.padding_mode!r} is not supported (only 'zeros')")
    layer = Conv2D(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding,
                   dilation=m.dilation, bias=m.bias is not None)
    layer.weight = f64(m.weight.detach().cpu().numpy())
    if m.bias is not None:
        layer.bias = f64(m.bias.detach().cpu().numpy())
    return layer


def _linear(name, m):
    layer = Dense(m.in_features, m.out_features, bias=m.bias is not None)
    layer.weight = f64(m.weight.detach().cpu().numpy())
    if m.bias is not None:
        layer.bias = f64(m.bias.detach().cpu().numpy())
    return layer


def _maxpool(name, m):
    if m.ceil_mode:
        _fail(name, m, "ceil_mode=True is not supported (xattr pools in floor mode)")
    if m.dilation not in (1, (1, 1)):
        _fail(name, m, f"dilation={m.dilation} is not supported")
    if m.return_indices:
        _fail(name, m, "return_indices=True does not give a tensor for the next layer")
    return MaxPool2D(m.kernel_size, stride=m.stride or m.kernel_size, padding=m.padding)


def _avgpool(name, m):
    if m.ceil_mode:
        _fail(name, m, "ceil_mode=True is not supported (xattr pools in floor mode)")
    if m.divisor_override is not None:
        _fail(name, m, f"divisor_override={m.divisor_override} is not supported")
    layer = AvgPool2D(m.kernel_size, stride=m.stride or m.kernel_size, padding=m.padding)
    if not m.count_include_pad and max(layer.padding) > 0:
        _fail(name, m, "count_include_pad=False with padding is not supported (xattr counts the zeros)")
    return layer


def _adaptive_avg(name, m):
    size = m.output_size
    if size not in (1, (1, 1), [1, 1]):
        _fail(name, m, f"only output_size 1 (global average pooling) is supported, got {size}")
    return GlobalAvgPool2D()


def _batchnorm(name, m):
    if m.training:
        _fail(name, m, "batch-norm in training mode uses batch statistics; call model.eval() first")
    if m.running_mean is None:
        _fail(name, m, "track_running_stats=False: there are no running statistics to convert")
    layer = BatchNorm2D(m.num_features, eps=m.eps)
    if m.weight is not None:
        layer.weight = f64(m.weight.detach().cpu().numpy())
        layer.bias = f64(m.bias.detach().cpu().numpy())
    layer.running_mean = f64(m.running_mean.detach().cpu().numpy())
    layer.running_var = f64(m.running_var.detach().cpu().numpy())
    return layer


def _flatten(name, m):
    if m.start_dim != 1 or m.end_dim != -1:
        _fail(name, m, f"only Flatten(start_dim=1, end_dim=-1) is supported, got ({m.start_dim}, {m.end_dim})")
    return Flatten()


def _walk(module, prefix):
    """``(qualified name, leaf module)`` in execution order, nested Sequentials flattened."""
    for name, child in module.named_children():
        qual = f"{prefix}.{name}" if prefix else name
        if type(child).__name__ == "Sequential":
            yield from _walk(child, qual)
        else:
            yield qual, child


def from_torch(module):
    """Convert a ``torch.nn.Sequential`` into an :class:`xattr.nn.Sequential` computing the same function.

    Parameters
    ----------
    module : torch.nn.Sequential
        Made of Conv2d (groups 1, zero padding), ReLU, MaxPool2d (floor mode, no dilation),
        AvgPool2d, AdaptiveAvgPool2d(1), Flatten(1, -1), Linear, BatchNorm2d (in ``eval()``
        mode, with running statistics), Dropout/Dropout2d (identity at inference), Identity and
        nested Sequentials.  A final Softmax is dropped with a warning (attributions explain
        the logits).

    Returns
    -------
    xattr.nn.Sequential
        Weights copied to float64; layers named by their torch module path (``"0"``,
        ``"features.3"``).  ``model.forward(x)`` equals ``module.double()(x)`` to round-off.

    Raises
    ------
    ImportError
        torch is not installed (``pip install 'xattr-ref[torch]'``).
    ConversionError
        A layer (named with its path and repr) or a setting xattr cannot represent exactly.
    """
    torch = require("torch", "torch")
    nn = torch.nn
    if not isinstance(module, nn.Sequential):
        raise TypeError(f"from_torch needs a torch.nn.Sequential, got {type(module).__name__}")
    converters = [
        (nn.Conv2d, _conv), (nn.Linear, _linear), (nn.MaxPool2d, _maxpool), (nn.AvgPool2d, _avgpool),
        (nn.AdaptiveAvgPool2d, _adaptive_avg), (nn.BatchNorm2d, _batchnorm), (nn.Flatten, _flatten),
        (nn.ReLU, lambda n, m: ReLU()), (nn.Dropout, lambda n, m: Dropout(m.p)),
        (nn.Dropout2d, lambda n, m: Dropout(m.p)),
    ]
    leaves = list(_walk(module, ""))
    layers = []
    for k, (name, child) in enumerate(leaves):
        if isinstance(child, nn.Identity):
            continue
        if isinstance(child, nn.Softmax) and k == len(leaves) - 1:
            warnings.warn(
                f"from_torch: the final Softmax {name!r} was dropped; xattr explains the logits (pre-softmax scores)",
                UserWarning, stacklevel=2,
            )
            continue
        for cls, convert in converters:
            if type(child) is cls:  # exact type: a subclass may change forward()
                layers.append((name, convert(name, child)))
                break
        else:
            raise ConversionError(
                f"unsupported layer {name!r} of type {type(child).__module__}.{type(child).__name__}; "
                f"from_torch supports: {SUPPORTED}"
            )
    if not layers:
        raise ConversionError("the torch model has no layers to convert")
    return Sequential(*layers)
