"""Sparseness (Gini), complexity (entropy), effective complexity, discrete entropy
(xattr/evaluation/sparsity.py): closed forms, naive twins, bad input."""
import numpy as np
import pytest
from scipy import stats

from xattr.evaluation import sparsity as cx


def _gini_naive(v):
    """Hurley & Rickard's form: 1 - 2 Σ_k (c_(k) / ||c||₁) (F - k + 1/2) / F, one map at a time."""
    c = np.sort(np.abs(v.ravel()))
    F = len(c)
    return 1 - 2 * sum(c[k - 1] / c.sum() * (F - k + 0.5) / F for k in range(1, F + 1))


def test_sparseness_closed_forms_and_naive_twin():
    F = 12
    one_hot = np.zeros((1, 3, 4))
    one_hot[0, 1, 2] = -5.0
    np.testing.assert_allclose(cx.sparseness(one_hot), (F - 1) / F, rtol=1e-14)
    np.testing.assert_allclose(cx.sparseness(np.full((2, 3, 4), 0.7)), 0.0, atol=1e-15)
    a = np.random.default_rng(0).normal(size=(4, 2, 3, 3))
    np.testing.assert_allclose(cx.sparseness(a), [_gini_naive(v) for v in a], rtol=1e-12)
    two = np.zeros((1, 4))
    two[0, :2] = 1.0  # half the mass on half the features: G = 1/2 for F = 4 ... (2k-F-1) over k = 3, 4
    np.testing.assert_allclose(cx.sparseness(two), (1 * 1 + 3 * 1) / (4 * 2), rtol=1e-14)


def test_complexity_closed_forms_and_scipy_twin():
    np.testing.assert_allclose(cx.complexity(np.full((2, 5, 5), -3.0)), np.log(25), rtol=1e-14)
    one_hot = np.zeros((1, 5, 5))
    one_hot[0, 0, 0] = 2.0
    np.testing.assert_array_equal(cx.complexity(one_hot), 0.0)
    a = np.random.default_rng(1).normal(size=(3, 1, 4, 4))
    a[0, 0, 0, :2] = 0.0  # exact zeros: 0 log 0 = 0
    np.testing.assert_allclose(cx.complexity(a), [stats.entropy(np.abs(v).ravel()) for v in a], rtol=1e-13)


def test_effective_complexity():
    a = np.array([[0.0, 1e-6, -2e-5, 3.0], [1e-5, 1e-5, 0.5, -0.5]])
    np.testing.assert_array_equal(cx.effective_complexity(a), [2, 2])  # > eps, strictly
    np.testing.assert_array_equal(cx.effective_complexity(a, eps=0), [3, 4])
    with pytest.raises(ValueError, match="eps must be"):
        cx.effective_complexity(a, eps=-1)


def test_discrete_entropy_equals_numpy_histogram_entropy():
    rng = np.random.default_rng(2)
    for t in range(50):
        a = rng.normal(size=(3, 40)) * 10 ** rng.uniform(-3, 3)
        if t % 2:
            a = np.round(a, 1)  # values on the bin edges
        nb = int(rng.integers(1, 120))
        ref = [stats.entropy(np.histogram(v, bins=nb)[0]) for v in a]
        np.testing.assert_allclose(cx.discrete_entropy(a, nb), ref, rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(cx.discrete_entropy(np.ones((2, 3, 3))), 0.0)  # one bin
    uniform = np.arange(100.0)[None]
    np.testing.assert_allclose(cx.discrete_entropy(uniform, 10), np.log(10), rtol=1e-14)  # 10 per bin


def test_bad_input():
    with pytest.raises(ValueError, match="zero everywhere: the Gini index is undefined"):
        cx.sparseness(np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match=r"attribution\[1\] is zero everywhere"):
        cx.complexity(np.stack([np.ones((3, 3)), np.zeros((3, 3))]))
    with pytest.raises(ValueError, match="finite"):
        cx.sparseness(np.full((1, 3), np.nan))
    with pytest.raises(ValueError, match=r"batch \(N, \.\.\.\)"):
        cx.complexity(np.ones(3))
    with pytest.raises(ValueError, match="n_bins must be a positive int"):
        cx.discrete_entropy(np.ones((1, 3)), 0)
