"""What an occluded window becomes: the fill image of :func:`xattr.methods.occlusion` (``fill=``).

Seed 002: "instead of a simple black square, occlusion can also be performed by blurring portions of
the image, substituting values by other values present in the image, or by swapping different
features in an image".  Each option resolves to one fill image of ``x``'s shape, so every window of
an image takes its pixels from the same fill (and incremental occlusion applies to all of them):

* a number or an array: that value (the baseline; 0 = black), as Zeiler & Fergus 2014;
* ``"blur"``: the same pixels, Gaussian-blurred (``sigma`` pixels), as Fong & Vedaldi 2017;
* ``"image_mean"``: the image's own per-channel mean colour (values of the image);
* ``"shuffle"``: the image's own pixels at randomly permuted positions (one permutation per image, all channels
  moved together; ``rng``) (values of the image);
* ``"swap"``: the same window of another image of the batch (image ``n`` takes image ``n + 1``'s pixels, the last
  takes the first's; for chosen donors pass their array ``(N, C, H, W)`` as the fill): a feature swap.

Zintgraf et al. 2017 (prediction difference analysis) draw the window from a model of the data
instead: :mod:`xattr.methods.prediction_difference`.
"""
from __future__ import annotations

import numpy as np

from .._conventions import as_rng, check_image_batch
from . import segments as _seg

#: named fills (besides a number or an array).
FILLS = ("blur", "image_mean", "shuffle", "swap")


def fill_image(x, fill=0.0, rng=None, sigma=_seg.BLUR_SIGMA):
    """The fill image ``(N, C, H, W)`` (``x``'s shape and dtype) that occluded windows take their pixels from.

    Parameters
    ----------
    x : ndarray ``(N, C, H, W)``
    fill : number, array broadcastable to ``x``, or one of :data:`FILLS` (see the module docstring)
    rng : numpy.random.Generator or int
        Needed by ``"shuffle"`` only.
    sigma : float
        Blur width in pixels for ``"blur"``.

    Returns
    -------
    ndarray ``x.shape``, ``x.dtype`` (possibly a read-only broadcast view for a number)
    """
    x = check_image_batch(x)
    if not isinstance(fill, str):
        return _seg.fill_image(x, fill)
    if fill == "blur":
        return _seg.blur(x, sigma)
    if fill == "image_mean":
        return np.broadcast_to(x.mean(axis=(2, 3), keepdims=True, dtype=np.float64).astype(x.dtype), x.shape)
    if fill == "shuffle":
        if rng is None:
            raise TypeError(
                "fill='shuffle' permutes the image's pixels at random: pass rng (a Generator or an int seed)"
            )
        N, C, H, W = x.shape
        perm = np.argsort(as_rng(rng).random((N, H * W)), axis=1)  # one uniform permutation per image
        return np.take_along_axis(x.reshape(N, C, H * W), perm[:, None, :], axis=2).reshape(x.shape)
    if fill == "swap":
        if x.shape[0] < 2:
            raise ValueError(
                "fill='swap' takes each window from another image of the batch, so it needs at least 2 images, "
                f"got {x.shape[0]}; pass a donor image array as fill instead"
            )
        return np.roll(x, -1, axis=0)
    raise ValueError(f"fill must be a number, an array or one of {FILLS}, got {fill!r}")
