"""Keras models written by the ``keras`` package itself, for tests/test_io_keras.py and tests/test_tfkerasvis.py.

Run as a script (``python tests/keras_models.py OUTDIR``) in a subprocess with ``KERAS_BACKEND=torch``: the test
process never imports Keras (its backend is fixed at first import, and TensorFlow's tests need their own).  For each
model it writes ``<name>.keras`` and ``<name>.npz`` with a channels-last input ``x`` and Keras's own ``predict``.
Every weight is drawn at random (non-trivial batch-norm statistics included), float32 as Keras stores them.
"""
import sys

import numpy as np


def randomize(model, seed):
    """Random weights for every variable (positive variances), so that nothing is an identity by accident."""
    g = np.random.default_rng(seed)
    new = []
    for w in model.weights:
        shape = tuple(w.shape)
        if "variance" in w.path:
            new.append(g.uniform(0.5, 2.0, shape))
        elif "gamma" in w.path:
            new.append(g.uniform(0.5, 1.5, shape))
        else:
            fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 10
            new.append(g.normal(0.0, np.sqrt(2.0 / max(fan_in, 1)), shape))
    model.set_weights([a.astype("float32") for a in new])
    return model


def dag(keras):
    """Functional: TF "same" at stride 2 (asymmetric), depthwise (multiplier 2), batch norm, Add and Concatenate
    merges, grouped conv, max-pool, Flatten -> Dropout -> Dense with a final softmax."""
    L = keras.layers
    inp = keras.Input((10, 10, 3), name="image")
    x = L.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="stem")(inp)
    y = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(x)
    y = L.BatchNormalization(name="bn")(y)
    y = L.ReLU(name="dw_relu")(y)
    z = L.Conv2D(4, 1, name="project")(y)
    s = L.Add(name="add")([x, z])
    c = L.Concatenate(name="cat")([s, x])
    c = L.Conv2D(6, 3, padding="same", groups=2, activation="relu", name="grouped")(c)
    c = L.MaxPooling2D(2, name="pool")(c)
    f = L.Flatten(name="flat")(c)
    f = L.Dropout(0.3, name="drop")(f)
    out = L.Dense(5, activation="softmax", name="probs")(f)
    return keras.Model(inp, out, name="dag")


def chain(keras):
    """Sequential: activations as arguments and as layers, average pool, dilation, max-pool 'same' (symmetric
    here: 3x3 stride 1), GAP, two dense layers."""
    L = keras.layers
    return keras.Sequential([
        keras.Input((9, 9, 2)),
        L.Conv2D(5, 3, activation="swish", name="c1"),
        L.AveragePooling2D(2, strides=1, name="avg"),
        L.Conv2D(4, 3, dilation_rate=2, padding="same", name="c2"),
        L.LeakyReLU(negative_slope=0.1, name="leaky"),
        L.MaxPooling2D(3, strides=1, padding="same", name="mp"),
        L.Activation("hard_swish", name="hsw"),
        L.Conv2D(6, 1, activation="gelu", name="c3"),
        L.GlobalAveragePooling2D(name="gap"),
        L.Dense(7, activation="tanh", name="d1"),
        L.Dense(3, name="logits"),
    ], name="chain")


def zoo(keras):
    """Every supported activation name once, on 4-D and 2-D tensors."""
    L = keras.layers
    inp = keras.Input((6, 6, 3))
    x = inp
    for act in ["relu6", "sigmoid", "tanh", "softplus", "hard_sigmoid", "silu", "leaky_relu", "relu", "hard_silu"]:
        x = L.Conv2D(3, 3, padding="same", activation=act, name=f"conv_{act}")(x)
    x = L.ReLU(max_value=6.0, name="relu6_layer")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dense(4, activation="gelu", name="d_gelu")(x)
    x = L.Activation("sigmoid", name="sig")(x)
    out = L.Dense(2, name="out")(x)
    return keras.Model(inp, out, name="zoo")


def open_size(keras):
    """Input (None, None, 3): stride-1 'same' convs need no size; the model reads any image size."""
    L = keras.layers
    inp = keras.Input((None, None, 3))
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="c")(inp)
    x = L.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="s2")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, L.Dense(3, name="out")(x), name="open")


def gap_cnn(keras):
    """The workshop's shape of model: conv blocks, the last conv's ReLU, GAP, dense logits (for tf-keras-vis)."""
    L = keras.layers
    inp = keras.Input((12, 12, 3))
    x = L.Conv2D(6, 3, padding="same", activation="relu", name="block1_conv")(inp)
    x = L.MaxPooling2D(2, name="block1_pool")(x)
    x = L.Conv2D(8, 3, padding="same", name="block2_conv")(x)
    x = L.BatchNormalization(name="block2_bn")(x)
    x = L.ReLU(name="block2_relu")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, L.Dense(5, name="logits")(x), name="gap_cnn")


MODELS = {"dag": (dag, (10, 10, 3)), "chain": (chain, (9, 9, 2)), "zoo": (zoo, (6, 6, 3)),
          "open": (open_size, (11, 13, 3)), "gap_cnn": (gap_cnn, (12, 12, 3))}


def write(outdir, names=None):
    import keras

    for k, name in enumerate(names or MODELS):
        make, shape = MODELS[name]
        model = randomize(make(keras), seed=k + 1)
        x = np.random.default_rng(100 + k).normal(size=(3,) + shape).astype("float32")
        model.save(f"{outdir}/{name}.keras")
        np.savez(f"{outdir}/{name}.npz", x=x, y=model.predict(x, verbose=0))


if __name__ == "__main__":
    write(sys.argv[1], sys.argv[2:] or None)
