"""The model constructions behind the checks compute exactly the functions they claim (xattr/testing/twins.py)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import xattr
from xattr.nn import Conv2D, Dense, Flatten, GlobalAvgPool2D, Sequential
from xattr.testing import cases, twins
from xattr.testing import strategies as xst


def _scores(m, x):
    return m.forward(x)


def _x(model, n=2, seed=3):
    a = model.arch
    return np.random.default_rng(seed).normal(size=(n, a["in_channels"]) + tuple(a["hw"]))


@settings(max_examples=15)
@given(xst.sequential_models(depth=(2, 3)), st.integers(0, 100))
def test_rescaled_twin_is_the_same_function(model, seed):
    x = _x(model)
    try:
        twin = twins.rescaled_twin(model, rng=seed)
    except ValueError as exc:
        assert "needs two Conv2D/Dense layers" in str(exc)
        return
    np.testing.assert_allclose(twin.forward(x), model.forward(x), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(xattr.gradient(twin, x, 0), xattr.gradient(model, x, 0), rtol=1e-9, atol=1e-13)


@settings(max_examples=15)
@given(xst.sequential_models())
def test_relu_identity_twin_is_the_same_function(model):
    x = _x(model)
    twin = twins.relu_identity_twin(model)
    assert len(twin) == len(model) + 3
    np.testing.assert_allclose(twin.forward(x), model.forward(x), rtol=1e-10, atol=1e-12)
    if np.all(twins.first_layer_output(model, x) != 0):
        np.testing.assert_allclose(xattr.gradient(twin, x, 0), xattr.gradient(model, x, 0), rtol=1e-9, atol=1e-13)


def test_relu_identity_twin_derivative_at_zero_follows_the_relu_convention():
    # at z == 0 exactly the twin's derivative is 0 (ReLU'(0) = 0 twice), the original's 1
    model = Sequential(Flatten(), Dense(1, 1, bias=False))
    model[1].weight = np.ones((1, 1))
    twin = twins.relu_identity_twin(model)
    x = np.zeros((1, 1, 1, 1))
    assert xattr.gradient(model, x, 0).item() == 1.0
    assert xattr.gradient(twin, x, 0).item() == 0.0


@settings(max_examples=15)
@given(xst.sequential_models(), st.floats(-2, 2))
def test_shifted_input_twin_absorbs_the_shift(model, shift):
    x = _x(model)
    twin = twins.shifted_input_twin(model, shift, in_channels=x.shape[1])
    np.testing.assert_allclose(twin.forward(x + shift), model.forward(x), rtol=1e-9, atol=1e-11)


def test_shifted_input_twin_folds_into_an_unpadded_conv_and_prepends_otherwise():
    m = cases.small_cnn(padding=0)
    assert len(twins.shifted_input_twin(m, 0.5)) == len(m)
    m1 = cases.small_cnn(padding=1)
    t1 = twins.shifted_input_twin(m1, np.array([0.5, -1.0, 2.0]))
    assert len(t1) == len(m1) + 1 and t1.names[0] == "shift"
    x = cases.images()
    np.testing.assert_allclose(t1.forward(x + np.array([0.5, -1.0, 2.0])[:, None, None]), m1.forward(x), rtol=1e-12)
    with pytest.raises(ValueError, match=r"shape \(C,\)"):
        twins.shifted_input_twin(m1, np.zeros(2))


@settings(max_examples=15)
@given(xst.sequential_models(), st.floats(-2, 2), st.floats(-2, 2), st.integers(0, 50))
def test_parallel_sum_computes_the_linear_combination(model, a, b, seed):
    x = _x(model)
    m2 = twins.random_weights_like(model, seed)
    h = twins.parallel_sum(model, m2, a, b)
    np.testing.assert_allclose(h.forward(x), a * model.forward(x) + b * m2.forward(x), rtol=1e-9, atol=1e-10)


def test_parallel_sum_refuses_different_architectures():
    with pytest.raises(ValueError, match="same architecture"):
        twins.parallel_sum(cases.small_cnn(), cases.small_cnn(head="flatten"), 1, 1)


@pytest.mark.parametrize("head", ["gap", "flatten"])
def test_mirror_symmetric_twin_is_flip_invariant(head):
    m = cases.small_cnn(head=head)
    x = cases.images()
    g = twins.mirror_symmetric_twin(m, x.shape)
    np.testing.assert_allclose(g.forward(x[..., ::-1]), g.forward(x), rtol=1e-12, atol=1e-14)
    assert not np.allclose(m.forward(x[..., ::-1]), m.forward(x))


def test_mirror_symmetric_twin_refuses_asymmetric_geometry_and_axis_straddling_maxpool():
    # conv 3x3 without padding on width 8 -> 6, maxpool 2 -> 3 windows: the middle one straddles the axis
    with pytest.raises(ValueError, match="tie policy"):
        twins.mirror_symmetric_twin(cases.small_cnn(padding=0), (1, 3, 8, 8))
    m = Sequential(Conv2D(1, 1, 2, stride=2), GlobalAvgPool2D(), Dense(1, 1))
    with pytest.raises(ValueError, match="not mirror images"):
        twins.mirror_symmetric_twin(m, (1, 1, 5, 5))


@settings(max_examples=10)
@given(xst.sequential_models())
def test_dummy_pixel_twin_reads_only_even_pixels(model):
    x = _x(model)
    g, z, dummy = twins.dummy_pixel_twin(model, x, rng=1)
    np.testing.assert_allclose(g.forward(z), model.forward(x), rtol=1e-12, atol=1e-13)
    z2 = z.copy()
    z2[:, :, dummy] += 5.0
    np.testing.assert_array_equal(g.forward(z2), g.forward(z))


def test_dummy_pixel_twin_wraps_function_models():
    import autograd.numpy as anp

    f = xattr.from_function(lambda x: anp.sum(x ** 2, axis=(1, 2, 3))[:, None])
    x = np.random.default_rng(0).normal(size=(2, 1, 3, 3))
    g, z, dummy = twins.dummy_pixel_twin(f, x)
    np.testing.assert_allclose(g.forward(z), f.forward(x))
    gz = g.vjp(z, np.ones((2, 1)))
    assert np.all(gz[:, :, dummy] == 0)
    np.testing.assert_allclose(gz[:, :, ::2, ::2], 2 * x)


def test_random_weights_like_changes_only_the_chosen_layers():
    m = cases.small_cnn()
    r = twins.random_weights_like(m, 0, layers=["conv2"])
    np.testing.assert_array_equal(r["conv1"].weight, m["conv1"].weight)
    assert not np.allclose(r["conv2"].weight, m["conv2"].weight)
    assert abs(np.std(r["conv2"].weight) / np.std(m["conv2"].weight) - 1) < 0.5
    assert twins.parametric_layer_names(m) == ["conv1", "conv2", "dense1"]


def test_twins_do_not_modify_the_model():
    m = cases.small_cnn()
    before = [l.weight.copy() for l in m if hasattr(l, "weight")]
    twins.rescaled_twin(m), twins.relu_identity_twin(m), twins.shifted_input_twin(m, 1.0)
    twins.mirror_symmetric_twin(m, (1, 3, 8, 8)), twins.random_weights_like(m, 0)
    for b, l in zip(before, [l for l in m if hasattr(l, "weight")]):
        np.testing.assert_array_equal(b, l.weight)
    assert m.names == ["conv1", "relu1", "maxpool1", "conv2", "relu2", "gap1", "dense1"]


def test_rescaled_graph_twin_scales_a_residual_add_through_both_branches():
    """The projection block's Add(bn2, downsample.1) is scaled as one (c on both inputs, 1/c on fc): the same
    function, and the block's output (the node CAM methods read by default) is c times the original; the identity
    block, whose shortcut is a ReLU, is left as it is."""
    from xattr.testing.networks import small_resnet

    model = small_resnet(rng=1, maxpool=False)
    x = np.random.default_rng(2).normal(size=(2, 3, 9, 9))
    twin = twins.rescaled_twin(model, rng=0)
    np.testing.assert_allclose(twin(x), model(x), rtol=1e-12, atol=1e-13)
    a, b = model.activations(x, "layer2.0.relu2"), twin.activations(x, "layer2.0.relu2")
    c = twin["layer2.0.bn2"].weight[0] / model["layer2.0.bn2"].weight[0]
    assert not np.isclose(c, 1.0)
    for name in ("layer2.0.bn2", "layer2.0.downsample.1"):
        np.testing.assert_allclose(twin[name].weight, c * model[name].weight, rtol=1e-14)
        np.testing.assert_allclose(twin[name].bias, c * model[name].bias, rtol=1e-14)
    np.testing.assert_allclose(twin["fc"].weight, model["fc"].weight / c, rtol=1e-14)
    np.testing.assert_allclose(b, c * a, rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(twin["layer1.0.bn2"].weight, model["layer1.0.bn2"].weight)
