"""Class model visualisation (Simonyan et al. 2013): monotone ascent, the linear closed form w_c/(2λ), options."""
import autograd.numpy as anp
import numpy as np
import pytest

import xattr
from xattr.methods.class_visualisation import class_model_visualisation
from xattr.nn import Conv2D, Dense, GlobalAvgPool2D, ReLU, Sequential
from xattr.testing.toy_models import linear_model


def test_linear_model_converges_to_closed_form():
    g = np.random.default_rng(0)
    w, b = g.normal(size=(3, 2, 4, 4)), g.normal(size=3)
    lam = 0.5
    res = class_model_visualisation(linear_model(w, b), 1, (2, 4, 4), lam=lam, lr=0.5, steps=60)
    np.testing.assert_allclose(res.image[0], w[1] / (2 * lam), rtol=1e-12, atol=1e-12)
    assert res.scores[0] == pytest.approx(b[1])  # the zero image's score
    best = (w[1] ** 2).sum() / (4 * lam) + b[1]  # S_c − λ‖I‖² at the optimum
    assert res.objective[-1] == pytest.approx(best, rel=1e-12)
    assert np.all(np.diff(res.objective) > -1e-12)


def test_objective_increases_monotonically_for_small_steps():
    """A smooth network (softplus): with a step below 1/L the ascent never lowers the objective."""
    g = np.random.default_rng(1)
    W1, W2 = g.normal(0, 0.3, (16, 2 * 5 * 5)), g.normal(0, 0.3, (4, 16))

    def f(x):
        h = anp.reshape(x, (x.shape[0], -1)) @ W1.T
        return anp.log1p(anp.exp(h)) @ W2.T

    res = class_model_visualisation(xattr.from_function(f), 2, (2, 5, 5), lam=0.05, lr=0.2, steps=40)
    assert np.all(np.diff(res.objective) >= -1e-13)
    assert res.objective[-1] > res.objective[0] + 1e-3


def test_relu_cnn_score_rises_and_objective_monotone_with_small_steps():
    g = np.random.default_rng(2)
    model = Sequential(Conv2D(3, 6, 3, padding=1, rng=g), ReLU(), GlobalAvgPool2D(), Dense(6, 5, rng=g))
    for layer in model:
        if getattr(layer, "bias", None) is not None:
            layer.bias = g.normal(0, 0.1, layer.bias.shape)
    res = class_model_visualisation(model, 3, (3, 8, 8), lam=0.01, lr=0.05, steps=30)
    assert res.scores[-1] > res.scores[0]
    assert np.all(np.diff(res.objective) >= -1e-12)
    assert res.image.shape == (1, 3, 8, 8) and res.scores.shape == res.objective.shape == (31,)


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
    with pytest.raises(TypeError, match="rng must be"):
        class_model_visualisation(model, 0, (1, 8, 8), jitter=1)


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
