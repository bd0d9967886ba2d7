"""Gradient, gradient×input, DeconvNet, guided backprop: closed forms, batching, dtypes, targets, errors."""
import inspect

import autograd.numpy as anp
import numpy as np
import pytest

import xattr
from xattr.nn import Conv2D, Dense, Flatten, GlobalAvgPool2D, MaxPool2D, ReLU, Sequential


def _cnn(seed=0):
    g = np.random.default_rng(seed)
    m = Sequential(
        Conv2D(3, 4, 3, padding=1, rng=g),
        ReLU(),
        MaxPool2D(2),
        Conv2D(4, 6, 3, padding=1, rng=g),
        ReLU(),
        GlobalAvgPool2D(),
        Dense(6, 5, rng=g),
    )
    for layer in m:
        if getattr(layer, "bias", None) is not None:
            layer.bias = g.normal(scale=0.1, size=layer.bias.shape)
    return m


X = np.random.default_rng(7).normal(size=(3, 3, 8, 8))


def test_gradient_of_a_linear_model_is_its_weight_vector():
    m = Sequential(Flatten(), Dense(2 * 3 * 3, 4, rng=0))
    m[1].bias = np.arange(4.0)
    x = np.random.default_rng(0).normal(size=(2, 2, 3, 3))
    for c in range(4):
        g = xattr.gradient(m, x, c)
        np.testing.assert_array_equal(g, np.broadcast_to(m[1].weight[c].reshape(2, 3, 3), x.shape))
        np.testing.assert_allclose(xattr.gradient_x_input(m, x, c).sum(axis=(1, 2, 3)), m(x)[:, c] - c, rtol=1e-12)


@pytest.mark.parametrize("method", [xattr.gradient, xattr.gradient_x_input, xattr.deconvnet, xattr.guided_backprop])
def test_batch_equals_per_sample_and_dtype_is_kept(method):
    m = _cnn()
    t = np.array([0, 3, 4])
    batch = method(m, X, t)
    for i in range(3):
        np.testing.assert_allclose(batch[i : i + 1], method(m, X[i : i + 1], int(t[i])), rtol=1e-13, atol=1e-15)
    out32 = method(m, X.astype(np.float32), t)
    assert out32.dtype == np.float32 and batch.dtype == np.float64
    np.testing.assert_allclose(out32, batch, rtol=1e-3, atol=1e-5)


def test_methods_do_not_modify_their_input():
    m, x = _cnn(), X.copy()
    refs = np.random.default_rng(3).random((2,) + X.shape[1:])
    for name in xattr.available_methods():
        fn = xattr.get_method(name)
        kw = {"rng": 0} if "rng" in inspect.signature(fn).parameters else {}
        if "references" in xattr.methods.get_spec(name).needs:  # declared in its MethodSpec
            kw["references"] = refs
        fn(m, x, 1, **kw)
        np.testing.assert_array_equal(x, X)


def test_rules_reach_the_relus_of_the_network():
    """On a dense ReLU net the three maps follow the table: computed by hand here."""
    w1 = np.array([[1.0, -1.0], [2.0, 1.0], [-1.0, 1.0]])  # 2 -> 3
    w2 = np.array([[1.0, -2.0, 1.0]])  # 3 -> 1
    m = Sequential(Dense(2, 3, bias=False), ReLU(), Dense(3, 1, bias=False))
    m[0].weight, m[2].weight = w1, w2
    x = np.array([[1.0, 0.5]])  # pre-activations: [0.5, 2.5, -0.5] -> active [1, 1, 0]
    r = w2[0]  # signal reaching the ReLU: [1, -2, 1]
    np.testing.assert_allclose(xattr.gradient(m, x, 0), [(r * [1, 1, 0]) @ w1])
    np.testing.assert_allclose(xattr.deconvnet(m, x, 0), [np.maximum(r, 0) @ w1])
    np.testing.assert_allclose(xattr.guided_backprop(m, x, 0), [(np.maximum(r, 0) * [1, 1, 0]) @ w1])


def test_target_forms():
    m = _cnn()
    s = m(X)
    top = s.argmax(1)
    by_array = xattr.gradient(m, X, top)
    np.testing.assert_array_equal(xattr.gradient(m, X, lambda scores: scores.argmax(1)), by_array)
    np.testing.assert_array_equal(xattr.gradient(m, X, list(top)), by_array)
    # a float-valued callable is differentiated: the margin between classes 1 and 2
    margin = xattr.gradient(m, X, lambda scores: scores[:, 1] - 2.0 * scores[:, 2])
    np.testing.assert_allclose(margin, xattr.gradient(m, X, 1) - 2.0 * xattr.gradient(m, X, 2), rtol=1e-12, atol=1e-15)
    # a nonlinear function of the scores: log-softmax of class 0 (autograd.numpy)
    def logsm(sc):
        return sc[:, 0] - anp.log(anp.sum(anp.exp(sc), axis=1))

    p = np.exp(s) / np.exp(s).sum(1, keepdims=True)
    expect = sum(((c == 0) - p[:, c])[:, None, None, None] * xattr.gradient(m, X, c) for c in range(5))
    np.testing.assert_allclose(xattr.gradient(m, X, logsm), expect, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize(
    "target, err, match",
    [
        (5, ValueError, "target 5 out of range for a model with 5 outputs"),
        (-1, ValueError, "out of range"),
        (np.array([0, 1]), ValueError, r"shape \(N,\) = \(3,\)"),
        (1.5, TypeError, "target must be"),
        (True, TypeError, "bool"),
        (lambda s: s[:2, 0], ValueError, "callable must return shape"),
    ],
)
def test_bad_targets(target, err, match):
    with pytest.raises(err, match=match):
        xattr.gradient(_cnn(), X, target)


def test_bad_inputs():
    m = _cnn()
    with pytest.raises(ValueError, match="3 channel"):
        xattr.gradient(m, X[:, :2], 0)
    with pytest.raises(ValueError, match="finite"):
        bad = X.copy()
        bad[0, 0, 0, 0] = np.inf
        xattr.gradient(m, bad, 0)
    with pytest.raises(ValueError, match="rank 4"):
        xattr.guided_backprop(m, X[0], 0)
    with pytest.raises(TypeError, match="forward"):
        xattr.gradient(object(), X, 0)


def test_reduce_channels():
    a = np.array([[[[1.0]], [[-3.0]], [[2.0]]]])  # (1, 3, 1, 1)
    assert xattr.reduce_channels(a, "max_abs")[0, 0, 0] == 3.0
    assert xattr.reduce_channels(a, "sum_abs")[0, 0, 0] == 6.0
    assert xattr.reduce_channels(a, "l2_squared")[0, 0, 0] == 14.0
    assert xattr.reduce_channels(a, "sum")[0, 0, 0] == 0.0
    with pytest.raises(ValueError, match="how must be one of"):
        xattr.reduce_channels(a, "mean")
