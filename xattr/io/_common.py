"""Shared helpers of the importers."""
from __future__ import annotations

import numpy as np


class ConversionError(ValueError):
    """A model (layer, operator, attribute or graph shape) that xattr cannot represent exactly."""


def f64(a):
    """A float64 copy of a weight array."""
    return np.array(a, dtype=np.float64, copy=True)


def require(module_name, extra):
    """Import an optional dependency or raise ``ImportError`` naming the extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(
            f"this function needs the optional package {module_name!r}: pip install 'xattr-ref[{extra}]'"
        ) from exc
