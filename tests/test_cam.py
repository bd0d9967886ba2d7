"""CAM, Grad-CAM, Guided Grad-CAM: the CAM/Grad-CAM relation, upsampling twin, errors."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import xattr
from xattr.methods.cam import upsample_bilinear
from xattr.nn import Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, MaxPool2D, ReLU, Sequential, reference


def _cam_net(seed=0):
    g = np.random.default_rng(seed)
    m = Sequential(
        Conv2D(3, 4, 3, padding=1, rng=g),
        ReLU(),
        MaxPool2D(2),
        Conv2D(4, 6, 3, padding=1, rng=g),
        ReLU(),
        GlobalAvgPool2D(),
        Flatten(),
        Dropout(),
        Dense(6, 5, rng=g),
    )
    m["dense1"].bias = g.normal(size=5)
    return m


X = np.random.default_rng(3).normal(size=(2, 3, 8, 8))


def test_cam_closed_form():
    m = _cam_net()
    feats = m.activations(X, "relu2")  # input of the GAP
    c = xattr.cam(m, X, 2, upsample=False)
    np.testing.assert_allclose(c[:, 0], np.einsum("k,nkhw->nhw", m["dense1"].weight[2], feats), rtol=1e-12)
    # the map averages to the class score minus the bias (the bias is not part of the map)
    np.testing.assert_allclose(c.mean(axis=(1, 2, 3)), m(X)[:, 2] - m["dense1"].bias[2], rtol=1e-12)


def test_grad_cam_equals_relu_cam_over_area_on_gap_heads():
    """Selvaraju et al.: Grad-CAM generalises CAM; on GAP -> dense, alpha_k = w_k / (h w)."""
    m = _cam_net()
    for t in (0, np.array([1, 4])):
        c = xattr.cam(m, X, t, upsample=False)
        gc = xattr.grad_cam(m, X, t, upsample=False)
        np.testing.assert_allclose(gc, np.maximum(c, 0) / 16, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(xattr.grad_cam(m, X, t, relu=False, upsample=False), c / 16, rtol=1e-12, atol=1e-15)
        # the ReLU acts on the coarse map, then it is upsampled (ReLU and resizing do not commute)
        np.testing.assert_allclose(
            xattr.grad_cam(m, X, t), upsample_bilinear(np.maximum(c, 0), (8, 8)) / 16, rtol=1e-12, atol=1e-15
        )


def test_grad_cam_at_an_earlier_layer_by_hand():
    m = _cam_net()
    A = m.activations(X, "maxpool1")
    feats, caches = m.forward_all(X)
    seed = np.zeros_like(feats)
    seed[:, 3] = 1
    g = m.backward(seed, caches, stop=3)  # gradient at maxpool1's output
    expect = np.maximum(np.einsum("nk,nkhw->nhw", g.mean(axis=(2, 3)), A), 0)[:, None]
    np.testing.assert_allclose(xattr.grad_cam(m, X, 3, layer="maxpool1", upsample=False), expect, rtol=1e-12)
    assert xattr.grad_cam(m, X, 3, layer=2).shape == (2, 1, 8, 8)


def test_guided_grad_cam_is_the_product():
    m = _cam_net()
    np.testing.assert_allclose(
        xattr.guided_grad_cam(m, X, 1), xattr.guided_backprop(m, X, 1) * xattr.grad_cam(m, X, 1), rtol=1e-14
    )


@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 13), st.integers(1, 13))
def test_upsampling_equals_its_naive_twin(h, w, H, W):
    a = np.random.default_rng(h * 31 + w).normal(size=(1, 2, h, w))
    np.testing.assert_allclose(
        upsample_bilinear(a, (H, W)), reference.bilinear_resize(a, (H, W)), rtol=1e-12, atol=1e-12
    )


def test_upsampling_constant_and_identity():
    a = np.random.default_rng(0).normal(size=(1, 1, 4, 5))
    np.testing.assert_allclose(upsample_bilinear(a, (4, 5)), a, rtol=1e-14)
    np.testing.assert_allclose(upsample_bilinear(np.ones((1, 1, 3, 3)), (8, 7)), 1.0, rtol=1e-14)


def test_cam_family_float32_and_batch():
    m = _cam_net()
    for f in (xattr.cam, xattr.grad_cam, xattr.guided_grad_cam):
        full = f(m, X, 2)
        assert f(m, X.astype(np.float32), 2).dtype == np.float32
        np.testing.assert_allclose(full[1:], f(m, X[1:], 2), rtol=1e-13, atol=1e-15)


def test_cam_errors():
    no_gap = Sequential(Conv2D(3, 2, 3, rng=0), ReLU(), Flatten(), Dense(72, 4, rng=0))
    with pytest.raises(ValueError, match="GlobalAvgPool2D right before the final Dense"):
        xattr.cam(no_gap, X, 0)
    with pytest.raises(ValueError, match="last layer is Dense"):
        xattr.cam(Sequential(Conv2D(3, 2, 3, rng=0), GlobalAvgPool2D()), X, 0)
    with pytest.raises(TypeError, match="Sequential"):
        xattr.grad_cam(xattr.from_function(lambda x: x.reshape(x.shape[0], -1)), X, 0)
    with pytest.raises(ValueError, match="spatial output"):
        xattr.grad_cam(_cam_net(), X, 0, layer="dense1")
    with pytest.raises(KeyError, match="no layer named"):
        xattr.grad_cam(_cam_net(), X, 0, layer="conv7")
    with pytest.raises(ValueError, match="out of range"):
        xattr.cam(_cam_net(), X, 9)


# -- Grad-CAM as a lens: any pixel method, any hidden unit -------------------------------------------------

def _resnet_case():
    from xattr.testing.networks import small_resnet

    return small_resnet(), np.random.default_rng(3).normal(size=(2, 3, 12, 12)), np.array([1, 4])


@pytest.mark.parametrize("pixel", ["gradient", "integrated_gradients"])
def test_guided_grad_cam_lenses_any_pixel_method(pixel):
    """``guided_grad_cam(pixel=m)`` is ``m``'s map ⊙ the upsampled Grad-CAM with its ReLU (Selvaraju et al. 2017 §3),
    by name or as a callable."""
    model, x, t = _resnet_case()
    lens = xattr.grad_cam(model, x, t, relu=True, upsample=True)
    fine = xattr.get_method(pixel)(model, x, t)
    np.testing.assert_allclose(xattr.guided_grad_cam(model, x, t, pixel=pixel), fine * lens, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(xattr.guided_grad_cam(model, x, t, pixel=xattr.get_method(pixel)), fine * lens,
                               rtol=1e-12, atol=1e-15)


def test_guided_grad_cam_refuses_a_bad_pixel_method():
    model, x, t = _resnet_case()
    with pytest.raises(TypeError, match="pixel must be a method name or a callable"):
        xattr.guided_grad_cam(model, x, t, pixel=3)
    with pytest.raises(ValueError, match="unknown method 'nonsense'"):
        xattr.guided_grad_cam(model, x, t, pixel="nonsense")
    with pytest.raises(ValueError, match=r"must return a map of x's shape \(2, 3, 12, 12\), got \(2, 1, 12, 12\)"):
        xattr.guided_grad_cam(model, x, t, pixel="grad_cam")


def test_grad_cam_of_a_hidden_channel_equals_grad_cam_of_the_truncated_network():
    """``node=``: the explained value is a channel's spatial mean at a hidden node; oracle: the same layers up to that
    node followed by a global average pool, explained as a classifier of its channels."""
    from xattr.nn import Graph

    model, x, _ = _resnet_case()
    node, layer, channels = "layer1.0.relu2", "layer1.0.conv1", np.array([0, 3])
    keep = model._ancestors(node)
    triples = [tr for tr in model.triples() if tr[0] in keep]
    probe = Graph(triples + [("probe_gap", GlobalAvgPool2D(), node), ("probe_flat", Flatten(), "probe_gap")],
                  output="probe_flat")
    for relu in (True, False):
        np.testing.assert_allclose(xattr.grad_cam(model, x, channels, layer=layer, node=node, relu=relu),
                                   xattr.grad_cam(probe, x, channels, layer=layer, relu=relu), rtol=1e-12, atol=1e-15)


def test_grad_cam_of_the_output_node_is_grad_cam():
    model, x, t = _resnet_case()
    np.testing.assert_allclose(xattr.grad_cam(model, x, t, node="fc"), xattr.grad_cam(model, x, t), rtol=1e-13)


def test_grad_cam_node_must_lie_downstream_of_the_layer():
    model, x, _ = _resnet_case()
    with pytest.raises(ValueError, match="layer 'layer2.0.conv1' must lie upstream of node 'layer1.0.relu2'"):
        xattr.grad_cam(model, x, 0, layer="layer2.0.conv1", node="layer1.0.relu2")
    with pytest.raises(ValueError, match="target"):
        xattr.grad_cam(model, x, 9, layer="conv1", node="layer1.0.relu2")  # 4 channels there
