"""Incremental occlusion (Nakandala et al. 2019): region maps and equality with full recomputation.

Oracles: brute force (perturb an input box, see which outputs move) for each layer's region map;
full recomputation of every occluded image for the incremental runner, on random architectures.
"""
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from xattr.methods import perturbation as P
from xattr.methods.perturbation.occlusion import _window_starts
from xattr.methods.segments import fill_image
from xattr.nn import (
    AvgPool2D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    ReLU,
    Sequential,
)
from xattr.nn.conv import pad_nchw
from xattr.nn.region import finite_pad_value, region_map, window_region, without_padding


def min_size(layer):
    """The smallest input (height, width) a window layer accepts: its dilated window fits the padded input."""
    dilation = getattr(layer, "dilation", (1, 1))
    return tuple(max(1, d * (k - 1) + 1 - sum(p)) for k, d, p in zip(layer.kernel_size, dilation, layer.pads))


@st.composite
def window_layers(draw):
    kind = draw(st.sampled_from(["conv", "max", "avg"]))
    k = draw(st.integers(1, 4))
    s = draw(st.integers(1, 3))
    if kind == "conv":
        padding = draw(st.sampled_from([0, 1, 2, "same"]))  # "same": asymmetric for even kernels
        return Conv2D(2, 3, k, stride=1 if padding == "same" else s, padding=padding,
                      dilation=draw(st.integers(1, 2)), rng=draw(st.integers(0, 9)))
    pool = MaxPool2D if kind == "max" else AvgPool2D
    return pool(k, stride=s, padding=draw(st.integers(0, k // 2)))


@st.composite
def layers_and_inputs(draw):
    """A window layer and an input size it accepts (every size from its smallest up to 11)."""
    layer = draw(window_layers())
    h_min, w_min = min_size(layer)
    return layer, draw(st.integers(h_min, 11)), draw(st.integers(w_min, 11))


@settings(max_examples=40)
@given(case=layers_and_inputs(), data=st.data())
@example(case=(MaxPool2D(2), 5, 5), data=None)  # odd size: the last row feeds no output (floor mode)
def test_region_map_covers_every_changed_output_and_recomputes_it(case, data):
    layer, H, W = case
    x = np.random.default_rng(H * 13 + W).random((1, 2, H, W))
    y = layer.forward(x)[0]
    if data is None:
        h, w, lo = 1, 5, np.array([[4, 0]])
    else:
        h, w = data.draw(st.integers(1, H)), data.draw(st.integers(1, W))
        lo = np.array([[data.draw(st.integers(0, H - h)), data.draw(st.integers(0, W - w))]])
    rm = region_map(layer)
    out_lo, out_size, need_lo, need_size = rm.fn(layer, lo, (h, w), (H, W))
    Ho, Wo = y.shape[2:]
    assert 0 <= out_lo[0, 0] and out_lo[0, 0] + out_size[0] <= Ho
    assert 0 <= out_lo[0, 1] and out_lo[0, 1] + out_size[1] <= Wo
    # brute force: change the box, find the outputs that move; they must lie inside the output box
    x2 = x.copy()
    x2[:, :, lo[0, 0]:lo[0, 0] + h, lo[0, 1]:lo[0, 1] + w] += 1.0 + np.random.default_rng(1).random((1, 2, h, w))
    moved = np.nonzero(np.any(layer.forward(x2)[0] != y, axis=(0, 1)))
    box = np.zeros((Ho, Wo), bool)
    box[out_lo[0, 0]:out_lo[0, 0] + out_size[0], out_lo[0, 1]:out_lo[0, 1] + out_size[1]] = True
    assert box[moved].all()
    # the needed input box (padded coordinates) recomputes the output box without padding
    m = 8
    xp = pad_nchw(x2, ((m, m), (m, m)), value=finite_pad_value(rm, x2.dtype))
    r, c = need_lo[0] + m
    part = without_padding(layer).forward(xp[:, :, r:r + need_size[0], c:c + need_size[1]])[0]
    full = layer.forward(x2)[0][:, :, out_lo[0, 0]:out_lo[0, 0] + out_size[0], out_lo[0, 1]:out_lo[0, 1] + out_size[1]]
    np.testing.assert_allclose(part, full, rtol=1e-12, atol=1e-14)


def test_window_region_formula_on_hand_cases():
    # 3-wide kernel, stride 1, pad 1 on 10 rows: rows 4..5 reach outputs 3..6; needed rows 2..7
    out_lo, out_size, need_lo, need_size = window_region(np.array([4]), 2, 10, 3, 1, 1, 1, 1)
    assert (out_lo[0], out_size, need_lo[0], need_size) == (3, 4, 2, 6)
    # 2x2 stride-2 pool: rows 3..4 reach outputs 1..2
    out_lo, out_size, need_lo, need_size = window_region(np.array([3]), 2, 8, 2, 2, 1, 0, 0)
    assert (out_lo[0], out_size, need_lo[0], need_size) == (1, 2, 2, 4)
    # at the border the box is shifted inside: rows 0..1 with a 3-kernel, pad 1 -> outputs 0..2
    out_lo, out_size, _, _ = window_region(np.array([0]), 2, 10, 3, 1, 1, 1, 1)
    assert (out_lo[0], out_size) == (0, 4)


@st.composite
def architectures(draw):
    """Conv/BN/ReLU/Dropout/pool stacks whose every layer fits the size it receives (kernels, dilations and pool
    paddings are drawn among those that fit), then a GAP or flatten head."""
    H = draw(st.integers(6, 14))
    W = draw(st.integers(6, 14))
    layers, c, gen = [], 2, np.random.default_rng(draw(st.integers(0, 99)))
    hw = (H, W)
    for _ in range(draw(st.integers(1, 3))):
        o = draw(st.integers(1, 4))
        padding = draw(st.sampled_from([0, 1, 2, "same"]))
        dilation = draw(st.integers(1, 2))
        room = min(hw) + (0 if padding == "same" else 2 * padding)  # "same" pads whatever the window needs
        k_max = 4 if padding == "same" else max(k for k in range(1, 5) if dilation * (k - 1) + 1 <= room)
        conv = Conv2D(c, o, draw(st.integers(1, k_max)), stride=1 if padding == "same" else draw(st.integers(1, 2)),
                      padding=padding, dilation=dilation, rng=gen)
        layers.append(conv)
        c = o
        if draw(st.booleans()):
            bn = BatchNorm2D(c)
            bn.weight, bn.bias = gen.normal(size=c), gen.normal(size=c)
            bn.running_mean, bn.running_var = gen.normal(size=c), gen.random(c) + 0.5
            layers.append(bn)
        layers.append(draw(st.sampled_from([ReLU, lambda: Dropout(0.3)]))())
        hw = conv.forward(np.zeros((1, conv.in_channels) + hw))[0].shape[2:]
        if draw(st.booleans()):
            k = draw(st.integers(2, 3))
            pad = draw(st.integers(max(0, -(-(k - min(hw)) // 2)), k // 2))  # the smallest padding that fits
            pool = draw(st.sampled_from([MaxPool2D, AvgPool2D]))(k, stride=draw(st.integers(1, 3)), padding=pad)
            layers.append(pool)
            hw = pool.forward(np.zeros((1, c) + hw))[0].shape[2:]
    head = draw(st.sampled_from(["gap", "flatten"]))
    return layers, head, c, (H, W)


def build(layers, head, c, hw):
    a = np.zeros((1, 2) + hw)
    for layer in layers:
        a = layer.forward(a)[0]
    if head == "gap":
        tail = [GlobalAvgPool2D(), Dense(c, 3, rng=1)]
    else:
        tail = [Flatten(), Dense(a[0].size, 3, rng=1)]
    return Sequential(*(layers + tail))


@settings(max_examples=30)
@given(arch=architectures(), data=st.data())
def test_incremental_occlusion_equals_full_recomputation(arch, data):
    layers, head, c, (H, W) = arch
    model = build(layers, head, c, (H, W))
    kh, kw = data.draw(st.integers(1, H)), data.draw(st.integers(1, W))
    sh, sw = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    baseline = data.draw(st.sampled_from([0.0, -1.5, "blur"]))
    rng = np.random.default_rng(H + 7 * W)
    x = rng.random((2, 2, H, W))
    x[:, :, : H // 2] = np.round(x[:, :, : H // 2], 1)  # repeated values: max-pool ties and exact zeros
    fill = fill_image(x, baseline, sigma=1.0)
    rows, cols = _window_starts(H, kh, sh), _window_starts(W, kw, sw)
    def value(s, image):
        return s[:, 1]

    full = P.occluded_scores(model, x, fill, value, rows, cols, (kh, kw), batch_size=16, incremental=False)
    inc = P.occluded_scores(model, x, fill, value, rows, cols, (kh, kw), batch_size=7, incremental=True)
    np.testing.assert_allclose(inc, full, rtol=1e-11, atol=1e-12 * (1 + np.abs(full).max()))


def test_incremental_forced_on_a_model_without_region_maps_is_refused():
    model = Sequential(Flatten(), Dense(16, 2))
    with pytest.raises(ValueError, match="region maps"):
        P.occlusion(model, np.ones((1, 1, 4, 4)), 0, window=2, stride=2, incremental=True)
    # auto silently falls back to full recomputation
    assert P.occlusion(model, np.ones((1, 1, 4, 4)), 0, window=2, stride=2).shape == (1, 1, 4, 4)
