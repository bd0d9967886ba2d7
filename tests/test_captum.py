"""Conformance against Captum: same weights, same inputs, float64.

Where the definitions agree the attributions agree to 1e-10 (relative to the largest
magnitude); where they differ by definition the difference is pinned here and explained in
``docs/peers.md``:

* Captum's ``LayerGradCam`` omits the paper's final ReLU by default (``relu_attributions=False``).
* Captum's ``GuidedGradCam`` upsamples the Grad-CAM map with ``nearest`` by default; xattr (like
  the paper's released code) upsamples bilinearly.
* Captum's ``GuidedBackprop``/``Deconvolution`` change only ``nn.ReLU`` modules: a functional
  ReLU inside a custom module is silently treated with the plain gradient.
"""
import numpy as np
import pytest

import xattr

pytestmark = [pytest.mark.oracle, pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU")]
torch = pytest.importorskip("torch", reason="the Captum comparisons need the 'captum' extra: pip install 'xattr-ref[captum]'")
captum_attr = pytest.importorskip("captum.attr", reason="Captum is an optional extra: pip install 'xattr-ref[captum]'")
from xattr.io import from_torch  # noqa: E402

nn = torch.nn
RTOL = 1e-10


def assert_agree(ours, theirs, rtol=RTOL):
    """``max |ours - theirs| <= rtol * max |theirs|`` (relative to the map's scale, so zeros do not divide)."""
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    scale = np.abs(theirs).max()
    assert scale > 0, "a comparison of two all-zero maps cannot fail"
    err = np.abs(ours - theirs).max()
    assert err <= rtol * scale, f"max abs difference {err:.3e} > {rtol:g} x {scale:.3e}"


def _gap_net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5),
    ).double().eval()


def _flat_net():
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(3, 5, 3, stride=1, padding=1), nn.BatchNorm2d(5), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(5, 4, 3), nn.ReLU(), nn.Dropout(0.3), nn.Flatten(), nn.Linear(4 * 2 * 2, 6), nn.ReLU(),
        nn.Linear(6, 5),
    ).double().eval()
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.3, 0.3)
        net[1].running_var.uniform_(0.5, 1.5)
    return net


NETS = {"gap": (_gap_net, "4"), "flat": (_flat_net, "5")}  # factory, Grad-CAM layer (the last ReLU)


@pytest.fixture(scope="module", params=sorted(NETS))
def setup(request):
    make, layer = NETS[request.param]
    net = make()
    model = from_torch(net)
    x = np.random.default_rng(7).normal(size=(3, 3, 8, 8))
    target = np.array([0, 2, 4])
    return net, model, x, target, layer


def _t(x):
    return torch.from_numpy(np.array(x, copy=True)).requires_grad_(True)


def _tt(target):
    return torch.from_numpy(target)


def test_saliency_signed_is_the_gradient(setup):
    net, model, x, target, _ = setup
    theirs = captum_attr.Saliency(net).attribute(_t(x), target=_tt(target), abs=False)
    assert_agree(xattr.gradient(model, x, target), theirs)


def test_saliency_default_abs_is_the_absolute_gradient(setup):
    net, model, x, target, _ = setup
    theirs = captum_attr.Saliency(net).attribute(_t(x), target=_tt(target))  # abs=True by default
    assert_agree(np.abs(xattr.gradient(model, x, target)), theirs)


def test_input_x_gradient(setup):
    net, model, x, target, _ = setup
    theirs = captum_attr.InputXGradient(net).attribute(_t(x), target=_tt(target))
    assert_agree(xattr.gradient_x_input(model, x, target), theirs)


def test_guided_backprop(setup):
    net, model, x, target, _ = setup
    theirs = captum_attr.GuidedBackprop(net).attribute(_t(x), target=_tt(target))
    ours = xattr.guided_backprop(model, x, target)
    assert_agree(ours, theirs)
    assert np.abs(ours - xattr.gradient(model, x, target)).max() > 1e-3 * np.abs(ours).max()  # the rule matters here


def test_deconvolution(setup):
    net, model, x, target, _ = setup
    theirs = captum_attr.Deconvolution(net).attribute(_t(x), target=_tt(target))
    assert_agree(xattr.deconvnet(model, x, target), theirs)


@pytest.mark.parametrize("relu", [False, True])
def test_layer_grad_cam_coarse(setup, relu):
    net, model, x, target, layer = setup
    gc = captum_attr.LayerGradCam(net, net[int(layer)])
    theirs = gc.attribute(_t(x), target=_tt(target), relu_attributions=relu)
    assert_agree(xattr.grad_cam(model, x, target, layer=layer, relu=relu, upsample=False), theirs)


def test_layer_grad_cam_default_omits_the_papers_relu(setup):
    """Pinned difference: Captum's default is xattr's ``relu=False``; xattr's default applies the ReLU."""
    net, model, x, target, layer = setup
    theirs = captum_attr.LayerGradCam(net, net[int(layer)]).attribute(_t(x), target=_tt(target)).detach().numpy()
    ours_default = xattr.grad_cam(model, x, target, layer=layer, upsample=False)
    assert (theirs < 0).any(), "the fixture must have negative Grad-CAM values for the difference to show"
    assert_agree(ours_default, np.maximum(theirs, 0))
    assert not np.allclose(ours_default, theirs)


def test_layer_grad_cam_bilinear_interpolation(setup):
    net, model, x, target, layer = setup
    coarse = captum_attr.LayerGradCam(net, net[int(layer)]).attribute(_t(x), target=_tt(target), relu_attributions=True)
    theirs = captum_attr.LayerAttribution.interpolate(coarse, x.shape[2:], interpolate_mode="bilinear")
    assert_agree(xattr.grad_cam(model, x, target, layer=layer, relu=True, upsample=True), theirs)
    assert_agree(xattr.methods.upsample_bilinear(coarse.detach().numpy(), x.shape[2:]), theirs)


def _nearest(a, out_hw):
    """PyTorch's ``nearest`` (legacy): source index ``floor(i * in / out)``."""
    rows = np.floor(np.arange(out_hw[0]) * a.shape[2] / out_hw[0]).astype(int)
    cols = np.floor(np.arange(out_hw[1]) * a.shape[3] / out_hw[1]).astype(int)
    return a[:, :, rows][:, :, :, cols]


def test_guided_grad_cam_bilinear_agrees(setup):
    net, model, x, target, layer = setup
    ggc = captum_attr.GuidedGradCam(net, net[int(layer)])
    theirs = ggc.attribute(_t(x), target=_tt(target), interpolate_mode="bilinear")
    assert_agree(xattr.guided_grad_cam(model, x, target, layer=layer), theirs)


def test_guided_grad_cam_default_nearest_is_pinned(setup):
    """Pinned difference: Captum's default upsampling is nearest; xattr's is bilinear (half-pixel centres)."""
    net, model, x, target, layer = setup
    theirs = captum_attr.GuidedGradCam(net, net[int(layer)]).attribute(_t(x), target=_tt(target))
    coarse = xattr.grad_cam(model, x, target, layer=layer, relu=True, upsample=False)
    gb = xattr.guided_backprop(model, x, target)
    assert coarse.shape[2:] != x.shape[2:]  # a coarser map, so that nearest and bilinear differ
    assert_agree(gb * _nearest(coarse, x.shape[2:]), theirs)
    assert not np.allclose(xattr.guided_grad_cam(model, x, target, layer=layer), theirs.detach().numpy())


class _FunctionalReLU(nn.Module):
    """A ReLU written as a function call: Captum's module hooks cannot see it."""

    def forward(self, x):
        return torch.nn.functional.relu(x)


@pytest.mark.parametrize("cls", ["GuidedBackprop", "Deconvolution"])
def test_functional_relu_is_silently_plain_gradient_in_captum(cls):
    """Pinned defect (peers.md): with functional ReLUs Captum's guided/deconv maps are the plain gradient."""
    net = _gap_net()
    functional = nn.Sequential(*[(_FunctionalReLU() if isinstance(m, nn.ReLU) else m) for m in net])
    model = from_torch(net)  # same weights, real ReLU layers
    x = np.random.default_rng(3).normal(size=(2, 3, 8, 8))
    target = np.array([1, 3])
    theirs = getattr(captum_attr, cls)(functional).attribute(_t(x), target=_tt(target))
    assert_agree(xattr.gradient(model, x, target), theirs)
    ours = (xattr.guided_backprop if cls == "GuidedBackprop" else xattr.deconvnet)(model, x, target)
    assert np.abs(ours - theirs.detach().numpy()).max() > 1e-3 * np.abs(ours).max()


# -- DeepLIFT and DeepSHAP ------------------------------------------------------------------------
def _refs(x, kind):
    rng = np.random.default_rng(11)
    if kind == "zero":
        return None
    if kind == "constant":
        return 0.1 * np.ones_like(x)
    return 0.3 * rng.normal(size=x.shape)


@pytest.mark.parametrize("ref", ["zero", "constant", "random"])
def test_deeplift_rescale(setup, ref):
    """Captum 0.9's DeepLift equals xattr's Rescale with ``maxpool="gradient"`` (multipliers routed to the
    input pass's argmax, as the DeepLIFT reference code), for every reference tried."""
    net, model, x, target, _ = setup
    r = _refs(x, ref)
    kw = {} if r is None else {"baselines": _t(r).detach()}
    theirs = captum_attr.DeepLift(net).attribute(_t(x), target=_tt(target), **kw)
    ours = xattr.deeplift(model, x, target, rule="rescale", **({} if r is None else {"reference": r}))
    assert_agree(ours, theirs)


def test_deeplift_maxpool_rescale_mode_is_not_captums(setup):
    """Pinned: xattr's ``maxpool="rescale"`` (summation-to-delta exact) is not what Captum 0.9 computes."""
    net, model, x, target, _ = setup
    if not any(isinstance(m, nn.MaxPool2d) for m in net):
        pytest.skip("this fixture has no max-pool")
    r = _refs(x, "random")
    theirs = captum_attr.DeepLift(net).attribute(_t(x), target=_tt(target), baselines=_t(r).detach()).detach().numpy()
    ours = xattr.deeplift(model, x, target, maxpool="rescale", reference=r)
    assert np.abs(ours - theirs).max() > 1e-3 * np.abs(theirs).max()


def test_deeplift_shap(setup):
    net, model, x, target, _ = setup
    refs = np.random.default_rng(12).normal(size=(4,) + x.shape[1:]) * 0.3
    theirs = captum_attr.DeepLiftShap(net).attribute(_t(x), baselines=_t(refs).detach(), target=_tt(target))
    assert_agree(xattr.deepshap(model, x, target, references=refs), theirs)


# -- LRP ------------------------------------------------------------------------------------------
class _FlattenInForward(nn.Module):
    """Captum's LRP has no rule for ``nn.Flatten`` (and its IdentityRule cannot change shapes), so the
    flatten is done in ``forward`` as Captum's own examples do."""

    def __init__(self, net):
        super().__init__()
        k = next(i for i, m in enumerate(net) if isinstance(m, nn.Flatten))
        self.features, self.head = net[:k], net[k + 1 :]

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


def _pool_epsilon(net, eps):
    from captum.attr._utils.lrp_rules import EpsilonRule

    for m in net.modules():
        if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            m.rule = EpsilonRule(epsilon=eps)


def _fold_bn_torch(net):
    """The torch net with every Conv2d -> BatchNorm2d pair folded into one Conv2d (as xattr's LRP does)."""
    mods, k = [], 0
    while k < len(net):
        m = net[k]
        if isinstance(m, nn.Conv2d) and k + 1 < len(net) and isinstance(net[k + 1], nn.BatchNorm2d):
            bn = net[k + 1]
            a = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            conv = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation).double()
            with torch.no_grad():
                conv.weight.copy_(m.weight * a[:, None, None, None])
                conv.bias.copy_(a * (m.bias - bn.running_mean) + bn.bias)
            mods.append(conv)
            k += 2
        else:
            mods.append(m)
            k += 1
    return nn.Sequential(*mods).eval()


def test_lrp_epsilon_agrees_when_pools_are_not_stabilised(setup):
    """Captum's LRP puts ε on the pools too; with their ε at 1e-300 (it then only guards 0/0) it is xattr's
    LRP-ε.  Captum also treats batch-norm as a layer of its own with an ε-rule; xattr (like Zennit's
    canonizers) folds it into the conv first, so Captum gets the folded net here."""
    net, model, x, target, _ = setup
    wrapped = _FlattenInForward(_fold_bn_torch(net))
    _pool_epsilon(wrapped, 1e-300)
    theirs = captum_attr.LRP(wrapped).attribute(_t(x), target=_tt(target))
    assert_agree(xattr.lrp(model, x, target, composite="epsilon", epsilon=1e-9), theirs)


def test_lrp_default_stabilises_pools_too(setup):
    """Pinned: with Captum's defaults (ε = 1e-9 on max-pool, average pools and batch-norm as well as on
    conv/linear) the maps differ from xattr's (pools: LRP-0/winner-take-all) by O(ε / |z|)."""
    net, model, x, target, _ = setup
    theirs = captum_attr.LRP(_FlattenInForward(net)).attribute(_t(x), target=_tt(target)).detach().numpy()
    ours = xattr.lrp(model, x, target, composite="epsilon", epsilon=1e-9)
    rel = np.abs(ours - theirs).max() / np.abs(theirs).max()
    assert 1e-13 < rel < 1e-5


# -- perturbation methods -------------------------------------------------------------------------
FLOAT32_EPS = float(np.finfo(np.float32).eps)


def _grid4(h, w):
    return ((np.arange(h)[:, None] * 2) // h) * 2 + (np.arange(w)[None, :] * 2) // w


@pytest.mark.parametrize("window,stride,baseline", [(4, 2, 0.0), (3, 3, 0.5), (5, 2, 0.0)])
def test_occlusion_mean_of_overlaps_returned_in_float32(setup, window, stride, baseline):
    """Captum's Occlusion averages overlapping windows as xattr's default ``aggregate="mean"``, but it
    returns float32 for float64 models: its window counts are float32 and the sum is cast with
    ``.float()`` before the division (captum/attr/_core/feature_ablation.py).  Pinned: the dtype, and
    agreement to float32 rounding of xattr's exact ``sum / count``."""
    net, model, x, target, _ = setup
    C = x.shape[1]
    theirs = captum_attr.Occlusion(net).attribute(
        _t(x), sliding_window_shapes=(C, window, window), strides=(C, stride, stride), baselines=baseline,
        target=_tt(target))
    assert theirs.dtype == torch.float32
    total = xattr.occlusion(model, x, target, window=window, stride=stride, baseline=baseline, aggregate="sum")
    mean = xattr.occlusion(model, x, target, window=window, stride=stride, baseline=baseline)
    count = np.divide(total, mean, out=np.ones_like(total), where=mean != 0)
    expected32 = total.astype(np.float32) / np.round(count).astype(np.float32)  # Captum's arithmetic
    ours = np.broadcast_to(mean, x.shape)
    assert_agree(np.broadcast_to(expected32, x.shape).astype(np.float64), theirs, rtol=2 * FLOAT32_EPS)
    assert_agree(ours, theirs, rtol=4 * FLOAT32_EPS)


def test_shapley_values_exact_but_float32(setup):
    """Captum's ShapleyValues enumerates all n! orderings (n·n! evaluations; xattr needs 2^n) and
    accumulates in ``torch.float`` (float32).  On a fixed 2x2 feature mask it equals xattr's exact
    ``shapley`` and ``kernel_shap`` (which enumerates every coalition when 2^M - 2 <= n_samples)
    up to float32 accumulation over the 4! = 24 orderings."""
    net, model, x, target, _ = setup
    seg = _grid4(*x.shape[2:])
    mask = torch.from_numpy(np.broadcast_to(seg, (1,) + x.shape[1:]).copy())
    theirs = captum_attr.ShapleyValues(net).attribute(_t(x), feature_mask=mask, target=_tt(target))
    assert theirs.dtype == torch.float32
    bound = 24 * 2 * FLOAT32_EPS
    assert_agree(np.broadcast_to(xattr.shapley(model, x, target, segments=seg), x.shape), theirs, rtol=bound)
    assert_agree(np.broadcast_to(xattr.kernel_shap(model, x, target, segments=seg, rng=0), x.shape), theirs, rtol=bound)
