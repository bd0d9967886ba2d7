"""What every perturbation method shares: the model check, the scores, the explained value, the batch size."""
from __future__ import annotations

import numbers

import numpy as np

from ... import _targets

#: model evaluations per forward call (bounded memory); every method takes ``batch_size``.
DEFAULT_BATCH_SIZE = 64


def _check_model(model):
    if not callable(getattr(model, "forward", None)):
        raise TypeError(f"model must have forward(x) -> scores (N, K); {type(model).__name__} lacks forward()")
    return model


def _scores(model, x):
    s = np.asarray(model.forward(x))
    if s.ndim != 2 or s.shape[0] != x.shape[0]:
        raise ValueError(f"model.forward must return scores of shape (N, K) = ({x.shape[0]}, K), got {s.shape}")
    return s


def _explained(model, x, target):
    """``f(x)`` per image ``(N,)`` and ``value(scores, image) -> (B,)``, the explained quantity of a batch.

    Class targets (ints, or a callable returning ints) are fixed by the unperturbed image, so a
    perturbed image is always scored on the class being explained; a callable returning floats
    is applied to the perturbed scores.
    """
    scores = _scores(model, x)
    n, k = scores.shape
    if _targets.is_class_transform(target):  # (classes, transform): each copy scored on its image's class
        t = _targets.resolve_class_transform(target, scores)
        return t.values(scores), lambda s, image: t[image].values(s)
    if callable(target):
        v = np.asarray(target(scores))
        if v.dtype.kind not in "iu":
            if v.shape != (n,):
                raise ValueError(f"a target callable must return shape (N,) = ({n},), got {v.shape}")

            def value(s, image):
                out = np.asarray(target(s), dtype=np.float64)
                if out.shape != (s.shape[0],):
                    raise ValueError(f"a target callable must return one value per row, got shape {out.shape}")
                return _targets._finite(out, "returned")  # NaN would become every drop

            return _targets._finite(v, "returned").astype(np.float64), value
        target = v
    if isinstance(target, bool) or not isinstance(target, (numbers.Integral, np.integer, np.ndarray, list, tuple)):
        raise TypeError(f"target must be an int, an int array of shape (N,) or a callable, got {type(target).__name__}")
    cls = _targets._classes(target, n, k)
    return scores[np.arange(n), cls].astype(np.float64), lambda s, image: s[np.arange(s.shape[0]), cls[image]]


def _batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (numbers.Integral, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return int(batch_size)
