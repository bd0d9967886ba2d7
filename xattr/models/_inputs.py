"""The input a model file declares: its validation, the pixel -> model-input map, and pictures as baselines.

A model file's ``input`` entry states what the model was trained on::

    {"channels": 3, "height": 32, "width": 32, "range": [0.0, 1.0], "mean": [...], "std": [...]}

and optionally ``"resize": 256``: image files are resized (aspect kept) so that their shorter side
is 256 before the centre ``height × width`` crop, torchvision's ``Resize(256)`` + ``CenterCrop(224)``
(:func:`xattr.io.images.read_image` with ``fit="crop"``); without it the shorter side is scaled to the
crop itself.

Pixels (values in ``[0, 1]``, as :func:`xattr.io.images.read_image` returns them) are scaled to the
declared ``range`` ``[lo, hi]`` and normalised per channel: ``x = (lo + (hi − lo)·p − mean) / std``
(:func:`to_model_input`).  The model only ever sees ``x``.

A baseline is a picture, not a number in the model's input space: the black image is ``p = 0``,
i.e. ``(lo − mean) / std`` per channel after normalisation, not ``0.0`` (which is the mean colour of a
normalised model).  :func:`picture` builds any such picture in model space.

Arrays given in the declared range (:func:`xattr.models.preprocess`) follow one rule, lists too:
converted with ``numpy.asarray``; integer and bool values promoted to float64; other dtypes refused;
values must be finite and lie in ``[lo, hi]`` (to round-off), else a one-line ``ValueError`` names the
declared range (a uint8 array of 0..255 given to a ``[0, 1]`` model is refused, not explained).
"""
from __future__ import annotations

import numbers

import numpy as np

from .._conventions import as_float_array

__all__ = ["validate_input_spec", "check_in_range", "check_model_space", "to_model_input", "picture", "RANGE_TOLERANCE"]

#: values may exceed the declared range by this fraction of its width (round-off of ``lo + (hi - lo)·p``).
RANGE_TOLERANCE = 1e-9
#: bound on the declared height and width (pixels); the memory budget bounds their product further.
MAX_SIDE = 1 << 16


def _number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and np.isfinite(v)


def validate_input_spec(spec, where="input"):
    """Check an ``input`` declaration; return it with ``mean``/``std`` as lists of ``channels`` floats.

    Raises ``ValueError`` naming the entry: ``channels`` a positive int, ``height``/``width`` both None or
    both positive ints (at most :data:`MAX_SIDE`), ``range`` two finite numbers ``lo < hi``, ``mean`` and
    ``std`` one finite number or one per channel, ``std > 0``.
    """
    if not isinstance(spec, dict):
        raise ValueError(
            f"{where} must be an object (channels, height, width, range, mean, std), got {type(spec).__name__}"
        )
    c = spec.get("channels", 3)
    if not isinstance(c, numbers.Integral) or isinstance(c, bool) or c < 1:
        raise ValueError(f"{where}.channels must be a positive int, got {c!r}")
    h, w = spec.get("height"), spec.get("width")
    if (h is None) != (w is None):
        raise ValueError(f"{where}: height and width must both be given or both be null, got {h!r} and {w!r}")
    for name, v in (("height", h), ("width", w)):
        if v is not None and (not isinstance(v, numbers.Integral) or isinstance(v, bool) or not 1 <= v <= MAX_SIDE):
            raise ValueError(f"{where}.{name} must be null or an int in [1, {MAX_SIDE}], got {v!r}")
    rs = spec.get("resize")
    if rs is not None:
        if not isinstance(rs, numbers.Integral) or isinstance(rs, bool) or not 1 <= rs <= MAX_SIDE:
            raise ValueError(f"{where}.resize must be null or an int in [1, {MAX_SIDE}], got {rs!r}")
        if h is None or rs < min(h, w):
            raise ValueError(f"{where}.resize (the shorter side before the centre crop) needs a declared height and "
                             f"width no larger than it, got resize {rs!r} with height {h!r}, width {w!r}")
    rng = spec.get("range", [0.0, 1.0])
    if not (isinstance(rng, (list, tuple)) and len(rng) == 2 and all(_number(v) for v in rng) and rng[0] < rng[1]):
        raise ValueError(f"{where}.range must be two finite numbers [lo, hi] with lo < hi, got {rng!r}")
    out = dict(spec, channels=int(c), range=[float(rng[0]), float(rng[1])])
    for name, default in (("mean", 0.0), ("std", 1.0)):
        v = spec.get(name, default)
        vals = list(v) if isinstance(v, (list, tuple)) else [v]
        if len(vals) not in (1, c) or not all(_number(a) for a in vals):
            raise ValueError(f"{where}.{name} must be one finite number or {c} (one per channel), got {v!r}")
        if name == "std" and min(vals) <= 0:
            raise ValueError(f"{where}.std must be > 0 (it divides), got {v!r}")
        out[name] = [float(a) for a in vals] * (c if len(vals) == 1 else 1)
    return out


def _spec(info):
    return getattr(info, "input", info)


def check_in_range(images, info, name="images"):
    """``images`` as a float64 array whose values lie in the declared range; one-line ``ValueError`` otherwise.

    The rule for arrays and lists alike (module docstring).  ``info``: a ``ModelInfo`` or its ``input`` dict.
    """
    spec = _spec(info)
    if isinstance(images, (list, tuple)):
        try:
            images = np.asarray(images)
        except ValueError as exc:  # ragged nested lists
            raise ValueError(
                f"{name}: a list must be a regular nested list of numbers ({exc})".splitlines()[0]
            ) from None
    x = as_float_array(images, name)
    x = x.astype(np.float64, copy=False)
    lo, hi = (float(v) for v in spec.get("range", [0.0, 1.0]))
    if x.size:
        tol = RANGE_TOLERANCE * (hi - lo)
        xmin, xmax = float(x.min()), float(x.max())
        if xmin < lo - tol or xmax > hi + tol:
            hint = " (8-bit pixel values? divide by 255 first)" if xmax > hi and xmax <= 255 and hi <= 1 else ""
            raise ValueError(
                f"{name} have values in [{xmin:.6g}, {xmax:.6g}], outside the model's declared input range "
                f"[{lo:g}, {hi:g}]{hint}"
            )
    return x


def check_model_space(x, info, name="model inputs"):
    """Refuse model inputs outside the declared range after normalisation, per channel:
    ``[(lo − mean)/std, (hi − mean)/std]`` (to round-off); one line naming the declared range.

    For arrays that are already normalised (an ``.npy`` of model inputs); reads ``x`` in blocks of
    images (memory-mapped files are not loaded whole).
    """
    spec = _spec(info)
    lo, hi = (float(v) for v in spec.get("range", [0.0, 1.0]))
    c = x.shape[1]
    mean = np.asarray(spec.get("mean", 0.0), dtype=np.float64).ravel()
    std = np.asarray(spec.get("std", 1.0), dtype=np.float64).ravel()
    if mean.size not in (1, c) or std.size not in (1, c):
        raise ValueError(f"the model declares mean/std for {max(mean.size, std.size)} channel(s); {name} have {c}")
    low, high = np.broadcast_to((lo - mean) / std, (c,)), np.broadcast_to((hi - mean) / std, (c,))
    tol = RANGE_TOLERANCE * (high - low)
    step = max(1, (16 << 20) // max(1, x[:1].nbytes))
    for s in range(0, x.shape[0], step):
        b = as_float_array(np.asarray(x[s:s + step]), name)
        bmin, bmax = b.min(axis=(0, 2, 3)), b.max(axis=(0, 2, 3))
        if np.any(bmin < low - tol) or np.any(bmax > high + tol):
            k = int(np.argmax((bmin < low - tol) | (bmax > high + tol)))
            raise ValueError(
                f"{name}: channel {k} has values in [{bmin[k]:.6g}, {bmax[k]:.6g}], outside [{low[k]:.6g}, "
                f"{high[k]:.6g}], "
                f"the model's declared input range [{lo:g}, {hi:g}] after its normalisation (mean {mean.tolist()}, "
                f"std {std.tolist()})"
            )


def _normalise(x, spec):
    c = x.shape[-3] if x.ndim >= 3 else None
    mean = np.asarray(spec.get("mean", 0.0), dtype=np.float64)
    std = np.asarray(spec.get("std", 1.0), dtype=np.float64)
    if c is not None and mean.size not in (1, c) or c is not None and std.size not in (1, c):
        raise ValueError(f"the model declares mean/std for {mean.size} channel(s); the images have {c}")
    return (x - mean.reshape(-1, 1, 1)) / std.reshape(-1, 1, 1)


def to_model_input(pixels, info):
    """Pixels in ``[0, 1]`` ``(..., C, H, W)`` -> the model's input ``(lo + (hi − lo)·p − mean) / std``."""
    spec = _spec(info)
    p = as_float_array(pixels, "pixels").astype(np.float64, copy=False)
    if p.size and (p.min() < 0 or p.max() > 1):
        raise ValueError(f"pixels must lie in [0, 1], got values in [{p.min():.6g}, {p.max():.6g}]")
    lo, hi = (float(v) for v in spec.get("range", [0.0, 1.0]))
    return _normalise(lo + (hi - lo) * p, spec)


def picture(info, shape, level=0.0):
    """A uniform picture in model space: every pixel at gray ``level`` in ``[0, 1]`` (0: black), normalised.

    ``shape``: ``(C, H, W)`` or ``(N, C, H, W)``; ``level``: a number or one per channel.  The black image
    of a model with ``mean``/``std`` is ``(lo − mean) / std``, not 0.
    """
    level = np.asarray(level, dtype=np.float64)
    c = shape[-3]
    if (
        level.ndim > 1
        or level.size not in (1, c)
        or not np.all(np.isfinite(level))
        or level.min() < 0
        or level.max() > 1
    ):
        raise ValueError(
            f"a baseline picture is a gray level in [0, 1] (0 black, 1 white) or {c} of them, got {level.tolist()!r}"
        )
    p = np.broadcast_to(level.reshape(-1, 1, 1), tuple(shape))
    return to_model_input(p, info)
