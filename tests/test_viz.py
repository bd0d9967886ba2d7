"""xattr.viz: colormaps, percentile clipping, channel reduction, overlays and the PNG grid.

Oracles: anchor colours at the anchor positions and linear interpolation between them (closed form);
symmetry of the diverging map; the PNG read back by Pillow has the laid-out size and pixels.
"""
import numpy as np
import pytest
from PIL import Image

from xattr import viz

from extras import need  # noqa: E402  (tests/extras.py: optional packages of the test suite)


def test_colormap_hits_anchors_and_interpolates_linearly():
    for name, anchors in viz.COLORMAPS.items():
        k = len(anchors) - 1
        t = np.arange(k + 1) / k
        np.testing.assert_array_equal(viz.colormap(t, name), anchors.astype(np.uint8))
        mid = (np.arange(k) + 0.5) / k
        np.testing.assert_array_equal(
            viz.colormap(mid, name), np.round((anchors[:-1] + anchors[1:]) / 2).astype(np.uint8)
        )
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


# -- show / render: the one-call view ------------------------------------------------------------------
def _peak_map():
    m = np.zeros((6, 8))
    m[1, 2], m[4, 5], m[3, 3] = 2.0, -4.0, 1.0
    return m


def _tile_at(img, x, y, h, w):
    return np.asarray(img)[y:y + h, x:x + w]


def test_show_returns_an_image_with_its_tiles_and_bars():
    rng = np.random.default_rng(0)
    attr, image = rng.normal(size=(3, 10, 12)), rng.uniform(size=(3, 10, 12))
    for method in viz.METHODS:
        r = viz.render(attr, image, method)
        out = viz.show(attr, image, method, scale=2)
        assert isinstance(out, Image.Image) and out.mode == "RGB"
        assert len(r.tiles) == len(r.titles) == len(r.colorbars) == (2 if method == "split" else 1)
        top = 6 + int(12 * 1.4)  # no title: one line of tile titles
        x = 6
        for tile, bar in zip(r.tiles, r.colorbars):
            assert tile.shape == (10, 12, 3) and tile.dtype == np.uint8
            np.testing.assert_array_equal(_tile_at(out, x, top, 20, 24), np.repeat(np.repeat(tile, 2, 0), 2, 1))
            barw = viz.colorbar_image(bar, 20, viz.font(12)).width + 6 if bar is not None else 0
            x += 24 + barw + 12
        assert out.width == x
    titled = viz.show(attr, image, "heat_map", title="SmoothGrad², σ = 0.15")
    assert titled.height == viz.show(attr, image, "heat_map").height + int(12 * 1.4)
    assert viz.show(attr, method="heat_map").size[0] >= 160  # small maps are upscaled to >= 160 px


def test_max_pixel_takes_the_top_colour():
    m = _peak_map()
    cm = viz.COLORMAPS
    pos = viz.render(m, sign="positive", outlier_percentile=0).tiles[0]
    assert pos[1, 2].tolist() == cm["magnitude"][-1].tolist() and pos[4, 5].tolist() == [0, 0, 0]
    assert pos[3, 3].tolist() == viz.colormap(0.5, "magnitude").tolist()
    neg = viz.render(m, sign="negative", outlier_percentile=0).tiles[0]
    assert neg[4, 5].tolist() == cm["negative"][-1].tolist() and neg[1, 2].tolist() == [0, 0, 0]
    both = viz.render(m, sign="all", outlier_percentile=0).tiles[0]  # scale 4: +2 -> halfway to red
    assert both[4, 5].tolist() == cm["signed"][0].tolist() and both[0, 0].tolist() == [255, 255, 255]
    np.testing.assert_array_equal(both[1, 2], viz.colormap(0.75, "signed"))
    absolute = viz.render(m, outlier_percentile=0).tiles[0]  # default sign: absolute
    assert absolute[4, 5].tolist() == cm["magnitude"][-1].tolist()
    image = np.random.default_rng(1).integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    masked = viz.render(m, image, "masked_image", "positive", outlier_percentile=0).tiles[0]
    assert masked[1, 2].tolist() == image[1, 2].tolist() and masked[4, 5].tolist() == [0, 0, 0]
    np.testing.assert_array_equal(masked[3, 3], np.round(image[3, 3] / 2))


def test_outlier_clipping_is_the_numpy_percentile():
    rng = np.random.default_rng(2)
    m = rng.standard_cauchy(size=(40, 50))  # heavy tails: outliers that would wash out the rest
    for p in (0.5, 2.0, 10.0):
        for sign, part in [("absolute", np.abs(m)), ("positive", np.maximum(m, 0)), ("all", m)]:
            r = viz.render(m, sign=sign, outlier_percentile=p)
            s = np.percentile(np.abs(part), 100 - p)
            assert r.scale == s
            np.testing.assert_array_equal(r.normalized, np.clip(part / s, -1, 1))
            assert np.count_nonzero(np.abs(r.normalized) == 1) == np.count_nonzero(np.abs(part) >= s)
    assert viz.render(np.zeros((3, 3))).scale == 1.0 and np.all(viz.render(np.zeros((3, 3))).tiles[0] == 0)
    sparse = np.zeros((20, 20))
    sparse[0, 0] = 3.0  # the 99.5th percentile is 0: the largest value sets the scale instead
    assert viz.render(sparse).scale == 3.0


def test_cumulative_threshold_equals_captum():
    vis = need("captum.attr._utils.visualization", reason="Captum is the oracle here")
    rng = np.random.default_rng(3)
    m = rng.normal(size=(12, 15)) * rng.exponential(size=(12, 15))
    for ours, theirs in [("positive", "positive"), ("negative", "negative"), ("absolute", "absolute_value"),
                         ("all", "all")]:
        for p in (0, 2, 20):
            got = viz.render(m, sign=ours, outlier_percentile=p, threshold="cumulative").normalized
            if ours == "negative":  # Captum divides the negative part by -s (magnitudes); xattr keeps t <= 0
                got = -got
            np.testing.assert_allclose(got, vis._normalize_attr(m, theirs, p), rtol=1e-15, atol=0)
    a = rng.normal(size=(3, 12, 15))  # channels: Captum sums them (signed), as reduce="sum" does
    got = viz.render(a, sign="all", outlier_percentile=2, threshold="cumulative").normalized
    np.testing.assert_allclose(got, vis._normalize_attr(a.sum(0), "all", 2), rtol=1e-15, atol=0)
    assert viz.render(m, sign="absolute_value").normalized.min() >= 0  # Captum's spelling accepted


def test_blended_alpha_and_scaled_views():
    m = _peak_map()
    image = np.full((6, 8, 3), 200, np.uint8)
    image[..., 2] = 50
    r = viz.render(m, image, "blended_heat_map", "positive", outlier_percentile=0, alpha=0.25)
    luma = 0.299 * 200 + 0.587 * 200 + 0.114 * 50
    np.testing.assert_array_equal(r.tiles[0][0, 0], np.round([0.75 * luma] * 3))  # heat 0 is black
    np.testing.assert_array_equal(r.tiles[0][1, 2], np.round(0.75 * luma + 0.25 * 255))
    a = viz.render(m, image, "alpha_scaling", "positive", outlier_percentile=0).tiles[0]
    assert a[0, 0].tolist() == [255, 255, 255] and a[1, 2].tolist() == [200, 200, 50]  # opacity 0 and 1 over white
    np.testing.assert_array_equal(a[3, 3], np.round(np.array([200, 200, 50]) / 2 + 255 / 2))
    # the counterfactuals' view: P = sum_c |attr_c| (Sundararajan et al. 2016, Eq. 1), even where channels cancel
    attr = np.zeros((3, 6, 8))
    attr[0, 2, 2], attr[1, 2, 2] = 1.0, -1.0  # signed sum 0
    attr[0, 0, 0] = 0.5
    scaled = viz.render(attr, image, "scaled_image", outlier_percentile=0)
    assert scaled.scale == 2.0 and scaled.tiles[0][2, 2].tolist() == [200, 200, 50]
    np.testing.assert_array_equal(scaled.tiles[0][0, 0], np.round(np.array([200, 200, 50]) / 4))
    masked = viz.render(attr, image, "masked_image", outlier_percentile=0)  # Captum's signed channel sum
    assert masked.tiles[0][2, 2].tolist() == [0, 0, 0]
    image_chw = np.moveaxis(image, -1, 0) / 255.0  # (C, H, W) in [0, 1] gives the same tile
    np.testing.assert_array_equal(viz.render(attr, image_chw, "scaled_image", outlier_percentile=0,
                                             value_range=(0, 1)).tiles[0], scaled.tiles[0])


def test_split_puts_both_signs_on_one_scale():
    m = _peak_map()
    r = viz.render(m, method="split", outlier_percentile=0)
    assert r.scale == 4.0 and [b.cmap for b in r.colorbars] == ["magnitude", "negative"]
    pos, neg = r.tiles
    np.testing.assert_array_equal(pos[1, 2], viz.colormap(0.5, "magnitude"))  # +2 of 4
    assert neg[4, 5].tolist() == viz.COLORMAPS["negative"][-1].tolist()  # -4 of 4
    assert pos[4, 5].tolist() == [0, 0, 0] and neg[1, 2].tolist() == [0, 0, 0]
    assert (r.colorbars[0].lo, r.colorbars[0].hi, r.colorbars[1].hi) == (0.0, 4.0, -4.0)


def test_colorbar_runs_from_lo_to_hi():
    fnt = viz.font(12)
    bar = np.asarray(viz.colorbar_image(viz.ColorBar("magnitude", 0.0, 3.0), 100, fnt))
    y0 = fnt.getbbox("0")[3] // 2  # the strip starts half a line down, so the top label fits
    strip = bar[y0:y0 + 100, 5]
    np.testing.assert_array_equal(strip, viz.colormap(np.linspace(1, 0, 100), "magnitude"))  # hi at the top
    inverted = np.asarray(viz.colorbar_image(viz.ColorBar("gray_inverted", 0.0, 3.0), 100, fnt))
    assert inverted[y0, 5].tolist() == [0, 0, 0] and inverted[y0 + 99, 5].tolist() == [255, 255, 255]


def test_font_renders_sigma_and_squared():
    from PIL import ImageFont

    if viz.font_path() is None:
        pytest.skip("no DejaVu Sans (matplotlib's or the system's): the ASCII fallback is tested below")
    assert viz.has_glyphs(viz.font(14), "σ²−×")
    assert viz.fit_text(viz.font(14), "SmoothGrad², σ = 0.15") == "SmoothGrad², σ = 0.15"
    pillow = ImageFont.load_default(size=14)
    if not viz.has_glyphs(pillow, "σ"):  # Pillow's built-in Aileron: boxes, so the text is spelled out
        assert viz.fit_text(pillow, "SmoothGrad², σ = 0.15 − x") == "SmoothGrad^2, sigma = 0.15 - x"


def test_show_rejects_bad_input():
    m = np.zeros((4, 5))
    image = np.zeros((3, 4, 5))
    cases = [
        (dict(method="jet"), "method must be one of"),
        (dict(sign="both"), "sign must be one of"),
        (dict(method="masked_image", sign="all", image=image), "sign must be 'positive', 'negative' or 'absolute'"),
        (dict(method="alpha_scaling", sign="all", image=image), "not 'all'"),
        (dict(method="split", sign="positive"), "sign must be 'all'"),
        (dict(method="blended_heat_map"), "needs the image"),
        (dict(image=np.zeros((3, 5, 5))), "image is 5x5 but the attribution is 4x5"),
        (dict(image=np.zeros((4, 5, 3))), "image must be"),
        (dict(outlier_percentile=100), r"outlier_percentile must be in \[0, 100\)"),
        (dict(outlier_percentile=-1), "outlier_percentile"),
        (dict(threshold="mass"), "threshold must be one of"),
        (dict(alpha=1.5, method="blended_heat_map", image=image), "alpha"),
        (dict(reduce="median", attr=np.zeros((3, 4, 5))), "how must be one of"),
        (dict(attr=np.zeros((2, 3, 4, 5))), "batch of 2"),
        (dict(attr=np.zeros(5)), r"\(H, W\), \(C, H, W\)"),
        (dict(attr=np.full((4, 5), np.nan)), "finite"),
        (dict(scale=0), "scale must be a positive int"),
    ]
    for kw, match in cases:
        kw = dict(kw)
        attr = kw.pop("attr", m)
        with pytest.raises(ValueError, match=match):
            viz.show(attr, **kw)


def test_show_leaves_its_inputs_alone():
    rng = np.random.default_rng(4)
    attr, image = rng.normal(size=(1, 3, 6, 7)), rng.integers(0, 256, size=(6, 7, 3), dtype=np.uint8)
    a0, i0 = attr.copy(), image.copy()
    for method in viz.METHODS:
        viz.show(attr, image, method, sign="all" if method in ("heat_map", "split") else "positive")
    np.testing.assert_array_equal(attr, a0)
    np.testing.assert_array_equal(image, i0)


# -- sheets: one scale and one colour bar per column ----------------------------------------------------------------

def test_render_with_a_given_clipping_scale():
    m = np.array([[-3.0, 1.0], [0.5, 4.0]])
    r = viz.render(m, sign="all", clip_at=2.0)
    assert r.scale == 2.0 and r.colorbars[0] == viz.ColorBar("signed", -2.0, 2.0)
    np.testing.assert_array_equal(r.normalized, np.clip(m / 2.0, -1, 1))
    for bad in (0.0, -1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="clip_at"):
            viz.render(m, clip_at=bad)


def test_sheet_draws_each_column_on_one_scale():
    """Row 2's map is row 1's divided by 10: on the column's one scale its tile is paler, and each tile is exactly
    what render draws with the column's scale (the percentile of both rows' values)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    images = rng.random((2, 3, 6, 6))
    a = rng.normal(size=(3, 6, 6))
    attrs = [a, a / 10]
    col = viz.Column("gradient σ²", attrs, sign="all", outlier_percentile=0)
    s = viz.clip_scale(np.stack([a.sum(0), a.sum(0) / 10]), 0)
    assert s == np.abs(a.sum(0)).max()
    im = viz.sheet(images, [viz.Column("input"), col], row_titles=["one\ntwo lines", "b"], scale=1, title="t")
    assert isinstance(im, Image.Image)
    want = [viz.render(x, sign="all", clip_at=s).tiles[0] for x in attrs]
    assert np.abs(255 - want[1].astype(int)).sum() < np.abs(255 - want[0].astype(int)).sum()  # paler
    got = np.asarray(im)
    hits = [any(np.array_equal(got[y:y + 6, x:x + 6], w) for y in range(got.shape[0] - 5)
                for x in range(got.shape[1] - 5)) for w in want]
    assert hits == [True, True]  # both tiles drawn as render draws them on the shared scale
    # a per-row scale would have drawn row 2 as row 1:
    assert not np.array_equal(want[1], viz.render(attrs[1], sign="all", outlier_percentile=0).tiles[0])


def test_sheet_checks_its_rows_and_columns():
    images = np.zeros((2, 3, 4, 4))
    with pytest.raises(ValueError, match="2 rows"):
        viz.sheet(images, [viz.Column("m", [np.zeros((4, 4))])])
    with pytest.raises(ValueError, match="one size"):
        viz.sheet([np.zeros((3, 4, 4)), np.zeros((3, 5, 4))], [viz.Column("input")])
    with pytest.raises(ValueError, match="row titles"):
        viz.sheet(images, [viz.Column("input")], row_titles=["a"])
    with pytest.raises(ValueError, match="at least one"):
        viz.sheet([], [viz.Column("input")])


def test_grid_labels_draw_sigma_and_squared_with_real_glyphs():
    """Column titles and row labels use viz.font (DejaVu where installed): σ and ² are drawn, not the missing-glyph
    box."""
    fnt = viz.font(11)
    if not viz.has_glyphs(fnt, "σ²→"):
        pytest.skip("no font with σ and ² here: the labels are spelt out in ASCII (viz.fit_text)")
    tile = [[np.zeros((10, 10, 3), np.uint8)]]
    def head(title):  # the title strip
        return np.asarray(viz.grid_image(tile, [title], scale=4))[:14]

    assert not np.array_equal(head("σ²"), head("\u0378\u0378"))  # not the .notdef box of an unassigned code point
    assert not np.array_equal(head("σ"), head("²"))
