"""Small torch networks built from torchvision's own blocks, for the importer and zoo tests (not a test file).

Each is its architecture at toy width, in float64 and eval mode, with non-trivial batch-norm statistics and
biases, so that the importers meet the real blocks (torchvision's ``BasicBlock`` with its reused ReLU,
``InvertedResidual`` with a depthwise conv and ReLU6, ``_DenseBlock`` concatenating lists, ``SqueezeExcitation``
gating by ``scale * input``, ``StochasticDepth``) in a fraction of a second.
"""
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))
from benchmarks.zoo_table import randomise  # noqa: E402  (the zoo's recipe: batch-norms off the identity, biases)

#: (name, factory, input shape, Grad-CAM module path = the last conv block's output node)
NETS = []


def _finish(model, seed):
    return randomise(model.double().eval(), seed)


def _register(name, shape, cam):
    def deco(fn):
        NETS.append((name, fn, shape, cam))
        return fn

    return deco


@_register("resnet", (2, 3, 16, 16), "layer2.0.relu_1")
def small_resnet(seed=0):
    """torchvision's ResNet at width 4: stem conv-bn-relu-maxpool, BasicBlock (identity), BasicBlock (stride 2,
    1x1 projection), avgpool, torch.flatten, fc: the resnet18 graph in miniature."""
    from torchvision.models.resnet import BasicBlock

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(4)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
            self.layer1 = nn.Sequential(BasicBlock(4, 4))
            down = nn.Sequential(nn.Conv2d(4, 8, 1, stride=2, bias=False), nn.BatchNorm2d(8))
            self.layer2 = nn.Sequential(BasicBlock(4, 8, stride=2, downsample=down))
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(8, 5)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer2(self.layer1(x))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    torch.manual_seed(seed)
    return _finish(Net(), seed)


@_register("mobilenet_v2", (2, 3, 16, 16), "features.3.2")
def small_mobilenet_v2(seed=0):
    """torchvision's MobileNetV2 blocks at width 8: Conv2dNormActivation (ReLU6), InvertedResidual with and
    without the residual, depthwise 3x3 convs, F.adaptive_avg_pool2d, torch.flatten, dropout, linear."""
    from torchvision.models.mobilenetv2 import InvertedResidual
    from torchvision.ops.misc import Conv2dNormActivation

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                Conv2dNormActivation(3, 8, stride=2, activation_layer=nn.ReLU6),
                InvertedResidual(8, 8, 1, 2),
                InvertedResidual(8, 12, 2, 3),
                Conv2dNormActivation(12, 16, kernel_size=1, activation_layer=nn.ReLU6),
            )
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(16, 5))

        def forward(self, x):
            x = self.features(x)
            x = F.adaptive_avg_pool2d(x, (1, 1))
            return self.classifier(torch.flatten(x, 1))

    torch.manual_seed(seed)
    return _finish(Net(), seed)


@_register("densenet", (2, 3, 16, 16), "features.norm5")
def small_densenet(seed=0):
    """torchvision's DenseNet blocks: stem conv-bn-relu-pool, _DenseBlock (2 layers, bn-relu-conv1x1-bn-relu-conv3x3
    on the concatenated list), _Transition (bn-relu-conv-avgpool), a second block, norm5, F.relu, pool, linear."""
    from torchvision.models.densenet import _DenseBlock, _Transition

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential()
            self.features.add_module("conv0", nn.Conv2d(3, 8, 3, padding=1, bias=False))
            self.features.add_module("norm0", nn.BatchNorm2d(8))
            self.features.add_module("relu0", nn.ReLU(inplace=True))
            self.features.add_module("pool0", nn.MaxPool2d(3, stride=2, padding=1))
            self.features.add_module("denseblock1", _DenseBlock(2, 8, bn_size=2, growth_rate=4, drop_rate=0))
            self.features.add_module("transition1", _Transition(16, 8))
            self.features.add_module("denseblock2", _DenseBlock(2, 8, bn_size=2, growth_rate=4, drop_rate=0))
            self.features.add_module("norm5", nn.BatchNorm2d(16))
            self.classifier = nn.Linear(16, 5)

        def forward(self, x):
            out = F.relu(self.features(x), inplace=True)
            out = torch.flatten(F.adaptive_avg_pool2d(out, (1, 1)), 1)
            return self.classifier(out)

    torch.manual_seed(seed)
    return _finish(Net(), seed)


@_register("se", (2, 3, 16, 16), "block.2.1")
def small_se_net(seed=0):
    """MobileNetV3/EfficientNet pieces: Hardswish and SiLU convs, torchvision's SqueezeExcitation (adaptive pool
    (N, C, 1, 1) -> 1x1 convs -> Hardsigmoid, ``scale * input``), StochasticDepth and ``+=`` on a residual."""
    from torchvision.ops import SqueezeExcitation, StochasticDepth
    from torchvision.ops.misc import Conv2dNormActivation

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = Conv2dNormActivation(3, 8, stride=2, activation_layer=nn.Hardswish)
            self.block = nn.Sequential(
                Conv2dNormActivation(8, 8, groups=8, activation_layer=nn.SiLU),
                SqueezeExcitation(8, 4, scale_activation=nn.Hardsigmoid),
                Conv2dNormActivation(8, 8, kernel_size=1, activation_layer=None),
            )
            self.stochastic_depth = StochasticDepth(0.2, "row")
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Sequential(nn.Linear(8, 6), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(6, 5))

        def forward(self, x):
            x = self.stem(x)
            y = self.stochastic_depth(self.block(x))
            y += x
            return self.classifier(torch.flatten(self.avgpool(y), 1))

    torch.manual_seed(seed)
    return _finish(Net(), seed)


@_register("functional", (2, 3, 8, 8), "cat")
def functional_net(seed=0):
    """The functional forms: F.relu/relu6/leaky_relu/sigmoid/gelu/softplus/hardswish/tanh, torch.clamp, torch.add
    and +, torch.cat, x * sigmoid(x), F.conv2d and F.linear on the module's own parameters, F.max_pool2d/avg_pool2d,
    view(x.size(0), -1), x.mean((2, 3)), a reused module."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.branch = nn.Conv2d(3, 4, 1)
            self.act = nn.PReLU(4)
            self.w = nn.Parameter(torch.randn(4, 8, 3, 3) * 0.3)
            self.b = nn.Parameter(torch.randn(4) * 0.1)
            self.fc_w = nn.Parameter(torch.randn(5, 4 * 4 * 4) * 0.2)
            self.head = nn.Linear(4, 5)

        def forward(self, x):
            a = F.leaky_relu(self.conv(x), 0.1)
            b = torch.clamp(self.branch(x), -1.0, 2.0)
            y = torch.cat([self.act(a), F.gelu(b)], dim=1)
            y = F.relu6(y * torch.sigmoid(y))
            z = F.conv2d(y, self.w, self.b, padding=1)
            z = torch.add(F.softplus(z), F.hardswish(z)) + torch.tanh(self.act(z))
            z = F.avg_pool2d(F.max_pool2d(z, 2, stride=1, padding=1), 2)
            return F.linear(z.view(z.size(0), -1), self.fc_w) + self.head(z.mean((2, 3)))

    torch.manual_seed(seed)
    return _finish(Net(), seed)
