"""The conventions of xattr, stated once.

Every module imports these names instead of repeating the choices.

Layouts
    Images are ``(N, C, H, W)`` (``IMAGE_LAYOUT``); convolution weights ``(O, I, kH, kW)``
    (``CONV_WEIGHT_LAYOUT``); dense weights ``(out, in)`` (``DENSE_WEIGHT_LAYOUT``).
    These are the PyTorch/ONNX layouts, so weights copy over without transposes.

Dtypes
    float64 by default.  float32 input gives float32 output: the dtype of the input
    decides the dtype of every intermediate (parameters are cast to it), never silently
    changed.  Integer and boolean inputs are promoted to float64.  Other dtypes
    (float16, complex, object) are refused.

Kinks and ties
    ``RELU_GRAD_AT_ZERO = 0``: the derivative of ``max(x, 0)`` at ``x = 0`` is taken as 0
    (as PyTorch, TensorFlow and autograd's ``np.maximum`` do for the ReLU).
    ``KINK_POLICY = "outer"``: at every other kink of a piecewise activation the derivative is the
    slope of the piece *outside* the unit's open central region, as PyTorch's backward functions
    (checked against them in ``tests/test_activation.py``): ``LeakyReLU'(0) = PReLU'(0) = α`` (the
    negative side, like ``ReLU'(0) = 0``); ``ReLU6'(0) = ReLU6'(6) = 0``, and likewise ``Hardtanh``,
    ``Clamp`` (``torch.clamp``) and ``Hardsigmoid`` (at ±3) are 0 at their bounds; ``Hardswish'(−3) = 0``
    and ``Hardswish'(3) = 1``.  Softplus switches to the identity where ``βx > threshold`` (strictly).
    ``MAXPOOL_TIE_POLICY = "first"``: the default of :class:`xattr.nn.MaxPool2D`'s ``tie`` parameter.  When
    several inputs of a pooling window equal its maximum, the whole gradient goes to the first of them in
    row-major window order (the switch PyTorch's ``max_pool2d`` records).  ``tie="split"`` is autograd's choice
    instead: the gradient split evenly between tied maxima (``balanced_eq``).  Tests at ties compare each policy
    with its source (``tests/test_pool.py``: torch for "first", autograd for "split").

Randomness
    Only through an explicit ``rng``: a ``numpy.random.Generator`` or a seed
    (see :func:`as_rng`).  No global state.
"""
from __future__ import annotations

import numbers

import numpy as np

IMAGE_LAYOUT = "NCHW"
CONV_WEIGHT_LAYOUT = "OIHW"
DENSE_WEIGHT_LAYOUT = "OI"

DEFAULT_DTYPE = np.float64
SUPPORTED_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

RELU_GRAD_AT_ZERO = 0.0
KINK_POLICY = "outer"
MAXPOOL_TIE_POLICY = "first"
#: the max-pool tie policies (``MaxPool2D(tie=...)``): PyTorch's first switch, autograd's even split.
MAXPOOL_TIE_POLICIES = ("first", "split")


#: arrays of at least this many values are tested for NaN/inf by one BLAS dot product (:func:`all_finite`).
FINITE_BY_DOT_MIN_SIZE = 4096


def all_finite(arr):
    """True iff the float array ``arr`` holds no NaN or inf.

    Every layer checks its input, so this runs once per node and pass.  For a large contiguous array the
    test is ``isfinite(arr · arr)``: a NaN or an inf makes the sum of squares NaN or inf, and finite squares sum
    to a finite number unless they overflow (``|x| ≳ 1.8e19`` in float32), when the element-wise test decides.
    One BLAS pass without a boolean temporary: ~1.7× faster than ``isfinite(arr).all()`` on MobileNetV2's
    activations.
    """
    if arr.size >= FINITE_BY_DOT_MIN_SIZE and arr.flags.c_contiguous:
        flat = arr.reshape(-1)
        with np.errstate(over="ignore", invalid="ignore"):
            if np.isfinite(np.dot(flat, flat)):
                return True
    return bool(np.all(np.isfinite(arr)))


def as_float_array(x, name="x", ndim=None, allow_nonfinite=False):
    """Return ``x`` as a float32/float64 ndarray, validated; never a view that aliases writes.

    Parameters
    ----------
    x : array_like
    name : str
        Used in error messages.
    ndim : int or tuple of int, optional
        Required rank(s).
    allow_nonfinite : bool
        If False (default), NaN and inf raise ``ValueError``.

    Returns
    -------
    ndarray
        float64 for integer/bool/float64 input, float32 for float32 input.  The caller's
        array is not modified (xattr never writes into its inputs).
    """
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except Exception as exc:  # pragma: no cover - exotic inputs
            raise TypeError(f"{name} must be array-like, got {type(x).__name__}") from exc
    if arr.dtype.kind in "iub":
        arr = arr.astype(DEFAULT_DTYPE)
    elif arr.dtype not in SUPPORTED_FLOAT_DTYPES:
        raise TypeError(
            f"{name} must have dtype float32 or float64 (integers are promoted to float64), "
            f"got {arr.dtype}"
        )
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(f"{name} must have rank {want}, got shape {arr.shape} (rank {arr.ndim})")
    if not allow_nonfinite and not all_finite(arr):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} must be finite, got {bad} NaN/inf value(s)")
    return arr


def check_image_batch(x, name="x", channels=None):
    """Validate an image batch ``(N, C, H, W)``; return it as a float array.

    ``channels`` (int, optional) is the channel count the model expects.
    """
    arr = as_float_array(x, name, ndim=4)
    if channels is not None and arr.shape[1] != channels:
        raise ValueError(
            f"{name} must have {channels} channel(s) in layout (N, C, H, W), "
            f"got shape {arr.shape} with {arr.shape[1]}"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one image, got shape {arr.shape}")
    return arr


def as_rng(rng):
    """A ``numpy.random.Generator`` from a Generator or an integer seed.

    ``None`` is refused on purpose: stochastic methods must be given their randomness.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (numbers.Integral, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    if isinstance(rng, np.random.SeedSequence):
        return np.random.default_rng(rng)
    raise TypeError(
        "rng must be a numpy.random.Generator or an integer seed (xattr has no hidden "
        f"global randomness), got {type(rng).__name__}"
    )


def _is_int(v):
    return isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, (bool, np.bool_))


def count(v, name, minimum=1):
    """``v`` as an int ``>= minimum`` (a size: channels, features); floats such as ``3.7`` or ``3.0`` and bools
    are refused rather than truncated."""
    if not _is_int(v):
        raise TypeError(f"{name} must be an int, got {v!r} ({type(v).__name__})")
    if v < minimum:
        raise ValueError(f"{name} must be {'a positive int' if minimum == 1 else f'an int >= {minimum}'}, got {v}")
    return int(v)


def pair(v, name):
    """``v`` as a pair of non-negative ints (``3 -> (3, 3)``); non-integers are refused, never truncated."""
    if _is_int(v):
        out = (int(v), int(v))
    else:
        try:
            items = tuple(v)
        except TypeError:
            raise TypeError(f"{name} must be an int or a pair of ints, got {v!r}") from None
        if len(items) != 2 or not all(_is_int(a) for a in items):
            raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
        out = tuple(int(a) for a in items)
    if min(out) < 0:
        raise ValueError(f"{name} must be non-negative, got {v!r}")
    return out
