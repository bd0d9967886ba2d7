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


# -- the paper's defaults: probability, 1/224 of the features per step ------------------------------
def _softmax(s):
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _naive_curve(model, x, target, attribution, base, counts, score, insert=False, order="morf"):
    """One image and one step at a time, features ranked by a Python sort (raster order on ties)."""
    n = x.shape[0]
    out = np.empty((n, len(counts)))
    for i in range(n):
        a = attribution[i]
        pixel = a.shape != x.shape[1:]
        vals = a.reshape(-1)
        key = [(-v if order == "morf" else v, j) for j, v in enumerate(vals)]
        ranked = [j for _, j in sorted(key)]
        for s, c in enumerate(counts):
            img = (base[i] if insert else x[i]).copy()
            for j in ranked[:c]:
                if pixel:
                    r, col = divmod(j, x.shape[3])
                    img[:, r, col] = (x[i] if insert else base[i])[:, r, col]
                else:
                    img.reshape(-1)[j] = (x[i] if insert else base[i]).reshape(-1)[j]
            sc = model.forward(img[None])
            if score == "probability":
                sc = _softmax(sc)
            out[i, s] = sc[0, target[i]]
    return out


def test_default_curve_is_the_probability_with_1_224_of_the_features_per_step():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(2, 3, 16, 16))  # F = 768 elements > 224
    m = linear(x.shape[1:], k=3, bias=True)
    a = rng.normal(size=x.shape)
    t = np.array([0, 2])
    c = fa.deletion_curve(m, x, t, a)
    assert len(c.fractions) == fa.CURVE_STEPS + 1
    counts = np.round(np.linspace(0, 768, 225)).astype(int)
    np.testing.assert_allclose(c.fractions, counts / 768)
    assert set(np.diff(counts)) == {3, 4}  # 768 / 224 = 3.43 features per step
    naive = _naive_curve(m, x, t, a, np.zeros_like(x), counts[::16], "probability")
    np.testing.assert_allclose(c.scores[:, ::16], naive, rtol=1e-12)
    np.testing.assert_allclose(c.scores[:, 0], _softmax(m.forward(x))[[0, 1], t], rtol=1e-12)
    # fewer features than 224: one per step
    m16 = linear((1, 4, 4), k=3)
    xs = x[:, :1, :4, :4]
    assert len(fa.deletion_curve(m16, xs, t, a[:, :1, :4, :4]).fractions) == 17
    # the old behaviour: logits, one feature per step
    old = fa.deletion_curve(m, x, t, a, score="logit", n_steps="all")
    assert old.scores.shape == (2, 769)
    np.testing.assert_allclose(old.scores[:, counts[::16]], _naive_curve(m, x, t, a, np.zeros_like(x), counts[::16],
                                                                         "logit"), rtol=1e-12, atol=1e-12)


def test_curves_against_their_naive_twin_for_both_orders_and_insertion():
    rng = np.random.default_rng(12)
    x = rng.normal(size=(2, 2, 3, 4))
    m = Sequential(Flatten(), Dense(24, 5, rng=0), xattr.nn.ReLU(), Dense(5, 3, rng=1))
    t = np.array([1, 2])
    base = rng.normal(size=x.shape)
    for a in (rng.normal(size=x.shape), np.round(rng.normal(size=(2, 3, 4)), 0)):  # elements; pixels with ties
        counts = np.round(np.linspace(0, a[0].size, 7)).astype(int)
        for order in ("morf", "lerf"):
            got = fa.deletion_curve(m, x, t, a, baseline=base, n_steps=6, order=order, batch_size=3)
            np.testing.assert_allclose(got.scores, _naive_curve(m, x, t, a, base, counts, "probability",
                                                                order=order), rtol=1e-12)
            ins = fa.insertion_curve(m, x, t, a, baseline=base, n_steps=6, order=order, score="logit")
            np.testing.assert_allclose(ins.scores, _naive_curve(m, x, t, a, base, counts, "logit", insert=True,
                                                                order=order), rtol=1e-12, atol=1e-12)


def test_lerf_of_a_map_is_morf_of_its_negation_and_accuracy_score():
    rng = np.random.default_rng(13)
    x = rng.normal(size=(3, 1, 4, 4))
    m = linear(x.shape[1:], k=2)
    a = rng.normal(size=x.shape)
    lerf = fa.deletion_curve(m, x, 1, a, order="lerf", score="logit")
    morf = fa.deletion_curve(m, x, 1, -a, score="logit")
    np.testing.assert_array_equal(lerf.scores, morf.scores)
    assert lerf.order == "lerf"
    acc = fa.deletion_curve(m, x, 1, a, score="accuracy")
    assert set(np.unique(acc.scores)) <= {0.0, 1.0}
    np.testing.assert_array_equal(acc.scores[:, 0], np.argmax(m.forward(x), axis=1) == 1)


# -- pixel flipping, region perturbation, AOPC ---------------------------------------------------------
def test_pixel_flipping_closed_form_on_a_linear_model_and_aopc():
    rng = np.random.default_rng(14)
    x = rng.normal(size=(2, 2, 3, 3))
    m = linear(x.shape[1:], k=2, bias=True)
    w = m[1].weight[0].reshape(x.shape[1:])
    a = w * x  # exact contributions (zero baseline)
    c = fa.pixel_flipping(m, x, 0, a, features_per_step=4)
    contrib = -np.sort(-a.reshape(2, -1), axis=1)  # 18 features: steps of 4, the last of 2
    cum = np.concatenate([np.zeros((2, 1)), np.cumsum(contrib, axis=1)], axis=1)[:, [0, 4, 8, 12, 16, 18]]
    expected = m.forward(x)[:, :1] - cum
    np.testing.assert_allclose(c.scores, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(c.fractions, [0, 4 / 18, 8 / 18, 12 / 18, 16 / 18, 1])
    np.testing.assert_allclose(c.aopc(), cum.mean(axis=1), rtol=1e-12)  # 1/(L+1) Σ_k (f(x0) - f(xk))
    lerf = fa.pixel_flipping(m, x, 0, a, order="lerf", features_per_step=4)
    assert np.all(lerf.aopc() < c.aopc())  # removing the least relevant first keeps the score
    with pytest.raises(ValueError, match="features_per_step must be between 1"):
        fa.pixel_flipping(m, x, 0, a, features_per_step=0)


def _naive_regions(x, a, patch):
    """Region index and relevance by loops over the grid (patches cut at the border)."""
    n, c, h, w = x.shape
    rel, cells = [], []
    for i in range(n):
        r_i = []
        for top in range(0, h, patch):
            for left in range(0, w, patch):
                r_i.append(a[i, ..., top:top + patch, left:left + patch].sum())
                if i == 0:
                    cells.append((top, left))
        rel.append(r_i)
    return np.array(rel), cells


def test_region_perturbation_against_a_naive_twin_and_the_closed_form():
    rng = np.random.default_rng(15)
    x = rng.normal(size=(2, 3, 7, 8))  # 3x3 patches: the last row and column are cut
    m = linear(x.shape[1:], k=2, bias=True)
    w = m[1].weight[1].reshape(x.shape[1:])
    a = (w * x).sum(axis=1)  # per-pixel exact contributions
    c = fa.region_perturbation(m, x, 1, a, patch=3, baseline=0.0)
    rel, cells = _naive_regions(x, a[:, None], 3)
    assert rel.shape == (2, 9) and c.scores.shape == (2, 10)
    for i in range(2):
        order = sorted(range(9), key=lambda r: (-rel[i, r], r))
        img = x[i].copy()
        expected = [m.forward(img[None])[0, 1]]
        for r in order:
            top, left = cells[r]
            img[:, top:top + 3, left:left + 3] = 0.0
            expected.append(m.forward(img[None])[0, 1])
        np.testing.assert_allclose(c.scores[i], expected, rtol=1e-12, atol=1e-12)
        # linear model, exact map: the curve falls by each region's relevance, largest first
        np.testing.assert_allclose(-np.diff(c.scores[i]), np.sort(rel[i])[::-1], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(c.fractions, np.arange(10) / 9)
    few = fa.region_perturbation(m, x, 1, a, patch=3, baseline=0.0, n_regions=4, order="lerf")
    assert few.scores.shape == (2, 5)
    np.testing.assert_allclose(np.diff(few.scores, axis=1), -np.sort(rel, axis=1)[:, :4], rtol=1e-10, atol=1e-12)


def test_region_perturbation_uniform_noise_is_drawn_in_each_images_range():
    rng = np.random.default_rng(16)
    x = rng.normal(size=(2, 1, 6, 6))
    m = linear(x.shape[1:])
    a = rng.normal(size=(2, 6, 6))
    with pytest.raises(TypeError, match="pass rng"):
        fa.region_perturbation(m, x, 0, a, patch=3)
    c1 = fa.region_perturbation(m, x, 0, a, patch=3, rng=3)
    c2 = fa.region_perturbation(m, x, 0, a, patch=3, rng=3)
    np.testing.assert_array_equal(c1.scores, c2.scores)
    u, _ = fa.P.replacement("uniform", x, np.random.default_rng(3))
    assert np.all(u.min(axis=(1, 2, 3)) >= x.min(axis=(1, 2, 3))) and np.all(
        u.max(axis=(1, 2, 3)) <= x.max(axis=(1, 2, 3))
    )
    np.testing.assert_allclose(c1.scores[:, -1], m.forward(u)[:, 0], rtol=1e-12)  # everything replaced by the noise
    with pytest.raises(ValueError, match="patch must be between 1"):
        fa.region_perturbation(m, x, 0, a, patch=7, rng=0)
    with pytest.raises(ValueError, match="n_regions must be between 1"):
        fa.region_perturbation(m, x, 0, a, patch=3, n_regions=5, rng=0)


# -- IROF ---------------------------------------------------------------------------------------------
def test_irof_closed_form_with_segments_of_unequal_size():
    rng = np.random.default_rng(17)
    x = np.abs(rng.normal(size=(2, 1, 4, 4))) + 0.1
    m = linear(x.shape[1:])
    m[1].weight = np.abs(m[1].weight)  # positive contributions: f > 0
    w = m[1].weight[0].reshape(4, 4)
    seg = np.zeros((4, 4), dtype=int)
    seg[:, 2:] = 1
    seg[3, :] = 2  # sizes 6, 6, 4
    a = w * x[:, 0]
    res = fa.irof(m, x, 0, a, segments=seg, baseline=0.0, score="logit")
    f = m.forward(x)[:, 0]
    for i in range(2):
        contrib = np.array([a[i][seg == s].sum() for s in range(3)])
        means = np.array([a[i][seg == s].mean() for s in range(3)])
        order = np.argsort(-means, kind="stable")  # the mean, not the sum, ranks segments
        y = np.concatenate([[f[i]], f[i] - np.cumsum(contrib[order])]) / f[i]
        np.testing.assert_allclose(res.curves[i], y, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(res.aoc[i], 1 - ((y[1:] + y[:-1]) / 2 * (1 / 3)).sum(), rtol=1e-12)
    np.testing.assert_array_equal(res.n_segments, [3, 3])


def test_irof_per_image_segmentations_of_different_sizes_and_mean_baseline():
    rng = np.random.default_rng(18)
    x = rng.normal(size=(2, 2, 4, 4))
    m = linear(x.shape[1:], k=2)
    a = rng.normal(size=(2, 4, 4))
    segs = np.stack([np.arange(16).reshape(4, 4) // 4, np.arange(16).reshape(4, 4) // 8])  # 4 and 2 segments
    res = fa.irof(m, x, 1, a, segments=segs)
    assert [len(c) for c in res.curves] == [5, 3]
    s = _softmax(m.forward(x))[:, 1]
    for i, K in enumerate((4, 2)):
        img = x[i].copy()
        means = np.array([a[i][segs[i] == k].mean() for k in range(K)])
        ys = [1.0]
        for k in np.argsort(-means, kind="stable"):
            img[:, segs[i] == k] = x[i].mean(axis=(1, 2))[:, None]  # each channel's mean
            ys.append(_softmax(m.forward(img[None]))[0, 1] / s[i])
        np.testing.assert_allclose(res.curves[i], ys, rtol=1e-12)


# -- sufficiency ----------------------------------------------------------------------------------------
def test_sufficiency_against_a_naive_loop():
    rng = np.random.default_rng(19)
    x = rng.normal(size=(6, 1, 3, 3))
    m = linear(x.shape[1:], k=3)
    pred = np.argmax(m.forward(x), axis=1)
    a = rng.normal(size=(6, 3, 3))
    a[1] = a[0] + 0.01  # a near twin
    res = fa.sufficiency(m, x, a, threshold=2.5)
    for i in range(6):
        nb = [j for j in range(6) if j != i and np.linalg.norm(a[i] - a[j]) <= 2.5]
        assert res.neighbours[i] == len(nb)
        assert res.score[i] == (np.mean([pred[j] == pred[i] for j in nb]) if nb else 0.0)
    assert res.neighbours[0] >= 1
    lone = fa.sufficiency(m, x, a, threshold=0.0)
    np.testing.assert_array_equal(lone.neighbours, 0)
    with pytest.raises(ValueError, match="no image has a neighbour"):
        lone.mean()
    with pytest.raises(ValueError, match="threshold must be"):
        fa.sufficiency(m, x, a, threshold=-1)
    with pytest.raises(ValueError, match="one map per image"):
        fa.sufficiency(m, x, a[:3], threshold=1)


def test_max_sensitivity_does_not_depend_on_the_chunking():
    rng = np.random.default_rng(20)
    x = rng.normal(size=(3, 1, 4, 4))
    m = Sequential(Flatten(), Dense(16, 4, rng=0), xattr.nn.ReLU(), Dense(4, 2, rng=1))
    d = rng.uniform(-0.3, 0.3, size=(5,) + x.shape)
    one = fa.max_sensitivity(xattr.gradient, m, x, 1, perturbations=d, batch_size=1)
    many = fa.max_sensitivity(xattr.gradient, m, x, 1, perturbations=d, batch_size=100)
    np.testing.assert_allclose(one, many, rtol=1e-13)
    naive = [max(np.linalg.norm(xattr.gradient(m, x[i:i + 1] + d[s, i:i + 1], 1) - xattr.gradient(m, x[i:i + 1], 1))
                 for s in range(5)) for i in range(3)]
    np.testing.assert_allclose(one, naive, rtol=1e-12)


def test_float32_images_are_scored_in_float64_and_any_forward_only_model_works():
    rng = np.random.default_rng(21)
    x = rng.normal(size=(2, 1, 4, 4))
    m = linear(x.shape[1:], k=3)
    a = rng.normal(size=(2, 4, 4))

    class ForwardOnly:  # no vjp, no layers: the metrics ask for nothing but forward
        def forward(self, xs):
            return m.forward(xs)

    c64 = fa.deletion_curve(m, x, 1, a)
    c32 = fa.deletion_curve(ForwardOnly(), x.astype(np.float32), 1, a)
    assert c32.scores.dtype == np.float64
    np.testing.assert_allclose(c32.scores, c64.scores, rtol=1e-5)
    with pytest.raises(TypeError, match="lacks forward"):
        fa.deletion_curve(object(), x, 1, a)


def test_no_metric_writes_into_its_inputs():
    from xattr.evaluation import correlation as co
    from xattr.evaluation import road as rd
    from xattr.evaluation import sparsity as sp

    rng = np.random.default_rng(22)
    x = rng.normal(size=(2, 2, 6, 6))
    a = rng.normal(size=(2, 6, 6))
    x0, a0 = x.copy(), a.copy()
    m = linear(x.shape[1:], k=3)
    fa.deletion_curve(m, x, 0, a)
    fa.insertion_curve(m, x, 0, a)
    fa.region_perturbation(m, x, 0, a, patch=3, rng=0)
    fa.irof(m, x, 0, a, segments=np.arange(36).reshape(6, 6) // 9)
    co.faithfulness_correlation(m, x, 0, a, rng=0, n_subsets=4)
    co.monotonicity_correlation(m, x, 0, a, rng=0, n_samples=2)
    rd.road_curve(m, x, 0, a, rng=0)
    sp.sparseness(a)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(a, a0)
