"""xattr.io.from_onnx: graphs built with onnx.helper and graphs exported by torch, every refusal path.

Oracles: onnx's own reference evaluator (``onnx.reference``, pure NumPy, float64) for the
hand-built graphs; the torch module itself for exported ones.  Scores agree to 1e-10.
"""
import io as _io
import sys
import warnings

import numpy as np
import pytest

from xattr.io import ConversionError, from_onnx

from extras import need  # tests/extras.py: optional packages of the test suite


@pytest.fixture(scope="module")
def onnx():
    return need("onnx", "xattr.io.from_onnx")


def _graph(onnx, nodes, inits, in_shape, out_name="y", opset=17, out_rank=2):
    h = onnx.helper
    tensors = [onnx.numpy_helper.from_array(np.asarray(v, dtype=np.float64 if np.asarray(v).dtype.kind == "f" else np.int64), k)
               for k, v in inits.items()]
    graph = h.make_graph(
        nodes, "g", [h.make_tensor_value_info("x", onnx.TensorProto.DOUBLE, [None] + list(in_shape[1:]))],
        [h.make_tensor_value_info(out_name, onnx.TensorProto.DOUBLE, [None] * out_rank)], initializer=tensors,
    )
    return h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])


def _reference_scores(onnx, model, x):
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(model).run(None, {"x": x})[0]


def _chain_models(onnx):
    """Hand-built graphs covering every supported operator and attribute form."""
    rng = np.random.default_rng(0)
    n = onnx.helper.make_node
    out = []
    # 1: Conv (pads) - Relu - MaxPool - Conv (SAME_UPPER) - BatchNormalization - Relu - GlobalAveragePool - Flatten - Gemm (transB)
    inits = dict(w1=rng.normal(size=(4, 3, 3, 3)), b1=rng.normal(size=4), w2=rng.normal(size=(5, 4, 2, 2)),
                 s=rng.random(5) + 0.5, bb=rng.normal(size=5), m=rng.normal(size=5), v=rng.random(5) + 0.5,
                 wd=rng.normal(size=(3, 5)), bd=rng.normal(size=3))
    nodes = [
        n("Conv", ["x", "w1", "b1"], ["a1"], name="conv1", pads=[1, 1, 1, 1]),
        n("Relu", ["a1"], ["a2"], name="relu1"),
        n("MaxPool", ["a2"], ["a3"], name="pool1", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        n("Conv", ["a3", "w2"], ["a4"], name="conv2", auto_pad="SAME_UPPER"),
        n("BatchNormalization", ["a4", "s", "bb", "m", "v"], ["a5"], name="bn", epsilon=1e-3),
        n("Relu", ["a5"], ["a6"], name="relu2"),
        n("GlobalAveragePool", ["a6"], ["a7"], name="gap"),
        n("Flatten", ["a7"], ["a8"], name="flat", axis=1),
        n("Gemm", ["a8", "wd", "bd"], ["y"], name="fc", transB=1, alpha=0.5, beta=2.0),
    ]
    out.append(("gemm-transB", _graph(onnx, nodes, inits, (2, 3, 8, 8)), (2, 3, 8, 8)))
    # 2: Conv (stride, dilation, no bias) - AveragePool (pads) - Dropout - Reshape - MatMul + Add - Relu - Gemm (no transB) - Identity
    inits = dict(w1=rng.normal(size=(3, 2, 2, 2)), shape=np.array([-1, 3 * 3 * 3]),
                 wm=rng.normal(size=(27, 4)), bm=rng.normal(size=4), wg=rng.normal(size=(4, 2)))
    nodes = [
        n("Conv", ["x", "w1"], ["a1"], strides=[2, 2], dilations=[2, 1]),
        n("AveragePool", ["a1"], ["a2"], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1], count_include_pad=1),
        n("Dropout", ["a2"], ["a3"]),
        n("Reshape", ["a3", "shape"], ["a4"]),
        n("MatMul", ["a4", "wm"], ["a5"], name="mm"),
        n("Add", ["bm", "a5"], ["a6"], name="mm_bias"),
        n("Relu", ["a6"], ["a7"]),
        n("Gemm", ["a7", "wg"], ["a8"]),
        n("Identity", ["a8"], ["y"]),
    ]
    out.append(("matmul-add", _graph(onnx, nodes, inits, (2, 2, 8, 6)), (2, 2, 8, 6)))
    # 3: ReduceMean (axes as input, opset 18) instead of GlobalAveragePool, a Constant node for the weight
    w = rng.normal(size=(2, 1, 3, 3))
    nodes = [
        n("Constant", [], ["w"], value=onnx.numpy_helper.from_array(w, "w")),
        n("Conv", ["x", "w"], ["a1"]),
        n("Relu", ["a1"], ["a2"]),
        n("ReduceMean", ["a2", "axes"], ["a3"], keepdims=1),
        n("Flatten", ["a3"], ["y"]),
    ]
    out.append(("reducemean", _graph(onnx, nodes, dict(axes=np.array([-2, -1])), (3, 1, 6, 6), opset=18), (3, 1, 6, 6)))
    return out


@pytest.mark.oracle
@pytest.mark.parametrize("case", range(3))
def test_hand_built_graphs_match_onnx_reference_evaluator(onnx, case):
    name, model, shape = _chain_models(onnx)[case]
    x = np.random.default_rng(case).normal(size=shape)
    ref = _reference_scores(onnx, model, x)
    xm = from_onnx(model.SerializeToString())
    scores = xm.forward(x)
    assert scores.dtype == np.float64
    np.testing.assert_allclose(scores, ref.reshape(scores.shape), rtol=1e-10, atol=1e-12 * np.abs(ref).max())


@pytest.mark.oracle
def test_path_source_names_and_bias_folding(onnx, tmp_path):
    _, model, _ = _chain_models(onnx)[1]
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    xm = from_onnx(path)
    assert xm.names == ["node0", "node1", "node2", "node3", "mm", "node6", "node7"]  # Add folded, Identity skipped
    dense = xm["mm"]  # MatMul + Add became one Dense with the bias
    assert dense.bias is not None and dense.weight.shape == (4, 27)
    assert from_onnx(str(path)).names == xm.names


@pytest.mark.oracle
def test_final_softmax_is_dropped_with_a_warning(onnx):
    n = onnx.helper.make_node
    model = _graph(onnx, [n("Flatten", ["x"], ["f"]), n("Gemm", ["f", "w"], ["s"], name="fc"),
                          n("Softmax", ["s"], ["y"], name="prob")],
                   dict(w=np.ones((4, 2))), (1, 1, 2, 2))
    with pytest.warns(UserWarning, match="final Softmax .*'prob'.* was dropped"):
        xm = from_onnx(model)
    x = np.arange(8.0).reshape(2, 1, 2, 2)
    np.testing.assert_allclose(xm.forward(x), x.reshape(2, 4) @ np.ones((4, 2)))


def _bad_graphs(onnx):
    n = onnx.helper.make_node
    w = dict(w=np.ones((1, 1, 3, 3)))
    return [
        ([n("Tanh", ["x"], ["y"], name="squash")], {}, "unsupported operator 'Tanh' at node 0 'squash'"),
        ([n("Conv", ["x", "w"], ["y"], name="c", group=1, pads=[0, 0, 1, 1])], w, "asymmetric pads"),
        ([n("Conv", ["x", "w"], ["y"], name="c", strides=[2, 2], auto_pad="SAME_UPPER")], w, "auto_pad=SAME_UPPER"),
        ([n("MaxPool", ["x"], ["y"], name="p", kernel_shape=[2, 2], ceil_mode=1)], {}, "ceil_mode=1"),
        ([n("AveragePool", ["x"], ["y"], name="p", kernel_shape=[3, 3], pads=[1, 1, 1, 1])], {},
         "count_include_pad=0"),
        ([n("Relu", ["x"], ["a"]), n("Relu", ["x"], ["b"]), n("Add", ["a", "b"], ["y"], name="skip")], {},
         "not take the running data tensor"),
        ([n("Softmax", ["x"], ["a"], name="sm"), n("Relu", ["a"], ["y"])], {}, "only supported as the final node"),
        ([n("Flatten", ["x"], ["y"], axis=2)], {}, "axis=1"),
        ([n("Relu", ["x"], ["a"]), n("Add", ["a", "c"], ["y"], name="add")], dict(c=np.ones(1)),
         "only supported as the bias"),
        ([n("ReduceMean", ["x"], ["y"], axes=[1], keepdims=1)], {}, "spatial axes"),
        ([n("Conv", ["x", "x"], ["y"], name="selfconv")], {}, "selfconv"),
    ]


@pytest.mark.oracle
@pytest.mark.parametrize("case", range(11))
def test_unsupported_graphs_name_operator_and_node(onnx, case):
    nodes, inits, msg = _bad_graphs(onnx)[case]
    model = _graph(onnx, nodes, inits, (1, 1, 4, 4), opset=17, out_rank=4)
    with pytest.raises(ConversionError) as info:
        from_onnx(model)
    assert msg in str(info.value)


@pytest.mark.oracle
def test_corrupt_and_missing_files(onnx, tmp_path):
    _, model, _ = _chain_models(onnx)[0]
    data = model.SerializeToString()
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(ConversionError, match="truncated.onnx' is not a valid ONNX model"):
        from_onnx(bad)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf \x00\xff\xfe" * 10)
    with pytest.raises(ConversionError, match="not a valid ONNX model"):
        from_onnx(junk)
    with pytest.raises(ConversionError, match="not a valid ONNX model"):
        from_onnx(b"")
    with pytest.raises(FileNotFoundError):
        from_onnx(tmp_path / "absent.onnx")
    with pytest.raises(TypeError, match="path, bytes or an onnx.ModelProto, got int"):
        from_onnx(3)


# --- torch-exported models -------------------------------------------------------------

def _torch_module(torch):
    nn = torch.nn
    torch.manual_seed(0)
    m = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, stride=1, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Dropout(0.2),
        nn.Conv2d(6, 6, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3),
    ).double().eval()
    with torch.no_grad():
        m[1].running_mean.uniform_(-0.5, 0.5)
        m[1].running_var.uniform_(0.5, 1.5)
    return m


@pytest.mark.oracle
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript-exporter", "dynamo-exporter"])
def test_torch_export_round_trip(onnx, dynamo):
    torch = need("torch", "the torch -> ONNX round trips")
    if dynamo:
        need("onnxscript", "torch's dynamo ONNX exporter")
    module = _torch_module(torch)
    x = np.random.default_rng(1).normal(size=(2, 3, 8, 8))
    buf = _io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            prog = torch.onnx.export(module, (torch.from_numpy(x[:1]),), dynamo=True, verbose=False)
            buf.write(prog.model_proto.SerializeToString())
        else:
            torch.onnx.export(module, (torch.from_numpy(x[:1]),), buf, dynamo=False,
                              input_names=["x"], dynamic_axes={"x": {0: "n"}})
    xm = from_onnx(buf.getvalue())
    ref = module(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(xm.forward(x), ref, rtol=1e-10, atol=1e-12 * np.abs(ref).max())


def test_missing_onnx_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"pip install 'xattr-ref\[onnx\]'"):
        from_onnx(b"")
