"""Targets (xattr/_targets.py): the (classes, transform) form, one class per image of a transformed output.

Oracles: closed forms on a linear model (the gradient of log-softmax, IG completeness on a smooth path),
and per-image loops with a float-valued callable on a single image (where every row the method
evaluates belongs to that image, so the callable form is right).
"""
import autograd.numpy as anp
import numpy as np
import pytest

import xattr
from xattr import _targets
from xattr.nn import Dense, Flatten, Sequential
from xattr.testing import cases


def softmax(s):
    e = np.exp(s - s.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def linear(seed=0, shape=(2, 3, 3), k=4):
    m = Sequential(Flatten(), Dense(int(np.prod(shape)), k, rng=seed))
    m[1].bias = np.linspace(-0.3, 0.2, k)
    return m


def test_gradient_of_log_softmax_closed_form_on_a_linear_model():
    x = np.random.default_rng(0).normal(size=(3, 2, 3, 3))
    m, lab = linear(), np.array([2, 0, 3])
    W = m[1].weight
    p = softmax(m.forward(x))
    want = (W[lab] - p @ W).reshape(x.shape)  # ∂ log p_c / ∂x = W_c − Σ_k p_k W_k
    np.testing.assert_allclose(xattr.gradient(m, x, (lab, "log_softmax")), want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(_targets.selected((lab, "softmax"), m.forward(x)), p[np.arange(3), lab], rtol=1e-14)


def test_integrated_gradients_on_softmax_one_class_per_image():
    """IG of softmax probabilities on a linear model: the path is smooth, so Gauss-Legendre converges
    and completeness Σ IG = p_c(x) − p_c(x') holds to round-off; and it equals the per-image loop."""
    x = np.random.default_rng(1).normal(size=(3, 2, 3, 3))
    m, lab = linear(1), np.array([1, 3, 0])
    ig, delta = xattr.integrated_gradients(m, x, (lab, "softmax"), steps=64, return_delta=True)
    p_x = softmax(m.forward(x))[np.arange(3), lab]
    p_0 = softmax(m.forward(np.zeros_like(x)))[np.arange(3), lab]
    np.testing.assert_allclose(ig.reshape(3, -1).sum(1), p_x - p_0, rtol=1e-10)
    np.testing.assert_allclose(delta, 0, atol=1e-10)
    for i in range(3):  # per image, the float callable sees only that image's path points
        one = xattr.integrated_gradients(m, x[i:i + 1], lambda s, c=lab[i]: _targets._softmax(s)[:, c], steps=64)
        np.testing.assert_allclose(ig[i:i + 1], one, rtol=1e-12, atol=1e-15)
    # the callable form on the whole batch cannot tell path points from images (the reason for the pair)
    with pytest.raises((IndexError, ValueError)):
        xattr.integrated_gradients(m, x, lambda s: _targets._softmax(s)[np.arange(3), lab], steps=64)


def test_pair_through_methods_that_evaluate_more_rows_than_images():
    m, x = cases.small_cnn(size=8), cases.images(n=3, size=8)
    lab = np.array([0, 2, 1])
    refs = cases.images(rng=5, n=2, size=8)

    def per_image(fn, **kw):
        return np.concatenate([fn(m, x[i:i + 1], lambda s, c=lab[i]: _targets._log_softmax(s)[:, c], **kw)
                               for i in range(3)])

    for fn, kw in [(xattr.integrated_gradients, dict(steps=8, quadrature="riemann_middle", batch_size=5)),
                   (xattr.occlusion, dict(window=3, stride=2, batch_size=7)),
                   (xattr.gradient_x_input, {}),
                   (xattr.expected_gradients_exact, dict(references=refs, steps=4, quadrature="riemann_left"))]:
        np.testing.assert_allclose(fn(m, x, (lab, "log_softmax"), **kw), per_image(fn, **kw), rtol=1e-10,
                                   atol=1e-13, err_msg=fn.__name__)
    # SmoothGrad: one image at a time, the same noise for the pair and the callable
    for i in range(3):
        a = xattr.smoothgrad(xattr.gradient, m, x[i:i + 1], (lab[i:i + 1], "log_softmax"), n=5, rng=3)
        b = xattr.smoothgrad(xattr.gradient, m, x[i:i + 1], lambda s, c=lab[i]: _targets._log_softmax(s)[:, c],
                             n=5, rng=3)
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    assert xattr.smoothgrad(xattr.gradient, m, x, (lab, "softmax"), n=4, rng=0, batch_size=3).shape == x.shape


def test_classes_callable_is_evaluated_once_at_the_images():
    m, x = cases.small_cnn(size=8), cases.images(n=2, size=8)
    top = np.argmax(m.forward(x), 1)
    a = xattr.integrated_gradients(m, x, (lambda s: np.argmax(s, 1), "softmax"), steps=6)
    np.testing.assert_array_equal(a, xattr.integrated_gradients(m, x, (top, "softmax"), steps=6))
    custom = xattr.gradient(m, x, (top, lambda s: 2.0 * s))  # any row-wise autograd callable
    np.testing.assert_allclose(custom, 2.0 * xattr.gradient(m, x, top), rtol=1e-14)


def test_bad_pair_targets_are_refused_clearly():
    m, x = linear(), np.random.default_rng(0).normal(size=(2, 2, 3, 3))
    with pytest.raises(ValueError, match="out of range"):
        xattr.gradient(m, x, (np.array([0, 4]), "softmax"))
    with pytest.raises(ValueError, match="each row"):  # a softmax over the batch axis
        xattr.gradient(m, x, (0, lambda s: anp.exp(s) / anp.sum(anp.exp(s), axis=0, keepdims=True)))
    with pytest.raises(ValueError, match=r"\(B, K\) to \(B, K'\)"):
        xattr.gradient(m, x, (0, lambda s: anp.sum(s, axis=1)))
    with pytest.raises(TypeError, match="must be ints"):
        xattr.gradient(m, x, (lambda s: s[:, 0], "softmax"))
    with pytest.raises(ValueError, match=r"shape \(N,\) = \(2,\)"):
        xattr.gradient(m, x, (np.array([0, 1, 2]), "softmax"))
    with pytest.raises(ValueError, match="holds 3 classes for 2 rows"):
        xattr.gradient(m, x, _targets.ClassOf([0, 1, 2], _targets._softmax))
    with pytest.raises(ValueError, match="not piecewise linear"):
        xattr.integrated_gradients(cases.small_cnn(size=8), cases.images(n=2, size=8), (0, "softmax"),
                                   quadrature="exact")
