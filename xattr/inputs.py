"""What every method takes and returns besides the model: baselines, targets and the completeness gap, defined once.

Methods import these instead of writing their own coercions, so every method reads a baseline, a target
and reports its gap the same way.

Completeness gap
    One definition and one sign for every method that has one (integrated gradients, exact IG, expected
    gradients, DeepLIFT, DeepSHAP, LRP, exact Shapley)::

        gap = Σ_i A_i − (F(x) − F(x'))

    Captum's convention (its ``compute_convergence_delta``), the one people compare with: positive when
    the attributions claim more than the output changed.  ``F(x')`` is the explained value at the method's
    reference point (the baseline, the mean over references, the all-hidden image; LRP: 0, since it
    explains the score itself).  Returned as float64 ``(N,)`` by ``return_delta=True`` and stored signed
    by ``xattr batch``.

Baselines
    A baseline (or DeepLIFT reference) is a scalar, one sample ``x.shape[1:]``, an array broadcastable to
    ``x.shape`` (one per image, one per channel ``(1, C, 1, 1)``), or a callable ``x -> baseline``; it comes
    back as an array of ``x``'s shape and dtype, finite, a copy (the caller's array is never aliased).

Targets
    An int, an int array ``(N,)``, a callable on the scores (returning classes or one value per image),
    or a ``(classes, transform)`` pair; see :mod:`xattr._targets` (``seed``, ``selected``).

Batch sizes
    One name and one unit for every method and metric: ``batch_size`` is the number of **model input rows per
    call** (the leading axis of the array one ``forward`` or forward–backward call receives: IG's path points,
    SmoothGrad's noisy copies, occluded images, coalitions, perturbed images).  The default,
    :data:`DEFAULT_BATCH_SIZE` ``= None``, lets the cost model choose (:func:`rows_per_call`,
    :func:`xattr.methods._chunks.chunk_rows`: activation memory and weight traffic under a memory budget; models
    without layers get chunks of ``VALUES_PER_CHUNK`` input values).  The chunk only decides how the same
    numbers are grouped into calls.  (``xattr batch``'s micro-batch is another unit, images per method call:
    :data:`xattr.batch.run.DEFAULT_MICRO_BATCH`.)
"""
from __future__ import annotations

import numbers

import numpy as np

from . import _targets
from ._conventions import as_float_array
from .methods import _chunks

__all__ = ["completeness_gap", "as_baseline", "seed", "selected", "check_batch_size", "rows_per_call",
           "DEFAULT_BATCH_SIZE"]

#: model input rows per call when none is given: None, the cost model's choice (:func:`rows_per_call`).
DEFAULT_BATCH_SIZE = None

seed = _targets.seed
selected = _targets.selected


def completeness_gap(attributions, explained_x, explained_reference):
    """``Σ_i A_i − (F(x) − F(x'))`` per image, float64 ``(N,)`` (Captum's sign; see the module docstring).

    Parameters
    ----------
    attributions : ndarray ``(N, ...)``
    explained_x, explained_reference : array_like ``(N,)`` (or scalars)
        The explained value ``F`` at the input and at the reference point.
    """
    a = np.asarray(attributions)
    total = a.reshape(a.shape[0], -1).sum(axis=1, dtype=np.float64)
    return total - (np.asarray(explained_x, dtype=np.float64) - np.asarray(explained_reference, dtype=np.float64))


def as_baseline(baseline, x, name="baseline", allow_callable=True):
    """``baseline`` as a finite array of ``x``'s shape and dtype (see the module docstring); a new array.

    ``ValueError`` names ``name`` and says what shapes are accepted; ``TypeError`` for a bool or a non-number.

    Parameters
    ----------
    baseline : float, ndarray or callable
        A scalar, one sample ``x.shape[1:]``, an array broadcastable to ``x.shape`` (one per image, one per
        channel), or a callable ``x -> baseline`` (given a copy of ``x``).
    x : ndarray ``(N, ...)``
    name : str
        For error messages.
    allow_callable : bool

    Returns
    -------
    ndarray, ``x.shape``, ``x.dtype``
    """
    if callable(baseline) and not isinstance(baseline, np.ndarray):
        if not allow_callable:
            raise TypeError(f"{name} must be a number or an array, got a callable")
        value = baseline(np.array(x, copy=True))  # a copy: a careless callable cannot write into the caller's x
        name = f"{name}(x)"
    else:
        value = baseline
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number or an array, got bool")
    if isinstance(value, numbers.Real):
        value = float(value)
    b = as_float_array(value, name)
    if b.ndim == 0:
        return np.full(x.shape, b, dtype=x.dtype)
    if b.shape == x.shape[1:]:
        b = b[None]
    try:
        out = np.broadcast_to(b, x.shape)
    except ValueError:
        raise ValueError(
            f"{name} must be a scalar, one sample of shape {x.shape[1:]}, or broadcastable to x's shape {x.shape} "
            f"(one per image, one per channel); got shape {b.shape}"
        ) from None
    return np.array(out, dtype=x.dtype)


def check_batch_size(batch_size, allow_none=True):
    """``batch_size`` (model input rows per call) validated: a positive int, or None (the cost model's choice)
    where ``allow_none``.  ``ValueError`` says what came.

    Parameters
    ----------
    batch_size : int or None
    allow_none : bool

    Returns
    -------
    int or None
    """
    if batch_size is None and allow_none:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, (numbers.Integral, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int{' or None' if allow_none else ''}, got {batch_size!r}")
    return int(batch_size)


def rows_per_call(batch_size, model, row, total, start=None):
    """Model input rows per call: ``batch_size`` if given (validated), else the cost model's choice for ``total``
    rows shaped like ``row`` ``(1, ...)`` (traced from node ``start``; :func:`xattr.methods._chunks.chunk_rows`;
    ``model`` None or without layers: chunks of ``VALUES_PER_CHUNK`` input values).

    Parameters
    ----------
    batch_size : int or None
    model : model protocol object or None
    row : ndarray ``(1, ...)``
        One model input row (for the cost model).
    total : int
        Rows to evaluate in all.
    start : str, optional
        The node the rows enter at.

    Returns
    -------
    int
    """
    if batch_size is not None:
        return check_batch_size(batch_size, allow_none=False)
    return _chunks.chunk_rows(model, np.asarray(row)[:1], total, start=start)
