"""xattr.data.train: the loss, the optimiser and a tiny end-to-end training run.

Oracles: central differences for the loss gradient; Adam's first step in closed form
(``-lr · g / (|g| + eps)``, Kingma & Ba 2015, since the bias corrections cancel at t = 1).
"""
import numpy as np

from xattr.data.train import Adam, fold_input_normalization, shapes_cnn, softmax_xent, train


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
    opt = Adam(model, lr=0.01)
    opt.step({"dense1": {"weight": g}})
    np.testing.assert_allclose(model["dense1"].weight, w0 - 0.01 * g / (np.abs(g) + 1e-8), rtol=1e-12)


def test_training_records_its_run_and_is_deterministic():
    checkpoints = []
    model, meta = train(size=16, channels=(2, 3, 4), epochs=2, per_epoch=64, batch=32, lr=1e-2, n_test=20,
                        log=lambda s: None, checkpoint=lambda m, h: checkpoints.append(list(h)))
    assert len(checkpoints) == 2 and [h["epoch"] for h in meta["history"]] == [1, 2]
    assert 0 <= meta["test_accuracy"] <= 1 and meta["train_seconds"] > 0
    assert meta["data"]["train_images"] == 128 and meta["data"]["test_seed"] == 12345
    # the returned model takes raw pixels: the training normalisation is folded into conv1
    again, _ = train(size=16, channels=(2, 3, 4), epochs=2, per_epoch=64, batch=32, lr=1e-2, n_test=20, log=lambda s: None)
    x = np.random.default_rng(0).random((2, 3, 16, 16))
    assert model(x).tobytes() == again(x).tobytes()  # same seeds, same bits


def test_fold_with_per_channel_statistics():
    model = shapes_cnn((3, 4, 5), rng=2)
    x = np.random.default_rng(3).random((1, 3, 11, 11))
    mean, std = np.array([0.4, 0.5, 0.6]), np.array([0.2, 0.3, 0.25])
    want = model((x - mean[:, None, None]) / std[:, None, None])
    np.testing.assert_allclose(fold_input_normalization(model, mean, std)(x), want, rtol=1e-12, atol=1e-12)
