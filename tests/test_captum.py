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
