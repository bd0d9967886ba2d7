"""One chunk task: read its images, run every method by aligned micro-batches, write the maps and stats, then the
chunk's ``done`` record with the checksum of what it wrote (idempotent: a finished chunk is returned as stored)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from .. import _targets
from .._conventions import as_float_array
from .errors import BatchError, ImageReadError
from .source import _read_image
from .store import _chunk_digest


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
