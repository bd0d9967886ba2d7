"""Train the shipped ``shapes`` CNN with xattr's own layer stack: ``python -m xattr.data.train``.

The network is conv-ReLU-maxpool ×2, conv-ReLU, global average pooling and a dense layer
(:func:`shapes_cnn`), the head CAM needs (Zhou et al. 2016).  Its parameter gradients come
from :meth:`xattr.nn.Sequential.param_grads` (the stack's ``gradient`` rule), the loss is the
mean softmax cross-entropy, and the optimiser is Adam (Kingma & Ba 2015, their defaults
``beta1 = 0.9, beta2 = 0.999, eps = 1e-8``) with a cosine learning-rate decay
(Loshchilov & Hutter 2017), written below in NumPy.

Every epoch draws *fresh* images from :func:`xattr.data.make_shapes` (seed ``[seed, epoch]``),
so the model never sees an image twice; the held-out set is drawn from its own seed
(``test_seed``) and never trained on.  Training runs in float32 (half the memory traffic); the
weights are stored in float64.  The run writes the model with :func:`xattr.models.save` and
records the held-out accuracy, seeds, settings and wall time in the model file's ``meta``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from . import DEFAULT_SIZE, SHAPES, make_shapes

#: the settings the shipped model was trained with (``python -m xattr.data.train`` without arguments).
DEFAULTS = dict(
    size=DEFAULT_SIZE, channels=(8, 16, 32), epochs=12, per_epoch=16000, batch=32, lr=1e-2,
    seed=0, test_seed=12345, n_test=2000,
)

#: input normalisation ``(x - MEAN) / STD`` seen by the optimiser (pixels in [0, 1]).  Centred inputs
#: train much faster here (a 400-step trial: 54% vs 26% held-out accuracy at the same learning rate).
#: Two ways keep the shipped model on plain [0, 1] pixels (``norm=``):
#:
#: * ``"reparam"`` (default): the model *is* the raw-pixel network, zero padding everywhere; only the
#:   optimiser sees the first convolution through the normalised parametrisation
#:   ``W = W_n / STD``, ``b = b_n - Σ W_n · MEAN / STD`` (:class:`NormalisedConv`), so Adam's steps are
#:   those of a network on centred inputs while no function is changed after training;
#: * ``"fold"``: train on normalised inputs, then fold the normalisation into an *unpadded* first
#:   convolution (:func:`fold_input_normalization`; exact only without padding).
TRAIN_MEAN, TRAIN_STD = 0.5, 0.25
#: classes of the shapes data set (the demo CNN's outputs).
N_CLASSES = len(SHAPES)


def shapes_cnn(channels=(8, 16, 32), n_classes=N_CLASSES, in_channels=3, rng=0, first_padding=1):
    """The demo CNN: ``[conv3×3-ReLU-maxpool2] ×2, conv3×3-ReLU, GAP, dense``; inputs of at least 10×10.

    With ``first_padding=1`` every convolution keeps the size (32 -> 16 -> 8 for 32×32 inputs), so the
    8×8 maps CAM upsamples are aligned with the image; ``first_padding=0`` (32 -> 30 -> 15 -> 7) is
    what :func:`fold_input_normalization` needs.
    He-initialised convolutions (the layers' default), seeded by ``rng``.

    Parameters
    ----------
    channels : (int, int, int)
    n_classes : int
    in_channels : int
    rng : numpy.random.Generator or int
    first_padding : int

    Returns
    -------
    Sequential
    """
    from ..nn import Conv2D, Dense, GlobalAvgPool2D, MaxPool2D, ReLU, Sequential

    gen = np.random.default_rng(rng)
    c1, c2, c3 = channels
    return Sequential(
        Conv2D(in_channels, c1, 3, padding=first_padding, rng=gen), ReLU(), MaxPool2D(2),
        Conv2D(c1, c2, 3, padding=1, rng=gen), ReLU(), MaxPool2D(2),
        Conv2D(c2, c3, 3, padding=1, rng=gen), ReLU(), GlobalAvgPool2D(), Dense(c3, n_classes, rng=gen),
    )


def fold_input_normalization(model, mean, std):
    """Fold ``x -> (x - mean) / std`` into the model's first layer, an unpadded ``Conv2D`` (in place).

    ``W' = W / std`` and ``b'_o = b_o - Σ_{c,i,j} W[o, c, i, j] · mean_c / std_c``; exact because without
    padding every window sees only real pixels.  ``mean``, ``std``: scalars or per-channel ``(C,)``.

    Parameters
    ----------
    model : Sequential
    mean, std : float or ndarray ``(C,)``

    Returns
    -------
    Sequential
        ``model`` itself, changed in place.
    """
    from ..nn import Conv2D

    conv = model.layers[0]
    if not isinstance(conv, Conv2D) or conv.pads != ((0, 0), (0, 0)):
        raise ValueError("the first layer must be a Conv2D without padding to fold a normalisation into it exactly")
    conv.weight, conv.bias = _raw_from_normalised(conv.weight, conv.bias, mean, std)
    return model


def _raw_from_normalised(w_n, b_n, mean, std):
    """``(W, b)`` acting on pixels from ``(W_n, b_n)`` acting on ``(x - mean) / std``."""
    c = w_n.shape[1]
    mean = np.broadcast_to(np.asarray(mean, dtype=np.float64), (c,))
    std = np.broadcast_to(np.asarray(std, dtype=np.float64), (c,))
    w = w_n / std[None, :, None, None]
    b = (b_n if b_n is not None else 0.0) - np.einsum("oc,c->o", w.sum(axis=(2, 3)), mean)
    return w, b


class NormalisedConv:
    """The first convolution seen by the optimiser in the normalised parametrisation.

    The layer keeps acting on pixels: ``W = W_n / std``, ``b = b_n - Σ_{c,i,j} W_n[o,c,i,j] mean_c / std_c``.
    Away from the zero padding this is the same function as ``W_n ⋆ ((x - mean) / std) + b_n``, so
    optimising ``(W_n, b_n)`` is optimising a network on centred inputs (a preconditioning), yet the
    trained layer needs no fold.  Gradients by the chain rule:
    ``∂L/∂W_n = ∂L/∂W / std_c - ∂L/∂b_o · mean_c / std_c`` and ``∂L/∂b_n = ∂L/∂b``.
    """

    def __init__(self, conv, mean, std):
        self.conv = conv
        c = conv.in_channels
        self.inv_std = 1.0 / np.broadcast_to(np.asarray(std, dtype=np.float64), (c,))
        self.shift = np.broadcast_to(np.asarray(mean, dtype=np.float64), (c,)) * self.inv_std
        self.w_n = conv.weight / self.inv_std[None, :, None, None]
        self.b_n = conv.bias + np.einsum("ocij,c->o", self.w_n, self.shift)

    @classmethod
    def from_normalised_init(cls, conv, mean, std):
        """Read the layer's current (He) weights as ``W_n`` with ``b_n = 0`` and set the raw layer from them."""
        conv.weight, conv.bias = _raw_from_normalised(conv.weight, np.zeros(conv.out_channels), mean, std)
        return cls(conv, mean, std)

    def grads(self, dw, db):
        """``(∂L/∂W_n, ∂L/∂b_n)`` from the layer's ``(∂L/∂W, ∂L/∂b)``."""
        dw_n = dw * self.inv_std[None, :, None, None] - db[:, None, None, None] * self.shift[None, :, None, None]
        return dw_n, db

    def apply(self):
        """Write ``(W, b)`` of the current ``(W_n, b_n)`` into the layer."""
        self.conv.weight[...] = self.w_n * self.inv_std[None, :, None, None]
        self.conv.bias[...] = self.b_n - np.einsum("ocij,c->o", self.w_n, self.shift)


def softmax_xent(scores, labels):
    """Mean softmax cross-entropy and its gradient with respect to the scores ``(N, K)``.

    Parameters
    ----------
    scores : ndarray ``(N, K)``
    labels : int array ``(N,)``

    Returns
    -------
    loss : float
    grad : ndarray ``(N, K)``
    """
    z = scores - scores.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    n = len(labels)
    loss = -logp[np.arange(n), labels].mean()
    g = np.exp(logp)
    g[np.arange(n), labels] -= 1.0
    return float(loss), g / n


class Adam:
    """Adam (Kingma & Ba 2015) over a dict ``{key: ndarray}`` of parameters, updated in place."""

    def __init__(self, params, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        self.params, self.lr, self.beta1, self.beta2, self.eps = params, lr, beta1, beta2, eps
        self.t = 0
        self.m, self.v = {}, {}

    def step(self, grads, lr=None):
        """One step with ``grads`` ``{key: ndarray}`` (the keys of ``params``)."""
        lr = self.lr if lr is None else lr
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        for key, g in grads.items():
            g = np.asarray(g, dtype=np.float64)
            m = self.m[key] = b1 * self.m.get(key, 0.0) + (1 - b1) * g
            v = self.v[key] = b2 * self.v.get(key, 0.0) + (1 - b2) * g * g
            mhat, vhat = m / (1 - b1**self.t), v / (1 - b2**self.t)
            self.params[key][...] -= lr * mhat / (np.sqrt(vhat) + self.eps)


def model_params(model):
    """``{(layer name, "weight" | "bias"): array}``: the model's own parameter arrays (not copies)."""
    return {(layer.name, p): getattr(layer, p) for layer in model for p in layer.params}


def accuracy(model, images, labels, batch=500):
    """Fraction of ``images`` whose arg-max score is the label (evaluated in chunks).

    Parameters
    ----------
    model : model protocol object
    images : ndarray ``(N, C, H, W)``
    labels : int array ``(N,)``
    batch : int

    Returns
    -------
    float
    """
    hits = 0
    for a in range(0, len(labels), batch):
        hits += int((model.forward(images[a : a + batch]).argmax(axis=1) == labels[a : a + batch]).sum())
    return hits / len(labels)


def train(size=DEFAULTS["size"], channels=DEFAULTS["channels"], epochs=DEFAULTS["epochs"],
          per_epoch=DEFAULTS["per_epoch"], batch=DEFAULTS["batch"], lr=DEFAULTS["lr"], seed=DEFAULTS["seed"],
          test_seed=DEFAULTS["test_seed"], n_test=DEFAULTS["n_test"], log=print, checkpoint=None, init=None,
          first_epoch=0, norm="reparam"):
    """Train :func:`shapes_cnn` on fresh synthetic shapes; returns ``(model, meta dict)``.

    ``norm``: ``"reparam"`` or ``"fold"`` (see :data:`TRAIN_MEAN`).
    ``checkpoint(model, history)``, if given, is called after every epoch (with the model as trained:
    for ``"fold"`` the unfolded one, which expects normalised inputs).
    ``init``: such a model to continue training instead of a fresh :func:`shapes_cnn`;
    ``first_epoch`` numbers the epochs (and so their data seeds ``[seed, epoch]``) from there, so a
    continued run sees fresh images.
    The returned model takes [0, 1] pixels; ``meta["test_accuracy"]`` is measured on it, in float64,
    on the held-out set.

    Parameters
    ----------
    size : int
        The image side.
    channels : (int, int, int)
    epochs, per_epoch, batch : int
    lr : float
    seed, test_seed : int
    n_test : int
    log : callable ``str -> None``
    checkpoint : callable ``(model, history) -> None``, optional
    init : Sequential, optional
    first_epoch : int
    norm : ``"reparam"`` or ``"fold"``

    Returns
    -------
    (Sequential, dict)
    """
    if norm not in ("reparam", "fold"):
        raise ValueError(f"norm must be 'reparam' or 'fold', got {norm!r}")
    if init is not None:
        model = init
    else:
        model = shapes_cnn(channels, rng=seed, first_padding=1 if norm == "reparam" else 0)
    params = model_params(model)
    pre = None
    if norm == "reparam":
        conv = model.layers[0]
        pre = NormalisedConv(conv, TRAIN_MEAN, TRAIN_STD) if init is not None else \
            NormalisedConv.from_normalised_init(conv, TRAIN_MEAN, TRAIN_STD)
        params[(conv.name, "weight")], params[(conv.name, "bias")] = pre.w_n, pre.b_n
        prepare = lambda x: x.astype(np.float32)  # noqa: E731
    else:
        prepare = lambda x: ((x - TRAIN_MEAN) / TRAIN_STD).astype(np.float32)  # noqa: E731
    opt = Adam(params, lr=lr)
    test = make_shapes(n_test, rng=test_seed, size=size, dtype=np.float32)
    test_x = prepare(test.images)
    steps_per_epoch = per_epoch // batch
    total = epochs * steps_per_epoch
    t0 = time.perf_counter()
    history = []
    for epoch in range(epochs):
        data = make_shapes(steps_per_epoch * batch, rng=np.random.default_rng([seed, first_epoch + epoch]), size=size,
                           dtype=np.float32)
        losses = []
        for s in range(steps_per_epoch):
            sl = slice(s * batch, (s + 1) * batch)
            x, y = prepare(data.images[sl]), data.labels[sl]
            scores = model.forward(x)
            loss, g = softmax_xent(scores.astype(np.float64), y)
            _, grads = model.param_grads(x, g.astype(np.float32))
            grads = {(lname, p): gp for lname, pg in grads.items() for p, gp in pg.items()}
            if pre is not None:
                key_w, key_b = (pre.conv.name, "weight"), (pre.conv.name, "bias")
                grads[key_w], grads[key_b] = pre.grads(grads[key_w], grads[key_b])
            step = epoch * steps_per_epoch + s
            opt.step(grads, lr * 0.5 * (1 + np.cos(np.pi * step / total)))  # cosine decay to 0
            if pre is not None:
                pre.apply()
            losses.append(loss)
        acc = accuracy(model, test_x, test.labels)
        history.append({"epoch": first_epoch + epoch + 1, "loss": float(np.mean(losses)), "test_accuracy": acc})
        log(
            f"epoch {first_epoch + epoch + 1}/{first_epoch + epochs}: loss {np.mean(losses):.4f}, held-out accuracy "
            f"{acc:.4f}, "
            f"{time.perf_counter() - t0:.0f} s"
        )
        if checkpoint is not None:
            checkpoint(model, history)
    seconds = time.perf_counter() - t0
    if norm == "fold":
        fold_input_normalization(model, TRAIN_MEAN, TRAIN_STD)
    acc = accuracy(model, test.images.astype(np.float64), test.labels)  # the shipped form, on raw pixels
    meta = {
        "trained_by": "python -m xattr.data.train",
        "data": {
            "generator": "xattr.data.make_shapes",
            "size": size,
            "classes": list(SHAPES),
            "train_seed": seed,
            "train_images": epochs * steps_per_epoch * batch,
            "first_epoch": first_epoch,
            "test_seed": test_seed,
            "test_images": n_test,
        },
        "settings": {
            "channels": list(channels),
            "epochs": epochs,
            "batch": batch,
            "optimizer": "Adam (Kingma & Ba 2015)",
            "lr": lr,
            "schedule": "cosine to 0",
            "loss": "softmax cross-entropy",
            "dtype": "float32",
        },
        "normalization": (
            f"optimiser sees the first conv in the parametrisation of inputs (x - {TRAIN_MEAN}) / {TRAIN_STD}"
            if norm == "reparam"
            else f"(x - {TRAIN_MEAN}) / {TRAIN_STD} during training, folded into the unpadded first conv"
        ),
        "norm": norm,
        "test_accuracy": acc,
        "train_seconds": round(seconds, 3),  # ms resolution: small test runs take < 0.05 s
        "history": history,
    }
    return model, meta


def main(argv=None):
    """``python -m xattr.data.train``: train the demo CNN on synthetic shapes with xattr's own layers and save it.

    Parameters
    ----------
    argv : list of str, optional

    Returns
    -------
    int
        The exit status.
    """
    p = argparse.ArgumentParser(
        prog="python -m xattr.data.train",
        description="Train the demo CNN on synthetic shapes with xattr's own layers and save it.",
    )
    p.add_argument("--out", default=None, help="NAME of the saved model (default: the package's shipped 'shapes')")
    p.add_argument("--size", type=int, default=DEFAULTS["size"], help="image side (default %(default)s)")
    p.add_argument("--channels", type=int, nargs=3, default=DEFAULTS["channels"], help="conv widths (default 8 16 32)")
    p.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    p.add_argument("--per-epoch", type=int, default=DEFAULTS["per_epoch"], help="fresh images per epoch")
    p.add_argument("--batch", type=int, default=DEFAULTS["batch"])
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    p.add_argument("--test-seed", type=int, default=DEFAULTS["test_seed"])
    p.add_argument("--n-test", type=int, default=DEFAULTS["n_test"])
    p.add_argument("--checkpoint", default=None, help="NAME to save the model to after every epoch (optional)")
    p.add_argument("--init", default=None, help="continue from a checkpoint NAME written by --checkpoint")
    p.add_argument("--first-epoch", type=int, default=0,
                   help="number of epochs already done (with --init): later epochs draw fresh data seeds")
    p.add_argument("--norm", choices=("reparam", "fold"), default="reparam",
                   help="how inputs are centred for the optimiser (default reparam; see the module docstring)")
    a = p.parse_args(argv)
    from .. import models

    out = a.out or os.path.join(models.SHIPPED_DIR, "shapes")
    spec = models.default_input_spec(3, a.size, a.size)

    # a "fold" checkpoint is the unfolded model and declares the normalisation; a "reparam" one takes pixels
    ckpt_spec = dict(spec, mean=[TRAIN_MEAN] * 3, std=[TRAIN_STD] * 3) if a.norm == "fold" else spec

    def checkpoint(model, history):
        models.save(model, a.checkpoint, input_spec=ckpt_spec, classes=list(SHAPES),
                    meta={"history": before + history, "norm": a.norm})

    init, before = None, []
    if a.init:
        init, info = models.load_with_info(a.init)
        if info.input.get("mean") != ckpt_spec["mean"] or info.input.get("std") != ckpt_spec["std"]:
            raise SystemExit(
                f"--init {a.init!r} is not a --norm {a.norm} training checkpoint (its declared normalisation differs)"
            )
        before = info.meta.get("history", [])
    model, meta = train(a.size, tuple(a.channels), a.epochs, a.per_epoch, a.batch, a.lr, a.seed, a.test_seed, a.n_test,
                        checkpoint=checkpoint if a.checkpoint else None, init=init, first_epoch=a.first_epoch,
                        norm=a.norm)
    if a.init:
        meta["history"] = before + meta["history"]
        meta["continued_from"] = {"checkpoint_epochs": len(before), "lr": a.lr, "epochs": a.epochs}
    path = models.save(model, out, input_spec=spec, classes=list(SHAPES), meta=meta)
    print(f"held-out accuracy {meta['test_accuracy']:.4f} on {a.n_test} images (seed {a.test_seed}); "
          f"{meta['train_seconds']} s; wrote {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
