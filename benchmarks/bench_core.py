"""Forward and forward+backward of the benchmark CNN next to this machine's GEMM rate.

    python benchmarks/bench_core.py [--repeat 20] [--json out.json]

Model: conv3x3(3->16)-ReLU-maxpool2-conv3x3(16->32)-ReLU-maxpool2-conv3x3(32->64)-ReLU-GAP-dense(64->10),
input 64x64, batch 16, float32 and float64.  The GEMM rate is numpy's matmul of two
2048x2048 matrices, measured in the same run.  Achieved GFLOP/s counts the convolutions'
multiply-adds (2 flops each): forward = sum over convs of 2*N*O*Ho*Wo*C*kH*kW; backward
(input gradient, what attribution needs) the same again.  Times are medians.

Two shares per row: the whole model's time charged to the convolutions' flops (a lower bound: ReLU,
pooling and the head run single-threaded in NumPy and count as conv time), and the conv layers alone
(each Conv2D's forward, and forward + input gradient, timed on the input it sees in the model).
"""
from __future__ import annotations

import argparse
import functools
import json
import platform
import time

import numpy as np

from xattr.nn import Conv2D, Dense, GlobalAvgPool2D, MaxPool2D, ReLU, Sequential


def benchmark_cnn(rng=0):
    g = np.random.default_rng(rng)
    return Sequential(
        Conv2D(3, 16, 3, padding=1, rng=g), ReLU(), MaxPool2D(2),
        Conv2D(16, 32, 3, padding=1, rng=g), ReLU(), MaxPool2D(2),
        Conv2D(32, 64, 3, padding=1, rng=g), ReLU(), GlobalAvgPool2D(), Dense(64, 10, rng=g),
    )


def conv_flops(model, x_shape):
    flops, h = 0, np.zeros(x_shape)
    for layer in model:
        y = layer(h)
        if isinstance(layer, Conv2D):
            n, o, ho, wo = y.shape
            flops += 2 * n * o * ho * wo * layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]
        h = y
    return flops


def median_time(fn, repeat):
    fn()  # warm-up
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), float(np.min(ts)), float(np.max(ts))


def gemm_rate(dtype, n=2048, repeat=5):
    a = np.random.default_rng(0).standard_normal((n, n)).astype(dtype)
    b = np.random.default_rng(1).standard_normal((n, n)).astype(dtype)
    t, _, _ = median_time(lambda: a @ b, repeat)
    return 2 * n**3 / t / 1e9


def conv_layer_times(model, x, repeat):
    """Summed medians over the Conv2D layers of ``(forward, forward + input gradient)`` seconds."""
    h, t_f, t_b = x, 0.0, 0.0
    for layer in model:
        if isinstance(layer, Conv2D):
            y, cache = layer.forward(h)
            g = np.ones_like(y)
            t_f += median_time(functools.partial(layer.forward, h), repeat)[0]
            t_b += median_time(functools.partial(layer.input_grad, g, cache), repeat)[0]
        h = layer(h)
    return t_f, t_f + t_b


def run(repeat=20, batch=16, size=64):
    model = benchmark_cnn()
    rows = []
    for dtype in (np.float32, np.float64):
        x = np.random.default_rng(0).random((batch, 3, size, size)).astype(dtype)
        fl = conv_flops(model, x.shape)
        seed = np.zeros((batch, 10), dtype=dtype)
        seed[:, 0] = 1
        t_f = median_time(functools.partial(model.forward, x), repeat)
        t_fb = median_time(functools.partial(model.vjp, x, seed), repeat)
        c_f, c_fb = conv_layer_times(model, x, repeat)
        peak = gemm_rate(dtype)
        rows.append({
            "dtype": np.dtype(dtype).name, "batch": batch, "size": size,
            "gemm_gflops": peak,
            "forward_ms": 1e3 * t_f[0], "forward_ms_min_max": [1e3 * t_f[1], 1e3 * t_f[2]],
            "forward_gflops": fl / t_f[0] / 1e9,
            "fwd_bwd_ms": 1e3 * t_fb[0], "fwd_bwd_ms_min_max": [1e3 * t_fb[1], 1e3 * t_fb[2]],
            "fwd_bwd_gflops": 2 * fl / t_fb[0] / 1e9,
            "conv_forward_ms": 1e3 * c_f, "conv_forward_gflops": fl / c_f / 1e9,
            "conv_fwd_bwd_ms": 1e3 * c_fb, "conv_fwd_bwd_gflops": 2 * fl / c_fb / 1e9,
        })
        r = rows[-1]
        r["forward_share_of_gemm"] = r["forward_gflops"] / peak
        r["fwd_bwd_share_of_gemm"] = r["fwd_bwd_gflops"] / peak
        r["conv_forward_share_of_gemm"] = r["conv_forward_gflops"] / peak
        r["conv_fwd_bwd_share_of_gemm"] = r["conv_fwd_bwd_gflops"] / peak
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--json", default=None, help="write the rows as JSON here")
    args = ap.parse_args(argv)
    rows = run(args.repeat, args.batch, args.size)
    print(f"machine: {platform.machine()}, {platform.processor() or '?'}; numpy {np.__version__}")
    print(f"{'':18} {'':9} {'--- whole model (lower bound) ---':^42} {'--- conv layers alone ---':^30}")
    print(
        f"{'dtype':8} {'GEMM GF/s':>9} {'fwd ms':>8} {'fwd GF/s':>8} {'fwd %':>6} {'f+b ms':>8} {'f+b GF/s':>8} "
        f"{'f+b %':>6}"
        f" {'fwd ms':>8} {'fwd %':>6} {'f+b ms':>8} {'f+b %':>6}"
    )
    for r in rows:
        print(
            f"{r['dtype']:8} {r['gemm_gflops']:9.1f} {r['forward_ms']:8.2f} {r['forward_gflops']:8.1f} "
            f"{100 * r['forward_share_of_gemm']:5.1f}% {r['fwd_bwd_ms']:8.2f} {r['fwd_bwd_gflops']:8.1f} "
            f"{100 * r['fwd_bwd_share_of_gemm']:5.1f}% {r['conv_forward_ms']:8.2f} "
            f"{100 * r['conv_forward_share_of_gemm']:5.1f}% {r['conv_fwd_bwd_ms']:8.2f} "
            f"{100 * r['conv_fwd_bwd_share_of_gemm']:5.1f}%"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
