"""Activations: the three rules of the table on hand-worked examples, the kinks, and properties.

Oracles: hand-worked values, PyTorch's functions in float64 (values and gradients, kinks included),
central differences and autograd away from the kinks, the adjoint identity for the jvp, summation-to-delta
for DeepLIFT, Captum's GuidedBackprop and DeepLift on the same weights.
"""
import contextlib
import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import xattr
from xattr import KINK_POLICY, RELU_GRAD_AT_ZERO
from xattr.nn import (
    GELU,
    Clamp,
    Conv2D,
    Dense,
    Flatten,
    GlobalAvgPool2D,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    LeakyReLU,
    PReLU,
    ReLU,
    ReLU6,
    Sequential,
    Sigmoid,
    SiLU,
    Softplus,
    Tanh,
)
from xattr.nn.activation import ACTIVATIONS, OTHER_UNITS, PIECEWISE_LINEAR_UNITS, RECTIFIERS
from xattr.nn.base import Cache
from xattr.testing.gradcheck import check_model_gradient

from autograd_twins import layer_function as ag_layer_function
from autograd_twins import vjp as ag_vjp
from extras import need  # noqa: E402  (tests/extras.py: optional packages of the test suite)

try:
    import torch
    F = torch.nn.functional
except ImportError:  # pragma: no cover - torch is the optional 'captum' extra
    torch = F = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is the oracle here: pip install 'xattr-ref[captum]'")

X = np.array([[1.0, -2.0, 0.0, 3.0, -1.0]])
R = np.array([[-0.5, 2.0, 4.0, 1.5, -3.0]])


def _rule(rule, x=X, r=R):
    layer = ReLU()
    _, cache = layer.forward(x)
    return layer.backward(r, cache, rule)


def test_gradient_rule_by_hand():
    # R · 1[X > 0]; at X = 0 the derivative is RELU_GRAD_AT_ZERO = 0
    assert RELU_GRAD_AT_ZERO == 0.0
    np.testing.assert_array_equal(_rule("gradient"), [[-0.5, 0.0, 0.0, 1.5, 0.0]])


def test_deconvnet_rule_by_hand():
    # max(R, 0), whatever X is
    np.testing.assert_array_equal(_rule("deconvnet"), [[0.0, 2.0, 4.0, 1.5, 0.0]])


def test_guided_rule_by_hand():
    # max(R, 0) · 1[X > 0]
    np.testing.assert_array_equal(_rule("guided"), [[0.0, 0.0, 0.0, 1.5, 0.0]])


def test_forward_and_derivative_at_the_kink():
    x = np.array([[-1.0, 0.0, 2.0]])
    np.testing.assert_array_equal(ReLU()(x), [[0.0, 0.0, 2.0]])
    np.testing.assert_array_equal(_rule("gradient", x, np.ones_like(x)), [[0.0, 0.0, 1.0]])


values = st.sampled_from([-2.0, -0.5, 0.0, 0.5, 3.0])


@given(arrays(np.float64, (2, 3, 4), elements=values), arrays(np.float64, (2, 3, 4), elements=values))
def test_guided_is_zero_wherever_gradient_or_deconvnet_is_zero(x, r):
    guided, grad, dec = (_rule(k, x, r) for k in ("guided", "gradient", "deconvnet"))
    assert np.all(guided[(grad == 0) | (dec == 0)] == 0)
    # and equals both where neither zeroes it
    both = (grad != 0) & (dec != 0)
    np.testing.assert_array_equal(guided[both], grad[both])
    np.testing.assert_array_equal(guided[both], dec[both])


@given(arrays(np.float64, (3, 5), elements=st.floats(-5, 5).filter(lambda v: abs(v) > 1e-3)))
def test_gradient_rule_matches_central_differences_away_from_zero(x):
    u = np.random.default_rng(0).normal(size=x.shape)
    g = _rule("gradient", x, u)
    h = 1e-5
    for v in np.random.default_rng(1).normal(size=(3,) + x.shape):
        fd = np.sum(u * (ReLU()(x + h * v) - ReLU()(x - h * v))) / (2 * h)
        assert np.isclose(fd, np.sum(g * v), rtol=1e-8, atol=1e-10)


def test_relu_preserves_float32_and_input():
    x = np.array([[-1.0, 2.0]], dtype=np.float32)
    y = ReLU()(x)
    assert y.dtype == np.float32 and x[0, 0] == -1.0


# == the other activations =========================================================================


def _prelu(c):
    layer = PReLU(c)
    layer.weight = np.linspace(-0.5, 0.75, c)
    return layer


#: one instance of each activation (several settings for the parametrised ones)
UNITS = {
    "relu6": ReLU6(), "hardtanh": Hardtanh(-0.5, 2.0), "clamp": Clamp(-1.0, 0.5), "clamp_min": Clamp(min=0.25),
    "clamp_max": Clamp(max=0.25), "leaky": LeakyReLU(0.1), "leaky_neg": LeakyReLU(-0.3), "prelu1": PReLU(),
    "prelu3": _prelu(3), "hardsigmoid": Hardsigmoid(), "sigmoid": Sigmoid(), "tanh": Tanh(), "silu": SiLU(),
    "hardswish": Hardswish(), "gelu": GELU(), "gelu_tanh": GELU("tanh"), "softplus": Softplus(),
    "softplus_b2": Softplus(beta=2.0, threshold=3.0),
}


def torch_function(layer):
    """The PyTorch function an activation reproduces, on the same settings."""
    t = type(layer)
    if t is ReLU6:
        return F.relu6
    if t is Hardtanh:
        return lambda x: F.hardtanh(x, layer.min_val, layer.max_val)
    if t is Clamp:
        return lambda x: torch.clamp(x, layer.min, layer.max)
    if t is LeakyReLU:
        return lambda x: F.leaky_relu(x, layer.negative_slope)
    if t is PReLU:
        return lambda x: F.prelu(x, torch.tensor(layer.weight))
    if t is GELU:
        return lambda x: F.gelu(x, approximate=layer.approximate)
    if t is Softplus:
        return lambda x: F.softplus(x, beta=layer.beta, threshold=layer.threshold)
    return {Hardsigmoid: F.hardsigmoid, Sigmoid: torch.sigmoid, Tanh: torch.tanh, SiLU: F.silu,
            Hardswish: F.hardswish}[t]


def _torch_value_and_grad(layer, x, u):
    xt = torch.tensor(x, requires_grad=True)
    y = torch_function(layer)(xt)
    (y * torch.tensor(u)).sum().backward()
    return y.detach().numpy(), xt.grad.numpy()


def _grid(layer, n=3):
    """(n, 3, len) inputs: the kinks exactly, and values around and between them (channels on axis 1)."""
    pts = [-7.0, -3.0, -1.5, -0.5, 0.0, 0.25, 0.5, 1.7, 3.0, 6.0, 7.5, 11.0]
    pts += list(layer.kinks()) + [c + d for c in layer.kinks() for d in (-1e-9, 1e-9)]
    v = np.array(pts)
    return np.stack([np.stack([v * s for s in (1.0, 0.7, -1.3)]) for _ in range(n)])


@needs_torch
@pytest.mark.parametrize("name", sorted(UNITS))
def test_value_and_gradient_equal_torch_float64_including_the_kinks(name):
    """Forward and gradient against PyTorch's functions in float64, at their kinks too (``KINK_POLICY``)."""
    assert KINK_POLICY == "outer"
    layer = UNITS[name]
    x = _grid(layer)
    u = np.random.default_rng(0).normal(size=x.shape)
    y, cache = layer.forward(x)
    ty, tg = _torch_value_and_grad(layer, x, u)
    np.testing.assert_allclose(y, ty, rtol=1e-15, atol=1e-15)
    # PyTorch's hardsigmoid backward multiplies by 1/6 rounded to float32 even in float64 (3e-8 relative)
    rtol = 5e-8 if type(layer) is Hardsigmoid else 1e-14
    np.testing.assert_allclose(layer.backward(u, cache), tg, rtol=rtol, atol=1e-14)  # g ~ 1: round-off of 1 + tanh


def test_kinks_by_hand():
    """The derivative at each kink, as ``KINK_POLICY`` states (and PyTorch computes: previous test)."""
    def d(layer, v):
        _, cache = layer.forward(np.array([[v]]))
        return layer.backward(np.ones((1, 1)), cache).item()

    assert d(ReLU6(), 0.0) == 0.0 and d(ReLU6(), 6.0) == 0.0 and d(ReLU6(), 3.0) == 1.0
    assert d(Hardtanh(-1, 1), -1.0) == 0.0 and d(Hardtanh(-1, 1), 1.0) == 0.0
    assert d(Clamp(min=0.0), 0.0) == 0.0 and d(Clamp(max=2.0), 2.0) == 0.0
    assert d(LeakyReLU(0.2), 0.0) == 0.2 and d(PReLU(init=0.3), 0.0) == 0.3
    assert d(Hardsigmoid(), -3.0) == 0.0 and d(Hardsigmoid(), 3.0) == 0.0
    assert d(Hardswish(), -3.0) == 0.0 and d(Hardswish(), 3.0) == 1.0 and d(Hardswish(), 0.0) == 0.5
    sp = Softplus(beta=2.0, threshold=4.0)  # identity where βx > threshold, strictly
    assert d(sp, 2.0) == pytest.approx(1 / (1 + math.exp(-4.0)), rel=1e-15) and d(sp, 2.0 + 1e-12) == 1.0


def _away_from_kinks(layer, x, gap=1e-3):
    for c in layer.kinks():
        x = np.where(np.abs(x - c) < gap, c + gap * np.sign(x - c + 0.5 * gap), x)
    if type(layer) is Softplus:  # its switch to the identity is a jump of ~e^-threshold / β
        c = layer.threshold / layer.beta
        x = np.where(np.abs(x - c) < gap, c + 2 * gap, x)
    return x


@st.composite
def activation_cases(draw):
    kind = draw(st.sampled_from(["relu6", "hardtanh", "clamp", "leaky", "prelu", "hardsigmoid", "sigmoid", "tanh",
                                 "silu", "hardswish", "gelu", "softplus"]))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 3)))
    lo = draw(st.floats(-3, 2))
    if kind == "relu6":
        layer = ReLU6()
    elif kind == "hardtanh":
        layer = Hardtanh(lo, lo + draw(st.floats(0.1, 4)))
    elif kind == "clamp":
        layer = Clamp(*draw(st.sampled_from([(lo, None), (None, lo), (lo, lo + 1.0)])))
    elif kind == "leaky":
        layer = LeakyReLU(draw(st.floats(-2, 2)))
    elif kind == "prelu":
        layer = PReLU(draw(st.sampled_from([1, shape[1]])))
        layer.weight = draw(arrays(np.float64, layer.weight.shape, elements=st.floats(-2, 2)))
    elif kind == "gelu":
        layer = GELU(draw(st.sampled_from(["none", "tanh"])))
    elif kind == "softplus":
        layer = Softplus(draw(st.floats(0.25, 4)), draw(st.floats(1, 20)))
    else:
        layer = UNITS[kind]
    x = draw(arrays(np.float64, shape, elements=st.one_of(st.sampled_from([0.0, 1.0, -1.0, 6.0, 3.0, -3.0]),
                                                          st.floats(-8, 8))))
    return layer, x


@given(activation_cases())
def test_gradient_equals_central_differences_and_autograd_away_from_kinks(case):
    layer, x = case
    x = _away_from_kinks(layer, x)
    check_model_gradient(Sequential(layer), x, eps=1e-6, rtol=1e-6, atol=1e-9, rng=1)
    u = np.random.default_rng(2).normal(size=x.shape)
    y, cache = layer.forward(x)
    np.testing.assert_allclose(layer.backward(u, cache), ag_vjp(ag_layer_function(layer), x, u), rtol=1e-12, atol=1e-14)


@given(activation_cases())
def test_jvp_is_the_adjoint_of_the_gradient_rule_on_piecewise_linear_units(case):
    layer, x = case
    y, cache = layer.forward(x)
    rng = np.random.default_rng(3)
    dx, u = rng.normal(size=x.shape), rng.normal(size=y.shape)
    if type(layer) not in PIECEWISE_LINEAR_UNITS:
        with pytest.raises(xattr.nn.RuleNotDefined, match="no forward-mode derivative"):
            layer.jvp(dx, cache)
        return
    assert np.isclose(np.sum(layer.jvp(dx, cache) * u), np.sum(dx * layer.backward(u, cache)), rtol=1e-13, atol=1e-13)


def test_piecewise_linear_flags_are_truthful():
    assert set(PIECEWISE_LINEAR_UNITS) == {Hardtanh, ReLU6, Clamp, LeakyReLU, PReLU, Hardsigmoid}
    for t in (Sigmoid, Tanh, SiLU, Hardswish, GELU, Softplus):
        assert t.piecewise_linear is False
    # a piecewise-linear unit is affine between its kinks: second differences vanish there
    for layer in (ReLU6(), Hardtanh(-1, 2), Clamp(min=0.5), LeakyReLU(0.3), PReLU(), Hardsigmoid()):
        x = np.linspace(-10, 10, 2001)[None]
        y = layer(x)
        second = y[0, 2:] - 2 * y[0, 1:-1] + y[0, :-2]
        near = np.any([np.abs(x[0, 1:-1] - c) < 0.011 for c in layer.kinks()], axis=0)
        assert np.abs(second[~near]).max() < 1e-12
    # Hardswish is piecewise quadratic: its second difference is 2h²/6 inside (-3, 3)
    x = np.linspace(-2, 2, 401)[None]
    second = np.diff(Hardswish()(x)[0], 2)
    np.testing.assert_allclose(second, 2 * 0.01**2 / 6, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(UNITS))
def test_deconvnet_and_guided_at_rectifiers_and_other_units(name):
    layer = UNITS[name]
    x = _grid(layer)
    r = np.random.default_rng(4).normal(size=x.shape)
    y, cache = layer.forward(x)
    grad = layer.backward(r, cache, "gradient")
    dec, gui = layer.backward(r, cache, "deconvnet"), layer.backward(r, cache, "guided")
    if type(layer) in RECTIFIERS:
        np.testing.assert_array_equal(dec, np.maximum(r, 0))  # DeconvNet: the signal rectified, whatever X
        np.testing.assert_array_equal(gui, np.where(r > 0, grad, 0.0))  # guided: backprop where R > 0
    else:
        assert type(layer) in OTHER_UNITS
        np.testing.assert_array_equal(dec, grad)
        np.testing.assert_array_equal(gui, grad)


def test_guided_and_deconvnet_at_relu6_and_hardtanh_by_hand():
    x = np.array([[-1.0, 0.0, 3.0, 6.0, 7.0, 3.0]])
    r = np.array([[2.0, 2.0, 2.0, 2.0, 2.0, -2.0]])
    _, cache = ReLU6().forward(x)
    np.testing.assert_array_equal(ReLU6().backward(r, cache, "guided"), [[0, 0, 2, 0, 0, 0]])
    np.testing.assert_array_equal(ReLU6().backward(r, cache, "deconvnet"), [[2, 2, 2, 2, 2, 0]])
    np.testing.assert_array_equal(ReLU6().backward(r, cache, "gradient"), [[0, 0, 2, 0, 0, -2]])
    layer = LeakyReLU(0.1)
    _, cache = layer.forward(x)
    np.testing.assert_allclose(layer.backward(r, cache, "guided"), [[0.2, 0.2, 2, 2, 2, 0]])


@needs_torch
def test_captum_guided_backprop_treats_relu6_as_a_plain_gradient():
    """Captum's GuidedBackprop hooks only ``nn.ReLU``: a ReLU6 passes the plain gradient.  xattr's ``guided``
    rectifies at the ReLU6 too; the composite "guided at ReLU, gradient elsewhere" reproduces Captum."""
    captum_attr = need("captum.attr")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.ReLU6(), torch.nn.Conv2d(4, 3, 3), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(3 * 3 * 3, 4),
    ).double().eval()
    ours = Sequential(Conv2D(2, 4, 3, padding=1), ReLU6(), Conv2D(4, 3, 3), ReLU(), Flatten(), Dense(27, 4))
    for k in (0, 2, 5):
        ours[k].weight = net[k].weight.detach().numpy()
        ours[k].bias = net[k].bias.detach().numpy()
    x = 2 * np.random.default_rng(5).normal(size=(2, 2, 5, 5))  # ReLU6 inputs above 6 and below 0
    target = 1
    with _nowarn():
        theirs = captum_attr.GuidedBackprop(net).attribute(torch.tensor(x), target=target).detach().numpy()
    seed = np.zeros((2, 4))
    seed[:, target] = 1
    captum_like = ours.vjp(x, seed, lambda i, layer: ("guided" if type(layer) is ReLU else "gradient", {}))
    np.testing.assert_allclose(captum_like, theirs, rtol=1e-12, atol=1e-12 * np.abs(theirs).max())
    guided = ours.vjp(x, seed, "guided")
    assert np.abs(guided - theirs).max() > 1e-3 * np.abs(theirs).max()  # xattr's guided rule differs at ReLU6


@contextlib.contextmanager
def _nowarn():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _deeplift_case(layer, seed=0):
    rng = np.random.default_rng(seed)
    x = _grid(layer, n=2) + rng.normal(scale=0.01, size=(2, 3, 1))
    x0 = rng.normal(scale=2.0, size=x.shape)
    x0[:, :, :3] = x[:, :, :3]  # Δx = 0 exactly: the limit, f'(X)
    y, cache = layer.forward(x)
    y0, rcache = layer.forward(x0)
    return x, x0, y, y0, cache, rcache


@pytest.mark.parametrize("name", sorted(UNITS))
def test_rescale_is_the_secant_slope_and_sums_to_delta(name):
    layer = UNITS[name]
    x, x0, y, y0, cache, rcache = _deeplift_case(layer)
    g = np.random.default_rng(6).normal(size=y.shape)
    m = layer.backward(g, cache, "rescale", inp=Cache(x=x, y=y), ref=Cache(x=x0, y=y0))
    np.testing.assert_allclose(m * (x - x0), g * (y - y0), rtol=1e-10, atol=1e-12)  # summation-to-delta per unit
    still = x == x0
    np.testing.assert_array_equal(m[still], (g * layer.df(x))[still])  # the limit where Δx = 0
    monotone = name not in ("silu", "hardswish", "gelu", "gelu_tanh", "leaky_neg", "prelu3")
    if monotone:  # mean value theorem: the secant slope lies within the unit's slopes
        slope = m[~still] / g[~still]
        assert slope.min() >= -1e-12 and slope.max() <= 1 + 1e-12


def test_rescale_at_a_non_monotone_unit_can_oppose_the_local_gradient():
    """SiLU from x₀ = −6 to x = −0.5: Δy/Δx = −0.0316 while f'(−0.5) = +0.260 (the module docstring's example)."""
    layer = SiLU()
    x, x0 = np.array([[-0.5]]), np.array([[-6.0]])
    y, cache = layer.forward(x)
    m = layer.backward(np.ones((1, 1)), cache, "rescale", inp=Cache(x=x, y=y), ref=Cache(x=x0, y=layer(x0)))
    assert m.item() == pytest.approx(-0.0316245, abs=1e-7) and layer.df(x).item() == pytest.approx(0.2600388, abs=1e-7)


@pytest.mark.parametrize("name", sorted(UNITS))
def test_revealcancel_conserves_and_equals_the_relu_rule_on_a_relu(name):
    layer = UNITS[name]
    x, x0, y, y0, cache, rcache = _deeplift_case(layer, seed=1)
    rng = np.random.default_rng(7)
    dp = np.abs(rng.normal(size=x.shape)) * (rng.random(x.shape) < 0.8)
    dn = (x - x0) - dp  # Δx⁺ + Δx⁻ = Δx
    g = rng.normal(size=y.shape)
    opts = dict(inp=Cache(x=x, y=y), ref=Cache(x=x0, y=y0), split=(dp, dn))
    mp, mn = layer.backward(g, cache, "revealcancel", **opts)
    np.testing.assert_allclose(mp * dp + mn * dn, g * (y - y0), rtol=1e-9, atol=1e-11)
    # Clamp(min=0) is the ReLU: the generic rule equals the ReLU's own
    relu, clamp = ReLU(), Clamp(min=0.0)
    rx, rc = relu.forward(x)
    cx, cc = clamp.forward(x)
    a = relu.backward(g, rc, "revealcancel", inp=Cache(x=x, y=rx), ref=Cache(x=x0, y=relu(x0)), split=(dp, dn))
    b = clamp.backward(g, cc, "revealcancel", inp=Cache(x=x, y=cx), ref=Cache(x=x0, y=clamp(x0)), split=(dp, dn))
    np.testing.assert_allclose(a[0], b[0], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", sorted(UNITS))
def test_lrp_passes_relevance_unchanged(name):
    layer = UNITS[name]
    x = _grid(layer)
    y, cache = layer.forward(x)
    r = np.random.default_rng(8).normal(size=y.shape)
    for rule in ("lrp0", "lrp_epsilon", "lrp_zplus", "lrp_w2"):
        np.testing.assert_array_equal(layer.backward(r, cache, rule), r)


@needs_torch
@pytest.mark.parametrize("unit", [LeakyReLU(0.2), Sigmoid(), Softplus(), Tanh()])
def test_deeplift_equals_captum_on_the_units_captum_supports(unit):
    """Captum's DeepLift applies its Rescale rule to nn.LeakyReLU, Sigmoid, Tanh, Softplus (SUPPORTED_NON_LINEAR)."""
    captum_attr = need("captum.attr")
    torch.manual_seed(1)
    tunit = {LeakyReLU: lambda: torch.nn.LeakyReLU(0.2), Sigmoid: torch.nn.Sigmoid, Softplus: torch.nn.Softplus,
             Tanh: torch.nn.Tanh}[type(unit)]()
    net = torch.nn.Sequential(torch.nn.Linear(6, 5), tunit, torch.nn.Linear(5, 3)).double().eval()
    ours = Sequential(Dense(6, 5), unit, Dense(5, 3))
    for k in (0, 2):
        ours[k].weight = net[k].weight.detach().numpy()
        ours[k].bias = net[k].bias.detach().numpy()
    rng = np.random.default_rng(9)
    x, x0 = rng.normal(size=(3, 6)), rng.normal(size=(3, 6))
    with _nowarn():
        theirs = captum_attr.DeepLift(net).attribute(torch.tensor(x), baselines=torch.tensor(x0), target=2)
    attr, delta = xattr.deeplift(ours, x, 2, reference=x0, return_delta=True)
    np.testing.assert_allclose(attr, theirs.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert np.abs(delta).max() < 1e-12


@pytest.mark.parametrize("unit", [LeakyReLU(0.1), Sigmoid(), SiLU(), ReLU6(), GELU()])
def test_deeplift_revealcancel_runs_through_every_unit_and_sums_to_delta(unit):
    model = Sequential(Dense(6, 5, rng=0), unit, Dense(5, 3, rng=1))
    model[0].bias = np.linspace(-0.5, 0.5, 5)
    rng = np.random.default_rng(10)
    x, x0 = rng.normal(size=(3, 6)), rng.normal(size=(3, 6))
    _, delta = xattr.deeplift(model, x, 1, reference=x0, rule="revealcancel", return_delta=True)
    assert np.abs(delta).max() < 1e-12


@needs_torch
def test_prelu_parameter_gradients_equal_torch_and_central_differences():
    layer = _prelu(3)
    x = np.random.default_rng(11).normal(size=(2, 3, 4, 2))
    x[0, 0, 0, 0] = 0.0
    u = np.random.default_rng(12).normal(size=x.shape)
    y, cache = layer.forward(x)
    dw = layer.param_grads(u, cache)["weight"]
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(layer.weight, requires_grad=True)
    (F.prelu(xt, wt) * torch.tensor(u)).sum().backward()
    np.testing.assert_allclose(dw, wt.grad.numpy(), rtol=1e-13)
    h, v = 1e-6, np.array([0.3, -1.0, 0.5])
    plus, minus = _prelu(3), _prelu(3)
    plus.weight, minus.weight = layer.weight + h * v, layer.weight - h * v
    assert np.isclose(np.sum(u * (plus(x) - minus(x))) / (2 * h), dw @ v, rtol=1e-8)
    one = PReLU()
    _, c1 = one.forward(x)
    np.testing.assert_allclose(one.param_grads(u, c1)["weight"], [np.sum(u * np.minimum(x, 0))], rtol=1e-13)


def test_exact_ig_runs_through_piecewise_linear_units_and_refuses_smooth_ones_by_name():
    def model(unit):
        m = Sequential(Conv2D(2, 3, 3, padding=1, rng=0), unit, Conv2D(3, 3, 3, rng=1), LeakyReLU(0.2),
                       GlobalAvgPool2D(), Dense(3, 2, rng=2))
        m[0].bias, m[2].bias = np.array([0.3, -0.2, 0.1]), np.array([-0.1, 0.2, 0.05])  # not homogeneous
        return m

    x = np.random.default_rng(13).normal(size=(2, 2, 5, 5)) * 3
    for unit in (ReLU6(), Hardtanh(-0.3, 0.4), Clamp(max=0.1), PReLU(), Hardsigmoid()):
        m = model(unit)
        res = xattr.exact_integrated_gradients(m, x, 1)
        # completeness to round-off holds only if every piece is affine, i.e. every kink was cut
        assert np.abs(res.delta).max() < 1e-10
        assert res.segments.min() > 1
        dense = xattr.integrated_gradients(m, x, 1, steps=4000, quadrature="riemann_middle")  # O(1/steps) away
        np.testing.assert_allclose(res.attributions, dense, atol=2e-3 * np.abs(dense).max())
    with pytest.raises(ValueError, match="Sigmoid 'sigmoid1' is not one"):
        xattr.exact_integrated_gradients(model(Sigmoid()), x, 1)


@pytest.mark.parametrize("make, match", [
    (lambda: Hardtanh(1, 1), "min_val < max_val"), (lambda: Clamp(), "at least one"),
    (lambda: Clamp(2, 1), "min <= max"), (lambda: LeakyReLU(float("nan")), "finite"),
    (lambda: LeakyReLU("a"), "real number"), (lambda: PReLU(0), "num_parameters"),
    (lambda: Softplus(beta=0), "beta > 0"), (lambda: GELU("erf"), "approximate"),
])
def test_bad_settings_are_refused_clearly(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_prelu_refuses_a_channel_mismatch_and_every_unit_keeps_float32_and_the_input():
    with pytest.raises(ValueError, match="3 channels on axis 1"):
        _prelu(3).forward(np.zeros((1, 2, 4)))
    x = np.linspace(-4, 4, 24, dtype=np.float32).reshape(2, 3, 4)
    x0 = x.copy()
    for layer in UNITS.values():
        y, cache = layer.forward(x)
        assert y.dtype == np.float32 and layer.backward(np.ones_like(y), cache).dtype == np.float32
    np.testing.assert_array_equal(x, x0)
    assert set(ACTIVATIONS) == {type(v) for v in UNITS.values()}


@needs_torch
def test_lrp_pass_through_equals_zennits_pass_rule():
    """Zennit's composites give every ``Activation`` module (ReLU6, LeakyReLU, PReLU, Hardswish, SiLU, GELU, ...)
    its ``Pass`` rule: relevance through unchanged, as xattr's LRP cells of the activations."""
    zennit = need("zennit", reason="Zennit is an optional extra: pip install 'xattr-ref[zennit]'")
    from zennit.attribution import Gradient
    from zennit.composites import LayerMapComposite
    from zennit.rules import Epsilon, Pass
    from zennit.types import Activation, Convolution, Linear

    nn = torch.nn
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.LeakyReLU(0.1), nn.Conv2d(4, 4, 3, groups=2), nn.Hardswish(),
                        nn.Conv2d(4, 3, 3), nn.PReLU(3), nn.Flatten(), nn.Linear(3 * 2 * 2, 5), nn.SiLU(),
                        nn.Linear(5, 4)).double().eval()
    ours = Sequential(Conv2D(2, 4, 3, padding=1), LeakyReLU(0.1), Conv2D(4, 4, 3, groups=2), Hardswish(),
                      Conv2D(4, 3, 3), PReLU(3), Flatten(), Dense(12, 5), SiLU(), Dense(5, 4))
    for k in (0, 2, 4, 7, 9):
        ours[k].weight, ours[k].bias = net[k].weight.detach().numpy(), net[k].bias.detach().numpy()
    ours[5].weight = net[5].weight.detach().numpy()
    x = np.random.default_rng(14).normal(size=(2, 2, 6, 6))
    target = np.array([1, 3])
    comp = LayerMapComposite(layer_map=[(Activation, Pass()), (Convolution, Epsilon(0.1)), (Linear, Epsilon(0.1))])
    xt = torch.tensor(x, requires_grad=True)
    with _nowarn(), Gradient(model=net, composite=comp) as attributor:
        _, theirs = attributor(xt, torch.eye(4, dtype=torch.float64)[torch.tensor(target)])
    mine = xattr.lrp(ours, x, target, "epsilon", epsilon=0.1, output="one")
    np.testing.assert_allclose(mine, theirs.detach().numpy(), rtol=1e-10, atol=1e-12 * np.abs(mine).max())
    assert zennit is not None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_is_np_where_bit_for_bit(dtype):
    """max(x, 0) + 0 is np.where's output bit for bit (signed zeros, denormals, both signs); g · 1[x > 0] its value
    (a masked negative g gives -0.0 there, which compares equal to np.where's +0.0)."""
    tiny = np.finfo(dtype).smallest_subnormal
    x = np.array([-0.0, 0.0, -1.0, 2.0, -tiny, tiny, -3.5, 7.25] * 3, dtype=dtype).reshape(1, 2, 3, 4)
    g = np.array([1.0, -1.0, -0.0, 0.0, 2.0, -2.0, -0.0, 5.0] * 3, dtype=dtype).reshape(x.shape)
    layer = ReLU()
    y, cache = layer.forward(x)
    udt = np.uint32 if dtype == np.float32 else np.uint64
    assert y.dtype == dtype and np.array_equal(y.view(udt), np.where(x > 0, x, dtype(0)).view(udt))
    gx = layer.backward(g, cache, "gradient")
    assert gx.dtype == dtype and np.array_equal(gx, np.where(x > 0, g, dtype(0)))
