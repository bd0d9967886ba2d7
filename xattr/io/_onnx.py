"""``from_onnx``: an ONNX graph of supported operators -> :class:`xattr.nn.Graph` (a chain: ``Sequential``).

The graph is read, not executed.  Every value is either a *constant* (an initializer, a ``Constant``
node, or a node whose inputs are all constants, folded with ``onnx.reference``) or *data* computed
from the graph's single input; each node on data becomes one xattr node, named after the ONNX node
(``node<k>`` for an unnamed one).  Branches and merges (ResNet's ``Add``, DenseNet's ``Concat``, a
squeeze-and-excitation ``Mul``) are kept as the graph they are.  Supported operators (default domain,
opsets :data:`MIN_OPSET` to :data:`MAX_OPSET`):

=================== ==========================================================================
Conv                any ``group``; explicit ``pads`` (asymmetric allowed), or ``auto_pad`` SAME_* at stride 1
Relu, LeakyRelu     ReLU, LeakyReLU(alpha); PRelu with a scalar or per-channel slope
Clip                ReLU6 for ``[0, 6]``, else Clamp(min, max)
Sigmoid, Tanh       Sigmoid, Tanh; ``x * Sigmoid(x)`` (how torch exports SiLU) is one SiLU node
HardSigmoid         Hardsigmoid (PyTorch's ``alpha = 1/6, beta = 1/2`` only, to float32 rounding)
HardSwish, Gelu     Hardswish, GELU; Softplus (no threshold)
MaxPool             no dilation, symmetric pads; ``ceil_mode`` where ``xattr.nn.MaxPool2D`` takes it
AveragePool         as MaxPool; ``count_include_pad=0`` with pads where ``AvgPool2D`` takes it
GlobalAveragePool   GlobalAvgPool2D where only a flatten reads it, else AdaptiveAvgPool2D(1)
                    (also ReduceMean over axes (2, 3))
Gemm                transA 0; alpha/beta folded into the weights
MatMul (+ Add)      a constant right factor ``(in, out)``; an Add of a constant after it is the bias
Add, Mul, Concat    Add, Multiply (the gate: the broadcast operand), Concat on the channel axis
Pad                 constant mode on H, W: Pad2D
Flatten / Reshape   axis 1 / a rank-2 per-image flatten; Squeeze of axes (2, 3)
BatchNormalization  inference mode (kept; ``fold=True`` folds it into the conv before it)
Dropout, Identity   Dropout (identity at inference), bypassed
Softmax             only as the last node: dropped with a warning (xattr explains the logits)
=================== ==========================================================================

External weights are read relative to the model file's folder (never the working directory), and only
from inside it.
"""
from __future__ import annotations

import ast
import os
import warnings

import numpy as np

from .. import nn as xnn
from ..nn import INPUT, Graph, Sequential
from ._common import (
    ConversionError,
    ancestors,
    conv_layer,
    dense_layer,
    optional_layer,
    pool_layer,
    require,
    unique_name,
)

#: operator-set versions of the default domain this reader was written against (the definitions of every
#: supported operator between these versions, as listed by ``onnx.defs``).
MIN_OPSET, MAX_OPSET = 7, 25

SUPPORTED_OPS = (
    "Conv", "Relu", "LeakyRelu", "PRelu", "Clip", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Gelu", "Softplus",
    "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "Gemm", "MatMul", "Add", "Mul",
    "Concat", "Pad", "Flatten", "Reshape", "Squeeze", "BatchNormalization", "Dropout", "Identity", "Softmax",
    "Constant",
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
    if not model.graph.node:
        raise ConversionError(f"{label} is not a valid ONNX model: its graph has no nodes")
    _check_opsets(model, label)
    try:  # a path: the checker resolves external data from the model's folder (a ModelProto: from the cwd)
        onnx.checker.check_model(os.fspath(source) if isinstance(source, (str, os.PathLike)) else model)
    except Exception as exc:
        raise ConversionError(f"{label} is not a valid ONNX model: {str(exc).strip().splitlines()[0]}") from exc
    return model


def _check_opsets(model, label):
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        raise ConversionError(f"{label} imports no default-domain operator set (opset_import: "
                              f"{[(o.domain, o.version) for o in model.opset_import]}); is it an ONNX model?")
    v = versions[0]
    if not MIN_OPSET <= v <= MAX_OPSET:
        raise ConversionError(
            f"{label} uses operator set {v} of the default domain; from_onnx reads opsets {MIN_OPSET} to {MAX_OPSET} "
            "(convert it with onnx.version_converter.convert_version(model, 17))"
        )
    return v


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
        raise ConversionError(
            f"tensor {t.name!r}: external data {location!r} cannot be read ({exc})".splitlines()[0]
        ) from None


def _scope(node, consts_names):
    """``(module path or None, op name)`` of a node exported by torch, or None for other producers.

    The TorchScript exporter names nodes by their module scope (``/layer1/layer1.0/conv1/Conv``: each part
    the module's name, some of them already qualified); the dynamo exporter records the scopes in the
    node's metadata (``pkg.torch.onnx.name_scopes``: ``['', 'layer1', 'layer1.0', 'layer1.0.relu', 'relu_3']``,
    the last entry the fx node).
    """
    meta = {p.key: p.value for p in node.metadata_props}
    scopes = meta.get("pkg.torch.onnx.name_scopes")
    if scopes:
        try:
            parts = [str(p) for p in ast.literal_eval(scopes)]
        except (ValueError, SyntaxError):
            parts = []
        if len(parts) >= 2:
            return parts[-2] or None, parts[-1]
    if node.name.startswith("/"):
        parts = [p for p in node.name.split("/") if p]
        # a part is a child's name ("conv1": under the previous part) or a dotted name relative to the parent of
        # an earlier part ("layer2.0" under root, after "layer2"; "downsample.0" after "downsample")
        full = []
        for s in parts[:-1]:
            head = s.split(".")[0]
            base = full[-1] if full else ""
            if "." in s:
                for p, f in zip(reversed(parts[: len(full)]), reversed(full)):
                    if p == head:
                        base = f.rsplit(".", 1)[0] if "." in f else ""
                        break
            full.append(f"{base}.{s}" if base else s)
        return (full[-1] if full else None), parts[-1]
    return None


def _weight_owner(node, consts_names):
    """``layer1.0.conv1`` from a weight initializer named ``layer1.0.conv1.weight`` (not ``onnx::Conv_193``)."""
    if node.op_type in ("Conv", "Gemm", "MatMul", "BatchNormalization") and len(node.input) > 1:
        w = node.input[1]
        if w in consts_names and w.endswith(".weight") and "::" not in w:
            return w[: -len(".weight")]
    return None


def source_names(model):
    """``{node index: name}``: torch's module paths (``layer1.0.conv1``) for nodes exported by torch.

    A weighted node takes its weight's owner (``layer1.0.conv1.weight`` -> ``layer1.0.conv1``); other nodes
    their innermost module (``layer1.0.relu``), or ``<module>.<op>`` where that module holds other modules
    (the residual ``Add`` of a block: ``layer1.0.add``).  Nodes with neither keep their ONNX names.
    """
    consts = {t.name for t in model.graph.initializer}
    scoped = {}
    for k, node in enumerate(model.graph.node):
        sc = _scope(node, consts)
        if sc is not None:
            scoped[k] = sc
    containers = set()
    for path, _ in scoped.values():
        if path:
            parts = path.split(".")
            containers.update(".".join(parts[:j]) for j in range(1, len(parts)))
    out = {}
    for k, node in enumerate(model.graph.node):
        owner = _weight_owner(node, consts)
        if owner:
            out[k] = owner
        elif k in scoped:
            path, op = scoped[k]
            op = op.lower()
            out[k] = op if not path else f"{path}.{op}" if path in containers else path
    return out


class _Data:
    """A tensor computed from the graph input: the xattr node producing it and what is known of it."""

    __slots__ = ("name", "rank", "pooled", "unit", "src")

    def __init__(self, name, rank=4, pooled=False, unit=None, src=None):
        self.name, self.rank, self.pooled, self.unit, self.src = name, rank, pooled, unit, src


def _f64(a):
    """``a`` as float64 without a copy when it already is (the layers' setters copy)."""
    return np.asarray(a, dtype=np.float64)


def _decode(v):
    return v.decode() if isinstance(v, bytes) else v


def _close(a, b):
    """Equal to float32 rounding (ONNX attributes are float32: 1/6 is stored as 0.16666667163...)."""
    return abs(float(a) - float(b)) <= 1e-6 * max(1.0, abs(float(b)))


class _Converter:
    def __init__(self, model, onnx, base_dir, fold, opset, names):
        self.onnx, self.model, self.fold, self.opset = onnx, model, fold, opset
        self.names = source_names(model) if names == "source" else {}
        graph = model.graph
        self.consts = {t.name: _tensor(t, onnx, base_dir) for t in graph.initializer}
        self.base_dir = base_dir
        self.env = {}
        inputs = [i.name for i in graph.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise ConversionError(f"the graph must have exactly one data input, got {inputs}")
        self.input = inputs[0]
        outputs = [o.name for o in graph.output]
        if len(outputs) != 1:
            raise ConversionError(f"the graph must have exactly one output (the scores), got {outputs}")
        self.output_name = outputs[0]
        self.shapes = self._infer_shapes()
        rank = len(self.shapes.get(self.input, (None,) * 4))
        self.env[self.input] = _Data(INPUT, rank=rank)
        self.consumers = {}
        for node in graph.node:
            for i in node.input:
                if i:
                    self.consumers.setdefault(i, []).append(node)
        self.triples, self.label_of, self.taken = [], {}, set()
        self.gap_candidates = []
        self.fused = {}  # output name of a Sigmoid/HardSigmoid folded into the Mul after it -> its input

    def _infer_shapes(self):
        """``{value name: dims}`` from ONNX shape inference (ints, or None where unknown); {} if it fails."""
        try:
            inferred = self.onnx.shape_inference.infer_shapes(self.model)
        except Exception:
            return {}
        out = {}
        for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
            t = vi.type.tensor_type
            if not t.HasField("shape"):
                continue
            out[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
        return out

    # -- helpers -------------------------------------------------------------------------------------
    def const(self, name, what, label):
        if name not in self.consts:
            raise ConversionError(f"{label}: its {what} ({name!r}) must be a constant, not a computed tensor")
        return self.consts[name]

    def optional_const(self, node, k, what, label):
        if len(node.input) > k and node.input[k]:
            return self.const(node.input[k], what, label)
        return None

    def data(self, name, label):
        v = self.env.get(name)
        if not isinstance(v, _Data):
            raise ConversionError(f"{label}: its input {name!r} must be computed from the graph input")
        return v

    def add(self, node, index, layer, inputs, **known):
        if index in self.names:  # a module called again: layer1.0.relu_1, as from_torch names it
            name = unique_name(self.names[index], self.taken, start=1)
        else:
            name = unique_name(node.name or f"node{index}", self.taken)
        self.triples.append((name, layer, tuple(i.name for i in inputs)))
        self.label_of[name] = _label(node, index)
        info = dict(rank=inputs[0].rank, pooled=inputs[0].pooled, unit=None, src=node)
        info.update(known)
        self.env[node.output[0]] = _Data(name, **info)
        if isinstance(layer, xnn.GlobalAvgPool2D) and info["rank"] == 4:
            self.gap_candidates.append(name)
        return name

    def fold_const(self, node, index):
        from onnx.reference import ReferenceEvaluator

        label = _label(node, index)
        try:
            ev = ReferenceEvaluator(node, opsets={"": self.opset})
            outs = ev.run(None, {i: self.consts[i] for i in node.input if i})
        except Exception as exc:
            raise ConversionError(f"{label}: could not evaluate it on its constant inputs ({exc})") from exc
        for name, value in zip(node.output, outs):
            if name:
                self.consts[name] = np.asarray(value)

    # -- the walk --------------------------------------------------------------------------------------
    def run(self):
        for k, node in enumerate(self.model.graph.node):
            label = _label(node, k)
            if node.domain not in ("", "ai.onnx"):
                raise ConversionError(f"unsupported operator {node.domain}.{node.op_type} at {label}")
            ins = [i for i in node.input if i]
            if node.op_type == "Constant" or (ins and all(i in self.consts for i in ins)):
                if node.op_type not in _FOLDABLE:
                    raise ConversionError(f"unsupported operator {node.op_type!r} at {label} (on constants)")
                self.fold_const(node, k)
                continue
            if node.op_type not in _CONVERTERS:
                raise ConversionError(
                    f"unsupported operator {node.op_type!r} at {label}{_HINTS.get(node.op_type, '')}; from_onnx "
                    f"supports: {', '.join(SUPPORTED_OPS)}"
                )
            for name in ins:
                if name not in self.consts and name not in self.env and name not in self.fused:
                    raise ConversionError(f"{label}: its input {name!r} is not produced by an earlier node (the graph "
                                          "must be topologically sorted)")
            _CONVERTERS[node.op_type](self, node, k, _attrs(node, self.onnx), label)
        out = self.env.get(self.output_name)
        if not isinstance(out, _Data):
            raise ConversionError(f"the graph output {self.output_name!r} is not computed from the input")
        if out.name == INPUT or not self.triples:
            raise ConversionError("the ONNX graph has no layers to convert")
        return self.build(out.name)

    def build(self, output):
        self.resolve_gaps()
        used = ancestors(self.triples, output)
        triples = [t for t in self.triples if t[0] in used]
        chain = all(t[2] == ((triples[k - 1][0],) if k else (INPUT,)) for k, t in enumerate(triples))
        if chain and output == triples[-1][0]:
            model = Sequential(*[(n, layer) for n, layer, _ in triples])
        else:
            model = Graph([(n, layer, ins if len(ins) > 1 else ins[0]) for n, layer, ins in triples], output=output)
        if self.fold:
            model = xnn.fold_batchnorm(model, strict=False)
        return model

    def resolve_gaps(self):
        consumers = {}
        for _, layer, ins in self.triples:
            for i in ins:
                consumers.setdefault(i, []).append(layer)
        for k, (n, _, ins) in enumerate(self.triples):
            if n in self.gap_candidates:
                readers = consumers.get(n, [])
                if readers and all(isinstance(r, xnn.Flatten) for r in readers):
                    continue
                cls = optional_layer("AdaptiveAvgPool2D", f"{self.label_of[n]} (its (N, C, 1, 1) output feeds layers "
                                                          "other than a flatten)")
                self.triples[k] = (n, cls(1), ins)


#: what an unsupported operator usually is in a torch export
_HINTS = {
    op: " (torch's dynamo exporter writes an adaptive average pool whose output size does not divide its input, "
        "e.g. VGG's AdaptiveAvgPool2d(7) on a 1x1 map, as Transpose/GatherND/ReduceMean: export at an input size "
        "where it divides, or use from_torch)" for op in ("Transpose", "GatherND")
}
_HINTS.update({op: " (torch's dynamo exporter writes Softplus's threshold as Greater/Where; the TorchScript exporter "
                   "(dynamo=False) writes one Softplus node)" for op in ("Greater", "Where")})

#: operators evaluated when all their inputs are constants (weights behind Identity, shape arithmetic)
_FOLDABLE = {
    "Constant", "Identity", "Cast", "Reshape", "Unsqueeze", "Squeeze", "Concat", "Transpose", "Gather", "Shape",
    "Slice", "Mul", "Add", "Sub", "Div", "Sqrt", "Neg", "Reciprocal", "Flatten", "ConstantOfShape", "Range",
}


# -- converters: (converter, node, index, attributes, label) ---------------------------------------------
def _conv(cv, node, k, a, label):
    x = cv.data(node.input[0], label)
    w = cv.const(node.input[1], "weight", label)
    b = cv.optional_const(node, 2, "bias", label)
    if w.ndim != 4:
        raise ConversionError(f"{label}: only 2-D convolutions are supported, got a weight of shape {w.shape}")
    group = int(a.get("group", 1))
    auto_pad = _decode(a.get("auto_pad", "NOTSET"))
    kernel = tuple(a.get("kernel_shape", w.shape[2:]))
    strides = tuple(a.get("strides", (1, 1)))
    dil = tuple(a.get("dilations", (1, 1)))
    if kernel != tuple(w.shape[2:]):
        raise ConversionError(f"{label}: kernel_shape {kernel} does not match the weight's {w.shape[2:]}")
    if auto_pad in ("NOTSET", "VALID"):
        pads = list(a.get("pads", [0, 0, 0, 0])) if auto_pad == "NOTSET" else [0, 0, 0, 0]
        t, l, bo, r = (int(p) for p in pads)
        padding = ((t, bo), (l, r))
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER") and strides == (1, 1):
        tot = [d * (kk - 1) for kk, d in zip(kernel, dil)]
        lo_hi = [(s // 2, s - s // 2) if auto_pad == "SAME_UPPER" else (s - s // 2, s // 2) for s in tot]
        padding = tuple(lo_hi)
    else:
        raise ConversionError(f"{label}: auto_pad={auto_pad} with strides {strides} depends on the input size; export "
                              "with explicit pads")
    try:
        layer = conv_layer(_f64(w), None if b is None else _f64(b), strides, padding, dil, group)
    except (ValueError, TypeError) as exc:
        raise ConversionError(f"{label}: {exc}") from None
    keeps = kernel == (1, 1) and padding == ((0, 0), (0, 0))
    cv.add(node, k, layer, [x], rank=4, pooled=x.pooled and keeps)


def _unit(factory, unit=None):
    def convert(cv, node, k, a, label):
        x = cv.data(node.input[0], label)
        if _fused_into_mul(cv, node, factory, a):
            return
        cv.add(node, k, factory(a, label), [x], unit=unit)

    return convert


def _hardsigmoid(a, label):
    alpha, beta = a.get("alpha", 0.2), a.get("beta", 0.5)
    if not (_close(alpha, 1 / 6) and _close(beta, 0.5)):
        raise ConversionError(f"{label}: HardSigmoid with alpha={alpha}, beta={beta} is not supported (only PyTorch's "
                              "alpha=1/6, beta=1/2, xattr's Hardsigmoid)")
    return xnn.Hardsigmoid()


def _gelu(a, label):
    return xnn.GELU(_decode(a.get("approximate", "none")))


def _fused_into_mul(cv, node, factory, a):
    """``y = x * Sigmoid(x)`` (torch's export of SiLU) and ``x * HardSigmoid(x)`` (Hardswish): the unit is not
    emitted here; the Mul that reads it becomes one SiLU/Hardswish node."""
    if node.op_type not in ("Sigmoid", "HardSigmoid"):
        return False
    users = cv.consumers.get(node.output[0], [])
    if len(users) != 1 or users[0].op_type != "Mul" or node.output[0] == cv.output_name:
        return False
    mul = users[0]
    other = [i for i in mul.input if i != node.output[0]]
    if len(other) != 1 or other[0] != node.input[0]:
        return False
    if node.op_type == "HardSigmoid" and not (_close(a.get("alpha", 0.2), 1 / 6) and _close(a.get("beta", 0.5), 0.5)):
        return False
    cv.fused[node.output[0]] = (node.input[0], xnn.SiLU if node.op_type == "Sigmoid" else xnn.Hardswish)
    return True


def _prelu(cv, node, k, a, label):
    x = cv.data(node.input[0], label)
    slope = cv.const(node.input[1], "slope", label).astype(np.float64)
    flat = slope.reshape(-1)
    if slope.ndim > 1 and slope.shape[-2:] != (1, 1) or slope.ndim > 3:
        raise ConversionError(f"{label}: only a scalar or per-channel slope (C, 1, 1) is supported, got {slope.shape}")
    layer = xnn.PReLU(flat.size)
    layer.weight = flat
    cv.add(node, k, layer, [x])


def _clip(cv, node, k, a, label):
    x = cv.data(node.input[0], label)
    if cv.opset < 11:
        lo, hi = a.get("min"), a.get("max")
    else:
        lo, hi = cv.optional_const(node, 1, "min", label), cv.optional_const(node, 2, "max", label)
    lo = None if lo is None else float(np.asarray(lo).reshape(()))
    hi = None if hi is None else float(np.asarray(hi).reshape(()))
    lo = None if lo is not None and lo <= -np.finfo(np.float32).max else lo
    hi = None if hi is not None and hi >= np.finfo(np.float32).max else hi
    if lo is None and hi is None:
        cv.env[node.output[0]] = x
        return
    layer = xnn.ReLU6() if (lo, hi) == (0.0, 6.0) else xnn.Clamp(lo, hi)
    cv.add(node, k, layer, [x])


def _pool_geometry(a, label, op):
    if tuple(a.get("dilations", (1, 1))) != (1, 1):
        raise ConversionError(f"{label}: dilated pooling is not supported")
    auto_pad = _decode(a.get("auto_pad", "NOTSET"))
    if auto_pad not in ("NOTSET", "VALID"):
        raise ConversionError(f"{label}: auto_pad={auto_pad} is not supported for pooling (export with explicit pads)")
    kernel = tuple(a["kernel_shape"])
    if len(kernel) != 2:
        raise ConversionError(f"{label}: only 2-D pooling is supported, got kernel_shape {kernel}")
    t, l, b, r = (int(p) for p in (a.get("pads", [0, 0, 0, 0]) if auto_pad == "NOTSET" else [0, 0, 0, 0]))
    if (t, l) != (b, r):
        raise ConversionError(f"{label}: asymmetric pads {[t, l, b, r]} are not supported by {op} (only symmetric)")
    return kernel, tuple(a.get("strides", (1, 1))), (t, l), bool(a.get("ceil_mode", 0))


def _maxpool(cv, node, k, a, label):
    x = cv.data(node.input[0], label)
    if len(node.output) > 1 and node.output[1]:
        raise ConversionError(f"{label}: the Indices output is not supported")
    if a.get("storage_order", 0):
        raise ConversionError(f"{label}: storage_order=1 is not supported")
    kernel, strides, pads, ceil = _pool_geometry(a, label, "MaxPool")
    cv.add(node, k, pool_layer(xnn.MaxPool2D, label, kernel, strides, pads, ceil), [x])


def _avgpool(cv, node, k, a, label):
    x = cv.data(node.input[0], label)
    kernel, strides, pads, ceil = _pool_geometry(a, label, "AveragePool")
    extra = {}
    if max(pads) > 0 and not a.get("count_include_pad", 0):
        extra["count_include_pad"] = False
    cv.add(node, k, pool_layer(xnn.AvgPool2D, label, kernel, strides, pads, ceil, **extra), [x])


def _gap(cv, node, k, a, label):
    x = cv.data(node.input[0], label)
    cv.add(node, k, xnn.GlobalAvgPool2D(), [x], rank=4, pooled=True)


def _global_max(cv, node, k, a, label):
    x = cv.data(node.input[0], label)
    cv.add(node, k, optional_layer("AdaptiveMaxPool2D", label)(1), [x], rank=4, pooled=True)


def _reduce_mean(cv, node, k, a, label):
    x = cv.data(node.input[0], label)
    axes = a.get("axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = cv.const(node.input[1], "axes", label)
    axes = sorted(int(v) % 4 for v in (np.asarray(axes).reshape(-1) if axes is not None else []))
    if axes != [2, 3] or x.rank != 4:
        raise ConversionError(f"{label}: only ReduceMean over the spatial axes (2, 3) is supported, got axes {axes}")
    if a.get("keepdims", 1):
        cv.add(node, k, xnn.GlobalAvgPool2D(), [x], rank=4, pooled=True)
    else:
        cv.add(node, k, xnn.GlobalAvgPool2D(), [x], rank=2, pooled=False)


def _gemm(cv, node, k, a, label):
    x = cv.data(node.input[0], label)
    if a.get("transA", 0):
        raise ConversionError(f"{label}: transA=1 is not supported (the data must be the left factor)")
    w = cv.const(node.input[1], "weight", label).astype(np.float64)
    w = w if a.get("transB", 0) else w.T  # xattr's Dense weight is (out, in)
    w = a.get("alpha", 1.0) * w
    c = cv.optional_const(node, 2, "bias", label)
    bias = None
    if c is not None:
        bias = np.broadcast_to(a.get("beta", 1.0) * c.astype(np.float64).reshape(-1), (w.shape[0],))
    cv.add(node, k, dense_layer(w, bias), [x], rank=2, pooled=False)


def _matmul(cv, node, k, a, label):
    x = cv.data(node.input[0], label)
    w = cv.const(node.input[1], "right factor", label)
    if w.ndim != 2:
        raise ConversionError(f"{label}: the constant right factor must be a matrix (in, out), got shape {w.shape}")
    cv.add(node, k, dense_layer(_f64(w.T)), [x], rank=2, pooled=False)


def _bias_after(cv, node, k, label, data, const):
    """``Add(data, constant)``: the bias of the Dense (MatMul/Gemm) or Conv that produced ``data`` and feeds only it."""
    prev = next((t for t in cv.triples if t[0] == data.name), None)
    layer = None if prev is None else prev[1]
    only = data.src is not None and len(cv.consumers.get(data.src.output[0], [])) == 1
    c = np.asarray(const, dtype=np.float64)
    if isinstance(layer, xnn.Dense) and only and c.size in (1, layer.out_features) and c.ndim <= 2:
        bias = np.broadcast_to(c.reshape(-1), (layer.out_features,)) + (layer.bias if layer.bias is not None else 0.0)
        new = dense_layer(layer.weight, bias)
    elif isinstance(layer, xnn.Conv2D) and only and c.size in (1, layer.out_channels) and (
            c.ndim <= 1 or c.shape[-2:] == (1, 1) and c.ndim in (3, 4)):
        bias = np.broadcast_to(c.reshape(-1), (layer.out_channels,)) + (layer.bias if layer.bias is not None else 0.0)
        new = conv_layer(layer.weight, bias, layer.stride, layer.pads, layer.dilation, layer.groups)
    else:
        raise ConversionError(f"{label}: an Add of a constant is only supported as the bias of the MatMul/Gemm/Conv "
                              "right before it (that feeds nothing else)")
    pos = [t[0] for t in cv.triples].index(data.name)
    cv.triples[pos] = (data.name, new, prev[2])
    cv.env[node.output[0]] = data


def _merge(kind):
    def convert(cv, node, k, a, label):
        if len(node.input) != 2:
            raise ConversionError(f"{label}: takes two inputs, got {len(node.input)}")
        vals = [cv.env.get(i) if i not in cv.consts else cv.consts[i] for i in node.input]
        data = [v for v in vals if isinstance(v, _Data)]
        fused = [i for i in node.input if i in cv.fused]
        if kind == "mul" and fused:
            src, cls = cv.fused[fused[0]]
            cv.add(node, k, cls(), [cv.data(src, label)])
            return
        if len(data) == 1 and kind == "add":
            return _bias_after(cv, node, k, label, data[0], vals[1] if vals[0] is data[0] else vals[0])
        if len(data) != 2:
            raise ConversionError(f"{label}: only a {'sum' if kind == 'add' else 'product'} of two tensors computed "
                                  "from the input is supported (one operand is a constant)")
        x, y = data
        if kind == "add":
            cv.add(node, k, xnn.Add(), [x, y], pooled=x.pooled and y.pooled)
            return
        sx, sy = cv.shapes.get(node.input[0]), cv.shapes.get(node.input[1])
        gate = None
        if sx and sy and len(sx) == len(sy) == 4 and None not in sx[2:] + sy[2:]:
            if sx[2:] == (1, 1) and sy[2:] != (1, 1):
                gate = 0
            elif sy[2:] == (1, 1) and sx[2:] != (1, 1):
                gate = 1
        if gate is None and x.pooled != y.pooled:
            gate = 0 if x.pooled else 1
        if gate is None and (x.unit == "gate") != (y.unit == "gate"):
            gate = 0 if x.unit == "gate" else 1
        gate = 1 if gate is None else gate
        signal = (x, y)[1 - gate]
        cv.add(node, k, xnn.Multiply(gate=gate), [x, y], rank=signal.rank, pooled=signal.pooled)

    return convert


def _concat(cv, node, k, a, label):
    parts = [cv.data(i, label) for i in node.input]
    axis = a.get("axis")
    if not (axis == 1 or axis == -3 and all(p.rank == 4 for p in parts)):
        raise ConversionError(f"{label}: only concatenation along the channel axis (axis=1) is supported, got {axis}")
    if len(parts) == 1:
        cv.env[node.output[0]] = parts[0]
        return
    cv.add(node, k, xnn.Concat(), parts, pooled=all(p.pooled for p in parts))


def _pad(cv, node, k, a, label):
    x = cv.data(node.input[0], label)
    mode = _decode(a.get("mode", "constant"))
    if mode != "constant":
        raise ConversionError(f"{label}: Pad mode {mode!r} is not supported (only constant)")
    if cv.opset < 11:
        pads, value = a.get("pads"), a.get("value", 0.0)
    else:
        pads = cv.const(node.input[1], "pads", label)
        value = cv.optional_const(node, 2, "constant value", label)
        value = 0.0 if value is None else float(np.asarray(value).reshape(()))
        axes = cv.optional_const(node, 3, "axes", label)
        if axes is not None:
            full = [0] * 8
            for j, ax in enumerate(np.asarray(axes).reshape(-1)):
                full[int(ax) % 4] = int(pads[j])
                full[int(ax) % 4 + 4] = int(pads[j + len(axes)])
            pads = full
    pads = [int(p) for p in np.asarray(pads).reshape(-1)]
    if len(pads) != 8 or pads[0] or pads[1] or pads[4] or pads[5] or min(pads) < 0:
        raise ConversionError(f"{label}: only non-negative padding of the two spatial axes of (N, C, H, W) is "
                              f"supported, got pads {pads}")
    cls = optional_layer("Pad2D", label)
    cv.add(node, k, cls(((pads[2], pads[6]), (pads[3], pads[7])), value=value), [x])


def _flatten(cv, node, k, a, label):
    x = cv.data(node.input[0], label)
    if a.get("axis", 1) != 1:
        raise ConversionError(f"{label}: only Flatten with axis=1 is supported, got axis={a['axis']}")
    cv.add(node, k, xnn.Flatten(), [x], rank=2, pooled=False)


def _reshape(cv, node, k, a, label):
    x = cv.data(node.input[0], label)
    shape = cv.const(node.input[1], "target shape", label).reshape(-1)
    if shape.size != 2:
        raise ConversionError(
            f"{label}: only a Reshape to rank 2 (N, features) is supported, got shape {shape.tolist()}"
        )
    src = cv.shapes.get(node.input[0])
    n0, n1 = int(shape[0]), int(shape[1])
    if src and None not in src[1:]:
        feats = int(np.prod(src[1:]))
        batch = src[0]
        ok = (n1 in (-1, feats)) and (n0 in (0, -1) or batch is not None and n0 == batch or n0 > 0 and n1 == feats)
        if not ok or (n0 == -1 and n1 == -1):
            raise ConversionError(f"{label}: a Reshape of {src} to {shape.tolist()} is not a per-image flatten "
                                  f"(N, {feats})")
    elif n1 == -1 and n0 == -1:
        raise ConversionError(f"{label}: Reshape to (-1, -1) is not a valid shape")
    # (N, -1) in C order; a batch size baked in by the exporter is read as N.  Without known shapes, a rank-2
    # reshape that is not a per-image flatten changes the feature count, so the next layer refuses its input.
    cv.add(node, k, xnn.Flatten(), [x], rank=2, pooled=False)


def _squeeze(cv, node, k, a, label):
    x = cv.data(node.input[0], label)
    axes = a.get("axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = cv.const(node.input[1], "axes", label)
    axes = sorted(int(v) % 4 for v in np.asarray(axes if axes is not None else []).reshape(-1))
    if axes != [2, 3] or x.rank != 4:
        raise ConversionError(f"{label}: only Squeeze of the spatial axes (2, 3) of (N, C, 1, 1) is supported, got "
                              f"axes {axes}")
    cv.add(node, k, xnn.Flatten(), [x], rank=2, pooled=False)


def _batchnorm(cv, node, k, a, label):
    x = cv.data(node.input[0], label)
    if a.get("training_mode", 0) or len([o for o in node.output if o]) > 1:
        raise ConversionError(f"{label}: training mode (running-statistics outputs) is not supported (inference only)")
    if not a.get("spatial", 1):
        raise ConversionError(f"{label}: spatial=0 (per-activation statistics) is not supported")
    scale, bias, mean, var = (cv.const(node.input[j], n, label).astype(np.float64).reshape(-1)
                              for j, n in zip(range(1, 5), ("scale", "bias", "mean", "var")))
    layer = xnn.BatchNorm2D(scale.shape[0], eps=a.get("epsilon", 1e-5))
    layer.weight, layer.bias, layer.running_mean, layer.running_var = scale, bias, mean, var
    cv.add(node, k, layer, [x])


def _dropout(cv, node, k, a, label):
    x = cv.data(node.input[0], label)
    if len(node.output) > 1 and node.output[1] and node.output[1] in cv.consumers:
        raise ConversionError(f"{label}: the mask output is not supported")
    ratio = a.get("ratio")
    if ratio is None and len(node.input) > 1 and node.input[1]:
        ratio = float(cv.const(node.input[1], "ratio", label))
    if len(node.input) > 2 and node.input[2] and bool(cv.const(node.input[2], "training_mode", label)):
        raise ConversionError(f"{label}: training_mode=True drops units at random at inference")
    cv.add(node, k, xnn.Dropout(0.5 if ratio is None else float(ratio)), [x])


def _identity(cv, node, k, a, label):
    cv.env[node.output[0]] = cv.data(node.input[0], label)


def _softmax(cv, node, k, a, label):
    x = cv.data(node.input[0], label)
    if node.output[0] != cv.output_name:
        raise ConversionError(f"{label}: Softmax is only supported as the final node (it is dropped)")
    warnings.warn(
        f"from_onnx: the final Softmax ({label}) was dropped; xattr explains the logits (pre-softmax scores)",
        UserWarning, stacklevel=4,
    )
    cv.env[node.output[0]] = x


def _softplus(a, label):
    return xnn.Softplus(1.0, threshold=float(np.finfo(np.float64).max))  # ONNX's Softplus has no threshold


_CONVERTERS = {
    "Conv": _conv,
    "Relu": _unit(lambda a, lab: xnn.ReLU()),
    "LeakyRelu": _unit(lambda a, lab: xnn.LeakyReLU(a.get("alpha", 0.01))),
    "Sigmoid": _unit(lambda a, lab: xnn.Sigmoid(), unit="gate"),
    "HardSigmoid": _unit(_hardsigmoid, unit="gate"),
    "HardSwish": _unit(lambda a, lab: xnn.Hardswish()),
    "Tanh": _unit(lambda a, lab: xnn.Tanh()),
    "Gelu": _unit(_gelu),
    "Softplus": _unit(_softplus),
    "Clip": _clip, "PRelu": _prelu,
    "MaxPool": _maxpool, "AveragePool": _avgpool, "GlobalAveragePool": _gap, "GlobalMaxPool": _global_max,
    "ReduceMean": _reduce_mean, "Gemm": _gemm, "MatMul": _matmul, "Add": _merge("add"), "Mul": _merge("mul"),
    "Concat": _concat, "Pad": _pad, "Flatten": _flatten, "Reshape": _reshape, "Squeeze": _squeeze,
    "BatchNormalization": _batchnorm, "Dropout": _dropout, "Identity": _identity, "Softmax": _softmax,
}


def from_onnx(source, fold=False, names="source"):
    """Convert an ONNX model into an xattr model computing the same function.

    Parameters
    ----------
    source : str, os.PathLike, bytes or onnx.ModelProto
        External weights (``onnx.save(..., save_as_external_data=True)``) are read relative to the model
        file's folder, and only from inside it: they need a path.
    fold : bool
        Fold every batch-norm that follows a conv into it (:func:`xattr.nn.fold_batchnorm`).
    names : ``"source"`` (default) or ``"onnx"``
        ``"source"``: nodes exported by torch take their module's path, as :func:`from_torch` names them
        (:func:`source_names`; ``layer1.0.conv1``, ``layer1.0.relu_1``, ``layer1.0.add``), others their ONNX
        node name.  ``"onnx"``: every node its ONNX node name.  Unnamed nodes are ``node<k>``.

    Returns
    -------
    xattr.nn.Graph
        A :class:`xattr.nn.Sequential` when the graph is a chain; float64 weights.

    Raises
    ------
    ImportError
        The ``onnx`` package is absent (``pip install 'xattr-ref[onnx]'``).
    ConversionError
        A file that is not an ONNX model, an operator set outside :data:`MIN_OPSET`..:data:`MAX_OPSET`, an
        unsupported operator or attribute (named with its node), several inputs or outputs.
    """
    onnx = require("onnx", "onnx")
    if names not in ("source", "onnx"):
        raise ValueError(f"names must be 'source' or 'onnx', got {names!r}")
    model = _load(source, onnx)
    opset = _check_opsets(model, "the model")
    # external weights are read relative to the model file's folder (never the working directory), only from inside it
    base_dir = os.path.dirname(os.path.abspath(os.fspath(source))) if isinstance(source, (str, os.PathLike)) else None
    return _Converter(model, onnx, base_dir, fold, opset, names).run()
