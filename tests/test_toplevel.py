"""``import xattr`` gives access to every subpackage (``xattr.io.from_torch``), importing each only when used.

Oracle: a fresh interpreter per case (``sys.modules`` of this test process already holds most of xattr).
"""
import subprocess
import sys

import pytest

import xattr

SUBPACKAGES = ["batch", "cli", "conformance", "data", "evaluation", "genomics", "io", "models", "testing", "text",
               "viz"]


def _fresh(code):
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_subpackages_are_reachable_after_import_xattr_alone():
    code = ("import xattr; print(xattr.io.from_torch.__module__, xattr.evaluation.deletion_curve.__name__, "
            "xattr.testing.check_completeness.__name__, xattr.models.load.__name__, xattr.viz.overlay.__name__)")
    assert _fresh(code).split() == ["xattr.io._torch", "deletion_curve", "check_completeness", "load", "overlay"]


def test_import_xattr_does_not_import_the_subpackages_until_used():
    code = ("import sys, xattr; before = {m for m in sys.modules if m.startswith('xattr.')}; xattr.evaluation; "
            "print(sorted(m.split('.')[1] for m in before), 'xattr.evaluation' in sys.modules)")
    out = _fresh(code)
    loaded, used = out.rsplit(" ", 1)
    assert used == "True"
    for name in SUBPACKAGES:
        assert f"'{name}'" not in loaded, f"import xattr imported xattr.{name}"


def test_dir_lists_the_subpackages_and_unknown_names_raise_attribute_error():
    assert set(SUBPACKAGES) <= set(dir(xattr))
    assert xattr._LAZY_SUBMODULES == tuple(SUBPACKAGES)
    with pytest.raises(AttributeError, match="module 'xattr' has no attribute 'nonsense'"):
        xattr.nonsense  # noqa: B018
    assert not hasattr(xattr, "_private_thing")

