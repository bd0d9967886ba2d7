"""The Hypothesis strategies (xattr/testing/strategies.py) build valid models and cover the edge cases."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from xattr import _targets
from xattr.nn import AvgPool2D, BatchNorm2D, Conv2D, Dense, Flatten, GlobalAvgPool2D, MaxPool2D
from xattr.testing import strategies as xst


@settings(max_examples=25)
@given(xst.models_and_inputs(target_kinds=("int", "array", "callable")))
def test_models_run_on_their_inputs_and_targets_are_valid(case):
    model, x, target = case
    s = model.forward(x)
    assert s.shape == (x.shape[0], model.arch["n_classes"])
    assert np.all(np.isfinite(s))
    assert _targets.selected(target, s).shape == (x.shape[0],)
    assert _targets.seed(target, s).shape == s.shape


def test_the_strategies_reach_every_layer_kind_and_option():
    seen = set()

    @settings(max_examples=60, derandomize=True)
    @given(xst.sequential_models(weights="arrays"))
    def collect(model):
        for layer in model:
            seen.add(type(layer))
            if isinstance(layer, Conv2D):
                seen.add(("stride", layer.stride[0] > 1))
                seen.add(("dilation", layer.dilation[0] > 1))
                seen.add(("same", layer.padding == "same"))
            if isinstance(layer, MaxPool2D) and layer.stride < layer.kernel_size:
                seen.add("overlapping")
            if isinstance(layer, Dense) and np.any(layer.weight == 0):
                seen.add("zero weight")

    collect()
    for item in [Conv2D, MaxPool2D, AvgPool2D, GlobalAvgPool2D, Flatten, Dense, BatchNorm2D, ("stride", True),
                 ("dilation", True), ("same", True), "overlapping", "zero weight"]:
        assert item in seen, item


@settings(max_examples=20)
@given(xst.images((2, 3, 4, 4)))
def test_images_are_bounded_and_finite(x):
    assert x.shape == (2, 3, 4, 4) and np.all(np.isfinite(x)) and np.all(np.abs(x) <= 2)


def test_images_contain_exact_zeros_and_repeats():
    found = {"zero": False, "repeat": False}

    @settings(max_examples=30, derandomize=True)
    @given(xst.images((1, 1, 4, 4)))
    def collect(x):
        found["zero"] |= bool(np.any(x == 0))
        found["repeat"] |= len(np.unique(x)) < x.size

    collect()
    assert found == {"zero": True, "repeat": True}


@settings(max_examples=20)
@given(st.data())
def test_baselines_broadcast_to_the_input(data):
    x = np.zeros((2, 3, 4, 5))
    b = data.draw(xst.baselines(x))
    assert np.broadcast_to(b, x.shape).shape == x.shape


def test_float32_images():
    @settings(max_examples=5)
    @given(xst.images((1, 2, 3, 3), dtype=np.float32))
    def check(x):
        assert x.dtype == np.float32

    check()


ZOO = dict(activations=tuple(xst.ACTIVATIONS), groups=True, ceil_mode=True, max_channels=6)


def test_the_zoo_options_reach_groups_depthwise_every_activation_and_ceil_mode():
    seen = set()

    @settings(max_examples=80, derandomize=True)
    @given(xst.sequential_models(**ZOO))
    def collect(model):
        for layer in model:
            seen.add(type(layer).__name__)
            if isinstance(layer, Conv2D) and layer.groups > 1:
                seen.add("depthwise" if layer._depthwise() else "grouped")
            if isinstance(layer, (MaxPool2D, AvgPool2D)) and layer.ceil_mode:
                seen.add("ceil_mode")

    collect()
    names = {type(f(3, np.random.default_rng(0))).__name__ for f in xst.ACTIVATIONS.values()}
    for item in names | {"grouped", "depthwise", "ceil_mode"}:
        assert item in seen, item


@settings(max_examples=20)
@given(xst.sequential_models(**ZOO), st.integers(0, 1000))
def test_zoo_models_gradient_equals_autograd_and_central_differences(model, seed):
    """Random nets of the zoo's layers: the gradient rule against autograd's twin and central differences
    (continuous random inputs: kinks and ties have probability 0)."""
    from xattr.testing.gradcheck import check_model_gradient

    from autograd_twins import model_function, vjp

    a = model.arch
    x = np.random.default_rng(seed).normal(size=(2, a["in_channels"]) + tuple(a["hw"]))
    u = np.random.default_rng(seed + 1).normal(size=(2, a["n_classes"]))
    np.testing.assert_allclose(model.vjp(x, u), vjp(model_function(model), x, u), rtol=1e-9, atol=1e-12)
    check_model_gradient(model, x, eps=1e-6, rtol=1e-5, atol=1e-8, rng=seed)
