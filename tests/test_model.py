"""The model protocol: from_function (autograd) and check_model."""
import autograd.numpy as anp
import numpy as np
import pytest

import xattr
from xattr.nn import RuleNotDefined


def test_function_models_support_the_gradient_rule_only():
    w = np.random.default_rng(0).normal(size=(12, 3))
    f = xattr.from_function(lambda x: anp.tanh(anp.reshape(x, (x.shape[0], -1)) @ w))
    x = np.random.default_rng(1).normal(size=(2, 3, 2, 2))
    g = xattr.gradient(f, x, 1)
    expect = ((1 - np.tanh(x.reshape(2, -1) @ w) ** 2)[:, 1:2] * w[:, 1]).reshape(x.shape)
    np.testing.assert_allclose(g, expect, rtol=1e-12)
    assert xattr.gradient(f, x.astype(np.float32), 1).dtype == np.float32
    with pytest.raises(RuleNotDefined, match="supports only the 'gradient' rule"):
        xattr.guided_backprop(f, x, 1)
    with pytest.raises(RuleNotDefined, match="supports only the 'gradient' rule"):
        f.vjp(x, np.ones((2, 3)), "deconvnet")
    with pytest.raises(ValueError, match=r"scores of shape \(N, K\)"):
        xattr.gradient(xattr.from_function(lambda x: anp.sum(x)), x, 0)
    with pytest.raises(TypeError, match="callable"):
        xattr.from_function(3)


def test_check_model_names_layers_without_a_rule():
    from xattr.nn import Dense, ReLU, Sequential

    m = Sequential(Dense(2, 2), ReLU())
    assert xattr.check_model(m, "guided") is m
    with pytest.raises(RuleNotDefined, match="layers without it: Dense 'dense1', ReLU 'relu1'"):
        xattr.check_model(m, "lrp-unknown")
