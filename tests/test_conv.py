"""Conv2D: naive twin, autograd, central differences, the adjoint identity, errors."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from xattr.nn import Conv2D, reference
from xattr.nn import conv as conv_mod

from autograd_twins import conv2d as ag_conv2d
from autograd_twins import vjp as ag_vjp


@st.composite
def conv_cases(draw, groups=True):
    g = draw(st.sampled_from([1, 1, 2, 3])) if groups else 1
    depthwise = g > 1 and draw(st.booleans())
    c_in = g * (1 if depthwise else draw(st.integers(1, 2)))
    c_out = g * draw(st.integers(1, 2))
    if g == 1:
        c_in, c_out = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    kind = draw(st.sampled_from(["same", "sym", "asym"]))
    s = (1, 1) if kind == "same" else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    if kind == "same":
        padding = "same"
    elif kind == "sym":
        padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    else:  # ((top, bottom), (left, right)), as ONNX pads or TensorFlow's "SAME" at stride 2
        padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(2))
    H = draw(st.integers(d[0] * (k[0] - 1) + 1, 7))
    W = draw(st.integers(d[1] * (k[1] - 1) + 1, 7))
    n = draw(st.integers(1, 2))
    bias = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    layer = Conv2D(c_in, c_out, k, stride=s, padding=padding, dilation=d, bias=bias, rng=seed, groups=g)
    if bias:
        layer.bias = np.random.default_rng(seed + 1).normal(size=c_out)
    x = np.random.default_rng(seed + 2).normal(size=(n, c_in, H, W))
    return layer, x


def _naive(layer):
    return dict(stride=layer.stride, pads=layer.pads, dilation=layer.dilation, groups=layer.groups)


@given(conv_cases())
def test_forward_and_backward_equal_naive_twin(case):
    layer, x = case
    y, cache = layer.forward(x)
    np.testing.assert_allclose(
        y, reference.conv2d_forward(x, layer.weight, layer.bias, **_naive(layer)), rtol=1e-12, atol=1e-12
    )
    g = np.random.default_rng(0).normal(size=y.shape)
    np.testing.assert_allclose(
        layer.backward(g, cache),
        reference.conv2d_backward(g, x.shape, layer.weight, **_naive(layer)),
        rtol=1e-12,
        atol=1e-12,
    )
    pg = layer.param_grads(g, cache)
    np.testing.assert_allclose(
        pg["weight"], reference.conv2d_weight_grad(g, x, layer.weight.shape, **_naive(layer)), rtol=1e-11, atol=1e-11
    )
    if layer.bias is not None:
        np.testing.assert_allclose(pg["bias"], g.sum(axis=(0, 2, 3)), rtol=1e-12)


@given(conv_cases())
def test_gradient_equals_autograd_and_central_differences(case):
    layer, x = case
    y, cache = layer.forward(x)
    rng = np.random.default_rng(1)
    u, v = rng.normal(size=y.shape), rng.normal(size=x.shape)
    gx = layer.backward(u, cache, "gradient")
    np.testing.assert_allclose(gx, ag_vjp(lambda z: ag_conv2d(z, layer), x, u), rtol=1e-10, atol=1e-12)
    h = 1e-5
    fd = np.sum(u * (layer(x + h * v) - layer(x - h * v))) / (2 * h)
    assert np.isclose(fd, np.sum(gx * v), rtol=1e-7, atol=1e-9)


@given(conv_cases())
def test_adjoint_identity_without_bias(case):
    """<A x, u> = <x, Aᵀ u> for the linear part (exact up to round-off)."""
    layer, x = case
    layer.bias = None if layer.bias is None else np.zeros(layer.out_channels)
    y, cache = layer.forward(x)
    u = np.random.default_rng(3).normal(size=y.shape)
    lhs, rhs = np.sum(y * u), np.sum(x * layer.backward(u, cache))
    assert np.isclose(lhs, rhs, rtol=1e-12, atol=1e-12 * (1 + abs(lhs)))


try:
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - torch is the optional 'captum' extra
    torch = F = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is the oracle here: pip install 'xattr-ref[captum]'")


@needs_torch
@given(conv_cases())
def test_grouped_depthwise_and_asymmetric_convs_equal_torch_float64(case):
    """Forward, input gradient and parameter gradients against ``F.conv2d`` (asymmetric pads by ``F.pad``)."""
    layer, x = case
    y, cache = layer.forward(x)
    u = np.random.default_rng(4).normal(size=y.shape)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(layer.weight, requires_grad=True)
    bt = None if layer.bias is None else torch.tensor(layer.bias, requires_grad=True)
    (t, b), (l, r) = layer.pads
    yt = F.conv2d(F.pad(xt, (l, r, t, b)), wt, bt, stride=layer.stride, dilation=layer.dilation, groups=layer.groups)
    (yt * torch.tensor(u)).sum().backward()
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.backward(u, cache), xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    pg = layer.param_grads(u, cache)
    np.testing.assert_allclose(pg["weight"], wt.grad.numpy(), rtol=1e-11, atol=1e-11)
    if bt is not None:
        np.testing.assert_allclose(pg["bias"], bt.grad.numpy(), rtol=1e-12, atol=1e-12)


def _block_diagonal_twin(layer):
    """The same function as a groups=1 conv whose weight is zero between groups."""
    G, O, C = layer.groups, layer.out_channels, layer.in_channels
    full = Conv2D(C, O, layer.kernel_size, stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                  bias=layer.bias is not None)
    w = np.zeros(full.weight.shape)
    for g in range(G):
        w[g * O // G : (g + 1) * O // G, g * C // G : (g + 1) * C // G] = layer.weight[g * O // G : (g + 1) * O // G]
    full.weight, full.bias = w, layer.bias
    return full


@pytest.mark.parametrize("stride", [(1, 1), (2, 1)])
@pytest.mark.parametrize("c_in, c_out, groups", [(4, 4, 4), (3, 6, 3), (4, 6, 2), (6, 3, 3)])
def test_grouped_and_depthwise_kernels_equal_the_block_diagonal_conv(c_in, c_out, groups, stride):
    """Depthwise (``groups = in_channels``: offset sums, channel multiplier 1 or 2) and grouped (batched GEMM)."""
    layer = Conv2D(c_in, c_out, 3, stride=stride, padding=(1, 2), dilation=(1, 2), rng=0, groups=groups)
    layer.bias = np.linspace(-1, 1, c_out)
    assert layer._depthwise() == (groups == c_in)
    full = _block_diagonal_twin(layer)
    x = np.random.default_rng(0).normal(size=(3, c_in, 7, 8))
    y, cache = layer.forward(x)
    yf, cf = full.forward(x)
    np.testing.assert_allclose(y, yf, rtol=1e-13, atol=1e-13)
    g = np.random.default_rng(1).normal(size=y.shape)
    np.testing.assert_allclose(layer.backward(g, cache), full.backward(g, cf), rtol=1e-13, atol=1e-13)
    dw_full = full.param_grads(g, cf)["weight"]
    dw = layer.param_grads(g, cache)["weight"]
    for k in range(groups):
        o, c = (
            slice(k * c_out // groups, (k + 1) * c_out // groups),
            slice(k * c_in // groups, (k + 1) * c_in // groups),
        )
        np.testing.assert_allclose(dw[o], dw_full[o, c], rtol=1e-12, atol=1e-13)
    dx = np.random.default_rng(2).normal(size=x.shape)  # jvp: the linear part
    np.testing.assert_allclose(layer.jvp(dx, cache), full.jvp(dx, cf), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("groups, c_in", [(2, 4), (4, 4)])
def test_grouped_chunked_batches_equal_one_chunk(monkeypatch, groups, c_in):
    layer = Conv2D(c_in, 4, 3, padding=1, rng=0, groups=groups)
    x = np.random.default_rng(0).normal(size=(5, c_in, 6, 6))
    y_full, cache = layer.forward(x)
    g = np.random.default_rng(1).normal(size=y_full.shape)
    gx_full, pg_full = layer.backward(g, cache), layer.param_grads(g, cache)["weight"]
    monkeypatch.setattr(conv_mod, "IM2COL_BUDGET", 1)  # one image per chunk
    y, cache = layer.forward(x)
    np.testing.assert_allclose(y, y_full, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(layer.backward(g, cache), gx_full, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(layer.param_grads(g, cache)["weight"], pg_full, rtol=1e-12)


def test_grouped_conv_float32_and_bad_groups():
    layer = Conv2D(4, 4, 3, padding=1, rng=0, groups=4)
    x = np.random.default_rng(0).normal(size=(2, 4, 5, 5)).astype(np.float32)
    y, cache = layer.forward(x)
    assert y.dtype == np.float32 and layer.backward(np.ones_like(y), cache).dtype == np.float32
    assert layer.weight.shape == (4, 1, 3, 3) and "groups=4" in repr(layer)
    with pytest.raises(ValueError, match="must divide both channel counts"):
        Conv2D(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match="positive int"):
        Conv2D(4, 4, 3, groups=0)
    with pytest.raises(ValueError, match=r"weight must have shape \(4, 1, 3, 3\)"):
        layer.weight = np.zeros((4, 4, 3, 3))


def test_three_rules_share_the_transposed_convolution():
    layer = Conv2D(2, 3, 3, padding=1, rng=0)
    x = np.random.default_rng(0).normal(size=(1, 2, 5, 5))
    y, cache = layer.forward(x)
    g = np.random.default_rng(1).normal(size=y.shape)
    ref = layer.backward(g, cache, "gradient")
    for rule in ("deconvnet", "guided"):
        np.testing.assert_array_equal(layer.backward(g, cache, rule), ref)


def test_chunked_batches_equal_one_chunk(monkeypatch):
    layer = Conv2D(3, 4, 3, stride=2, padding=1, rng=0)
    x = np.random.default_rng(0).normal(size=(5, 3, 9, 9))
    y_full, cache = layer.forward(x)
    g = np.random.default_rng(1).normal(size=y_full.shape)
    gx_full, pg_full = layer.backward(g, cache), layer.param_grads(g, cache)
    monkeypatch.setattr(conv_mod, "IM2COL_BUDGET", 1)  # one image per chunk
    y, cache = layer.forward(x)
    np.testing.assert_array_equal(y, y_full)
    np.testing.assert_allclose(layer.backward(g, cache), gx_full, rtol=1e-13)
    np.testing.assert_allclose(layer.param_grads(g, cache)["weight"], pg_full["weight"], rtol=1e-12)


@pytest.mark.parametrize("stride", [(1, 1), (2, 1)])
def test_chunked_batches_equal_one_chunk_in_both_layouts(monkeypatch, stride):
    """Five small maps at stride 1 go side by side (wide layout), other strides row by row: chunking changes neither."""
    layer = Conv2D(3, 4, (3, 2), stride=stride, padding=(1, 2), dilation=(1, 2), rng=0)
    x = np.random.default_rng(0).normal(size=(5, 3, 9, 8))
    y_full, cache = layer.forward(x)
    g = np.random.default_rng(1).normal(size=y_full.shape)
    gx_full = layer.backward(g, cache)
    monkeypatch.setattr(conv_mod, "IM2COL_BUDGET", 1)  # one image per chunk
    y, cache = layer.forward(x)
    # not bit for bit: BLAS may block a GEMM of other width differently (the last bits of a sum's order)
    np.testing.assert_allclose(y, y_full, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(layer.backward(g, cache), gx_full, rtol=1e-13, atol=1e-15)


@given(conv_cases(groups=False))
def test_wide_layout_holds_the_per_row_columns(case):
    """The wide im2col's column h·Wp + w is the per-row im2col's column h·Wo + w (stride 1)."""
    layer, x = case
    layer.stride = (1, 1)
    xp = conv_mod.pad_nchw(x, layer.pads)
    out_hw = layer.output_shape(x.shape)[2:]
    rows = conv_mod.im2col(xp, layer.kernel_size, (1, 1), layer.dilation, out_hw)
    wide = conv_mod.wide_im2col(xp, layer.kernel_size, layer.dilation, out_hw)
    Ho, Wo = out_hw
    Wp = xp.shape[3]
    picked = np.concatenate([wide[:, :, h * Wp : h * Wp + Wo] for h in range(Ho)], axis=2).transpose(1, 0, 2)
    np.testing.assert_array_equal(picked, rows)


@given(conv_cases())
def test_stacked_layout_holds_the_per_image_columns_side_by_side(case):
    """The stacked im2col is im2col with the image axis moved behind the rows, and its col2im is its adjoint."""
    layer, x = case
    xp = conv_mod.pad_nchw(x, layer.pads)
    out_hw = layer.output_shape(x.shape)[2:]
    args = (layer.kernel_size, layer.stride, layer.dilation, out_hw)
    stacked = conv_mod.stacked_im2col(xp, *args)
    np.testing.assert_array_equal(stacked, conv_mod.im2col(xp, *args).transpose(1, 0, 2))
    c = np.random.default_rng(1).normal(size=stacked.shape)
    back = conv_mod.stacked_col2im(c, xp.shape, *args)
    np.testing.assert_allclose(np.vdot(stacked, c), np.vdot(xp, back), rtol=1e-12, atol=1e-12)


#: settings of xattr.nn.conv that force each layout of the non-depthwise kernel (module docstring); all but the
#: stacked ones turn the stacked layout off, which the small maps of these cases would otherwise take
_NO_STACK = dict(STACKED_MIN_RATIO=float("inf"))
LAYOUTS = {
    "rows, one output row per tile": dict(
        **_NO_STACK, TILE_BYTES=1, TILE_MIN_COLUMNS=1, SIDE_BY_SIDE_BYTES=-1, WIDE_GRADIENT_BYTES=-1
    ),
    "rows, the whole image in one tile": dict(
        **_NO_STACK, TILE_BYTES=2**40, SIDE_BY_SIDE_BYTES=-1, WIDE_GRADIENT_BYTES=-1
    ),
    "rows forward, wide gradient image by image": dict(
        **_NO_STACK, SIDE_BY_SIDE_BYTES=-1, WIDE_GRADIENT_BYTES=2**40, WIDE_GRADIENT_MIN_CHANNELS=1, IM2COL_BUDGET=1
    ),
    "side by side, one image per chunk": dict(**_NO_STACK, SIDE_BY_SIDE_BYTES=2**40, IM2COL_BUDGET=1),
    "side by side, one chunk": dict(**_NO_STACK, SIDE_BY_SIDE_BYTES=2**40, IM2COL_BUDGET=2**40),
    "rows, strided gradients scattered window by window": dict(
        **_NO_STACK, SIDE_BY_SIDE_BYTES=-1, WIDE_GRADIENT_BYTES=-1, PHASE_MIN_OFFSETS=2**30
    ),
    "rows, strided gradients through phase planes": dict(
        **_NO_STACK, SIDE_BY_SIDE_BYTES=-1, WIDE_GRADIENT_BYTES=-1, PHASE_MIN_OFFSETS=1
    ),
    "stacked, one image per chunk": dict(STACKED_MIN_RATIO=0, IM2COL_BUDGET=1),
    "stacked, one chunk": dict(STACKED_MIN_RATIO=0, IM2COL_BUDGET=2**40),
}


class _layout:
    """Context: the conv module's layout settings replaced, and the helpers each layout calls counted."""

    def __init__(self, **settings):
        self.settings, self.saved, self.calls = settings, {}, {}

    def __enter__(self):
        for k, v in self.settings.items():
            self.saved[k] = getattr(conv_mod, k)
            setattr(conv_mod, k, v)
        for name in ("im2col_tile", "wide_im2col", "col2im_tile", "wide_col2im", "phase_col2im", "stacked_im2col",
                     "stacked_col2im"):
            fn = self.saved[name] = getattr(conv_mod, name)

            def counted(*a, _fn=fn, _name=name, **k):
                self.calls[_name] = self.calls.get(_name, 0) + 1
                return _fn(*a, **k)

            setattr(conv_mod, name, counted)
        return self

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            setattr(conv_mod, k, v)


@st.composite
def layout_cases(draw):
    layer, x = draw(conv_cases())
    if draw(st.booleans()):  # more images, so that side by side has several to put together
        x = np.concatenate([x, np.random.default_rng(7).normal(size=x.shape)])
    return layer, x


@pytest.mark.parametrize("layout", list(LAYOUTS))
@given(layout_cases())
def test_every_layout_equals_the_naive_twin(layout, case):
    """Pointwise, rows (tiled or not), side-by-side and stacked (chunked or not), strided gradients by phase planes
    or window by window: forward, input gradient and jvp
    against the naive loops (float64), and each case ran through the layout it was meant to take."""
    layer, x = case
    with _layout(**LAYOUTS[layout]) as run:
        y, cache = layer.forward(x)
        g = np.random.default_rng(0).normal(size=y.shape)
        gx = layer.backward(g, cache)
        jv = layer.jvp(x, cache)
    np.testing.assert_allclose(
        y, reference.conv2d_forward(x, layer.weight, layer.bias, **_naive(layer)), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(
        gx, reference.conv2d_backward(g, x.shape, layer.weight, **_naive(layer)), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(
        jv, reference.conv2d_forward(x, layer.weight, None, **_naive(layer)), rtol=1e-12, atol=1e-12
    )
    N, Ho = len(x), y.shape[2]
    if layer._depthwise() or layer._pointwise():
        assert not run.calls
    elif layout.startswith("stacked") and N > 1:
        chunks = N if layout.endswith("one image per chunk") else 1
        assert run.calls == {"stacked_im2col": 2 * chunks, "stacked_col2im": chunks}  # forward and jvp, backward
    elif layout.startswith("side") and layer.stride == (1, 1) and N > 1:
        chunks = N if layout.endswith("one image per chunk") else 1
        assert run.calls == {"wide_im2col": 2 * chunks, "wide_col2im": chunks}  # forward and jvp, backward
    elif layer.stride == (1, 1) and ("wide gradient" in layout or layout.startswith("side")
                                     and layer.in_channels >= conv_mod.WIDE_GRADIENT_MIN_CHANNELS):
        # one image (side by side needs two) or rows forward: the forward in row tiles, the gradient wide
        chunks = N if "image by image" in layout or layout.endswith("one image per chunk") else 1
        assert run.calls == {"im2col_tile": 2 * N, "wide_col2im": chunks}
    else:
        tiles = Ho if layout == "rows, one output row per tile" else 1
        phases = conv_mod.PHASE_MIN_OFFSETS if "PHASE_MIN_OFFSETS" not in LAYOUTS[layout] else \
            LAYOUTS[layout]["PHASE_MIN_OFFSETS"]
        if layer._overlapping_strided() and layer.kernel_size[0] * layer.kernel_size[1] >= phases:
            # strided gradients through the phase planes, chunks of images of at most TILE_BYTES of columns
            chunks = N if layout == "rows, one output row per tile" else 1
            assert run.calls == {"im2col_tile": 2 * N * tiles, "phase_col2im": chunks}
        else:
            assert run.calls == {"im2col_tile": 2 * N * tiles, "col2im_tile": N * tiles}


#: settings of xattr.nn.conv that force each path of the depthwise kernel (:func:`xattr.nn.conv.depthwise_sums`)
DEPTHWISE_LAYOUTS = {
    "windows, whole blocks": dict(DEPTHWISE_WIDE_BELOW=0, DEPTHWISE_BLOCK_BYTES=2**40),
    "windows, one channel of one image per block": dict(DEPTHWISE_WIDE_BELOW=0, DEPTHWISE_BLOCK_BYTES=1),
    "wide runs (stride 1), whole blocks": dict(DEPTHWISE_WIDE_BELOW=2**40, DEPTHWISE_BLOCK_BYTES=2**40),
    "wide runs (stride 1), one channel of one image per block": dict(DEPTHWISE_WIDE_BELOW=2**40,
                                                                     DEPTHWISE_BLOCK_BYTES=1),
}


@pytest.mark.parametrize("layout", list(DEPTHWISE_LAYOUTS))
@given(
    st.integers(2, 3), st.integers(1, 2), st.tuples(st.integers(1, 3), st.integers(1, 3)),
    st.tuples(st.integers(1, 3), st.integers(1, 3)), st.tuples(st.integers(1, 2), st.integers(1, 2)),
    st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 2), st.integers(0, 2)),
    st.integers(1, 3), st.integers(0, 2**16),
)
def test_every_depthwise_path_equals_the_naive_twin(layout, c, m, k, s, d, pads, n, seed):
    """Depthwise (any multiplier, stride, dilation, asymmetric padding): the window and wide-run paths, blocked
    by whole arrays or one channel of one image at a time, against the naive loops (float64); the input gradient
    takes one sub-pixel phase per stride offset, phases no window reaches included (stride above the kernel)."""
    padding = ((pads[0], pads[1]), (pads[2], pads[3]))
    layer = Conv2D(c, c * m, k, stride=s, padding=padding, dilation=d, rng=seed, groups=c)
    assert layer._depthwise()
    layer.bias = np.random.default_rng(seed + 1).normal(size=c * m)
    H, W = d[0] * (k[0] - 1) + 1 + seed % 4, d[1] * (k[1] - 1) + 1 + seed % 3
    x = np.random.default_rng(seed + 2).normal(size=(n, c, H, W))
    naive = _naive(layer)
    with _layout(**DEPTHWISE_LAYOUTS[layout]):
        y, cache = layer.forward(x)
        g = np.random.default_rng(seed + 3).normal(size=y.shape)
        gx = layer.backward(g, cache)
    np.testing.assert_allclose(y, reference.conv2d_forward(x, layer.weight, layer.bias, **naive), rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_allclose(gx, reference.conv2d_backward(g, x.shape, layer.weight, **naive), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("stride", [1, 2, (2, 3)])
def test_pointwise_layer_is_one_product_on_the_image(stride):
    """1×1 without padding: no columns are built; grouped too (a block-diagonal product); strided (ResNet's
    shortcuts) on the pixels the windows read, the others' gradient zero (5 × 6 maps: a stride that does not divide)."""
    for groups in (1, 2):
        layer = Conv2D(4, 6, 1, rng=0, groups=groups, stride=stride)
        layer.bias = np.arange(6.0)
        x = np.random.default_rng(0).normal(size=(3, 4, 5, 6))
        with _layout() as run:
            y, cache = layer.forward(x)
            g = np.random.default_rng(1).normal(size=y.shape)
            gx = layer.backward(g, cache)
        assert layer._pointwise() and not run.calls
        np.testing.assert_allclose(
            y,
            reference.conv2d_forward(x, layer.weight, layer.bias, layer.stride, ((0, 0), (0, 0)), (1, 1), groups),
            rtol=1e-13, atol=1e-13,
        )
        np.testing.assert_allclose(
            gx,
            reference.conv2d_backward(g, x.shape, layer.weight, layer.stride, ((0, 0), (0, 0)), (1, 1), groups),
            rtol=1e-13, atol=1e-13,
        )


def test_disjoint_windows_are_assigned_and_overlapping_ones_added():
    """A stride at least the dilated kernel writes each input pixel at most once (1×1: the pointwise path)."""
    for k, s, d in [(1, 2, 1), (2, 2, 1), (2, 3, 2), (3, 2, 1), (2, 1, 1)]:
        layer = Conv2D(2, 3, k, stride=s, dilation=d, rng=k)
        x = np.random.default_rng(s).normal(size=(2, 2, 9, 8))
        y, cache = layer.forward(x)
        g = np.random.default_rng(d).normal(size=y.shape)
        with _layout(TILE_BYTES=1, TILE_MIN_COLUMNS=1, SIDE_BY_SIDE_BYTES=-1, STACKED_MIN_RATIO=float("inf")):
            gx = layer.backward(g, cache)
        np.testing.assert_allclose(
            gx,
            reference.conv2d_backward(g, x.shape, layer.weight, (s, s), ((0, 0), (0, 0)), (d, d)),
            rtol=1e-13,
            atol=1e-14,
        )


def test_results_never_alias_the_scratch_buffers():
    """A later call (same thread, same workspace) must not change an earlier result."""
    layer = Conv2D(2, 3, 3, padding=1, rng=0)
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=(2, 2, 2, 6, 6))
    y1, c1 = layer.forward(x1)
    g1 = layer.backward(np.ones_like(y1), c1)
    y1_0, g1_0 = y1.copy(), g1.copy()
    y2, c2 = layer.forward(x2)
    layer.backward(rng.normal(size=y2.shape), c2)
    np.testing.assert_array_equal(y1, y1_0)
    np.testing.assert_array_equal(g1, g1_0)
    assert y1.flags.writeable and g1.flags.writeable


def test_same_padding_keeps_size_including_even_kernels():
    for k, d in [(3, 1), (4, 1), (3, 2), (2, 3)]:
        layer = Conv2D(1, 1, k, padding="same", dilation=d, rng=0)
        assert layer(np.zeros((1, 1, 7, 6))).shape == (1, 1, 7, 6)


def test_float32_in_float32_out_and_input_untouched():
    layer = Conv2D(2, 3, 3, padding=1, rng=0)
    x = np.random.default_rng(0).normal(size=(2, 2, 6, 6)).astype(np.float32)
    x0 = x.copy()
    y, cache = layer.forward(x)
    assert y.dtype == np.float32 and layer.backward(np.ones_like(y), cache).dtype == np.float32
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_allclose(y, layer(x.astype(np.float64)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "x, match",
    [
        (np.zeros((1, 4, 5, 5)), "3 channel"),
        (np.zeros((3, 5, 5)), "rank 4"),
        (np.full((1, 3, 5, 5), np.nan), "finite"),
        (np.zeros((1, 3, 5, 5), dtype=complex), "dtype"),
        (np.zeros((1, 3, 2, 2)), "smaller than"),
    ],
)
def test_bad_input_is_refused_clearly(x, match):
    with pytest.raises((ValueError, TypeError), match=match):
        Conv2D(3, 2, 3, rng=0).forward(x)


def test_bad_parameters_are_refused_clearly():
    layer = Conv2D(3, 2, 3, rng=0)
    with pytest.raises(ValueError, match=r"weight must have shape \(2, 3, 3, 3\), got \(2, 3, 2, 2\)"):
        layer.weight = np.zeros((2, 3, 2, 2))
    with pytest.raises(ValueError, match="bias must have shape"):
        layer.bias = np.zeros(3)
    with pytest.raises(ValueError, match="stride 1"):
        Conv2D(3, 2, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match=">= 1"):
        Conv2D(3, 2, 0)
    with pytest.raises(ValueError, match="padding must be"):
        Conv2D(3, 2, 3, padding="full")


def test_weights_are_plain_assignable_and_copied():
    layer = Conv2D(1, 1, 2, bias=False)
    w = np.arange(4.0).reshape(1, 1, 2, 2)
    layer.weight = w
    w[...] = 0  # the layer keeps its own copy
    x = np.ones((1, 1, 2, 2))
    assert layer(x).item() == 6.0


def _mobile_block(stride=2):
    """A MobileNet-like block: pointwise expand, ReLU6, depthwise 3x3 (stride 2), ReLU6, pointwise project."""
    from xattr.nn import Dense, GlobalAvgPool2D, ReLU6, Sequential

    m = Sequential(
        Conv2D(3, 6, 1, rng=0), ReLU6(), Conv2D(6, 6, 3, stride=stride, padding=1, rng=1, groups=6), ReLU6(),
        Conv2D(6, 4, 1, rng=2, groups=2), GlobalAvgPool2D(), Dense(4, 3, rng=3),
    )
    for k in (0, 2, 4):
        m[k].bias = np.linspace(-0.3, 0.4, m[k].out_channels)
    return m


def test_grouped_convs_through_every_walk():
    """Gradient (autograd oracle), exact IG (completeness), DeepLIFT (summation-to-delta), incremental occlusion
    (= full recomputation) on a depthwise-separable net."""
    import xattr

    from autograd_twins import model_function

    m = _mobile_block()
    x = np.random.default_rng(0).normal(size=(2, 3, 9, 9)) * 2
    seed = np.zeros((2, 3))
    seed[:, 1] = 1
    np.testing.assert_allclose(m.vjp(x, seed), ag_vjp(model_function(m), x, seed), rtol=1e-11, atol=1e-13)
    res = xattr.exact_integrated_gradients(m, x, 1)
    assert np.abs(res.delta).max() < 1e-10 and res.segments.min() > 1
    for rule in ("rescale", "revealcancel"):  # RevealCancel splits each ReLU6 input into the grouped conv's terms
        _, delta = xattr.deeplift(m, x, 1, reference=0.1, rule=rule, return_delta=True)
        assert np.abs(delta).max() < 1e-12
    for stride in (1, 2):
        m = _mobile_block(stride)
        inc = xattr.occlusion(m, x, 1, window=3, stride=2, incremental=True)
        full = xattr.occlusion(m, x, 1, window=3, stride=2, incremental=False)
        np.testing.assert_allclose(inc, full, rtol=1e-10, atol=1e-12)


@given(st.tuples(*[st.integers(0, 3)] * 4), st.sampled_from([0.0, -np.inf, 2.5]),
       st.sampled_from([np.float32, np.float64]))
def test_pad_nchw_equals_numpy_pad(pads, value, dtype):
    """The border-filled buffer equals np.pad's constant padding, asymmetric pads and any fill included."""
    t, b, l, r = pads
    x = np.random.default_rng(sum(pads)).normal(size=(2, 3, 4, 5)).astype(dtype)
    expect = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=value)
    got = conv_mod.pad_nchw(x, ((t, b), (l, r)), value=value)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, expect)
