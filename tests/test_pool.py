"""Pooling: naive twins (ties included), the stated tie policy, autograd, adjoints, errors."""
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from xattr import MAXPOOL_TIE_POLICY
from xattr.nn import AvgPool2D, GlobalAvgPool2D, MaxPool2D, reference
from xattr.nn.base import Cache
from xattr.nn.conv import unpad, window_slices
from xattr.nn.pool import pool_output_size
from xattr.nn.region import region_map

from autograd_twins import avgpool2d as ag_avgpool
from autograd_twins import maxpool2d as ag_maxpool
from autograd_twins import vjp as ag_vjp

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - torch is the optional 'captum' extra
    torch = F = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is the oracle here: pip install 'xattr-ref[captum]'")


#: the default values of the cases: bounded finite floats
FLOATS = st.floats(-3, 3, allow_nan=False, width=64)


@st.composite
def pool_cases(draw, values=FLOATS, options=False):
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    H, W = draw(st.integers(k[0], 7)), draw(st.integers(k[1], 7))
    # hypothesis repeats values (fill), so ties and exact zeros are common
    x = draw(arrays(np.float64, (draw(st.integers(1, 2)), draw(st.integers(1, 2)), H, W), elements=values))
    if options:  # ceil_mode, count_include_pad
        return k, s, p, x, draw(st.booleans()), draw(st.booleans())
    return k, s, p, x


small_ints = st.sampled_from([-1.0, 0.0, 1.0, 2.0])


@given(pool_cases(values=small_ints))
@example(((2, 2), (2, 2), (0, 0), np.ones((1, 1, 4, 4))))
@example(((3, 3), (2, 2), (1, 1), np.zeros((1, 1, 5, 5))))
def test_maxpool_equals_naive_twin_with_ties(case):
    k, s, p, x = case
    layer = MaxPool2D(k, s, p)
    y, cache = layer.forward(x)
    g = np.random.default_rng(0).normal(size=y.shape)
    y_ref, gx_ref = reference.maxpool2d_forward_backward(x, g, k, s, p)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_allclose(layer.backward(g, cache), gx_ref, rtol=1e-14, atol=1e-14)


def test_tie_policy_first_in_row_major_window_order():
    assert MAXPOOL_TIE_POLICY == "first"
    x = np.array([[[[0.0, 5.0], [5.0, 5.0]]]])
    layer = MaxPool2D(2)
    y, cache = layer.forward(x)
    np.testing.assert_array_equal(layer.backward(np.ones_like(y), cache), [[[[0, 1], [0, 0]]]])
    for rule in ("deconvnet", "guided"):  # switches are shared by all three rules
        np.testing.assert_array_equal(layer.backward(-np.ones_like(y), cache, rule), [[[[0, -1], [0, 0]]]])


@given(pool_cases(values=small_ints))
@example(((2, 2), (2, 2), (0, 0), np.ones((1, 1, 4, 4))))
@example(((3, 3), (2, 2), (1, 1), np.zeros((1, 1, 5, 5))))
def test_tie_split_equals_autograd_at_ties_in_every_rule_that_routes_through_the_switch(case):
    """``tie="split"`` is autograd's ``balanced_eq``: the vjp of ``np.max`` over the windows, ties everywhere
    (values from {-1, 0, 1, 2}); the forward-mode derivative is its adjoint."""
    k, s, p, x = case
    layer = MaxPool2D(k, s, p, tie="split")
    y, cache = layer.forward(x)
    np.testing.assert_array_equal(y, MaxPool2D(k, s, p).forward(x)[0])  # the policy changes no value
    rng = np.random.default_rng(3)
    u, v = rng.normal(size=y.shape), rng.normal(size=x.shape)
    want = ag_vjp(lambda z: ag_maxpool(z, layer), x, u)
    for rule in ("gradient", "deconvnet", "guided"):
        np.testing.assert_allclose(layer.backward(u, cache, rule), want, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(layer.backward(u, cache, "rescale"), want, rtol=1e-13, atol=1e-13)  # DeepLIFT's
    np.testing.assert_allclose(layer.backward(u, cache, "lrp_epsilon"), want, rtol=1e-13, atol=1e-13)  # LRP's w-t-a
    assert np.isclose(np.sum(layer.jvp(v, cache) * u), np.sum(v * want), rtol=1e-12, atol=1e-12)  # adjoint


def test_tie_split_by_hand_and_the_policy_is_checked_and_saved(tmp_path):
    x = np.array([[[[0.0, 5.0], [5.0, 5.0]]]])
    layer = MaxPool2D(2, tie="split")
    y, cache = layer.forward(x)
    np.testing.assert_allclose(layer.backward(np.full_like(y, 3.0), cache), [[[[0, 1], [1, 1]]]], rtol=1e-15)
    assert MaxPool2D(2).tie == "first" and "tie" not in vars(MaxPool2D(2))  # the default: attributes as before
    assert "tie='split'" in layer.extra_repr() and "tie" not in MaxPool2D(2).extra_repr()
    for bad in ("mean", "First", None, 1):
        with pytest.raises(ValueError, match="tie must be 'first' .PyTorch's switch. or 'split' .autograd's"):
            MaxPool2D(2, tie=bad)
    from xattr import models
    from xattr.nn import Conv2D, Dense, GlobalAvgPool2D, ReLU, Sequential

    model = Sequential(Conv2D(1, 2, 3, padding=1, rng=0), ReLU(), MaxPool2D(2, tie="split"), GlobalAvgPool2D(),
                       Dense(2, 3, rng=1))
    models.save(model, tmp_path / "m")
    back = models.load(str(tmp_path / "m"))
    pools = [layer for layer in back if isinstance(layer, MaxPool2D)]
    assert [p.tie for p in pools] == ["split"]
    xs = np.random.default_rng(0).integers(0, 2, size=(2, 1, 6, 6)).astype(np.float64)  # ties after the ReLU
    np.testing.assert_array_equal(back.vjp(xs, np.ones((2, 3))), model.vjp(xs, np.ones((2, 3))))


def test_overlapping_windows_accumulate_at_a_shared_maximum():
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 1.0  # the centre belongs to all four 3x3/stride-2 windows
    layer = MaxPool2D(3, stride=2)
    y, cache = layer.forward(x)
    assert y.shape == (1, 1, 2, 2) and np.all(y == 1)
    gx = layer.backward(np.arange(1.0, 5.0).reshape(1, 1, 2, 2), cache)
    assert gx[0, 0, 2, 2] == 10.0 and gx.sum() == 10.0


def _distinct(x, seed=0):
    """Same shape, all values distinct and well separated (no ties: away from kinks)."""
    perm = np.random.default_rng(seed).permutation(x.size)
    return (perm.reshape(x.shape) - x.size / 2) * 0.1


@given(pool_cases())
def test_maxpool_gradient_equals_autograd_and_central_differences_away_from_ties(case):
    k, s, p, x = case
    x = _distinct(x)
    layer = MaxPool2D(k, s, p)
    y, cache = layer.forward(x)
    rng = np.random.default_rng(2)
    u, v = rng.normal(size=y.shape), rng.normal(size=x.shape)
    gx = layer.backward(u, cache)
    np.testing.assert_allclose(gx, ag_vjp(lambda z: ag_maxpool(z, layer), x, u), rtol=1e-12, atol=1e-12)
    h = 1e-6  # values are 0.1 apart: the switches do not move
    fd = np.sum(u * (layer(x + h * v) - layer(x - h * v))) / (2 * h)
    assert np.isclose(fd, np.sum(gx * v), rtol=1e-6, atol=1e-8)


@given(pool_cases())
def test_avgpool_equals_naive_twin_autograd_and_adjoint(case):
    k, s, p, x = case
    layer = AvgPool2D(k, s, p)
    y, cache = layer.forward(x)
    u = np.random.default_rng(0).normal(size=y.shape)
    y_ref, gx_ref = reference.avgpool2d_forward_backward(x, u, k, s, p)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    gx = layer.backward(u, cache)
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gx, ag_vjp(lambda z: ag_avgpool(z, layer), x, u), rtol=1e-12, atol=1e-12)
    assert np.isclose(np.sum(y * u), np.sum(x * gx), rtol=1e-12, atol=1e-12)


def test_global_average_pool_adjoint_and_values():
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 5))
    layer = GlobalAvgPool2D()
    y, cache = layer.forward(x)
    np.testing.assert_allclose(y, x.mean(axis=(2, 3)))
    u = np.random.default_rng(1).normal(size=y.shape)
    gx = layer.backward(u, cache)
    assert np.isclose(np.sum(y * u), np.sum(x * gx), rtol=1e-13)
    gx[0, 0, 0, 0] = 99.0  # a writable array of its own, not a broadcast view


def test_pool_float32_preserved_and_input_untouched():
    x = np.random.default_rng(0).normal(size=(1, 2, 6, 6)).astype(np.float32)
    x0 = x.copy()
    for layer in (MaxPool2D(2), AvgPool2D(3, 2, 1), GlobalAvgPool2D()):
        y, cache = layer.forward(x)
        assert y.dtype == np.float32 and layer.backward(np.ones_like(y), cache).dtype == np.float32
    np.testing.assert_array_equal(x, x0)


def test_pool_bad_input_and_parameters():
    with pytest.raises(ValueError, match="rank 4"):
        MaxPool2D(2).forward(np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="smaller than the kernel"):
        MaxPool2D(3).forward(np.zeros((1, 1, 2, 2)))
    with pytest.raises(ValueError, match="at most half"):
        MaxPool2D(2, padding=2)
    with pytest.raises(ValueError, match=">= 1"):
        AvgPool2D(2, stride=0)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        GlobalAvgPool2D().forward(np.zeros((2, 3)))


# -- ceil_mode and count_include_pad (PyTorch's semantics) ------------------------------------------------
@given(pool_cases(values=small_ints, options=True))
@example(((2, 2), (2, 2), (1, 1), np.arange(25.0).reshape(1, 1, 5, 5), True, True))  # the "start inside" rule
@example(((3, 3), (2, 2), (0, 0), np.ones((1, 1, 6, 6)), True, False))
def test_ceil_mode_and_count_include_pad_equal_the_naive_twins_with_ties(case):
    k, s, p, x, ceil, count = case
    mx, av = MaxPool2D(k, s, p, ceil_mode=ceil), AvgPool2D(k, s, p, ceil_mode=ceil, count_include_pad=count)
    y, cache = mx.forward(x)
    g = np.random.default_rng(0).normal(size=y.shape)
    y_ref, gx_ref = reference.maxpool2d_forward_backward(x, g, k, s, p, ceil)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_allclose(mx.backward(g, cache), gx_ref, rtol=1e-14, atol=1e-14)
    y, cache = av.forward(x)
    y_ref, gx_ref = reference.avgpool2d_forward_backward(x, g, k, s, p, ceil, count)
    np.testing.assert_allclose(y, y_ref, rtol=1e-13, atol=1e-13)
    gx = av.backward(g, cache)
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(gx, ag_vjp(lambda z: ag_avgpool(z, av), x, g), rtol=1e-12, atol=1e-13)
    assert np.isclose(np.sum(y * g), np.sum(x * gx), rtol=1e-12, atol=1e-12)  # adjoint identity


@needs_torch
@given(pool_cases(values=small_ints, options=True))
def test_pools_equal_torch_float64_with_ties(case):
    """Output sizes, values and gradients against ``F.max_pool2d``/``F.avg_pool2d`` (PyTorch picks the first maximum
    too)."""
    k, s, p, x, ceil, count = case
    for layer, fn in (
        (MaxPool2D(k, s, p, ceil_mode=ceil), lambda t: F.max_pool2d(t, k, s, p, ceil_mode=ceil)),
        (AvgPool2D(k, s, p, ceil_mode=ceil, count_include_pad=count),
         lambda t: F.avg_pool2d(t, k, s, p, ceil_mode=ceil, count_include_pad=count)),
    ):
        xt = torch.tensor(x, requires_grad=True)
        yt = fn(xt)
        u = np.random.default_rng(1).normal(size=tuple(yt.shape))
        (yt * torch.tensor(u)).sum().backward()
        y, cache = layer.forward(x)
        assert y.shape == tuple(yt.shape)
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-14, atol=1e-14)
        np.testing.assert_allclose(layer.backward(u, cache), xt.grad.numpy(), rtol=1e-14, atol=1e-14)


def test_ceil_mode_output_sizes_by_hand():
    # floor((6 - 3) / 2) + 1 = 2, ceil: 3 (a last window of 2 columns)
    assert pool_output_size(6, 3, 2, 0) == 2 and pool_output_size(6, 3, 2, 0, ceil_mode=True) == 3
    # ceil((5 + 2 - 2) / 2) + 1 = 4, but window 4 would start at 3·2 − 1 = 5 = H: past the input, dropped
    assert pool_output_size(5, 2, 2, 1, ceil_mode=True) == 3
    layer = MaxPool2D(3, 2, ceil_mode=True)
    assert layer.output_hw((1, 1, 6, 7)) == (3, 3) and layer.pads_for((6, 7)) == ((0, 1), (0, 0))
    x = np.arange(36.0).reshape(1, 1, 6, 6)
    np.testing.assert_array_equal(layer(x)[0, 0, :, -1], [17.0, 29.0, 35.0])  # the partial last column
    # the partial window's average divides by the positions it covers (2 x 3, then 2 x 2 in the corner)
    avg = AvgPool2D(3, 2, ceil_mode=True)(x)
    assert avg[0, 0, 2, 2] == np.mean(x[0, 0, 4:, 4:]) and avg[0, 0, 0, 2] == np.mean(x[0, 0, :3, 4:])


def test_count_include_pad_by_hand():
    x = np.ones((1, 1, 2, 2))
    assert AvgPool2D(2, 1, 1)(x)[0, 0, 0, 0] == 0.25  # the corner window holds one input and three zeros
    assert AvgPool2D(2, 1, 1, count_include_pad=False)(x)[0, 0, 0, 0] == 1.0
    assert AvgPool2D(2, 1, 1).forward(x)[1].divisor == 4 and AvgPool2D(2, 1, 1, count_include_pad=False).forward(x)[
        1
    ].divisor.shape == (3, 3)


def test_region_maps_step_aside_where_they_cannot_express_the_window():
    """A ceil-mode overhang depends on the input size and a divisor without the padding on the position: the
    incremental occlusion stops before such a pool, and gives the full recomputation's numbers."""
    import xattr
    from xattr.nn import Conv2D, Dense, Flatten, ReLU, Sequential

    assert region_map(MaxPool2D(2)) is not None and region_map(AvgPool2D(3, 1, 1)) is not None
    assert region_map(MaxPool2D(3, 2, ceil_mode=True)) is None
    assert region_map(AvgPool2D(3, 1, 1, count_include_pad=False)) is None
    assert region_map(AvgPool2D(3, 1, 0, count_include_pad=False)) is not None  # nothing to leave out
    for pool in (MaxPool2D(3, 2, ceil_mode=True), AvgPool2D(3, 1, 1, count_include_pad=False)):
        ho, wo = pool.output_hw((1, 3, 10, 10))
        m = Sequential(Conv2D(2, 3, 3, padding=1, rng=0), ReLU(), Conv2D(3, 3, 3, padding=1, rng=1), pool, Flatten(),
                       Dense(3 * ho * wo, 2, rng=2))
        x = np.random.default_rng(0).normal(size=(2, 2, 10, 10))
        inc = xattr.occlusion(m, x, 1, window=3, stride=2, incremental=True)
        np.testing.assert_allclose(
            inc, xattr.occlusion(m, x, 1, window=3, stride=2, incremental=False), rtol=1e-12, atol=1e-13
        )


def test_exact_ig_through_a_ceil_mode_max_pool_is_complete():
    import xattr
    from xattr.nn import Conv2D, Dense, Flatten, ReLU, Sequential

    m = Sequential(
        Conv2D(2, 3, 3, rng=0), ReLU(), MaxPool2D(3, 2, ceil_mode=True), Flatten(), Dense(3 * 3 * 3, 2, rng=1)
    )
    m[0].bias = np.array([0.2, -0.1, 0.05])
    x = np.random.default_rng(1).normal(size=(2, 2, 9, 9))
    res = xattr.exact_integrated_gradients(m, x, 1)
    assert np.abs(res.delta).max() < 1e-10 and res.segments.min() > 1


def test_pool_options_are_checked():
    with pytest.raises(TypeError, match="ceil_mode must be a bool"):
        MaxPool2D(2, ceil_mode="yes")
    with pytest.raises(TypeError, match="count_include_pad must be a bool"):
        AvgPool2D(2, count_include_pad=1)
    assert "ceil_mode=True" in repr(MaxPool2D(2, ceil_mode=True))
    assert "count_include_pad=False" in repr(AvgPool2D(2, count_include_pad=False))


# -- DeepLIFT through max-pool: the three modes -------------------------------------------------------
def _deeplift_pool(layer, x, ref, g, mode):
    y, cache = layer.forward(x)
    y0, rcache = layer.forward(ref)
    return layer.backward(g, cache, "rescale", inp=Cache(x=x, y=y), ref=Cache(x=ref, y=y0, cache=rcache), maxpool=mode)


def test_captum_mode_reproduces_captums_hand_computed_case():
    """Captum's test_deeplift_basic (LinearMaxPoolLinearModel): max over 4 values, x = ones, references [1, 2, 3, 9]
    and [4, 8, 6, 7] -> [[0, 0, 0, -8], [0, -7, 0, 0]]: the shortfall goes to the reference's maximum."""
    layer = MaxPool2D((1, 4))
    x = np.ones((2, 1, 1, 4))
    ref = np.array([[1.0, 2, 3, 9], [4, 8, 6, 7]]).reshape(2, 1, 1, 4)
    g = np.ones((2, 1, 1, 1))
    contrib = _deeplift_pool(layer, x, ref, g, "captum") * (x - ref)
    np.testing.assert_array_equal(contrib.reshape(2, 4), [[0, 0, 0, -8], [0, -7, 0, 0]])
    # "gradient" sends the multiplier 1 to the input's first maximum: Δx there is 0 and −3, so it explains 0 and
    # −3 of Δy = −8 and −7; "rescale" sends Δy/Δx_a to the input's maximum where it moved (row 2: Δx_a = −3) or
    # else Δy/Δx_b to the reference's (row 1)
    np.testing.assert_array_equal((_deeplift_pool(layer, x, ref, g, "gradient") * (x - ref)).reshape(2, 4),
                                  [[0, 0, 0, 0], [-3, 0, 0, 0]])
    np.testing.assert_allclose((_deeplift_pool(layer, x, ref, g, "rescale") * (x - ref)).reshape(2, 4),
                               [[0, 0, 0, -8], [-7, 0, 0, 0]])


@given(pool_cases(values=small_ints, options=True), st.integers(0, 10**6))
def test_captum_and_rescale_modes_sum_to_delta_and_captum_multipliers_are_secant_slopes(case, seed):
    """Per window Σ_i m_i Δx_i = m Δy (summation-to-delta of the layer), ties and Δx = 0 included; Captum's
    multipliers lie in [0, 1] (times m) where Δx ≠ 0."""
    k, s, p, x, ceil, _ = case
    layer = MaxPool2D(k, s, p, ceil_mode=ceil)
    rng = np.random.default_rng(seed)
    ref = rng.integers(-1, 2, size=x.shape).astype(float)  # ties between input and reference maxima
    y, _ = layer.forward(x)
    g = rng.normal(size=y.shape)
    dy = g * (y - layer(ref))
    for mode in ("captum", "rescale"):
        m = _deeplift_pool(layer, x, ref, g, mode)
        assert np.isclose(np.sum(m * (x - ref)), dy.sum(), rtol=1e-12, atol=1e-12), mode
    m = _deeplift_pool(layer, x, ref, np.abs(g), "captum")
    moved = x != ref
    assert np.all(m[moved] >= -1e-15)
    # the multiplier at an input is at most the sum of the upstream multipliers of the windows it belongs to
    assert np.all(m <= layer.spread_sum(np.abs(g), layer.forward(x)[1]) + 1e-12)


def test_captum_mode_without_a_reference_is_refused_and_modes_are_checked():
    layer = MaxPool2D(2)
    y, cache = layer.forward(np.zeros((1, 1, 2, 2)))
    with pytest.raises(ValueError, match="needs the layer's input/output"):
        layer.backward(np.ones_like(y), cache, "rescale", maxpool="captum")
    with pytest.raises(ValueError, match="must be one of"):
        layer.backward(np.ones_like(y), cache, "rescale", maxpool="exact")


@pytest.mark.parametrize("k, s, p", [(3, 2, 1), (2, 2, 0), (3, 3, 0), (3, 1, 1)])
def test_route_is_the_where_selection_bit_for_bit_signed_zeros_included(k, s, p):
    """The multiply-and-add route equals ``Σ_k np.where(switch == k, g, 0)`` scattered back, bit for bit: a
    negative g is +0.0 (not -0.0) wherever it is not routed, whether windows overlap or not."""
    layer = MaxPool2D(k, s, p)
    rng = np.random.default_rng(k * 10 + s)
    x = rng.normal(size=(2, 3, 9, 8))
    y, cache = layer.forward(x)
    g = -np.abs(rng.normal(size=y.shape))
    gx = layer.route(g, cache)
    want = np.zeros(cache.padded_shape)
    for n, (i, j) in enumerate(layer._offsets()):
        want[(slice(None), slice(None)) + window_slices(i, j, cache.out_hw, layer.stride, (1, 1))] += np.where(
            cache.switch == n, g, 0
        )
    want = unpad(want, cache.pads)
    np.testing.assert_array_equal(gx, want)
    np.testing.assert_array_equal(np.signbit(gx), np.signbit(want))
