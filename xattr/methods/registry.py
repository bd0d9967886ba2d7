"""Methods by name, for the command line, batch jobs and conformance runs.

Each method family registers its public functions here (one line each) so that
``get_method("guided_backprop")`` works and an unknown name gets a clear error.
"""
from __future__ import annotations

from collections import OrderedDict

_METHODS = OrderedDict()


def register_method(name, fn, family):
    """Register ``fn(model, x, target, **options) -> ndarray`` under ``name`` (``family``: its module)."""
    if name in _METHODS and _METHODS[name][0] is not fn:
        raise ValueError(f"method name {name!r} is already registered")
    _METHODS[name] = (fn, family)
    return fn


def get_method(name):
    """The function registered as ``name``; ``ValueError`` listing the known names otherwise."""
    try:
        return _METHODS[name][0]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(_METHODS)}") from None


def available_methods(family=None):
    """Names of the registered methods (of one ``family`` if given), in registration order."""
    return [n for n, (_, fam) in _METHODS.items() if family is None or fam == family]
