"""SmoothGrad, SmoothGrad², VarGrad: determinism, analytic expectations, batching, the sigma definitions."""
import autograd.numpy as anp
import numpy as np
import pytest
from scipy.stats import norm

import xattr
from xattr.methods.smoothing import noise_scale, smoothgrad
from xattr.nn import Conv2D, Dense, GlobalAvgPool2D, ReLU, Sequential

from nets import Opaque  # the bare-protocol twin: no layer-aware shortcuts


def identity_method(model, x, target):
    """Returns the (noisy) input itself: exposes the noise the wrapper adds."""
    return np.array(x, copy=True)


def cnn(seed=0):
    g = np.random.default_rng(seed)
    return Sequential(Conv2D(2, 4, 3, padding=1, rng=g), ReLU(), GlobalAvgPool2D(), Dense(4, 3, rng=g))


def test_same_seed_same_bits_and_dtype():
    model = cnn()
    x = np.random.default_rng(0).random((2, 2, 6, 6))
    a = smoothgrad(xattr.gradient, model, x, 1, n=10, rng=7)
    b = smoothgrad(xattr.gradient, model, x, 1, n=10, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, smoothgrad(xattr.gradient, model, x, 1, n=10, rng=8))
    x32 = x.astype(np.float32)
    assert smoothgrad("gradient", model, x32, 1, n=4, rng=0).dtype == np.float32


def test_batching_does_not_change_the_result():
    """batch_size=1 (one noisy image per call) and one big batch give the same maps."""
    model = cnn(1)
    x = np.random.default_rng(1).random((3, 2, 6, 6))
    for variant in ("mean", "squared", "vargrad"):
        one = smoothgrad(xattr.gradient, model, x, 2, n=8, variant=variant, rng=3, batch_size=1)
        big = smoothgrad(xattr.gradient, model, x, 2, n=8, variant=variant, rng=3, batch_size=1000)
        np.testing.assert_allclose(one, big, rtol=1e-12, atol=1e-15)


def test_batch_equals_per_sample_with_the_documented_noise():
    """Image i of a batch gets noise z[i, s] of z = rng.standard_normal((N, n) + x.shape[1:])."""
    model = cnn(2)
    x = np.random.default_rng(2).random((2, 2, 6, 6))
    n = 6
    out = smoothgrad(xattr.gradient, model, x, np.array([0, 2]), n=n, sigma=0.1, rng=5, batch_size=4)
    z = np.random.default_rng(5).standard_normal((2, n) + x.shape[1:])
    for i, t in enumerate([0, 2]):
        sig = 0.1 * (x[i].max() - x[i].min())
        per = [xattr.gradient(model, x[i : i + 1] + sig * z[i, s], t) for s in range(n)]
        np.testing.assert_allclose(out[i], np.mean(per, axis=0)[0], rtol=1e-12, atol=1e-15)


def test_converges_to_the_analytic_expectation():
    """F(x) = Σ relu(x): ∂F/∂x = 1[x + ε > 0], so E = Φ(x/σ), E[g²] = Φ(x/σ), Var = Φ(1 − Φ)."""
    model = xattr.from_function(lambda v: anp.sum(anp.maximum(anp.reshape(v, (v.shape[0], -1)), 0), axis=1)[:, None])
    x = np.linspace(-1, 1, 8).reshape(1, 1, 2, 4)
    sigma, n = 0.5, 4000
    p = norm.cdf(x / sigma)
    se = np.sqrt(p * (1 - p) / n)
    mean = smoothgrad(xattr.gradient, model, x, 0, n=n, sigma=sigma, sigma_is="absolute", rng=0)
    assert np.all(np.abs(mean - p) <= 5 * se + 1e-12)
    sq = smoothgrad(xattr.gradient, model, x, 0, n=n, sigma=sigma, sigma_is="absolute", variant="squared", rng=0)
    np.testing.assert_array_equal(sq, mean)  # an indicator squared is itself
    var = smoothgrad(xattr.gradient, model, x, 0, n=n, sigma=sigma, sigma_is="absolute", variant="vargrad", rng=0)
    np.testing.assert_allclose(var, mean * (1 - mean), rtol=1e-10, atol=1e-12)  # population variance of 0/1 draws
    assert np.all(np.abs(var - p * (1 - p)) <= 5 * se + 1e-12)


def test_smooth_quadratic_moments():
    """F = Σ w x²: g = 2 w (x + ε): E g = 2 w x, E g² = 4 w² (x² + σ²), Var g = 4 w² σ²."""
    g = np.random.default_rng(4)
    w = g.normal(size=(1, 1, 3, 3))
    model = xattr.from_function(lambda v: anp.sum(anp.reshape(w * v * v, (v.shape[0], -1)), axis=1)[:, None])
    x = g.normal(size=(1, 1, 3, 3))
    sigma, n = 0.3, 5000
    kw = dict(n=n, sigma=sigma, sigma_is="absolute", rng=1)
    m = smoothgrad(xattr.gradient, model, x, 0, **kw)
    assert np.all(np.abs(m - 2 * w * x) <= 5 * 2 * np.abs(w) * sigma / np.sqrt(n))
    v = smoothgrad(xattr.gradient, model, x, 0, variant="vargrad", **kw)
    # sample variance of a normal: sd ≈ var·sqrt(2/n)
    np.testing.assert_allclose(v, 4 * w**2 * sigma**2, rtol=5 * np.sqrt(2 / n))
    s = smoothgrad(xattr.gradient, model, x, 0, variant="squared", **kw)
    np.testing.assert_allclose(s, v + m**2, rtol=1e-9)  # E g² = Var g + (E g)², the same draws


@pytest.mark.parametrize("sigma_is", ["range", "absolute"])
def test_sigma_definitions(sigma_is):
    g = np.random.default_rng(6)
    x = np.stack([g.random((1, 20, 20)) * 4 - 1, g.random((1, 20, 20)) * 0.5])  # ranges ≈ 4 and ≈ 0.5
    var = smoothgrad(identity_method, None_model(), x, 0, n=400, sigma=0.2, sigma_is=sigma_is,
                     variant="vargrad", rng=2)
    expected = noise_scale(x, 0.2, sigma_is) ** 2
    if sigma_is == "range":
        np.testing.assert_allclose(expected, (0.2 * np.ptp(x.reshape(2, -1), axis=1)) ** 2)
    else:
        np.testing.assert_allclose(expected, [0.04, 0.04])
    pooled = var.reshape(2, -1).mean(1)  # 400 pixels × 400 draws each
    np.testing.assert_allclose(pooled, expected, rtol=0.02)


class None_model:
    """A minimal model (K = 1) for methods that ignore the model."""

    def forward(self, x):
        return np.zeros((len(x), 1))

    def vjp(self, x, g, rule="gradient", **options):
        return np.zeros(x.shape)


def test_input_not_modified_and_method_options_pass_through():
    model = cnn(3)
    x = np.random.default_rng(3).random((1, 2, 6, 6))
    before = x.copy()
    a = smoothgrad(xattr.integrated_gradients, model, x, 0, n=3, rng=0, steps=4, quadrature="riemann_middle")
    np.testing.assert_array_equal(x, before)
    assert a.shape == x.shape


def test_registered_entries_run_with_defaults():
    model = cnn(4)
    x = np.random.default_rng(4).random((1, 2, 6, 6))
    for name in ("smoothgrad", "smoothgrad_squared", "vargrad"):
        a = xattr.get_method(name)(model, x, 0, n=3)
        assert a.shape == x.shape
    np.testing.assert_array_equal(xattr.get_method("smoothgrad")(model, x, 0, n=3),
                                  smoothgrad(xattr.gradient, model, x, 0, n=3, rng=0))


def test_bad_input():
    model = cnn()
    x = np.zeros((1, 2, 6, 6))
    with pytest.raises(TypeError, match="rng must be"):
        smoothgrad(xattr.gradient, model, x, 0)
    with pytest.raises(ValueError, match="variant must be one of"):
        smoothgrad(xattr.gradient, model, x, 0, variant="median", rng=0)
    with pytest.raises(ValueError, match="sigma_is must be one of"):
        smoothgrad(xattr.gradient, model, x, 0, sigma_is="relative", rng=0)
    with pytest.raises(ValueError, match="sigma must be finite and >= 0"):
        smoothgrad(xattr.gradient, model, x, 0, sigma=-1, rng=0)
    with pytest.raises(ValueError, match="n must be a positive int"):
        smoothgrad(xattr.gradient, model, x, 0, n=0, rng=0)
    with pytest.raises(ValueError, match="unknown method"):
        smoothgrad("smoothest", model, x, 0, rng=0)
    with pytest.raises(ValueError, match="x must be finite"):
        smoothgrad(xattr.gradient, model, np.full((1, 2, 6, 6), np.nan), 0, rng=0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mean_of_gradients_behind_an_affine_head_equals_the_plain_mean(dtype):
    """(1/n) Σ_s Lᵀ ∂F/∂h = Lᵀ (1/n) Σ_s ∂F/∂h: the shortcut gives the same map (same noise)."""
    model = cnn(9)
    x = np.random.default_rng(9).random((3, 2, 6, 6)).astype(dtype)
    fast = smoothgrad(xattr.gradient, model, x, [0, 1, 2], n=12, rng=4, batch_size=5)
    plain = smoothgrad(xattr.gradient, Opaque(model), x, [0, 1, 2], n=12, rng=4, batch_size=5)
    assert fast.dtype == dtype
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(fast, plain, rtol=tol, atol=tol * np.abs(plain).max())
