"""Benchmark the path and noise methods on the benchmark CNN.

    python benchmarks/bench_path.py [--repeat 3] [--skip-exact]

1. IG with 50 Gauss–Legendre steps and SmoothGrad (gradient) with 50 samples, at 64×64, batch 16,
   float32: median wall time, peak traced memory (tracemalloc), and the method's CPU time over that
   of the same number of bare forward+backward passes in the same chunks (above 1: the method's own
   overhead; below 1: the work it saves, e.g. the affine first layer applied once per image).
2. Exact IG at 32×32, float64, one image, random biases N(0, 0.1²) (with zero biases and a zero
   baseline a ReLU network is positively homogeneous and the path has a single linear piece):
   wall and CPU time, the number of linear pieces, and the relative completeness gap.

Times are for the machine it runs on; report them with its load (``os.getloadavg``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import xattr  # noqa: E402
from xattr.methods import _chunks  # noqa: E402
from xattr.methods.path import exact_integrated_gradients  # noqa: E402
from xattr.methods.path._common import _affine_head  # noqa: E402

from bench_core import benchmark_cnn  # noqa: E402  (the benchmark CNN, in one place)


def bench(fn, repeat):
    """Median wall time, median CPU time (this process), peak traced memory of one more run."""
    times, cpus = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return float(np.median(times)), float(np.median(cpus)), peak


def kernels_time(model, x, rows, batch_size, repeat):
    """Bare forward+backward passes over ``rows`` inputs like x[0], in chunks of ``batch_size``."""
    chunk = np.repeat(x[:1], batch_size, axis=0)

    def run():
        left = rows
        while left > 0:
            b = chunk[: min(batch_size, left)]
            s, caches = model.forward_all(b)
            model.backward(np.ones_like(s), caches)
            left -= len(b)

    return bench(run, repeat)[:2]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--skip-exact", action="store_true")
    args = p.parse_args(argv)
    print(f"load average at start: {os.getloadavg()}, cpus: {os.cpu_count()}")
    model = benchmark_cnn(0)
    x = np.random.default_rng(0).random((16, 3, 64, 64)).astype(np.float32)
    rows = 16 * 50
    head = _affine_head(model)  # the rows per call IG uses by default (the cost model; SmoothGrad's is the same)
    chunk = _chunks.chunk_rows(model, head.forward(x[:1])[0], rows, start=head.name)
    k, kc = kernels_time(model, x, rows, chunk, args.repeat)
    for name, fn in [
        ("IG-50 (gausslegendre)", lambda: xattr.integrated_gradients(model, x, 3, steps=50)),
        ("SmoothGrad-50 (gradient)", lambda: xattr.smoothgrad(xattr.gradient, model, x, 3, n=50, rng=0)),
    ]:
        t, c, peak = bench(fn, args.repeat)
        print(f"{name:>26}: {t * 1e3:8.1f} ms wall ({c * 1e3:.1f} ms CPU) median of {args.repeat}, "
              f"peak traced memory {peak / 2**20:7.1f} MiB, {c / kc:.2f}x the CPU of bare passes "
              f"(forward+backward over {rows} rows in chunks of {chunk}: {k * 1e3:.1f} ms wall, {kc * 1e3:.1f} ms CPU)")
    if args.skip_exact:
        return
    g = np.random.default_rng(5)
    for layer in model:
        if getattr(layer, "bias", None) is not None:
            layer.bias = g.normal(0, 0.1, layer.bias.shape)
    x32 = g.random((1, 3, 32, 32))
    t, c = time.perf_counter(), time.process_time()
    res = exact_integrated_gradients(model, x32, 3)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    s = model.forward(x32)[0, 3] - model.forward(np.zeros_like(x32))[0, 3]
    print(f"{'exact IG 32x32 float64':>26}: {wall:8.2f} s wall, {cpu:.2f} s CPU, {res.segments[0]} linear pieces, "
          f"completeness gap {abs(res.delta[0]) / abs(s):.2e} relative (F(x) - F(0) = {s:.6f})")
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
