"""Conformance against Zennit (its attributors and composites): same weights, same inputs, float64.

Zennit imports ``torchvision`` (for its ResNet canonizers), so torch and torchvision must be a matching pair:
the ``zennit``/``oracle``/``dev`` extras pin torch 2.14.1 with torchvision 0.29.1.  See docs/peers.md.
"""
import numpy as np
import pytest

import xattr

from extras import need  # tests/extras.py: optional packages of the test suite

pytestmark = pytest.mark.oracle
torch = need("torch", "the Zennit comparisons")
zennit = need("zennit", "the Zennit comparisons")
from zennit import canonizers as zcan  # noqa: E402
from zennit import composites as zc  # noqa: E402
from zennit import rules as zr  # noqa: E402
from zennit import types as zt  # noqa: E402
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


# -- LRP composites ---------------------------------------------------------------------------
# Zennit's relevance at the output is the seed it is given (one-hot): xattr's ``output="one"``.
# Zennit adds a stabiliser (default 1e-6) to the denominators of z⁺, αβ, γ and of the average
# pool's Norm rule; xattr divides exactly (0/0 taken as 0).  With ``stabilizer=1e-300`` (which then
# only guards 0/0) the composites agree to 1e-10; with Zennit's default they differ by O(1e-6/|z|).

def _bn_net(bn_eps):
    torch.manual_seed(2)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4, eps=bn_eps), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(6 * 2 * 2, 5), nn.ReLU(),
        nn.Linear(5, 4),
    ).double().eval()
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.3, 0.3)
        net[1].running_var.uniform_(0.5, 1.5)
        net[1].weight.uniform_(0.5, 1.5)
        net[1].bias.uniform_(-0.2, 0.2)
    return net


@pytest.fixture(scope="module")
def lrp_setup():
    # batch-norm eps 1e-300: see test_batchnorm_canonizer_leaves_a_scaling for why the default is not used here
    net = _bn_net(1e-300)
    x = np.random.default_rng(6).normal(size=(3, 3, 8, 8))
    return net, from_torch(net), x, np.array([0, 2, 3])


def _zennit_lrp(net, x, target, composite):
    return _zennit(net, x, target, composite)


ALPHA1_BETA0_CONV = {xattr.nn.Dense: "epsilon", xattr.nn.Conv2D: ("alphabeta", {"alpha": 1.0, "beta": 0.0})}
COMPOSITES = [
    ("EpsilonPlusFlat", "epsilon_plus_flat", {}),
    ("EpsilonAlpha2Beta1", "epsilon_alpha2_beta1", {}),
    ("EpsilonGammaBox", "epsilon_gamma_box", {"low": -3.0, "high": 3.0}),
    # Zennit's ZPlus is α1β0 with negative inputs allowed (its docstring says so); xattr's "zplus" is the
    # deep-Taylor z⁺ for a ≥ 0.  They differ only where a conv sees negative inputs (here: the first).
    ("EpsilonPlus", ALPHA1_BETA0_CONV, {}),
]


@pytest.mark.parametrize("case", range(len(COMPOSITES)), ids=[c[0] for c in COMPOSITES])
def test_lrp_composites_agree_without_stabiliser(lrp_setup, case):
    zname, ours_comp, kw = COMPOSITES[case]
    net, model, x, target = lrp_setup
    comp = getattr(zc, zname)(canonizers=[zcan.SequentialMergeBatchNorm()], stabilizer=1e-300, **kw)
    theirs = _zennit_lrp(net, x, target, comp)
    assert_agree(xattr.lrp(model, x, target, composite=ours_comp, output="one", **kw), theirs)


def test_lrp_epsilon_layer_map(lrp_setup):
    net, model, x, target = lrp_setup
    comp = zc.LayerMapComposite(
        layer_map=[(zt.Activation, zr.Pass()), (zt.AvgPool, zr.Norm(stabilizer=1e-300)),
                   (zt.Convolution, zr.Epsilon(epsilon=0.1)), (zt.Linear, zr.Epsilon(epsilon=0.1))],
        canonizers=[zcan.SequentialMergeBatchNorm()])
    theirs = _zennit_lrp(net, x, target, comp)
    assert_agree(xattr.lrp(model, x, target, composite="epsilon", epsilon=0.1, output="one"), theirs)


@pytest.mark.parametrize("case", range(len(COMPOSITES)), ids=[c[0] for c in COMPOSITES])
def test_lrp_default_stabiliser_is_a_small_pinned_difference(lrp_setup, case):
    zname, ours_comp, kw = COMPOSITES[case]
    net, model, x, target = lrp_setup
    theirs = _zennit_lrp(net, x, target, getattr(zc, zname)(canonizers=[zcan.SequentialMergeBatchNorm()], **kw))
    ours = xattr.lrp(model, x, target, composite=ours_comp, output="one", **kw)
    rel = np.abs(ours - theirs.detach().numpy()).max() / np.abs(ours).max()
    assert 1e-12 < rel < 1e-3


def test_epsilon_plus_zplus_on_negative_inputs_differs(lrp_setup):
    """Pinned: Zennit's EpsilonPlus is not xattr's ``epsilon_plus`` when the input has negative values."""
    net, model, x, target = lrp_setup
    assert (x < 0).any()
    comp = zc.EpsilonPlus(canonizers=[zcan.SequentialMergeBatchNorm()], stabilizer=1e-300)
    theirs = _zennit_lrp(net, x, target, comp).detach().numpy()
    ours = xattr.lrp(model, x, target, composite="epsilon_plus", output="one")
    assert np.abs(ours - theirs).max() > 0.1 * np.abs(theirs).max()


def test_batchnorm_canonizer_leaves_a_scaling():
    """Pinned Zennit defect: ``SequentialMergeBatchNorm`` merges the batch-norm into the conv and then
    sets it to mean 0, var 1, weight 1, bias 0, which still computes ``x / sqrt(1 + eps)``: the canonized
    network is not the original function (each batch-norm scales by ``(1 + eps)^-1/2``, eps = 1e-5 by
    default).  Zennit's map equals xattr's LRP on the twin whose batch-norm has that extra scale."""
    net = _bn_net(1e-5)
    x = np.random.default_rng(6).normal(size=(3, 3, 8, 8))
    target = np.array([0, 2, 3])
    comp = zc.EpsilonAlpha2Beta1(canonizers=[zcan.SequentialMergeBatchNorm()], stabilizer=1e-300)
    theirs = _zennit_lrp(net, x, target, comp)
    twin = from_torch(net)
    bn = twin["1"]
    s = 1 / np.sqrt(1 + bn.eps)
    bn.weight, bn.bias = bn.weight * s, bn.bias * s
    assert_agree(xattr.lrp(twin, x, target, composite="epsilon_alpha2_beta1", output="one"), theirs)
    faithful = xattr.lrp(from_torch(net), x, target, composite="epsilon_alpha2_beta1", output="one")
    assert np.abs(faithful - theirs.detach().numpy()).max() > 1e-7 * np.abs(faithful).max()


# -- other attributors --------------------------------------------------------------------------
def test_occlusion_attributor_scores_instead_of_drops():
    """Pinned differences of definition.  Zennit's ``Occlusion`` accumulates, over the windows covering a
    pixel, the *score* of the perturbed image (windows rolled around the border, summed), and its default
    ``occlusion_fn`` (``occlude_independent(invert=False)``) keeps the window and zeroes everything else.
    xattr's occlusion is the *drop* of the score when the window is hidden (Zeiler & Fergus 2014), overlaps
    averaged.  With windows that tile the image (window = stride dividing H and W) each pixel sees one window:
    with ``invert=True`` (hide the window) Zennit = S_t(x) − xattr; its default is S_t(x ⊙ window)."""
    from functools import partial

    from zennit.attribution import Occlusion, occlude_independent

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 3)).double().eval()
    model = from_torch(net)
    x = np.random.default_rng(8).normal(size=(2, 3, 8, 8))
    target = np.array([0, 2])
    rows = np.arange(2)
    onehot = torch.eye(3, dtype=torch.float64)[torch.from_numpy(target)]
    seed = lambda out: out * onehot  # noqa: E731 - a tensor would be used as the "score" itself
    hide = partial(occlude_independent, fill_fn=torch.zeros_like, invert=True)
    with Occlusion(model=net, window=4, stride=4, occlusion_fn=hide) as attributor:
        _, theirs = attributor(torch.from_numpy(x.copy()), seed)
    score = model.forward(x)[rows, target]
    ours = score[:, None, None, None] - xattr.occlusion(model, x, target, window=4, stride=4)
    assert_agree(np.broadcast_to(ours, x.shape), theirs)
    with Occlusion(model=net, window=4, stride=4) as attributor:
        _, default = attributor(torch.from_numpy(x.copy()), seed)
    keep_only = np.zeros_like(x)
    for r in (0, 4):
        for c in (0, 4):
            kept = np.zeros_like(x)
            kept[:, :, r : r + 4, c : c + 4] = x[:, :, r : r + 4, c : c + 4]
            keep_only[:, :, r : r + 4, c : c + 4] = model.forward(kept)[rows, target][:, None, None, None]
    assert_agree(keep_only, default)


def test_integrated_gradients_attributor_is_right_riemann(setup):
    """Zennit's ``IntegratedGradients`` is the right Riemann sum, nodes ``linspace(1/n, 1, n)`` (float32 by
    default: exact for n = 16), weights 1/n, zero baseline: xattr's ``quadrature="riemann_right"``."""
    from zennit.attribution import IntegratedGradients

    net, model, x, target = setup
    seed = torch.eye(4, dtype=torch.float64)[torch.from_numpy(target)]
    with IntegratedGradients(model=net, n_iter=16) as attributor:
        _, theirs = attributor(torch.from_numpy(x.copy()), seed)
    assert_agree(xattr.integrated_gradients(model, x, target, steps=16, quadrature="riemann_right"), theirs)


def test_smoothgrad_attributor_has_a_noise_free_sample(setup):
    """Pinned difference: Zennit's ``SmoothGrad(noise_level, n_iter)`` uses σ = noise_level·(max − min) per
    image (as xattr's ``sigma_is="range"``) but only n_iter − 1 noisy samples: its last sample is the clean
    input.  With xattr's noise injected (``torch.randn_like`` replaced for the call):
    Zennit(m) = ((m − 1)·xattr.smoothgrad(n = m − 1) + gradient) / m."""
    from zennit.attribution import SmoothGrad

    net, model, x, target = setup
    m, level, seed = 5, 0.2, 3
    z = np.random.default_rng(seed).standard_normal((len(x) * (m - 1),) + x.shape[1:])
    per_sample = iter(torch.from_numpy(z.reshape((len(x), m - 1) + x.shape[1:])[:, s].copy()) for s in range(m - 1))
    seed_out = torch.eye(4, dtype=torch.float64)[torch.from_numpy(target)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch, "randn_like", lambda t, *a, **k: next(per_sample))
        with SmoothGrad(model=net, noise_level=level, n_iter=m) as attributor:
            _, theirs = attributor(torch.from_numpy(x.copy()), seed_out)
    noisy = xattr.get_method("smoothgrad")(model, x, target, n=m - 1, sigma=level, sigma_is="range", rng=seed)
    assert_agree(((m - 1) * noisy + xattr.gradient(model, x, target)) / m, theirs)
    assert np.abs(noisy - theirs.detach().numpy()).max() > 1e-3 * np.abs(noisy).max()
