"""The conformance models: tiny CNNs described without xattr, so that any framework can build them.

A model is a :class:`ModelSpec`: an input shape, a class count and a list of layers, each a
dict with a ``type`` (PyTorch's names: ``Conv2d``, ``ReLU``, ``MaxPool2d``, ``AvgPool2d``,
``GlobalAvgPool2d``, ``Flatten``, ``Linear``, ``BatchNorm2d``), its hyper-parameters and its
float64 arrays (``weight`` ``(O, I, kH, kW)`` / ``(out, in)``, ``bias``, ``running_mean``,
``running_var``).  Semantics, stated once:

* convolution is cross-correlation with symmetric zero padding ``(ph, pw)``; pooling is in
  floor mode; max-pool pads with ``-inf``; average pool counts padded zeros in the divisor;
* ``GlobalAvgPool2d`` maps ``(N, C, H, W) -> (N, C)`` (PyTorch: ``AdaptiveAvgPool2d(1)`` then
  ``Flatten``); batch-norm is at inference: ``(x - mean) / sqrt(var + eps) * weight + bias``;
* ``ReLU'(0) = 0``; max-pool ties send the signal to the first maximum in row-major window order.

:func:`build_models` makes the fixed set from fixed seeds; ``to_xattr()``, ``to_torch()`` (needs
torch) and ``to_onnx()`` (needs onnx; any ONNX runtime can then run the model) build runnable models.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ARRAY_KEYS = ("weight", "bias", "running_mean", "running_var")


@dataclass
class ModelSpec:
    """A framework-neutral sequential CNN (see the module docstring for the layer semantics)."""

    name: str
    input_shape: tuple
    num_classes: int
    layers: list = field(default_factory=list)
    description: str = ""

    # -- serialisation: hyper-parameters to JSON, arrays to an npz ---------------------------
    def to_json(self):
        layers = [{k: v for k, v in layer.items() if k not in ARRAY_KEYS} for layer in self.layers]
        return {"name": self.name, "input_shape": list(self.input_shape), "num_classes": self.num_classes,
                "description": self.description, "layers": layers}

    def arrays(self):
        """``{"<layer name>.<array>": ndarray}`` for every array of every layer."""
        return {f"{layer['name']}.{k}": np.asarray(layer[k]) for layer in self.layers for k in ARRAY_KEYS if k in layer}

    @classmethod
    def from_json(cls, meta, arrays):
        layers = []
        for layer in meta["layers"]:
            layer = dict(layer)
            for k in ARRAY_KEYS:
                key = f"{layer['name']}.{k}"
                if key in arrays:
                    layer[k] = np.array(arrays[key], dtype=np.float64)
            layers.append(layer)
        return cls(
            meta["name"], tuple(meta["input_shape"]), int(meta["num_classes"]), layers, meta.get("description", "")
        )

    # -- builders -----------------------------------------------------------------------------
    def to_xattr(self):
        """An :class:`xattr.nn.Sequential` with these weights (layer names kept)."""
        from .. import nn

        out = []
        for layer in self.layers:
            t = layer["type"]
            if t == "Conv2d":
                m = nn.Conv2D(layer["in_channels"], layer["out_channels"], layer["kernel_size"], stride=layer["stride"],
                              padding=layer["padding"], dilation=layer["dilation"], bias="bias" in layer)
            elif t == "Linear":
                m = nn.Dense(layer["in_features"], layer["out_features"], bias="bias" in layer)
            elif t == "ReLU":
                m = nn.ReLU()
            elif t == "MaxPool2d":
                m = nn.MaxPool2D(layer["kernel_size"], stride=layer["stride"], padding=layer["padding"])
            elif t == "AvgPool2d":
                m = nn.AvgPool2D(layer["kernel_size"], stride=layer["stride"], padding=layer["padding"])
            elif t == "GlobalAvgPool2d":
                m = nn.GlobalAvgPool2D()
            elif t == "Flatten":
                m = nn.Flatten()
            elif t == "BatchNorm2d":
                m = nn.BatchNorm2D(layer["num_features"], eps=layer["eps"])
                m.running_mean, m.running_var = layer["running_mean"], layer["running_var"]
            else:
                raise ValueError(f"unknown layer type {t!r} in conformance model {self.name!r}")
            for k in ("weight", "bias"):
                if k in layer:
                    setattr(m, k, layer[k])
            out.append((layer["name"], m))
        return nn.Sequential(*out)

    def to_torch(self):
        """A float64 ``torch.nn.Sequential`` in eval mode with these weights (needs torch)."""
        from collections import OrderedDict

        import torch

        tnn = torch.nn
        mods = OrderedDict()
        for layer in self.layers:
            t, name = layer["type"], layer["name"]
            if t == "Conv2d":
                m = tnn.Conv2d(layer["in_channels"], layer["out_channels"], tuple(layer["kernel_size"]),
                               stride=tuple(layer["stride"]), padding=tuple(layer["padding"]),
                               dilation=tuple(layer["dilation"]), bias="bias" in layer)
            elif t == "Linear":
                m = tnn.Linear(layer["in_features"], layer["out_features"], bias="bias" in layer)
            elif t == "ReLU":
                m = tnn.ReLU()
            elif t == "MaxPool2d":
                m = tnn.MaxPool2d(
                    tuple(layer["kernel_size"]), stride=tuple(layer["stride"]), padding=tuple(layer["padding"])
                )
            elif t == "AvgPool2d":
                m = tnn.AvgPool2d(
                    tuple(layer["kernel_size"]), stride=tuple(layer["stride"]), padding=tuple(layer["padding"])
                )
            elif t == "GlobalAvgPool2d":  # two torch modules; the second takes the name + "_flatten"
                mods[name] = tnn.AdaptiveAvgPool2d(1)
                name, m = name + "_flatten", tnn.Flatten()
            elif t == "Flatten":
                m = tnn.Flatten()
            elif t == "BatchNorm2d":
                m = tnn.BatchNorm2d(layer["num_features"], eps=layer["eps"])
            else:
                raise ValueError(f"unknown layer type {t!r} in conformance model {self.name!r}")
            mods[name] = m
        net = tnn.Sequential(mods).double().eval()
        with torch.no_grad():
            for layer in self.layers:
                m = getattr(net, layer["name"])
                for k in ARRAY_KEYS:
                    if k in layer:
                        getattr(m, k).copy_(torch.from_numpy(np.asarray(layer[k], dtype=np.float64)))
        return net

    def to_onnx(self, opset=17):
        """An ``onnx.ModelProto`` (float64, batch dimension free) computing this model (needs ``onnx``).

        Operators: Conv, Relu, MaxPool, AveragePool (``count_include_pad=1``), GlobalAveragePool +
        Flatten, Flatten, Gemm (``transB=1``), BatchNormalization; nodes are named after the layers.
        """
        import onnx
        from onnx import helper, numpy_helper

        nodes, inits, cur = [], [], "x"

        def init(name, arr):
            inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np.float64), name))
            return name

        for layer in self.layers:
            t, name = layer["type"], layer["name"]
            out = name + "_out"
            if t == "Conv2d":
                ins = [cur, init(name + ".weight", layer["weight"])] + (
                    [init(name + ".bias", layer["bias"])] if "bias" in layer else []
                )
                ph, pw = layer["padding"]
                nodes.append(
                    helper.make_node(
                        "Conv",
                        ins,
                        [out],
                        name=name,
                        kernel_shape=layer["kernel_size"],
                        strides=layer["stride"],
                        dilations=layer["dilation"],
                        pads=[ph, pw, ph, pw],
                    )
                )
            elif t == "Linear":
                ins = [cur, init(name + ".weight", layer["weight"])] + (
                    [init(name + ".bias", layer["bias"])] if "bias" in layer else []
                )
                nodes.append(helper.make_node("Gemm", ins, [out], name=name, transB=1))
            elif t == "ReLU":
                nodes.append(helper.make_node("Relu", [cur], [out], name=name))
            elif t in ("MaxPool2d", "AvgPool2d"):
                ph, pw = layer["padding"]
                extra = {"count_include_pad": 1} if t == "AvgPool2d" else {}
                nodes.append(helper.make_node("MaxPool" if t == "MaxPool2d" else "AveragePool", [cur], [out], name=name,
                                              kernel_shape=layer["kernel_size"], strides=layer["stride"],
                                              pads=[ph, pw, ph, pw], **extra))
            elif t == "GlobalAvgPool2d":
                nodes.append(helper.make_node("GlobalAveragePool", [cur], [name + "_4d"], name=name))
                nodes.append(helper.make_node("Flatten", [name + "_4d"], [out], name=name + "_flatten", axis=1))
            elif t == "Flatten":
                nodes.append(helper.make_node("Flatten", [cur], [out], name=name, axis=1))
            elif t == "BatchNorm2d":
                ins = [cur] + [init(f"{name}.{k}", layer[k]) for k in ("weight", "bias", "running_mean", "running_var")]
                nodes.append(helper.make_node("BatchNormalization", ins, [out], name=name, epsilon=layer["eps"]))
            else:
                raise ValueError(f"unknown layer type {t!r} in conformance model {self.name!r}")
            cur = out
        shape = [None] + list(self.input_shape[1:])
        graph = helper.make_graph(
            nodes, self.name, [helper.make_tensor_value_info("x", onnx.TensorProto.DOUBLE, shape)],
            [helper.make_tensor_value_info(cur, onnx.TensorProto.DOUBLE, [None, self.num_classes])], initializer=inits)
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="xattr.conformance"
        )
        onnx.checker.check_model(model)
        return model


# -- the fixed models ---------------------------------------------------------------------------
def _conv(name, rng, cin, cout, k, stride=1, padding=0, dilation=1, bias=True):
    layer = dict(name=name, type="Conv2d", in_channels=cin, out_channels=cout, kernel_size=[k, k], stride=[stride] * 2,
                 padding=[padding] * 2, dilation=[dilation] * 2)
    layer["weight"] = rng.normal(0.0, np.sqrt(2.0 / (cin * k * k)), (cout, cin, k, k))
    if bias:
        layer["bias"] = rng.normal(0.0, 0.1, cout)
    return layer


def _linear(name, rng, fin, fout, bias=True):
    layer = dict(name=name, type="Linear", in_features=fin, out_features=fout,
                 weight=rng.normal(0.0, np.sqrt(1.0 / fin), (fout, fin)))
    if bias:
        layer["bias"] = rng.normal(0.0, 0.1, fout)
    return layer


def _pool(name, kind, k, stride=None, padding=0):
    return dict(name=name, type=kind, kernel_size=[k, k], stride=[stride or k] * 2, padding=[padding] * 2)


def _bn(name, rng, c):
    return dict(
        name=name,
        type="BatchNorm2d",
        num_features=c,
        eps=1e-5,
        weight=rng.uniform(0.5, 1.5, c),
        bias=rng.normal(0.0, 0.1, c),
        running_mean=rng.normal(0.0, 0.2, c),
        running_var=rng.uniform(0.5, 1.5, c),
    )


def build_models():
    """The fixed conformance models, from fixed seeds: ``{name: ModelSpec}``."""
    r = np.random.default_rng(20240807)
    gap = ModelSpec("gap_cnn", (2, 3, 8, 8), 5, [
        _conv("conv1", r, 3, 4, 3, padding=1), {"name": "relu1", "type": "ReLU"}, _pool("pool1", "MaxPool2d", 2),
        _conv("conv2", r, 4, 6, 3, padding=1), {"name": "relu2", "type": "ReLU"},
        {"name": "gap", "type": "GlobalAvgPool2d"}, _linear("fc", r, 6, 5),
    ], "conv-relu-maxpool-conv-relu-GAP-linear: the CAM shape")
    r = np.random.default_rng(20240812)
    flat = ModelSpec("bn_flat_cnn", (2, 2, 8, 8), 3, [
        _conv("conv1", r, 2, 4, 3, padding=1), _bn("bn1", r, 4), {"name": "relu1", "type": "ReLU"},
        _pool("pool1", "AvgPool2d", 2), _conv("conv2", r, 4, 4, 3), {"name": "relu2", "type": "ReLU"},
        {"name": "flatten", "type": "Flatten"}, _linear("fc1", r, 16, 6), {"name": "relu3", "type": "ReLU"},
        _linear("fc2", r, 6, 3),
    ], "conv-batchnorm-relu-avgpool-conv-relu-flatten-linear-relu-linear")
    r = np.random.default_rng(20240816)
    ties = ModelSpec(
        "pool_first_ties",
        (2, 1, 8, 8),
        4,
        [
            _pool("pool0", "MaxPool2d", 2),
            _conv("conv1", r, 1, 3, 3, stride=2, padding=1),
            {"name": "relu1", "type": "ReLU"},
            _pool("pool1", "MaxPool2d", 3, stride=1, padding=1),
            _conv("conv2", r, 3, 4, 2, dilation=1, bias=False),
            {"name": "relu2", "type": "ReLU"},
            {"name": "gap", "type": "GlobalAvgPool2d"},
            _linear("fc", r, 4, 4),
        ],
        "max-pool straight on a quantised input (ties: first maximum wins), strided conv, overlapping padded max-pool",
    )
    return {m.name: m for m in (gap, flat, ties)}


def build_inputs(spec):
    """Fixed inputs and targets for a model: ``(x, target)``; the tie model's input is quantised."""
    rng = np.random.default_rng(_seed(spec.name))
    x = rng.normal(size=spec.input_shape)
    if spec.name == "pool_first_ties":
        x = np.round(x * 2) / 2  # values in steps of 0.5: many equal maxima in the 2x2 windows
    target = np.arange(spec.input_shape[0]) % spec.num_classes
    return x, target


def _seed(name):
    return sum((i + 1) * ord(c) for i, c in enumerate(name))  # stable across runs (str hash is salted)
