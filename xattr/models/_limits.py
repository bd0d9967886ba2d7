"""Limits on model files: everything a file declares is checked before anything is allocated.

A model file is untrusted input: an 817-byte architecture file can ask for a ``Conv2D(10000, 10000, 3)``
(3.9 GB of random initial weights) and a 2 MB compressed weights file can inflate to 2 GB.  The loader
(:func:`xattr.models.load_with_info`) therefore reads a model in this order, refusing with a one-line
:class:`~xattr.models.ModelFileError` at the first problem:

1. the architecture file: at most :data:`MAX_JSON_BYTES`, JSON nesting at most :data:`MAX_JSON_DEPTH`
   (checked on the text before parsing: a deeply nested file cannot exhaust the parser's recursion);
2. the document (:func:`check_document`): the ``weights`` entry with its SHA-256 (required unless the
   caller passes ``verify=False``; compared case-insensitively), the ``input`` entry
   (:func:`xattr.models._inputs.validate_input_spec`), and the layer list (at most :data:`MAX_LAYERS`),
   walked generically: each layer type has a *parameter-shape* function (the arrays its configuration
   implies) and a *shape* function (its output for given input shapes).  The walk checks that the
   channels chain (``Conv2D.in_channels`` against what arrives, ``Dense.in_features`` against the
   flattened size) and that a declared input size gives every layer a non-empty output; then the memory
   the model needs, ``8 bytes × (2 × parameters + one image's activations)`` (float64; parameters twice:
   the layer constructor's initial values and the loaded ones), is compared with the memory budget
   (:data:`MEMORY_BUDGET`, or the caller's ``memory_budget``);
3. the weights file (:func:`read_weights`): its size against the budget, its SHA-256 (streamed), then the
   ``.npz`` directory and each array's ``.npy`` header (dtype, shape, byte count) against the shapes the
   architecture implies, and only then the arrays themselves.

Layer specs may carry ``"inputs"`` (names of the layers, or ``"input"``, that feed them; default: the
previous layer), so the same walk serves graph models; a layer type without a shape function ends
the shape walk (its successors' sizes are unknown and only their parameters are bounded).
"""
from __future__ import annotations

import json
import numbers
import os
import re
import zipfile

import numpy as np

from .._conventions import count, pair
from .._files import sha256_of_file
from . import _inputs

__all__ = ["MEMORY_BUDGET", "MAX_JSON_BYTES", "MAX_JSON_DEPTH", "MAX_LAYERS", "read_document", "check_document",
           "read_weights", "PARAM_SHAPES", "OUTPUT_SHAPES", "Plan"]

#: default memory budget of a model (bytes): parameters twice and one image's activations, float64.
MEMORY_BUDGET = 2 << 30
#: largest architecture file read (bytes).
MAX_JSON_BYTES = 8 << 20
#: deepest JSON nesting accepted (a saved model nests 5 levels; ``meta`` may add a few).
MAX_JSON_DEPTH = 32
#: most layers a file may declare.
MAX_LAYERS = 10_000
#: largest integer accepted in a layer configuration (sizes, strides, paddings).
MAX_SIZE = 1 << 31
#: dtypes accepted for stored arrays (converted to float64 by the layers).
WEIGHT_DTYPES = ("f2", "f4", "f8")

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)


def _error(msg):
    from . import ModelFileError  # the package defines it; imported late (this module is imported by it)

    return ModelFileError(msg)


def _budget(memory_budget):
    if memory_budget is None:
        return MEMORY_BUDGET
    if isinstance(memory_budget, bool) or not isinstance(memory_budget, numbers.Real) or not memory_budget > 0:
        raise ValueError(f"memory_budget must be a positive number of bytes, got {memory_budget!r}")
    return memory_budget


def _gib(n):
    if n < 2**20:
        return f"{n} bytes"
    return f"{n / 2**30:.3g} GiB" if n >= 2**30 else f"{n / 2**20:.3g} MiB"


# -- 1. the architecture file ---------------------------------------------------------------------
def json_depth(data):
    """Deepest ``[``/``{`` nesting of a JSON text (bytes), strings skipped; no recursion, no parsing."""
    skeleton = _STRING.sub(b"", data)
    b = np.frombuffer(skeleton, dtype=np.uint8)
    step = (b == ord("[")).astype(np.int64) + (b == ord("{")) - (b == ord("]")) - (b == ord("}"))
    return int(np.cumsum(step).max(initial=0))


def read_document(json_path):
    """Read and parse an architecture file within :data:`MAX_JSON_BYTES` and :data:`MAX_JSON_DEPTH`."""
    size = os.path.getsize(json_path)
    if size > MAX_JSON_BYTES:
        raise _error(f"{json_path!r} is {size} bytes; an architecture file may have at most {MAX_JSON_BYTES}")
    with open(json_path, "rb") as f:
        data = f.read(min(size, MAX_JSON_BYTES) + 1)  # a file that grew since is cut and fails to parse
    depth = json_depth(data)
    if depth > MAX_JSON_DEPTH:
        raise _error(f"{json_path!r} nests JSON {depth} levels deep; at most {MAX_JSON_DEPTH} are accepted")
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise _error(f"{json_path!r} is not a valid xattr model file (not JSON: {exc})".splitlines()[0]) from None


# -- 2. the document: per-layer-type parameter shapes and output shapes ----------------------------------
def _ints(config, names, where):
    """``count`` each named entry (positive int, at most MAX_SIZE)."""
    out = []
    for n in names:
        v = count(config.get(n), f"{where}: {n}")
        if v > MAX_SIZE:
            raise ValueError(f"{where}: {n} = {v} is larger than {MAX_SIZE}")
        out.append(v)
    return out


def _pair(config, name, default, where, minimum=1):
    v = pair(config.get(name, default), f"{where}: {name}")
    if min(v) < minimum or max(v) > MAX_SIZE:
        raise ValueError(f"{where}: {name} must be in [{minimum}, {MAX_SIZE}], got {config.get(name, default)!r}")
    return v


def _bias(config, where):
    b = config.get("bias", True)
    if not isinstance(b, bool):
        raise ValueError(f"{where}: bias must be true or false, got {b!r}")
    return b


def _groups(config, i, o, where):
    g = config.get("groups", 1)
    if isinstance(g, bool) or not isinstance(g, numbers.Integral) or g < 1 or i % g or o % g:
        raise ValueError(f"{where}: groups must be a positive int dividing {i} and {o}, got {g!r}")
    return int(g)


def _conv_params(config, where):
    i, o = _ints(config, ("in_channels", "out_channels"), where)
    kh, kw = _pair(config, "kernel_size", None, where)
    g = _groups(config, i, o, where)
    return {"weight": (o, i // g, kh, kw), **({"bias": (o,)} if _bias(config, where) else {})}


def _dense_params(config, where):
    i, o = _ints(config, ("in_features", "out_features"), where)
    return {"weight": (o, i), **({"bias": (o,)} if _bias(config, where) else {})}


def _bn_params(config, where):
    (c,) = _ints(config, ("num_features",), where)
    eps = config.get("eps", 1e-5)
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"{where}: eps must be a finite positive number, got {eps!r}")
    return {a: (c,) for a in ("weight", "bias", "running_mean", "running_var")}


def _no_params(config, where):
    return {}


#: layer type -> ``f(config, where) -> {array name: shape}`` (every array its configuration implies).
PARAM_SHAPES = {"Conv2D": _conv_params, "Dense": _dense_params, "BatchNorm2D": _bn_params}


def _out_len(size, k, s, d, lo, hi, where):
    if size is None:  # no declared input size: channels are still checked, sizes are not
        return None
    n = (size + lo + hi - d * (k - 1) - 1) // s + 1
    if n < 1:
        raise ValueError(f"{where}: an input of size {size} is smaller than its window {d * (k - 1) + 1}")
    return n


def _image(shapes, where):
    (shape,) = shapes
    if len(shape) != 3:
        raise ValueError(f"{where}: takes images (C, H, W), but receives shape {shape}")
    return shape


def _conv_out(config, shapes, where):
    c, h, w = _image(shapes, where)
    i, o = _ints(config, ("in_channels", "out_channels"), where)
    if c != i:
        raise ValueError(f"{where}: in_channels = {i}, but {c} channel(s) arrive")
    k = _pair(config, "kernel_size", None, where)
    s = _pair(config, "stride", 1, where)
    d = _pair(config, "dilation", 1, where)
    pad = config.get("padding", 0)
    if pad == "valid":
        pads = ((0, 0), (0, 0))
    elif pad == "same":
        if s != (1, 1):
            raise ValueError(f"{where}: padding 'same' needs stride 1, got {s}")
        tot = [dd * (kk - 1) for kk, dd in zip(k, d)]
        pads = tuple((t // 2, t - t // 2) for t in tot)
    elif isinstance(pad, list) and len(pad) == 2 and all(isinstance(p, list) for p in pad):  # ((t, b), (l, r))
        flat = [v for p in pad for v in p]
        if len(flat) != 4 or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0 for v in flat):
            raise ValueError(f"{where}: asymmetric padding is [[top, bottom], [left, right]] of ints >= 0, got {pad!r}")
        pads = ((flat[0], flat[1]), (flat[2], flat[3]))
    else:
        ph, pw = _pair(config, "padding", 0, where, minimum=0)
        pads = ((ph, ph), (pw, pw))
    return (o, _out_len(h, k[0], s[0], d[0], *pads[0], where), _out_len(w, k[1], s[1], d[1], *pads[1], where))


def _pool_out(config, shapes, where):
    c, h, w = _image(shapes, where)
    if config.get("ceil_mode"):  # the overhang rule is the layer's; sizes are checked when it runs
        return (c, None, None)
    k = _pair(config, "kernel_size", None, where)
    s = _pair(config, "stride", k, where) if config.get("stride") is not None else k
    ph, pw = _pair(config, "padding", 0, where, minimum=0)
    return (c, _out_len(h, k[0], s[0], 1, ph, ph, where), _out_len(w, k[1], s[1], 1, pw, pw, where))


def _dense_out(config, shapes, where):
    (shape,) = shapes
    i, o = _ints(config, ("in_features", "out_features"), where)
    if len(shape) != 1:
        raise ValueError(f"{where}: takes vectors, but receives shape {shape} (a Flatten or GlobalAvgPool2D first?)")
    if shape[0] is not None and shape[0] != i:
        raise ValueError(f"{where}: in_features = {i}, but {shape[0]} features arrive")
    return (o,)


def _bn_out(config, shapes, where):
    c = _image(shapes, where)[0]
    (n,) = _ints(config, ("num_features",), where)
    if c != n:
        raise ValueError(f"{where}: num_features = {n}, but {c} channel(s) arrive")
    return shapes[0]


def _same(config, shapes, where):
    (shape,) = shapes
    return shape


def _gap_out(config, shapes, where):
    return (_image(shapes, where)[0],)


def _flatten_out(config, shapes, where):
    (shape,) = shapes
    return (None,) if None in shape else (int(np.prod(shape, dtype=object)),)


def _dropout_out(config, shapes, where):
    p = config.get("p", 0.5)
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p < 1:
        raise ValueError(f"{where}: p must be a number in [0, 1), got {p!r}")
    return _same(config, shapes, where)


def _add_out(config, shapes, where):
    if len(shapes) < 2:
        raise ValueError(f"{where}: adds two or more inputs, got {len(shapes)}")
    known = {s for s in shapes if None not in s}
    if len(known) > 1:
        raise ValueError(f"{where}: adds inputs of one shape, got {sorted(known)}")
    return shapes[0]


def _concat_out(config, shapes, where):
    if len(shapes) < 2:
        raise ValueError(f"{where}: joins two or more inputs, got {len(shapes)}")
    if any(len(s) != len(shapes[0]) for s in shapes) or len({tuple(s[1:]) for s in shapes}) != 1:
        raise ValueError(f"{where}: joins inputs that differ only in channels, got {shapes}")
    c = None if any(s[0] is None for s in shapes) else sum(s[0] for s in shapes)
    return (c,) + tuple(shapes[0][1:])


def _multiply_out(config, shapes, where):
    if len(shapes) != 2:
        raise ValueError(f"{where}: multiplies two inputs, got {len(shapes)}")
    gate = config.get("gate", 1)
    return shapes[1 - gate] if gate in (0, 1) else shapes[0]


#: layer type -> ``f(config, input shapes (list of per-image shapes), where) -> output shape``.
OUTPUT_SHAPES = {
    "Conv2D": _conv_out, "Dense": _dense_out, "MaxPool2D": _pool_out, "AvgPool2D": _pool_out,
    "ReLU": _same, "GlobalAvgPool2D": _gap_out, "Flatten": _flatten_out, "BatchNorm2D": _bn_out,
    "Dropout": _dropout_out, "Add": _add_out, "Concat": _concat_out, "Multiply": _multiply_out,
}


class Plan:
    """What :func:`check_document` found: the arrays the weights file must hold and the memory bound."""

    def __init__(self, arrays, n_params, activations, budget, verify, sha256, nbytes):
        self.arrays = arrays  # {"<layer>.<array>": shape or None (a type without a parameter-shape function)}
        self.n_params, self.activations, self.budget = n_params, activations, budget
        self.verify, self.sha256, self.nbytes = verify, sha256, nbytes

    @property
    def bytes(self):
        """``8 × (2 × parameters + activations)``: the memory the model needs (float64)."""
        return 8 * (2 * self.n_params + self.activations)


def _check_weights_entry(weights, json_path, verify):
    if not isinstance(weights, dict):
        raise _error(f"{json_path!r}: the 'weights' entry must be an object with 'sha256' and 'bytes', "
                     f"got {type(weights).__name__}")
    sha = weights.get("sha256")
    if sha is None:
        if verify:
            raise _error(f"{json_path!r}: the 'weights' entry has no 'sha256'; add the weights file's SHA-256 "
                         "(sha256sum NAME.npz) or load with verify=False to skip the check")
    elif not (isinstance(sha, str) and re.fullmatch(r"[0-9a-fA-F]{64}", sha)):
        raise _error(f"{json_path!r}: weights 'sha256' must be 64 hexadecimal digits, got {sha!r}"[:300])
    nbytes = weights.get("bytes")
    if nbytes is not None and (isinstance(nbytes, bool) or not isinstance(nbytes, numbers.Integral) or nbytes < 0):
        raise _error(f"{json_path!r}: weights 'bytes' must be a non-negative int, got {nbytes!r}")
    return (sha.lower() if isinstance(sha, str) else None), nbytes


def check_document(doc, json_path, formats, verify=True, memory_budget=None):
    """Validate a parsed architecture document before anything is built; returns a :class:`Plan`.

    ``formats``: the known layer types (``xattr.models.LAYER_FORMATS``: type -> (class, config, arrays)).
    Raises ``ModelFileError`` naming the file, the layer and the problem; the memory error names the
    bytes needed and the budget.
    """
    budget = _budget(memory_budget)
    sha, nbytes = _check_weights_entry(doc.get("weights"), json_path, verify)
    try:
        spec = _inputs.validate_input_spec(doc.get("input"))
    except ValueError as exc:
        raise _error(f"{json_path!r}: {exc}") from None
    classes = doc.get("classes")
    if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise _error(f"{json_path!r}: 'classes' must be null or a list of names")
    if not isinstance(doc.get("meta", {}), (dict, type(None))):
        raise _error(f"{json_path!r}: 'meta' must be an object")
    layers = doc.get("layers")
    if not isinstance(layers, list) or not layers:
        raise _error(f"{json_path!r}: 'layers' must be a non-empty list of layer entries")
    if len(layers) > MAX_LAYERS:
        raise _error(f"{json_path!r} declares {len(layers)} layers; at most {MAX_LAYERS} are accepted")
    h, w = spec.get("height"), spec.get("width")
    shapes = {"input": (spec["channels"], h, w)}  # h, w None: sizes unknown, channels still chained
    previous, arrays, n_params, activations = "input", {}, 0, (spec["channels"] * h * w if h and w else 0)
    for k, entry in enumerate(layers):
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("name"), str)
            or not isinstance(entry.get("type"), str)
        ):
            raise _error(f"{json_path!r}: layer entry {k} must be an object with a string 'name' and 'type'")
        name, tname = entry["name"], entry["type"]
        where = f"layer {name!r} ({tname})"
        if not name or name in shapes:
            raise _error(f"{json_path!r}: layer {k} has an empty or repeated name {name!r}")
        if tname not in formats:
            raise _error(f"{json_path!r}: layer {name!r} has unknown type {tname!r} (known: {', '.join(formats)})")
        config, listed = entry.get("config", {}), entry.get("arrays", [])
        if not isinstance(config, dict):
            raise _error(f"{json_path!r}: {where}: 'config' must be an object")
        if not (isinstance(listed, list) and all(isinstance(a, str) for a in listed)):
            raise _error(f"{json_path!r}: {where}: 'arrays' must be a list of names")
        unknown = sorted(set(listed) - set(formats[tname][2]))
        if unknown:
            raise _error(f"{json_path!r}: {where} has no arrays {unknown} (its arrays: {list(formats[tname][2])})")
        inputs = entry.get("inputs", [previous])
        if not (isinstance(inputs, list) and inputs and all(isinstance(i, str) and i in shapes for i in inputs)):
            raise _error(f"{json_path!r}: {where}: 'inputs' must name earlier layers or 'input', got {inputs!r}"[:300])
        try:
            implied = PARAM_SHAPES.get(tname, _no_params if not formats[tname][2] else None)
            params = implied(config, where) if implied is not None else None
            in_shapes = [shapes[i] for i in inputs]
            out = None
            if tname in OUTPUT_SHAPES and all(s is not None for s in in_shapes):
                out = OUTPUT_SHAPES[tname](config, in_shapes, where)
        except (TypeError, ValueError) as exc:
            raise _error(f"{json_path!r}: {exc}") from None
        for a in listed:
            arrays[f"{name}.{a}"] = None if params is None else params.get(a)
        if params is not None:
            missing = sorted(set(params) - set(listed))
            if missing:
                raise _error(f"{json_path!r}: {where} needs arrays {missing} that are not listed")
            n_params += sum(int(np.prod(s, dtype=object)) for s in params.values())
        if out is not None and None not in out:
            activations += int(np.prod(out, dtype=object))
        shapes[name], previous = out, name
        need = 8 * (2 * n_params + activations)
        if need > budget:  # as soon as it is exceeded: the walk itself stays cheap
            raise _error(
                f"{json_path!r}: the model needs at least {_gib(need)} (float64 parameters twice and one "
                f"{h}x{w} image's activations, up to {where}), more than the memory budget {_gib(budget)}; "
                "pass memory_budget= to load it anyway"
            )
    return Plan(arrays, n_params, activations, budget, verify, sha, nbytes)


# -- 3. the weights file ------------------------------------------------------------------------------
def read_weights(npz_path, json_path, plan):
    """The arrays of a weights file, read only after its size, checksum and every header fit the plan."""
    if not os.path.isfile(npz_path):
        raise _error(f"weights file {npz_path!r} not found (a saved model is NAME.json + NAME.npz)")
    size = os.path.getsize(npz_path)
    expected = sum(8 * int(np.prod(s, dtype=object)) for s in plan.arrays.values() if s is not None)
    limit = max(plan.budget, 0)
    if size > limit:
        raise _error(f"weights file {npz_path!r} is {_gib(size)}, more than the memory budget {_gib(limit)}")
    if plan.sha256 is not None:
        digest = sha256_of_file(npz_path)
        if digest != plan.sha256:
            hint = (f" (it has {size} bytes, {plan.nbytes} were written: truncated?)"
                    if plan.nbytes is not None and plan.nbytes != size else "")
            raise _error(f"weights file {npz_path!r} is corrupt or truncated: its SHA-256 does not match the one in "
                         f"{json_path!r}{hint}")
    out = {}
    try:
        with zipfile.ZipFile(npz_path) as z:
            members = z.infolist()
            if len(members) > 4 * len(plan.arrays) + 16:
                raise _error(f"weights file {npz_path!r} holds {len(members)} entries; {json_path!r} declares "
                             f"{len(plan.arrays)} arrays")
            total = 0
            for m in members:
                if not m.filename.endswith(".npy"):
                    raise _error(f"weights file {npz_path!r}: entry {m.filename!r} is not an .npy array")
                key = m.filename[:-4]
                total += m.file_size
                known = all(v is not None for v in plan.arrays.values())
                if total > plan.budget or (known and total > expected + 4096 * len(members) + (1 << 20)):
                    raise _error(f"weights file {npz_path!r} declares {_gib(total)} of array data (at entry {key!r}); "
                                 f"{json_path!r} implies {_gib(expected)}")
                with z.open(m) as fp:
                    out[key] = _read_npy(fp, m, key, npz_path, json_path, plan.arrays.get(key, ()))
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        OSError,
        ValueError,
        KeyError,
        NotImplementedError,
    ) as exc:
        if type(exc).__name__ == "ModelFileError":
            raise
        raise _error(f"weights file {npz_path!r} is corrupt or truncated: {exc}".splitlines()[0]) from None
    return out


def _read_npy(fp, member, key, npz_path, json_path, want):
    """One ``.npy`` member: header checked against ``want`` (a shape; ``None``: any; ``()``: not declared)."""
    fmt = np.lib.format
    version = fmt.read_magic(fp)
    if version == (1, 0):
        shape, fortran, dtype = fmt.read_array_header_1_0(fp)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = fmt.read_array_header_2_0(fp)
    else:  # pragma: no cover - numpy refuses unknown versions in read_magic
        raise ValueError(f"unsupported .npy version {version}")
    if dtype.kind != "f" or dtype.str[1:] not in WEIGHT_DTYPES:
        raise _error(f"weights file {npz_path!r}: array {key!r} has dtype {dtype}; weights are float16/32/64")
    if want == ():
        raise _error(
            f"weights file {npz_path!r} does not match {json_path!r}: arrays [{key!r}] belong to no declared layer"
        )
    if want is not None and tuple(shape) != tuple(want):
        raise _error(f"weights file {npz_path!r} does not match {json_path!r}: {key} has shape {tuple(shape)}, "
                     f"the architecture needs {tuple(want)}")
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    header = fp.tell()
    if member.file_size != header + nbytes:
        raise _error(f"weights file {npz_path!r} is corrupt or truncated: array {key!r} holds "
                     f"{member.file_size - header} bytes, its header says {nbytes}")
    data = fp.read(nbytes)
    if len(data) != nbytes:
        raise _error(f"weights file {npz_path!r} is corrupt or truncated: array {key!r} ends early")
    arr = np.frombuffer(data, dtype=dtype)
    return (arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)).copy()
