"""xattr.models._limits: hostile model files are refused before anything is allocated.

Oracle for "before anything is allocated": the peak of Python/NumPy allocations while loading each hostile
file (``tracemalloc``; NumPy reports its buffers to it) stays below 4 MiB (a few 1 MiB read blocks) plus 40
times the architecture file's size (parsing JSON costs about that), while honouring the file would take
hundreds of megabytes to gigabytes.  Each refusal is one line naming the file and the problem.  The layer constructors
refuse
non-integer sizes and non-finite ``eps`` (the file path and the Python API meet there).
"""
import hashlib
import io
import json
import tracemalloc
import zipfile

import numpy as np
import pytest

from xattr import models
from xattr.models import ModelFileError, _limits
from xattr.nn import BatchNorm2D, Conv2D, Dense, GlobalAvgPool2D, ReLU, Sequential

#: bound on what loading a model file may allocate besides parsing its JSON (40 bytes per byte of JSON).
PEAK_BOUND = 4 << 20
JSON_FACTOR = 40


def bound(path):
    return PEAK_BOUND + JSON_FACTOR * (path.parent / (path.name + ".json")).stat().st_size


def small_model():
    return Sequential(Conv2D(3, 4, 3, rng=0), ReLU(), GlobalAvgPool2D(), Dense(4, 2, rng=0))


@pytest.fixture
def base(tmp_path):
    json_path = models.save(small_model(), tmp_path / "base", input_spec=models.default_input_spec(3, 8, 8))
    return json.loads(open(json_path).read()), open(str(tmp_path / "base.npz"), "rb").read()


def write(tmp_path, name, doc, npz, checksum=True):
    """``NAME.json`` + ``NAME.npz``; the document's checksum made to match the weights given."""
    (tmp_path / f"{name}.npz").write_bytes(npz)
    doc = json.loads(json.dumps(doc))
    if checksum and isinstance(doc.get("weights"), dict):
        doc["weights"].update(sha256=hashlib.sha256(npz).hexdigest(), bytes=len(npz))
    (tmp_path / f"{name}.json").write_text(json.dumps(doc))
    return tmp_path / name


def peak_of_load(path, **kw):
    """``(exception or None, peak bytes)`` of ``models.load(path)`` under tracemalloc."""
    tracemalloc.start()
    try:
        models.load(path, **kw)
        err = None
    except Exception as exc:  # noqa: BLE001  (returned to the test, which checks its type and text)
        err = exc
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return err, peak


def npy_bytes(shape, dtype="<f8", fill=None):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": dtype, "fortran_order": False, "shape": shape})
    return header.getvalue() + (fill if fill is not None else bytes(int(np.prod(shape)) * np.dtype(dtype).itemsize))


def zip_of(members, compression=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in members.items():
            if callable(data):  # a generator of blocks: written without holding the whole member
                with z.open(name + ".npy", "w", force_zip64=True) as f:
                    for block in data():
                        f.write(block)
            else:
                z.writestr(name + ".npy", data)
    return buf.getvalue()


def arrays_of(npz):
    with np.load(io.BytesIO(npz)) as z:
        return {k: z[k] for k in z.files}


def honest_members(npz, **replace):
    out = {}
    for k, v in arrays_of(npz).items():
        b = io.BytesIO()
        np.save(b, v)
        out[k] = replace.get(k, b.getvalue())
    return out


# -- the hostile files: (name, how to build it, what the refusal says) -----------------------------------
def big_conv(doc, npz):
    """817-byte-class architecture: two 20000-channel convolutions (7.2 GB of float64 parameters)."""
    d = json.loads(json.dumps(doc))
    d["layers"][0]["config"].update(out_channels=20000)
    d["layers"].insert(1, {"name": "conv_big", "type": "Conv2D", "arrays": ["weight", "bias"],
                           "config": {"in_channels": 20000, "out_channels": 20000, "kernel_size": [3, 3]}})
    return d, npz


def big_dense(doc, npz):
    """A Dense(1e5, 1e5) head: 80 GB."""
    d = json.loads(json.dumps(doc))
    d["layers"][-1]["config"].update(in_features=4, out_features=100000)
    d["layers"].append({"name": "dense2", "type": "Dense", "arrays": ["weight", "bias"],
                        "config": {"in_features": 100000, "out_features": 100000}})
    return d, npz


def big_input(doc, npz):
    """A declared 60000x60000 input (the CLI would resize every image to it)."""
    d = json.loads(json.dumps(doc))
    d["input"].update(height=60000, width=60000)
    return d, npz


def weights_int(doc, npz):
    d = json.loads(json.dumps(doc))
    d["weights"] = 5
    return d, npz


def no_checksum(doc, npz):
    d = json.loads(json.dumps(doc))
    del d["weights"]["sha256"]
    return d, npz


def many_layers(doc, npz):
    d = json.loads(json.dumps(doc))
    d["layers"] += [{"name": f"r{i}", "type": "ReLU", "config": {}, "arrays": []} for i in range(_limits.MAX_LAYERS)]
    return d, npz


#: side of the square float64 array in the compressed-weights bomb (128 MiB inflated, 130 KB compressed;
#: a 2 GB file behaves the same and takes seconds to write)
BOMB_SIDE = 4096


def npz_bomb(doc, npz):
    """A compressed entry declaring a BOMB_SIDE² float64 array for a (2, 4) weight."""
    def zeros():
        yield npy_bytes((BOMB_SIDE, BOMB_SIDE), fill=b"")
        block = bytes(1 << 22)
        for _ in range(BOMB_SIDE * BOMB_SIDE * 8 // len(block)):
            yield block
    return doc, zip_of(honest_members(npz, **{"dense1.weight": zeros}), zipfile.ZIP_DEFLATED)


def npz_bomb_declared(doc, npz):
    """The same bomb with an architecture asking for it: refused by the budget before the weights are read."""
    d = json.loads(json.dumps(doc))
    d["layers"][-1]["config"].update(in_features=4, out_features=16000)
    d["layers"].append({"name": "d2", "type": "Dense", "arrays": ["weight"],  # 16000² float64: 2 GB
                        "config": {"in_features": 16000, "out_features": 16000, "bias": False}})
    return d, npz_bomb(doc, npz)[1]


def npz_lying_size(doc, npz):
    """An .npy header of the right shape whose entry holds fewer bytes than it declares."""
    good = honest_members(npz)
    good["dense1.weight"] = good["dense1.weight"][:-16]
    return doc, zip_of(good)


def npz_object_dtype(doc, npz):
    return doc, zip_of(honest_members(npz, **{"dense1.weight": npy_bytes((2, 4), "|O", fill=b"\x00" * 64)}))


def npz_wrong_shape(doc, npz):
    return doc, zip_of(honest_members(npz, **{"dense1.weight": npy_bytes((3, 4))}))


def npz_extra_entry(doc, npz):
    members = honest_members(npz)
    members["evil"] = npy_bytes((10, 10))
    return doc, zip_of(members)


HOSTILE = [
    (big_conv, "memory budget"),
    (big_dense, "memory budget"),
    (big_input, "60000x60000 image's activations.*memory budget"),
    (weights_int, "'weights' entry must be an object"),
    (no_checksum, "no 'sha256'.*verify=False"),
    (many_layers, f"at most {_limits.MAX_LAYERS} are accepted"),
    (npz_bomb, "declares 128 MiB of array data"),
    (npz_bomb_declared, "memory budget"),
    (npz_lying_size, "corrupt or truncated"),
    (npz_object_dtype, "dtype object; weights are float"),
    (npz_wrong_shape, r"dense1.weight has shape \(3, 4\), the architecture needs \(2, 4\)"),
    (npz_extra_entry, "belong to no declared layer"),
]


@pytest.mark.parametrize("build, message", HOSTILE, ids=[b.__name__ for b, _ in HOSTILE])
def test_hostile_model_files_are_refused_before_allocation(tmp_path, base, build, message):
    doc, npz = build(*base)
    path = write(tmp_path, build.__name__, doc, npz, checksum=build is not no_checksum)
    err, peak = peak_of_load(path)
    assert isinstance(err, ModelFileError), err
    text = str(err)
    assert "\n" not in text and build.__name__ in text  # one line naming the file
    import re

    assert re.search(message, text), text
    assert peak < bound(path), f"{build.__name__}: {peak} bytes allocated before the refusal"


def test_deep_and_large_json_are_refused_from_the_text(tmp_path, base):
    doc, npz = base
    (tmp_path / "deep.npz").write_bytes(npz)
    text = json.dumps(doc)
    (tmp_path / "deep.json").write_text(text[:-1] + ', "x": ' + "[" * 100000 + "]" * 100000 + "}")
    err, peak = peak_of_load(tmp_path / "deep")
    assert isinstance(err, ModelFileError) and "100001 levels deep" in str(err) and peak < bound(tmp_path / "deep")
    # nesting inside strings does not count
    assert _limits.json_depth(b'{"a": "[[[[[[", "b": [1, {"c": "}}}"}]}') == 3
    (tmp_path / "large.npz").write_bytes(npz)
    (tmp_path / "large.json").write_bytes(text.encode() + b" " * _limits.MAX_JSON_BYTES)
    err, peak = peak_of_load(tmp_path / "large")
    assert isinstance(err, ModelFileError) and "at most" in str(err) and peak < PEAK_BOUND  # not even read


def test_honest_file_loads_and_budget_is_a_stated_parameter(tmp_path, base):
    doc, npz = base
    path = write(tmp_path, "ok", doc, npz)
    err, peak = peak_of_load(path)
    assert err is None and peak < bound(path)
    # the bound is 8 bytes x (2 x parameters + one image's activations); parameters 3*4*9+4 + 4*2+2 = 122,
    # activations 3*8*8 + 4*6*6 (conv) + 4*6*6 (relu) + 4 (gap) + 2 (dense) = 486
    plan = _limits.check_document(json.loads(json.dumps(doc)), "x.json", models.LAYER_FORMATS)
    assert (plan.n_params, plan.activations, plan.bytes) == (122, 486, 8 * (2 * 122 + 486))
    with pytest.raises(ModelFileError, match="needs at least 5840 bytes .* more than the memory budget 5839 bytes"):
        models.load(path, memory_budget=plan.bytes - 1)
    models.load(path, memory_budget=plan.bytes)


def test_checksum_is_case_insensitive_and_required_unless_verify_false(tmp_path, base):
    doc, npz = base
    d = json.loads(json.dumps(doc))
    d["weights"]["sha256"] = hashlib.sha256(npz).hexdigest().upper()
    path = write(tmp_path, "upper", d, npz, checksum=False)
    models.load(path)
    d["weights"]["sha256"] = "abc"
    path = write(tmp_path, "short", d, npz, checksum=False)
    with pytest.raises(ModelFileError, match="64 hexadecimal digits"):
        models.load(path)
    del d["weights"]["sha256"]
    path = write(tmp_path, "none", d, npz, checksum=False)
    with pytest.raises(ModelFileError, match="no 'sha256'"):
        models.load(path)
    back = models.load(path, verify=False)
    x = np.random.default_rng(0).random((1, 3, 8, 8))
    assert np.array_equal(back.forward(x), small_model().forward(x))


@pytest.mark.parametrize("edit, message", [
    ({"mean": [0.5, 0.5]}, "mean must be one finite number or 3"),
    ({"std": [0.2, 0.0, 0.2]}, "std must be > 0"),
    ({"range": [1.0, 0.0]}, "range must be two finite numbers"),
    ({"range": [0.0, float("inf")]}, "range must be two finite numbers"),
    ({"mean": float("nan")}, "mean must be one finite number"),
    ({"channels": 3.0}, "channels must be a positive int"),
    ({"height": 8, "width": None}, "both be given or both be null"),
    ({"height": -1, "width": 8}, "height must be null or an int"),
])
def test_input_spec_is_validated(tmp_path, base, edit, message):
    doc, npz = base
    d = json.loads(json.dumps(doc))
    d["input"].update(edit)
    with pytest.raises(ModelFileError, match=message):
        models.load(write(tmp_path, "spec", d, npz))


@pytest.mark.parametrize("layer, config, message", [
    (0, {"in_channels": 3.7}, "in_channels must be an int, got 3.7"),
    (0, {"kernel_size": [3, 2.5]}, "kernel_size must be an int or a pair of ints"),
    (0, {"bias": "yes"}, "bias must be true or false"),
    (0, {"padding": "full"}, "padding must be an int or a pair"),
    (3, {"in_features": 5}, "in_features = 5, but 4 features arrive"),
    (3, {"out_features": 0}, "out_features must be a positive int"),
])
def test_layer_configs_are_validated_before_construction(tmp_path, base, layer, config, message):
    doc, npz = base
    d = json.loads(json.dumps(doc))
    d["layers"][layer]["config"].update(config)
    with pytest.raises(ModelFileError, match=message):
        models.load(write(tmp_path, "cfg", d, npz))


def test_layer_list_structure_and_graph_inputs(tmp_path, base):
    doc, npz = base
    for edit, message in [
        (lambda d: d["layers"].__setitem__(1, "relu"), "layer entry 1 must be an object"),
        (lambda d: d["layers"][1].update(name="conv1"), "repeated name 'conv1'"),
        (lambda d: d["layers"][1].update(inputs=["nowhere"]), "'inputs' must name earlier layers"),
        (lambda d: d["layers"][0].update(arrays=["weight", "bias", "secret"]), r"has no arrays \['secret'\]"),
        (lambda d: d.update(layers=[]), "non-empty list"),
    ]:
        d = json.loads(json.dumps(doc))
        edit(d)
        with pytest.raises(ModelFileError, match=message):
            models.load(write(tmp_path, "lst", d, npz))
    d = json.loads(json.dumps(doc))
    d["layers"][1]["inputs"] = ["conv1"]  # explicit graph-style input naming the previous layer: same model
    plan = _limits.check_document(d, "g.json", models.LAYER_FORMATS)
    assert plan.activations == 486


def test_batchnorm_config_in_a_file(tmp_path):
    m = Sequential(Conv2D(3, 2, 1, rng=0), BatchNorm2D(2), ReLU(), GlobalAvgPool2D(), Dense(2, 2, rng=0))
    path = models.save(m, tmp_path / "bn", input_spec=models.default_input_spec(3, 4, 4))
    doc = json.loads(open(path).read())
    npz = (tmp_path / "bn.npz").read_bytes()
    for eps in (float("nan"), float("inf"), 0.0, -1.0):
        doc["layers"][1]["config"]["eps"] = eps
        with pytest.raises(ModelFileError, match="eps must be a finite positive number"):
            models.load(write(tmp_path, "bn2", doc, npz))
    doc["layers"][1]["config"].update(eps=1e-5, num_features=3)
    with pytest.raises(ModelFileError, match="num_features = 3, but 2 channel"):
        models.load(write(tmp_path, "bn3", doc, npz))


# -- constructors (xattr/nn: checks in __init__ only) -------------------------------------------------------
@pytest.mark.parametrize("make, error, message", [
    (lambda: Conv2D(3.7, 4, 3), TypeError, "in_channels must be an int, got 3.7"),
    (lambda: Conv2D(3, 4.0, 3), TypeError, "out_channels must be an int"),
    (lambda: Conv2D(3, 4, (3, 2.5)), ValueError, "kernel_size must be an int or a pair of ints"),
    (lambda: Conv2D(0, 4, 3), ValueError, "in_channels must be a positive int"),
    (lambda: Dense(True, 2), TypeError, "in_features must be an int"),
    (lambda: Dense(4, 0), ValueError, "out_features must be a positive int"),
    (lambda: BatchNorm2D(0), ValueError, "num_features must be a positive int"),
    (lambda: BatchNorm2D(2.5), TypeError, "num_features must be an int"),
    (lambda: BatchNorm2D(2, eps=float("nan")), ValueError, "eps must be a finite positive number"),
    (lambda: BatchNorm2D(2, eps=float("inf")), ValueError, "eps must be a finite positive number"),
    (lambda: BatchNorm2D(2, eps=0), ValueError, "eps must be a finite positive number"),
])
def test_layer_constructors_refuse_what_they_would_truncate(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_numpy_integers_are_sizes():
    layer = Conv2D(np.int64(3), np.int32(4), [np.int64(3), 3])
    assert (layer.in_channels, layer.out_channels, layer.kernel_size) == (3, 4, (3, 3))
    assert isinstance(layer.in_channels, int)
