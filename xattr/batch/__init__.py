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

The package, one file per part of a job: :mod:`.job` (the job description), :mod:`.source` (the input images),
:mod:`.task` (one chunk task), :mod:`.store` (the Zarr store, checksums, summary), :mod:`.schedule` (Dask),
:mod:`.run` (:func:`attribute_dataset`), :mod:`.command` (``xattr batch``), :mod:`.errors`.
"""
from .command import add_batch_command, load_model, model_input
from .errors import BatchError, ImageReadError, JobMismatchError
from .job import model_fingerprint
from .run import BatchResult, attribute_dataset
from .source import IMAGE_EXTENSIONS
from .store import read_maps, verify_store

__all__ = [
    "attribute_dataset", "BatchResult", "BatchError", "JobMismatchError", "ImageReadError",
    "model_fingerprint", "read_maps", "load_model", "model_input", "add_batch_command", "IMAGE_EXTENSIONS",
    "verify_store",
]
