"""2-D convolution (cross-correlation, as in PyTorch/ONNX) by im2col + GEMM.

Forward:  ``y[n, o] = b[o] + sum_{c, i, j} W[o, c, i, j] * xp[n, c, s*h + d*i, s*w + d*j]``
(``xp`` the zero-padded input).  Its backward with respect to ``x`` is the transposed
convolution ``R ⋆ K̂``; it is the same for the gradient, DeconvNet and guided rules
(Zeiler & Fergus 2014; Springenberg et al. 2015).

The kernels loop over the ``kH * kW`` kernel offsets (never over pixels) and call BLAS for the products.
Their naive loop twins are in :mod:`xattr.nn.reference`.  Columns are ordered ``(c, i, j)``, the weight's
own memory order, so the weight matrix ``W.reshape(O, C·kH·kW)`` and its transpose are views: no copy of
the weights per call.  Four layouts, chosen per call (benchmarks/README.md has the measurements):

* **Pointwise** (1×1, stride 1, no padding): the image ``(C, H·W)`` is already the column matrix, so the
  layer is one GEMM per image, ``W (O, C) @ x (C, H·W)``, with no copy.
* **Rows** (the default): image by image and tile by tile of output rows (:func:`row_tiles`), the tile's
  columns are built (:func:`im2col_tile`) and multiplied straight into the output, ``y[n][:, tile] = W @
  cols``; the input gradient is ``Wᵀ g[n][:, tile]`` scattered back (:func:`col2im_tile`).  A tile holds
  about ``TILE_BYTES`` of columns, so they are written and read while in the CPU's cache (at 64 channels
  of 224×224 the whole image's columns are 115 MB, and building them first made the forward 1.5× slower
  than its GEMM), and at least ``TILE_MIN_COLUMNS`` output pixels, below which OpenBLAS's packing of the
  weights dominates.  Strided layers read their windows straight from the padded input (one copy).
* **Side by side** (stride 1, several images whose columns take at most ``SIDE_BY_SIDE_BYTES`` each, as the
  boxes of incremental occlusion, the small CNNs' maps or the 7×7 maps of a batch): the *wide* layout.  The padded rows
  of each
  channel are laid end to end (``Hp·Wp`` values), so kernel offset ``(i, j)`` is one shift of that flat
  array by ``d_h·i·Wp + d_w·j`` and im2col copies runs of ``L = (Ho−1)·Wp + Wo`` values instead of rows of
  ``Wo``; the GEMM also computes the ``Wp − Wo`` columns that wrap around the right border, dropped by a
  strided view (forward) or fed zeros (backward).  A chunk's images side by side, ``(K, N·L)``, make one
  GEMM per layer.
* **Stacked** (several images whose maps are small against the weights, any stride: ResNet's and VGG's 14×14 and
  7×7 stages, AlexNet's 13×13 with a batch): the compact columns of a chunk of images side by side,
  ``(K, N·Ho·Wo)`` (:func:`stacked_im2col`), one GEMM that reads the weights once for the chunk; the input gradient
  is one GEMM on the gradient with its images side by side, scattered back by :func:`stacked_col2im`.

Scratch (columns, wide outputs and gradients) is borrowed from :mod:`xattr.nn._workspace` and never
returned.

Grouped convolutions (``groups = G``, AlexNet's two towers, ResNeXt, MobileNet) split the channels into
``G`` groups of ``I/G`` inputs and ``O/G`` outputs.  Their columns hold each group's own channels (rows
``(g, c, i, j)``), so the kernel is one *batched* GEMM over the group axis, ``(G, O/G, K/G) @ (G, K/G, ·)``,
never an ``(O, K)`` matrix that is mostly zeros.  Depthwise convolutions (``groups = in_channels``: one input
channel per group) have no columns across channels: per channel, the kernel's windows side by side and one
GEMV (:func:`depthwise_sums`); the input gradient is the same kernel on the gradient, one sub-pixel phase per
stride offset (:meth:`Conv2D._depthwise_input_grad`).
"""
from __future__ import annotations

import numpy as np

from .._conventions import check_image_batch, count, pair
from . import relevance as _relevance
from ._workspace import borrow
from .base import Cache, Layer, default_rng, defjvp, defrule, param_property
from .region import defregion, window_region_2d

#: bytes the im2col buffer may take per chunk of images (the side-by-side layout of small maps).
IM2COL_BUDGET = 64 * 2**20
#: bytes of im2col columns per GEMM in the per-image layout (a tile of output rows; see :func:`row_tiles`).
TILE_BYTES = 4 * 2**20
#: ... but at least this many output pixels per GEMM.
TILE_MIN_COLUMNS = 1024
#: images whose columns take at most this many bytes go side by side into one GEMM (stride 1, wide layout).
SIDE_BY_SIDE_BYTES = 2 * 2**20
#: stride-1 input gradients whose wide columns take at most this many bytes per image go through the wide layout
#: even for one image (one GEMM per image, contiguous adds: :func:`wide_col2im`); measured, 1 thread, float32, one
#: image: ResNet-18's 64×56×56 3×3 backward 3.9 -> 2.5 ms, 128×28×28 2.8 -> 2.6 ms; the forward keeps its row tiles
#: (the wide forward was no faster there: 256×14×14 2.4 -> 2.8 ms).  Layers with fewer input channels than
#: ``WIDE_GRADIENT_MIN_CHANNELS`` keep the row tiles: VGG's first conv (3 channels of 224×224, K = 27) took
#: 3.9 ms by rows and 5.4 ms wide (its thin GEMM writes 5.4 MB of columns that the adds then read again).
WIDE_GRADIENT_BYTES = 16 * 2**20
WIDE_GRADIENT_MIN_CHANNELS = 16
#: bytes of window runs a depthwise kernel copies side by side per batched GEMV (:func:`depthwise_sums`): a
#: block that stays in cache between its copy and its product (measured, 1 thread, float32: 2**20 beat 2**18
#: and 2**22 at MobileNetV2's 32x112x112 and 144x56x56).
DEPTHWISE_BLOCK_BYTES = 2**20
#: strided convs with overlapping windows and at least this many kernel offsets take their input gradient through
#: phase planes (:func:`phase_col2im`); measured, 1 thread, float32: AlexNet's conv1 (11×11 stride 4) backward
#: 5.4 -> 3.1 ms, ResNet's conv1 (7×7 stride 2) 5.1 -> 4.8 ms, but its 3×3 stride-2 convs 1.5-1.8 -> 1.5-2.2 ms
#: (nine strided scatters cost less than the planes' zeroing and interleaving).  The forward pass through the
#: planes was measured too and was no faster (AlexNet conv1 4.0 ms either way, 3×3 stride 2 slower).
PHASE_MIN_OFFSETS = 25
#: stride-1 depthwise outputs narrower than this many pixels copy wide runs (whole rows of the source laid end to
#: end, the wrapped columns dropped once at the end) instead of windows of ``Wo``-value rows (short copies).
DEPTHWISE_WIDE_BELOW = 32
#: several images go through one GEMM per chunk with compact columns side by side (:func:`stacked_im2col`),
#: forward and input gradient, at any stride, when a group's output channels outnumber an image's output pixels times
#: this ratio: the weights then outweigh one image's columns, and one GEMM per image would re-read them per
#: image (and the wide layout computes ``Wp / Wo`` times the output: 9/7 at 7×7).  Measured, 1 thread, float32
#: (benchmarks/README.md): ResNet-18's 512×7×7 3×3 at 3 images forward 10.6 -> 9.4 ms, backward 13.4 -> 11.1 ms;
#: at 6 images 20.4 -> 18.0 ms and 27.3 -> 20.8 ms; but 16 images of 64×8×8 (64 channels, 64 pixels) forward
#: 1.8 -> 1.9 ms, backward 2.3 -> 2.9 ms.
STACKED_MIN_RATIO = 1.0


def conv_output_size(size, k, s, d, pad_lo, pad_hi):
    """Output length of a convolution/pooling along one axis (floor mode, as PyTorch).

    ``floor((size + pad_lo + pad_hi − d·(k − 1) − 1) / s) + 1``.

    Parameters
    ----------
    size : int
        The input length.
    k, s, d : int
        Kernel size, stride, dilation.
    pad_lo, pad_hi : int
        Padding before (top/left) and after (bottom/right).

    Returns
    -------
    int
    """
    return (size + pad_lo + pad_hi - d * (k - 1) - 1) // s + 1


def pad_spec(padding, kernel, dilation, stride):
    """((top, bottom), (left, right)) from an int, a pair, a pair of pairs, ``"valid"`` or ``"same"``.

    ``"same"`` (stride 1 only, as PyTorch) pads ``d*(k-1)`` in total, the odd pixel at the
    bottom/right, so that the output has the input's size.  ``((top, bottom), (left, right))`` pads
    asymmetrically (ONNX's ``pads``; TensorFlow's "SAME" at stride 2).

    Parameters
    ----------
    padding : int, (int, int), ``((top, bottom), (left, right))``, ``"valid"`` or ``"same"``
        An int pads all four sides alike; a pair ``(ph, pw)`` pads top and bottom by ``ph``, left and right by ``pw``.
    kernel, dilation, stride : (int, int)
        The layer's, as pairs (``"same"`` reads the kernel and dilation and needs ``stride == (1, 1)``).

    Returns
    -------
    ((int, int), (int, int))
        ``((top, bottom), (left, right))``.

    Raises
    ------
    ValueError
        ``"same"`` at a stride other than 1, or a string other than ``"valid"`` and ``"same"``.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0), (0, 0))
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"padding='same' needs stride 1, got stride {stride}")
            tot = [d * (k - 1) for k, d in zip(kernel, dilation)]
            return tuple((t // 2, t - t // 2) for t in tot)
        raise ValueError(f"padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(isinstance(p, (tuple, list)) for p in padding):
        return (pair(padding[0], "padding (top, bottom)"), pair(padding[1], "padding (left, right)"))
    ph, pw = pair(padding, "padding")
    return ((ph, ph), (pw, pw))


def pad_nchw(x, pads, value=0.0):
    """Pad the spatial axes of ``(N, C, H, W)``; returns ``x`` itself when there is nothing to pad.

    Parameters
    ----------
    x : ndarray ``(N, C, H, W)``
    pads : ((int, int), (int, int))
        ``((top, bottom), (left, right))``, as :func:`pad_spec` gives them.
    value : float
        The value of the padded pixels (default 0).

    Returns
    -------
    ndarray ``(N, C, H + top + bottom, W + left + right)``
        A new array of ``x``'s dtype, or ``x`` itself when every pad is 0.
    """
    (t, b), (l, r) = pads
    if t == b == l == r == 0:
        return x
    N, C, H, W = x.shape
    # one copy into an empty buffer and the border filled (what np.pad does, without its per-axis machinery);
    # filling the whole buffer first costs one more pass (~25 % more at MobileNetV2's 112×112 maps)
    xp = np.empty((N, C, H + t + b, W + l + r), dtype=x.dtype)
    xp[:, :, :t] = value
    xp[:, :, t + H :] = value
    xp[:, :, t : t + H, :l] = value
    xp[:, :, t : t + H, l + W :] = value
    xp[:, :, t : t + H, l : l + W] = x
    return xp


def window_slices(i, j, out_hw, stride, dilation):
    """Slices of the padded input read by kernel offset ``(i, j)`` for every output pixel.

    Parameters
    ----------
    i, j : int
        The kernel offset (row, column).
    out_hw : (int, int)
        The output's ``(Ho, Wo)``.
    stride, dilation : (int, int)
        ``(s_h, s_w)`` and ``(d_h, d_w)``.

    Returns
    -------
    (slice, slice)
        Rows ``d_h·i :: s_h`` and columns ``d_w·j :: s_w``, ``Ho`` and ``Wo`` of them: indexing the padded input
        ``(..., Hp, Wp)`` with them gives ``(..., Ho, Wo)``.
    """
    (Ho, Wo), (sh, sw), (dh, dw) = out_hw, stride, dilation
    return (
        slice(i * dh, i * dh + sh * (Ho - 1) + 1, sh),
        slice(j * dw, j * dw + sw * (Wo - 1) + 1, sw),
    )


def im2col(xp, kernel, stride, dilation, out_hw, out=None, groups=1):
    """``(N, C, Hp, Wp)`` -> ``(N, C*kH*kW, Ho*Wo)``, rows ordered ``(c, i, j)`` like ``weight.reshape(O, -1)``.

    Channel-major rows are the weight's own memory order, so the weight matrix is a view (no transposed
    copy of the weights per call: at 7×7 maps that copy cost as much as the GEMM).  With ``groups = G``
    the rows of group ``g`` (its ``C/G`` channels) are consecutive: reshaped ``(N, G, K/G, P)`` they are
    the group's own columns.

    Parameters
    ----------
    xp : ndarray ``(N, C, Hp, Wp)``
        The padded input.
    kernel, stride, dilation : (int, int)
        ``(kH, kW)``, ``(s_h, s_w)``, ``(d_h, d_w)``.
    out_hw : (int, int)
        The output's ``(Ho, Wo)``.
    out : ndarray, optional
        A C-contiguous buffer of ``N*C*kH*kW*Ho*Wo`` values of ``xp``'s dtype to fill (default: a new array).
    groups : int
        ``G``; the rows are the same for every ``G`` (above), so it changes nothing in the result.

    Returns
    -------
    ndarray ``(N, C*kH*kW, Ho*Wo)``
        ``xp``'s dtype; a view of ``out`` when given.
    """
    N, C = xp.shape[:2]
    kh, kw = kernel
    shape = (N, C, kh, kw) + tuple(out_hw)
    cols = np.empty(shape, dtype=xp.dtype) if out is None else out.reshape(shape)
    _gather_windows(xp, cols, stride, dilation, out_hw)
    return cols.reshape(N, C * kh * kw, out_hw[0] * out_hw[1])


def _gather_windows(xp, cols, stride, dilation, out_hw):
    """Copy into ``cols[:, :, i, j]`` the window of ``xp`` ``(N, C, Hp, Wp)`` that kernel offset ``(i, j)`` reads;
    ``cols`` is a ``(N, C, kH, kW, Ho, Wo)`` view in any memory order (:func:`im2col`'s, :func:`stacked_im2col`'s)."""
    for i in range(cols.shape[2]):
        for j in range(cols.shape[3]):
            cols[:, :, i, j] = xp[(slice(None), slice(None)) + window_slices(i, j, out_hw, stride, dilation)]


def _scatter_windows(cols, padded_shape, stride, dilation, out_hw, disjoint=False):
    """Adjoint of :func:`_gather_windows`: a zero ``padded_shape`` array with ``cols[:, :, i, j]`` added back at the
    window of kernel offset ``(i, j)`` (assigned when ``disjoint``: windows that never overlap, one read less)."""
    xp = np.zeros(padded_shape, dtype=cols.dtype)
    for i in range(cols.shape[2]):
        for j in range(cols.shape[3]):
            win = (slice(None), slice(None)) + window_slices(i, j, out_hw, stride, dilation)
            if disjoint:
                xp[win] = cols[:, :, i, j]
            else:
                xp[win] += cols[:, :, i, j]
    return xp


def col2im(cols, padded_shape, kernel, stride, dilation, out_hw, groups=1):
    """Adjoint of :func:`im2col`: scatter-add ``(N, C*kH*kW, Ho*Wo)`` (rows ``(c, i, j)``) into ``padded_shape``.

    Parameters
    ----------
    cols : ndarray ``(N, C*kH*kW, Ho*Wo)``
        Columns, rows ordered ``(c, i, j)``.
    padded_shape : (int, int, int, int)
        ``(N, C, Hp, Wp)``, the padded input's shape.
    kernel, stride, dilation : (int, int)
        ``(kH, kW)``, ``(s_h, s_w)``, ``(d_h, d_w)``.
    out_hw : (int, int)
        The output's ``(Ho, Wo)``.
    groups : int
        ``G``; as in :func:`im2col`, the row order is the same for every ``G``, so it changes nothing in the result.

    Returns
    -------
    ndarray ``padded_shape``
        A new array of ``cols``' dtype: zero, plus every column added back at the pixel it was read from.
    """
    cols = cols.reshape(tuple(padded_shape[:2]) + tuple(kernel) + tuple(out_hw))
    return _scatter_windows(cols, padded_shape, stride, dilation, out_hw)


def stacked_im2col(xp, kernel, stride, dilation, out_hw, out=None, groups=1):
    """``(N, C, Hp, Wp)`` -> ``(C*kH*kW, N, Ho*Wo)``: :func:`im2col`'s columns with the images side by side.

    For maps small against the weights (:data:`STACKED_MIN_RATIO`) one GEMM ``(O, K) @ (K, N·Ho·Wo)`` over a chunk of
    images reads the weights once, where a GEMM per image of ``Ho·Wo`` columns re-reads them per image, and has no
    wrapped columns (the wide layout computes ``Wp / Wo`` times the output there: 9/7 at 7×7 maps).

    Parameters
    ----------
    xp : ndarray ``(N, C, Hp, Wp)``
        The padded input.
    kernel, stride, dilation : (int, int)
        ``(kH, kW)``, ``(s_h, s_w)``, ``(d_h, d_w)``.
    out_hw : (int, int)
        The output's ``(Ho, Wo)``.
    out : ndarray, optional
        A C-contiguous buffer of ``C*kH*kW*N*Ho*Wo`` values of ``xp``'s dtype to fill (default: a new array).
    groups : int
        ``G``; the rows of group ``g`` are consecutive whatever ``G`` is (as :func:`im2col`'s), so it changes nothing
        in the result.

    Returns
    -------
    ndarray ``(C*kH*kW, N, Ho*Wo)``
        Rows ``(c, i, j)``; ``xp``'s dtype, a view of ``out`` when given.
    """
    N, C = xp.shape[:2]
    kh, kw = kernel
    shape = (C, kh, kw, N) + tuple(out_hw)
    cols = np.empty(shape, dtype=xp.dtype) if out is None else out.reshape(shape)
    _gather_windows(xp, cols.transpose(3, 0, 1, 2, 4, 5), stride, dilation, out_hw)
    return cols.reshape(C * kh * kw, N, out_hw[0] * out_hw[1])


def stacked_col2im(cols, padded_shape, kernel, stride, dilation, out_hw, groups=1):
    """Adjoint of :func:`stacked_im2col`: scatter-add ``(C*kH*kW, N, Ho*Wo)`` columns into a zero ``padded_shape``.

    Parameters
    ----------
    cols : ndarray ``(C*kH*kW, N, Ho*Wo)``
        Columns, rows ordered ``(c, i, j)``, the images side by side.
    padded_shape : (int, int, int, int)
        ``(N, C, Hp, Wp)``, the padded input's shape.
    kernel, stride, dilation : (int, int)
        ``(kH, kW)``, ``(s_h, s_w)``, ``(d_h, d_w)``.
    out_hw : (int, int)
        The output's ``(Ho, Wo)``.
    groups : int
        ``G``; the row order is the same for every ``G``, so it changes nothing in the result.

    Returns
    -------
    ndarray ``padded_shape``
        A new array of ``cols``' dtype: zero, plus every column added back at the pixel it was read from.
    """
    N, C = padded_shape[:2]
    cols = cols.reshape((C,) + tuple(kernel) + (N,) + tuple(out_hw)).transpose(3, 0, 1, 2, 4, 5)
    # windows that never overlap (2×2 stride 2, say) each write their own pixels: assigned, as col2im_tile does
    disjoint = all(s >= d * (k - 1) + 1 for s, d, k in zip(stride, dilation, kernel))
    return _scatter_windows(cols, padded_shape, stride, dilation, out_hw, disjoint)


def wide_length(padded_hw, out_hw):
    """``L = (Ho − 1)·Wp + Wo``: flat positions from the first to the last output pixel in the wide layout.

    Parameters
    ----------
    padded_hw : (int, int)
        The padded input's ``(Hp, Wp)``.
    out_hw : (int, int)
        The output's ``(Ho, Wo)``.

    Returns
    -------
    int
        ``L``.
    """
    return (out_hw[0] - 1) * padded_hw[1] + out_hw[1]


def wide_offsets(kernel, dilation, padded_hw):
    """Flat shift ``d_h·i·Wp + d_w·j`` of every kernel offset ``(i, j)``, row-major (im2col's row order).

    Parameters
    ----------
    kernel, dilation : (int, int)
        ``(kH, kW)`` and ``(d_h, d_w)``.
    padded_hw : (int, int)
        The padded input's ``(Hp, Wp)``.

    Returns
    -------
    list of int
        ``kH·kW`` shifts, ``(i, j)`` row-major.
    """
    (kh, kw), (dh, dw), Wp = kernel, dilation, padded_hw[1]
    return [dh * i * Wp + dw * j for i in range(kh) for j in range(kw)]


def wide_im2col(xp, kernel, dilation, out_hw, out=None, groups=1):
    """Stride 1: ``(N, C, Hp, Wp)`` -> ``(C*kH*kW, N, L)`` in the wide layout, rows ordered ``(c, i, j)``.

    Column ``h·Wp + w`` of image ``n`` holds output pixel ``(h, w)`` for ``w < Wo``; the others wrap
    around the border.  Images side by side make the forward one GEMM per layer (per group),
    ``(O, K) @ (K, N·L)``, rather than N small ones.

    Parameters
    ----------
    xp : ndarray ``(N, C, Hp, Wp)``
        The padded input.
    kernel, dilation : (int, int)
        ``(kH, kW)`` and ``(d_h, d_w)`` (the stride is 1).
    out_hw : (int, int)
        The output's ``(Ho, Wo)``.
    out : ndarray, optional
        As :func:`im2col`'s: a C-contiguous buffer of ``C*kH*kW*N*L`` values of ``xp``'s dtype to fill (default: a
        new array).
    groups : int
        ``G``; the rows of group ``g`` are consecutive whatever ``G`` is (as :func:`im2col`'s), so it changes nothing
        in the result.

    Returns
    -------
    ndarray ``(C*kH*kW, N, L)``
        ``L = (Ho − 1)·Wp + Wo`` (:func:`wide_length`); ``xp``'s dtype, a view of ``out`` when given.
    """
    N, C, Hp, Wp = xp.shape
    L = wide_length((Hp, Wp), out_hw)
    flat = xp.reshape(N, C, Hp * Wp)
    offs = wide_offsets(kernel, dilation, (Hp, Wp))
    shape = (C, len(offs), N, L)
    cols = np.empty(shape, dtype=xp.dtype) if out is None else out.reshape(shape)
    for k, off in enumerate(offs):
        cols[:, k] = flat[:, :, off : off + L].transpose(1, 0, 2)
    return cols.reshape(C * len(offs), N, L)


def wide_to_image(yw, out_hw, Wp, out=None):
    """View ``(O, N, L)`` wide columns as the ``(N, O, Ho, Wo)`` images (drops the wrapped columns).

    Parameters
    ----------
    yw : ndarray ``(O, N, L)``
        Wide columns, ``L = (Ho − 1)·Wp + Wo`` (:func:`wide_length`).
    out_hw : (int, int)
        The output's ``(Ho, Wo)``.
    Wp : int
        The padded input's width: output row ``h`` starts at column ``h·Wp``.
    out : ndarray ``(N, O, Ho, Wo)``, optional
        Where to copy the images.

    Returns
    -------
    ndarray ``(N, O, Ho, Wo)``
        ``out``, filled, if given; else a read-only view of ``yw``.
    """
    O, N = yw.shape[:2]
    s = yw.strides
    view = np.lib.stride_tricks.as_strided(yw, (N, O) + tuple(out_hw), (s[1], s[0], Wp * s[2], s[2]), writeable=False)
    if out is None:
        return view
    np.copyto(out, view)
    return out


def image_to_wide(g, Wp, out=None):
    """``(N, O, Ho, Wo)`` -> ``(N, O, L)`` wide columns, zeros in the wrapped ones (so they add nothing).

    Parameters
    ----------
    g : ndarray ``(N, O, Ho, Wo)``
    Wp : int
        The padded input's width: row ``h`` of ``g`` goes to columns ``h·Wp`` to ``h·Wp + Wo``.
    out : ndarray, optional
        A buffer of ``N*O*Ho*Wp`` values to fill (default: a new array).

    Returns
    -------
    ndarray ``(N, O, L)``
        ``L = (Ho − 1)·Wp + Wo`` (:func:`wide_length`); ``g``'s dtype, a view of the ``(N, O, Ho·Wp)`` buffer.
    """
    N, O, Ho, Wo = g.shape
    gw = np.empty((N, O, Ho * Wp), dtype=g.dtype) if out is None else out.reshape(N, O, Ho * Wp)
    g4 = gw.reshape(N, O, Ho, Wp)
    g4[:, :, :, :Wo] = g
    g4[:, :, :, Wo:] = 0
    return gw[:, :, : wide_length((Ho, Wp), (Ho, Wo))]


def wide_col2im(cols, padded_shape, kernel, dilation, out_hw, groups=1):
    """Scatter-add wide columns into a zero ``padded_shape`` array: adjoint of :func:`wide_im2col` up to image order.

    Parameters
    ----------
    cols : ndarray ``(N, C*kH*kW, L)``
        Wide columns, image-major, as ``Wᵀ @ image_to_wide(g)`` gives them; rows ``(c, i, j)``.
    padded_shape : (int, int, int, int)
        ``(N, C, Hp, Wp)``, the padded input's shape.
    kernel, dilation : (int, int)
        ``(kH, kW)`` and ``(d_h, d_w)`` (the stride is 1).
    out_hw : (int, int)
        The output's ``(Ho, Wo)``; ``L = (Ho − 1)·Wp + Wo`` (:func:`wide_length`).
    groups : int
        ``G``; the row order is the same for every ``G``, so it changes nothing in the result.

    Returns
    -------
    ndarray ``padded_shape``
        A new array of ``cols``' dtype.
    """
    N, C, Hp, Wp = padded_shape
    L = wide_length((Hp, Wp), out_hw)
    offs = wide_offsets(kernel, dilation, (Hp, Wp))
    cols = cols.reshape(N, C, len(offs), L)
    flat = np.empty((N, C, Hp * Wp), dtype=cols.dtype)
    # offset 0 covers [0, L): assigned, not added to zeros; the tail is zeroed (one pass saved)
    flat[:, :, :L] = cols[:, :, 0]
    flat[:, :, L:] = 0
    for k, off in enumerate(offs[1:], start=1):
        flat[:, :, off : off + L] += cols[:, :, k]
    return flat.reshape(padded_shape)


def phase_col2im(cols, padded_shape, kernel, stride, dilation, out_hw):
    """Scatter-add wide columns of a strided conv through its phase planes; the adjoint of its im2col.

    Kernel offset ``(i, j)`` of output pixel ``(h, w)`` reads the padded input at ``(s_h h + d_h i, s_w w + d_w j)``:
    in the phase plane ``(a, b) = (d_h i mod s_h, d_w j mod s_w)`` (the pixels ``xp[a::s_h, b::s_w]``, rows of
    ``Wq = ⌈Wp / s_w⌉``) that is ``(h + d_h i div s_h, w + d_w j div s_w)``.  So with the columns in the wide
    layout of row width ``Wq`` (:func:`image_to_wide` with ``Wq``) each offset adds one contiguous run of
    ``L = (Ho − 1)·Wq + Wo`` values to one flat phase plane, instead of a window strided by ``s`` in the image
    (AlexNet's conv1, 11×11 stride 4: 121 strided scatters of 55×55 values); the ``s_h·s_w`` planes are then laid
    back into the image, one strided copy each.  The wrapped columns of ``cols`` must be zero (they are when
    ``g`` was laid out by :func:`image_to_wide`), so they add nothing.

    Parameters
    ----------
    cols : ndarray ``(N, C·kH·kW, L)``
        Wide columns, rows ``(c, i, j)``, ``L = (Ho − 1)·Wq + Wo``.
    padded_shape : (int, int, int, int)
        ``(N, C, Hp, Wp)``.
    kernel, stride, dilation : (int, int)
    out_hw : (int, int)
        ``(Ho, Wo)``.

    Returns
    -------
    ndarray ``padded_shape``
        A new array of ``cols``' dtype.
    """
    N, C, Hp, Wp = padded_shape
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    Hq, Wq = -(-Hp // sh), -(-Wp // sw)
    L = (out_hw[0] - 1) * Wq + out_hw[1]
    cols = cols.reshape(N, C, kh * kw, L)
    planes = np.zeros((N, C, sh, sw, Hq * Wq), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            off = (dh * i // sh) * Wq + dw * j // sw
            planes[:, :, dh * i % sh, dw * j % sw, off : off + L] += cols[:, :, i * kw + j]
    gxp = np.empty(padded_shape, dtype=cols.dtype)
    planes = planes.reshape(N, C, sh, sw, Hq, Wq)
    for a in range(sh):
        for b in range(sw):
            part = gxp[:, :, a::sh, b::sw]
            part[...] = planes[:, :, a, b, : part.shape[2], : part.shape[3]]
    return gxp


def depthwise_sums(src, taps, w, stride, out_hw, out):
    """A per-channel correlation: ``out[n, c, m, p] = Σ_t w[c, m, t] · src[n, c, r_t, a_t + s_h·h, b_t + s_w·w]``.

    ``p = h·Wo + w``.  Per block of channels (and of images, when one channel's runs exceed the block), the
    ``T`` tap windows are copied side by side, ``(n, n_c, T, P)`` (about :data:`DEPTHWISE_BLOCK_BYTES`: still in
    cache for the product), and one batched product ``w[c] (M, T) @ runs[n, c] (T, P)`` per channel (a GEMV when
    ``M = 1``) is written straight into ``out``.  Copies are NumPy's cheapest pass; a per-tap scale-and-add costs
    two slower ones (measured 1.5-2x slower at MobileNetV2's sizes), and a depthwise convolution has no weight
    reuse across channels for a larger GEMM to exploit.

    Parameters
    ----------
    src : ndarray ``(N, C, R, Hs, Ws)``
        The (padded) planes the taps read; ``R`` planes per channel (the ``M`` gradients of a channel in the
        backward pass, 1 in the forward pass).
    taps : list of (int, int, int)
        ``[(r, a, b)]``, ``T`` of them: tap ``t`` reads plane ``r`` from row ``a`` and column ``b`` on.
    w : ndarray ``(C, M, T)``
        Tap ``t``'s weight for output ``m`` of channel ``c``.
    stride : (int, int)
        ``(s_h, s_w)``: the step between output pixels in ``src``.
    out_hw : (int, int)
        ``(Ho, Wo)``.
    out : ndarray ``(N, C, M, Ho·Wo)``
        Filled.

    Returns
    -------
    ndarray ``(N, C, M, Ho·Wo)``
        ``out``.
    """
    N, C, R, Hs, Ws = src.shape
    (Ho, Wo), (sh, sw) = out_hw, stride
    if (sh, sw) == (1, 1) and Wo < DEPTHWISE_WIDE_BELOW and Ho > 1 and src.flags.c_contiguous:
        # the wide layout (module docstring): tap (r, a, b) is one run of L values of the flat plane at a·Ws + b
        L = (Ho - 1) * Ws + Wo
        wide = borrow("conv.dw.wide", (N, C, w.shape[1], L), src.dtype)
        _depthwise_runs(src.reshape(N, C, R, 1, Hs * Ws), [(r, 0, a * Ws + b) for r, a, b in taps], w, (1, 1),
                        (1, L), wide)
        st = wide.strides
        np.copyto(out.reshape(N, C, -1, Ho, Wo),
                  np.lib.stride_tricks.as_strided(wide, wide.shape[:3] + (Ho, Wo), st[:3] + (Ws * st[3], st[3])))
        return out
    return _depthwise_runs(src, taps, w, stride, out_hw, out)


def _depthwise_runs(src, taps, w, stride, out_hw, out):
    """:func:`depthwise_sums` on ``Ho × Wo`` windows, ``out`` ``(N, C, M, Ho·Wo)``."""
    N, C = src.shape[:2]
    (Ho, Wo), (sh, sw) = out_hw, stride
    T, P = len(taps), Ho * Wo
    per_channel = T * P * src.itemsize
    n_step = N if N * per_channel <= DEPTHWISE_BLOCK_BYTES else max(1, DEPTHWISE_BLOCK_BYTES // per_channel)
    c_step = max(1, DEPTHWISE_BLOCK_BYTES // (n_step * per_channel))
    windows = [src[:, :, r, a : a + sh * (Ho - 1) + 1 : sh, b : b + sw * (Wo - 1) + 1 : sw] for r, a, b in taps]
    for n0 in range(0, N, n_step):
        ns = slice(n0, min(N, n0 + n_step))
        for c0 in range(0, C, c_step):
            cs = slice(c0, min(C, c0 + c_step))
            runs = borrow("conv.dw.runs", (ns.stop - ns.start, cs.stop - cs.start, T, Ho, Wo), src.dtype)
            for t, win in enumerate(windows):
                runs[:, :, t] = win[ns, cs]
            np.matmul(w[cs], runs.reshape(runs.shape[:3] + (P,)), out=out[ns, cs])
    return out


def weight_matrix(weight, dtype):
    """``(O, I, kH, kW)`` -> ``(O, I*kH*kW)`` with columns ordered ``(c, i, j)`` as :func:`im2col`'s rows.

    Parameters
    ----------
    weight : ndarray ``(O, I, kH, kW)``
    dtype : numpy dtype
        The dtype of the result.

    Returns
    -------
    ndarray ``(O, I*kH*kW)``
        A view unless ``dtype`` differs from the weight's.
    """
    return weight.reshape(weight.shape[0], -1).astype(dtype, copy=False)


def grouped_weight_matrix(weight, dtype, groups):
    """``(O, I/G, kH, kW)`` -> ``(G, O/G, I/G*kH*kW)``: each group's ``(c, i, j)`` columns.

    Parameters
    ----------
    weight : ndarray ``(O, I/G, kH, kW)``
    dtype : numpy dtype
        The dtype of the result.
    groups : int
        ``G``.

    Returns
    -------
    ndarray ``(G, O/G, I/G*kH*kW)``
        A view unless ``dtype`` differs from the weight's (as :func:`weight_matrix`).
    """
    return weight.reshape(groups, weight.shape[0] // groups, -1).astype(dtype, copy=False)


def row_tiles(out_rows, row_bytes, row_columns):
    """Slices of output rows whose im2col columns take about ``TILE_BYTES`` (at least ``TILE_MIN_COLUMNS`` per GEMM).

    A tile's columns are written and then read by the GEMM while they are still in the CPU's cache:
    at 64 channels of 224×224 the untiled columns (115 MB) made the forward 1.5× slower than the GEMM alone
    (benchmarks/README.md, "conv kernels").  Below ~1000 columns OpenBLAS's packing of the weights dominates.

    Parameters
    ----------
    out_rows : int
        ``Ho``, the output rows to cover.
    row_bytes : int
        Bytes of im2col columns per output row.
    row_columns : int
        Output pixels (columns) per output row, ``Wo``.

    Returns
    -------
    list of slice
        Consecutive slices covering ``range(out_rows)``, each of
        ``max(TILE_BYTES // row_bytes, ceil(TILE_MIN_COLUMNS / row_columns), 1)`` rows (the last may be shorter):
        at least ``TILE_MIN_COLUMNS`` output pixels per GEMM, at least one row.
    """
    rows = max(TILE_BYTES // max(1, row_bytes), -(-TILE_MIN_COLUMNS // max(1, row_columns)), 1)
    return [slice(a, min(out_rows, a + rows)) for a in range(0, out_rows, rows)]


def tile_windows(i, j, rows, out_w, stride, dilation):
    """Slices of the padded input read by kernel offset ``(i, j)`` for output rows ``rows`` (a slice).

    Parameters
    ----------
    i, j : int
        The kernel offset (row, column).
    rows : slice
        Output rows ``start`` to ``stop`` (step 1).
    out_w : int
        ``Wo``.
    stride, dilation : (int, int)
        ``(s_h, s_w)`` and ``(d_h, d_w)``.

    Returns
    -------
    (slice, slice)
        Rows ``s_h·start + d_h·i`` to ``s_h·(stop − 1) + d_h·i`` step ``s_h``, columns ``d_w·j :: s_w`` (``Wo`` of
        them): indexing a padded image ``(C, Hp, Wp)`` with them gives ``(C, stop − start, Wo)``.
    """
    (sh, sw), (dh, dw) = stride, dilation
    return (
        slice(rows.start * sh + i * dh, (rows.stop - 1) * sh + i * dh + 1, sh),
        slice(j * dw, j * dw + sw * (out_w - 1) + 1, sw),
    )


def im2col_tile(x, kernel, stride, dilation, rows, out_w, out):
    """Columns of one image's output rows ``rows``: ``(C, H, W)`` -> ``(C*kH*kW, rows·Wo)``, rows ``(c, i, j)``.

    Parameters
    ----------
    x : ndarray ``(C, H, W)``
        One padded image.
    kernel, stride, dilation : (int, int)
        ``(kH, kW)``, ``(s_h, s_w)``, ``(d_h, d_w)``.
    rows : slice
        The output rows (step 1).
    out_w : int
        ``Wo``.
    out : ndarray
        A C-contiguous buffer of ``C*kH*kW*rows·Wo`` values of ``x``'s dtype, filled.

    Returns
    -------
    ndarray ``(C*kH*kW, rows·Wo)``
        A view of ``out``; ``rows·Wo`` is ``(rows.stop − rows.start)·Wo``.
    """
    kh, kw = kernel
    cols = out.reshape((x.shape[0], kh, kw, rows.stop - rows.start, out_w))
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = x[(slice(None),) + tile_windows(i, j, rows, out_w, stride, dilation)]
    return cols.reshape(-1, (rows.stop - rows.start) * out_w)


def col2im_tile(cols, gx, kernel, stride, dilation, rows, out_w):
    """Adjoint of :func:`im2col_tile`: add ``(C*kH*kW, rows·Wo)`` columns into one padded image gradient ``gx``.

    In place; ``gx`` must be zero where no earlier tile wrote (windows that do not overlap, stride ≥ the dilated
    kernel on both axes, are assigned rather than added).

    Parameters
    ----------
    cols : ndarray ``(C*kH*kW, rows·Wo)``
        Columns of output rows ``rows``, rows ``(c, i, j)`` (any shape holding these values in this order).
    gx : ndarray ``(C, Hp, Wp)``
        The padded image gradient, written in place.
    kernel, stride, dilation : (int, int)
        ``(kH, kW)``, ``(s_h, s_w)``, ``(d_h, d_w)``.
    rows : slice
        The output rows (step 1).
    out_w : int
        ``Wo``.

    Returns
    -------
    None
    """
    kh, kw = kernel
    cols = cols.reshape((gx.shape[0], kh, kw, rows.stop - rows.start, out_w))
    # windows that do not overlap (stride >= dilated kernel, e.g. 2x2 stride 2) each write their
    # own pixels of the zero gradient: assigned rather than added (one read less per value)
    disjoint = all(s >= d * (k - 1) + 1 for s, d, k in zip(stride, dilation, kernel))
    for i in range(kh):
        for j in range(kw):
            win = (slice(None),) + tile_windows(i, j, rows, out_w, stride, dilation)
            if disjoint:
                gx[win] = cols[:, i, j]
            else:
                gx[win] += cols[:, i, j]


def unpad(xp, pads):
    """The inverse of :func:`pad_nchw`: ``xp`` without its padding.

    Parameters
    ----------
    xp : ndarray ``(N, C, Hp, Wp)``
    pads : ((int, int), (int, int))
        ``((top, bottom), (left, right))``, as :func:`pad_spec` gives them.

    Returns
    -------
    ndarray ``(N, C, Hp − top − bottom, Wp − left − right)``
        A view of ``xp``.
    """
    (t, b), (l, r) = pads
    H, W = xp.shape[2] - t - b, xp.shape[3] - l - r
    return xp[:, :, t : t + H, l : l + W]


def batch_chunks(n, bytes_per_item, budget=None):
    """Slices that cover ``range(n)`` in chunks of at most ``budget`` bytes (at least one item).

    Parameters
    ----------
    n : int
        The number of items.
    bytes_per_item : int
        Bytes one item takes.
    budget : int, optional
        Bytes per chunk; default ``IM2COL_BUDGET``, read at call time.

    Returns
    -------
    list of slice
        Consecutive slices of ``max(1, budget // bytes_per_item)`` items (the last may be shorter).
    """
    budget = IM2COL_BUDGET if budget is None else budget
    step = max(1, int(budget // max(1, bytes_per_item)))
    return [slice(a, min(n, a + step)) for a in range(0, n, step)]


def correlate_batch(layer, x, out_hw):
    """``W ⋆ x (+ bias)`` of a groups-1 :class:`Conv2D` on a batch of small unpadded inputs, as one GEMM over the batch.

    ``W (O, K) @ cols (K, B·P)`` (:func:`im2col` of every input at once).  For many tiny inputs (incremental
    occlusion's boxes) one large GEMM beats :meth:`Conv2D.correlate`'s image-by-image tiles; the same convolution,
    summed in another order.

    Parameters
    ----------
    layer : Conv2D
        With ``groups == 1``; its weight, bias, kernel size, stride and dilation are used, not its padding.
    x : ndarray ``(B, I, h, w)``
        The inputs, unpadded (the layer's padding is not applied).
    out_hw : (int, int)
        The output's ``(Ho, Wo)``.

    Returns
    -------
    ndarray ``(B, O, Ho, Wo)``
        ``x``'s dtype.
    """
    B = x.shape[0]
    cols = im2col(x, layer.kernel_size, layer.stride, layer.dilation, out_hw)  # (B, K, P)
    w2 = weight_matrix(layer.weight, x.dtype)  # columns in im2col's row order
    y = np.tensordot(w2, cols, axes=([1], [1]))  # (O, B, P)
    if layer.bias is not None:
        y += layer.bias.astype(x.dtype, copy=False)[:, None, None]
    return y.transpose(1, 0, 2).reshape((B, layer.out_channels) + tuple(out_hw))


class Conv2D(Layer):
    """2-D convolution, PyTorch-style.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, dilation : int or (int, int)
    padding : int, (int, int), ``((top, bottom), (left, right))``, ``"valid"`` or ``"same"``
    bias : bool
        Whether the layer has a bias ``(O,)``.
    rng : numpy.random.Generator or int, optional
        Initialisation ``N(0, 2 / fan_in)`` (He et al. 2015, ``fan_in = I/G · kH · kW``); bias 0.  Default: seed 0.
    groups : int
        ``G`` dividing both channel counts: output channel ``o`` sees the inputs of its group
        ``o // (O/G)`` only (PyTorch's ``groups``); ``G = I`` is a depthwise convolution.

    Attributes
    ----------
    weight : ndarray ``(O, I/G, kH, kW)``
    bias : ndarray ``(O,)`` or None

    Shapes: ``(N, I, H, W) -> (N, O, Ho, Wo)``,
    ``Ho = floor((H + pad_top + pad_bottom - d*(kH-1) - 1) / s) + 1``.
    """

    short_name = "conv"
    weighted = True
    affine = True

    weight = param_property(
        "weight", lambda self: (self.out_channels, self.in_channels // self.groups) + self.kernel_size
    )
    bias = param_property("bias", lambda self: (self.out_channels,))

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True, rng=None,
                 groups=1):
        self.in_channels, self.out_channels = count(in_channels, "in_channels"), count(out_channels, "out_channels")
        if isinstance(groups, bool) or int(groups) != groups or groups < 1:
            raise ValueError(f"groups must be a positive int, got {groups!r}")
        self.groups = int(groups)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"groups={self.groups} must divide both channel counts, got in={self.in_channels}, "
                f"out={self.out_channels}"
            )
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride, "stride")
        self.dilation = pair(dilation, "dilation")
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.dilation) < 1:
            raise ValueError(
                f"kernel_size, stride and dilation must be >= 1, got {self.kernel_size}, {self.stride}, {self.dilation}"
            )
        self.pads = pad_spec(padding, self.kernel_size, self.dilation, self.stride)
        if isinstance(padding, (tuple, list)):  # as tuples (a model file gives lists)
            nested = all(isinstance(p, (tuple, list)) for p in padding)
            padding = self.pads if nested else tuple(int(p) for p in padding)
        self.padding = padding
        fan_in = self.in_channels // self.groups * self.kernel_size[0] * self.kernel_size[1]
        gen = default_rng(rng)
        self.weight = gen.normal(
            0.0, np.sqrt(2.0 / fan_in), (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        )
        self.bias = np.zeros(self.out_channels) if bias else None

    def extra_repr(self):
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding!r}, dilation={self.dilation}, bias={self.bias is not None}"
            + (f", groups={self.groups}" if self.groups != 1 else "")
        )

    def output_shape(self, in_shape):
        N, C, H, W = in_shape
        (t, b), (l, r) = self.pads
        Ho = conv_output_size(H, self.kernel_size[0], self.stride[0], self.dilation[0], t, b)
        Wo = conv_output_size(W, self.kernel_size[1], self.stride[1], self.dilation[1], l, r)
        if Ho < 1 or Wo < 1:
            raise ValueError(
                f"{self.describe()}: input of spatial size {(H, W)} is smaller than the (dilated) kernel "
                f"{self.kernel_size} with padding {self.pads}"
            )
        return (N, self.out_channels, Ho, Wo)

    def forward(self, x):
        x = check_image_batch(x, f"input of {self.describe()}", channels=self.in_channels)
        out_hw = self.output_shape(x.shape)[2:]
        xp = pad_nchw(x, self.pads)
        y = self.correlate(xp, out_hw, bias=self.bias)
        # the input itself, not its padded copy (the tape holds the input already; the backward needs only shapes)
        return y, Cache(x=x, padded_shape=xp.shape, in_shape=x.shape, out_hw=out_hw)

    def _wide(self):
        """Stride 1 takes the wide layout in the depthwise kernel and for small maps side by side."""
        return self.stride == (1, 1)

    def _depthwise(self):
        """One input channel per group (``groups = in_channels > 1``): the offset-sum kernel, no columns."""
        return self.groups > 1 and self.groups == self.in_channels

    def _pointwise(self):
        """1×1, no padding: a plain GEMM on the images as they lie in memory (no columns); at a stride above 1 on
        the pixels it reads, ``x[:, :, ::s_h, ::s_w]`` copied once (ResNet's 1×1 stride-2 shortcuts)."""
        return self.kernel_size == (1, 1) and self.pads == ((0, 0), (0, 0))

    def _overlapping_strided(self):
        """Stride above 1 with windows that overlap: the input gradient goes through the phase planes
        (:func:`phase_col2im`).  Disjoint windows (2×2 stride 2) each write their own pixels (the
        rows path assigns them)."""
        spans = (d * (k - 1) + 1 for d, k in zip(self.dilation, self.kernel_size))
        return self.stride != (1, 1) and any(s < span for s, span in zip(self.stride, spans))

    def _wide_gradient(self, padded_hw, out_hw, itemsize):
        """Stride 1, ``WIDE_GRADIENT_MIN_CHANNELS`` inputs or more and one image's wide columns within
        ``WIDE_GRADIENT_BYTES``: the input gradient goes wide."""
        K = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        return (self._wide() and self.in_channels >= WIDE_GRADIENT_MIN_CHANNELS
                and K * wide_length(padded_hw, out_hw) * itemsize <= WIDE_GRADIENT_BYTES)

    def _stacked(self, n, out_hw):
        """Several images whose maps are small against the weights (a group's output channels more than
        ``STACKED_MIN_RATIO`` times the output pixels): compact columns of a chunk of images side by side, one GEMM
        (:func:`stacked_im2col`)."""
        return n > 1 and self.out_channels // self.groups > STACKED_MIN_RATIO * out_hw[0] * out_hw[1]

    def _side_by_side(self, n, padded_hw, out_hw, itemsize):
        """Several images at stride 1 whose columns take at most ``SIDE_BY_SIDE_BYTES`` each: the wide layout,
        the images side by side in one GEMM (per-image tiles of small maps cost more in calls than in copies)."""
        if not (self._wide() and n > 1):
            return False
        K = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        return K * wide_length(padded_hw, out_hw) * itemsize <= SIDE_BY_SIDE_BYTES

    def correlate(self, xp, out_hw, bias=None):
        """``W ⋆ xp (+ bias)`` on a padded input ``(N, I, Hp, Wp)``; a new ``(N, O, Ho, Wo)`` array.

        Pointwise (1×1, no padding): one batched GEMM on the images themselves (at a stride, on the pixels the
        windows read).  Otherwise per image and tile of
        output rows (:func:`row_tiles`): the tile's columns (:func:`im2col` restricted to those rows), one
        GEMM per group written straight into the output.  Several small maps at stride 1: the wide columns
        of a chunk of images side by side (:func:`wide_im2col`), one GEMM, the images copied out.
        Depthwise: :meth:`_depthwise_correlate`.
        """
        if self._depthwise():
            return self._depthwise_correlate(xp, out_hw, bias)
        N, G = xp.shape[0], self.groups
        w3 = grouped_weight_matrix(self.weight, xp.dtype, G)  # (G, O/G, K/G): a view of the weights
        b = None if bias is None else bias.astype(xp.dtype, copy=False).reshape(G, -1, 1)
        if self._pointwise():
            if self.stride != (1, 1):  # the pixels a 1×1 window reads, as one contiguous array
                xp = np.ascontiguousarray(xp[:, :, :: self.stride[0], :: self.stride[1]])
            y = np.matmul(w3, xp.reshape(N, G, -1, out_hw[0] * out_hw[1]))  # (N, G, O/G, P)
            if b is not None:
                y += b
        elif self._stacked(N, out_hw):
            y = self._correlate_stacked(xp, out_hw, w3, b)
        elif self._side_by_side(N, xp.shape[2:], out_hw, xp.itemsize):
            y = self._correlate_wide(xp, out_hw, w3, b)
        else:
            y = self._correlate_rows(xp, out_hw, w3, b)
        return y.reshape((N, self.out_channels) + tuple(out_hw))

    def _correlate_rows(self, xp, out_hw, w3, b):
        """Image by image, tile by tile of output rows: the tile's columns, then ``(G, O/G, K/G) @ (G, K/G, rows·Wo)``
        into ``y[n]`` (no copy of the output, no columns larger than a tile).  Returns ``(N, G, O/G, Ho·Wo)``."""
        N, C = xp.shape[:2]
        (kh, kw), (Ho, Wo) = self.kernel_size, out_hw
        G, Og, Kg = w3.shape
        y = np.empty((N, G, Og, Ho * Wo), dtype=xp.dtype)
        tiles = row_tiles(Ho, G * Kg * Wo * xp.itemsize, Wo)
        for n in range(N):
            x = xp[n]
            for rows in tiles:
                nr = rows.stop - rows.start
                buf = borrow("conv.cols", (C * kh * kw * nr * Wo,), xp.dtype)  # scratch: _workspace.py
                cols = im2col_tile(x, self.kernel_size, self.stride, self.dilation, rows, Wo, buf)
                out = y[n, :, :, rows.start * Wo : rows.stop * Wo]
                np.matmul(w3, cols.reshape(G, Kg, nr * Wo), out=out)
                if b is not None:
                    out += b
        return y

    def _correlate_stacked(self, xp, out_hw, w3, b):
        """Chunks of images, compact columns side by side (:func:`stacked_im2col`): ``(G, O/G, K/G) @ (G, K/G, n·P)``
        per chunk, the images copied out.  Returns ``(N, O, Ho, Wo)``."""
        N = xp.shape[0]
        G, Og, Kg = w3.shape
        P = out_hw[0] * out_hw[1]
        y = np.empty((N, self.out_channels) + tuple(out_hw), dtype=xp.dtype)
        for sl in batch_chunks(N, G * Kg * P * xp.itemsize):
            n = sl.stop - sl.start
            buf = borrow("conv.cols", (G * Kg * n * P,), xp.dtype)
            cols = stacked_im2col(xp[sl], self.kernel_size, self.stride, self.dilation, out_hw, out=buf)
            out = borrow("conv.wide", (G, Og, n * P), xp.dtype)
            np.matmul(w3, cols.reshape(G, Kg, n * P), out=out)
            if b is not None:
                out += b
            y[sl] = out.reshape((self.out_channels, n) + tuple(out_hw)).transpose(1, 0, 2, 3)
        return y

    def _correlate_wide(self, xp, out_hw, w3, b):
        """Chunks of images side by side in the wide layout (module docstring): one GEMM per chunk and group."""
        N = xp.shape[0]
        G, Og, Kg = w3.shape
        P = wide_length(xp.shape[2:], out_hw)
        y = np.empty((N, self.out_channels) + tuple(out_hw), dtype=xp.dtype)
        for sl in batch_chunks(N, G * Kg * P * xp.itemsize):
            xc = xp[sl]
            n = xc.shape[0]
            cols = wide_im2col(
                xc, self.kernel_size, self.dilation, out_hw, out=borrow("conv.cols", (G * Kg * n * P,), xp.dtype)
            )
            out = borrow("conv.wide", (G, Og, n * P), xp.dtype)
            np.matmul(w3, cols.reshape(G, Kg, n * P), out=out)
            if b is not None:
                out += b
            wide_to_image(out.reshape(self.out_channels, n, P), out_hw, xp.shape[3], out=y[sl])
        return y

    def _depthwise_weights(self, dtype):
        """``(C, M, kH, kW)``: the weights of channel ``c``'s ``M = O/C`` outputs."""
        C, (kh, kw) = self.in_channels, self.kernel_size
        return self.weight.reshape(C, self.out_channels // C, kh, kw).astype(dtype, copy=False)

    def _depthwise_correlate(self, xp, out_hw, bias):
        """``y[n, c·M + m] = Σ_{i,j} W[c·M + m, 0, i, j] · xp[n, c, s h + d i, s w + d j]``: the kernel's windows
        of each channel side by side, one GEMV per channel (:func:`depthwise_sums`); no columns across channels."""
        N, C = xp.shape[:2]
        M = self.out_channels // C
        (kh, kw), (dh, dw) = self.kernel_size, self.dilation
        taps = [(0, dh * i, dw * j) for i in range(kh) for j in range(kw)]
        w = self._depthwise_weights(xp.dtype).reshape(C, M, kh * kw)
        y = np.empty((N, C, M, out_hw[0] * out_hw[1]), dtype=xp.dtype)
        depthwise_sums(xp[:, :, None], taps, w, self.stride, out_hw, y)
        if bias is not None:
            y += bias.astype(xp.dtype, copy=False).reshape(C, M, 1)
        return y.reshape((N, self.out_channels) + tuple(out_hw))

    def _depthwise_input_grad(self, g, cache):
        """Adjoint of :meth:`_depthwise_correlate`, as correlations of ``g`` (sub-pixel phases).

        ``gxp[n, c, p, q] = Σ_{m,i,j} W[c·M + m, 0, i, j] g[n, c·M + m, h, w]`` over ``s_h h + d_h i = p``,
        ``s_w w + d_w j = q``.  The padded positions of one phase ``p = s_h u + a`` are reached by the kernel rows
        ``i`` with ``d_h i ≡ a (mod s_h)``, from ``h = u − e_i``, ``e_i = (d_h i − a) / s_h``: per phase a stride-1
        correlation of ``g`` (padded by ``max e``) with those taps, written into ``gxp[:, :, a::s_h, b::s_w]``.
        Stride 1 is one phase, the correlation with the flipped kernel; stride 2 (3×3) four, with 4, 2, 2 and 1
        taps: nine in all, as many as the forward pass.
        """
        N, C, Hp, Wp = cache.padded_shape
        M = self.out_channels // C
        Ho, Wo = cache.out_hw
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        w = self._depthwise_weights(g.dtype)
        # e per kernel row / column and phase; one padding of g serves every phase
        Eh, Ew = dh * (kh - 1) // sh, dw * (kw - 1) // sw
        Bh, Bw = max(0, -(-Hp // sh) - Ho), max(0, -(-Wp // sw) - Wo)
        gpad = pad_nchw(g.reshape(N, C * M, Ho, Wo), ((Eh, Bh), (Ew, Bw))).reshape(N, C, M, Eh + Ho + Bh, Ew + Wo + Bw)
        one_phase = (sh, sw) == (1, 1)
        gxp = None if one_phase else np.empty((N, C, Hp, Wp), dtype=g.dtype)
        for a in range(sh):
            rows = [(i, (dh * i - a) // sh) for i in range(kh) if (dh * i - a) % sh == 0]
            for b in range(sw):
                cols = [(j, (dw * j - b) // sw) for j in range(kw) if (dw * j - b) % sw == 0]
                hw = (len(range(a, Hp, sh)), len(range(b, Wp, sw)))
                phase = np.empty((N, C, 1, hw[0] * hw[1]), dtype=g.dtype)
                if rows and cols:
                    taps = [(m, Eh - ei, Ew - ej) for m in range(M) for _, ei in rows for _, ej in cols]
                    wt = w[:, :, [i for i, _ in rows]][:, :, :, [j for j, _ in cols]].reshape(C, 1, len(taps))
                    depthwise_sums(gpad, taps, np.ascontiguousarray(wt), (1, 1), hw, phase)
                else:  # no window reaches this phase (stride larger than the dilated kernel)
                    phase[...] = 0
                if one_phase:
                    return unpad(phase.reshape(N, C, Hp, Wp), self.pads)
                gxp[:, :, a::sh, b::sw] = phase.reshape(N, C, *hw)
        return unpad(gxp, self.pads)

    def _depthwise_views(self, a, out_hw):
        """``[(i, j, view)]``: the shifted (strided, dilated) window views ``(N, C, Ho, Wo)`` per kernel offset."""
        kh, kw = self.kernel_size
        return [
            (i, j, a[(slice(None), slice(None)) + window_slices(i, j, out_hw, self.stride, self.dilation)])
            for i in range(kh) for j in range(kw)
        ]

    def input_grad(self, g, cache):
        """Transposed convolution of ``g`` ``(N, O, Ho, Wo)`` -> ``(N, I, H, W)`` (may be a view).

        The adjoint of :meth:`correlate`, layout for layout: pointwise ``Wᵀ g`` per image (at a stride, assigned
        back at the pixels the windows read); per image and tile of output rows ``Wᵀ g[tile]`` (columns in cache)
        scattered back onto the padded input (:func:`col2im` restricted to the tile); small maps side by side: one
        GEMM per image on wide columns, scattered by :func:`wide_col2im`.
        """
        if self._depthwise():
            return self._depthwise_input_grad(g, cache)
        N, G = g.shape[0], self.groups
        w3t = grouped_weight_matrix(self.weight, g.dtype, G).transpose(0, 2, 1)  # (G, K/G, O/G): a view
        if self._pointwise():
            P = g.shape[2] * g.shape[3]
            gx = np.matmul(w3t, g.reshape(N, G, -1, P)).reshape((N, self.in_channels) + tuple(cache.out_hw))
            if self.stride == (1, 1):
                return gx
            # the pixels no window reads get zero; each read pixel belongs to one window (disjoint windows)
            full = np.zeros(cache.padded_shape, dtype=gx.dtype)
            full[:, :, :: self.stride[0], :: self.stride[1]] = gx
            return full
        if self._stacked(N, cache.out_hw):
            gx = self._input_grad_stacked(g, cache, w3t)
        elif self._side_by_side(N, cache.padded_shape[2:], cache.out_hw, g.itemsize) or self._wide_gradient(
            cache.padded_shape[2:], cache.out_hw, g.itemsize
        ):
            gx = self._input_grad_wide(g, cache, w3t)
        elif self._overlapping_strided() and self.kernel_size[0] * self.kernel_size[1] >= PHASE_MIN_OFFSETS:
            gx = self._input_grad_wide(g, cache, w3t, phases=True)
        else:
            gx = self._input_grad_rows(g, cache, w3t)
        return unpad(gx, self.pads)

    def _input_grad_rows(self, g, cache, w3t):
        """Adjoint of :meth:`_correlate_rows`: per image and tile, ``Wᵀ g[tile]`` added back at every kernel offset."""
        N, C = cache.padded_shape[:2]
        Ho, Wo = cache.out_hw
        G, Kg, Og = w3t.shape
        g4 = g.reshape(N, G, Og, Ho * Wo)
        gxp = np.zeros(cache.padded_shape, dtype=g.dtype)
        tiles = row_tiles(Ho, G * Kg * Wo * g.itemsize, Wo)
        for n in range(N):
            gx = gxp[n]
            for rows in tiles:
                nr = rows.stop - rows.start
                cols = borrow("conv.cols", (G, Kg, nr * Wo), g.dtype)
                np.matmul(w3t, g4[n, :, :, rows.start * Wo : rows.stop * Wo], out=cols)
                col2im_tile(cols, gx, self.kernel_size, self.stride, self.dilation, rows, Wo)
        return gxp

    def _input_grad_stacked(self, g, cache, w3t):
        """Adjoint of :meth:`_correlate_stacked`: per chunk, ``g`` with its images side by side ``(O, n·P)``,
        ``Wᵀ`` times it in one GEMM, scattered back by :func:`stacked_col2im`."""
        N, G = g.shape[0], self.groups
        Kg, Og = w3t.shape[1:]
        padded, out_hw = cache.padded_shape, cache.out_hw
        P = out_hw[0] * out_hw[1]
        chunks = batch_chunks(N, G * Kg * P * g.itemsize)
        gx = None if len(chunks) == 1 else np.empty(padded, dtype=g.dtype)
        for sl in chunks:
            n = sl.stop - sl.start
            gt = borrow("conv.wide", (self.out_channels, n, P), g.dtype)
            np.copyto(gt, g[sl].reshape(n, self.out_channels, P).transpose(1, 0, 2))
            cols = np.matmul(w3t, gt.reshape(G, Og, n * P), out=borrow("conv.cols", (G, Kg, n * P), g.dtype))
            part = stacked_col2im(cols.reshape(G * Kg, n, P), (n,) + padded[1:], self.kernel_size, self.stride,
                                  self.dilation, out_hw)
            if gx is None:
                return part
            gx[sl] = part
        return gx

    def _input_grad_wide(self, g, cache, w3t, phases=False):
        """Adjoint of :meth:`_correlate_wide`: one GEMM per chunk of images on the gradient laid out wide (measured
        faster here than the transposed reads one large GEMM would need), scattered by :func:`wide_col2im`.

        ``phases``: a strided conv's, the gradient laid wide at the phase planes' row width ``⌈Wp / s_w⌉`` and added
        back plane by plane (:func:`phase_col2im`), in chunks of at most ``TILE_BYTES`` of columns."""
        N, G = g.shape[0], self.groups
        Kg, Og = w3t.shape[1:]
        padded = cache.padded_shape
        width = -(-padded[3] // self.stride[1])  # Wp at stride 1
        g3 = image_to_wide(g, width, out=borrow("conv.wide", (g.size // g.shape[3] * width,), g.dtype))
        L = g3.shape[2]
        chunks = batch_chunks(N, G * Kg * L * g.itemsize, TILE_BYTES if phases else None)
        gx = None if len(chunks) == 1 else np.empty(padded, dtype=g.dtype)
        for sl in chunks:
            n = sl.stop - sl.start
            cols = np.matmul(w3t, g3[sl].reshape(n, G, Og, L), out=borrow("conv.cols", (n, G, Kg, L), g.dtype))
            cols, shape = cols.reshape(n, G * Kg, L), (n,) + padded[1:]
            if phases:
                part = phase_col2im(cols, shape, self.kernel_size, self.stride, self.dilation, cache.out_hw)
            else:
                part = wide_col2im(cols, shape, self.kernel_size, self.dilation, cache.out_hw)
            if gx is None:
                return part
            gx[sl] = part
        return gx

    def param_grads(self, g, cache):
        """``dW[o, c, i, j] = sum_{n,h,w} g[n,o,h,w] xp[n, g(o)·I/G + c, s h + d i, s w + d j]``,
        ``db[o] = sum g[n,o]``."""
        N, G = g.shape[0], self.groups
        O, Cg = self.out_channels, self.in_channels // G
        kh, kw = self.kernel_size
        if self._depthwise():
            M = O // Cg // G
            g5 = g.reshape((N, G, M) + tuple(cache.out_hw))
            dw = np.empty((G, M, kh, kw), dtype=g.dtype)
            for i, j, view in self._depthwise_views(pad_nchw(cache.x, self.pads), cache.out_hw):
                dw[:, :, i, j] = np.einsum("ncmhw,nchw->cm", g5, view, optimize=True)
            out = {"weight": dw.reshape(O, 1, kh, kw)}
        else:
            P = cache.out_hw[0] * cache.out_hw[1]
            K = Cg * kh * kw
            g4 = g.reshape(N, G, O // G, P)
            dw = np.zeros((G, O // G, K), dtype=g.dtype)
            xp = pad_nchw(cache.x, self.pads)
            for sl in batch_chunks(N, G * K * P * g.itemsize):
                cols = im2col(xp[sl], self.kernel_size, self.stride, self.dilation, cache.out_hw, groups=G)
                dw += np.einsum("ngop,ngkp->gok", g4[sl], cols.reshape(-1, G, K, P), optimize=True)
            out = {"weight": dw.reshape(O, Cg, kh, kw)}
        if self.bias is not None:
            out["bias"] = g.sum(axis=(0, 2, 3))
        return out


@defrule(Conv2D, "gradient", "deconvnet", "guided")
def _conv_transposed(layer, g, cache, **_):
    """R ⋆ K̂ (transposed convolution; identical for gradient, DeconvNet and guided backprop)
    Zeiler & Fergus 2014; Springenberg et al. 2015"""
    return layer.input_grad(g, cache)


# -- relevance columns (DeepLIFT, LRP): the formulas live in relevance.py, shared with Dense --------

# DeepLIFT's Linear rule: multipliers pass through a linear layer like gradients (Shrikumar et al. 2017).
defrule(Conv2D, "rescale")(_conv_transposed)
defrule(Conv2D, "revealcancel")(_relevance.deeplift_linear_revealcancel)
for _name, _fn in _relevance.LRP_WEIGHTED_RULES.items():
    defrule(Conv2D, _name)(_fn)


@defregion(Conv2D, "window", pad_value=0.0)
def _conv_region(layer, lo, size, in_hw):
    """Projective field of a convolution: input box -> output box it can change, input box needed
    Nakandala et al. 2019 (incremental inference); zero padding"""
    return window_region_2d(lo, size, in_hw, layer.kernel_size, layer.stride, layer.dilation, layer.pads)
@defjvp(Conv2D)
def _conv_jvp(layer, dx, cache):
    """W ⋆ dX  (the convolution without its bias: the layer's linear part)"""
    return layer.correlate(pad_nchw(dx, layer.pads), cache.out_hw)
