"""Image files as model inputs: the one reader of ``xattr explain``, ``xattr batch`` and the library.

:func:`read_image` decodes a file with Pillow and returns its pixels as float64 values in ``[0, 1]``,
``(C, H, W)``, together with a one-line statement of what was read and every conversion made.  Each
Pillow mode is converted by a stated rule, or refused with one line (:class:`ImageFileError`, a
``ValueError``) that names the file; nothing is silently turned into a different picture.

Pillow modes (typical source): values read, and how they reach ``[0, 1]``:

* ``1`` (bilevel PNG/TIFF/BMP): 0 or 1, as they are;
* ``L``, ``RGB``, ``P`` (palette): 8 bit, 0 .. 255 (palette: looked up, RGB), ``/ 255``;
* ``I;16``, ``I;16B``, ``I;16L``: 16 bit, 0 .. 65535 (16-bit PNG, TIFF), ``/ 65535``;
* ``I`` from PNG, PPM/PGM: 16 bit (Pillow scales PNM ``maxval`` to 65535), ``/ 65535``;
* ``I`` from other formats: 32-bit integers with no defined range, refused;
* ``F`` (float TIFF): float32, must lie in ``[0, 1]`` and be finite, as they are;
* ``CMYK`` (print JPEG/TIFF): 8-bit inks, ``R = (1 − C)(1 − K)``, likewise G, B (no ICC profile);
* ``YCbCr``: Pillow's JPEG (ITU-R BT.601) conversion to RGB, ``/ 255``;
* ``LA``, ``RGBA``, ``PA``, ``P`` or ``L``/``RGB`` with transparency: the alpha channel ``a`` composited on the
  stated ``background`` (default white, 1.0): ``a·c + (1 − a)·bg``;
* other modes (``LAB``, ``HSV``, ``I;16S``, ...): no stated conversion, refused.

Then, in this order: the EXIF orientation tag is applied (as ``PIL.ImageOps.exif_transpose`` does, so a phone
photo is upright); the channels are matched to the model (a gray image to a 3-channel model: the
value replicated; a colour image to a 1-channel model: the ITU-R BT.601 luma ``0.299 R + 0.587 G +
0.114 B``, Pillow's own ``"L"`` weights; other channel counts refused); the image is brought to the size
the model declares: ``fit="stretch"`` resizes it (Pillow's bilinear filter on the float values, per
channel, so 16-bit and float images keep their precision; the aspect ratio is not kept), ``fit="crop"``
keeps the aspect ratio and cuts the centre (torchvision's ``Resize`` + ``CenterCrop``, see :func:`read_image`).  Only
the first frame of an
animated or multi-page file is read (stated).

Decompression bombs: a file declaring more pixels than Pillow's limit ``PIL.Image.MAX_IMAGE_PIXELS``
(89,478,485 by default; ``None`` disables it) is refused from its header, before any pixel is decoded.
"""
from __future__ import annotations

import numbers
import os
from dataclasses import dataclass

import numpy as np

from .._errors import XattrError

__all__ = ["ImageFileError", "Picture", "read_image", "probe_image", "crop_geometry", "WHITE", "LUMA_BT601",
           "GRAY_MODES", "FITS"]

#: default background under transparent pixels (a gray level in [0, 1], or one per channel).
WHITE = 1.0
#: ITU-R BT.601 luma weights (R, G, B): Pillow's ``convert("L")``.
LUMA_BT601 = (0.299, 0.587, 0.114)
#: Pillow modes read as one gray channel (the others give three).
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")

_SIXTEEN = ("I;16", "I;16B", "I;16L", "I;16N")
_EIGHT_BIT = {"L": "8-bit grayscale", "RGB": "8-bit RGB", "RGBX": "8-bit RGB (padding byte)",
              "LA": "8-bit grayscale + alpha", "RGBA": "8-bit RGB + alpha"}
_SWAPS = {5, 6, 7, 8}  # EXIF orientations that exchange width and height


class ImageFileError(XattrError, ValueError):
    """An image file that cannot be read, or whose content has no stated conversion (one-line message)."""


@dataclass(frozen=True)
class Picture:
    """What :func:`read_image` read.

    Attributes
    ----------
    pixels : ndarray ``(C, H, W)`` float64, values in ``[0, 1]``
    path : str
    source : str
        The file as found: format, size, Pillow mode and its value range.
    steps : tuple of str
        Every conversion made, in order.
    """

    pixels: np.ndarray
    path: str
    source: str
    steps: tuple = ()

    def describe(self):
        """One line: source, then the conversions."""
        return self.source + ("; " + ", ".join(self.steps) if self.steps else "")


def _fail(path, what):
    return ImageFileError(f"{os.path.basename(os.fspath(path))!r}: {what}")


def _open(path):
    """``PIL.Image`` of ``path`` (header read, no pixels decoded), bombs refused."""
    from PIL import Image, UnidentifiedImageError

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ImageFileError(f"image file {path!r} not found" if not os.path.exists(path)
                             else f"{path!r} is not a file")
    limit = Image.MAX_IMAGE_PIXELS
    try:
        im = Image.open(path)
    except Image.DecompressionBombError as exc:  # Pillow's own refusal above twice its limit
        raise _fail(path, f"refused as a possible decompression bomb: {exc}".rstrip(".")) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise _fail(path, f"not an image Pillow can read ({type(exc).__name__})") from None
    w, h = im.size
    if limit is not None and w * h > limit:
        im.close()
        raise _fail(path, f"refused as a possible decompression bomb: {w}x{h} = {w * h} pixels is more than "
                          f"Pillow's limit PIL.Image.MAX_IMAGE_PIXELS = {limit}")
    return im


def _orientation(im):
    try:
        return int(im.getexif().get(0x0112, 1) or 1)
    except Exception:  # a malformed EXIF block: no rotation (said by the caller's description)
        return 1


def probe_image(path):
    """``(channels, (height, width))`` the file gives, from its header (EXIF rotation accounted for).

    ``channels`` is 1 for the gray modes (:data:`GRAY_MODES`), else 3.  Raises :class:`ImageFileError`.
    """
    im = _open(path)
    with im:
        w, h = im.size
        if _orientation(im) in _SWAPS:
            w, h = h, w
        return (1 if im.mode in GRAY_MODES else 3), (h, w)


def _background(background, c):
    try:
        bg = np.asarray(background, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise ValueError(
            f"background must be a gray level in [0, 1] or {c} values in [0, 1], got {background!r}"
        ) from None
    if bg.size not in (1, c) or not np.all(np.isfinite(bg)) or bg.min() < 0 or bg.max() > 1:
        raise ValueError(f"background must be a gray level in [0, 1] or {c} values in [0, 1], got {background!r}")
    return np.broadcast_to(bg, (c,))


def _decode(im, path, background):
    """``(H, W, C)`` float64 in [0, 1] (C = 1 or 3), the source statement, and the steps made."""
    mode, fmt = im.mode, im.format or "image"
    source = f"{fmt} {im.size[0]}x{im.size[1]} (WxH) Pillow mode {mode}: "
    steps = []
    if mode in ("P", "PA"):
        im = im.convert("RGBA" if mode == "PA" or "transparency" in im.info else "RGB")
        what = (
            "8-bit palette" + (" with transparency" if im.mode == "RGBA" else "") + ", looked up, values 0..255 / 255"
        )
    elif mode in ("L", "RGB") and "transparency" in im.info:
        im = im.convert("LA" if mode == "L" else "RGBA")
        what = _EIGHT_BIT[mode] + " with a transparent colour, values 0..255 / 255"
    elif mode == "YCbCr":
        im = im.convert("RGB")
        what = "8-bit YCbCr, to RGB by Pillow (ITU-R BT.601), values 0..255 / 255"
    else:
        what = None
    a = None
    if im.mode == "1":
        v = np.asarray(im, dtype=np.float64)[..., None]
        what = "bilevel, values 0 and 1"
    elif im.mode in _EIGHT_BIT:
        arr = np.asarray(im, dtype=np.float64) / 255.0
        arr = arr[..., None] if arr.ndim == 2 else arr
        if im.mode in ("LA", "RGBA"):
            v, a = arr[..., :-1], arr[..., -1:]
        else:
            v = arr[..., :3]
        what = what or _EIGHT_BIT[im.mode] + ", values 0..255 / 255"
    elif mode in _SIXTEEN or (mode == "I" and fmt in ("PNG", "PPM")):
        arr = np.asarray(im)
        if arr.dtype.kind not in "iu" or (arr.size and (arr.min() < 0 or arr.max() > 65535)):
            raise _fail(path, f"{fmt} mode {mode}: 16-bit values expected, found {arr.min()}..{arr.max()}")
        v = arr.astype(np.float64)[..., None] / 65535.0
        what = "16-bit grayscale, values 0..65535 / 65535"
    elif mode == "I":
        raise _fail(path, f"{fmt} with 32-bit integer pixels (Pillow mode I) has no defined value range; "
                          "save it as 8- or 16-bit, or as float in [0, 1]")
    elif mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            raise _fail(path, f"{fmt} float image with {int(np.size(arr) - np.isfinite(arr).sum())} NaN/inf value(s)")
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        if lo < 0 or hi > 1:
            raise _fail(path, f"{fmt} float image with values in [{lo:.6g}, {hi:.6g}]; float images are read as "
                              "values in [0, 1]: rescale it first")
        v = arr[..., None]
        what = "32-bit float grayscale, values in [0, 1] as they are"
    elif mode == "CMYK":
        ink = np.asarray(im, dtype=np.float64) / 255.0
        v = (1.0 - ink[..., :3]) * (1.0 - ink[..., 3:])
        what = "8-bit CMYK inks, to RGB as (1 - C)(1 - K), (1 - M)(1 - K), (1 - Y)(1 - K) (no colour profile)"
    else:
        raise _fail(path, f"{fmt} in Pillow mode {mode!r} has no stated conversion (read: 1, L, P, RGB, RGBA, LA, "
                          "PA, CMYK, YCbCr, I;16, F); convert it to 8- or 16-bit RGB or grayscale first")
    if a is not None:
        bg = np.asarray(background, dtype=np.float64).ravel()
        if bg.size == 3 and v.shape[-1] == 1:  # a coloured background under a gray image: composite in RGB
            v = np.repeat(v, 3, axis=-1)
        bg = _background(bg, v.shape[-1])
        if np.any(a < 1):
            v = a * v + (1.0 - a) * bg
            shown = float(bg[0]) if np.ptp(bg) == 0 else [float(b) for b in bg]
            steps.append(f"alpha composited on background {shown}")
        else:
            steps.append("alpha opaque everywhere, dropped")
    return np.clip(v, 0.0, 1.0), source + what, steps


#: EXIF orientation -> the array operation on ``(H, W, C)`` that makes the image upright (as
#: ``PIL.ImageOps.exif_transpose``: 2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 clockwise,
#: 7 transverse, 8 rotate 90 counter-clockwise).
_ORIENT = {
    2: lambda v: v[:, ::-1], 3: lambda v: v[::-1, ::-1], 4: lambda v: v[::-1],
    5: lambda v: v.swapaxes(0, 1), 6: lambda v: np.rot90(v, -1), 7: lambda v: v.swapaxes(0, 1)[::-1, ::-1],
    8: lambda v: np.rot90(v, 1),
}


def _resize(v, hw):
    """Bilinear (Pillow, float32 per channel) from ``(H, W, C)`` to ``hw``; values clipped back to [0, 1]."""
    from PIL import Image

    out = np.empty((hw[0], hw[1], v.shape[-1]))
    for c in range(v.shape[-1]):  # per channel: C is 1 or 3
        plane = Image.fromarray(np.ascontiguousarray(v[..., c], dtype=np.float32), mode="F")
        out[..., c] = np.asarray(plane.resize((int(hw[1]), int(hw[0])), Image.BILINEAR), dtype=np.float64)
    return np.clip(out, 0.0, 1.0)


FITS = ("stretch", "crop")


def crop_geometry(hw, size, resize=None):
    """Aspect-preserving resize then centre crop: ``((new_h, new_w), (top, left))`` for an image ``hw`` and a crop
    ``size``.

    ``resize`` (or, for a square crop, its side by default): the shorter side becomes ``resize`` and the longer
    ``int(resize · long / short)``, torchvision's ``Resize(resize)``; without ``resize`` a non-square crop is
    covered by the smallest scaling ``max(h / H, w / W)``.  The crop's top-left is
    ``round((new - crop) / 2)``, torchvision's ``CenterCrop``.

    Parameters
    ----------
    hw : tuple of int ``(H, W)``
        The image's size.
    size : tuple of int ``(h, w)``
        The crop's size.
    resize : int, optional

    Returns
    -------
    ((int, int), (int, int))
        ``((new_h, new_w), (top, left))``.
    """
    (H, W), (h, w) = (int(v) for v in hw), (int(v) for v in size)
    if resize is None and h != w:
        scale = max(h / H, w / W)
        nh, nw = max(h, int(round(H * scale))), max(w, int(round(W * scale)))
    else:
        r = int(h if resize is None else resize)
        nh, nw = (r, int(r * W / H)) if H <= W else (int(r * H / W), r)
    if nh < h or nw < w:
        raise ValueError(f"resize {resize} gives {nh}x{nw}, smaller than the {h}x{w} crop")
    return (nh, nw), (int(round((nh - h) / 2.0)), int(round((nw - w) / 2.0)))


def _resize_8bit(v, hw):
    """Bilinear on 8-bit values as Pillow resizes an ``L``/``RGB`` image (torchvision's ``Resize`` on a PIL image)."""
    from PIL import Image

    q = np.round(v * 255.0).astype(np.uint8)
    im = Image.fromarray(q[..., 0] if q.shape[-1] == 1 else q, "L" if q.shape[-1] == 1 else "RGB")
    out = np.asarray(im.resize((int(hw[1]), int(hw[0])), Image.BILINEAR), dtype=np.float64) / 255.0
    return out[..., None] if out.ndim == 2 else out


def read_image(path, channels=None, size=None, background=WHITE, fit="stretch", resize=None):
    """Read an image file as pixels ``(C, H, W)`` float64 in ``[0, 1]`` (see the module docstring).

    Parameters
    ----------
    path : str or path-like
    channels : None, 1 or 3
        The channels the model takes (None: as the file gives them, 1 for gray modes, else 3).
    size : None or (height, width)
        Bring the image to this size when the file (after EXIF rotation) has another one, by ``fit``.
    background : float or sequence of floats in [0, 1]
        What transparent pixels are composited on (default white).
    fit : ``"stretch"`` or ``"crop"``
        ``"stretch"`` (default): resize to ``size`` (bilinear; the aspect ratio is not kept).  ``"crop"``:
        keep the aspect ratio: resize so that the shorter side is ``resize`` (:func:`crop_geometry`) and cut
        the centre ``size``: torchvision's evaluation transform ``Resize(resize)``, ``CenterCrop(size)``.  Images
        whose values are 8-bit (after the conversions above) are resized as Pillow resizes an 8-bit image,
        which is what torchvision does, pixel for pixel; others (16-bit, float, composited alpha) by the
        same filter on their float values.
    resize : int, optional
        With ``fit="crop"``: the shorter side before the crop (256 for a 224 crop in torchvision's ImageNet
        models; default: the crop's side, i.e. no margin).

    Returns
    -------
    Picture
        ``pixels`` and a statement of the source and of every conversion (``describe()``).

    Raises
    ------
    ImageFileError
        Missing or unreadable file, decompression bomb, a mode without stated conversion, a float
        image outside ``[0, 1]``, channels other than 1 or 3 asked for.
    """
    if channels not in (None, 1, 3):
        raise ImageFileError(f"image files give 1 (gray) or 3 (RGB) channels; the model takes {channels!r}")
    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}, got {fit!r}")
    if resize is not None and (not isinstance(resize, numbers.Integral) or isinstance(resize, bool) or resize < 1):
        raise ValueError(f"resize must be a positive int (the shorter side before the crop), got {resize!r}")
    _background(background, 3)  # checked up front, also for files without transparency
    if size is not None:
        if len(size) != 2 or not all(isinstance(s, numbers.Integral) and s >= 1 for s in size):
            raise ValueError(f"size must be (height, width) of positive ints, got {size!r}")
    im = _open(path)
    with im:
        try:
            frames = int(getattr(im, "n_frames", 1) or 1)
            orientation = _orientation(im)
            im.load()
            v, source, steps = _decode(im, path, background)
        except ImageFileError:
            raise
        except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:  # truncated or corrupt data
            raise _fail(
                path, f"corrupt or truncated image data ({type(exc).__name__}: {exc})".splitlines()[0]
            ) from None
        except MemoryError:
            raise _fail(path, f"{im.size[0]}x{im.size[1]} pixels do not fit in memory") from None
    if frames > 1:
        steps.insert(0, f"first frame of {frames}")
    if orientation in _ORIENT:
        v = _ORIENT[orientation](v)
        steps.append(f"EXIF orientation {orientation} applied")
    if channels == 3 and v.shape[-1] == 1:
        v = np.repeat(v, 3, axis=-1)
        steps.append("gray replicated to RGB")
    elif channels == 1 and v.shape[-1] == 3:
        v = v @ np.asarray(LUMA_BT601)[:, None]
        steps.append("RGB to gray (BT.601 luma 0.299 R + 0.587 G + 0.114 B)")
    if size is not None and fit == "crop":
        (nh, nw), (top, left) = crop_geometry(v.shape[:2], size, resize)
        if (nh, nw) != v.shape[:2]:
            eight = np.array_equal(np.round(v * 255.0) / 255.0, v)
            steps.append(f"resized {v.shape[0]}x{v.shape[1]} -> {nh}x{nw} (HxW, aspect kept, bilinear"
                         + (" on the 8-bit values)" if eight else ")"))
            v = _resize_8bit(v, (nh, nw)) if eight else _resize(v, (nh, nw))
        if (nh, nw) != tuple(size):
            steps.append(f"centre {size[0]}x{size[1]} cut at row {top}, column {left}")
            v = v[top:top + size[0], left:left + size[1]]
    elif size is not None and v.shape[:2] != tuple(size):
        steps.append(f"resized {v.shape[0]}x{v.shape[1]} -> {size[0]}x{size[1]} (HxW, bilinear)")
        v = _resize(v, size)
    pixels = np.ascontiguousarray(np.moveaxis(v, -1, 0), dtype=np.float64)
    return Picture(pixels, os.fspath(path), source, tuple(steps))
