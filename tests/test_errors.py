"""Every exception xattr defines is an XattrError and stays the built-in type callers already catch."""
import importlib
import inspect
import pkgutil

import pytest

import xattr
from xattr import XattrError


def _modules():
    for info in pkgutil.walk_packages(xattr.__path__, "xattr."):
        if info.name in ("xattr.__main__", "xattr.conformance.__main__"):
            continue
        yield importlib.import_module(info.name)


def test_every_exception_class_is_an_xattr_error():
    found = {}
    for mod in _modules():
        for name, obj in vars(mod).items():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == mod.__name__:
                found[f"{mod.__name__}.{name}"] = obj
    assert len(found) >= 9
    bad = [n for n, cls in found.items() if not issubclass(cls, XattrError)]
    assert not bad, f"exception classes that are not XattrError: {bad}"


@pytest.mark.parametrize("cls, builtin", [
    ("xattr.nn.RuleNotDefined", NotImplementedError), ("xattr.nn.GraphError", ValueError),
    ("xattr.models.ModelFileError", ValueError), ("xattr.io.ConversionError", ValueError),
])
def test_errors_keep_their_builtin_type(cls, builtin):
    mod, name = cls.rsplit(".", 1)
    klass = getattr(importlib.import_module(mod), name)
    assert issubclass(klass, XattrError) and issubclass(klass, builtin)
    with pytest.raises(XattrError):
        raise klass("x")
