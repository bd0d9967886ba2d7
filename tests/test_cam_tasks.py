"""Grad-CAM beyond one class score: a captioner (a word's or the caption's log-probability) and an actor-critic
network (an action's logit, the value), built in xattr.testing.task_models.

Oracles: central finite differences of the explained quantity with respect to the Grad-CAM layer's activations
(``α_k = mean_ij ∂S/∂A_kij`` is the derivative along channel ``k``'s all-ones direction divided by ``hw``); the closed
form of a linear captioning head (``∂S/∂z = onehot(y_t) − softmax(z_t)`` per step); hand-set networks whose deciding
object is known (a coloured object named by a word; the moving ball that decides an action, the static paddle that
decides the value).
"""
import numpy as np
import pytest

import xattr
from xattr.nn import Conv2D, Dense, GlobalAvgPool2D, Graph, ReLU
from xattr.testing.task_models import caption_log_likelihood, captioner, policy_value_net


def _fd_alpha(model, x, layer, value, eps=1e-6):
    """``α (N, K)`` by central differences of ``value(scores)`` along each channel of node ``layer``'s output."""
    a = model.trace(x).value(layer)
    n, k, h, w = a.shape
    alpha = np.zeros((n, k))
    for c in range(k):
        e = np.zeros_like(a)
        e[:, c] = eps
        up = value(model.trace(a + e, start=layer).output)
        down = value(model.trace(a - e, start=layer).output)
        alpha[:, c] = (up - down) / (2 * eps) / (h * w)
    return a, alpha


def _map(a, alpha):
    return np.maximum(np.einsum("nk,nkhw->nhw", alpha, a), 0)[:, None]


@pytest.mark.parametrize("step", [None, 0, 2])
def test_captioner_grad_cam_is_the_finite_difference_map_of_the_log_likelihood(step):
    caption, V = np.array([3, 1, 4, 2]), 6
    model = captioner(caption, V, channels=3, features=5, hidden=6, rng=1)
    x = np.random.default_rng(2).normal(size=(3, 3, 8, 8))
    target = caption_log_likelihood(caption, V, step=step)
    assert model.forward(x).shape == (3, 4 * V)
    a, alpha = _fd_alpha(model, x, "features", target)
    cam = xattr.grad_cam(model, x, target, layer="features", upsample=False)
    np.testing.assert_allclose(cam, _map(a, alpha), rtol=1e-6, atol=1e-8)
    assert cam.max() > 0


def test_caption_log_likelihood_is_the_sum_of_its_words():
    caption, V = np.array([3, 1, 4]), 5
    model = captioner(caption, V, rng=0)
    s = model.forward(np.random.default_rng(0).normal(size=(2, 3, 6, 6)))
    z = s.reshape(2, 3, V)
    logp = z - np.log(np.exp(z).sum(axis=2, keepdims=True))
    want = logp[:, np.arange(3), caption]
    np.testing.assert_allclose(caption_log_likelihood(caption, V)(s), want.sum(axis=1), rtol=1e-12)
    for t in range(3):
        np.testing.assert_allclose(caption_log_likelihood(caption, V, step=t)(s), want[:, t], rtol=1e-12)
    with pytest.raises(ValueError, match="step must be an int in 0..2"):
        caption_log_likelihood(caption, V, step=3)
    with pytest.raises(ValueError, match="caption ids must lie in 0..4"):
        captioner([1, 5], V)
    with pytest.raises(ValueError, match=r"scores must be \(N, T·V\)"):
        caption_log_likelihood(caption, V)(s[:, :5])


def _linear_caption_head(weight, bias, channels):
    """``conv1×1 → ReLU (features) → GAP → Dense(K, T·V)``: word logits ``z_t = W_t h + b_t`` (a linear decoder)."""
    conv = Conv2D(channels, channels, 1)
    conv.weight, conv.bias = np.eye(channels)[:, :, None, None], np.zeros(channels)
    head = Dense(channels, weight.shape[0])
    head.weight, head.bias = weight, bias
    return Graph([("conv", conv, "input"), ("features", ReLU(), "conv"), ("pool", GlobalAvgPool2D(), "features"),
                  ("words", head, "pool")])


def test_linear_caption_head_matches_its_closed_form():
    rng = np.random.default_rng(3)
    T, V, K = 3, 4, 5
    W, b = rng.normal(size=(T * V, K)), rng.normal(size=T * V)
    model = _linear_caption_head(W, b, K)
    x = rng.normal(size=(2, K, 6, 7))
    caption = np.array([2, 0, 3])
    for step in (None, 1):
        h = np.maximum(x, 0).mean(axis=(2, 3))
        z = (h @ W.T + b).reshape(2, T, V)
        p = np.exp(z) / np.exp(z).sum(axis=2, keepdims=True)
        dz = -p
        dz[:, np.arange(T), caption] += 1
        if step is not None:
            dz[:, [t for t in range(T) if t != step]] = 0
        alpha = dz.reshape(2, T * V) @ W / (6 * 7)
        want = _map(np.maximum(x, 0), alpha)
        got = xattr.grad_cam(model, x, caption_log_likelihood(caption, V, step), layer="features", upsample=False)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_a_word_map_lights_the_object_the_word_names():
    """Red object in channel 0, green in channel 1; words 1 = "red", 2 = "green", 3 = "."; the caption "red green .".
    The word "red" lights exactly the red object, "green" the green one, "." (not grounded in the image) nothing."""
    T, V, a = 3, 4, 5.0
    W1 = np.zeros((V, 2))
    W1[1, 0] = W1[2, 1] = a
    model = _linear_caption_head(np.tile(W1, (T, 1)), np.zeros(T * V), 2)
    x = np.zeros((1, 2, 10, 10))
    x[0, 0, 1:4, 2:5] = 1  # red square
    x[0, 1, 6:9, 5:9] = 1  # green rectangle
    caption = np.array([1, 2, 3])
    maps = [xattr.grad_cam(model, x, caption_log_likelihood(caption, V, t), upsample=False)[0, 0] for t in range(T)]
    assert np.array_equal(maps[0] > 0, x[0, 0] > 0)
    assert np.array_equal(maps[1] > 0, x[0, 1] > 0)
    assert not maps[2].any()
    whole = xattr.grad_cam(model, x, caption_log_likelihood(caption, V), upsample=False)[0, 0]
    assert (whole[x[0].sum(axis=0) > 0] >= 0).all()


@pytest.mark.parametrize("target", [0, 2, 3])
def test_policy_value_grad_cam_is_the_finite_difference_map(target):
    """Action logits 0..2 and the value (column 3) of a random actor-critic net."""
    model = policy_value_net(frames=4, actions=3, size=8, channels=4, hidden=10, rng=5)
    x = np.random.default_rng(6).random((2, 4, 8, 8))
    a, alpha = _fd_alpha(model, x, "features", lambda s: s[:, target])
    cam = xattr.grad_cam(model, x, target, layer="features", upsample=False)
    np.testing.assert_allclose(cam, _map(a, alpha), rtol=1e-6, atol=1e-9)


def _hand_set_agent(S):
    """The ball channel ``ReLU(f3 − f2)`` (what moved in), the static channel ``ReLU(f0 + f1 + f2 + f3 − 3)``; hidden
    units: ball in the upper half, ball in the lower half, static things; "up" = upper, "stay" = 0, "down" = lower;
    value = static things."""
    model = policy_value_net(frames=4, actions=3, size=S, channels=2, hidden=3, rng=0)
    w1 = np.zeros((2, 4, 3, 3))
    w1[0, 3, 1, 1], w1[0, 2, 1, 1] = 1, -1
    w1[1, :, 1, 1] = 1
    model["conv1"].weight, model["conv1"].bias = w1, np.array([0.0, -3.0])
    w2 = np.zeros((2, 2, 3, 3))
    w2[0, 0, 1, 1] = w2[1, 1, 1, 1] = 1
    model["conv2"].weight, model["conv2"].bias = w2, np.zeros(2)
    ball = np.zeros((2, S, S))
    fc = np.zeros((3, 2 * S * S))
    upper = ball.copy()
    upper[0, : S // 2] = 1
    lower = ball.copy()
    lower[0, S // 2:] = 1
    static = ball.copy()
    static[1] = 1
    fc[0], fc[1], fc[2] = upper.ravel(), lower.ravel(), static.ravel()
    model["fc"].weight, model["fc"].bias = fc, np.zeros(3)
    model["policy"].weight, model["policy"].bias = np.array([[1.0, 0, 0], [0, 0, 0], [0, 1, 0]]), np.zeros(3)
    model["value"].weight, model["value"].bias = np.array([[0, 0, 1.0]]), np.zeros(1)
    return model


def _frames(S, row, col):
    """Four frames: a 2×2 ball moving down-right one pixel per frame, ending at (row, col); a static 1×4 paddle."""
    f = np.zeros((1, 4, S, S))
    for k in range(4):
        r, c = row - (3 - k), col - (3 - k)
        f[0, k, r:r + 2, c:c + 2] = 1
    f[0, :, S - 2, 1:5] = 1  # the paddle, in every frame
    return f


@pytest.mark.parametrize("row,col", [(4, 5), (5, 9), (3, 12), (9, 6), (11, 10), (12, 4)])
def test_action_map_follows_the_ball_and_value_map_the_paddle(row, col):
    S = 16
    model = _hand_set_agent(S)
    x = _frames(S, row, col)
    ball = np.zeros((S, S), dtype=bool)
    ball[row:row + 2, col:col + 2] = True
    paddle = np.zeros((S, S), dtype=bool)
    paddle[S - 2, 1:5] = True
    action = 0 if row + 1 < S // 2 else 2  # "up" when the ball is in the upper half, "down" in the lower
    assert model.forward(x)[0, :3].argmax() == action
    act = xattr.grad_cam(model, x, action, layer="features", upsample=False)[0, 0]
    assert act.max() > 0 and (act[~ball] == 0).all()  # the ball only (its new pixels), not the paddle
    val = xattr.grad_cam(model, x, 3, layer="features", upsample=False)[0, 0]
    assert val.max() > 0 and np.array_equal(val > 0, paddle)


def test_the_docs_page_examples_run_and_give_the_shapes():
    import re
    from pathlib import Path

    page = Path(__file__).resolve().parents[1] / "docs" / "cam.md"
    scope = {}
    exec("\n".join(re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S)), scope)  # noqa: S102
    assert scope["whole"].shape == scope["word2"].shape == (3, 1, 8, 8)
    assert scope["act"].shape == scope["value"].shape == (2, 1, 12, 12)
