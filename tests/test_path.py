"""Integrated gradients (quadratures and exact), expected gradients, saturation, and the layers' jvp.

Oracles: closed forms on linear and smooth models, the IG paper's toy models, an independent
piecewise check of exact IG (the gradient from ``xattr.gradient`` at two interior points of every
piece), central differences and the adjoint identity for each layer's jvp.
"""
import tracemalloc

import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import xattr
from xattr.methods.path import (
    QUADRATURES,
    exact_integrated_gradients,
    expected_gradients,
    expected_gradients_exact,
    integrated_gradients,
    quadrature_rule,
    saturation,
)
from xattr.nn import (
    AvgPool2D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    Layer,
    MaxPool2D,
    ReLU,
    Sequential,
)
from xattr.testing.toy_models import ig_f1, ig_f2, linear_model, one_minus_relu

from nets import Opaque  # the bare-protocol twin: no layer-aware shortcuts

RULES = [q for q in QUADRATURES if q != "exact"]


def randomize_biases(model, rng, scale=0.3):
    for layer in model:
        if getattr(layer, "bias", None) is not None:
            layer.bias = rng.normal(0, scale, layer.bias.shape)
    return model


def small_cnn(seed=0, c=2, h=8, k=4):
    g = np.random.default_rng(seed)
    m = Sequential(
        Conv2D(c, 4, 3, padding=1, rng=g), ReLU(), MaxPool2D(2),
        Conv2D(4, 5, 3, padding=1, rng=g), BatchNorm2D(5), ReLU(), AvgPool2D(2),
        Flatten(), Dense(5 * (h // 4) ** 2, 6, rng=g), ReLU(), Dropout(0.3), Dense(6, k, rng=g),
    )
    bn = m["bn1"]
    bn.weight, bn.bias = g.uniform(0.5, 1.5, 5), g.normal(0, 0.2, 5)
    bn.running_mean, bn.running_var = g.normal(0, 0.2, 5), g.uniform(0.5, 2, 5)
    return randomize_biases(m, g)


def explained(model, x, target):
    s = model.forward(x)
    return s[np.arange(len(x)), np.broadcast_to(target, (len(x),))]


# -- quadratures --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", RULES)
@pytest.mark.parametrize("n", [2, 3, 7, 50])
def test_quadrature_weights_sum_to_one_and_nodes_in_unit_interval(name, n):
    a, w = quadrature_rule(name, n)
    assert a.shape == w.shape == (n,)
    assert abs(w.sum() - 1) < 1e-14
    assert np.all((a >= 0) & (a <= 1)) and np.all(w > 0)


def test_quadrature_nodes_as_documented():
    a, w = quadrature_rule("riemann_trapezoid", 5)
    np.testing.assert_allclose(a, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(w, [0.125, 0.25, 0.25, 0.25, 0.125])
    np.testing.assert_allclose(quadrature_rule("riemann_left", 4)[0], [0, 0.25, 0.5, 0.75])
    np.testing.assert_allclose(quadrature_rule("riemann_right", 4)[0], [0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(quadrature_rule("riemann_middle", 4)[0], [0.125, 0.375, 0.625, 0.875])
    a, w = quadrature_rule("gausslegendre", 6)  # exact for polynomials of degree <= 11
    for p in range(12):
        assert abs(np.dot(w, a**p) - 1 / (p + 1)) < 1e-14


def test_quadrature_bad_input():
    with pytest.raises(ValueError, match="quadrature must be one of"):
        quadrature_rule("simpson", 10)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        quadrature_rule("riemann_left", 0)
    with pytest.raises(ValueError, match="steps must be >= 2 for riemann_trapezoid"):
        quadrature_rule("riemann_trapezoid", 1)
    with pytest.raises(TypeError, match="steps must be an int"):
        quadrature_rule("gausslegendre", 2.5)


# -- closed forms --------------------------------------------------------------------------------
@pytest.mark.parametrize("quadrature", QUADRATURES)
def test_linear_model_closed_form_every_rule(quadrature):
    g = np.random.default_rng(1)
    w, b = g.normal(size=(3, 2, 3, 3)), g.normal(size=3)
    model = linear_model(w, b)
    x, x0 = g.normal(size=(2, 2, 3, 3)), g.normal(size=(1, 2, 3, 3))
    attr, delta = integrated_gradients(model, x, np.array([0, 2]), baseline=x0, steps=3, quadrature=quadrature,
                                       return_delta=True)
    np.testing.assert_allclose(attr, (x - x0) * w[[0, 2]], rtol=1e-13, atol=1e-14)
    assert np.all(np.abs(delta) < 1e-13)


def test_trapezoid_has_no_completeness_gap_unlike_captum():
    """Captum's riemann_trapezoid: nodes linspace(0,1,n), weights [1/2n, 1/n, ..., 1/2n] summing to (n-1)/n."""
    g = np.random.default_rng(2)
    w = g.normal(size=(1, 1, 4, 4))
    model = linear_model(w)
    x = g.normal(size=(1, 1, 4, 4))
    dF = float(model.forward(x)[0, 0])
    for n in (5, 20, 50):
        attr = integrated_gradients(model, x, 0, steps=n, quadrature="riemann_trapezoid")
        assert abs(attr.sum() - dF) < 1e-13 * max(1, abs(dF))
        captum_w = np.r_[1 / (2 * n), np.full(n - 2, 1 / n), 1 / (2 * n)]
        captum_gap = dF - captum_w.sum() * dF
        assert abs(captum_gap - dF / n) < 1e-12  # the peer's gap is |ΔF|/n; xattr's is zero


def smooth_model(w):
    """``F(x) = exp(w·x)``: IG has the closed form ``(x − x') w (e^{w·x} − e^{w·x'}) / (w·(x − x'))``."""
    return xattr.from_function(lambda x: anp.exp(anp.sum(anp.reshape(x * w, (x.shape[0], -1)), axis=1))[:, None])


def smooth_closed_form(w, x, x0):
    s, s0 = (x * w).sum(), (x0 * w).sum()
    return (x - x0) * w * (np.exp(s) - np.exp(s0)) / (s - s0)


def test_quadrature_orders_on_a_smooth_path():
    g = np.random.default_rng(3)
    w = g.normal(0, 0.6, (1, 2, 2, 2))
    x, x0 = g.normal(size=(1, 2, 2, 2)), np.zeros((1, 2, 2, 2))
    exact = smooth_closed_form(w, x, x0)
    model = smooth_model(w)

    def err(q, n):
        return np.abs(integrated_gradients(model, x, 0, x0, steps=n, quadrature=q) - exact).max()

    for q, order in [("riemann_left", 1), ("riemann_right", 1), ("riemann_middle", 2), ("riemann_trapezoid", 2)]:
        ratio = err(q, 40) / err(q, 80)
        assert 2**order * 0.9 < ratio < 2**order * 1.1, (q, ratio)
    e_gl = err("gausslegendre", 8)
    assert e_gl < 1e-12 * np.abs(exact).max()
    assert all(e_gl < err(q, 8) for q in ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"))


def test_quadratures_converge_to_exact_on_a_relu_network():
    """On a ReLU network the integrand is piecewise constant: every rule is first order, exact is the limit."""
    model = small_cnn(4)
    x = np.random.default_rng(4).random((1, 2, 8, 8))
    exact = exact_integrated_gradients(model, x, 1).attributions
    scale = np.abs(exact).max()
    for q in RULES:
        errs = [np.abs(integrated_gradients(model, x, 1, steps=n, quadrature=q) - exact).max() for n in (8, 256)]
        assert errs[1] < errs[0] and errs[1] < 0.05 * scale, (q, errs)


# -- the IG paper's toy models -------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["sequential", "function"])
def test_one_minus_relu_sensitivity(kind):
    model = one_minus_relu(kind)
    x = np.full((1, 1, 1, 1), 2.0)
    assert xattr.gradient(model, x, 0).item() == 0.0  # gradients miss the feature
    q = "exact" if kind == "sequential" else "riemann_middle"
    attr = integrated_gradients(model, x, 0, steps=100, quadrature=q)  # kink at α = 1/2: midpoint is exact
    assert abs(attr.item() - 1.0) < 1e-12


@pytest.mark.parametrize("make", [ig_f1, ig_f2])
@pytest.mark.parametrize("kind", ["sequential", "function"])
def test_ig_paper_f1_f2(make, kind):
    model = make(kind)
    x = np.array([3.0, 1.0]).reshape(1, 2, 1, 1)
    q = "exact" if kind == "sequential" else "riemann_middle"
    attr = integrated_gradients(model, x, 0, steps=64, quadrature=q)  # kink at α = 1/2
    np.testing.assert_allclose(attr.ravel(), [1.5, -0.5], atol=1e-12)


def test_f1_f2_are_the_same_function():
    x = np.random.default_rng(5).normal(0, 2, (200, 2, 1, 1))
    np.testing.assert_allclose(ig_f1().forward(x), ig_f2().forward(x), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(ig_f1("function").forward(x), ig_f1().forward(x), atol=1e-15)


# -- exact IG on random architectures -------------------------------------------------------------
@st.composite
def architectures(draw):
    """A random small piecewise-linear CNN (conv/BN/ReLU/pools/dropout, flatten or GAP, dense head).

    Every layer fits the size it receives: kernels and pools are drawn among those that fit."""
    seed = draw(st.integers(0, 2**16))
    g = np.random.default_rng(seed)
    c, h = draw(st.integers(1, 2)), draw(st.integers(4, 7))
    layers, ch, size = [], c, h
    for _ in range(draw(st.integers(1, 2))):
        out = draw(st.integers(1, 4))
        padding = draw(st.integers(0, 1))
        conv = Conv2D(ch, out, draw(st.integers(1, min(3, size + 2 * padding))), stride=draw(st.integers(1, 2)),
                      padding=padding, rng=g)
        layers.append(conv)
        size = conv.forward(np.zeros((1, ch, size, size)))[0].shape[-1]
        if draw(st.booleans()):
            bn = BatchNorm2D(out)
            bn.weight, bn.running_mean = g.uniform(0.5, 1.5, out), g.normal(0, 0.3, out)
            layers.append(bn)
        ch = out
        layers.append(ReLU())
        fits_2x2 = ["max", "avg", "max_before_relu"] if size >= 2 else []  # unpadded 2x2 windows
        pool = draw(st.sampled_from(fits_2x2 + ["max3", "none", "dropout"]))  # max3 is padded: fits any size
        if pool == "max":
            layers.append(MaxPool2D(2, stride=draw(st.integers(1, 2))))
        elif pool == "max_before_relu":  # a max-pool on its own (not fused with a preceding ReLU)
            layers.insert(len(layers) - 1, MaxPool2D(2, stride=1))
        elif pool == "max3":
            layers.append(MaxPool2D(3, stride=2, padding=1))
        elif pool == "avg":
            layers.append(AvgPool2D(2, stride=1))
        elif pool == "dropout":
            layers.append(Dropout(0.5))
        size = Sequential(*layers).forward(np.zeros((1, c, h, h))).shape[-1]
    if draw(st.booleans()):
        layers.append(GlobalAvgPool2D())
        feat = None
    else:
        layers.append(Flatten())
        feat = -1
    model_head = [Dense(1, 3, rng=g)]  # placeholder in-features, fixed below
    if draw(st.booleans()):
        model_head = [Dense(1, 5, rng=g), ReLU(), Dense(5, 3, rng=g)]
    probe = Sequential(*layers).forward(np.zeros((1, c, h, h)))
    n_in = probe.shape[1] if feat is None else probe.reshape(1, -1).shape[1]
    first = model_head[0]
    model_head[0] = Dense(n_in, first.out_features, rng=g)
    model = randomize_biases(Sequential(*(layers + model_head)), g, scale=0.4)
    return model, (c, h)


@given(arch=architectures(), data=st.data())
@settings(max_examples=25, deadline=None)
def test_exact_ig_completeness_and_pieces(arch, data):
    model, (c, h) = arch
    shape = (2, c, h, h)
    # repeated values (Hypothesis' default) make ties; distinct ones let the per-piece oracle run
    x = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-1, 1, width=32), unique=data.draw(st.booleans())))
    zero_baseline = data.draw(st.booleans())
    x0 = np.zeros(shape) if zero_baseline else data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-1, 1)))
    target = data.draw(st.integers(0, 2))
    x_before = x.copy()
    res = exact_integrated_gradients(model, x, target, baseline=x0)
    np.testing.assert_array_equal(x, x_before)
    f, f0 = explained(model, x, target), explained(model, x0, target)
    scale = np.abs(f) + np.abs(f0) + np.abs(res.attributions).reshape(2, -1).sum(1) + 1e-300
    assert np.all(np.abs(res.delta) <= 1e-9 * scale)
    gap = f - f0 - res.attributions.reshape(2, -1).sum(1)
    np.testing.assert_allclose(res.delta, gap, rtol=0, atol=1e-12 * scale.max())
    # independent piecewise oracle: the gradient (xattr.gradient, no jvp, no walk) at 1/3 and 2/3 of
    # every piece; it must be the same at both, and Σ length · gradient must give the attributions.
    # Only for paths without (nearly) repeated values: where two pixels are equal in x and x' their conv
    # outputs are tied along the whole path and the max-pool tie policy picks among values that
    # round-off has made unequal, differently at different α; where they differ by δ, float64 places
    # their switch only to ~1e-16/δ in α (the same ambiguity, scaled down).  Completeness is unaffected
    # and is checked above for every path.
    for i in range(2):
        pairs = np.stack([x[i].ravel(), x0[i].ravel()], axis=1)
        gaps = np.abs(pairs[:, None, :] - pairs[None, :, :]).max(axis=2) + np.eye(len(pairs))
        if gaps.min() < 1e-6:
            continue
        edges = np.r_[0.0, res.breakpoints[i], 1.0]
        assert res.segments[i] == len(edges) - 1 and np.all(np.diff(edges) > 0)
        a, b = edges[:-1], edges[1:]
        d = x[i] - x0[i]
        def pts(t, start=x0[i], d=d):
            return start + t.reshape(-1, 1, 1, 1) * d

        g1 = xattr.gradient(model, pts(a + (b - a) / 3), target)
        g2 = xattr.gradient(model, pts(a + 2 * (b - a) / 3), target)
        # pieces short in input space are below what evaluating F at two points can resolve
        long = (b - a) * np.abs(d).max() > 1e-7
        # compared where it matters, on d ⊙ gradient: at near-ties of values that differ by a few ulps
        # (pixels with |d| ~ 1e-16) the tie policy may pick different switches at the two points
        np.testing.assert_allclose((d * g1)[long], (d * g2)[long], rtol=1e-7, atol=1e-9 * scale[i])
        oracle = d * np.tensordot(b - a, g1, axes=1)
        np.testing.assert_allclose(res.attributions[i], oracle, rtol=1e-6, atol=1e-9 * scale[i])


def test_exact_ig_relu_maxpool_ties_at_the_baseline():
    """With a zero baseline every window of a conv output starts tied (bias only): the envelope walk must cope."""
    model = small_cnn(6)
    x = np.random.default_rng(6).random((2, 2, 8, 8))
    res = exact_integrated_gradients(model, x, 0)
    f = explained(model, x, 0) - explained(model, np.zeros_like(x), 0)
    assert np.all(np.abs(res.delta) <= 1e-9 * np.abs(f).max())
    assert np.all(res.segments > 1)


def test_exact_ig_float32_and_return_shapes():
    model = small_cnn(7)
    x = np.random.default_rng(7).random((2, 2, 8, 8)).astype(np.float32)
    attr, delta = integrated_gradients(model, x, 1, quadrature="exact", return_delta=True)
    assert attr.dtype == np.float32 and attr.shape == x.shape and delta.shape == (2,)
    a32 = integrated_gradients(model, x, 1, steps=8)
    assert a32.dtype == np.float32


# -- return_delta ----------------------------------------------------------------------------------
@pytest.mark.parametrize("quadrature", RULES)
def test_return_delta_is_the_true_gap(quadrature):
    model = small_cnn(8)
    g = np.random.default_rng(8)
    x, x0 = g.random((2, 2, 8, 8)), g.random((2, 2, 8, 8)) * 0.3
    attr, delta = integrated_gradients(model, x, np.array([0, 3]), x0, steps=5, quadrature=quadrature,
                                       return_delta=True)
    t = np.array([0, 3])
    # Captum's sign (xattr.inputs.completeness_gap): the attributions' sum minus the output's change
    gap = attr.reshape(2, -1).sum(1) - (explained(model, x, t) - explained(model, x0, t))
    np.testing.assert_allclose(delta, gap, rtol=1e-12, atol=1e-14)
    assert np.all(np.abs(delta) > 1e-8)  # 5 nodes on a ReLU net: a real gap, reported as such


# -- axioms (Sundararajan et al. 2017) ----------------------------------------------------------
@given(seed=st.integers(0, 10_000), pos=st.tuples(st.integers(0, 1), st.integers(0, 7), st.integers(0, 7)))
@settings(max_examples=10, deadline=None)
def test_sensitivity_a(seed, pos):
    """Input and baseline differ in one feature and F differs: that feature gets all of F(x) − F(x')."""
    model = small_cnn(seed % 7)
    g = np.random.default_rng(seed)
    x0 = g.random((1, 2, 8, 8))
    x = x0.copy()
    x[(0,) + pos] += 2.0
    dF = explained(model, x, 2) - explained(model, x0, 2)
    attr = exact_integrated_gradients(model, x, 2, baseline=x0).attributions
    assert abs(attr[(0,) + pos] - dF[0]) <= 1e-9 * (abs(dF[0]) + 1e-12)
    rest = attr.copy()
    rest[(0,) + pos] = 0
    assert np.all(rest == 0)


def test_implementation_invariance_rescaling_across_relu():
    model = small_cnn(9)
    twin = small_cnn(9)
    c = 3.7
    conv, nxt = twin["conv1"], twin["conv2"]
    conv.weight, conv.bias = conv.weight * c, conv.bias * c  # ReLU and max-pool commute with c > 0
    nxt.weight = nxt.weight / c
    x = np.random.default_rng(9).random((2, 2, 8, 8))
    np.testing.assert_allclose(model.forward(x), twin.forward(x), rtol=1e-12)
    np.testing.assert_allclose(xattr.gradient(model, x, 1), xattr.gradient(twin, x, 1), rtol=1e-10, atol=1e-14)
    for q in ("exact", "gausslegendre"):
        np.testing.assert_allclose(integrated_gradients(model, x, 1, quadrature=q),
                                   integrated_gradients(twin, x, 1, quadrature=q), rtol=1e-9, atol=1e-13)


def test_implementation_invariance_layer_split_in_two():
    """A dense layer W = W2 W1 split in two, and a conv followed by a 1×1 conv: same function, same IG."""
    g = np.random.default_rng(10)
    model = small_cnn(10)
    d1 = model["dense1"]
    m = d1.in_features + 3  # full column rank, so W2 = W pinv(W1) gives W2 W1 = W
    W1, b1 = g.normal(size=(m, d1.in_features)), g.normal(size=m)
    W2 = d1.weight @ np.linalg.pinv(W1)
    np.testing.assert_allclose(W2 @ W1, d1.weight, atol=1e-12)
    a, b = Dense(d1.in_features, m), Dense(m, d1.out_features)
    a.weight, a.bias, b.weight, b.bias = W1, b1, W2, d1.bias - W2 @ b1
    conv = model["conv2"]
    c1, c2 = Conv2D(4, 5, 3, padding=1), Conv2D(5, 5, 1)
    M = g.normal(size=(5, 5)) + 3 * np.eye(5)
    c1.weight = np.einsum("pq,qchw->pchw", np.linalg.inv(M), conv.weight)
    c1.bias = np.zeros(5)
    c2.weight, c2.bias = M[:, :, None, None], conv.bias
    layers = []
    for name, layer in zip(model.names, model.layers):
        layers += {"dense1": [a, b], "conv2": [c1, c2]}.get(name, [layer])
    twin = Sequential(*layers)
    x = g.random((2, 2, 8, 8))
    np.testing.assert_allclose(model.forward(x), twin.forward(x), rtol=1e-10, atol=1e-12)
    ig1, ig2 = (exact_integrated_gradients(m, x, 2) for m in (model, twin))
    np.testing.assert_allclose(ig1.attributions, ig2.attributions, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(xattr.gradient(model, x, 2), xattr.gradient(twin, x, 2), rtol=1e-8, atol=1e-12)


def test_dummy_feature_gets_zero():
    model = small_cnn(11)
    w = model["conv1"].weight.copy()
    w[:, 1] = 0  # the network ignores input channel 1
    model["conv1"].weight = w
    x = np.random.default_rng(11).random((1, 2, 8, 8))
    for q in ("exact", "gausslegendre"):
        assert np.all(integrated_gradients(model, x, 0, quadrature=q)[:, 1] == 0)


def test_linearity():
    """IG of a·F_0 + b·F_1 (a new output row of the last dense) is a·IG_0 + b·IG_1."""
    model = small_cnn(12)
    last = model.layers[-1]
    ca, cb = 0.7, -1.9
    twin = Sequential(*model.layers[:-1], Dense(last.in_features, last.out_features + 1))
    tl = twin.layers[-1]
    tl.weight = np.vstack([last.weight, ca * last.weight[0] + cb * last.weight[1]])
    tl.bias = np.r_[last.bias, ca * last.bias[0] + cb * last.bias[1]]
    x = np.random.default_rng(12).random((2, 2, 8, 8))
    for q in ("exact", "riemann_middle"):
        combo = integrated_gradients(twin, x, last.out_features, quadrature=q, steps=16)
        parts = [integrated_gradients(model, x, k, quadrature=q, steps=16) for k in (0, 1)]
        np.testing.assert_allclose(combo, ca * parts[0] + cb * parts[1], rtol=1e-9, atol=1e-13)
    # the same through a callable target (any quadrature): IG of a linear combination of outputs
    lin = integrated_gradients(model, x, lambda s: ca * s[:, 0] + cb * s[:, 1], steps=16, quadrature="riemann_middle")
    np.testing.assert_allclose(lin, ca * parts[0] + cb * parts[1], rtol=1e-9, atol=1e-13)


def test_symmetry_preservation():
    """Channels 0 and 1 are symmetric for F (equal conv weights) and equal in x and x': equal IG."""
    model = small_cnn(13)
    w = model["conv1"].weight.copy()
    w[:, 1] = w[:, 0]
    model["conv1"].weight = w
    g = np.random.default_rng(13)
    x = np.repeat(g.random((1, 1, 8, 8)), 2, axis=1)
    x0 = np.repeat(g.random((1, 1, 8, 8)) * 0.2, 2, axis=1)
    attr = exact_integrated_gradients(model, x, 3, baseline=x0).attributions
    np.testing.assert_allclose(attr[:, 0], attr[:, 1], rtol=1e-12, atol=1e-15)


# -- memory: chunked path points ---------------------------------------------------------------------
class Spy:
    """A model wrapper that records the rows of every batch it is given."""

    def __init__(self, model):
        self.model, self.rows = model, []

    def forward(self, x):
        self.rows.append(len(x))
        return self.model.forward(x)

    def vjp(self, x, g, rule="gradient", **options):
        self.rows.append(len(x))
        return self.model.vjp(x, g, rule, **options)


def test_batch_size_bounds_the_points_per_call_and_memory():
    model = small_cnn(14)
    x = np.random.default_rng(14).random((2, 2, 8, 8))
    spy = Spy(model)
    q = "riemann_middle"
    a1 = integrated_gradients(spy, x, 0, steps=3000, quadrature=q, batch_size=64)
    assert max(spy.rows) <= 64 and sum(r for r in spy.rows if r != 2) >= 2 * 3000
    a2 = integrated_gradients(model, x, 0, steps=3000, quadrature=q, batch_size=1000)
    np.testing.assert_allclose(a1, a2, rtol=1e-10, atol=1e-14)

    def peak(steps):
        tracemalloc.start()
        integrated_gradients(model, x, 0, steps=steps, quadrature=q, batch_size=32)
        p = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return p

    small, large = peak(200), peak(6000)
    # index arrays grow with steps (8 bytes per row); the point/gradient arrays do not
    assert large < small + 2 * 6000 * 2 * 8 * 4 + 200_000, (small, large)


# -- bad input ----------------------------------------------------------------------------------
def test_bad_input_errors():
    model = small_cnn(15)
    x = np.random.default_rng(15).random((1, 2, 8, 8))
    with pytest.raises(
        ValueError, match=r"baseline must be a scalar, one sample of shape \(2, 8, 8\), or broadcastable"
    ):
        integrated_gradients(model, x, 0, baseline=np.zeros((3, 8, 8)))
    with pytest.raises(ValueError, match="steps must be >= 1"):
        integrated_gradients(model, x, 0, steps=0)
    with pytest.raises(ValueError, match="quadrature must be one of"):
        integrated_gradients(model, x, 0, quadrature="trapezium")
    with pytest.raises(ValueError, match="baseline must be finite"):
        integrated_gradients(model, x, 0, baseline=np.full(x.shape, np.nan))
    with pytest.raises(ValueError, match=r"baseline\(x\) must be finite"):
        integrated_gradients(model, x, 0, baseline=lambda v: v * np.inf)
    with pytest.raises(ValueError, match="target 9 out of range"):
        integrated_gradients(model, x, 9)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        integrated_gradients(model, x, 0, batch_size=0)
    with pytest.raises(TypeError, match="needs a layered model"):
        integrated_gradients(ig_f1("function"), np.ones((1, 2, 1, 1)), 0, quadrature="exact")
    with pytest.raises(ValueError, match="class target"):
        exact_integrated_gradients(model, x, lambda s: s[:, 0] * s[:, 1])

    class Square(Layer):
        def forward(self, v):
            return v * v, None

    with pytest.raises(ValueError, match="layer Square 'sq' is not one"):
        exact_integrated_gradients(Sequential(Flatten(), ("sq", Square()), Dense(128, 2)), x, 0)


def test_baseline_forms_agree():
    model = small_cnn(16)
    x = np.random.default_rng(16).random((2, 2, 8, 8))
    mean = x.mean(axis=(2, 3), keepdims=True)
    a = integrated_gradients(model, x, 1, baseline=lambda v: v.mean(axis=(2, 3), keepdims=True), steps=8)
    b = integrated_gradients(model, x, 1, baseline=np.broadcast_to(mean, x.shape).copy(), steps=8)
    np.testing.assert_array_equal(a, b)
    c = integrated_gradients(model, x, 1, baseline=0.25, steps=8)
    d = integrated_gradients(model, x, 1, baseline=np.full((1, 2, 1, 1), 0.25), steps=8)
    np.testing.assert_array_equal(c, d)


# -- jvp of every layer ----------------------------------------------------------------------------
def _layers_for_jvp(g):
    bn = BatchNorm2D(3)
    bn.weight, bn.running_var, bn.running_mean = g.uniform(0.5, 2, 3), g.uniform(0.5, 2, 3), g.normal(size=3)
    return [
        (Conv2D(3, 4, 3, stride=2, padding=1, dilation=1, rng=g), (2, 3, 7, 7)),
        (Conv2D(3, 2, (2, 3), padding="same", dilation=2, rng=g), (2, 3, 6, 6)),
        (ReLU(), (2, 3, 5, 5)),
        (MaxPool2D(3, stride=2, padding=1), (2, 3, 7, 7)),
        (AvgPool2D(2, stride=1, padding=1), (2, 3, 5, 5)),
        (GlobalAvgPool2D(), (2, 3, 4, 4)),
        (Flatten(), (2, 3, 2, 2)),
        (Dense(5, 4, rng=g), (2, 5)),
        (bn, (2, 3, 4, 4)),
        (Dropout(0.2), (2, 3, 4, 4)),
    ]


def test_jvp_matches_central_differences_and_is_the_adjoint_of_backward():
    g = np.random.default_rng(17)
    for layer, shape in _layers_for_jvp(g):
        x, dx = g.normal(size=shape), g.normal(size=shape)
        y, cache = layer.forward(x)
        jv = layer.jvp(dx, cache)
        h = 1e-6  # random inputs: no kink or tie within h (checked by the pattern staying the same)
        yp, cp = layer.forward(x + h * dx)
        ym, _ = layer.forward(x - h * dx)
        np.testing.assert_allclose(jv, (yp - ym) / (2 * h), rtol=1e-6, atol=1e-8, err_msg=repr(layer))
        u = g.normal(size=y.shape)
        lhs = np.vdot(jv, u)
        rhs = np.vdot(dx, layer.backward(u, cache, "gradient"))
        assert abs(lhs - rhs) <= 1e-12 * (abs(lhs) + 1), repr(layer)


# -- expected gradients ------------------------------------------------------------------------
def test_expected_gradients_linear_closed_form_and_determinism():
    g = np.random.default_rng(18)
    w = g.normal(size=(2, 1, 3, 3))
    model = linear_model(w)
    x, refs = g.normal(size=(2, 1, 3, 3)), g.normal(size=(5, 1, 3, 3))
    eg = expected_gradients(model, x, 1, refs, n_samples=4000, rng=0)
    np.testing.assert_array_equal(eg, expected_gradients(model, x, 1, refs, n_samples=4000, rng=0))
    # the draws do not depend on the chunking; only the summation order does
    chunked = expected_gradients(model, x, 1, refs, n_samples=4000, rng=np.random.default_rng(0), batch_size=7)
    np.testing.assert_allclose(eg, chunked, rtol=1e-12, atol=1e-14)
    exact = (x - refs.mean(0)) * w[1]
    se = refs.std(0) * np.abs(w[1]) / np.sqrt(4000)  # the sample mean of the reference draws
    assert np.all(np.abs(eg - exact) <= 5 * se + 1e-12)
    np.testing.assert_allclose(expected_gradients_exact(model, x, 1, refs), exact, rtol=1e-12, atol=1e-14)
    assert not np.array_equal(eg, expected_gradients(model, x, 1, refs, n_samples=4000, rng=1))


def test_expected_gradients_exact_completeness_and_sampling_converges():
    model = small_cnn(19)
    g = np.random.default_rng(19)
    x, refs = g.random((2, 2, 8, 8)), g.random((3, 2, 8, 8)) * 0.5
    attr, delta = expected_gradients_exact(model, x, 2, refs, return_delta=True)
    f = explained(model, x, 2)
    fr = explained(model, refs, 2).mean()
    np.testing.assert_allclose(attr.reshape(2, -1).sum(1), f - fr, rtol=1e-9, atol=1e-12)
    assert np.all(np.abs(delta) < 1e-9 * np.abs(f - fr).max())
    # sampled EG: the error shrinks as n grows (a mean of bounded draws)
    e_small = np.abs(expected_gradients(model, x, 2, refs, n_samples=20, rng=3) - attr).mean()
    e_large = np.abs(expected_gradients(model, x, 2, refs, n_samples=2000, rng=3) - attr).mean()
    assert e_large < e_small / 3


def test_expected_gradients_bad_input():
    model = small_cnn(20)
    x = np.zeros((1, 2, 8, 8))
    with pytest.raises(ValueError, match=r"references must have shape \(K,\) \+ .* with K >= 1"):
        expected_gradients(model, x, 0, np.zeros((2, 3, 8, 8)), rng=0)
    with pytest.raises(TypeError, match="rng must be"):
        expected_gradients(model, x, 0, np.zeros((2, 2, 8, 8)))


# -- saturation --------------------------------------------------------------------------------
def test_saturation_one_minus_relu():
    model = one_minus_relu()
    x = np.full((1, 1, 1, 1), 2.0)
    res = saturation(model, x, 0, alphas=[0.0, 0.25, 0.75, 1.0])
    np.testing.assert_allclose(res.scores, [[0.0, 0.5, 1.0, 1.0]])
    np.testing.assert_allclose(res.gradient_norm, [[1.0, 1.0, 0.0, 0.0]])  # saturated: the gradient vanishes


def test_saturation_matches_direct_gradients():
    model = small_cnn(21)
    x = np.random.default_rng(21).random((2, 2, 8, 8))
    res = saturation(model, x, 1, batch_size=5)
    assert res.scores.shape == res.gradient_norm.shape == (2, 51)
    for j in (0, 17, 50):
        a = res.alphas[j]
        np.testing.assert_allclose(res.scores[:, j], explained(model, a * x, 1), rtol=1e-12)
        gn = np.sqrt((xattr.gradient(model, a * x, 1) ** 2).reshape(2, -1).sum(1))
        np.testing.assert_allclose(res.gradient_norm[:, j], gn, rtol=1e-12)


def test_exact_ig_does_not_depend_on_the_chunking():
    model = small_cnn(23)
    x = np.random.default_rng(23).random((2, 2, 8, 8))
    a = exact_integrated_gradients(model, x, 1)
    b = exact_integrated_gradients(model, x, 1, batch_size=3)
    np.testing.assert_array_equal(a.segments, b.segments)
    np.testing.assert_allclose(a.attributions, b.attributions, rtol=1e-12, atol=1e-15)


# -- the affine head (path points at the first layer's output) -----------------------------------

@pytest.mark.parametrize("quadrature", ["gausslegendre", "riemann_trapezoid"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_affine_head_shortcut_equals_the_plain_sum(quadrature, dtype):
    """Σ_k w_k Lᵀ g_k = Lᵀ Σ_k w_k g_k and h(x' + α d) = h(x') + α L d: the same IG up to round-off."""
    model = small_cnn(21)
    rng = np.random.default_rng(21)
    x, x0 = rng.random((3, 2, 8, 8)).astype(dtype), rng.random((3, 2, 8, 8)).astype(dtype)
    fast = integrated_gradients(model, x, [0, 1, 2], baseline=x0, steps=20, quadrature=quadrature, batch_size=7)
    plain = integrated_gradients(
        Opaque(model), x, [0, 1, 2], baseline=x0, steps=20, quadrature=quadrature, batch_size=7
    )
    assert fast.dtype == dtype
    tol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(fast, plain, rtol=tol, atol=tol * np.abs(plain).max())


def test_affine_head_of_a_dense_model_and_its_completeness():
    g = np.random.default_rng(22)
    model = Sequential(Dense(6, 5, rng=g), ReLU(), Dense(5, 3, rng=g))
    randomize_biases(model, g)
    x = g.normal(size=(4, 6))
    fast, delta = integrated_gradients(model, x, 2, steps=64, return_delta=True)
    np.testing.assert_allclose(fast, integrated_gradients(Opaque(model), x, 2, steps=64), rtol=1e-12, atol=1e-14)
    exact = integrated_gradients(model, x, 2, quadrature="exact")
    np.testing.assert_allclose(fast, exact, atol=0.05 * np.abs(exact).max())  # quadrature error only


def test_run_sums_and_segment_sums_agree(monkeypatch):
    """Chunks with few images sum per run; chunks with many use gathers and reduceat: same numbers."""
    import xattr.methods.path._common as path_mod

    model = small_cnn(23)
    x = np.random.default_rng(23).random((5, 2, 8, 8))
    runs = integrated_gradients(model, x, 1, steps=4, batch_size=9)
    monkeypatch.setattr(path_mod, "MAX_RUNS", 0)
    np.testing.assert_allclose(integrated_gradients(model, x, 1, steps=4, batch_size=9), runs, rtol=1e-13, atol=1e-15)
