"""What every perturbation method shares: the model check, the scores, the explained value."""
from __future__ import annotations

import numpy as np

from ... import _targets


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
    t = _targets.resolve(target, scores)  # classes fixed at x (xattr._targets.resolve)
    if isinstance(t, _targets.ClassOf):  # (classes, transform): each copy scored on its image's class
        return t.values(scores), lambda s, image: t[image].values(s)
    if callable(t):
        def value(s, image):
            out = np.asarray(t(s), dtype=np.float64)
            if out.shape != (s.shape[0],):
                raise ValueError(f"a target callable must return one value per row, got shape {out.shape}")
            return _targets._finite(out, "returned")  # NaN would become every drop

        return _targets._finite(np.asarray(t(scores)), "returned").astype(np.float64), value
    return scores[np.arange(len(t)), t].astype(np.float64), lambda s, image: s[np.arange(s.shape[0]), t[image]]
