"""Hypothesis strategies for random networks (chains and graphs), their inputs, baselines and targets.

Needs Hypothesis (the ``test`` extra).  The networks cover the general domain of the core
stack: depth, channels, kernel sizes, strides, paddings (including ``"same"``), dilations,
max/average pools (overlapping windows too), optional batch-norm, and GAP or flatten heads
with an optional hidden dense layer.  Inputs repeat values and contain exact zeros on
purpose (``hypothesis.extra.numpy.arrays`` fills with repeats), which is what finds max-pool
ties and ReLU inputs of exactly zero.  Floats are bounded and finite.

Example::

    from hypothesis import given
    from xattr.testing import strategies as xst

    @given(xst.models_and_inputs())
    def test_gradient_is_linear(case):
        model, x, target = case
        ...
"""
from __future__ import annotations

try:
    import hypothesis.extra.numpy as hnp
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "xattr.testing.strategies needs Hypothesis: pip install 'xattr-ref[test]' (or pip install hypothesis)"
    ) from exc

import numpy as np

from ..nn import (
    GELU,
    AvgPool2D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Flatten,
    GlobalAvgPool2D,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    LeakyReLU,
    MaxPool2D,
    PReLU,
    ReLU,
    ReLU6,
    Sequential,
    Sigmoid,
    SiLU,
    Softplus,
    Tanh,
)
from ..nn.conv import conv_output_size
from ..nn.pool import pool_output_size

__all__ = [
    "ACTIVATIONS", "conv_specs", "architectures", "sequential_models", "images", "models_and_inputs", "baselines",
    "targets", "build_model", "output_hw", "graph_architectures", "build_graph", "graph_models_and_inputs",
]

#: activations by name (``architectures(activations=...)``): ``name -> factory(channels, generator)``.
ACTIVATIONS = {
    "relu": lambda c, gen: ReLU(),
    "relu6": lambda c, gen: ReLU6(),
    "hardtanh": lambda c, gen: Hardtanh(-1.0, 1.0),
    "leakyrelu": lambda c, gen: LeakyReLU(0.1),
    "prelu": lambda c, gen: _prelu(c, gen),
    "hardsigmoid": lambda c, gen: Hardsigmoid(),
    "sigmoid": lambda c, gen: Sigmoid(),
    "tanh": lambda c, gen: Tanh(),
    "silu": lambda c, gen: SiLU(),
    "hardswish": lambda c, gen: Hardswish(),
    "gelu": lambda c, gen: GELU(),
    "softplus": lambda c, gen: Softplus(),
}


def _prelu(c, gen):
    layer = PReLU(c)
    layer.weight = gen.uniform(-0.5, 0.5, c)
    return layer


#: values repeated in inputs and weights (exact zeros create ReLU kinks, repeats create max-pool ties).
REPEATS = (0.0, 1.0, -1.0, 0.5)


def _conv_out(hw, spec):
    k, s, p, d = spec["kernel"], spec["stride"], spec["padding"], spec["dilation"]
    if p == "same":
        return hw
    return tuple(conv_output_size(n, k, s, d, p, p) for n in hw)


def _pool_out(hw, spec):
    k, s, p = spec["kernel"], spec["stride"], spec["padding"]
    return tuple(pool_output_size(n, k, s, p, spec.get("ceil_mode", False)) for n in hw)


@st.composite
def conv_specs(draw, hw, max_kernel=3, allow_same=True):
    """A convolution's ``kernel, stride, padding, dilation`` that gives an output of at least 1x1 on ``hw``.

    Parameters
    ----------
    draw : callable
        Hypothesis' ``draw`` (not passed by the caller).
    hw : (int, int)
    max_kernel : int
    allow_same : bool
        Also ``padding="same"`` (stride 1).

    Returns
    -------
    hypothesis strategy of dict
    """
    k = draw(st.integers(1, max_kernel))
    d = draw(st.integers(1, 2)) if k > 1 else 1
    s = draw(st.integers(1, 2))
    choices = list(range(0, k))  # padding below the kernel size, as in practice
    if allow_same and s == 1:
        choices.append("same")
    p = draw(st.sampled_from(choices))
    spec = dict(kernel=k, stride=s, padding=p, dilation=d)
    if min(_conv_out(hw, spec)) < 1:
        spec.update(dilation=1, padding=k // 2 if p != "same" else "same")
        if min(_conv_out(hw, spec)) < 1:
            spec.update(kernel=1, padding=0, stride=1)
    return spec


@st.composite
def architectures(draw, in_channels=(1, 3), size=(4, 9), depth=(1, 3), max_channels=4, n_classes=(1, 4),
                  pools=("max", "avg", None), heads=("gap", "flatten"), bias=None, batchnorm=True, relu=True,
                  activations=None, groups=False, ceil_mode=False):
    """A description of a network: a dict ``{"in_channels", "hw", "blocks", "head", "hidden", "n_classes", "bias"}``.

    Each block is a conv spec with ``out`` channels, ``relu`` (bool), ``bn`` (bool) and ``pool``
    (None or ``{"kind", "kernel", "stride", "padding", "ceil_mode"}``).  Sizes are tracked so every layer
    gets an input of at least its window.

    The model zoo's options, off by default: ``activations`` (names of :data:`ACTIVATIONS`) draws each
    block's activation (``"act"``) among them instead of the ReLU; ``groups=True`` draws each conv's
    ``groups`` among the common divisors of its channel counts (depthwise included); ``ceil_mode=True``
    draws the pools' ``ceil_mode``.

    Parameters
    ----------
    draw : callable
        Hypothesis' ``draw`` (not passed by the caller).
    in_channels, size, depth, n_classes : (int, int)
        Inclusive ranges.
    max_channels : int
    pools : tuple of ``"max"``, ``"avg"``, None
    heads : tuple of ``"gap"``, ``"flatten"``
    bias : bool, optional
        Drawn when None.
    batchnorm : bool
    relu : bool, optional
        Drawn when None.
    activations : iterable of str, optional
    groups, ceil_mode : bool

    Returns
    -------
    hypothesis strategy of dict
    """
    c = draw(st.integers(*in_channels))
    h = draw(st.integers(*size))
    w = draw(st.one_of(st.just(h), st.integers(*size)))
    hw = (h, w)
    use_bias = draw(st.booleans()) if bias is None else bool(bias)
    blocks = []
    for _ in range(draw(st.integers(*depth))):
        spec = draw(conv_specs(hw))
        spec["out"] = draw(st.integers(1, max_channels))
        if groups:
            c_in = blocks[-1]["out"] if blocks else c
            spec["groups"] = draw(
                st.sampled_from([g for g in range(1, c_in + 1) if c_in % g == 0 and spec["out"] % g == 0])
            )
        spec["relu"] = draw(st.booleans()) if relu is None else relu
        if activations:
            spec["act"] = draw(st.sampled_from(list(activations)))
        spec["bn"] = bool(batchnorm) and draw(st.booleans())
        hw = _conv_out(hw, spec)
        kind = draw(st.sampled_from(pools))
        spec["pool"] = None
        if kind is not None and min(hw) >= 2:
            k = draw(st.integers(2, min(3, min(hw))))
            s = draw(st.integers(1, k))
            p = draw(st.integers(0, k // 2)) if kind == "max" else 0
            pool = dict(kind=kind, kernel=k, stride=s, padding=p)
            if ceil_mode:
                pool["ceil_mode"] = draw(st.booleans())
            if min(_pool_out(hw, pool)) >= 1:
                spec["pool"] = pool
                hw = _pool_out(hw, pool)
        blocks.append(spec)
    head = draw(st.sampled_from(heads))
    hidden = draw(st.one_of(st.none(), st.integers(1, 4)))
    k = draw(st.integers(*n_classes))
    return dict(in_channels=c, hw=(h, w), blocks=blocks, head=head, hidden=hidden, n_classes=k, bias=use_bias)


def output_hw(arch):
    """Spatial size of the last block's output for an architecture from :func:`architectures`."""
    hw = arch["hw"]
    for b in arch["blocks"]:
        hw = _conv_out(hw, b)
        if b["pool"]:
            hw = _pool_out(hw, b["pool"])
    return hw


def build_model(arch, rng=0, bias_scale=0.1):
    """The ``Sequential`` an architecture describes, weights from ``rng`` (biases ``N(0, bias_scale²)``).

    Parameters
    ----------
    arch : dict
        From :func:`architectures`.
    rng : int
    bias_scale : float

    Returns
    -------
    Sequential
    """
    gen = np.random.default_rng(rng)
    layers = []
    c = arch["in_channels"]
    for b in arch["blocks"]:
        layers.append(Conv2D(c, b["out"], b["kernel"], stride=b["stride"], padding=b["padding"],
                             dilation=b["dilation"], bias=arch["bias"], rng=gen, groups=b.get("groups", 1)))
        c = b["out"]
        if b["bn"]:
            bn = BatchNorm2D(c)
            bn.weight = gen.uniform(0.5, 1.5, c)
            bn.bias = gen.normal(0, 0.1, c)
            bn.running_mean = gen.normal(0, 0.1, c)
            bn.running_var = gen.uniform(0.5, 2.0, c)
            layers.append(bn)
        if b["relu"]:
            layers.append(ACTIVATIONS[b.get("act", "relu")](c, gen))
        if b["pool"]:
            p = b["pool"]
            cls = MaxPool2D if p["kind"] == "max" else AvgPool2D
            layers.append(
                cls(p["kernel"], stride=p["stride"], padding=p["padding"], ceil_mode=p.get("ceil_mode", False))
            )
    oh, ow = output_hw(arch)
    if arch["head"] == "gap":
        layers.append(GlobalAvgPool2D())
        feats = c
    else:
        layers.append(Flatten())
        feats = c * oh * ow
    if arch["hidden"]:
        layers += [Dense(feats, arch["hidden"], bias=arch["bias"], rng=gen), ReLU()]
        feats = arch["hidden"]
    layers.append(Dense(feats, arch["n_classes"], bias=arch["bias"], rng=gen))
    model = Sequential(*layers)
    if arch["bias"]:
        for layer in model:
            if isinstance(layer, (Conv2D, Dense)):
                layer.bias = gen.normal(0.0, bias_scale, layer.bias.shape)
    return model


@st.composite
def sequential_models(draw, weights="seed", **arch_options):
    """A random ``Sequential`` (see :func:`architectures` for the options).

    ``weights="seed"`` draws an integer seed for the initialisers (fast, shrinks well);
    ``weights="arrays"`` draws every weight array with Hypothesis (bounded, with repeats
    and exact zeros).  The architecture dict is attached as ``model.arch``.

    Parameters
    ----------
    draw : callable
        Hypothesis' ``draw`` (not passed by the caller).
    weights : ``"seed"`` or ``"arrays"``
    **arch_options
        Passed to :func:`architectures`.

    Returns
    -------
    hypothesis strategy of Sequential
    """
    arch = draw(architectures(**arch_options))
    model = build_model(arch, rng=draw(st.integers(0, 2**16)))
    if weights == "arrays":
        elems = st.one_of(st.sampled_from(REPEATS), st.floats(-1.5, 1.5, allow_nan=False, allow_infinity=False))
        for layer in model:
            for p in ("weight", "bias"):
                if isinstance(layer, (Conv2D, Dense)) and getattr(layer, p) is not None:
                    setattr(layer, p, draw(hnp.arrays(np.float64, getattr(layer, p).shape, elements=elems)))
    elif weights != "seed":
        raise ValueError(f"weights must be 'seed' or 'arrays', got {weights!r}")
    model.arch = arch
    return model


def images(shape, dtype=np.float64, low=-2.0, high=2.0, repeats=True):
    """Arrays of ``shape`` with bounded finite values; with ``repeats`` also exact zeros and repeated values.

    Parameters
    ----------
    shape : tuple of int
    dtype : numpy float dtype
    low, high : float
    repeats : bool

    Returns
    -------
    hypothesis strategy of ndarray ``shape``
    """
    width = 32 if np.dtype(dtype) == np.float32 else 64
    elems = st.floats(low, high, allow_nan=False, allow_infinity=False, width=width)
    if repeats:
        elems = st.one_of(st.sampled_from([v for v in REPEATS if low <= v <= high]), elems)
    return hnp.arrays(dtype, shape, elements=elems)


@st.composite
def models_and_inputs(draw, batch=(1, 3), dtype=np.float64, repeats=True, target_kinds=("int", "array"),
                      **arch_options):
    """``(model, x, target)``: a random network, an input batch for it and a target.

    Parameters
    ----------
    draw : callable
        Hypothesis' ``draw`` (not passed by the caller).
    batch : (int, int)
    dtype : numpy float dtype
    repeats : bool
    target_kinds : tuple of str
    **arch_options
        Passed to :func:`architectures`.

    Returns
    -------
    hypothesis strategy of (Sequential, ndarray ``(N, C, H, W)``, target)
    """
    model = draw(sequential_models(**arch_options))
    arch = model.arch
    n = draw(st.integers(*batch))
    x = draw(images((n, arch["in_channels"]) + tuple(arch["hw"]), dtype=dtype, repeats=repeats))
    t = draw(targets(n, arch["n_classes"], kinds=target_kinds))
    return model, x, t


def baselines(x, kinds=("zero", "scalar", "array", "channel")):
    """Baselines for ``x``: 0, a scalar, an array of ``x``'s shape, or one value per channel ``(1, C, 1, 1)``.

    Parameters
    ----------
    x : ndarray ``(N, C, H, W)``
    kinds : tuple of str

    Returns
    -------
    hypothesis strategy
    """
    x = np.asarray(x)
    options = []
    if "zero" in kinds:
        options.append(st.just(0.0))
    if "scalar" in kinds:
        options.append(st.floats(-1, 1, allow_nan=False))
    if "array" in kinds:
        options.append(images(x.shape, dtype=x.dtype, low=-1, high=1))
    if "channel" in kinds:
        options.append(images((1, x.shape[1], 1, 1), dtype=x.dtype, low=-1, high=1))
    return st.one_of(*options)


def targets(n, k, kinds=("int", "array", "callable")):
    """Targets for ``n`` images and ``k`` classes: an int, an int array ``(n,)``, or a callable on the scores.

    The callable explains ``s[:, i] - s[:, j]`` (written with ``autograd.numpy``-compatible
    indexing, so its derivative can be taken).

    Parameters
    ----------
    n, k : int
    kinds : tuple of ``"int"``, ``"array"``, ``"callable"``

    Returns
    -------
    hypothesis strategy
    """
    options = []
    if "int" in kinds:
        options.append(st.integers(0, k - 1))
    if "array" in kinds:
        options.append(hnp.arrays(np.intp, (n,), elements=st.integers(0, k - 1)))
    if "callable" in kinds:
        def contrast(pair):
            i, j = pair
            f = lambda s: s[:, i] - s[:, j]  # noqa: E731
            f.__name__ = f"s[:, {i}] - s[:, {j}]"
            return f
        options.append(st.tuples(st.integers(0, k - 1), st.integers(0, k - 1)).map(contrast))
    return st.one_of(*options)


# -- random graphs (residual and dense connections) ---------------------------------------------------
@st.composite
def graph_architectures(draw, channels=(1, 3), hw=(5, 8), nodes=(2, 6), n_classes=(2, 4),
                        merges=("add", "concat"), pool=True, max_inputs=3):
    """A random DAG description: a stem conv, then nodes that each take one or more earlier nodes.

    Each node is ``conv`` (3×3 or 1×1, ``"same"`` padding: spatial size kept so any two nodes can merge),
    ``relu``, ``maxpool``/``avgpool`` (3×3, stride 1, padding 1: size kept), or a merge (``add``: inputs of
    one channel count, reached by a 1×1 conv where they differ; ``concat``).  Fan-out arises whenever a
    node is read twice.  The head is GAP (or flatten) and a dense layer, fed by the last node.

    Parameters
    ----------
    draw : callable
        Hypothesis' ``draw`` (not passed by the caller).
    channels, hw, nodes, n_classes : (int, int)
        Inclusive ranges.
    merges : tuple of ``"add"``, ``"concat"``
    pool : bool
    max_inputs : int

    Returns
    -------
    hypothesis strategy of dict
    """
    c = draw(st.integers(*channels))
    h = draw(st.integers(*hw))
    w = draw(st.integers(*hw))
    n = draw(st.integers(*nodes))
    stem = draw(st.integers(2, 4))
    specs = [dict(op="conv", inputs=("input",), out=stem, kernel=draw(st.sampled_from([1, 3])))]
    outs = [stem]
    ops = ["conv", "relu", "relu"] + (["maxpool", "avgpool"] if pool else []) + list(merges)
    for _ in range(n):
        op = draw(st.sampled_from(ops))
        k = len(specs)
        if op in ("add", "concat") and k >= 2:
            m = draw(st.integers(2, min(max_inputs, k)))
            ins = tuple(sorted(draw(st.lists(st.integers(0, k - 1), min_size=m, max_size=m, unique=True))))
            if op == "add":
                out = outs[ins[0]]
                specs.append(dict(op="add", inputs=ins, out=out))
            else:
                out = sum(outs[i] for i in ins)
                specs.append(dict(op="concat", inputs=ins, out=out))
        else:
            op = "conv" if op in ("add", "concat") else op
            src = draw(st.integers(max(0, k - 3), k - 1))  # mostly recent nodes; older ones make skips
            out = draw(st.integers(1, 4)) if op == "conv" else outs[src]
            specs.append(dict(op=op, inputs=(src,), out=out, kernel=draw(st.sampled_from([1, 3]))))
        outs.append(out)
    head = draw(st.sampled_from(["gap", "flatten"]))
    return dict(in_channels=c, hw=(h, w), nodes=specs, head=head, n_classes=draw(st.integers(*n_classes)))


def build_graph(arch, rng=0, bias_scale=0.1):
    """The :class:`xattr.nn.Graph` a description from :func:`graph_architectures` gives (nodes ``n0, n1, ...``).

    Parameters
    ----------
    arch : dict
        From :func:`graph_architectures`.
    rng : int
    bias_scale : float

    Returns
    -------
    Graph
    """
    from ..nn import Add, Concat

    gen = np.random.default_rng(rng)
    triples, outs = [], []
    c = arch["in_channels"]

    def name(i):
        return "input" if i == "input" else f"n{i}"

    for k, spec in enumerate(arch["nodes"]):
        ins = spec["inputs"]
        cin = c if ins == ("input",) else None
        if spec["op"] == "conv":
            cin = c if ins == ("input",) else outs[ins[0]]
            layer = Conv2D(cin, spec["out"], spec["kernel"], padding="same", rng=gen)
            layer.bias = gen.normal(0.0, bias_scale, spec["out"])
        elif spec["op"] == "relu":
            layer = ReLU()
        elif spec["op"] == "maxpool":
            layer = MaxPool2D(3, stride=1, padding=1)
        elif spec["op"] == "avgpool":
            layer = AvgPool2D(3, stride=1, padding=1)
        elif spec["op"] == "add":
            # inputs of another channel count are brought to the first's by a 1x1 conv node
            fixed = []
            for i in ins:
                if outs[i] != spec["out"]:
                    adapter = f"n{k}_from{i}"
                    conv = Conv2D(outs[i], spec["out"], 1, rng=gen)
                    conv.bias = gen.normal(0.0, bias_scale, spec["out"])
                    triples.append((adapter, conv, name(i)))
                    fixed.append(adapter)
                else:
                    fixed.append(name(i))
            triples.append((name(k), Add(), tuple(fixed)))
            outs.append(spec["out"])
            continue
        else:
            layer = Concat()
        triples.append((name(k), layer, tuple(name(i) for i in ins) if len(ins) > 1 else name(ins[0])))
        outs.append(spec["out"])
    last = name(len(arch["nodes"]) - 1)
    feats = outs[-1] if arch["head"] == "gap" else outs[-1] * arch["hw"][0] * arch["hw"][1]
    triples.append(("pool" if arch["head"] == "gap" else "flatten",
                    GlobalAvgPool2D() if arch["head"] == "gap" else Flatten(), last))
    dense = Dense(feats, arch["n_classes"], rng=gen)
    dense.bias = gen.normal(0.0, bias_scale, arch["n_classes"])
    triples.append(("dense", dense, triples[-1][0]))
    return _connected_graph(triples)  # nodes that lead nowhere are dropped


def _connected_graph(triples):
    """A Graph of ``triples``, dropping nodes that do not lead to the output (they would be dangling)."""
    from ..nn import Graph

    needed, names = set(), {t[0]: t for t in triples}
    stack = [triples[-1][0]]
    while stack:
        n = stack.pop()
        if n in needed or n == "input":
            continue
        needed.add(n)
        ins = names[n][2]
        stack.extend([ins] if isinstance(ins, str) else ins)
    return Graph([t for t in triples if t[0] in needed])


@st.composite
def graph_models_and_inputs(draw, batch=(1, 2), repeats=True, **arch_options):
    """``(graph, x, target)``: a random DAG (:func:`graph_architectures`), an input batch and a class target.

    Parameters
    ----------
    draw : callable
        Hypothesis' ``draw`` (not passed by the caller).
    batch : (int, int)
    repeats : bool
    **arch_options
        Passed to :func:`graph_architectures`.

    Returns
    -------
    hypothesis strategy of (Graph, ndarray ``(N, C, H, W)``, int)
    """
    arch = draw(graph_architectures(**arch_options))
    model = build_graph(arch, rng=draw(st.integers(0, 2**16)))
    model.arch = arch
    n = draw(st.integers(*batch))
    x = draw(images((n, arch["in_channels"]) + tuple(arch["hw"]), repeats=repeats))
    return model, x, draw(st.integers(0, arch["n_classes"] - 1))
