"""Segments for LIME/SHAP: grid, SLIC, relabelling, fills and composition (oracles: naive loops, scipy)."""
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from xattr.methods import segments as seg

from extras import need  # tests/extras.py: optional packages of the test suite


def test_grid_segments_cells_row_major_and_balanced():
    lab = seg.grid_segments((7, 10), grid=(2, 3))
    assert lab.shape == (7, 10)
    assert sorted(np.unique(lab)) == list(range(6))
    assert lab[0, 0] == 0 and lab[0, -1] == 2 and lab[-1, 0] == 3 and lab[-1, -1] == 5
    areas = np.bincount(lab.ravel())
    assert areas.sum() == 70
    # rows split 3/4, columns 3/3/4: cells differ by at most one pixel per axis
    assert set(areas) <= {9, 12, 16}
    # each cell is a rectangle: its bounding box area equals its pixel count
    for k in range(6):
        r, c = np.nonzero(lab == k)
        assert (r.max() - r.min() + 1) * (c.max() - c.min() + 1) == areas[k]


def test_grid_segments_accepts_batch_shape_and_rejects_bad_grids():
    assert seg.grid_segments((2, 3, 8, 8), 4).shape == (8, 8)
    with pytest.raises(ValueError, match="more cells than"):
        seg.grid_segments((4, 4), 5)
    with pytest.raises(ValueError, match="at least 1"):
        seg.grid_segments((4, 4), 0)


def test_check_segments_relabels_any_labels_in_order():
    raw = np.array([[7, 7, -3], [100, -3, 7]])
    labels, counts = seg.check_segments(raw, (2, 1, 2, 3))
    assert counts == [3, 3]
    np.testing.assert_array_equal(labels[0], [[1, 1, 0], [2, 0, 1]])
    np.testing.assert_array_equal(labels[1], labels[0])


def test_check_segments_per_image_and_errors():
    per = np.stack([np.zeros((2, 3), int), np.arange(6).reshape(2, 3)])
    _, counts = seg.check_segments(per, (2, 3, 2, 3))
    assert counts == [1, 6]
    with pytest.raises(ValueError, match=r"must have shape \(H, W\)"):
        seg.check_segments(np.zeros((3, 2), int), (1, 1, 2, 3))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        seg.check_segments(np.zeros((3, 2, 3), int), (2, 1, 2, 3))
    with pytest.raises(TypeError, match="integer label array"):
        seg.check_segments(np.zeros((2, 3)), (1, 1, 2, 3))


def test_fill_mean_is_the_segment_mean_per_channel():
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 5, 6))
    labels, _ = seg.check_segments(rng.integers(0, 4, (2, 5, 6)), x.shape)
    got = seg.fill_image(x, "mean", labels)
    for n in range(2):  # naive oracle: loop over segments and channels
        for k in np.unique(labels[n]):
            m = labels[n] == k
            for c in range(3):
                np.testing.assert_allclose(got[n, c][m], x[n, c][m].mean(), rtol=1e-12)


def test_fill_blur_scalar_array_and_errors():
    rng = np.random.default_rng(1)
    x = rng.random((1, 2, 9, 9)).astype(np.float32)
    b = seg.fill_image(x, "blur", sigma=1.5)
    assert b.dtype == np.float32
    for c in range(2):
        np.testing.assert_allclose(b[0, c], gaussian_filter(x[0, c], 1.5, mode="reflect"), rtol=1e-5)
    np.testing.assert_array_equal(seg.fill_image(x, 0.5), np.full(x.shape, 0.5, np.float32))
    np.testing.assert_array_equal(seg.fill_image(x, np.array([1.0, 2.0])[:, None, None])[0, 1], 2.0)
    with pytest.raises(ValueError, match="broadcastable"):
        seg.fill_image(x, np.zeros(4))
    with pytest.raises(ValueError, match="'mean' or 'blur'"):
        seg.fill_image(x, "gray")
    with pytest.raises(ValueError, match="needs a segmentation"):
        seg.fill_image(x, "mean")


def test_compose_matches_a_loop_and_leaves_inputs_alone():
    rng = np.random.default_rng(2)
    x, f = rng.random((2, 4, 5)), rng.random((2, 4, 5))
    lab = rng.integers(0, 3, (4, 5))
    present = rng.random((6, 3)) < 0.5
    before = x.copy()
    got = seg.compose(x, f, lab, present)
    for b in range(6):
        for i in range(4):
            for j in range(5):
                want = x[:, i, j] if present[b, lab[i, j]] else f[:, i, j]
                np.testing.assert_array_equal(got[b, :, i, j], want)
    np.testing.assert_array_equal(x, before)


def test_slic_segments_when_scikit_image_is_installed():
    need("skimage", "SLIC segments (extra 'segments')")
    x = np.zeros((2, 3, 24, 24))
    x[:, 0, :, 12:] = 1.0  # two flat halves: SLIC must not cross the edge
    lab = seg.slic_segments(x, n_segments=4, compactness=1.0, sigma=0.0)
    assert lab.shape == (2, 24, 24) and lab.dtype.kind == "i"
    for n in range(2):
        assert len(np.unique(lab[n])) >= 2
        assert not set(np.unique(lab[n][:, :12])) & set(np.unique(lab[n][:, 12:]))
    gray = seg.slic_segments(x[:, :1], n_segments=4)
    assert gray.shape == (2, 24, 24)
