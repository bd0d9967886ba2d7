"""Activation maximisation: objectives, regularisers, step rules, modifiers, the shipped model, bad input.

Oracles: closed forms on linear models (the L2 optimum w/(2λ), the L2 + TV optimum by a dense linear solve,
the exact trajectory of gradient ascent), central finite differences for every regulariser and objective
gradient, naive loop twins of the total variations, the step rules' recurrences written out per scalar.
"""
import numpy as np
import pytest

import xattr
from xattr.methods.activation_maximisation import (
    Adam,
    GradientAscent,
    RMSprop,
    _objective_and_grad,
    activation_maximisation,
    apply_warp,
    channel_mean,
    class_log_probability,
    class_score,
    l2,
    norm,
    similarity_warp,
    start_image,
    total_variation,
)
from xattr.models import load_with_info
from xattr.nn import Conv2D, Dense, GlobalAvgPool2D, MaxPool2D, ReLU, Sequential
from xattr.testing.toy_models import linear_model

TOY = dict(input_range=None, clip=None, tv_weight=0.0)  # the convex toys: no box, no default TV prior


def _central(fn, x, eps=1e-6):
    """Central differences of a scalar ``fn`` at every entry of ``x`` (small arrays only)."""
    out = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = eps
        out[idx] = (fn(x + e) - fn(x - e)) / (2 * eps)
    return out


# -- regularisers ----------------------------------------------------------------------------------------------

REGULARISERS = [
    ("l2", l2),
    ("tv beta=2", lambda x: total_variation(x, 2.0)),
    ("tv beta=1.5", lambda x: total_variation(x, 1.5)),
    ("tv beta=1", lambda x: total_variation(x, 1.0)),
    ("tv beta=3", lambda x: total_variation(x, 3.0)),
    ("tv anisotropic beta=1", lambda x: total_variation(x, 1.0, anisotropic=True)),
    ("tv anisotropic beta=1.5", lambda x: total_variation(x, 1.5, anisotropic=True)),
    ("norm p=1", lambda x: norm(x, 1)),
    ("norm p=2", lambda x: norm(x, 2)),
    ("norm p=3", lambda x: norm(x, 3)),
]


@pytest.mark.parametrize("name,fn", REGULARISERS, ids=[r[0] for r in REGULARISERS])
def test_regulariser_gradients_match_finite_differences(name, fn):
    """Away from kinks (random continuous values: no zero differences, no zero pixels) at three seeds."""
    for seed in range(3):
        x = np.random.default_rng(seed).normal(size=(2, 2, 4, 5))
        value, grad = fn(x)
        assert value.shape == (2,) and grad.shape == x.shape
        for n in range(2):
            num = _central(lambda a: fn(a[None])[0][0], x[n])
            np.testing.assert_allclose(grad[n], num, rtol=1e-7, atol=1e-8, err_msg=name)


def _tv_loops(x, beta, anisotropic):
    """Naive twin of Mahendran & Vedaldi's V^β (replicate boundary), one loop per pixel, one image."""
    c, h, w = x.shape
    total = 0.0
    for k in range(c):
        for i in range(h):
            for j in range(w):
                di = x[k, i + 1, j] - x[k, i, j] if i + 1 < h else 0.0
                dj = x[k, i, j + 1] - x[k, i, j] if j + 1 < w else 0.0
                total += abs(di) ** beta + abs(dj) ** beta if anisotropic else (di * di + dj * dj) ** (beta / 2)
    return total


@pytest.mark.parametrize("beta", [1.0, 1.5, 2.0, 3.0])
@pytest.mark.parametrize("anisotropic", [False, True])
def test_total_variation_values_match_the_loop_twin(beta, anisotropic):
    x = np.random.default_rng(4).normal(size=(2, 3, 5, 4))
    value, _ = total_variation(x, beta, anisotropic)
    np.testing.assert_allclose(value, [_tv_loops(im, beta, anisotropic) for im in x], rtol=1e-12)


def test_total_variation_forms_agree_at_beta_2_and_beta_1_is_tf_total_variation():
    x = np.random.default_rng(5).normal(size=(2, 3, 6, 7))
    iso, giso = total_variation(x, 2.0)
    ani, gani = total_variation(x, 2.0, anisotropic=True)
    np.testing.assert_allclose(iso, ani, rtol=1e-13)
    np.testing.assert_allclose(giso, gani, rtol=1e-12, atol=1e-13)
    # tf.image.total_variation: sum of |differences| between valid neighbours, both directions, all channels
    tf_tv = np.abs(np.diff(x, axis=-2)).sum(axis=(1, 2, 3)) + np.abs(np.diff(x, axis=-1)).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(total_variation(x, 1.0, anisotropic=True)[0], tf_tv, rtol=1e-13)


def test_regularisers_at_their_kinks_use_the_stated_subgradient():
    const = np.full((1, 2, 4, 4), 0.3)
    for beta in (1.0, 1.5):
        value, grad = total_variation(const, beta)
        assert value[0] == 0 and np.all(grad == 0)
    value, grad = total_variation(const, 1.0, anisotropic=True)
    assert value[0] == 0 and np.all(grad == 0)
    for p in (1, 2, 3):
        value, grad = norm(np.zeros((1, 3, 2, 2)), p)
        assert value[0] == 0 and np.all(grad == 0)


def test_norm_and_l2_values():
    x = np.random.default_rng(6).normal(size=(3, 2, 3, 3))
    flat = x.reshape(3, -1)
    for p in (1, 2, 3):
        np.testing.assert_allclose(norm(x, p)[0], np.linalg.norm(flat, ord=p, axis=1) / 18 ** (1 / p), rtol=1e-13)
    np.testing.assert_allclose(l2(x)[0], (flat**2).sum(axis=1), rtol=1e-13)


def test_regularisers_do_not_modify_their_input():
    x = np.random.default_rng(7).normal(size=(1, 2, 3, 3))
    before = x.copy()
    for _, fn in REGULARISERS:
        fn(x)
    np.testing.assert_array_equal(x, before)


# -- step rules -------------------------------------------------------------------------------------------------

def test_adam_and_rmsprop_follow_their_recurrences():
    """Kingma & Ba 2015 Algorithm 1 and Keras' RMSprop, written out per scalar for three steps."""
    grads = [0.3, -1.2, 0.05]
    adam, rms = Adam(lr=0.1), RMSprop(lr=0.01, rho=0.9)
    x = np.zeros(1)
    sa, sr = adam.init(x), rms.init(x)
    m = v = vr = 0.0
    for t, g in enumerate(grads, start=1):
        da, sa = adam.step(np.array([g]), sa, t)
        dr, sr = rms.step(np.array([g]), sr, t)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        want_a = 0.1 * (m / (1 - 0.9**t)) / ((v / (1 - 0.999**t)) ** 0.5 + 1e-8)
        vr = 0.9 * vr + 0.1 * g * g
        want_r = 0.01 * g / (vr + 1e-7) ** 0.5
        assert da[0] == pytest.approx(want_a, rel=1e-14)
        assert dr[0] == pytest.approx(want_r, rel=1e-14)
    assert GradientAscent(0.5).step(np.array([2.0]), None, 1)[0][0] == 1.0
    # tf-keras-vis' default RMSprop(1.0, 0.999): the first step moves by lr/sqrt(1 - rho) = 31.6 lr
    d, _ = RMSprop(lr=1.0, rho=0.999).step(np.array([5.0]), np.zeros(1), 1)
    assert d[0] == pytest.approx(5 / np.sqrt(0.001 * 25 + 1e-7), rel=1e-14)
    assert d[0] == pytest.approx(1 / np.sqrt(0.001), rel=1e-5)


# -- convex toys: closed forms and monotone ascent -----------------------------------------------------------

def _linear_toy(seed=0, k=3, shape=(2, 4, 4)):
    g = np.random.default_rng(seed)
    w, b = g.normal(size=(k,) + shape), g.normal(size=k)
    return linear_model(w, b), w, b


@pytest.mark.parametrize("start", ["zeros", "centre"])
def test_gradient_ascent_on_linear_l2_is_monotone_and_reaches_the_closed_form(start):
    """J(I) = w_c·I + b_c − λ‖I‖² is concave; I* = w_c/(2λ), J* = ‖w_c‖²/(4λ) + b_c."""
    model, w, b = _linear_toy()
    lam = 0.5
    res = activation_maximisation(model, 1, (2, 4, 4), start, steps=60, optimiser="gradient", lr=0.5,
                                  l2_weight=lam, **TOY)
    np.testing.assert_allclose(res.image[0], w[1] / (2 * lam), rtol=1e-12, atol=1e-12)
    assert res.objective[-1, 0] == pytest.approx((w[1] ** 2).sum() / (4 * lam) + b[1], rel=1e-12)
    steps = np.diff(res.objective[:, 0])
    assert np.all(steps[:12] > 0)  # strictly, until it reaches round-off (it converges geometrically)
    assert np.all(steps >= -1e-12 * abs(res.objective[-1, 0]))
    np.testing.assert_allclose(res.values, res.objective + res.penalty, rtol=1e-15)


def test_gradient_ascent_with_tv_is_monotone_and_reaches_the_linear_solve():
    """J = w·I − λ‖I‖² − μ TV₂(I), TV₂(I) = ‖D I‖²: the optimum solves (2λ + 2μ DᵀD) I = w (dense matrix twin)."""
    model, w, _ = _linear_toy(seed=1, k=2, shape=(1, 4, 4))
    lam, mu = 0.5, 0.3
    n = 16
    idx = np.arange(n).reshape(4, 4)
    rows = []
    for i in range(4):  # replicate boundary: no difference past the last row/column
        for j in range(4):
            for di, dj in ((1, 0), (0, 1)):
                if i + di < 4 and j + dj < 4:
                    r = np.zeros(n)
                    r[idx[i + di, j + dj]], r[idx[i, j]] = 1, -1
                    rows.append(r)
    D = np.array(rows)
    want = np.linalg.solve(2 * lam * np.eye(n) + 2 * mu * D.T @ D, w[0].ravel())
    res = activation_maximisation(model, 0, (1, 4, 4), "zeros", steps=400, optimiser="gradient", lr=0.2,
                                  l2_weight=lam, **{**TOY, "tv_weight": mu})
    np.testing.assert_allclose(res.image.ravel(), want, rtol=1e-10, atol=1e-12)
    assert np.all(np.diff(res.objective[:, 0]) >= -1e-12)
    assert res.objective[-1, 0] > res.objective[0, 0] + 1


def test_adam_reaches_the_closed_form_on_the_convex_toy():
    model, w, _ = _linear_toy()
    res = activation_maximisation(model, 1, (2, 4, 4), "zeros", steps=1000, optimiser="adam", lr=0.05,
                                  l2_weight=0.5, **TOY)
    np.testing.assert_allclose(res.image[0], w[1], rtol=1e-10, atol=1e-10)  # w/(2·0.5)
    assert res.objective[-1, 0] > res.objective[0, 0]


def test_gradient_ascent_trajectory_is_exact_on_a_linear_model():
    """Without a penalty: I_T = I_0 + T·lr·w_c."""
    model, w, _ = _linear_toy()
    res = activation_maximisation(model, 2, (2, 4, 4), "centre", steps=7, optimiser="gradient", lr=0.3, **TOY)
    np.testing.assert_allclose(res.image[0], 0.5 + 7 * 0.3 * w[2], rtol=1e-13)


# -- objectives ----------------------------------------------------------------------------------------------

def test_log_probability_ignores_what_all_classes_share_and_the_score_does_not():
    """S_k = (w_k + u)·I + b_k.  ∂ log P_c/∂I = Σ_k (δ_ck − P_k)(w_k + u): u cancels, so the log-softmax ascent
    is the same for every u, while the score ascent moves along u too (Simonyan et al. 2014's reason to use S_c)."""
    model0, w, b = _linear_toy(seed=2)
    u = np.random.default_rng(3).normal(size=w.shape[1:]) * 3
    model_u = linear_model(w + u, b)
    kw = dict(steps=20, optimiser="gradient", lr=0.1, **TOY)
    a = activation_maximisation(model0, class_log_probability(0), (2, 4, 4), "centre", **kw)
    c = activation_maximisation(model_u, class_log_probability(0), (2, 4, 4), "centre", **kw)
    np.testing.assert_allclose(a.image, c.image, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a.values, c.values, rtol=1e-10, atol=1e-12)
    s0 = activation_maximisation(model0, class_score(0), (2, 4, 4), "centre", **kw)
    su = activation_maximisation(model_u, class_score(0), (2, 4, 4), "centre", **kw)
    np.testing.assert_allclose(su.image - s0.image, 20 * 0.1 * u[None], rtol=1e-10)


def _small_cnn(seed=0):
    g = np.random.default_rng(seed)
    model = Sequential(Conv2D(2, 4, 3, padding=1, rng=g), ReLU(), MaxPool2D(2), Conv2D(4, 5, 3, padding=1, rng=g),
                       ReLU(), GlobalAvgPool2D(), Dense(5, 3, rng=g))
    for layer in model:
        if getattr(layer, "bias", None) is not None:
            layer.bias = g.normal(0, 0.1, layer.bias.shape)
    return model


@pytest.mark.parametrize("objective", [
    class_score(np.array([0, 2])), class_log_probability(np.array([1, 0])), channel_mean("conv1", 3),
    channel_mean("relu2", np.array([4, 1])), channel_mean("maxpool1", 0), channel_mean(-1, np.array([2, 2])),
], ids=["score", "log_softmax", "conv1 ch3", "relu2", "maxpool1", "last layer by index"])
def test_objective_gradients_match_finite_differences(objective):
    model = _small_cnn()
    x = np.random.default_rng(8).normal(size=(2, 2, 6, 6))
    values, grad = _objective_and_grad(model, x, objective)
    assert values.shape == (2,) and grad.shape == x.shape
    num = _central(lambda a: _objective_and_grad(model, a, objective, need_grad=False)[0].sum(), x)
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-8)


def test_channel_objective_reads_the_layer_and_equals_the_class_score_at_the_last_layer():
    model = _small_cnn()
    x = np.random.default_rng(9).normal(size=(2, 2, 6, 6))
    act = model.activations(x, "relu2")
    v, _ = _objective_and_grad(model, x, channel_mean("relu2", np.array([1, 3])))
    np.testing.assert_allclose(v, [act[0, 1].mean(), act[1, 3].mean()], rtol=1e-14)
    vs, gs = _objective_and_grad(model, x, class_score(2))
    vc, gc = _objective_and_grad(model, x, channel_mean("dense1", 2))
    np.testing.assert_array_equal(vs, vc)
    np.testing.assert_allclose(gs, gc, rtol=1e-14, atol=1e-15)


def test_function_model_gives_class_objectives_only():
    import autograd.numpy as anp

    g = np.random.default_rng(10)
    W = g.normal(0, 0.3, (3, 2 * 4 * 4))
    model = xattr.from_function(lambda x: anp.tanh(anp.reshape(x, (x.shape[0], -1)) @ W.T), "tanh")
    for obj in (class_score(1), class_log_probability(1)):
        x = g.normal(size=(1, 2, 4, 4))
        _, grad = _objective_and_grad(model, x, obj)
        num = _central(lambda a, obj=obj: _objective_and_grad(model, a, obj, need_grad=False)[0].sum(), x)
        np.testing.assert_allclose(grad, num, rtol=1e-7, atol=1e-9)
    res = activation_maximisation(model, class_log_probability(1), (2, 4, 4), steps=20, optimiser="gradient", lr=0.1)
    assert res.values[-1, 0] > res.values[0, 0]
    with pytest.raises(TypeError, match="channel objective needs a layered model"):
        activation_maximisation(model, channel_mean("dense1", 0), (2, 4, 4), steps=1)


def test_batch_of_targets_equals_one_run_per_target():
    model = _small_cnn(1)
    kw = dict(steps=5, l2_weight=0.1, tv_weight=0.05, norm_weight=0.2)
    both = activation_maximisation(model, class_score(np.array([2, 0])), (2, 6, 6), **kw)
    for n, c in enumerate((2, 0)):
        one = activation_maximisation(model, c, (2, 6, 6), **kw)
        np.testing.assert_allclose(both.image[n], one.image[0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(both.objective[:, n], one.objective[:, 0], rtol=1e-12)


# -- starts, modifiers, clipping, determinism -----------------------------------------------------------------

def test_starts():
    assert np.all(start_image("centre", (1, 2, 2), 2, (-1.0, 3.0)) == 1.0)
    assert np.all(start_image("zeros", (1, 2, 2)) == 0)
    u = start_image("uniform", (3, 8, 8), 2, (0.2, 0.4), rng=0)
    assert u.shape == (2, 3, 8, 8) and 0.2 <= u.min() and u.max() <= 0.4
    z = start_image("normal", (3, 20, 20), 1, (0.0, 2.0), rng=0)
    assert abs(z.mean() - 1.0) < 0.02 and abs(z.std() - 0.2) < 0.02
    np.testing.assert_array_equal(
        start_image("uniform", (3, 4, 4), 1, rng=7), start_image("uniform", (3, 4, 4), 1, rng=7)
    )
    assert start_image("uniform", (1, 2, 2), 1, rng=np.random.default_rng(1)).dtype == np.float64


def test_same_seed_same_bits_other_seed_other_image():
    model = _small_cnn(2)
    kw = dict(
        steps=8, start="uniform", jitter=2, rotate=5.0, scale=(0.9, 1.1), blur_sigma=0.5, blur_every=3, tv_weight=0.1
    )
    a = activation_maximisation(model, class_score(1), (2, 8, 8), rng=11, **kw)
    b = activation_maximisation(model, class_score(1), (2, 8, 8), rng=np.random.default_rng(11), **kw)
    c = activation_maximisation(model, class_score(1), (2, 8, 8), rng=12, **kw)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.objective, b.objective)
    assert not np.array_equal(a.image, c.image)


def test_jitter_rolls_the_gradient_back():
    """For a linear model f = w·I, jitter's gradient is roll⁻¹(w) at a random roll: with w constant per channel
    every roll gives w, so the run equals the one without jitter; with a general w it does not."""
    g = np.random.default_rng(13)
    w_flat = np.repeat(g.normal(size=(2, 2, 1, 1)), 6, axis=2).repeat(6, axis=3)
    model = linear_model(w_flat)
    kw = dict(steps=6, optimiser="gradient", lr=0.1, start="zeros", **TOY)
    np.testing.assert_allclose(activation_maximisation(model, 0, (2, 6, 6), jitter=2, rng=0, **kw).image,
                               activation_maximisation(model, 0, (2, 6, 6), **kw).image, rtol=1e-14)
    w = g.normal(size=(2, 2, 6, 6))
    jit = activation_maximisation(linear_model(w), 0, (2, 6, 6), jitter=2, rng=0, **kw)
    shifts = np.random.default_rng(0).integers(-2, 3, size=(6, 2))
    want = sum(0.1 * np.roll(w[0], (-int(dy), -int(dx)), axis=(-2, -1)) for dy, dx in shifts)
    np.testing.assert_allclose(jit.image[0], want, rtol=1e-13)


def test_similarity_warp_identity_quarter_turn_scipy_and_adjoint():
    x = np.random.default_rng(15).normal(size=(2, 3, 6, 6))
    np.testing.assert_array_equal(apply_warp(x, similarity_warp(6, 6)), x)
    np.testing.assert_allclose(apply_warp(x, similarity_warp(6, 6, 90.0)), np.rot90(x, 1, axes=(-2, -1)), atol=1e-12)
    from scipy.ndimage import affine_transform, rotate

    # scipy.ndimage with order=1 (bilinear) and mode="nearest" (clamped coordinates) is the same resampling
    np.testing.assert_allclose(apply_warp(x[0, 0], similarity_warp(6, 6, 17.0)),
                               rotate(x[0, 0], 17.0, reshape=False, order=1, mode="nearest"), atol=1e-12)
    y = x[1, 2, :, :5]
    c = np.array([2.5, 2.0])
    want = affine_transform(y, np.eye(2) / 1.3, offset=c - c / 1.3, order=1, mode="nearest")
    np.testing.assert_allclose(apply_warp(y, similarity_warp(6, 5, zoom=1.3)), want, atol=1e-12)
    # exact adjoint: <T a, u> = <a, Tᵀ u>; every output pixel's weights sum to 1
    T = similarity_warp(6, 5, -23.0, 0.85)
    a, u = x[..., :5], np.random.default_rng(16).normal(size=(2, 3, 6, 5))
    assert np.sum(apply_warp(a, T) * u) == pytest.approx(np.sum(a * apply_warp(u, T, adjoint=True)), rel=1e-13)
    np.testing.assert_allclose(np.asarray(T.sum(axis=1)).ravel(), 1.0, rtol=1e-14)


def test_rotate_and_scale_pull_the_gradient_back_through_the_warp():
    """Linear model f = w·I: each step adds lr · roll⁻¹ Tᵀ w for that step's draws (roll, angle, zoom, in order)."""
    w = np.random.default_rng(17).normal(size=(2, 2, 7, 7))
    kw = dict(steps=3, optimiser="gradient", lr=0.1, start="zeros", jitter=1, rotate=10.0, scale=(0.9, 1.2), **TOY)
    res = activation_maximisation(linear_model(w), 1, (2, 7, 7), rng=21, **kw)
    gen = np.random.default_rng(21)
    want = np.zeros((2, 7, 7))
    for _ in range(3):
        dy, dx = (int(d) for d in gen.integers(-1, 2, size=2))
        T = similarity_warp(7, 7, gen.uniform(-10.0, 10.0), gen.uniform(0.9, 1.2))
        want += 0.1 * np.roll(apply_warp(w[1], T, adjoint=True), (-dy, -dx), axis=(-2, -1))
    np.testing.assert_allclose(res.image[0], want, rtol=1e-12, atol=1e-15)


def test_clipping_keeps_iterates_in_the_box_or_only_the_result():
    model, w, _ = _linear_toy(seed=3)
    kw = dict(steps=10, optimiser="gradient", lr=1.0, input_range=(0, 1), tv_weight=0.0)
    step = activation_maximisation(model, 0, (2, 4, 4), **kw)
    end = activation_maximisation(model, 0, (2, 4, 4), clip="end", **kw)
    # a linear score: each pixel moves one way, so projecting every step or once at the end gives one image
    want = np.clip(0.5 + 10 * w[0], 0, 1)
    np.testing.assert_allclose(step.image[0], want, rtol=1e-14)
    np.testing.assert_allclose(end.image[0], want, rtol=1e-14)
    assert np.all(step.image[0][w[0] > 0.05] == 1) and np.all(step.image[0][w[0] < -0.05] == 0)
    # the histories differ: "end" keeps the unclipped iterates, whose score is higher
    np.testing.assert_allclose(step.values[:, 0], [model.forward(np.clip(0.5 + t * w[:1], 0, 1))[0, 0]
                                                   for t in range(11)], rtol=1e-13)
    np.testing.assert_allclose(end.values[:, 0], [model.forward(0.5 + t * w[:1])[0, 0] for t in range(11)], rtol=1e-13)
    assert end.values[-1, 0] > step.values[-1, 0]


def test_float32_stays_float32_and_inputs_are_not_modified():
    model = _small_cnn(3)
    start = np.random.default_rng(14).uniform(size=(1, 2, 6, 6)).astype(np.float32)
    before = start.copy()
    res = activation_maximisation(model, 1, None, start, steps=4, tv_weight=0.1, l2_weight=0.1, norm_weight=0.1)
    assert res.image.dtype == np.float32
    np.testing.assert_array_equal(start, before)
    assert activation_maximisation(model, 1, (2, 6, 6), steps=2, dtype=np.float32).image.dtype == np.float32


# -- the shipped model -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shapes():
    return load_with_info("shapes")


def test_shipped_model_zero_image_does_not_move_but_the_centre_does(shapes):
    """Regression: every first-layer ReLU is off at the zero image (all conv1 biases < 0): gradient exactly 0."""
    model, _ = shapes
    assert np.all(model["conv1"].bias < 0)
    _, g0 = _objective_and_grad(model, np.zeros((4, 3, 32, 32)), class_score(np.arange(4)))
    assert np.all(g0 == 0)
    _, gc = _objective_and_grad(model, start_image("centre", (3, 32, 32), 4), class_score(np.arange(4)))
    assert np.all(np.abs(gc).reshape(4, -1).max(axis=1) > 0)


# The defaults (Adam lr 0.05, TV β=2 weight 0.3, clip to [0, 1], from the centre), 50 steps here, 200 by default.
# Measured (OPENBLAS_NUM_THREADS=1, see the report): S_c start [15.1, 50.6, −73.1, −83.0]; after 50 steps
# ≈ [134, 182, 320, 692], margins over the runner-up ≈ [39, 145, 358, 807]; after 200 ≈ [155, 445, 394, 1106].


def test_shipped_model_each_class_rises_and_wins(shapes):
    model, info = shapes
    classes = np.arange(4)
    res = activation_maximisation(model, class_score(classes), (3, 32, 32),
                                  input_range=tuple(info.input["range"]), steps=50)
    assert np.all(res.values[-1] > res.values[0] + 50), (res.values[0], res.values[-1])
    assert np.all(res.objective[-1] > res.objective[0])
    scores = model.forward(res.image)
    assert np.array_equal(scores.argmax(axis=1), classes), scores
    assert res.image.min() >= 0 and res.image.max() <= 1


def test_shipped_model_log_probability_wins_by_pushing_the_others_down(shapes):
    """Simonyan et al.'s point, measured: log P_square reaches ≈ 0 while S_square *falls* (15.1 → ≈ −0.3)."""
    model, _ = shapes
    classes = np.arange(4)
    res = activation_maximisation(model, class_log_probability(classes), (3, 32, 32), steps=20, tv_weight=0.0)
    scores = model.forward(res.image)
    assert np.array_equal(scores.argmax(axis=1), classes)
    assert np.all(res.values[-1] >= res.values[0]) and np.all(res.values[-1] > -1e-2), res.values[[0, -1]]
    start_scores = model.forward(start_image("centre", (3, 32, 32), 1))[0]
    assert scores[0, 0] < start_scores[0]  # the square's score went down while its probability went up


def test_shipped_model_hidden_channels_rise(shapes):
    model, _ = shapes
    ch = np.array([0, 7, 15, 31])
    res = activation_maximisation(model, channel_mean("relu3", ch), (3, 32, 32), steps=30)
    assert np.all(res.values[-1] > res.values[0] + 0.1), res.values[[0, -1]]


def test_shipped_model_a_channel_dead_at_the_centre_stays_dead_and_noise_wakes_it(shapes):
    """relu2 channel 0 is 0 everywhere at the centre image: its gradient is exactly 0 (and the TV prior's is 0 at a
    constant image), so the ascent returns the start; from uniform noise the channel is on and rises."""
    model, _ = shapes
    centre = activation_maximisation(model, channel_mean("relu2", 0), (3, 32, 32), steps=10)
    assert np.all(centre.values == 0) and np.all(centre.image == 0.5)
    noise = activation_maximisation(model, channel_mean("relu2", 0), (3, 32, 32), "uniform", steps=10, rng=0,
                                    tv_weight=0.0)
    assert noise.values[0, 0] > 0 and noise.values[-1, 0] > 5 * noise.values[0, 0], noise.values[[0, -1], 0]


# -- bad input -----------------------------------------------------------------------------------------------

def test_bad_input():
    model = _small_cnn(4)
    shape = (2, 6, 6)
    with pytest.raises(KeyError, match="no layer named 'conv9'"):
        activation_maximisation(model, channel_mean("conv9", 0), shape, steps=1)
    with pytest.raises(ValueError, match="channel 4 out of range for layer 'conv1' with 4 channels"):
        activation_maximisation(model, channel_mean("conv1", 4), shape, steps=1)
    with pytest.raises(ValueError, match="channel -1 out of range"):
        activation_maximisation(model, channel_mean("relu2", -1), shape, steps=1)
    with pytest.raises(IndexError, match="layer index 12 out of range"):
        activation_maximisation(model, channel_mean(12, 0), shape, steps=1)
    with pytest.raises(ValueError, match="target 3 out of range"):
        activation_maximisation(model, 3, shape, steps=1)
    for name in ("l2_weight", "tv_weight", "norm_weight"):
        with pytest.raises(ValueError, match=f"{name} must be >= 0"):
            activation_maximisation(model, 0, shape, **{name: -0.1})
    bad = np.zeros((1,) + shape)
    bad[0, 0, 1, 1] = np.nan
    with pytest.raises(ValueError, match="start must be finite"):
        activation_maximisation(model, 0, None, bad)
    with pytest.raises(ValueError, match="start must have shape"):
        activation_maximisation(model, 0, (2, 5, 5), np.zeros((1,) + shape))
    with pytest.raises(ValueError, match="unknown start 'mean'"):
        activation_maximisation(model, 0, shape, "mean")
    with pytest.raises(TypeError, match="rng must be"):
        activation_maximisation(model, 0, shape, "uniform")
    with pytest.raises(TypeError, match="rng must be"):
        activation_maximisation(model, 0, shape, jitter=1)
    with pytest.raises(ValueError, match="shape \\(C, H, W\\) is needed"):
        activation_maximisation(model, 0)
    with pytest.raises(ValueError, match="unknown optimiser 'sgd'"):
        activation_maximisation(model, 0, shape, optimiser="sgd")
    with pytest.raises(ValueError, match="lr must be > 0"):
        activation_maximisation(model, 0, shape, lr=-1.0)
    with pytest.raises(ValueError, match="lr is set on the step-rule object"):
        activation_maximisation(model, 0, shape, optimiser=Adam(), lr=0.1)
    with pytest.raises(ValueError, match="beta must be >= 1"):
        activation_maximisation(model, 0, shape, tv_weight=1.0, tv_beta=0.5)
    with pytest.raises(ValueError, match="p must be >= 1"):
        activation_maximisation(model, 0, shape, norm_weight=1.0, norm_p=0.5)
    with pytest.raises(ValueError, match="clip='step' needs an input_range"):
        activation_maximisation(model, 0, shape, input_range=None)
    with pytest.raises(ValueError, match="input_range must be finite with lo < hi"):
        activation_maximisation(model, 0, shape, input_range=(1, 0))
    with pytest.raises(ValueError, match="clip must be"):
        activation_maximisation(model, 0, shape, clip="always")
    with pytest.raises(TypeError, match="objective must be"):
        activation_maximisation(model, "dense1", shape)
    with pytest.raises(TypeError, match="channel must be an int"):
        channel_mean("conv1", 1.5)
    with pytest.raises(ValueError, match="rotate must be >= 0"):
        activation_maximisation(model, 0, shape, rotate=-1.0, rng=0)
    with pytest.raises(ValueError, match="scale must be finite zoom factors with 0 < lo <= hi"):
        activation_maximisation(model, 0, shape, scale=(1.2, 0.9), rng=0)
    with pytest.raises(TypeError, match="rng must be"):
        activation_maximisation(model, 0, shape, rotate=5.0)
    with pytest.raises(ValueError, match="beta1 must be in"):
        Adam(beta1=1.0)
