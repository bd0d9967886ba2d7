"""The file matrix: files as a user hands them to the command line.

* images of every kind through ``xattr explain`` and ``xattr batch``: each converted by the reader's
  stated rule (oracle: ``xattr.gradient`` on ``read_image``'s pixels scaled and normalised by hand), the
  same pixels in both commands (one reader; ``batch`` resizes as ``explain --fit stretch``, ``explain``
  keeps the aspect ratio by default), or refused in one line with exit status 2;
* corrupt, truncated and hostile model files through ``explain``, ``batch`` and ``demo``: one line, exit 2;
* stores with damaged chunks through ``xattr batch --resume``: found, said, recomputed to the same bits.
"""
import json
import os
import re
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

import xattr
from xattr import cli, models
from xattr.data.train import shapes_cnn
from xattr.io.images import read_image

from extras import need  # noqa: E402  (tests/extras.py: optional packages of the test suite)

SPEC = dict(models.default_input_spec(3, 12, 12), mean=[0.4, 0.5, 0.6], std=[0.2, 0.25, 0.3])


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return models.save(shapes_cnn((3, 4, 5), rng=2), tmp_path_factory.mktemp("m") / "m", input_spec=SPEC)


def _png(width, height, depth, ctype, rows=None):
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    body = b"".join(b"\x00" + r for r in rows) if rows is not None else b"\x00"
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, ctype, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(body)) + chunk(b"IEND", b""))


def _rgb(seed=0, shape=(10, 14, 3)):
    return (np.random.default_rng(seed).random(shape) * 255).astype(np.uint8)


def _with_exif(img, orientation, path):
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(path, exif=exif.tobytes())


#: name -> (writer(path), None for "read" or a regex of the one-line refusal)
IMAGES = {
    "rgb.png": (lambda p: Image.fromarray(_rgb()).save(p), None),
    "rgb.jpg": (lambda p: Image.fromarray(_rgb()).save(p, quality=95), None),
    "gray.png": (lambda p: Image.fromarray(_rgb()[..., 0]).save(p), None),
    "gray16.png": (lambda p: Image.fromarray((_rgb()[..., 0].astype(np.uint16) * 257)).save(p), None),
    "rgb16.png": (
        lambda p: open(p, "wb").write(_png(3, 2, 16, 2, [(np.arange(9, dtype=">u2") * 7000).tobytes()] * 2)),
        None,
    ),
    "float.tiff": (lambda p: Image.fromarray(np.random.default_rng(1).random((9, 9)).astype(np.float32)).save(p), None),
    "float_big.tiff": (
        lambda p: Image.fromarray(np.full((4, 4), 3.0, np.float32)).save(p),
        r"float image with values in \[3, 3\]",
    ),
    "int32.tiff": (lambda p: Image.fromarray(np.array([[0, 9]], np.int32)).save(p), "no defined value range"),
    "bilevel.png": (lambda p: Image.fromarray(_rgb()[..., 0] > 128).save(p), None),
    "palette.gif": (lambda p: Image.fromarray(_rgb()).convert("P").save(p), None),
    "palette_t.png": (lambda p: Image.fromarray(_rgb()).convert("P").save(p, transparency=0), None),
    "rgba.png": (lambda p: Image.fromarray(np.dstack([_rgb(), _rgb(3)[..., :1]]), "RGBA").save(p), None),
    "la.png": (lambda p: Image.fromarray(_rgb()[..., :2], "LA").save(p), None),
    "cmyk.jpg": (lambda p: Image.fromarray(np.dstack([_rgb(), _rgb(4)[..., :1]]), "CMYK").save(p), None),
    "cmyk.tiff": (lambda p: Image.fromarray(np.dstack([_rgb(), _rgb(4)[..., :1]]), "CMYK").save(p), None),
    "ycbcr.jpg": (lambda p: Image.fromarray(_rgb()).convert("YCbCr").save(p), None),
    "exif6.jpg": (lambda p: _with_exif(Image.fromarray(_rgb()), 6, p), None),
    "exif3.png": (lambda p: _with_exif(Image.fromarray(_rgb()), 3, p), None),
    "anim.gif": (
        lambda p: Image.fromarray(_rgb()).save(p, save_all=True, append_images=[Image.fromarray(_rgb(5))]),
        None,
    ),
    "pgm16.pgm": (
        lambda p: open(p, "wb").write(b"P5\n2 2\n4095\n" + np.array([0, 1, 4094, 4095], ">u2").tobytes()),
        None,
    ),
    "big.bmp": (lambda p: Image.fromarray(_rgb(shape=(300, 200, 3))).save(p), None),
    "tiny.png": (lambda p: Image.fromarray(_rgb(shape=(1, 1, 3))).save(p), None),
    "webp.webp": (lambda p: Image.fromarray(_rgb()).save(p, lossless=True), None),
    "lab.tiff": (lambda p: Image.new("LAB", (3, 3)).save(p), "mode 'LAB' has no stated conversion"),
    "bomb.png": (lambda p: open(p, "wb").write(_png(200000, 200000, 8, 2)), "decompression bomb"),
    "truncated.png": (
        lambda p: open(p, "wb").write(_png(40, 40, 8, 2, [bytes(120)] * 40)[:60]),
        "corrupt or truncated|not an image",
    ),
    "text.png": (lambda p: open(p, "w").write("hello"), "not an image Pillow can read"),
    "empty.jpg": (lambda p: open(p, "wb").close(), "not an image Pillow can read"),
}


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    import warnings

    from PIL import Image as PILImage

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
        for name, (write, _) in IMAGES.items():
            write(str(d / name))
    return d


def _expected(model, path, fit="crop"):
    """The oracle: the reader's pixels, scaled and normalised by hand, then the library's gradient.

    ``explain`` keeps the aspect ratio and cuts the centre by default (``fit="crop"``); ``batch`` resizes
    (``fit="stretch"``, as ``explain --fit stretch``)."""
    pic = read_image(path, channels=3, size=(12, 12), fit=fit)
    x = ((pic.pixels - np.array(SPEC["mean"])[:, None, None]) / np.array(SPEC["std"])[:, None, None])[None]
    return xattr.gradient(model, x, int(model.forward(x).argmax()))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("name", list(IMAGES))
def test_every_image_kind_through_explain(image_dir, model_file, tmp_path, capsys, name):
    refusal = IMAGES[name][1]
    out = tmp_path / "a.npy"
    code = cli.main(["explain", str(image_dir / name), "--model", model_file, "--method", "gradient",
                     "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    if refusal is None:
        assert code == 0, err
        model = models.load(model_file)
        assert np.allclose(np.load(out), _expected(model, str(image_dir / name)), rtol=1e-12, atol=1e-14)
        stretched = tmp_path / "s.npy"  # --fit stretch: the pixels of xattr batch
        assert cli.main(["explain", str(image_dir / name), "--model", model_file, "--method", "gradient",
                         "--out", str(stretched), "--quiet", "--fit", "stretch"]) == 0
        assert np.allclose(np.load(stretched), _expected(model, str(image_dir / name), "stretch"), rtol=1e-12,
                           atol=1e-14)
    else:
        assert code == 2 and len(err) == 1 and err[0].startswith("xattr: error: ") and name in err[0], err
        assert re.search(refusal, err[0]), err[0]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_batch_reads_every_image_kind_as_explain_does(image_dir, model_file, tmp_path, capsys):
    need("zarr")
    from xattr import batch

    out = tmp_path / "all.zarr"
    assert cli.main(["batch", str(image_dir), "--model", model_file, "--method", "gradient", "--out", str(out),
                     "--chunk", "4", "--batch-size", "1", "--on-error", "continue", "--scheduler", "sync",
                     "--no-progress"]) == 0
    text = capsys.readouterr().out
    files = sorted(f for f in os.listdir(image_dir) if f.lower().endswith(batch.IMAGE_EXTENSIONS))
    maps = batch.read_maps(out, "gradient")
    model = models.load(model_file)
    for i, name in enumerate(files):
        if IMAGES[name][1] is None:
            assert np.allclose(maps[i], _expected(model, str(image_dir / name), "stretch")[0], rtol=1e-12,
                               atol=1e-14), name
        else:
            assert np.isnan(maps[i]).all() and f"unreadable image {i} {name}" in text, name
    assert f"images: {len(files)} ({len(files)} in verified chunks" in text


# -- model files --------------------------------------------------------------------------------------------
def _model_files(tmp_path, model_file):
    doc = json.loads(open(model_file).read())
    npz = open(model_file[:-5] + ".npz", "rb").read()
    out = {}

    def put(name, text, data=npz):
        (tmp_path / f"{name}.json").write_text(text) if isinstance(text, str) else (
            tmp_path / f"{name}.json"
        ).write_bytes(text)
        (tmp_path / f"{name}.npz").write_bytes(data)
        out[name] = str(tmp_path / f"{name}.json")

    def edited(fn):
        d = json.loads(json.dumps(doc))
        fn(d)
        return json.dumps(d)

    text = json.dumps(doc)
    put("json_truncated", text[: len(text) // 2])
    put("json_binary", bytes(range(256)))
    put("npz_truncated", text, npz[: len(npz) // 2])
    put("npz_flipped", text, npz[:100] + bytes([npz[100] ^ 1]) + npz[101:])
    put("npz_empty", text, b"")
    put("weights_int", edited(lambda d: d.update(weights=5)))
    put("weights_no_hash", edited(lambda d: d["weights"].pop("sha256")))
    put("layers_dict", edited(lambda d: d.update(layers={"a": 1})))
    put("layer_type_int", edited(lambda d: d["layers"][0].update(type=7)))
    put("conv_float_channels", edited(lambda d: d["layers"][0]["config"].update(in_channels=3.7)))
    put("bn_nan_eps", text.replace('"layers": [', '"layers": [{"name": "bn0", "type": "BatchNorm2D", '
                                   '"config": {"num_features": 3, "eps": NaN}, "arrays": []}, ', 1))
    put("huge_conv", edited(lambda d: d["layers"][0]["config"].update(out_channels=60000)
                            or d["layers"][3]["config"].update(in_channels=60000, out_channels=60000)))
    put("huge_input", edited(lambda d: d["input"].update(height=65536, width=65536)))
    put("deep", text[:-1] + ', "meta": ' + "{\"a\": " * 5000 + "1" + "}" * 5000 + "}")
    put("std_zero", edited(lambda d: d["input"].update(std=[0.2, 0.0, 0.3])))
    put("version_9", edited(lambda d: d.update(version=9)))
    return out


MODEL_FILE_ERRORS = {
    "json_truncated": "not JSON", "json_binary": "not JSON", "npz_truncated": "corrupt or truncated",
    "npz_flipped": "corrupt or truncated", "npz_empty": "corrupt or truncated", "weights_int": "'weights' entry",
    "weights_no_hash": "no 'sha256'", "layers_dict": "'layers' must be a non-empty list",
    "layer_type_int": "string 'name' and 'type'", "conv_float_channels": "in_channels must be an int, got 3.7",
    "bn_nan_eps": "eps must be a finite positive number", "huge_conv": "memory budget",
    "huge_input": "height must be null or an int in|memory budget", "deep": "levels deep",
    "std_zero": "std must be > 0", "version_9": "format version 9",
}


@pytest.mark.parametrize("command", ["explain", "batch", "demo"])
def test_bad_model_files_through_every_command(tmp_path, model_file, capsys, command):
    files = _model_files(tmp_path, model_file)
    assert set(files) == set(MODEL_FILE_ERRORS)
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    (tmp_path / "imgs").mkdir()
    Image.fromarray(_rgb()).save(tmp_path / "imgs" / "a.png")
    for name, path in files.items():
        argv = {"explain": ["explain", str(tmp_path / "a.png"), "--model", path, "--method", "gradient"],
                "batch": ["batch", str(tmp_path / "imgs"), "--model", path, "--method", "gradient",
                          "--out", str(tmp_path / f"{name}.zarr"), "--no-progress"],
                "demo": ["demo", "--out", str(tmp_path / "demo"), "--model", path, "--n", "1", "--quiet"]}[command]
        if command == "batch":
            need("zarr")
        code = cli.main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and err[0].startswith("xattr: error: "), (name, err)
        assert re.search(MODEL_FILE_ERRORS[name], err[0]), (name, err[0])
        assert not os.path.exists(tmp_path / f"{name}.zarr")


# -- stores ------------------------------------------------------------------------------------------------
def test_damaged_store_resumed_from_the_command_line(tmp_path, model_file, capsys):
    need("zarr")
    from xattr import batch

    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(6):
        Image.fromarray(_rgb(i, (12, 12, 3))).save(d / f"{i}.png")
    args = ["batch", str(d), "--model", model_file, "--method", "gradient", "--out", str(tmp_path / "s.zarr"),
            "--chunk", "2", "--scheduler", "sync", "--no-progress"]
    assert cli.main(args) == 0
    before = batch.read_maps(tmp_path / "s.zarr", "gradient")
    os.remove(tmp_path / "s.zarr" / "maps" / "gradient" / "c" / "2" / "0" / "0" / "0")  # a lost chunk file
    with open(tmp_path / "s.zarr" / "done" / "c" / "0", "r+b") as f:  # a corrupted done record
        f.write(b"\xff\xff\xff")
    capsys.readouterr()
    assert cli.main(["batch", "--verify", str(tmp_path / "s.zarr")]) == 1
    out = capsys.readouterr().out
    assert "chunk 0: damaged" in out and "chunk 2: damaged" in out and "1 verified (2 images), 2 damaged" in out
    assert cli.main(args + ["--resume"]) == 0
    out = capsys.readouterr().out
    assert "chunk 0 was damaged" in out and "chunk 2 was damaged" in out and "recomputed" in out
    assert "2 run now, 1 already done, 3 verified" in out
    assert np.array_equal(batch.read_maps(tmp_path / "s.zarr", "gradient"), before)
