"""``from_onnx``: an ONNX graph that is a chain of supported operators -> :class:`xattr.nn.Sequential`.

The graph is read, not executed: the importer follows the single data tensor from the graph
input through the nodes; every other node input must be a constant (an initializer or a
``Constant`` node).  Supported operators (ONNX operator set, default domain):

=================== ==========================================================
Conv                group 1; explicit symmetric pads, or SAME_UPPER (stride 1)
Relu                ReLU
MaxPool             floor mode, no dilation, symmetric pads <= kernel / 2
AveragePool         floor mode; with pads only ``count_include_pad=1``
GlobalAveragePool   GlobalAvgPool2D (also ReduceMean over axes (2, 3))
Gemm                transA 0; alpha/beta folded into the weights
MatMul (+ Add)      a constant right factor ``(in, out)``; a following Add of a constant is the bias
Flatten / Reshape   axis 1 / a rank-2 target shape (C-order flatten of each image)
BatchNormalization  inference mode
Dropout, Identity   identity at inference
Softmax             only as the last node: dropped with a warning (xattr explains the logits)
=================== ==========================================================
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from ..nn import AvgPool2D, BatchNorm2D, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, MaxPool2D, ReLU, Sequential
from ._common import ConversionError, f64, require

SUPPORTED_OPS = (
    "Conv", "Relu", "MaxPool", "AveragePool", "GlobalAveragePool", "ReduceMean", "Gemm", "MatMul", "Add",
    "Flatten", "Reshape", "BatchNormalization", "Dropout", "Identity", "Softmax",
)


def _load(source, onnx):
    """A ``ModelProto`` from a path, bytes or a ``ModelProto``; clear errors for anything else."""
    if isinstance(source, onnx.ModelProto):
        model = source
        label = "the given ModelProto"
    else:
        if isinstance(source, (bytes, bytearray)):
            data, label = bytes(source), "the given bytes"
        elif isinstance(source, (str, os.PathLike)):
            label = f"file {os.fspath(source)!r}"
            with open(source, "rb") as fh:  # FileNotFoundError as usual
                data = fh.read()
        else:
            raise TypeError(f"from_onnx needs a path, bytes or an onnx.ModelProto, got {type(source).__name__}")
        try:
            model = onnx.load_model_from_string(data)
        except Exception as exc:  # protobuf's DecodeError and friends
            raise ConversionError(f"{label} is not a valid ONNX model (could not parse it: {exc})") from exc
    try:  # a path: the checker resolves external data from the model's folder (a ModelProto: from the cwd)
        onnx.checker.check_model(os.fspath(source) if isinstance(source, (str, os.PathLike)) else model)
    except Exception as exc:
        raise ConversionError(f"{label} is not a valid ONNX model: {exc}") from exc
    if not model.graph.node:
        raise ConversionError(f"{label} is not a valid ONNX model: its graph has no nodes")
    return model


def _attrs(node, onnx):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _label(node, index):
    return f"node {index} {node.name!r} ({node.op_type})" if node.name else f"node {index} ({node.op_type})"


def _tensor(t, onnx, base_dir):
    """A tensor's values; external data only from files inside the model's own folder ``base_dir``."""
    if not onnx.external_data_helper.uses_external_data(t):
        return onnx.numpy_helper.to_array(t)
    location = {e.key: e.value for e in t.external_data}.get("location", "")
    if base_dir is None:
        raise ConversionError(f"tensor {t.name!r} keeps its data in an external file ({location!r}); "
                              "pass the model's path (not bytes or a ModelProto) so it is read from the model's folder")
    root = os.path.realpath(base_dir)
    target = os.path.realpath(os.path.join(root, location))
    if not location or os.path.isabs(location) or os.path.commonpath([root, target]) != root:
        raise ConversionError(f"tensor {t.name!r}: external data location {location!r} is outside the model's folder "
                              f"{base_dir!r}; refused")
    try:
        return onnx.numpy_helper.to_array(t, base_dir=root)
    except (OSError, ValueError) as exc:
        raise ConversionError(f"tensor {t.name!r}: external data {location!r} cannot be read ({exc})".splitlines()[0]) from None


class _Chain:
    """Walks the graph's nodes, holding the constants and the current data tensor's name."""

    def __init__(self, model, onnx, base_dir=None):
        self.onnx = onnx
        graph = model.graph
        self.consts = {t.name: _tensor(t, onnx, base_dir) for t in graph.initializer}
        inputs = [i.name for i in graph.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise ConversionError(f"the graph must have exactly one data input, got {inputs}")
        self.current = inputs[0]
        self.outputs = [o.name for o in graph.output]

    def const(self, name, what, label):
        if name not in self.consts:
            raise ConversionError(f"{label}: its {what} ({name!r}) must be a constant, not a computed tensor")
        return self.consts[name]


def _pads_2d(pads, label):
    """ONNX pads ``[top, left, bottom, right]`` -> ``(ph, pw)``; asymmetric pads refused."""
    t, l, b, r = (list(pads) + [0, 0, 0, 0])[:4] if pads else (0, 0, 0, 0)
    if (t, l) != (b, r):
        raise ConversionError(f"{label}: asymmetric pads {list(pads)} are not supported (only symmetric or SAME_UPPER)")
    return (int(t), int(l))


def _conv(node, a, chain, label):
    w = chain.const(node.input[1], "weight", label)
    b = chain.const(node.input[2], "bias", label) if len(node.input) > 2 and node.input[2] else None
    if w.ndim != 4:
        raise ConversionError(f"{label}: only 2-D convolutions are supported, got a weight of shape {w.shape}")
    if a.get("group", 1) != 1:
        raise ConversionError(f"{label}: grouped convolution (group={a['group']}) is not supported")
    auto_pad = a.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    kernel = tuple(a.get("kernel_shape", w.shape[2:]))
    strides = tuple(a.get("strides", (1, 1)))
    dil = tuple(a.get("dilations", (1, 1)))
    if auto_pad in ("NOTSET", "VALID"):
        padding = _pads_2d(a.get("pads"), label) if auto_pad == "NOTSET" else 0
    elif auto_pad == "SAME_UPPER" and strides == (1, 1):
        padding = "same"  # the odd pixel at the bottom/right, as xattr's (and PyTorch's) "same"
    else:
        raise ConversionError(f"{label}: auto_pad={auto_pad} with strides {strides} is not supported")
    layer = Conv2D(w.shape[1], w.shape[0], kernel, stride=strides, padding=padding, dilation=dil, bias=b is not None)
    layer.weight = f64(w)
    if b is not None:
        layer.bias = f64(b)
    return layer


def _pool_common(node, a, label):
    if a.get("ceil_mode", 0):
        raise ConversionError(f"{label}: ceil_mode=1 is not supported (xattr pools in floor mode)")
    if tuple(a.get("dilations", (1, 1))) != (1, 1):
        raise ConversionError(f"{label}: dilated pooling is not supported")
    auto_pad = a.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad not in ("NOTSET", "VALID"):
        raise ConversionError(f"{label}: auto_pad={auto_pad} is not supported for pooling")
    kernel = tuple(a["kernel_shape"])
    if len(kernel) != 2:
        raise ConversionError(f"{label}: only 2-D pooling is supported, got kernel_shape {kernel}")
    return kernel, tuple(a.get("strides", (1, 1))), _pads_2d(a.get("pads"), label)


def _maxpool(node, a, chain, label):
    if len(node.output) > 1 and node.output[1]:
        raise ConversionError(f"{label}: the Indices output is not supported")
    kernel, strides, pads = _pool_common(node, a, label)
    return MaxPool2D(kernel, stride=strides, padding=pads)


def _avgpool(node, a, chain, label):
    kernel, strides, pads = _pool_common(node, a, label)
    if max(pads) > 0 and not a.get("count_include_pad", 0):
        raise ConversionError(f"{label}: padding with count_include_pad=0 is not supported (xattr counts the zeros)")
    return AvgPool2D(kernel, stride=strides, padding=pads)


def _reduce_mean(node, a, chain, label):
    axes = a.get("axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = chain.const(node.input[1], "axes", label)
    axes = sorted(int(x) % 4 for x in (axes if axes is not None else []))
    if axes != [2, 3]:
        raise ConversionError(f"{label}: only ReduceMean over the spatial axes (2, 3) is supported, got axes {axes}")
    return GlobalAvgPool2D()


def _gemm(node, a, chain, label):
    if a.get("transA", 0):
        raise ConversionError(f"{label}: transA=1 is not supported (the data must be the left factor)")
    w = chain.const(node.input[1], "weight", label).astype(np.float64)
    w = w if a.get("transB", 0) else w.T  # xattr's Dense weight is (out, in)
    w = a.get("alpha", 1.0) * w
    layer = Dense(w.shape[1], w.shape[0], bias=len(node.input) > 2 and bool(node.input[2]))
    layer.weight = w
    if layer.bias is not None:
        c = chain.const(node.input[2], "bias", label).astype(np.float64)
        layer.bias = np.broadcast_to(a.get("beta", 1.0) * c.reshape(-1), (w.shape[0],))
    return layer


def _matmul(node, a, chain, label):
    w = chain.const(node.input[1], "right factor", label)
    if w.ndim != 2:
        raise ConversionError(f"{label}: the constant right factor must be a matrix (in, out), got shape {w.shape}")
    layer = Dense(w.shape[0], w.shape[1], bias=False)
    layer.weight = f64(w.T)
    return layer


def _add_bias(node, chain, label, prev):
    """An Add right after MatMul/Gemm whose other input is a constant: the Dense layer's bias."""
    other = node.input[1] if node.input[0] == chain.current else node.input[0]
    if not isinstance(prev, Dense):
        raise ConversionError(f"{label}: Add is only supported as the bias of a preceding MatMul/Gemm")
    c = chain.const(other, "bias", label).astype(np.float64).reshape(-1)
    if c.size not in (1, prev.out_features):
        raise ConversionError(f"{label}: a bias of {c.size} values does not fit {prev.out_features} outputs")
    bias = np.broadcast_to(c, (prev.out_features,)) + (prev.bias if prev.bias is not None else 0.0)
    new = Dense(prev.in_features, prev.out_features, bias=True)
    new.weight, new.bias = prev.weight, bias
    return new


def _flatten(node, a, chain, label):
    if a.get("axis", 1) != 1:
        raise ConversionError(f"{label}: only Flatten with axis=1 is supported, got axis={a['axis']}")
    return Flatten()


def _reshape(node, a, chain, label):
    shape = chain.const(node.input[1], "target shape", label).reshape(-1)
    if shape.size != 2:
        raise ConversionError(f"{label}: only a Reshape to rank 2 (N, features) is supported, got shape {shape.tolist()}")
    # (N, -1) in C order; a batch size baked in by the exporter is read as N.  A rank-2 reshape that
    # is not a per-image flatten changes the feature count, so the next layer refuses its input shape.
    return Flatten()


def _batchnorm(node, a, chain, label):
    if a.get("training_mode", 0):
        raise ConversionError(f"{label}: training_mode=1 is not supported (inference only)")
    scale, bias, mean, var = (chain.const(node.input[k], n, label) for k, n in
                              zip(range(1, 5), ("scale", "bias", "mean", "var")))
    layer = BatchNorm2D(scale.shape[0], eps=a.get("epsilon", 1e-5))
    layer.weight, layer.bias, layer.running_mean, layer.running_var = (f64(v) for v in (scale, bias, mean, var))
    return layer


def _dropout(node, a, chain, label):
    ratio = a.get("ratio")
    if ratio is None and len(node.input) > 1 and node.input[1] in chain.consts:
        ratio = float(chain.consts[node.input[1]])
    return Dropout(0.5 if ratio is None else float(ratio))


_CONVERTERS = {
    "Conv": _conv, "Relu": lambda n, a, c, lab: ReLU(), "MaxPool": _maxpool, "AveragePool": _avgpool,
    "GlobalAveragePool": lambda n, a, c, lab: GlobalAvgPool2D(), "ReduceMean": _reduce_mean, "Gemm": _gemm,
    "MatMul": _matmul, "Flatten": _flatten, "Reshape": _reshape, "BatchNormalization": _batchnorm,
    "Dropout": _dropout,
}


def from_onnx(source):
    """Convert an ONNX model whose graph is a chain of supported operators into an :class:`xattr.nn.Sequential`.

    Parameters
    ----------
    source : str, os.PathLike, bytes or onnx.ModelProto

    Returns
    -------
    xattr.nn.Sequential
        float64 weights; layers named after the ONNX nodes (``node<k>`` for unnamed nodes).

    Raises
    ------
    ImportError
        The ``onnx`` package is absent (``pip install 'xattr-ref[onnx]'``).
    ConversionError
        A corrupt file, an unsupported operator (named with its node), an unsupported attribute,
        or a graph that is not a single chain.
    """
    onnx = require("onnx", "onnx")
    model = _load(source, onnx)
    for opset in model.opset_import:
        if opset.domain not in ("", "ai.onnx"):
            raise ConversionError(f"operators of domain {opset.domain!r} are not supported (only the default ONNX domain)")
    # external weights are read relative to the model file's folder (never the working directory), only from inside it
    base_dir = os.path.dirname(os.path.abspath(os.fspath(source))) if isinstance(source, (str, os.PathLike)) else None
    chain = _Chain(model, onnx, base_dir)
    nodes = list(model.graph.node)
    layers, names = [], []
    for k, node in enumerate(nodes):
        label = _label(node, k)
        if node.op_type == "Constant":
            a = _attrs(node, onnx)
            if "value" not in a:
                raise ConversionError(f"{label}: only Constant nodes with a tensor 'value' are supported")
            chain.consts[node.output[0]] = _tensor(a["value"], onnx, base_dir)
            continue
        if node.domain not in ("", "ai.onnx"):
            raise ConversionError(f"unsupported operator {node.domain}.{node.op_type} at {label}")
        if node.op_type not in SUPPORTED_OPS:
            raise ConversionError(
                f"unsupported operator {node.op_type!r} at {label}; from_onnx supports: {', '.join(SUPPORTED_OPS)}"
            )
        if chain.current not in node.input:
            raise ConversionError(
                f"{label} does not take the running data tensor {chain.current!r}: the graph is not a chain "
                "(branches, skip connections and multiple inputs are not supported)"
            )
        data_args = [i for i in node.input if i and i not in chain.consts]
        if data_args != [chain.current]:
            raise ConversionError(f"{label}: its inputs {list(node.input)} mix computed tensors; only chains are supported")
        a = _attrs(node, onnx)
        if node.op_type == "Softmax":
            if k != len(nodes) - 1:
                raise ConversionError(f"{label}: Softmax is only supported as the final node (it is dropped)")
            warnings.warn(
                f"from_onnx: the final Softmax ({label}) was dropped; xattr explains the logits (pre-softmax scores)",
                UserWarning, stacklevel=2,
            )
        elif node.op_type == "Identity":
            pass
        elif node.op_type == "Add":
            layers[-1:] = [_add_bias(node, chain, label, layers[-1] if layers else None)]
        else:
            layers.append(_CONVERTERS[node.op_type](node, a, chain, label))
            names.append(node.name or f"node{k}")
        chain.current = node.output[0]
    if chain.current not in chain.outputs:
        raise ConversionError(f"the chain ends at {chain.current!r}, which is not a graph output {chain.outputs}")
    if not layers:
        raise ConversionError("the ONNX graph has no layers to convert")
    return Sequential(*_unique(names, layers))


def _unique(names, layers):
    seen = {}
    out = []
    for n, layer in zip(names, layers):
        seen[n] = seen.get(n, 0) + 1
        out.append((n if seen[n] == 1 else f"{n}_{seen[n]}", layer))
    return out
