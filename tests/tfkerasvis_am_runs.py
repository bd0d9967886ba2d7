"""tf-keras-vis 0.8.7 ``ActivationMaximization`` runs for tests/test_tfkerasvis_am.py, in a process of their own.

``python tests/tfkerasvis_am_runs.py OUTDIR`` builds the GAP CNN of tests/keras_models.py in float64 (random weights),
saves it as ``OUTDIR/gap.keras`` (xattr reads it with ``xattr.io.from_keras``), runs ``ActivationMaximization`` from
a fixed seed image with the random input modifiers switched off (``input_modifiers=[]``: its Jitter and Rotate2D draw
from NumPy's and an unseeded generator) and writes to ``OUTDIR/am.npz``, per run: the final (clipped) image, and per
step the scores and each regulariser's value recorded by a callback; plus the regularisers' values and gradients on
fixed images (``TotalVariation2D``, ``Norm``).  TensorFlow stays out of the pytest process (see
tests/tfkerasvis_runs.py).
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402

T = [1, 3]
STEPS = 12


def main(outdir):
    import keras
    import tensorflow as tf
    from tf_keras_vis.activation_maximization import ActivationMaximization
    from tf_keras_vis.activation_maximization.callbacks import Callback
    from tf_keras_vis.activation_maximization.regularizers import Norm, TotalVariation2D
    from tf_keras_vis.utils.model_modifiers import ExtractIntermediateLayer
    from tf_keras_vis.utils.scores import CategoricalScore

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from keras_models import gap_cnn, randomize

    keras.config.set_dtype_policy("float64")
    keras.config.set_floatx("float64")
    km = randomize(gap_cnn(keras), 7)
    km.save(os.path.join(outdir, "gap.keras"))
    rng = np.random.default_rng(7)
    seed01 = rng.uniform(0.0, 1.0, (2, 12, 12, 3))
    seed255 = rng.uniform(0.0, 255.0, (2, 12, 12, 3))
    out = {"seed01": seed01, "seed255": seed255}

    class Record(Callback):
        """Scores and regularisers at the iterate each step's gradient was taken at."""

        def __init__(self, tag):
            self.tag, self.scores, self.regs = tag, [], {}

        def __call__(self, i, values, grads, scores, model_outputs, regularizations=None, **kwargs):
            self.scores.append(np.asarray(scores[0]))
            for name, value in regularizations:
                self.regs.setdefault(name, []).append(np.asarray(value))

        def on_end(self):
            out[f"{self.tag}/scores"] = np.array(self.scores)
            for name, values in self.regs.items():
                out[f"{self.tag}/reg/{name}"] = np.array(values)

    def run(tag, optimizer, seed, input_range, regularizers, score=None, modifier=None):
        am = ActivationMaximization(km, model_modifier=modifier) if modifier else ActivationMaximization(km)
        image = am(score or CategoricalScore(T), seed_input=seed, input_range=input_range, input_modifiers=[],
                   regularizers=regularizers, steps=STEPS, optimizer=optimizer, callbacks=[Record(tag)])
        out[f"{tag}/image"] = np.asarray(image)

    regs = [TotalVariation2D(weight=1.0), Norm(weight=0.3, p=1)]  # its defaults
    # the default optimizer (None: RMSprop(1.0, 0.999)) on its default input range (0, 255)
    run("default", None, seed255, (0.0, 255.0), regs)
    run("sgd", keras.optimizers.SGD(learning_rate=2.0), seed01, (0.0, 1.0), regs)
    run("rmsprop", keras.optimizers.RMSprop(learning_rate=0.01, rho=0.999), seed01, (0.0, 1.0), regs)
    run("adam", keras.optimizers.Adam(learning_rate=0.01), seed01, (0.0, 1.0), regs)
    # a hidden channel: the model cut at block2_relu, the score the mean of channel 2 over positions
    run("channel", keras.optimizers.SGD(learning_rate=2.0), seed01, (0.0, 1.0),
        [TotalVariation2D(weight=0.5), Norm(weight=0.3, p=2)], score=lambda output: output[..., 2],
        modifier=ExtractIntermediateLayer("block2_relu"))

    # the regularisers alone: value and gradient per image (a batch of the two seeds and the zero image)
    images = np.concatenate([seed01, np.zeros((1, 12, 12, 3))])
    for name, reg in (("tv", TotalVariation2D(weight=1.0)), ("norm1", Norm(weight=1.0, p=1)),
                      ("norm2", Norm(weight=1.0, p=2))):
        x = tf.Variable(images)
        with tf.GradientTape() as tape:
            value = reg(x)
        out[f"regularizer/{name}/value"] = np.asarray(value)
        out[f"regularizer/{name}/grad"] = np.asarray(tape.gradient(value, x))
    np.savez(os.path.join(outdir, "am.npz"), **out)


if __name__ == "__main__":
    main(sys.argv[1])
