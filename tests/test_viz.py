"""xattr.viz: colormaps, percentile clipping, channel reduction, overlays and the PNG grid.

Oracles: anchor colours at the anchor positions and linear interpolation between them (closed form);
symmetry of the diverging map; the PNG read back by Pillow has the laid-out size and pixels.
"""
import numpy as np
import pytest
from PIL import Image

from xattr import viz


def test_colormap_hits_anchors_and_interpolates_linearly():
    for name, anchors in viz.COLORMAPS.items():
        k = len(anchors) - 1
        t = np.arange(k + 1) / k
        np.testing.assert_array_equal(viz.colormap(t, name), anchors.astype(np.uint8))
        mid = (np.arange(k) + 0.5) / k
        np.testing.assert_array_equal(viz.colormap(mid, name), np.round((anchors[:-1] + anchors[1:]) / 2).astype(np.uint8))
    assert viz.colormap(np.array([-3.0, 7.0]), "gray").tolist() == [[0, 0, 0], [255, 255, 255]]  # clipped


def test_signed_map_is_symmetric_around_white():
    m = np.array([[-2.0, -1.0, 0.0, 1.0, 2.0]])
    rgb = viz.to_rgb(m, "signed", percentile=100)
    assert rgb[0, 2].tolist() == [255, 255, 255]  # zero is white
    assert rgb[0, 0].tolist() == viz.COLORMAPS["signed"][0].tolist()  # -max: the negative anchor
    assert rgb[0, 4].tolist() == viz.COLORMAPS["signed"][-1].tolist()
    # equal magnitudes sit at mirrored positions: halfway from white to each end anchor
    neg, white, pos = viz.COLORMAPS["signed"]
    np.testing.assert_array_equal(rgb[0, 1], np.round((neg + white) / 2))
    np.testing.assert_array_equal(rgb[0, 3], np.round((pos + white) / 2))
    t = viz.normalize(m, signed=True, percentile=100)
    np.testing.assert_allclose(t, 1 - t[:, ::-1])


def test_percentile_clipping():
    m = np.zeros((20, 50))
    m.flat[:999] = np.linspace(0, 1, 999)
    m.flat[999] = 1000.0  # one outlier in a thousand
    t = viz.normalize(m, percentile=99)
    assert t.max() == 1.0 and np.count_nonzero(t == 1.0) >= 2  # the outlier is clipped, not the scale
    assert np.median(t) > 0.4  # the rest is not washed out
    assert np.all(viz.normalize(np.zeros((3, 3))) == 0)  # all-zero map stays zero
    s = viz.normalize(np.array([-4.0, 0.0, 4.0]), signed=True, percentile=100)
    np.testing.assert_allclose(s, [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="percentile"):
        viz.normalize(m, percentile=0)
    with pytest.raises(ValueError, match="finite"):
        viz.normalize(np.array([np.nan]))


def test_to_map_channel_reductions():
    a = np.random.default_rng(0).normal(size=(3, 4, 5))
    np.testing.assert_allclose(viz.to_map(a, "sum"), a.sum(0))
    np.testing.assert_allclose(viz.to_map(a, "max_abs"), np.abs(a).max(0))
    np.testing.assert_allclose(viz.to_map(a[:1]), a[0])
    np.testing.assert_allclose(viz.to_map(a[0]), a[0])
    with pytest.raises(ValueError, match="to_map"):
        viz.to_map(a[None])


def test_image_to_rgb_and_mask():
    x = np.zeros((3, 2, 2))
    x[0, 0, 0] = 1.0
    rgb = viz.image_to_rgb(x, (0, 1))
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3) and rgb[0, 0].tolist() == [255, 0, 0]
    assert viz.image_to_rgb(np.full((1, 2, 2), 0.5), (0, 1))[0, 0].tolist() == [128, 128, 128]
    mask = np.zeros((5, 5), bool)
    mask[1:4, 1:4] = True
    edge = viz.outline(np.zeros((5, 5, 3), np.uint8), mask, (0, 255, 0))
    assert edge[2, 2].tolist() == [0, 0, 0] and edge[1, 1].tolist() == [0, 255, 0]  # interior untouched
    assert (edge[..., 1] > 0).sum() == 8
    assert viz.mask_to_rgb(mask)[2, 2].tolist() == [255, 255, 255]


def test_overlay_blends_by_alpha():
    img = np.full((4, 4, 3), 100, np.uint8)
    m = np.zeros((4, 4))
    m[0, 0] = 1.0
    out = viz.overlay(img, m, "magnitude", alpha=0.5, percentile=100)
    assert out[1, 1].tolist() == [100, 100, 100]  # zero attribution: the image shows through
    assert out[0, 0].tolist() == [178, 178, 178]  # half of 100 + half of white (max of the map)
    flat = viz.overlay(img, m, "magnitude", alpha=1.0, percentile=100, weighted=False)
    assert flat[1, 1].tolist() == [0, 0, 0]  # unweighted: the colormap's zero colour
    with pytest.raises(ValueError, match="alpha"):
        viz.overlay(img, m, alpha=2)
    with pytest.raises(ValueError, match="same size"):
        viz.overlay(img, np.zeros((3, 3)))


def test_grid_png_layout(tmp_path):
    red = np.zeros((6, 8, 3), np.uint8)
    red[..., 0] = 255
    rows = [[red, red, red], [red, red, red]]
    path = viz.save_grid(str(tmp_path / "g.png"), rows, ["input", "integrated_gradients", "c"], scale=2,
                         row_titles=["disk->disk", "square->cross"])
    im = Image.open(path)
    assert im.format == "PNG"
    arr = np.asarray(im.convert("RGB"))
    # tiles are 16 wide and 12 high after scaling; 3 columns, 2 rows, with titles and row labels around
    assert arr.shape[1] > 3 * 16 and arr.shape[0] > 2 * 12
    assert np.count_nonzero(np.all(arr == [255, 0, 0], axis=-1)) == 6 * 16 * 12
    with pytest.raises(ValueError, match="uint8"):
        viz.grid_image([[np.zeros((2, 2, 3))]])
    with pytest.raises(ValueError, match="at least one"):
        viz.grid_image([])


def test_to_rgb_rejects_bad_input():
    with pytest.raises(ValueError, match="2-D"):
        viz.to_rgb(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="cmap"):
        viz.to_rgb(np.zeros((2, 2)), "jet")
