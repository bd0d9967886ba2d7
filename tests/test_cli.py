"""The command line: the demo writes a PNG; bad input exits non-zero with one line."""
import numpy as np
from PIL import Image

from xattr.cli import main


def test_demo_writes_a_png(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--size", "16"]) == 0
    out = capsys.readouterr().out
    assert "guided_backprop" in out and "wrote" in out
    img = np.asarray(Image.open(tmp_path / "demo.png"))
    assert img.ndim == 3 and img.shape[2] == 3 and img.std() > 0


def test_methods_lists_the_rule_table(capsys):
    assert main(["methods"]) == 0
    assert "| ReLU |" in capsys.readouterr().out


def test_bad_size_is_one_line_and_nonzero(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--size", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("xattr: error:") and "\n" not in err
