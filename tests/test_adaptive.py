"""Adaptive pools: naive twins and PyTorch (ties included), autograd, adjoint, regular bins = fixed windows,
DeepLIFT/LRP cells, exact IG and incremental occlusion through them."""
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import xattr
from xattr.nn import (
    AdaptiveAvgPool2D,
    AdaptiveMaxPool2D,
    AvgPool2D,
    Conv2D,
    Dense,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    ReLU,
    RuleNotDefined,
    Sequential,
    reference,
)
from xattr.nn.adaptive import adaptive_bins
from xattr.nn.base import Cache
from xattr.nn.region import region_map

from autograd_twins import vjp as ag_vjp

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - torch is the optional 'captum' extra
    torch = F = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is the oracle here: pip install 'xattr-ref[captum]'")

small_ints = st.sampled_from([-1.0, 0.0, 1.0, 2.0])


@st.composite
def adaptive_cases(draw, values=small_ints):
    H, W = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    out = (draw(st.integers(1, 8)), draw(st.integers(1, 8)))
    x = draw(arrays(np.float64, (draw(st.integers(1, 2)), draw(st.integers(1, 2)), H, W), elements=values))
    return out, x


def test_bins_by_hand():
    """PyTorch's bins: [floor(i H / Ho), ceil((i + 1) H / Ho)): overlapping for 5 -> 3, repeated for 2 -> 3."""
    np.testing.assert_array_equal(np.stack(adaptive_bins(5, 3)), [[0, 1, 3], [2, 4, 5]])
    np.testing.assert_array_equal(np.stack(adaptive_bins(2, 3)), [[0, 0, 1], [1, 2, 2]])
    np.testing.assert_array_equal(np.stack(adaptive_bins(6, 3)), [[0, 2, 4], [2, 4, 6]])


@given(adaptive_cases())
@example(((3, 3), np.ones((1, 1, 5, 5))))
@example(((7, 7), np.arange(4.0).reshape(1, 1, 2, 2)))
def test_adaptive_pools_equal_naive_twins_with_ties(case):
    out, x = case
    for layer, kind in ((AdaptiveMaxPool2D(out), "max"), (AdaptiveAvgPool2D(out), "avg")):
        y, cache = layer.forward(x)
        g = np.random.default_rng(0).normal(size=y.shape)
        y_ref, gx_ref = reference.adaptive_pool2d_forward_backward(x, g, out, kind)
        np.testing.assert_allclose(y, y_ref, rtol=1e-14, atol=1e-14)
        gx = layer.backward(g, cache)
        np.testing.assert_allclose(gx, gx_ref, rtol=1e-13, atol=1e-14)
        if kind == "avg":
            assert np.isclose(np.sum(y * g), np.sum(x * gx), rtol=1e-12, atol=1e-12)  # adjoint identity
            np.testing.assert_allclose(layer.jvp(x, cache), y, rtol=1e-14, atol=1e-14)  # linear: jvp = forward


@needs_torch
@given(adaptive_cases())
def test_adaptive_pools_equal_torch_float64_with_ties(case):
    out, x = case
    for layer, fn in ((AdaptiveMaxPool2D(out), F.adaptive_max_pool2d), (AdaptiveAvgPool2D(out), F.adaptive_avg_pool2d)):
        xt = torch.tensor(x, requires_grad=True)
        yt = fn(xt, out)
        u = np.random.default_rng(1).normal(size=tuple(yt.shape))
        (yt * torch.tensor(u)).sum().backward()
        y, cache = layer.forward(x)
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-14, atol=1e-14)
        np.testing.assert_allclose(layer.backward(u, cache), xt.grad.numpy(), rtol=1e-13, atol=1e-14)


@given(adaptive_cases(values=st.floats(-3, 3)))
def test_adaptive_max_gradient_equals_autograd_and_central_differences_away_from_ties(case):
    import autograd.numpy as anp

    out, x = case
    x = (np.random.default_rng(0).permutation(x.size).reshape(x.shape) - x.size / 2) * 0.1  # distinct values
    layer = AdaptiveMaxPool2D(out)
    y, cache = layer.forward(x)
    rng = np.random.default_rng(2)
    u, v = rng.normal(size=y.shape), rng.normal(size=x.shape)
    gx = layer.backward(u, cache)

    def f(z):  # independent: autograd's max over each bin, stacked
        rows = [adaptive_bins(x.shape[2], out[0])[k] for k in (0, 1)]
        cols = [adaptive_bins(x.shape[3], out[1])[k] for k in (0, 1)]
        return anp.stack([anp.stack([anp.max(z[:, :, a:b, c:d], axis=(2, 3)) for c, d in zip(*cols)], axis=-1)
                          for a, b in zip(*rows)], axis=-2)

    np.testing.assert_allclose(gx, ag_vjp(f, x, u), rtol=1e-12, atol=1e-12)
    h = 1e-6
    fd = np.sum(u * (layer(x + h * v) - layer(x - h * v))) / (2 * h)
    assert np.isclose(fd, np.sum(gx * v), rtol=1e-6, atol=1e-8)
    dx = rng.normal(size=x.shape)
    assert np.isclose(np.sum(layer.jvp(dx, cache) * u), np.sum(dx * gx), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["gradient", "rescale", "captum"])
def test_regular_bins_are_the_fixed_window_pools_in_every_rule(mode):
    """H = k·Ho: AdaptiveMaxPool2D(Ho) is MaxPool2D(k) and AdaptiveAvgPool2D(Ho) is AvgPool2D(k), rule by rule."""
    rng = np.random.default_rng(3)
    x, ref = rng.integers(-2, 3, size=(2, 2, 6, 8)).astype(float), rng.integers(-2, 3, size=(2, 2, 6, 8)).astype(float)
    for ada, fixed in ((AdaptiveMaxPool2D((3, 2)), MaxPool2D((2, 4))), (AdaptiveAvgPool2D((3, 2)), AvgPool2D((2, 4)))):
        (ya, ca), (yf, cf) = ada.forward(x), fixed.forward(x)
        np.testing.assert_array_equal(ya, yf)
        g = rng.normal(size=ya.shape)
        (ya0, ca0), (yf0, cf0) = ada.forward(ref), fixed.forward(ref)
        for rule in ("gradient", "deconvnet", "guided", "rescale", "lrp0", "lrp_epsilon"):
            opts = {}
            if rule == "rescale" and isinstance(ada, AdaptiveMaxPool2D):  # the max-pools' option only
                opts = dict(maxpool=mode)
            if rule in ("rescale", "lrp0", "lrp_epsilon"):
                a = ada.backward(g, ca, rule, inp=Cache(x=x, y=ya), ref=Cache(x=ref, y=ya0, cache=ca0), **opts)
                b = fixed.backward(g, cf, rule, inp=Cache(x=x, y=yf), ref=Cache(x=ref, y=yf0, cache=cf0), **opts)
            else:
                a, b = ada.backward(g, ca, rule), fixed.backward(g, cf, rule)
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-14, err_msg=rule)
    if mode == "gradient":  # proportional LRP through the bins' sums
        ada, fixed = AdaptiveMaxPool2D((3, 2)), MaxPool2D((2, 4))
        (ya, ca), (yf, cf) = ada.forward(x), fixed.forward(x)
        a = ada.backward(g, ca, "lrp0", inp=Cache(x=x, y=ya), maxpool="proportional")
        np.testing.assert_allclose(a, fixed.backward(g, cf, "lrp0", inp=Cache(x=x, y=yf), maxpool="proportional"),
                                   rtol=1e-13, atol=1e-14)


def test_adaptive_avg_to_one_is_the_global_average():
    x = np.random.default_rng(4).normal(size=(2, 3, 5, 7))
    y, cache = AdaptiveAvgPool2D(1).forward(x)
    np.testing.assert_allclose(y[:, :, 0, 0], GlobalAvgPool2D()(x), rtol=1e-14)
    assert AdaptiveAvgPool2D((None, 2))(x).shape == (2, 3, 5, 2)


@pytest.mark.parametrize("mode", ["captum", "rescale"])
@given(adaptive_cases())
def test_deeplift_through_adaptive_max_sums_to_delta(mode, case):
    out, x = case
    layer = AdaptiveMaxPool2D(out)
    ref = np.random.default_rng(5).integers(-1, 2, size=x.shape).astype(float)
    (y, c), (y0, c0) = layer.forward(x), layer.forward(ref)
    g = np.random.default_rng(6).normal(size=y.shape)
    m = layer.backward(g, c, "rescale", inp=Cache(x=x, y=y), ref=Cache(x=ref, y=y0, cache=c0), maxpool=mode)
    assert np.isclose(np.sum(m * (x - ref)), np.sum(g * (y - y0)), rtol=1e-12, atol=1e-12)


def _net(pool, hw=9):
    m = Sequential(Conv2D(2, 3, 3, padding=1, rng=0), ReLU(), Conv2D(3, 3, 3, padding=1, rng=1), pool, Flatten(),
                   Dense(3 * 3 * 2, 2, rng=2))
    m[0].bias, m[2].bias = np.array([0.2, -0.1, 0.05]), np.array([-0.1, 0.1, 0.2])
    return m


@pytest.mark.parametrize("pool", [AdaptiveMaxPool2D((3, 2)), AdaptiveAvgPool2D((3, 2))])
def test_methods_through_adaptive_pools(pool):
    """Exact IG is complete (the max's switches are kinks), DeepLIFT sums to delta, incremental occlusion (a
    global region map for the average, none for the max) equals full recomputation."""
    m = _net(pool)
    x = np.random.default_rng(7).normal(size=(2, 2, 9, 7))
    res = xattr.exact_integrated_gradients(m, x, 1)
    assert np.abs(res.delta).max() < 1e-10
    for mode in ("captum", "rescale"):
        _, delta = xattr.deeplift(m, x, 1, reference=0.2, maxpool=mode, return_delta=True)
        assert np.abs(delta).max() < 1e-12
    assert (region_map(pool) is None) == isinstance(pool, AdaptiveMaxPool2D)
    inc = xattr.occlusion(m, x, 0, window=3, stride=2, incremental=True)
    np.testing.assert_allclose(
        inc, xattr.occlusion(m, x, 0, window=3, stride=2, incremental=False), rtol=1e-11, atol=1e-13
    )
    assert np.abs(xattr.lrp(m, x, 1, "epsilon")).max() > 0


def test_adaptive_float32_input_untouched_and_bad_sizes():
    x = np.random.default_rng(8).normal(size=(1, 2, 5, 5)).astype(np.float32)
    x0 = x.copy()
    for layer in (AdaptiveMaxPool2D(3), AdaptiveAvgPool2D((2, 3))):
        y, cache = layer.forward(x)
        assert y.dtype == np.float32 and layer.backward(np.ones_like(y), cache).dtype == np.float32
    np.testing.assert_array_equal(x, x0)
    with pytest.raises(ValueError, match=">= 1"):
        AdaptiveAvgPool2D(0)
    with pytest.raises(ValueError, match="an int or a pair"):
        AdaptiveMaxPool2D((1, 2, 3))
    with pytest.raises(ValueError, match="rank 4"):
        AdaptiveMaxPool2D(2).forward(np.zeros((2, 5, 5)))
    with pytest.raises(RuleNotDefined, match="no backward rule 'nope'"):
        AdaptiveMaxPool2D(2).backward(
            np.zeros((1, 1, 2, 2)), AdaptiveMaxPool2D(2).forward(np.zeros((1, 1, 4, 4)))[1], "nope"
        )
