"""xattr.io.from_torch: round trips on torch models built here, and every refusal path.

Oracle: torch itself (float64 module) — scores and input gradients must agree to 1e-10.
"""
import sys
import warnings
from collections import OrderedDict

import numpy as np
import pytest

import xattr
from xattr.io import ConversionError, from_torch

from extras import need  # tests/extras.py: optional packages of the test suite


@pytest.fixture(scope="module")
def torch():
    return need("torch", "xattr.io.from_torch")


def _randomise_bn(torch, model):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g, dtype=m.running_mean.dtype) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=g, dtype=m.running_var.dtype) + 0.5)
                if m.weight is not None:
                    m.weight.copy_(torch.rand(n, generator=g, dtype=m.weight.dtype) + 0.5)
                    m.bias.copy_(torch.rand(n, generator=g, dtype=m.bias.dtype) - 0.5)
    return model


def _architectures(nn):
    """(name, module factory, input shape): every supported layer and setting at least once."""
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
    ]


@pytest.mark.oracle
@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("arch", range(3))
def test_round_trip_scores_and_gradients(torch, arch):
    name, make, shape = _architectures(torch.nn)[arch]
    torch.manual_seed(arch)
    module = _randomise_bn(torch, make()).double().eval()
    model = from_torch(module)
    x = np.random.default_rng(arch).normal(size=shape)
    xt = torch.from_numpy(x).requires_grad_(True)
    out = module(xt)
    scores = model.forward(x)
    ref = out.detach().numpy()
    assert scores.dtype == np.float64
    np.testing.assert_allclose(scores, ref, rtol=1e-10, atol=1e-12 * np.abs(ref).max())
    out[:, 1].sum().backward()
    g = xattr.gradient(model, x, target=1)
    np.testing.assert_allclose(g, xt.grad.numpy(), rtol=1e-10, atol=1e-12 * np.abs(g).max())


@pytest.mark.oracle
def test_names_follow_torch_paths_and_weights_are_float64_copies(torch):
    module = _architectures(torch.nn)[2][1]()  # float32 torch weights
    model = from_torch(module)
    assert model.names == ["features.0", "features.1", "features.2", "features.3", "pool",
                           "head.0", "head.1", "head.2", "head.3"]  # Identity skipped
    conv = model["features.0"]
    assert conv.weight.dtype == np.float64 and conv.padding == "same"
    np.testing.assert_array_equal(conv.weight, module[0][0].weight.detach().numpy().astype(np.float64))
    with torch.no_grad():
        module[0][0].weight.zero_()  # a copy: later changes to the torch model do not leak in
    assert np.abs(conv.weight).max() > 0


@pytest.mark.oracle
def test_final_softmax_is_dropped_with_a_warning(torch):
    nn = torch.nn
    module = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.Softmax(dim=1)).double()
    with pytest.warns(UserWarning, match="final Softmax '2' was dropped"):
        model = from_torch(module)
    x = np.random.default_rng(0).normal(size=(2, 1, 2, 2))
    np.testing.assert_allclose(model.forward(x), module[:2](torch.from_numpy(x)).detach().numpy(), rtol=1e-12)


def _unsupported(nn):
    bn_train = nn.BatchNorm2d(2)  # training mode by default
    bn_nostats = nn.BatchNorm2d(2, track_running_stats=False).eval()

    class MyConv(nn.Conv2d):
        pass

    return [
        (nn.Tanh(), "unsupported layer '0' of type torch.nn.modules.activation.Tanh"),
        (nn.Conv2d(2, 2, 3, groups=2), "grouped convolution"),
        (nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"), "padding_mode='reflect'"),
        (nn.MaxPool2d(2, ceil_mode=True), "ceil_mode=True"),
        (nn.MaxPool2d(2, dilation=2), "dilation=2"),
        (nn.MaxPool2d(2, return_indices=True), "return_indices"),
        (nn.AvgPool2d(2, ceil_mode=True), "ceil_mode=True"),
        (nn.AvgPool2d(3, padding=1, count_include_pad=False), "count_include_pad=False"),
        (nn.AvgPool2d(2, divisor_override=3), "divisor_override=3"),
        (nn.AdaptiveAvgPool2d(2), "only output_size 1"),
        (nn.AdaptiveMaxPool2d(1), "AdaptiveMaxPool2d"),
        (bn_train, "call model.eval()"),
        (bn_nostats, "track_running_stats=False"),
        (nn.Flatten(start_dim=2), "Flatten(start_dim=1, end_dim=-1)"),
        (nn.Softmax(dim=1), None),  # not final: followed by a Linear below
        (MyConv(2, 2, 3), "MyConv"),
    ]


@pytest.mark.oracle
@pytest.mark.parametrize("case", range(16))
def test_unsupported_layers_are_named(torch, case):
    layer, msg = _unsupported(torch.nn)[case]
    module = torch.nn.Sequential(layer, torch.nn.Flatten(), torch.nn.LazyLinear(2))
    with pytest.raises(ConversionError) as info:
        from_torch(module)
    text = str(info.value)
    assert "'0'" in text  # the layer's path
    assert (msg or "Softmax") in text


@pytest.mark.oracle
def test_refuses_non_sequential_and_empty(torch):
    with pytest.raises(TypeError, match="needs a torch.nn.Sequential, got Conv2d"):
        from_torch(torch.nn.Conv2d(1, 1, 1))
    with pytest.raises(ConversionError, match="no layers"):
        from_torch(torch.nn.Sequential(torch.nn.Identity()))


def test_missing_torch_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(ImportError, match=r"pip install 'xattr-ref\[torch\]'"):
        from_torch(object())
