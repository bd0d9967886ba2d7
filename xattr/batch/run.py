"""The entry point of a batch job: :func:`attribute_dataset` checks the settings, creates or verifies the store and
runs the unfinished chunks on Dask."""
from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
from dataclasses import dataclass

import numpy as np

from .. import __version__
from ..model import check_model
from .errors import _require_extra
from .job import JOB_FORMAT, _jsonable, _parse_methods, _targets_spec, model_fingerprint
from .schedule import _check_scheduler, _execute
from .source import _make_source
from .store import _check_writable, _create_store, _open_existing, _store_keys, _summarise, _verify_chunk
from .task import _chunk_task, _Plan, _probe

#: images per method call (the job's micro-batch; the ``batch_size`` of :func:`attribute_dataset`) when none is
#: given, reduced to gcd(chunk, 16) when chunk is not a multiple.  Another unit than the methods' own
#: ``batch_size`` (model input rows per call, :mod:`xattr.inputs`), which each method call then applies inside.
DEFAULT_MICRO_BATCH = 16


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
        batch_size = DEFAULT_MICRO_BATCH if chunk % DEFAULT_MICRO_BATCH == 0 else math.gcd(chunk, DEFAULT_MICRO_BATCH)
    if not isinstance(batch_size, (numbers.Integral, np.integer)) or batch_size < 1 or chunk % batch_size:
        raise ValueError(f"batch_size must be a positive int dividing chunk={chunk}, got {batch_size!r}")
    if transform is not None and not callable(transform):
        raise TypeError(f"transform must be a callable x -> x', got {type(transform).__name__}")
    if not isinstance(seed, (numbers.Integral, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    _check_scheduler(scheduler, workers, retries)  # settings first: nothing is created for a job that cannot run

    check_model(model)
    specs = _parse_methods(methods)
    metrics = list((metrics or {}).items())
    for name, fn in metrics:
        if not callable(fn) or not isinstance(name, str) or "/" in name or name in ("map_sum", "completeness_gap"):
            raise ValueError(
                f"metrics must map new names (no '/') to callables fn(model, x, maps, target), got {name!r}"
            )
    source = _make_source(images, image_mode, image_size, image_background)
    (tkind, tvalue), tdesc = _targets_spec(targets, source.n)
    n_chunks = -(-source.n // chunk)
    description = {
        "format": JOB_FORMAT, "model": model_fingerprint(model), "methods": [s.describe() for s in specs],
        "seed": int(seed), "targets": tdesc, "images": source.describe(), "chunk": chunk,
        "batch_size": int(batch_size), "metrics": [[n, _jsonable(f)] for n, f in metrics],
        "transform": _jsonable(transform), "model_source": model_source, "xattr_version": __version__,
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

