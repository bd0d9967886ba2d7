"""ROAD and its noisy linear imputation (xattr/evaluation/road.py): the harmonic closed form, a dense
naive twin, the noise, the curve, bad input."""
import numpy as np
import pytest

from xattr.evaluation import road as rd
from xattr.nn import Dense, Flatten, ReLU, Sequential


def _dense_imputation(img, removed):
    """One image, one removed pixel at a time: a dense system ``Σ_q w (u_p - v_q) = 0`` solved by numpy."""
    c, h, w = img.shape
    pix = [tuple(p) for p in np.argwhere(removed)]
    index = {p: i for i, p in enumerate(pix)}
    A = np.zeros((len(pix), len(pix)))
    b = np.zeros((len(pix), c))
    for i, (r, col) in enumerate(pix):
        for dr, dc, wt in rd.NEIGHBOUR_WEIGHTS:
            q = (r + dr, col + dc)
            if not (0 <= q[0] < h and 0 <= q[1] < w):
                continue
            A[i, i] += wt
            if q in index:
                A[i, index[q]] -= wt
            else:
                b[i] += wt * img[:, q[0], q[1]]
    u = np.linalg.solve(A, b)
    out = img.copy()
    for i, (r, col) in enumerate(pix):
        out[:, r, col] = u[i]
    return out


def test_a_linear_image_is_imputed_exactly_inside():
    h, w = 7, 8
    i, j = np.mgrid[:h, :w]
    x = np.stack([2.0 * i - 3.0 * j + 1.0, 0.5 * i + j])[None]
    removed = np.zeros((1, h, w), dtype=bool)
    removed[0, 2:5, 3:6] = True  # every removed pixel has its 8 neighbours: linear data is harmonic there
    np.testing.assert_allclose(rd.noisy_linear_imputation(x, removed, noise=0), x, atol=1e-12)


def test_imputation_against_the_dense_twin_with_borders_and_corners():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 2, 5, 6))
    removed = rng.random((3, 5, 6)) < 0.5
    removed[:, 0, 0] = True  # a corner
    got = rd.noisy_linear_imputation(x, removed, noise=0)
    for n in range(3):
        np.testing.assert_allclose(got[n], _dense_imputation(x[n], removed[n]), rtol=1e-11, atol=1e-12)
    np.testing.assert_array_equal(got[:, :, ~removed[0]][0], x[:, :, ~removed[0]][0])  # kept pixels unchanged
    # the corner's equation: its 3 neighbours weighted 1/6, 1/6, 1/12
    one = np.zeros((1, 1, 3, 3))
    one[0, 0, 0, 1], one[0, 0, 1, 0], one[0, 0, 1, 1] = 6.0, 12.0, 24.0
    corner = np.zeros((1, 3, 3), dtype=bool)
    corner[0, 0, 0] = True
    v = rd.noisy_linear_imputation(one, corner, noise=0)[0, 0, 0, 0]
    np.testing.assert_allclose(v, (6 / 6 + 12 / 6 + 24 / 12) / (1 / 6 + 1 / 6 + 1 / 12), rtol=1e-14)
    assert rd.noisy_linear_imputation(x.astype(np.float32), removed, noise=0).dtype == np.float32


def test_noise_is_added_to_imputed_pixels_only():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 3, 16, 16))
    removed = rng.random((4, 16, 16)) < 0.4
    clean = rd.noisy_linear_imputation(x, removed, noise=0)
    noisy = rd.noisy_linear_imputation(x, removed, noise=0.05, rng=2)
    diff = (noisy - clean).transpose(0, 2, 3, 1)[removed]  # (M, C)
    np.testing.assert_array_equal((noisy - clean).transpose(0, 2, 3, 1)[~removed], 0.0)
    np.testing.assert_allclose(diff, 0.05 * np.random.default_rng(2).standard_normal(diff.shape), atol=1e-12)


def _mlp(shape):
    return Sequential(Flatten(), Dense(int(np.prod(shape)), 6, rng=0), ReLU(), Dense(6, 3, rng=1))


def test_road_curve_against_the_imputation_one_fraction_at_a_time():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 2, 5, 5))
    m = _mlp(x.shape[1:])
    a = rng.normal(size=(3, 5, 5))
    t = np.argmax(m.forward(x), axis=1)
    fr = (0.0, 0.2, 0.52, 0.8)
    for order in ("morf", "lerf"):
        c = rd.road_curve(m, x, t, a, fractions=fr, order=order, noise=0, score="logit", batch_size=4)
        key = -a if order == "morf" else a
        ranks = np.argsort(np.argsort(key.reshape(3, -1), axis=1, kind="stable"), axis=1).reshape(3, 5, 5)
        for j, f in enumerate(fr):
            imp = rd.noisy_linear_imputation(x, ranks < round(f * 25), noise=0)
            np.testing.assert_allclose(c.scores[:, j], m.forward(imp)[np.arange(3), t], rtol=1e-12)
        np.testing.assert_allclose(c.scores[:, 0], m.forward(x)[np.arange(3), t], rtol=1e-12)
    acc = rd.road_curve(m, x, t, a, fractions=fr, noise=0)
    np.testing.assert_array_equal(acc.scores[:, 0], 1.0)  # the predicted class, nothing removed
    assert set(np.unique(acc.scores)) <= {0.0, 1.0} and acc.baseline.startswith("noisy linear imputation")


def test_road_noise_does_not_depend_on_the_chunking():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 1, 6, 6))
    m = _mlp(x.shape[1:])
    a = rng.normal(size=(2, 1, 6, 6))
    one = rd.road_curve(m, x, 0, a, rng=5, score="logit", batch_size=1)
    many = rd.road_curve(m, x, 0, a, rng=5, score="logit", batch_size=64)
    np.testing.assert_allclose(one.scores, many.scores, rtol=1e-12)  # same noise; solves differ in round-off
    np.testing.assert_allclose(one.fractions, np.arange(1, 10) / 10)


def test_road_bad_input():
    x = np.random.default_rng(6).normal(size=(2, 3, 4, 4))
    m = _mlp(x.shape[1:])
    a = np.random.default_rng(7).normal(size=(2, 4, 4))
    with pytest.raises(ValueError, match="reduce the channels first"):
        rd.road_curve(m, x, 0, np.ones_like(x), noise=0)
    with pytest.raises(ValueError, match=r"fractions must be numbers in \[0, 1\)"):
        rd.road_curve(m, x, 0, a, fractions=[0.5, 1.0], noise=0)
    with pytest.raises(ValueError, match="removes every one of the 16 pixels"):
        rd.road_curve(m, x, 0, a, fractions=[0.99], noise=0)
    with pytest.raises(TypeError, match="pass rng"):
        rd.road_curve(m, x, 0, a)
    with pytest.raises(ValueError, match="removes every pixel"):
        rd.noisy_linear_imputation(x, np.ones((2, 4, 4), bool), noise=0)
    with pytest.raises(ValueError, match=r"removed must be a boolean mask \(N, H, W\)"):
        rd.noisy_linear_imputation(x, np.ones((4, 4), bool), noise=0)
    with pytest.raises(ValueError, match="finite"):
        rd.road_curve(m, x, 0, np.full_like(a, np.nan), noise=0)
