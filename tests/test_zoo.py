"""Peer agreement on imported zoo networks (resnet18-, mobilenet_v2-, densenet-like, built small from torchvision's
own blocks) and the zoo table's bookkeeping (benchmarks/zoo_table.py, docs/zoo.md).

Oracles: Captum and Zennit on the same float64 weights.  Where a peer handles a layer differently by choice, the
plain difference is pinned as large and the *matched* run (xattr with the peer's handling: guided backprop only at
``nn.ReLU`` modules, DeepLIFT's Rescale only at Captum's module types, LRP through functional calls by their
gradient, ...) must agree to round-off: so each explanation in docs/zoo.md is checked, not only stated.
"""
import json
import os

import numpy as np
import pytest

import xattr

from extras import need  # tests/extras.py: optional packages of the test suite

pytestmark = pytest.mark.oracle

torch = need("torch", reason="the zoo comparisons need torch: pip install 'xattr-ref[oracle]'")
need("captum", reason="the zoo comparisons need Captum: pip install 'xattr-ref[oracle]'")
need("torchvision", reason="the zoo networks are torchvision's blocks: pip install 'xattr-ref[oracle]'")

import torch_zoo  # noqa: E402

from benchmarks import zoo_table  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), os.pardir)
#: net -> the torch module whose output is the last conv block (Captum's LayerGradCam layer)
CAM = {"resnet": "layer2", "mobilenet_v2": "features.3", "densenet": "features"}


@pytest.fixture(scope="module", params=["resnet", "mobilenet_v2", "densenet"])
def case(request):
    name, make, shape, _ = next(n for n in torch_zoo.NETS if n[0] == request.param)
    net = make()
    model = xattr.io.from_torch(net)
    x = np.random.default_rng(3).normal(size=(1,) + shape[1:])
    with torch.no_grad():
        target = int(net(torch.from_numpy(x)).argmax())
    return name, net, model, x, target


@pytest.fixture(scope="module")
def captum(case):
    name, net, model, x, target = case
    cam = zoo_table.cam_node(net, model, CAM[name], x)
    return zoo_table.captum_rows(net, model, x, target, CAM[name], cam)


def test_captum_gradient_grad_cam_and_ig_agree(case, captum):
    assert captum["gradient"]["rel"] < 1e-12
    assert captum["Grad-CAM"]["rel"] < 1e-12
    # Captum casts IG's step sizes to float32 (docs/peers.md): agreement to ~1e-9 of the map's scale, not 1e-12
    assert captum["IG (GL-16)"]["rel"] < 1e-7


def test_captum_guided_backprop_modifies_nn_relu_modules_only(case, captum):
    name = case[0]
    rec = captum["guided backprop"]
    assert rec["matched"] < 1e-12
    if name == "resnet":  # every ReLU is an nn.ReLU module: the definitions agree
        assert rec["rel"] < 1e-12
    else:  # ReLU6 modules (MobileNetV2), DenseNet's functional F.relu: plain gradients in Captum
        assert rec["rel"] > 1e-3


def test_captum_deeplift_rescale_only_at_its_module_types(case, captum):
    name = case[0]
    rec = captum["DeepLIFT"]
    assert rec["matched"] < 1e-10
    if name == "resnet":  # reused ReLU module: Captum refuses torchvision's block, the unshared copy agrees
        assert "Captum refuses the reused module" in rec["workaround"] and rec["rel"] < 1e-10
    else:  # ReLU6 / F.relu: the gradient in Captum, Rescale in xattr
        assert rec["rel"] > 1e-3


def test_captum_lrp_through_functional_calls(case, captum):
    """Captum's LRP does not see ``+``, ``torch.cat`` or ``F.adaptive_avg_pool2d``: their gradient flows, and the
    hook that turns a tensor's summed gradient into relevance multiplies it by the tensor, skip path included."""
    rec = captum["LRP-ε"]
    assert rec["matched"] < 1e-9
    assert rec["rel"] > 1e-2


def test_zennit_lrp(case):
    need("zennit", reason="Zennit is a peer extra: pip install 'xattr-ref[oracle]'")
    name, net, model, x, target = case
    rows = zoo_table.zennit_rows({"resnet": "resnet18", "mobilenet_v2": "mobilenet_v2",
                                  "densenet": "densenet121"}[name], net, model, x, target)
    for rec in rows.values():
        assert rec.get("error") is None
        assert rec["matched"] < 1e-10
    if name == "densenet":  # no canonizer fits: batch-norms take Zennit's Pass rule, F.adaptive_avg_pool2d its gradient
        assert "SequentialMergeBatchNorm pairs each dense layer's conv2" in rows["LRP-ε (Zennit)"]["note"]
        assert rows["LRP-ε (Zennit)"]["rel"] > 1e-3


def test_zennit_sequential_merge_batchnorm_breaks_densenet():
    """Pinned Zennit limitation: SequentialMergeBatchNorm pairs adjacent leaves, and in a DenseNet the next dense
    layer's norm1 follows conv2 among the leaves although it reads the concatenation: it merges the wrong pair."""
    need("zennit", reason="Zennit is a peer extra: pip install 'xattr-ref[oracle]'")
    from zennit.canonizers import SequentialMergeBatchNorm

    net = torch_zoo.small_densenet()
    x = np.random.default_rng(0).normal(size=(1, 3, 16, 16))
    try:
        change = zoo_table.zennit_function_change(net, x, SequentialMergeBatchNorm())
    except RuntimeError as exc:  # channel counts differ (the torchvision densenet121 case)
        assert "size of tensor" in str(exc)
    else:
        assert change > 1e-3


def test_unshared_copy_computes_the_same_function():
    net = torch_zoo.small_resnet()
    copy = zoo_table.unshared(net)
    calls = [n.target for n in copy.graph.nodes if n.op == "call_module"]
    assert len(calls) == len(set(calls)) and "layer1_0_relu_call1" in calls
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 3, 16, 16)))
    with torch.no_grad():
        assert torch.equal(copy(x), net(x))


def test_smallest_size_and_grad_cam_node_of_resnet18():
    net = zoo_table.build("resnet18")
    assert zoo_table.smallest_size(net, "layer4") == 33  # 33 -> 17 -> 9 -> 5 -> 3 -> 2
    model = xattr.io.from_torch(net)
    x = np.random.default_rng(0).normal(size=(1, 3, 33, 33))
    assert zoo_table.cam_node(net, model, "layer4", x) == "layer4.1.relu_1"


def test_docs_zoo_is_the_rendering_of_the_saved_run():
    """docs/zoo.md is generated: it equals the rendering of benchmarks/results/zoo_table.json (no hand edits), and
    every model of the zoo has its rows."""
    path = os.path.join(ROOT, "benchmarks", "results", "zoo_table.json")
    with open(path, encoding="utf-8") as f:
        saved = json.load(f)
    with open(os.path.join(ROOT, "docs", "zoo.md"), encoding="utf-8") as f:
        doc = f.read()
    assert zoo_table.render(saved["results"], saved["meta"]) == doc
    assert [r["model"] for r in saved["results"]] == list(zoo_table.ZOO)
    for r in saved["results"]:
        assert f"| {r['model']} |" in doc
        if r["imports"]["torch"]["error"] is None:  # every imported model agrees with torch to round-off
            assert r["imports"]["torch"]["forward"] < 1e-12
            assert r["methods"]["gradient"]["rel"] < 1e-8
