"""xattr.io.from_onnx with external weights: read from the model's own folder, never from the working
directory, and never from outside that folder (``..``, absolute paths, symlinks that leave it).

Oracle: the same graph with its weights inside the file (``from_onnx`` of the in-memory model).
"""
import os

import numpy as np
import pytest

from xattr.io import ConversionError, from_onnx

from extras import need  # noqa: E402  (tests/extras.py: optional packages of the test suite)

onnx = need("onnx", reason="onnx is an optional extra: pip install 'xattr-ref[onnx]'")


def dense_model():
    """x (N, 4) -> Gemm(W (3, 4), b) -> y; the weights big enough for onnx to externalise them."""
    h = onnx.helper
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(3, 4)), rng.normal(size=3)
    inits = [onnx.numpy_helper.from_array(w, "w"), onnx.numpy_helper.from_array(b, "b")]
    graph = h.make_graph([h.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc", transB=1)], "g",
                         [h.make_tensor_value_info("x", onnx.TensorProto.DOUBLE, [None, 4])],
                         [h.make_tensor_value_info("y", onnx.TensorProto.DOUBLE, [None, 3])], initializer=inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def save_external(model, folder, location="weights.bin"):
    """Save ``model`` with every initializer in ``location`` (relative to ``folder``)."""
    from onnx.external_data_helper import convert_model_to_external_data

    m = onnx.ModelProto()
    m.CopyFrom(model)
    convert_model_to_external_data(m, all_tensors_to_one_file=True, location=location, size_threshold=0)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "model.onnx")
    onnx.save_model(m, path)
    return path, m


def relocate(m, location, path):
    """Rewrite every initializer's external location (without moving data) and write the model to ``path``."""
    for t in m.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = location
    with open(path, "wb") as f:
        f.write(m.SerializeToString())
    return path


def test_external_weights_are_read_from_the_model_folder_not_the_cwd(tmp_path, monkeypatch):
    model = dense_model()
    path, _ = save_external(model, tmp_path / "m")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the old reader looked here
    got, want = from_onnx(path), from_onnx(model)
    x = np.random.default_rng(1).normal(size=(2, 4))
    assert np.array_equal(got.forward(x), want.forward(x))


@pytest.mark.parametrize("location", ["../outside.bin", "sub/../../outside.bin", "ABS", "link.bin"])
def test_external_locations_outside_the_folder_are_refused(tmp_path, location):
    model = dense_model()
    path, m = save_external(model, tmp_path / "m")
    outside = tmp_path / "outside.bin"
    outside.write_bytes((tmp_path / "m" / "weights.bin").read_bytes())  # valid data, in the wrong place
    if location == "ABS":
        location = str(outside)
    if location == "link.bin":
        os.symlink(outside, tmp_path / "m" / "link.bin")
    relocate(m, location, path)
    with pytest.raises(ConversionError, match="outside the model's folder|not a valid ONNX model"):
        from_onnx(path)


def test_external_weights_need_a_path(tmp_path):
    _, m = save_external(dense_model(), tmp_path / "m")
    with pytest.raises(ConversionError, match="external file|not a valid ONNX model"):
        from_onnx(m.SerializeToString())


@pytest.mark.parametrize("location", ["../outside.bin", "ABS", "link.bin"])
def test_xattr_refuses_escapes_itself_when_the_checker_does_not(tmp_path, monkeypatch, location):
    """onnx >= 1.16's path checker refuses these too; xattr's own check does not depend on its version."""
    model = dense_model()
    path, m = save_external(model, tmp_path / "m")
    outside = tmp_path / "outside.bin"
    outside.write_bytes((tmp_path / "m" / "weights.bin").read_bytes())
    if location == "ABS":
        location = str(outside)
    if location == "link.bin":
        os.symlink(outside, tmp_path / "m" / "link.bin")
    relocate(m, location, path)
    monkeypatch.setattr(onnx.checker, "check_model", lambda *a, **k: None)
    with pytest.raises(ConversionError, match="outside the model's folder"):
        from_onnx(path)
