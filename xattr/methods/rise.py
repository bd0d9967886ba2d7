"""RISE: randomized input sampling for explanation (Petsiuk, Das & Saenko 2018), a black-box method.

The saliency of pixel ``λ`` is the expected score under random masks that keep it, normalised by the masks'
mean ``p``::

    S(λ) = 1 / (N · p) · Σ_i f(x ⊙ M_i + x̄ ⊙ (1 − M_i)) · M_i(λ)        (the paper's eq. 6, x̄ = 0 there)

The masks (the paper's §3.2, and its reference code): ``N`` binary grids of ``s × s`` cells, each cell 1 with
probability ``p``; each grid upsampled bilinearly to ``(s + 1)·C_H × (s + 1)·C_W`` with ``C = ⌈size / s⌉`` (the
reference code's ``skimage.transform.resize(order=1, mode="reflect")``: half-pixel centres, mirrored past the
edge), then an ``H × W`` window cut at a uniformly random shift in ``[0, C_H) × [0, C_W)``, so that mask edges
fall anywhere, not only on the grid.  Defaults: the paper's ImageNet settings ``s = 7``, ``p = 0.5``; ``N = 4000``
is its count for ResNet-50 (8000 for VGG16).
"""
from __future__ import annotations

import numbers

import numpy as np

from .._conventions import as_rng, check_image_batch, pair
from .._progress import Progress
from ..inputs import DEFAULT_BATCH_SIZE, as_baseline, rows_per_call
from ._resize import linear_interpolation_matrix
from .perturbation._common import _check_model, _explained
from .registry import MethodSpec, register

#: the paper's grid size and keep probability for ImageNet (Petsiuk et al. 2018, §4.1).
RISE_CELLS = 7
RISE_KEEP = 0.5
#: masks per image (the paper's count for ResNet-50).
RISE_MASKS = 4000


def _interpolation_matrix(n_in, n_out):
    """``(n_out, n_in)`` weights of linear interpolation with half-pixel centres, mirrored past the edges: row ``o``
    reads input coordinate ``(o + 0.5)·n_in/n_out − 0.5`` (``skimage.transform.resize(order=1, mode="reflect")``)."""
    return linear_interpolation_matrix(n_out, n_in, "reflect")


def rise_masks(grids, shifts, shape):
    """The masks in ``[0, 1]`` of 0/1 ``grids`` cut at ``shifts``.

    Each grid is upsampled bilinearly to ``((s_h + 1)·C_H, (s_w + 1)·C_W)``, ``C = ⌈(H, W) / s⌉``, then the ``H × W``
    window at its shift is taken (Petsiuk et al. 2018, §3.2).

    Parameters
    ----------
    grids : ndarray ``(B, s_h, s_w)``
    shifts : int array ``(B, 2)``
    shape : tuple of int ``(H, W)``

    Returns
    -------
    ndarray ``(B, H, W)``
    """
    H, W = shape
    B, sh, sw = grids.shape
    ch, cw = -(-H // sh), -(-W // sw)
    Ah, Aw = _interpolation_matrix(sh, (sh + 1) * ch), _interpolation_matrix(sw, (sw + 1) * cw)
    up = Ah @ grids @ Aw.T  # (B, (s+1)C_H, (s+1)C_W): one product per axis, all masks at once
    rows = shifts[:, 0, None] + np.arange(H)  # (B, H)
    cols = shifts[:, 1, None] + np.arange(W)
    return up[np.arange(B)[:, None, None], rows[:, :, None], cols[:, None, :]]


def rise(model, x, target, n_masks=RISE_MASKS, cells=RISE_CELLS, keep=RISE_KEEP, rng=None, baseline=0.0,
         batch_size=DEFAULT_BATCH_SIZE, progress=False):
    """RISE (Petsiuk et al. 2018): the score-weighted mean of random smooth masks, ``(N, 1, H, W)``.

    Parameters
    ----------
    model : anything with ``forward(x) -> scores (N, K)``
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)``, callable on the scores, or ``(classes, transform)``
        Class targets are fixed by the unmasked image (a masked copy is scored on the explained class).
    n_masks : int
        ``N``, masks per image; the same masks for every image of the batch (so each image's map does not depend
        on the others).
    cells : int or (int, int)
        ``s``: the grid of cells each mask is drawn on (the paper's ``s = 7``).
    keep : float in (0, 1)
        ``p``: the probability that a cell is kept (the paper's 0.5); also the normaliser ``E[M]``.
    rng : numpy.random.Generator or int (required)
        The grids and shifts, drawn once: same seed, same masks, same map.
    baseline : scalar or array broadcastable to ``x``
        What a masked pixel becomes: ``x ⊙ M + baseline ⊙ (1 − M)``; the paper's ``x ⊙ M`` is ``0.0``.
    batch_size : int or None
        Model input rows per call (:func:`xattr.inputs.rows_per_call`; None: the cost model).  A call takes whole
        masks, each applied to all ``N`` images, so it holds at least ``N`` rows.

    Returns
    -------
    ndarray ``(N, 1, H, W)``, ``x``'s dtype: ``Σ_i f(x_i') M_i / (N p)`` per image.
    """
    _check_model(model)
    x = check_image_batch(x)
    if isinstance(n_masks, bool) or not isinstance(n_masks, numbers.Integral) or n_masks < 1:
        raise ValueError(f"n_masks must be a positive int, got {n_masks!r}")
    sh, sw = pair(cells, "cells")
    H, W = x.shape[2:]
    if not (1 <= sh <= H and 1 <= sw <= W):
        raise ValueError(f"cells must be between 1 and the image size {(H, W)} per axis, got {cells!r}")
    if isinstance(keep, bool) or not isinstance(keep, numbers.Real) or not 0 < keep < 1:
        raise ValueError(f"keep must be a probability in (0, 1), got {keep!r}")
    base = as_baseline(baseline, x)
    gen = as_rng(rng)
    grids = (gen.random((int(n_masks), sh, sw)) < keep).astype(np.float64)
    shifts = np.stack([gen.integers(0, -(-H // sh), int(n_masks)), gen.integers(0, -(-W // sw), int(n_masks))], 1)
    _, value = _explained(model, x, target)
    N = len(x)
    per_call = max(1, rows_per_call(batch_size, model, x[:1], N * int(n_masks)) // N)  # masks per call, all images
    sal = np.zeros((N, H * W))
    bar = Progress(int(n_masks), progress, "rise")
    try:
        for a in range(0, int(n_masks), per_call):
            m = rise_masks(grids[a : a + per_call], shifts[a : a + per_call], (H, W))  # (B, H, W)
            B = len(m)
            mk = m[None, :, None].astype(x.dtype)  # (1, B, 1, H, W)
            xm = (x[:, None] * mk + base[:, None] * (1 - mk)).reshape((N * B,) + x.shape[1:])
            scores = np.asarray(model.forward(xm))
            v = np.asarray(value(scores, np.repeat(np.arange(N), B)), dtype=np.float64).reshape(N, B)
            sal += v @ m.reshape(B, H * W)
            bar.update(B)
    finally:
        bar.close()
    return (sal / (int(n_masks) * keep)).reshape(N, 1, H, W).astype(x.dtype)


def _claims():
    from ..testing.claims import Claims

    return Claims(
        claims={"implementation_invariance": {}, "sensitivity": {}, "linearity": {}, "batch_invariance": {},
                "dtype_preservation": {}, "determinism": {"rng_arg": "rng"}, "inputs_unmodified": {}},
        violations={
            "completeness": "the map is the expected score under masks keeping each pixel, Σ over pixels of "
                            "E[f·M]/p, not a decomposition of f(x) - f(baseline) (Petsiuk et al. 2018, eq. 6)",
            "dummy": "a pixel the model ignores still receives E[f(x ⊙ M) | M keeps it] / p, the mean score, "
                     "not 0",
            "symmetry": "random masks are not mirror-symmetric",
            "input_shift_invariance": "the masked value 0 does not move with the input",
        },
        method_kwargs={"rng": 0, "n_masks": 64, "cells": 2},
    )


register(MethodSpec("rise", rise, "perturbation", paper="Petsiuk et al. 2018", needs=("rng",),
                    claims=_claims, cases=[{"rng": 0, "n_masks": 32, "cells": 2}], demo={"n_masks": 500}))
