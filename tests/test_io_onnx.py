"""xattr.io.from_onnx: graphs built with onnx.helper and graphs exported by both torch exporters; every refusal.

Oracles: onnx's own reference evaluator (``onnx.reference``, pure NumPy, float64) for the hand-built graphs;
the torch module itself for exported ones (scores agree to 1e-10 relative).  The zoo's layers (AdaptiveAvgPool2D
for a squeeze-and-excitation gate, Pad2D, ceil-mode pools) are checked both ways: converted when ``xattr.nn`` has
them, refused naming the layer when not.
"""
import inspect
import io as _io
import sys
import warnings

import numpy as np
import pytest

import xattr
from xattr.io import ConversionError, from_onnx

from extras import need  # noqa: E402  (tests/extras.py: optional packages of the test suite)

onnx = need("onnx", reason="onnx is an optional extra: pip install 'xattr-ref[onnx]'")
pytestmark = pytest.mark.oracle
HAS_ADAPTIVE = hasattr(xattr.nn, "AdaptiveAvgPool2D")
HAS_PAD = hasattr(xattr.nn, "Pad2D")
HAS_CEIL = "ceil_mode" in inspect.signature(xattr.nn.MaxPool2D.__init__).parameters


def _graph(nodes, inits, in_shape, out_name="y", opset=17, out_rank=2):
    h = onnx.helper
    tensors = [
        onnx.numpy_helper.from_array(
            np.asarray(v, dtype=np.float64 if np.asarray(v).dtype.kind == "f" else np.int64), k
        )
        for k, v in inits.items()
    ]
    graph = h.make_graph(
        nodes, "g", [h.make_tensor_value_info("x", onnx.TensorProto.DOUBLE, [None] + list(in_shape[1:]))],
        [h.make_tensor_value_info(out_name, onnx.TensorProto.DOUBLE, [None] * out_rank)], initializer=tensors,
    )
    return h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])


def _reference_scores(model, x):
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(model).run(None, {"x": x})[0]


def _hand_built():
    """(name, model, input shape, needs): graphs covering every supported operator and attribute form."""
    rng = np.random.default_rng(0)
    n = onnx.helper.make_node
    out = []
    # Conv (pads) - Relu - MaxPool - Conv (SAME_UPPER) - BatchNormalization - Relu - GlobalAveragePool - Flatten - Gemm
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
    out.append(("gemm-transB", _graph(nodes, inits, (2, 3, 8, 8)), (2, 3, 8, 8), True))
    # Conv (stride, dilation, no bias) - AveragePool (pads) - Dropout - Reshape - MatMul + Add - Relu - Gemm - Identity
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
    out.append(("matmul-add", _graph(nodes, inits, (2, 2, 8, 6)), (2, 2, 8, 6), True))
    # ReduceMean (axes as input, opset 18) instead of GlobalAveragePool, a Constant node for the weight
    w = rng.normal(size=(2, 1, 3, 3))
    nodes = [
        n("Constant", [], ["w"], value=onnx.numpy_helper.from_array(w, "w")),
        n("Conv", ["x", "w"], ["a1"]),
        n("Relu", ["a1"], ["a2"]),
        n("ReduceMean", ["a2", "axes"], ["a3"], keepdims=1),
        n("Flatten", ["a3"], ["y"]),
    ]
    out.append(("reducemean", _graph(nodes, dict(axes=np.array([-2, -1])), (3, 1, 6, 6), opset=18), (3, 1, 6, 6), True))
    # a residual block: grouped conv with asymmetric pads, Add of two branches, Clip(0, 6), a conv bias given by an
    # Add of a constant, SAME_LOWER, weights behind Identity nodes (how the TorchScript exporter shares them)
    inits = dict(w0=rng.normal(size=(4, 2, 3, 3)), wg=rng.normal(size=(4, 2, 3, 3)), cb=rng.normal(size=(1, 4, 1, 1)),
                 w3=rng.normal(size=(4, 4, 2, 2)), wd=rng.normal(size=(4, 3)), lo=np.array(0.0), hi=np.array(6.0))
    nodes = [
        n("Identity", ["w0"], ["w0i"]),
        n("Conv", ["x", "w0i"], ["a1"], name="stem", pads=[1, 1, 1, 1]),
        n("Relu", ["a1"], ["a2"], name="stem_relu"),
        n("Conv", ["a2", "wg"], ["b1"], name="grouped", group=2, pads=[0, 1, 2, 1], strides=[1, 1]),
        n("Conv", ["b1", "w3"], ["b2"], name="lower", auto_pad="SAME_LOWER"),
        n("Add", ["b2", "cb"], ["b3"], name="lower_bias"),
        n("Add", ["b3", "a2"], ["c1"], name="skip"),
        n("Clip", ["c1", "lo", "hi"], ["c2"], name="relu6"),
        n("GlobalAveragePool", ["c2"], ["c3"]),
        n("Squeeze", ["c3", "sq"], ["c4"], name="squeeze"),
        n("Gemm", ["c4", "wd"], ["y"], name="fc"),
    ]
    inits["sq"] = np.array([2, 3])
    out.append(("residual", _graph(nodes, inits, (2, 2, 6, 6)), (2, 2, 6, 6), True))
    # concatenation and the activations: Concat, LeakyRelu, PRelu, Tanh, Softplus, Gelu (opset 20), Clip(-1, 2),
    # x * Sigmoid(x) (SiLU), x * HardSigmoid(x) (Hardswish), HardSwish, a gating Mul of two full maps
    inits = dict(w1=rng.normal(size=(3, 2, 1, 1)), w2=rng.normal(size=(3, 2, 3, 3)), sl=rng.random((3, 1, 1)),
                 lo=np.array(-1.0), hi=np.array(2.0), wd=rng.normal(size=(2, 6 * 4 * 4)))
    nodes = [
        n("Conv", ["x", "w1"], ["p1"], name="p"), n("LeakyRelu", ["p1"], ["p2"], alpha=0.2, name="leaky"),
        n("PRelu", ["p2", "sl"], ["p3"], name="prelu"),
        n("Conv", ["x", "w2"], ["q1"], name="q", pads=[1, 1, 1, 1]), n("Tanh", ["q1"], ["q2"], name="tanh"),
        n("Concat", ["p3", "q2"], ["c"], axis=1, name="cat"),
        n("Sigmoid", ["c"], ["s"]), n("Mul", ["c", "s"], ["d"], name="silu"),
        n("HardSigmoid", ["d"], ["hs"], alpha=1 / 6, beta=0.5), n("Mul", ["hs", "d"], ["e"], name="hswish"),
        n("Softplus", ["e"], ["f"], name="softplus"), n("Gelu", ["f"], ["g"], name="gelu"),
        n("Clip", ["g", "lo", "hi"], ["h"], name="clamp"), n("HardSwish", ["h"], ["i"], name="hardswish"),
        n("Sigmoid", ["i"], ["gate"], name="gate"), n("Mul", ["i", "gate"], ["j"], name="gated"),
        n("Relu", ["gate"], ["gate2"], name="gate_relu"),
        n("Add", ["j", "gate2"], ["k"], name="sum"),
        n("Flatten", ["k"], ["fl"]), n("Gemm", ["fl", "wd"], ["y"], transB=1, name="fc"),
    ]
    out.append(("activations", _graph(nodes, inits, (2, 2, 4, 4), opset=20), (2, 2, 4, 4), True))
    # a squeeze-and-excitation gate: GlobalAveragePool (N, C, 1, 1) -> Conv 1x1 -> HardSigmoid -> Mul
    inits = dict(w=rng.normal(size=(3, 2, 3, 3)), we=rng.normal(size=(3, 3, 1, 1)), be=rng.normal(size=3),
                 wd=rng.normal(size=(2, 3)))
    nodes = [
        n("Conv", ["x", "w"], ["a"], pads=[1, 1, 1, 1], name="conv"), n("Relu", ["a"], ["b"], name="relu"),
        n("GlobalAveragePool", ["b"], ["p"], name="se_pool"), n("Conv", ["p", "we", "be"], ["q"], name="se_fc"),
        n("HardSigmoid", ["q"], ["s"], alpha=1 / 6, beta=0.5, name="se_gate"),
        n("Mul", ["s", "b"], ["c"], name="scale"),
        n("GlobalAveragePool", ["c"], ["g"], name="gap"), n("Flatten", ["g"], ["f"]),
        n("Gemm", ["f", "wd"], ["y"], transB=1, name="fc"),
    ]
    out.append(("squeeze-excitation", _graph(nodes, inits, (2, 2, 5, 5)), (2, 2, 5, 5), HAS_ADAPTIVE))
    # Pad (asymmetric, opset 11 form) before a stride-2 conv; ceil-mode pooling
    inits = dict(w=rng.normal(size=(3, 2, 3, 3)), pads=np.array([0, 0, 0, 0, 0, 0, 1, 1]))
    nodes = [
        n("Pad", ["x", "pads"], ["a"], name="pad"), n("Conv", ["a", "w"], ["b"], strides=[2, 2], name="conv"),
        n("MaxPool", ["b"], ["c"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1, name="pool"),
        n("Flatten", ["c"], ["y"]),
    ]
    out.append(("pad-ceil", _graph(nodes, inits, (2, 2, 8, 8)), (2, 2, 8, 8), HAS_PAD and HAS_CEIL))
    return out


def _activations_oracle(model, x):
    """The "activations" graph written out in NumPy with exact constants, following the ONNX operator definitions.

    onnx's reference evaluator runs HardSwish and Gelu through their function bodies, whose constants are float32
    (HardSwish's HardSigmoid alpha 1/6 is 0.16666667163), so it is not a float64 oracle for these two units."""
    from scipy.special import erf, expit

    w = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}

    def conv(a, k):  # stride 1, zero padding (k - 1) / 2: a sum over the kernel offsets of shifted inputs
        r = k.shape[2] // 2
        ap = np.pad(a, ((0, 0), (0, 0), (r, r), (r, r)))
        return sum(np.einsum("nchw,oc->nohw", ap[:, :, i:i + a.shape[2], j:j + a.shape[3]], k[:, :, i, j])
                   for i in range(k.shape[2]) for j in range(k.shape[3]))

    p = conv(x, w["w1"])
    p = np.where(p > 0, p, float(np.float32(0.2)) * p)  # the attribute alpha is a float32
    p = np.where(p > 0, p, w["sl"][None] * p)
    q = np.tanh(conv(x, w["w2"]))
    c = np.concatenate([p, q], axis=1)
    d = c * expit(c)
    e = d * np.clip(d / 6 + 0.5, 0, 1)
    f = np.logaddexp(0, e)
    g = 0.5 * f * (1 + erf(f / np.sqrt(2)))
    h = np.clip(g, -1, 2)
    i = h * np.clip(h / 6 + 0.5, 0, 1)
    gate = expit(i)
    k = i * gate + np.maximum(gate, 0)
    return k.reshape(len(x), -1) @ w["wd"].T


def _exact_hardsigmoid(model):
    """The oracle's copy of ``model`` with each HardSigmoid(alpha=1/6, beta=1/2) written as Clip(x / 6 + 1/2, 0, 1)
    on float64 constants: ONNX attributes are float32 (alpha = 0.16666667163), which the reference evaluator reads
    literally and xattr reads as PyTorch's exact 1/6 (test_hardsigmoid_alpha_is_read_as_one_sixth)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    out = []
    for nd in m.graph.node:
        if nd.op_type != "HardSigmoid":
            out.append(nd)
            continue
        x, y, t = nd.input[0], nd.output[0], f"_hs_{nd.output[0]}"
        for name, v in ((t + "_six", 6.0), (t + "_half", 0.5), (t + "_zero", 0.0), (t + "_one", 1.0)):
            m.graph.initializer.append(onnx.numpy_helper.from_array(np.array(v), name))
        h = onnx.helper.make_node
        out += [h("Div", [x, t + "_six"], [t + "_a"]), h("Add", [t + "_a", t + "_half"], [t + "_b"]),
                h("Clip", [t + "_b", t + "_zero", t + "_one"], [y])]
    del m.graph.node[:]
    m.graph.node.extend(out)
    return m


@pytest.mark.parametrize("case", range(7), ids=[c[0] for c in _hand_built()])
def test_hand_built_graphs_match_onnx_reference_evaluator(case):
    name, model, shape, convertible = _hand_built()[case]
    if not convertible:
        with pytest.raises(ConversionError, match=r"needs xattr.nn.(AdaptiveAvgPool2D|Pad2D|MaxPool2D\(ceil_mode)"):
            from_onnx(model)
        return
    x = np.random.default_rng(case).normal(size=shape)
    ref = _activations_oracle(model, x) if name == "activations" else _reference_scores(_exact_hardsigmoid(model), x)
    xm = from_onnx(model.SerializeToString())
    scores = xm.forward(x)
    assert scores.dtype == np.float64
    np.testing.assert_allclose(scores, ref.reshape(scores.shape), rtol=1e-10, atol=1e-12 * np.abs(ref).max())


def test_hardsigmoid_alpha_is_read_as_one_sixth():
    n = onnx.helper.make_node
    model = _graph([n("HardSigmoid", ["x"], ["a"], alpha=1 / 6, beta=0.5, name="hs"), n("Flatten", ["a"], ["y"])], {},
                   (1, 1, 2, 3))
    alpha = onnx.helper.get_attribute_value(model.graph.node[0].attribute[0])
    assert alpha == float(np.float32(1 / 6)) != 1 / 6
    x = np.array([[[[-4.0, -1.0, 0.3], [1.7, 2.9, 5.0]]]])
    np.testing.assert_array_equal(from_onnx(model).forward(x), (np.clip(x + 3, 0, 6) / 6).reshape(1, 6))
    literal = _reference_scores(model, x)
    assert 0 < np.abs(literal - (np.clip(x + 3, 0, 6) / 6).reshape(1, 6)).max() < 1e-7


def test_graph_structure_of_the_hand_built_graphs():
    residual = from_onnx(_hand_built()[3][1])
    assert isinstance(residual, xattr.nn.Graph) and not isinstance(residual, xattr.nn.Sequential)
    assert residual.inputs_of("skip") == ("lower", "stem_relu")  # the bias Add folded into the conv "lower"
    assert residual["grouped"].groups == 2 and residual["grouped"].pads == ((0, 2), (1, 1))
    assert residual["lower"].pads == ((1, 0), (1, 0)) and residual["lower"].bias is not None
    assert isinstance(residual["relu6"], xattr.nn.ReLU6) and isinstance(residual["squeeze"], xattr.nn.Flatten)
    acts = from_onnx(_hand_built()[4][1])
    # torch's export of SiLU and Hardswish (x * Sigmoid(x), x * HardSigmoid(x)): one node each, named by the Mul
    assert isinstance(acts["silu"], xattr.nn.SiLU) and isinstance(acts["hswish"], xattr.nn.Hardswish)
    assert isinstance(acts["gated"], xattr.nn.Multiply) and acts["gated"].gate == 1  # from a Sigmoid
    assert isinstance(acts["clamp"], xattr.nn.Clamp) and acts["prelu"].weight.shape == (3,)
    chain = from_onnx(_hand_built()[1][1])
    assert isinstance(chain, xattr.nn.Sequential)
    assert chain.names == ["node0", "node1", "node2", "node3", "mm", "node6", "node7"]  # Add folded, Identity skipped
    assert chain["mm"].bias is not None and chain["mm"].weight.shape == (4, 27)


def test_path_source_and_keyword_checks(tmp_path):
    _, model, _, _ = _hand_built()[1]
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    assert from_onnx(path).names == from_onnx(str(path)).names == from_onnx(model).names
    with pytest.raises(ValueError, match="names must be 'source' or 'onnx'"):
        from_onnx(model, names="torch")


def test_final_softmax_is_dropped_with_a_warning():
    n = onnx.helper.make_node
    model = _graph([n("Flatten", ["x"], ["f"]), n("Gemm", ["f", "w"], ["s"], name="fc"),
                    n("Softmax", ["s"], ["y"], name="prob")],
                   dict(w=np.ones((4, 2))), (1, 1, 2, 2))
    with pytest.warns(UserWarning, match="final Softmax .*'prob'.* was dropped"):
        xm = from_onnx(model)
    x = np.arange(8.0).reshape(2, 1, 2, 2)
    np.testing.assert_allclose(xm.forward(x), x.reshape(2, 4) @ np.ones((4, 2)))


def _bad_graphs():
    n = onnx.helper.make_node
    w = dict(w=np.ones((1, 1, 3, 3)))
    return [
        ([n("Erf", ["x"], ["y"], name="erf")], {}, "unsupported operator 'Erf' at node 0 'erf'"),
        ([n("Transpose", ["x"], ["y"], name="t", perm=[0, 1, 3, 2])], {}, "Transpose/GatherND/ReduceMean"),
        ([n("Conv", ["x", "w"], ["y"], name="c", strides=[2, 2], auto_pad="SAME_UPPER")], w,
         "auto_pad=SAME_UPPER with strides (2, 2) depends on the input size"),
        ([n("MaxPool", ["x"], ["y"], name="p", kernel_shape=[3, 3], pads=[0, 0, 1, 1])], {}, "asymmetric pads"),
        ([n("Relu", ["x"], ["a"]), n("Mul", ["a", "c"], ["y"], name="scale")], dict(c=np.full(1, 2.0)),
         "node 1 'scale' (Mul): only a product of two tensors computed from the input"),
        ([n("Softmax", ["x"], ["a"], name="sm"), n("Relu", ["a"], ["y"])], {}, "only supported as the final node"),
        ([n("Flatten", ["x"], ["y"], axis=2)], {}, "axis=1"),
        ([n("Relu", ["x"], ["a"]), n("Add", ["a", "c"], ["y"], name="add")], dict(c=np.ones(1)),
         "only supported as the bias of the MatMul/Gemm/Conv right before it"),
        ([n("ReduceMean", ["x"], ["y"], axes=[1], keepdims=1)], {}, "spatial axes"),
        ([n("Conv", ["x", "x"], ["y"], name="selfconv")], {}, "'selfconv' (Conv): its weight ('x') must be a constant"),
        ([n("HardSigmoid", ["x"], ["y"], name="hs")], {}, "HardSigmoid with alpha=0.2"),
        ([n("Pad", ["x", "p"], ["y"], name="pad", mode="reflect")], dict(p=np.zeros(8, dtype=np.int64)),
         "Pad mode 'reflect'"),
        ([n("Reshape", ["x", "s"], ["y"], name="r")], dict(s=np.array([-1, 8])), "not a per-image flatten"),
        ([n("Concat", ["x", "x"], ["y"], axis=2, name="cat")], {}, "channel axis"),
    ]


@pytest.mark.parametrize("case", range(14))
def test_unsupported_graphs_name_operator_and_node(case):
    nodes, inits, msg = _bad_graphs()[case]
    model = _graph(nodes, inits, (1, 1, 4, 4), opset=17, out_rank=4)
    with pytest.raises(ConversionError) as info:
        from_onnx(model)
    assert msg in str(info.value)


def test_several_inputs_or_outputs_are_refused():
    h, n = onnx.helper, onnx.helper.make_node
    vi = h.make_tensor_value_info
    two_in = h.make_model(h.make_graph(
        [n("Add", ["x", "z"], ["y"])], "g", [vi("x", 11, [1, 2]), vi("z", 11, [1, 2])], [vi("y", 11, [1, 2])]),
        opset_imports=[h.make_opsetid("", 17)])
    with pytest.raises(ConversionError, match=r"exactly one data input, got \['x', 'z'\]"):
        from_onnx(two_in)
    two_out = h.make_model(h.make_graph(
        [n("Relu", ["x"], ["y"]), n("Relu", ["x"], ["z"])], "g", [vi("x", 11, [1, 2])],
        [vi("y", 11, [1, 2]), vi("z", 11, [1, 2])]), opset_imports=[h.make_opsetid("", 17)])
    with pytest.raises(ConversionError, match=r"exactly one output \(the scores\), got \['y', 'z'\]"):
        from_onnx(two_out)


# -- files that are not ONNX models; operator sets out of range ----------------------------------------
def test_corrupt_missing_and_foreign_files(tmp_path):
    _, model, _, _ = _hand_built()[0]
    data = model.SerializeToString()
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(ConversionError, match="truncated.onnx' is not a valid ONNX model"):
        from_onnx(bad)
    for name, content in [
        ("junk.onnx", b"this is not a protobuf \x00\xff\xfe" * 10),
        ("text.onnx", b"conv1: 3x3, relu, pool\n" * 20),
        (
            "weights.npy",
            b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }"
            + b" " * 60
            + b"\n"
            + np.arange(3.0).tobytes(),
        ),
        ("model.pt", b"PK\x03\x04" + bytes(200)),
    ]:
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ConversionError, match=f"{name}' (is not a valid ONNX model|imports no default-domain)"):
            from_onnx(path)
    with pytest.raises(ConversionError, match="not a valid ONNX model"):
        from_onnx(b"")
    with pytest.raises(FileNotFoundError):
        from_onnx(tmp_path / "absent.onnx")
    with pytest.raises(TypeError, match="path, bytes or an onnx.ModelProto, got int"):
        from_onnx(3)


@pytest.mark.parametrize("opset", [6, 26])
def test_operator_sets_out_of_range(opset):
    model = _graph([onnx.helper.make_node("Relu", ["x"], ["a"]), onnx.helper.make_node("Flatten", ["a"], ["y"])],
                   {}, (1, 1, 2, 2), opset=opset)
    with pytest.raises(ConversionError, match=f"operator set {opset} of the default domain; from_onnx reads opsets 7 "
                                              "to 25"):
        from_onnx(model)


def test_an_operator_set_inside_the_range_reads_old_attribute_forms():
    """Opset 9: Clip's bounds and Pad's pads are attributes, Dropout's ratio too."""
    n = onnx.helper.make_node
    nodes = [n("Clip", ["x"], ["a"], min=0.0, max=6.0, name="clip"), n("Dropout", ["a"], ["b"], ratio=0.3),
             n("Flatten", ["b"], ["y"])]
    xm = from_onnx(_graph(nodes, {}, (2, 1, 3, 3), opset=9))
    assert isinstance(xm["clip"], xattr.nn.ReLU6) and xm["node1"].p == pytest.approx(0.3)
    x = np.linspace(-3, 9, 18).reshape(2, 1, 3, 3)
    np.testing.assert_array_equal(xm.forward(x), np.clip(x, 0, 6).reshape(2, 9))


# -- torch-exported models ------------------------------------------------------------------------------
torch = need("torch", reason="torch is an optional extra: pip install 'xattr-ref[torch]'")
import torch_zoo  # noqa: E402

from xattr.io import from_torch  # noqa: E402


def _export(module, x, dynamo):
    buf = _io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            prog = torch.onnx.export(module, (torch.from_numpy(x[:1]),), dynamo=True, verbose=False)
            buf.write(prog.model_proto.SerializeToString())
        else:
            torch.onnx.export(module, (torch.from_numpy(x[:1]),), buf, dynamo=False,
                              input_names=["x"], dynamic_axes={"x": {0: "n"}})
    return buf.getvalue()


def _assert_scores(module, xm, x):
    with torch.no_grad():
        ref = module(torch.from_numpy(x)).numpy()
    got = xm.forward(x)
    np.testing.assert_allclose(got, ref.reshape(got.shape), rtol=1e-10, atol=1e-10 * np.abs(ref).max())


@pytest.mark.parametrize("net", ["resnet", "mobilenet_v2", "densenet", "se"])
def test_torchscript_export_round_trip_and_names(net):
    name, make, shape, cam = next(n for n in torch_zoo.NETS if n[0] == net)
    module = make()
    x = np.random.default_rng(1).normal(size=shape)
    data = _export(module, x, dynamo=False)
    if net == "se" and not HAS_ADAPTIVE:
        with pytest.raises(
            ConversionError, match=r"block.1/avgpool/GlobalAveragePool.*needs xattr.nn.AdaptiveAvgPool2D"
        ):
            from_onnx(data)
        return
    xm = from_onnx(data)
    _assert_scores(module, xm, x)
    # nodes carry torch's module paths, as from_torch names them (batch-norms after convs are folded by the exporter)
    ours = from_torch(module)
    weighted = [k for k in ours.order if isinstance(ours[k], (xattr.nn.Conv2D, xattr.nn.Dense))]
    assert set(weighted) <= set(xm.order), sorted(set(weighted) - set(xm.order))
    # the Grad-CAM node of the last conv block, under the name from_torch gives it (unless the exporter folded it)
    assert cam in xm or isinstance(ours[cam], xattr.nn.BatchNorm2D)
    raw = from_onnx(data, names="onnx")
    assert all(k.startswith("/") for k in raw.order)


@pytest.mark.parametrize("net", ["resnet", "mobilenet_v2", "densenet"])
def test_dynamo_export_round_trip_and_names(net):
    need("onnxscript", reason="torch's dynamo ONNX exporter needs onnxscript (in the 'oracle' extra)")
    name, make, shape, cam = next(n for n in torch_zoo.NETS if n[0] == net)
    module = make()
    x = np.random.default_rng(2).normal(size=shape)
    xm = from_onnx(_export(module, x, dynamo=True))
    _assert_scores(module, xm, x)
    weighted = [k for k in from_torch(module).order if k.endswith(("conv1", "conv2", "fc", "classifier"))]
    assert set(weighted) <= set(xm.order)


def test_chain_with_zero_biases_is_a_chain():
    """Regression: the TorchScript exporter shares equal initializers (all-zero biases) through Identity nodes on
    constants, which the chain reader took for a second data path ("the graph is not a chain")."""
    nn = torch.nn
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                           nn.Flatten(), nn.Linear(4 * 4 * 4, 4), nn.ReLU(), nn.Linear(4, 4)).double().eval()
    with torch.no_grad():
        for m in module:
            if getattr(m, "bias", None) is not None:
                m.bias.zero_()
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 4))
    data = _export(module, x, dynamo=False)
    assert any(
        nd.op_type == "Identity" and nd.input[0].endswith("bias") for nd in onnx.load_from_string(data).graph.node
    )
    xm = from_onnx(data)
    assert isinstance(xm, xattr.nn.Sequential) and xm.names == ["0", "1", "2", "3", "4", "5", "6", "7"]
    _assert_scores(module, xm, x)


def test_fold_keyword_folds_a_batchnorm_after_a_conv():
    _, model, shape, _ = _hand_built()[0]
    kept, folded = from_onnx(model), from_onnx(model, fold=True)
    assert isinstance(kept["bn"], xattr.nn.BatchNorm2D) and "bn" not in folded
    x = np.random.default_rng(3).normal(size=shape)
    np.testing.assert_allclose(folded.forward(x), kept.forward(x), rtol=1e-12, atol=1e-12)


def test_missing_onnx_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"pip install 'xattr-ref\[onnx\]'"):
        from_onnx(b"")
