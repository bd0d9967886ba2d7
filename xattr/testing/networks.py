"""Small reference graphs built with ``xattr.nn`` alone: a ResNet, a DenseNet block, a MobileNet-style block.

For tests, notebooks and peer comparisons: each follows its paper's block at toy width, with random
weights from ``rng`` and non-trivial batch-norm statistics, so every merge and every rule is exercised.

* :func:`small_resnet`: He et al. 2016, basic blocks ``conv-bn-relu-conv-bn (+ shortcut) -> relu``,
  one with an identity shortcut and one with a projection shortcut (1×1 conv stride 2 + bn), as
  torchvision's ``BasicBlock``.
* :func:`dense_block_net`: Huang et al. 2017, a dense block (each layer ``bn-relu-conv`` reads the
  concatenation of all earlier feature maps) and a transition (``bn-relu-conv 1×1-avgpool``).
* :func:`inverted_residual_net`: Sandler et al. 2018 (MobileNetV2), an inverted residual block
  ``1×1 expand-bn-relu, 3×3 conv-bn-relu, 1×1 project-bn`` with the residual add; the 3×3 conv is a
  full conv here (a depthwise conv is ``Conv2D(groups=channels)`` where available).

Node names follow torchvision's (``layer1.0.conv1``, ``layer1.0.bn1``, ...).
"""
from __future__ import annotations

import numpy as np

from ..nn import Add, AvgPool2D, BatchNorm2D, Concat, Conv2D, Dense, GlobalAvgPool2D, Graph, MaxPool2D, ReLU

__all__ = ["small_resnet", "dense_block_net", "inverted_residual_net", "randomize_batchnorm"]


def randomize_batchnorm(bn, gen):
    """Non-trivial running statistics and affine parameters (a freshly built batch-norm is the identity).

    Parameters
    ----------
    bn : BatchNorm2D
        Changed in place.
    gen : numpy.random.Generator

    Returns
    -------
    BatchNorm2D
        ``bn``.
    """
    c = bn.num_features
    bn.weight = gen.uniform(0.5, 1.5, c)
    bn.bias = gen.normal(0.0, 0.1, c)
    bn.running_mean = gen.normal(0.0, 0.1, c)
    bn.running_var = gen.uniform(0.5, 2.0, c)
    return bn


class _Builder:
    def __init__(self, rng, bias_scale):
        self.gen = np.random.default_rng(rng)
        self.bias_scale = bias_scale
        self.triples = []

    def add(self, name, layer, inputs):
        self.triples.append((name, layer, inputs))
        return name

    def conv(self, name, src, cin, cout, k, stride=1, padding=None, bias=False):
        layer = Conv2D(cin, cout, k, stride=stride, padding=k // 2 if padding is None else padding, bias=bias,
                       rng=self.gen)
        if bias:
            layer.bias = self.gen.normal(0.0, self.bias_scale, cout)
        return self.add(name, layer, src)

    def bn(self, name, src, c):
        return self.add(name, randomize_batchnorm(BatchNorm2D(c), self.gen), src)

    def head(self, src, c, classes):
        self.add("avgpool", GlobalAvgPool2D(), src)
        fc = Dense(c, classes, rng=self.gen)
        fc.bias = self.gen.normal(0.0, self.bias_scale, classes)
        self.add("fc", fc, "avgpool")
        return Graph(self.triples, output="fc")


def small_resnet(in_channels=3, classes=5, width=4, rng=0, bias_scale=0.1, maxpool=True):
    """A two-block ResNet (He et al. 2016): stem ``conv1-bn1-relu[-maxpool]``, ``layer1.0`` (identity
    shortcut), ``layer2.0`` (projection shortcut ``downsample.0/1``, stride 2), GAP, ``fc``.

    ``maxpool``: True for torchvision's ``MaxPool2D(3, stride=2, padding=1)``, False for none, or a
    ``(kernel, stride, padding)`` triple.  Input ``(N, in_channels, H, W)`` with ``H, W >= 8``; output ``(N, classes)``.

    Parameters
    ----------
    in_channels, classes, width : int
    rng : numpy.random.Generator or int
    bias_scale : float
    maxpool : bool or (int, int, int)

    Returns
    -------
    Graph
    """
    b = _Builder(rng, bias_scale)
    x = b.conv("conv1", "input", in_channels, width, 3)
    x = b.bn("bn1", x, width)
    x = b.add("relu", ReLU(), x)
    if maxpool:
        k, st, p = (3, 2, 1) if maxpool is True else maxpool
        x = b.add("maxpool", MaxPool2D(k, stride=st, padding=p), x)
    for layer, (cin, cout, stride) in (("layer1.0", (width, width, 1)), ("layer2.0", (width, 2 * width, 2))):
        y = b.conv(f"{layer}.conv1", x, cin, cout, 3, stride=stride)
        y = b.bn(f"{layer}.bn1", y, cout)
        y = b.add(f"{layer}.relu1", ReLU(), y)
        y = b.conv(f"{layer}.conv2", y, cout, cout, 3)
        y = b.bn(f"{layer}.bn2", y, cout)
        short = x
        if stride != 1 or cin != cout:
            short = b.conv(f"{layer}.downsample.0", x, cin, cout, 1, stride=stride, padding=0)
            short = b.bn(f"{layer}.downsample.1", short, cout)
        y = b.add(f"{layer}.add", Add(), (y, short))
        x = b.add(f"{layer}.relu2", ReLU(), y)
    return b.head(x, 2 * width, classes)


def dense_block_net(in_channels=3, classes=5, growth=3, layers=3, rng=0, bias_scale=0.1, maxpool=None):
    """A DenseNet block (Huang et al. 2017): stem conv (``maxpool``: an optional ``(kernel, stride, padding)``
    max-pool after a ReLU, as torchvision's ``pool0``), ``layers`` dense layers ``bn-relu-conv 3×3`` each reading
    the concatenation of everything before it, a transition ``bn-relu-conv 1×1-avgpool 2``, GAP, ``fc``.

    Parameters
    ----------
    in_channels, classes, growth, layers : int
    rng : numpy.random.Generator or int
    bias_scale : float
    maxpool : (int, int, int), optional

    Returns
    -------
    Graph
    """
    b = _Builder(rng, bias_scale)
    c0 = 2 * growth
    stem = b.conv("conv0", "input", in_channels, c0, 3)
    if maxpool:
        stem = b.add("relu0", ReLU(), stem)
        k, st, p = maxpool
        stem = b.add("pool0", MaxPool2D(k, stride=st, padding=p), stem)
    feats = [stem]
    c = c0
    for k in range(1, layers + 1):
        src = feats[0] if len(feats) == 1 else b.add(f"block.cat{k}", Concat(), tuple(feats))
        y = b.bn(f"block.layer{k}.norm", src, c)
        y = b.add(f"block.layer{k}.relu", ReLU(), y)
        feats.append(b.conv(f"block.layer{k}.conv", y, c, growth, 3))
        c += growth
    y = b.add("block.out", Concat(), tuple(feats))
    y = b.bn("transition.norm", y, c)
    y = b.add("transition.relu", ReLU(), y)
    y = b.conv("transition.conv", y, c, c // 2, 1, padding=0, bias=True)
    y = b.add("transition.pool", AvgPool2D(2), y)
    return b.head(y, c // 2, classes)


def inverted_residual_net(in_channels=3, classes=5, width=4, expansion=3, rng=0, bias_scale=0.1):
    """A MobileNetV2 block (Sandler et al. 2018): stem ``conv-bn-relu``, one inverted residual
    ``1×1 expand-bn-relu, 3×3 conv-bn-relu, 1×1 project-bn, + input``, GAP, ``fc``.

    Parameters
    ----------
    in_channels, classes, width, expansion : int
    rng : numpy.random.Generator or int
    bias_scale : float

    Returns
    -------
    Graph
    """
    b = _Builder(rng, bias_scale)
    x = b.conv("features.0.conv", "input", in_channels, width, 3)
    x = b.bn("features.0.bn", x, width)
    x = b.add("features.0.relu", ReLU(), x)
    hidden = width * expansion
    y = b.conv("features.1.expand", x, width, hidden, 1, padding=0)
    y = b.bn("features.1.expand_bn", y, hidden)
    y = b.add("features.1.expand_relu", ReLU(), y)
    y = b.conv("features.1.conv", y, hidden, hidden, 3)
    y = b.bn("features.1.bn", y, hidden)
    y = b.add("features.1.relu", ReLU(), y)
    y = b.conv("features.1.project", y, hidden, width, 1, padding=0)
    y = b.bn("features.1.project_bn", y, width)
    y = b.add("features.1.add", Add(), (y, x))
    return b.head(y, width, classes)
