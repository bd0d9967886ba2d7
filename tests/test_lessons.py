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


# -- 08: input shift ---------------------------------------------------------------------------------------
def _conv_net(seed=0):
    from xattr.nn import Conv2D, GlobalAvgPool2D, ReLU

    gen = np.random.default_rng(seed)
    return Sequential(Conv2D(3, 4, 3, padding=1, rng=gen), ReLU(), GlobalAvgPool2D(), Dense(4, 3, rng=gen))


def test_input_shift_changes_gradient_x_input_by_the_gradient_times_the_shift():
    m = _conv_net()
    x = np.random.default_rng(3).normal(size=(2, 3, 6, 6))
    c = 0.75

    def ig(model, x, target, baseline=0.0):
        return xattr.integrated_gradients(model, x, target, baseline=baseline, steps=8)

    r = L.input_shift(m, x, 1, c, {"gradient": (xattr.gradient, None, False),
                                   "gxi": (xattr.gradient_x_input, None, False),
                                   "ig0": (ig, "baseline", False), "ig_moved": (ig, "baseline", True)})
    assert r.model_change < 1e-12
    # oracle: A'(x + c) − A(x) = ∂f/∂x · c for gradient × input, as a closed form
    g = xattr.gradient(m, x, 1)
    want = (np.linalg.norm((g * c).reshape(2, -1), axis=1) / np.linalg.norm((g * x).reshape(2, -1), axis=1)).max()
    assert r.change["gxi"] == pytest.approx(want, rel=1e-9)
    L.check_input_shift(r, invariant=["gradient", "ig_moved"], variant=["gxi", "ig0"])
    with pytest.raises(L.LessonClaimFailed, match="gxi changed"):
        L.check_input_shift(r, invariant=["gradient", "gxi"], variant=[])
    with pytest.raises(L.LessonClaimFailed, match="ig_moved"):
        L.check_input_shift(r, invariant=[], variant=["ig_moved"])


# -- 08: mode collapse ---------------------------------------------------------------------------------------
def test_class_similarity_closed_form_on_a_linear_model():
    x = np.random.default_rng(4).normal(size=(1, 1, 12, 12))
    m = linear(x.shape[1:], k=3)
    w = m[1].weight
    w[1] = 2.0 * w[0]          # class 1's gradient: class 0's, scaled
    w[2] = -w[0]               # class 2's: negated
    c = L.class_similarity(xattr.gradient, m, x, [0, 1, 2])
    np.testing.assert_allclose(c.spearman, [[1, 1, -1], [1, 1, -1], [-1, -1, 1]], atol=1e-12)
    np.testing.assert_allclose(c.spearman_abs, 1.0, atol=1e-12)
    assert c.ssim[0, 2] == pytest.approx(1.0) and c.mean("spearman") == pytest.approx(-1 / 3)
    L.check_mode_collapse(L.ClassSimilarity([0, 1], *(np.ones((2, 2)),) * 3),
                          L.ClassSimilarity([0, 1], *(np.eye(2),) * 3))
    with pytest.raises(L.LessonClaimFailed, match="guided"):
        L.check_mode_collapse(c, c)  # mean -1/3: no collapse
    with pytest.raises(ValueError, match="at least two"):
        L.class_similarity(xattr.gradient, m, x, [0])


def test_guided_backprop_collapses_on_the_shipped_shapes_model_more_than_the_gradient():
    m = xattr.models.load("shapes")
    x = xattr.data.make_shapes(1, rng=5).images
    gb = L.class_similarity(xattr.guided_backprop, m, x, [0, 1, 2, 3])
    g = L.class_similarity(xattr.gradient, m, x, [0, 1, 2, 3])
    assert gb.mean() > g.mean()


# -- 08: pictures of two objects ----------------------------------------------------------------------------
def test_side_by_side_is_the_block_mean_of_each_half_and_mass_shares_add_up():
    rng = np.random.default_rng(6)
    a, b = rng.uniform(size=(3, 8, 8)), rng.uniform(size=(3, 8, 8))
    out, lab = L.side_by_side(a, b, background=0.25)
    assert out.shape == (1, 3, 8, 8) and lab.shape == (1, 8, 8)
    np.testing.assert_allclose(out[0, :, 2:6, :4], (a[:, ::2, ::2] + a[:, 1::2, ::2] + a[:, ::2, 1::2]
                                                    + a[:, 1::2, 1::2]) / 4)
    np.testing.assert_allclose(out[0, :, 2:6, 4:], b.reshape(3, 4, 2, 4, 2).mean((2, 4)))
    assert np.all(out[0, :, :2] == 0.25) and np.all(out[0, :, 6:] == 0.25)
    assert (lab == 1).sum() == 16 and (lab == 2).sum() == 16
    maps = rng.normal(size=(2, 3, 8, 8))
    s = L.mass_shares(maps, np.repeat(lab, 2, axis=0))
    mag = np.abs(maps).sum(1)
    np.testing.assert_allclose(s[:, 0], mag[:, 2:6, :4].sum((1, 2)) / mag.sum((1, 2)))
    np.testing.assert_allclose(s.sum(1) + mag[:, :2].sum((1, 2)) / mag.sum((1, 2))
                               + mag[:, 6:].sum((1, 2)) / mag.sum((1, 2)), 1.0)
    with pytest.raises(ValueError, match="multiple of 4"):
        L.side_by_side(a[:, :6, :6], b[:, :6, :6])


def test_multi_object_and_fragility_claims_can_fail():
    shares = {"a": np.array([[0.5, 0.3]]), "b": np.array([[0.85, 0.05]])}
    L.check_multi_instance(shares, ["a"])
    with pytest.raises(L.LessonClaimFailed, match="b"):
        L.check_multi_instance(shares, ["a", "b"])
    own, other = {"cam": np.array([0.5, 0.4])}, {"cam": np.array([0.1, 0.3])}
    with pytest.raises(L.LessonClaimFailed, match="ratio"):
        L.check_multi_label(own, other, {}, ["cam"], [])
    with pytest.raises(L.LessonClaimFailed, match="correlate"):
        L.check_multi_label({}, {}, {"gb": 0.5}, [], ["gb"])
    from xattr.evaluation.robustness import FragilityAttack

    def fa(inter, kept=True):
        n = len(inter)
        return FragilityAttack(np.array(inter), np.zeros(n), np.zeros(n), None, np.full(n, kept), np.zeros(n), "", "")

    assert L.check_fragility(fa([0.2, 0.3]), fa([0.6, 0.7])) == pytest.approx((0.25, 0.65))
    with pytest.raises(L.LessonClaimFailed, match="intersection"):
        L.check_fragility(fa([0.5]), fa([0.6]))
    with pytest.raises(L.LessonClaimFailed, match="label"):
        L.check_fragility(fa([0.1], kept=False), fa([0.6]))
