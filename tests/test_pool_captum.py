"""DeepLIFT through max-pool against Captum 0.9 (float64, same weights): ``maxpool="captum"`` is Captum's rule.

Captum's max-pool rule (``captum.attr._core.deep_lift.maxpool``) acts only where neither neighbour of the
``nn.MaxPool2d`` is a module Captum hooks (ReLU, Sigmoid, ...): its backward hooks record a module's output
gradient in a tensor hook that runs before the next module's input hook has replaced it.  So:

* Linear/Conv -> MaxPool -> Linear/Conv: Captum = xattr ``maxpool="captum"``, both conserve;
* ReLU -> MaxPool (VGG, AlexNet): the ReLU's rule reads the plain max-pool gradient, Captum = xattr
  ``maxpool="gradient"`` and misses summation-to-delta;
* MaxPool -> ReLU: the max-pool rule is fed the ReLU's plain gradient instead of its multiplier: Captum matches
  no chain-rule mode and misses summation-to-delta (reproduced step by step below).
See docs/peers.md, "DeepLIFT through max-pool".
"""
import warnings

import numpy as np
import pytest

import xattr
from xattr.io import from_torch
from xattr.nn import Conv2D, Dense, Flatten, MaxPool2D, Sequential

from extras import need  # tests/extras.py: optional packages of the test suite

pytestmark = pytest.mark.oracle
torch = need("torch", reason="the peer comparisons need torch: pip install 'xattr-ref[oracle]'")
captum_attr = need("captum.attr", reason="Captum is an optional extra: pip install 'xattr-ref[captum]'")
nn = torch.nn


def _trace(model, x):
    """Every layer's input, output and cache on a forward pass of a chain: ``[Cache(x, y, cache)]``."""
    from xattr.nn.base import Cache

    out = []
    for layer in model:
        y, cache = layer.forward(x)
        out.append(Cache(x=x, y=y, cache=cache))
        x = y
    return out


def _captum(net, x, ref, target):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a, d = captum_attr.DeepLift(net).attribute(torch.tensor(x), baselines=torch.tensor(ref), target=target,
                                                   return_convergence_delta=True)
    return a.detach().numpy(), d.detach().numpy()


def test_captums_own_linear_maxpool_linear_case():
    """Captum's LinearMaxPoolLinearModel (identity Linear -> MaxPool1d(4) -> Linear(1, 1) of weight 1) and its
    test_deeplift_basic expectation, from Captum itself and from xattr's 1x1 conv -> (1, 4) max-pool -> dense."""
    from captum.testing.helpers.basic_models import LinearMaxPoolLinearModel

    x = np.ones((2, 4))
    refs = np.array([[1.0, 2, 3, 9], [4, 8, 6, 7]])
    theirs, _ = _captum(LinearMaxPoolLinearModel().double(), x, refs, 0)
    np.testing.assert_array_equal(theirs, [[0, 0, 0, -8], [0, -7, 0, 0]])
    ours = Sequential(Conv2D(1, 1, 1, bias=False), MaxPool2D((1, 4)), Flatten(), Dense(1, 1, bias=False))
    ours[0].weight, ours[3].weight = np.ones((1, 1, 1, 1)), np.ones((1, 1))
    a = xattr.deeplift(ours, x.reshape(2, 1, 1, 4), 0, refs.reshape(2, 1, 1, 4), maxpool="captum")
    np.testing.assert_array_equal(a.reshape(2, 4), theirs)


def _net(relu_before, relu_after, seed=0):
    torch.manual_seed(seed)
    layers = [nn.Conv2d(3, 4, 3, padding=1)] + ([nn.ReLU()] if relu_before else []) + [nn.MaxPool2d(2)]
    layers += ([nn.ReLU()] if relu_after else []) + [nn.Conv2d(4, 5, 3, padding=1), nn.ReLU(), nn.Flatten(),
                                                      nn.Linear(5 * 4 * 4, 3)]
    net = nn.Sequential(*layers).double().eval()
    with torch.no_grad():
        for m in net:
            if getattr(m, "bias", None) is not None:
                m.bias.normal_(0, 0.3)
    return net


def _case(seed=1):
    gen = np.random.default_rng(seed)
    return gen.normal(size=(3, 3, 8, 8)), gen.normal(size=(3, 3, 8, 8))


def _rel(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


def test_captum_mode_equals_captum_where_its_rule_acts():
    net = _net(relu_before=False, relu_after=False)
    x, ref = _case()
    theirs, delta = _captum(net, x, ref, 1)
    ours, gap = xattr.deeplift(from_torch(net), x, 1, ref, maxpool="captum", return_delta=True)
    assert _rel(ours, theirs) < 1e-10
    assert np.abs(delta).max() < 1e-10 and np.abs(gap).max() < 1e-12
    assert _rel(xattr.deeplift(from_torch(net), x, 1, ref, maxpool="rescale"), theirs) > 0.1  # another split


def _overlapping_net(seed=0, ceil_mode=False):
    """Conv -> MaxPool2d(3, stride 2) -> Linear: Captum's max-pool rule acts, and the windows overlap (as in
    SqueezeNet, ResNet's stem and AlexNet)."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.MaxPool2d(3, 2, ceil_mode=ceil_mode), nn.Flatten(),
                        nn.Linear(3 * (5 if ceil_mode else 4) ** 2, 4)).double().eval()
    with torch.no_grad():
        net[0].bias.normal_(0, 0.3)
    return net


def test_captums_unpooling_drops_an_input_that_wins_two_overlapping_windows():
    """The cause, in torch alone: ``max_unpool2d`` assigns, so an input that is the maximum of two windows receives
    one window's value, not their sum (the same defect tangermeme fixed in its own DeepLIFT, its PR #95)."""
    F = torch.nn.functional
    x = -np.abs(np.random.default_rng(0).normal(size=(1, 1, 5, 5)))
    x[0, 0, 2, 2] = 1.0  # the centre lies in all four 3x3 windows at stride 2, and is each one's maximum
    y, idx = F.max_pool2d(torch.tensor(x), 3, 2, return_indices=True)
    assert idx.flatten().tolist() == [12, 12, 12, 12]
    back = F.max_unpool2d(torch.ones_like(y), idx, 3, 2, output_size=(5, 5))
    assert back.sum().item() == 1.0  # one window's unit, not four


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_with_overlapping_windows_captum_misses_delta_and_the_captum_mode_conserves(ceil_mode):
    """Where windows overlap Captum's rule loses the contributions its unpooling drops: its own convergence delta
    is far from 0, while xattr's ``maxpool="captum"`` (the same cross-maximum rule, accumulated) conserves."""
    net = _overlapping_net(ceil_mode=ceil_mode)
    gen = np.random.default_rng(3)
    x, ref = gen.normal(size=(2, 2, 12, 12)), np.zeros((2, 2, 12, 12))
    theirs, delta = _captum(net, x, ref, 1)
    ours, gap = xattr.deeplift(from_torch(net), x, 1, ref, maxpool="captum", return_delta=True)
    assert np.abs(gap).max() < 1e-12
    assert np.abs(delta).max() > 1e-2
    assert _rel(ours, theirs) > 0.1


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="Captum's DeepLift unpools with max_unpool2d, which assigns: an input that is the maximum "
                          "of two overlapping windows keeps one window's contribution (docs/peers.md)")
def test_captum_mode_equals_captum_with_overlapping_windows():
    net = _overlapping_net()
    gen = np.random.default_rng(3)
    x, ref = gen.normal(size=(2, 2, 12, 12)), np.zeros((2, 2, 12, 12))
    theirs, _ = _captum(net, x, ref, 1)
    assert _rel(xattr.deeplift(from_torch(net), x, 1, ref, maxpool="captum"), theirs) < 1e-10


def test_after_a_relu_module_captum_is_the_gradient_mode_and_misses_delta():
    net = _net(relu_before=True, relu_after=False)
    x, ref = _case()
    theirs, delta = _captum(net, x, ref, 1)
    model = from_torch(net)
    assert _rel(xattr.deeplift(model, x, 1, ref, maxpool="gradient"), theirs) < 1e-10
    assert np.abs(delta).max() > 1e-2  # Captum's own convergence delta
    _, gap = xattr.deeplift(model, x, 1, ref, maxpool="captum", return_delta=True)
    assert np.abs(gap).max() < 1e-12


def test_before_a_relu_module_captums_rule_reads_the_plain_gradient():
    """Captum's max-pool hook receives the gradient its output tensor had before the ReLU's hook replaced it:
    the ReLU's *plain* gradient, with each pass's own mask (the input's for the share sent to the input's
    switches, the reference's for the reference's).  Written out with xattr's cells it is Captum's map."""
    net = _net(relu_before=False, relu_after=True)
    x, ref = _case()
    theirs, delta = _captum(net, x, ref, 1)
    model = from_torch(net)
    assert np.abs(delta).max() > 1e-2
    for mode in ("gradient", "rescale", "captum"):
        assert _rel(xattr.deeplift(model, x, 1, ref, maxpool=mode), theirs) > 1e-2, mode
    conv, pool, relu = model[0], model[1], model[2]
    tx, tr = _trace(model, x), _trace(model, ref)
    g = np.zeros((3, 3))
    g[:, 1] = 1.0
    for i in range(len(model) - 1, 2, -1):  # DeepLIFT multipliers down to the ReLU's output
        g = model[i].backward(g, tx[i].cache, "rescale", inp=tx[i], ref=tr[i])
    plain_x, plain_r = relu.backward(g, tx[2].cache, "gradient"), relu.backward(g, tr[2].cache, "gradient")
    m_relu = relu.backward(g, tx[2].cache, "rescale", inp=tx[2], ref=tr[2])  # what flows on into the max-pool
    top = np.maximum(tx[1].y, tr[1].y)
    U = pool.route(plain_x * (top - tr[1].y), tx[1].cache) + pool.route(plain_r * (tx[1].y - top), tr[1].cache)
    dx = tx[1].x - tr[1].x
    m_pool = np.divide(U, dx, out=pool.route(m_relu, tx[1].cache), where=np.abs(dx) >= 1e-10)
    assert _rel(conv.backward(m_pool, tx[0].cache, "rescale") * (x - ref), theirs) < 1e-10


def test_captum_is_two_half_passes_whose_max_pool_rule_mixes_them():
    """Captum runs input and reference as one batch, and each half carries its own multipliers: where its
    max-pool rule is overwritten (after a ReLU) each half routes through its own switches, where a Rescale falls
    back to the gradient each uses its own.  Its max-pool rule, where it acts, takes the input half's multipliers
    for the input's switches and the reference half's for the reference's.  Written out with xattr's cells this
    is Captum's map on the conformance model ``pool_first_ties`` (first layer a max-pool, then conv-ReLU-max-pool),
    where no single xattr mode is (tests/test_captum.py)."""
    from xattr.conformance.models import build_inputs, build_models

    spec = build_models()["pool_first_ties"]
    net, model = spec.to_torch(), spec.to_xattr()
    x, target = build_inputs(spec)
    ref = 0.3 * np.random.default_rng(1).normal(size=x.shape)
    theirs, _ = _captum(net, x, ref, target.tolist())
    tx, tr = _trace(model, x), _trace(model, ref)
    gx = np.zeros_like(tx[-1].y)
    gx[np.arange(len(x)), target] = 1.0
    gr = gx
    for i in range(len(model) - 1, 0, -1):
        layer = model[i]
        if isinstance(layer, MaxPool2D):  # after a ReLU: Captum's rule has no effect, each half its own switches
            gx, gr = layer.route(gx, tx[i].cache), layer.route(gr, tr[i].cache)
        else:  # the same Δ for both halves; the gradient fallback from each half's own pass
            gx = layer.backward(gx, tx[i].cache, "rescale", inp=tx[i], ref=tr[i])
            gr = layer.backward(gr, tr[i].cache, "rescale", inp=tx[i], ref=tr[i])
    pool = model[0]
    top = np.maximum(tx[0].y, tr[0].y)
    U = pool.route(gx * (top - tr[0].y), tx[0].cache) + pool.route(gr * (tx[0].y - top), tr[0].cache)
    dx = x - ref
    m = np.divide(U, dx, out=pool.route(gx, tx[0].cache), where=np.abs(dx) >= 1e-10)
    assert _rel(m * dx, theirs) < 1e-12
