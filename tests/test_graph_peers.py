"""A residual network in xattr and in torch with identical float64 weights: Captum and Zennit against xattr's graph.

The torch side is built from torchvision's own ``BasicBlock`` (so Zennit's ResNet canonizer applies); node names
of :func:`xattr.testing.networks.small_resnet` are torchvision's, so the weights are copied by name.  Each test
states the agreement reached, and every difference is a named choice:

* Captum Saliency, InputXGradient, GuidedBackprop, LayerGradCam: equal to round-off (1e-10).
* Captum IntegratedGradients (Gauss-Legendre): Captum casts its step sizes to float32 (docs/peers.md), so it
  agrees to ~1e-8 of the scale, not 1e-10; xattr's own quadrature equals a float64 re-computation.
* Captum DeepLift: on the residual net (max-pool after a ReLU, so Captum's max-pool rule has no effect) it equals
  xattr's Rescale with ``maxpool="gradient"`` to round-off.
* Zennit (ResNet canonizer: batch-norm merged into the convs, each block's sum a ``Sum`` module with the ``Norm``
  rule, stabiliser 1e-6): equal to xattr's LRP, whose ``Add`` cell is the same rule with the same stabiliser,
  once Zennit's conv/linear rules are built without their extra stabiliser (xattr adds ε only in LRP-ε).
"""
import numpy as np
import pytest

import xattr
from xattr.testing.networks import small_resnet

from extras import need  # noqa: E402  (tests/extras.py: optional packages of the test suite)

pytestmark = pytest.mark.oracle
torch = need("torch", reason="the peer comparisons need torch: pip install 'xattr-ref[dev]'")
tv_resnet = need("torchvision.models.resnet", reason="needs torchvision: pip install 'xattr-ref[dev]'")
nn = torch.nn

WIDTH, CLASSES = 4, 5


class TorchSmallResNet(nn.Module):
    """torchvision's ResNet layout at toy width: the torch twin of :func:`small_resnet`."""

    def __init__(self, width=WIDTH, classes=CLASSES):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = nn.Sequential(tv_resnet.BasicBlock(width, width))
        down = nn.Sequential(nn.Conv2d(width, 2 * width, 1, stride=2, bias=False), nn.BatchNorm2d(2 * width))
        self.layer2 = nn.Sequential(tv_resnet.BasicBlock(width, 2 * width, stride=2, downsample=down))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _pair(seed=0):
    model = small_resnet(width=WIDTH, classes=CLASSES, rng=seed)
    net = TorchSmallResNet().double().eval()
    state = {}
    for key in net.state_dict():
        node, _, attr = key.rpartition(".")
        if attr == "num_batches_tracked":
            state[key] = net.state_dict()[key]
            continue
        state[key] = torch.from_numpy(np.ascontiguousarray(getattr(model[node], attr)))
    net.load_state_dict(state)
    x = np.random.default_rng(seed + 1).random((3, 3, 12, 12))
    np.testing.assert_allclose(net(torch.from_numpy(x)).detach().numpy(), model(x), rtol=1e-12, atol=1e-13)
    return model, net, x


def _t(x):
    return torch.from_numpy(x).requires_grad_(True)


def _rel(ours, theirs):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    assert ours.shape == theirs.shape
    return np.abs(ours - theirs).max() / np.abs(theirs).max()


@pytest.fixture(scope="module")
def pair():
    return _pair(0)


TARGETS = np.array([0, 3, 4])


# -- Captum --------------------------------------------------------------------------------------
def test_captum_gradient_family(pair):
    from captum import attr as ca

    model, net, x = pair
    t = torch.from_numpy(TARGETS)
    assert _rel(xattr.gradient(model, x, TARGETS), ca.Saliency(net).attribute(_t(x), target=t, abs=False)) < 1e-10
    assert _rel(xattr.gradient_x_input(model, x, TARGETS), ca.InputXGradient(net).attribute(_t(x), target=t)) < 1e-10
    assert _rel(xattr.guided_backprop(model, x, TARGETS), ca.GuidedBackprop(net).attribute(_t(x), target=t)) < 1e-10
    assert _rel(xattr.deconvnet(model, x, TARGETS), ca.Deconvolution(net).attribute(_t(x), target=t)) < 1e-10


@pytest.mark.parametrize("node, module", [("layer1.0.relu2", "layer1"), ("layer2.0.relu2", "layer2")])
def test_captum_layer_grad_cam_at_block_outputs(pair, node, module):
    from captum import attr as ca

    model, net, x = pair
    t = torch.from_numpy(TARGETS)
    for relu in (False, True):
        theirs = ca.LayerGradCam(net, getattr(net, module)).attribute(_t(x), target=t, relu_attributions=relu)
        ours = xattr.grad_cam(model, x, TARGETS, layer=node, relu=relu, upsample=False)
        assert _rel(ours, theirs) < 1e-10


def test_captum_integrated_gradients_differs_only_by_its_float32_step_sizes(pair):
    from captum import attr as ca

    model, net, x = pair
    t = torch.from_numpy(TARGETS)
    theirs = ca.IntegratedGradients(net).attribute(_t(x), target=t, n_steps=16, method="gausslegendre")
    ours = xattr.integrated_gradients(model, x, TARGETS, steps=16)
    rel = _rel(ours, theirs)
    assert 1e-12 < rel < 1e-6  # Captum's float32 weights: not round-off, far below the method's own error
    # with Captum's weights rounded to float32 on our side too, the two agree to round-off
    from xattr.methods.path import quadrature_rule

    alphas, w = quadrature_rule("gausslegendre", 16)
    w32 = w.astype(np.float32).astype(np.float64)
    grads = np.stack([xattr.gradient(model, a * x, TARGETS) for a in alphas])
    assert _rel(x * np.tensordot(w32, grads, axes=1), theirs) < 1e-10


class _OwnReLUBlock(tv_resnet.BasicBlock):
    """torchvision's BasicBlock with its second ReLU a module of its own (Captum's DeepLift needs each module once)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.relu2 = nn.ReLU()

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu2(out + identity)


def test_captum_deeplift_refuses_torchvisions_block_and_agrees_with_one_module_per_relu(pair):
    from captum import attr as ca

    model, net, x = pair
    t = torch.from_numpy(TARGETS)
    with pytest.raises(RuntimeError, match="used more than once"):
        ca.DeepLift(net).attribute(_t(x), target=t)
    for layer in (net.layer1, net.layer2):
        block = layer[0]
        own = _OwnReLUBlock(block.conv1.in_channels, block.conv1.out_channels, stride=block.stride,
                            downsample=block.downsample).double().eval()
        own.load_state_dict(block.state_dict())
        layer[0] = own
    ref = np.random.default_rng(5).random((3, 3, 12, 12)) * 0.2
    theirs, delta = ca.DeepLift(net).attribute(_t(x), target=t, baselines=torch.from_numpy(ref),
                                               return_convergence_delta=True)
    ours, gap = xattr.deeplift(model, x, TARGETS, reference=ref, maxpool="gradient", return_delta=True)
    assert _rel(ours, theirs) < 1e-10
    np.testing.assert_allclose(gap, delta.detach().numpy(), atol=1e-10)
    for layer in (net.layer1, net.layer2):  # the fixture's net back to torchvision's block
        own = layer[0]
        block = tv_resnet.BasicBlock(own.conv1.in_channels, own.conv1.out_channels, stride=own.stride,
                                     downsample=own.downsample).double().eval()
        block.load_state_dict(own.state_dict())
        layer[0] = block
    # xattr's exact max-pool mode conserves Δt where the reference code's rule does not
    _, exact_gap = xattr.deeplift(model, x, TARGETS, reference=ref, maxpool="rescale", return_delta=True)
    assert np.abs(exact_gap).max() < 1e-10


# -- Zennit --------------------------------------------------------------------------------------
def _zennit_attr(net, x, target, rule):
    from zennit.attribution import Gradient
    from zennit.composites import LayerMapComposite
    from zennit.layer import Sum
    from zennit.rules import AlphaBeta, Epsilon, Norm, Pass, ZPlus
    from zennit.torchvision import ResNetCanonizer
    from zennit.types import Activation, AvgPool, Convolution, Linear

    tiny = 1e-300  # "no stabiliser" that still guards 0/0 (xattr divides exact zeros as 0)
    weighted = {"epsilon": Epsilon(epsilon=1e-6, zero_params=[]), "zplus": ZPlus(stabilizer=tiny),
                "alphabeta": AlphaBeta(alpha=2, beta=1, stabilizer=tiny)}[rule]
    layer_map = [(Activation, Pass()), (Sum, Norm(stabilizer=1e-6)), (AvgPool, Norm(stabilizer=tiny)),
                 (Convolution, weighted), (Linear, Epsilon(epsilon=1e-6) if rule != "epsilon" else weighted)]
    comp = LayerMapComposite(layer_map=layer_map, canonizers=[ResNetCanonizer()])
    onehot = torch.eye(CLASSES, dtype=torch.float64)[torch.from_numpy(target)]
    bns = [mod for mod in net.modules() if isinstance(mod, nn.BatchNorm2d)]
    with Gradient(model=net, composite=comp) as attributor:
        # Zennit 0.5.1 merges each batch-norm into its conv and leaves the batch-norm computing x / sqrt(1 + eps)
        # (running_var = 1, eps kept): the canonized net is not the original function (test below).  With
        # eps = 0 there, the merged net is exactly the original's, as xattr's fold is.
        for bn in bns:
            bn.eps = 0.0
        _, rel = attributor(_t(x), onehot)
    for bn in bns:
        bn.eps = 1e-5
    return rel


def test_zennit_batchnorm_merge_changes_the_function(pair):
    """Zennit 0.5.1's MergeBatchNorm leaves each batch-norm as x / sqrt(1 + eps) (eps = 1e-5): the canonized
    network's scores move by about 5e-6 per batch-norm on the path, while xattr's fold keeps the function."""
    need("zennit", reason="Zennit is a peer extra: pip install 'xattr-ref[dev]'")
    from zennit.composites import LayerMapComposite
    from zennit.torchvision import ResNetCanonizer

    model, net, x = pair
    before = net(torch.from_numpy(x)).detach().numpy()
    comp = LayerMapComposite(layer_map=[], canonizers=[ResNetCanonizer()])
    handles = comp.register(net)
    try:
        after = net(torch.from_numpy(x)).detach().numpy()
    finally:
        comp.remove()
    rel = np.abs(after - before).max() / np.abs(before).max()
    assert 1e-7 < rel < 1e-4
    np.testing.assert_allclose(xattr.nn.fold_batchnorm(model)(x), model(x), rtol=1e-12, atol=1e-13)
    del handles


@pytest.mark.parametrize("rule, composite", [
    ("epsilon", "epsilon"),
    ("zplus", {"Conv2D": "zplus", "Dense": "epsilon"}),
    ("alphabeta", {"Conv2D": ("alphabeta", {"alpha": 2.0, "beta": 1.0}), "Dense": "epsilon"}),
])
def test_zennit_lrp_with_its_resnet_canonizer(pair, rule, composite):
    need("zennit", reason="Zennit is a peer extra: pip install 'xattr-ref[dev]'")
    from xattr.nn import Conv2D, Dense

    model, net, x = pair
    if isinstance(composite, dict):
        composite = {Conv2D if k == "Conv2D" else Dense: v for k, v in composite.items()}
    ours = xattr.lrp(model, x, TARGETS, composite, epsilon=1e-6, output="one")
    theirs = _zennit_attr(net, x, TARGETS, rule)
    assert _rel(ours, theirs) < 1e-12


def agreement_table():
    """``[(method, peer, max relative difference)]`` on the residual pair (``python tests/test_graph_peers.py``)."""
    from captum import attr as ca

    from xattr.nn import Conv2D, Dense

    model, net, x = _pair(0)
    t = torch.from_numpy(TARGETS)
    rows = [
        ("gradient", "Captum Saliency", _rel(xattr.gradient(model, x, TARGETS),
                                             ca.Saliency(net).attribute(_t(x), target=t, abs=False))),
        ("gradient_x_input", "Captum InputXGradient", _rel(xattr.gradient_x_input(model, x, TARGETS),
                                                           ca.InputXGradient(net).attribute(_t(x), target=t))),
        ("guided_backprop", "Captum GuidedBackprop", _rel(xattr.guided_backprop(model, x, TARGETS),
                                                          ca.GuidedBackprop(net).attribute(_t(x), target=t))),
        ("deconvnet", "Captum Deconvolution", _rel(xattr.deconvnet(model, x, TARGETS),
                                                   ca.Deconvolution(net).attribute(_t(x), target=t))),
        ("grad_cam layer2.0.relu2", "Captum LayerGradCam", _rel(
            xattr.grad_cam(model, x, TARGETS, layer="layer2.0.relu2", relu=False, upsample=False),
            ca.LayerGradCam(net, net.layer2).attribute(_t(x), target=t))),
        ("integrated_gradients (GL 16)", "Captum IntegratedGradients", _rel(
            xattr.integrated_gradients(model, x, TARGETS, steps=16),
            ca.IntegratedGradients(net).attribute(_t(x), target=t, n_steps=16, method="gausslegendre"))),
    ]
    for rule, comp in [("epsilon", "epsilon"), ("zplus", {Conv2D: "zplus", Dense: "epsilon"}),
                       ("alphabeta", {Conv2D: ("alphabeta", {"alpha": 2.0, "beta": 1.0}), Dense: "epsilon"})]:
        ours = xattr.lrp(model, x, TARGETS, comp, epsilon=1e-6, output="one")
        rows.append((f"lrp {rule}", "Zennit (ResNetCanonizer, eps of merged BN = 0)",
                     _rel(ours, _zennit_attr(net, x, TARGETS, rule))))
    return rows


if __name__ == "__main__":  # the agreement table of the docs
    for method, peer, rel in agreement_table():
        print(f"| {method} | {peer} | {rel:.1e} |")
