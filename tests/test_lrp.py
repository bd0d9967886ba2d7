"""LRP: every rule against a slow matrix-form oracle, conservation, equivalences, composites, bad input.

The oracle follows Montavon et al. 2019 (§10.2.2) literally: for a layer written as a matrix
``w_jk`` (input j, output k) and bias ``b_k``, each rule builds the contributions ``z_jk`` and their
sums ``z_k``, then ``R_j = Σ_k z_jk / z_k · R_k``.  A convolution's matrix is built independently of
the rules, by applying the conv to every basis image (its columns), never by the rules' code path.
"""
import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import xattr
from xattr.methods.lrp import COMPOSITES, layer_rules
from xattr.nn import (
    AvgPool2D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    ReLU,
    RuleNotDefined,
    Sequential,
    fold_batchnorm,
)

from nets import networks

RULES = ["0", "epsilon", "gamma", "alphabeta", "zplus", "zbox", "flat", "w2"]
COLUMN = {"0": "lrp0", "epsilon": "lrp_epsilon", "gamma": "lrp_gamma", "alphabeta": "lrp_alphabeta",
          "zplus": "lrp_zplus", "zbox": "lrp_zbox", "flat": "lrp_flat", "w2": "lrp_w2"}


# -- the matrix-form oracle ----------------------------------------------------------------------
def unrolled(layer, in_shape):
    """``(W, b, connected)``: ``W[j, k]`` the weight from input j to output k, by applying the layer
    (bias removed) to basis inputs; ``connected[j, k]`` from the same with an all-ones kernel."""
    n = int(np.prod(in_shape))
    basis = np.eye(n).reshape((n,) + tuple(in_shape))
    lay = copy.deepcopy(layer)
    b = lay(np.zeros((1,) + tuple(in_shape))).reshape(-1)  # the bias map (0 if no bias)
    lay.bias = None
    W = lay(basis).reshape(n, -1)
    lay.weight = np.ones_like(lay.weight)
    connected = lay(basis).reshape(n, -1) != 0
    return W, b, connected


def div(num, den):
    return np.divide(num, den, out=np.zeros(np.broadcast_shapes(num.shape, den.shape)), where=den != 0)


def oracle(rule, a, W, b, conn, R, eps=0.1, gamma=0.3, alpha=2.0, beta=1.0, low=None, high=None):
    """``R_j = Σ_k z_jk / z_k R_k`` for one sample: ``a (n_in,)``, ``R (n_out,)``."""
    P, N = np.maximum, np.minimum
    if rule in ("0", "epsilon"):
        zjk = a[:, None] * W
        zk = zjk.sum(0) + b
        if rule == "epsilon":
            zk = zk + eps * np.where(zk >= 0, 1, -1)
    elif rule == "gamma":
        zjk = a[:, None] * (W + gamma * P(W, 0))
        zk = zjk.sum(0) + b + gamma * P(b, 0)
    elif rule == "zplus":
        zjk = a[:, None] * P(W, 0)
        zk = zjk.sum(0) + P(b, 0)
    elif rule == "alphabeta":
        prod = a[:, None] * W
        zp, zn = P(prod, 0), N(prod, 0)
        return (alpha * div(zp, zp.sum(0) + P(b, 0)) - beta * div(zn, zn.sum(0) + N(b, 0))) @ R
    elif rule == "zbox":
        zjk = a[:, None] * W - low[:, None] * P(W, 0) - high[:, None] * N(W, 0)
        zk = zjk.sum(0)
    elif rule == "flat":
        zjk = conn.astype(float)
        zk = zjk.sum(0)
    elif rule == "w2":
        zjk = W**2
        zk = zjk.sum(0)
    return div(zjk, zk) @ R


OPTS = {"epsilon": {"epsilon": 0.1}, "gamma": {"gamma": 0.3}, "alphabeta": {"alpha": 2.0, "beta": 1.0}}


def _check_rule_against_oracle(layer, a, rule, rng):
    y, cache = layer.forward(a)
    R = rng.normal(size=y.shape)
    opts = dict(OPTS.get(rule, {}))
    lo = hi = None
    if rule == "zbox":
        lo, hi = a - rng.random(a.shape), a + rng.random(a.shape)
        opts = {"low": lo, "high": hi}
    fast = layer.backward(R, cache, COLUMN[rule], **opts)
    W, b, conn = unrolled(layer, a.shape[1:])
    for n in range(a.shape[0]):
        kw = {"low": lo[n].ravel(), "high": hi[n].ravel()} if rule == "zbox" else {}
        want = oracle(rule, a[n].ravel(), W, b, conn, R[n].ravel(), **kw)
        np.testing.assert_allclose(fast[n].ravel(), want, rtol=1e-10, atol=1e-12, err_msg=rule)


@pytest.mark.parametrize("rule", RULES)
@settings(max_examples=8)
@given(seed=st.integers(0, 2**16), n_in=st.integers(1, 6), n_out=st.integers(1, 5), bias=st.booleans())
def test_dense_rule_equals_matrix_oracle(rule, seed, n_in, n_out, bias):
    rng = np.random.default_rng(seed)
    layer = Dense(n_in, n_out, bias=bias, rng=rng)
    if bias:
        layer.bias = rng.normal(size=n_out)
    a = rng.normal(size=(2, n_in))
    a[rng.random(a.shape) < 0.2] = 0.0  # exact zeros, as after a ReLU
    if rule in ("zplus", "gamma"):
        a = np.abs(a)  # their ρ assumes a >= 0 (after a ReLU)
    _check_rule_against_oracle(layer, a, rule, rng)


@pytest.mark.parametrize("rule", RULES)
@settings(max_examples=6)
@given(seed=st.integers(0, 2**16), k=st.integers(1, 3), stride=st.integers(1, 2), pad=st.integers(0, 1),
       dil=st.integers(1, 2), bias=st.booleans())
def test_conv_rule_equals_matrix_oracle_of_the_unrolled_conv(rule, seed, k, stride, pad, dil, bias):
    rng = np.random.default_rng(seed)
    layer = Conv2D(2, 3, k, stride=stride, padding=pad, dilation=dil, bias=bias, rng=rng)
    if bias:
        layer.bias = rng.normal(size=3)
    a = rng.normal(size=(2, 2, 5, 5))
    a[rng.random(a.shape) < 0.2] = 0.0
    if rule in ("zplus", "gamma"):
        a = np.abs(a)
    _check_rule_against_oracle(layer, a, rule, rng)


@pytest.mark.parametrize("rule", RULES)
@settings(max_examples=6)
@given(seed=st.integers(0, 2**16), groups=st.sampled_from([2, 3]), depthwise=st.booleans(), stride=st.integers(1, 2),
       bias=st.booleans())
def test_grouped_and_depthwise_conv_rule_equals_matrix_oracle(rule, seed, groups, depthwise, stride, bias):
    """The rules run the layer's own grouped kernels with ρ(W): the oracle's matrix has the groups' zeros."""
    rng = np.random.default_rng(seed)
    c_in = groups if depthwise else 2 * groups
    layer = Conv2D(c_in, 2 * groups, 3, stride=stride, padding=1, bias=bias, rng=rng, groups=groups)
    assert layer._depthwise() == depthwise
    if bias:
        layer.bias = rng.normal(size=2 * groups)
    a = rng.normal(size=(2, c_in, 4, 5))
    a[rng.random(a.shape) < 0.2] = 0.0
    if rule in ("zplus", "gamma"):
        a = np.abs(a)
    _check_rule_against_oracle(layer, a, rule, rng)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_each_rule_conserves_relevance_at_a_bias_free_layer(rule, kind):
    """Σ_j R_j = Σ_k R_k for every rule on a bias-free layer (z⁺, γ on a ≥ 0), except what ε absorbs,
    the relevance of units with z⁺_k = 0 under z⁺ (dropped, not NaN),
    Σ_k R_k ε sign z_k / (z_k + ε sign z_k), and αβ's α[z⁺_k ≠ 0] − β[z⁻_k ≠ 0] (a unit whose
    contributions all have one sign passes α or β times its relevance, not 1 times)."""
    rng = np.random.default_rng(12)
    layer = Dense(6, 4, bias=False, rng=rng) if kind == "dense" else Conv2D(2, 3, 3, padding=1, bias=False, rng=rng)
    a = np.abs(rng.normal(size=(2, 6) if kind == "dense" else (2, 2, 4, 4)))
    y, cache = layer.forward(a)
    R = rng.normal(size=y.shape)
    opts = {"low": a - 1, "high": a + 1} if rule == "zbox" else dict(OPTS.get(rule, {}))
    out = layer.backward(R, cache, COLUMN[rule], **opts)
    if rule == "epsilon":
        kept = R * y / (y + 0.1 * np.where(y >= 0, 1, -1))
    elif rule == "alphabeta":
        a_pos = a >= 0  # all inputs are >= 0 here: z⁺ from w⁺, z⁻ from w⁻
        zp = replaced_forward(layer, a, np.maximum(layer.weight, 0))
        zn = replaced_forward(layer, a, np.minimum(layer.weight, 0))
        assert a_pos.all()
        kept = R * (2.0 * (zp != 0) - 1.0 * (zn != 0))
    elif rule == "zplus":  # a unit with no positive contribution (e.g. its w⁺ all on padding) drops its relevance
        kept = R * (replaced_forward(layer, a, np.maximum(layer.weight, 0)) != 0)
    else:
        kept = R
    np.testing.assert_allclose(out.reshape(2, -1).sum(1), kept.reshape(2, -1).sum(1), rtol=1e-10, atol=1e-12)


def replaced_forward(layer, a, w):
    lay = copy.deepcopy(layer)
    lay.weight = w
    return lay(a)


def test_alphabeta_beta_zero_and_a_zero_denominator_give_no_nan():
    layer = Dense(3, 2, rng=0)
    layer.weight = np.array([[1.0, -1.0, 0.0], [-2.0, -1.0, 0.0]])
    layer.bias = np.zeros(2)
    a = np.array([[1.0, 1.0, 5.0]])  # unit 1 has no positive contribution at all: z⁺ = 0
    y, cache = layer.forward(a)
    R = layer.backward(np.array([[1.0, 1.0]]), cache, "lrp_alphabeta", alpha=1.0, beta=0.0)
    assert np.all(np.isfinite(R))
    np.testing.assert_allclose(R, [[1.0, 0.0, 0.0]])  # unit 0: all from a_0 w_00; unit 1's relevance is dropped


def test_epsilon_stabilizer_takes_sign_zero_as_plus():
    """stab(z) = z + ε sign(z) with sign(0) = +1 (as Zennit): z = 0 gives R / ε, never a division by 0."""
    layer = Dense(2, 1, rng=0)
    layer.weight, layer.bias = np.array([[1.0, -1.0]]), np.zeros(1)
    y, cache = layer.forward(np.array([[2.0, 2.0]]))
    assert y[0, 0] == 0
    np.testing.assert_allclose(layer.backward(np.array([[3.0]]), cache, "lrp_epsilon", epsilon=0.5), [[12.0, -12.0]])
    np.testing.assert_array_equal(layer.backward(np.array([[3.0]]), cache, "lrp0"), [[0.0, 0.0]])  # LRP-0: 0/0 -> 0


def test_proportional_maxpool_against_loops():
    rng = np.random.default_rng(3)
    x = np.abs(rng.normal(size=(2, 2, 5, 5)))
    pool = MaxPool2D(3, stride=2, padding=1)
    y, cache = pool.forward(x)
    R = rng.normal(size=y.shape)
    from types import SimpleNamespace

    got = pool.backward(R, cache, "lrp0", inp=SimpleNamespace(x=x, y=y), maxpool="proportional")
    want = np.zeros_like(x)
    for n in range(2):
        for c in range(2):
            for i in range(y.shape[2]):
                for j in range(y.shape[3]):
                    rows = [r for r in range(2 * i - 1, 2 * i + 2) if 0 <= r < 5]
                    cols = [q for q in range(2 * j - 1, 2 * j + 2) if 0 <= q < 5]
                    win = x[n, c][np.ix_(rows, cols)]
                    want[n, c][np.ix_(rows, cols)] += win / win.sum() * R[n, c, i, j]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(got.sum(), R.sum(), rtol=1e-12)
    np.testing.assert_array_equal(pool.backward(R, cache, "lrp0"), pool.route(R, cache))  # winner-take-all


# -- networks ---------------------------------------------------------------------------------------
def _relu_net(bias=True, rng=0):
    gen = np.random.default_rng(rng)
    layers = [
        Conv2D(2, 4, 3, padding=1, bias=bias, rng=gen),
        ReLU(),
        MaxPool2D(2),
        Conv2D(4, 5, 3, bias=bias, rng=gen),
        ReLU(),
        AvgPool2D(2, 1),
        Flatten(),
        Dense(5, 6, bias=bias, rng=gen),
        ReLU(),
        Dense(6, 3, bias=bias, rng=gen),
    ]
    model = Sequential(*layers)
    if bias:
        for layer in model:
            if getattr(layer, "bias", None) is not None:
                layer.bias = gen.normal(scale=0.3, size=layer.bias.shape)
    return model, gen.normal(size=(2, 2, 8, 8))


@given(networks())
def test_lrp0_equals_gradient_times_input(case):
    model, x = case
    for t in range(model(x).shape[1]):
        np.testing.assert_allclose(
            xattr.lrp(model, x, t, "0"), xattr.gradient_x_input(model, x, t), rtol=1e-9, atol=1e-12
        )


@pytest.mark.parametrize("maxpool", ["winner_take_all", "proportional"])
def test_lrp0_conserves_relevance_on_bias_free_networks(maxpool):
    model, x = _relu_net(bias=False)
    R, totals = xattr.lrp(model, x, 1, "0", maxpool=maxpool, return_totals=True)
    score = model(x)[:, 1]
    np.testing.assert_allclose(totals, np.broadcast_to(score[:, None], totals.shape), rtol=1e-10)
    np.testing.assert_allclose(R.reshape(2, -1).sum(1), score, rtol=1e-10)


@pytest.mark.parametrize("rule, eps", [("0", 0.0), ("epsilon", 0.5), ("epsilon", 1e-6)])
def test_relevance_absorbed_by_biases_and_epsilon_is_the_closed_form(rule, eps):
    """Per dense/conv layer: Σ_j R_j = Σ_k R_k (z_k − b_k) / (z_k + ε sign z_k); other layers conserve."""
    model, x = _relu_net(bias=True)
    R, totals = xattr.lrp(model, x, 2, rule, epsilon=eps, return_totals=True)
    cells = layer_rules(model, rule, {"epsilon": eps}, "winner_take_all")
    tape = model.trace(x)
    tx = [tape[n] for n in model.order]
    caches = [t.cache for t in tx]
    scores = tape.output
    Rk = np.zeros_like(scores)
    Rk[:, 2] = scores[:, 2]
    for i in range(len(model) - 1, -1, -1):
        layer = model[i]
        if isinstance(layer, (Dense, Conv2D)):
            z = tx[i].y
            b = layer(np.zeros_like(tx[i].x))  # the bias map
            stab = z + eps * np.where(z >= 0, 1, -1)
            expected = (Rk * (z - b) / stab).reshape(len(x), -1).sum(1)
            np.testing.assert_allclose(totals[:, i], expected, rtol=1e-9, atol=1e-12)
        else:
            np.testing.assert_allclose(totals[:, i], totals[:, i + 1], rtol=1e-10, atol=1e-12)
        column, opts = cells[model.order[i]]
        if not layer.weighted:
            opts = {}  # the fixed cells (ReLU, flatten, pools) take no options here; max-pool's default mode
        Rk = layer.backward(Rk, caches[i], column, inp=tx[i], **opts)
    np.testing.assert_allclose(Rk, R)
    assert not np.allclose(totals[:, 0], totals[:, -1])  # biases do absorb relevance here


def test_zplus_equals_alpha1_beta0_on_nonnegative_inputs_and_differs_on_signed_ones():
    model, x = _relu_net(bias=True, rng=4)
    xp = np.abs(x)
    a1b0 = {Dense: ("alphabeta", {"alpha": 1, "beta": 0}), Conv2D: ("alphabeta", {"alpha": 1, "beta": 0})}
    np.testing.assert_allclose(xattr.lrp(model, xp, 0, "zplus"), xattr.lrp(model, xp, 0, a1b0), rtol=1e-10, atol=1e-13)
    # with negative input values z⁺ (ρ(w) = w⁺) and α1β0 (positive products) differ at the first layer:
    # a documented property of the rules' domains, not an error
    a1 = xattr.lrp(model, x, 0, "zplus")
    a2 = xattr.lrp(model, x, 0, a1b0)
    assert not np.allclose(a1, a2)


def test_zplus_relevance_is_nonnegative_for_nonnegative_inputs():
    model, x = _relu_net(bias=True, rng=5)
    R = xattr.lrp(model, np.abs(x), 1, "zplus", output="one")
    assert R.min() >= 0 and R.max() > 0


def test_output_relevance_score_or_one():
    model, x = _relu_net(rng=6)
    s = model(x)[:, 1]
    for comp in ("epsilon", "epsilon_plus", "w2"):
        np.testing.assert_allclose(
            xattr.lrp(model, x, 1, comp),
            s[:, None, None, None] * xattr.lrp(model, x, 1, comp, output="one"),
            rtol=1e-10,
            atol=1e-14,
        )


def test_composites_assign_rules_by_position_and_type():
    model, x = _relu_net(rng=7)
    comp = {"first": ("zbox", {"low": -4.0, "high": 4.0}), Conv2D: ("gamma", {"gamma": 0.5}), Dense: "epsilon"}
    got = xattr.lrp(model, x, 2, comp, epsilon=0.01)
    # the same by hand, layer by layer
    tape = model.trace(x)
    tx = [tape[n] for n in model.order]
    R = np.zeros_like(tape.output)
    R[:, 2] = tape.output[:, 2]
    rules = {0: ("lrp_zbox", {"low": -4.0, "high": 4.0}), 3: ("lrp_gamma", {"gamma": 0.5}),
             7: ("lrp_epsilon", {"epsilon": 0.01}), 9: ("lrp_epsilon", {"epsilon": 0.01})}
    for i in range(len(model) - 1, -1, -1):
        col, opts = rules.get(i, ("lrp0", {}))
        R = model[i].backward(R, tx[i].cache, col, inp=tx[i], **opts)
    np.testing.assert_allclose(got, R, rtol=1e-12)
    # every preset runs and names its source
    for name in COMPOSITES:
        out = xattr.lrp(model, x, 0, name, low=-4, high=4)
        assert out.shape == x.shape and np.all(np.isfinite(out))


def test_batchnorm_is_folded_before_lrp():
    gen = np.random.default_rng(8)
    bn = BatchNorm2D(3)
    bn.weight, bn.bias = gen.normal(size=3), gen.normal(size=3)
    bn.running_mean, bn.running_var = gen.normal(size=3), gen.random(3) + 0.5
    model = Sequential(Conv2D(2, 3, 3, rng=1), bn, ReLU(), GlobalAvgPool2D(), Dense(3, 2, rng=2))
    x = gen.normal(size=(2, 2, 6, 6))
    for comp in ("epsilon", "epsilon_gamma_box"):
        np.testing.assert_array_equal(
            xattr.lrp(model, x, 1, comp, low=-5, high=5), xattr.lrp(fold_batchnorm(model), x, 1, comp, low=-5, high=5)
        )
    np.testing.assert_allclose(xattr.lrp(model, x, 1, "0"), xattr.gradient_x_input(model, x, 1), rtol=1e-9, atol=1e-12)
    # a batch-norm that follows no conv takes the z-rule on its affine map: R_i = a x_i R / stab(a x_i + c)
    first = Sequential(bn2 := BatchNorm2D(2), Flatten(), Dense(72, 2, rng=3))
    bn2.weight, bn2.bias = gen.normal(size=2), gen.normal(size=2)
    tape = first.trace(x)
    r_flat = xattr.lrp(Sequential(Flatten(), first[2]), tape.value("bn1"), 0).reshape(x.shape)
    a, _ = bn2.scale_shift()
    z = tape.value("bn1")
    want = r_flat * a[:, None, None] * x / (z + 1e-6 * np.where(z >= 0, 1, -1))
    np.testing.assert_allclose(xattr.lrp(first, x, 0), want, rtol=1e-10, atol=1e-14)


def test_dtype_is_kept_and_input_not_modified():
    model, x = _relu_net(rng=9)
    x32 = x.astype(np.float32)
    keep = x32.copy()
    out = xattr.lrp(model, x32, 0, "epsilon_plus")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(x32, keep)
    np.testing.assert_allclose(out, xattr.lrp(model, x, 0, "epsilon_plus"), rtol=1e-3, atol=1e-5)


def test_zero_input_gives_zeros_not_nan():
    model, x = _relu_net(bias=False, rng=10)
    for comp in ("0", "epsilon", "gamma", "alphabeta", "zplus", "w2", "flat"):
        out = xattr.lrp(model, np.zeros_like(x), 0, comp)
        assert np.all(np.isfinite(out)), comp


# -- bad input --------------------------------------------------------------------------------------
def test_bad_input_is_refused_with_clear_messages():
    model, x = _relu_net(rng=11)
    with pytest.raises(ValueError, match="gamma >= 0"):
        xattr.lrp(model, x, 0, "gamma", gamma=-0.1)
    with pytest.raises(ValueError, match="alpha - beta = 1"):
        xattr.lrp(model, x, 0, "alphabeta", alpha=2.0, beta=0.5)
    with pytest.raises(ValueError, match="alpha - beta = 1"):
        model[0].backward(np.ones((2, 4, 8, 8)), model[0].forward(x)[1], "lrp_alphabeta", alpha=3, beta=1)
    with pytest.raises(ValueError, match="box bounds"):
        xattr.lrp(model, x, 0, "epsilon_gamma_box")
    with pytest.raises(ValueError, match="box bounds"):
        model[0].backward(np.ones((2, 4, 8, 8)), model[0].forward(x)[1], "lrp_zbox")
    with pytest.raises(ValueError, match=r"z\^B bounds must be scalars or broadcast"):
        xattr.lrp(model, x, 0, "zbox", low=np.zeros((3, 8, 8)), high=1.0)
    with pytest.raises(ValueError, match="low <= high"):
        xattr.lrp(model, x, 0, "zbox", low=1.0, high=-1.0)
    with pytest.raises(ValueError, match="epsilon >= 0"):
        xattr.lrp(model, x, 0, "epsilon", epsilon=-1.0)
    with pytest.raises(ValueError, match="composite key MaxPool2D is not supported"):
        xattr.lrp(model, x, 0, {MaxPool2D: "gamma", Conv2D: "zplus", Dense: "epsilon"})
    with pytest.raises(ValueError, match="composite key BatchNorm2D is not supported"):
        xattr.lrp(model, x, 0, {BatchNorm2D: "epsilon", Conv2D: "zplus", Dense: "epsilon"})
    with pytest.raises(ValueError, match="no rule for Dense"):
        xattr.lrp(model, x, 0, {Conv2D: "zplus"})
    with pytest.raises(ValueError, match="takes options"):
        xattr.lrp(model, x, 0, {Conv2D: ("zplus", {"gamma": 1}), Dense: "epsilon"})
    with pytest.raises(ValueError, match="unknown composite 'lrp-eps'"):
        xattr.lrp(model, x, 0, "lrp-eps")
    with pytest.raises(ValueError, match="maxpool must be one of"):
        xattr.lrp(model, x, 0, maxpool="avg")
    with pytest.raises(ValueError, match="output must be one of"):
        xattr.lrp(model, x, 0, output="logit")
    with pytest.raises(TypeError, match="Sequential"):
        xattr.lrp(xattr.from_function(lambda v: v.reshape(len(v), -1)[:, :2]), x, 0)

    class Weird(ReLU.__mro__[1]):  # a Layer subclass without LRP cells
        def forward(self, v):
            return v, None

    with pytest.raises(ValueError, match="has no LRP rule"):
        xattr.lrp(Sequential(Weird(), Flatten(), Dense(128, 2)), x, 0)
    # a missing cell called directly still names layer and rule
    with pytest.raises(RuleNotDefined, match="Flatten.*lrp_nonsense"):
        Flatten().backward(np.ones((1, 8)), None, "lrp_nonsense")
    with pytest.raises(ValueError, match="LRP on BatchNorm2D needs the layer's input/output"):
        BatchNorm2D(2).backward(np.ones((1, 2, 2, 2)), None, "lrp0")


def test_registered_and_exported():
    assert xattr.get_method("lrp") is xattr.lrp
    assert "lrp" in xattr.available_methods("relevance")


def test_rule_table_shows_the_relevance_columns():
    table = xattr.rule_table(fmt="dict")
    for rule in ("rescale", "revealcancel") + tuple(COLUMN.values()):
        for layer in ("Conv2D", "Dense", "ReLU", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "Flatten"):
            assert table[layer][rule] is not None, (layer, rule)
    assert "z-rule on the batch-norm's affine map" in table["BatchNorm2D"]["lrp0"]  # where it cannot be folded
    assert table["Dense"]["rescale"] == "same as gradient"  # multipliers pass linear layers as gradients
    assert table["ReLU"]["lrp_gamma"] == "same as lrp0"  # one pass-through cell for every LRP column
    assert table["Conv2D"]["lrp_gamma"].startswith("`R_j = a_j Σ_k ρ(w_jk)")
    assert "Shrikumar et al. 2017" in table["ReLU"]["revealcancel"]


def test_replaced_leaves_the_layer_alone():
    from xattr.nn.base import replaced

    layer = Conv2D(2, 3, 3, rng=0)
    w = layer.weight.copy()
    other = replaced(layer, weight=np.ones_like(w), bias=None)
    np.testing.assert_array_equal(layer.weight, w)
    assert layer.bias is not None and other.bias is None and other.kernel_size == layer.kernel_size
    with pytest.raises(ValueError, match="shape"):
        replaced(layer, weight=np.ones((3, 2, 2, 2)))
    with pytest.raises(TypeError, match="weight= and bias="):
        replaced(layer, stride=2)
