"""BatchNorm2D at inference, folding into the conv, Dropout."""
import numpy as np
import pytest

from xattr.nn import BatchNorm2D, Conv2D, Dropout, Flatten, ReLU, Sequential, fold_batchnorm


def _bn(c, seed=0):
    rng = np.random.default_rng(seed)
    bn = BatchNorm2D(c, eps=1e-3)
    bn.weight, bn.bias = rng.normal(size=c), rng.normal(size=c)
    bn.running_mean, bn.running_var = rng.normal(size=c), rng.uniform(0.5, 2, size=c)
    return bn


def test_batchnorm_formula_and_gradient():
    bn = _bn(3)
    x = np.random.default_rng(1).normal(size=(2, 3, 4, 4))
    y, cache = bn.forward(x)
    def r(v):
        return v[None, :, None, None]

    expect = (x - r(bn.running_mean)) / np.sqrt(r(bn.running_var) + bn.eps) * r(bn.weight) + r(bn.bias)
    np.testing.assert_allclose(y, expect, rtol=1e-13)
    u, v = np.random.default_rng(2).normal(size=(2,) + x.shape)
    h = 1e-6
    fd = np.sum(u * (bn(x + h * v) - bn(x - h * v))) / (2 * h)
    assert np.isclose(fd, np.sum(bn.backward(u, cache) * v), rtol=1e-8)


def test_fold_batchnorm_computes_the_same_function_and_leaves_model_alone():
    model = Sequential(
        Conv2D(2, 3, 3, padding=1, rng=0), _bn(3), ReLU(), Conv2D(3, 2, 3, bias=False, rng=1), _bn(2, 5), Flatten()
    )
    folded = fold_batchnorm(model)
    assert [type(layer).__name__ for layer in folded] == ["Conv2D", "ReLU", "Conv2D", "Flatten"]
    assert folded.names == ["conv1", "relu1", "conv2", "flatten1"]
    x = np.random.default_rng(3).normal(size=(2, 2, 6, 6))
    np.testing.assert_allclose(folded(x), model(x), rtol=1e-12, atol=1e-12)
    assert len(model) == 6  # untouched


def test_fold_refuses_a_lonely_batchnorm():
    with pytest.raises(ValueError, match="does not follow a Conv2D"):
        fold_batchnorm(Sequential(ReLU(), BatchNorm2D(2)))


def test_batchnorm_errors():
    with pytest.raises(ValueError, match="3 channel"):
        BatchNorm2D(3).forward(np.zeros((1, 2, 4, 4)))
    with pytest.raises(ValueError, match="running_var must have shape"):
        BatchNorm2D(3).running_var = np.ones(2)
    with pytest.raises(ValueError, match="eps"):
        BatchNorm2D(3, eps=0)


def test_dropout_is_identity_at_inference():
    x = np.random.default_rng(0).normal(size=(2, 3))
    layer = Dropout(0.3)
    y, cache = layer.forward(x)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(layer.backward(x, cache, "guided"), x)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        Dropout(1.0)
