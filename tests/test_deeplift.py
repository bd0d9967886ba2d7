"""DeepLIFT and DeepSHAP: summation-to-delta, closed forms, equivalences, the papers' examples, bad input.

Oracles: the model's own forward pass (Δt), gradient×input (zero reference, zero biases), integrated
gradients computed in closed form on one-hidden-layer ReLU networks (each unit's pre-activation is
linear along the path, so the fraction of the path on which it is active is analytic), Shapley values of
``min(i1, i2)`` by enumeration (RevealCancel), and hand-worked max-pool windows.
"""
import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import xattr
from xattr.nn import BatchNorm2D, Conv2D, Dense, Flatten, GlobalAvgPool2D, MaxPool2D, ReLU, Sequential

from nets import networks


def _delta_t(model, x, ref, t):
    return model(x)[:, t] - model(ref)[:, t]


def _sums(a):
    return a.reshape(a.shape[0], -1).sum(1)


def _zero_biases(model):
    model = copy.deepcopy(model)
    for layer in model:
        if getattr(layer, "bias", None) is not None:
            layer.bias = np.zeros_like(layer.bias)
    return model


# -- summation-to-delta ----------------------------------------------------------------------------
@settings(max_examples=15)
@given(networks(), st.sampled_from(["rescale", "revealcancel"]))
def test_summation_to_delta_is_exact_with_the_rescale_maxpool(case, rule):
    model, x = case
    ref = np.random.default_rng(1).normal(size=x.shape)
    t = model(x).shape[1] - 1
    attr, gap = xattr.deeplift(model, x, t, ref, rule=rule, maxpool="rescale", return_delta=True)
    dt = _delta_t(model, x, ref, t)
    np.testing.assert_allclose(_sums(attr), dt, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gap, _sums(attr) - dt, atol=1e-12)
    assert np.max(np.abs(gap)) <= 1e-12 * (1 + np.max(np.abs(dt)))


@settings(max_examples=10)
@given(networks(max_pool=False), st.sampled_from(["rescale", "revealcancel"]))
def test_summation_to_delta_is_exact_without_maxpool(case, rule):
    model, x = case
    ref = np.random.default_rng(2).normal(size=x.shape[1:])  # one reference for all images
    attr, gap = xattr.deeplift(model, x, 0, ref, rule=rule, return_delta=True)
    np.testing.assert_allclose(
        _sums(attr), _delta_t(model, x, np.broadcast_to(ref, x.shape), 0), rtol=1e-10, atol=1e-12
    )
    assert np.max(np.abs(gap)) < 1e-12


@pytest.mark.parametrize("rule", ["rescale", "revealcancel"])
def test_sensitivity_one_changed_pixel_takes_all_of_delta_t(rule):
    """Sundararajan et al. 2017's Sensitivity(a), which summation-to-delta implies: if x and the reference
    differ in one pixel, that pixel gets Δt and every other pixel exactly 0."""
    gen = np.random.default_rng(13)
    model = Sequential(
        Conv2D(2, 3, 3, padding=1, rng=gen),
        ReLU(),
        MaxPool2D(2),
        Flatten(),
        Dense(12, 3, rng=gen),
        ReLU(),
        Dense(3, 2, rng=gen),
    )
    ref = gen.normal(size=(1, 2, 4, 4))
    x = ref.copy()
    x[0, 1, 2, 3] += 2.5
    a = xattr.deeplift(model, x, 1, ref, rule=rule, maxpool="rescale")
    mask = np.zeros(x.shape, bool)
    mask[0, 1, 2, 3] = True
    np.testing.assert_array_equal(a[~mask], 0)
    np.testing.assert_allclose(a[mask], _delta_t(model, x, ref, 1), rtol=1e-10)


def _pool_model():
    head = Dense(1, 1, bias=False)
    head.weight = np.ones((1, 1))
    return Sequential(MaxPool2D(2), Flatten(), head)


def test_maxpool_gradient_mode_goes_to_the_input_argmax_and_rescale_mode_is_exact():
    """The DeepLIFT code's max-pool rule (gradient): the multiplier goes to the argmax of the *input*,
    never of the reference; it conserves Δt only if the reference is constant over the window."""
    model = _pool_model()
    x = np.array([1.0, 5.0, 2.0, 0.0]).reshape(1, 1, 2, 2)
    ref = np.array([4.0, 0.0, 0.0, 0.0]).reshape(1, 1, 2, 2)
    a, gap = xattr.deeplift(model, x, 0, ref, return_delta=True)
    np.testing.assert_array_equal(a.ravel(), [0.0, 5.0, 0.0, 0.0])  # m = 1 at the input's argmax, times Δx = 5
    np.testing.assert_allclose(gap, [5.0 - 1.0])  # Δt = 5 - 4 = 1: the documented violation
    a, gap = xattr.deeplift(model, x, 0, ref, maxpool="rescale", return_delta=True)
    np.testing.assert_allclose(a.ravel(), [0.0, 1.0, 0.0, 0.0])  # Δy/Δx_a = 1/5 at the input's argmax
    assert gap[0] == 0
    # constant reference over the window: the two modes agree and both conserve
    a1 = xattr.deeplift(model, x, 0, 0.5)
    np.testing.assert_allclose(a1, xattr.deeplift(model, x, 0, 0.5, maxpool="rescale"))
    np.testing.assert_allclose(a1.sum(), 5.0 - 0.5)


def test_maxpool_rescale_falls_back_to_the_reference_argmax_when_the_input_argmax_did_not_move():
    model = _pool_model()
    x = np.array([5.0, 0.0, 0.0, 0.0]).reshape(1, 1, 2, 2)
    ref = np.array([5.0, 7.0, 0.0, 0.0]).reshape(1, 1, 2, 2)  # Δx_a = 0 but Δy = 5 - 7 = -2
    a, gap = xattr.deeplift(model, x, 0, ref, maxpool="rescale", return_delta=True)
    np.testing.assert_allclose(a.ravel(), [0.0, -2.0, 0.0, 0.0])
    assert gap[0] == 0
    a, gap = xattr.deeplift(model, x, 0, ref, return_delta=True)  # gradient mode: Δy lost (cf. tangermeme#48)
    np.testing.assert_array_equal(a, 0)
    np.testing.assert_allclose(gap, [2.0])


@pytest.mark.parametrize("maxpool", ["gradient", "rescale"])
def test_batch_items_do_not_leak_into_each_other(maxpool):
    """captum#1276: a max-pool fallback path read the first batch item's gradient for every item."""
    gen = np.random.default_rng(3)
    model = Sequential(Conv2D(1, 2, 3, padding=1, rng=gen), ReLU(), MaxPool2D(2), Flatten(), Dense(8, 2, rng=gen))
    x = gen.normal(size=(3, 1, 4, 4))
    ref = gen.normal(size=(3, 1, 4, 4))
    ref[1] = x[1]  # item 1 takes the zero-Δ fallbacks everywhere, the others never
    ref[2, :, :2, :2] = x[2, :, :2, :2]
    batch = xattr.deeplift(model, x, 1, ref, maxpool=maxpool)
    single = np.concatenate([xattr.deeplift(model, x[i : i + 1], 1, ref[i : i + 1], maxpool=maxpool) for i in range(3)])
    np.testing.assert_allclose(batch, single, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(batch[1], 0)


# -- equivalences ----------------------------------------------------------------------------------
@settings(max_examples=15)
@given(networks(), st.sampled_from(["gradient", "rescale"]))
def test_rescale_with_zero_reference_and_zero_biases_is_gradient_times_input(case, maxpool):
    model, x = case
    model = _zero_biases(model)
    np.testing.assert_allclose(
        xattr.deeplift(model, x, 0, 0.0, maxpool=maxpool), xattr.gradient_x_input(model, x, 0), rtol=1e-9, atol=1e-12
    )


def _active_fraction(z0, z1):
    """Fraction of α ∈ [0, 1] with z0 + α (z1 − z0) > 0 (pre-activations are linear along the path)."""
    dz = z1 - z0
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = -z0 / dz
    return np.where(dz > 0, np.clip(1 - cross, 0, 1), np.where(dz < 0, np.clip(cross, 0, 1), (z0 > 0) * 1.0))


def _unrolled(layer, in_shape):
    """(W (n_in, n_out), b (n_out,)) of a conv by applying it to basis images (bias removed)."""
    n = int(np.prod(in_shape))
    lay = copy.deepcopy(layer)
    b = lay(np.zeros((1,) + in_shape)).ravel()
    lay.bias = None
    return lay(np.eye(n).reshape((n,) + in_shape)).reshape(n, -1), b


def _exact_ig_one_hidden_layer(W, b, V, x, ref, t):
    """IG_i = Δx_i Σ_k V[t, k] W[i, k] φ_k with φ_k the active fraction of unit k along the path."""
    z0, z1 = ref @ W + b, x @ W + b
    return (x - ref) * ((V[t] * _active_fraction(z0, z1)) @ W.T)


@settings(max_examples=10)
@given(st.integers(0, 2**16))
def test_rescale_equals_exact_ig_on_one_hidden_dense_layer(seed):
    gen = np.random.default_rng(seed)
    d1, d2 = Dense(5, 7, rng=gen), Dense(7, 3, rng=gen)
    d1.bias, d2.bias = gen.normal(size=7), gen.normal(size=3)
    model = Sequential(d1, ReLU(), d2)
    x, ref = gen.normal(size=(4, 5)), gen.normal(size=(4, 5))
    want = _exact_ig_one_hidden_layer(d1.weight.T, d1.bias, d2.weight, x, ref, 2)
    np.testing.assert_allclose(xattr.deeplift(model, x, 2, ref), want, rtol=1e-10, atol=1e-12)


@settings(max_examples=8)
@given(st.integers(0, 2**16), st.integers(1, 2), st.integers(0, 1))
def test_rescale_equals_exact_ig_on_one_hidden_conv_layer(seed, stride, pad):
    gen = np.random.default_rng(seed)
    conv = Conv2D(2, 3, 3, stride=stride, padding=pad, rng=gen)
    conv.bias = gen.normal(size=3)
    out = conv.output_shape((1, 2, 6, 6))
    head = Dense(int(np.prod(out[1:])), 2, rng=gen)
    model = Sequential(conv, ReLU(), Flatten(), head)
    x, ref = gen.normal(size=(2, 2, 6, 6)), gen.normal(size=(2, 2, 6, 6))
    W, b = _unrolled(conv, (2, 6, 6))
    want = _exact_ig_one_hidden_layer(W, b, head.weight, x.reshape(2, -1), ref.reshape(2, -1), 1)
    np.testing.assert_allclose(xattr.deeplift(model, x, 1, ref).reshape(2, -1), want, rtol=1e-10, atol=1e-12)


def test_revealcancel_gives_the_shapley_values_of_min_where_rescale_does_not():
    """Shrikumar et al. 2017 §3.5.3: min(i1, i2) = ReLU(i1) − ReLU(i1 − i2) on i >= 0, reference 0."""
    d1, d2 = Dense(2, 2, bias=False), Dense(2, 1, bias=False)
    d1.weight = np.array([[1.0, 0.0], [1.0, -1.0]])
    d2.weight = np.array([[1.0, -1.0]])
    model = Sequential(d1, ReLU(), d2)
    x = np.array([[3.0, 1.0]])
    # Shapley values by enumeration of the coalitions of {i1, i2} (absent = reference 0)
    f = lambda v: min(v)  # noqa: E731
    phi1 = 0.5 * ((f([3, 0]) - f([0, 0])) + (f([3, 1]) - f([0, 1])))
    phi2 = 0.5 * ((f([0, 1]) - f([0, 0])) + (f([3, 1]) - f([3, 0])))
    np.testing.assert_allclose(xattr.deeplift(model, x, 0, rule="revealcancel"), [[phi1, phi2]])  # (0.5, 0.5)
    np.testing.assert_allclose(xattr.deeplift(model, x, 0, rule="rescale"), [[0.0, 1.0]])  # all to the min


def test_revealcancel_on_a_relu_reading_the_input_and_through_folded_batchnorm():
    gen = np.random.default_rng(5)
    model = Sequential(ReLU(), Flatten(), Dense(8, 3, rng=gen), ReLU(), Dense(3, 2, rng=gen))
    x, ref = gen.normal(size=(2, 2, 2, 2)), gen.normal(size=(2, 2, 2, 2))
    a, gap = xattr.deeplift(model, x, 1, ref, rule="revealcancel", return_delta=True)
    assert np.max(np.abs(gap)) < 1e-12
    bn = BatchNorm2D(3)
    bn.weight, bn.bias, bn.running_var = gen.normal(size=3), gen.normal(size=3), gen.random(3) + 0.5
    model = Sequential(Conv2D(2, 3, 3, rng=gen), bn, ReLU(), GlobalAvgPool2D(), Dense(3, 2, rng=gen))
    x, ref = gen.normal(size=(2, 2, 5, 5)), gen.normal(size=(2, 2, 5, 5))
    a, gap = xattr.deeplift(model, x, 0, ref, rule="revealcancel", return_delta=True)
    assert np.max(np.abs(gap)) < 1e-12
    # Rescale does not need the fold (batch-norm passes multipliers) and gives the same on the folded model
    np.testing.assert_allclose(
        xattr.deeplift(model, x, 0, ref),
        xattr.deeplift(xattr.nn.fold_batchnorm(model), x, 0, ref),
        rtol=1e-10,
        atol=1e-13,
    )


# -- DeepSHAP ----------------------------------------------------------------------------------------
@settings(max_examples=8)
@given(networks(), st.integers(1, 4))
def test_deepshap_is_the_mean_of_deeplift_over_references(case, k):
    model, x = case
    refs = np.random.default_rng(k).normal(size=(k,) + x.shape[1:])
    got, gap = xattr.deepshap(model, x, 0, refs, maxpool="rescale", return_delta=True, batch_size=max(1, len(x)))
    want = np.mean([xattr.deeplift(model, x, 0, r, maxpool="rescale") for r in refs], axis=0)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)
    expected = model(x)[:, 0] - np.mean([model(np.broadcast_to(r, x.shape))[:, 0] for r in refs], axis=0)
    np.testing.assert_allclose(_sums(got), expected, rtol=1e-10, atol=1e-12)
    assert np.max(np.abs(gap)) < 1e-12
    np.testing.assert_allclose(
        xattr.deepshap(model, x, 0, refs, maxpool="rescale", batch_size=10**6), got, rtol=1e-12, atol=1e-15
    )


# -- the papers' properties ------------------------------------------------------------------------
def _ig_numeric(model, x, ref, t, steps=4000):
    """Midpoint rule with many steps: an oracle for 2-feature toy models only."""
    alphas = (np.arange(steps) + 0.5) / steps
    path = ref + alphas[:, None] * (x - ref)
    seed = np.zeros((steps, model(x).shape[1]))
    seed[:, t] = 1
    return (x - ref) * model.vjp(path, seed).mean(0, keepdims=True)


def _ig_paper_pair():
    """Sundararajan et al. 2017 §3.2: f1 = ReLU(ReLU(x1) − 1 − ReLU(x2)), f2 = ReLU(ReLU(x1 − 1) − ReLU(x2))."""
    a1, b1, a2, b2 = Dense(2, 2), Dense(2, 1), Dense(2, 2), Dense(2, 1)
    a1.weight, a1.bias = np.eye(2), np.zeros(2)
    b1.weight, b1.bias = np.array([[1.0, -1.0]]), np.array([-1.0])
    a2.weight, a2.bias = np.eye(2), np.array([-1.0, 0.0])
    b2.weight, b2.bias = np.array([[1.0, -1.0]]), np.zeros(1)
    return Sequential(a1, ReLU(), b1, ReLU()), Sequential(a2, ReLU(), b2, ReLU())


def test_ig_paper_pair_functionally_equal_networks_with_different_deeplift_and_lrp():
    """A documented property, not a failure: DeepLIFT and LRP-ε/αβ depend on the implementation;
    the gradient, IG and LRP-0 (= gradient×input) do not (Sundararajan et al. 2017, §3.2)."""
    f1, f2 = _ig_paper_pair()
    probe = np.random.default_rng(6).normal(scale=3, size=(200, 2))
    np.testing.assert_allclose(f1(probe), f2(probe), atol=1e-12)  # the same function
    x, ref = np.array([[3.0, 1.0]]), np.zeros((1, 2))
    np.testing.assert_allclose(xattr.gradient(f1, x, 0), xattr.gradient(f2, x, 0))
    np.testing.assert_allclose(_ig_numeric(f1, x, ref, 0), _ig_numeric(f2, x, ref, 0), atol=1e-3)
    np.testing.assert_allclose(xattr.lrp(f1, x, 0, "0"), xattr.lrp(f2, x, 0, "0"))
    # DeepLIFT: (1.5, -0.5) on f1, (2, -1) on f2 (worked by hand: multipliers 1/2, and 1 · 2/3)
    np.testing.assert_allclose(xattr.deeplift(f1, x, 0), [[1.5, -0.5]])
    np.testing.assert_allclose(xattr.deeplift(f2, x, 0), [[2.0, -1.0]])
    # LRP rule by rule, recorded: f1 and f2 have the same weights and differ only in their biases, so the
    # rules that ignore biases and activations (flat, w²) cannot tell them apart; z⁺ agrees here too
    # (it drops the negative path x2 takes in both); ε, γ and αβ differ.
    differs = {c: not np.allclose(xattr.lrp(f1, x, 0, c, epsilon=0.5), xattr.lrp(f2, x, 0, c, epsilon=0.5))
               for c in ("0", "epsilon", "gamma", "alphabeta", "zplus", "flat", "w2")}
    assert differs == {"0": False, "epsilon": True, "gamma": True, "alphabeta": True, "zplus": False, "flat": False,
                       "w2": False}


def test_kindermans_input_invariance():
    """Kindermans et al. 2019: shift the input by a constant c and compensate in the first layer's bias.
    The model is unchanged; which maps are unchanged too is recorded here (the seeds' claim, checked)."""
    gen = np.random.default_rng(7)
    conv = Conv2D(2, 3, 3, rng=gen)  # no padding: the shift is compensated at every output position
    conv.bias = gen.normal(size=3)
    head = Dense(3 * 4 * 4, 2, rng=gen)
    head.bias = gen.normal(size=2)
    m1 = Sequential(conv, ReLU(), Flatten(), head)
    c = np.array([0.7, -0.4])[:, None, None]
    m2 = copy.deepcopy(m1)
    m2[0].bias = conv.bias - np.einsum("oihw,i->o", conv.weight, c[:, 0, 0])
    x = gen.random((2, 2, 6, 6))
    x2, lo, hi = x + c, np.zeros((2, 6, 6)), np.ones((2, 6, 6))
    np.testing.assert_allclose(m1(x), m2(x2), rtol=1e-12)
    ref = gen.random((2, 6, 6))
    box = {"first": "zbox", Dense: "epsilon"}

    def same(a, b):
        return bool(np.allclose(a, b, rtol=1e-9, atol=1e-12))

    kept = {
        "gradient": same(xattr.gradient(m1, x, 0), xattr.gradient(m2, x2, 0)),
        "gradient_x_input": same(xattr.gradient_x_input(m1, x, 0), xattr.gradient_x_input(m2, x2, 0)),
        "ig, shifted baseline": same(_ig_numeric_img(m1, x, ref), _ig_numeric_img(m2, x2, ref + c)),
        "deeplift, shifted reference": same(xattr.deeplift(m1, x, 0, ref), xattr.deeplift(m2, x2, 0, ref + c)),
        "deeplift, zero reference": same(xattr.deeplift(m1, x, 0), xattr.deeplift(m2, x2, 0)),
        "lrp0": same(xattr.lrp(m1, x, 0, "0"), xattr.lrp(m2, x2, 0, "0")),
        "lrp_epsilon": same(xattr.lrp(m1, x, 0, "epsilon"), xattr.lrp(m2, x2, 0, "epsilon")),
        "lrp_gamma": same(xattr.lrp(m1, x, 0, "gamma"), xattr.lrp(m2, x2, 0, "gamma")),
        "lrp_alphabeta": same(xattr.lrp(m1, x, 0, "alphabeta"), xattr.lrp(m2, x2, 0, "alphabeta")),
        "lrp_zplus": same(xattr.lrp(m1, x, 0, "zplus"), xattr.lrp(m2, x2, 0, "zplus")),
        "lrp_flat": same(xattr.lrp(m1, x, 0, "flat"), xattr.lrp(m2, x2, 0, "flat")),
        "lrp_w2": same(xattr.lrp(m1, x, 0, "w2"), xattr.lrp(m2, x2, 0, "w2")),
        "lrp z^B, shifted box": same(
            xattr.lrp(m1, x, 0, box, low=lo, high=hi), xattr.lrp(m2, x2, 0, box, low=lo + c, high=hi + c)
        ),
    }
    assert kept == {
        "gradient": True, "gradient_x_input": False, "ig, shifted baseline": True, "deeplift, shifted reference": True,
        "deeplift, zero reference": False, "lrp0": False, "lrp_epsilon": False, "lrp_gamma": False,
        "lrp_alphabeta": False, "lrp_zplus": False, "lrp_flat": True, "lrp_w2": True, "lrp z^B, shifted box": True,
    }


def _ig_numeric_img(model, x, ref, steps=64):
    # midpoint rule; the two models are compared node by node, so the quadrature error is the same in both
    out = np.zeros_like(x)
    for a in (np.arange(steps) + 0.5) / steps:
        out += xattr.gradient(model, ref + a * (x - ref), 0)
    return (x - ref) * out / steps


# -- edge cases, dtype, bad input --------------------------------------------------------------------
@pytest.mark.parametrize("rule", ["rescale", "revealcancel"])
@pytest.mark.parametrize("maxpool", ["gradient", "rescale"])
def test_input_equal_to_reference_gives_zeros_not_nan(rule, maxpool):
    gen = np.random.default_rng(8)
    model = Sequential(
        Conv2D(2, 3, 3, padding=1, rng=gen),
        ReLU(),
        MaxPool2D(2),
        Flatten(),
        Dense(12, 5, rng=gen),
        ReLU(),
        Dense(5, 2, rng=gen),
    )
    x = gen.normal(size=(2, 2, 4, 4))
    a, gap = xattr.deeplift(model, x, 1, x, rule=rule, maxpool=maxpool, return_delta=True)
    np.testing.assert_array_equal(a, 0)
    np.testing.assert_array_equal(gap, 0)
    tiny = x + 1e-13 * gen.normal(size=x.shape)  # |Δx| near the threshold: finite, still conserving
    a, gap = xattr.deeplift(model, tiny, 1, x, rule=rule, maxpool=maxpool, return_delta=True)
    assert np.all(np.isfinite(a)) and np.max(np.abs(gap)) < 1e-12
    s = xattr.deepshap(model, x, 1, np.concatenate([x[:1], x[:1]]), rule=rule, maxpool=maxpool)
    assert np.all(np.isfinite(s))
    np.testing.assert_array_equal(s[0], 0)


def test_dtype_reference_forms_and_input_not_modified():
    gen = np.random.default_rng(9)
    model = Sequential(Conv2D(2, 3, 3, rng=gen), ReLU(), GlobalAvgPool2D(), Dense(3, 2, rng=gen))
    x = gen.normal(size=(2, 2, 5, 5))
    keep = x.copy()
    a = xattr.deeplift(model, x, 0, 0.25)
    np.testing.assert_array_equal(x, keep)
    np.testing.assert_allclose(a, xattr.deeplift(model, x, 0, np.full((2, 5, 5), 0.25)))
    np.testing.assert_allclose(a, xattr.deeplift(model, x, 0, np.full((1, 2, 5, 5), 0.25)))
    np.testing.assert_allclose(a, xattr.deeplift(model, x, 0, np.full(x.shape, 0.25)))
    np.testing.assert_allclose(a, xattr.deeplift(model, x, 0, np.asarray(0.25)))  # a 0-d array is a scalar
    a32 = xattr.deeplift(model, x.astype(np.float32), 0, 0.25)
    assert a32.dtype == np.float32
    np.testing.assert_allclose(a32, a, rtol=1e-4, atol=1e-6)
    assert xattr.deepshap(model, x.astype(np.float32), 0, np.zeros((2, 2, 5, 5))).dtype == np.float32
    np.testing.assert_allclose(xattr.deepshap(model, x, 0), xattr.deeplift(model, x, 0))  # no background: zero image


def test_bad_input_is_refused_with_clear_messages():
    gen = np.random.default_rng(10)
    model = Sequential(Conv2D(2, 3, 3, rng=gen), ReLU(), GlobalAvgPool2D(), Dense(3, 2, rng=gen))
    x = gen.normal(size=(2, 2, 5, 5))
    with pytest.raises(
        ValueError, match=r"reference must be a scalar, one sample of shape \(2, 5, 5\).*got shape \(3, 2, 5, 5\)"
    ):
        xattr.deeplift(model, x, 0, np.zeros((3, 2, 5, 5)))
    with pytest.raises(ValueError, match="reference must be finite"):
        xattr.deeplift(model, x, 0, np.full((2, 5, 5), np.nan))
    with pytest.raises(ValueError, match=r"references must have shape \(K,\) \+ \(2, 5, 5\)"):
        xattr.deepshap(model, x, 0, np.zeros((2, 5, 5)))
    with pytest.raises(ValueError, match="rule must be one of"):
        xattr.deeplift(model, x, 0, rule="gradient")
    with pytest.raises(ValueError, match="maxpool must be one of"):
        xattr.deeplift(model, x, 0, maxpool="winner_take_all")
    with pytest.raises(ValueError, match="threshold"):
        xattr.deeplift(model, x, 0, threshold=-1)
    with pytest.raises(ValueError, match="out of range"):
        xattr.deeplift(model, x, 5)
    with pytest.raises(TypeError, match="Sequential"):
        xattr.deeplift(xattr.from_function(lambda v: v.reshape(len(v), -1)[:, :2]), x, 0)
    pool_first = Sequential(Conv2D(2, 3, 3, rng=gen), MaxPool2D(3), ReLU(), Flatten(), Dense(3, 2, rng=gen))
    # a ReLU fed by a max-pool has one term per unit (its input's own Δ): RevealCancel is Rescale there
    rc, gap = xattr.deeplift(pool_first, x, 0, rule="revealcancel", return_delta=True)
    np.testing.assert_allclose(rc, xattr.deeplift(pool_first, x, 0, rule="rescale"), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gap, 0, atol=1e-12)
    with pytest.raises(ValueError, match="needs the layer's input/output"):
        model[1].backward(np.ones((2, 3, 3, 3)), model[1].forward(np.ones((2, 3, 3, 3)))[1], "rescale")


def test_registered_and_exported():
    assert xattr.get_method("deeplift") is xattr.deeplift
    assert xattr.get_method("deepshap") is xattr.deepshap
    assert set(xattr.available_methods("relevance")) == {"deeplift", "deepshap", "lrp"}


# -- the cells themselves (multipliers that reach no attribution directly) ---------------------------
def test_linear_revealcancel_cell_against_the_papers_table():
    """m_j = Σ_k w_jk · (m⁺_k if w_jk Δa_j > 0, m⁻_k if w_jk Δa_j < 0, ½(m⁺_k + m⁻_k) if Δa_j = 0), by loops."""
    from types import SimpleNamespace as NS

    gen = np.random.default_rng(11)
    layer = Dense(4, 3, rng=gen)
    layer.weight[0, 1] = 0.0
    a, a0 = gen.normal(size=(2, 4)), gen.normal(size=(2, 4))
    a0[:, 2] = a[:, 2]  # Δa = 0 for input 2
    mp, mn = gen.normal(size=(2, 3)), gen.normal(size=(2, 3))
    y, cache = layer.forward(a)
    got = layer.backward((mp, mn), cache, "revealcancel", inp=NS(x=a, y=y), ref=NS(x=a0, y=layer(a0)))
    want = np.zeros_like(a)
    for n in range(2):
        for j in range(4):
            for k in range(3):
                w, d = layer.weight[k, j], a[n, j] - a0[n, j]
                m = mp[n, k] if w * d > 0 else mn[n, k] if w * d < 0 else 0.5 * (mp[n, k] + mn[n, k])
                want[n, j] += w * m
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_array_equal(layer.backward(mp, cache, "revealcancel"), layer.backward(mp, cache, "gradient"))


def test_relu_cells_by_hand_including_their_limits():
    from types import SimpleNamespace as NS

    relu = ReLU()
    x0 = np.array([[-1.0, 2.0, 0.5, 1.0]])
    x = np.array([[3.0, -2.0, 0.5, 1.0]])
    y, cache = relu.forward(x)
    inp, ref = NS(x=x, y=y), NS(x=x0, y=relu(x0))
    g = np.array([[2.0, 2.0, 2.0, 2.0]])
    # Rescale: Δy/Δx = 3/4, -2/-4; Δx = 0: the gradient at the input, 1[x > 0]
    np.testing.assert_allclose(relu.backward(g, cache, "rescale", inp=inp, ref=ref), [[1.5, 1.0, 2.0, 2.0]])
    # RevealCancel on unit 0 with Δx⁺ = 5, Δx⁻ = -1 (sum 4): Δy⁺ = ½(4 − 0) + ½(3 − 0) = 3.5, Δy⁻ = ½·0 + ½(3 − 4) =
    # -0.5
    # unit 3 with Δx⁺ = 0, Δx⁻ = 0: limits ½(f'(x₀) + f'(x₀ + Δx^∓)) = 1
    # unit 2 with Δx⁺ = 0.5, Δx⁻ = -0.5 (Δx = 0 but both terms move): Δy⁺ = ½(0.5 − 0) + ½(0.5 − 0.5)... computed below
    split = (np.array([[5.0, 0.0, 0.5, 0.0]]), np.array([[-1.0, -4.0, -0.5, 0.0]]))
    mp, mn = relu.backward(g, cache, "revealcancel", inp=inp, ref=ref, split=split)
    np.testing.assert_allclose(mp[0, [0, 3]], [2 * 3.5 / 5, 2 * 1.0])
    np.testing.assert_allclose(
        mn[0, [0, 1, 3]], [2 * 0.5, 2 * 0.5, 2 * 1.0]
    )  # unit 1: Δy⁻ = ½(0 − 2) + ½(0 − 2) = -2 over -4
    assert mp[0, 1] == 2 * 0.5  # Δx⁺ = 0 on unit 1: limit ½(f'(2) + f'(2 − 4)) = ½
    # unit 2: Δy⁺ = ½(f(1) − f(.5)) + ½(f(.5) − f(0)) = .5, Δy⁻ = ½(f(0) − f(.5)) + ½(f(.5) − f(1)) = -.5
    np.testing.assert_allclose([mp[0, 2], mn[0, 2]], [2 * 1.0, 2 * 1.0])


# -- cross-check with exact integrated gradients (quadrature="exact") -----------------------------------
def _exact_ig():
    return xattr.integrated_gradients


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_rescale_equals_xattr_exact_ig_on_one_hidden_relu_layer(kind):
    ig = _exact_ig()
    gen = np.random.default_rng(14)
    if kind == "dense":
        first = Dense(6, 5, rng=gen)
        first.bias = gen.normal(size=5)
        model = Sequential(Flatten(), first, ReLU(), Dense(5, 3, rng=gen))
    else:
        first = Conv2D(2, 3, 3, padding=1, rng=gen)
        first.bias = gen.normal(size=3)
        model = Sequential(first, ReLU(), Flatten(), Dense(3 * 9, 3, rng=gen))
    shape = (2, 6, 1, 1) if kind == "dense" else (2, 2, 3, 3)
    x, ref = gen.normal(size=shape), gen.normal(size=shape)
    want = ig(model, x, 2, baseline=ref, quadrature="exact")
    np.testing.assert_allclose(xattr.deeplift(model, x, 2, ref), want, rtol=1e-9, atol=1e-12)
    # and both against this file's closed form
    W, b = (first.weight.T, first.bias) if kind == "dense" else _unrolled(first, (2, 3, 3))
    closed = _exact_ig_one_hidden_layer(W, b, model[-1].weight, x.reshape(2, -1), ref.reshape(2, -1), 2)
    np.testing.assert_allclose(want.reshape(2, -1), closed, rtol=1e-9, atol=1e-12)


def test_rescale_and_exact_ig_part_ways_with_two_hidden_layers():
    """With two hidden ReLU layers DeepLIFT-Rescale is no longer IG (a documented property): both sum to Δt."""
    ig = _exact_ig()
    f1, f2 = _ig_paper_pair()
    x, ref = np.array([[3.0, 1.0]]), np.zeros((1, 2))
    # along (3α, α) both compute ReLU(2α − 1), active for α > ½ with gradient (1, −1): IG = (1.5, −0.5) by hand
    for f in (f1, f2):
        np.testing.assert_allclose(ig(f, x, 0, baseline=ref, quadrature="exact"), [[1.5, -0.5]], rtol=1e-12)
    # DeepLIFT agrees with it on f1 but not on f2 (multipliers 1 and 2/3: (2, −1)), both summing to Δt = 1
    np.testing.assert_allclose(xattr.deeplift(f1, x, 0, ref), [[1.5, -0.5]])
    np.testing.assert_allclose(xattr.deeplift(f2, x, 0, ref), [[2.0, -1.0]])


def test_callable_targets_explain_a_difference_of_classes():
    import autograd.numpy as anp  # noqa: F401  (a target callable must be autograd-differentiable)

    gen = np.random.default_rng(15)
    model = Sequential(Conv2D(2, 3, 3, padding=1, rng=gen), ReLU(), MaxPool2D(2), Flatten(), Dense(12, 3, rng=gen))
    x, ref = gen.normal(size=(2, 2, 4, 4)), gen.normal(size=(2, 2, 4, 4))
    diff = lambda s: s[:, 0] - s[:, 2]  # noqa: E731
    a, gap = xattr.deeplift(model, x, diff, ref, maxpool="rescale", return_delta=True)
    np.testing.assert_allclose(_sums(a), diff(model(x)) - diff(model(ref)), rtol=1e-10)
    assert np.abs(gap).max() < 1e-12
    np.testing.assert_allclose(
        a,
        xattr.deeplift(model, x, 0, ref, maxpool="rescale") - xattr.deeplift(model, x, 2, ref, maxpool="rescale"),
        rtol=1e-10,
        atol=1e-14,
    )
    r = xattr.lrp(model, x, diff, "0")  # output relevance seed ⊙ scores = (s0, -s2): LRP-0 stays gradient×input
    np.testing.assert_allclose(r, xattr.gradient_x_input(model, x, diff), rtol=1e-9, atol=1e-13)
