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
from extras import need  # noqa: E402  (tests/extras.py: optional packages of the test suite)

torch = need("torch", "the Captum comparisons")
captum_attr = need("captum.attr", "the Captum comparisons")
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


def test_deeplift_maxpool_rescale_mode_is_not_captums():
    """Pinned: xattr's ``maxpool="rescale"`` (summation-to-delta exact) is not what Captum 0.9 computes."""
    net = _gap_net()  # has a max-pool
    model = from_torch(net)
    x = np.random.default_rng(7).normal(size=(3, 3, 8, 8))
    target = np.array([0, 2, 4])
    r = _refs(x, "random")
    theirs = captum_attr.DeepLift(net).attribute(_t(x), target=_tt(target), baselines=_t(r).detach()).detach().numpy()
    ours = xattr.deeplift(model, x, target, maxpool="rescale", reference=r)
    assert np.abs(ours - theirs).max() > 1e-3 * np.abs(theirs).max()
    assert_agree(xattr.deeplift(model, x, target, maxpool="gradient", reference=r), theirs)


def test_deeplift_maxpool_as_first_layer_breaks_summation_to_delta():
    """Pinned Captum difference: on a net whose first layer is a max-pool (the conformance model
    ``pool_first_ties``), Captum 0.9's DeepLift matches neither xattr max-pool mode and its attributions
    miss Δt by several percent; xattr's ``maxpool="rescale"`` sums to Δt to round-off."""
    from xattr.conformance.models import build_inputs, build_models

    spec = build_models()["pool_first_ties"]
    net, model = spec.to_torch(), spec.to_xattr()
    x, target = build_inputs(spec)
    ref = 0.3 * np.random.default_rng(1).normal(size=x.shape)
    rows = np.arange(len(x))
    delta_t = model.forward(x)[rows, target] - model.forward(ref)[rows, target]
    theirs = captum_attr.DeepLift(net).attribute(_t(x), target=_tt(target), baselines=_t(ref).detach()).detach().numpy()
    gap = lambda a: np.abs(a.reshape(len(x), -1).sum(axis=1) - delta_t).max() / np.abs(delta_t).max()  # noqa: E731
    exact = xattr.deeplift(model, x, target, reference=ref, maxpool="rescale")
    assert gap(exact) < 1e-12
    assert gap(theirs) > 1e-2
    for mode in ("gradient", "rescale"):
        ours = xattr.deeplift(model, x, target, reference=ref, maxpool=mode)
        assert np.abs(ours - theirs).max() > 1e-2 * np.abs(theirs).max()


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


# -- integrated gradients -------------------------------------------------------------------------
# Captum's IG rounds its quadrature to float32 even for float64 models: the weights by
# ``torch.tensor(step_sizes).float()`` (integrated_gradients.py) and the Riemann nodes by
# ``torch.linspace(...)`` in torch's default dtype.  With n = 16 (weights 1/16, 1/32 and nodes k/16
# exact in float32) and the default dtype float64, the rounding vanishes and the Riemann rules agree
# to 1e-10; Gauss-Legendre weights are never float32-exact: pinned by rebuilding Captum's number.
def _ig():
    return xattr.get_method("integrated_gradients")


@pytest.fixture
def float64_default():
    """Captum builds its Riemann nodes with ``torch.linspace(...).tolist()`` in torch's default dtype."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


IG_STEPS = 16


def _captum_ig(net, x, target, method, n=IG_STEPS, baseline=None):
    kw = {} if baseline is None else {"baselines": _t(baseline).detach()}
    return captum_attr.IntegratedGradients(net).attribute(_t(x), target=_tt(target), n_steps=n, method=method, **kw)


def _quadrature_sum(model, x, target, alphas, weights, baseline=0.0):
    """``(x - x') Σ_k w_k ∂F(x' + α_k (x - x'))/∂x`` from xattr's gradient (a test-side IG)."""
    base = np.broadcast_to(baseline, x.shape)
    total = sum(w * xattr.gradient(model, base + a * (x - base), target) for a, w in zip(alphas, weights))
    return (x - base) * total


@pytest.mark.parametrize("method", ["riemann_left", "riemann_right", "riemann_middle"])
def test_integrated_gradients_riemann_rules_agree(setup, float64_default, method):
    ig = _ig()
    net, model, x, target, _ = setup
    base = 0.2 * np.random.default_rng(4).normal(size=x.shape)
    theirs = _captum_ig(net, x, target, method, baseline=base)
    assert_agree(ig(model, x, target, baseline=base, steps=IG_STEPS, quadrature=method), theirs)


def test_integrated_gradients_gausslegendre_weights_rounded_to_float32(setup, float64_default):
    """Pinned: Captum's Gauss-Legendre nodes are float64 but its weights are cast to float32; the sum with
    xattr's gradients at the same nodes and float32-rounded weights reproduces Captum to 1e-10, and xattr's
    (float64 weights) differs from Captum by the rounding, ~1e-8 relative."""
    ig = _ig()
    net, model, x, target, _ = setup
    n = IG_STEPS
    theirs = _captum_ig(net, x, target, "gausslegendre", n)
    t, v = np.polynomial.legendre.leggauss(n)
    assert_agree(
        _quadrature_sum(model, x, target, 0.5 * (1 + t), (0.5 * v).astype(np.float32).astype(np.float64)), theirs
    )
    ours = ig(model, x, target, steps=n, quadrature="gausslegendre")
    rel = np.abs(ours - theirs.detach().numpy()).max() / np.abs(ours).max()
    assert 1e-12 < rel < n * FLOAT32_EPS


def test_integrated_gradients_captum_trapezoid_is_short_by_one_step(setup, float64_default):
    """Pinned Captum defect: its trapezoid weights are [1/2n, 1/n, ..., 1/2n] on linspace(0, 1, n): they
    sum to (n-1)/n, so Captum's map is exactly (n-1)/n times the true trapezoid rule's (xattr's)."""
    ig = _ig()
    net, model, x, target, _ = setup
    n = IG_STEPS
    theirs = _captum_ig(net, x, target, "riemann_trapezoid", n)
    assert_agree((n - 1) / n * ig(model, x, target, steps=n, quadrature="riemann_trapezoid"), theirs)


def test_integrated_gradients_trapezoid_completeness_gap_on_a_linear_model(float64_default):
    """On a linear model every quadrature whose weights sum to 1 is exact, so Σ IG = F(x) - F(0);
    Captum's trapezoid gives (n-1)/n of it (the |ΔF|/n completeness gap of peers.md)."""
    ig = _ig()
    torch.manual_seed(5)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).double().eval()
    model = from_torch(net)
    x = np.random.default_rng(5).normal(size=(2, 3, 2, 2))
    target = np.array([0, 2])
    delta_f = model.forward(x)[np.arange(2), target] - model.forward(np.zeros_like(x))[np.arange(2), target]
    n = IG_STEPS
    ours = ig(model, x, target, steps=n, quadrature="riemann_trapezoid").reshape(2, -1).sum(axis=1)
    theirs = _captum_ig(net, x, target, "riemann_trapezoid", n).detach().numpy().reshape(2, -1).sum(axis=1)
    np.testing.assert_allclose(ours, delta_f, rtol=1e-12)
    np.testing.assert_allclose(theirs, (n - 1) / n * delta_f, rtol=1e-12)


def test_integrated_gradients_riemann_nodes_and_weights_float32_by_default(setup):
    """Pinned: with torch's default dtype (float32) and n = 10, Captum's nodes (float32 linspace) and weights
    (float32 1/10) are rounded; rebuilding with those roundings reproduces Captum to 1e-10, and xattr's
    float64 rule differs by ~1e-8."""
    ig = _ig()
    net, model, x, target, _ = setup
    n = 10
    theirs = _captum_ig(net, x, target, "riemann_left", n)
    alphas = torch.linspace(0, 1 - 1 / n, n, dtype=torch.float32).double().numpy()
    weights = np.full(n, np.float32(1 / n), dtype=np.float64)
    assert_agree(_quadrature_sum(model, x, target, alphas, weights), theirs)
    ours = ig(model, x, target, steps=n, quadrature="riemann_left")
    rel = np.abs(ours - theirs.detach().numpy()).max() / np.abs(ours).max()
    assert 1e-12 < rel < n * FLOAT32_EPS


@pytest.mark.parametrize("method", ["riemann_middle", "gausslegendre", "riemann_trapezoid"])
def test_integrated_gradients_against_xattr_exact(setup, float64_default, method):
    """Both libraries' quadratures against the exact path integral (xattr's ``quadrature="exact"``, which
    walks the path's linear pieces and satisfies completeness to round-off).  The true rules' error shrinks
    from n = 8 to n = 64 and is the same for Captum up to its float32 weights; Captum's trapezoid keeps
    its (n-1)/n shortfall, so its error stays of order |IG|/n."""
    ig = _ig()
    net, model, x, target, _ = setup
    exact = ig(model, x, target, quadrature="exact")
    rows = np.arange(len(x))
    delta_f = model.forward(x)[rows, target] - model.forward(np.zeros_like(x))[rows, target]
    np.testing.assert_allclose(exact.reshape(len(x), -1).sum(axis=1), delta_f, rtol=1e-10, atol=1e-12)
    scale = np.linalg.norm(exact)
    errs = {}
    for n in (8, 64):
        theirs = _captum_ig(net, x, target, method, n).detach().numpy()
        ours = ig(model, x, target, steps=n, quadrature=method)
        errs[n] = (np.linalg.norm(ours - exact), np.linalg.norm(theirs - exact))
        if method != "riemann_trapezoid":
            assert abs(errs[n][0] - errs[n][1]) <= n * FLOAT32_EPS * scale
    assert errs[64][0] < errs[8][0]
    if method == "riemann_trapezoid":
        assert errs[64][1] > 0.5 * scale / 64


# -- NoiseTunnel ----------------------------------------------------------------------------------
# Captum draws its noise with ``torch.normal(0, stdev_expanded)`` where ``stdev_expanded`` is built
# with ``torch.tensor(stdev)`` (torch's default dtype: float32 noise for float64 models) in the order of
# ``input.repeat_interleave(nt_samples, dim=0)`` (image-major, as xattr).  The tests inject xattr's noise
# (σ·z with z from the same seeded Generator) into Captum by replacing ``torch.normal`` for the call.
def _smoothing(name):
    return xattr.get_method(name)


@pytest.mark.parametrize("xattr_name,nt_type", [("smoothgrad", "smoothgrad"), ("smoothgrad_squared", "smoothgrad_sq"),
                                                 ("vargrad", "vargrad")])
def test_noise_tunnel_with_injected_noise(setup, monkeypatch, xattr_name, nt_type):
    fn = _smoothing(xattr_name)
    net, model, x, target, _ = setup
    n, sigma, seed = 6, 0.3, 17
    z = np.random.default_rng(seed).standard_normal((len(x) * n,) + x.shape[1:])
    noise = torch.from_numpy(sigma * z)

    def fixed_normal(mean, std, *args, **kwargs):
        assert tuple(std.shape) == tuple(noise.shape), "Captum's noise layout changed"
        return noise.to(std.dtype) if std.dtype == torch.float64 else noise

    monkeypatch.setattr(torch, "normal", fixed_normal)
    nt = captum_attr.NoiseTunnel(captum_attr.Saliency(net))
    theirs = nt.attribute(_t(x), nt_type=nt_type, nt_samples=n, stdevs=sigma, target=_tt(target), abs=False)
    monkeypatch.undo()
    ours = fn(model, x, target, n=n, sigma=sigma, sigma_is="absolute", rng=seed)
    assert_agree(ours, theirs)


def test_noise_tunnel_own_noise_is_float32(setup):
    """Pinned: without injection, Captum's noise for a float64 input is drawn in float32 (``torch.tensor(stdev)``
    takes torch's default dtype)."""
    net, model, x, target, _ = setup
    seen = []
    real = torch.normal

    def spy(mean, std, *args, **kwargs):
        seen.append(std.dtype)
        return real(mean, std, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch, "normal", spy)
        captum_attr.NoiseTunnel(captum_attr.Saliency(net)).attribute(
            _t(x), nt_samples=2, stdevs=0.1, target=_tt(target)
        )
    assert seen == [torch.float32]
