"""The input images of a job: an array, a dask array or a folder of image files, read lazily and identified by
their content."""
from __future__ import annotations

import hashlib
import numbers
import os
from dataclasses import dataclass, field

import numpy as np

from .._conventions import as_float_array
from .._files import sha256_of_file
from ..io.images import WHITE, ImageFileError, _background, probe_image, read_image
from .errors import BatchError, ImageReadError
from .job import _jsonable

#: file name endings read from an image folder (other files are ignored).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm", ".webp")


@dataclass
class _Source:
    kind: str  # "array" | "dask" | "folder"
    n: int
    shape: tuple  # (C, H, W)
    dtype: str
    data: object = None  # ndarray / dask array
    files: list = field(default_factory=list)
    mode: str = ""
    resize: bool = False
    background: object = None

    def chunk_input(self, start, stop):
        if self.kind == "folder":
            return self.files[start:stop]
        return self.data[start:stop]

    def describe(self):
        """The job's view of its input; ``id`` is a content hash (file bytes; array values) so that an
        edit that keeps names and sizes still changes the job (dask arrays: their graph token)."""
        import dask.base

        if self.kind == "folder":
            ident = hashlib.sha256(
                "\n".join(f"{os.path.basename(f)} {sha256_of_file(f)}" for f in self.files).encode()
            ).hexdigest()
        elif self.kind == "array":
            ident = _array_digest(self.data)
        else:
            ident = dask.base.tokenize(self.data)
        out = {"kind": self.kind, "n": self.n, "shape": list(self.shape), "dtype": self.dtype, "id": ident}
        if self.kind == "folder":
            out.update(mode=self.mode, resize=self.resize, background=_jsonable(self.background))
        return out


def _folder_files(folder):
    names = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
    if not names:
        raise BatchError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in folder {folder!r}")
    return [os.path.join(folder, f) for f in names]


def _read_image(path, mode, hw, resize=False, background=None):
    """One image file as ``(C, H, W)`` float64 in [0, 1]; ``ImageReadError`` naming the file otherwise.

    Read by :func:`xattr.io.images.read_image` (the reader of every command: modes, 16-bit and float
    files, alpha on ``background``, EXIF rotation, channels to ``mode``).  ``resize``: bring other sizes
    to ``hw`` (bilinear) instead of refusing them.
    """
    try:
        pic = read_image(path, channels=1 if mode == "L" else 3, size=tuple(hw) if resize else None,
                         background=WHITE if background is None else background)
        if pic.pixels.shape[1:] != tuple(hw):
            h, w = pic.pixels.shape[1:]
            raise ValueError(f"size {h}x{w} (HxW), expected {hw[0]}x{hw[1]} like the first image")
    except Exception as exc:  # ImageFileError (a ValueError) and anything Pillow lets through
        msg = str(exc).split(": ", 1)[-1] if str(exc).startswith("'") else str(exc)
        raise ImageReadError(
            f"cannot read image {os.path.basename(path)!r}: {type(exc).__name__}: {msg}", path
        ) from None
    return pic.pixels


def _array_digest(arr):
    """SHA-256 of an array's dtype, shape and values (in blocks of rows: memory-mapped files are not copied whole)."""
    h = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode())
    rows = max(1, (64 << 20) // max(1, arr[:1].nbytes))
    for s in range(0, arr.shape[0], rows):
        h.update(np.ascontiguousarray(arr[s:s + rows]).tobytes())
    return h.hexdigest()


def _make_source(images, image_mode=None, image_size=None, background=None):
    if not isinstance(images, (str, os.PathLike)) and (image_mode is not None or image_size is not None
                                                         or background is not None):
        raise ValueError("image_mode, image_size and image_background apply to a folder of image files only")
    if image_mode not in (None, "L", "RGB"):
        raise ValueError(f"image_mode must be None, 'L' or 'RGB', got {image_mode!r}")
    if background is not None:

        _background(background, 1 if image_mode == "L" else 3)  # ValueError now, not in every task
    if isinstance(images, (str, os.PathLike)):

        folder = os.fspath(images)
        if not os.path.isdir(folder):
            raise BatchError(f"images must be an array or a folder of image files; {folder!r} is not a folder")
        files = _folder_files(folder)
        if image_size is not None:
            hw = tuple(image_size) if isinstance(image_size, (tuple, list)) else (image_size,)
            if len(hw) != 2 or not all(
                isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 for v in hw
            ):
                raise ValueError(f"image_size must be (height, width) of positive ints, got {image_size!r}")
            hw = tuple(int(v) for v in hw)
        if image_mode is not None and image_size is not None:
            c = 1 if image_mode == "L" else 3
            return _Source("folder", len(files), (c,) + hw, "float64", files=files, mode=image_mode, resize=True,
                           background=background)
        first = None
        for f in files:  # the first readable file fixes mode and size; unreadable ones are handled per chunk
            try:
                c, fhw = probe_image(f)
            except ImageFileError:
                continue
            first = ("L" if c == 1 else "RGB", fhw)
            break
        if first is None:
            raise BatchError(f"none of the {len(files)} image files in {folder!r} can be read")
        mode, hw = (image_mode or first[0]), (hw if image_size is not None else first[1])
        return _Source("folder", len(files), ((1 if mode == "L" else 3),) + hw, "float64", files=files, mode=mode,
                       resize=image_size is not None, background=background)
    if hasattr(images, "dask") and hasattr(images, "chunks"):
        if images.ndim != 4:
            raise ValueError(f"images must have rank 4 (N, C, H, W), got shape {images.shape}")
        dtype = np.dtype(images.dtype)
        if dtype.kind in "iub":
            images, dtype = images.astype(np.float64), np.dtype(np.float64)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"images must have dtype float32 or float64 (integers are promoted), got {dtype}")
        return _Source("dask", int(images.shape[0]), tuple(int(s) for s in images.shape[1:]), dtype.name, data=images)
    arr = as_float_array(images, "images", ndim=4, allow_nonfinite=True)  # finiteness checked per chunk
    if arr.shape[0] == 0:
        raise ValueError(f"images must hold at least one image, got shape {arr.shape}")
    return _Source("array", arr.shape[0], arr.shape[1:], arr.dtype.name, data=arr)
