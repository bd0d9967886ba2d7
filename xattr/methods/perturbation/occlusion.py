"""Occlusion sensitivity (Zeiler & Fergus 2014), full or incremental (Nakandala et al. 2019).

Overlapping windows are **averaged** (``aggregate="mean"``, as Captum) or **summed** (``aggregate="sum"``, as
PAIR saliency); windows at the bottom/right border are clipped to the image, as Captum.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..._conventions import check_image_batch, pair
from ..._progress import Progress
from ...inputs import DEFAULT_BATCH_SIZE, check_batch_size, rows_per_call
from .. import incremental as _inc
from .. import segments as _seg
from ..occlusion_fill import fill_image
from ..registry import MethodSpec, register
from ._common import _check_model, _explained, _scores


def _window_starts(size, k, s):
    """Window starts along an axis: ``0, s, 2s, ...`` until a window reaches the border (clipped there)."""
    count = -(-(size - k) // s) + 1  # ceil((size - k) / s) + 1: every pixel covered (Captum's count) ...
    starts = np.arange(count) * s
    return starts[starts < size]  # ... except gaps when stride > window; a start past the border is dropped


def occlusion(model, x, target, window=8, stride=4, baseline=0.0, aggregate="mean", batch_size=DEFAULT_BATCH_SIZE,
              incremental="auto", progress=False, sigma=_seg.BLUR_SIGMA, fill=None, invert=False, rng=None):
    """Occlusion sensitivity (Zeiler & Fergus 2014): drop of the target when a window is hidden.

    A ``window`` of the ``baseline`` slides over the image with ``stride``; for each position the
    drop ``d = f(x) - f(x with the window hidden)`` is credited to every pixel under the window.
    Windows start at ``0, s, 2s, ...``; the last one along each axis is clipped at the border so
    that every pixel is covered (``ceil((H - k) / s) + 1`` positions, as Captum).  With a stride larger
    than the window, pixels in the gaps are never hidden and get 0.

    Parameters
    ----------
    model : anything with ``forward(x) -> (N, K)``
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable on the scores
    window, stride : int or (int, int)
        Spatial window (all channels are hidden together) and its step; ``1 <= window <= (H, W)``.
    baseline : number, array broadcastable to ``x``, or ``"blur"``
        What hidden pixels become (``"blur"``: Gaussian blur of width ``sigma`` pixels).
    aggregate : ``"mean"`` or ``"sum"``
        How overlapping windows combine at a pixel: the mean of the drops of the windows covering it
        (default, as Captum) or their sum (as PAIR saliency).
    batch_size : int, optional
        Occluded images per forward call (model input rows per call; default: the cost model's choice,
        :func:`xattr.inputs.rows_per_call`).
    incremental : ``"auto"``, True or False
        Recompute only the patch's projective field layer by layer (Nakandala et al. 2019); needs an
        :class:`xattr.nn.Sequential` whose first layers have region maps.  ``"auto"`` uses it when
        possible and the estimated work is less than half of full recomputation.  The result equals
        full recomputation up to round-off.
    progress : bool
        Show a progress bar (tqdm if installed).
    fill : None, number, array, ``"blur"``, ``"image_mean"``, ``"shuffle"`` or ``"swap"``
        What hidden pixels become, with the seed's alternatives: values taken from the image
        (its mean colour, its own pixels shuffled), feature swap (the window of another image);
        :func:`xattr.methods.occlusion_fill.fill_image`.  ``None``: ``baseline``.  Give one of the two.
    invert : bool
        Keep only the window and hide the rest: the credit of a window is then
        ``f(x on the window, fill elsewhere) - f(fill)`` (what the window alone adds), instead of
        ``f(x) - f(x with the window hidden)`` (what is lost without it).  The incremental path
        applies to it too: the window of ``x`` is pasted into the fill image.
    rng : numpy.random.Generator or int
        For ``fill="shuffle"``.

    Returns
    -------
    ndarray ``(N, 1, H, W)``, ``x.dtype``.
    """
    _check_model(model)
    x = check_image_batch(x)
    N, C, H, W = x.shape
    kh, kw = pair(window, "window")
    sh, sw = pair(stride, "stride")
    if min(kh, kw) < 1 or kh > H or kw > W:
        raise ValueError(f"window must be between 1 and the image size {(H, W)} per axis, got {(kh, kw)}")
    if min(sh, sw) < 1:
        raise ValueError(f"stride must be at least 1 per axis, got {(sh, sw)}")
    if aggregate not in ("mean", "sum"):
        raise ValueError(f"aggregate must be 'mean' (Captum) or 'sum' (PAIR saliency), got {aggregate!r}")
    if incremental not in ("auto", True, False):
        raise ValueError(f"incremental must be 'auto', True or False, got {incremental!r}")
    batch_size = check_batch_size(batch_size)
    if isinstance(baseline, str) and baseline != "blur":
        raise ValueError(f"occlusion baseline must be a number, an array or 'blur', got {baseline!r}")
    if invert not in (True, False):
        raise ValueError(f"invert must be True or False, got {invert!r}")
    if fill is None:
        fill = _seg.fill_image(x, baseline, sigma=sigma)
    elif not (isinstance(baseline, numbers.Real) and baseline == 0.0):
        raise ValueError("give the occluding values once: fill= (any fill) or baseline= (number, array, 'blur')")
    else:
        fill = fill_image(x, fill, rng=rng, sigma=sigma)
    fx, value = _explained(model, x, target)

    rows, cols = _window_starts(H, kh, sh), _window_starts(W, kw, sw)
    use_inc = _inc.use_incremental(model, x, (kh, kw), incremental)
    if invert:  # the roles swap: the fill is the image, the window shows x (incremental inference applies)
        base = np.ascontiguousarray(fill)
        f_fill = np.asarray(value(_scores(model, base), np.arange(N)), dtype=np.float64)
        drops = occluded_scores(model, base, x, value, rows, cols, (kh, kw), batch_size, use_inc, progress
                                ) - f_fill[:, None, None]
    else:
        drops = fx[:, None, None] - occluded_scores(
            model, x, fill, value, rows, cols, (kh, kw), batch_size, use_inc, progress
        )  # (N, nr, nc)

    # Which window covers which pixel: indicator matrices, so the map is R^T D C (no loop over windows).
    R = (rows[:, None] <= np.arange(H)) & (np.arange(H) < rows[:, None] + kh)
    Cm = (cols[:, None] <= np.arange(W)) & (np.arange(W) < cols[:, None] + kw)
    R, Cm = R.astype(np.float64), Cm.astype(np.float64)
    total = np.einsum("ih,nij,jw->nhw", R, drops, Cm, optimize=True)
    if aggregate == "mean":  # pixels no window covers (stride > window) get 0
        count = np.outer(R.sum(0), Cm.sum(0))
        total = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return total[:, None].astype(x.dtype)


def occluded_scores(model, x, fill, value, rows, cols, window, batch_size=DEFAULT_BATCH_SIZE, incremental=False,
                    progress=False):
    """Explained value with each window hidden: ``(N, len(rows), len(cols))`` float64.

    Parameters
    ----------
    model : model protocol object
    x : ndarray ``(N, C, H, W)``
    fill : ndarray ``(N, C, H, W)``
        What a hidden pixel becomes.
    value : callable ``(scores (B, K), image (B,)) -> (B,)``
        The explained quantity of a batch (see :func:`occlusion`).
    rows, cols : int arrays
        The windows' top-left corners.
    window : tuple of int ``(h, w)``
    batch_size : int
        Occluded images per forward call.
    incremental : bool
        Incremental inference instead of full recomputation.
    progress : bool
        Show a progress bar.

    Returns
    -------
    ndarray ``(N, len(rows), len(cols))``, float64
    """
    N, _, H, W = x.shape
    nr, nc = len(rows), len(cols)
    image, i, j = (a.ravel() for a in np.meshgrid(np.arange(N), np.arange(nr), np.arange(nc), indexing="ij"))
    out = np.empty(N * nr * nc, dtype=np.float64)
    batch_size = rows_per_call(batch_size, model, x[:1], len(out))
    bar = Progress(len(out), progress, "occlusion")
    runner = _inc.IncrementalRunner(model, x, fill, window) if incremental else None
    try:
        for a in range(0, len(out), batch_size):
            sl = slice(a, min(len(out), a + batch_size))
            r0, c0 = rows[i[sl]], cols[j[sl]]
            if runner is not None:
                scores = runner.scores(image[sl], r0, c0)
            else:
                inside = (
                    ((r0[:, None] <= np.arange(H)) & (np.arange(H) < r0[:, None] + window[0]))[:, :, None]
                    & ((c0[:, None] <= np.arange(W)) & (np.arange(W) < c0[:, None] + window[1]))[:, None, :]
                )
                scores = _scores(model, np.where(inside[:, None], fill[image[sl]], x[image[sl]]))
            out[sl] = value(scores, image[sl])
            bar.update(sl.stop - sl.start)
    finally:
        bar.close()
    return out.reshape(N, nr, nc)


register(MethodSpec("occlusion", occlusion, "perturbation", paper="Zeiler & Fergus 2014",
                    demo={"window": 4, "stride": 2, "baseline": 0.0}))
