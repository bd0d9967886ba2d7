"""Local Lipschitz estimate and average sensitivity (xattr/evaluation/stability.py): closed forms on
linear models, naive loops, chunk independence, bad input."""
import numpy as np
import pytest

import xattr
from xattr.evaluation import stability as st
from xattr.nn import Dense, Flatten, ReLU, Sequential


def linear(shape):
    return Sequential(Flatten(), Dense(int(np.prod(shape)), 2, rng=0))


def mlp(shape):
    return Sequential(Flatten(), Dense(int(np.prod(shape)), 5, rng=1), ReLU(), Dense(5, 3, rng=2))


def test_closed_forms_on_a_linear_model():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 1, 3, 3))
    m = linear(x.shape[1:])
    w = m[1].weight[1].reshape(x.shape[1:])
    d = rng.uniform(-0.1, 0.1, size=(6,) + x.shape)
    np.testing.assert_array_equal(st.local_lipschitz_estimate(xattr.gradient, m, x, 1, perturbations=d), 0.0)
    norms = np.linalg.norm((w * d).reshape(6, 2, -1), axis=2)  # Φ = w ⊙ x moves by w ⊙ δ
    dist = np.linalg.norm(d.reshape(6, 2, -1), axis=2)
    np.testing.assert_allclose(st.local_lipschitz_estimate(xattr.gradient_x_input, m, x, 1, perturbations=d),
                               (norms / dist).max(axis=0), rtol=1e-12)
    np.testing.assert_allclose(st.avg_sensitivity(xattr.gradient_x_input, m, x, 1, perturbations=d),
                               norms.mean(axis=0), rtol=1e-12)
    rel = st.avg_sensitivity(xattr.gradient_x_input, m, x, 1, perturbations=d, normalize=True)
    np.testing.assert_allclose(rel, norms.mean(axis=0) / np.linalg.norm((w * x).reshape(2, -1), axis=1), rtol=1e-12)
    drawn = st.local_lipschitz_estimate(xattr.gradient_x_input, m, x, 1, rng=0, n_samples=32)
    assert np.all(drawn <= np.abs(w).max() + 1e-12)  # ||w ⊙ δ|| <= max|w| ||δ||


def test_against_a_naive_loop_on_a_relu_net_whatever_the_chunks():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 1, 2, 3))
    m = mlp(x.shape[1:])
    d = rng.normal(0, 0.5, size=(4,) + x.shape)
    t = np.array([0, 2, 1])
    naive = np.empty((4, 3))
    for s in range(4):
        for i in range(3):
            a0 = xattr.gradient(m, x[i:i + 1], t[i])
            a1 = xattr.gradient(m, x[i:i + 1] + d[s, i:i + 1], t[i])
            naive[s, i] = np.linalg.norm(a1 - a0)
    for bs in (1, 4, 100):
        np.testing.assert_allclose(st.sensitivities(xattr.gradient, m, x, t, d, batch_size=bs), naive, rtol=1e-12)
    np.testing.assert_allclose(st.local_lipschitz_estimate(xattr.gradient, m, x, t, perturbations=d),
                               (naive / np.linalg.norm(d.reshape(4, 3, -1), axis=2)).max(axis=0), rtol=1e-12)


def test_draws_uniform_and_gaussian():
    x = np.zeros((2, 1, 3, 3))
    m = linear(x.shape[1:])
    u = st.P.perturbation_draws("uniform", x, 500, 0.1, 0, "t")
    assert u.shape == (500, 2, 1, 3, 3) and np.abs(u).max() <= 0.1
    g = st.P.perturbation_draws("gaussian", x, 2000, 0.1, 0, "t")
    assert abs(g.std() - 0.1) < 0.005  # 18000 draws: the standard error of the std is ~5e-4
    a = st.local_lipschitz_estimate(xattr.gradient_x_input, m, x, 0, rng=3, perturbation="gaussian", n_samples=5)
    b = st.local_lipschitz_estimate(xattr.gradient_x_input, m, x, 0, perturbations=np.random.default_rng(3).normal(
        0, 0.1, (5,) + x.shape))
    np.testing.assert_array_equal(a, b)


def test_bad_input():
    x = np.random.default_rng(2).normal(size=(1, 1, 2, 2))
    m = linear(x.shape[1:])
    with pytest.raises(TypeError, match="pass rng"):
        st.avg_sensitivity(xattr.gradient, m, x, 0)
    with pytest.raises(ValueError, match="is zero: the Lipschitz ratio is undefined"):
        st.local_lipschitz_estimate(xattr.gradient, m, x, 0, perturbations=np.zeros((2,) + x.shape))
    with pytest.raises(ValueError, match=r"perturbations must have shape \(S, \*x.shape\)"):
        st.avg_sensitivity(xattr.gradient, m, x, 0, perturbations=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="perturbation must be 'uniform', 'gaussian'"):
        st.local_lipschitz_estimate(xattr.gradient, m, x, 0, rng=0, perturbation="laplace")
    with pytest.raises(ValueError, match="scale must be positive"):
        st.avg_sensitivity(xattr.gradient, m, x, 0, rng=0, radius=0)
    with pytest.raises(ValueError, match="is zero"):
        st.avg_sensitivity(lambda mm, xx, t: np.zeros_like(xx), m, x, 0, rng=0, normalize=True)
    with pytest.raises(ValueError, match="returned 2 maps for 1 images"):
        st.avg_sensitivity(lambda mm, xx, t: np.zeros((2,) + xx.shape[1:]), m, x, 0, rng=0)
