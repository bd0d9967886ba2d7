"""Throughput of dataset-scale attribution (xattr.batch): serial vs 2 worker processes.

    python benchmarks/bench_batch.py [--n 1000] [--n-ig 1000] [--chunk 32] [--chunk-ig 16] [--methods gradient,ig50]
                                     [--rounds 1] [--keep-malloc-trim] [--json out.json]

Synthetic images ``(n, 3, 64, 64)`` (uniform in [0, 1], float64, seed 0) through the benchmark CNN
(conv3x3(3->16)-ReLU-maxpool2-conv3x3(16->32)-ReLU-maxpool2-conv3x3(32->64)-ReLU-GAP-dense(64->10),
``xattr.cli.demo_model``), target = predicted class, micro-batches of 16 images.
Methods: ``gradient``, and integrated gradients with 50 steps when a method named
``integrated_gradients`` is registered (IG-50; run on ``--n-ig`` images, since it costs ~50 gradients).

For each method it times (wall clock, images/s):

* ``loop``: the plain serial loop ``method(model, x[s:s+16], t)``: compute only, no Dask, no store;
* ``sync``: ``attribute_dataset(scheduler="sync")``: the same loop through Dask and into Zarr, one core;
* ``processes``: Dask's local process pool, 2 processes;
* ``cluster``: a ``distributed.LocalCluster`` with 2 worker processes (1 thread each) on 127.0.0.1
  (cluster startup excluded, reported separately);

the CPU time per image of ``loop`` and ``sync`` (both run in this process) and of the cluster's
workers (robust to other jobs on a shared machine, unlike wall clock; on an idle machine W workers
give W / (CPU per image) images/s); and the parts of the overhead: the model's cloudpickle size and time (sent with
every task by the
local process pool, once per worker on a cluster), and writing all maps to a Zarr store with the job's
chunking (store writes).  Every Dask run's maps are checked bit for bit against the loop's.
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import shutil
import tempfile
import time

# one BLAS thread per process, set before NumPy loads: "serial" is one core, "2 processes" two
# (as a distributed nanny sets for its workers); OpenBLAS threads otherwise spin on a busy machine
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402  (after the thread variables above, which NumPy reads when it loads)


def ig_spec():
    from xattr.methods.registry import available_methods, get_method, register_method

    if "integrated_gradients" not in available_methods():
        try:  # the function exists but is not in the registry
            from xattr.methods.path import integrated_gradients
        except ImportError:
            return None
        register_method("integrated_gradients", integrated_gradients, "path")
    params = inspect.signature(get_method("integrated_gradients")).parameters
    key = next((k for k in ("steps", "n_steps", "m") if k in params), None)
    return ("ig50", "integrated_gradients", {key: 50} if key else {})


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def cpu_timed(fn):
    """Wall and CPU time of this process (all its threads, BLAS included)."""
    c0 = time.process_time()
    out, t = timed(fn)
    return out, t, time.process_time() - c0


def bench_method(model, x, spec, chunk, client, tmp, rounds=1, batch_size=16):
    import cloudpickle
    import zarr

    from xattr.batch import attribute_dataset, read_maps
    from xattr.methods.registry import get_method

    label, name, options = spec
    fn = get_method(name)
    n = x.shape[0]

    def loop():
        out = []
        for s in range(0, n, batch_size):
            xb = x[s:s + batch_size]
            out.append(fn(model, xb, model.forward(xb).argmax(1), **options))
        return np.concatenate(out)

    row = {"method": label, "n": n, "rounds": rounds}

    def keep_best(key, t, c=None):  # best of the rounds: the least disturbed by other jobs
        if t < row.get(f"{key}_s", np.inf):
            row[f"{key}_s"], row[f"{key}_img_s"] = t, n / t
            if c is not None:
                row[f"{key}_cpu_ms_img"] = 1e3 * c / n

    for r in range(rounds):  # interleaved, so that a busy spell hits every configuration alike
        ref, t_loop, c_loop = cpu_timed(loop)
        keep_best("loop", t_loop, c_loop)
        for sched, kw in [("sync", {"scheduler": "sync"}), ("processes", {"scheduler": "processes", "workers": 2}),
                          ("cluster", {"scheduler": client})]:
            out = os.path.join(tmp, f"{label}-{sched}-{r}.zarr")
            w0 = client.run(time.process_time) if sched == "cluster" else None
            res, t, c = cpu_timed(lambda out=out, kw=kw: attribute_dataset(model, x, None, methods=[spec], chunk=chunk,
                                                                          out=out, batch_size=batch_size, **kw))
            if sched == "cluster":  # the workers' CPU time: what the job cost them, whatever else ran
                w1 = client.run(time.process_time)
                c = sum(w1[w] - w0[w] for w in w1 if w in w0)
            keep_best(sched, t, c if sched in ("sync", "cluster") else None)  # sync runs in this process
            same = bool(np.array_equal(read_maps(res.store, label), ref))
            row[f"{sched}_bitwise_equal"] = row.get(f"{sched}_bitwise_equal", True) and same
    # overhead parts
    blob, t_pickle = timed(lambda: cloudpickle.dumps(model))
    row["model_pickle_bytes"], row["model_pickle_s"] = len(blob), t_pickle
    root = zarr.open_group(os.path.join(tmp, f"{label}-write.zarr"), mode="w-")  # store writes alone
    arr = root.create_array("m", shape=ref.shape, chunks=(chunk,) + ref.shape[1:], dtype=ref.dtype)

    def write():
        for s in range(0, n, chunk):
            arr[s:s + chunk] = ref[s:s + chunk]

    _, t_write = timed(write)
    row["store_write_s"], row["map_mb"] = t_write, ref.nbytes / 1e6
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000, help="images for gradient (default 1000)")
    p.add_argument("--n-ig", type=int, default=1000, help="images for IG-50 (default 1000; a multiple of 2 chunks)")
    p.add_argument("--chunk", type=int, default=32, help="images per task (default 32: 16 tasks per worker)")
    p.add_argument("--chunk-ig", type=int, default=16,
                   help="images per task for IG-50 (default 16: with --n-ig 64, 2 tasks per worker)")
    p.add_argument("--methods", default="gradient,ig50", help="comma-separated subset of gradient,ig50")
    p.add_argument("--keep-malloc-trim", action="store_true",
                   help="keep distributed's MALLOC_TRIM_THRESHOLD_=65536 in the workers (slower; see the code)")
    p.add_argument("--rounds", type=int, default=1, help="interleaved repetitions, best kept (default 1)")
    p.add_argument("--json", default=None, help="also write the rows as JSON")
    args = p.parse_args(argv)
    if args.chunk % 16 or args.chunk_ig % 16:
        p.error(f"--chunk and --chunk-ig must be multiples of the micro-batch 16, got {args.chunk}, {args.chunk_ig}")

    import distributed

    from xattr.cli import demo_model

    model = demo_model()
    x = np.random.default_rng(0).random((max(args.n, args.n_ig), 3, 64, 64))
    wanted = set(args.methods.split(","))
    specs = [(("gradient", "gradient", {}), args.n, args.chunk)] if "gradient" in wanted else []
    ig = ig_spec() if "ig50" in wanted else None
    if ig is not None:
        specs.append((ig, args.n_ig, args.chunk_ig))
    import dask

    # distributed's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in its workers (and in this process's
    # environment, hence in the local process pool's children too); glibc then maps and unmaps every
    # large temporary, and the conv kernels cost ~1.7x the CPU.  Unset it (docs/batch.md says how for
    # `dask worker`).
    if not args.keep_malloc_trim:
        dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})
    tmp = tempfile.mkdtemp(prefix="xattr-bench-batch-")
    load0 = os.getloadavg()[0]
    rows = []
    try:
        t0 = time.perf_counter()
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                      dashboard_address=None, silence_logs=40) as cluster:
            with distributed.Client(cluster) as client:
                client.wait_for_workers(2)
                t_cluster = time.perf_counter() - t0
                for spec, n, chunk in specs:
                    rows.append(bench_method(model, x[:n], spec, chunk, client, tmp, args.rounds))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
        f"{load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (shared with other jobs); "
        f"cluster startup {t_cluster:.1f} s; chunk {args.chunk} (IG {args.chunk_ig}), micro-batch 16, float64, 1 BLAS "
        "thread per "
        f"process, best of {args.rounds} round(s), MALLOC_TRIM_THRESHOLD_ "
        f"{'kept' if args.keep_malloc_trim else 'unset'} in the workers"
    )
    if ig is None and "ig50" in wanted:
        print("integrated_gradients is not registered in this checkout: IG-50 skipped")
    print(f"{'method':>9} {'n':>5} | {'loop':>8} {'sync':>8} {'2 procs':>8} {'cluster':>8}  images/s | "
          f"CPU ms/image loop, sync, cluster workers | bitwise | model pickle | store writes")
    for r in rows:
        eq = all(r[f"{s}_bitwise_equal"] for s in ("sync", "processes", "cluster"))
        print(f"{r['method']:>9} {r['n']:>5} | {r['loop_img_s']:8.2f} {r['sync_img_s']:8.2f} "
              f"{r['processes_img_s']:8.2f} {r['cluster_img_s']:8.2f}           | "
              f"{r['loop_cpu_ms_img']:7.1f} {r['sync_cpu_ms_img']:7.1f} {r['cluster_cpu_ms_img']:7.1f}          "
              f"         | {str(eq):>7} | "
              f"{r['model_pickle_bytes'] / 1e3:.0f} kB {r['model_pickle_s'] * 1e3:.1f} ms | "
              f"{r['map_mb']:.0f} MB in {r['store_write_s']:.2f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "cluster_startup_s": t_cluster, "chunk": args.chunk, "load_start": load0,
                       "load_end": os.getloadavg()[0]}, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
