"""xattr next to Captum on the same weights, in the same process.

    python benchmarks/compare_captum.py [--quick] [--repeat 7] [--threads N]
                                        [--sizes 32,64,224] [--dtypes float32,float64] [--methods gradient,ig50]
                                        [--json benchmarks/results/compare_captum.json]

Builds the benchmark CNN once in PyTorch
(conv3x3(3->16)-ReLU-maxpool2-conv3x3(16->32)-ReLU-maxpool2-conv3x3(32->64)-ReLU-GAP-dense(64->10)),
imports it with ``xattr.io.from_torch`` and, for every method (gradient, gradient x input, guided
backprop, Grad-CAM, IG with 50 Gauss-Legendre nodes, SmoothGrad with 50 samples, DeepLIFT-Rescale,
LRP-epsilon, occlusion 8/4 at 64x64 and 16/8 at 224x224):

1. checks, in float64, that both libraries produce the same map where the definitions match (relative
   L2 error printed and stored; SmoothGrad draws different noise, so its maps are not compared);
2. for Captum's IG, SmoothGrad and occlusion, finds the best ``internal_batch_size`` /
   ``nt_samples_batch_size`` / ``perturbations_per_eval`` among a few candidates (one run each),
   and times Captum both at its default and at that best value;
3. times both libraries alternately (the order flips every run, so that drifts in machine load hit
   both), in float32 and float64, at 32x32 and 64x64 (batch 16) and 224x224 (batch 1): medians and
   min-max over ``--repeat`` runs after one warm-up each.

PyTorch and NumPy's BLAS run with the same number of threads (``--threads``; default: NumPy's BLAS
thread count), set with ``torch.set_num_threads`` and ``threadpoolctl``.  The run ends with a table of
xattr/Captum ratios of the medians (lower is better for xattr) and the convolutions' achieved GFLOP/s
against the GEMM rate measured in the same run (:mod:`bench_core`).  ``--json`` writes every row with
the machine, the load averages before and after, the versions and the command line.

``--quick``: 32x32 and 64x64 only, float32 only, 3 runs (a smoke run of a few minutes).
``--tables run.json``: print the tables of a saved run again (for benchmarks/README.md).

Needs the ``bench`` extra (``pip install -e ".[bench]"``: torch 2.13.0, captum 0.9.0, threadpoolctl).  Speed is
never asserted: this is a measurement, to be read together with the machine's load.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import time

import numpy as np

import xattr
from xattr.methods.path import integrated_gradients  # the function itself (every quadrature), not the registry's
from xattr.methods.smoothing import smoothgrad

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_core  # noqa: E402

CONFIGS = [(32, 16), (64, 16), (224, 1)]  # (size, batch)
DTYPES = ("float32", "float64")
TARGET = 3
#: SmoothGrad noise: absolute standard deviation (Captum's ``stdevs`` is absolute).
SG_SIGMA = 0.15


def blas_threads():
    """NumPy's BLAS thread count (threadpoolctl), else ``OPENBLAS_NUM_THREADS`` or the core count."""
    try:
        from threadpoolctl import threadpool_info

        n = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
        if n:
            return int(n[0])
    except ImportError:
        pass
    return int(os.environ.get("OPENBLAS_NUM_THREADS", os.cpu_count() or 1))


def load_average():
    try:
        return list(os.getloadavg())
    except OSError:  # pragma: no cover - not on every OS
        return None


def torch_cnn(torch, seed=0):
    """The benchmark CNN in PyTorch, eval mode, float64 weights (cast per run)."""
    nn = torch.nn
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    )
    return model.eval().double()


def lrp_ready(tmodel):
    """A copy of the torch CNN that Captum's LRP accepts: the flatten done in ``forward`` (Captum has no
    rule for ``nn.Flatten``) and the pools' epsilon at 1e-300 (it then only guards 0/0), which makes
    Captum's LRP-epsilon xattr's (pools: winner-take-all / LRP-0); see tests/test_captum.py."""
    import copy

    import torch
    from captum.attr._utils.lrp_rules import EpsilonRule

    net = copy.deepcopy(tmodel)

    class FlattenInForward(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.features, self.head = net[:9], net[10:]

        def forward(self, x):
            return self.head(self.features(x).flatten(1))

    for m in net.modules():
        if isinstance(m, (torch.nn.MaxPool2d, torch.nn.AdaptiveAvgPool2d)):
            m.rule = EpsilonRule(epsilon=1e-300)
    return FlattenInForward().eval()


def occlusion_geometry(size):
    """(window, stride): 8/4 up to 64x64, 16/8 at 224x224."""
    return (16, 8) if size >= 224 else (8, 4)


def methods(ca, tmodel, xmodel, size, batch):
    """``name -> (xattr fn(x, t), captum fn(x_torch, t, knob), knob name or None, candidates, comparable)``.

    ``knob`` is Captum's batching argument (None = its default); ``candidates`` the values tried for
    its best setting.  Every xattr call below matches a signature in ``xattr/methods/*.py``.
    """
    window, stride = occlusion_geometry(size)
    n_win = ((size - window + stride - 1) // stride + 1) ** 2  # Captum's window count per image
    out = {}
    out["gradient"] = (
        lambda x, t: xattr.gradient(xmodel, x, t),
        lambda x, t, k: ca.Saliency(tmodel).attribute(x, target=t, abs=False), None, (), True,
    )
    out["gradient_x_input"] = (
        lambda x, t: xattr.gradient_x_input(xmodel, x, t),
        lambda x, t, k: ca.InputXGradient(tmodel).attribute(x, target=t), None, (), True,
    )
    out["guided_backprop"] = (
        lambda x, t: xattr.guided_backprop(xmodel, x, t),
        lambda x, t, k: ca.GuidedBackprop(tmodel).attribute(x, target=t), None, (), True,
    )
    # Grad-CAM on the last ReLU's output, with the paper's final ReLU, at the feature map's size
    out["grad_cam"] = (
        lambda x, t: xattr.grad_cam(xmodel, x, t, layer=xmodel.names[7], relu=True, upsample=False),
        lambda x, t, k: ca.LayerGradCam(tmodel, tmodel[7]).attribute(x, target=t, relu_attributions=True),
        None, (), True,
    )
    rows = 50 * batch
    out["ig50"] = (
        lambda x, t: integrated_gradients(xmodel, x, t, baseline=0.0, steps=50, quadrature="gausslegendre"),
        lambda x, t, k: ca.IntegratedGradients(tmodel).attribute(
            x, baselines=0.0, target=t, n_steps=50, method="gausslegendre", internal_batch_size=k),
        "internal_batch_size", sorted({max(1, rows // d) for d in (2, 8, 50)}), True,
    )
    out["smoothgrad50"] = (
        lambda x, t: smoothgrad(xattr.gradient, xmodel, x, t, n=50, sigma=SG_SIGMA, sigma_is="absolute", rng=0),
        lambda x, t, k: ca.NoiseTunnel(ca.Saliency(tmodel)).attribute(
            x, nt_type="smoothgrad", nt_samples=50, stdevs=SG_SIGMA, target=t, abs=False, nt_samples_batch_size=k),
        "nt_samples_batch_size", (2, 10, 25), False,  # different random noise: not comparable draw by draw
    )
    # DeepLIFT-Rescale, zero reference; multipliers through max-pool to the input pass's argmax
    # (xattr's default maxpool="gradient", which is what Captum 0.9 computes: tests/test_captum.py)
    out["deeplift"] = (
        lambda x, t: xattr.deeplift(xmodel, x, t, reference=0.0, rule="rescale", maxpool="gradient"),
        lambda x, t, k: ca.DeepLift(tmodel).attribute(x, baselines=0.0, target=t), None, (), True,
    )
    # LRP-epsilon with Captum's epsilon (1e-9) on every conv and dense layer; max-pool winner-take-all
    lrp_net = lrp_ready(tmodel)
    out["lrp_epsilon"] = (
        lambda x, t: xattr.lrp(xmodel, x, t, composite="epsilon", epsilon=1e-9),
        lambda x, t, k: ca.LRP(lrp_net).attribute(x, target=t), None, (), True,
    )
    w3, s3 = (3, window, window), (3, stride, stride)
    out[f"occlusion{window}/{stride}"] = (
        lambda x, t: xattr.occlusion(xmodel, x, t, window=window, stride=stride, baseline=0.0, aggregate="mean"),
        lambda x, t, k: ca.Occlusion(tmodel).attribute(
            x, sliding_window_shapes=w3, strides=s3, baselines=0.0, target=t, perturbations_per_eval=k or 1),
        "perturbations_per_eval", tuple(c for c in (2, 8, 32, 128) if c <= n_win), True,
    )
    return out


def _once(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def best_knob(cf, xt, candidates):
    """Captum's fastest batching value among ``candidates`` (one run each after a warm-up)."""
    best, best_t = None, np.inf
    for k in candidates:
        cf(xt, TARGET, k)  # warm-up
        t = _once(functools.partial(cf, xt, TARGET, k))
        if t < best_t:
            best, best_t = k, t
    return best


def alternate(fx, fc, repeat):
    """Times of ``fx`` and ``fc`` run alternately, the order flipping each run; one warm-up each."""
    fx(), fc()
    tx, tc = [], []
    for r in range(repeat):
        if r % 2 == 0:
            tx.append(_once(fx))
            tc.append(_once(fc))
        else:
            tc.append(_once(fc))
            tx.append(_once(fx))
    return tx, tc


def rel_l2(ours, theirs):
    theirs = np.asarray(theirs, dtype=np.float64)
    if ours.ndim == 4 and ours.shape[1] == 1 and theirs.shape[1] > 1:
        # occlusion hides all channels together: Captum repeats the map over channels, xattr keeps one
        assert np.array_equal(theirs, np.broadcast_to(theirs[:, :1], theirs.shape))
        theirs = theirs[:, :1]
    theirs = theirs.reshape(ours.shape)
    return float(np.linalg.norm(ours - theirs) / max(np.linalg.norm(theirs), 1e-300))


def run(repeat=7, configs=CONFIGS, dtypes=DTYPES, only=None, log=print):
    import torch
    from captum import attr as ca

    from xattr.io import from_torch

    threads = blas_threads()
    torch.set_num_threads(threads)
    tmodel64 = torch_cnn(torch)
    xmodel = from_torch(tmodel64)
    rows, checks = [], []
    for size, batch in configs:
        x64 = np.random.default_rng(0).random((batch, 3, size, size))
        # 1. same maps where the definitions match (float64, both sides)
        xt64 = torch.tensor(x64, requires_grad=True)
        best = {}
        for name, (xf, cf, _knob, _cands, comparable) in methods(ca, tmodel64, xmodel, size, batch).items():
            if only and not any(name.startswith(o) for o in only):
                continue
            if comparable:
                err = rel_l2(xf(x64, TARGET), cf(xt64, TARGET, None).detach().numpy())
                checks.append({"method": name, "size": size, "batch": batch, "rel_l2_vs_captum": err})
                log(f"check {size:>3}x{size:<3} b{batch:<2} {name:>18}: relative L2 difference {err:.1e}")
        for dname in dtypes:
            dtype = np.dtype(dname)
            tdtype = getattr(torch, dname)
            tm = torch_cnn(torch).to(tdtype)
            x = x64.astype(dtype)
            xt = torch.tensor(x, requires_grad=True)
            for name, (xf, cf, knob, cands, _comparable) in methods(ca, tm, xmodel, size, batch).items():
                if only and not any(name.startswith(o) for o in only):
                    continue
                variants = [("default", None)]
                if knob is not None:
                    key = (name, size, dname)
                    best[key] = best_knob(cf, xt, cands)
                    variants.append(("best", best[key]))
                for variant, k in variants:
                    tx, tc = alternate(functools.partial(xf, x, TARGET), functools.partial(cf, xt, TARGET, k), repeat)
                    row = {
                        "method": name, "captum_variant": variant, "captum_knob": knob, "captum_knob_value": k,
                        "size": size, "batch": batch, "dtype": dname, "threads": threads, "repeat": repeat,
                        "xattr_ms": 1e3 * float(np.median(tx)), "xattr_ms_min_max": [1e3 * min(tx), 1e3 * max(tx)],
                        "captum_ms": 1e3 * float(np.median(tc)), "captum_ms_min_max": [1e3 * min(tc), 1e3 * max(tc)],
                        "ratio": float(np.median(tx) / np.median(tc)), "ratio_of_mins": float(min(tx) / min(tc)),
                    }
                    rows.append(row)
                    kv = "" if knob is None else f" {knob}={k}"
                    log(
                        f"{size:>4}x{size:<4} b{batch:<3} {dname:8} {name:>18} [{variant:>7}{kv}]"
                        f"  xattr {row['xattr_ms']:9.2f} ms "
                        f"[{row['xattr_ms_min_max'][0]:.1f}-{row['xattr_ms_min_max'][1]:.1f}]"
                        f"  captum {row['captum_ms']:9.2f} ms "
                        f"[{row['captum_ms_min_max'][0]:.1f}-{row['captum_ms_min_max'][1]:.1f}]"
                        f"  ratio {row['ratio']:6.2f} (mins {row['ratio_of_mins']:.2f})"
                    )
    return rows, checks


def ratio_table(rows):
    """Markdown table: one row per method (and Captum variant), one column per size/batch/dtype."""
    cols = []
    for r in rows:
        c = (r["size"], r["batch"], r["dtype"])
        if c not in cols:
            cols.append(c)
    keys = []
    for r in rows:
        k = (r["method"], r["captum_variant"])
        if k not in keys:
            keys.append(k)
    cell = {(r["method"], r["captum_variant"], r["size"], r["batch"], r["dtype"]): r for r in rows}
    head = "| method | Captum | " + " | ".join(f"{s}×{s} b{b} {d}" for s, b, d in cols) + " |"
    lines = [head, "|---|---|" + "---:|" * len(cols)]
    for m, v in keys:
        vals = []
        for s, b, d in cols:
            r = cell.get((m, v, s, b, d))
            if r is None:
                vals.append("")
            else:
                kv = "" if r["captum_knob_value"] is None else f" ({r['captum_knob_value']})"
                vals.append(f"{r['ratio']:.2f}{kv}")
        lines.append(f"| {m} | {v} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def core_rates(configs, dtypes, repeat):
    """Conv layers' GFLOP/s (forward, forward+backward; alone and as the whole model) against the GEMM rate
    (bench_core)."""
    out = []
    for size, batch in configs:
        if size < 64:
            continue
        for r in bench_core.run(repeat=repeat, batch=batch, size=size):
            if r["dtype"] in dtypes:
                out.append(r)
    return out


def print_tables(rows, core, meta):
    print(ratio_table(rows))
    if core:
        print()
        print("| model | GEMM GFLOP/s | conv layers: forward GFLOP/s (share) | conv layers: fwd+bwd (share) "
              "| whole model as conv: forward (share) | whole model: fwd+bwd (share) |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in core:
            conv = "" if "conv_forward_gflops" not in r else (  # runs saved before bench_core timed the layers
                f"{r['conv_forward_gflops']:.1f} ({100 * r['conv_forward_share_of_gemm']:.0f}%) | "
                f"{r['conv_fwd_bwd_gflops']:.1f} ({100 * r['conv_fwd_bwd_share_of_gemm']:.0f}%)")
            print(f"| {r['size']}×{r['size']} b{r['batch']} {r['dtype']} | {r['gemm_gflops']:.1f} | {conv or ' | '} | "
                  f"{r['forward_gflops']:.1f} ({100 * r['forward_share_of_gemm']:.0f}%) | "
                  f"{r['fwd_bwd_gflops']:.1f} ({100 * r['fwd_bwd_share_of_gemm']:.0f}%) |")
    print(f"\nload average before {meta['load_average_before']}, after {meta['load_average_after']}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=None, help="timed runs per library (default 7; 3 with --quick)")
    ap.add_argument("--quick", action="store_true", help="32x32 and 64x64, float32, 3 runs")
    ap.add_argument("--threads", type=int, default=None, help="BLAS and torch threads (default: NumPy's BLAS count)")
    ap.add_argument("--sizes", default=None, help="comma-separated subset of 32,64,224")
    ap.add_argument("--dtypes", default=None, help="comma-separated subset of float32,float64")
    ap.add_argument("--methods", default=None, help="comma-separated method names (e.g. gradient,ig,occlusion)")
    ap.add_argument("--no-core", action="store_true", help="skip the conv GFLOP/s vs GEMM measurement")
    ap.add_argument("--json", default=None, help="write rows, checks, core rates and metadata here")
    ap.add_argument("--tables", default=None, metavar="JSON", help="only print the tables of a saved run")
    args = ap.parse_args(argv)
    if args.tables:
        with open(args.tables) as fh:
            saved = json.load(fh)
        print_tables(saved["rows"], saved["core"], saved["meta"])
        return
    repeat = args.repeat or (3 if args.quick else 7)
    configs = CONFIGS[:2] if args.quick else CONFIGS
    if args.sizes:
        want = {int(s) for s in args.sizes.split(",")}
        configs = [c for c in CONFIGS if c[0] in want]
    dtypes = ("float32",) if args.quick else DTYPES
    if args.dtypes:
        dtypes = tuple(args.dtypes.split(","))
    only = set(args.methods.split(",")) if args.methods else None

    import torch
    from threadpoolctl import threadpool_limits

    threads = args.threads or blas_threads()
    with threadpool_limits(limits=threads, user_api="blas"):
        torch.set_num_threads(threads)
        load0 = load_average()
        meta = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or '?'}",
            "python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "captum": __import__("captum").__version__, "threads": blas_threads(),
            "load_average_before": load0, "command": "python " + " ".join([sys.argv[0]] + (argv or sys.argv[1:])),
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        print(f"machine: {meta['machine']}; numpy {np.__version__}, torch {torch.__version__}, "
              f"captum {meta['captum']}; BLAS/torch threads {meta['threads']}; load {load0}", flush=True)
        rows, checks = run(repeat, configs, dtypes, only, log=lambda s: print(s, flush=True))
        core = [] if args.no_core else core_rates(configs, dtypes, max(5, repeat))
        meta["load_average_after"] = load_average()
    print()
    print_tables(rows, core, meta)
    if args.json:
        os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump({"meta": meta, "rows": rows, "checks": checks, "core": core}, fh, indent=2)


if __name__ == "__main__":
    main()
