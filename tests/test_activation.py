"""ReLU: the three rules of the table on hand-worked examples, the kink, and properties."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from xattr import RELU_GRAD_AT_ZERO
from xattr.nn import ReLU

X = np.array([[1.0, -2.0, 0.0, 3.0, -1.0]])
R = np.array([[-0.5, 2.0, 4.0, 1.5, -3.0]])


def _rule(rule, x=X, r=R):
    layer = ReLU()
    _, cache = layer.forward(x)
    return layer.backward(r, cache, rule)


def test_gradient_rule_by_hand():
    # R · 1[X > 0]; at X = 0 the derivative is RELU_GRAD_AT_ZERO = 0
    assert RELU_GRAD_AT_ZERO == 0.0
    np.testing.assert_array_equal(_rule("gradient"), [[-0.5, 0.0, 0.0, 1.5, 0.0]])


def test_deconvnet_rule_by_hand():
    # max(R, 0), whatever X is
    np.testing.assert_array_equal(_rule("deconvnet"), [[0.0, 2.0, 4.0, 1.5, 0.0]])


def test_guided_rule_by_hand():
    # max(R, 0) · 1[X > 0]
    np.testing.assert_array_equal(_rule("guided"), [[0.0, 0.0, 0.0, 1.5, 0.0]])


def test_forward_and_derivative_at_the_kink():
    x = np.array([[-1.0, 0.0, 2.0]])
    np.testing.assert_array_equal(ReLU()(x), [[0.0, 0.0, 2.0]])
    np.testing.assert_array_equal(_rule("gradient", x, np.ones_like(x)), [[0.0, 0.0, 1.0]])


values = st.sampled_from([-2.0, -0.5, 0.0, 0.5, 3.0])


@given(arrays(np.float64, (2, 3, 4), elements=values), arrays(np.float64, (2, 3, 4), elements=values))
def test_guided_is_zero_wherever_gradient_or_deconvnet_is_zero(x, r):
    guided, grad, dec = (_rule(k, x, r) for k in ("guided", "gradient", "deconvnet"))
    assert np.all(guided[(grad == 0) | (dec == 0)] == 0)
    # and equals both where neither zeroes it
    both = (grad != 0) & (dec != 0)
    np.testing.assert_array_equal(guided[both], grad[both])
    np.testing.assert_array_equal(guided[both], dec[both])


@given(arrays(np.float64, (3, 5), elements=st.floats(-5, 5).filter(lambda v: abs(v) > 1e-3)))
def test_gradient_rule_matches_central_differences_away_from_zero(x):
    u = np.random.default_rng(0).normal(size=x.shape)
    g = _rule("gradient", x, u)
    h = 1e-5
    for v in np.random.default_rng(1).normal(size=(3,) + x.shape):
        fd = np.sum(u * (ReLU()(x + h * v) - ReLU()(x - h * v))) / (2 * h)
        assert np.isclose(fd, np.sum(g * v), rtol=1e-8, atol=1e-10)


def test_relu_preserves_float32_and_input():
    x = np.array([[-1.0, 2.0]], dtype=np.float32)
    y = ReLU()(x)
    assert y.dtype == np.float32 and x[0, 0] == -1.0
