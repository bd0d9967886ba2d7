"""xattr.models._inputs: pictures as baselines and inputs outside the declared range (part 3).

Oracles: the declared spec applied by hand (``(lo + (hi − lo)·p − mean) / std``); completeness of exact
integrated gradients (``Σ IG = F(x) − F(x')``, to round-off) identifies the baseline ``x'`` the command used.
"""
import numpy as np
import pytest

import xattr
from xattr import cli, models
from xattr.data.train import shapes_cnn
from xattr.models import _inputs

from extras import need  # noqa: E402  (tests/extras.py: optional packages of the test suite)

SPEC = dict(models.default_input_spec(3, 12, 12), range=[0.0, 2.0], mean=[0.5, 1.0, 1.5], std=[0.25, 0.5, 1.0])


def test_black_picture_is_the_declared_low_end_normalised():
    black = _inputs.picture(SPEC, (3, 4, 5))
    want = (0.0 - np.array(SPEC["mean"])) / np.array(SPEC["std"])  # (lo - mean) / std: -2, -2, -1.5
    assert np.array_equal(black, np.broadcast_to(want[:, None, None], (3, 4, 5)))
    white = _inputs.picture(SPEC, (3, 4, 5), 1.0)
    assert np.array_equal(white[:, 0, 0], (2.0 - np.array(SPEC["mean"])) / np.array(SPEC["std"]))
    gray = _inputs.picture(SPEC, (2, 3, 1, 1), [0.0, 0.5, 1.0])  # one level per channel, a batch shape
    assert gray.shape == (2, 3, 1, 1) and np.array_equal(gray[0, :, 0, 0], [-2.0, 0.0, 0.5])
    with pytest.raises(ValueError, match="gray level in \\[0, 1\\]"):
        _inputs.picture(SPEC, (3, 2, 2), 1.5)


def test_to_model_input_is_the_declared_map():
    p = np.random.default_rng(0).random((2, 3, 4, 4))
    want = (2.0 * p - np.array(SPEC["mean"])[:, None, None]) / np.array(SPEC["std"])[:, None, None]
    np.testing.assert_allclose(_inputs.to_model_input(p, SPEC), want, rtol=1e-15)
    with pytest.raises(ValueError, match="pixels must lie in \\[0, 1\\]"):
        _inputs.to_model_input(p * 255, SPEC)


@pytest.fixture
def model_file(tmp_path):
    return models.save(shapes_cnn((3, 4, 5), rng=3), tmp_path / "m", input_spec=SPEC)


def test_cli_ig_baseline_is_the_black_image_for_a_mean_std_model(tmp_path, model_file, capsys):
    """``xattr explain --method integrated_gradients`` (exact quadrature): Σ IG = F(x) − F(black picture)."""
    from PIL import Image

    img = (np.random.default_rng(1).random((12, 12, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    model, info = models.load_with_info(model_file)
    ctx = cli.options._Context(0, 12, info, shape=(3, 12, 12))
    kw = cli.method_kwargs("integrated_gradients", xattr.integrated_gradients, ctx)
    black = (0.0 - np.array(SPEC["mean"])[:, None, None]) / np.array(SPEC["std"])[:, None, None]
    assert np.array_equal(kw["baseline"], np.broadcast_to(black, (3, 12, 12)))  # not 0.0, the mean colour
    cli.METHOD_OPTIONS["integrated_gradients"] = {"quadrature": "exact"}
    try:
        assert cli.main(["explain", str(tmp_path / "a.png"), "--model", model_file, "--method",
                         "integrated_gradients", "--out", str(tmp_path / "a.npy"), "--quiet"]) == 0
    finally:
        cli.METHOD_OPTIONS.pop("integrated_gradients")
    capsys.readouterr()
    a = np.load(tmp_path / "a.npy")
    x, _ = cli.load_image(str(tmp_path / "a.png"), info)
    t = int(model.forward(x).argmax())
    f = lambda z: model.forward(z)[0, t]  # noqa: E731
    assert abs(a.sum() - (f(x) - f(black[None] + 0 * x))) < 1e-10
    assert abs(a.sum() - (f(x) - f(np.zeros_like(x)))) > 1e-3  # the old baseline explains something else


def test_methods_with_numeric_default_baselines_get_the_black_picture(model_file):
    model, info = models.load_with_info(model_file)
    ctx = cli.options._Context(0, 12, info, shape=(3, 12, 12))
    black = _inputs.picture(info, (3, 12, 12))
    for name in ("occlusion", "lime", "kernel_shap", "shapley", "deeplift"):
        fn = cli.methods_table()[name]
        kw = cli.method_kwargs(name, fn, ctx)
        key = "reference" if name == "deeplift" else "baseline"
        assert np.array_equal(kw[key], black), name
    # user levels are pictures too; strings pass through
    kw = cli.method_kwargs("occlusion", cli.methods_table()["occlusion"], ctx, {"baseline": 0.5})
    assert np.array_equal(kw["baseline"], _inputs.picture(info, (3, 12, 12), 0.5))
    kw = cli.method_kwargs("occlusion", cli.methods_table()["occlusion"], ctx, {"baseline": "blur"})
    assert kw["baseline"] == "blur"


def test_batch_cli_baselines_are_pictures(tmp_path, model_file, capsys):
    need("zarr")
    from PIL import Image

    from xattr import batch

    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(2):
        Image.fromarray((np.random.default_rng(i).random((12, 12, 3)) * 255).astype(np.uint8)).save(d / f"{i}.png")
    out = tmp_path / "b.zarr"
    assert cli.main(["batch", str(d), "--model", model_file, "--method", "integrated_gradients:quadrature=\"exact\"",
                     "--out", str(out), "--chunk", "2", "--scheduler", "sync", "--no-progress"]) == 0
    capsys.readouterr()
    model, info = models.load_with_info(model_file)
    maps = batch.read_maps(out, "integrated_gradients")
    black = _inputs.picture(info, (1, 3, 12, 12))
    for i in range(2):
        x, _ = cli.load_image(str(d / f"{i}.png"), info)
        t = int(model.forward(x).argmax())
        assert abs(maps[i].sum() - (model.forward(x)[0, t] - model.forward(black)[0, t])) < 1e-10


# -- part 3: inputs outside the declared range ------------------------------------------------------------
def test_preprocess_refuses_8bit_values_for_a_unit_range_model():
    info = models.default_input_spec(3)
    x8 = np.full((1, 3, 2, 2), 255, np.uint8)
    with pytest.raises(ValueError, match=r"values in \[255, 255\], outside the model's declared input range \[0, 1\]"
                                         r" \(8-bit pixel values\? divide by 255 first\)") as e:
        models.preprocess(x8, info)
    assert "\n" not in str(e.value)
    assert np.array_equal(models.preprocess(x8 // 255, info), np.ones((1, 3, 2, 2)))  # in range: promoted


def test_lists_follow_the_array_rule():
    info = dict(models.default_input_spec(1), range=[0.0, 255.0], mean=[0.0], std=[255.0])
    as_list = [[[[0, 128], [255, 64]]]]
    np.testing.assert_allclose(models.preprocess(as_list, info), np.asarray(as_list) / 255.0, rtol=1e-15)
    with pytest.raises(ValueError, match="outside the model's declared input range \\[0, 255\\]"):
        models.preprocess([[[[0, 300]]]], info)
    with pytest.raises(ValueError, match="regular nested list"):
        models.preprocess([[[[0, 1]], [[0]]]], info)
    with pytest.raises(TypeError, match="dtype"):
        models.preprocess([[[["a"]]]], info)
    with pytest.raises(ValueError, match="finite"):
        models.preprocess([[[[np.nan]]]], info)


def test_round_off_at_the_range_ends_is_accepted():
    info = dict(models.default_input_spec(1), range=[-1.0, 1.0])
    p = np.array([0.0, 1.0, 1 / 3, 2 / 3]).reshape(1, 1, 2, 2)
    models.preprocess(-1.0 + 2.0 * p, info)


def test_model_space_arrays_checked_per_channel():
    spec = SPEC
    black = _inputs.picture(spec, (1, 3, 2, 2))
    white = _inputs.picture(spec, (1, 3, 2, 2), 1.0)
    _inputs.check_model_space(np.concatenate([black, white]), spec)
    bad = white.copy()
    bad[0, 2] += 0.01
    with pytest.raises(
        ValueError, match="channel 2 .* the model's declared input range \\[0, 2\\] after its normalisation"
    ):
        _inputs.check_model_space(bad, spec)


def test_declared_resize_is_checked():
    from xattr.models._inputs import validate_input_spec

    spec = dict(models.default_input_spec(3, 224, 224), resize=256)
    assert validate_input_spec(spec)["resize"] == 256
    for bad, match in [(dict(spec, resize=100), "no larger than it"), (dict(spec, resize=2.5), "resize must be"),
                       (dict(models.default_input_spec(3), resize=256), "needs a declared height"),
                       (dict(spec, resize=True), "resize must be")]:
        with pytest.raises(ValueError, match=match):
            validate_input_spec(bad)
