"""The lesson notebooks' measurements (xattr/evaluation/lessons.py) against independent oracles, and their claims.

The notebooks call the same functions and ``check_*`` claims (tests/test_notebooks.py runs them on small crops,
the docs build at full size); here each measurement meets an oracle that does not use it (closed forms on linear
and hand-built models, enumeration, a second library function), and each claim is shown to fail on a model where
the effect is absent, so no check passes by construction.
"""
import itertools

import numpy as np
import pytest

import xattr
from xattr.evaluation import lessons as L
from xattr.nn import Dense, Flatten, Sequential


def linear(shape, k=3, seed=0):
    m = Sequential(Flatten(), Dense(int(np.prod(shape)), k, rng=seed))
    m[1].bias = np.linspace(-0.5, 0.5, k)
    return m


# -- 10: saturation ------------------------------------------------------------------------------------------
def test_counterfactual_curve_is_the_closed_form_on_a_linear_model():
    rng = np.random.default_rng(0)
    x, b = rng.normal(size=(1, 2, 3, 3)), rng.normal(size=(1, 2, 3, 3))
    m = linear(x.shape[1:])
    a = np.linspace(0, 1, 7)
    c = L.counterfactual_curve(m, x, 1, baseline=b, alphas=a, batch_size=3)
    w, bias = m[1].weight[1], m[1].bias[1]
    want = np.array([w @ (b + t * (x - b)).ravel() + bias for t in a])
    np.testing.assert_allclose(c.scores, want, rtol=1e-12)
    np.testing.assert_allclose(c.gradient_norm, np.linalg.norm(w), rtol=1e-12)  # constant: no saturation
    assert c.rise_by(0.5) == pytest.approx(0.5)
    with pytest.raises(L.LessonClaimFailed, match="rise"):
        L.check_saturation(c)  # a linear score rises evenly: the claim fails


def test_saturation_claim_holds_on_a_clamped_score():
    x = np.ones((1, 1, 8, 8))
    c = L.counterfactual_curve(L.or_model(8), x, 0, alphas=np.linspace(0, 1, 11))
    # F(α) = min(2α, 1): half the rise by α = 0.25, all of it by 0.5, and the gradient is 0 from there on
    np.testing.assert_allclose(c.scores, np.minimum(2 * c.alphas, 1.0), atol=1e-12)
    assert c.rise_by(0.3) == pytest.approx(0.6)
    share, frac = L.check_saturation(L.Curve(c.alphas, c.scores, c.gradient_norm))
    assert share > 0.5 and frac == 0.0


def test_counterfactual_curve_refuses_bad_input():
    m = linear((1, 2, 2))
    with pytest.raises(ValueError, match="one image"):
        L.counterfactual_curve(m, np.zeros((2, 1, 2, 2)), 0)
    with pytest.raises(ValueError, match="increasing"):
        L.counterfactual_curve(m, np.zeros((1, 1, 2, 2)), 0, alphas=[0.5, 0.2])


def test_completeness_on_a_linear_model_and_on_the_or():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 2, 3, 3))
    m = linear(x.shape[1:])
    c = L.completeness(m, x, 2, baseline=0.5, nodes=8)
    want = m[1].weight[2] @ (x - 0.5).ravel()
    assert c.delta_f == pytest.approx(want, rel=1e-12)
    assert c.gradient_x_delta == pytest.approx(want, rel=1e-12) and c.gradient_share == pytest.approx(1.0)
    assert abs(c.ig_gap) < 1e-12 and c.attributions.shape == x.shape
    with pytest.raises(L.LessonClaimFailed, match="gradient"):
        L.check_completeness(c)  # on a linear model the gradient misses nothing
    # the OR, both halves lit: ΔF = 1, the gradient at the image is 0, IG gets all of it (Gauss-Legendre nodes
    # avoid the kink at α = 1/2, and each piece's integrand is constant)
    o = L.completeness(L.or_model(8), np.ones((1, 1, 8, 8)), 0, nodes=16)
    assert o.delta_f == pytest.approx(1.0) and o.gradient_x_delta == 0.0
    assert abs(o.ig_gap) < 1e-12
    gap, miss = L.check_completeness(o)
    assert miss == pytest.approx(1.0)
    # the composite rule equals integrated_gradients with one rule over the whole path where both are exact
    ig = xattr.integrated_gradients(m, x, 2, baseline=0.5, steps=4)
    np.testing.assert_allclose(c.attributions, ig, rtol=1e-10, atol=1e-12)


# -- 10: the OR ------------------------------------------------------------------------------------------------
def test_or_model_is_min_of_the_half_means_and_one():
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(20, 1, 6, 6)) * rng.uniform(size=(20, 1, 1, 1))
    s = x[:, 0, :, :3].mean((1, 2)) + x[:, 0, :, 3:].mean((1, 2))
    out = L.or_model(6)(x)
    np.testing.assert_allclose(out[:, 0], np.minimum(s, 1.0), atol=1e-12)
    np.testing.assert_allclose(out[:, 1], -np.minimum(s, 1.0), atol=1e-12)
    with pytest.raises(ValueError, match="even"):
        L.or_model(5)


def _shapley_by_orders(v):
    """Shapley values of a 2-player game ``v(frozenset)`` by averaging over both arrival orders."""
    phi = np.zeros(2)
    for order in itertools.permutations(range(2)):
        seen = frozenset()
        for p in order:
            phi[p] += v(seen | {p}) - v(seen)
            seen = seen | {p}
    return phi / 2


def test_or_game_against_enumeration_and_its_claims():
    game = L.or_game(8)
    model = L.or_model(8)
    x, names = L.or_images(8)
    for i in range(3):
        def v(S, i=i):
            z = x[i:i + 1].copy()
            if 0 not in S:
                z[..., :4] = 0
            if 1 not in S:
                z[..., 4:] = 0
            return model(z)[0, 0]

        np.testing.assert_allclose(game.shapley[i], _shapley_by_orders(v), atol=1e-12)
        occ = [v({0, 1}) - v({1}), v({0, 1}) - v({0})]  # the drop when one half is hidden
        np.testing.assert_allclose(game.occlusion[i], occ, atol=1e-12)
    L.check_or_game(game)
    broken = L.OrGame(**{**game.__dict__, "occlusion": game.occlusion + np.array([[0.5, 0], [0, 0], [0, 0]])})
    with pytest.raises(L.LessonClaimFailed, match="occlusion"):
        L.check_or_game(broken)
