"""xattr.data.train: the loss, the optimiser and a tiny end-to-end training run.

Oracles: central differences for the loss gradient; Adam's first step in closed form
(``-lr · g / (|g| + eps)``, Kingma & Ba 2015, since the bias corrections cancel at t = 1).
"""
import numpy as np

from xattr.data.train import (
    Adam,
    NormalisedConv,
    fold_input_normalization,
    model_params,
    shapes_cnn,
    softmax_xent,
    train,
)


def test_softmax_xent_gradient_matches_central_differences():
    rng = np.random.default_rng(0)
    s, y = rng.normal(size=(3, 4)), np.array([0, 3, 1])
    loss, g = softmax_xent(s, y)
    p = np.exp(s) / np.exp(s).sum(1, keepdims=True)
    np.testing.assert_allclose(loss, -np.log(p[np.arange(3), y]).mean())
    eps = 1e-6
    fd = np.zeros_like(s)
    for idx in np.ndindex(*s.shape):
        d = np.zeros_like(s)
        d[idx] = eps
        fd[idx] = (softmax_xent(s + d, y)[0] - softmax_xent(s - d, y)[0]) / (2 * eps)
    np.testing.assert_allclose(g, fd, atol=1e-8)


def test_adam_first_step_closed_form_and_in_place():
    model = shapes_cnn((2, 3, 4), rng=0)
    w0 = model["dense1"].weight.copy()
    g = np.random.default_rng(1).normal(size=w0.shape)
    opt = Adam(model_params(model), lr=0.01)
    opt.step({("dense1", "weight"): g})
    np.testing.assert_allclose(model["dense1"].weight, w0 - 0.01 * g / (np.abs(g) + 1e-8), rtol=1e-12)


def _loss(model, x, y):
    return softmax_xent(model(x), y)[0]


def test_normalised_conv_is_a_reparametrisation_with_chain_rule_gradients():
    """Interior equivalence with a network on (x - m)/s, and ∂L/∂(W_n, b_n) against central differences."""
    rng = np.random.default_rng(5)
    model = shapes_cnn((2, 3, 4), rng=2, first_padding=1)
    conv = model.layers[0]
    ref = shapes_cnn((2, 3, 4), rng=2, first_padding=1)  # the same He weights read as W_n, acting on (x - m)/s
    pre = NormalisedConv.from_normalised_init(conv, 0.5, 0.25)
    np.testing.assert_allclose(pre.w_n, ref.layers[0].weight, rtol=1e-12)
    x = rng.random((2, 3, 10, 10))
    # away from the zero padding the raw layer equals the normalised one
    np.testing.assert_allclose(conv(x)[:, :, 1:-1, 1:-1], ref.layers[0]((x - 0.5) / 0.25)[:, :, 1:-1, 1:-1], atol=1e-12)
    y = np.array([1, 3])
    _, g = softmax_xent(model(x), y)
    grads = model.param_grads(x, g)[1][conv.name]
    dw_n, db_n = pre.grads(grads["weight"], grads["bias"])
    eps = 1e-6
    for arr, analytic, idx in [(pre.w_n, dw_n, (1, 2, 0, 1)), (pre.w_n, dw_n, (0, 0, 2, 2)), (pre.b_n, db_n, (1,))]:
        arr[idx] += eps
        pre.apply()
        up = _loss(model, x, y)
        arr[idx] -= 2 * eps
        pre.apply()
        down = _loss(model, x, y)
        arr[idx] += eps
        pre.apply()
        np.testing.assert_allclose(analytic[idx], (up - down) / (2 * eps), rtol=1e-6, atol=1e-9)


def test_training_records_its_run_and_is_deterministic():
    checkpoints = []
    model, meta = train(size=16, channels=(2, 3, 4), epochs=2, per_epoch=64, batch=32, lr=1e-2, n_test=20,
                        log=lambda s: None, checkpoint=lambda m, h: checkpoints.append(list(h)))
    assert len(checkpoints) == 2 and [h["epoch"] for h in meta["history"]] == [1, 2]
    assert 0 <= meta["test_accuracy"] <= 1 and meta["train_seconds"] > 0
    assert meta["data"]["train_images"] == 128 and meta["data"]["test_seed"] == 12345
    # the returned model takes raw pixels: the training normalisation is folded into conv1
    again, _ = train(
        size=16, channels=(2, 3, 4), epochs=2, per_epoch=64, batch=32, lr=1e-2, n_test=20, log=lambda s: None
    )
    x = np.random.default_rng(0).random((2, 3, 16, 16))
    assert model(x).tobytes() == again(x).tobytes()  # same seeds, same bits
    assert model.layers[0].pads == ((1, 1), (1, 1)) and meta["norm"] == "reparam"
    folded, meta_f = train(size=16, channels=(2, 3, 4), epochs=1, per_epoch=32, batch=32, n_test=20, log=lambda s: None,
                           norm="fold")
    assert folded.layers[0].pads == ((0, 0), (0, 0)) and meta_f["norm"] == "fold"


def test_fold_with_per_channel_statistics():
    model = shapes_cnn((3, 4, 5), rng=2, first_padding=0)
    x = np.random.default_rng(3).random((1, 3, 11, 11))
    mean, std = np.array([0.4, 0.5, 0.6]), np.array([0.2, 0.3, 0.25])
    want = model((x - mean[:, None, None]) / std[:, None, None])
    np.testing.assert_allclose(fold_input_normalization(model, mean, std)(x), want, rtol=1e-12, atol=1e-12)
