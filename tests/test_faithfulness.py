"""Deletion/insertion curves, infidelity and max-sensitivity (xattr/evaluation/faithfulness.py)
against closed forms on linear models."""
import numpy as np
import pytest
from scipy import ndimage

import xattr
from xattr.evaluation import faithfulness as fa
from xattr.nn import Dense, Flatten, Sequential


def linear(shape, k=1, bias=False, seed=0):
    f = int(np.prod(shape))
    m = Sequential(Flatten(), Dense(f, k, bias=bias, rng=seed))
    if bias:
        m[1].bias = np.linspace(-0.5, 0.5, k)
    return m


def _trapz(y, x):
    return ((y[..., 1:] + y[..., :-1]) / 2 * np.diff(x)).sum(axis=-1)


def test_deletion_auc_of_a_known_ordering():
    # f = sum of four features with contributions 4, 3, 2, 1: in the right order the curve is 10, 6, 3, 1, 0
    m = linear((1, 2, 2))
    m[1].weight = np.ones((1, 4))
    x = np.array([[[[4.0, 3.0], [2.0, 1.0]]]])
    good = fa.deletion_curve(m, x, 0, x.copy(), score="logit")
    np.testing.assert_allclose(good.scores[0], [10, 6, 3, 1, 0])
    np.testing.assert_allclose(good.fractions, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(good.auc, [3.75])  # 0.25 (8 + 4.5 + 2 + 0.5)
    bad = fa.deletion_curve(m, x, 0, -x, score="logit")
    np.testing.assert_allclose(bad.scores[0], [10, 9, 7, 4, 0])
    np.testing.assert_allclose(bad.auc, [6.25])
    assert good.baseline == "0"


def test_deletion_curve_equals_the_closed_form_on_a_linear_model():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 2, 4, 5))
    m = linear(x.shape[1:], k=2, bias=True)
    w = m[1].weight[1].reshape(x.shape[1:])
    contrib = (w * x).reshape(3, -1)
    a = w * x
    c = fa.deletion_curve(m, x, 1, a, score="logit", n_steps="all")
    f = m.forward(x)[:, 1]
    expected = f[:, None] - np.concatenate([np.zeros((3, 1)), np.cumsum(-np.sort(-contrib, axis=1), axis=1)], axis=1)
    np.testing.assert_allclose(c.scores, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(c.auc, _trapz(expected, c.fractions), rtol=1e-12)
    # subsampled: every 4th point of the full curve
    c5 = fa.deletion_curve(m, x, 1, a, n_steps=5, batch_size=4, score="logit")
    np.testing.assert_allclose(c5.scores, expected[:, ::8], rtol=1e-12, atol=1e-12)


def test_pixel_maps_move_all_channels_of_a_pixel():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 3, 3, 3))
    m = linear(x.shape[1:])
    w = m[1].weight[0].reshape(x.shape[1:])
    pix = (w * x).sum(axis=1)  # (N, H, W)
    for shape in [(2, 3, 3), (2, 1, 3, 3)]:
        c = fa.deletion_curve(m, x, 0, pix.reshape(shape), score="logit")
        expected = m.forward(x)[:, :1] - np.concatenate(
            [np.zeros((2, 1)), np.cumsum(-np.sort(-pix.reshape(2, -1), axis=1), axis=1)], axis=1)
        np.testing.assert_allclose(c.scores, expected, rtol=1e-12, atol=1e-12)


def test_insertion_from_an_array_baseline_and_from_blur():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 1, 4, 4))
    b = rng.normal(size=x.shape)
    m = linear(x.shape[1:])
    w = m[1].weight[0].reshape(x.shape[1:])
    a = w * (x - b)
    c = fa.insertion_curve(m, x, 0, a, baseline=b, score="logit")
    contrib = a.reshape(2, -1)
    expected = m.forward(b)[:, :1] + np.concatenate(
        [np.zeros((2, 1)), np.cumsum(-np.sort(-contrib, axis=1), axis=1)], axis=1)
    np.testing.assert_allclose(c.scores, expected, rtol=1e-12, atol=1e-12)
    assert c.baseline == "array"
    blur = fa.insertion_curve(m, x, 0, a, n_steps=4, blur_sigma=1.0, score="logit")
    assert blur.baseline == "blur(sigma=1)"
    ref = ndimage.gaussian_filter(x[0, 0], 1.0, mode="reflect")
    np.testing.assert_allclose(fa.blurred(x, 1.0)[0, 0], ref)
    np.testing.assert_allclose(blur.scores[:, 0], m.forward(fa.blurred(x, 1.0))[:, 0])
    np.testing.assert_allclose(blur.scores[:, -1], m.forward(x)[:, 0], rtol=1e-12)


def test_probability_score_is_the_softmax():
    x = np.random.default_rng(4).normal(size=(2, 1, 2, 2))
    m = linear(x.shape[1:], k=3)
    c = fa.deletion_curve(m, x, np.array([0, 2]), x, score="probability")
    s = m.forward(x)
    p = np.exp(s) / np.exp(s).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(c.scores[:, 0], p[[0, 1], [0, 2]], rtol=1e-12)
    with pytest.raises(ValueError, match="needs a class target"):
        fa.deletion_curve(m, x, lambda s: s[:, 0] * 1.0, x, score="probability")


def test_curves_bad_input():
    x = np.random.default_rng(5).normal(size=(2, 1, 3, 3))
    m = linear(x.shape[1:])
    with pytest.raises(ValueError, match="attribution must have x's shape"):
        fa.deletion_curve(m, x, 0, x[:, :, :2])
    with pytest.raises(ValueError, match=r"attribution\[0\] is constant"):
        fa.deletion_curve(m, x, 0, np.zeros_like(x))
    with pytest.raises(ValueError, match="does not broadcast"):
        fa.deletion_curve(m, x, 0, x, baseline=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="n_steps must be between 1"):
        fa.deletion_curve(m, x, 0, x, n_steps=0)
    with pytest.raises(ValueError, match="score must be"):
        fa.deletion_curve(m, x, 0, x, score="rank")
    with pytest.raises(ValueError, match="'blur', 'mean', 'uniform'"):
        fa.insertion_curve(m, x, 0, x, baseline="median")
    with pytest.raises(ValueError, match="finite"):
        fa.deletion_curve(m, x, 0, np.full_like(x, np.nan))


def test_infidelity_of_exact_attributions_of_a_linear_model_is_zero():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 2, 4, 4))
    m = linear(x.shape[1:], k=2, bias=True)
    w = np.broadcast_to(m[1].weight[1].reshape(x.shape[1:]), x.shape)
    for pert in ("gaussian", "square"):
        local = fa.infidelity(m, x, 1, w, perturbation=pert, rng=0)  # Φ = gradient = w
        np.testing.assert_allclose(local, 0, atol=1e-24)
        b = 0.3
        glob = fa.infidelity(m, x, 1, w * (x - b), perturbation=pert, rng=0, kind="global", baseline=b)  # Φ = IG
        np.testing.assert_allclose(glob, 0, atol=1e-24)
    assert np.all(fa.infidelity(m, x, 1, 2 * w, rng=0) > 0)


def test_infidelity_closed_form_with_explicit_perturbations_and_normalisation():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2, 1, 3, 3))
    m = linear(x.shape[1:])
    w = np.broadcast_to(m[1].weight[0].reshape(x.shape[1:]), x.shape)
    d = rng.normal(size=x.shape)
    I = rng.normal(size=(5,) + x.shape)
    got = fa.infidelity(m, x, 0, w + d, perturbation=I)
    expected = (np.einsum("snchw,nchw->sn", I, d) ** 2).mean(axis=0)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    np.testing.assert_allclose(fa.infidelity(m, x, 0, 3 * w, perturbation=I, normalize=True), 0, atol=1e-20)
    np.testing.assert_allclose(fa.infidelity(m, x, 0, 3 * w, perturbation=I),
                               ((2 * np.einsum("snchw,nchw->sn", I, w)) ** 2).mean(axis=0), rtol=1e-12)


def test_infidelity_bad_input():
    x = np.random.default_rng(8).normal(size=(1, 1, 3, 3))
    m = linear(x.shape[1:])
    with pytest.raises(TypeError, match="pass rng"):
        fa.infidelity(m, x, 0, x)
    with pytest.raises(ValueError, match="attribution must have x's shape"):
        fa.infidelity(m, x, 0, x[0], rng=0)
    with pytest.raises(ValueError, match=r"shape \(S, \*x.shape\)"):
        fa.infidelity(m, x, 0, x, perturbation=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="kind must be"):
        fa.infidelity(m, x, 0, x, rng=0, kind="both")
    with pytest.raises(ValueError, match="square must be between"):
        fa.infidelity(m, x, 0, x, rng=0, perturbation="square", square=5)
    with pytest.raises(ValueError, match="perturbation must be"):
        fa.infidelity(m, x, 0, x, rng=0, perturbation="uniform")


def test_max_sensitivity_closed_forms():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(2, 1, 3, 3))
    m = linear(x.shape[1:])
    np.testing.assert_array_equal(fa.max_sensitivity(xattr.gradient, m, x, 0, rng=0), 0.0)  # constant gradient
    d = rng.uniform(-0.1, 0.1, size=(4,) + x.shape)
    w = m[1].weight[0].reshape(x.shape[1:])
    got = fa.max_sensitivity(xattr.gradient_x_input, m, x, 0, perturbations=d)
    expected = np.linalg.norm((w * d).reshape(4, 2, -1), axis=2).max(axis=0)  # ||w ⊙ δ|| maximised over δ
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    rel = fa.max_sensitivity(xattr.gradient_x_input, m, x, 0, perturbations=d, normalize=True)
    np.testing.assert_allclose(rel, expected / np.linalg.norm((w * x).reshape(2, -1), axis=1), rtol=1e-12)
    drawn = fa.max_sensitivity(xattr.gradient_x_input, m, x, 0, radius=0.1, n_samples=8, rng=0)
    assert np.all(drawn <= 0.1 * np.linalg.norm(w) + 1e-12)  # |δ|∞ <= r bounds ||w ⊙ δ||


def test_max_sensitivity_bad_input():
    x = np.random.default_rng(10).normal(size=(1, 1, 3, 3))
    m = linear(x.shape[1:])
    with pytest.raises(TypeError, match="pass rng"):
        fa.max_sensitivity(xattr.gradient, m, x, 0)
    with pytest.raises(ValueError, match="radius must be positive"):
        fa.max_sensitivity(xattr.gradient, m, x, 0, radius=0, rng=0)
    with pytest.raises(ValueError, match="is zero"):
        fa.max_sensitivity(lambda mm, xx, t: np.zeros_like(xx), m, x, 0, rng=0, normalize=True)
    with pytest.raises(ValueError, match="perturbations must have shape"):
        fa.max_sensitivity(xattr.gradient, m, x, 0, perturbations=np.zeros((2, 3)))
