"""The kundajelab ``deeplift`` package (0.6.13.0) on xattr's weights, for tests/test_deeplift_pkg.py, in a process of
its own.

``python tests/deeplift_runs.py CASES.npz OUT.npz`` reads the networks written by the test (a JSON layer list in
``spec`` and each layer's weights in xattr's layouts: dense ``(out, in)``, conv ``(O, I, kH, kW)``), builds each with
the package's own layer classes (``deeplift.layers`` + ``deeplift.models.SequentialModel``, channels-first, float32 as
the package requires), runs every requested ``NonlinearMxtsMode`` against every reference and writes the requested
contribution scores or input multipliers to ``OUT.npz`` as ``<net>/<mode>/<reference>/{contribs,mults}``; for the
``Gradient`` mode also its integrated gradients (``deeplift.util.get_integrated_gradients_function``) as
``<net>/IG/<ref>``, and for each net its scores (``<net>/scores``).

TensorFlow stays out of the pytest process: TensorFlow 2.21 and torch's compiler stack (torch._dynamo / triton,
imported by torchvision) crash when loaded into one process (see tests/tfkerasvis_runs.py).
"""
import contextlib
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # plain Eigen kernels: the same round-off on every machine

import numpy as np  # noqa: E402


def load_deeplift():
    """Import the package with TensorFlow's TF1 API in place of the ``tf`` it imports.

    deeplift 0.6.13.0 writes TF1 graph code against the top-level ``tf`` (``tf.placeholder``, ``tf.Session``,
    ``tf.assign``, ``tf.scatter_update``, ``tf.nn.conv2d(filter=...)``); TensorFlow 2 keeps exactly that API under
    ``tf.compat.v1`` and ``disable_v2_behavior()`` restores TF1 semantics (graph mode, reference variables, whose
    ``assign`` result ``scatter_update`` needs).  That is TensorFlow's documented migration step
    (``import tensorflow.compat.v1 as tf; tf.disable_v2_behavior()``), applied here by rebinding the module-level name
    ``tf`` in each of the package's modules after import (no module-level statement of the package calls TF).  Nothing
    else is changed: every rule the tests compare is the package's own code.
    """
    import tensorflow as tf

    tf.compat.v1.disable_v2_behavior()
    import deeplift.layers  # noqa: F401  (imports util, core, activations, convolutional, pooling, normalization)
    import deeplift.models  # noqa: F401
    import deeplift.util

    for name, module in list(sys.modules.items()):
        if name == "deeplift" or name.startswith("deeplift."):
            if getattr(module, "tf", None) is tf:
                module.tf = tf.compat.v1
    return deeplift


@contextlib.contextmanager
def fresh_session(deeplift):
    """A new default graph and session for the next model.

    The package adds ops to the default graph on every call (``update_task_vector`` builds a new ``assign`` and
    ``scatter_update`` each time), so one graph for all the models here grows into the thousands of nodes and each
    ``Session.run`` re-extends it (most of a minute).  ``deeplift.util.get_session`` returns its module-level
    ``_SESS`` when Keras has no TF1 session (Keras 3 has none), so a new graph needs a new ``_SESS``.
    """
    import tensorflow as tf

    graph = tf.Graph()
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)
    config.graph_options.rewrite_options.disable_meta_optimizer = True  # no grappler pass before every new run
    with graph.as_default(), tf.compat.v1.Session(graph=graph, config=config) as sess:
        deeplift.util._SESS = sess
        yield
    deeplift.util._SESS = None


def build(deeplift, layers, weights, net, input_shape, mode):
    """A ``SequentialModel`` of the package's layers from the JSON layer list (xattr layouts in ``weights``)."""
    L = deeplift.layers
    out = [L.Input(batch_shape=(None,) + tuple(input_shape), name="input")]
    for i, spec in enumerate(layers):
        kind, name = spec["kind"], f"{spec['kind']}{i}"
        if kind == "conv":
            w = weights[f"{net}/{i}/W"].transpose(2, 3, 1, 0)  # (O, I, kH, kW) -> (kH, kW, I, O)
            out.append(L.Conv2D(kernel=w, bias=weights[f"{net}/{i}/b"], strides=(1, 1), padding=spec["padding"],
                                data_format="channels_first", conv_mxts_mode=L.ConvMxtsMode.Linear, name=name))
        elif kind == "dense":
            out.append(L.Dense(kernel=weights[f"{net}/{i}/W"].T, bias=weights[f"{net}/{i}/b"],
                               dense_mxts_mode=L.DenseMxtsMode.Linear, name=name))
        elif kind in ("relu", "sigmoid"):
            cls = L.ReLU if kind == "relu" else L.Sigmoid
            out.append(cls(nonlinear_mxts_mode=getattr(L.NonlinearMxtsMode, mode), name=name, verbose=False))
        elif kind == "maxpool":
            out.append(L.MaxPool2D(pool_size=(2, 2), strides=(2, 2), padding="VALID", data_format="channels_first",
                                   maxpool_deeplift_mode=L.MaxPoolDeepLiftMode.gradient, name=name, verbose=False))
        elif kind == "flatten":
            out.append(L.Flatten(name=name))
        else:
            raise ValueError(f"unknown layer kind {kind!r}")
    deeplift.util.connect_list_of_layers(out)
    out[-1].build_fwd_pass_vars()
    return deeplift.models.SequentialModel(out)


def main(cases, out):
    deeplift = load_deeplift()
    data = dict(np.load(cases))
    spec = json.loads(str(data.pop("spec")))
    result, errors = {}, {}
    for net, s in spec.items():
        x = data[f"{net}/x"].astype("float32")
        weights = {k: v.astype("float32") for k, v in data.items() if k.startswith(f"{net}/")}
        for mode in s["modes"]:
            with fresh_session(deeplift):
                model = build(deeplift, s["layers"], weights, net, x.shape[1:], mode)
                makers = {"contribs": model.get_target_contribs_func, "mults": model.get_target_multipliers_func}
                funcs = {kind: makers[kind](find_scores_layer_idx=0, target_layer_idx=-1) for kind in s["kinds"][mode]}
                for ref in s["refs"]:
                    r = data[f"{net}/ref/{ref}"].astype("float32")
                    for kind, fn in funcs.items():
                        result[f"{net}/{mode}/{ref}/{kind}"] = np.asarray(
                            fn(task_idx=s["target"], input_data_list=[x], input_references_list=[r], batch_size=64,
                               progress_update=None))
                    if mode == "Gradient":
                        ig = deeplift.util.get_integrated_gradients_function(funcs["mults"], s["ig_steps"])
                        result[f"{net}/IG/{ref}"] = np.asarray(
                            ig(task_idx=s["target"], input_data_list=[x], input_references_list=[r], batch_size=64))
                if mode == s["modes"][0]:
                    layers = model.get_layers()  # the scores through the package's own graph
                    scores = deeplift.util.compile_func([layers[0].get_activation_vars()],
                                                        layers[-1].get_activation_vars())
                    result[f"{net}/scores"] = np.asarray(scores([x]))
                    try:  # its own prediction function calls ``B.function``, ``B`` never imported (0.6.13.0)
                        model.get_prediction_function(input_layer_idx=0, output_layer_idx=-1)
                    except Exception as exc:  # noqa: BLE001 - recorded for the test
                        errors[f"{net}/get_prediction_function"] = f"{type(exc).__name__}: {exc}"
    np.savez(out, errors=json.dumps(errors), **result)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
