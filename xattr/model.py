"""The model protocol that every method works on, and the wrapper for plain functions.

A *model* is anything with::

    scores = model.forward(x)                                  # x (N, ...) -> scores (N, K)
    grad_x = model.vjp(x, grad_scores, rule="gradient", **options)   # (N, K) -> x.shape

:class:`xattr.nn.Sequential` implements every rule of the table.  :func:`from_function`
wraps any autograd-differentiable NumPy function ``f(x) -> (N, K)``; it supports the
``gradient`` rule only, and other rules raise :class:`~xattr.nn.RuleNotDefined` naming
what the model lacks.
"""
from __future__ import annotations

import numpy as np

from ._conventions import as_float_array
from .nn.base import RuleNotDefined


class FunctionModel:
    """A model made from an autograd-differentiable function ``f(x) -> (N, K)``.

    ``f`` must be written with ``autograd.numpy`` (``import autograd.numpy as np``).
    """

    rules = ("gradient",)

    def __init__(self, f, name=None):
        if not callable(f):
            raise TypeError(f"from_function needs a callable f(x) -> (N, K), got {type(f).__name__}")
        self.f = f
        self.name = name or getattr(f, "__name__", "function")

    def __repr__(self):
        return f"FunctionModel({self.name})"

    def _check_scores(self, x, s):
        s = np.asarray(s)
        if s.ndim != 2 or s.shape[0] != x.shape[0]:
            raise ValueError(f"{self!r} must return scores of shape (N, K) = ({x.shape[0]}, K), got {s.shape}")
        return s

    def forward(self, x):
        x = as_float_array(x, "x")
        return self._check_scores(x, self.f(x)).astype(x.dtype, copy=False)

    __call__ = forward

    def supports(self, rule):
        return rule in self.rules

    def rule_error(self, rule):
        return RuleNotDefined(
            f"{self!r} wraps a plain function and supports only the 'gradient' rule without options; "
            f"rule {rule!r} needs a layered model (xattr.nn.Sequential) whose layers define it"
        )

    def trace(self, x):
        """One forward pass through autograd, kept for the backward pass: a :class:`FunctionTape`."""
        from autograd import make_vjp

        x = as_float_array(x, "x")
        vjp_fn, scores = make_vjp(self.f)(x)
        self._check_scores(x, scores)
        return FunctionTape(self, x, np.asarray(scores).astype(x.dtype, copy=False), vjp_fn)

    def vjp(self, x, grad_scores, rule="gradient", **options):
        if rule != "gradient" or options:
            raise self.rule_error(rule)
        from autograd import make_vjp

        x = as_float_array(x, "x")
        vjp_fn, scores = make_vjp(self.f)(x)
        self._check_scores(x, scores)
        g = np.asarray(grad_scores, dtype=np.asarray(scores).dtype)
        if g.shape != np.shape(scores):
            raise ValueError(f"grad_scores must have the scores' shape {np.shape(scores)}, got {g.shape}")
        return np.asarray(vjp_fn(g)).astype(x.dtype, copy=False)


class FunctionTape:
    """The tape of a :class:`FunctionModel`: ``output`` and ``pull`` (the gradient rule, input only).

    A plain function has no nodes: asking ``pull`` for a node, a tap or another rule raises an error
    that says so.
    """

    def __init__(self, model, x, output, vjp_fn):
        self.model, self.x, self.output, self._vjp = model, x, output, vjp_fn

    def _refuse_nodes(self, at, to, taps):
        if at is not None or to is not None or taps:
            raise RuleNotDefined(
                f"{self.model!r} has no nodes: activations and gradients at a layer need a layered model "
                "(xattr.nn.Graph or Sequential)"
            )

    def pull(self, seed, rule="gradient", *, at=None, to=None, taps=None, **options):
        self._refuse_nodes(at, to, taps)
        if rule != "gradient" or options:
            raise self.model.rule_error(rule)
        g = np.asarray(seed, dtype=self.output.dtype)
        if g.shape != self.output.shape:
            raise ValueError(f"the seed must have the scores' shape {self.output.shape}, got {g.shape}")
        return np.asarray(self._vjp(g)).astype(self.x.dtype, copy=False)


class ProtocolTape(FunctionTape):
    """The tape of any object with ``forward`` and ``vjp``: ``pull`` calls ``model.vjp(x, seed, rule, **options)``."""

    def __init__(self, model, x):
        super().__init__(model, x, np.asarray(model.forward(x)), None)

    def pull(self, seed, rule="gradient", *, at=None, to=None, taps=None, **options):
        self._refuse_nodes(at, to, taps)
        return np.asarray(self.model.vjp(self.x, seed, rule, **options))


def trace(model, x):
    """The tape of one forward pass: ``model.trace(x)`` for layered and function models, a
    :class:`ProtocolTape` for any other object with ``forward`` and ``vjp``.

    Parameters
    ----------
    model : model protocol object
    x : ndarray ``(N, ...)``

    Returns
    -------
    Tape or ProtocolTape
    """
    if hasattr(model, "trace"):
        return model.trace(x)
    return ProtocolTape(model, as_float_array(x, "x"))


def from_function(f, name=None):
    """Wrap an autograd-differentiable ``f(x) -> scores (N, K)`` as a model (gradient rule only).

    Parameters
    ----------
    f : callable ``x (N, ...) -> scores (N, K)``
        Autograd-differentiable.
    name : str, optional

    Returns
    -------
    FunctionModel
    """
    return FunctionModel(f, name)


def check_model(model, rule=None):
    """Refuse objects that are not models, and models that lack ``rule``, with a clear message.

    Parameters
    ----------
    model : object
    rule : str, optional

    Returns
    -------
    ``model``
    """
    for attr in ("forward", "vjp"):
        if not callable(getattr(model, attr, None)):
            raise TypeError(
                f"model must have forward(x) and vjp(x, grad_scores, rule); {type(model).__name__} lacks {attr}()"
            )
    if rule is not None and hasattr(model, "supports") and not model.supports(rule):
        if hasattr(model, "rule_error"):
            raise model.rule_error(rule)
        lacking = [layer.describe() for layer in getattr(model, "layers", []) if not layer.has_rule(rule)]
        detail = f": layers without it: {', '.join(lacking)}" if lacking else ""
        raise RuleNotDefined(f"model {type(model).__name__} does not support rule {rule!r}{detail}")
    return model
