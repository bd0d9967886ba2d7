"""The CAM family against pytorch-grad-cam and torchcam: the same float64 weights (xattr's small ResNet copied into a
torch twin with torchvision's BasicBlock names), the same inputs, at a residual ``Add`` and at a block's last ReLU.

"Agrees" means ``max |xattr − peer| <= 1e-10 · max |peer|``.  Where a peer's definition differs (a stabiliser, a
float32 step, an interpolation convention) the test reproduces the peer's number from xattr's pieces plus the stated
difference; ``docs/peers.md`` (section "CAM family") has the table.
"""
import contextlib
import io

import numpy as np
import pytest

import xattr
from xattr.methods.cam import activations_and_gradients, upsample_bilinear
from xattr.testing.networks import small_resnet

from extras import need  # noqa: E402  (tests/extras.py: optional packages of the test suite)

pytestmark = [pytest.mark.oracle, pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning")]
torch = need("torch", reason="the CAM peers need torch: pip install 'xattr-ref[grad-cam]' or '[torchcam]'")
nn = torch.nn
RTOL = 1e-10
NODES = ["layer1.0.add", "layer2.0.relu2"]


def assert_agree(ours, theirs, rtol=RTOL):
    """``max |ours − theirs| <= rtol · max |theirs|``; returns the measured relative difference."""
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    ours = np.asarray(ours)
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    scale = np.abs(theirs).max()
    assert scale > 0, "a comparison of two all-zero maps cannot fail"
    err = np.abs(ours - theirs).max() / scale
    assert err <= rtol, f"max relative difference {err:.3e} > {rtol:g}"
    return err


# -- the torch twin of xattr.testing.networks.small_resnet -----------------------------------------------
class Add(nn.Module):
    """The residual sum as a module, so that hooks (and both libraries' target layers) can reach it."""

    def forward(self, a, b):
        return a + b


class BasicBlock(nn.Module):
    """torchvision's BasicBlock (same parameter names) with its two ReLUs and the sum as separate modules."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.add = Add()
        self.relu2 = nn.ReLU()
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout))
                           if stride != 1 or cin != cout else None)

    def forward(self, x):
        y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(self.add(y, x if self.downsample is None else self.downsample(x)))


class SmallResNet(nn.Module):
    def __init__(self, cin=3, classes=5, width=4):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(width, width, 1))
        self.layer2 = nn.Sequential(BasicBlock(width, 2 * width, 2))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def torch_twin(model):
    """A float64 :class:`SmallResNet` carrying the weights of the xattr graph ``model`` (same node names)."""
    net = SmallResNet().double().eval()
    mods = dict(net.named_modules())
    with torch.no_grad():
        for name in model.order:
            layer, mod = model[name], mods.get(name)
            for attr in ("weight", "bias", "running_mean", "running_var"):
                value = getattr(layer, attr, None)
                if value is not None and getattr(mod, attr, None) is not None:
                    getattr(mod, attr).copy_(torch.from_numpy(np.asarray(value, dtype=np.float64)))
            if hasattr(layer, "eps"):
                mod.eps = layer.eps
    return net


@pytest.fixture(scope="module")
def setup():
    model = small_resnet(rng=11)
    x = np.random.default_rng(11).normal(size=(2, 3, 12, 12))
    net = torch_twin(model)
    with torch.no_grad():
        scores = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(scores, model(x), rtol=1e-12, atol=1e-13)  # the same function
    t = np.array([1, 3])
    return model, x, net, t


def module(net, name):
    return dict(net.named_modules())[name]


# -- pytorch-grad-cam ---------------------------------------------------------------------------------------
def pgc():
    return need("pytorch_grad_cam", reason="pytorch-grad-cam is an optional extra: "
                                                          "pip install 'xattr-ref[grad-cam]'")


def pgc_raw(cls, net, node, x, t, **kw):
    """pytorch-grad-cam's per-layer map before its ReLU and display scaling (``get_cam_image``), float64."""
    lib = pgc()
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    layer = module(net, node)
    cam = getattr(lib, cls)(model=net, target_layers=[layer], **kw)
    xt = torch.from_numpy(x.copy())
    targets = [ClassifierOutputTarget(int(c)) for c in t]
    outputs = cam.activations_and_grads(xt)
    if cam.uses_gradients:
        net.zero_grad()
        sum(tg(o) for tg, o in zip(targets, outputs)).backward(retain_graph=True)
    acts = cam.activations_and_grads.activations[0].numpy()
    grads = cam.activations_and_grads.gradients[0].numpy() if cam.uses_gradients else None
    with contextlib.redirect_stderr(io.StringIO()):  # tqdm progress bars of the perturbation methods
        out = cam.get_cam_image(xt, layer, targets, acts, grads, False)
    cam.activations_and_grads.release()
    return np.asarray(out)


@pytest.mark.parametrize("node", NODES)
def test_pytorch_grad_cam_gradient_methods_agree(setup, node):
    model, x, net, t = setup
    up = dict(relu=False, upsample=False)
    cases = [
        ("GradCAM", xattr.grad_cam(model, x, t, layer=node, **up)),
        # eps 1e-6 in alpha's denominator, the raw score (no exp(S) factor), no alpha normalisation
        ("GradCAMPlusPlus", xattr.grad_cam_plus_plus(model, x, t, layer=node, score="raw", epsilon=1e-6, **up)),
        ("XGradCAM", xattr.xgrad_cam(model, x, t, layer=node, epsilon=1e-7, **up)),
        ("HiResCAM", xattr.hires_cam(model, x, t, layer=node, **up)),
        ("LayerCAM", xattr.layer_cam(model, x, t, layer=node, **up)),
    ]
    for cls, ours in cases:
        assert_agree(ours[:, 0], pgc_raw(cls, net, node, x, t))


def test_pytorch_grad_cam_epsilon_matters_where_gradients_are_small(setup):
    """pytorch-grad-cam's 1e-6 is absolute, of the size of g² for small gradients: without it the maps differ."""
    model, x, net, t = setup
    theirs = pgc_raw("GradCAMPlusPlus", net, "layer1.0.add", x, t)
    exact = xattr.grad_cam_plus_plus(model, x, t, layer="layer1.0.add", score="raw", relu=False, upsample=False)[:, 0]
    assert np.abs(exact - theirs).max() > 1e-6 * np.abs(theirs).max()


def test_pytorch_grad_cam_full_pipeline_is_relu_minmax_and_a_float32_resize(setup):
    """``cam(input, targets)``: ReLU, (M − min)/(max + 1e-7) per image, cv2's bilinear resize (half-pixel centres)
    in float32, scaled again: xattr's map through the same steps agrees to float32 round-off."""
    lib = pgc()
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model, x, net, t = setup
    node = "layer2.0.relu2"
    with lib.GradCAMPlusPlus(model=net, target_layers=[module(net, node)]) as cam:
        theirs = cam(torch.from_numpy(x.copy()), [ClassifierOutputTarget(int(c)) for c in t])
    assert theirs.dtype == np.float32

    def scale(m):
        m = m - m.min(axis=(1, 2), keepdims=True)
        return m / (1e-7 + m.max(axis=(1, 2), keepdims=True))

    coarse = xattr.grad_cam_plus_plus(model, x, t, layer=node, score="raw", epsilon=1e-6, upsample=False)
    ours = scale(upsample_bilinear(scale(coarse[:, 0])[:, None], x.shape[2:])[:, 0])
    err = assert_agree(ours, theirs, rtol=1e-5)
    assert err > 1e-10  # float32: not more


def test_pytorch_grad_cam_eigen_cam_centres_and_casts_to_float32(setup):
    model, x, net, t = setup
    for node in NODES:
        theirs = pgc_raw("EigenCAM", net, node, x, t)
        assert theirs.dtype == np.float32
        ours = xattr.eigen_cam(model, x, t, layer=node, center=True, upsample=False)[:, 0]
        sign = np.sign((ours * theirs).sum(axis=(1, 2)))[:, None, None]  # LAPACK's sign, per image
        assert_agree(np.float32(ours * sign), theirs, rtol=2e-7)  # np.float32(projection): one rounding


def test_pytorch_grad_cam_score_cam_is_the_channel_softmax_with_aligned_corners(setup):
    """ScoreCAM: masks resized with UpsamplingBilinear2d (align_corners=True), scaled with +1e-8, weights softmax
    over channels of the raw class scores, which it stores in a float32 ``torch.Tensor``: with torch's default
    dtype float64 that step is exact and the maps agree to 1e-10; with float32 (default) to float32 round-off."""
    model, x, net, t = setup
    for node in NODES:
        ours = xattr.score_cam(model, x, t, layer=node, score="channel_softmax", mask_interpolation="align_corners",
                               epsilon=1e-8, relu=False, upsample=False)[:, 0]
        err32 = np.abs(pgc_raw("ScoreCAM", net, node, x, t) - ours).max() / np.abs(ours).max()
        assert 1e-10 < err32 < 1e-5
        default = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            assert_agree(ours, pgc_raw("ScoreCAM", net, node, x, t))
        finally:
            torch.set_default_dtype(default)


def test_pytorch_grad_cam_ablation_cam_computes_its_slopes_in_float32(setup):
    """AblationCAM: (y − y_k)/y with y and y_k cast to float32 (``np.float32``); ablation value 0 when the node's
    smallest activation is 0 (after a ReLU), else min − 1e7.  Reproduced from xattr's slopes."""
    model, x, net, t = setup
    node = "layer2.0.relu2"
    assert model.activations(x, node).min() == 0
    ours, w = xattr.ablation_cam(model, x, t, layer=node, relu=False, upsample=False, return_weights=True)
    theirs = pgc_raw("AblationCAM", net, node, x, t)
    y = model(x)[[0, 1], t][:, None]
    y32 = np.float32(y)
    w32 = (y32 - np.float32(y - w * y)) / y32
    A = model.activations(x, node)
    assert_agree(np.einsum("nk,nkhw->nhw", w32.astype(np.float64), A), theirs, rtol=1e-12)
    err = np.abs(ours[:, 0] - theirs).max() / np.abs(theirs).max()
    assert 1e-12 < err < 1e-4


def test_pytorch_grad_cam_cannot_ablate_a_two_input_module(setup):
    """Its AblationLayer replaces the target module by a one-argument module: a residual Add cannot be a target
    (xattr re-runs the downstream nodes of any node).  The failed call also leaves the AblationLayer in the model
    (it is swapped back only after a successful run), so it gets a twin of its own here."""
    model, x, _, t = setup
    net = torch_twin(model)
    with pytest.raises(TypeError):
        pgc_raw("AblationCAM", net, "layer1.0.add", x, t)
    assert type(module(net, "layer1.0.add")).__name__ == "AblationLayer"
    assert np.isfinite(xattr.ablation_cam(model, x, t, layer="layer1.0.add")).all()


# -- torchcam -----------------------------------------------------------------------------------------------
def tc():
    return need("torchcam.methods", reason="torchcam is an optional extra: pip install 'xattr-ref[torchcam]'")


def torchcam_maps(cls, net, node, x, t, normalized=False, **kw):
    methods = tc()
    xt = torch.from_numpy(x.copy())
    layers = node if isinstance(node, list) else [node]
    with getattr(methods, cls)(net, target_layer=layers, **kw) as extractor:
        if cls in ("ScoreCAM",):
            with torch.no_grad():
                scores = net(xt)
            cams = extractor([int(c) for c in t], normalized=normalized)
        else:
            scores = net(xt)
            cams = extractor([int(c) for c in t], scores, normalized=normalized)
        fused = extractor.fuse_cams(cams) if len(layers) > 1 else None
    return [c.detach().numpy() for c in cams], fused


@pytest.mark.parametrize("node", NODES)
def test_torchcam_gradient_methods_agree(setup, node):
    """torchcam applies the final ReLU to these (as the papers); its ε = 1e-8 where xattr divides exactly."""
    model, x, net, t = setup
    cases = [
        ("GradCAM", xattr.grad_cam(model, x, t, layer=node, upsample=False)),
        ("XGradCAM", xattr.xgrad_cam(model, x, t, layer=node, epsilon=1e-8, upsample=False)),
        ("LayerCAM", xattr.layer_cam(model, x, t, layer=node, upsample=False)),
    ]
    for cls, ours in cases:
        (theirs,), _ = torchcam_maps(cls, net, node, x, t)
        assert_agree(ours[:, 0], theirs)


def test_torchcam_cam_agrees(setup):
    """CAM (Zhou et al. 2016): the fc weights of the class on the GAP's input, no ReLU, bias excluded: xattr.cam."""
    model, x, net, t = setup
    (theirs,), _ = torchcam_maps("CAM", net, "layer2.0.relu2", x, t, fc_layer="fc")
    assert_agree(xattr.cam(model, x, t, upsample=False)[:, 0], theirs)


@pytest.mark.parametrize("node", NODES)
def test_torchcam_grad_cam_plus_plus_never_divides_alpha(setup, node):
    """torchcam 0.5.0 defect: ``alpha[idx][mask].div_(d[mask] + eps)`` divides a copy (boolean-mask indexing), so
    α stays g² and its weights are Σ_ij g²·ReLU(g), not Eq. 19's.  (The denominator it meant to use,
    2g² + Σ_ab g³_ab A_ab, is not the paper's 2g² + (Σ_ab A_ab) g³ either.)  Pinned: its map equals
    ReLU(Σ_k (Σ_ij g²·ReLU(g)) A_k) from xattr's A and g, and differs from Grad-CAM++ by orders of magnitude."""
    model, x, net, t = setup
    (theirs,), _ = torchcam_maps("GradCAMpp", net, node, x, t)
    A, g, _ = activations_and_gradients(model, x, t, node)
    w = (g**2 * np.maximum(g, 0)).sum(axis=(2, 3))
    assert_agree(np.maximum(np.einsum("nk,nkhw->nhw", w, A), 0), theirs)
    paper = xattr.grad_cam_plus_plus(model, x, t, layer=node, score="raw", epsilon=1e-8, upsample=False)[:, 0]
    assert np.abs(paper - theirs).max() > 10 * np.abs(theirs).max()


@pytest.mark.parametrize("node", NODES)
def test_torchcam_score_cam_normalises_before_upsampling(setup, node):
    """ScoreCAM: masks scaled at the node's resolution ((A − min)/(max − min + 1e-8)) then resized (half-pixel);
    weights softmax over channels of (score − score of the unmasked input): xattr's ``mask_normalization="coarse"``,
    ``score="channel_softmax"`` (the subtracted constant cancels), float64 throughout."""
    model, x, net, t = setup
    (theirs,), _ = torchcam_maps("ScoreCAM", net, node, x, t, batch_size=7)
    ours = xattr.score_cam(model, x, t, layer=node, score="channel_softmax", mask_normalization="coarse",
                           epsilon=1e-8, upsample=False)
    assert_agree(ours[:, 0], theirs)
    paper = xattr.score_cam(model, x, t, layer=node, score="channel_softmax", epsilon=1e-8, upsample=False)
    assert np.abs(paper[:, 0] - theirs).max() > 1e-6 * np.abs(theirs).max()  # the order matters


def test_torchcam_layer_cam_fusion_scales_normalised_maps(setup):
    """fuse_cams: each map min-max normalised (ε 1e-8) by the extractor, tanh(2·map), resized to the largest
    map, element-wise max.  xattr scales tanh(2·M/max M), which is the same when the map's minimum is 0."""
    model, x, net, t = setup
    nodes = ["layer1.0.add", "layer2.0.relu2"]
    cams, fused = torchcam_maps("LayerCAM", net, nodes, x, t, normalized=True)
    maps = []
    for node in nodes:
        m = xattr.layer_cam(model, x, t, layer=node, upsample=False)[:, 0]
        m = m - m.min(axis=(1, 2), keepdims=True)
        m = np.tanh(2.0 * m / (m.max(axis=(1, 2), keepdims=True) + 1e-8))
        maps.append(upsample_bilinear(m[:, None], (6, 6))[:, 0] if m.shape[1:] != (6, 6) else m)
    assert_agree(np.maximum(*maps), fused.detach().numpy())
    # layer2.0.relu2's map has no zero here, so (M − min)/(max − min) and M/max differ: so do the fused maps
    assert (xattr.layer_cam(model, x, t, layer="layer2.0.relu2", upsample=False).min(axis=(1, 2, 3)) > 0).all()
    ours = xattr.layer_cam(model, x, t, layer=nodes, upsample=False)[:, 0]
    assert np.abs(ours - fused.detach().numpy()).max() > 1e-3


def test_the_twin_has_the_graph_gradients(setup):
    """The comparisons above rest on the twin: its hooked gradient at the Add equals the tape's."""
    model, x, net, t = setup
    A, g, _ = activations_and_gradients(model, x, t, "layer1.0.add")
    store = {}
    h = module(net, "layer1.0.add").register_forward_hook(lambda m, i, o: store.setdefault("a", o))
    xt = torch.from_numpy(x.copy())
    out = net(xt)
    h.remove()
    (gt,) = torch.autograd.grad(out[[0, 1], list(t)].sum(), store["a"])
    assert_agree(A, store["a"].detach().numpy())
    assert_agree(g, gt.numpy())
