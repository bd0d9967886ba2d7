"""PAIR's performance information curves (xattr/evaluation/pic.py): the interpolation against
griddata, the entropy estimate against PIL, the curves against a one-image-at-a-time twin that
follows PAIR's steps, validity flags, bad input."""
import io

import numpy as np
import pytest
from PIL import Image
from scipy import interpolate

from xattr.evaluation import pic as pc
from xattr.nn import Dense, Flatten, Sequential

from extras import need  # noqa: E402  (tests/extras.py: optional packages of the test suite)


def _griddata_blur(img, known):
    """PAIR's create_blurred_image for a float (C, H, W) image: griddata per channel, corners kept."""
    c, h, w = img.shape
    k = known.copy()
    k[[0, 0, h - 1, h - 1], [0, w - 1, 0, w - 1]] = True
    out = img.copy()
    if k.all():
        return out
    pts, miss = np.argwhere(k), np.argwhere(~k)
    for ch in range(c):
        out[ch][tuple(miss.T)] = interpolate.griddata(pts, img[ch][tuple(pts.T)], miss, method="linear",
                                                      fill_value=img[ch].mean())
    return out


def test_interpolation_equals_griddata_and_is_exact_on_linear_images():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 9, 10))
    known = rng.random((2, 9, 10)) < 0.2
    got = pc.interpolated_image(x, known)
    for n in range(2):
        np.testing.assert_allclose(got[n], _griddata_blur(x[n], known[n]), rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(got[n][:, known[n]], x[n][:, known[n]])
    i, j = np.mgrid[:9, :10]
    lin = np.stack([1.0 + 2 * i - j, 0.5 * j])[None]
    np.testing.assert_allclose(pc.interpolated_image(lin, known[:1]), lin, atol=1e-12)  # barycentric: exact
    np.testing.assert_array_equal(pc.interpolated_image(x, np.ones((2, 9, 10), bool)), x)


def test_image_entropy_is_the_lossless_webp_size():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, size=(2, 3, 16, 16))
    got = pc.image_entropy(x, data_range=(0, 1))
    for n in range(2):
        q = np.clip(np.round(x[n] * 255), 0, 255).astype(np.uint8).transpose(1, 2, 0)
        buf = io.BytesIO()
        Image.fromarray(q).save(buf, format="webp", lossless=True, quality=100)
        assert got[n] == buf.tell()
    flat = np.full((1, 3, 16, 16), 0.5)
    assert pc.image_entropy(flat, (0, 1))[0] < got.min()  # a constant image compresses better than noise
    grey = pc.image_entropy(x[:, :1], (0, 1))
    two = pc.image_entropy(x[:, :2], (0, 1))  # two channels: two grey images, sizes summed
    np.testing.assert_array_equal(two, grey + pc.image_entropy(x[:, 1:2], (0, 1)))


def _model(x):
    """Two classes, logits (<x, x_0> / F, 0): the original image scores highest, smooth images lower."""
    f = int(np.prod(x.shape[1:]))
    m = Sequential(Flatten(), Dense(f, 2, rng=0))
    w = np.zeros((2, f))
    w[0] = 4 * x[0].reshape(-1) / f
    m[1].weight = w
    m[1].bias = np.zeros(2)
    return m


def _pair_twin(img, smap, rmask, pred, thresholds, keep, npts, lo, hi):
    """PAIR's compute_pic_metric, one image, with xattr's float images and entropy estimate."""
    def info(im):
        return pc.image_entropy(im[None], (lo, hi))[0]
    blurred0 = _griddata_blur(img, rmask)
    e_o, e_b = info(img), info(blurred0)
    s_o, s_b = pred(img), pred(blurred0)
    pts = []
    best = 0.0
    for t in thresholds:
        mask = (smap >= np.quantile(smap, 1 - t)) | rmask
        b = _griddata_blur(img, mask)
        e = np.clip((info(b) - e_b) / (e_o - e_b), 0, 1)
        s = np.clip((pred(b) - s_b) / (s_o - s_b), 0, 1)
        best = max(best, s)
        pts.append((e, best if keep else s))
    pts += [(0.0, 0.0), (1.0, 1.0)]
    xs, ys = zip(*sorted(pts, key=lambda p: p[0]))  # a stable sort, as xattr's
    cx = np.linspace(0, 1, npts, endpoint=False)
    cy = np.append(np.interp(cx, xs, ys), 1.0)
    return cy


def test_sic_and_aic_against_pairs_steps_one_image_at_a_time():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1, 1, 12, 12))
    x = np.concatenate([x, x + 0.3 * rng.normal(size=x.shape)])
    m = _model(x)
    smap = np.abs(x[:, 0]) + 0.01 * rng.normal(size=(2, 12, 12))
    rmask = pc.random_pixel_mask((2, 12, 12), 3, fraction=0.05)
    assert rmask.sum(axis=(1, 2)).tolist() == [7, 7]  # int(144 * 0.05)
    th = (0.02, 0.1, 0.3, 0.6)
    res = pc.pic_curve(m, x, 0, smap, random_mask=rmask, thresholds=th, min_pred_value=0.0, n_points=50)
    assert res.valid.all(), res.reasons

    def prob(im):
        s = m.forward(im[None])[0]
        return np.exp(s[0]) / np.exp(s).sum()
    for n in range(2):
        lo, hi = x[n].min(), x[n].max()
        twin = _pair_twin(x[n], smap[n], rmask[n], prob, th, True, 50, lo, hi)
        np.testing.assert_allclose(res.curve_y[n], twin, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(res.auc[n], np.trapezoid(twin, res.curve_x), rtol=1e-12)
    free = pc.pic_curve(m, x, 0, smap, random_mask=rmask, thresholds=th, min_pred_value=0.0, n_points=50,
                        keep_monotonous=False)
    assert np.all(free.auc <= res.auc + 1e-15)  # the running maximum only raises the curve
    aic = pc.pic_curve(m, x, 0, smap, random_mask=rmask, thresholds=th, kind="aic", min_pred_value=0.0)
    assert set(np.unique(aic.scores)) <= {0.0, 1.0}
    y, auc = res.aggregate("mean")
    np.testing.assert_allclose(y, res.curve_y.mean(axis=0))
    np.testing.assert_allclose(res.aggregate()[0], np.median(res.curve_y, axis=0))


def test_invalid_images_are_flagged_with_a_reason():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 1, 10, 10))
    m = _model(x)
    smap = rng.normal(size=(2, 10, 10))
    res = pc.pic_curve(m, x, 0, smap, rng=0, min_pred_value=0.999999)
    assert not res.valid.any() and "below min_pred_value" in res.reasons[0]
    np.testing.assert_array_equal(res.auc, 0.0)
    with pytest.raises(ValueError, match="no valid image"):
        res.aggregate()
    wrong = pc.pic_curve(m, x, 1, smap, rng=0, min_pred_value=0.0)  # class 1 scores 0.5 - <x,x0>: blurred wins
    assert "scores at least as high" in wrong.reasons[0]


def test_bad_input():
    x = np.random.default_rng(4).normal(size=(1, 1, 6, 6))
    m = _model(x)
    s = np.random.default_rng(5).normal(size=(1, 6, 6))
    with pytest.raises(TypeError, match="pass rng"):
        pc.pic_curve(m, x, 0, s)
    with pytest.raises(ValueError, match="increasing fractions"):
        pc.pic_curve(m, x, 0, s, rng=0, thresholds=(0.5, 0.1))
    with pytest.raises(ValueError, match="kind must be"):
        pc.pic_curve(m, x, 0, s, rng=0, kind="mic")
    with pytest.raises(ValueError, match="random_mask must be boolean"):
        pc.pic_curve(m, x, 0, s, random_mask=np.zeros((5, 5), bool))
    with pytest.raises(ValueError, match="reduce the channels first"):
        pc.pic_curve(m, np.repeat(x, 3, axis=1), 0, np.ones((1, 3, 6, 6)), rng=0)
    with pytest.raises(ValueError, match="known must be a boolean mask"):
        pc.interpolated_image(x, np.zeros((6, 6), bool))


def _pair_case():
    rng = np.random.default_rng(6)
    x = np.round(rng.uniform(0, 255, size=(2, 3, 16, 16)))  # uint8 values held as floats
    x[1] = np.round(np.clip(x[0] + rng.normal(0, 20, size=x[0].shape), 0, 255))
    f = int(np.prod(x.shape[1:]))
    m = Sequential(Flatten(), Dense(f, 2, rng=0))
    w = np.zeros((2, f))
    w[0] = (x[0].reshape(-1) - 127.5) / (2000 * f)  # logit ~ 2.7 on the first image: not saturated
    m[1].weight, m[1].bias = w, np.zeros(2)
    smap = np.abs(x[:, 0] - 127.5) + rng.uniform(0, 1e-3, size=(2, 16, 16))
    return x, m, smap, pc.random_pixel_mask((2, 16, 16), 9, fraction=0.03)


def test_pairs_blurred_image_is_xattrs_interpolation_rounded_through_float32():
    pair = need("saliency.metrics.pic", reason="PAIR's saliency package is an optional peer")
    x, _, smap, rmask = _pair_case()
    mask = (smap[0] >= np.quantile(smap[0], 0.95)) | rmask[0]
    ours = pc.interpolated_image(x[:1], mask[None])[0].transpose(1, 2, 0)
    theirs = pair.create_blurred_image(x[0].transpose(1, 2, 0).astype(np.uint8), mask)
    # PAIR writes the interpolated values into a float32 array before np.round: near-half values
    # (253.49999999999997) become 253.5 and round to even
    np.testing.assert_array_equal(np.round(ours.astype(np.float32)), theirs)
    assert np.any(np.round(ours) != theirs)


def test_against_pairs_compute_pic_metric_on_uint8_images(monkeypatch):
    pair = need("saliency.metrics.pic", reason="PAIR's saliency package is an optional peer")
    if not hasattr(np, "trapz"):  # saliency 0.2.1 integrates with np.trapz, which NumPy 2.4 removed
        monkeypatch.setattr(np, "trapz", np.trapezoid, raising=False)

    def blurred_in_float64(full_img, pixel_mask, method="linear"):  # PAIR's steps without its float32 rounding
        img = full_img.transpose(2, 0, 1)[None].astype(np.float64)
        return np.round(pc.interpolated_image(img, pixel_mask[None])[0]).transpose(1, 2, 0).astype(full_img.dtype)

    monkeypatch.setattr(pair, "create_blurred_image", blurred_in_float64)
    x, m, smap, rmask = _pair_case()
    th = (0.05, 0.2, 0.5)
    checked = 0
    for kind in ("sic", "aic"):
        ours = pc.pic_curve(m, x, 0, smap, kind=kind, random_mask=rmask, thresholds=th, min_pred_value=0.0,
                            n_points=100, data_range=(0, 255), quantise=True)

        def pred(batch, kind=kind):  # PAIR hands uint8 (B, H, W, C) images
            s = m.forward(batch.transpose(0, 3, 1, 2).astype(np.float64))
            if kind == "aic":
                return list((np.argmax(s, axis=1) == 0).astype(float))
            return list(np.exp(s[:, 0]) / np.exp(s).sum(axis=1))

        for n in range(2):
            img = x[n].transpose(1, 2, 0).astype(np.uint8)
            if not ours.valid[n]:
                with pytest.raises(pair.ComputePicMetricError):
                    pair.compute_pic_metric(img, smap[n], rmask[n], pred, th, min_pred_value=0.0, num_data_points=100)
                continue
            theirs = pair.compute_pic_metric(img, smap[n], rmask[n], pred, th, min_pred_value=0.0, num_data_points=100)
            np.testing.assert_allclose(ours.scores[n], theirs.predictions, rtol=1e-12)
            np.testing.assert_allclose(ours.information[n], [pair.estimate_image_entropy(b) for b in
                                                             theirs.blurred_images])
            np.testing.assert_allclose(ours.curve_y[n], theirs.curve_y, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(ours.auc[n], theirs.auc, rtol=1e-10)
            checked += 1
    assert checked >= 2
