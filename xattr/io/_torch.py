"""``from_torch``: a ``torch.nn.Module`` -> :class:`xattr.nn.Graph` (a chain: :class:`xattr.nn.Sequential`).

The module's forward is traced with ``torch.fx`` (symbolic tracing: the Python code runs once on
placeholder values and every tensor operation is recorded), and each recorded operation is mapped to
an xattr node:

* a call of a ``torch.nn`` module (``call_module``) becomes the matching layer, named by the module's
  path (``features.10``, ``layer3.1.conv2``); a module called twice (torchvision's ``BasicBlock`` calls
  its ``relu`` twice) gives ``layer1.0.relu`` and ``layer1.0.relu_1``;
* a function or tensor method (``torch.add``/``+``/``+=``, ``torch.cat``, ``torch.flatten``/``view``/
  ``reshape`` to ``(N, -1)``, ``mean`` over H, W, ``F.relu``, ``F.adaptive_avg_pool2d``, ``x * gate``,
  ...) becomes a layer named by fx (``add``, ``add_1``, ``cat_3``, ``flatten``);
* shape look-ups (``x.size(0)``, ``x.shape[0]``) are read, not converted; ``nn.Identity``,
  ``contiguous``/``clone`` and torchvision's ``stochastic_depth`` at inference are bypassed.

Anything else raises :class:`ConversionError` naming the fx node, the operation and the source line
that called it.  Nothing is approximated: a conversion either computes the module's function (to
float64 round-off) or is refused.
"""
from __future__ import annotations

import linecache
import operator
import os
import warnings

import numpy as np

from .. import nn as xnn
from ..nn import INPUT, Graph, Sequential
from ._common import (
    ConversionError,
    ancestors,
    conv_layer,
    dense_layer,
    optional_layer,
    pool_layer,
    require,
    unique_name,
)

SUPPORTED = (
    "modules Conv2d (any groups, zero padding), Linear, BatchNorm2d (eval), MaxPool2d, AvgPool2d, "
    "AdaptiveAvgPool2d, AdaptiveMaxPool2d, ReLU, ReLU6, Hardtanh, LeakyReLU, PReLU, Sigmoid, Tanh, SiLU, Hardswish, "
    "Hardsigmoid, GELU, Softplus, Flatten(1, -1), Dropout/Dropout1d/Dropout2d/AlphaDropout, Identity, ZeroPad2d, "
    "ConstantPad2d, a final Softmax (dropped); functions +, +=, torch.add, *, torch.mul, torch.cat (dim 1), "
    "torch.flatten/view/reshape to (N, -1), mean over (2, 3), torch.clamp, F.relu/relu6/hardtanh/leaky_relu/"
    "sigmoid/tanh/silu/hardswish/hardsigmoid/gelu/softplus, F.conv2d/F.linear on the module's parameters, "
    "F.max_pool2d/avg_pool2d/adaptive_avg_pool2d/adaptive_max_pool2d, F.pad (constant 0), F.dropout at inference, "
    "torchvision.ops.stochastic_depth at inference"
)


# -- values flowing through the conversion --------------------------------------------------------------
class _Data:
    """A tensor computed from the model input: the xattr node that produces it and what is known of it."""

    __slots__ = ("name", "rank", "pooled", "unit")

    def __init__(self, name, rank=4, pooled=False, unit=None):
        self.name, self.rank, self.pooled, self.unit = name, rank, pooled, unit


class _Batch:
    """The batch size ``x.size(0)`` (only used as the first entry of a reshape)."""


class _Shape:
    """``x.shape`` / ``x.size()`` of a data tensor: only its entry 0 (the batch size) is known."""


BATCH = _Batch()


def _source_line(stack_trace, skip):
    """``file:line: code`` of the innermost frame of an fx stack trace outside the folder ``skip`` (torch's own)."""
    if not stack_trace:
        return None
    frames = []
    for line in stack_trace.splitlines():
        s = line.strip()
        if s.startswith("File "):
            frames.append([s, None])
        elif frames and frames[-1][1] is None and s:
            frames[-1][1] = s
    for head, code in reversed(frames):
        try:
            path = head.split('"')[1]
            lineno = head.split(", line ")[1].split(",")[0]
        except IndexError:
            continue
        if path.startswith(skip + os.sep):
            continue
        where = f"{os.path.basename(path)}:{lineno}"
        return f"{where}: {code}" if code else where
    return None


def _traceback_line(exc):
    """``file:line: code`` of the innermost frame of ``exc``'s traceback outside torch itself."""
    import torch

    torch_dir = os.path.dirname(torch.__file__)
    tb, found = exc.__traceback__, None
    while tb is not None:
        fname = tb.tb_frame.f_code.co_filename
        if not fname.startswith(torch_dir + os.sep) and not fname.startswith(os.path.dirname(__file__)):
            found = (fname, tb.tb_lineno)
        tb = tb.tb_next
    if found is None:
        return None
    code = linecache.getline(found[0], found[1]).strip()
    return f"{os.path.basename(found[0])}:{found[1]}" + (f": {code}" if code else "")


def _target_name(node):
    t = node.target
    if node.op == "call_module":
        return f"module {t!r}"
    if node.op == "call_method":
        return f"Tensor.{t}"
    mod = getattr(t, "__module__", None) or ""
    name = getattr(t, "__name__", repr(t))
    mod = {"_operator": "operator", "torch._C._nn": "torch.nn.functional", "torch._C._VariableFunctions": "torch",
           "torch.functional": "torch"}.get(mod, mod)
    return f"{mod}.{name}" if mod else name


class _Converter:
    """Maps the nodes of one fx graph to xattr nodes (see the module docstring)."""

    def __init__(self, torch, gm, fold):
        self.torch, self.F, self.gm, self.fold = torch, torch.nn.functional, gm, fold
        self.modules = dict(gm.named_modules())
        self.env = {}
        self.triples = []  # (name, layer, inputs)
        self.fx_of = {}  # xattr name -> fx node (for messages)
        self.taken = set()
        self.calls = {}  # module path -> number of calls so far
        self.gap_candidates = []  # names of nodes that are global average pools keeping (N, C, 1, 1)
        self.output = None
        self.placeholder = None

    # -- messages --------------------------------------------------------------------------------
    def where(self, node):
        what = _target_name(node)
        if node.op == "call_module":
            what += f" ({type(self.modules[node.target]).__name__})"
        line = _source_line(node.meta.get("stack_trace") or getattr(node, "stack_trace", None),
                            os.path.dirname(self.torch.__file__))
        return f"fx node {node.name!r} ({what})" + (f" at {line}" if line else "")

    def fail(self, node, why):
        raise ConversionError(f"cannot convert {self.where(node)}: {why}")

    # -- helpers -----------------------------------------------------------------------------------
    def const(self, t):
        """A parameter/buffer tensor (float16/32/64, bfloat16) as a float64 NumPy array.

        It may share memory with the module's tensor: it is only ever assigned through a layer's checked
        setter, which copies (so later changes to the torch model do not leak in).
        """
        if not t.is_floating_point():
            raise ConversionError(f"a parameter of dtype {t.dtype} is not a floating-point weight")
        return t.detach().to("cpu", self.torch.float64).numpy()

    def data(self, node, value, what="input"):
        v = self.env.get(value) if isinstance(value, self.torch.fx.Node) else None
        if not isinstance(v, _Data):
            self.fail(node, f"its {what} must be a tensor computed from the model input, got {self._show(value)}")
        return v

    def _show(self, value):
        if isinstance(value, self.torch.fx.Node):
            v = self.env.get(value)
            if isinstance(v, np.ndarray):
                return f"the constant {value.name!r} of shape {v.shape}"
            if isinstance(v, (_Batch, _Shape)):
                return f"the shape value {value.name!r}"
            return f"{value.name!r}"
        return repr(value)

    def value(self, x):
        """A Python value with fx nodes replaced by what they hold."""
        if isinstance(x, self.torch.fx.Node):
            return self.env.get(x)
        if isinstance(x, (list, tuple)):
            return type(x)(self.value(v) for v in x)
        return x

    def add(self, node, layer, inputs, name=None, **known):
        if name is None:
            name = node.name
        name = unique_name(name, self.taken)
        self.triples.append((name, layer, tuple(i.name for i in inputs)))
        self.fx_of[name] = node
        first = inputs[0]
        info = dict(rank=first.rank, pooled=first.pooled, unit=None)
        info.update(known)
        self.env[node] = _Data(name, **info)
        if isinstance(layer, xnn.GlobalAvgPool2D) and info["rank"] == 4:
            self.gap_candidates.append(name)  # keeps (N, C, 1, 1): decided in resolve_gaps
        return name

    def module_name(self, node):
        path = node.target
        k = self.calls.get(path, 0)
        self.calls[path] = k + 1
        return path if k == 0 else f"{path}_{k}"

    # -- the walk ------------------------------------------------------------------------------------
    def run(self):
        graph = self.gm.graph
        for node in graph.nodes:
            if node.op == "placeholder":
                if self.placeholder is not None:
                    self.fail(node, f"the model takes more than one input ({self.placeholder.name!r} and "
                                    f"{node.name!r}); xattr models take one image batch")
                self.placeholder = node
                self.env[node] = _Data(INPUT, rank=4)
            elif node.op == "get_attr":
                self.env[node] = self.get_attr(node)
            elif node.op == "output":
                self.finish(node)
            elif node.op == "call_module":
                self.call_module(node)
            elif node.op == "call_function":
                self.call_function(node)
            elif node.op == "call_method":
                self.call_method(node)
            else:  # pragma: no cover - fx has no other opcodes
                self.fail(node, f"unknown fx opcode {node.op!r}")
        return self.build()

    def get_attr(self, node):
        obj = self.gm
        for part in node.target.split("."):
            obj = getattr(obj, part)
        if isinstance(obj, self.torch.Tensor):
            return self.const(obj)
        return obj

    def finish(self, node):
        out = node.args[0]
        if isinstance(out, (tuple, list)):
            if len(out) != 1:
                self.fail(node, f"the model returns {len(out)} values; xattr models return one score tensor")
            out = out[0]
        if isinstance(out, dict):
            self.fail(node, "the model returns a dict; xattr models return one score tensor")
        v = self.data(node, out, "output")
        if v.name == INPUT:
            raise ConversionError("the torch model has no layers to convert (its output is its input)")
        self.output = v.name

    def is_output_softmax(self, node):
        users = list(node.users)
        return len(users) == 1 and users[0].op == "output"

    def softmax(self, node, x, dim):
        if not self.is_output_softmax(node):
            self.fail(node, "a softmax is only supported as the model's last operation (it is dropped: xattr explains "
                            "the logits)")
        if dim not in (1, -1):
            self.fail(node, f"a final softmax over dim={dim} is not over the classes")
        label = node.target if node.op == "call_module" else node.name
        warnings.warn(
            f"from_torch: the final Softmax {label!r} was dropped; xattr explains the logits (pre-softmax scores)",
            UserWarning, stacklevel=4,
        )
        self.env[node] = x

    def build(self):
        if not self.triples:
            raise ConversionError("the torch model has no layers to convert")
        self.resolve_gaps()
        chain = all(t[2] == ((self.triples[k - 1][0],) if k else (INPUT,)) for k, t in enumerate(self.triples))
        if chain and self.output == self.triples[-1][0]:
            model = Sequential(*[(n, layer) for n, layer, _ in self.triples])
        else:
            used = ancestors(self.triples, self.output)
            triples = [(n, layer, ins if len(ins) > 1 else ins[0]) for n, layer, ins in self.triples if n in used]
            model = Graph(triples, output=self.output)
        if self.fold:
            model = xnn.fold_batchnorm(model, strict=False)
        return model

    def resolve_gaps(self):
        """A global average pool that keeps ``(N, C, 1, 1)`` is ``GlobalAvgPool2D`` where only flattens read it
        (so CAM sees the GAP -> dense head), ``AdaptiveAvgPool2D(1)`` elsewhere (a squeeze-and-excitation gate)."""
        if not self.gap_candidates:
            return
        consumers = {}
        for _, layer, ins in self.triples:
            for i in ins:
                consumers.setdefault(i, []).append(layer)
        for k, (n, _, ins) in enumerate(self.triples):
            if n not in self.gap_candidates:
                continue
            readers = consumers.get(n, [])
            if readers and all(isinstance(r, xnn.Flatten) for r in readers):
                continue  # already GlobalAvgPool2D
            node = self.fx_of[n]
            try:
                cls = optional_layer("AdaptiveAvgPool2D", self.where(node) + " (its (N, C, 1, 1) output feeds "
                                     "layers other than a flatten)")
            except ConversionError as exc:
                raise ConversionError(f"cannot convert {exc}") from None
            self.triples[k] = (n, cls(1), ins)

    # -- modules -----------------------------------------------------------------------------------
    def call_module(self, node):
        m = self.modules[node.target]
        nn = self.torch.nn
        kind = type(m)
        if node.kwargs or len(node.args) != 1:
            self.fail(node, f"a module called with {len(node.args)} arguments and keywords {sorted(node.kwargs)}")
        if kind is nn.Identity:
            self.env[node] = self.data(node, node.args[0])
            return
        x = self.data(node, node.args[0])
        if kind is nn.Softmax:
            return self.softmax(node, x, m.dim)
        convert = _MODULES.get(kind)
        if convert is None:
            hint = ""
            if isinstance(m, tuple(_MODULES)):
                hint = (" (a subclass of a supported module: its forward may differ; register it as a non-leaf or "
                        "convert its parent)")
            self.fail(node, f"unsupported module type {kind.__module__}.{kind.__name__}{hint}; from_torch supports: "
                            f"{SUPPORTED}")
        layer, known = convert(self, node, m, x)
        self.add(node, layer, [x], name=self.module_name(node), **known)

    # -- functions and methods -----------------------------------------------------------------------
    def call_function(self, node):
        fn = node.target
        handler = _FUNCTIONS.get(fn)
        if handler is None:
            handler = _FUNCTIONS_BY_NAME.get((getattr(fn, "__module__", None), getattr(fn, "__name__", None)))
        if handler is None:
            self.fail(node, f"unsupported function; from_torch supports: {SUPPORTED}")
        handler(self, node, list(node.args), dict(node.kwargs))

    def call_method(self, node):
        handler = _METHODS.get(node.target)
        if handler is None:
            self.fail(node, f"unsupported tensor method; from_torch supports: {SUPPORTED}")
        handler(self, node, list(node.args), dict(node.kwargs))


def _arg(args, kwargs, index, name, default=None):
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _extra(node, args, kwargs, allowed_pos, allowed_kw, cv):
    """Refuse positional/keyword arguments a handler does not read."""
    if len(args) > allowed_pos:
        cv.fail(node, f"takes at most {allowed_pos} positional arguments here, got {len(args)}")
    unknown = set(kwargs) - set(allowed_kw)
    if unknown:
        cv.fail(node, f"unsupported keyword(s) {sorted(unknown)}")


# -- module converters: (converter, node, module, input) -> (layer, known facts of the output) ------------
def _conv_module(cv, node, m, x):
    if m.padding_mode != "zeros":
        cv.fail(node, f"padding_mode={m.padding_mode!r} is not supported (only 'zeros')")
    if len(m.kernel_size) != 2:  # pragma: no cover - Conv2d
        cv.fail(node, "only 2-D convolutions are supported")
    padding = m.padding if isinstance(m.padding, str) else tuple(m.padding)
    return _conv_layer(cv, node, cv.const(m.weight), None if m.bias is None else cv.const(m.bias), m.stride, padding,
                       m.dilation, m.groups, x)


def _conv_layer(cv, node, w, b, stride, padding, dilation, groups, x):
    if w.ndim != 4:
        cv.fail(node, f"only 2-D convolutions are supported, got a weight of shape {w.shape}")
    try:
        layer = conv_layer(w, b, stride, padding, dilation, groups)
    except (ValueError, TypeError) as exc:
        cv.fail(node, str(exc))
    pads = layer.pads
    keeps_1x1 = w.shape[2:] == (1, 1) and pads == ((0, 0), (0, 0))
    return layer, dict(rank=4, pooled=x.pooled and keeps_1x1)


def _linear_module(cv, node, m, x):
    return _dense_layer(cv.const(m.weight), None if m.bias is None else cv.const(m.bias))


def _dense_layer(w, b):
    return dense_layer(w, b), dict(rank=2, pooled=False)


def _batchnorm_module(cv, node, m, x):
    if m.running_mean is None:
        cv.fail(node, "track_running_stats=False: there are no running statistics to convert")
    layer = xnn.BatchNorm2D(m.num_features, eps=m.eps)
    if m.weight is not None:
        layer.weight = cv.const(m.weight)
        layer.bias = cv.const(m.bias)
    layer.running_mean = cv.const(m.running_mean)
    layer.running_var = cv.const(m.running_var)
    return layer, {}


def _maxpool(cv, node, kernel, stride, padding, dilation, ceil_mode, return_indices):
    if dilation not in (1, (1, 1), [1, 1]):
        cv.fail(node, f"dilation={dilation} is not supported")
    if return_indices:
        cv.fail(node, "return_indices=True does not give a tensor for the next layer")
    try:
        layer = pool_layer(xnn.MaxPool2D, cv.where(node), kernel, stride or kernel, padding, ceil_mode)
    except ConversionError as exc:
        raise ConversionError(f"cannot convert {exc}") from None
    return layer, {}


def _avgpool(cv, node, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    if divisor_override is not None:
        cv.fail(node, f"divisor_override={divisor_override} is not supported")
    extra = {}
    padded = max(np.atleast_1d(padding)) > 0
    if not count_include_pad and padded:
        extra["count_include_pad"] = False
    try:
        layer = pool_layer(xnn.AvgPool2D, cv.where(node), kernel, stride or kernel, padding, ceil_mode, **extra)
    except ConversionError as exc:
        raise ConversionError(f"cannot convert {exc}") from None
    return layer, {}


def _maxpool_module(cv, node, m, x):
    return _maxpool(cv, node, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode, m.return_indices)


def _avgpool_module(cv, node, m, x):
    return _avgpool(cv, node, m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad, m.divisor_override)


def _is_one(size):
    return size in (1, (1, 1), [1, 1])


def _adaptive_avg(cv, node, x, size):
    if _is_one(size):
        return xnn.GlobalAvgPool2D(), dict(rank=4, pooled=True)
    cls = _optional(cv, node, "AdaptiveAvgPool2D")
    return cls(size), {}


def _adaptive_max(cv, node, x, size):
    cls = _optional(cv, node, "AdaptiveMaxPool2D")
    return cls(size), dict(pooled=_is_one(size))


def _optional(cv, node, name):
    try:
        return optional_layer(name, cv.where(node))
    except ConversionError as exc:
        raise ConversionError(f"cannot convert {exc}") from None


def _flatten_module(cv, node, m, x):
    if m.start_dim != 1 or m.end_dim != -1:
        cv.fail(node, f"only Flatten(start_dim=1, end_dim=-1) is supported, got ({m.start_dim}, {m.end_dim})")
    return xnn.Flatten(), dict(rank=2, pooled=False)


def _pad(cv, node, pad, value, mode="constant"):
    if mode != "constant":
        cv.fail(node, f"padding mode {mode!r} is not supported (only constant)")
    pad = tuple(int(p) for p in pad)
    if len(pad) == 2:
        pad = pad + (0, 0)
    if len(pad) != 4 or min(pad) < 0:
        cv.fail(node, f"only non-negative padding of the two spatial axes (left, right, top, bottom) is supported, "
                      f"got {pad}")
    cls = _optional(cv, node, "Pad2D")
    left, right, top, bottom = pad
    return cls(((top, bottom), (left, right)), value=float(value)), {}


def _pad_module(cv, node, m, x):
    return _pad(cv, node, m.padding, getattr(m, "value", 0.0))


def _dropout_module(cv, node, m, x):
    return xnn.Dropout(m.p), {}


def _prelu_module(cv, node, m, x):
    w = cv.const(m.weight).reshape(-1)
    layer = xnn.PReLU(w.size)
    layer.weight = w
    return layer, {}


def _simple(factory, unit=None):
    def convert(cv, node, m, x):
        return factory(m), dict(unit=unit)

    return convert


def _module_table(nn):
    return {
        nn.Conv2d: _conv_module, nn.Linear: _linear_module, nn.BatchNorm2d: _batchnorm_module,
        nn.MaxPool2d: _maxpool_module, nn.AvgPool2d: _avgpool_module,
        nn.AdaptiveAvgPool2d: lambda cv, node, m, x: _adaptive_avg(cv, node, x, m.output_size),
        nn.AdaptiveMaxPool2d: lambda cv, node, m, x: (
            cv.fail(node, "return_indices=True does not give a tensor for the next layer") if m.return_indices
            else _adaptive_max(cv, node, x, m.output_size)),
        nn.Flatten: _flatten_module, nn.ZeroPad2d: _pad_module, nn.ConstantPad2d: _pad_module,
        nn.Dropout: _dropout_module, nn.Dropout1d: _dropout_module, nn.Dropout2d: _dropout_module,
        nn.AlphaDropout: _dropout_module,
        nn.ReLU: _simple(lambda m: xnn.ReLU()),
        nn.ReLU6: _simple(lambda m: xnn.ReLU6()),
        nn.Hardtanh: _simple(lambda m: xnn.Hardtanh(m.min_val, m.max_val)),
        nn.LeakyReLU: _simple(lambda m: xnn.LeakyReLU(m.negative_slope)),
        nn.PReLU: _prelu_module,
        nn.Sigmoid: _simple(lambda m: xnn.Sigmoid(), unit="gate"),
        nn.Hardsigmoid: _simple(lambda m: xnn.Hardsigmoid(), unit="gate"),
        nn.Tanh: _simple(lambda m: xnn.Tanh()),
        nn.SiLU: _simple(lambda m: xnn.SiLU()),
        nn.Hardswish: _simple(lambda m: xnn.Hardswish()),
        nn.GELU: _simple(lambda m: xnn.GELU(m.approximate)),
        nn.Softplus: _simple(lambda m: xnn.Softplus(m.beta, m.threshold)),
    }


_MODULES = {}


# -- function and method handlers: (converter, node, args, kwargs) ------------------------------------------
def _bypass(cv, node, args, kwargs):
    cv.env[node] = cv.data(node, args[0])


def _binary(kind):
    def handle(cv, node, args, kwargs):
        if kind == "add" and kwargs.get("alpha", 1) != 1:
            cv.fail(node, f"torch.add with alpha={kwargs['alpha']} is not supported")
        extra = set(kwargs) - {"alpha", "out"} if kind == "add" else set(kwargs)
        if extra or len(args) != 2:
            cv.fail(node, f"takes two tensors, got {len(args)} arguments and keywords {sorted(kwargs)}")
        a, b = (cv.env.get(v) if isinstance(v, cv.torch.fx.Node) else v for v in args)
        if not (isinstance(a, _Data) and isinstance(b, _Data)):
            other = args[1] if isinstance(a, _Data) else args[0]
            cv.fail(node, f"only a {'sum' if kind == 'add' else 'product'} of two tensors computed from the input is "
                          f"supported, one operand is {cv._show(other)}")
        if kind == "add":
            cv.add(node, xnn.Add(), [a, b], rank=a.rank, pooled=a.pooled and b.pooled)
            return
        # the gate: the operand known to be (N, C, 1, 1), else the one from a sigmoid-like unit, else the second
        if a.pooled != b.pooled:
            gate = 0 if a.pooled else 1
        elif (a.unit == "gate") != (b.unit == "gate"):
            gate = 0 if a.unit == "gate" else 1
        else:
            gate = 1
        signal = (a, b)[1 - gate]
        cv.add(node, xnn.Multiply(gate=gate), [a, b], rank=signal.rank, pooled=signal.pooled)

    return handle


def _cat(cv, node, args, kwargs):
    tensors = _arg(args, kwargs, 0, "tensors")
    dim = _arg(args, kwargs, 1, "dim", 0)
    _extra(node, args, kwargs, 2, ("tensors", "dim"), cv)
    if not isinstance(tensors, (list, tuple)) or not tensors:
        cv.fail(node, f"torch.cat needs a list of tensors, got {cv._show(tensors)}")
    parts = [cv.data(node, t, "input") for t in tensors]
    if dim not in (1, -3):
        cv.fail(node, f"only concatenation along the channel axis (dim=1) is supported, got dim={dim}")
    if len(parts) == 1:
        cv.env[node] = parts[0]
        return
    cv.add(node, xnn.Concat(), parts, rank=4, pooled=all(p.pooled for p in parts))


def _flatten_fn(cv, node, args, kwargs):
    x = cv.data(node, _arg(args, kwargs, 0, "input"))
    start = _arg(args, kwargs, 1, "start_dim", 0)
    end = _arg(args, kwargs, 2, "end_dim", -1)
    _extra(node, args, kwargs, 3, ("input", "start_dim", "end_dim"), cv)
    if start != 1 or end not in (-1, x.rank - 1):
        cv.fail(node, f"only flatten(x, 1) (start_dim=1, end_dim=-1) is supported, got ({start}, {end})")
    cv.add(node, xnn.Flatten(), [x], rank=2, pooled=False)


def _reshape(cv, node, args, kwargs):
    """``view``/``reshape`` to ``(N, -1)`` or ``(N, k)``: a per-image flatten (``(-1, k)`` only before a
    ``Linear(k, ...)``, which then checks that each image has k features)."""
    x = cv.data(node, args[0])
    shape = args[1:] if len(args) > 2 else args[1] if len(args) == 2 else kwargs.get("shape", kwargs.get("size"))
    shape = cv.value(shape)
    if isinstance(shape, (list, tuple)) and len(shape) == 1 and isinstance(shape[0], (list, tuple)):
        shape = shape[0]
    if not isinstance(shape, (list, tuple)) or len(shape) != 2:
        cv.fail(node, f"only a reshape to (N, features) is supported, got the shape {shape!r}")
    first, second = shape
    ok_first = first is BATCH or first == -1
    ok_second = second == -1 or isinstance(second, (int, np.integer)) and second > 0
    if not ok_first or not ok_second or (first == -1 and second == -1):
        cv.fail(node, f"only a per-image flatten (x.size(0), -1) is supported, got the shape {shape!r}")
    if first == -1 and second != -1:
        users = list(node.users)
        ok = users and all(u.op == "call_module" and isinstance(cv.modules[u.target], cv.torch.nn.Linear)
                           and cv.modules[u.target].in_features == second for u in users)
        if not ok:
            cv.fail(node, f"view(-1, {second}) is a per-image flatten only if each image has {second} features; "
                          "write x.flatten(1) or view(x.size(0), -1)")
    cv.add(node, xnn.Flatten(), [x], rank=2, pooled=False)


def _size(cv, node, args, kwargs):
    cv.data(node, args[0])
    dim = _arg(args, kwargs, 1, "dim")
    if dim is None:
        cv.env[node] = _Shape()
    elif dim == 0:
        cv.env[node] = BATCH
    else:
        cv.fail(node, f"x.size({dim}) is not known to the conversion (only the batch size, x.size(0))")


def _getattr(cv, node, args, kwargs):
    obj, attr = args[0], args[1]
    if isinstance(cv.env.get(obj), _Data) and attr == "shape":
        cv.env[node] = _Shape()
        return
    cv.fail(node, f"getattr(..., {attr!r}) is not supported")


def _getitem(cv, node, args, kwargs):
    obj = cv.env.get(args[0]) if isinstance(args[0], cv.torch.fx.Node) else args[0]
    if isinstance(obj, _Shape) and args[1] == 0:
        cv.env[node] = BATCH
        return
    what = "a tensor" if isinstance(obj, _Data) else repr(obj)
    cv.fail(node, f"indexing {what} with {args[1]!r} is not supported (only x.shape[0], the batch size)")


def _mean(cv, node, args, kwargs):
    x = cv.data(node, _arg(args, kwargs, 0, "input"))
    dim = _arg(args, kwargs, 1, "dim")
    keep = _arg(args, kwargs, 2, "keepdim", False)
    _extra(node, args, kwargs, 3, ("input", "dim", "keepdim", "dtype"), cv)
    if kwargs.get("dtype") is not None:
        cv.fail(node, "mean with a dtype is not supported")
    dims = (
        sorted(int(d) % x.rank for d in (dim if isinstance(dim, (list, tuple)) else [dim])) if dim is not None else None
    )
    if x.rank != 4 or dims != [2, 3]:
        cv.fail(node, f"only a mean over the spatial axes (2, 3) of an (N, C, H, W) tensor is supported, got dim={dim}")
    if keep:
        _add_gap(cv, node, x)
    else:
        cv.add(node, xnn.GlobalAvgPool2D(), [x], rank=2, pooled=False)


def _add_gap(cv, node, x):
    cv.add(node, xnn.GlobalAvgPool2D(), [x], rank=4, pooled=True)


def _activation(factory, unit=None, names=()):
    """``F.relu(x)`` & co.: ``factory(options)`` with the function's own keywords (``names`` = positional order)."""

    def handle(cv, node, args, kwargs):
        x = cv.data(node, args[0] if args else kwargs.get("input"))
        opts = {}
        for k, name in enumerate(names):
            if len(args) > k + 1:
                opts[name] = args[k + 1]
            elif name in kwargs:
                opts[name] = kwargs[name]
        unknown = set(kwargs) - set(names) - {"input"}
        if unknown or len(args) > len(names) + 1:
            cv.fail(node, f"unsupported arguments {sorted(unknown) or args[len(names) + 1:]}")
        try:
            layer = factory(**{k: v for k, v in opts.items() if k != "inplace"})
        except (TypeError, ValueError) as exc:
            cv.fail(node, str(exc))
        cv.add(node, layer, [x], unit=unit)

    return handle


def _clamp(cv, node, args, kwargs):
    x = cv.data(node, args[0])
    lo, hi = _arg(args, kwargs, 1, "min"), _arg(args, kwargs, 2, "max")
    for v in (lo, hi):
        if v is not None and not isinstance(v, (int, float)):
            cv.fail(node, f"clamp bounds must be numbers, got {cv._show(v)}")
    layer = xnn.ReLU6() if (lo, hi) == (0, 6) else xnn.Clamp(lo, hi)
    cv.add(node, layer, [x])


def _dropout_fn(cv, node, args, kwargs):
    x = cv.data(node, args[0])
    p = _arg(args, kwargs, 1, "p", 0.5)
    training = _arg(args, kwargs, 2, "training", True)
    if training:
        cv.fail(node, "F.dropout(..., training=True) drops units at random at inference; pass training=self.training")
    cv.add(node, xnn.Dropout(p), [x])


def _stochastic_depth(cv, node, args, kwargs):
    x = cv.data(node, args[0])
    training = _arg(args, kwargs, 3, "training", True)
    p = _arg(args, kwargs, 1, "p")
    if training and p:
        cv.fail(node, "stochastic depth in training mode drops residual branches at random")
    cv.env[node] = x


def _softmax_fn(cv, node, args, kwargs):
    x = cv.data(node, args[0])
    cv.softmax(node, x, _arg(args, kwargs, 1, "dim"))


def _conv2d_fn(cv, node, args, kwargs):
    x = cv.data(node, args[0])
    w = cv.value(_arg(args, kwargs, 1, "weight"))
    b = cv.value(_arg(args, kwargs, 2, "bias"))
    if not isinstance(w, np.ndarray) or not (b is None or isinstance(b, np.ndarray)):
        cv.fail(node, "the weight and bias of F.conv2d must be parameters of the module (not computed tensors)")
    stride = _arg(args, kwargs, 3, "stride", 1)
    padding = _arg(args, kwargs, 4, "padding", 0)
    dilation = _arg(args, kwargs, 5, "dilation", 1)
    groups = _arg(args, kwargs, 6, "groups", 1)
    _extra(node, args, kwargs, 7, ("input", "weight", "bias", "stride", "padding", "dilation", "groups"), cv)
    layer, known = _conv_layer(cv, node, w, b, stride, padding, dilation, groups, x)
    cv.add(node, layer, [x], **known)


def _linear_fn(cv, node, args, kwargs):
    x = cv.data(node, args[0])
    w = cv.value(_arg(args, kwargs, 1, "weight"))
    b = cv.value(_arg(args, kwargs, 2, "bias"))
    _extra(node, args, kwargs, 3, ("input", "weight", "bias"), cv)
    if not isinstance(w, np.ndarray) or w.ndim != 2 or not (b is None or isinstance(b, np.ndarray)):
        cv.fail(node, "the weight and bias of F.linear must be parameters of the module (not computed tensors)")
    layer, known = _dense_layer(w, b)
    cv.add(node, layer, [x], **known)


def _max_pool_fn(cv, node, args, kwargs):
    x = cv.data(node, args[0])
    names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
    defaults = (None, None, 0, 1, False, False)
    vals = [_arg(args, kwargs, k + 1, n, d) for k, (n, d) in enumerate(zip(names, defaults))]
    _extra(node, args, kwargs, 7, ("input",) + names, cv)
    layer, known = _maxpool(cv, node, *vals)
    cv.add(node, layer, [x], **known)


def _avg_pool_fn(cv, node, args, kwargs):
    x = cv.data(node, args[0])
    names = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")
    defaults = (None, None, 0, False, True, None)
    vals = [_arg(args, kwargs, k + 1, n, d) for k, (n, d) in enumerate(zip(names, defaults))]
    _extra(node, args, kwargs, 7, ("input",) + names, cv)
    layer, known = _avgpool(cv, node, *vals)
    cv.add(node, layer, [x], **known)


def _adaptive_avg_fn(cv, node, args, kwargs):
    x = cv.data(node, args[0])
    size = _arg(args, kwargs, 1, "output_size")
    if _is_one(size):
        _add_gap(cv, node, x)
        return
    layer, known = _adaptive_avg(cv, node, x, size)
    cv.add(node, layer, [x], **known)


def _adaptive_max_fn(cv, node, args, kwargs):
    x = cv.data(node, args[0])
    if _arg(args, kwargs, 2, "return_indices", False):
        cv.fail(node, "return_indices=True does not give a tensor for the next layer")
    layer, known = _adaptive_max(cv, node, x, _arg(args, kwargs, 1, "output_size"))
    cv.add(node, layer, [x], **known)


def _pad_fn(cv, node, args, kwargs):
    x = cv.data(node, args[0])
    layer, known = _pad(cv, node, _arg(args, kwargs, 1, "pad"), _arg(args, kwargs, 3, "value", 0.0) or 0.0,
                        _arg(args, kwargs, 2, "mode", "constant"))
    cv.add(node, layer, [x], **known)


def _tables(torch):
    F = torch.nn.functional
    relu = _activation(lambda: xnn.ReLU(), names=("inplace",))
    act = {
        "relu6": _activation(lambda: xnn.ReLU6(), names=("inplace",)),
        "hardtanh": _activation(lambda min_val=-1.0, max_val=1.0: xnn.Hardtanh(min_val, max_val),
                                names=("min_val", "max_val", "inplace")),
        "leaky_relu": _activation(lambda negative_slope=0.01: xnn.LeakyReLU(negative_slope),
                                  names=("negative_slope", "inplace")),
        "sigmoid": _activation(lambda: xnn.Sigmoid(), unit="gate"),
        "hardsigmoid": _activation(lambda: xnn.Hardsigmoid(), unit="gate", names=("inplace",)),
        "tanh": _activation(lambda: xnn.Tanh()),
        "silu": _activation(lambda: xnn.SiLU(), names=("inplace",)),
        "hardswish": _activation(lambda: xnn.Hardswish(), names=("inplace",)),
        "gelu": _activation(lambda approximate="none": xnn.GELU(approximate), names=("approximate",)),
        "softplus": _activation(lambda beta=1.0, threshold=20.0: xnn.Softplus(beta, threshold),
                                names=("beta", "threshold")),
    }
    add, mul = _binary("add"), _binary("mul")
    functions = {
        operator.add: add, operator.iadd: add, torch.add: add,
        operator.mul: mul, operator.imul: mul, torch.mul: mul,
        torch.cat: _cat, torch.concat: _cat,
        torch.flatten: _flatten_fn, torch.reshape: _reshape, torch.mean: _mean,
        getattr: _getattr, operator.getitem: _getitem,
        torch.clamp: _clamp, torch.clip: _clamp,
        F.dropout: _dropout_fn, F.dropout1d: _dropout_fn, F.dropout2d: _dropout_fn, F.alpha_dropout: _dropout_fn,
        F.softmax: _softmax_fn, torch.softmax: _softmax_fn,
        F.conv2d: _conv2d_fn, F.linear: _linear_fn,
        F.max_pool2d: _max_pool_fn, F.avg_pool2d: _avg_pool_fn,
        F.adaptive_avg_pool2d: _adaptive_avg_fn, F.adaptive_max_pool2d: _adaptive_max_fn,
        F.pad: _pad_fn, torch.clone: _bypass,
        F.relu: relu, torch.relu: relu, torch.relu_: relu, F.relu_: relu,
        F.relu6: act["relu6"], F.hardtanh: act["hardtanh"], F.leaky_relu: act["leaky_relu"],
        torch.sigmoid: act["sigmoid"], F.sigmoid: act["sigmoid"], F.hardsigmoid: act["hardsigmoid"],
        torch.tanh: act["tanh"], F.tanh: act["tanh"], F.silu: act["silu"], F.hardswish: act["hardswish"],
        F.gelu: act["gelu"], F.softplus: act["softplus"],
    }
    if hasattr(torch, "concatenate"):
        functions[torch.concatenate] = _cat
    if hasattr(F, "max_pool2d_with_indices"):
        functions[F.max_pool2d_with_indices] = _max_pool_fn
    by_name = {("torchvision.ops.stochastic_depth", "stochastic_depth"): _stochastic_depth}
    methods = {
        "add": add, "add_": add, "__add__": add, "__iadd__": add, "mul": mul, "mul_": mul, "__mul__": mul,
        "flatten": _flatten_fn, "view": _reshape, "reshape": _reshape, "mean": _mean, "size": _size,
        "contiguous": _bypass, "clone": _bypass, "clamp": _clamp, "clamp_": _clamp, "clip": _clamp,
        "softmax": _softmax_fn, "relu": relu, "relu_": relu, "sigmoid": act["sigmoid"], "tanh": act["tanh"],
    }
    return functions, by_name, methods


_FUNCTIONS, _FUNCTIONS_BY_NAME, _METHODS = {}, {}, {}


def _setup(torch):
    if not _MODULES:
        _MODULES.update(_module_table(torch.nn))
        f, b, m = _tables(torch)
        _FUNCTIONS.update(f)
        _FUNCTIONS_BY_NAME.update(b)
        _METHODS.update(m)


def _mode_matters(torch, m):
    """A module whose forward may depend on ``training``: batch-norm, dropout, or any forward not from torch.nn."""
    nn = torch.nn
    kinds = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd, nn.modules.instancenorm._InstanceNorm)
    if isinstance(m, kinds):
        return True
    return not type(m).__module__.startswith("torch.nn")


def _trace(torch, module):
    """``torch.fx.symbolic_trace`` with source lines recorded; tracing failures as :class:`ConversionError`."""
    fx = torch.fx

    class _Tracer(fx.Tracer):
        def __init__(self):
            super().__init__()
            self.record_stack_traces = True

    tracer = _Tracer()
    try:
        graph = tracer.trace(module)
    except Exception as exc:  # TraceError (control flow on a traced value) and whatever else tracing raises
        line = _traceback_line(exc)
        control = isinstance(exc, fx.proxy.TraceError) or "control flow" in str(exc)
        why = ("its forward has control flow that depends on the input's values (an if/for on a tensor), which "
               "torch.fx cannot trace" if control else "torch.fx could not trace its forward")
        raise ConversionError(
            f"cannot convert {type(module).__name__}: {why}" + (f"; at {line}" if line else "")
            + f" ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
    return fx.GraphModule(tracer.root, graph, type(module).__name__)


def from_torch(module, fold=False):
    """Convert a ``torch.nn.Module`` into an xattr model computing the same function.

    Parameters
    ----------
    module : torch.nn.Module
        Any module whose ``forward`` torch.fx can trace (no control flow on tensor values) and whose
        operations are supported (module docstring; :data:`SUPPORTED`), with float weights.  A module in
        training mode is converted as in ``eval()`` (batch-norm with its running statistics, dropout off),
        with a warning; its own mode is left as it was.  A final softmax is dropped with a warning
        (attributions explain the logits).
    fold : bool
        Fold every batch-norm that follows a conv into it (:func:`xattr.nn.fold_batchnorm`); the others
        stay.  Default False: batch-norms are kept as layers, named as in the module.

    Returns
    -------
    xattr.nn.Graph
        A :class:`xattr.nn.Sequential` when the graph is a chain.  Weights are float64 copies (of
        float16/32/64 or bfloat16 tensors).  Node names follow the module paths (``"features.3"``,
        ``"layer3.1.conv2"``; a second call of one module ``"layer1.0.relu_1"``); functions take fx's
        node names (``"add"``, ``"cat_2"``, ``"flatten"``).  ``model.forward(x)`` equals
        ``module.double()(x)`` to round-off.

    Raises
    ------
    ImportError
        torch is not installed (``pip install 'xattr-ref[torch]'``).
    ConversionError
        An operation (named with its fx node, its module or function, and the source line that called it),
        a setting xattr cannot represent exactly, or a forward that torch.fx cannot trace.
    """
    torch = require("torch", "torch")
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"from_torch needs a torch.nn.Module, got {type(module).__name__}")
    _setup(torch)
    modes = {m: m.training for m in module.modules()}
    if any(m.training and _mode_matters(torch, m) for m in modes):
        warnings.warn(
            f"from_torch: {type(module).__name__} is in training mode; it is converted as in eval() (batch-norm "
            "running statistics, dropout off). Call module.eval() first to silence this.", UserWarning, stacklevel=2,
        )
    try:
        module.eval()
        gm = _trace(torch, module)
        model = _Converter(torch, gm, fold).run()
    finally:
        for m, mode in modes.items():
            m.training = mode
    return model


__all__ = ["from_torch", "SUPPORTED"]
