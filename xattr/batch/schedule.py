"""Scheduling on Dask: the local schedulers (threads, processes, sync) or a ``distributed`` cluster; xattr adds no
scheduler, queue or pool of its own."""
from __future__ import annotations

import numbers

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
            raise ImportError(
                "a cluster scheduler needs the 'distributed' package: pip install 'xattr-ref[batch]'"
            ) from None
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
