"""Time DeepLIFT, DeepSHAP and LRP on the benchmark CNN (64×64, batch 16), float32 and float64.

    python benchmarks/bench_relevance.py [--repeat 5] [--size 64] [--batch 16]

The network is conv3×3(3→16)-ReLU-maxpool2-conv3×3(16→32)-ReLU-maxpool2-conv3×3(32→64)-ReLU-GAP-dense(64→10)
(the one in peers.md, where Captum 0.9 takes 58.7 ms for DeepLift and 28.8 ms for LRP-ε at float32).
Prints the median wall time per call in milliseconds.
"""
import argparse
import functools
import os
import sys

import numpy as np

import xattr

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_core import benchmark_cnn, median_time  # noqa: E402  (the benchmark CNN and timer, defined once)


def median_ms(fn, repeat):
    return 1e3 * median_time(fn, repeat)[0]


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    a = p.parse_args(argv)
    m = benchmark_cnn()
    cases = {
        "gradient (for scale)": lambda x: xattr.gradient(m, x, 3),
        "deeplift rescale": lambda x: xattr.deeplift(m, x, 3),
        "deeplift rescale, maxpool=rescale": lambda x: xattr.deeplift(m, x, 3, maxpool="rescale"),
        "deeplift revealcancel": lambda x: xattr.deeplift(m, x, 3, rule="revealcancel"),
        "deepshap K=4": lambda x: xattr.deepshap(m, x, 3, np.zeros((4,) + x.shape[1:], x.dtype)),
        "lrp epsilon": lambda x: xattr.lrp(m, x, 3, "epsilon"),
        "lrp epsilon_gamma_box": lambda x: xattr.lrp(m, x, 3, "epsilon_gamma_box", low=0.0, high=1.0),
        "lrp epsilon_alpha2_beta1": lambda x: xattr.lrp(m, x, 3, "epsilon_alpha2_beta1"),
    }
    print(f"benchmark CNN, batch {a.batch}, {a.size}×{a.size}, median of {a.repeat} (ms)")
    print(f"{'method':<36}{'float32':>10}{'float64':>10}")
    for name, fn in cases.items():
        row = []
        for dtype in (np.float32, np.float64):
            x = np.random.default_rng(1).random((a.batch, 3, a.size, a.size)).astype(dtype)
            row.append(median_ms(functools.partial(fn, x), a.repeat))
        print(f"{name:<36}{row[0]:>10.1f}{row[1]:>10.1f}")


if __name__ == "__main__":
    main()
