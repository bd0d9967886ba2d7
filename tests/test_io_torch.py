"""xattr.io.from_torch: torch.fx graphs of torch models -> xattr graphs; round trips, names, every refusal path.

Oracle: torch itself (the float64 module) — scores and input gradients agree to 1e-10 relative (float64
round-off through up to ~50 layers); for the zoo's layers (AdaptiveAvgPool2D, Pad2D, ceil-mode pools), the
test checks the round trip when ``xattr.nn`` has the layer and the clear refusal naming
it when it does not.
"""
import sys
import warnings
from collections import OrderedDict

import numpy as np
import pytest

import xattr
from xattr.io import ConversionError, from_torch

from extras import need  # tests/extras.py: optional packages of the test suite

torch = need("torch", reason="torch is an optional extra: pip install 'xattr-ref[torch]'")
nn = torch.nn
F = torch.nn.functional

import torch_zoo  # noqa: E402

pytestmark = pytest.mark.oracle
HAS_ADAPTIVE = hasattr(xattr.nn, "AdaptiveAvgPool2D")
HAS_PAD = hasattr(xattr.nn, "Pad2D")
HAS_CEIL = "ceil_mode" in __import__("inspect").signature(xattr.nn.MaxPool2D.__init__).parameters


def assert_round_trip(module, model, x, targets=(0,)):
    """Scores and the input gradient of each target against torch (float64), to 1e-10 of the largest value."""
    xt = torch.from_numpy(x).requires_grad_(True)
    out = module(xt)
    ref = out.detach().numpy()
    scores = model.forward(x)
    assert scores.dtype == np.float64
    np.testing.assert_allclose(scores, ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())
    for t in targets:
        (g,) = torch.autograd.grad(out[:, t].sum(), xt, retain_graph=True)
        ours = xattr.gradient(model, x, target=t)
        np.testing.assert_allclose(ours, g.numpy(), rtol=1e-10, atol=1e-10 * np.abs(g.numpy()).max())


def _sequentials():
    """(name, module factory, input shape): the chain layers and settings of the Sequential importer."""
    return [
        ("conv-pool-gap", lambda: nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5)),
         (2, 3, 8, 8)),
        ("bn-avg-dropout", lambda: nn.Sequential(
            nn.Conv2d(2, 4, 3, stride=2, padding=(1, 0), bias=False), nn.BatchNorm2d(4), nn.ReLU(),
            nn.AvgPool2d(3, stride=1, padding=1), nn.Dropout(0.3), nn.Conv2d(4, 3, 2, dilation=2), nn.ReLU(),
            nn.Flatten(), nn.Linear(3 * 3 * 1, 4)),
         (3, 2, 9, 8)),
        ("same-overlap-pool-nested", lambda: nn.Sequential(OrderedDict([
            ("features", nn.Sequential(nn.Conv2d(1, 3, (3, 2), padding="same"), nn.ReLU(),
                                       nn.MaxPool2d(3, stride=2, padding=1), nn.Dropout2d(0.1), nn.Identity())),
            ("pool", nn.AdaptiveAvgPool2d((1, 1))),
            ("head", nn.Sequential(nn.Flatten(), nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2, bias=False))),
        ])), (2, 1, 7, 6)),
        ("zoo-activations", lambda: nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1, groups=3), nn.ReLU6(), nn.Conv2d(6, 6, 3, padding=1, groups=6),
            nn.Hardswish(), nn.Conv2d(6, 4, 1), nn.LeakyReLU(0.2), nn.Conv2d(4, 4, 3), nn.PReLU(4),
            nn.Conv2d(4, 4, 1), nn.SiLU(), nn.Conv2d(4, 4, 1), nn.GELU(), nn.Conv2d(4, 4, 1), nn.Hardtanh(-0.5, 2.0),
            nn.Conv2d(4, 4, 1), nn.Softplus(beta=2.0), nn.Conv2d(4, 4, 1), nn.Tanh(), nn.Conv2d(4, 4, 1),
            nn.Sigmoid(), nn.Flatten(), nn.Linear(4 * 4 * 4, 6), nn.Hardswish(), nn.Linear(6, 3)),
         (2, 3, 6, 6)),
    ]


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("arch", range(4), ids=[a[0] for a in _sequentials()])
def test_sequential_round_trip_returns_a_sequential(arch):
    name, make, shape = _sequentials()[arch]
    torch.manual_seed(arch)
    module = torch_zoo.randomise(make().double().eval(), arch)
    model = from_torch(module)
    assert isinstance(model, xattr.nn.Sequential)
    assert_round_trip(module, model, np.random.default_rng(arch).normal(size=shape), targets=(0, 1))


@pytest.mark.parametrize("net", range(len(torch_zoo.NETS)), ids=[n[0] for n in torch_zoo.NETS])
def test_zoo_blocks_round_trip(net):
    """torchvision's blocks (BasicBlock, InvertedResidual, _DenseBlock, SqueezeExcitation, StochasticDepth) and
    the functional forms, as graphs: scores and gradients against torch."""
    name, make, shape, cam = torch_zoo.NETS[net]
    module = make()
    if name == "se" and not HAS_ADAPTIVE:
        with pytest.raises(ConversionError, match=r"'block.1.avgpool'.*AdaptiveAvgPool2d.*misc.py:\d+.*"
                                                  r"needs xattr.nn.AdaptiveAvgPool2D"):
            from_torch(module)
        return
    model = from_torch(module)
    assert isinstance(model, xattr.nn.Graph) and not isinstance(model, xattr.nn.Sequential)
    assert cam in model
    assert_round_trip(module, model, np.random.default_rng(net).normal(size=shape), targets=(0, 3))


def test_real_torchvision_resnet18_and_mobilenet_v2_at_32x32():
    tv = need("torchvision")
    for seed, make in enumerate((tv.models.resnet18, tv.models.mobilenet_v2)):
        torch.manual_seed(seed)
        module = torch_zoo.randomise(make(weights=None).double().eval(), seed)
        model = from_torch(module)
        x = np.random.default_rng(seed).normal(size=(1, 3, 32, 32))
        assert_round_trip(module, model, x, targets=(7,))
    assert model["features.18.0"].kernel_size == (1, 1) and model["features.17.conv.1.0"].groups == 960


def test_real_torchvision_squeezenet_at_its_smallest_input():
    """SqueezeNet 1.1 pools with ceil_mode=True (a layer setting of the zoo's max-pool)."""
    tv = need("torchvision")
    torch.manual_seed(0)
    module = tv.models.squeezenet1_1(weights=None).double().eval()
    if not HAS_CEIL:
        with pytest.raises(ConversionError, match=r"'features.2' \(MaxPool2d\).*ceil_mode=True needs "
                                                  r"xattr.nn.MaxPool2D\(ceil_mode=...\)"):
            from_torch(module)
        return
    model = from_torch(module)
    assert_round_trip(module, model, np.random.default_rng(0).normal(size=(1, 3, 17, 17)), targets=(3,))


def test_names_follow_module_paths_reuses_and_fx_names():
    module = torch_zoo.small_resnet()
    model = from_torch(module)
    # a module called twice (BasicBlock's relu) gives path and path_1; functions take fx's names
    assert model.order == [
        "conv1", "bn1", "relu", "maxpool", "layer1.0.conv1", "layer1.0.bn1", "layer1.0.relu", "layer1.0.conv2",
        "layer1.0.bn2", "add", "layer1.0.relu_1", "layer2.0.conv1", "layer2.0.bn1", "layer2.0.relu", "layer2.0.conv2",
        "layer2.0.bn2", "layer2.0.downsample.0", "layer2.0.downsample.1", "add_1", "layer2.0.relu_1", "avgpool",
        "flatten", "fc"]
    assert model.inputs_of("add") == ("layer1.0.bn2", "maxpool")
    assert isinstance(model["avgpool"], xattr.nn.GlobalAvgPool2D)  # read only by a flatten: the CAM head
    assert isinstance(model["layer1.0.bn1"], xattr.nn.BatchNorm2D)  # kept, named as in torch
    seq = from_torch(_sequentials()[2][1]().eval())
    assert seq.order == ["features.0", "features.1", "features.2", "features.3", "pool", "head.0", "head.1",
                         "head.2", "head.3"]  # nested Sequentials flattened, Identity bypassed


def test_float32_weights_become_float64_copies():
    module = _sequentials()[2][1]().eval()  # float32 torch weights
    model = from_torch(module)
    conv = model["features.0"]
    assert conv.weight.dtype == np.float64 and conv.padding == "same"
    np.testing.assert_array_equal(conv.weight, module[0][0].weight.detach().numpy().astype(np.float64))
    with torch.no_grad():
        module[0][0].weight.zero_()  # a copy: later changes to the torch model do not leak in
    assert np.abs(conv.weight).max() > 0
    half = nn.Sequential(nn.Flatten(), nn.Linear(4, 2)).to(torch.bfloat16)
    assert from_torch(half)["1"].weight.dtype == np.float64


def test_fold_folds_batchnorm_into_the_conv_before_it():
    module = torch_zoo.small_densenet()
    kept, folded = from_torch(module), from_torch(module, fold=True)
    bns = [n for n in kept.order if isinstance(kept[n], xattr.nn.BatchNorm2D)]
    left = [n for n in folded.order if isinstance(folded[n], xattr.nn.BatchNorm2D)]
    # DenseNet's bn-relu-conv: only norm0 (after conv0) and the bottleneck's norm2 (after conv1) follow a conv
    assert "features.norm0" not in folded and "features.denseblock1.denselayer1.norm2" not in folded
    assert len(left) == len(bns) - 5 and "features.denseblock1.denselayer1.norm1" in left
    x = np.random.default_rng(0).normal(size=(2, 3, 16, 16))
    np.testing.assert_allclose(folded.forward(x), kept.forward(x), rtol=1e-12, atol=1e-12)


def test_training_mode_is_converted_as_eval_with_a_warning_and_restored():
    module = torch_zoo.small_resnet().train()
    module.layer1.eval()  # a mixed state is restored as it was
    with pytest.warns(UserWarning, match="training mode; it is converted as in eval"):
        model = from_torch(module)
    assert module.training and module.layer2.training and not module.layer1.training
    x = np.random.default_rng(0).normal(size=(2, 3, 16, 16))
    module.eval()
    with torch.no_grad():
        np.testing.assert_allclose(model.forward(x), module(torch.from_numpy(x)).numpy(), rtol=1e-10, atol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a chain of layers whose forward ignores the mode: no warning
        from_torch(nn.Sequential(nn.Conv2d(1, 1, 1), nn.Flatten()))


def test_final_softmax_is_dropped_with_a_warning():
    module = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.Softmax(dim=1)).double()
    with pytest.warns(UserWarning, match="final Softmax '2' was dropped"):
        model = from_torch(module)
    x = np.random.default_rng(0).normal(size=(2, 1, 2, 2))
    np.testing.assert_allclose(model.forward(x), module[:2](torch.from_numpy(x)).detach().numpy(), rtol=1e-12)

    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            return F.softmax(self.fc(x.flatten(1)), dim=-1)

    with pytest.warns(UserWarning, match="final Softmax 'softmax' was dropped"):
        assert from_torch(Functional().eval()).order == ["flatten", "fc"]


def test_pending_layers_convert_or_are_named():
    """AdaptiveAvgPool2d(7) (VGG), ZeroPad2d, ceil-mode pooling: converted when xattr.nn has the layer, else
    refused naming the module and the missing layer."""
    cases = [
        (nn.Sequential(nn.Conv2d(2, 3, 3), nn.AdaptiveAvgPool2d(3), nn.Flatten(), nn.Linear(27, 2)), (1, 2, 9, 7),
         HAS_ADAPTIVE, 1, "AdaptiveAvgPool2D"),
        (nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(2, 3, 3, stride=2), nn.Flatten()), (1, 2, 6, 6),
         HAS_PAD, 0, "Pad2D"),
        (nn.Sequential(nn.Conv2d(2, 3, 1), nn.AvgPool2d(2, ceil_mode=True), nn.Flatten()), (1, 2, 5, 5),
         HAS_CEIL, 1, r"AvgPool2D\(ceil_mode"),
        (nn.Sequential(nn.Conv2d(2, 3, 1), nn.AdaptiveMaxPool2d((2, 3)), nn.Flatten()), (1, 2, 5, 7),
         HAS_ADAPTIVE, 1, "AdaptiveMaxPool2D"),
    ]
    for k, (module, shape, present, where, layer) in enumerate(cases):
        module = torch_zoo.randomise(module.double().eval(), k)
        if present:
            assert_round_trip(module, from_torch(module), np.random.default_rng(k).normal(size=shape))
        else:
            with pytest.raises(
                ConversionError, match=rf"fx node '_{where}' \(module '{where}' .*needs xattr.nn.{layer}"
            ):
                from_torch(module)


# -- refusals -------------------------------------------------------------------------------------------
class _Sin(nn.Module):
    def forward(self, x):
        return torch.sin(x).flatten(1)


class _Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)

    def forward(self, x):
        if x.sum() > 0:  # control flow on a tensor's value
            return self.conv(x).flatten(1)
        return x.flatten(1)


class _TwoInputs(nn.Module):
    def forward(self, x, y):
        return (x + y).flatten(1)


class _ScalarAdd(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)

    def forward(self, x):
        return (self.conv(x) + 3).flatten(1)


class _RandomDropout(nn.Module):
    def forward(self, x):
        return F.dropout(x, 0.5).flatten(1)  # training=True by default: random at inference


def test_hardsigmoid_gradient_differs_from_torch_by_its_float32_one_sixth():
    """Pinned torch quirk: ``hardsigmoid_backward`` multiplies by ``1.0f / 6.0f`` (a float32 constant) even in
    float64, so torch's gradient is 0.16666667163 where xattr's (exact) is 1/6: a relative difference of 3e-8
    (MobileNetV3's gates).  The forward is exact in both."""
    module = nn.Sequential(nn.Conv2d(2, 3, 1), nn.Hardsigmoid(), nn.Flatten(), nn.Linear(3 * 16, 2)).double().eval()
    x = np.random.default_rng(0).normal(size=(2, 2, 4, 4))
    xt = torch.from_numpy(x).requires_grad_(True)
    module(xt)[:, 0].sum().backward()
    model = from_torch(module)
    ours = xattr.gradient(model, x, target=0)
    np.testing.assert_allclose(ours * float(np.float32(1 / 6)) * 6, xt.grad.numpy(), rtol=1e-13, atol=1e-17)
    assert 1e-8 < np.abs(ours - xt.grad.numpy()).max() / np.abs(ours).max() < 1e-7


def _refused():
    """(module, regex the message must match): each names the fx node, the operation and, where fx recorded
    it, the source line (this file)."""
    bn_nostats = nn.BatchNorm2d(2, track_running_stats=False).eval()
    here = r"test_io_torch.py:\d+"
    return [
        (nn.Sequential(nn.ELU(), nn.Flatten()), r"fx node '_0' \(module '0' \(ELU\)\).*unsupported module type "
                                                r"torch.nn.modules.activation.ELU"),
        (_Sin(), rf"fx node 'sin' \(torch.sin\) at {here}: return torch.sin\(x\).flatten\(1\): unsupported function"),
        (_Branchy(), rf"_Branchy: its forward has control flow that depends on the input's values.*at {here}: "
                     r"if x.sum\(\) > 0"),
        (_TwoInputs(), r"fx node 'y'.*more than one input"),
        (_ScalarAdd(), rf"fx node 'add' \(operator.add\) at {here}.*one operand is 3"),
        (_RandomDropout(), r"fx node 'dropout'.*training=True\) drops units at random"),
        (nn.Sequential(nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect")), "padding_mode='reflect'"),
        (nn.Sequential(nn.MaxPool2d(2, dilation=2)), "dilation=2"),
        (nn.Sequential(nn.MaxPool2d(2, return_indices=True)), "return_indices"),
        (nn.Sequential(nn.AvgPool2d(2, divisor_override=3)), "divisor_override=3"),
        (nn.Sequential(bn_nostats), "track_running_stats=False"),
        (nn.Sequential(nn.Flatten(start_dim=2)), r"Flatten\(start_dim=1, end_dim=-1\)"),
        (nn.Sequential(nn.Softmax(dim=1), nn.Flatten()), "softmax is only supported as the model's last operation"),
        (nn.Sequential(nn.Identity()), "no layers to convert"),
    ]


@pytest.mark.parametrize("case", range(14))
def test_refused_models_name_the_offending_node(case):
    module, pattern = _refused()[case]
    module.eval()
    with pytest.raises(ConversionError, match=pattern):
        from_torch(module)


def test_refuses_what_is_not_a_module():
    with pytest.raises(TypeError, match="needs a torch.nn.Module, got list"):
        from_torch([nn.Conv2d(1, 1, 1)])


def test_a_bare_module_and_a_subclass_are_traced_into():
    """A Conv2d passed alone, or a subclass whose forward changes the function, is traced through its forward
    (F.conv2d on its own parameters): what it computes is what is converted."""

    class Shifted(nn.Conv2d):
        def forward(self, x):
            return F.relu(super().forward(x))

    for module in (nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten()), nn.Sequential(Shifted(2, 3, 3), nn.Flatten())):
        module = torch_zoo.randomise(module.double().eval())
        assert_round_trip(module, from_torch(module), np.random.default_rng(0).normal(size=(2, 2, 5, 5)))


def test_missing_torch_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(ImportError, match=r"pip install 'xattr-ref\[torch\]'"):
        from_torch(object())
