"""The public gradient checker (xattr/testing/gradcheck.py) passes true vjps and catches wrong ones."""
import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import given, settings

import xattr
from xattr.testing import cases, check_model_gradient
from xattr.testing import strategies as xst


class ScaledVjp:
    """A model whose vjp is off by a factor (the bug the checker must catch)."""

    def __init__(self, model, factor):
        self.model, self.factor = model, factor

    def forward(self, x):
        return self.model.forward(x)

    def vjp(self, x, g, rule="gradient", **kw):
        return self.factor * self.model.vjp(x, g, rule, **kw)


def test_passes_on_a_smooth_function_model():
    f = xattr.from_function(lambda x: anp.stack([anp.sum(anp.sin(x), axis=(1, 2, 3)),
                                                 anp.sum(x ** 3, axis=(1, 2, 3))], axis=1))
    check_model_gradient(f, np.random.default_rng(0).normal(size=(2, 2, 3, 3)), rtol=1e-7)


def test_passes_on_the_default_cnn_and_fails_on_a_wrong_vjp():
    m, x = cases.small_cnn(), cases.images()
    check_model_gradient(m, x)
    with pytest.raises(AssertionError, match=r"disagrees with central differences .* in 4 of 4 random directions"):
        check_model_gradient(ScaledVjp(m, 1.01), x)


def test_other_rules_are_not_derivatives():
    m, x = cases.small_cnn(), cases.images()
    with pytest.raises(AssertionError, match="rule 'deconvnet'"):
        check_model_gradient(m, x, rule="deconvnet")


def test_wrong_vjp_shape_is_reported():
    class Flat(ScaledVjp):
        def vjp(self, x, g, rule="gradient", **kw):
            return self.model.vjp(x, g, rule).reshape(len(x), -1)

    with pytest.raises(AssertionError, match="vjp returned shape"):
        check_model_gradient(Flat(cases.small_cnn(), 1.0), cases.images())


@settings(max_examples=15)
@given(xst.models_and_inputs(repeats=False))
def test_random_architectures_pass(case):
    model, x, _ = case
    # a ReLU network is piecewise linear: move off the exact zeros and ties Hypothesis likes, so that the
    # segment x ± h v (h = 1e-7) crosses no kink; kinks and ties have their own tests against the conventions
    x = x + np.random.default_rng(0).uniform(0.05, 0.3, x.shape) * np.random.default_rng(1).choice([-1, 1], x.shape)
    check_model_gradient(model, x, eps=1e-7, rtol=1e-5, atol=1e-7)
