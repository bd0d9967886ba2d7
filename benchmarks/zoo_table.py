"""The zoo table: torchvision's classifiers imported into xattr by torch and by ONNX, attributions against peers.

    python -m benchmarks.zoo_table   # every model: writes docs/zoo.md and benchmarks/results/zoo_table.json
    python -m benchmarks.zoo_table --models resnet18,mobilenet_v2 --out /tmp/zoo.md
    python -m benchmarks.zoo_table --render benchmarks/results/zoo_table.json   # re-render a saved run

For each model (``weights=None``, ``torch.manual_seed(0)`` before construction, float64, ``eval()``), at the
smallest input size it accepts whose Grad-CAM layer (the last conv block) still has a 2×2 map:

1. imports it with :func:`xattr.io.from_torch` and with :func:`xattr.io.from_onnx` from both torch exporters
   (TorchScript ``dynamo=False`` and dynamo), and reports the largest relative difference of the scores to torch's;
2. for gradient, guided backprop, Grad-CAM, integrated gradients (Gauss-Legendre, 16 nodes), DeepLIFT (Rescale,
   zero reference) and LRP-ε, the largest relative difference ``max |xattr - peer| / max |peer|`` to Captum, and for
   LRP-ε and LRP-z⁺ to Zennit (with its canonizers);
3. where a peer handles a layer differently (its documented choice), a *matched* column: xattr run with the peer's
   choice (e.g. guided backprop only at ``nn.ReLU`` modules), which must agree to round-off; the remaining
   difference is then explained by that choice alone.

Every number is computed, none is typed in; ``docs/zoo.md`` is written from them with the explanations below.
"""
from __future__ import annotations

import argparse
import copy
import io
import json
import os
import platform
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import xattr  # noqa: E402
from xattr import _targets  # noqa: E402
from xattr.io import ConversionError, from_onnx, from_torch  # noqa: E402

#: model -> (the module whose output is the last conv block (Grad-CAM's layer), a note on the architecture)
ZOO = {
    "vgg11": ("features.19", "conv-ReLU-maxpool chain, AdaptiveAvgPool2d(7), three Linear"),
    "vgg16": ("features.29", "conv-ReLU-maxpool chain, AdaptiveAvgPool2d(7), three Linear"),
    "resnet18": ("layer4", "BasicBlocks (reused ReLU module), residual +, batch-norm"),
    "resnet50": ("layer4", "Bottlenecks (reused ReLU module), residual +, batch-norm"),
    "mobilenet_v2": ("features.18", "inverted residuals, depthwise convs, ReLU6, F.adaptive_avg_pool2d"),
    "mobilenet_v3_small": ("features.12", "Hardswish, squeeze-excitation (Hardsigmoid gate), residual +"),
    "efficientnet_b0": ("features.8", "SiLU, squeeze-excitation (Sigmoid gate), stochastic depth, residual +"),
    "squeezenet1_1": ("features.12", "Fire modules (torch.cat), ceil-mode max-pool, conv classifier"),
    "densenet121": ("features", "dense blocks (torch.cat of lists), pre-activation bn-relu-conv, F.relu"),
    "alexnet": ("features.11", "conv-ReLU-maxpool chain, AdaptiveAvgPool2d(6), three Linear"),
}

#: "no stabiliser" that still guards 0/0, where a matched run sets a peer's stabiliser to xattr's exact division
TINY = 1e-300

#: column order of the method table
METHODS = ["gradient", "guided backprop", "Grad-CAM", "IG (GL-16)", "DeepLIFT", "LRP-ε", "LRP-ε (Zennit)",
           "LRP-z⁺ (Zennit)"]


def rel(ours, theirs):
    """``max |ours - theirs| / max |theirs|`` (the scale of the peer's map); NaN if the peer's map is all zero."""
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    ours = np.asarray(ours).reshape(theirs.shape)
    scale = np.abs(theirs).max()
    return float(np.abs(ours - theirs).max() / scale) if scale > 0 else float("nan")


def randomise(model, seed=0):
    """Batch-norm statistics and affine parameters away from the identity, and every conv/linear bias drawn from
    N(0, 0.1²) (``torch.Generator`` seeded with ``seed``).

    torchvision initialises batch-norms to the identity and biases to zero, so a zero input gives zero at every
    layer: DeepLIFT with the zero reference would then be gradient × input on every model, and a batch-norm
    merge that changes the function would go unseen.  Running mean U(-0.5, 0.5), variance U(0.5, 1.5), weight
    U(0.5, 1.5), bias U(-0.5, 0.5)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g, dtype=m.running_mean.dtype) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=g, dtype=m.running_var.dtype) + 0.5)
                if m.weight is not None:
                    m.weight.copy_(torch.rand(n, generator=g, dtype=m.weight.dtype) + 0.5)
                    m.bias.copy_(torch.rand(n, generator=g, dtype=m.bias.dtype) - 0.5)
            elif isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.bias is not None:
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g, dtype=m.bias.dtype))
    return model


def build(name, seed=0):
    """torchvision's ``name`` with random weights (torch's seed ``seed`` before construction; :func:`randomise`),
    float64, eval."""
    import torch
    import torchvision

    torch.manual_seed(seed)
    return randomise(getattr(torchvision.models, name)(weights=None).double().eval(), seed)


def _module_output(net, path, x):
    """The output of submodule ``path`` (``""``: the model) on ``x``, cloned before in-place ops can change it."""
    import torch

    got = []
    mod = net.get_submodule(path)
    handle = mod.register_forward_hook(lambda m, i, o: got.append(o.detach().clone()))
    try:
        with torch.no_grad():
            net(torch.from_numpy(x))
    finally:
        handle.remove()
    return got[-1].numpy()


def smallest_size(net, cam_module, limit=512):
    """The smallest square input the model accepts with its Grad-CAM layer at least 2×2 (a map to look at)."""
    for s in range(8, limit + 1):
        try:
            out = _module_output(net, cam_module, np.zeros((1, 3, s, s)))
        except RuntimeError:
            continue
        if out.ndim == 4 and min(out.shape[2:]) >= 2:
            return s
    raise ValueError(f"no input size up to {limit} gives {cam_module!r} a 2x2 map")


def cam_node(net, model, path, x):
    """The xattr node whose output is the torch submodule ``path``'s output (the first in topological order, so
    that an identity after it, as SqueezeNet's classifier Dropout, is not taken instead)."""
    want = _module_output(net, path, x)
    tape = model.trace(x)
    for name in model.order:
        v = tape.value(name)
        if v.shape == want.shape and np.allclose(v, want, rtol=1e-9, atol=1e-12 * max(1.0, np.abs(want).max())):
            return name
    raise ValueError(f"no node of the xattr model computes the output of {path!r}")


# -- imports ---------------------------------------------------------------------------------------------
def _export(net, x, dynamo):
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            prog = torch.onnx.export(net, (torch.from_numpy(x),), dynamo=True, verbose=False)
            return prog.model_proto.SerializeToString()
        buf = io.BytesIO()
        torch.onnx.export(net, (torch.from_numpy(x),), buf, dynamo=False)
        return buf.getvalue()


def _first_line(exc):
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) < 400 else text[:400] + " ..."


def import_paths(net, x, onnx=True):
    """``{path: {"model", "forward", "seconds", "error", "nodes"}}`` for torch, ONNX (TorchScript) and ONNX (dynamo)."""
    import torch

    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    out = {}
    paths = [("torch", None)] + ([("onnx-ts", False), ("onnx-dynamo", True)] if onnx else [])
    for label, dynamo in paths:
        rec = {"model": None, "forward": None, "seconds": None, "error": None, "nodes": None}
        t0 = time.perf_counter()
        try:
            if dynamo is None:
                model = from_torch(net)
            else:
                try:
                    data = _export(net, x, dynamo)
                except Exception as exc:  # the exporter itself refuses
                    rec["error"] = f"torch's exporter refuses: {_first_line(exc)}"
                    out[label] = rec
                    continue
                t0 = time.perf_counter()
                model = from_onnx(data)
            rec["seconds"] = time.perf_counter() - t0
            rec["model"], rec["nodes"] = model, len(model)
            rec["forward"] = rel(model.forward(x), ref)
        except ConversionError as exc:
            rec["error"] = _first_line(exc)
        out[label] = rec
    return out


# -- peers -----------------------------------------------------------------------------------------------
def unshared(net):
    """A copy of ``net`` (an fx GraphModule) in which every call of a module has its own module.

    Captum's DeepLift and LRP keep per-module state, so a module called twice (torchvision's BasicBlock calls its
    ``relu`` twice) is refused by DeepLift ("used more than once"); the copy computes the same function."""
    import torch.fx as fx

    gm = fx.symbolic_trace(copy.deepcopy(net))
    seen = {}
    for node in gm.graph.nodes:
        if node.op != "call_module":
            continue
        k = seen.get(node.target, 0)
        seen[node.target] = k + 1
        if k:
            new = f"{node.target.replace('.', '_')}_call{k}"
            gm.add_submodule(new, copy.deepcopy(gm.get_submodule(node.target)))
            node.target = new
    gm.recompile()
    return gm


def _torch_type(net, node):
    """The torch module type behind an xattr node named by :func:`from_torch` (None for functions)."""
    path = node
    base, _, suffix = node.rpartition("_")
    if base and suffix.isdigit():
        try:
            net.get_submodule(node)
        except AttributeError:
            path = base
    try:
        return type(net.get_submodule(path))
    except AttributeError:
        return None


def captum_guided_composite(net, model):
    """Captum's GuidedBackprop: the guided rule at ``nn.ReLU`` modules only, the gradient everywhere else."""
    import torch

    guided = {n for n in model.order if _torch_type(net, n) is torch.nn.ReLU}
    return lambda name, layer: ("guided" if name in guided else "gradient", {})


def deeplift_with(model, x, target, rescale_nodes, gradient_at=(), maxpool=None, threshold=1e-10):
    """DeepLIFT (zero reference) with the Rescale rule only at ``rescale_nodes`` among the nonlinear units, the
    gradient at the other units and at the nodes ``gradient_at``, and a max-pool mode per node (``maxpool``:
    ``{node: mode}``, default xattr's ``"gradient"``).

    This is Captum's DeepLift: it hooks only the module types it lists (ReLU, ELU, LeakyReLU, Sigmoid, Tanh,
    Softplus, Softmax, MaxPool*), so ReLU6, Hardswish, SiLU, Hardsigmoid and every functional call (``F.relu``,
    ``x * gate``) back-propagate their gradient; its max-pool rule acts only where the pool's input is not
    the output of a hooked unit (whose hook has already replaced the gradient)."""
    from xattr.nn.activation import NONLINEAR_UNITS

    ref = np.zeros_like(x)
    tx, tr = model.trace(x), model.trace(ref)
    seed = _targets.seed(target, tx.output)
    maxpool = maxpool or {}

    def cell(name, layer):
        if name in gradient_at or isinstance(layer, NONLINEAR_UNITS) and name not in rescale_nodes:
            return "gradient", {}
        return "rescale", {"inp": tx[name], "ref": tr[name], "maxpool": maxpool.get(name, "gradient"),
                           "threshold": threshold}

    return tx.pull(seed, cell) * (x - ref)


def captum_maxpool_modes(net, model, hooked_units):
    """``{max-pool node: mode}``: Captum's own max-pool rule (xattr's ``maxpool="captum"``, where this xattr has it)
    unless the pool reads a unit Captum hooks (then its rule has no effect: ``"gradient"``)."""
    modes = {}
    have = "captum" in _deeplift_maxpool_modes()
    for n in model.order:
        if isinstance(model[n], xattr.nn.MaxPool2D):
            after_hooked = all(i in hooked_units for i in model.inputs_of(n))
            modes[n] = "gradient" if after_hooked or not have else "captum"
    return modes


def captum_deeplift_nodes(net, model):
    """Nodes Captum's DeepLift treats with its own rule (its SUPPORTED_NON_LINEAR module types)."""
    from captum.attr._core.deep_lift import SUPPORTED_NON_LINEAR

    return {n for n in model.order if _torch_type(net, n) in SUPPORTED_NON_LINEAR
            and not isinstance(model[n], xattr.nn.MaxPool2D)}


def lrp_with(model, x, target, epsilon, output, composite="epsilon", gradient_at=(), bn_stabilizer=None):
    """xattr's LRP (batch-norms after convs folded) with the plain gradient cell at the nodes ``gradient_at``.

    A peer's LRP works by hooks on modules: a functional call (``+``, ``torch.cat``, ``F.adaptive_avg_pool2d``,
    ``x * gate``, ``F.relu``) is not seen and back-propagates its gradient; ``gradient_at`` reproduces that.
    ``bn_stabilizer``: the z-rule's stabiliser at a batch-norm that follows no conv (xattr's is 1e-6), for this call.
    """
    from xattr.nn import norm

    saved = norm.LRP_BN_STABILIZER
    if bn_stabilizer is not None:
        norm.LRP_BN_STABILIZER = bn_stabilizer
    try:
        return _lrp_with(model, x, target, epsilon, output, composite, gradient_at)
    finally:
        norm.LRP_BN_STABILIZER = saved


def _lrp_with(model, x, target, epsilon, output, composite, gradient_at):
    from xattr.methods.lrp import _defaults, layer_rules
    from xattr.nn import BatchNorm2D, fold_batchnorm

    peer = _peer_types()
    if any(isinstance(layer, BatchNorm2D) and not isinstance(layer, peer["pass_bn"]) for layer in model):
        model = fold_batchnorm(model, strict=False)
    cells = layer_rules(model, composite, _defaults(epsilon, 0.25, 2.0, 1.0, None, None), "winner_take_all")
    tape = model.trace(x)
    seed = _targets.seed(target, tape.output)
    R = seed * tape.output if output == "score" else seed

    def rule(name, layer):
        if name in gradient_at and not isinstance(layer, peer["all"]):
            return "gradient", {}
        column, opts = cells[name]
        return column, {"inp": tape[name], **opts}

    return tape.pull(R, rule)


from xattr.nn.relevance import LRP_RULES  # noqa: E402


def _with_cell(base, cell, doc):
    """A subclass of the layer type ``base`` whose LRP cells are ``cell`` (for a matched run only)."""
    sub = type(f"_Peer{base.__name__}", (base,), {"__doc__": doc, "hooked": ()})  # "_": not a row of rule_table
    xattr.nn.defrule(sub, *LRP_RULES)(cell)
    return sub


def _fork_cell(layer, R, cache, inp=None):
    """the merge's gradient parts, times the input's value for each input that a rule module also reads
    Captum's LRP: relevance = (summed gradient) x input at every tensor a rule module reads"""
    parts = xattr.nn.find_rule(type(layer).__mro__[1], "gradient")(layer, R, cache)
    return tuple(p * xi if k in layer.hooked else p for k, (p, xi) in enumerate(zip(parts, inp.x)))


def _grad_merge_cell(layer, R, cache):
    """the merge's gradient parts (Zennit's hooks do not see a functional +, cat or *)"""
    return xattr.nn.find_rule(type(layer).__mro__[1], "gradient")(layer, R, cache)


def _pass_cell(layer, R, cache):
    """R (Zennit's Pass rule at a batch-norm it has not merged)"""
    return R


_PEER = {}


def _peer_types():
    """``(fork, grad, pass_bn)``: the matched runs' layer subclasses, made on first use (importing this script for
    :func:`randomise` adds no layer types to xattr's registry)."""
    if not _PEER:
        merges = (xattr.nn.Add, xattr.nn.Concat, xattr.nn.Multiply)
        _PEER["fork"] = {
            t: _with_cell(t, _fork_cell, "a functional merge as Captum's LRP hooks see it") for t in merges
        }
        _PEER["grad"] = {t: _with_cell(t, _grad_merge_cell, "a functional merge as Zennit's hooks see it")
                         for t in merges}
        _PEER["pass_bn"] = _with_cell(xattr.nn.BatchNorm2D, _pass_cell, "a batch-norm with Zennit's Pass rule")
        _PEER["all"] = tuple(_PEER["fork"].values()) + tuple(_PEER["grad"].values()) + (_PEER["pass_bn"],)
    return _PEER


def functional_nodes(net, model):
    """Nodes of ``model`` that come from function calls (fx's names), not from torch modules."""
    return {n for n in model.order if _torch_type(net, n) is None}


def captum_hooked(net):
    """Names (as :func:`from_torch` gives them) of the values Captum's LRP hooks: the tensors passed to a module with
    an LRP rule (every module but its SUPPORTED_NON_LINEAR_LAYERS: ReLU, Dropout, Tanh).  Read from torch.fx's graph
    of ``net``, where a ``torch.cat`` of one tensor (DenseNet's first layer) is still a tensor of its own."""
    import torch.fx as fx
    from captum.attr._core.lrp import SUPPORTED_NON_LINEAR_LAYERS

    gm = fx.symbolic_trace(net)
    modules = dict(gm.named_modules())
    names, calls, hooked = {}, {}, set()
    for node in gm.graph.nodes:
        if node.op == "call_module":
            k = calls.get(node.target, 0)
            calls[node.target] = k + 1
            names[node] = node.target if k == 0 else f"{node.target}_{k}"
            if type(modules[node.target]) not in SUPPORTED_NON_LINEAR_LAYERS:
                hooked.update(a for a in node.args if isinstance(a, fx.Node))
        else:
            names[node] = node.name
    return {names[n] for n in hooked}


def peer_twin(net, model, peer, pass_batchnorm=False):
    """``model`` with the functional merges as ``peer`` ("captum" or "zennit") treats them in LRP, and (Zennit
    without a canonizer) every batch-norm with the Pass rule; the forward pass is unchanged."""
    layers, funcs = {}, functional_nodes(net, model)
    hooked = captum_hooked(net) if peer == "captum" else set()
    types = _peer_types()
    for name in model.order:
        layer = model[name]
        if name in funcs and type(layer) in types["fork"]:
            new = copy.copy(layer)
            new.__class__ = types["fork" if peer == "captum" else "grad"][type(layer)]
            new.hooked = tuple(k for k, i in enumerate(model.inputs_of(name)) if i in hooked)
            layers[name] = new
        elif pass_batchnorm and type(layer) is xattr.nn.BatchNorm2D:
            new = copy.copy(layer)
            new.__class__ = types["pass_bn"]
            layers[name] = new
    return model.rebuild(layers=layers), funcs


def _captum_lrp(net, xt, target, epsilon=None, inplace=True):
    """Captum's LRP with IdentityRule set on the activations it has no rule for (its documented way out);
    ``epsilon``: every layer's EpsilonRule built with this ε instead of Captum's default 1e-9."""
    import torch
    from captum.attr import LRP
    from captum.attr._core.lrp import SUPPORTED_LAYERS_WITH_RULES, SUPPORTED_NON_LINEAR_LAYERS
    from captum.attr._utils.lrp_rules import EpsilonRule, IdentityRule

    net = copy.deepcopy(net)
    set_identity = []
    for m in net.modules():
        if not inplace and hasattr(m, "inplace"):
            m.inplace = False
    for m in net.modules():
        if len(list(m.children())) == 0 and type(m) not in SUPPORTED_LAYERS_WITH_RULES \
                and type(m) not in SUPPORTED_NON_LINEAR_LAYERS and not isinstance(m, torch.nn.Identity):
            m.rule = IdentityRule()
            set_identity.append(type(m).__name__)
        elif epsilon is not None and type(m) in SUPPORTED_LAYERS_WITH_RULES:
            m.rule = EpsilonRule(epsilon=epsilon)
    return LRP(net).attribute(xt, target=target), sorted(set(set_identity))


def captum_rows(net, model, x, target, cam_path, cam_name):
    """``{method: {"peer", "rel", "matched", "note"}}`` against Captum."""
    import torch
    from captum import attr as ca

    xt = torch.from_numpy(x)
    rows = {}

    def run(method, peer, ours_fn, theirs_fn, matched_fn=None, note="", matched_theirs=None):
        rec = {"peer": peer, "rel": None, "matched": None, "note": note}
        try:
            theirs = theirs_fn()
            if isinstance(theirs, tuple):
                theirs, extra = theirs
                if extra:
                    rec["workaround"] = extra
            rec["rel"] = rel(ours_fn(), theirs)
            if matched_fn is not None:
                other = theirs if matched_theirs is None else matched_theirs()[0]
                rec["matched"] = rel(matched_fn(), other)
        except Exception as exc:  # a peer's refusal is a result of the table
            rec["error"] = f"{type(exc).__name__}: {_first_line(exc)}"
        rows[method] = rec

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run("gradient", "Captum Saliency", lambda: xattr.gradient(model, x, target),
            lambda: ca.Saliency(net).attribute(xt, target=target, abs=False))
        guided = captum_guided_composite(net, model)
        run("guided backprop", "Captum GuidedBackprop", lambda: xattr.guided_backprop(model, x, target),
            lambda: ca.GuidedBackprop(net).attribute(xt, target=target),
            lambda: model.trace(x).pull(_targets.seed(target, model.forward(x)), guided))
        run("Grad-CAM", f"Captum LayerGradCam({cam_path})",
            lambda: xattr.grad_cam(model, x, target, layer=cam_name, relu=False, upsample=False),
            lambda: ca.LayerGradCam(net, net.get_submodule(cam_path)).attribute(xt, target=target),
            note=f"xattr node {cam_name!r}")
        run("IG (GL-16)", "Captum IntegratedGradients",
            lambda: xattr.integrated_gradients(model, x, target, steps=16, quadrature="gausslegendre"),
            lambda: ca.IntegratedGradients(net).attribute(xt, target=target, n_steps=16, method="gausslegendre"))
        dl_nodes = captum_deeplift_nodes(net, model)
        dl_pools = captum_maxpool_modes(net, model, dl_nodes)
        dl_funcs = functional_nodes(net, model)

        def captum_deeplift(eps=1e-10):
            try:
                return ca.DeepLift(net, eps=eps).attribute(xt, target=target), ""
            except RuntimeError as exc:
                if "more than once" not in str(exc) and "does not contain some of the input/output" not in str(exc):
                    raise
                return (ca.DeepLift(unshared(net), eps=eps).attribute(xt, target=target),
                        "Captum refuses the reused module; run on a copy with one module per call.")

        run("DeepLIFT", "Captum DeepLift", lambda: xattr.deeplift(model, x, target, reference=0.0),
            captum_deeplift, lambda: deeplift_with(model, x, target, dl_nodes, dl_funcs, dl_pools, threshold=1e-6),
            note="matched: Rescale only at Captum's module types, the gradient at functional calls, max-pool "
                 f"modes {sorted(set(dl_pools.values()))}, the secant's near-zero threshold 1e-6 on both sides",
            matched_theirs=lambda: captum_deeplift(1e-6))

        lrp_state = {}

        def captum_lrp(epsilon=None):
            try:
                out, identity = _captum_lrp(net, xt, target, epsilon, inplace=lrp_state.get("inplace", True))
            except KeyError:  # IdentityRule's input hook before its output hook: an in-place activation
                lrp_state["inplace"] = False
                out, identity = _captum_lrp(net, xt, target, epsilon, inplace=False)
            extra = f"Captum has no LRP rule for {', '.join(identity)}: IdentityRule set." if identity else ""
            if not lrp_state.get("inplace", True):
                extra += (" Captum's LRP fails (KeyError in IdentityRule's hook) with in-place activations: run with "
                          "inplace=False.")
            return out, extra.strip()

        twin, funcs = peer_twin(net, model, "captum")
        run("LRP-ε", "Captum LRP (ε = 1e-9)", lambda: lrp_with(model, x, target, 1e-9, "score"),
            captum_lrp, lambda: lrp_with(twin, x, target, TINY, "score", gradient_at=funcs, bn_stabilizer=TINY),
            note="matched: Captum's hooks (functional calls back-propagate their gradient, relevance = summed "
                 "gradient x input at every hooked tensor), ε = 1e-300 on both sides (also at batch-norms)",
            matched_theirs=lambda: captum_lrp(TINY))
    return rows


def _deeplift_maxpool_modes():
    from xattr.nn.pool import DEEPLIFT_MAXPOOL_MODES

    return DEEPLIFT_MAXPOOL_MODES


def _zennit_canonizers(name):
    from zennit.canonizers import SequentialMergeBatchNorm
    from zennit.torchvision import ResNetCanonizer, VGGCanonizer

    if name.startswith("resnet"):
        return "ResNetCanonizer", [ResNetCanonizer()]
    if name.startswith("vgg"):
        return "VGGCanonizer", [VGGCanonizer()]
    if name.startswith("densenet"):
        return None, []  # SequentialMergeBatchNorm merges conv2 into the next layer's norm1: see zennit_function_change
    return "SequentialMergeBatchNorm", [SequentialMergeBatchNorm()]


def _merged_batchnorms(instances):
    out = []
    for inst in instances:
        if getattr(inst, "batch_norm", None) is not None:
            out.append(inst.batch_norm)
        out += _merged_batchnorms(getattr(inst, "canonizers", None) or [])
    return out


def zennit_attr(net, x, target, canonizers, rule):
    """Zennit's relevance for the one-hot target with ``canonizers``; ``rule``: ``"epsilon"`` or ``"zplus"``.

    Stabilisers as xattr's: ε = 1e-6 in LRP-ε, the residual ``Sum`` module's ``Norm`` at 1e-6 (xattr's ``Add``
    cell), none elsewhere (1e-300, which only guards 0/0).  Zennit 0.5.1 merges a batch-norm into its conv and
    leaves it computing ``x / sqrt(1 + eps)``; the merged batch-norms get ``eps = 0`` (then exactly the identity).
    """
    import torch
    from zennit.attribution import Gradient
    from zennit.composites import LayerMapComposite
    from zennit.layer import Sum
    from zennit.rules import AlphaBeta, Epsilon, Norm, Pass
    from zennit.types import Activation, AvgPool, BatchNorm, Convolution, Linear

    tiny = TINY
    conv = Epsilon(epsilon=1e-6) if rule == "epsilon" else AlphaBeta(alpha=1, beta=0, stabilizer=tiny)
    layer_map = [(Activation, Pass()), (Sum, Norm(stabilizer=1e-6)), (AvgPool, Norm(stabilizer=tiny)),
                 (BatchNorm, Pass()), (Convolution, conv), (Linear, Epsilon(epsilon=1e-6))]
    net = copy.deepcopy(net)
    instances = []
    for c in canonizers:
        instances += c.apply(net)
    merged = _merged_batchnorms(instances)
    for bn in merged:
        bn.eps = 0.0
    try:
        comp = LayerMapComposite(layer_map=layer_map)
        xt = torch.from_numpy(x.copy()).requires_grad_(True)
        with torch.no_grad():
            k = net(xt).shape[1]
        onehot = torch.eye(k, dtype=torch.float64)[torch.as_tensor(np.atleast_1d(target))]
        with Gradient(model=net, composite=comp) as attributor:
            _, relevance = attributor(xt, onehot)
    finally:
        for inst in instances:
            inst.remove()
    return relevance


def zennit_function_change(net, x, canonizer):
    """How far a canonizer moves the scores (relative): 0 to round-off when it keeps the function."""
    import torch

    net = copy.deepcopy(net)
    with torch.no_grad():
        before = net(torch.from_numpy(x)).numpy()
        instances = canonizer.apply(net)
        for bn in _merged_batchnorms(instances):
            bn.eps = 0.0
        after = net(torch.from_numpy(x)).numpy()
    for inst in instances:
        inst.remove()
    return rel(after, before)


def zennit_rows(name, net, model, x, target):
    from xattr.nn import Conv2D, Dense

    rows = {}
    label, canonizers = _zennit_canonizers(name)
    note = f"canonizer {label}" if label else "no canonizer fits"
    if name.startswith("densenet"):
        from zennit.canonizers import SequentialMergeBatchNorm

        try:
            change = f"changes the scores by {zennit_function_change(net, x, SequentialMergeBatchNorm()):.1e}"
        except RuntimeError as exc:
            change = f"fails: {_first_line(exc)}"
        note += (f": SequentialMergeBatchNorm pairs each dense layer's conv2 with the next layer's norm1 (adjacent "
                 f"leaves; norm1 reads the concatenation) and {change}")
    twin, funcs = peer_twin(net, model, "zennit", pass_batchnorm=not canonizers)
    if label == "ResNetCanonizer":  # each block's + is a Sum module with the Norm rule: xattr's Add cell
        twin = model
        funcs = {n for n in funcs if not isinstance(model[n], xattr.nn.Add)}
    for method, rule, composite in [
        ("LRP-ε (Zennit)", "epsilon", "epsilon"),
        ("LRP-z⁺ (Zennit)", "zplus", {Dense: "epsilon", Conv2D: ("alphabeta", {"alpha": 1.0, "beta": 0.0})}),
    ]:
        rec = {"peer": f"Zennit {'ε' if rule == 'epsilon' else 'EpsilonPlus (z⁺ = α1β0)'}", "rel": None,
               "matched": None, "note": note}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                theirs = zennit_attr(net, x, target, canonizers, rule)
            rec["rel"] = rel(lrp_with(model, x, target, 1e-6, "one", composite=composite), theirs)
            rec["matched"] = rel(lrp_with(twin, x, target, 1e-6, "one", composite=composite, gradient_at=funcs), theirs)
        except Exception as exc:
            rec["error"] = f"{type(exc).__name__}: {_first_line(exc)}"
        rows[method] = rec
    return rows


# -- one model ---------------------------------------------------------------------------------------------
def run_model(name, onnx=True, zennit=True, log=print):
    cam_path, arch = ZOO[name]
    net = build(name)
    size = smallest_size(net, cam_path)
    x = np.random.default_rng(0).normal(size=(1, 3, size, size))
    import torch

    with torch.no_grad():
        target = int(net(torch.from_numpy(x)).argmax())
    log(f"{name}: input {size}x{size}, target {target}")
    paths = import_paths(net, x, onnx=onnx)
    result = {"model": name, "architecture": arch, "size": size, "target": target, "cam_module": cam_path,
              "imports": {k: {kk: vv for kk, vv in v.items() if kk != "model"} for k, v in paths.items()},
              "methods": {}}
    for k, v in paths.items():
        log(f"  import {k}: " + (f"forward {v['forward']:.1e} ({v['nodes']} nodes, {v['seconds']:.1f} s)"
                                 if v["error"] is None else v["error"]))
    if onnx and any(paths[k]["error"] for k in ("onnx-ts", "onnx-dynamo")):
        big = _onnx_size(name, net)
        if big and big != size:
            xb = np.random.default_rng(0).normal(size=(1, 3, big, big))
            extra = import_paths(net, xb, onnx=True)
            result["imports_at"] = {"size": big, "imports": {k: {kk: vv for kk, vv in v.items() if kk != "model"}
                                                             for k, v in extra.items() if k != "torch"}}
            for k, v in extra.items():
                if k != "torch":
                    log(f"  import {k} at {big}x{big}: " + (f"forward {v['forward']:.1e}" if v["error"] is None
                                                            else v["error"]))
    model = paths["torch"]["model"]
    if model is None:
        return result
    cam_name = cam_node(net, model, cam_path, x)
    result["cam_node"] = cam_name
    t0 = time.perf_counter()
    result["methods"].update(captum_rows(net, model, x, target, cam_path, cam_name))
    if zennit:
        result["methods"].update(zennit_rows(name, net, model, x, target))
    result["methods_seconds"] = time.perf_counter() - t0
    for m, r in result["methods"].items():
        log(f"  {m:18s} {r['peer']:40s} " + (f"{r['rel']:.1e}" if r.get("rel") is not None else r.get("error", "")) +
            (f"  matched {r['matched']:.1e}" if r.get("matched") is not None else ""))
    return result


def _onnx_size(name, net):
    """An input size at which the adaptive pool's output divides its input (the TorchScript exporter needs it)."""
    if name.startswith("vgg"):
        return 224  # features end at 7x7 = AdaptiveAvgPool2d(7)'s output
    if name == "alexnet":
        return 224  # features end at 6x6
    return None


# -- rendering ---------------------------------------------------------------------------------------------
def _fmt(v):
    if v is None:
        return "–"
    if v != v:
        return "n/a"
    return "0" if v == 0 else f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e+")


def _cell(rec):
    if rec is None:
        return "–"
    if rec.get("error"):
        return "refused¹" if rec.get("rel") is None else _fmt(rec["rel"])
    out = _fmt(rec["rel"])
    if rec.get("matched") is not None and rec["rel"] is not None and rec["rel"] > 1e-6:
        out += f" ({_fmt(rec['matched'])})"
    return out


def _tidy(msg):
    """A refusal without the list of everything supported (and the exporter's plea for pull requests)."""
    for cut in ("; from_onnx supports:", "; from_torch supports:", " Please feel free to request support"):
        msg = msg.split(cut)[0]
    return msg.rstrip(" .")


def _import_cell(rec):
    if rec is None:
        return "–"
    if rec["error"]:
        return "no"
    return _fmt(rec["forward"])


def _pending(rec):
    return bool(rec and rec.get("error") and "does not have" in rec["error"])


def render(results, meta):
    lines = [
        "# The model zoo: imports and peer agreement",
        "",
        "Generated by `python -m benchmarks.zoo_table` ("
        + meta.get("when", "")
        + "; "
        + meta.get("versions", "")
        + ";",
        f"{meta.get('seconds', 0) / 60:.0f} min on 2 shared cores). Do not edit by hand: rerun the command.",
        "",
        "torchvision classifiers with random weights (`weights=None`, `torch.manual_seed(0)` before construction, then",
        "batch-norm statistics and biases drawn too: `randomise` in the script), float64, `eval()`, one image `N(0, "
        "1)`",
        "(`numpy.random.default_rng(0)`), the target the predicted class, at the smallest input size each model "
        "accepts",
        "whose Grad-CAM layer (the last conv block) still has a 2×2 map.",
        "",
        "## Imports: largest relative difference of the scores to torch",
        "",
        "| model | input | `from_torch` | ONNX (TorchScript exporter) | ONNX (dynamo exporter) | nodes |",
        "|---|---|---|---|---|---|",
    ]
    notes = []
    for r in results:
        imp = r["imports"]
        lines.append(f"| {r['model']} | {r['size']}² | {_import_cell(imp.get('torch'))} | "
                     f"{_import_cell(imp.get('onnx-ts'))} | {_import_cell(imp.get('onnx-dynamo'))} | "
                     f"{(imp.get('torch') or {}).get('nodes') or '–'} |")
        if "imports_at" in r:
            at = r["imports_at"]
            lines.append(f"| {r['model']} | {at['size']}² | | {_import_cell(at['imports'].get('onnx-ts'))} | "
                         f"{_import_cell(at['imports'].get('onnx-dynamo'))} | |")
        for k, v in imp.items():
            # a pending layer is named once (the torch path); the ONNX paths then refuse the same layer
            if v and v.get("error") and not (k != "torch" and _pending(v) and _pending(imp.get("torch"))):
                notes.append(f"* **{r['model']}**, {k}: {_tidy(v['error'])}")
        for k, v in (r.get("imports_at", {}).get("imports", {}) or {}).items():
            if v and v.get("error"):
                notes.append(f"* **{r['model']}** at {r['imports_at']['size']}², {k}: {_tidy(v['error'])}")
    lines += [""] + (["Why an import is missing (\"no\"):", ""] + notes + [""] if notes else [])
    lines += [
        "## Attributions: largest relative difference `max |xattr − peer| / max |peer|`",
        "",
        "In parentheses (where the plain difference is above 1e-6): the difference to xattr run with the peer's own",
        "handling of the layers it treats differently (the *matched* run, see the explanations below); a matched",
        "difference at round-off shows that the stated handling is the whole difference.",
        "",
        "| model | " + " | ".join(METHODS) + " |",
        "|---|" + "---|" * len(METHODS),
    ]
    peer_notes = []
    for r in results:
        if not r["methods"]:
            lines.append(f"| {r['model']} | not imported (above) |" + " – |" * (len(METHODS) - 1))
            continue
        lines.append(f"| {r['model']} | " + " | ".join(_cell(r["methods"].get(m)) for m in METHODS) + " |")
        seen = set()
        for m in METHODS:
            rec = r["methods"].get(m)
            if not rec:
                continue
            for text in (rec.get("error"), rec.get("workaround"), rec.get("note") if "Zennit" in m else None):
                if text and ("canonizer" not in text or "fits" in text) and (m, text) not in seen and text not in {
                        t for _, t in seen}:
                    seen.add((m, text))
                    mark = "refused¹: " if text == rec.get("error") and rec.get("rel") is None else ""
                    peer_notes.append(f"* **{r['model']}**, {m} ({rec['peer']}): {mark}{_tidy(text)}")
    if peer_notes:
        lines += ["", "Peer runs that needed a workaround or failed (¹ no number: the peer raises):", ""] + peer_notes
    lines += ["", "Grad-CAM layers (torch module → xattr node): " + "; ".join(
        f"{r['model']} `{r['cam_module']}` → `{r['cam_node']}`" for r in results if r.get("cam_node")) + ".", ""]
    lines += EXPLANATIONS
    return "\n".join(lines) + "\n"


EXPLANATIONS = open(os.path.join(HERE, "zoo_explanations.md"), encoding="utf-8").read().splitlines() \
    if os.path.exists(os.path.join(HERE, "zoo_explanations.md")) else []


def _versions():
    import captum
    import torch
    import torchvision

    try:
        import zennit
        zv = zennit.__version__ if hasattr(zennit, "__version__") else "0.5.1"
    except Exception:
        zv = "absent"
    import onnx
    return (f"torch {torch.__version__}, torchvision {torchvision.__version__}, Captum {captum.__version__}, "
            f"Zennit {zv}, onnx {onnx.__version__}, Python {platform.python_version()}")


def _jsonable(results):
    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items() if not hasattr(x, "trace")}  # not the xattr models
        if isinstance(v, float) and v != v:
            return None
        return v

    return [clean(r) for r in results]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(ZOO), help="comma-separated names (default: all ten)")
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "zoo.md"))
    p.add_argument("--json", default=os.path.join(HERE, "results", "zoo_table.json"))
    p.add_argument("--no-onnx", action="store_true", help="skip the ONNX exports (they take most of the time)")
    p.add_argument("--no-zennit", action="store_true")
    p.add_argument("--render", metavar="JSON", help="only re-render a saved run")
    args = p.parse_args(argv)
    if args.render:
        with open(args.render, encoding="utf-8") as f:
            saved = json.load(f)
        text = render(saved["results"], saved["meta"])
    else:
        import torch

        torch.set_num_threads(1)
        results = []
        t0 = time.perf_counter()
        for name in args.models.split(","):
            results.append(run_model(name.strip(), onnx=not args.no_onnx, zennit=not args.no_zennit))
        meta = {
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "versions": _versions(),
            "seconds": time.perf_counter() - t0,
            "command": "python -m benchmarks.zoo_table " + " ".join(argv or sys.argv[1:]),
        }
        text = render(results, meta)
        if args.json:
            os.makedirs(os.path.dirname(args.json), exist_ok=True)
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump({"meta": meta, "results": _jsonable(results)}, f, indent=1)
    if args.out:
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
