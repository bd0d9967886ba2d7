"""Features for LIME and SHAP: superpixel segments, and how a hidden segment is filled.

A *segmentation* is an integer label array: ``(H, W)`` (one segmentation shared by every image)
or ``(N, H, W)`` (one per image).  Any labels work (negative, sparse, unordered); they are
relabelled ``0 .. M-1`` in increasing order of the original label (:func:`check_segments`).
Built in: :func:`grid_segments` (equal rectangular cells) and :func:`slic_segments` (SLIC
superpixels, Achanta et al. 2012, from scikit-image: the optional extra ``segments``).

Hiding a segment replaces its pixels by a *fill* image of the same shape (:func:`fill_image`):

* a number or an array broadcastable to ``(C, H, W)`` (the baseline value; 0 by default);
* ``"mean"``: each segment's per-channel mean over its own pixels (as the ``lime`` package's
  ``hide_color=None``);
* ``"blur"``: a Gaussian blur of the image, ``sigma`` in pixels (Fong & Vedaldi 2017 blur with
  ``sigma = 10``, the default here).

:func:`compose` builds the images for many coalitions at once: present segments from ``x``,
hidden ones from the fill.
"""
from __future__ import annotations

import numbers

import numpy as np

from .._conventions import as_float_array, check_image_batch, pair

#: Gaussian blur width (pixels) of the "blur" fill: Fong & Vedaldi 2017 ("meaningful perturbations"), sigma_0 = 10.
BLUR_SIGMA = 10.0


def grid_segments(shape, grid=4):
    """Rectangular grid segmentation ``(H, W)`` with ``grid`` cells per axis, labels in row-major order.

    Parameters
    ----------
    shape : (H, W), or an image batch shape ``(N, C, H, W)`` (its last two axes are used)
    grid : int or (int, int)
        Cells along rows and columns; cell boundaries at ``floor(k * H / grid)`` so the cell
        sizes differ by at most one pixel.

    Returns
    -------
    ndarray of int, ``(H, W)``, labels ``0 .. gh*gw - 1``.
    """
    H, W = (int(s) for s in tuple(shape)[-2:])
    gh, gw = pair(grid, "grid")
    if gh < 1 or gw < 1:
        raise ValueError(f"grid must be at least 1 cell per axis, got {(gh, gw)}")
    if gh > H or gw > W:
        raise ValueError(f"grid {(gh, gw)} has more cells than the image {(H, W)} has pixels per axis")
    rows = (np.arange(H) * gh) // H
    cols = (np.arange(W) * gw) // W
    return rows[:, None] * gw + cols[None, :]


def slic_segments(x, n_segments=50, compactness=10.0, sigma=1.0, **options):
    """SLIC superpixels (Achanta et al. 2012) of each image, ``(N, C, H, W) -> (N, H, W)`` int labels.

    Calls ``skimage.segmentation.slic`` (the optional extra ``segments``: ``pip install
    xattr-ref[segments]``) on each image with channels last, ``start_label=0``.

    Parameters
    ----------
    x : ndarray ``(N, C, H, W)``
    n_segments, compactness, sigma : int, float, float
        SLIC's parameters (scikit-image's own defaults are 100, 10 and 0; fewer, pre-smoothed segments suit
        LIME/SHAP, whose cost grows with the segment count).
    **options
        Passed on to ``slic``.

    Returns
    -------
    int array ``(N, H, W)``
    """
    try:
        from skimage.segmentation import slic
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "slic_segments needs scikit-image (the optional extra 'segments': pip install 'xattr-ref[segments]')"
        ) from exc
    x = check_image_batch(x)
    out = np.empty((x.shape[0],) + x.shape[2:], dtype=np.intp)
    for n in range(x.shape[0]):  # one segmentation per image; scikit-image works per image
        img = np.moveaxis(x[n], 0, -1)
        kw = dict(n_segments=n_segments, compactness=compactness, sigma=sigma, start_label=0, **options)
        if img.shape[-1] == 1:
            kw["channel_axis"] = None
            img = img[..., 0]
        out[n] = slic(np.asarray(img, dtype=np.float64), **kw)
    return out


def check_segments(segments, x_shape):
    """Validate a segmentation for images of shape ``(N, C, H, W)``; relabel it ``0 .. M-1``.

    Parameters
    ----------
    segments : int array ``(H, W)`` (shared) or ``(N, H, W)``
    x_shape : tuple of int ``(N, C, H, W)``

    Returns
    -------
    labels : list of N int arrays ``(H, W)`` with values ``0 .. M_n - 1``
    counts : list of N ints ``M_n``
    """
    N, _, H, W = x_shape
    seg = np.asarray(segments)
    if seg.dtype.kind not in "iu":
        raise TypeError(f"segments must be an integer label array, got dtype {seg.dtype}")
    if seg.shape == (H, W):
        seg = np.broadcast_to(seg, (N, H, W))
    elif seg.shape != (N, H, W):
        raise ValueError(f"segments must have shape (H, W) = {(H, W)} or (N, H, W) = {(N, H, W)}, got {seg.shape}")
    labels, counts = [], []
    shared = np.asarray(segments).ndim == 2
    for n in range(N):  # per image: np.unique relabels; shared segmentations are relabelled once
        if shared and labels:
            labels.append(labels[0])
            counts.append(counts[0])
            continue
        uniq, inv = np.unique(seg[n], return_inverse=True)
        labels.append(inv.reshape(H, W).astype(np.intp))
        counts.append(len(uniq))
    return labels, counts


def blur(x, sigma=BLUR_SIGMA):
    """Gaussian blur of the spatial axes (``scipy.ndimage.gaussian_filter``, mode ``"reflect"``).

    Parameters
    ----------
    x : ndarray ``(N, C, H, W)``
    sigma : float
        Pixels, ``>= 0`` (at most ``MAX_BLUR_SIGMA``).

    Returns
    -------
    ndarray ``(N, C, H, W)``, ``x.dtype``
    """
    from scipy.ndimage import gaussian_filter

    x = check_image_batch(x)
    if not (isinstance(sigma, numbers.Real) and sigma >= 0):
        raise ValueError(f"sigma must be a non-negative number of pixels, got {sigma!r}")
    from ._bounds import blur_sigma

    blur_sigma(sigma)  # finite (inf made scipy's kernel radius overflow), at most MAX_BLUR_SIGMA pixels
    return gaussian_filter(x, sigma=(0, 0, sigma, sigma), mode="reflect").astype(x.dtype, copy=False)


def fill_image(x, fill=0.0, labels=None, sigma=BLUR_SIGMA):
    """What hidden pixels become: an array of ``x``'s shape ``(N, C, H, W)`` and dtype.

    Parameters
    ----------
    x : ndarray ``(N, C, H, W)``
    fill : number, array broadcastable to ``(N, C, H, W)``, ``"mean"`` or ``"blur"``
    labels : list of N label arrays ``(H, W)`` (from :func:`check_segments`); needed for ``"mean"``
    sigma : float
        Blur width in pixels for ``"blur"``.
    """
    if isinstance(fill, str):
        if fill == "blur":
            return blur(x, sigma)
        if fill == "mean":
            if labels is None:
                raise ValueError("fill='mean' needs a segmentation (the segment means are per segment)")
            out = np.empty_like(x)
            for n, lab in enumerate(labels):  # per image: bincount over its own segments
                m = int(lab.max()) + 1
                area = np.bincount(lab.ravel(), minlength=m)
                sums = np.stack([np.bincount(lab.ravel(), weights=c.ravel(), minlength=m) for c in x[n]])
                out[n] = (sums / area)[:, lab]
            return out
        raise ValueError(f"fill must be a number, an array, 'mean' or 'blur', got {fill!r}")
    f = as_float_array(fill, "baseline")
    try:
        return np.broadcast_to(f.astype(x.dtype, copy=False), x.shape)
    except ValueError:
        raise ValueError(
            f"baseline must be a number or an array broadcastable to the images' shape {x.shape}, got shape {f.shape}"
        ) from None


def compose(x, fill, labels, present):
    """Images where the segments marked present come from ``x`` and the others from ``fill``.

    Parameters
    ----------
    x, fill : ndarray ``(C, H, W)`` (one image and its fill)
    labels : int ndarray ``(H, W)`` with values ``0 .. M-1``
    present : bool ndarray ``(B, M)``

    Returns
    -------
    ndarray ``(B, C, H, W)``
    """
    keep = present[:, labels]  # (B, H, W): a lookup table, no loop over segments
    return np.where(keep[:, None], x[None], fill[None])
