"""The conventions module: dtype rules, validation messages, rng handling."""
import numpy as np
import pytest

from xattr._conventions import FINITE_BY_DOT_MIN_SIZE, all_finite, as_float_array, as_rng, check_image_batch, pair


def test_dtype_rules():
    assert as_float_array(np.arange(3)).dtype == np.float64
    assert as_float_array(np.ones(2, np.float32)).dtype == np.float32
    assert as_float_array([True, False]).dtype == np.float64
    with pytest.raises(TypeError, match="float32 or float64.*float16"):
        as_float_array(np.ones(2, np.float16))
    with pytest.raises(TypeError, match="complex"):
        as_float_array(np.ones(2, complex))


def test_shape_and_finiteness_messages():
    with pytest.raises(ValueError, match=r"x must have rank 4, got shape \(2, 3\) \(rank 2\)"):
        as_float_array(np.zeros((2, 3)), "x", ndim=4)
    with pytest.raises(ValueError, match="2 NaN/inf"):
        as_float_array([np.nan, 1.0, np.inf])
    with pytest.raises(ValueError, match=r"3 channel\(s\).*got shape \(1, 2, 4, 4\)"):
        check_image_batch(np.zeros((1, 2, 4, 4)), channels=3)
    with pytest.raises(ValueError, match="at least one image"):
        check_image_batch(np.zeros((0, 3, 4, 4)))


def test_rng_is_explicit():
    a = as_rng(5).normal(size=3)
    np.testing.assert_array_equal(a, np.random.default_rng(5).normal(size=3))
    g = np.random.default_rng(1)
    assert as_rng(g) is g
    with pytest.raises(TypeError, match="no hidden"):
        as_rng(None)
    with pytest.raises(TypeError):
        as_rng(1.5)


def test_pair():
    assert pair(3, "k") == (3, 3) and pair((1, 2), "k") == (1, 2)
    with pytest.raises(ValueError, match="non-negative"):
        pair(-1, "k")
    with pytest.raises(ValueError, match="pair"):
        pair((1, 2, 3), "k")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [7, FINITE_BY_DOT_MIN_SIZE, 3 * FINITE_BY_DOT_MIN_SIZE + 5])
def test_all_finite_equals_the_elementwise_test(dtype, size):
    """The dot-product test decides as ``isfinite(x).all()``, including squares that overflow and views."""
    rng = np.random.default_rng(size)
    base = rng.standard_normal(size).astype(dtype)
    huge = np.finfo(dtype).max
    cases = [base, base[::2], base.reshape(-1, 1)[::1]]
    for pos in (0, size // 2, size - 1):
        for v in (np.nan, np.inf, -np.inf, huge, -huge):
            x = base.copy()
            x[pos] = v
            cases += [x, x[::-1]]
        x = base.copy()
        x[pos], x[(pos + 1) % size] = huge, np.nan  # an overflowing square and a NaN: the fallback finds the NaN
        cases.append(x)
    for x in cases:
        assert all_finite(x) == bool(np.all(np.isfinite(x)))
