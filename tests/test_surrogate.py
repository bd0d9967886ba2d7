"""Softplus surrogates of attribution maps (xattr/evaluation/_surrogate.py), the direction finders of the attack.

Oracles: xattr's own maps as the softplus sharpens (β → ∞ gives the ReLU back, away from kinks and ties);
autograd's gradient of the twin's score (the hand-written backward must equal it for any β); central
differences of the attack objective (the nested, second-order autograd derivative).
"""
import numpy as np
import pytest
from autograd import grad

import xattr
from xattr.evaluation import _surrogate as sg
from xattr.methods.path import quadrature_rule
from xattr.nn import AvgPool2D, BatchNorm2D, Conv2D, Dense, Flatten, GlobalAvgPool2D, ReLU, Sequential
from xattr.testing import cases


def pool_free_model():
    """No max-pool: no ties between dead units, so DeepLIFT's twin converges too."""
    g = np.random.default_rng(0)
    bn = BatchNorm2D(4)
    bn.running_mean, bn.running_var = g.normal(size=4) * 0.1, g.uniform(0.5, 2, 4)
    m = Sequential(Conv2D(3, 4, 3, padding=1, rng=g), bn, ReLU(), AvgPool2D(2), Conv2D(4, 5, 3, padding=1, rng=g),
                   ReLU(), GlobalAvgPool2D(), Flatten(), Dense(5, 3, rng=g))
    m[0].bias, m[4].bias = g.normal(size=4) * 0.1, g.normal(size=5) * 0.1
    return m


X, CLS = cases.images(n=2, size=8), np.array([0, 2])


@pytest.mark.parametrize("name, method, model", [
    ("gradient", xattr.gradient, cases.small_cnn(size=8)),
    ("gradient_x_input", xattr.gradient_x_input, cases.small_cnn(size=8)),
    ("guided_backprop", xattr.guided_backprop, cases.small_cnn(size=8)),
    ("grad_cam", xattr.grad_cam, cases.small_cnn(size=8)),
    ("deeplift", xattr.deeplift, pool_free_model()),
])
def test_surrogates_become_the_true_maps_as_the_softplus_sharpens(name, method, model):
    a = method(model, X, CLS)
    errs = [np.abs(sg.surrogate_map(sg.SoftplusTwin(model, b), name, X, CLS) - a).max() / np.abs(a).max()
            for b in (1.0, 1e5)]
    assert errs[1] < 1e-6 and errs[0] > 1e-3  # measured ~1e-16 at β = 1e5; the plain softplus is another map


def test_the_hand_written_backward_is_the_twins_gradient():
    for beta in (0.5, 3.0):
        tw = sg.SoftplusTwin(cases.small_cnn(size=8), beta)
        def f(z, tw=tw):
            return tw.forward(z)[0][np.arange(2), CLS].sum()
        np.testing.assert_allclose(sg.surrogate_map(tw, "gradient", X, CLS), grad(f)(X), rtol=1e-12, atol=1e-15)


def test_integrated_gradients_surrogate_is_the_quadrature_of_the_twins_gradient():
    tw = sg.SoftplusTwin(cases.small_cnn(size=8), 2.0)
    base = 0.25
    alphas, w = quadrature_rule("gausslegendre", 6)
    want = (X - base) * sum(
        wk * sg.surrogate_map(tw, "gradient", base + a * (X - base), CLS) for a, wk in zip(alphas, w)
    )
    got = sg.surrogate_map(tw, "integrated_gradients", X, CLS, {"baseline": base}, steps=6)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ["gradient", "deeplift", "grad_cam", "integrated_gradients"])
def test_second_order_derivative_against_central_differences(name):
    tw = sg.SoftplusTwin(cases.small_cnn(size=8), 1.0)
    T = np.zeros((2, 8, 8))
    T[:, 2:5, 3:6] = 1.0

    def D(z):  # the top-k objective: share of the saliency on T
        import autograd.numpy as anp

        a = sg.surrogate_map(tw, name, z, CLS, steps=4)
        s = anp.sum(anp.abs(a), axis=1)
        return -anp.sum(anp.sum(s * T, axis=(1, 2)) / anp.sum(s, axis=(1, 2)))

    v = np.random.default_rng(1).normal(size=X.shape)
    h = 1e-5
    fd = (D(X + h * v) - D(X - h * v)) / (2 * h)
    np.testing.assert_allclose(np.sum(grad(D)(X) * v), fd, rtol=1e-5)


def test_unsupported_models_and_names_are_refused():
    with pytest.raises(TypeError, match="Sequential"):
        sg.SoftplusTwin(xattr.from_function(lambda x: x.reshape(len(x), -1)))
    with pytest.raises(ValueError, match="beta"):
        sg.SoftplusTwin(cases.small_cnn(), beta=0)
    tw = sg.SoftplusTwin(cases.small_cnn(size=8))
    with pytest.raises(ValueError, match="no surrogate for 'lrp'"):
        sg.surrogate_map(tw, "lrp", X, CLS)
    with pytest.raises(ValueError, match="rule='rescale'"):
        sg.surrogate_map(tw, "deeplift", X, CLS, {"rule": "revealcancel"})
