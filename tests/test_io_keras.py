"""from_keras (xattr/io/_keras.py): Keras 3 .keras files read with h5py, no TensorFlow.

* Files written by the ``keras`` package (torch backend, in a subprocess: this process never imports Keras), read
  back: xattr's scores equal Keras's own ``predict`` to float32 round-off.
* Hand-made files (config.json + model.weights.h5 written here with h5py): the layouts checked against a
  channels-last NumPy reference written from Keras's definitions (NHWC convolution, NHWC flatten), and every refusal.
"""
import importlib.util
import io
import json
import os
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from scipy.special import softmax

from extras import need  # tests/extras.py: optional packages of the test suite

h5py = need("h5py", reason="from_keras needs h5py: pip install 'xattr-ref[keras]'")
from xattr.io import ConversionError, from_keras  # noqa: E402
from xattr.nn import Concat, Graph, Sequential  # noqa: E402

HERE = Path(__file__).resolve().parent


# -- files written by Keras ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keras_dir(tmp_path_factory):
    if importlib.util.find_spec("keras") is None:
        pytest.skip("the round trip needs the keras package (any backend; torch is used): pip install keras")
    out = tmp_path_factory.mktemp("keras")
    env = {**os.environ, "KERAS_BACKEND": "torch", "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    run = subprocess.run([sys.executable, str(HERE / "keras_models.py"), str(out)], env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return out


def _nchw(x):
    return np.asarray(x, dtype=np.float64).transpose(0, 3, 1, 2)


@pytest.mark.parametrize("name,kwargs", [("dag", {}), ("chain", {}), ("zoo", {}), ("open", {"input_shape": (11, 13)}),
                                         ("gap_cnn", {})])
def test_scores_equal_keras_predict_to_float32_round_off(keras_dir, name, kwargs):
    data = np.load(keras_dir / f"{name}.npz")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = from_keras(keras_dir / f"{name}.keras", **kwargs)
    scores = model(_nchw(data["x"]))
    if name == "dag":  # its softmax was dropped, with a warning
        assert any("final softmax" in str(w.message) for w in caught)
        scores = softmax(scores, axis=1)
    ref = data["y"]
    assert scores.shape == ref.shape
    err = np.abs(scores - ref).max() / np.abs(ref).max()
    assert err < 2e-6, err  # Keras computes in float32
    assert isinstance(model, Graph if name == "dag" else Sequential)


def test_node_names_are_keras_names_and_fused_activations_split(keras_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dag = from_keras(keras_dir / "dag.keras")
    assert dag.output == "probs"
    for n in ("stem", "stem/pre_activation", "dw", "bn", "dw_relu", "add", "cat", "grouped", "pool", "flat"):
        assert n in dag, n
    assert dag.inputs_of("stem") == ("stem/pre_activation",)
    assert dag["stem/pre_activation"].pads == ((0, 1), (0, 1))  # TF's SAME at stride 2 on 10 pixels
    assert dag["dw"].groups == 4 and dag["dw"].out_channels == 8 and dag["grouped/pre_activation"].groups == 2
    assert isinstance(dag["cat"], Concat) and dag.inputs_of("add") == ("stem", "project")


def test_an_open_input_size_needs_input_shape_only_where_padding_depends_on_it(keras_dir):
    with pytest.raises(ConversionError, match=r"layer 's2' \(Conv2D\): padding='same' with stride 2 needs the "
                                              r"input's size.*input_shape=\(H, W\)"):
        from_keras(keras_dir / "open.keras")
    with pytest.raises(ConversionError, match="contradicts"):
        from_keras(keras_dir / "chain.keras", input_shape=(10, 10))


# -- hand-made files -------------------------------------------------------------------------------------
def _snake(name):
    import re

    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def write_keras(path, config, weights, names=True, extra_files=None, drop=()):
    """A .keras zip: ``config`` (config.json) and ``weights`` = [(class, layer name, [arrays])] in model.layers
    order (h5 groups ``layers/<snake class>[_k]/vars/<i>``, the layer name as attribute if ``names``)."""
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        layers, used = f.create_group("layers"), {}
        for cls, lname, arrays in weights:
            base = _snake(cls)
            key = base if base not in used else f"{base}_{used[base] + 1}"
            used[base] = used.get(base, -1) + 1
            g = layers.create_group(key).create_group("vars")
            if names:
                g.attrs["name"] = lname
            for i, a in enumerate(arrays):
                g.create_dataset(str(i), data=np.asarray(a, dtype=np.float32))
        f.create_group("vars")
    files = {"metadata.json": json.dumps({"keras_version": "3.x"}), "config.json": json.dumps(config),
             "model.weights.h5": buf.getvalue(), **(extra_files or {})}
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in files.items():
            if n not in drop:
                zf.writestr(n, data)
    return path


def layer(cls, name, **cfg):
    return {"class_name": cls, "config": {"name": name, **cfg}}


def sequential(layers, shape):
    return {"class_name": "Sequential", "config": {"name": "s", "layers": [
        layer("InputLayer", "in", batch_shape=[None, *shape])] + layers}}


def tensor(name):
    return {"class_name": "__keras_tensor__", "config": {"keras_history": [name, 0, 0]}}


def functional(layers, inputs="in", output=None):
    """``layers`` = [(layer dict, [input names])]; the first InputLayer is added."""
    out = []
    for lc, ins in layers:
        args = [tensor(ins[0])] if len(ins) == 1 else [[tensor(i) for i in ins]]
        out.append({**lc, "name": lc["config"]["name"], "inbound_nodes": [{"args": args, "kwargs": {}}]})
    return {"class_name": "Functional", "config": {
        "name": "f", "layers": out, "input_layers": [inputs, 0, 0],
        "output_layers": [output or layers[-1][0]["config"]["name"], 0, 0]}}


def nhwc_conv(x, k, bias, stride, pads, dilation=1):
    """Keras's Conv2D written out: out[n, i, j, o] = Σ_abc xpad[n, i s + a d, j s + b d, c] K[a, b, c, o] + bias."""
    (t, b), (l, r) = pads
    xp = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)))
    kh, kw = k.shape[:2]
    Ho = (xp.shape[1] - dilation * (kh - 1) - 1) // stride + 1
    Wo = (xp.shape[2] - dilation * (kw - 1) - 1) // stride + 1
    out = np.zeros((x.shape[0], Ho, Wo, k.shape[3]))
    for i in range(Ho):
        for j in range(Wo):
            patch = xp[:, i * stride:i * stride + dilation * (kh - 1) + 1:dilation,
                       j * stride:j * stride + dilation * (kw - 1) + 1:dilation, :]
            out[:, i, j] = np.einsum("nabc,abco->no", patch, k)
    return out + bias


def test_conv_flatten_dense_layouts_against_a_channels_last_reference(tmp_path):
    """OIHW from (kh, kw, in, out); TF SAME at stride 2 on 6 pixels pads (0, 1); the Dense after a Flatten of NHWC."""
    g = np.random.default_rng(0)
    K, b = g.normal(size=(3, 3, 2, 3)).astype(np.float32), g.normal(size=3).astype(np.float32)
    D, c = g.normal(size=(3 * 3 * 3, 4)).astype(np.float32), g.normal(size=4).astype(np.float32)
    cfg = sequential([layer("Conv2D", "conv", filters=3, kernel_size=[3, 3], strides=[2, 2], padding="same",
                            activation="linear", use_bias=True),
                      layer("Flatten", "flat"),
                      layer("Dense", "dense", units=4, activation="linear", use_bias=True)], (6, 6, 2))
    path = write_keras(tmp_path / "m.keras", cfg, [("Conv2D", "conv", [K, b]), ("Flatten", "flat", []),
                                                     ("Dense", "dense", [D, c])])
    x = g.normal(size=(2, 6, 6, 2))
    # out = ceil(6 / 2) = 3; total padding (3 - 1)·2 + 3 - 6 = 1: none on top/left, one at the bottom/right
    ref = nhwc_conv(x, K.astype(np.float64), b, 2, ((0, 1), (0, 1))).reshape(2, -1) @ D.astype(np.float64) + c
    model = from_keras(path)
    np.testing.assert_allclose(model(_nchw(x)), ref, rtol=1e-12, atol=1e-12)
    # the same file without the layer names in the h5 groups: found by their position in model.layers
    path2 = write_keras(tmp_path / "m2.keras", cfg, [("Conv2D", "conv", [K, b]), ("Flatten", "flat", []),
                                                       ("Dense", "dense", [D, c])], names=False)
    np.testing.assert_array_equal(from_keras(path2)(_nchw(x)), model(_nchw(x)))


def test_depthwise_multiplier_and_batchnorm_against_the_reference(tmp_path):
    g = np.random.default_rng(1)
    Kd = g.normal(size=(3, 3, 2, 3)).astype(np.float32)  # 2 channels, multiplier 3
    bd = g.normal(size=6).astype(np.float32)
    gamma, beta = g.uniform(0.5, 1.5, 6).astype(np.float32), g.normal(size=6).astype(np.float32)
    mean, var = g.normal(size=6).astype(np.float32), g.uniform(0.5, 2, 6).astype(np.float32)
    cfg = sequential([layer("DepthwiseConv2D", "dw", kernel_size=[3, 3], strides=[1, 1], padding="valid",
                            depth_multiplier=3, activation="relu6", use_bias=True),
                      layer("BatchNormalization", "bn", axis=-1, epsilon=0.01, center=True, scale=True),
                      layer("GlobalAveragePooling2D", "gap")], (5, 5, 2))
    path = write_keras(tmp_path / "d.keras", cfg, [("DepthwiseConv2D", "dw", [Kd, bd]),
                                                     ("BatchNormalization", "bn", [gamma, beta, mean, var]),
                                                     ("GlobalAveragePooling2D", "gap", [])])
    x = g.normal(size=(2, 5, 5, 2))
    # TF's depthwise output channel c·mult + m is input channel c through kernel [:, :, c, m]
    z = np.concatenate([nhwc_conv(x[..., c:c + 1], Kd[:, :, c:c + 1, :].astype(np.float64), 0, 1, ((0, 0), (0, 0)))
                        for c in range(2)], axis=-1) + bd
    z = np.clip(z, 0, 6)
    z = (z - mean) / np.sqrt(var.astype(np.float64) + 0.01) * gamma + beta
    model = from_keras(path)
    assert [type(model[n]).__name__ for n in model.order] == ["Conv2D", "ReLU6", "BatchNorm2D", "GlobalAvgPool2D"]
    np.testing.assert_allclose(model(_nchw(x)), z.mean(axis=(1, 2)), rtol=1e-6, atol=1e-7)  # float32 mean/var


def test_functional_merges_by_hand(tmp_path):
    g = np.random.default_rng(2)
    Ka, Kb = (g.normal(size=(1, 1, 2, 3)).astype(np.float32) for _ in range(2))
    D = g.normal(size=(6, 2)).astype(np.float32)
    cfg = functional([
        (layer("InputLayer", "in", batch_shape=[None, 4, 4, 2]), []),
        (layer("Conv2D", "a", filters=3, kernel_size=[1, 1], use_bias=False, activation="relu"), ["in"]),
        (layer("Conv2D", "b", filters=3, kernel_size=[1, 1], use_bias=False), ["in"]),
        (layer("Add", "sum"), ["a", "b"]),
        (layer("Concatenate", "cat", axis=-1), ["sum", "b"]),
        (layer("GlobalAveragePooling2D", "gap"), ["cat"]),
        (layer("Dense", "d", units=2, use_bias=False, activation="linear"), ["gap"]),
    ])
    cfg["config"]["layers"][0]["inbound_nodes"] = []
    path = write_keras(
        tmp_path / "f.keras",
        cfg,
        [
            ("InputLayer", "in", []),
            ("Conv2D", "a", [Ka]),
            ("Conv2D", "b", [Kb]),
            ("Add", "sum", []),
            ("Concatenate", "cat", []),
            ("GlobalAveragePooling2D", "gap", []),
            ("Dense", "d", [D]),
        ],
    )
    x = g.normal(size=(3, 4, 4, 2))
    a = np.maximum(x @ Ka[0, 0], 0)
    b = x @ Kb[0, 0]
    ref = np.concatenate([a + b, b], axis=-1).mean(axis=(1, 2)) @ D
    model = from_keras(path)
    assert isinstance(model, Graph) and model.inputs_of("sum") == ("a", "b")
    np.testing.assert_allclose(model(_nchw(x)), ref, rtol=1e-12)


# -- refusals ---------------------------------------------------------------------------------------------
def _one_layer(tmp_path, lc, weights=(), shape=(6, 6, 2), tail=True):
    layers = [lc] + ([layer("GlobalAveragePooling2D", "gap")] if tail else [])
    ws = [(lc["class_name"], lc["config"]["name"], list(weights))] + (
        [("GlobalAveragePooling2D", "gap", [])] if tail else []
    )
    return write_keras(tmp_path / "x.keras", sequential(layers, shape), ws)


def test_unknown_layers_options_and_structures_are_named(tmp_path):
    cases = [
        (layer("LSTM", "rnn", units=3), r"layer 'rnn' \(LSTM\) is not supported; supported layers: InputLayer"),
        (layer("Conv3D", "c3", filters=2), r"layer 'c3' \(Conv3D\) is not supported"),
        (layer("Conv2D", "cf", filters=2, kernel_size=[1, 1], data_format="channels_first"),
         r"data_format 'channels_first'"),
        (layer("Conv2D", "ce", filters=2, kernel_size=[1, 1], activation="elu"), r"activation 'elu' is not supported"),
        (layer("Conv2D", "cc", filters=2, kernel_size=[1, 1], padding="causal"), r"padding 'causal'"),
        (layer("AveragePooling2D", "ap", pool_size=[3, 3], strides=[1, 1], padding="same"),
         r"average pooling with padding='same' pads \(\(1, 1\), \(1, 1\)\)"),
        (layer("MaxPooling2D", "mp", pool_size=[2, 2], strides=[2, 2], padding="same"),
         r"pads \(\(0, 1\), \(0, 1\)\) asymmetrically"),
        (layer("ReLU", "r", threshold=0.5), r"threshold 0.5"),
        (layer("Activation", "sm", activation="softmax"), r"softmax is supported only on the model's output"),
    ]
    for lc, match in cases:
        shape = (5, 5, 2) if lc["config"]["name"] == "mp" else (6, 6, 2)
        path = _one_layer(tmp_path, lc, shape=shape)
        with pytest.raises(ConversionError, match=match):
            from_keras(path)


def test_structures_that_are_refused(tmp_path):
    flat_bn = sequential([layer("Flatten", "fl"), layer("BatchNormalization", "bn")], (2, 2, 1))
    with pytest.raises(ConversionError, match=r"layer 'bn' \(BatchNormalization\): reads a Flatten's output"):
        from_keras(write_keras(tmp_path / "a.keras", flat_bn, [("Flatten", "fl", []), ("BatchNormalization", "bn",
                                                                                         [np.ones(4)] * 4)]))
    nested = sequential([{"class_name": "Functional", "config": {"name": "inner", "layers": []}}], (2, 2, 1))
    with pytest.raises(ConversionError, match="nested models"):
        from_keras(write_keras(tmp_path / "b.keras", nested, []))
    shared = functional([(layer("InputLayer", "in", batch_shape=[None, 4, 4, 1]), []),
                         (layer("Conv2D", "c", filters=1, kernel_size=[1, 1], use_bias=False), ["in"])])
    shared["config"]["layers"][0]["inbound_nodes"] = []
    shared["config"]["layers"][1]["inbound_nodes"] *= 2
    with pytest.raises(ConversionError, match=r"layer 'c' \(Conv2D\) is called 2 times"):
        from_keras(
            write_keras(
                tmp_path / "c.keras", shared, [("InputLayer", "in", []), ("Conv2D", "c", [np.ones((1, 1, 1, 1))])]
            )
        )
    two_out = functional([(layer("InputLayer", "in", batch_shape=[None, 4, 4, 1]), []),
                          (layer("GlobalAveragePooling2D", "g"), ["in"])])
    two_out["config"]["output_layers"] = [["g", 0, 0], ["in", 0, 0]]
    with pytest.raises(ConversionError, match="2 outputs"):
        from_keras(write_keras(tmp_path / "d.keras", two_out, []))
    bad_weights = sequential([layer("Dense", "d", units=3)], (4,))
    with pytest.raises(ConversionError, match=r"layer 'd' \(Dense\): expected 2 weight array\(s\).*found 1"):
        from_keras(write_keras(tmp_path / "e.keras", bad_weights, [("Dense", "d", [np.ones((4, 3))])]))
    flat_out = sequential([layer("Flatten", "fl")], (2, 2, 3))
    with pytest.raises(ConversionError, match="output is a Flatten of a channels-last map"):
        from_keras(write_keras(tmp_path / "f.keras", flat_out, [("Flatten", "fl", [])]))


def test_files_that_are_not_keras_archives(tmp_path):
    (tmp_path / "t.keras").write_text("not a zip")
    with pytest.raises(ConversionError, match="not a zip file; legacy .h5 models"):
        from_keras(tmp_path / "t.keras")
    cfg = sequential([layer("GlobalAveragePooling2D", "gap")], (2, 2, 1))
    with pytest.raises(ConversionError, match=r"lacks \['model.weights.h5'\]"):
        from_keras(write_keras(tmp_path / "n.keras", cfg, [], drop=("model.weights.h5",)))
    with pytest.raises(FileNotFoundError):
        from_keras(tmp_path / "missing.keras")
    with pytest.raises(TypeError, match="path of a .keras file"):
        from_keras(b"bytes")
    other = {"class_name": "Bidirectional", "config": {"layers": [layer("GlobalAveragePooling2D", "gap")]}}
    with pytest.raises(ConversionError, match="only Sequential and Functional"):
        from_keras(write_keras(tmp_path / "o.keras", other, []))


def test_final_softmax_is_dropped_with_a_warning(tmp_path):
    D = np.random.default_rng(3).normal(size=(4, 3)).astype(np.float32)
    cfg = sequential([layer("Dense", "d", units=3, use_bias=False, activation="softmax")], (4,))
    path = write_keras(tmp_path / "s.keras", cfg, [("Dense", "d", [D])])
    with pytest.warns(UserWarning, match="final softmax of .*layer 'd' \\(Dense\\) was dropped"):
        model = from_keras(path)
    x = np.random.default_rng(4).normal(size=(2, 4))
    np.testing.assert_allclose(model.forward(x), x @ D.astype(np.float64), rtol=1e-12)  # the logits
