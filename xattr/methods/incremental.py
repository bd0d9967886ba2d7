"""Incremental inference on a graph (Nakandala et al. 2019) and receptive fields, from the layers' region maps.

Occlusion changes a small box of the input; most of every activation is the unoccluded one.  Each
occluded image is carried through the graph, node by node in topological order, as a *box*: a
rectangle of fixed size per node (its position per image) holding the changed values, the rest of
the activation being the unoccluded one recorded by one trace of the clean images.  What a node
does with boxes is its layer's region map (:mod:`xattr.nn.region`):

* ``"pointwise"`` layers run on the box;
* ``"window"`` layers read the box of their input they need (padded with the layer's pad value),
  paste the changed box in, and run without padding;
* merges (``Add``, ``Concat``, ``Multiply``) are pointwise: their inputs' boxes are joined into the union
  box (the hull of the inputs' projective fields, one size per node), each input read there from its
  clean activation with its changed box pasted in;
* a ``"global"`` layer (global average pooling) corrects its clean output by the box's change;
* any node after that, or without a region map, runs in full on the patched activations.

The scores equal full recomputation: every output value is computed by the same operations on the
same values (the tests check it bit for bit in float64).

:func:`receptive_fields` runs the same region maps backwards: which input rows and columns each
position of a node reads, through every branch (the hull over branches), for Shapley's locality tables.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..nn import INPUT
from ..nn.conv import Conv2D, conv_output_size, correlate_batch
from ..nn.region import finite_pad_value, region_map, without_padding

#: "auto" uses incremental inference when it recomputes less than this share of the full work.
AUTO_SHARE = 0.5


def _kind(layer):
    rm = region_map(layer)
    return None if rm is None else rm.kind


def plan(model):
    """``{node: "box" | "global" | "full"}``: how each node handles an occluded box, or None for a model
    without nodes or without any window node before the first full one (nothing to gain)."""
    if not hasattr(model, "order") or not hasattr(model, "node"):
        return None
    modes, any_window = {INPUT: "box"}, False
    for n in model.order:
        layer = model[n]
        kind = _kind(layer)
        ins = [modes[i] for i in model.inputs_of(n)]
        if kind in ("pointwise", "window") and all(m == "box" for m in ins):
            modes[n] = "box"
            any_window |= kind == "window"
        elif kind == "global" and ins == ["box"]:
            modes[n] = "global"
        else:
            modes[n] = "full"
    return modes if any_window else None


def _out_hw(layer, hw):
    if hasattr(layer, "output_shape"):
        return tuple(layer.output_shape((1, layer.in_channels) + tuple(hw))[2:])
    if hasattr(layer, "output_hw"):
        return tuple(layer.output_hw((1, 1) + tuple(hw)))
    return tuple(hw)


def box_sizes(model, modes, in_hw, window):
    """Per boxed node: ``(its output's spatial size, the box size there)``.

    A merge takes its largest input box (the union box's size for boxes at one place; the runner computes the true
    union per batch).

    Parameters
    ----------
    model : Graph
    modes : dict str -> str
        Each node's mode from :func:`plan` (``"box"`` for the incrementally recomputed ones).
    in_hw : tuple of int ``(H, W)``
    window : tuple of int ``(h, w)``
        The occlusion window.

    Returns
    -------
    dict str -> ((int, int), (int, int))
        Node name (and the input) -> ``((out_h, out_w), (box_h, box_w))``.
    """
    sizes = {INPUT: (tuple(in_hw), tuple(window))}
    for n in model.order:
        if modes[n] != "box":
            continue
        layer = model[n]
        ins = [sizes[i] for i in model.inputs_of(n)]
        hw, size = ins[0]
        if _kind(layer) == "window":
            _, out_size, _, _ = region_map(layer).fn(layer, np.zeros((1, 2), dtype=np.intp), size, hw)
            sizes[n] = (_out_hw(layer, hw), tuple(int(s) for s in out_size))
        else:
            sizes[n] = (hw, tuple(max(s[1][k] for s in ins) for k in (0, 1)))
    return sizes


def use_incremental(model, x, window, incremental):
    """Whether occlusion runs incrementally (see :func:`occlusion`).

    Parameters
    ----------
    model : model protocol object
    x : ndarray ``(N, C, H, W)``
    window : tuple of int ``(h, w)``
    incremental : ``"auto"``, True or False
        ``"auto"`` compares the area recomputed with the full area, node by node (weighted by channels).

    Returns
    -------
    bool
    """
    if incremental is False:
        return False
    modes = plan(model)
    if modes is None:
        if incremental is True:
            raise ValueError(
                "incremental occlusion needs a layered model (xattr.nn.Graph or Sequential) whose layers after the "
                "input have region maps (Conv2D, pooling, ReLU, BatchNorm2D, Dropout, merges, then optionally "
                f"GlobalAvgPool2D), with at least one window layer; got {type(model).__name__}"
            )
        return False
    if incremental is True:
        return True
    # "auto": compare the area recomputed with the full area, node by node (weighted by channels)
    full = inc = 0.0
    sizes = box_sizes(model, modes, x.shape[2:], window)
    for n in model.order:
        if modes[n] != "box":
            continue
        layer = model[n]
        ch = getattr(layer, "out_channels", 1) * getattr(layer, "in_channels", 1)
        hw, box = sizes[n]
        full += ch * hw[0] * hw[1]
        inc += ch * box[0] * box[1]
    return inc < AUTO_SHARE * full


def _gather(arr, image, lo, size):
    """Boxes ``arr[image[b], :, lo[b,0]:+size[0], lo[b,1]:+size[1]]`` -> ``(B, C, h, w)`` (one fancy index)."""
    view = sliding_window_view(arr, tuple(size), axis=(2, 3))  # (N, C, ., ., h, w), no copy
    return view[image, :, lo[:, 0], lo[:, 1]]


def _paste(dest, patch, rows, cols):
    """``dest[b, :, rows[b, i], cols[b, j]] = patch[b, :, i, j]`` for per-item row/column indices."""
    B = patch.shape[0]
    dest[np.arange(B)[:, None, None], :, rows[:, :, None], cols[:, None, :]] = patch.transpose(0, 2, 3, 1)


class IncrementalRunner:
    """Scores of occluded images by incremental inference through a graph (see the module docstring)."""

    def __init__(self, model, x, fill, window):
        self.model, self.x, self.fill, self.window = model, x, fill, tuple(window)
        self.tape = model.trace(x)  # the clean activations of every node
        self.modes = self._refine(plan(model))
        self.pos = {n: k for k, n in enumerate(model.order)}
        self.padded, self.margin, self.valid = {}, {}, {}
        for n in model.order:
            layer = model[n]
            if self.modes[n] == "box" and _kind(layer) == "window":
                rm = region_map(layer)
                pads = layer.pads
                m = (max(pads[0]) + 1, max(pads[1]) + 1)  # padding + one spare row/column (see _window)
                base = self.tape.value(model.inputs_of(n)[0])
                self.margin[n] = np.array(m)
                self.padded[n] = np.pad(
                    base, ((0, 0), (0, 0), (m[0], m[0]), (m[1], m[1])), constant_values=finite_pad_value(rm, x.dtype)
                ).astype(x.dtype, copy=False)
                self.valid[n] = without_padding(layer)

    def _refine(self, modes):
        """Merges of inputs of different spatial sizes (a broadcast gate) run in full, and so does what follows."""
        model = self.model
        for n in model.order:
            ins = model.inputs_of(n)
            if modes[n] == "box" and any(modes[i] != "box" for i in ins):
                modes[n] = "full"
            if modes[n] == "box" and model[n].kind == "merge":
                if len({self.tape.value(i).shape[2:] for i in ins}) != 1:
                    modes[n] = "full"
            if modes[n] == "global" and modes[ins[0]] != "box":
                modes[n] = "full"
        return modes

    def scores(self, image, r0, c0):
        """Model output ``(B, K)`` for images ``x[image]`` with the window at ``(r0, c0)`` filled."""
        x, (kh, kw) = self.x, self.window
        H, W = x.shape[2:]
        # the changed box at the input: the window, shifted inside the image (border windows are clipped)
        lo = np.stack([np.minimum(r0, H - kh), np.minimum(c0, W - kw)], axis=1)
        rr = lo[:, 0, None] + np.arange(kh)
        cc = lo[:, 1, None] + np.arange(kw)
        inside = (((rr >= r0[:, None]) & (rr < r0[:, None] + kh))[:, :, None]
                  & ((cc >= c0[:, None]) & (cc < c0[:, None] + kw))[:, None, :])
        patch = np.where(inside[:, None], _gather(self.fill, image, lo, (kh, kw)), _gather(x, image, lo, (kh, kw)))
        reps = {INPUT: ("box", lo, (kh, kw), patch)}
        model = self.model
        for n in model.order:
            layer, mode = model[n], self.modes[n]
            ins = model.inputs_of(n)
            if mode == "box" and _kind(layer) == "window":
                reps[n] = self._window(n, layer, image, reps[ins[0]])
            elif mode == "box" and layer.kind == "merge":
                reps[n] = self._merge(layer, image, [(i, reps[i]) for i in ins])
            elif mode == "box":
                _, blo, bsize, bpatch = reps[ins[0]]
                reps[n] = ("box", blo, bsize, layer.forward(bpatch)[0])
            elif mode == "global":
                _, blo, _, bpatch = reps[ins[0]]
                out = region_map(layer).fn(layer, self.tape.value(ins[0]), self.tape.value(n), image, bpatch, blo)
                reps[n] = ("full", out)
            else:
                args = tuple(self._full(i, reps[i], image) for i in ins)
                reps[n] = ("full", layer.forward(args[0] if layer.arity == 1 else args)[0])
            for i in set(ins):  # free what no later node reads
                if all(self._done(c, n) for c in model.consumers(i)):
                    reps.pop(i, None)
        return self._full(model.output, reps[model.output], image)

    def _done(self, consumer, current):
        return self.pos[consumer] <= self.pos[current]

    def _full(self, name, rep, image):
        if rep[0] == "full":
            return rep[1]
        _, lo, size, patch = rep
        full = self.tape.value(name)[image].copy()
        _paste(full, patch, lo[:, 0, None] + np.arange(size[0]), lo[:, 1, None] + np.arange(size[1]))
        return full

    def _window(self, n, layer, image, rep):
        _, lo, size, patch = rep
        rm = region_map(layer)
        in_hw = self.tape.value(self.model.inputs_of(n)[0]).shape[2:]
        out_lo, out_size, need_lo, need_size = rm.fn(layer, lo, size, in_hw)
        # read the needed box plus one spare row and column; changed pixels that fall outside the needed box
        # reach no output of the layer, so they are parked in the spare row/column
        slab = _gather(self.padded[n], image, need_lo + self.margin[n], (need_size[0] + 1, need_size[1] + 1))
        rows = lo[:, 0, None] - need_lo[:, 0, None] + np.arange(size[0])
        cols = lo[:, 1, None] - need_lo[:, 1, None] + np.arange(size[1])
        rows = np.where((rows >= 0) & (rows < need_size[0]), rows, need_size[0])
        cols = np.where((cols >= 0) & (cols < need_size[1]), cols, need_size[1])
        _paste(slab, patch, rows, cols)
        out = box_forward(self.valid[n], slab[:, :, : need_size[0], : need_size[1]])
        return ("box", out_lo, tuple(int(s) for s in out_size), out)

    def _merge(self, layer, image, inputs):
        """Join the inputs' boxes into their union (one size for the batch, kept inside the activation)."""
        hw = self.tape.value(inputs[0][0]).shape[2:]
        los = np.stack([rep[1] for _, rep in inputs])  # (I, B, 2)
        his = np.stack([rep[1] + np.array(rep[2]) for _, rep in inputs])
        ulo, uhi = los.min(axis=0), his.max(axis=0)
        size = tuple(int(s) for s in (uhi - ulo).max(axis=0))
        ulo = np.clip(np.minimum(ulo, np.array(hw) - np.array(size)), 0, None)
        args = []
        for name, (_, lo, bsize, patch) in inputs:
            box = _gather(self.tape.value(name), image, ulo, size).copy()
            _paste(box, patch, lo[:, 0, None] - ulo[:, 0, None] + np.arange(bsize[0]),
                   lo[:, 1, None] - ulo[:, 1, None] + np.arange(bsize[1]))
            args.append(box)
        return ("box", ulo, size, layer.forward(tuple(args))[0])


def box_forward(layer, boxes):
    """A padding-free window layer on a batch of small boxes.

    Convolutions run as one GEMM over all boxes (``W (O, K) @ cols (K, B*P)``), much faster for many
    small inputs than a batched matmul: stride-1 layers through their own wide-column kernel
    (``Conv2D.correlate``), other strides by :func:`xattr.nn.conv.correlate_batch`; the convolution of
    :mod:`xattr.nn.conv`, checked against full recomputation by the tests.

    Parameters
    ----------
    layer : Layer
        A window layer without padding (``Conv2D`` or a pooling layer).
    boxes : ndarray ``(B, C, h, w)``

    Returns
    -------
    ndarray ``(B, C_out, h_out, w_out)``
    """
    if type(layer) is not Conv2D:
        return layer.forward(boxes)[0]
    _, _, h, w = boxes.shape
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.stride, layer.dilation
    out_hw = (conv_output_size(h, kh, sh, dh, 0, 0), conv_output_size(w, kw, sw, dw, 0, 0))
    if layer.stride == (1, 1) or layer.groups != 1:  # the layer's own kernel (wide columns / grouped / depthwise)
        return layer.correlate(boxes, out_hw, bias=layer.bias)
    return correlate_batch(layer, boxes, out_hw)  # one GEMM over all boxes (xattr.nn.conv)


# -- receptive fields (Shapley's locality tables) ------------------------------------------------------
def gap_split(model):
    """The GlobalAvgPool2D node that every path to the output passes through and before which every node
    has a region map, or None: the split of :func:`xattr.shapley`'s locality tables."""
    modes = plan(model)
    if modes is None:
        return None
    for n in model.order:
        if modes[n] == "global" and model.inputs_of(n)[0] != INPUT:
            before = set(model._ancestors(n))
            after = [m for m in model.order if m not in before]
            # a cut: nothing after it reads a node before it (other than itself)
            if all(i == n or i not in before for m in after for i in model.inputs_of(m)):
                return n
            return None
    return None


def _needed_range(layer, lo, hi, axis):
    """Input rows ``[lo*s - pad, hi*s - pad + d(k-1)]`` read by output rows ``[lo, hi]`` of a window layer."""
    k, s = layer.kernel_size[axis], layer.stride[axis]
    d = getattr(layer, "dilation", (1, 1))[axis]
    pad = layer.pads[axis][0]
    return lo * s - pad, hi * s - pad + d * (k - 1)


def receptive_fields(model, node, x1):
    """Per axis ``(lo, hi)`` int arrays: the input rows (columns) read by each position of ``node``'s output,
    inclusive and clipped to the image, through every branch (the hull of the branches' ranges).

    Parameters
    ----------
    model : Graph
    node : str
    x1 : ndarray ``(1, C, H, W)``
        One input sample (for the activations' sizes).

    Returns
    -------
    fields : list of two ``(lo, hi)`` pairs of int arrays ``(h,)`` and ``(w,)``
    hw : tuple of int ``(h, w)``
        The spatial size of ``node``'s output.
    """
    tape = model.trace(x1, stop=node)
    hw_of = {n: tape.value(n).shape[2:] for n in tape.records}
    hw_of[INPUT] = x1.shape[2:]
    out = []
    for axis in (0, 1):
        ranges = {node: (np.arange(hw_of[node][axis]), np.arange(hw_of[node][axis]))}
        for n in reversed(model.order):
            if n not in ranges:
                continue
            lo, hi = ranges.pop(n)
            layer = model[n]
            if _kind(layer) == "window":
                lo, hi = _needed_range(layer, lo, hi, axis)
            for i in model.inputs_of(n):
                lim = hw_of[i][axis] - 1
                ilo, ihi = np.maximum(lo, 0), np.minimum(hi, lim)  # padding reads no input
                if i in ranges:
                    ilo, ihi = np.minimum(ranges[i][0], ilo), np.maximum(ranges[i][1], ihi)
                ranges[i] = (ilo, ihi)
        out.append(ranges[INPUT])
    return out, hw_of[node]
