"""Pad2D: np.pad and PyTorch's F.pad, the adjoint identity, TensorFlow's "SAME" padding, rules and methods."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import xattr
from xattr.nn import Conv2D, Dense, Flatten, GlobalAvgPool2D, Pad2D, ReLU, Sequential, tf_same_padding
from xattr.nn.relevance import LRP_RULES
from xattr.testing.gradcheck import check_model_gradient

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - torch is the optional 'captum' extra
    torch = F = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is the oracle here: pip install 'xattr-ref[captum]'")


@st.composite
def pad_cases(draw):
    pads = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(2))
    value = draw(st.sampled_from([0.0, 0.0, -1.5, 2.0]))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    x = np.random.default_rng(draw(st.integers(0, 1000))).normal(size=shape)
    return Pad2D(pads, value), x


@given(pad_cases())
def test_pad_equals_np_pad_and_its_adjoint_crops(case):
    layer, x = case
    (t, b), (l, r) = layer.pads
    y, cache = layer.forward(x)
    np.testing.assert_array_equal(y, np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=layer.value))
    u = np.random.default_rng(1).normal(size=y.shape)
    gx = layer.backward(u, cache)
    np.testing.assert_array_equal(gx, u[:, :, t : t + x.shape[2], l : l + x.shape[3]])
    # <P x, u> = <x, Pᵀ u> + value · Σ_padded u  (affine; exact for value 0)
    pad_sum = u.sum() - gx.sum()
    assert np.isclose(np.sum(y * u), np.sum(x * gx) + layer.value * pad_sum, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(layer.jvp(x, cache), np.pad(x, ((0, 0), (0, 0), (t, b), (l, r))))
    for rule in ("deconvnet", "guided", "rescale", "revealcancel") + LRP_RULES:
        np.testing.assert_array_equal(layer.backward(u, cache, rule), gx)
    mp, mn = layer.backward((u, 2 * u), cache, "revealcancel")
    np.testing.assert_array_equal(mn, 2 * gx)


@needs_torch
@given(pad_cases())
def test_pad_equals_torch_f_pad(case):
    layer, x = case
    (t, b), (l, r) = layer.pads
    xt = torch.tensor(x, requires_grad=True)
    yt = F.pad(xt, (l, r, t, b), value=layer.value)  # torch's order: (left, right, top, bottom)
    u = np.random.default_rng(2).normal(size=tuple(yt.shape))
    (yt * torch.tensor(u)).sum().backward()
    y, cache = layer.forward(x)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(layer.backward(u, cache), xt.grad.numpy())


def test_tensorflow_same_padding_by_hand():
    """TensorFlow: out = ceil(n / s), total = max((out − 1) s + d (k − 1) + 1 − n, 0), the odd pixel after."""
    assert tf_same_padding((224, 224), 3, 2) == ((0, 1), (0, 1))  # the asymmetric case of the issue
    assert tf_same_padding((7, 8), 3, 2) == ((1, 1), (0, 1))
    assert tf_same_padding((8, 8), 1, 2) == ((0, 0), (0, 0))
    assert tf_same_padding((9, 9), 5, 1) == ((2, 2), (2, 2))
    assert tf_same_padding((10, 10), 3, 1, dilation=2) == ((2, 2), (2, 2))
    for n in range(1, 12):
        for k, s in ((3, 2), (5, 2), (2, 2), (3, 3)):
            pads = tf_same_padding((n, n), k, s)
            conv = Conv2D(1, 1, k, stride=s)
            out = conv(Pad2D(pads)(np.zeros((1, 1, n, n)))).shape[2]
            assert out == -(-n // s), (n, k, s)  # ceil(n / s): the output TensorFlow's "SAME" promises


def _tf_net(value=0.0):
    """Pad2D(TF "SAME", stride 2) -> conv 3x3/2 -> ReLU -> conv -> GAP -> dense."""
    m = Sequential(Pad2D(tf_same_padding((8, 8), 3, 2), value), Conv2D(2, 3, 3, stride=2, rng=0), ReLU(),
                   Pad2D(((1, 0), (0, 2))), Conv2D(3, 3, 3, rng=1), ReLU(), GlobalAvgPool2D(), Dense(3, 2, rng=2))
    m[1].bias, m[4].bias = np.array([0.1, -0.2, 0.3]), np.array([0.2, 0.1, -0.1])
    return m


@pytest.mark.parametrize("value", [0.0, 0.7])
def test_methods_through_pad(value):
    m = _tf_net(value)
    x = np.random.default_rng(3).normal(size=(2, 2, 8, 8))
    check_model_gradient(m, x)
    res = xattr.exact_integrated_gradients(m, x, 1)
    assert np.abs(res.delta).max() < 1e-10
    _, delta = xattr.deeplift(m, x, 1, reference=0.3, return_delta=True)
    assert np.abs(delta).max() < 1e-12
    inc = xattr.occlusion(m, x, 0, window=3, stride=2, incremental=True)
    np.testing.assert_allclose(
        inc, xattr.occlusion(m, x, 0, window=3, stride=2, incremental=False), rtol=1e-11, atol=1e-13
    )


def test_lrp_through_zero_padding_conserves_on_a_bias_free_net():
    m = Sequential(Pad2D(((0, 1), (1, 0))), Conv2D(2, 3, 3, bias=False, rng=0), ReLU(), Flatten(),
                   Dense(3 * 6 * 6, 2, bias=False, rng=1))
    x = np.abs(np.random.default_rng(4).normal(size=(1, 2, 7, 7)))
    R, totals = xattr.lrp(m, x, 1, "0", return_totals=True)
    np.testing.assert_allclose(totals, totals[:, -1:].repeat(totals.shape[1], axis=1), rtol=1e-10)


def test_pad_bad_settings_and_input():
    with pytest.raises(ValueError, match="non-negative"):
        Pad2D(((0, -1), (0, 0)))
    with pytest.raises(ValueError, match="finite"):
        Pad2D(1, value=float("inf"))
    with pytest.raises(ValueError, match="rank 4"):
        Pad2D(1).forward(np.zeros((2, 3)))
    assert Pad2D((1, 2)).pads == ((1, 1), (2, 2)) and "value=0.5" in repr(Pad2D(1, 0.5))
    x = np.ones((1, 1, 2, 2), dtype=np.float32)
    y, cache = Pad2D(1, 2.0).forward(x)
    assert y.dtype == np.float32 and y[0, 0, 0, 0] == 2.0 and Pad2D(1).backward(y, cache).dtype == np.float32
