"""What "explain the target" means, in one place.

``target`` may be

* an int ``c``: the score of class ``c`` for every image;
* an int array of shape ``(N,)``: one class per image;
* a callable on the scores ``(N, K)``: if it returns integers ``(N,)`` they are the
  classes; if it returns floats ``(N,)`` they are the quantity explained (any function
  of the output neurons), and it must be written with ``autograd.numpy`` so that its
  derivative with respect to the scores can be taken;
* a pair ``(classes, transform)``: one class per image of a transformed output, e.g.
  ``(labels, "softmax")`` explains ``softmax(scores)[i, labels[i]]``.  ``classes`` is an int,
  an int array ``(N,)`` or a callable on the scores returning ints (evaluated once, at the
  images); ``transform`` is ``"softmax"``, ``"log_softmax"`` or a row-wise callable
  ``(B, K) -> (B, K')`` written with ``autograd.numpy``.

Why the pair: methods that evaluate the model on more rows than images (the path points of
integrated gradients, the noisy copies of SmoothGrad, the occluded copies of occlusion) give a
float-valued callable the scores of those rows, and a callable that indexes "its" image's class
(``log_softmax(s)[arange(N), labels]``) then fails or, worse, reads the wrong rows.  The pair keeps
the classes with the images: the methods carry one class per row (:class:`ClassOf`, indexed like
the class arrays) and apply the transform to the rows.

:func:`seed` turns a target into the ``(N, K)`` vector that starts the backward pass
(one-hot rows for classes) and :func:`selected` returns the explained value per image.
"""
from __future__ import annotations

import numbers

import numpy as np


def _classes(target, n, k):
    t = np.asarray(target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"target must be an int, an int array of shape (N,) or a callable, got dtype {t.dtype}")
    if t.ndim == 0:
        t = np.full(n, int(t))
    if t.shape != (n,):
        raise ValueError(f"target array must have shape (N,) = ({n},), got {t.shape}")
    bad = (t < 0) | (t >= k)
    if bad.any():
        raise ValueError(f"target {t[bad][0]} out of range for a model with {k} outputs (expected 0 <= target < {k})")
    return t.astype(np.intp)


def _finite(value, what):
    """A target callable's value or derivative must be finite: NaN would become every attribution."""
    value = np.asarray(value)
    if value.dtype.kind in "fc" and not np.all(np.isfinite(value)):
        bad = int(value.size - np.count_nonzero(np.isfinite(value)))
        raise ValueError(f"a target callable {what} {bad} NaN/inf value(s) at these scores")
    return value
def _softmax(s):
    import autograd.numpy as anp

    z = s - anp.max(s, axis=1, keepdims=True)  # shift for overflow; the max is a constant of the rows
    e = anp.exp(z)
    return e / anp.sum(e, axis=1, keepdims=True)


def _log_softmax(s):
    import autograd.numpy as anp

    z = s - anp.max(s, axis=1, keepdims=True)
    return z - anp.log(anp.sum(anp.exp(z), axis=1, keepdims=True))


#: named transforms of the scores for ``(classes, transform)`` targets (row-wise, autograd-differentiable).
TRANSFORMS = {"softmax": _softmax, "log_softmax": _log_softmax}


class ClassOf:
    """A resolved ``(classes, transform)`` target: explain ``transform(scores)[r, classes[r]]`` per row ``r``.

    Indexing (``t[rows]``) and ``repeat`` select rows like a class array does, so methods that carry
    one class per path point, noisy copy or occluded copy carry this object the same way.
    """

    __slots__ = ("classes", "transform", "name")

    def __init__(self, classes, transform, name=None):
        self.classes = np.asarray(classes, dtype=np.intp)
        self.transform = transform
        self.name = name or getattr(transform, "__name__", "transform")

    def __repr__(self):
        return f"ClassOf({self.classes.tolist()}, {self.name})"

    def __len__(self):
        return len(self.classes)

    def __getitem__(self, rows):
        return ClassOf(np.atleast_1d(self.classes[rows]), self.transform, self.name)

    def repeat(self, repeats, axis=None):  # np.repeat(t, k) lands here
        return ClassOf(self.classes.repeat(repeats), self.transform, self.name)

    def _check(self, scores):
        if scores.ndim != 2 or scores.shape[0] != len(self.classes):
            raise ValueError(
                f"a (classes, transform) target holds {len(self.classes)} classes, one per row, "
                f"but the scores have shape {scores.shape}"
            )

    def values(self, scores):
        """``transform(scores)[r, classes[r]]`` ``(B,)`` in float64."""
        s = np.asarray(scores, dtype=np.float64)
        self._check(s)
        t = np.asarray(self.transform(s))
        return t[np.arange(len(t)), self.classes]

    def seed(self, scores):
        """``∂ Σ_r transform(s)[r, classes[r]] / ∂s`` ``(B, K)``: each row's own derivative (row-wise transform)."""
        from autograd import grad

        self._check(np.asarray(scores))
        cls, tf = self.classes, self.transform
        g = grad(lambda s: tf(s)[np.arange(s.shape[0]), cls].sum())(np.asarray(scores, dtype=np.float64))
        return np.asarray(g, dtype=scores.dtype)


def is_class_transform(target):
    """True for a ``(classes, transform)`` pair or a resolved :class:`ClassOf`."""
    if isinstance(target, ClassOf):
        return True
    return (isinstance(target, tuple) and len(target) == 2
            and (callable(target[1]) or (isinstance(target[1], str) and target[1] in TRANSFORMS)))


def resolve_class_transform(target, scores):
    """A ``(classes, transform)`` pair (or a :class:`ClassOf`) checked against the scores ``(N, K)``.

    The transform must map ``(B, K)`` to ``(B, K')`` row by row (checked: the first row alone gives
    the same values as in the batch); the classes must lie in ``0 .. K'-1``.
    """
    scores = np.asarray(scores)
    n = scores.shape[0]
    if isinstance(target, ClassOf):
        if len(target) != n:
            raise ValueError(f"a (classes, transform) target holds {len(target)} classes for {n} rows of scores")
        return target
    classes, transform = target
    if isinstance(transform, str):
        name, transform = transform, TRANSFORMS[transform]
    else:
        name = getattr(transform, "__name__", "transform")
    s64 = np.asarray(scores, dtype=np.float64)
    out = np.asarray(transform(s64))
    if out.ndim != 2 or out.shape[0] != n:
        raise ValueError(f"the target's transform must map scores (B, K) to (B, K'), got {s64.shape} -> {out.shape}")
    if n > 1 and not np.allclose(np.asarray(transform(s64[:1])), out[:1], rtol=1e-10, atol=1e-12):
        raise ValueError(
            "the target's transform must act on each row of the scores separately (a row is one image, "
            "path point or noisy copy): transform(scores[:1]) differs from transform(scores)[:1]"
        )
    if callable(classes):
        classes = np.asarray(classes(scores))
        if classes.dtype.kind not in "iu":
            raise TypeError(f"the classes of a (classes, transform) target must be ints, got dtype {classes.dtype}")
    if isinstance(classes, bool) or not isinstance(classes, (numbers.Integral, np.integer, np.ndarray, list, tuple)):
        raise TypeError(
            "the classes of a (classes, transform) target must be an int, an int array (N,) or a callable, "
            f"got {type(classes).__name__}"
        )
    return ClassOf(_classes(classes, n, out.shape[1]), transform, name)


def resolve(target, scores):
    """The target fixed at the input's scores ``(N, K)``: a :class:`ClassOf` for a ``(classes, transform)`` pair,
    the callable itself when it returns one float per image, else the classes as an int array ``(N,)`` (a callable
    returning ints is evaluated here, once).

    Methods that score other points than the input (a path, noisy copies, occluded images, coalitions) resolve
    the target at the input first, so that the class explained is the input's, not re-chosen at every point.
    """
    n, k = np.shape(scores)
    if is_class_transform(target):  # (classes, transform): classes fixed here, one per image
        return resolve_class_transform(target, scores)
    if callable(target):
        value = np.asarray(target(scores))
        if value.dtype.kind not in "iu":
            if value.shape != (n,):
                raise ValueError(f"a target callable must return shape (N,) = ({n},), got {value.shape}")
            return target
        target = value
    if isinstance(target, bool) or not isinstance(target, (numbers.Integral, np.integer, np.ndarray, list, tuple)):
        raise TypeError(f"target must be an int, an int array of shape (N,) or a callable, got {type(target).__name__}")
    return _classes(target, n, k)


def _check_scores(scores):
    """A target selects among scores ``(N, K)``: a model with another output (a feature map) cannot take one."""
    if np.ndim(scores) != 2:
        raise ValueError(f"a target needs the model's output to be scores of shape (N, K), got shape "
                         f"{np.shape(scores)}")


def seed(target, scores):
    """The ``(N, K)`` signal that starts the backward pass, in the scores' dtype."""
    _check_scores(scores)
    n, k = scores.shape
    if is_class_transform(target):
        return resolve_class_transform(target, scores).seed(scores)
    if callable(target):
        value = np.asarray(target(scores))
        if value.dtype.kind in "iu":
            return seed(value, scores)
        if value.shape != (n,):
            raise ValueError(f"a target callable must return shape (N,) = ({n},), got {value.shape}")
        _finite(value, "returned")
        from autograd import grad

        g = grad(lambda s: target(s).sum())(np.asarray(scores, dtype=np.float64))
        return np.asarray(_finite(g, "has a derivative with"), dtype=scores.dtype)
    if isinstance(target, bool):
        raise TypeError("target must be an int, an int array of shape (N,) or a callable, got bool")
    if not isinstance(target, (numbers.Integral, np.integer, np.ndarray, list, tuple)):
        raise TypeError(f"target must be an int, an int array of shape (N,) or a callable, got {type(target).__name__}")
    cls = _classes(target, n, k)
    out = np.zeros_like(scores)
    out[np.arange(n), cls] = 1
    return out


def selected(target, scores):
    """The explained value per image ``(N,)``: the target class's score, or the callable's value."""
    _check_scores(scores)
    if is_class_transform(target):
        return resolve_class_transform(target, scores).values(scores).astype(scores.dtype, copy=False)
    if callable(target):
        value = np.asarray(target(scores))
        if value.dtype.kind not in "iu":
            return _finite(value, "returned").astype(scores.dtype, copy=False)
        target = value
    cls = _classes(target, *scores.shape)
    return scores[np.arange(scores.shape[0]), cls]
