"""Sequential, the rule registry and its rendered table."""

import numpy as np
import pytest
from hypothesis import given

import xattr
from xattr.nn import (
    CORE_RULES,
    AvgPool2D,
    Conv2D,
    Dense,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    ReLU,
    RuleNotDefined,
    Sequential,
    rule_table,
)

from autograd_twins import model_function
from autograd_twins import vjp as ag_vjp
from nets import networks


def _small():
    return Sequential(
        Conv2D(2, 3, 3, padding=1, rng=0),
        ReLU(),
        MaxPool2D(2),
        ("head_conv", Conv2D(3, 4, 3, rng=1)),
        ReLU(),
        GlobalAvgPool2D(),
        Dense(4, 5, rng=2),
    )


def test_names_and_indexing():
    m = _small()
    assert m.names == ["conv1", "relu1", "maxpool1", "head_conv", "relu2", "gap1", "dense1"]
    assert m["head_conv"] is m[3] is m[-4]
    assert m.index(m[1]) == 1
    with pytest.raises(KeyError, match="no layer named 'conv9'.*conv1"):
        m["conv9"]
    with pytest.raises(IndexError, match="out of range"):
        m[7]
    with pytest.raises(ValueError, match="duplicate layer name"):
        Sequential(("a", ReLU()), ("a", ReLU()))
    with pytest.raises(TypeError, match="Layer"):
        Sequential(np.zeros(3))


def test_scores_shape_and_activations():
    m = _small()
    x = np.random.default_rng(0).normal(size=(3, 2, 8, 8))
    assert m(x).shape == (3, 5)
    assert m.activations(x, "head_conv").shape == (3, 4, 2, 2)


@given(networks())
def test_network_gradient_equals_autograd(case):
    model, x = case
    scores = model(x)
    u = np.random.default_rng(0).normal(size=scores.shape)
    np.testing.assert_allclose(model.vjp(x, u), ag_vjp(model_function(model), x, u), rtol=1e-9, atol=1e-12)


@given(networks(relu=False))
def test_without_relus_all_three_rules_give_the_same_map(case):
    model, x = case
    u = np.random.default_rng(0).normal(size=model(x).shape)
    ref = model.vjp(x, u, "gradient")
    for rule in ("deconvnet", "guided"):
        np.testing.assert_array_equal(model.vjp(x, u, rule), ref)


@given(networks(relu=False, max_pool=False))
def test_linear_network_passes_the_exact_adjoint_identity(case):
    model, x = case
    for layer in model:
        if getattr(layer, "bias", None) is not None:
            layer.bias = np.zeros_like(layer.bias)
    y = model(x)
    u = np.random.default_rng(1).normal(size=y.shape)
    lhs, rhs = np.sum(y * u), np.sum(x * model.vjp(x, u))
    assert np.isclose(lhs, rhs, rtol=1e-11, atol=1e-12)


def test_parameter_gradients_match_central_differences():
    m = _small()
    rng = np.random.default_rng(4)
    for layer in m:
        if isinstance(layer, (Conv2D, Dense)):
            layer.bias = rng.normal(scale=0.1, size=layer.bias.shape)
    x = rng.normal(size=(2, 2, 8, 8))
    u = rng.normal(size=(2, 5))
    gx, grads = m.param_grads(x, u)
    np.testing.assert_allclose(gx, m.vjp(x, u))
    assert set(grads) == {"conv1", "head_conv", "dense1"}
    h = 1e-6
    for name, pg in grads.items():
        layer = m[name]
        for p, g in pg.items():
            v = rng.normal(size=g.shape)
            base = getattr(layer, p).copy()
            setattr(layer, p, base + h * v)
            plus = np.sum(u * m(x))
            setattr(layer, p, base - h * v)
            minus = np.sum(u * m(x))
            setattr(layer, p, base)
            assert np.isclose((plus - minus) / (2 * h), np.sum(g * v), rtol=1e-6, atol=1e-9), (name, p)


def test_missing_rule_names_the_layer_and_the_rule():
    m = _small()
    x = np.zeros((1, 2, 8, 8))
    with pytest.raises(
        RuleNotDefined, match=r"Dense 'dense1' has no backward rule 'nonsense'; its rules are: .*gradient"
    ):
        m.vjp(x, np.ones((1, 5)), "nonsense")


def test_vjp_checks_the_signal_shape():
    with pytest.raises(ValueError, match=r"scores' shape \(1, 5\)"):
        _small().vjp(np.zeros((1, 2, 8, 8)), np.ones((1, 4)))


def test_rule_table_has_every_layer_and_core_rule():
    table = rule_table(fmt="dict")
    for layer in (Conv2D, ReLU, MaxPool2D, AvgPool2D, GlobalAvgPool2D, Flatten, Dense):
        for rule in CORE_RULES:
            assert table[layer.__name__][rule] is not None, (layer, rule)
    assert "`max(R, 0) · 1[X > 0]`" in table["ReLU"]["guided"]
    md = rule_table()
    assert md.splitlines()[0].startswith("| layer | gradient | deconvnet | guided")
    with pytest.raises(ValueError, match="fmt"):
        rule_table(fmt="html")


def test_toplevel_exports():
    assert xattr.rule_table is rule_table
    assert "guided_backprop" in xattr.available_methods()
