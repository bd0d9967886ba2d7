"""xattr against Captum on the torchvision classifiers xattr can import: time, peak memory, agreement.

    python benchmarks/compare_zoo.py [--quick] [--models vgg11,alexnet] [--methods gradient,ig50]
                                     [--batches 1,8] [--dtypes float32,float64] [--threads 1,2]
                                     [--repeat 3] [--memory-budget-gb 6] [--max-call-seconds 900]
                                     [--json benchmarks/results/compare_zoo.json] [--resume]
    python benchmarks/compare_zoo.py --tables benchmarks/results/compare_zoo.json

**Models.**  torchvision's ``vgg11``, ``vgg16``, ``alexnet``, ``resnet18``, ``mobilenet_v2``, ``efficientnet_b0``
and ``densenet121`` with random weights (seed 0; biases and batch-norm statistics drawn too, so that nothing is
trivially zero), eval mode, in-place ReLUs switched off (Captum's hooks need them out of place; the same
function).  Each is imported with ``xattr.io.from_torch`` and, failing that, exported to ONNX (torch's
TorchScript exporter, opset 17) and read with ``xattr.io.from_onnx``; a model neither route imports is
listed with both reasons and skipped, so the table grows with the importers.  The import is accepted when
the scores agree with torch's in float64 to a relative 1e-10.

**Methods** (target class 3, zero baseline/reference, 224×224): gradient, guided backprop, Grad-CAM (the
last conv block's output, torchvision module named in ``GRADCAM_MODULE``; final ReLU, no upsampling),
IG with 50 Gauss–Legendre nodes, SmoothGrad with 50 samples (σ = 0.15 absolute), DeepLIFT-Rescale (xattr's
``maxpool="gradient"``, what Captum computes behind ReLU → MaxPool: docs/peers.md), LRP-ε (ε = 1e-9 on every
conv and linear layer; Captum's pools at ε = 1e-300, as benchmarks/compare_captum.py, 1.2e-38 in float32 where
1e-300 rounds to 0) and occlusion with
16×16 windows at stride 8 (mean of overlaps).  Captum's IG, SmoothGrad and occlusion are timed at their
default batching and at the best ``internal_batch_size`` / ``nt_samples_batch_size`` /
``perturbations_per_eval`` among a few candidates (one timed call each).

**Agreement before timing.**  Every pair is compared on the warm-up call of the timed setting itself
(same inputs, same dtype): relative L2 difference ``‖x − c‖ / ‖c‖`` at most ``TOL[dtype]``.  float64, 1e-6:
the check proper (round-off is ~1e-14; Captum's float32 Gauss–Legendre weights give ~3e-9).  float32, 1e-2:
a max-pool switch or ReLU that flips under float32 rounding moves a whole gradient entry (VGG-11 at this
input: one of 25088 switches flips at ``features.15``, 5.7e-3 between xattr's float32 and float64 maps while
Captum's float32 map is 3e-4 from float64; each library's float32 IG is ~1e-3 from its float64 value).  A pair that
disagrees is recorded with its
difference and not timed.  SmoothGrad draws its noise independently in each library and is not compared.

**Timing.**  One process per (model, dtype, threads): NumPy's BLAS and torch at the same thread count
(threadpoolctl and ``torch.set_num_threads``); for each method and batch the two libraries run alternately,
the order flipping every run, after one warm-up each; CPU time (``time.process_time``, all threads) and wall
time, medians.  Fewer runs for slow calls (``--repeat`` at most, no more than ``--max-call-seconds`` in
total per side); Captum's occlusion, which costs one forward pass per window (729 per image at 224/16/8), is
skipped where its predicted time exceeds ``--max-call-seconds``.

**Memory.**  A fresh process per (model, dtype, method, side, batch): the model is loaded, the input built,
the peak resident set reset (``/proc/self/clear_refs``), one call made, and the peak increase over the resident
set before the call read from ``/proc/self/status`` (``VmHWM`` − ``VmRSS``): what the call itself needed,
BLAS's and torch's buffers included (``tracemalloc`` sees neither).  Every process runs under an address-space
limit of its size after loading plus ``--memory-budget-gb``; a call that exceeds it is recorded as such.

Needs the ``bench`` extra (torch, torchvision, captum, onnx, threadpoolctl).  Speed is never asserted.
``--quick``: vgg11 and alexnet, gradient and IG-50, batch 1, float32, 1 thread, 3 runs (~10 min).
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import os
import pickle
import platform
import resource
import subprocess
import sys
import time
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))  # the xattr of this checkout (the worker processes get the same)

ZOO = ("vgg11", "vgg16", "alexnet", "resnet18", "mobilenet_v2", "efficientnet_b0", "densenet121")
METHODS = (
    "gradient",
    "guided_backprop",
    "grad_cam",
    "ig50",
    "smoothgrad50",
    "deeplift",
    "lrp_epsilon",
    "occlusion16/8",
)
#: the module whose output Grad-CAM explains (the last conv block's output; ReLU modules where the block ends in one)
GRADCAM_MODULE = {"vgg11": "features.19", "vgg16": "features.29", "alexnet": "features.11", "resnet18": "layer4",
                  "mobilenet_v2": "features.18", "efficientnet_b0": "features.8", "densenet121": "features"}
TARGET = 3
SIZE = 224
SG_SIGMA = 0.15
#: relative L2 difference allowed between the two libraries' maps (see the module docstring): float64 is the
#: agreement check proper; in float32 a max-pool switch or a ReLU that flips under rounding moves a whole
#: gradient entry (VGG-11, one of 25088 switches at features.15 flips: 5.7e-3 between xattr's float32 and
#: float64 maps; IG: each library's float32 map is ~1e-3 from its float64 value).
TOL = {"float64": 1e-6, "float32": 1e-2}


def tolerance(method, dtype):
    return TOL[dtype]


CACHE = os.environ.get("XATTR_ZOO_CACHE", os.path.join("/tmp", "xattr_zoo_cache"))


# -- models ------------------------------------------------------------------------------------------
def torch_model(name, seed=0):
    """torchvision's ``name``, random weights (seed), biases and batch-norm statistics drawn, eval, no in-place ops."""
    import torch
    import torchvision

    torch.manual_seed(seed)
    m = getattr(torchvision.models, name)(weights=None).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for mod in m.modules():
            if hasattr(mod, "inplace"):
                mod.inplace = False
            if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)) and mod.bias is not None:
                mod.bias.copy_(torch.rand(mod.bias.shape, generator=g) * 0.1 - 0.05)
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.copy_(torch.rand(mod.running_mean.shape, generator=g) * 0.2 - 0.1)
                mod.running_var.copy_(torch.rand(mod.running_var.shape, generator=g) * 0.5 + 0.75)
                mod.bias.copy_(torch.rand(mod.bias.shape, generator=g) * 0.1 - 0.05)
    return m


def import_model(name, tm, log=print):
    """``(xattr model, route, reasons)``: from_torch, else ONNX; None if neither gives the same scores."""
    import torch

    import xattr.io

    x = np.random.default_rng(5).random((2, 3, SIZE, SIZE))
    with torch.no_grad():
        ref = tm.double()(torch.tensor(x)).numpy()
    tm.float()
    reasons = {}

    def agrees(xm):
        y = np.asarray(xm.forward(x))
        err = float(np.abs(y - ref).max() / np.abs(ref).max())
        if err > 1e-10:
            raise ValueError(f"scores differ from torch's by {err:.1e} (relative, float64)")
        return err

    try:
        import copy

        xm = xattr.io.from_torch(copy.deepcopy(tm).double())
        return xm, "from_torch", {"forward_rel_err": agrees(xm)}
    except Exception as exc:  # noqa: BLE001 - the reason is the result
        reasons["from_torch"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
    try:
        buf = io.BytesIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            torch.onnx.export(tm, (torch.zeros(1, 3, SIZE, SIZE),), buf, dynamo=False, opset_version=17)
        xm = xattr.io.from_onnx(buf.getvalue())
        reasons["forward_rel_err"] = agrees(xm)
        return xm, "from_onnx", reasons
    except Exception as exc:  # noqa: BLE001
        reasons["from_onnx"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
    return None, None, reasons


def cast_model(xm, dtype):
    """A copy of ``xm`` with every parameter in ``dtype`` (what Captum gets: ``module.to(dtype)``).

    xattr computes a float32 input with float32 weights; float64 weights are cast per call, which on VGG's
    123M dense weights costs more than the products themselves."""
    from xattr.nn.base import replaced

    layers = {}
    for name in xm.order:
        layer = xm[name]
        params = {p: getattr(layer, p).astype(dtype) for p in layer.params}
        layers[name] = replaced(layer, **params) if params else layer
    return xm.rebuild(layers=layers)


def prepare(names, log=print):
    """Import every model once; cache the torch state dict and the xattr model (pickle) for the worker processes."""
    import torch

    os.makedirs(CACHE, exist_ok=True)
    out = {}
    for name in names:
        t0 = time.perf_counter()
        tm = torch_model(name)
        xm, route, info = import_model(name, tm, log)
        entry = {"route": route, **info}
        if xm is not None:
            torch.save(tm.state_dict(), os.path.join(CACHE, f"{name}.pt"))
            with open(os.path.join(CACHE, f"{name}.xattr.pkl"), "wb") as fh:
                pickle.dump(xm, fh, protocol=pickle.HIGHEST_PROTOCOL)
            entry["gradcam_node"] = gradcam_node(name, tm, xm)
        out[name] = entry
        status = f"imported by {route}" if route else "NOT imported"
        log(f"{name}: {status} ({time.perf_counter() - t0:.0f} s); " + "; ".join(f"{k}: {v}" for k, v in info.items()))
    return out


def load(name, dtype, weights=None, fold_bn=False):
    """Cached ``(torch model in dtype, xattr model with weights in ``weights`` (default: dtype))``.

    ``fold_bn``: the xattr model with every conv → batch-norm pair folded into one conv
    (:func:`xattr.nn.norm.fold_batchnorm`, the same function to round-off; Captum keeps torch's model as it is)."""
    import torch

    from xattr.nn.norm import fold_batchnorm

    tm = torch_model(name)
    tm.load_state_dict(torch.load(os.path.join(CACHE, f"{name}.pt")))
    tm = tm.to(getattr(torch, dtype)).eval()
    with open(os.path.join(CACHE, f"{name}.xattr.pkl"), "rb") as fh:
        xm = pickle.load(fh)
    xm = cast_model(xm, np.dtype(weights or dtype))
    return tm, (fold_batchnorm(xm, strict=False) if fold_bn else xm)


def module(tm, path):
    m = tm
    for part in path.split("."):
        m = m[int(part)] if part.isdigit() else getattr(m, part)
    return m


def gradcam_node(name, tm, xm):
    """The xattr node computing the output of torch module ``GRADCAM_MODULE[name]`` (found by value)."""
    import torch

    x = np.random.default_rng(6).random((1, 3, SIZE, SIZE))
    seen = {}
    def keep(mod, inputs, output):  # returns None: a forward hook's return value would replace the output
        seen["a"] = output.detach().numpy()

    h = module(tm, GRADCAM_MODULE[name]).register_forward_hook(keep)
    with torch.no_grad():
        tm.double()(torch.tensor(x))
    h.remove()
    tm.float()
    want = seen["a"]
    tape = xm.trace(x)
    for n in reversed(xm.order):
        v = np.asarray(tape.value(n))
        if v.shape == want.shape and np.allclose(v, want, rtol=1e-9, atol=1e-12 * np.abs(want).max()):
            return n
    return None


# -- the methods -------------------------------------------------------------------------------------
def methods(name, tm, xm, batch, gradcam_at):
    """``name -> (xattr fn(x), captum fn(xt, knob), knob name or None, candidates, comparable)``."""
    import captum.attr as ca
    import torch

    import xattr
    from xattr.methods.path import integrated_gradients
    from xattr.methods.smoothing import smoothgrad

    out = {}
    t = TARGET
    out["gradient"] = (lambda x: xattr.gradient(xm, x, t),
                       lambda xt, k: ca.Saliency(tm).attribute(xt, target=t, abs=False), None, (), True)
    out["guided_backprop"] = (lambda x: xattr.guided_backprop(xm, x, t),
                              lambda xt, k: ca.GuidedBackprop(tm).attribute(xt, target=t), None, (), True)
    if gradcam_at is not None:
        out["grad_cam"] = (
            lambda x: xattr.grad_cam(xm, x, t, layer=gradcam_at, relu=True, upsample=False),
            lambda xt, k: ca.LayerGradCam(tm, module(tm, GRADCAM_MODULE[name])).attribute(
                xt, target=t, relu_attributions=True
            ),
            None,
            (),
            True,
        )
    rows = 50 * batch
    out["ig50"] = (
        lambda x: integrated_gradients(xm, x, t, baseline=0.0, steps=50, quadrature="gausslegendre"),
        lambda xt, k: ca.IntegratedGradients(tm).attribute(xt, baselines=0.0, target=t, n_steps=50,
                                                           method="gausslegendre", internal_batch_size=k),
        "internal_batch_size", sorted({max(1, rows // d) for d in (2, 8, 50)}), True)
    out["smoothgrad50"] = (
        lambda x: smoothgrad(xattr.gradient, xm, x, t, n=50, sigma=SG_SIGMA, sigma_is="absolute", rng=0),
        lambda xt, k: ca.NoiseTunnel(ca.Saliency(tm)).attribute(
            xt, nt_type="smoothgrad", nt_samples=50, stdevs=SG_SIGMA, target=t, abs=False, nt_samples_batch_size=k
        ),
        "nt_samples_batch_size",
        (2, 10, 25),
        False,
    )
    out["deeplift"] = (lambda x: xattr.deeplift(xm, x, t, reference=0.0, rule="rescale", maxpool="gradient"),
                       lambda xt, k: ca.DeepLift(tm).attribute(xt, baselines=0.0, target=t), None, (), True)

    def captum_lrp(xt, k):
        import copy

        from captum.attr._utils.lrp_rules import EpsilonRule

        net = copy.deepcopy(tm)
        for mod in net.modules():
            if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
                mod.rule = EpsilonRule(epsilon=1e-9)
            elif isinstance(mod, (torch.nn.MaxPool2d, torch.nn.AvgPool2d, torch.nn.AdaptiveAvgPool2d)):
                # a stabiliser that only keeps 0/0 away: 1e-300 rounds to 0 in float32 (and 0/0 = NaN at an
                # all-zero pool window), so the smallest normal number of the dtype there
                mod.rule = EpsilonRule(epsilon=1e-300 if xt.dtype == torch.float64 else 1.2e-38)
        return ca.LRP(net).attribute(xt, target=t)

    out["lrp_epsilon"] = (lambda x: xattr.lrp(xm, x, t, composite="epsilon", epsilon=1e-9), captum_lrp, None, (), True)
    n_win = ((SIZE - 16) // 8 + 1) ** 2
    out["occlusion16/8"] = (
        lambda x: xattr.occlusion(xm, x, t, window=16, stride=8, baseline=0.0, aggregate="mean"),
        lambda xt, k: ca.Occlusion(tm).attribute(
            xt,
            sliding_window_shapes=(3, 16, 16),
            strides=(3, 8, 8),
            baselines=0.0,
            target=t,
            perturbations_per_eval=k or 1,
        ),
        "perturbations_per_eval",
        (8, 32),
        True,
    )
    out["occlusion16/8"][1].windows = n_win
    return out


def rel_l2(ours, theirs):
    ours = np.asarray(ours, dtype=np.float64)
    theirs = np.asarray(theirs, dtype=np.float64)
    if ours.ndim == 4 and ours.shape[1] == 1 and theirs.ndim == 4 and theirs.shape[1] > 1:
        theirs = theirs[:, :1]  # occlusion: Captum repeats the map over the channels it hides together
    theirs = theirs.reshape(ours.shape)
    return float(np.linalg.norm(ours - theirs) / max(np.linalg.norm(theirs), 1e-300))


# -- the worker processes ----------------------------------------------------------------------------
def limit_memory(budget_gb):
    """Address-space limit: this process's size now plus ``budget_gb`` (a call beyond it fails cleanly)."""
    with open("/proc/self/status") as fh:
        vm = {ln.split(":")[0]: int(ln.split()[1]) * 1024 for ln in fh if ln.startswith(("VmSize", "VmRSS", "VmHWM"))}
    lim = vm["VmSize"] + int(budget_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    return lim


def status():
    with open("/proc/self/status") as fh:
        return {ln.split(":")[0]: int(ln.split()[1]) * 1024 for ln in fh if ln.startswith(("VmRSS", "VmHWM"))}


def set_threads(n):
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    return threadpool_limits(limits=n, user_api="blas")


def run_memory(spec):
    """One call in a fresh process: peak resident-set increase (bytes) over the resident set before it."""
    import torch

    _limits = set_threads(spec["threads"])  # noqa: F841 - kept alive
    tm, xm = load(spec["model"], spec["dtype"], spec.get("weights"), spec.get("fold_bn", False))
    entry = methods(spec["model"], tm, xm, spec["batch"], spec.get("gradcam_node"))[spec["method"]]
    x = np.random.default_rng(0).random((spec["batch"], 3, SIZE, SIZE)).astype(spec["dtype"])
    xt = torch.tensor(x, requires_grad=True)
    limit_memory(spec["budget_gb"])
    import ctypes
    import gc

    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # free heap pages back to the OS: reused free memory would hide a peak
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset VmHWM to the current resident set
    before = status()["VmRSS"]
    if spec["side"] == "xattr":
        entry[0](x)
    else:
        entry[1](xt, spec.get("knob"))
    return {"peak_bytes": status()["VmHWM"] - before, "rss_before_bytes": before}


def _once(fn):
    c, t = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - c, time.perf_counter() - t


def _call(fn):
    try:
        return _once(fn) + (None,)
    except (MemoryError, RuntimeError) as exc:  # the address-space limit (torch raises RuntimeError)
        return None, None, None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"


def run_timing(spec, log):
    """One process per (model, dtype, threads): every (method, batch) checked, then timed alternately."""
    import torch

    _limits = set_threads(spec["threads"])  # noqa: F841
    tm, xm = load(spec["model"], spec["dtype"], spec.get("weights"), spec.get("fold_bn", False))
    limit_memory(spec["budget_gb"])
    rows = []
    for batch in spec["batches"]:
        x = np.random.default_rng(0).random((batch, 3, SIZE, SIZE)).astype(spec["dtype"])
        xt = torch.tensor(x, requires_grad=True)
        table = methods(spec["model"], tm, xm, batch, spec.get("gradcam_node"))
        fwd = _once(functools.partial(tm, xt))[
            2
        ]  # one forward pass of this batch (wall), for Captum occlusion's prediction
        for mname in spec["methods"]:
            if mname not in table:
                rows.append({"method": mname, "batch": batch, "skipped": "no Grad-CAM layer found in the import"})
                continue
            fx, fc, knob, cands, comparable = table[mname]
            base = {
                "model": spec["model"],
                "method": mname,
                "batch": batch,
                "dtype": spec["dtype"],
                "threads": spec["threads"],
            }
            if mname.startswith("occlusion"):
                predicted = fwd * fc.windows  # one batch forward per window at perturbations_per_eval = 1
                if predicted > spec["max_call_s"]:
                    rows.append({**base, "skipped": f"Captum's occlusion predicted at {predicted:.0f} s per call "
                                 f"({fc.windows} forward passes), above --max-call-seconds"})
                    log(f"  {mname} b{batch}: skipped (Captum predicted {predicted:.0f} s)")
                    continue
            ox, cx, wx, err_x = _call(functools.partial(fx, x))  # warm-up, and the maps compared
            if err_x:
                rows.append({**base, "skipped": f"xattr failed: {err_x}"})
                log(f"  {mname} b{batch}: xattr failed: {err_x}")
                continue
            variants = [("default", None)] + ([("best", None)] if knob else [])
            for variant, k in variants:
                row = {**base, "captum_variant": variant, "captum_knob": knob}
                if variant == "best":
                    best, best_t = None, np.inf
                    for cand in cands:
                        _, cc, _, err = _call(functools.partial(fc, xt, cand))
                        row.setdefault("candidates_cpu_s", {})[str(cand)] = cc if err is None else err
                        if err is None and cc < best_t:
                            best, best_t = cand, cc
                    if best is None:
                        rows.append({**row, "skipped": "every candidate failed"})
                        continue
                    k = best
                row["captum_knob_value"] = k
                oc, cc, wc, err_c = _call(functools.partial(fc, xt, k))
                if err_c:
                    rows.append({**row, "skipped": f"Captum failed: {err_c}"})
                    log(f"  {mname} b{batch} [{variant}]: Captum failed: {err_c}")
                    continue
                if comparable:
                    err = rel_l2(ox, oc.detach().numpy())
                    row["rel_l2"] = err
                    row["tolerance"] = tol = tolerance(mname, spec["dtype"])
                    if not err <= tol:
                        rows.append({**row, "skipped": f"disagree: relative L2 {err:.2e} > {tol:.0e}"})
                        log(f"  {mname} b{batch} [{variant}]: DISAGREE {err:.2e}")
                        continue
                else:
                    row["rel_l2"] = None
                repeat = int(max(1, min(spec["repeat"], spec["max_call_s"] // max(wx, wc, 1e-3))))
                tx, tc = [], []
                for r in range(repeat):
                    order = [(fx, x, tx), (fc, xt, tc)] if r % 2 == 0 else [(fc, xt, tc), (fx, x, tx)]
                    for f, arg, acc in order:
                        _, c, w = _once(functools.partial(f, arg) if f is fx else functools.partial(f, arg, k))
                        acc.append((c, w))
                tx, tc = np.array(tx), np.array(tc)
                row.update({
                    "repeat": repeat,
                    "xattr_cpu_s": float(np.median(tx[:, 0])), "xattr_wall_s": float(np.median(tx[:, 1])),
                    "captum_cpu_s": float(np.median(tc[:, 0])), "captum_wall_s": float(np.median(tc[:, 1])),
                    "xattr_cpu_all": tx[:, 0].tolist(), "captum_cpu_all": tc[:, 0].tolist(),
                })
                row["ratio_cpu"] = row["xattr_cpu_s"] / row["captum_cpu_s"]
                row["ratio_wall"] = row["xattr_wall_s"] / row["captum_wall_s"]
                rows.append(row)
                kv = "" if knob is None else f" {knob}={k}"
                agree = "n/a" if row["rel_l2"] is None else f"{row['rel_l2']:.1e}"
                log(
                    f"  {mname:>14} b{batch} [{variant:>7}{kv}] agree {agree}  xattr {row['xattr_cpu_s']:8.3f} s  "
                    f"captum {row['captum_cpu_s']:8.3f} s CPU  ratio {row['ratio_cpu']:.2f} (wall "
                    f"{row['ratio_wall']:.2f}, n={repeat})"
                )
    return rows


def worker_main(kind, spec_json):
    spec = json.loads(spec_json)
    logs = []

    def log(s):
        logs.append(s)
        print(s, file=sys.stderr, flush=True)

    try:
        result = run_memory(spec) if kind == "memory" else {"rows": run_timing(spec, log)}
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        result = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}",
                  "traceback": traceback.format_exc()[-2000:]}
    print("RESULT " + json.dumps(result), flush=True)


def spawn(kind, spec, timeout=None):
    """Run a worker process; its last ``RESULT`` line as a dict."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(HERE)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    cmd = [sys.executable, os.path.abspath(__file__), f"--{kind}-worker", json.dumps(spec)]
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        return {"error": f"worker exited with code {p.returncode} and no result (killed: out of memory?)"}
    return json.loads(lines[-1][7:])


# -- driver ------------------------------------------------------------------------------------------
def load_average():
    return list(os.getloadavg())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="vgg11, alexnet; gradient, ig50; batch 1; float32; 1 thread")
    ap.add_argument("--models", default=None)
    ap.add_argument("--methods", default=None)
    ap.add_argument("--batches", default=None)
    ap.add_argument("--dtypes", default=None)
    ap.add_argument("--threads", default=None)
    ap.add_argument("--repeat", type=int, default=None)
    ap.add_argument("--memory-budget-gb", type=float, default=6.0)
    ap.add_argument("--max-call-seconds", type=float, default=900.0)
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    ap.add_argument("--xattr-weights", default=None, choices=("float64",),
                    help="keep xattr's weights in float64 whatever the input's dtype (cast per call)")
    ap.add_argument("--xattr-fold-batchnorm", action="store_true",
                    help="time xattr's model with conv → batch-norm pairs folded (fold_batchnorm); Captum's as is")
    ap.add_argument("--json", default=None)
    ap.add_argument("--resume", action="store_true", help="keep the cells already in --json")
    ap.add_argument("--tables", default=None, metavar="JSON", help="only print the tables of a saved run")
    ap.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--timing-worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_worker:
        return worker_main("memory", args.memory_worker)
    if args.timing_worker:
        return worker_main("timing", args.timing_worker)
    if args.tables:
        with open(args.tables) as fh:
            print_tables(json.load(fh))
        return None

    q = args.quick
    models = (args.models or ("vgg11,alexnet" if q else ",".join(ZOO))).split(",")
    mnames = (args.methods or ("gradient,ig50" if q else ",".join(METHODS))).split(",")
    batches = [int(b) for b in (args.batches or ("1" if q else "1,8")).split(",")]
    dtypes = (args.dtypes or ("float32" if q else "float32,float64")).split(",")
    threads = [int(t) for t in (args.threads or ("1" if q else "1,2")).split(",")]
    repeat = args.repeat or 3

    import captum
    import torch

    saved = {"rows": [], "memory": [], "models": {}}
    if args.resume and args.json and os.path.exists(args.json):
        with open(args.json) as fh:
            saved = json.load(fh)
    meta = {"command": "python benchmarks/compare_zoo.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or '?'}",
            "python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "captum": captum.__version__, "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "load_average_before": load_average(), "tolerance": TOL, "memory_budget_gb": args.memory_budget_gb,
            "xattr_fold_batchnorm": args.xattr_fold_batchnorm}
    saved.setdefault("meta_runs", []).append(meta)
    print(f"{meta['machine']}; numpy {np.__version__}, torch {torch.__version__}, captum {meta['captum']}; "
          f"load {meta['load_average_before']}", flush=True)

    def save():
        if args.json:
            os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
            with open(args.json, "w") as fh:
                json.dump(saved, fh, indent=1)

    info = prepare(models, log=lambda s: print(s, flush=True))
    saved["models"].update(info)
    save()
    done_t = {(r["model"], r["method"], r["batch"], r["dtype"], r["threads"], r.get("captum_variant"))
              for r in saved["rows"] if "model" in r}
    done_m = {(m["model"], m["method"], m["batch"], m["dtype"], m["side"], m.get("variant")) for m in saved["memory"]}
    for name in models:
        if info[name]["route"] is None:
            continue
        node = info[name].get("gradcam_node")
        for dtype in dtypes:
            if not args.no_memory:  # 1 thread: the peak hardly depends on the thread count
                for batch in batches:
                    for m in mnames:
                        knob_variants = [("default", None)]
                        for side in ("xattr", "captum"):
                            for variant, knob in (knob_variants if side == "captum" else [(None, None)]):
                                key = (name, m, batch, dtype, side, variant)
                                if key in done_m:
                                    continue
                                spec = {
                                    "model": name,
                                    "method": m,
                                    "batch": batch,
                                    "dtype": dtype,
                                    "side": side,
                                    "threads": 1,
                                    "budget_gb": args.memory_budget_gb,
                                    "gradcam_node": node,
                                    "knob": knob,
                                    "weights": args.xattr_weights,
                                    "fold_bn": args.xattr_fold_batchnorm,
                                }
                                r = spawn("memory", spec, timeout=3 * args.max_call_seconds + 600)
                                saved["memory"].append(
                                    {
                                        **{k: spec[k] for k in ("model", "method", "batch", "dtype", "side")},
                                        "variant": variant,
                                        **r,
                                        "load_average": load_average(),
                                    }
                                )
                                peak = f"{r['peak_bytes'] / 2**20:.0f} MiB" if "peak_bytes" in r else r.get("error")
                                print(f"memory {name} {m} b{batch} {dtype} {side}: {peak}", flush=True)
                                save()
            for th in threads:
                todo = [m for m in mnames if not all((name, m, b, dtype, th, v) in done_t
                                                      for b in batches for v in ("default", None))]
                if not todo:
                    continue
                spec = {"model": name, "dtype": dtype, "threads": th, "batches": batches, "methods": todo,
                        "repeat": repeat, "budget_gb": args.memory_budget_gb, "max_call_s": args.max_call_seconds,
                        "gradcam_node": node, "weights": args.xattr_weights, "fold_bn": args.xattr_fold_batchnorm}
                print(f"timing {name} {dtype} {th} thread(s): {', '.join(todo)} (load {load_average()})", flush=True)
                r = spawn("timing", spec)
                for row in r.get("rows", []):
                    saved["rows"].append({**spec_keys(spec), **row, "load_average": load_average()})
                if "error" in r:
                    saved["rows"].append({**spec_keys(spec), "error": r["error"], "traceback": r.get("traceback")})
                    print(f"  worker error: {r['error']}", flush=True)
                save()
    meta["load_average_after"] = load_average()
    meta["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    save()
    print()
    print_tables(saved)
    return saved


def spec_keys(spec):
    return {"model": spec["model"], "dtype": spec["dtype"], "threads": spec["threads"]}


# -- tables ------------------------------------------------------------------------------------------
def print_tables(saved):
    """Markdown: per model, ratios (CPU time, xattr/Captum) per method × (batch, dtype, threads), agreement and
    memory."""
    rows = [r for r in saved["rows"] if "method" in r]
    mem = {(m["model"], m["method"], m["batch"], m["dtype"], m["side"]): m for m in saved.get("memory", [])}
    for name, info in saved.get("models", {}).items():
        if info.get("route") is None:
            print(f"**{name}**: not imported. " + "; ".join(f"{k}: {v}" for k, v in info.items() if k != "route"))
            print()
            continue
        mine = [r for r in rows if r["model"] == name]
        if not mine:
            continue
        cols = sorted({(r["batch"], r["dtype"], r["threads"]) for r in mine}, key=lambda c: (c[1], c[0], c[2]))
        print(f"**{name}** (imported by {info['route']}; Grad-CAM at `{info.get('gradcam_node')}`)\n")
        print("| method | Captum | " + " | ".join(f"b{b} {d} {t}T" for b, d, t in cols) + " | agreement (rel. L2) |")
        print("|---|---|" + "---:|" * len(cols) + "---|")
        keys = []
        for r in mine:
            k = (r["method"], r.get("captum_variant") or "default")
            if k not in keys:
                keys.append(k)
        for m, v in keys:
            cells, agree = [], []
            for b, d, t in cols:
                r = next(
                    (
                        r
                        for r in mine
                        if (r["method"], r.get("captum_variant") or "default", r["batch"], r["dtype"], r["threads"])
                        == (m, v, b, d, t)
                    ),
                    None,
                )
                if r is None:
                    cells.append("")
                elif "ratio_cpu" in r:
                    kv = "" if r.get("captum_knob_value") is None else f" ({r['captum_knob_value']})"
                    cells.append(f"{r['ratio_cpu']:.2f}{kv}")
                    if r.get("rel_l2") is not None:
                        agree.append(r["rel_l2"])
                else:
                    cells.append("—")
            a = "not compared (own noise)" if m.startswith("smoothgrad") else (f"≤ {max(agree):.0e}" if agree else "")
            print(f"| {m} | {v} | " + " | ".join(cells) + f" | {a} |")
        print()
        mcols = sorted({(k[2], k[3]) for k in mem if k[0] == name})
        if mcols:
            print("| method | " + " | ".join(f"peak MiB b{b} {d}: xattr / Captum (ratio)" for b, d in mcols) + " |")
            print("|---|" + "---:|" * len(mcols))
            for m in dict.fromkeys(k[1] for k in mem if k[0] == name):
                cells = []
                for b, d in mcols:
                    xm_, cm_ = mem.get((name, m, b, d, "xattr")), mem.get((name, m, b, d, "captum"))
                    def fmt(e):
                        return "—" if e is None else (f"{e['peak_bytes'] / 2**20:.0f}" if "peak_bytes" in e else "fail")
                    ratio = ""
                    if xm_ and cm_ and "peak_bytes" in xm_ and "peak_bytes" in cm_ and cm_["peak_bytes"] > 0:
                        ratio = f" ({xm_['peak_bytes'] / cm_['peak_bytes']:.2f})"
                    cells.append(f"{fmt(xm_)} / {fmt(cm_)}{ratio}")
                print(f"| {m} | " + " | ".join(cells) + " |")
            print()
    skipped = [r for r in rows if "skipped" in r]
    if skipped:
        print("Not timed:\n")
        for r in skipped:
            print(f"- {r['model']} {r['method']} b{r['batch']} {r['dtype']} {r['threads']}T "
                  f"[{r.get('captum_variant', '')}]: {r['skipped']}")
    runs = saved.get("meta_runs", [])
    if runs:
        print(
            f"\nload average before {runs[0].get('load_average_before')}, after {runs[-1].get('load_average_after')}; "
            f"commands: " + "; ".join(f"`{m['command']}`" for m in runs)
        )


if __name__ == "__main__":
    main()
