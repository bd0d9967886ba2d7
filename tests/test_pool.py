"""Pooling: naive twins (ties included), the stated tie policy, autograd, adjoints, errors."""
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from autograd_twins import avgpool2d as ag_avgpool
from autograd_twins import maxpool2d as ag_maxpool
from autograd_twins import vjp as ag_vjp
from xattr import MAXPOOL_TIE_POLICY
from xattr.nn import AvgPool2D, GlobalAvgPool2D, MaxPool2D, reference


@st.composite
def pool_cases(draw, values=st.floats(-3, 3, allow_nan=False, width=64)):
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    H, W = draw(st.integers(k[0], 7)), draw(st.integers(k[1], 7))
    # hypothesis repeats values (fill), so ties and exact zeros are common
    x = draw(arrays(np.float64, (draw(st.integers(1, 2)), draw(st.integers(1, 2)), H, W), elements=values))
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
