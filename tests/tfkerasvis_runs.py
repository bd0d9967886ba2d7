"""tf-keras-vis runs for tests/test_tfkerasvis.py, in a process of their own.

``python tests/tfkerasvis_runs.py OUTDIR`` builds the Keras models of tests/keras_models.py (float64 and float32
weights), saves them as ``.keras`` files, runs tf-keras-vis 0.8.7 on them and writes every map to
``OUTDIR/maps.npz`` (and the errors it raises to ``OUTDIR/errors.json``).  TensorFlow is never imported into the
pytest process: TensorFlow 2.21 and torch's compiler stack (torch._dynamo / triton, imported by torchvision) crash
(segmentation fault) when both are loaded in one process, in either order.
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["KERAS_BACKEND"] = "tensorflow"

import numpy as np  # noqa: E402

T = [1, 3]


def main(outdir):
    import keras
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.layercam import Layercam
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from keras_models import dag, gap_cnn, randomize

    maps, errors, models = {}, {}, {}
    for dtype in ("float64", "float32"):
        keras.config.set_dtype_policy(dtype)
        keras.config.set_floatx(dtype)  # the Input layer's dtype
        for name, make, shape, seed in (("gap", gap_cnn, (12, 12, 3), 5), ("dag", dag, (10, 10, 3), 6)):
            km = randomize(make(keras), seed)
            key = f"{name}_{dtype}"
            km.save(os.path.join(outdir, f"{key}.keras"))
            x = np.random.default_rng(seed).normal(size=(2,) + shape).astype(dtype)
            maps[f"x/{key}"] = x
            maps[f"scores/{key}"] = np.asarray(km(x))
            models[key] = (km, x)

    def run(tag, cls, key, layer, score=T, images=None, modifier=None, **kw):
        km, x = models[key]
        x = x if images is None else x[images]
        try:
            vis = cls(km, model_modifier=modifier) if modifier is not None else cls(km)
            opts = dict(penultimate_layer=layer, seek_penultimate_conv_layer=False) if layer else {}
            out = vis(CategoricalScore(score), x, **{"expand_cam": False, "normalize_cam": False, **opts, **kw})
            maps[tag] = np.asarray(out)
        except Exception as exc:  # recorded: some failures are the point of a test
            errors[tag] = f"{type(exc).__name__}: {exc}"

    classes = {"gradcam": Gradcam, "gradcampp": GradcamPlusPlus, "layercam": Layercam}
    for key, layer in (("gap_float64", "block2_relu"), ("gap_float64", "block1_conv"), ("dag_float64", "add"),
                       ("dag_float64", "grouped")):
        for cname, cls in classes.items():
            modifier = ReplaceToLinear() if key.startswith("dag") else None
            run(f"{cname}/{key}/{layer}", cls, key, layer, modifier=modifier)
    run("gradcam/gap_float64/default", Gradcam, "gap_float64", None)
    run("gradcampp/gap_float64/block2_relu/display", GradcamPlusPlus, "gap_float64", "block2_relu",
        expand_cam=True, normalize_cam=True)
    run("gradcam/dag_float64/add/softmax", Gradcam, "dag_float64", "add")  # no ReplaceToLinear
    run("scorecam/gap_float32/block2_relu", Scorecam, "gap_float32", "block2_relu", batch_size=7)
    run("scorecam/gap_float64/block2_relu", Scorecam, "gap_float64", "block2_relu")
    for n in range(2):
        run(f"fasterscorecam/gap_float32/block2_relu/image{n}", Scorecam, "gap_float32", "block2_relu",
            score=[T[n]], images=slice(n, n + 1), max_N=2)
    run("fasterscorecam/gap_float32/block2_relu/batch", Scorecam, "gap_float32", "block2_relu", max_N=2)
    # Saliency (vanilla) and its SmoothGrad, whose noise comes from NumPy's global generator: seeded here, redrawn
    # by the test with the same seed and shapes
    from tf_keras_vis.saliency import Saliency

    for key in ("gap_float64", "dag_float64"):
        km, x = models[key]
        sal = Saliency(km, model_modifier=ReplaceToLinear()) if key.startswith("dag") else Saliency(km)
        try:
            maps[f"saliency/{key}"] = np.asarray(sal(CategoricalScore(T), x, normalize_map=False))
            np.random.seed(0)  # noqa: NPY002 - tf-keras-vis draws its noise from NumPy's global generator
            maps[f"smoothgrad/{key}"] = np.asarray(sal(CategoricalScore(T), x, smooth_samples=4, smooth_noise=0.2,
                                                       normalize_map=False))
        except Exception as exc:  # noqa: BLE001 - recorded for the test to report
            errors[f"saliency/{key}"] = f"{type(exc).__name__}: {exc}"
    # exp(S) in float32: logits shifted by +200 (the map is NaN) -- the shift is undone afterwards
    km, _ = models["gap_float32"]
    dense = km.get_layer("logits")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel, bias + 200.0])
    run("gradcampp/gap_float32/block2_relu/shifted200", GradcamPlusPlus, "gap_float32", "block2_relu")
    dense.set_weights([kernel, bias])

    np.savez(os.path.join(outdir, "maps.npz"), **maps)
    with open(os.path.join(outdir, "errors.json"), "w") as fh:
        json.dump(errors, fh, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
