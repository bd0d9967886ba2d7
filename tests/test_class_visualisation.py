"""Class model visualisation (Simonyan et al. 2014): the linear closed form w_c/(2λ), monotone ascent, the start
that moves the shipped model, the score against the log-softmax objective, options, bad input."""
import autograd.numpy as anp
import numpy as np
import pytest

import xattr
from xattr.methods.class_visualisation import class_model_visualisation
from xattr.models import load_with_info
from xattr.nn import Conv2D, Dense, GlobalAvgPool2D, ReLU, Sequential
from xattr.testing.toy_models import linear_model


def test_linear_model_converges_to_closed_form():
    g = np.random.default_rng(0)
    w, b = g.normal(size=(3, 2, 4, 4)), g.normal(size=3)
    lam = 0.5
    res = class_model_visualisation(linear_model(w, b), 1, (2, 4, 4), lam=lam, lr=0.5, steps=60, start="zeros")
    np.testing.assert_allclose(res.image[0], w[1] / (2 * lam), rtol=1e-12, atol=1e-12)
    assert res.values[0, 0] == pytest.approx(b[1])  # the zero image's score
    best = (w[1] ** 2).sum() / (4 * lam) + b[1]  # S_c − λ‖I‖² at the optimum
    assert res.objective[-1, 0] == pytest.approx(best, rel=1e-12)
    assert np.all(np.diff(res.objective[:, 0]) > -1e-12)
    # the default start (the centre of [0, 1]) reaches the same optimum: the problem is strictly concave
    centre = class_model_visualisation(linear_model(w, b), 1, (2, 4, 4), lam=lam, lr=0.5, steps=60)
    assert centre.values[0, 0] == pytest.approx(b[1] + 0.5 * w[1].sum(), rel=1e-12)
    np.testing.assert_allclose(centre.image, res.image, rtol=1e-12, atol=1e-12)


def test_objective_increases_monotonically_for_small_steps():
    """A smooth network (softplus): with a step below 1/L the ascent never lowers the objective."""
    g = np.random.default_rng(1)
    W1, W2 = g.normal(0, 0.3, (16, 2 * 5 * 5)), g.normal(0, 0.3, (4, 16))

    def f(x):
        h = anp.reshape(x, (x.shape[0], -1)) @ W1.T
        return anp.log1p(anp.exp(h)) @ W2.T

    for softmax in (False, True):
        res = class_model_visualisation(xattr.from_function(f), 2, (2, 5, 5), lam=0.05, lr=0.2, steps=40,
                                        softmax=softmax)
        assert np.all(np.diff(res.objective[:, 0]) >= -1e-13)
        assert res.objective[-1, 0] > res.objective[0, 0] + 1e-3


def test_relu_cnn_score_rises_and_objective_monotone_with_small_steps():
    g = np.random.default_rng(2)
    model = Sequential(Conv2D(3, 6, 3, padding=1, rng=g), ReLU(), GlobalAvgPool2D(), Dense(6, 5, rng=g))
    for layer in model:
        if getattr(layer, "bias", None) is not None:
            layer.bias = g.normal(0, 0.1, layer.bias.shape)
    res = class_model_visualisation(model, 3, (3, 8, 8), lam=0.01, lr=0.05, steps=30)
    assert res.values[-1, 0] > res.values[0, 0]
    assert np.all(np.diff(res.objective[:, 0]) >= -1e-12)
    assert res.image.shape == (1, 3, 8, 8) and res.values.shape == res.objective.shape == (31, 1)


def test_regularisers_are_deterministic_and_blur_smooths():
    g = np.random.default_rng(3)
    w = g.normal(size=(2, 1, 8, 8))
    model = linear_model(w)
    kw = dict(lam=0.1, lr=0.2, steps=10, jitter=2, blur_sigma=1.0, blur_every=2)
    a = class_model_visualisation(model, 0, (1, 8, 8), rng=5, **kw)
    b = class_model_visualisation(model, 0, (1, 8, 8), rng=5, **kw)
    np.testing.assert_array_equal(a.image, b.image)
    plain = class_model_visualisation(model, 0, (1, 8, 8), lam=0.1, lr=0.2, steps=10)
    rough = lambda im: np.abs(np.diff(im, axis=-1)).mean()  # noqa: E731
    assert rough(a.image) < rough(plain.image)
    tv = class_model_visualisation(model, 0, (1, 8, 8), lam=0.1, lr=0.2, steps=10, tv_weight=0.5)
    assert rough(tv.image) < rough(plain.image)
    with pytest.raises(TypeError, match="rng must be"):
        class_model_visualisation(model, 0, (1, 8, 8), jitter=1)


def test_input_range_clips_every_iterate():
    w = np.random.default_rng(4).normal(size=(2, 1, 4, 4))
    res = class_model_visualisation(linear_model(w), 0, (1, 4, 4), lam=0.0, lr=1.0, steps=5, input_range=(0, 1))
    np.testing.assert_allclose(res.image[0], np.clip(0.5 + 5 * w[0], 0, 1), rtol=1e-14)


# -- the shipped model: the zero start does not move, the default start does ------------------------------

@pytest.fixture(scope="module")
def shapes():
    return load_with_info("shapes")[0]


def test_shipped_model_zero_start_never_moves(shapes):
    """The bug this module's default fixes: every conv1 bias is negative, so at the zero image every first-layer
    ReLU is off and ∂S_c/∂I = 0 exactly: the ascent returns the start for every class."""
    res = class_model_visualisation(shapes, np.arange(4), (3, 32, 32), steps=3, start="zeros")
    assert np.all(res.image == 0)
    assert np.all(res.values == res.values[0])


# Measured (λ = 0.1, lr = 0.1, plain gradient ascent, from the centre, no clipping, 200 steps):
# S_c start [15.1, 50.6, −73.1, −83.0] -> end ≈ [746, 4183, 4906, 19563], margins over the runner-up ≈ [140, 3403,
# 5582, 22638].  The test runs 60 steps: ≈ [327, 1610, 2470, 9563], margins ≈ [78, 1296, 2851, 11117].
def test_shipped_model_each_class_rises_from_the_default_start_and_wins(shapes):
    classes = np.arange(4)
    res = class_model_visualisation(shapes, classes, (3, 32, 32), steps=60)
    assert np.all(res.values[-1] > res.values[0] + 50), res.values[[0, -1]]
    assert np.all(res.objective[-1] > res.objective[0])
    scores = shapes.forward(res.image)
    assert np.array_equal(scores.argmax(axis=1), classes), scores
    np.testing.assert_allclose(res.values[-1], scores[classes, classes], rtol=1e-12)


def test_shipped_model_softmax_objective(shapes):
    """log P_c rises to ≈ 0 for every class and each wins; 'disk' is already top at the start (log P ≈ 0) and
    does not move.  Measured (30 steps): log P_c [−35.4, −0.0, −123.7, −133.5] -> [−0.014, −0.0, −0.072, −0.025]."""
    classes = np.arange(4)
    res = class_model_visualisation(shapes, classes, (3, 32, 32), steps=30, softmax=True, lam=0.0, lr=0.01)
    scores = shapes.forward(res.image)
    assert np.array_equal(scores.argmax(axis=1), classes), scores
    assert np.all(res.values[-1] >= res.values[0]) and np.all(res.values[-1] > -0.1), res.values[[0, -1]]


def test_shipped_model_softmax_objective_wins_by_lowering_the_others(shapes):
    """Why Simonyan et al. (2014, §2) ascend the score S_c and not P_c: P_c can rise by pushing the other classes
    down.  On the shipped model 'square' reaches P ≈ 1 under the softmax objective while its own score falls
    (measured, 30 steps, lr 0.01: S_square 15.1 -> 3.3, the others' mean to -4.2)."""
    res = class_model_visualisation(shapes, 0, (3, 32, 32), steps=30, softmax=True, lam=0.0, lr=0.01)
    start = class_model_visualisation(shapes, 0, (3, 32, 32), steps=0).image
    s0, s1 = shapes.forward(start)[0], shapes.forward(res.image)[0]
    assert res.values[-1] > -0.1 and s1.argmax() == 0  # log P_square ≈ 0: the class wins
    assert s1[0] < s0[0] - 5  # ... with a lower score of its own than at the start
    assert np.delete(s1, 0).max() < np.delete(s0, 0).max() - 40  # because the others fell further


def test_bad_input():
    model = linear_model(np.ones((2, 1, 3, 3)))
    with pytest.raises(ValueError, match="target 5 out of range"):
        class_model_visualisation(model, 5, (1, 3, 3), steps=1)
    with pytest.raises(ValueError, match="lam must be >= 0"):
        class_model_visualisation(model, 0, (1, 3, 3), lam=-1)
    with pytest.raises(ValueError, match="lr must be > 0"):
        class_model_visualisation(model, 0, (1, 3, 3), lr=0)
    with pytest.raises(ValueError, match="shape must be one image's shape"):
        class_model_visualisation(model, 0, (1, 0, 3))
    with pytest.raises(TypeError, match="target_class must be an int"):
        class_model_visualisation(model, 1.5, (1, 3, 3))
    with pytest.raises(ValueError, match="start must be finite"):
        class_model_visualisation(model, 0, (1, 3, 3), start=np.full((1, 3, 3), np.inf))
    with pytest.raises(ValueError, match="tv_weight must be >= 0"):
        class_model_visualisation(model, 0, (1, 3, 3), tv_weight=-0.5)
