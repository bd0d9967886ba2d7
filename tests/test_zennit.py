"""Conformance against Zennit (its attributors and composites): same weights, same inputs, float64.

Zennit imports ``torchvision`` at import time, but only to name two ResNet block classes for
its canonizers.  The torchvision 0.28.0 wheel on PyPI is built against CUDA torch and cannot
load its compiled ops next to the CPU build of torch 2.13.0; when that happens this file gives
zennit a stand-in ``torchvision.models.resnet`` holding those two names (unused here: no
ResNet is canonized), so the comparisons still run.  See docs/peers.md.
"""
import sys
import types

import numpy as np
import pytest

import xattr

pytestmark = pytest.mark.oracle
torch = pytest.importorskip("torch", reason="the Zennit comparisons need the 'zennit' extra: pip install 'xattr-ref[zennit]'")


def _import_zennit():
    try:
        import torchvision  # noqa: F401
    except ModuleNotFoundError:
        pass  # zennit's own import will report what is missing
    except Exception:  # compiled ops built for another torch: stand in for the names zennit imports
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        tv = types.ModuleType("torchvision")
        models = types.ModuleType("torchvision.models")
        resnet = types.ModuleType("torchvision.models.resnet")
        resnet.BasicBlock = type("BasicBlock", (torch.nn.Module,), {})
        resnet.Bottleneck = type("Bottleneck", (torch.nn.Module,), {})
        tv.models, models.resnet = models, resnet
        sys.modules.update({"torchvision": tv, "torchvision.models": models, "torchvision.models.resnet": resnet})
    return pytest.importorskip("zennit", reason="Zennit is an optional extra: pip install 'xattr-ref[zennit]'")


zennit = _import_zennit()
from zennit.attribution import Gradient  # noqa: E402
from zennit.composites import DeconvNet, GuidedBackprop  # noqa: E402

from xattr.io import from_torch  # noqa: E402

nn = torch.nn


def assert_agree(ours, theirs, rtol=1e-10):
    theirs = theirs.detach().numpy()
    assert ours.shape == theirs.shape
    scale = np.abs(theirs).max()
    assert scale > 0
    err = np.abs(ours - theirs).max()
    assert err <= rtol * scale, f"max abs difference {err:.3e} > {rtol:g} x {scale:.3e}"


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(),
        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(6 * 2 * 2, 5), nn.ReLU(), nn.Linear(5, 4),
    ).double().eval()
    x = np.random.default_rng(5).normal(size=(3, 3, 8, 8))
    target = np.array([0, 1, 3])
    return net, from_torch(net), x, target


def _zennit(net, x, target, composite=None):
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    seed = torch.eye(4, dtype=torch.float64)[torch.from_numpy(target)]
    with Gradient(model=net, composite=composite) as attributor:
        _, relevance = attributor(xt, seed)
    return relevance


def test_gradient_attributor_without_composite(setup):
    net, model, x, target = setup
    assert_agree(xattr.gradient(model, x, target), _zennit(net, x, target))


def test_guided_backprop_composite(setup):
    net, model, x, target = setup
    assert_agree(xattr.guided_backprop(model, x, target), _zennit(net, x, target, GuidedBackprop()))


def test_deconvnet_composite(setup):
    net, model, x, target = setup
    assert_agree(xattr.deconvnet(model, x, target), _zennit(net, x, target, DeconvNet()))
