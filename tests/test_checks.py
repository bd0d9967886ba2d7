"""Each axiom check passes on a method that has the property and fails, readably, on one that has not
(xattr/testing/checks.py).  The failing methods are written here to break exactly one property."""
import numpy as np
import pytest
from hypothesis import example, given, settings

import xattr
from xattr.testing import cases, checks
from xattr.testing import strategies as xst

G = xattr.gradient


def blurred_gradient(model, x, target):
    """Smears the gradient to neighbouring pixels: breaks dummy."""
    g = xattr.gradient(model, x, target)
    return g + 0.5 * np.roll(g, 1, axis=-1)


def abs_gradient(model, x, target):
    """|gradient|: breaks linearity (for a negative coefficient)."""
    return np.abs(xattr.gradient(model, x, target))


def ramped_gradient(model, x, target):
    """Adds a left-to-right ramp: breaks symmetry."""
    return xattr.gradient(model, x, target) + np.arange(x.shape[-1]) * 1e-3


def batch_normalised_gradient(model, x, target):
    """Divides by the batch's maximum: breaks batch invariance."""
    g = xattr.gradient(model, x, target)
    return g / np.abs(g).max()


def always_float64(model, x, target):
    return xattr.gradient(model, np.asarray(x, dtype=np.float64), target)


def global_noise(model, x, target):
    return xattr.gradient(model, x, target) + 1e-6 * np.random.random(np.shape(x))  # noqa: NPY002  (the bad method)


def ignores_seed(model, x, target, rng=0):
    return xattr.gradient(model, x, target) + np.random.default_rng(0).normal(size=np.shape(x))


def uses_seed(model, x, target, rng=0):
    return xattr.gradient(model, x, target) + np.random.default_rng(rng).normal(size=np.shape(x))


def writes_x(model, x, target):
    g = xattr.gradient(model, x, target)
    x *= 1.5
    return g


def writes_weights(model, x, target):
    model.layers[0].weight *= 1.0 + 1e-12
    return xattr.gradient(model, x, target)


def rescaling_sensitive(model, x, target):
    """Depends on the weights' scale, not only on the function: breaks implementation invariance."""
    return xattr.gradient(model, x, target) * np.linalg.norm(model.layers[0].weight)


def test_completeness():
    checks.check_completeness(xattr.gradient_x_input, case={"bias": False}, rtol=1e-10)
    with pytest.raises(AssertionError, match=r"completeness fails for gradient on 2 of 2 image\(s\)"):
        checks.check_completeness(G)


def test_completeness_over_players():
    """Efficiency of segment values counts each player once: the painted map's pixel sum fails, the players' sum
    passes, and a map whose segment values do not add up fails over the players too."""
    from xattr.methods.segments import grid_segments

    labels = grid_segments((8, 8), 3)
    checks.check_completeness(xattr.shapley, players=labels, players_arg="segments", rtol=1e-9)
    with pytest.raises(AssertionError, match="completeness fails for shapley"):
        checks.check_completeness(xattr.shapley, method_kwargs={"segments": labels})

    def off_by_one_segment(model, x, target, segments):
        a = xattr.shapley(model, x, target, segments=segments)
        return a + (segments == 0) * 0.1  # segment 0's value raised by 0.1: the players' sum moves by 0.1
    with pytest.raises(AssertionError, match=r"gap 0\.1"):
        checks.check_completeness(off_by_one_segment, players=labels, players_arg="segments", rtol=1e-9)
    with pytest.raises(ValueError, match=r"players must be labels of shape \(H, W\) = \(8, 8\), got \(4, 4\)"):
        checks.check_completeness(xattr.shapley, players=np.zeros((4, 4), int))


def test_implementation_invariance():
    checks.check_implementation_invariance(G)
    with pytest.raises(AssertionError, match="the rescale twin computes the same function"):
        checks.check_implementation_invariance(rescaling_sensitive)
    with pytest.raises(AssertionError, match="relu_identity twin"):
        checks.check_implementation_invariance(xattr.guided_backprop, constructions=("relu_identity",))
    with pytest.raises(ValueError, match="unknown twin"):
        checks.check_implementation_invariance(G, constructions=("mirror",))


def test_implementation_invariance_refuses_inputs_on_the_twins_kink():
    m = cases.small_cnn(bias=False)
    with pytest.raises(ValueError, match="exact zeros"):
        checks.check_implementation_invariance(G, m, np.zeros((1, 3, 8, 8)), 0)


def test_sensitivity():
    def ig64(model, x, target, baseline=0.0):
        nodes = (np.arange(64) + 0.5) / 64  # midpoint rule: nonzero wherever the path is not flat
        return (x - baseline) * sum(xattr.gradient(model, baseline + a * (x - baseline), target) for a in nodes) / 64
    checks.check_sensitivity(ig64, baseline_arg="baseline")
    with pytest.raises(AssertionError, match=r"sensitivity\(a\) fails for gradient: image 0 differs from the baseline "
                                             r"only at pixel \(0, 0\) and f\(x\) - f\(baseline\) = 0.015625"):
        checks.check_sensitivity(G)


def test_sensitivity_refuses_when_the_premise_fails():
    m = cases.saturating_model()
    x = np.zeros((1, 1, 2, 2))  # equal to the baseline: f(x) = f(baseline)
    with pytest.raises(ValueError, match="premise fails"):
        checks.check_sensitivity(G, m, x, 0)


def test_dummy():
    checks.check_dummy(G)
    checks.check_dummy(xattr.guided_backprop)
    with pytest.raises(AssertionError, match="dummy fails for blurred_gradient: the model never reads pixel"):
        checks.check_dummy(blurred_gradient)


def test_linearity():
    checks.check_linearity(G)
    # guided backprop's max(R, 0) commutes with positive scaling, so only the negative coefficient shows it
    checks.check_linearity(xattr.guided_backprop, coefficients=(0.5, 2.0))
    with pytest.raises(AssertionError, match="linearity fails for guided_backprop"):
        checks.check_linearity(xattr.guided_backprop)
    with pytest.raises(AssertionError, match=r"linearity fails for abs_gradient: A\(0.7 f1 \+ -1.3 f2\)"):
        checks.check_linearity(abs_gradient)


def test_symmetry():
    checks.check_symmetry(G)
    checks.check_symmetry(xattr.grad_cam)
    with pytest.raises(AssertionError, match="symmetry preservation fails for ramped_gradient"):
        checks.check_symmetry(ramped_gradient)


def test_input_shift_invariance():
    checks.check_input_shift_invariance(G)
    checks.check_input_shift_invariance(G, cases.small_cnn(padding=1), cases.images(), 0, shift=[0.5, -1, 2])
    with pytest.raises(AssertionError, match="input shift invariance fails for gradient_x_input"):
        checks.check_input_shift_invariance(xattr.gradient_x_input)


def test_batch_invariance():
    checks.check_batch_invariance(G)
    with pytest.raises(AssertionError, match="batch invariance fails for batch_normalised_gradient"):
        checks.check_batch_invariance(batch_normalised_gradient)


def test_dtype_preservation():
    checks.check_dtype_preservation(G)
    with pytest.raises(AssertionError, match="float32 input gave float64 output"):
        checks.check_dtype_preservation(always_float64)


def test_determinism():
    checks.check_determinism(G)
    checks.check_determinism(uses_seed, rng_arg="rng")
    with pytest.raises(AssertionError, match="global random state"):
        checks.check_determinism(global_noise)
    with pytest.raises(AssertionError, match="the seed is ignored"):
        checks.check_determinism(ignores_seed, rng_arg="rng")
    with pytest.raises(AssertionError, match=r"two calls differ"):
        checks.check_determinism(lambda m, x, t: uses_seed(m, x, t, rng=np.random.default_rng()))


def test_inputs_unmodified():
    checks.check_inputs_unmodified(G)
    with pytest.raises(AssertionError, match="x was written to"):
        checks.check_inputs_unmodified(writes_x)
    with pytest.raises(AssertionError, match=r"Conv2D 'conv1'.weight changed"):
        checks.check_inputs_unmodified(writes_weights)


def test_outputs_that_are_not_finite_maps_are_reported():
    with pytest.raises(AssertionError, match=r"<lambda> returned 576 NaN/inf value\(s\)"):
        checks.check_batch_invariance(lambda m, x, t: np.full(np.shape(x), np.nan))
    with pytest.raises(AssertionError, match="returned a tuple"):
        checks.check_dummy(lambda m, x, t: (G(m, x, t), 0.0))


def test_a_model_without_x_is_refused():
    with pytest.raises(ValueError, match="without x"):
        checks.check_linearity(G, cases.small_cnn())


def test_assert_close_names_the_worst_element():
    a = np.zeros((2, 3))
    b = a.copy()
    b[1, 2] = 1.0
    with pytest.raises(AssertionError, match=r"1 of 6 values differ; worst at index \(1, 2\)"):
        checks.assert_close(a, b, 1e-9, 0.0, "demo")


def _tiny_tied_case():
    """Hypothesis' find: all-equal inputs of 2.4e-234 under a 1x1 conv and an overlapping max-pool."""
    from xattr.nn import Conv2D, Dense, GlobalAvgPool2D, MaxPool2D, ReLU, Sequential

    m = Sequential(Conv2D(1, 1, 1, bias=False, rng=0), ReLU(), MaxPool2D(2, stride=1), GlobalAvgPool2D(),
                   Dense(1, 1, bias=False, rng=1))
    m[0].weight = np.ones((1, 1, 1, 1))
    return m, np.full((1, 1, 4, 4), 2.41229268e-234), 0


# The gradient's claimed axioms on random architectures (strides, paddings, dilations, pools, heads).
@settings(max_examples=10)
@given(xst.models_and_inputs(batch=(1, 2), repeats=False, batchnorm=False))
@example(_tiny_tied_case())
def test_gradient_is_linear_and_invariant_on_random_networks(case):
    model, x, target = case
    # the twins are equal as functions, their derivatives only away from kinks: a value like 1e-234 shifted by
    # 0.7 and back rounds to 0, where ReLU'(0) = 0 (found by Hypothesis); move x off such points
    x = x + np.random.default_rng(0).uniform(0.05, 0.3, x.shape) * np.random.default_rng(1).choice([-1, 1], x.shape)
    checks.check_linearity(G, model, x, target, rtol=1e-7, atol=1e-12)
    checks.check_dummy(G, model, x, target)
    checks.check_input_shift_invariance(G, model, x, target, shift=0.7, rtol=1e-6, atol=1e-12)
    try:
        checks.check_implementation_invariance(G, model, x, target, constructions=("rescale",))
    except ValueError as exc:  # a single parametric layer besides the head: nothing to rescale across
        assert "needs two Conv2D/Dense" in str(exc)


@settings(max_examples=10)
@given(xst.models_and_inputs(batch=(2, 3), target_kinds=("int", "array", "callable")))
def test_gradient_is_batch_invariant_for_every_target_kind(case):
    model, x, target = case
    checks.check_batch_invariance(G, model, x, target)
