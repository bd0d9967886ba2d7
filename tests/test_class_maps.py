"""Class-averaged maps and their spread (xattr/evaluation/class_maps.py).

Oracle: per-class ``np.mean`` / ``np.std`` over the maps selected by boolean indexing (a loop over
classes), on the whole array at once; the streamed, chunk-merged result must agree to round-off.
"""
import numpy as np
import pytest

import xattr
from xattr.evaluation.class_maps import class_maps

from extras import need  # noqa: E402  (tests/extras.py: optional packages of the test suite)


def naive(maps, labels):
    out = {}
    for c in np.unique(labels):
        sel = maps[labels == c]
        out[int(c)] = (sel.mean(0), sel.std(0), len(sel))
    return out


@pytest.mark.parametrize("chunk", [1, 3, 7, 100])
def test_streamed_statistics_equal_the_whole_array_per_class(chunk):
    gen = np.random.default_rng(0)
    maps = gen.normal(size=(23, 1, 5, 4)) * 3 + 100.0  # an offset: the merge must not lose digits to it
    labels = gen.integers(0, 4, 23)
    labels[labels == 2] = 7  # sparse, unordered class ids
    res = class_maps(maps, labels, chunk=chunk)
    ref = naive(maps, labels)
    np.testing.assert_array_equal(res.classes, sorted(ref))
    for i, c in enumerate(res.classes):
        m, s, n = ref[int(c)]
        assert res.count[i] == n
        np.testing.assert_allclose(res.mean[i], m, rtol=1e-13)
        np.testing.assert_allclose(res.std[i], s, rtol=1e-9, atol=1e-12)
    mean, _, _ = res.of(7)
    np.testing.assert_allclose(mean, ref[7][0], rtol=1e-13)
    assert res.skipped == 0
    with pytest.raises(KeyError, match="classes seen"):
        res.of(2)


def test_normalisations_and_skipped_maps():
    gen = np.random.default_rng(1)
    maps = gen.normal(size=(8, 3, 3))
    maps[2] = 0.0  # no scale: skipped when normalising
    maps[5, 0, 0] = np.nan  # non-finite: always skipped
    labels = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    raw = class_maps(maps, labels, chunk=3)
    assert raw.skipped == 1 and raw.count.tolist() == [4, 3]
    ok = np.isfinite(maps).all(axis=(1, 2))
    np.testing.assert_allclose(raw.mean[0], maps[(labels == 0) & ok].mean(0), rtol=1e-13, atol=1e-15)
    for how, scale in [("sum_abs", lambda a: np.abs(a).sum()), ("max_abs", lambda a: np.abs(a).max())]:
        res = class_maps(maps, labels, normalise=how, chunk=2)
        assert res.skipped == 2
        keep = ok & (np.abs(maps).reshape(8, -1).max(1) > 0)
        want = np.stack([maps[i] / scale(maps[i]) for i in np.flatnonzero(keep & (labels == 1))])
        np.testing.assert_allclose(res.mean[1], want.mean(0), rtol=1e-12)
        np.testing.assert_allclose(res.std[1], want.std(0), rtol=1e-9)


def test_one_class_constant_maps_have_zero_spread():
    maps = np.broadcast_to(np.arange(6.0).reshape(1, 2, 3), (5, 2, 3))
    res = class_maps(maps, np.full(5, 3), chunk=2)
    np.testing.assert_array_equal(res.mean[0], maps[0])
    np.testing.assert_array_equal(res.std[0], 0.0)


def test_bad_input_is_refused_with_clear_errors():
    maps = np.zeros((4, 2, 2))
    with pytest.raises(ValueError, match="labels .* are needed"):
        class_maps(maps)
    with pytest.raises(ValueError, match=r"shape \(N,\) = \(4,\)"):
        class_maps(maps, np.zeros(3, dtype=int))
    with pytest.raises(TypeError, match="integer classes"):
        class_maps(maps, np.zeros(4))
    with pytest.raises(ValueError, match="normalise must be"):
        class_maps(maps, np.zeros(4, dtype=int), normalise="l2")
    with pytest.raises(ValueError, match="chunk must be"):
        class_maps(maps, np.zeros(4, dtype=int), chunk=0)
    with pytest.raises(ValueError, match="no usable map"):
        class_maps(np.full((2, 2, 2), np.nan), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="label= selects a method in a store"):
        class_maps(maps, np.zeros(4, dtype=int), label="gradient")


def test_from_a_batch_store(tmp_path):
    need("dask", reason="the batch store needs the optional extra 'batch'")
    need("zarr", reason="the batch store needs the optional extra 'batch'")
    from xattr import batch
    from xattr.nn import Conv2D, Dense, GlobalAvgPool2D, ReLU, Sequential

    g = np.random.default_rng(0)
    model = Sequential(Conv2D(3, 4, 3, padding=1, rng=g), ReLU(), GlobalAvgPool2D(), Dense(4, 3, rng=g))
    x = g.random((10, 3, 6, 6))
    t = np.array([0, 1, 2, 0, 1, 2, 0, 0, 1, 1])
    out = str(tmp_path / "s.zarr")
    batch.attribute_dataset(model, x, t, methods=["gradient", "gradient_x_input"], chunk=4, out=out,
                            scheduler="sync", batch_size=2)
    with pytest.raises(ValueError, match="several methods"):
        class_maps(out)
    res = class_maps(out, label="gradient", chunk=3)  # classes from the store's targets
    ref = naive(xattr.gradient(model, x, t), t)
    np.testing.assert_array_equal(res.classes, [0, 1, 2])
    for i, c in enumerate(res.classes):
        np.testing.assert_allclose(res.mean[i], ref[int(c)][0], rtol=1e-12)
        np.testing.assert_allclose(res.std[i], ref[int(c)][1], rtol=1e-9, atol=1e-15)
        assert res.count[i] == ref[int(c)][2]
    by_truth = class_maps(out, labels=np.zeros(10, dtype=int), label="gradient_x_input")  # other grouping
    np.testing.assert_allclose(by_truth.mean[0], xattr.gradient_x_input(model, x, t).mean(0), rtol=1e-12)
    with pytest.raises(ValueError, match="no maps labelled 'lrp'"):
        class_maps(out, label="lrp")
