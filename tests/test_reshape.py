"""Identity: every rule passes the signal through; the walks accept it."""
import numpy as np

import xattr
from xattr.nn import Conv2D, Dense, GlobalAvgPool2D, Identity, ReLU, Sequential
from xattr.nn.region import region_map
from xattr.nn.relevance import LRP_RULES


def test_identity_passes_everything_through():
    layer = Identity()
    x = np.random.default_rng(0).normal(size=(2, 3, 4))
    y, cache = layer.forward(x)
    np.testing.assert_array_equal(y, x)
    g = np.random.default_rng(1).normal(size=x.shape)
    for rule in ("gradient", "deconvnet", "guided", "rescale", "revealcancel") + LRP_RULES:
        np.testing.assert_array_equal(layer.backward(g, cache, rule), g)
    pair = (g, 2 * g)
    assert layer.backward(pair, cache, "revealcancel") is pair
    np.testing.assert_array_equal(layer.jvp(g, cache), g)
    assert region_map(layer).kind == "pointwise"


def test_identity_in_a_model_changes_nothing():
    a = Sequential(Conv2D(2, 3, 3, rng=0), ReLU(), GlobalAvgPool2D(), Dense(3, 2, rng=1))
    b = Sequential(Identity(), Conv2D(2, 3, 3, rng=0), ReLU(), Identity(), GlobalAvgPool2D(), Dense(3, 2, rng=1))
    x = np.random.default_rng(2).normal(size=(2, 2, 5, 5))
    np.testing.assert_array_equal(a(x), b(x))
    for method in (xattr.gradient, xattr.guided_backprop, xattr.deeplift, xattr.lrp):
        np.testing.assert_allclose(method(a, x, 1), method(b, x, 1), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(xattr.exact_integrated_gradients(b, x, 1).attributions,
                               xattr.exact_integrated_gradients(a, x, 1).attributions, rtol=1e-12, atol=1e-14)
    assert b.names[0] == "identity1"
