"""The ``xattr`` command: demo end to end, explain on a PNG written here, methods, and bad input.

The demo and explain run in-process through ``xattr.cli.main`` (fast); one test runs the installed
``xattr`` entry point in a subprocess to check the console script and ``--help``.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from xattr import cli, models
from xattr.data import make_shapes
from xattr.data.train import shapes_cnn
from xattr.methods.registry import _METHODS, register_method

from extras import skip_or_fail  # tests/extras.py: optional packages of the test suite


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A small saved model (random weights) with a declared 20×20 input and a normalisation."""
    d = tmp_path_factory.mktemp("model")
    spec = dict(models.default_input_spec(3, 20, 20), mean=[0.5] * 3, std=[0.25] * 3)
    return models.save(shapes_cnn((3, 4, 5), rng=1), d / "small", input_spec=spec,
                       classes=["square", "disk", "triangle", "cross"], meta={"test_accuracy": 0.25})


def run(argv, capsys):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_demo_end_to_end_writes_png_and_summaries(tmp_path, model_file, capsys):
    out = tmp_path / "demo"
    code, stdout, err = run(["demo", "--out", str(out), "--n", "2", "--model", model_file, "--scale", "2"], capsys)
    assert code == 0, err
    png = out / "demo.png"
    with Image.open(png) as im:
        assert im.format == "PNG"
        im.load()
        w, h = im.size
    methods = list(cli.methods_table())
    # 2 rows of 20×20 tiles scaled ×2, and input + ground truth + one column per method
    assert h > 2 * 40 and w > (2 + len(methods)) * 40
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["methods"]) == set(methods)
    assert summary["data"]["n"] == 2 and len(summary["images"]) == 2
    for name, e in summary["methods"].items():
        assert e["status"] == "ok", (name, e)
        assert e["seconds"] >= 0 and len(e["pointing_hits"]) == 2 and len(e["relevance_mass"]) == 2
        assert all(v is None or 0 <= v <= 1 for v in e["relevance_mass"])
    md = (out / "summary.md").read_text()
    assert "| gradient |" in md and "pointing game" in md
    assert "[" in err  # progress went to stderr


def test_demo_survives_methods_that_do_not_apply(tmp_path, model_file, capsys):
    def needs_magic(model, x, target, magic):  # a required argument the command cannot choose
        return x

    def broken(model, x, target):
        raise RuntimeError("cannot handle this model")

    def wants_rng(model, x, target, reference, rng=None, segments=None):
        # required reference: the command fills 0.0; rng=None: filled with the seed; segments=None: left alone
        assert isinstance(rng, int) and reference == 0.0 and segments is None
        return x * 0 + 1.0

    added = {"zz_needs_magic": needs_magic, "zz_broken": broken, "zz_wants_rng": wants_rng}
    for name, fn in added.items():
        register_method(name, fn, "test")
    try:
        code, stdout, err = run(["demo", "--out", str(tmp_path), "--n", "1", "--model", model_file, "--quiet",
                                 "--methods", "gradient," + ",".join(added)], capsys)
    finally:
        for name in added:
            _METHODS.pop(name)
    assert code == 0, err
    s = json.loads((tmp_path / "summary.json").read_text())["methods"]
    assert s["gradient"]["status"] == "ok"
    assert s["zz_wants_rng"]["status"] == "ok"
    assert s["zz_needs_magic"]["status"] == "not applicable" and "'magic'" in s["zz_needs_magic"]["reason"]
    assert "cannot handle this model" in s["zz_broken"]["reason"]
    assert stdout == "" and err == ""  # --quiet


def test_completeness_gap_is_reported_for_methods_with_return_delta(tmp_path, model_file, capsys):
    def exact_gxi(model, x, target, return_delta=False):
        """gradient×input with a made-up delta, to check the plumbing of return_delta."""
        a = np.ones_like(x)
        return (a, np.full(len(x), 0.125)) if return_delta else a

    register_method("zz_delta", exact_gxi, "test")
    try:
        code, _, err = run(["demo", "--out", str(tmp_path), "--n", "2", "--model", model_file, "--quiet",
                            "--methods", "zz_delta"], capsys)
    finally:
        _METHODS.pop("zz_delta")
    assert code == 0, err
    e = json.loads((tmp_path / "summary.json").read_text())["methods"]["zz_delta"]
    assert e["completeness_gap"] == [0.125, 0.125]
    assert "1.25e-01" in (tmp_path / "summary.md").read_text()


def test_pointing_game():
    maps = np.zeros((3, 5, 5))
    masks = np.zeros((3, 5, 5), bool)
    masks[:, 0, 0] = True
    maps[0, 0, 0] = 1  # on the object
    maps[1, 0, 1] = 1  # one pixel off: within tolerance 1 (Euclidean)
    maps[2, 4, 4] = 1  # far away
    assert cli.pointing_hits(maps, masks, tolerance=1).tolist() == [True, True, False]
    assert cli.pointing_hits(maps, masks, tolerance=0).tolist() == [True, False, False]
    assert cli.pointing_hits(np.zeros((1, 5, 5)), masks[:1]).tolist() == [False]  # constant map: no point


def write_png(path, size=(40, 30), seed=0):
    img = make_shapes(1, rng=seed, size=32).images[0]
    Image.fromarray((np.moveaxis(img, 0, -1) * 255).astype(np.uint8)).resize(size).save(path)
    return str(path)


def test_explain_on_a_png(tmp_path, model_file, capsys):
    png = write_png(tmp_path / "in.png")  # 40×30: resized to the declared 20×20
    out = tmp_path / "out.png"
    code, stdout, err = run(["explain", png, "--model", model_file, "--method", "grad_cam", "--target", "2",
                             "--layer", "relu2", "--out", str(out)], capsys)
    assert code == 0, err
    assert "target 2 (triangle)" in stdout
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 3 * 20
    # raw map as .npy, default target (the prediction); equals the library call on the same preprocessing
    npy = tmp_path / "m.npy"
    assert run(["explain", png, "--model", model_file, "--method", "gradient", "--out", str(npy)], capsys)[0] == 0
    a = np.load(npy)
    model, info = models.load_with_info(model_file)
    x, _ = cli.load_image(png, info)
    assert x.shape == (1, 3, 20, 20)
    from PIL import Image as I

    raw = np.asarray(I.open(png).convert("RGB").resize((20, 20), I.BILINEAR), dtype=np.float64) / 255
    np.testing.assert_allclose(x[0], (np.moveaxis(raw, -1, 0) - 0.5) / 0.25)
    import xattr

    np.testing.assert_allclose(a, xattr.gradient(model, x, int(model(x).argmax())))


def test_explain_default_output_name_and_jpeg(tmp_path, model_file, capsys):
    src = write_png(tmp_path / "pic.png")
    jpg = tmp_path / "pic.jpg"
    Image.open(src).convert("RGB").save(jpg, quality=90)
    code, _, err = run(["explain", str(jpg), "--model", model_file, "--method", "guided_backprop", "--quiet"], capsys)
    assert code == 0, err
    assert (tmp_path / "pic_guided_backprop.png").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["explain", "{tmp}/missing.png", "--model", "{model}", "--method", "gradient"], "not found"),
        (["explain", "{tmp}/text.png", "--model", "{model}", "--method", "gradient"], "not an image"),
        (["explain", "{png}", "--model", "{model}", "--method", "nope"], "unknown method 'nope'"),
        (["explain", "{png}", "--model", "{tmp}/nomodel.json", "--method", "gradient"], "not found"),
        (["explain", "{png}", "--model", "{tmp}/text.png", "--method", "gradient"], "not valid|not an xattr|not found"),
        (["explain", "{png}", "--model", "{model}", "--method", "gradient", "--target", "9"], "--target must be"),
        (["explain", "{png}", "--model", "{model}", "--method", "grad_cam", "--layer", "conv9"], "no layer named 'conv9'"),
        (["explain", "{png}", "--model", "{model}", "--method", "gradient", "--layer", "relu1"], "takes no option 'layer'"),
        (["demo", "--out", "{tmp}/d", "--n", "0"], "--n must be"),
        (["demo", "--out", "{tmp}/d", "--model", "{tmp}/nomodel"], "not found"),
        (["demo", "--out", "{tmp}/d", "--methods", "gradient,nope", "--model", "{model}"], "unknown method"),
    ],
)
def test_bad_input_exits_nonzero_with_one_line(tmp_path, model_file, capsys, argv, message):
    (tmp_path / "text.png").write_text("this is not a picture\n")
    png = write_png(tmp_path / "ok.png")
    argv = [a.format(tmp=tmp_path, model=model_file, png=png) for a in argv]
    code, out, err = run(argv, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xattr: error: ")
    import re

    assert re.search(message, lines[0]), lines[0]


def test_truncated_model_file_is_a_clear_cli_error(tmp_path, model_file, capsys):
    for ext in (".json", ".npz"):
        shutil.copy(model_file[:-5] + ext, tmp_path / ("m" + ext))
    data = (tmp_path / "m.npz").read_bytes()
    (tmp_path / "m.npz").write_bytes(data[:50])
    code, _, err = run(["explain", write_png(tmp_path / "a.png"), "--model", str(tmp_path / "m.json"),
                        "--method", "gradient"], capsys)
    assert code == 2 and "corrupt or truncated" in err


@pytest.mark.parametrize("command", ["demo", "explain", "methods"])
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([command, "--help"])
    assert e.value.code == 0 and f"usage: xattr {command}" in capsys.readouterr().out


def test_missing_required_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["explain"])
    assert e.value.code == 2 and "required" in capsys.readouterr().err


def test_methods_lists_methods_and_rule_table(capsys):
    code, out, _ = run(["methods"], capsys)
    assert code == 0
    for name in cli.methods_table():
        assert f"| {name} |" in out
    assert "| layer | gradient | deconvnet | guided" in out


def test_console_script_and_help():
    exe = shutil.which("xattr", path=os.path.dirname(sys.executable))
    if exe is None:
        skip_or_fail(f"the `xattr` console script is not in {os.path.dirname(sys.executable)}: "
                     "the package is not installed in this environment")
    r = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "usage: xattr" in r.stdout
    r = subprocess.run([exe, "explain", "nofile.png", "--model", "shapes", "--method", "gradient"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip().startswith("xattr: error:") and len(r.stderr.strip().splitlines()) == 1
