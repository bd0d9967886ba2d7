"""Dense: autograd, finite differences, the adjoint, parameter gradients, errors."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from xattr.nn import Dense


@given(st.integers(1, 4), st.integers(1, 5), st.integers(1, 5), st.integers(0, 1000), st.booleans())
def test_dense_gradients_against_closed_forms_and_differences(n, fin, fout, seed, bias):
    rng = np.random.default_rng(seed)
    layer = Dense(fin, fout, bias=bias, rng=seed)
    if bias:
        layer.bias = rng.normal(size=fout)
    x, u = rng.normal(size=(n, fin)), rng.normal(size=(n, fout))
    y, cache = layer.forward(x)
    np.testing.assert_allclose(y, x @ layer.weight.T + (layer.bias if bias else 0), rtol=1e-13)
    gx = layer.backward(u, cache)
    h = 1e-6
    for k in range(fin):  # full Jacobian by central differences along each input
        e = np.zeros_like(x)
        e[:, k] = h
        fd = np.sum(u * (layer(x + e) - layer(x - e)), axis=1) / (2 * h)
        np.testing.assert_allclose(gx[:, k], fd, rtol=1e-7, atol=1e-9)
    pg = layer.param_grads(u, cache)
    np.testing.assert_allclose(pg["weight"], np.einsum("no,ni->oi", u, x), rtol=1e-12)
    if bias:
        np.testing.assert_allclose(pg["bias"], u.sum(0), rtol=1e-12)
    else:
        assert "bias" not in pg


def test_dense_bad_input_and_shapes():
    layer = Dense(4, 2)
    with pytest.raises(ValueError, match=r"\(N, 4\), got \(3, 5\)"):
        layer.forward(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="Flatten"):
        layer.forward(np.zeros((3, 4, 1, 1)))
    with pytest.raises(ValueError, match=r"weight must have shape \(2, 4\)"):
        layer.weight = np.zeros((4, 2))
    with pytest.raises(ValueError, match="positive"):
        Dense(0, 3)
