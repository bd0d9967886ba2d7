"""Sanity checks (xattr/evaluation/sanity.py): randomisation separates the gradient from the edge detector."""
import numpy as np
import pytest

import xattr
from xattr.evaluation import sanity
from xattr.testing import cases, twins

MODEL = cases.small_cnn(size=16)
X = cases.images(n=3, size=16)


def test_edge_detector_closed_form_and_model_independence():
    x = np.zeros((1, 2, 6, 8))
    x[..., 4:] = 1.0  # a vertical step between columns 3 and 4
    e = sanity.edge_detector(None, x)
    expected = np.zeros((6, 8))
    expected[:, 3:5] = 4.0  # Sobel: (1 + 2 + 1) x (x[j+1] - x[j-1])
    np.testing.assert_allclose(e[0, 0], expected, atol=1e-12)
    np.testing.assert_array_equal(sanity.edge_detector(MODEL, X, 0), sanity.edge_detector(None, X, 2))
    np.testing.assert_allclose(sanity.edge_detector(None, X)[1:2], sanity.edge_detector(None, X[1:2]), rtol=1e-14)
    assert sanity.edge_detector(None, X.astype(np.float32)).dtype == np.float32


def test_cascading_randomisation_separates_gradient_from_edge_detector():
    edge = sanity.cascading_randomization(sanity.edge_detector, MODEL, X, 1, rng=0)
    grad = sanity.cascading_randomization(xattr.gradient, MODEL, X, 1, rng=0)
    assert edge.layers == grad.layers == ["dense1", "conv2", "conv1"]
    for name in ("spearman", "spearman_abs", "ssim"):
        np.testing.assert_allclose(edge.metrics[name], 1.0, rtol=1e-12)  # model-independent by construction
        assert edge.metrics[name].shape == (3, 3)
        assert np.all(grad.mean()[name] < 0.5), (name, grad.mean()[name])  # the gradient depends on the weights


def test_independent_randomisation_separates_them_too():
    edge = sanity.independent_randomization(sanity.edge_detector, MODEL, X, 1, rng=0, metrics=("spearman",))
    grad = sanity.independent_randomization(xattr.gradient, MODEL, X, 1, rng=0, metrics=("spearman",))
    np.testing.assert_allclose(edge.metrics["spearman"], 1.0)
    assert np.all(grad.mean()["spearman"] < 0.9)


def test_cascade_is_cumulative_and_independent_is_one_layer_at_a_time():
    gen = np.random.default_rng(7)
    m = MODEL
    expected = []
    for name in ["dense1", "conv2", "conv1"]:
        m = twins.random_weights_like(m, gen, layers=[name])
        expected.append(xattr.gradient(m, X, 1))
    casc = sanity.cascading_randomization(xattr.gradient, MODEL, X, 1, rng=7, metrics=())
    for got, exp in zip(casc.maps, expected):
        np.testing.assert_array_equal(got, exp)
    gen = np.random.default_rng(7)
    ind = sanity.independent_randomization(xattr.gradient, MODEL, X, 1, rng=7, metrics=(), layers=["conv2", "conv1"])
    assert ind.layers == ["conv2", "conv1"]
    twins.random_weights_like(MODEL, gen, layers=["conv2"])
    np.testing.assert_array_equal(ind.maps[1], xattr.gradient(twins.random_weights_like(MODEL, gen, layers=["conv1"]),
                                                              X, 1))


def test_the_model_is_not_changed():
    w = MODEL["conv1"].weight.copy()
    sanity.cascading_randomization(xattr.gradient, MODEL, X, 1, rng=0, metrics=("spearman",))
    np.testing.assert_array_equal(MODEL["conv1"].weight, w)


def test_data_randomisation():
    same = sanity.data_randomization(xattr.gradient, MODEL, MODEL, X, 1)
    for v in same.values():
        np.testing.assert_allclose(v, 1.0)
    other = sanity.data_randomization(xattr.gradient, MODEL, twins.random_weights_like(MODEL, 3), X, 1)
    assert np.all(other["spearman"] < 0.9)
    y = np.array([0, 1, 1, 2, 2, 2])
    p = sanity.permuted_labels(y, 0)
    np.testing.assert_array_equal(np.sort(p), y)
    np.testing.assert_array_equal(p, sanity.permuted_labels(y, 0))


def test_bad_input():
    with pytest.raises(ValueError, match="is constant"):
        sanity.cascading_randomization(lambda m, x, t: np.zeros_like(x), MODEL, X, 1, rng=0)
    with pytest.raises(ValueError, match="no layers with weights"):
        sanity.cascading_randomization(xattr.gradient, xattr.nn.Sequential(xattr.nn.GlobalAvgPool2D()), X, 0, rng=0)
    with pytest.raises(ValueError, match="at least 11x11"):
        sanity.cascading_randomization(xattr.gradient, cases.small_cnn(), cases.images(), 1, rng=0)
    with pytest.raises(TypeError, match="rng must be"):
        sanity.cascading_randomization(xattr.gradient, MODEL, X, 1, rng=None)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        sanity.permuted_labels(np.zeros((2, 2)), 0)
    with pytest.raises(ValueError, match="rank 4"):
        sanity.edge_detector(None, np.zeros((3, 3)))
