"""Tabular features ``(N, D)`` with a per-feature baseline (the training mean), as docs/input_kinds.md shows.

Oracles: closed forms on a linear model (``IG_i = DeepLIFT_i = w_i (x_i − μ_i)``), completeness
``Σ_i A_i = F(x) − F(μ)`` for exact IG on a ReLU network (piecewise linear: exact to round-off).
"""
import numpy as np
import pytest

import xattr
from xattr.nn import Dense, ReLU, Sequential


def _linear(w, b):
    layer = Dense(len(w), 1)
    layer.weight, layer.bias = np.asarray(w, dtype=float)[None], np.array([b])
    return Sequential(layer)


def test_linear_model_with_the_training_mean_as_baseline():
    rng = np.random.default_rng(0)
    train = rng.normal(loc=[0.0, 5.0, -2.0, 10.0], scale=[1, 2, 0.5, 3], size=(200, 4))
    mu = train.mean(axis=0)
    w = rng.normal(size=4)
    model = _linear(w, 0.3)
    x = rng.normal(size=(5, 4))
    want = w * (x - mu)
    ig = xattr.integrated_gradients(model, x, 0, baseline=mu)  # one sample (D,): the same baseline for every row
    np.testing.assert_allclose(ig, want, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(xattr.deeplift(model, x, 0, reference=mu), want, rtol=1e-12, atol=1e-13)
    # the zero baseline is another question: it explains F(x) − F(0), far from the data for features 1 and 3
    assert not np.allclose(xattr.integrated_gradients(model, x, 0), want)


def test_relu_network_completeness_against_the_mean():
    rng = np.random.default_rng(1)
    model = Sequential(Dense(6, 16, rng=2), ReLU(), Dense(16, 8, rng=3), ReLU(), Dense(8, 3, rng=4))
    train = rng.normal(loc=np.arange(6.0), size=(100, 6))
    mu = train.mean(axis=0)
    x = rng.normal(loc=np.arange(6.0), size=(4, 6))
    ig, delta = xattr.integrated_gradients(model, x, 2, baseline=mu, quadrature="exact", return_delta=True)
    want = model.forward(x)[:, 2] - model.forward(mu[None])[0, 2]
    np.testing.assert_allclose(ig.sum(axis=1), want, rtol=0, atol=1e-10)
    assert np.abs(delta).max() < 1e-10
    with pytest.raises(ValueError, match="baseline must be a scalar, one sample of shape"):
        xattr.integrated_gradients(model, x, 2, baseline=mu[:5])
