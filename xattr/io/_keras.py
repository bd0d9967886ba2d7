"""``from_keras``: a Keras 3 ``.keras`` file -> :class:`xattr.nn.Graph` (or :class:`~xattr.nn.Sequential`), read with
``h5py`` alone: no TensorFlow, no Keras.

A ``.keras`` file is a zip archive holding ``config.json`` (the architecture: a ``Sequential`` or ``Functional``
model, each layer's class and config and, for functional models, the tensors each layer is called on) and
``model.weights.h5`` (each layer's variables under ``layers/<snake_case class name>[_k]/vars/<i>``, in the order
of ``model.layers``; Keras ≥ 3.x also writes the layer's name as the ``name`` attribute of that ``vars`` group).

Keras is channels-last; xattr is NCHW/OIHW, so every weight is transposed:

=========================== ============================================ ==========================================
Keras                       weights                                      xattr
=========================== ============================================ ==========================================
Conv2D                      kernel (kh, kw, in/groups, out), bias        Conv2D, weight (out, in/groups, kh, kw)
DepthwiseConv2D             kernel (kh, kw, in, mult), bias (in·mult)    Conv2D(groups=in), weight (in·mult, 1, kh, kw),
                                                                         output channel c·mult + m (TensorFlow's order)
Dense                       kernel (in, out), bias                       Dense, weight (out, in); after a Flatten of
                                                                         (H, W, C) the rows are permuted from Keras's
                                                                         (h, w, c) order to xattr's (c, h, w)
BatchNormalization          gamma, beta, moving mean, moving variance    BatchNorm2D (epsilon kept; default 1e-3)
MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, Flatten, Dropout, SpatialDropout2D, Add, Concatenate (channel
axis), InputLayer, ReLU, LeakyReLU, Activation and every ``activation=`` argument: the layers of the same names
=========================== ============================================ ==========================================

``padding="same"`` is TensorFlow's: ``out = ceil(in / stride)``, ``pad = max((out − 1)·stride + (k − 1)·d + 1 − in,
0)``, the odd pixel at the bottom/right: asymmetric at stride 2 on even sizes, given to ``Conv2D`` as
``((top, bottom), (left, right))``.  It needs the input's height and width (``input_shape=`` if the file leaves
them open).  Pooling with asymmetric "same" padding and average pooling with any "same" padding (TensorFlow leaves the
padded cells out of the mean; xattr's AvgPool2D counts them) are refused.

Activations: ``linear``, ``relu``, ``relu6``, ``leaky_relu``, ``sigmoid``, ``tanh``, ``swish``/``silu``,
``hard_sigmoid``, ``hard_swish``/``hard_silu``, ``gelu`` (exact or tanh), ``softplus``.  A layer with a fused
activation becomes two nodes: ``"<name>/pre_activation"`` and the activation under the Keras layer's own name, so
the node called ``name`` outputs what the Keras layer outputs (the layer a tf-keras-vis user picks by name is found
under the same name here).  A ``softmax`` on the model's output is dropped with a warning (xattr explains the
logits); anywhere else it is refused.  Anything else (nested models, shared layers, several inputs or outputs,
channels-first data, unknown layers or options) raises :class:`ConversionError` naming the layer.

The returned model takes images ``(N, C, H, W)``: transpose Keras inputs with ``x.transpose(0, 3, 1, 2)``.
"""
from __future__ import annotations

import io
import json
import os
import re
import warnings
import zipfile

import numpy as np

from ..nn import (
    GELU,
    INPUT,
    Add,
    AvgPool2D,
    BatchNorm2D,
    Concat,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    Graph,
    Hardsigmoid,
    Hardswish,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    ReLU6,
    Sequential,
    Sigmoid,
    SiLU,
    Softplus,
    Tanh,
)
from ._common import ConversionError, f64, require

SUPPORTED_LAYERS = (
    "InputLayer", "Conv2D", "DepthwiseConv2D", "Dense", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
    "BatchNormalization", "Flatten", "Dropout", "SpatialDropout2D", "Add", "Concatenate", "ReLU", "LeakyReLU",
    "Activation", "Softmax",
)
SUPPORTED_ACTIVATIONS = (
    "linear", "relu", "relu6", "leaky_relu", "sigmoid", "tanh", "swish", "silu", "hard_sigmoid", "hard_swish",
    "hard_silu", "gelu", "softplus", "softmax",
)
_IDENTITY_LAYERS = ("Dropout", "SpatialDropout2D")


def _snake(name):
    """Keras's ``naming.to_snake_case`` (the h5 group names of ``model.weights.h5``)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _open(path):
    """``(config dict, h5py.File)`` from a ``.keras`` zip archive."""
    h5py = require("h5py", "keras")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"from_keras needs the path of a .keras file, got {type(path).__name__}")
    label = f"file {os.fspath(path)!r}"
    if not os.path.exists(path):
        raise FileNotFoundError(f"from_keras: no such file {os.fspath(path)!r}")
    if not zipfile.is_zipfile(path):
        raise ConversionError(f"{label} is not a Keras 3 .keras archive (not a zip file; legacy .h5 models and "
                              "SavedModel directories are not supported)")
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        missing = [n for n in ("config.json", "model.weights.h5") if n not in names]
        if missing:
            raise ConversionError(f"{label} is not a Keras 3 .keras archive: it lacks {missing} "
                                  f"(it holds {sorted(names)})")
        try:
            config = json.loads(zf.read("config.json").decode("utf-8"))
        except ValueError as exc:
            raise ConversionError(f"{label}: config.json is not valid JSON ({exc})") from exc
        weights = h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r")
    return config, weights, label


def _activation_name(value, where):
    if value is None:
        return "linear"
    if isinstance(value, dict):  # a serialised function: {"class_name": "function", "config": "relu", ...}
        if value.get("class_name") == "function" and isinstance(value.get("config"), str):
            return value["config"]
        raise ConversionError(f"{where}: activation {value!r} is not one of the supported names "
                              f"{SUPPORTED_ACTIVATIONS}")
    if not isinstance(value, str):
        raise ConversionError(f"{where}: activation {value!r} is not a name")
    return value


def _activation_layer(name, where, negative_slope=0.2):
    """The xattr layer of a Keras activation name (None for ``linear``)."""
    table = {
        "relu": ReLU, "relu6": ReLU6, "sigmoid": Sigmoid, "tanh": Tanh, "swish": SiLU, "silu": SiLU,
        "hard_sigmoid": Hardsigmoid, "hard_swish": Hardswish, "hard_silu": Hardswish,
    }
    if name == "linear":
        return None
    if name in table:
        return table[name]()
    if name == "leaky_relu":
        return LeakyReLU(negative_slope)
    if name == "gelu":
        return GELU("none")  # keras.activations.gelu(approximate=False)
    if name == "softplus":
        # Keras: log(1 + e^x) everywhere; xattr's Softplus reverts to x above its threshold: put it beyond the dtype
        return Softplus(beta=1.0, threshold=float(np.finfo(np.float64).max))
    raise ConversionError(f"{where}: activation {name!r} is not supported; supported: {SUPPORTED_ACTIVATIONS}")


def _pair(v, where, what):
    if isinstance(v, int):
        return (v, v)
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(i, int) for i in v):
        return tuple(v)
    raise ConversionError(f"{where}: {what} must be an int or two ints, got {v!r}")


def _same_pads(size, k, s, d, where):
    """TensorFlow's SAME padding along one axis: ``(before, after)``."""
    if size is None and s == 1:  # (k − 1)·d in total whatever the size
        total = (k - 1) * d
        return (total // 2, total - total // 2)
    if size is None:
        raise ConversionError(f"{where}: padding='same' with stride {s} needs the input's size, which the file "
                              "leaves open; pass from_keras(path, input_shape=(H, W))")
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return (total // 2, total - total // 2)


def _out_size(size, k, s, d, pads):
    if size is None:
        return None
    return (size + pads[0] + pads[1] - d * (k - 1) - 1) // s + 1


class _Builder:
    """Walks the Keras layers, producing xattr nodes; tracks channels-last shapes and Flatten permutations."""

    def __init__(self, weights, label):
        self.weights = weights
        self.label = label
        self.input_info = None  # (shape, perm) of the model input, set by from_keras
        self.triples = []
        self.info = {}  # node name -> (shape without batch, channels-last; perm or None)
        self.alias = {}  # Keras layer name -> xattr node holding its output

    # -- weights ---------------------------------------------------------------------------------
    def index_weights(self, layer_cfgs, functional):
        """``{keras layer name: [arrays]}`` from the h5 file."""
        groups = self.weights.get("layers")
        by_name = {}
        if groups is not None:
            for key in groups:
                vars_ = groups[key].get("vars")
                if vars_ is not None and "name" in vars_.attrs:
                    by_name[_decode(vars_.attrs["name"])] = vars_
        if not by_name:  # files without the name attribute: the group names follow model.layers' order
            used = {}
            for cfg in layer_cfgs:
                if not functional and cfg["class_name"] == "InputLayer":
                    continue
                base = _snake(cfg["class_name"])
                key = base if base not in used else f"{base}_{used[base] + 1}"
                used[base] = used.get(base, -1) + 1
                if groups is not None and key in groups and "vars" in groups[key]:
                    by_name[cfg["config"]["name"]] = groups[key]["vars"]
        self.by_name = by_name

    def variables(self, name, count, where):
        g = self.by_name.get(name)
        arrays = [] if g is None else [np.asarray(g[str(i)]) for i in range(len(g))]
        if len(arrays) != count:
            raise ConversionError(f"{where}: expected {count} weight array(s) in model.weights.h5, found {len(arrays)}")
        return arrays

    # -- nodes -----------------------------------------------------------------------------------
    def add(self, name, layer, inputs, shape, perm=None):
        self.triples.append((name, layer, tuple(inputs) if len(inputs) > 1 else inputs[0]))
        self.info[name] = (shape, perm)
        return name

    def finish(self, kname, pre, act, shape, perm=None):
        """Append the activation node (if any) after node ``pre`` and register the Keras name."""
        if act is None:
            self.alias[kname] = pre
            return pre
        self.alias[kname] = self.add(kname, act, [pre], shape, perm)
        return kname

    def convert(self, cfg, inputs, is_output):
        cls, c = cfg["class_name"], cfg["config"]
        name = c.get("name", cfg.get("name"))
        where = f"{self.label}: layer {name!r} ({cls})"
        if cls in ("Functional", "Sequential", "Model"):
            raise ConversionError(f"{where}: nested models are not supported")
        if cls not in SUPPORTED_LAYERS:
            raise ConversionError(f"{where} is not supported; supported layers: {', '.join(SUPPORTED_LAYERS)}")
        if c.get("data_format", "channels_last") != "channels_last":
            raise ConversionError(f"{where}: data_format {c['data_format']!r}; only channels_last is supported")
        srcs = [self.alias[i] for i in inputs]
        shapes = [self.info[s][0] if s != INPUT else self.input_info[0] for s in srcs]
        perms = [self.info[s][1] if s != INPUT else None for s in srcs]
        merge = cls in ("Add", "Concatenate")
        if not merge and len(srcs) != 1:
            raise ConversionError(f"{where}: takes one input, got {len(srcs)}")
        if any(p is not None for p in perms) and cls not in ("Dense", "Dropout", "Activation", "ReLU", "LeakyReLU",
                                                             "SpatialDropout2D", "Softmax"):
            raise ConversionError(f"{where}: reads a Flatten's output (channels-last order) and is not a Dense layer "
                                  "or an element-wise one; xattr cannot keep Keras's (h, w, c) order through it")
        shape, perm = shapes[0], perms[0]
        return getattr(self, "_" + cls)(name, c, srcs, shapes, shape, perm, where, is_output)

    def _act_or_softmax(self, kname, act_name, pre, shape, perm, where, is_output):
        if act_name == "softmax":
            if not is_output:
                raise ConversionError(f"{where}: softmax is supported only on the model's output (where it is dropped)")
            warnings.warn(f"from_keras: the final softmax of {where} was dropped; xattr explains the logits "
                          "(pre-softmax scores)", UserWarning, stacklevel=5)
            act = None
        else:
            act = _activation_layer(act_name, where)
        return self.finish(kname, pre, act, shape, perm)

    # one method per Keras layer class ------------------------------------------------------------
    def _Conv2D(self, name, c, srcs, shapes, shape, perm, where, is_output, depthwise=False):
        if len(shape) != 3:
            raise ConversionError(f"{where}: needs a 4-D input (N, H, W, C), got one of shape {('N',) + shape}")
        H, W, cin = shape
        act = _activation_name(c.get("activation"), where)
        if act != "softmax":
            _activation_layer(act, where)  # refuse an unknown activation before reading weights
        k = _pair(c["kernel_size"], where, "kernel_size")
        s = _pair(c.get("strides", 1), where, "strides")
        d = _pair(c.get("dilation_rate", 1), where, "dilation_rate")
        padding = c.get("padding", "valid")
        if padding == "valid":
            pads = ((0, 0), (0, 0))
        elif padding == "same":
            pads = (_same_pads(H, k[0], s[0], d[0], where), _same_pads(W, k[1], s[1], d[1], where))
        else:
            raise ConversionError(f"{where}: padding {padding!r} is not supported ('valid' or 'same')")
        if s != (1, 1) and d != (1, 1):
            raise ConversionError(f"{where}: strides {s} together with dilation {d} is not supported")
        use_bias = c.get("use_bias", True)
        arrays = self.variables(name, 2 if use_bias else 1, where)
        kernel = arrays[0]
        if depthwise:
            mult = int(c.get("depth_multiplier", 1))
            if kernel.shape != k + (cin, mult):
                raise ConversionError(f"{where}: depthwise kernel of shape {kernel.shape}, expected {k + (cin, mult)}")
            cout, groups = cin * mult, cin
            weight = kernel.transpose(2, 3, 0, 1).reshape(cout, 1, k[0], k[1])
        else:
            groups = int(c.get("groups", 1))
            cout = int(c["filters"])
            if kernel.shape != k + (cin // groups, cout):
                raise ConversionError(f"{where}: kernel of shape {kernel.shape}, expected {k + (cin // groups, cout)}")
            weight = kernel.transpose(3, 2, 0, 1)
        conv = Conv2D(cin, cout, k, stride=s, padding=pads, dilation=d, bias=use_bias, groups=groups)
        conv.weight = f64(weight)
        if use_bias:
            conv.bias = f64(arrays[1])
        out = (_out_size(H, k[0], s[0], d[0], pads[0]), _out_size(W, k[1], s[1], d[1], pads[1]), cout)
        pre = self.add(name if act == "linear" else f"{name}/pre_activation", conv, srcs, out)
        return self._act_or_softmax(name, act, pre, out, None, where, is_output)

    def _DepthwiseConv2D(self, *args):
        return self._Conv2D(*args, depthwise=True)

    def _Dense(self, name, c, srcs, shapes, shape, perm, where, is_output):
        if len(shape) != 1:
            raise ConversionError(f"{where}: Dense on a {len(shape) + 1}-D input is not supported (only (N, features))")
        act = _activation_name(c.get("activation"), where)
        if act != "softmax":
            _activation_layer(act, where)
        use_bias = c.get("use_bias", True)
        arrays = self.variables(name, 2 if use_bias else 1, where)
        kernel = arrays[0]
        if kernel.shape != (shape[0], int(c["units"])):
            raise ConversionError(f"{where}: kernel of shape {kernel.shape}, expected {(shape[0], int(c['units']))}")
        if perm is not None:  # Keras flattened (h, w, c); xattr flattens (c, h, w): move the rows
            rows = np.empty_like(kernel)
            rows[perm] = kernel
            kernel = rows
        dense = Dense(shape[0], int(c["units"]), bias=use_bias)
        dense.weight = f64(kernel.T)
        if use_bias:
            dense.bias = f64(arrays[1])
        out = (int(c["units"]),)
        pre = self.add(name if act in ("linear", "softmax") else f"{name}/pre_activation", dense, srcs, out)
        return self._act_or_softmax(name, act, pre, out, None, where, is_output)

    def _pool(self, name, c, srcs, shape, where, cls):
        if len(shape) != 3:
            raise ConversionError(f"{where}: needs a 4-D input (N, H, W, C)")
        H, W, C = shape
        k = _pair(c.get("pool_size", 2), where, "pool_size")
        s = k if c.get("strides") is None else _pair(c["strides"], where, "strides")
        padding = c.get("padding", "valid")
        if padding == "valid":
            pads = ((0, 0), (0, 0))
        elif padding == "same":
            pads = (_same_pads(H, k[0], s[0], 1, where), _same_pads(W, k[1], s[1], 1, where))
        else:
            raise ConversionError(f"{where}: padding {padding!r} is not supported")
        if pads != ((0, 0), (0, 0)):
            if cls is AvgPool2D:
                raise ConversionError(f"{where}: average pooling with padding='same' pads {pads}; TensorFlow leaves "
                                      "padded cells out of the mean, xattr's AvgPool2D counts them")
            if pads[0][0] != pads[0][1] or pads[1][0] != pads[1][1]:
                raise ConversionError(f"{where}: padding='same' at input size {(H, W)} pads {pads} asymmetrically; "
                                      "xattr's MaxPool2D pads symmetrically")
        layer = cls(k, stride=s, padding=(pads[0][0], pads[1][0]))
        out = (_out_size(H, k[0], s[0], 1, pads[0]), _out_size(W, k[1], s[1], 1, pads[1]), C)
        self.alias[name] = self.add(name, layer, srcs, out)
        return name

    def _MaxPooling2D(self, name, c, srcs, shapes, shape, perm, where, is_output):
        return self._pool(name, c, srcs, shape, where, MaxPool2D)

    def _AveragePooling2D(self, name, c, srcs, shapes, shape, perm, where, is_output):
        return self._pool(name, c, srcs, shape, where, AvgPool2D)

    def _GlobalAveragePooling2D(self, name, c, srcs, shapes, shape, perm, where, is_output):
        if len(shape) != 3:
            raise ConversionError(f"{where}: needs a 4-D input (N, H, W, C)")
        if c.get("keepdims", False):
            raise ConversionError(f"{where}: keepdims=True is not supported")
        self.alias[name] = self.add(name, GlobalAvgPool2D(), srcs, (shape[2],))
        return name

    def _BatchNormalization(self, name, c, srcs, shapes, shape, perm, where, is_output):
        axis = c.get("axis", -1)
        axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
        if len(shape) != 3 or axis not in (-1, 3):
            raise ConversionError(f"{where}: only batch normalisation over the channels of a 4-D input is supported "
                                  f"(axis -1), got axis {c.get('axis')!r} on a {len(shape) + 1}-D input")
        scale, center = c.get("scale", True), c.get("center", True)
        arrays = self.variables(name, 2 + scale + center, where)
        gamma = arrays.pop(0) if scale else np.ones(shape[2])
        beta = arrays.pop(0) if center else np.zeros(shape[2])
        bn = BatchNorm2D(shape[2], eps=float(c.get("epsilon", 1e-3)))
        bn.weight, bn.bias, bn.running_mean, bn.running_var = (f64(a) for a in (gamma, beta, arrays[0], arrays[1]))
        self.alias[name] = self.add(name, bn, srcs, shape)
        return name

    def _Flatten(self, name, c, srcs, shapes, shape, perm, where, is_output):
        if len(shape) == 1:
            self.alias[name] = srcs[0]
            return srcs[0]
        if len(shape) != 3 or None in shape:
            raise ConversionError(f"{where}: Flatten of an input of shape {('N',) + tuple(shape)} needs its size; pass "
                                  "from_keras(path, input_shape=(H, W))")
        H, W, C = shape
        # Keras position (h W + w) C + c holds xattr's c H W + h W + w
        hh, ww, cc = np.meshgrid(np.arange(H), np.arange(W), np.arange(C), indexing="ij")
        perm = (cc * H * W + hh * W + ww).reshape(-1)
        self.alias[name] = self.add(name, Flatten(), srcs, (H * W * C,), perm)
        return name

    def _Dropout(self, name, c, srcs, shapes, shape, perm, where, is_output):
        rate = float(c.get("rate", 0.5))
        self.alias[name] = self.add(name, Dropout(rate) if 0 <= rate < 1 else Dropout(), srcs, shape, perm)
        return name

    _SpatialDropout2D = _Dropout

    def _Add(self, name, c, srcs, shapes, shape, perm, where, is_output):
        if len(set(shapes)) != 1:
            raise ConversionError(f"{where}: adds inputs of different shapes {shapes} (broadcasting is not supported)")
        self.alias[name] = self.add(name, Add(), srcs, shape)
        return name

    def _Concatenate(self, name, c, srcs, shapes, shape, perm, where, is_output):
        axis = c.get("axis", -1)
        rank = len(shape) + 1
        if axis not in (-1, rank - 1) or len({s[:-1] for s in shapes}) != 1:
            raise ConversionError(f"{where}: only concatenation along the channel (last) axis is supported, got "
                                  f"axis {axis} on shapes {shapes}")
        out = shape[:-1] + (sum(s[-1] for s in shapes),)
        self.alias[name] = self.add(name, Concat(), srcs, out)
        return name

    def _elementwise(self, name, layer, srcs, shape, perm):
        self.alias[name] = self.add(name, layer, srcs, shape, perm)
        return name

    def _ReLU(self, name, c, srcs, shapes, shape, perm, where, is_output):
        mx, slope, thr = (
            c.get("max_value"),
            float(c.get("negative_slope", 0.0) or 0.0),
            float(c.get("threshold", 0.0) or 0.0),
        )
        if thr != 0:
            raise ConversionError(f"{where}: threshold {thr} is not supported")
        if mx is None and slope == 0:
            return self._elementwise(name, ReLU(), srcs, shape, perm)
        if mx is not None and float(mx) == 6.0 and slope == 0:
            return self._elementwise(name, ReLU6(), srcs, shape, perm)
        if mx is None:
            return self._elementwise(name, LeakyReLU(slope), srcs, shape, perm)
        raise ConversionError(f"{where}: max_value {mx} with negative_slope {slope} is not supported")

    def _LeakyReLU(self, name, c, srcs, shapes, shape, perm, where, is_output):
        slope = c.get("negative_slope", c.get("alpha", 0.3))
        return self._elementwise(name, LeakyReLU(float(slope)), srcs, shape, perm)

    def _Activation(self, name, c, srcs, shapes, shape, perm, where, is_output):
        act = _activation_name(c.get("activation"), where)
        if act == "linear":
            self.alias[name] = srcs[0]
            return srcs[0]
        if act == "softmax":
            return self._act_or_softmax(name, act, srcs[0], shape, perm, where, is_output)
        return self._elementwise(name, _activation_layer(act, where), srcs, shape, perm)

    def _Softmax(self, name, c, srcs, shapes, shape, perm, where, is_output):
        return self._act_or_softmax(name, "softmax", srcs[0], shape, perm, where, is_output)


def _decode(v):
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def _history(arg, where):
    """Keras layer names of the tensors in an inbound node's argument."""
    if isinstance(arg, dict) and arg.get("class_name") == "__keras_tensor__":
        layer, node_index, tensor_index = arg["config"]["keras_history"]
        if node_index != 0 or tensor_index != 0:
            raise ConversionError(f"{where}: reads output {tensor_index} of call {node_index} of layer {layer!r}; "
                                  "shared layers and multi-output layers are not supported")
        return [layer]
    if isinstance(arg, list):
        return [n for a in arg for n in _history(a, where)]
    raise ConversionError(f"{where}: an inbound argument {arg!r} is not a tensor")


def _io_names(spec, what, label):
    """Names in ``input_layers``/``output_layers``: ``[name, 0, 0]`` or a list of them; exactly one."""
    if spec and isinstance(spec[0], str):
        spec = [spec]
    if len(spec) != 1:
        raise ConversionError(f"{label}: the model has {len(spec)} {what}s; only models with one are supported")
    return spec[0][0]


def from_keras(path, input_shape=None):
    """Read a Keras 3 ``.keras`` file into an xattr model, without TensorFlow (``pip install 'xattr-ref[keras]'``).

    Parameters
    ----------
    path : str or os.PathLike
        A ``.keras`` archive written by Keras 3 (``model.save("m.keras")``).
    input_shape : (H, W), optional
        The images' height and width, when the file leaves them open (``keras.Input((None, None, 3))``) and a
        layer needs them (TensorFlow's "same" padding at stride > 1, Flatten).

    Returns
    -------
    xattr.nn.Sequential (when the layers form a chain) or xattr.nn.Graph
        float64 weights; node names are the Keras layer names (see the module docstring for fused activations).
        The model reads images ``(N, C, H, W)``; its output is the Keras output before a final softmax.

    Raises
    ------
    ConversionError
        Naming the layer (and what is not supported about it), or what is wrong with the file.
    """
    config, weights, label = _open(path)
    with weights:
        cls = config.get("class_name")
        cfg = config.get("config", {})
        if cls not in ("Sequential", "Functional", "Model"):
            raise ConversionError(f"{label}: the model is a {cls!r}; only Sequential and Functional models are read")
        layer_cfgs = cfg.get("layers") or []
        if not layer_cfgs:
            raise ConversionError(f"{label}: the model has no layers")
        functional = cls != "Sequential"
        b = _Builder(weights, label)
        b.index_weights(layer_cfgs, functional)
        first = layer_cfgs[0]
        if first["class_name"] == "InputLayer":
            batch_shape = first["config"].get("batch_shape") or first["config"].get("batch_input_shape")
        else:
            batch_shape = (cfg.get("build_input_shape") or first.get("build_config", {}).get("input_shape"))
        if not batch_shape or len(batch_shape) not in (2, 4):
            raise ConversionError(
                f"{label}: cannot find the input shape (N, H, W, C) of the model, got {batch_shape!r}"
            )
        shape = tuple(batch_shape[1:])
        if input_shape is not None:
            if len(shape) != 3 or len(tuple(input_shape)) != 2:
                raise ConversionError(f"{label}: input_shape must be (H, W) for an image model, got {input_shape!r}")
            for given, stored in zip(input_shape, shape[:2]):
                if stored is not None and stored != given:
                    raise ConversionError(f"{label}: input_shape {tuple(input_shape)} contradicts the file's "
                                          f"{shape[:2]}")
            shape = tuple(int(v) for v in input_shape) + shape[2:]
        b.input_info = (shape, None)
        if functional:
            in_name = _io_names(cfg.get("input_layers", []), "input", label)
            out_name = _io_names(cfg.get("output_layers", []), "output", label)
            b.alias[in_name] = INPUT
            for lc in layer_cfgs:
                name = lc["config"].get("name", lc.get("name"))
                if lc["class_name"] == "InputLayer":
                    if name != in_name:
                        raise ConversionError(f"{label}: a second input layer {name!r}; only one input is supported")
                    continue
                nodes = lc.get("inbound_nodes", [])
                where = f"{label}: layer {name!r} ({lc['class_name']})"
                if len(nodes) != 1:
                    raise ConversionError(f"{where} is called {len(nodes)} times; shared (or unused) layers are not "
                                          "supported")
                args = nodes[0].get("args", [])
                inputs = [n for a in args for n in _history(a, where)]
                missing = [i for i in inputs if i not in b.alias]
                if missing:
                    raise ConversionError(f"{where} reads {missing}, which are not defined before it")
                b.convert(lc, inputs, name == out_name)
            out = b.alias[out_name]
        else:
            body = [lc for lc in layer_cfgs if lc["class_name"] != "InputLayer"]
            if not body:
                raise ConversionError(f"{label}: the model has no layers after its input")
            b.alias["__input__"] = INPUT
            prev_key = "__input__"
            for k, lc in enumerate(body):
                name = lc["config"]["name"]
                b.convert(lc, [prev_key], k == len(body) - 1)
                prev_key = name
            out = b.alias[prev_key]
        if out == INPUT:
            raise ConversionError(f"{label}: the model computes nothing (its output is its input)")
        if b.info[out][1] is not None:
            raise ConversionError(f"{label}: the model's output is a Flatten of a channels-last map, whose order "
                                  "differs from xattr's (N, C, H, W) flatten")
        triples = _needed(b.triples, out)
    chain = all(t[2] == (triples[k - 1][0] if k else INPUT) for k, t in enumerate(triples))
    if chain:
        return Sequential(*[(n, layer) for n, layer, _ in triples])
    return Graph(triples, output=out)


def _needed(triples, out):
    """The nodes the output depends on (aliases may leave a pre-activation node unused, never a computed one)."""
    inputs = {n: (ins if isinstance(ins, tuple) else (ins,)) for n, _, ins in triples}
    keep, stack = set(), [out]
    while stack:
        n = stack.pop()
        if n in keep or n == INPUT:
            continue
        keep.add(n)
        stack.extend(inputs[n])
    unused = [n for n, _, _ in triples if n not in keep]
    if unused:
        raise ConversionError(f"layer(s) {unused} do not lead to the model's output")
    return [t for t in triples if t[0] in keep]
