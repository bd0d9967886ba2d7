"""Model transformations with a known effect on the function: the constructions behind the axioms.

Each function takes a model and returns a *new* model (the input model is never changed)
whose relation to the original is known exactly, so an axiom becomes an equation that a
test can check:

=================================  =======================================================
:func:`rescaled_twin`              same function, weights rescaled across each ReLU
                                   (positive homogeneity; the implementation-invariance
                                   twin that every rule-based method survives)
:func:`relu_identity_twin`         same function, an identity written as
                                   ``z = 2 ReLU(z) - ReLU(z) - ReLU(-z)`` after the first
                                   layer (Sundararajan et al. 2017's point that rules
                                   which are not the chain rule can tell such twins apart)
:func:`shifted_input_twin`         ``g(x + c) = f(x)`` (Kindermans et al. 2019: a constant
                                   input shift absorbed by the first layer's bias)
:func:`parallel_sum`               ``h = a f1 + b f2`` as one ``Sequential`` (linearity)
:func:`mirror_symmetric_twin`      a model invariant under the left-right flip (symmetry)
:func:`dummy_pixel_twin`           a model on a 2x larger image that reads only the even
                                   pixels, so the odd ones are dummies (dummy axiom)
:func:`random_weights_like`        the same architecture with fresh random weights
=================================  =======================================================

Supported layers: ``Conv2D, ReLU, MaxPool2D, AvgPool2D, GlobalAvgPool2D, Flatten, Dense,
BatchNorm2D, Dropout`` (the core stack) and, in graphs, the merges ``Add`` and ``Concat``.  Every
twin is built for a :class:`~xattr.nn.Sequential` as a chain and for any other
:class:`~xattr.nn.Graph` by rewiring its nodes (:func:`_graph_insert`).  Anything else raises
``ValueError`` naming it.
"""
from __future__ import annotations

import copy

import numpy as np

from .._conventions import as_rng
from ..nn import (
    INPUT,
    Add,
    AvgPool2D,
    BatchNorm2D,
    Concat,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    Graph,
    MaxPool2D,
    ReLU,
    Sequential,
)

#: layers ``g`` with ``g(c x) = c g(x)`` for ``c > 0`` (a rescaling passes through them).
POSITIVELY_HOMOGENEOUS = (ReLU, MaxPool2D, AvgPool2D, GlobalAvgPool2D, Flatten, Dropout)
#: layers that act on each channel separately (they can run two stacked networks side by side).
CHANNELWISE = (ReLU, MaxPool2D, AvgPool2D, GlobalAvgPool2D, Dropout)
PARAMETRIC = (Conv2D, Dense)


def _require_sequential(model, what):
    if not isinstance(model, Sequential):
        raise TypeError(f"{what} needs an xattr.nn.Sequential model, got {type(model).__name__}")


def _require_graph(model, what):
    if not isinstance(model, Graph):
        raise TypeError(f"{what} needs a layered model (xattr.nn.Graph or Sequential), got {type(model).__name__}")


def _triples(model):
    """Deep-copied ``(name, layer, inputs tuple)`` of a graph, in topological order."""
    return [(n, copy.deepcopy(model[n]), tuple(model.inputs_of(n))) for n in model.order]


def _build(triples, output):
    return Graph([(n, layer, ins if len(ins) > 1 else ins[0]) for n, layer, ins in triples], output=output)


def _graph_insert(model, after, new):
    """A copy of the graph with the chain ``new`` ``[(name, layer)]`` inserted after node ``after`` (or the input):
    every node that read ``after`` reads the chain's last node instead."""
    taken = set(model.order) | {INPUT}
    named = [(_unique(n, taken), layer) for n, layer in new]
    triples = []
    last = named[-1][0]
    head = []
    prev = after
    for n, layer in named:
        head.append((n, layer, (prev,)))
        prev = n
    for n, layer, ins in _triples(model):
        triples.append((n, layer, tuple(last if i == after else i for i in ins)))
        if n == after:
            triples += head
    if after == INPUT:
        triples = head + triples
    return _build(triples, model.output)


def _copy_layers(model):
    return [(name, copy.deepcopy(layer)) for name, layer in zip(model.names, model.layers)]


def _unique(name, taken):
    k, out = 1, name
    while out in taken:
        k += 1
        out = f"{name}{k}"
    return out


def rescaled_twin(model, rng=0, low=0.5, high=3.0):
    """Same function, different weights: ``W_i, b_i *= c`` and ``W_j /= c`` across each ReLU.

    For every pair of parametric layers ``i < j`` (``Conv2D``/``Dense``) separated only by
    positively homogeneous layers (ReLU, pools, flatten, dropout), the first is scaled by a
    random ``c ∈ [low, high]`` and the second by ``1/c``.  Since ``ReLU(c z) = c ReLU(z)``
    for ``c > 0`` the function is unchanged (to round-off).  On a graph the first may also be a batch-norm, and a
    merge (``Add``, ``Concat``) whose inputs are all weighted nodes feeding only it is scaled as one: its inputs
    by one ``c`` (a residual block with a projection shortcut, so that the block's output is scaled too).

    Raises ``ValueError`` if the model has no such pair.

    Parameters
    ----------
    model : Graph or Sequential
    rng : numpy.random.Generator or int
    low, high : float

    Returns
    -------
    Graph or Sequential
        A new model.
    """
    if not isinstance(model, Sequential):
        return _rescaled_graph(model, as_rng(rng), low, high)
    gen = as_rng(rng)
    layers = _copy_layers(model)
    found = False
    for i, (_, li) in enumerate(layers):
        if not isinstance(li, PARAMETRIC):
            continue
        j = i + 1
        while j < len(layers) and isinstance(layers[j][1], POSITIVELY_HOMOGENEOUS):
            j += 1
        if j < len(layers) and isinstance(layers[j][1], PARAMETRIC):
            c = gen.uniform(low, high)
            li.weight = li.weight * c
            if li.bias is not None:
                li.bias = li.bias * c
            layers[j][1].weight = layers[j][1].weight / c
            found = True
    if not found:
        raise ValueError(
            "rescaled_twin needs two Conv2D/Dense layers separated only by ReLU/pool/flatten/dropout layers"
        )
    return Sequential(*layers)


def _rescaled_graph(model, gen, low, high):
    """:func:`rescaled_twin` on a graph: a weighted node (or a batch-norm, whose gamma and beta scale its output)
    whose output reaches exactly one weighted node through single-consumer positively homogeneous nodes; and a merge
    (``Add``, ``Concat``) whose inputs are all such nodes feeding only it (a residual block whose shortcut is a
    projection: ``bn2`` and ``downsample`` scaled by one ``c``, since ``Add(c a, c b) = c Add(a, b)``) and whose
    output reaches exactly one weighted node the same way, which is scaled by ``1/c``."""
    _require_graph(model, "rescaled_twin")
    triples = _triples(model)
    layers = {n: layer for n, layer, _ in triples}
    scalable = PARAMETRIC + (BatchNorm2D,)

    def compensator(n):  # the one weighted node that n's output reaches through homogeneous single-consumer nodes
        k = n
        while len(model.consumers(k)) == 1 and isinstance(layers[model.consumers(k)[0]], POSITIVELY_HOMOGENEOUS):
            k = model.consumers(k)[0]
        nxt = model.consumers(k)
        if len(nxt) != 1 or not isinstance(layers[nxt[0]], PARAMETRIC) or len(model.inputs_of(nxt[0])) != 1:
            return None
        return nxt[0]

    def scale(names, nxt):
        c = gen.uniform(low, high)
        for n in names:
            layers[n].weight = layers[n].weight * c
            if layers[n].bias is not None:
                layers[n].bias = layers[n].bias * c
        layers[nxt].weight = layers[nxt].weight / c

    found = False
    for n, layer, _ in triples:
        if isinstance(layer, scalable) and (nxt := compensator(n)) is not None:
            scale([n], nxt)
            found = True
    for n, layer, ins in triples:  # after the pairs: the pairs' random draws do not depend on the merges
        if (isinstance(layer, (Add, Concat)) and len(set(ins)) == len(ins) > 1
                and all(i != INPUT and isinstance(layers[i], scalable) and model.consumers(i) == [n] for i in ins)
                and (nxt := compensator(n)) is not None):
            scale(ins, nxt)
            found = True
    if not found:
        raise ValueError(
            "rescaled_twin needs a Conv2D/Dense/BatchNorm2D node whose output reaches exactly one Conv2D/Dense node "
            "through ReLU/pool/flatten/dropout nodes that feed nothing else"
        )
    return _build(triples, model.output)


def relu_identity_twin(model):
    """Same function: after the first ``Conv2D``/``Dense`` insert ``z -> 2 ReLU(z) - ReLU(z) - ReLU(-z)``.

    The identity is built from a 1x1 convolution (or dense layer) with weights
    ``[I; I; -I]``, a ReLU and a 1x1 convolution with weights ``[2I, -I, -I]`` (no biases),
    named ``twin_split``, ``twin_relu``, ``twin_merge``.  Its derivative is
    ``1[z>0] + 1[z<0]``: 1 except where ``z == 0`` exactly (``ReLU'(0) = 0``), so the twin
    has the same function and the same gradient away from exact zeros of the first layer's
    output (:func:`first_layer_output` lets a check verify that).  Rules that are not the
    chain rule see something else: DeconvNet returns ``2 max(R, 0)`` through it, guided
    backprop ``|R| + max(R, 0)`` where ``z > 0`` (Sundararajan et al. 2017's point that
    such rules can tell functionally equal networks apart).  The plain ``ReLU(z) - ReLU(-z)``
    would not do: DeconvNet's ``max(R, 0) - max(-R, 0) = R`` passes it unchanged.
    """
    _require_graph(model, "relu_identity_twin")
    layers = _copy_layers(model)
    idx = next((i for i, (_, l) in enumerate(layers) if isinstance(l, PARAMETRIC)), None)
    if idx is None:
        raise ValueError("relu_identity_twin needs a Conv2D or Dense layer")
    first = layers[idx][1]
    taken = {n for n, _ in layers}
    c = first.out_channels if isinstance(first, Conv2D) else first.out_features
    eye = np.eye(c)
    w_split = np.concatenate([eye, eye, -eye])
    w_merge = np.concatenate([2 * eye, -eye, -eye], axis=1)
    if isinstance(first, Conv2D):
        split, merge = Conv2D(c, 3 * c, 1, bias=False), Conv2D(3 * c, c, 1, bias=False)
        split.weight, merge.weight = w_split[:, :, None, None], w_merge[:, :, None, None]
    else:
        split, merge = Dense(c, 3 * c, bias=False), Dense(3 * c, c, bias=False)
        split.weight, merge.weight = w_split, w_merge
    new = [
        (_unique("twin_split", taken), split), (_unique("twin_relu", taken), ReLU()),
        (_unique("twin_merge", taken), merge),
    ]
    if not isinstance(model, Sequential):
        return _graph_insert(model, model.order[idx], new)
    return Sequential(*(layers[: idx + 1] + new + layers[idx + 1 :]))


def first_layer_output(model, x):
    """Output of the first ``Conv2D``/``Dense`` layer (where :func:`relu_identity_twin` inserts its ReLUs).

    Parameters
    ----------
    model : Sequential
    x : ndarray ``(N, C, H, W)``

    Returns
    -------
    ndarray
    """
    idx = next(i for i, l in enumerate(model.layers) if isinstance(l, PARAMETRIC))
    return model.activations(x, model.order[idx])


def _as_channel_shift(shift, channels):
    s = np.asarray(shift, dtype=np.float64)
    if s.ndim == 0:
        s = np.full(channels, float(s))
    if s.shape != (channels,):
        raise ValueError(f"shift must be a scalar or have shape (C,) = ({channels},), got {s.shape}")
    return s


def shifted_input_twin(model, shift, in_channels=None):
    """``g`` with ``g(x + shift) = f(x)`` (Kindermans et al. 2019, "The (un)reliability of saliency methods").

    As in the paper the shift is absorbed by the first layer's bias: ``b' = b - W c``
    (for a convolution, ``b'[o] = b[o] - Σ_{c,i,j} W[o,c,i,j] shift[c]``).  That is exact for
    a ``Dense`` first layer (after ``Flatten``) and for a ``Conv2D`` without padding; a padded
    convolution sees unshifted zeros at the border, so then a 1x1 convolution with weights
    ``I`` and bias ``-shift`` named ``shift`` is put in front instead.

    Parameters
    ----------
    shift : float or ndarray ``(C,)``
        Per input channel.
    in_channels : int, optional
        Needed only when the first layer does not tell (e.g. ``Flatten -> Dense``).
    """
    _require_graph(model, "shifted_input_twin")
    if not isinstance(model, Sequential):
        firsts = [model[n] for n in model.consumers(INPUT)]
        channels = in_channels if in_channels is not None else next(
            (f.in_channels for f in firsts if isinstance(f, Conv2D)), None)
        if channels is None:
            raise ValueError("shifted_input_twin needs in_channels to put a shift node in front of this graph")
        s = _as_channel_shift(shift, channels)
        pre = Conv2D(channels, channels, 1)
        pre.weight = np.eye(channels)[:, :, None, None]
        pre.bias = -s
        return _graph_insert(model, INPUT, [("shift", pre)])
    layers = _copy_layers(model)
    first_i = next((i for i, (_, l) in enumerate(layers) if not isinstance(l, (Flatten, Dropout))), None)
    first = layers[first_i][1] if first_i is not None else None
    if isinstance(first, Conv2D) and first.pads == ((0, 0), (0, 0)):
        s = _as_channel_shift(shift, first.in_channels)
        b = first.bias if first.bias is not None else np.zeros(first.out_channels)
        first.bias = b - np.einsum("ocij,c->o", first.weight, s)
        return Sequential(*layers)
    if isinstance(first, Dense) and all(isinstance(l, (Flatten, Dropout)) for _, l in layers[:first_i]):
        if in_channels is None:
            s = np.asarray(shift, dtype=np.float64)
            if s.ndim != 0:
                raise ValueError("shifted_input_twin needs in_channels for a per-channel shift before Flatten -> Dense")
            per_feature = np.full(first.in_features, float(s))
        else:
            s = _as_channel_shift(shift, in_channels)
            per_feature = np.repeat(s, first.in_features // in_channels)
        b = first.bias if first.bias is not None else np.zeros(first.out_features)
        first.bias = b - first.weight @ per_feature
        return Sequential(*layers)
    channels = first.in_channels if isinstance(first, Conv2D) else in_channels
    if channels is None:
        raise ValueError("shifted_input_twin needs in_channels to put a shift layer in front of this model")
    s = _as_channel_shift(shift, channels)
    pre = Conv2D(channels, channels, 1)
    pre.weight = np.eye(channels)[:, :, None, None]
    pre.bias = -s
    return Sequential((_unique("shift", set(model.names)), pre), *layers)


def _redraw(arr, gen):
    scale = float(np.std(arr)) if arr.size > 1 and np.std(arr) > 0 else float(np.sqrt(np.mean(arr**2)) or 1.0)
    return gen.normal(0.0, scale, arr.shape)


def random_weights_like(model, rng, layers=None):
    """The same architecture with new weights ``N(0, s²)``, ``s`` the std of the weights they replace.

    ``layers`` (names or indices) selects which parametric layers are re-drawn (default all);
    biases are re-drawn the same way when non-zero, batch-norm's gamma/beta too (its running
    statistics are kept).  This is Adebayo et al. 2018's re-initialisation, with the scale of
    the trained layer instead of the original initialiser (which a loaded model does not record).

    Parameters
    ----------
    model : Graph or Sequential
    rng : numpy.random.Generator or int
    layers : list of str or int, optional

    Returns
    -------
    Graph or Sequential
        A new model.
    """
    _require_graph(model, "random_weights_like")
    gen = as_rng(rng)
    out = model.rebuild()
    chosen = set(range(len(out))) if layers is None else {out.index(k) for k in layers}
    for i, layer in enumerate(out.layers):
        if i not in chosen:
            continue
        if isinstance(layer, (Conv2D, Dense)):
            layer.weight = _redraw(layer.weight, gen)
            if layer.bias is not None and np.any(layer.bias != 0):
                layer.bias = _redraw(layer.bias, gen)
        elif isinstance(layer, BatchNorm2D):
            layer.weight = _redraw(layer.weight, gen)
            layer.bias = _redraw(layer.bias, gen)
    return out


def parametric_layer_names(model):
    """Names of the layers that have weights, in forward order."""
    return [l.name for l in model.layers if isinstance(l, (Conv2D, Dense, BatchNorm2D))]


# -- linearity: two networks side by side in one Sequential ------------------------------
def _same_arch(a, b):
    if len(a) != len(b):
        return False
    for la, lb in zip(a.layers, b.layers):
        if type(la) is not type(lb) or la.extra_repr() != lb.extra_repr():
            return False
    return True


def parallel_sum(m1, m2, a, b):
    """One ``Sequential`` computing ``a f1(x) + b f2(x)`` for two models of the same architecture.

    The first parametric layer stacks both networks' output channels, later convolutions
    and dense layers are block-diagonal, channel-wise layers run on both halves at once and
    the last ``Dense`` layer combines them: ``[a W1, b W2]``, bias ``a b1 + b b2``.
    Layer names are ``m1``'s, so layer-based options (``layer="relu2"``) still apply.

    Parameters
    ----------
    m1, m2 : Graph or Sequential
    a, b : float

    Returns
    -------
    Sequential (or Graph)
    """
    if not (isinstance(m1, Sequential) and isinstance(m2, Sequential)):
        return _parallel_sum_graph(m1, m2, a, b)
    if not _same_arch(m1, m2):
        raise ValueError("parallel_sum needs two models of the same architecture")
    if not isinstance(m1.layers[-1], Dense):
        raise ValueError("parallel_sum needs models whose last layer is Dense")
    n = len(m1)
    first = next(i for i, l in enumerate(m1.layers) if isinstance(l, PARAMETRIC))
    out = []
    for i, (name, l1, l2) in enumerate(zip(m1.names, m1.layers, m2.layers)):
        if isinstance(l1, CHANNELWISE) or isinstance(l1, Flatten):
            out.append((name, copy.deepcopy(l1)))
            continue
        if isinstance(l1, BatchNorm2D):
            if i < first:
                raise ValueError("parallel_sum: a BatchNorm2D before the first Conv2D/Dense is not supported")
            bn = BatchNorm2D(2 * l1.num_features, eps=l1.eps)
            if l1.eps != l2.eps:
                raise ValueError("parallel_sum: batch-norm eps differ")
            for p in ("weight", "bias", "running_mean", "running_var"):
                setattr(bn, p, np.concatenate([getattr(l1, p), getattr(l2, p)]))
            out.append((name, bn))
            continue
        if not isinstance(l1, PARAMETRIC):
            raise ValueError(f"parallel_sum does not support layer {l1.describe()}")
        b1 = l1.bias if l1.bias is not None else None
        b2 = l2.bias if l2.bias is not None else None
        if i == n - 1:
            if i == first:
                w = a * l1.weight + b * l2.weight
            else:
                w = np.concatenate([a * l1.weight, b * l2.weight], axis=1)
            layer = Dense(w.shape[1], w.shape[0], bias=b1 is not None)
            layer.weight = w
            if b1 is not None:
                layer.bias = a * b1 + b * b2
        elif i == first:
            w = np.concatenate([l1.weight, l2.weight], axis=0)
            layer = _like(l1, w.shape[1], w.shape[0])
            layer.weight = w
            if b1 is not None:
                layer.bias = np.concatenate([b1, b2])
        else:
            o1, i1 = l1.weight.shape[:2]
            o2, i2 = l2.weight.shape[:2]
            w = np.zeros((o1 + o2, i1 + i2) + l1.weight.shape[2:])
            w[:o1, :i1] = l1.weight
            w[o1:, i1:] = l2.weight
            layer = _like(l1, i1 + i2, o1 + o2)
            layer.weight = w
            if b1 is not None:
                layer.bias = np.concatenate([b1, b2])
        out.append((name, layer))
    return Sequential(*out)


def _parallel_sum_graph(m1, m2, a, b):
    """:func:`parallel_sum` for graphs: both networks side by side (the second's nodes prefixed ``twin2.``), their
    output dense layers replaced by one dense layer on the concatenation of their inputs, ``[a W1, b W2]``."""
    _require_graph(m1, "parallel_sum")
    _require_graph(m2, "parallel_sum")
    if not _same_arch(m1, m2) or m1.order != m2.order:
        raise ValueError("parallel_sum needs two models of the same architecture")
    out1, out2 = m1[m1.output], m2[m2.output]
    if not isinstance(out1, Dense):
        raise ValueError("parallel_sum needs models whose output node is Dense")
    rename = {n: f"twin2.{n}" for n in m2.order}
    rename[INPUT] = INPUT
    triples = [t for t in _triples(m1) if t[0] != m1.output]
    triples += [(rename[n], layer, tuple(rename[i] for i in ins)) for n, layer, ins in _triples(m2) if n != m2.output]
    (h1,), (h2,) = m1.inputs_of(m1.output), m2.inputs_of(m2.output)
    cat = _unique("twin_concat", set(m1.order) | set(rename.values()))
    if isinstance(m1[h1], GlobalAvgPool2D) and len(m1.consumers(h1)) == 1:
        # a GAP -> Dense head stays one: join the two feature maps, then one GAP (CAM and Grad-CAM see both halves)
        (f1,), (f2,) = m1.inputs_of(h1), m2.inputs_of(h2)
        triples = [t for t in triples if t[0] not in (h1, rename[h2])]
        triples.append((cat, Concat(), (f1, rename[f2])))
        triples.append((h1, GlobalAvgPool2D(), (cat,)))
        cat = h1
    else:
        triples.append((cat, Concat(), (h1, rename[h2])))
    w = np.concatenate([a * out1.weight, b * out2.weight], axis=1)
    dense = Dense(w.shape[1], w.shape[0], bias=out1.bias is not None)
    dense.weight = w
    if out1.bias is not None:
        dense.bias = a * out1.bias + b * (out2.bias if out2.bias is not None else 0.0)
    triples.append((m1.output, dense, (cat,)))
    return _build(triples, m1.output)


def _like(layer, n_in, n_out):
    if isinstance(layer, Conv2D):
        return Conv2D(n_in, n_out, layer.kernel_size, stride=layer.stride, padding=layer.padding,
                      dilation=layer.dilation, bias=layer.bias is not None)
    return Dense(n_in, n_out, bias=layer.bias is not None)


# -- symmetry: a mirror-symmetric model ----------------------------------------------------
def _symmetric_axis(size, k, s, d, pads, what):
    lo, hi = pads
    if lo != hi or (size + lo + hi - d * (k - 1) - 1) % s != 0:
        raise ValueError(
            f"mirror_symmetric_twin: {what} does not see the width-{size} input symmetrically "
            f"(padding {pads}, kernel {k}, stride {s}, dilation {d}): its windows are not mirror images"
        )


def mirror_symmetric_twin(model, x_shape):
    """A model ``g`` with ``g(flip(x)) = g(x)`` (flip = reverse the last axis, left-right).

    Every convolution kernel is replaced by ``(W + W[..., ::-1]) / 2``; a ``Dense`` layer
    after ``Flatten`` of a spatial map gets ``(W + W P) / 2`` with ``P`` the flip of the
    flattened columns.  Each conv/pool layer must see its input symmetrically (equal left and
    right padding, windows tiling the width exactly) and no max-pool window may straddle the
    axis (it would hold mirrored values, a tie, and ``MAXPOOL_TIE_POLICY = "first"`` breaks the
    symmetry on purpose); otherwise ``ValueError`` says which layer.

    Parameters
    ----------
    model : Graph or Sequential
    x_shape : tuple of int ``(N, C, H, W)``

    Returns
    -------
    Graph or Sequential
    """
    _require_graph(model, "mirror_symmetric_twin")
    if not isinstance(model, Sequential):
        return _mirror_graph(model, x_shape)
    layers = _copy_layers(model)
    h = np.zeros((1,) + tuple(x_shape)[1:])
    flat = None  # (C, h, w) of the spatial map a Flatten just turned into columns
    for _, layer in layers:
        if isinstance(layer, Conv2D):
            _symmetric_axis(h.shape[3], layer.kernel_size[1], layer.stride[1], layer.dilation[1], layer.pads[1],
                            layer.describe())
            layer.weight = (layer.weight + layer.weight[..., ::-1]) / 2
        elif isinstance(layer, (MaxPool2D, AvgPool2D)):
            _symmetric_axis(h.shape[3], layer.kernel_size[1], layer.stride[1], 1, layer.pads[1], layer.describe())
            wo = layer.output_hw(h.shape)[1]
            if isinstance(layer, MaxPool2D) and wo % 2 == 1 and layer.kernel_size[1] > 1:
                raise ValueError(
                    f"mirror_symmetric_twin: {layer.describe()} has a window on the mirror axis (odd output width "
                    f"{wo}); mirrored values there tie and the 'first' tie policy is not symmetric"
                )
        elif isinstance(layer, Dense) and flat is not None:
            c, hh, ww = flat
            perm = np.arange(c * hh * ww).reshape(c, hh, ww)[:, :, ::-1].ravel()
            layer.weight = (layer.weight + layer.weight[:, perm]) / 2
        if isinstance(layer, Flatten) and h.ndim == 4:
            flat = h.shape[1:]
        elif not isinstance(layer, Dropout):
            flat = None
        h = layer(h)
    return Sequential(*layers)


def _mirror_layer(layer, h, flat):
    """Make one layer mirror-equivariant in place (see :func:`mirror_symmetric_twin`); ``h`` its input."""
    if isinstance(layer, Conv2D):
        _symmetric_axis(h.shape[3], layer.kernel_size[1], layer.stride[1], layer.dilation[1], layer.pads[1],
                        layer.describe())
        layer.weight = (layer.weight + layer.weight[..., ::-1]) / 2
    elif isinstance(layer, (MaxPool2D, AvgPool2D)):
        _symmetric_axis(h.shape[3], layer.kernel_size[1], layer.stride[1], 1, layer.pads[1], layer.describe())
        wo = layer.output_hw(h.shape)[1]
        if isinstance(layer, MaxPool2D) and wo % 2 == 1 and layer.kernel_size[1] > 1:
            raise ValueError(
                f"mirror_symmetric_twin: {layer.describe()} has a window on the mirror axis (odd output width "
                f"{wo}); mirrored values there tie and the 'first' tie policy is not symmetric"
            )
    elif isinstance(layer, Dense) and flat is not None:
        c, hh, ww = flat
        perm = np.arange(c * hh * ww).reshape(c, hh, ww)[:, :, ::-1].ravel()
        layer.weight = (layer.weight + layer.weight[:, perm]) / 2


def _mirror_graph(model, x_shape):
    triples = _triples(model)
    env = {INPUT: np.zeros((1,) + tuple(x_shape)[1:])}
    flat = {INPUT: None}
    for n, layer, ins in triples:
        if len(ins) == 1:
            h = env[ins[0]]
            _mirror_layer(layer, h, flat[ins[0]] if isinstance(layer, Dense) else None)
            env[n] = layer(h)
            flat[n] = h.shape[1:] if isinstance(layer, Flatten) and h.ndim == 4 else (
                flat[ins[0]] if isinstance(layer, Dropout) else None)
        elif isinstance(layer, (Add, Concat)):  # merges of mirror-equivariant maps stay mirror-equivariant
            env[n] = layer(tuple(env[i] for i in ins))
            flat[n] = None
        else:
            raise ValueError(f"mirror_symmetric_twin does not support {layer.describe()}")
    return _build(triples, model.output)


# -- dummy: pixels the model never reads ---------------------------------------------------
class _EvenPixels:
    """``g(z) = f(z[:, :, ::2, ::2])`` for any model protocol object (forward/vjp with any rule)."""

    def __init__(self, model):
        self.model = model

    def forward(self, z):
        return self.model.forward(np.asarray(z)[:, :, ::2, ::2])

    __call__ = forward

    def supports(self, rule):
        return getattr(self.model, "supports", lambda r: True)(rule)

    def vjp(self, z, grad_scores, rule="gradient", **options):
        z = np.asarray(z)
        g = self.model.vjp(z[:, :, ::2, ::2], grad_scores, rule, **options)
        out = np.zeros(z.shape, dtype=np.asarray(g).dtype)
        out[:, :, ::2, ::2] = g
        return out


def dummy_pixel_twin(model, x, rng=0):
    """A model on images twice as large that reads only the even pixels, and the input for it.

    Returns ``(g, z, dummy)``: ``g(z) = f(x)`` where ``z (N, C, 2H, 2W)`` holds ``x`` at the
    even positions and random values elsewhere; ``dummy (2H, 2W)`` is True at the pixels
    ``g`` never reads.  For a layered model the subsampling is a first ``Conv2D`` (kernel 2,
    stride 2, weight ``δ`` at offset (0, 0), no bias) named ``dummy_subsample``, so
    layer-based methods still work; other models are wrapped.

    Parameters
    ----------
    model : model protocol object
    x : ndarray ``(N, C, H, W)``
    rng : numpy.random.Generator or int

    Returns
    -------
    g : model
    z : ndarray ``(N, C, 2H, 2W)``
    dummy : bool array ``(2H, 2W)``
    """
    x = np.asarray(x)
    n, c, hh, ww = x.shape
    gen = as_rng(rng)
    z = gen.normal(0.0, 1.0, (n, c, 2 * hh, 2 * ww)).astype(x.dtype)
    z[:, :, ::2, ::2] = x
    dummy = np.ones((2 * hh, 2 * ww), dtype=bool)
    dummy[::2, ::2] = False
    if isinstance(model, Graph):
        sub = Conv2D(c, c, 2, stride=2, bias=False)
        w = np.zeros((c, c, 2, 2))
        w[:, :, 0, 0] = np.eye(c)
        sub.weight = w
        if isinstance(model, Sequential):
            g = Sequential((_unique("dummy_subsample", set(model.names)), sub), *_copy_layers(model))
        else:
            g = _graph_insert(model, INPUT, [("dummy_subsample", sub)])
    else:
        g = _EvenPixels(model)
    return g, z, dummy
