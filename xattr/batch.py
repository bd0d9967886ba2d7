"""Dataset-scale attribution on Dask: many images, many methods, results in a Zarr store.

:func:`attribute_dataset` splits a set of images into chunks; one Dask task per chunk runs
the chosen methods (looked up by name in :mod:`xattr.methods.registry`) and writes the maps
into a chunked on-disk Zarr store, so the results may be larger than memory.  Dask does the
scheduling: threads or processes on this machine, or a ``distributed`` cluster given by its
scheduler address.  xattr adds no scheduler, queue or pool of its own.

Store layout (``out``, a Zarr v3 group)::

    attrs["xattr_batch"]       the job description (model hash, methods and options, seed, ...)
    maps/<label>               (N, ...) one map per image and method, chunked like the job
    target                     (N,) int64: class explained (-1 for a callable target)
    score                      (N,) float: the explained value (target score)
    valid                      (N,) bool: False for images that could not be read
    stats/<label>/map_sum      (N,) sum of each map
    stats/<label>/completeness_gap   (N,) for methods that return one (``return_delta``)
    stats/<label>/<metric>     (N,) user metrics
    done                       (n_chunks,) str: the chunk's JSON record, "" until it is finished;
                               its "sha256" covers every array slice the chunk wrote

and ``<out without .zarr>.summary.json`` beside it: per-method summaries over the verified chunks.

Guarantees
----------
* **Resumable.**  A chunk's maps are written first (each Zarr chunk file is written to a
  temporary name and renamed, so it is atomic); its ``done`` record last.  A chunk counts
  as finished only when its record exists, and a finished chunk is never recomputed: a
  re-run (``resume=True``) skips it, and a task that Dask re-runs after a worker died
  returns the stored record.  Should Dask run one chunk twice at once (a worker presumed
  dead that was not), both write the same bytes.
* **Verified.**  A chunk's record carries the SHA-256 of what it wrote (keys sorted; each
  key, dtype, shape and bytes of its slice of every array).  Resuming recomputes it from the
  store for every finished chunk, and recomputes the chunks whose files are missing, truncated,
  swapped or altered, or whose record is garbled or belongs to another chunk (the result's
  ``summary["chunks"]["recomputed_damaged"]`` says which and why).  The summary is made from
  the chunks that verify when it is written, and counts only their images (``n_verified``).
  :func:`verify_store` (``xattr batch --verify STORE``) checks a store without changing it.
* **Same job or refusal.**  Resuming compares the stored job description with the new one
  and refuses any difference (:class:`JobMismatchError`, naming the fields).  The input's
  identity is its content: the SHA-256 of every file (a folder) or of the values (an array),
  so an edit that keeps names and sizes is a different job.  Settings (scheduler, workers,
  methods and their options, by a probe on the first image) are checked before the store is
  created.
* **Determinism.**  Images are processed in micro-batches of ``batch_size`` aligned on
  absolute image indices, so every method sees exactly the same arrays whatever the
  chunking, scheduler or worker count, and the maps are the same bits as the serial loop
  ``for s in range(0, N, batch_size): method(model, x[s:s+batch_size], t[s:s+batch_size])``
  (on one machine; BLAS builds on other CPUs may round differently).  Stochastic methods
  (those with an ``rng`` parameter) are called one image at a time with the generator
  ``default_rng(SeedSequence(seed, spawn_key=(i,)))`` for image ``i`` (the ``i``-th child
  of ``SeedSequence(seed)``); two stochastic methods therefore share their random stream per
  image (common random numbers).

Dependencies: the optional extra ``batch`` (``pip install 'xattr-ref[batch]'``: dask,
distributed, zarr), imported only when a job runs.
"""
from __future__ import annotations
from ._errors import XattrError

import functools
import hashlib
import inspect
import json
import math
import os
import numbers
from dataclasses import dataclass, field

import numpy as np

from . import _targets
from ._conventions import as_float_array

__all__ = [
    "attribute_dataset", "BatchResult", "BatchError", "JobMismatchError", "ImageReadError",
    "model_fingerprint", "read_maps", "load_model", "model_input", "add_batch_command", "IMAGE_EXTENSIONS",
    "verify_store",
]

#: 2: each chunk's ``done`` record carries the SHA-256 of what the chunk wrote (format 1 had none).
JOB_FORMAT = 2
#: quantiles reported in the summaries.
QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
#: file name endings read from an image folder (other files are ignored).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm", ".webp")
#: micro-batch size when none is given (reduced to gcd(chunk, 16) when chunk is not a multiple).
DEFAULT_BATCH_SIZE = 16
#: keys of the job description that may change on resume (informational only).
_INFORMATIONAL = ("xattr_version", "model_source")


class BatchError(XattrError, RuntimeError):
    """A batch job cannot start or continue (store, settings or input problems)."""


class JobMismatchError(BatchError):
    """Resuming a store with a job description different from the stored one."""


class ImageReadError(BatchError):
    """An image file of the input folder cannot be read (``path`` and ``index`` say which)."""

    def __init__(self, message, path=None, index=None):
        super().__init__(message)
        self.path, self.index = path, index

    def __reduce__(self):  # keep path/index through pickling (process and cluster workers)
        return (type(self), (self.args[0], self.path, self.index))


def _require_extra():
    """Import dask and zarr, or explain how to get them."""
    try:
        import dask  # noqa: F401
        import zarr  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"xattr.batch needs the optional extra 'batch' (dask, distributed, zarr): "
            f"pip install 'xattr-ref[batch]'; missing module: {exc.name}"
        ) from exc


# -- job description -------------------------------------------------------------------------
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
    from .methods.registry import get_method

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
                raise ValueError(f"method {name!r} has no option {key!r}; its options are: {', '.join(known) or 'none'}")
        if label in labels:
            raise ValueError(f"method label {label!r} appears twice; give repeated methods distinct labels")
        if "/" in label or not label:
            raise ValueError(f"method label must be a non-empty name without '/', got {label!r}")
        labels.add(label)
        out.append(_Method(label, name, fn, options, "rng" in params, "return_delta" in params))
    return out


# -- inputs ----------------------------------------------------------------------------------
@dataclass
class _Source:
    kind: str  # "array" | "dask" | "folder"
    n: int
    shape: tuple  # (C, H, W)
    dtype: str
    data: object = None  # ndarray / dask array
    files: list = field(default_factory=list)
    mode: str = ""
    resize: bool = False
    background: object = None

    def chunk_input(self, start, stop):
        if self.kind == "folder":
            return self.files[start:stop]
        return self.data[start:stop]

    def describe(self):
        """The job's view of its input; ``id`` is a content hash (file bytes; array values) so that an
        edit that keeps names and sizes still changes the job (dask arrays: their graph token)."""
        import dask.base

        if self.kind == "folder":
            ident = hashlib.sha256(
                "\n".join(f"{os.path.basename(f)} {_file_digest(f)}" for f in self.files).encode()
            ).hexdigest()
        elif self.kind == "array":
            ident = _array_digest(self.data)
        else:
            ident = dask.base.tokenize(self.data)
        out = {"kind": self.kind, "n": self.n, "shape": list(self.shape), "dtype": self.dtype, "id": ident}
        if self.kind == "folder":
            out.update(mode=self.mode, resize=self.resize, background=_jsonable(self.background))
        return out


def _folder_files(folder):
    names = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
    if not names:
        raise BatchError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in folder {folder!r}")
    return [os.path.join(folder, f) for f in names]


def _read_image(path, mode, hw, resize=False, background=None):
    """One image file as ``(C, H, W)`` float64 in [0, 1]; ``ImageReadError`` naming the file otherwise.

    Read by :func:`xattr.io.images.read_image` (the reader of every command: modes, 16-bit and float
    files, alpha on ``background``, EXIF rotation, channels to ``mode``).  ``resize``: bring other sizes
    to ``hw`` (bilinear) instead of refusing them.
    """
    from .io.images import WHITE, read_image

    try:
        pic = read_image(path, channels=1 if mode == "L" else 3, size=tuple(hw) if resize else None,
                         background=WHITE if background is None else background)
        if pic.pixels.shape[1:] != tuple(hw):
            h, w = pic.pixels.shape[1:]
            raise ValueError(f"size {h}x{w} (HxW), expected {hw[0]}x{hw[1]} like the first image")
    except Exception as exc:  # ImageFileError (a ValueError) and anything Pillow lets through
        msg = str(exc).split(": ", 1)[-1] if str(exc).startswith("'") else str(exc)
        raise ImageReadError(f"cannot read image {os.path.basename(path)!r}: {type(exc).__name__}: {msg}", path) from None
    return pic.pixels


def _file_digest(path):
    """SHA-256 of a file's content (1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _array_digest(arr):
    """SHA-256 of an array's dtype, shape and values (in blocks of rows: memory-mapped files are not copied whole)."""
    h = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode())
    rows = max(1, (64 << 20) // max(1, arr[:1].nbytes))
    for s in range(0, arr.shape[0], rows):
        h.update(np.ascontiguousarray(arr[s:s + rows]).tobytes())
    return h.hexdigest()


def _make_source(images, image_mode=None, image_size=None, background=None):
    if not isinstance(images, (str, os.PathLike)) and (image_mode is not None or image_size is not None
                                                         or background is not None):
        raise ValueError("image_mode, image_size and image_background apply to a folder of image files only")
    if image_mode not in (None, "L", "RGB"):
        raise ValueError(f"image_mode must be None, 'L' or 'RGB', got {image_mode!r}")
    if background is not None:
        from .io.images import _background

        _background(background, 1 if image_mode == "L" else 3)  # ValueError now, not in every task
    if isinstance(images, (str, os.PathLike)):
        from .io.images import ImageFileError, probe_image

        folder = os.fspath(images)
        if not os.path.isdir(folder):
            raise BatchError(f"images must be an array or a folder of image files; {folder!r} is not a folder")
        files = _folder_files(folder)
        if image_size is not None:
            hw = tuple(image_size) if isinstance(image_size, (tuple, list)) else (image_size,)
            if len(hw) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 for v in hw):
                raise ValueError(f"image_size must be (height, width) of positive ints, got {image_size!r}")
            hw = tuple(int(v) for v in hw)
        if image_mode is not None and image_size is not None:
            c = 1 if image_mode == "L" else 3
            return _Source("folder", len(files), (c,) + hw, "float64", files=files, mode=image_mode, resize=True,
                           background=background)
        first = None
        for f in files:  # the first readable file fixes mode and size; unreadable ones are handled per chunk
            try:
                c, fhw = probe_image(f)
            except ImageFileError:
                continue
            first = ("L" if c == 1 else "RGB", fhw)
            break
        if first is None:
            raise BatchError(f"none of the {len(files)} image files in {folder!r} can be read")
        mode, hw = (image_mode or first[0]), (hw if image_size is not None else first[1])
        return _Source("folder", len(files), ((1 if mode == "L" else 3),) + hw, "float64", files=files, mode=mode,
                       resize=image_size is not None, background=background)
    if hasattr(images, "dask") and hasattr(images, "chunks"):
        if images.ndim != 4:
            raise ValueError(f"images must have rank 4 (N, C, H, W), got shape {images.shape}")
        dtype = np.dtype(images.dtype)
        if dtype.kind in "iub":
            images, dtype = images.astype(np.float64), np.dtype(np.float64)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"images must have dtype float32 or float64 (integers are promoted), got {dtype}")
        return _Source("dask", int(images.shape[0]), tuple(int(s) for s in images.shape[1:]), dtype.name, data=images)
    arr = as_float_array(images, "images", ndim=4, allow_nonfinite=True)  # finiteness checked per chunk
    if arr.shape[0] == 0:
        raise ValueError(f"images must hold at least one image, got shape {arr.shape}")
    return _Source("array", arr.shape[0], arr.shape[1:], arr.dtype.name, data=arr)


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


# -- the chunk task --------------------------------------------------------------------------
@dataclass
class _Plan:
    """Everything a chunk task needs besides the model and its slice of images (small, picklable)."""

    store: str
    n: int
    chunk: int
    batch_size: int
    methods: list
    seed: int
    target_kind: str
    target_value: object
    metrics: list
    on_error: str
    source_kind: str
    mode: str
    hw: tuple
    dtype: str
    transform: object = None
    resize: bool = False
    background: object = None

    def bounds(self, index):
        return index * self.chunk, min(self.n, (index + 1) * self.chunk)


def _load_chunk(plan, images, start):
    """``(x, ok, bad)``: the chunk's images, which could be read, and the reports of the others."""
    if plan.source_kind != "folder":
        x = as_float_array(np.asarray(images), "images", ndim=4, allow_nonfinite=True)
        return x, np.ones(x.shape[0], bool), []
    x = np.zeros((len(images),) + (1 if plan.mode == "L" else 3,) + tuple(plan.hw))
    ok, bad = np.ones(len(images), bool), []
    for j, path in enumerate(images):
        try:
            x[j] = _read_image(path, plan.mode, plan.hw, plan.resize, plan.background)
        except ImageReadError as exc:
            if plan.on_error == "stop":
                raise ImageReadError(f"image {start + j}: {exc}", path, start + j) from None
            ok[j] = False
            bad.append({"index": start + j, "file": os.path.basename(path), "error": str(exc)})
    return x, ok, bad


def _apply_transform(transform, x):
    """``transform(x)`` checked: a float batch with as many images (the model's input)."""
    if transform is None:
        return x
    y = as_float_array(transform(x), "transform(images)", ndim=4, allow_nonfinite=True)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"transform must keep the number of images: {x.shape[0]} in, {y.shape[0]} out")
    return y


def _rows_target(kind, value, tslice, scores, rows):
    """The target for the rows of a micro-batch, as given to the methods."""
    if kind == "predicted":
        return scores.argmax(axis=1).astype(np.intp)
    if kind == "int":
        return value
    if kind == "array":
        return tslice[rows].astype(np.intp)
    return value


def _call_method(spec, model, xb, target, index, seed):
    """``(maps, gaps or None)`` of one method on one micro-batch (images ``index``)."""
    kwargs = dict(spec.options)
    if spec.has_delta:
        kwargs["return_delta"] = True

    def one(x, t, **extra):
        res = spec.fn(model, x, t, **kwargs, **extra)
        a, gap = (res if spec.has_delta else (res, None))
        a = np.asarray(a)
        if a.ndim == 0 or a.shape[0] != x.shape[0]:
            raise ValueError(f"method {spec.name!r} returned shape {a.shape} for {x.shape[0]} image(s)")
        if gap is not None:
            gap = np.broadcast_to(np.asarray(gap, dtype=np.float64), (x.shape[0],))
        return a, gap

    if not spec.stochastic:
        return one(xb, target)
    parts, gaps = [], []
    for j, i in enumerate(index):  # one generator per image: results independent of the chunking
        t = target[j : j + 1] if isinstance(target, np.ndarray) else target
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(int(i),)))
        a, gap = one(xb[j : j + 1], t, rng=rng)
        parts.append(a)
        gaps.append(gap)
    return np.concatenate(parts), (None if gaps[0] is None else np.concatenate(gaps))


def _chunk_task(plan, model, index, images, tslice):
    """Compute and store one chunk; return its record.  Idempotent: a finished chunk is not recomputed."""
    import zarr

    root = zarr.open_group(plan.store, mode="r+")
    previous = str(root["done"][index])
    if previous:  # finished by an earlier attempt (Dask retry after a worker died, or an earlier run)
        return {**json.loads(previous), "reused": True}
    start, stop = plan.bounds(index)
    m = stop - start
    x, ok, bad = _load_chunk(plan, images, start)
    x = _apply_transform(plan.transform, x)
    maps = {s.label: np.full((m,) + tuple(s.shape), np.nan, dtype=s.dtype) for s in plan.methods}
    stats = {s.label: {"map_sum": np.full(m, np.nan)} for s in plan.methods}
    for s in plan.methods:
        if s.has_delta:
            stats[s.label]["completeness_gap"] = np.full(m, np.nan)
        for name, _ in plan.metrics:
            stats[s.label][name] = np.full(m, np.nan)
    tgt, score = np.full(m, -1, np.int64), np.full(m, np.nan)
    evaluations = 0
    for b0 in range(0, m, plan.batch_size):  # start is a multiple of batch_size: micro-batches are aligned
        rows = b0 + np.flatnonzero(ok[b0 : b0 + plan.batch_size])
        if rows.size == 0:
            continue
        xb = x[rows]
        scores = np.asarray(model.forward(xb))
        target = _rows_target(plan.target_kind, plan.target_value, tslice, scores, rows)
        if not callable(target):
            tgt[rows] = target
        score[rows] = _targets.selected(target, scores)
        for s in plan.methods:
            a, gap = _call_method(s, model, xb, target, start + rows, plan.seed)
            evaluations += rows.size
            if a.shape[1:] != tuple(s.shape):
                raise ValueError(f"method {s.label!r} returned maps of shape {a.shape[1:]}, expected {tuple(s.shape)}")
            maps[s.label][rows] = a
            stats[s.label]["map_sum"][rows] = a.reshape(rows.size, -1).sum(axis=1)
            if gap is not None:
                stats[s.label]["completeness_gap"][rows] = gap
            for name, fn in plan.metrics:
                stats[s.label][name][rows] = np.broadcast_to(np.asarray(fn(model, xb, a, target), float), (rows.size,))
    written = {"target": tgt, "score": score, "valid": ok}
    for s in plan.methods:
        written[f"maps/{s.label}"] = maps[s.label]
        for name, v in stats[s.label].items():
            written[f"stats/{s.label}/{name}"] = v
    for key, v in written.items():
        root[key][start:stop] = v
    record = {"chunk": index, "start": start, "stop": stop, "n_valid": int(ok.sum()), "bad": bad,
              "evaluations": evaluations, "pid": os.getpid(), "sha256": _chunk_digest(written)}
    root["done"][index] = json.dumps(record)  # last: only now does the chunk count as finished
    return {**record, "reused": False}


# -- integrity -------------------------------------------------------------------------------
def _chunk_digest(arrays):
    """SHA-256 over a chunk's slices of every stored array: keys sorted, each key, dtype, shape and bytes."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _store_keys(root, description):
    """The arrays a chunk writes, as the store holds them (the job's methods, their stats, target/score/valid)."""
    keys = ["target", "score", "valid"]
    for m in description["methods"]:
        keys.append(f"maps/{m['label']}")
        keys += [f"stats/{m['label']}/{name}" for name in sorted(root[f"stats/{m['label']}"].array_keys())]
    return keys


def _read_record(root, index):
    """``(record dict or None, problem or None)`` of chunk ``index``'s ``done`` entry."""
    try:
        text = str(root["done"][index])
    except Exception as exc:  # the record's own Zarr chunk is damaged
        return None, f"its done record cannot be read ({type(exc).__name__})"
    if not text:
        return None, None
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        return None, "its done record is not JSON (corrupted)"
    if not isinstance(record, dict) or not isinstance(record.get("sha256"), str):
        return None, "its done record has no checksum"
    if record.get("chunk") != index:
        return None, f"its done record belongs to chunk {record.get('chunk')!r} (swapped records)"
    return record, None


def _verify_chunk(root, keys, index, bounds):
    """``(record or None, problem or None, stats)``: recompute chunk ``index``'s digest from the store.

    ``problem`` None means verified; ``stats`` then holds its ``valid`` and ``stats/...`` slices (for the
    summary).  A chunk that was never finished has record None and problem None.
    """
    record, problem = _read_record(root, index)
    if record is None:
        return None, problem, None
    start, stop = bounds
    if (record.get("start"), record.get("stop")) != (start, stop):
        return None, f"its done record covers images {record.get('start')}..{record.get('stop')}, not {start}..{stop}", None
    data = {}
    for key in keys:
        try:
            data[key] = root[key][start:stop]
        except Exception as exc:  # a truncated or garbled Zarr chunk file does not decode
            return None, f"{key} cannot be read ({type(exc).__name__}: {str(exc)[:80]})".replace("\n", " "), None
    if _chunk_digest(data) != record["sha256"].lower():
        return None, "its data do not match the checksum of what was written (missing, swapped or altered chunk files)", None
    return record, None, {k: v for k, v in data.items() if not k.startswith("maps/")}


def verify_store(out):
    """Recompute every finished chunk's checksum; returns ``{"chunks", "verified", "damaged", "unfinished",
    "images_verified", "description"}`` (``damaged``: ``{chunk: reason}``).  Read-only.

    Raises :class:`BatchError` when ``out`` is not a batch store of this format.
    """
    _require_extra()
    import zarr

    out = os.fspath(out)
    try:
        root = zarr.open_group(out, mode="r")
        description = dict(root.attrs)["xattr_batch"]
        n_chunks = int(root["done"].shape[0])
    except Exception as exc:
        raise BatchError(f"{out!r} is not an xattr batch store ({type(exc).__name__}: {exc})".splitlines()[0]) from None
    _check_format(out, description)
    keys = _store_keys(root, description)
    n, chunk = description["images"]["n"], description["chunk"]
    verified, damaged, unfinished, images = [], {}, [], 0
    for i in range(n_chunks):
        bounds = (i * chunk, min(n, (i + 1) * chunk))
        record, problem, _ = _verify_chunk(root, keys, i, bounds)
        if problem:
            damaged[i] = problem
        elif record is None:
            unfinished.append(i)
        else:
            verified.append(i)
            images += bounds[1] - bounds[0]
    return {"chunks": n_chunks, "verified": verified, "damaged": damaged, "unfinished": unfinished,
            "images_verified": images, "description": description}


def _check_format(out, stored):
    if not isinstance(stored, dict) or stored.get("format") != JOB_FORMAT:
        found = stored.get("format") if isinstance(stored, dict) else None
        raise JobMismatchError(
            f"{out!r} is a batch store of format {found!r}; this xattr writes format {JOB_FORMAT} (chunk checksums): "
            "write to a new store"
        )


# -- store -----------------------------------------------------------------------------------
def _summary_path(out):
    base = out[:-5] if out.endswith(".zarr") else out
    return base.rstrip("/\\") + ".summary.json"


def _check_writable(out):
    parent = os.path.dirname(os.path.abspath(out)) or "."
    probe = parent
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK):
        raise BatchError(f"the store path {out!r} is not writable ({probe!r} is not a writable folder)")


def _diff(stored, new):
    keys = sorted(set(stored) | set(new))
    return [k for k in keys if k not in _INFORMATIONAL and stored.get(k) != new.get(k)]


def _open_existing(out, description, resume):
    import zarr

    if not resume:
        raise BatchError(f"the store {out!r} already exists; pass resume=True (--resume) to continue that job, "
                         f"or choose another output path")
    try:
        root = zarr.open_group(out, mode="r+")
        stored = dict(root.attrs)["xattr_batch"]
    except Exception as exc:
        raise BatchError(f"{out!r} exists but is not an xattr batch store ({type(exc).__name__}: {exc})") from None
    _check_format(out, stored)
    changed = _diff(stored, description)
    if changed:
        lines = [f"  {k}: stored {json.dumps(stored.get(k))[:200]}, now {json.dumps(description.get(k))[:200]}"
                 for k in changed]
        raise JobMismatchError(
            f"refusing to resume {out!r}: the job description differs in {', '.join(changed)}:\n" + "\n".join(lines)
            + "\nresume with the original settings, or write to a new store"
        )
    return root


def _create_store(out, description, plan, n_chunks):
    import zarr

    try:
        root = zarr.open_group(out, mode="w-")
        for s in plan.methods:
            root.create_array(f"maps/{s.label}", shape=(plan.n,) + tuple(s.shape),
                              chunks=(plan.chunk,) + tuple(s.shape), dtype=s.dtype, fill_value=np.nan)
            names = ["map_sum"] + (["completeness_gap"] if s.has_delta else []) + [m for m, _ in plan.metrics]
            for name in names:
                root.create_array(f"stats/{s.label}/{name}", shape=(plan.n,), chunks=(plan.chunk,),
                                  dtype="float64", fill_value=np.nan)
        root.create_array("target", shape=(plan.n,), chunks=(plan.chunk,), dtype="int64", fill_value=-1)
        root.create_array("score", shape=(plan.n,), chunks=(plan.chunk,), dtype="float64", fill_value=np.nan)
        root.create_array("valid", shape=(plan.n,), chunks=(plan.chunk,), dtype="bool", fill_value=False)
        root.create_array("done", shape=(n_chunks,), chunks=(1,), dtype=str, fill_value="")
        # the description goes last: a store without it was never started and may be removed by hand
        root.attrs["xattr_batch"] = description
    except OSError as exc:
        raise BatchError(f"cannot create the store at {out!r}: {type(exc).__name__}: {exc}") from None
    return root


def _reraise(exc, msg):
    """Raise ``exc``'s type again with ``msg`` (which names the method and image), chained."""
    try:
        wrapped = type(exc)(msg)
    except Exception:
        raise BatchError(msg) from exc
    raise wrapped from exc


def _probe(source, methods, model, targets_kind, targets_value, tslice_all, seed, transform):
    """Run each method on the first readable image to learn its map shape and dtype (new stores only)."""
    for i in range(source.n):
        if source.kind == "folder":
            try:
                x = _read_image(source.files[i], source.mode, source.shape[1:], source.resize, source.background)[None]
            except ImageReadError:
                continue
        else:
            x = np.asarray(source.chunk_input(i, i + 1))
        break
    else:
        raise BatchError(f"none of the {source.n} images can be read")
    x = _apply_transform(transform, as_float_array(x, "images", ndim=4, allow_nonfinite=True))
    try:
        scores = np.asarray(model.forward(x))
        target = _rows_target(targets_kind, targets_value, tslice_all, scores, np.array([i]))
    except Exception as exc:
        _reraise(exc, f"the model failed on image {i}: {exc}")
    for s in methods:
        try:
            a, _ = _call_method(s, model, x, target, [i], seed)
        except Exception as exc:
            _reraise(exc, f"method {s.label!r} ({s.name}) failed on image {i}: {exc}")
        if a.dtype.kind != "f":
            raise TypeError(f"method {s.label!r} ({s.name}) returned dtype {a.dtype}; batch jobs store float maps")
        s.shape, s.dtype = tuple(a.shape[1:]), np.dtype(a.dtype).str


# -- running ---------------------------------------------------------------------------------
@dataclass
class BatchResult:
    """What :func:`attribute_dataset` did: the store, the summary and the chunk counts."""

    store: str
    summary_path: str
    summary: dict
    chunks_total: int
    chunks_run: int
    chunks_skipped: int
    bad_images: list


_LOCAL_SCHEDULERS = {None: "threads", "threads": "threads", "processes": "processes", "sync": "sync",
                     "synchronous": "sync", "single-threaded": "sync"}


def _check_scheduler(scheduler, workers, retries):
    """Refuse an unknown scheduler, bad worker or retry counts (before any store is created)."""
    is_address = isinstance(scheduler, str) and "://" in scheduler
    is_client = type(scheduler).__module__.startswith("distributed") and hasattr(scheduler, "compute")
    hashable = isinstance(scheduler, (str, type(None)))
    if not (is_address or is_client or (hashable and scheduler in _LOCAL_SCHEDULERS)):
        raise ValueError(
            f"scheduler must be None, 'threads', 'processes', 'sync', a 'tcp://host:port' address or a "
            f"distributed.Client, got {scheduler!r}"
        )
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 1):
        raise ValueError(f"workers must be a positive int or None, got {workers!r}")
    if isinstance(retries, bool) or not isinstance(retries, numbers.Integral) or retries < 0:
        raise ValueError(f"retries must be a non-negative int, got {retries!r}")


def _execute(tasks, scheduler, workers, retries, progress, on_chunk_done):
    """Run the chunk tasks on Dask; return their records in chunk order."""
    import dask

    is_address = isinstance(scheduler, str) and "://" in scheduler
    if is_address or type(scheduler).__module__.startswith("distributed"):
        try:  # imported only for clusters (it takes a second)
            from distributed import Client, as_completed
        except ImportError:
            raise ImportError("a cluster scheduler needs the 'distributed' package: pip install 'xattr-ref[batch]'") from None
        is_client = isinstance(scheduler, Client)
        if not (is_client or is_address):
            raise TypeError(f"scheduler must be a distributed.Client or an address, got {type(scheduler).__name__}")

        client = scheduler if is_client else Client(scheduler, set_as_default=False)
        try:
            with client.as_current():  # as_completed and the progress bar find the client through this
                futures = client.compute(tasks, retries=retries)
                index = {f.key: i for i, f in enumerate(futures)}
                if progress:
                    from distributed import progress as show_progress

                    show_progress(futures, multi=False)  # Dask's text progress bar; returns when all are done
                records = [None] * len(futures)
                try:
                    for fut in as_completed(futures):
                        records[index[fut.key]] = fut.result()  # re-raises a task's error
                        if on_chunk_done is not None:
                            on_chunk_done(records[index[fut.key]])
                except BaseException:
                    client.cancel(futures)
                    raise
                return records
        finally:
            if not is_client:
                client.close()
    local = _LOCAL_SCHEDULERS
    if scheduler not in local:
        raise ValueError(
            f"scheduler must be None, 'threads', 'processes', 'sync', a 'tcp://host:port' address or a "
            f"distributed.Client, got {scheduler!r}"
        )
    kwargs = {"scheduler": local[scheduler]}
    if workers is not None and local[scheduler] != "sync":
        kwargs["num_workers"] = int(workers)
    if progress:
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            records = list(dask.compute(*tasks, **kwargs))
    else:
        records = list(dask.compute(*tasks, **kwargs))
    if on_chunk_done is not None:
        for r in records:
            on_chunk_done(r)
    return records


def _stats(values):
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"count": 0}
    q = np.quantile(v, QUANTILES)
    return {"count": int(v.size), "mean": float(v.mean()), "std": float(v.std()), "mean_abs": float(np.abs(v).mean()),
            "min": float(v.min()), "max": float(v.max()),
            "quantiles": {f"{p:g}": float(x) for p, x in zip(QUANTILES, q)}}


def _summarise(root, out, description, keys, plan, counts):
    """The summary, over the chunks whose checksum verifies now (read back from the store)."""
    n_chunks = counts["total"]
    records, parts, unverified = [], {}, {}
    for i in range(n_chunks):
        record, problem, data = _verify_chunk(root, keys, i, plan.bounds(i))
        if record is None:
            unverified[str(i)] = problem or "not finished"
            continue
        records.append(record)
        for k, v in data.items():
            parts.setdefault(k, []).append(v)
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    valid = cat.get("valid", np.zeros(0, bool))
    counts = dict(counts, verified=len(records), unverified=unverified)
    summary = {
        "store": os.path.abspath(out), "job": description, "n_images": int(plan.n),
        "n_verified": int(valid.size), "n_valid": int(valid.sum()), "bad_images": [b for r in records for b in r["bad"]],
        "chunks": counts, "methods": {},
    }
    for m in description["methods"]:
        label = m["label"]
        entry = {"name": m["name"], "options": m["options"]}
        prefix = f"stats/{label}/"
        for key in keys:
            if key.startswith(prefix):
                entry[key[len(prefix):]] = _stats(cat.get(key, np.zeros(0)))
        summary["methods"][label] = entry
    path = _summary_path(out)
    tmp = f"{path}.{os.getpid()}.partial"
    with open(tmp, "w") as f:
        json.dump(summary, f, indent=1)
    os.replace(tmp, path)
    return summary, path


def attribute_dataset(model, images, targets=None, methods=("gradient",), chunk=64, out=None, scheduler=None,
                      resume=False, on_error="stop", seed=0, batch_size=None, metrics=None, workers=None,
                      retries=2, progress=False, on_chunk_done=None, model_source=None, transform=None,
                      image_mode=None, image_size=None, image_background=None):
    """Attribution maps for a whole set of images, with several methods, on Dask, into a Zarr store.

    Parameters
    ----------
    model : model protocol object (``forward``, ``vjp``); a :class:`xattr.nn.Sequential` is hashed by
        architecture and weights for the job description.
    images : ndarray ``(N, C, H, W)``, dask array ``(N, C, H, W)``, or a folder of image files
        (``IMAGE_EXTENSIONS``, sorted by name, read lazily with Pillow inside the tasks as RGB, or
        grayscale if the first image is; scaled to [0, 1], float64).  Every worker must see the folder.
    targets : None or "predicted" (the argmax class of each image), int, int array ``(N,)`` or a
        callable on the scores (applied per micro-batch; must act row by row).
    methods : sequence of method names, ``(name, options)`` or ``(label, name, options)`` items;
        names are looked up with :func:`xattr.methods.registry.get_method`, options are checked against
        the method's signature.  Methods with an ``rng`` parameter get one generator per image (see the
        module docstring); methods with ``return_delta`` report their completeness gap.
    chunk : int
        Images per task and per Zarr chunk.  Must be a multiple of ``batch_size``.
    out : str
        Path of the Zarr store (a folder); the summary goes to ``<out minus .zarr>.summary.json``.
    scheduler : None or "threads" (default), "processes", "sync", "tcp://host:port" (a ``distributed``
        scheduler), or a ``distributed.Client``.
    resume : bool
        Continue an existing store of the same job (finished chunks are skipped); without it an existing
        store is refused.  A different job description is refused with :class:`JobMismatchError`.
    on_error : "stop" or "continue"
        For unreadable image files: stop the job with :class:`ImageReadError` naming the file, or mark the
        image invalid (NaN maps, ``valid`` False), report it in the summary and go on.
    seed : int
        Job seed for stochastic methods.
    batch_size : int, optional
        Images per method call (the unit of computation, so part of the job).  Default 16, or gcd(chunk, 16).
    metrics : dict, optional
        ``{name: fn(model, x, maps, target) -> (n,)}`` evaluated per micro-batch and method; summarised.
    workers : int, optional
        Threads/processes of the local schedulers (Dask's default: the number of cores).
    retries : int
        Dask retries of a failed task on a cluster (a worker that dies is handled by the scheduler too).
    progress : bool
        Show Dask's progress bar.
    on_chunk_done : callable, optional
        Called with each chunk's record as it completes (on the cluster: as soon as it completes).
    model_source : str, optional
        Where the model came from (a file name), recorded for information only.
    image_mode, image_size : optional, folders only
        Read every file as ``"L"`` (1 channel) or ``"RGB"`` (3) instead of the first file's kind, and bring
        every file to ``(height, width)`` (bilinear) instead of refusing sizes other than the first file's.
        Files are read by :func:`xattr.io.images.read_image` (its module docstring states the rule for
        every kind of file).
    image_background : float or sequence, optional, folders only
        Gray level(s) in [0, 1] that transparent pixels are composited on (default 1.0, white).
    transform : callable, optional
        ``transform(x) -> x'`` applied to each chunk's images before the model sees them (e.g. a model's
        preprocessing: pixels to normalised inputs); maps are with respect to ``x'``.  Must be picklable
        for process and cluster schedulers; recorded in the job description by its qualified name.

    Returns
    -------
    BatchResult
    """
    _require_extra()
    if out is None:
        raise ValueError("out must be the path of the Zarr store to write")
    out = os.fspath(out)
    if on_error not in ("stop", "continue"):
        raise ValueError(f"on_error must be 'stop' or 'continue', got {on_error!r}")
    if not isinstance(chunk, (numbers.Integral, np.integer)) or chunk < 1:
        raise ValueError(f"chunk must be a positive int, got {chunk!r}")
    chunk = int(chunk)
    if batch_size is None:
        batch_size = DEFAULT_BATCH_SIZE if chunk % DEFAULT_BATCH_SIZE == 0 else math.gcd(chunk, DEFAULT_BATCH_SIZE)
    if not isinstance(batch_size, (numbers.Integral, np.integer)) or batch_size < 1 or chunk % batch_size:
        raise ValueError(f"batch_size must be a positive int dividing chunk={chunk}, got {batch_size!r}")
    if transform is not None and not callable(transform):
        raise TypeError(f"transform must be a callable x -> x', got {type(transform).__name__}")
    if not isinstance(seed, (numbers.Integral, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    _check_scheduler(scheduler, workers, retries)  # settings first: nothing is created for a job that cannot run
    from .model import check_model

    check_model(model)
    specs = _parse_methods(methods)
    metrics = list((metrics or {}).items())
    for name, fn in metrics:
        if not callable(fn) or not isinstance(name, str) or "/" in name or name in ("map_sum", "completeness_gap"):
            raise ValueError(f"metrics must map new names (no '/') to callables fn(model, x, maps, target), got {name!r}")
    source = _make_source(images, image_mode, image_size, image_background)
    (tkind, tvalue), tdesc = _targets_spec(targets, source.n)
    n_chunks = -(-source.n // chunk)
    description = {
        "format": JOB_FORMAT, "model": model_fingerprint(model), "methods": [s.describe() for s in specs],
        "seed": int(seed), "targets": tdesc, "images": source.describe(), "chunk": chunk,
        "batch_size": int(batch_size), "metrics": [[n, _jsonable(f)] for n, f in metrics],
        "transform": _jsonable(transform), "model_source": model_source, "xattr_version": _version(),
    }
    plan = _Plan(out, source.n, chunk, int(batch_size), specs, int(seed), tkind,
                 tvalue if tkind in ("int", "callable") else None, metrics, on_error, source.kind, source.mode,
                 tuple(source.shape[1:]), source.dtype, transform, source.resize, source.background)
    tarr = tvalue if tkind == "array" else None
    if os.path.exists(out):
        root = _open_existing(out, description, resume)
        for s in specs:
            arr = root[f"maps/{s.label}"]
            s.shape, s.dtype = tuple(arr.shape[1:]), np.dtype(arr.dtype).str
    else:
        _check_writable(out)
        _probe(source, specs, model, tkind, plan.target_value, tarr, plan.seed, transform)
        root = _create_store(out, description, plan, n_chunks)
    keys = _store_keys(root, description)
    previous, todo, damaged = [], [], {}
    for i in range(n_chunks):  # a resumed store is verified before anything is trusted or skipped
        record, problem, _ = _verify_chunk(root, keys, i, plan.bounds(i))
        if record is not None:
            previous.append(record)
            continue
        if problem:
            damaged[i] = problem
            root["done"][i] = ""  # recomputed below (the task skips chunks whose record exists)
        todo.append(i)
    import dask

    tasks = []
    if todo:
        model_node = dask.delayed(model, name=f"xattr-model-{description['model']['sha256'][:16]}")
        job = hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:12]
        for i in todo:
            s0, s1 = plan.bounds(i)
            tslice = None if tarr is None else tarr[s0:s1]
            tasks.append(dask.delayed(_chunk_task, pure=False)(
                plan, model_node, i, source.chunk_input(s0, s1), tslice, dask_key_name=f"xattr-chunk-{job}-{i}"
            ))
    records = _execute(tasks, scheduler, workers, retries, progress, on_chunk_done) if tasks else []
    reused = sum(r.pop("reused") for r in records)
    counts = {"total": n_chunks, "run": len(records) - reused, "skipped": len(previous), "reused_after_retry": reused,
              "recomputed_damaged": {str(i): why for i, why in sorted(damaged.items())}}
    summary, path = _summarise(root, out, description, keys, plan, counts)
    return BatchResult(out, path, summary, n_chunks, len(records) - reused, len(previous), summary["bad_images"])


def _version():
    from . import __version__

    return __version__


def read_maps(out, label):
    """The maps of one method from a finished store, as an ndarray ``(N, ...)``."""
    _require_extra()
    import zarr

    return zarr.open_group(os.fspath(out), mode="r")[f"maps/{label}"][:]


# -- model files -----------------------------------------------------------------------------
def load_model(spec):
    """``(model, info)`` from a saved model (``NAME``/``NAME.json``/``NAME.npz`` or a shipped name, read by
    :func:`xattr.models.load_with_info`), or ``(model, None)`` from a ``module:function`` factory."""
    from . import models

    looks_like_file = os.path.exists(spec) or spec.endswith((".json", ".npz")) or "/" in spec or os.sep in spec
    if ":" in spec and not looks_like_file:
        import importlib

        module, _, name = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot import model factory {spec!r}: {exc}") from None
        return factory(), None
    return models.load_with_info(spec)  # ModelFileError (a ValueError) names the file and the problem


def model_input(pixels, spec):
    """Pixels in [0, 1] ``(N, C, H, W)`` -> the model's input, as the model file's input ``spec`` declares.

    Scaled to the declared ``range`` then normalised (:func:`xattr.models._inputs.to_model_input`, what
    ``xattr explain`` does for one image).  ``spec``: ``ModelInfo.input`` (a dict).
    """
    from .models._inputs import to_model_input

    return to_model_input(pixels, spec)


def _picture_options(methods, info, shape):
    """The CLI's rule for baselines: ``baseline``/``reference`` given as numbers are gray levels
    of a picture in [0, 1]; a method whose such parameter defaults to a number gets the black picture.
    Both are built in the model's declared range and normalised like the images, ``(C, H, W)``."""
    from .cli import PICTURE_OPTIONS, _is_level
    from .methods.registry import get_method
    from .models._inputs import picture

    out = []
    for name, options in methods:
        options = dict(options)
        try:
            params = inspect.signature(get_method(name)).parameters
        except ValueError:
            params = {}  # an unknown name: refused with the list of known names by attribute_dataset
        for pname in PICTURE_OPTIONS:
            if pname in params and pname not in options and _is_level(params[pname].default):
                options[pname] = 0.0
            if pname in options and _is_level(options[pname]):
                options[pname] = picture(info, shape, options[pname])
        out.append((name, options))
    return out


# -- command line ----------------------------------------------------------------------------
def _parse_method_arg(text):
    """``NAME`` or ``NAME:key=value,key=value`` (values as JSON, else strings) -> (name, options)."""
    name, _, rest = text.partition(":")
    options = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"method options must look like NAME:key=value,key=value, got {text!r}")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return name.strip(), options


def add_batch_command(subparsers):
    """Add ``xattr batch`` to the ``xattr`` command's subparsers (handler in ``func``)."""
    p = subparsers.add_parser(
        "batch", help="attribution maps for a whole image set on Dask, into a Zarr store",
        description="Run attribution methods over a folder of images (or an .npy array (N, C, H, W)) on Dask "
                    "and write the maps into a chunked Zarr store, with a JSON summary beside it. Image files are "
                    "read by the rule of 'xattr explain' (8/16-bit, float in [0, 1], palette, CMYK, alpha on "
                    "--background, EXIF rotation), scaled to the model file's declared range and normalised; an "
                    ".npy holds model inputs as they are, which must lie in the declared range after "
                    "normalisation. Baselines are pictures: a number given as baseline= or reference= is a gray "
                    "level in [0, 1] (0 black), built in the declared range and normalised like the images; "
                    "methods with a numeric default baseline get the black image. Every finished chunk carries a "
                    "checksum: --resume recomputes chunks whose data no longer match it; --verify STORE only "
                    "checks them.",
    )
    p.add_argument("images", nargs="?", help="folder of image files, or an .npy file holding (N, C, H, W)")
    p.add_argument("--model",
                   help="saved model (NAME.json + NAME.npz, or a shipped name such as 'shapes'), or module:function")
    p.add_argument("--method", action="append", metavar="NAME[:key=value,...]",
                   help="registered method (repeatable); options as JSON values, e.g. grad_cam:relu=false, "
                        "integrated_gradients:baseline=0.5 (a gray picture)")
    p.add_argument("--out", help="Zarr store to write (a folder, e.g. maps.zarr)")
    p.add_argument("--verify", metavar="STORE", default=None,
                   help="check every finished chunk of STORE against its checksum and report (read-only; "
                        "exit 0 when all are verified, 1 otherwise); rerun the job with --resume to recompute them")
    p.add_argument("--scheduler", default=None,
                   help="threads (default), processes, sync, or a Dask scheduler address tcp://host:port")
    p.add_argument("--resume", action="store_true",
                   help="continue an existing store of the same job; damaged chunks are found and recomputed")
    p.add_argument("--chunk", type=int, default=64, help="images per task and per Zarr chunk (default 64)")
    p.add_argument("--batch-size", type=int, default=None, help="images per method call (default 16)")
    p.add_argument("--target", default="predicted", help="'predicted' (default) or a class index")
    p.add_argument("--seed", type=int, default=0, help="job seed for stochastic methods (default 0)")
    p.add_argument("--on-error", choices=("stop", "continue"), default="stop",
                   help="unreadable image: stop the job (default) or skip it and report it")
    p.add_argument("--background", type=float, default=None, metavar="LEVEL",
                   help="gray level in [0, 1] under transparent pixels of image files (default 1: white)")
    p.add_argument("--workers", type=int, default=None, help="local threads/processes (default: cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_batch_command)
    return p


def _print_summary(result):
    s = result.summary
    print(f"store: {result.store}  summary: {result.summary_path}")
    c = s["chunks"]
    print(f"images: {s['n_images']} ({s['n_verified']} in verified chunks, {s['n_valid']} valid); chunks: "
          f"{c['total']} total, {c['run']} run now, {c['skipped']} already done, {c['verified']} verified")
    for i, why in c.get("recomputed_damaged", {}).items():
        print(f"chunk {i} was damaged ({why}): recomputed")
    for i, why in c.get("unverified", {}).items():
        print(f"chunk {i} is not verified: {why}")
    for label, entry in s["methods"].items():
        ms = entry["map_sum"]
        line = f"{label:>20}: map sum mean {ms.get('mean', float('nan')):+.4e}"
        gap = entry.get("completeness_gap")
        if gap and gap.get("count"):
            line += f", completeness gap |mean| {gap['mean_abs']:.3e}, max |gap| {max(abs(gap['min']), abs(gap['max'])):.3e}"
        print(line)
    for b in s["bad_images"]:
        print(f"unreadable image {b['index']} {b['file']}: {b['error']}")


def _run_verify(args):
    given = [f for f in ("images", "model", "method", "out") if getattr(args, f)]
    if given or args.resume:
        raise ValueError(f"--verify STORE takes no job arguments (got {', '.join(given + (['--resume'] if args.resume else []))}); "
                         "to recompute damaged chunks, rerun the job with --resume")
    r = verify_store(args.verify)
    for i, why in sorted(r["damaged"].items()):
        print(f"chunk {i}: damaged: {why}")
    print(f"store {args.verify}: {r['chunks']} chunks, {len(r['verified'])} verified ({r['images_verified']} images), "
          f"{len(r['damaged'])} damaged, {len(r['unfinished'])} unfinished"
          + ("; rerun the job with --resume to recompute them" if r["damaged"] or r["unfinished"] else ""))
    return 0 if not (r["damaged"] or r["unfinished"]) else 1


def _npy_inputs(path, info):
    """An .npy of model inputs, memory-mapped; with a model file, its values must lie in the declared range
    after normalisation."""
    try:
        images = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"{path!r} is not a numeric .npy array ({exc})".splitlines()[0]) from None
    if info is not None and images.ndim == 4 and images.dtype.kind in "fiub" and images.size:
        from .models._inputs import check_model_space

        check_model_space(images, info, f"the model inputs in {os.path.basename(path)!r}")
    return images


def _input_shape(args, info, images, folder_options):
    """``(C, H, W)`` of the model inputs the job will see (for baseline pictures)."""
    if not isinstance(images, str):
        return tuple(images.shape[1:])
    spec = info.input
    if folder_options.get("image_size"):
        return (spec.get("channels", 3),) + tuple(folder_options["image_size"])
    from .io.images import ImageFileError, probe_image

    for f in _folder_files(images):
        try:
            return (spec.get("channels", 3),) + tuple(probe_image(f)[1])
        except ImageFileError:
            continue
    raise BatchError(f"none of the image files in {images!r} can be read")


def run_batch_command(args):
    """Handler of ``xattr batch``; returns the exit code (2 with one line on stderr for any failure)."""
    import sys

    try:
        if args.verify is not None:
            return _run_verify(args)
        missing = [n for n, v in (("IMAGES", args.images), ("--model", args.model), ("--method", args.method),
                                  ("--out", args.out)) if not v]
        if missing:
            raise ValueError(f"batch needs {', '.join(missing)} (or --verify STORE alone)")
        for name in ("chunk", "batch_size", "workers"):
            v = getattr(args, name)
            if v is not None and v < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be a positive int, got {v}")
        _check_scheduler(args.scheduler, args.workers, 2)
        methods = [_parse_method_arg(m) for m in args.method]
        target = None if args.target == "predicted" else _int_target(args.target)
        model, info = load_model(args.model)
        folder_options = {}
        if os.path.isfile(args.images) and args.images.endswith(".npy"):
            images = _npy_inputs(args.images, info)
            if args.background is not None:
                raise ValueError("--background applies to image files, not to an .npy of model inputs")
        else:
            images = args.images
            if info is not None:  # read as the model file declares: channels, size, range, normalisation
                spec = info.input
                folder_options = dict(
                    image_mode="L" if spec.get("channels", 3) == 1 else "RGB",
                    image_size=(spec["height"], spec["width"]) if spec.get("height") and spec.get("width") else None,
                    transform=functools.partial(model_input, spec=spec),  # described by value: path-independent
                )
            if args.background is not None:
                folder_options["image_background"] = args.background
        if info is not None and (not isinstance(images, str) or os.path.isdir(images)):
            methods = _picture_options(methods, info, _input_shape(args, info, images, folder_options))
        result = attribute_dataset(
            model, images, target, methods=methods, chunk=args.chunk, out=args.out, scheduler=args.scheduler,
            resume=args.resume, on_error=args.on_error, seed=args.seed, batch_size=args.batch_size,
            workers=args.workers, progress=not args.no_progress, model_source=args.model, **folder_options,
        )
    except KeyboardInterrupt:
        print("xattr: interrupted; finished chunks are kept: rerun with --resume", file=sys.stderr)
        return 130
    except Exception as exc:  # every failure is one line (set XATTR_DEBUG=1 for the traceback)
        from .cli import error_line

        print(error_line(exc), file=sys.stderr)
        return 2
    _print_summary(result)
    return 0


def _int_target(text):
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"--target must be 'predicted' or a class index, got {text!r}") from None
