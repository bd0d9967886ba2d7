"""Occlusion (full vs incremental) and exact Shapley timings on the benchmark CNN.

    python benchmarks/bench_occlusion.py            # everything (a few minutes on 2 cores)
    python benchmarks/bench_occlusion.py --only occlusion64 --dtypes float32

Benchmark CNN: conv3x3(3->16)-ReLU-maxpool2-conv3x3(16->32)-ReLU-maxpool2-conv3x3(32->64)-ReLU-GAP-dense(64->10)
(``benchmarks/bench_core.py:benchmark_cnn``, random weights).  Cases:

* occlusion window 8 stride 4 at 64x64, batch 16 (225 windows per image);
  target: incremental >= 5x faster than full recomputation;
* occlusion window 16 stride 8 at 224x224, batch 1 (729 windows); target >= 30x;
* exact Shapley values with 16 segments (a 4x4 grid) at 64x64, one image: 65,536 coalitions; target < 60 s
  (by receptive-field tables, the default for this model; ``--shapley-enumerate`` also times the brute force).

Each timing is the median of ``--repeats`` runs (wall clock); incremental results are checked against full
recomputation in the same run.  The machine may be shared: report the load next to the numbers.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import xattr

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_core import benchmark_cnn as demo_model  # noqa: E402  (the one benchmark CNN, defined once)


def timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def bench_occlusion(size, batch, window, stride, dtype, repeats, batch_size):
    model = demo_model()
    x = np.random.default_rng(0).random((batch, 3, size, size)).astype(dtype)
    target = 3
    kw = dict(window=window, stride=stride, baseline=0.0, batch_size=batch_size)
    t_inc, inc = timed(lambda: xattr.occlusion(model, x, target, incremental=True, **kw), repeats)
    t_full, full = timed(lambda: xattr.occlusion(model, x, target, incremental=False, **kw), repeats)
    err = float(np.abs(inc.astype(np.float64) - full).max() / max(np.abs(full).max(), 1e-30))
    n_win = (-(-(size - window) // stride) + 1) ** 2
    print(
        f"occlusion {window}/{stride} {size}x{size} batch {batch} {np.dtype(dtype).name}: "
        f"{n_win * batch} occluded images; full {t_full * 1e3:.0f} ms, incremental {t_inc * 1e3:.0f} ms, "
        f"speed-up {t_full / t_inc:.1f}x, max rel. difference {err:.1e}",
        flush=True,
    )


def bench_shapley(dtype, batch_size, enumerate_too):
    model = demo_model()
    x = np.random.default_rng(0).random((1, 3, 64, 64)).astype(dtype)
    seg = xattr.grid_segments(x.shape, 4)
    gap = float(model.forward(x)[0, 3]) - float(model.forward(np.zeros_like(x))[0, 3])
    results = {}
    for locality in ([True, False] if enumerate_too else [True]):
        t0 = time.perf_counter()
        _, phi = xattr.shapley(model, x, 3, segments=seg, batch_size=batch_size, return_values=True,
                               locality=locality)
        t = time.perf_counter() - t0
        results[locality] = phi
        how = "receptive-field tables" if locality else "batched forwards of every coalition"
        print(
            f"exact Shapley 16 segments 64x64 {np.dtype(dtype).name}, {how}: 65536 coalitions in {t:.1f} s; "
            f"efficiency gap {abs(phi.sum() - gap):.1e}",
            flush=True,
        )
    if not enumerate_too:  # the brute force, extrapolated from 1,024 of its 65,536 coalitions
        from xattr.methods.perturbation._coalitions import _all_coalitions
        from xattr.methods.segments import compose

        masks = _all_coalitions(16, 0, 1024)
        t0 = time.perf_counter()
        for a in range(0, 1024, batch_size):
            model.forward(compose(x[0], np.zeros_like(x[0]), seg, masks[a:a + batch_size]))
        t = (time.perf_counter() - t0) * 64
        print(f"  brute force (every coalition through the model), extrapolated from 1024 coalitions: {t:.0f} s",
              flush=True)
    if enumerate_too:
        d = np.abs(results[True] - results[False]).max() / np.abs(results[False]).max()
        print(f"  tables vs enumeration: max rel. difference {d:.1e}", flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=["occlusion64", "occlusion224", "shapley"], action="append")
    p.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--shapley-enumerate", action="store_true",
                   help="also time exact Shapley by evaluating all 65,536 coalitions (can take many minutes)")
    args = p.parse_args(argv)
    which = args.only or ["occlusion64", "occlusion224", "shapley"]
    print(f"numpy {np.__version__}, {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f} (shared machine)")
    for dt in args.dtypes:
        if "occlusion64" in which:
            bench_occlusion(64, 16, 8, 4, dt, args.repeats, args.batch_size)
        if "occlusion224" in which:
            bench_occlusion(224, 1, 16, 8, dt, args.repeats, args.batch_size)
        if "shapley" in which:
            bench_shapley(dt, 256, args.shapley_enumerate)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
