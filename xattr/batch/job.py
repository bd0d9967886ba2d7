"""The job description: what a store holds and what a resume must match (model, methods, targets, options)."""
from __future__ import annotations

import functools
import hashlib
import inspect
import numbers
from dataclasses import dataclass

import numpy as np

from ..methods.registry import get_method

#: 2: each chunk's ``done`` record carries the SHA-256 of what the chunk wrote (format 1 had none).
JOB_FORMAT = 2


#: keys of the job description that may change on resume (informational only).
_INFORMATIONAL = ("xattr_version", "model_source")


def _jsonable(value):
    """A canonical JSON form of option values (arrays by hash, callables by qualified name)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value)
        return {"ndarray_sha256": hashlib.sha256(arr.tobytes()).hexdigest(), "shape": list(arr.shape),
                "dtype": arr.dtype.str}
    if isinstance(value, functools.partial):
        return {"partial": _jsonable(value.func), "args": _jsonable(value.args), "keywords": _jsonable(value.keywords)}
    if callable(value) and hasattr(value, "__qualname__"):
        return {"callable": f"{getattr(value, '__module__', '?')}.{value.__qualname__}"}
    text = repr(value)
    # default reprs carry a memory address, which would differ between runs
    return {"type": type(value).__qualname__} if " at 0x" in text else {"repr": text}


def model_fingerprint(model):
    """Identity of a model: SHA-256 over its architecture and every weight, and a readable layer list.

    For a layered model (``model.layers``, e.g. :class:`xattr.nn.Sequential`) the hash covers each
    layer's name, type, ``extra_repr()`` and every attribute (arrays by dtype, shape and bytes), so
    two objects with the same architecture and weights hash equal and any change of one weight or
    one stride changes the hash.  Other models are hashed through their cloudpickle bytes.

    Returns
    -------
    dict with ``sha256``, ``kind`` and (layered models) ``layers``.
    """
    h = hashlib.sha256()
    kind = type(model).__name__
    layers = getattr(model, "layers", None)
    if layers is None:
        import cloudpickle  # a dependency of dask

        h.update(cloudpickle.dumps(model))
        return {"sha256": h.hexdigest(), "kind": kind}
    described = []
    for layer in layers:
        cls = type(layer)
        line = f"{getattr(layer, 'name', '')}: {cls.__module__}.{cls.__qualname__}({layer.extra_repr()})"
        described.append(line)
        h.update(line.encode())
        for key, value in sorted(vars(layer).items()):
            h.update(key.encode())
            if isinstance(value, np.ndarray):
                arr = np.ascontiguousarray(value)
                h.update(f"{arr.dtype.str}{arr.shape}".encode())
                h.update(arr.tobytes())
            else:
                text = repr(value)
                # object reprs with addresses would make the hash differ between runs
                h.update((type(value).__name__ if " at 0x" in text else text).encode())
    return {"sha256": h.hexdigest(), "kind": kind, "layers": described}


@dataclass
class _Method:
    label: str
    name: str
    fn: object
    options: dict
    stochastic: bool
    has_delta: bool
    shape: tuple = ()
    dtype: str = ""

    def describe(self):
        return {"label": self.label, "name": self.name, "options": _jsonable(self.options)}


def _parse_methods(methods):
    """``methods``: names, ``(name, options)`` or ``(label, name, options)`` items."""
    if isinstance(methods, str):
        methods = [methods]
    if not methods:
        raise ValueError("methods must name at least one registered method, got none")
    out, labels = [], set()
    for item in methods:
        if isinstance(item, str):
            label, name, options = item, item, {}
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            (name, options), label = item, item[0]
        elif isinstance(item, (tuple, list)) and len(item) == 3:
            label, name, options = item
        else:
            raise TypeError(f"each method must be a name, (name, options) or (label, name, options), got {item!r}")
        fn = get_method(name)  # ValueError listing the known names
        options = dict(options or {})
        params = inspect.signature(fn).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        for key in options:
            if key in ("rng", "return_delta"):
                raise ValueError(
                    f"option {key!r} of method {name!r} is set by the batch job (rng: per image from the job seed; "
                    f"return_delta: when the method has it); remove it"
                )
            if key in ("model", "x", "target") or (key not in params and not takes_any):
                known = [p for p in params if p not in ("model", "x", "target", "rng", "return_delta")]
                raise ValueError(
                    f"method {name!r} has no option {key!r}; its options are: {', '.join(known) or 'none'}"
                )
        if label in labels:
            raise ValueError(f"method label {label!r} appears twice; give repeated methods distinct labels")
        if "/" in label or not label:
            raise ValueError(f"method label must be a non-empty name without '/', got {label!r}")
        labels.add(label)
        out.append(_Method(label, name, fn, options, "rng" in params, "return_delta" in params))
    return out


def _targets_spec(targets, n):
    """``("predicted"|"int"|"array"|"callable", value)`` and its description."""
    if targets is None or (isinstance(targets, str) and targets == "predicted"):
        return ("predicted", None), "predicted"
    if callable(targets):
        return ("callable", targets), _jsonable(targets)
    if isinstance(targets, (numbers.Integral, np.integer)) and not isinstance(targets, bool):
        return ("int", int(targets)), {"class": int(targets)}
    t = np.asarray(targets)
    if t.dtype.kind not in "iu" or t.shape != (n,):
        raise ValueError(
            f"targets must be None/'predicted', an int, an int array of shape (N,) = ({n},) or a callable, "
            f"got {t.dtype} array of shape {t.shape}"
        )
    return ("array", t.astype(np.int64)), _jsonable(t.astype(np.int64))


def _diff(stored, new):
    keys = sorted(set(stored) | set(new))
    return [k for k in keys if k not in _INFORMATIONAL and stored.get(k) != new.get(k)]
