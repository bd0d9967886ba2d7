"""Faithfulness correlation, faithfulness estimate, sensitivity-n and the two monotonicity measures
(xattr/evaluation/correlation.py): closed forms on linear models, naive loop twins, bad input."""
import numpy as np
import pytest
from scipy import stats

import xattr
from xattr.evaluation import correlation as co
from xattr.nn import Dense, Flatten, ReLU, Sequential


def linear(shape, k=2, seed=0):
    m = Sequential(Flatten(), Dense(int(np.prod(shape)), k, rng=seed))
    m[1].bias = np.linspace(-0.5, 0.5, k)
    return m


def mlp(shape, k=3, seed=0):
    f = int(np.prod(shape))
    return Sequential(Flatten(), Dense(f, 6, rng=seed), ReLU(), Dense(6, k, rng=seed + 1))


def exact(m, x, target, b):
    """``w_t ⊙ (x - b)``: the contributions of a linear model, which add up to every drop."""
    return m[1].weight[target].reshape(x.shape[1:]) * (x - b)


def _draws(seed, S, n, F, k):
    gen = np.random.default_rng(seed)
    return np.stack([np.argsort(gen.random((n, F)), axis=1)[:, :k] for _ in range(S)])


def _naive_corr(m, x, target, a, idx, base):
    """Pearson over subsets, one image and one subset at a time (np.corrcoef)."""
    out = []
    for i in range(len(x)):
        sums, drops = [], []
        f0 = m.forward(x[i:i + 1])[0, target]
        for s in range(len(idx)):
            img = x[i].copy().reshape(-1)
            img[idx[s, i]] = base[i].reshape(-1)[idx[s, i]]
            drops.append(f0 - m.forward(img.reshape((1,) + x.shape[1:]))[0, target])
            sums.append(a[i].reshape(-1)[idx[s, i]].sum())
        out.append(np.corrcoef(sums, drops)[0, 1])
    return np.array(out)


def test_faithfulness_correlation_is_one_for_exact_contributions_of_a_linear_model():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 2, 4, 4))
    m = linear(x.shape[1:])
    b = 0.25
    got = co.faithfulness_correlation(m, x, 1, exact(m, x, 1, b), baseline=b, rng=0, n_subsets=20)
    np.testing.assert_allclose(got, 1.0, rtol=1e-12)
    rand = co.faithfulness_correlation(m, x, 1, rng.normal(size=x.shape), baseline=b, rng=0, n_subsets=50)
    assert np.all(np.abs(rand) < 0.9)
    with pytest.raises(ValueError, match="attribution sums are constant"):
        co.faithfulness_correlation(m, x, 1, np.ones_like(x), rng=0, n_subsets=5)  # constant map, fixed |S|


def test_faithfulness_correlation_against_a_naive_loop_with_explicit_subsets():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 1, 3, 4))
    m = mlp(x.shape[1:])
    a = rng.normal(size=x.shape)
    idx = _draws(3, 8, 2, 12, 4)
    got = co.faithfulness_correlation(m, x, 2, a, subsets=idx, baseline=-0.5, batch_size=3)
    np.testing.assert_allclose(got, _naive_corr(m, x, 2, a, idx, np.full_like(x, -0.5)), rtol=1e-12)
    drawn = co.faithfulness_correlation(m, x, 2, a, subset_size=4, n_subsets=8, baseline=-0.5, rng=3)
    np.testing.assert_array_equal(drawn, got)  # the draws are documented: one argsort of uniforms per subset
    pix = co.faithfulness_correlation(m, x, 2, a[:, 0], subsets=idx, baseline=-0.5)  # pixel features: C = 1
    np.testing.assert_allclose(pix, got, rtol=1e-13)


def test_sensitivity_n_is_faithfulness_correlation_per_subset_size():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 1, 3, 3))
    m = mlp(x.shape[1:])
    a = xattr.gradient_x_input(m, x, 0)
    got = co.sensitivity_n(m, x, 0, a, ns=[2, 5], n_subsets=10, rng=4)
    gen = np.random.default_rng(4)
    for j, k in enumerate((2, 5)):
        idx = np.stack([np.argsort(gen.random((2, 9)), axis=1)[:, :k] for _ in range(10)])
        np.testing.assert_allclose(got[:, j], _naive_corr(m, x, 0, a, idx, np.zeros_like(x)), rtol=1e-12)
    lin = linear(x.shape[1:])
    np.testing.assert_allclose(co.sensitivity_n(lin, x, 0, exact(lin, x, 0, 0.0), ns=[1, 4, 8], n_subsets=12, rng=0),
                               1.0, rtol=1e-12)  # a linear model satisfies sensitivity-n for every n
    with pytest.raises(TypeError, match="pass rng"):
        co.sensitivity_n(m, x, 0, a, ns=[2])
    with pytest.raises(ValueError, match="subset size must be between 1 and F - 1"):
        co.sensitivity_n(m, x, 0, a, ns=[9], rng=0)


def test_faithfulness_estimate_closed_form_and_naive_twin():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 2, 3, 3))
    lin = linear(x.shape[1:])
    for step in (1, 2, 5):
        np.testing.assert_allclose(co.faithfulness_estimate(lin, x, 1, exact(lin, x, 1, 0.3), baseline=0.3,
                                                            features_per_step=step), 1.0, rtol=1e-12)
    m = mlp(x.shape[1:])
    a = rng.normal(size=(2, 3, 3))  # pixel features
    got = co.faithfulness_estimate(m, x, 1, a, features_per_step=2, baseline=0.1, batch_size=4)
    for i in range(2):
        order = sorted(range(9), key=lambda j: (-a[i].reshape(-1)[j], j))
        f0 = m.forward(x[i:i + 1])[0, 1]
        sums, drops = [], []
        for g in range(0, 9, 2):
            img = x[i].copy().reshape(2, -1)
            img[:, order[g:g + 2]] = 0.1
            drops.append(f0 - m.forward(img.reshape(1, 2, 3, 3))[0, 1])
            sums.append(a[i].reshape(-1)[order[g:g + 2]].sum())
        np.testing.assert_allclose(got[i], np.corrcoef(sums, drops)[0, 1], rtol=1e-12)
    with pytest.raises(ValueError, match="features_per_step must be between 1 and F // 2"):
        co.faithfulness_estimate(m, x, 1, a, features_per_step=5)
    with pytest.raises(ValueError, match=r"attribution\[0\] is constant"):
        co.faithfulness_estimate(m, x, 1, np.zeros_like(a))


def test_monotonicity_closed_form_on_a_linear_model():
    rng = np.random.default_rng(4)
    x = np.abs(rng.normal(size=(2, 1, 2, 3))) + 0.1
    m = linear(x.shape[1:], k=1)
    m[1].weight = np.abs(m[1].weight)
    a = exact(m, x, 0, 0.0)
    mono, curve = co.monotonicity(m, x, 0, a, score="logit", return_curve=True)
    np.testing.assert_array_equal(mono, True)  # every added feature raises the score
    ascending = np.sort(a.reshape(2, -1), axis=1)
    expected = m[1].bias[0] + np.concatenate([np.zeros((2, 1)), np.cumsum(ascending, axis=1)], axis=1)
    np.testing.assert_allclose(curve, expected, rtol=1e-12)
    m[1].weight[0, 0] = -1.0  # one feature lowers the score, but it is added first: only p_0 -> p_1 falls
    np.testing.assert_array_equal(co.monotonicity(m, x, 0, exact(m, x, 0, 0.0), score="logit"), True)
    m[1].weight[0, :2] = -1.0  # two features lower the score: after the first, the second lowers it again
    np.testing.assert_array_equal(co.monotonicity(m, x, 0, exact(m, x, 0, 0.0), score="logit"), False)
    _, steps = co.monotonicity(m, x, 0, a, features_per_step=4, score="logit", return_curve=True)
    assert steps.shape == (2, 3)  # 0, 4, 6 features added


def test_monotonicity_probability_against_a_naive_loop():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 1, 2, 2))
    m = mlp(x.shape[1:])
    a = rng.normal(size=x.shape)
    mono, curve = co.monotonicity(m, x, 2, a, baseline=0.5, return_curve=True)
    for i in range(2):
        img = np.full(4, 0.5)
        ps = []
        for j in [None] + sorted(range(4), key=lambda j: (a[i].reshape(-1)[j], j)):
            if j is not None:
                img[j] = x[i].reshape(-1)[j]
            s = m.forward(img.reshape(1, 1, 2, 2))[0]
            ps.append(np.exp(s[2]) / np.exp(s).sum())
        np.testing.assert_allclose(curve[i], ps, rtol=1e-12)
        assert mono[i] == bool(np.all(np.diff(ps[1:]) >= 0))  # the baseline's own score is not compared


def test_monotonicity_correlation_closed_form_and_naive_twin():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 1, 3, 3))
    lin = linear(x.shape[1:])
    b = 0.2
    a = exact(lin, x, 0, b)
    samples = np.full((3,) + x.shape, b)  # every sample the baseline: e_i = a_i², perfectly monotone in |a_i|
    np.testing.assert_allclose(co.monotonicity_correlation(lin, x, 0, a, samples=samples), 1.0, rtol=1e-12)
    m = mlp(x.shape[1:])
    a = rng.normal(size=x.shape)
    samples = rng.uniform(-1, 1, size=(4,) + x.shape)
    got = co.monotonicity_correlation(m, x, 1, a, samples=samples, batch_size=5)
    for i in range(2):
        f0 = m.forward(x[i:i + 1])[0, 1]
        e = []
        for j in range(9):
            d = []
            for s in range(4):
                img = x[i].copy().reshape(-1)
                img[j] = samples[s, i].reshape(-1)[j]
                d.append((f0 - m.forward(img.reshape(1, 1, 3, 3))[0, 1]) ** 2)
            e.append(np.mean(d))
        np.testing.assert_allclose(got[i], stats.spearmanr(np.abs(a[i]).reshape(-1), e)[0], rtol=1e-12)
    drawn = co.monotonicity_correlation(m, x, 1, a, n_samples=4, rng=7)
    gen = np.random.default_rng(7)
    lo, hi = x.min(axis=(1, 2, 3), keepdims=True), x.max(axis=(1, 2, 3), keepdims=True)
    explicit = np.stack([lo + gen.uniform(0, 1, x.shape) * (hi - lo) for _ in range(4)])
    np.testing.assert_allclose(drawn, co.monotonicity_correlation(m, x, 1, a, samples=explicit), rtol=1e-13)
    with pytest.raises(TypeError, match="pass rng"):
        co.monotonicity_correlation(m, x, 1, a)
    with pytest.raises(ValueError, match=r"samples must have shape \(S, \*x.shape\)"):
        co.monotonicity_correlation(m, x, 1, a, samples=samples[:, 0])


def test_bad_subsets_and_targets():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(2, 1, 2, 2))
    m = mlp(x.shape[1:])
    a = rng.normal(size=x.shape)
    with pytest.raises(ValueError, match=r"subsets must be an int array \(S, N, k\)"):
        co.faithfulness_correlation(m, x, 0, a, subsets=np.zeros((3, 1, 2), dtype=int))
    with pytest.raises(ValueError, match="out of range"):
        co.faithfulness_correlation(m, x, 0, a, subsets=np.full((3, 2, 2), 4))
    with pytest.raises(ValueError, match="must not repeat"):
        co.faithfulness_correlation(m, x, 0, a, subsets=np.zeros((3, 2, 2), dtype=int))
    with pytest.raises(TypeError, match="pass rng"):
        co.faithfulness_correlation(m, x, 0, a)
    with pytest.raises(ValueError, match="out of range for a model with 3 outputs"):
        co.faithfulness_estimate(m, x, 5, a)
    with pytest.raises(ValueError, match="needs a class target"):
        co.monotonicity(m, x, lambda s: s[:, 0] * 1.0, a)
    with pytest.raises(ValueError, match="finite"):
        co.faithfulness_estimate(m, x, 0, np.full_like(a, np.nan))
