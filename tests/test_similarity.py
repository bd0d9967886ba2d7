"""Map similarities (xattr/evaluation/similarity.py) against hand-computed values and a naive SSIM twin."""
import numpy as np
import pytest

from xattr.evaluation import similarity as sim


def test_spearman_closed_forms():
    a = np.array([[1.0, 2.0, 2.0, 3.0]])
    b = np.array([[1.0, 2.0, 3.0, 4.0]])
    # ranks [1, 2.5, 2.5, 4] vs [1, 2, 3, 4]: 4.5 / sqrt(4.5 * 5)
    np.testing.assert_allclose(sim.spearman(a, b), [4.5 / np.sqrt(22.5)], rtol=1e-14)
    x = np.random.default_rng(0).normal(size=(3, 2, 4, 4))
    np.testing.assert_allclose(sim.spearman(x, x ** 3), 1.0)  # invariant to monotone maps
    np.testing.assert_allclose(sim.spearman(x, -x), -1.0)
    np.testing.assert_allclose(sim.spearman(x, -x, absolute=True), 1.0)


def _naive_ssim(a, b, sigma=1.5):
    """Loops over every window that lies inside the map, weights from the Gaussian formula."""
    r = int(3.5 * sigma + 0.5)
    t = np.arange(-r, r + 1)
    g = np.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * sigma ** 2))
    g /= g.sum()
    L = max(a.max(), b.max()) - min(a.min(), b.min())
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    vals = []
    for i in range(r, a.shape[0] - r):
        for j in range(r, a.shape[1] - r):
            pa, pb = a[i - r : i + r + 1, j - r : j + r + 1], b[i - r : i + r + 1, j - r : j + r + 1]
            ma, mb = (g * pa).sum(), (g * pb).sum()
            va, vb = (g * (pa - ma) ** 2).sum(), (g * (pb - mb) ** 2).sum()
            cov = (g * (pa - ma) * (pb - mb)).sum()
            vals.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
    return np.mean(vals)


def test_ssim_equals_its_naive_twin_and_is_one_on_identical_maps():
    rng = np.random.default_rng(1)
    a = rng.random((2, 14, 13))
    b = a + 0.3 * rng.random((2, 14, 13))
    got = sim.ssim(a, b)
    np.testing.assert_allclose(got, [_naive_ssim(a[i], b[i]) for i in range(2)], rtol=1e-10)
    np.testing.assert_allclose(sim.ssim(a, a), 1.0, rtol=1e-12)
    assert np.all(got < 1)
    np.testing.assert_allclose(sim.ssim(a[:, None], b[:, None]), got)  # (N, 1, H, W) accepted


def test_topk_intersection_closed_form_and_ties():
    a = np.array([[5.0, 4.0, 3.0, 2.0, 1.0]])
    b = np.array([[5.0, 1.0, 4.0, 2.0, 3.0]])
    np.testing.assert_allclose(sim.topk_intersection(a, b, 2), [0.5])  # {0,1} vs {0,2}
    np.testing.assert_allclose(sim.topk_intersection(a, b, 5), [1.0])
    ties = np.array([[1.0, 1.0, 1.0, 0.0]])
    np.testing.assert_array_equal(sim.top_k(ties, 2), [[0, 1]])  # raster order among equal values


def test_compare_maps():
    x = np.random.default_rng(2).normal(size=(2, 3, 24, 24))  # HOG's default blocks need 24x24
    out = sim.compare_maps(x, x, metrics=sim.METRICS, k=10)
    for name in sim.METRICS:
        np.testing.assert_allclose(out[name], 1.0)
    with pytest.raises(ValueError, match="needs k"):
        sim.compare_maps(x, x, metrics=("topk",))
    with pytest.raises(ValueError, match="unknown metric 'kendall'"):
        sim.compare_maps(x, x, metrics=("kendall",))


def test_bad_input_gives_clear_errors_not_nan():
    x = np.random.default_rng(3).random((2, 12, 12))
    const = np.ones((2, 12, 12))
    with pytest.raises(ValueError, match=r"b\[0\] is constant: the rank correlation is undefined"):
        sim.spearman(x, const)
    with pytest.raises(ValueError, match="same shape"):
        sim.spearman(x, x[:, :5])
    with pytest.raises(ValueError, match="same constant map"):
        sim.ssim(const, const)
    assert np.all(np.isfinite(sim.ssim(x, const)))  # one constant map: defined (C1, C2 > 0)
    with pytest.raises(ValueError, match="at least 11x11"):
        sim.ssim(x[:, :8], x[:, :8])
    with pytest.raises(ValueError, match="reduce the channels"):
        sim.ssim(np.ones((1, 3, 12, 12)), np.ones((1, 3, 12, 12)))
    with pytest.raises(ValueError, match="data_range must be a positive"):
        sim.ssim(x, x, data_range=0)
    with pytest.raises(ValueError, match="k must be between 1"):
        sim.topk_intersection(x, x, 0)
    with pytest.raises(ValueError, match="constant: a top-k set"):
        sim.topk_intersection(const, x, 3)
    with pytest.raises(ValueError, match="must be finite"):
        sim.spearman(np.full((1, 4), np.nan), x[:1, 0, :4])


def test_pearson_and_hog_pearson_against_numpy_and_scikit_image():
    from skimage.feature import hog

    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(3, 24, 30)), rng.normal(size=(3, 24, 30))
    b[1] = 2 * a[1] + 1
    np.testing.assert_allclose(sim.pearson(a, b), [np.corrcoef(u.ravel(), v.ravel())[0, 1] for u, v in zip(a, b)],
                               rtol=1e-12)
    np.testing.assert_allclose(sim.pearson(a, b)[1], 1.0)
    got = sim.hog_pearson(a, b)
    for i in range(3):
        ha, hb = hog(a[i]), hog(b[i])
        np.testing.assert_allclose(got[i], np.corrcoef(ha, hb)[0, 1], rtol=1e-12)
    small = sim.hog_pearson(a[:, :8, :8], b[:, :8, :8], pixels_per_cell=4, cells_per_block=2)
    assert small.shape == (3,)
    with pytest.raises(ValueError, match="needs maps of at least 24x24"):
        sim.hog_pearson(a[:, :12], b[:, :12])
    with pytest.raises(ValueError, match="constant"):
        sim.pearson(a, np.ones_like(a))
