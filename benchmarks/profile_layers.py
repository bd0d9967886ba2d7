"""Where the time goes: per layer and per step (im2col, GEMM, col2im, transposes, dtype copies, allocation).

    python benchmarks/profile_layers.py [--models vgg11,vgg16,alexnet,resnet18] [--dtype float32]
                                        [--weights float32] [--repeat 5] [--json out.json] [--markdown] [--torch]

Builds the torchvision classifiers' layer chains by hand with :mod:`xattr.nn` (random weights, 224×224,
batch 1; no torch needed): VGG-11 and VGG-16 (13 convs, max-pools, the 25088→4096→4096→1000 head) and
AlexNet (11×11 stride 4, 5×5, three 3×3, the 9216→4096→4096→1000 head) as whole models; ResNet-18's conv
shapes (7×7 stride 2, the 3×3 blocks, the 1×1 stride-2 downsamples) as single layers.  For every layer it
times the forward and the input gradient (the gradient rule's backward), split into steps by wrapping
the kernel's helpers in :mod:`xattr.nn.conv`:

``validate`` ``check_image_batch`` (dtype, rank, finiteness of the input); ``pad`` ``pad_nchw``;
``im2col`` the column copies; ``GEMM`` every ``numpy.matmul`` in the kernel; ``col2im`` the scatter-adds of
the input gradient; ``transpose`` the wide layout's copies in and out; ``weights`` the weight matrix
(a view, or the dtype cast when the weights' dtype differs from the input's); ``alloc`` the first touch of
fresh memory, i.e. minor page faults counted with ``resource.getrusage`` times the cost of one fault
measured in the same run (taken out of the step that incurred it); ``other`` the rest (bias, the stacked
layout's copies of images into and out of the side-by-side order, Python).

Next to each conv layer: the single-thread GEMM rate of the equivalent matrix products, measured with
``numpy.matmul`` in the same run on fresh contiguous operands, ``(O, K) @ (K, P)`` for the forward and
``(K, O) @ (O, P)`` for the input gradient (``K = C·kH·kW``, ``P = Ho·Wo``), and the layer's share of that
rate.  Times are CPU seconds (``time.process_time``), medians over ``--repeat`` runs after a warm-up, BLAS
limited to one thread (threadpoolctl).

``--torch`` (the bench extra): torch's ``conv2d`` forward and input gradient of every conv layer on the same arrays,
one thread, next to xattr's (:func:`torch_conv`), each checked to agree first; the tables gain ``xattr / torch``
and ``GEMM-rate / torch``, the time NumPy's GEMM alone would take against torch's whole layer.
"""
from __future__ import annotations

import argparse
import json
import mmap
import os
import platform
import resource
import sys
import time
from collections import defaultdict

import numpy as np

from xattr.nn import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential
from xattr.nn import conv as conv_mod

STEPS = ("validate", "pad", "weights", "im2col", "GEMM", "col2im", "transpose", "alloc", "other")


# -- the networks ----------------------------------------------------------------------------------
VGG = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


def _head(layers, n_in, rng):
    layers += [
        Flatten(),
        Dense(n_in, 4096, rng=rng),
        ReLU(),
        Dense(4096, 4096, rng=rng),
        ReLU(),
        Dense(4096, 1000, rng=rng),
    ]


def vgg(name, rng=0):
    """torchvision's VGG at 224×224 as a chain (its adaptive pool to 7×7 is the identity at this size)."""
    g = np.random.default_rng(rng)
    layers, c = [], 3
    for v in VGG[name]:
        if v == "M":
            layers.append(MaxPool2D(2))
        else:
            layers += [Conv2D(c, v, 3, padding=1, rng=g), ReLU()]
            c = v
    _head(layers, 512 * 7 * 7, g)
    return Sequential(*layers)


def alexnet(rng=0):
    """torchvision's AlexNet at 224×224 as a chain (adaptive pool to 6×6 = identity at this size)."""
    g = np.random.default_rng(rng)
    layers = [
        Conv2D(3, 64, 11, stride=4, padding=2, rng=g), ReLU(), MaxPool2D(3, stride=2),
        Conv2D(64, 192, 5, padding=2, rng=g), ReLU(), MaxPool2D(3, stride=2),
        Conv2D(192, 384, 3, padding=1, rng=g), ReLU(), Conv2D(384, 256, 3, padding=1, rng=g), ReLU(),
        Conv2D(256, 256, 3, padding=1, rng=g), ReLU(), MaxPool2D(3, stride=2),
    ]
    _head(layers, 256 * 6 * 6, g)
    return Sequential(*layers)


#: ResNet-18's distinct conv shapes at 224×224: (name, C, O, k, stride, padding, input side).
RESNET18_CONVS = [
    ("conv1", 3, 64, 7, 2, 3, 224),
    ("layer1 3x3", 64, 64, 3, 1, 1, 56),
    ("layer2 3x3 s2", 64, 128, 3, 2, 1, 56),
    ("layer2 1x1 s2", 64, 128, 1, 2, 0, 56),
    ("layer2 3x3", 128, 128, 3, 1, 1, 28),
    ("layer3 3x3 s2", 128, 256, 3, 2, 1, 28),
    ("layer3 1x1 s2", 128, 256, 1, 2, 0, 28),
    ("layer3 3x3", 256, 256, 3, 1, 1, 14),
    ("layer4 3x3 s2", 256, 512, 3, 2, 1, 14),
    ("layer4 1x1 s2", 256, 512, 1, 2, 0, 14),
    ("layer4 3x3", 512, 512, 3, 1, 1, 7),
]


def resnet18_layers(rng=0):
    """``[(name, layer, input shape)]`` for :data:`RESNET18_CONVS`."""
    g = np.random.default_rng(rng)
    return [(n, Conv2D(c, o, k, stride=s, padding=p, rng=g), (1, c, h, h)) for n, c, o, k, s, p, h in RESNET18_CONVS]


def model_layers(model, x_shape):
    """``[(name, layer, input shape)]`` along a chain."""
    out, shape = [], x_shape
    for name, layer in zip(model.names, model):
        out.append((f"{name} {type(layer).__name__}", layer, shape))
        shape = layer.output_shape(shape) if hasattr(layer, "output_shape") else layer(np.zeros(shape)).shape
    return out


def cast_params(layer, dtype):
    for p in ("weight", "bias"):
        v = getattr(layer, p, None)
        if v is not None:
            setattr(layer, p, v.astype(dtype))


# -- timing and step accounting --------------------------------------------------------------------
def minor_faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def fault_cost(mb=64, repeat=3):
    """CPU seconds per minor page fault: first touch of a fresh anonymous mapping (the kernel's zero pages)."""
    page = mmap.PAGESIZE
    costs = []
    for _ in range(repeat):
        m = mmap.mmap(-1, mb << 20)
        a = np.frombuffer(m, dtype=np.uint8)
        f0, t0 = minor_faults(), time.process_time()
        a[::page] = 1
        t, f = time.process_time() - t0, minor_faults() - f0
        del a
        m.close()
        costs.append(t / max(f, 1))
    return float(np.median(costs))


class Recorder:
    """Wraps functions of :mod:`xattr.nn.conv` so that each call's CPU time and page faults go to a step."""

    def __init__(self):
        self.t = defaultdict(float)
        self.f = defaultdict(int)
        self.depth = 0

    def wrap(self, step, fn):
        def timed(*a, **k):
            if self.depth:  # nested inside another recorded step: counted there
                return fn(*a, **k)
            self.depth += 1
            f0, t0 = minor_faults(), time.process_time()
            try:
                return fn(*a, **k)
            finally:
                self.t[step] += time.process_time() - t0
                self.f[step] += minor_faults() - f0
                self.depth -= 1

        return timed


class _NumpyProxy:
    """``numpy`` as the conv module sees it, with ``matmul`` recorded as the GEMM step."""

    def __init__(self, rec):
        self._matmul = rec.wrap("GEMM", np.matmul)

    def __getattr__(self, name):
        return self._matmul if name == "matmul" else getattr(np, name)


PATCHES = {
    "check_image_batch": "validate", "pad_nchw": "pad", "grouped_weight_matrix": "weights",
    "im2col": "im2col", "im2col_tile": "im2col", "wide_im2col": "im2col", "stacked_im2col": "im2col",
    "col2im": "col2im", "col2im_tile": "col2im", "wide_col2im": "col2im", "phase_col2im": "col2im",
    "stacked_col2im": "col2im",
    "wide_to_image": "transpose", "image_to_wide": "transpose",
}


class patched:
    """Context: the conv module's helpers recorded by ``rec`` (restored on exit)."""

    def __init__(self, rec):
        self.rec, self.saved = rec, {}

    def __enter__(self):
        for name, step in PATCHES.items():
            if hasattr(conv_mod, name):
                self.saved[name] = getattr(conv_mod, name)
                setattr(conv_mod, name, self.rec.wrap(step, self.saved[name]))
        self.saved["np"] = conv_mod.np
        conv_mod.np = _NumpyProxy(self.rec)
        return self.rec

    def __exit__(self, *exc):
        for name, fn in self.saved.items():
            setattr(conv_mod, name, fn)


def profile_call(fn, repeat, per_fault, reference=None):
    """Median CPU time of ``fn``, its split into steps (seconds) and page faults (of the median run).

    ``reference`` (a GEMM of the equivalent shape) runs right before ``fn`` in every round; returned too:
    its median time and the median over rounds of ``t_reference / t_fn`` (pairs taken close together, so
    that the other jobs on a shared machine slow both alike)."""
    fn()  # warm-up (the allocator settles, the workspace grows)
    if reference is not None:
        reference()
    totals, splits, faults, refs = [], [], [], []
    for _ in range(repeat):
        if reference is not None:
            t0 = time.process_time()
            reference()
            refs.append(time.process_time() - t0)
        rec = Recorder()
        with patched(rec):
            f0, t0 = minor_faults(), time.process_time()
            fn()
            total, nf = time.process_time() - t0, minor_faults() - f0
        split = {s: rec.t.get(s, 0.0) - rec.f.get(s, 0) * per_fault for s in STEPS}
        split["alloc"] = nf * per_fault
        split["other"] = total - sum(v for k, v in split.items() if k != "other")
        totals.append(total)
        splits.append(split)
        faults.append(nf)
    k = int(np.argsort(totals)[len(totals) // 2])
    out = {"s": totals[k], "steps": splits[k], "faults": faults[k]}
    if refs:
        out["gemm_s"] = float(np.median(refs))
        out["share"] = float(np.median(np.array(refs) / np.array(totals)))
    return out


def gemm(m, k, n, dtype):
    """``numpy.matmul`` of fresh contiguous ``(m, k) @ (k, n)`` operands (a closure)."""
    rng = np.random.default_rng(0)
    a, b = rng.random((m, k)).astype(dtype), rng.random((k, n)).astype(dtype)
    return lambda: a @ b


def torch_conv(layer, x, g, repeat):
    """torch's ``conv2d`` forward and input gradient of ``layer`` on the same arrays, one thread (CPU seconds).

    The input gradient is ``aten::convolution_backward`` with only the input's gradient asked for, the call that
    autograd makes for ``torch.autograd.grad(y, x)`` (Captum's gradients); padding as ``layer`` pads (an uneven
    padding by ``F.pad`` first).  Returns ``{"torch_forward_s", "torch_backward_s", "torch_forward_rel_err",
    "torch_backward_rel_err"}``: medians over ``repeat`` after a warm-up, and the relative L2 distance of torch's
    results from xattr's (the timings compare the same computation only when these are at rounding level).
    """
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    (t, b), (lft, r) = layer.pads
    xt, gt = torch.from_numpy(x), torch.from_numpy(g)
    w = torch.from_numpy(np.ascontiguousarray(layer.weight, dtype=x.dtype))
    bias = None if layer.bias is None else torch.from_numpy(np.asarray(layer.bias, dtype=x.dtype))
    even = t == b and lft == r
    pad = (t, lft) if even else (0, 0)
    conv = dict(stride=layer.stride, padding=pad, dilation=layer.dilation, groups=layer.groups)
    xin = xt if even else F.pad(xt, (lft, r, t, b))

    def forward():
        return F.conv2d(xt if even else F.pad(xt, (lft, r, t, b)), w, bias, **conv)

    def backward():
        gx = torch.ops.aten.convolution_backward(gt, xin, w, None, list(layer.stride), list(pad),
                                                 list(layer.dilation), False, [0, 0], layer.groups,
                                                 [True, False, False])[0]
        return gx if even else gx[:, :, t : gx.shape[2] - b, lft : gx.shape[3] - r]

    y, cache = layer.forward(x)
    out = {}
    for d, fn, ours in (("forward", forward, y), ("backward", backward, layer.backward(g, cache, "gradient"))):
        theirs = fn().numpy()
        out[f"torch_{d}_rel_err"] = float(np.linalg.norm((theirs - ours).ravel().astype(np.float64))
                                          / max(np.linalg.norm(ours.ravel().astype(np.float64)), 1e-300))
        ts = []
        for _ in range(repeat):
            t0 = time.process_time()
            fn()
            ts.append(time.process_time() - t0)
        out[f"torch_{d}_s"] = float(np.median(ts))
    return out


def profile_layer(name, layer, in_shape, dtype, repeat, per_fault, torch=False):
    x = np.random.default_rng(1).random(in_shape).astype(dtype)
    if isinstance(layer, (ReLU,)):
        x -= 0.5
    y, cache = layer.forward(x)
    g = np.random.default_rng(2).random(y.shape).astype(dtype)
    ref_f = ref_b = None
    row = {"layer": name, "type": type(layer).__name__, "in_shape": list(in_shape), "out_shape": list(y.shape)}
    if isinstance(layer, Conv2D):
        N, O, Ho, Wo = y.shape
        K = layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
        P = N * Ho * Wo
        row["flops"] = 2 * O * K * P
        ref_f, ref_b = gemm(O, K, P, dtype), gemm(K, O, P, dtype)
    elif isinstance(layer, Dense):
        N = in_shape[0]
        row["flops"] = 2 * N * layer.in_features * layer.out_features
        ref_f, ref_b = (
            gemm(N, layer.in_features, layer.out_features, dtype),
            gemm(N, layer.out_features, layer.in_features, dtype),
        )
    for d, fn, ref in (("forward", lambda: layer.forward(x), ref_f),
                       ("backward", lambda: layer.backward(g, cache, "gradient"), ref_b)):
        r = profile_call(fn, repeat, per_fault, ref)
        row[f"{d}_s"], row[f"{d}_steps"], row[f"{d}_faults"] = r["s"], r["steps"], r["faults"]
        if ref is not None:
            row[f"gemm_{d}_s"], row[f"{d}_share"] = r["gemm_s"], r["share"]
            row[f"gemm_{d}_gflops"] = row["flops"] / r["gemm_s"] / 1e9
    if torch and isinstance(layer, Conv2D):
        row.update(torch_conv(layer, x, g, repeat))
    return row


def run(models, dtype, weights, repeat, log=print, batch=1, torch=False):
    per_fault = fault_cost()
    log(f"one minor page fault: {1e6 * per_fault:.2f} µs of CPU")
    out = {"fault_s": per_fault, "models": {}}
    for m in models:
        if m == "resnet18":
            layers = [(n, layer, (batch,) + s[1:]) for n, layer, s in resnet18_layers()]
        else:
            model = alexnet() if m == "alexnet" else vgg(m)
            layers = model_layers(model, (batch, 3, 224, 224))
        rows = []
        for name, layer, shape in layers:
            cast_params(layer, weights)
            r = profile_layer(name, layer, shape, dtype, repeat, per_fault, torch)
            rows.append(r)
            share = ""
            if "forward_share" in r:
                share = f"  GEMM-rate share fwd {100 * r['forward_share']:5.1f}% bwd {100 * r['backward_share']:5.1f}%"
            if "torch_forward_s" in r:
                share += f"  torch fwd {1e3 * r['torch_forward_s']:.2f} bwd {1e3 * r['torch_backward_s']:.2f} ms"
            log(f"{m:8} {name[:34]:34} fwd {1e3 * r['forward_s']:8.2f} ms  bwd {1e3 * r['backward_s']:8.2f} ms{share}")
        out["models"][m] = rows
    return out


# -- tables ----------------------------------------------------------------------------------------
def _ms(v):
    return f"{1e3 * v:.2f}"


def step_table(rows, direction):
    """Markdown: conv layers (and the model's other layer types summed) with the steps of ``direction``."""
    key = f"{direction}_steps"
    torch = any(f"torch_{direction}_s" in r for r in rows)
    head = "| layer | out | ms | " + " | ".join(STEPS) + " | GEMM-rate ms | share |"
    head += " torch ms | xattr / torch | GEMM-rate / torch | torch agrees |" if torch else ""
    lines = [head, "|---|---|---:|" + "---:|" * (len(STEPS) + 2) + ("---:|" * 4 if torch else "")]
    others = defaultdict(lambda: [0.0, 0])
    for r in rows:
        if r["type"] in ("Conv2D", "Dense"):
            o = r["out_shape"]
            steps = " | ".join(_ms(max(0.0, r[key][s])) for s in STEPS)
            lines.append(f"| {r['layer']} | {o[1]}×{o[2]}×{o[3]}" if len(o) == 4 else f"| {r['layer']} | {o[1]}")
            lines[-1] += (
                f" | {_ms(r[f'{direction}_s'])} | {steps} | {_ms(r[f'gemm_{direction}_s'])} | "
                f"{100 * r[f'{direction}_share']:.0f}% |"
            )
            if f"torch_{direction}_s" in r:
                tt = r[f"torch_{direction}_s"]
                lines[-1] += (f" {_ms(tt)} | {r[f'{direction}_s'] / tt:.2f} | {r[f'gemm_{direction}_s'] / tt:.2f} | "
                              f"{r[f'torch_{direction}_rel_err']:.0e} |")
            elif torch:
                lines[-1] += " | | | |"
        else:
            others[r["type"]][0] += r[f"{direction}_s"]
            others[r["type"]][1] += 1
    for t, (s, n) in others.items():
        lines.append(f"| {n} × {t} | | {_ms(s)} |" + " |" * len(STEPS) + " | |" + (" | | | |" if torch else ""))
    return "\n".join(lines)


def summary(rows):
    """Totals per step over the conv layers, and the time of the other layer types (forward + backward)."""
    tot = defaultdict(float)
    conv_t = gemm_t = torch_t = 0.0
    other = defaultdict(float)
    for r in rows:
        if r["type"] == "Conv2D":
            for d in ("forward", "backward"):
                for s in STEPS:
                    tot[s] += r[f"{d}_steps"][s]
                conv_t += r[f"{d}_s"]
                gemm_t += r[f"gemm_{d}_s"]
                torch_t += r.get(f"torch_{d}_s", np.nan)
        else:
            other[r["type"]] += r["forward_s"] + r["backward_s"]
    out = {"conv_s": conv_t, "conv_gemm_rate_s": gemm_t, "conv_steps_s": dict(tot), "other_layers_s": dict(other)}
    if np.isfinite(torch_t):
        out["conv_torch_s"] = torch_t
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="vgg11,vgg16,alexnet,resnet18")
    ap.add_argument("--dtype", default="float32", help="input dtype")
    ap.add_argument("--weights", default=None, help="weights' dtype (default: the input's; float64 shows the casts)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batch", type=int, default=1, help="images per call (IG and SmoothGrad chunks: 2-50)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--markdown", action="store_true", help="print the per-step tables")
    ap.add_argument("--torch", action="store_true",
                    help="time torch's conv2d forward and input gradient of every conv layer too (the bench extra)")
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    dtype = np.dtype(args.dtype)
    weights = np.dtype(args.weights or args.dtype)
    meta = {"command": "python " + " ".join([sys.argv[0]] + (argv or sys.argv[1:])), "machine": platform.machine(),
            "cpu": platform.processor(), "numpy": np.__version__, "load_average_before": list(os.getloadavg()),
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "dtype": dtype.name,
            "weights": weights.name, "threads": 1, "batch": args.batch}
    with threadpool_limits(limits=1, user_api="blas"):
        res = run(
            args.models.split(","), dtype, weights, args.repeat, log=lambda s: print(s, flush=True), batch=args.batch,
            torch=args.torch,
        )
    meta["load_average_after"] = list(os.getloadavg())
    res["meta"] = meta
    for m, rows in res["models"].items():
        s = summary(rows)
        res.setdefault("summary", {})[m] = s
        steps = ", ".join(f"{k} {1e3 * v:.1f}" for k, v in s["conv_steps_s"].items() if abs(v) > 5e-5)
        print(
            f"\n{m}: conv layers {1e3 * s['conv_s']:.1f} ms (fwd + bwd) against {1e3 * s['conv_gemm_rate_s']:.1f} ms "
            "at the "
            f"GEMM rate ({100 * s['conv_gemm_rate_s'] / s['conv_s']:.0f}%); steps: {steps}; other layers: "
            + ", ".join(f"{k} {1e3 * v:.1f}" for k, v in s["other_layers_s"].items())
        )
        if "conv_torch_s" in s:
            print(f"{m}: torch's conv2d {1e3 * s['conv_torch_s']:.1f} ms (fwd + bwd): xattr / torch "
                  f"{s['conv_s'] / s['conv_torch_s']:.2f}, NumPy's GEMM alone / torch "
                  f"{s['conv_gemm_rate_s'] / s['conv_torch_s']:.2f}")
        if args.markdown:
            for d in ("forward", "backward"):
                print(f"\n{m} {d}\n")
                print(step_table(rows, d))
    print(f"\nload average before {meta['load_average_before']}, after {meta['load_average_after']}")
    if args.json:
        os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
