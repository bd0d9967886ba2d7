"""xattr's depthwise convolution against PyTorch's on the depthwise layers of MobileNetV2 (224×224, batch 1).

    python benchmarks/bench_depthwise.py [--dtype float32] [--repeat 9] [--json out.json]

Every depthwise 3×3 shape of torchvision's ``mobilenet_v2`` (channels, input side, stride; padding 1,
``groups = channels``), random weights and inputs (seed 0), no bias.  For each shape: the forward
(:meth:`xattr.nn.Conv2D.forward` against ``torch.nn.functional.conv2d``) and the input gradient
(:meth:`xattr.nn.Conv2D.input_grad` against ``torch.ops.aten.convolution_backward`` asking for the input
gradient only), each pair checked to agree (relative L2 below 1e-5 in float32, 1e-12 in float64) before it is
timed.  CPU seconds (``time.process_time``), the two libraries alternating, medians of ``--repeat`` runs after a
warm-up, both on one thread (threadpoolctl for NumPy's BLAS, ``torch.set_num_threads(1)``).

"Share of torch's rate" is torch's time over xattr's: 100 % means as fast as PyTorch.  Weighted by time over all
the layers it is what a MobileNetV2 forward and backward spends in its depthwise convolutions.  Needs the
``bench`` extra (torch, threadpoolctl).  Speed is never asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

from xattr.nn import Conv2D

#: (channels, input side, stride) of every depthwise conv in torchvision's mobilenet_v2 at 224x224, with its count.
MOBILENET_V2_DEPTHWISE = [
    (32, 112, 1, 1), (96, 112, 2, 1), (144, 56, 1, 1), (144, 56, 2, 1), (192, 28, 1, 2), (192, 28, 2, 1),
    (384, 14, 1, 4), (576, 14, 1, 2), (576, 14, 2, 1), (960, 7, 1, 3),
]


def _median_times(fns, repeat):
    """``{name: (median forward s, median backward s)}``; the functions run alternately, one warm-up each."""
    out = {k: [] for k in fns}
    for r in range(repeat + 1):
        for k, (fwd, bwd) in (fns.items() if r % 2 else reversed(list(fns.items()))):
            t = time.process_time()
            fwd()
            tf = time.process_time() - t
            t = time.process_time()
            bwd()
            tb = time.process_time() - t
            if r:
                out[k].append((tf, tb))
    return {k: tuple(np.median(np.array(v), axis=0)) for k, v in out.items()}


def _rel(a, b):
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)) / np.linalg.norm(b))


def _one_shape(C, H, s, count, dt, tol, repeat):
    """One MobileNetV2 depthwise layer: agreement with torch, then the median times of both libraries."""
    import torch
    import torch.nn.functional as F

    layer = Conv2D(C, C, 3, stride=s, padding=1, groups=C, bias=False, rng=0)
    layer.weight = layer.weight.astype(dt)
    x = np.random.default_rng(0).standard_normal((1, C, H, H)).astype(dt)
    y, cache = layer.forward(x)
    g = np.random.default_rng(1).standard_normal(y.shape).astype(dt)
    xt, wt, gt = torch.from_numpy(x), torch.from_numpy(layer.weight), torch.from_numpy(g)

    def t_fwd():
        return F.conv2d(xt, wt, stride=s, padding=1, groups=C)

    def t_bwd():
        return torch.ops.aten.convolution_backward(gt, xt, wt, None, (s, s), (1, 1), (1, 1), False, (0, 0), C,
                                                   (True, False, False))[0]

    agree = max(_rel(y, t_fwd().numpy()), _rel(layer.input_grad(g, cache), t_bwd().numpy()))
    if agree > tol:
        raise AssertionError(f"depthwise C={C} H={H} stride={s}: xattr and torch differ by {agree:.2e} > {tol:g}")
    m = _median_times({"xattr": (lambda: layer.forward(x), lambda: layer.input_grad(g, cache)),
                       "torch": (t_fwd, t_bwd)}, repeat)
    return {"channels": C, "side": H, "stride": s, "count": count, "agree": agree,
            "xattr_ms": [1e3 * v for v in m["xattr"]], "torch_ms": [1e3 * v for v in m["torch"]]}


def run(dtype="float32", repeat=9, shapes=None):
    """One row per shape of ``shapes`` (default :data:`MOBILENET_V2_DEPTHWISE`), after the agreement check."""
    dt = np.dtype(dtype)
    tol = 1e-5 if dt == np.float32 else 1e-12
    return [_one_shape(C, H, s, count, dt, tol, repeat)
            for C, H, s, count in (MOBILENET_V2_DEPTHWISE if shapes is None else shapes)]


def table(rows, dtype):
    lines = ["| channels × side, stride (×count) | forward xattr / torch ms | share | input grad xattr / torch ms "
             "| share |", "|---|---:|---:|---:|---:|"]
    tot = np.zeros((2, 2))
    for r in rows:
        (xf, xb), (tf, tb) = r["xattr_ms"], r["torch_ms"]
        tot += r["count"] * np.array([[xf, xb], [tf, tb]])
        lines.append(f"| {r['channels']} × {r['side']}², {r['stride']} (×{r['count']}) | {xf:.2f} / {tf:.2f} | "
                     f"{100 * tf / xf:.0f} % | {xb:.2f} / {tb:.2f} | {100 * tb / xb:.0f} % |")
    lines.append(f"| all {sum(r['count'] for r in rows)} layers, weighted by count | {tot[0, 0]:.1f} / "
                 f"{tot[1, 0]:.1f} | **{100 * tot[1, 0] / tot[0, 0]:.0f} %** | {tot[0, 1]:.1f} / {tot[1, 1]:.1f} | "
                 f"**{100 * tot[1, 1] / tot[0, 1]:.0f} %** |")
    return "\n".join(lines) + f"\n\n({dtype}, 1 thread, CPU ms, medians)"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    load0 = os.getloadavg()
    with threadpool_limits(1):
        rows = run(args.dtype, args.repeat)
    meta = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "numpy": np.__version__,
            "torch": torch.__version__, "load": [load0, os.getloadavg()],
            "command": "python benchmarks/bench_depthwise.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    print(table(rows, args.dtype))
    print(f"load average before {load0}, after {os.getloadavg()}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
