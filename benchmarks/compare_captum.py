"""xattr next to Captum on the same weights, in the same process.

    python benchmarks/compare_captum.py [--quick] [--repeat 7] [--json benchmarks/results/captum.json]

Builds the benchmark CNN once in PyTorch
(conv3x3(3->16)-ReLU-maxpool2-conv3x3(16->32)-ReLU-maxpool2-conv3x3(32->64)-ReLU-GAP-dense(64->10)),
imports it with ``xattr.io.from_torch`` and, for every method, first checks that both libraries
produce the same map where the definitions match (float64, relative L2 error printed), then times
them alternately (medians and min-max over ``--repeat`` runs) in float32 and float64 at 32x32 and
64x64 (batch 16) and 224x224 (batch 1).  PyTorch is limited to NumPy's BLAS thread count.
Captum's IG and SmoothGrad are timed at their defaults and at their best internal batch size.

Needs the ``captum`` extra (``pip install torch==2.13.0 captum``).  Speed is never asserted:
this is a measurement, to be read on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

import xattr

CONFIGS = [(32, 16), (64, 16), (224, 1)]  # (size, batch)


def blas_threads():
    try:
        from threadpoolctl import threadpool_info

        n = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
        if n:
            return int(n[0])
    except ImportError:
        pass
    return int(os.environ.get("OPENBLAS_NUM_THREADS", os.cpu_count() or 1))


def torch_cnn(torch, seed=0):
    nn = torch.nn
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    )
    return model.eval()


def methods(torch, captum_attr, tmodel, xmodel, size):
    """``name -> (xattr fn(x, t), {variant: captum fn(x_torch, t)}, maps comparable?)``."""
    ca = captum_attr
    window, stride = (16, 8) if size >= 224 else (8, 4)
    last_relu = tmodel[7]
    out = {}
    out["gradient"] = (lambda x, t: xattr.gradient(xmodel, x, t), {"default": lambda x, t: ca.Saliency(tmodel).attribute(x, target=t, abs=False)}, True)
    out["gradient_x_input"] = (lambda x, t: xattr.gradient_x_input(xmodel, x, t), {"default": lambda x, t: ca.InputXGradient(tmodel).attribute(x, target=t)}, True)
    out["guided_backprop"] = (lambda x, t: xattr.guided_backprop(xmodel, x, t), {"default": lambda x, t: ca.GuidedBackprop(tmodel).attribute(x, target=t)}, True)
    out["grad_cam"] = (
        lambda x, t: xattr.grad_cam(xmodel, x, t, layer=xmodel.names[7], relu=True, upsample=False),
        {"default": lambda x, t: ca.LayerGradCam(tmodel, last_relu).attribute(x, target=t, relu_attributions=True)},
        True,
    )
    if hasattr(xattr, "integrated_gradients"):
        ig = ca.IntegratedGradients(tmodel)
        out["ig50"] = (
            lambda x, t: xattr.integrated_gradients(xmodel, x, t, baseline=0.0, steps=50, quadrature="gausslegendre"),
            {
                "default": lambda x, t: ig.attribute(x, baselines=0.0, target=t, n_steps=50, method="gausslegendre"),
                "best": lambda x, t: ig.attribute(x, baselines=0.0, target=t, n_steps=50, method="gausslegendre", internal_batch_size=max(1, 50 * x.shape[0] // 4)),
            },
            True,
        )
    if hasattr(xattr, "smoothgrad"):
        nt = ca.NoiseTunnel(ca.Saliency(tmodel))
        out["smoothgrad50"] = (
            lambda x, t: xattr.smoothgrad(xattr.gradient, xmodel, x, t, n=50, sigma=0.15, sigma_is="absolute", rng=0),
            {
                "default": lambda x, t: nt.attribute(x, nt_type="smoothgrad", nt_samples=50, stdevs=0.15, target=t, abs=False),
                "best": lambda x, t: nt.attribute(x, nt_type="smoothgrad", nt_samples=50, stdevs=0.15, target=t, abs=False, nt_samples_batch_size=max(1, 50 // 5)),
            },
            False,  # different random noise: maps are not comparable draw by draw
        )
    if hasattr(xattr, "deeplift"):
        out["deeplift"] = (lambda x, t: xattr.deeplift(xmodel, x, t, reference=0.0), {"default": lambda x, t: ca.DeepLift(tmodel).attribute(x, baselines=0.0, target=t)}, True)
    if hasattr(xattr, "lrp"):
        out["lrp_epsilon"] = (lambda x, t: xattr.lrp(xmodel, x, t, composite="epsilon", epsilon=1e-9), {"default": lambda x, t: ca.LRP(tmodel).attribute(x, target=t)}, True)
    if hasattr(xattr, "occlusion"):
        occ = ca.Occlusion(tmodel)
        w, s = (3, window, window), (3, stride, stride)
        out[f"occlusion{window}/{stride}"] = (
            lambda x, t: xattr.occlusion(xmodel, x, t, window=window, stride=stride, baseline=0.0),
            {
                "default": lambda x, t: occ.attribute(x, sliding_window_shapes=w, strides=s, baselines=0.0, target=t),
                "best": lambda x, t: occ.attribute(x, sliding_window_shapes=w, strides=s, baselines=0.0, target=t, perturbations_per_eval=64),
            },
            True,
        )
    return out


def timed(fn, repeat):
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return ts


def run(repeat=7, quick=False):
    import torch
    from captum import attr as captum_attr

    from xattr.io import from_torch

    threads = blas_threads()
    torch.set_num_threads(threads)
    tmodel = torch_cnn(torch)
    xmodel = from_torch(tmodel)
    rows = []
    configs = CONFIGS[:2] if quick else CONFIGS
    for size, batch in configs:
        x64 = np.random.default_rng(0).random((batch, 3, size, size))
        t = 3
        for dtype, tdtype in ((np.float64, torch.float64), (np.float32, torch.float32)):
            tm = tmodel.to(tdtype)
            x = x64.astype(dtype)
            xt = torch.tensor(x, dtype=tdtype, requires_grad=True)
            for name, (xf, cfs, comparable) in methods(torch, captum_attr, tm, xmodel, size).items():
                ours = xf(x, t)
                for variant, cf in cfs.items():
                    theirs = cf(xt, t).detach().numpy()
                    err = None
                    if comparable and dtype == np.float64:
                        err = float(np.linalg.norm(ours - theirs.reshape(ours.shape)) / max(np.linalg.norm(theirs), 1e-300))
                    tx, tc = [], []
                    for _ in range(repeat):  # alternate, so that drifts in machine load hit both
                        tx += timed(lambda: xf(x, t), 1)
                        tc += timed(lambda: cf(xt, t), 1)
                    row = {
                        "method": name, "captum_variant": variant, "size": size, "batch": batch, "dtype": np.dtype(dtype).name,
                        "xattr_ms": 1e3 * float(np.median(tx)), "xattr_ms_min_max": [1e3 * min(tx), 1e3 * max(tx)],
                        "captum_ms": 1e3 * float(np.median(tc)), "captum_ms_min_max": [1e3 * min(tc), 1e3 * max(tc)],
                        "ratio": float(np.median(tx) / np.median(tc)), "rel_l2_vs_captum": err, "threads": threads,
                    }
                    rows.append(row)
                    e = "" if err is None else f"  rel.L2 {err:.1e}"
                    print(f"{size:>4}x{size:<4} b{batch:<3} {row['dtype']:8} {name:>18} [{variant:>7}]  xattr {row['xattr_ms']:9.2f} ms"
                          f"  captum {row['captum_ms']:9.2f} ms  ratio {row['ratio']:6.2f}{e}", flush=True)
            tmodel = tmodel.to(torch.float64)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="only 32x32 and 64x64")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    import torch

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; numpy {np.__version__}, torch {torch.__version__}; "
          f"BLAS/torch threads {blas_threads()}")
    rows = run(args.repeat, args.quick)
    if args.json:
        os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
