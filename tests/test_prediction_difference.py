"""Prediction difference analysis (xattr/methods/prediction_difference.py, Zintgraf et al. 2017).

Oracles: a logistic model on i.i.d. Gaussian pixels, where the conditional is the marginal and
``p(c | x_\\w) = E σ(a + Z)`` with ``Z = w_w · x_w ~ N(μ Σ w_w, s² |w_w|²)`` is a one-dimensional
Gaussian integral (Gauss–Hermite, 80 nodes); the Gaussian conditional in precision form
(``Λ = Σ⁻¹``: covariance ``Λ_11⁻¹``, regression ``−Λ_11⁻¹ Λ_12``); naive loops over windows and patches.
"""
import numpy as np
import pytest
from scipy.special import expit, roots_hermitenorm

import xattr
from xattr.methods import prediction_difference as _entry  # noqa: F401  (the package imports the module)
from xattr.methods.prediction_difference import (
    PatchGaussian,
    _conditional_samples,
    conditional_gaussian,
    fit_patch_gaussian,
    prediction_difference,
    weight_of_evidence,
)
from xattr.nn import Dense, Flatten, Sequential
from xattr.testing import cases


def logistic(w, b):
    """Two logits (0, w·x + b): softmax gives p(class 1) = σ(w·x + b)."""
    m = Sequential(Flatten(), Dense(w.size, 2, rng=0))
    m[1].weight = np.stack([np.zeros(w.size), w.ravel()])
    m[1].bias = np.array([0.0, b])
    return m


def spd(gen, d):
    a = gen.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_weight_of_evidence_by_hand():
    # Laplace N = 100, K = 2: 0.9 -> 91/102, 0.5 -> 51/102 = 0.5 (zero log-odds)
    np.testing.assert_allclose(weight_of_evidence(0.9, 0.5, 100, 2), np.log2(91 / 11), rtol=1e-14)
    np.testing.assert_allclose(weight_of_evidence(0.9, 0.5, None), np.log2(9), rtol=1e-14)
    np.testing.assert_allclose(weight_of_evidence(0.2, 0.8, None), -4.0, rtol=1e-14)  # log2(1/4) - log2(4)
    assert np.isfinite(weight_of_evidence(1.0, 0.0, 1000, 10))  # the correction keeps 0 and 1 finite
    with pytest.raises(ValueError, match="Laplace correction"):
        weight_of_evidence(1.0, 0.5, None)
    with pytest.raises(ValueError, match="number of classes"):
        weight_of_evidence(0.5, 0.5, 100)


def test_logistic_model_on_iid_gaussian_pixels_against_the_closed_form():
    gen = np.random.default_rng(0)
    H = 7
    w = gen.normal(size=(1, H, H)) * 0.6
    b, mu, s = 0.3, 0.2, 0.7
    m = logistic(w, b)
    x = mu + s * gen.normal(size=(2, 1, H, H))
    k, p = 3, 1
    l2 = (k + 2 * p) ** 2
    g = PatchGaussian(np.full((1, l2), mu), s**2 * np.eye(l2)[None], k, p, "independent", 1)
    S = 400
    res = prediction_difference(m, x, 1, g, window=k, padding=p, n_samples=S, rng=1, return_windows=True,
                                laplace=None)
    z, v = roots_hermitenorm(80)  # ∫ f(t) e^{-t²/2} dt ≈ Σ v f(z)
    v = v / v.sum()
    worst = 0.0
    for n in range(2):
        for i, r in enumerate(res.rows):
            for j, c in enumerate(res.cols):
                inside = np.zeros((H, H), dtype=bool)
                inside[r:r + k, c:c + k] = True
                a = (w[0] * x[n, 0])[~inside].sum() + b
                ww = w[0][inside]
                m_z, sd_z = mu * ww.sum(), s * np.linalg.norm(ww)
                vals = expit(a + m_z + sd_z * z)
                e1, e2 = vals @ v, vals**2 @ v
                se = np.sqrt(max(e2 - e1**2, 0) / S)
                worst = max(worst, abs(res.p_without[n, i, j] - e1) / se)
    assert worst < 4.5  # 50 windows: the largest of 50 standardised errors; 4.5 sigma has p ~ 3e-4 overall
    np.testing.assert_allclose(res.p, expit((w * x).reshape(2, -1).sum(1) + b), rtol=1e-13)
    np.testing.assert_allclose(res.evidence, weight_of_evidence(res.p[:, None, None], res.p_without, None))


def test_relevance_is_the_mean_evidence_of_the_windows_containing_each_pixel():
    m, x = cases.small_cnn(size=10), cases.images(n=2, size=10)
    res = prediction_difference(m, x, np.array([1, 2]), window=3, padding=1, stride=2, n_samples=3, rng=0,
                                return_windows=True)
    assert res.rows.tolist() == [0, 2, 4, 6, 7] and res.cols.tolist() == [0, 2, 4, 6, 7]  # last one at the border
    want = np.zeros((2, 10, 10))
    cnt = np.zeros((10, 10))
    for i, r in enumerate(res.rows):
        for j, c in enumerate(res.cols):
            want[:, r:r + 3, c:c + 3] += res.evidence[:, i, j, None, None]
            cnt[r:r + 3, c:c + 3] += 1
    np.testing.assert_allclose(res.relevance[:, 0], want / cnt, rtol=1e-12)


def test_pixels_the_model_ignores_get_exactly_zero_evidence():
    gen = np.random.default_rng(2)
    w = gen.normal(size=(1, 6, 6))
    w[:, :, :3] = 0.0  # the left half is ignored
    m = logistic(w, 0.1)
    x = gen.normal(size=(1, 1, 6, 6))
    res = prediction_difference(m, x, 1, window=2, padding=1, n_samples=4, rng=0, return_windows=True,
                                references=gen.normal(size=(6, 1, 6, 6)))
    left = res.cols + 2 <= 3
    np.testing.assert_array_equal(res.evidence[:, :, left], 0.0)
    assert np.all(res.evidence[:, :, ~left] != 0)


@pytest.mark.parametrize("channels", ["independent", "joint"])
def test_conditional_gaussian_against_the_precision_form(channels):
    gen = np.random.default_rng(3)
    C, k, p = 2, 2, 1
    l = k + 2 * p
    G, D = (C, l * l) if channels == "independent" else (1, C * l * l)
    g = PatchGaussian(gen.normal(size=(G, D)), np.stack([spd(gen, D) for _ in range(G)]), k, p, channels, C)
    for dy in range(2 * p + 1):
        for dx in range(2 * p + 1):
            inner, outer, B, S = conditional_gaussian(g, (dy, dx))
            win = np.zeros((C if channels == "joint" else 1, l, l), dtype=bool)
            win[:, dy:dy + k, dx:dx + k] = True
            np.testing.assert_array_equal(inner, np.flatnonzero(win.ravel()))
            for gi in range(G):
                lam = np.linalg.inv(g.cov[gi])
                l11_inv = np.linalg.inv(lam[np.ix_(inner, inner)])
                np.testing.assert_allclose(S[gi] @ S[gi].T, l11_inv, rtol=1e-9, atol=1e-12)
                np.testing.assert_allclose(B[gi], -l11_inv @ lam[np.ix_(inner, outer)], rtol=1e-9, atol=1e-12)


class _Zeros:
    """A generator whose normal draws are 0: the samples are then the conditional means."""

    def standard_normal(self, shape):
        return np.zeros(shape)


@pytest.mark.parametrize("channels", ["independent", "joint"])
def test_conditional_means_at_every_position_against_a_naive_loop(channels):
    """The frame is moved inside the image near the border and the window sits off-centre in it."""
    gen = np.random.default_rng(4)
    C, k, p, H = 2, 2, 1, 6
    l = k + 2 * p
    G, D = (C, l * l) if channels == "independent" else (1, C * l * l)
    g = PatchGaussian(gen.normal(size=(G, D)), np.stack([spd(gen, D) for _ in range(G)]), k, p, channels, C)
    x = gen.normal(size=(2, C, H, H))
    pos = [(n, r, c) for n in range(2) for r in range(H - k + 1) for c in range(H - k + 1)]
    img, r0, c0 = (np.array(a) for a in zip(*pos))
    got = _conditional_samples(g, x, img, r0, c0, 1, _Zeros(), {})[:, 0]
    for b, (n, r, c) in enumerate(pos):
        top, left = min(max(r - p, 0), H - l), min(max(c - p, 0), H - l)
        frame = x[n, :, top:top + l, left:left + l]
        win = np.zeros((C, l, l), dtype=bool)
        win[:, r - top:r - top + k, c - left:c - left + k] = True
        want = np.empty((C, k, k))
        for gi in range(G):
            chans = [gi] if channels == "independent" else list(range(C))
            v, msk = frame[chans].ravel(), win[chans].ravel()
            lam = np.linalg.inv(g.cov[gi])
            cm = g.mean[gi][msk] - np.linalg.solve(
                lam[np.ix_(msk, msk)], lam[np.ix_(msk, ~msk)] @ (v[~msk] - g.mean[gi][~msk])
            )
            want[chans] = cm.reshape(len(chans), k, k)
        np.testing.assert_allclose(got[b], want, rtol=1e-9, atol=1e-12)


def test_sampled_windows_have_the_conditional_covariance():
    gen = np.random.default_rng(5)
    k, p = 2, 1
    D = (k + 2 * p) ** 2
    g = PatchGaussian(np.zeros((1, D)), spd(gen, D)[None], k, p, "independent", 1)
    x = gen.normal(size=(1, 1, 4, 4))
    n = 20000
    s = _conditional_samples(g, x, np.array([0]), np.array([1]), np.array([1]), n, np.random.default_rng(0), {})
    v = s.reshape(n, -1)
    S = conditional_gaussian(g, (1, 1))[3]
    cov = S[0] @ S[0].T
    # the sample covariance's standard error is about sqrt((σ_ii σ_jj + σ_ij²) / n); 5 of them
    tol = 5 * np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    assert np.all(np.abs(np.cov(v.T) - cov) <= tol)


def test_fit_patch_gaussian_against_a_naive_loop():
    gen = np.random.default_rng(6)
    refs = 5.0 + gen.normal(size=(3, 2, 6, 7))
    for channels in ("independent", "joint"):
        g = fit_patch_gaussian(refs, window=2, padding=1, channels=channels, chunk=2, ridge=0)
        patches = np.array([refs[n, :, r:r + 4, c:c + 4] for n in range(3) for r in range(3) for c in range(4)])
        groups = [patches[:, ci].reshape(len(patches), -1) for ci in range(2)] if channels == "independent" \
            else [patches.reshape(len(patches), -1)]
        for gi, v in enumerate(groups):
            np.testing.assert_allclose(g.mean[gi], v.mean(0), rtol=1e-12)
            np.testing.assert_allclose(g.cov[gi], np.cov(v.T, bias=True), rtol=1e-9, atol=1e-12)
        jit = fit_patch_gaussian(refs, window=2, padding=1, channels=channels)  # + 1e-6 x the mean variance
        for gi in range(len(groups)):
            d = jit.cov[gi] - g.cov[gi]
            np.testing.assert_allclose(d, 1e-6 * np.trace(g.cov[gi]) / len(d) * np.eye(len(d)), rtol=1e-6, atol=1e-14)


def test_marginal_sampling_from_one_reference_is_the_naive_swap():
    m, x = cases.small_cnn(size=8), cases.images(n=2, size=8)
    ref = cases.images(rng=9, n=1, size=8)
    res = prediction_difference(m, x, np.array([0, 1]), ref, window=3, sampling="marginal", n_samples=2, rng=0,
                                return_windows=True, probabilities="softmax")

    def prob(img, c):
        s = m.forward(img[None])[0]
        e = np.exp(s - s.max())
        return e[c] / e.sum()

    for n, c in [(0, 0), (1, 1)]:
        for i, r in enumerate(res.rows):
            for j, cc in enumerate(res.cols):
                img = x[n].copy()
                img[:, r:r + 3, cc:cc + 3] = ref[0, :, r:r + 3, cc:cc + 3]
                np.testing.assert_allclose(res.p_without[n, i, j], prob(img, c), rtol=1e-12)


@pytest.mark.parametrize("sampling", ["conditional", "marginal"])
def test_deterministic_under_rng_and_independent_of_batch_size(sampling):
    m, x = cases.small_cnn(size=8), cases.images(n=2, size=8)
    refs = cases.images(rng=3, n=6, size=8)
    kw = dict(window=3, padding=1, sampling=sampling, n_samples=3, references=refs)
    a = prediction_difference(m, x, 0, rng=5, batch_size=7, **kw)
    b = prediction_difference(m, x, 0, rng=np.random.default_rng(5), batch_size=128, **kw)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert not np.allclose(a, prediction_difference(m, x, 0, rng=6, **kw))
    assert x.tobytes() == cases.images(n=2, size=8).tobytes()


def test_registered_and_float32():
    m, x = cases.small_cnn(size=16), cases.images(n=1, size=16)
    refs = cases.images(rng=2, n=25, size=16)  # 225 frames of 14 x 14 > 196 dimensions
    fn = xattr.get_method("prediction_difference")
    out = fn(m, x.astype(np.float32), 0, references=refs, n_samples=2, stride=3)  # paper's k = 10, l = 14
    assert out.shape == (1, 1, 16, 16) and out.dtype == np.float32 and np.all(np.isfinite(out))
    assert xattr.prediction_difference is prediction_difference


def test_bad_input_is_refused():
    m, x = cases.small_cnn(size=8), cases.images(n=2, size=8)
    kw = dict(window=3, padding=1)
    with pytest.raises(TypeError, match="pass rng"):
        prediction_difference(m, x, 0, **kw)
    with pytest.raises(TypeError, match="must return ints"):
        prediction_difference(m, x, lambda s: s[:, 0], rng=0, **kw)
    with pytest.raises(ValueError, match="does not fit the image"):
        prediction_difference(m, x, 0, rng=0, window=3, padding=3)
    with pytest.raises(ValueError, match="window k = 9"):
        prediction_difference(m, x, 0, rng=0, window=9, padding=0)
    with pytest.raises(ValueError, match="full-rank"):
        prediction_difference(m, x[:1], 0, rng=0, window=4, padding=2)
    with pytest.raises(ValueError, match=r"references must be \(M,\)"):
        prediction_difference(m, x, 0, cases.images(n=2, size=6), rng=0, sampling="marginal", **kw)
    with pytest.raises(ValueError, match="marginal sampling draws each window from reference images"):
        prediction_difference(m, x, 0, rng=0, sampling="marginal", **kw)
    with pytest.raises(ValueError, match="sampling must be"):
        prediction_difference(m, x, 0, rng=0, sampling="gibbs", **kw)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        prediction_difference(m, x, 0, rng=0, probabilities="identity", **kw)
    with pytest.raises(ValueError, match="out of range"):
        prediction_difference(m, x, 5, rng=0, **kw)
    g = fit_patch_gaussian(cases.images(rng=1, n=4, size=8), window=2, padding=1)
    with pytest.raises(ValueError, match="patch model is for window 2"):
        prediction_difference(m, x, 0, g, rng=0, **kw)
    with pytest.raises(ValueError, match="needs mean"):
        PatchGaussian(np.zeros((1, 9)), np.zeros((1, 9, 9)), 1, 1, "independent", 3)
    singular = PatchGaussian(np.zeros((3, 25)), np.zeros((3, 25, 25)), 3, 1, "independent", 3)
    with pytest.raises(ValueError, match="not positive definite"):
        prediction_difference(m, x, 0, singular, rng=0, **kw)


def test_a_window_determined_by_its_frame_is_sampled_exactly():
    """Centre pixel = mean of its 8 neighbours: the conditional covariance is 0 (singular), the samples are the mean."""
    T = np.zeros((9, 8))
    T[[0, 1, 2, 3, 5, 6, 7, 8], np.arange(8)] = 1.0
    T[4] = 1.0 / 8
    g = PatchGaussian(np.zeros((1, 9)), (T @ T.T)[None], 1, 1, "independent", 1)
    _, _, B, S = conditional_gaussian(g, (1, 1))
    np.testing.assert_allclose(S @ S.transpose(0, 2, 1), 0.0, atol=1e-12)
    np.testing.assert_allclose(B, 1 / 8, rtol=1e-10)
    x = np.random.default_rng(0).normal(size=(1, 1, 5, 5))
    s = _conditional_samples(g, x, np.array([0]), np.array([2]), np.array([2]), 50, np.random.default_rng(1), {})
    np.testing.assert_allclose(s, (x[0, 0, 1:4, 1:4].sum() - x[0, 0, 2, 2]) / 8, rtol=1e-7)
