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


# -- orders, random logit, smooth and efficient MPRT ------------------------------------------------------
def test_bottom_up_order():
    res = sanity.cascading_randomization(xattr.gradient, MODEL, X, 1, rng=0, metrics=(), order="bottom_up")
    assert res.layers == ["conv1", "conv2", "dense1"]
    with pytest.raises(ValueError, match="order must be one of"):
        sanity.cascading_randomization(xattr.gradient, MODEL, X, 1, rng=0, order="random")


def test_random_logit_draws_another_class_uniformly_and_compares_the_maps():
    res = sanity.random_logit(xattr.gradient, MODEL, X, np.array([0, 1, 2]), rng=5, metrics=("spearman", "ssim"))
    gen = np.random.default_rng(5)
    o = gen.integers(0, 2, 3)
    o = o + (o >= np.array([0, 1, 2]))
    np.testing.assert_array_equal(res.other, o)
    assert np.all(res.other != res.target)
    expected = sanity.compare_maps(xattr.gradient(MODEL, X, res.target), xattr.gradient(MODEL, X, res.other),
                                   ("spearman", "ssim"))
    for k in expected:
        np.testing.assert_allclose(res.similarity[k], expected[k], rtol=1e-12)
    edge = sanity.random_logit(sanity.edge_detector, MODEL, X, 0, rng=0)
    np.testing.assert_allclose(edge.similarity["ssim"], 1.0)  # class-independent by construction
    def ramp(m, x, t):  # a cheap map per class (its similarity is not the point here)
        return np.arange(16.0).reshape(1, 1, 4, 4) * (np.asarray(t)[:, None, None, None] + 1.0)

    big = np.repeat(X[:1], 3000, axis=0)
    drawn = sanity.random_logit(ramp, MODEL, big, 0, rng=1, metrics=("spearman",)).other
    counts = np.bincount(drawn, minlength=3)
    assert counts[0] == 0 and abs(counts[1] - counts[2]) < 4 * np.sqrt(3000 / 4)  # 4 sd of binomial(3000, 1/2)
    with pytest.raises(ValueError, match="out of range"):
        sanity.random_logit(xattr.gradient, MODEL, X, 7, rng=0)


def test_smoothed_method_is_the_mean_over_shared_noisy_copies():
    z = np.random.default_rng(3).standard_normal((4,) + X.shape)
    sm = sanity.smoothed(xattr.gradient, 0.1, None, draws=z, batch_size=5)
    sigma = 0.1 * (X.max(axis=(1, 2, 3)) - X.min(axis=(1, 2, 3)))[:, None, None, None]
    naive = np.mean([xattr.gradient(MODEL, X + sigma * z[s], 1) for s in range(4)], axis=0)
    np.testing.assert_allclose(sm(MODEL, X, 1), naive, rtol=1e-12)
    drawn = sanity.smoothed(xattr.gradient, 0.1, 3, n_samples=4)
    np.testing.assert_allclose(drawn(MODEL, X, 1), naive, rtol=1e-12)  # draws: rng.standard_normal((S, *x.shape))


def test_smooth_mprt_passes_the_control_and_fails_the_gradient():
    edge = sanity.smooth_mprt(sanity.edge_detector, MODEL, X, 1, rng=0, n_samples=3)
    assert edge.layers == ["conv1", "conv2", "dense1"]  # bottom-up by default
    np.testing.assert_allclose(edge.metrics["spearman"], 1.0, rtol=1e-12)  # same noise for every model
    grad = sanity.smooth_mprt(xattr.gradient, MODEL, X, 1, rng=0, n_samples=3)
    assert np.all(grad.mean()["spearman"][-1] < 0.5)
    gen = np.random.default_rng(0)
    sm = sanity.smoothed(xattr.gradient, 0.1, gen, n_samples=3)
    original = sm(MODEL, X, 1)
    np.testing.assert_allclose(grad.original, original, rtol=1e-12)
    m = twins.random_weights_like(MODEL, gen, layers=["conv1"])
    np.testing.assert_allclose(grad.maps[0], sm(m, X, 1), rtol=1e-12)


def test_efficient_mprt_closed_form_and_control():
    res = sanity.efficient_mprt(xattr.gradient, MODEL, X, 1, rng=4, n_bins=20)
    gen = np.random.default_rng(4)
    e, r = xattr.gradient(MODEL, X, 1), xattr.gradient(twins.random_weights_like(MODEL, gen), X, 1)
    from scipy import stats
    h0 = np.array([stats.entropy(np.histogram(v, bins=20)[0]) for v in e])
    h1 = np.array([stats.entropy(np.histogram(v, bins=20)[0]) for v in r])
    np.testing.assert_allclose(res.rise, h1 / h0 - 1, rtol=1e-12)
    np.testing.assert_allclose(res.complexity_original, h0, rtol=1e-12)
    edge = sanity.efficient_mprt(sanity.edge_detector, MODEL, X, 1, rng=4)
    np.testing.assert_array_equal(edge.rise, 0.0)  # the control does not change
    with pytest.raises(ValueError, match="zero entropy"):
        sanity.efficient_mprt(lambda m, x, t: np.ones_like(x), MODEL, X, 1, rng=0)
