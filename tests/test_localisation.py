"""Localisation metrics (xattr/evaluation/localisation.py) on hand-made maps and masks."""
import numpy as np
import pytest

from xattr.evaluation import localisation as lo


def _mask(shape, rows, cols):
    m = np.zeros(shape, dtype=bool)
    m[rows, cols] = True
    return m


def test_pointing_game_hits_misses_and_tolerance():
    maps = np.zeros((3, 8, 8))
    maps[0, 2, 2] = 1.0  # inside
    maps[1, 7, 7] = 1.0  # far outside
    maps[2, 2, 6] = 1.0  # 2 px right of the mask's edge column 4
    masks = np.broadcast_to(_mask((8, 8), slice(1, 4), slice(1, 5)), (3, 8, 8))
    np.testing.assert_array_equal(lo.pointing_game(maps, masks), [True, False, False])
    np.testing.assert_array_equal(lo.pointing_game(maps, masks, tolerance=1), [True, False, False])
    np.testing.assert_array_equal(lo.pointing_game(maps, masks, tolerance=2), [True, False, True])
    # tied maxima: the first in raster order points
    tied = np.zeros((1, 8, 8))
    tied[0, 0, 0] = tied[0, 2, 2] = 1.0
    assert not lo.pointing_game(tied, masks[:1])[0]
    assert lo.pointing_game(tied[:, None], masks[:1, None])[0] == False  # noqa: E712  (N, 1, H, W) accepted


def test_relevance_mass_closed_form():
    maps = np.zeros((1, 4, 4))
    maps[0, 0, 0] = 3.0   # inside
    maps[0, 3, 3] = 1.0   # outside
    maps[0, 0, 1] = -2.0  # inside, negative
    mask = _mask((1, 4, 4), 0, slice(0, 2))
    np.testing.assert_allclose(lo.relevance_mass(maps, mask), [0.75])
    np.testing.assert_allclose(lo.relevance_mass(maps, mask, positive_only=False), [5 / 6])


def test_threshold_component_box_iou():
    m = np.zeros((1, 6, 6))
    m[0, 0:2, 0:2] = 1.0       # 4-pixel blob
    m[0, 4:6, 3:6] = 1.0       # 6-pixel blob
    fg = lo.threshold_map(m, "max_fraction", 0.5)
    np.testing.assert_array_equal(fg[0], m[0] > 0)
    big = lo.largest_component(fg[0])
    assert lo.bounding_box(big) == (4, 3, 6, 6)
    q = lo.threshold_map(m, "quantile", 0.9)
    assert q.sum() == 10  # every pixel >= the 90% quantile (1.0)
    # connectivity: two diagonal pixels are one component with 8-neighbours, two with 4
    d = np.eye(3, dtype=bool)
    assert lo.largest_component(d, 2).sum() == 3 and lo.largest_component(d, 1).sum() == 1
    # equal sizes: the component met first in raster order
    two = np.zeros((3, 5), dtype=bool)
    two[0, 4] = two[2, 0] = True
    assert lo.largest_component(two, 1)[0, 4]
    np.testing.assert_allclose(lo.box_iou([0, 0, 2, 2], [0, 1, 2, 3]), 2 / 6)
    np.testing.assert_allclose(lo.box_iou([0, 0, 2, 2], [2, 2, 4, 4]), 0.0)
    np.testing.assert_allclose(lo.box_iou(np.array([[0, 0, 4, 4]]), np.array([[1, 1, 3, 3]])), [0.25])


def test_weakly_supervised_localisation():
    truth = np.zeros((2, 10, 10), dtype=bool)
    truth[0, 2:6, 3:8] = True
    truth[1, 5:9, 0:3] = True
    maps = truth.astype(float) + 0.01 * np.random.default_rng(0).random((2, 10, 10))
    maps[0, 9, 9] = 0.9  # a small distractor: thresholded in, but not the largest component
    res = lo.weakly_supervised_localisation(maps, truth, method="max_fraction", level=0.5)
    np.testing.assert_allclose(res.iou, 1.0)
    np.testing.assert_array_equal(res.boxes[0], [2, 3, 6, 8])
    assert res.accuracy() == 1.0
    boxes = np.array([[2, 3, 6, 8], [5, 0, 7, 3]])  # truth given as boxes; second is half the height
    np.testing.assert_allclose(lo.weakly_supervised_localisation(maps, boxes, "max_fraction", 0.5).iou, [1.0, 0.5])


def test_multi_instance_coverage():
    lab = np.zeros((1, 4, 4), dtype=int)
    lab[0, 0, :2] = 1
    lab[0, 3, :2] = 2
    maps = np.zeros((1, 4, 4))
    maps[0, 0, 0] = 7.0
    maps[0, 3, 0] = 2.0
    maps[0, 1, 3] = 1.0
    maps[0, 2, 2] = -5.0  # negative relevance is not mass
    cov = lo.multi_instance_coverage(maps, lab, min_share=0.25)
    np.testing.assert_allclose(cov.mass, [[0.7, 0.2]])
    np.testing.assert_array_equal(cov.found, [[True, False]])
    np.testing.assert_array_equal(cov.n_found, [1])
    lab2 = np.stack([lab[0], np.where(lab[0] == 2, 0, lab[0])])  # image 1 lacks instance 2
    cov2 = lo.multi_instance_coverage(np.concatenate([maps, maps]), lab2)
    np.testing.assert_array_equal(cov2.present, [[True, True], [True, False]])
    assert cov2.mass[1, 1] == 0 and not cov2.found[1, 1]


def test_bad_input_gives_clear_errors_not_nan():
    maps = np.random.default_rng(1).random((2, 5, 5))
    masks = np.zeros((2, 5, 5), dtype=bool)
    masks[:, 1, 1] = True
    with pytest.raises(ValueError, match=r"masks must have shape \(2, 5, 5\)"):
        lo.pointing_game(maps, masks[:, :4])
    empty = masks.copy()
    empty[1] = False
    with pytest.raises(ValueError, match=r"masks\[1\] is empty"):
        lo.relevance_mass(maps, empty)
    with pytest.raises(ValueError, match=r"masks\[1\] is empty"):
        lo.pointing_game(maps, empty)
    const = np.ones((2, 5, 5))
    with pytest.raises(ValueError, match="constant: it has no maximum"):
        lo.pointing_game(const, masks)
    with pytest.raises(ValueError, match="constant: no foreground"):
        lo.threshold_map(const)
    with pytest.raises(ValueError, match="no positive relevance"):
        lo.relevance_mass(-maps, masks)
    with pytest.raises(ValueError, match="reduce the channels"):
        lo.relevance_mass(np.ones((2, 3, 5, 5)), masks)
    with pytest.raises(ValueError, match="boolean"):
        lo.relevance_mass(maps, masks * 2)
    with pytest.raises(ValueError, match="tolerance must be non-negative"):
        lo.pointing_game(maps, masks, tolerance=-1)
    with pytest.raises(ValueError, match="method must be"):
        lo.threshold_map(maps, "otsu")
    with pytest.raises(ValueError, match="level must be"):
        lo.threshold_map(maps, level=95)
    with pytest.raises(ValueError, match="positive maximum"):
        lo.threshold_map(-maps, "max_fraction", 0.2)
    with pytest.raises(ValueError, match="empty"):
        lo.largest_component(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="non-empty 2-D"):
        lo.bounding_box(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="box a is empty"):
        lo.box_iou([2, 2, 2, 4], [0, 0, 1, 1])
    with pytest.raises(ValueError, match="no object"):
        lo.multi_instance_coverage(maps, np.zeros((2, 5, 5), dtype=int))
    with pytest.raises(ValueError, match="integer label"):
        lo.multi_instance_coverage(maps, masks.astype(float))
    with pytest.raises(ValueError, match="finite"):
        lo.relevance_mass(np.full((2, 5, 5), np.nan), masks)


# -- rank accuracy, top-k, attribution localisation, AUC, Focus ------------------------------------------
def _box(shape, rows, cols):
    """Masks ``shape = (N, H, W)`` with ``[rows, cols]`` of every image set."""
    m = np.zeros(shape, dtype=bool)
    m[:, rows, cols] = True
    return m


def test_relevance_rank_accuracy_closed_forms_and_naive_twin():
    mask = _box((1, 4, 4), slice(0, 2), slice(0, 2))  # K = 4
    perfect = np.where(mask, 2.0, 1.0) + np.arange(16).reshape(1, 4, 4) * 1e-3
    np.testing.assert_array_equal(lo.relevance_rank_accuracy(perfect, mask), [1.0])
    np.testing.assert_array_equal(lo.relevance_rank_accuracy(-perfect, mask), [0.0])
    const = np.ones((1, 4, 4))  # ties: raster order, so the top 4 are the first row (2 of them in the mask)
    np.testing.assert_array_equal(lo.relevance_rank_accuracy(const, mask), [0.5])
    rng = np.random.default_rng(0)
    maps = np.round(rng.normal(size=(5, 6, 6)), 1)
    masks = rng.random((5, 6, 6)) < 0.3
    got = lo.relevance_rank_accuracy(maps, masks)
    for i in range(5):
        order = sorted(range(36), key=lambda j: (-maps[i].ravel()[j], j))
        K = masks[i].sum()
        assert got[i] == np.mean([masks[i].ravel()[j] for j in order[:K]])


def test_topk_mask_intersection():
    rng = np.random.default_rng(1)
    maps = rng.normal(size=(4, 5, 5))
    masks = rng.random((4, 5, 5)) < 0.4
    for k in (1, 7, 25):
        got = lo.topk_mask_intersection(maps, masks, k)
        for i in range(4):
            top = np.argsort(-maps[i].ravel(), kind="stable")[:k]
            assert got[i] == masks[i].ravel()[top].mean()
    np.testing.assert_allclose(lo.topk_mask_intersection(maps, masks, 25), masks.reshape(4, -1).mean(axis=1))
    with pytest.raises(ValueError, match="k must be between 1 and the number of pixels 25"):
        lo.topk_mask_intersection(maps, masks, 26)


def test_attribution_localisation_unweighted_and_size_weighted():
    maps = np.zeros((1, 4, 4))
    maps[0, 0, 0] = 3.0
    maps[0, 3, 3] = 1.0
    maps[0, 0, 1] = -2.0
    mask = _box((1, 4, 4), 0, slice(0, 2))  # 2 of 16 pixels
    np.testing.assert_allclose(lo.attribution_localisation(maps, mask), [0.75])  # R+_in / R+_tot
    np.testing.assert_allclose(lo.attribution_localisation(maps, mask, weighted=True), [0.75 * 16 / 2])
    uniform = np.ones((1, 4, 4))
    np.testing.assert_allclose(lo.attribution_localisation(uniform, mask, weighted=True), [1.0])


def test_localisation_auc_against_sklearn_style_pair_counting():
    rng = np.random.default_rng(2)
    maps = np.round(rng.normal(size=(4, 6, 5)), 1)  # ties
    masks = rng.random((4, 6, 5)) < 0.3
    got = lo.localisation_auc(maps, masks)
    for i in range(4):
        pos, neg = maps[i][masks[i]], maps[i][~masks[i]]
        pairs = (pos[:, None] > neg[None]).mean() + 0.5 * (pos[:, None] == neg[None]).mean()
        np.testing.assert_allclose(got[i], pairs, rtol=1e-13)
    mask = _box((1, 3, 3), 0, slice(None))
    np.testing.assert_allclose(lo.localisation_auc(np.where(mask, 1.0, 0.0), mask), [1.0])
    np.testing.assert_allclose(lo.localisation_auc(np.ones((1, 3, 3)), mask), [0.5])
    with pytest.raises(ValueError, match="covers the whole map"):
        lo.localisation_auc(maps[:1], np.ones((1, 6, 5), dtype=bool))


def test_mosaic_and_focus():
    rng = np.random.default_rng(3)
    parts = [rng.normal(size=(2, 3, 2, 3)) for _ in range(4)]
    mo = lo.mosaic(*parts)
    assert mo.shape == (2, 3, 4, 6)
    np.testing.assert_array_equal(mo[:, :, :2, 3:], parts[1])
    np.testing.assert_array_equal(mo[:, :, 2:, :3], parts[2])
    maps = np.zeros((2, 4, 6))
    maps[:, :2, :3] = 1.0   # top-left: 6 px x 1
    maps[:, 2:, 3:] = 2.0   # bottom-right: 6 px x 2
    maps[:, 0, 3] = -5.0    # negative relevance is ignored
    q = np.array([[True, False, False, False], [False, True, False, True]])
    np.testing.assert_allclose(lo.focus(maps, q), [6 / 18, 12 / 18])
    np.testing.assert_allclose(lo.focus(maps[:, None], [1, 0, 0, 1]), [1.0, 1.0])
    with pytest.raises(ValueError, match="even height and width"):
        lo.focus(maps[:, :3], q)
    with pytest.raises(ValueError, match="marks no quadrant"):
        lo.focus(maps, np.zeros((2, 4), dtype=bool))
    with pytest.raises(ValueError, match="no positive relevance"):
        lo.focus(-np.abs(maps), q)
    with pytest.raises(ValueError, match="four"):
        lo.mosaic(parts[0], parts[1], parts[2], parts[3][:1])


def test_new_localisation_metrics_refuse_bad_masks_and_maps():
    maps = np.random.default_rng(4).normal(size=(2, 4, 4))
    good = np.ones((2, 4, 4), dtype=bool)
    good[:, 0] = False
    for fn in (lo.relevance_rank_accuracy, lo.localisation_auc, lo.attribution_localisation,
               lambda m, k: lo.topk_mask_intersection(m, k, 3)):
        with pytest.raises(ValueError, match=r"masks must have shape \(2, 4, 4\)"):
            fn(maps, good[:, :3])
        with pytest.raises(ValueError, match=r"masks\[1\] is empty"):
            fn(maps, np.stack([good[0], np.zeros((4, 4), bool)]))
        with pytest.raises(ValueError, match="finite"):
            fn(np.full_like(maps, np.nan), good)
