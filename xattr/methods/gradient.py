"""Gradient, gradient×input, DeconvNet and guided backprop: one driver, different rule.

All four back-propagate the target's one-hot (or the target callable's derivative)
through the model with one column of the rule table (see :func:`xattr.nn.rule_table`):

============== =========== ==========================================
method         rule        paper
============== =========== ==========================================
gradient       gradient    Simonyan et al. 2013 (saliency maps)
deconvnet      deconvnet   Zeiler & Fergus 2014
guided         guided      Springenberg et al. 2015
============== =========== ==========================================
"""
from __future__ import annotations

import numpy as np

from .. import _targets
from .._conventions import as_float_array
from ..model import check_model, trace
from ._chunks import planned
from .registry import MethodSpec, register

#: the rule-table columns whose walks run on :func:`xattr.nn.gradient_plan` (the same linear maps there).
PLANNED_RULES = ("gradient", "deconvnet", "guided")


def backprop(model, x, target, rule="gradient", **options):
    """Back-propagate the target through ``model`` with ``rule``.

    Parameters
    ----------
    model : model protocol object (``forward``, ``vjp``)
    x : ndarray ``(N, C, H, W)`` (or any ``(N, ...)`` the model accepts)
    target : int, int array ``(N,)`` or callable on the scores ``(N, K)``
    rule : str
        A column of the rule table.

    Returns
    -------
    ndarray, ``x.shape``, ``x.dtype``
    """
    check_model(model, rule)
    x = as_float_array(x, "x")
    if x.ndim < 2:
        raise ValueError(f"x must be a batch of shape (N, ...), got shape {x.shape}")
    if rule in PLANNED_RULES:  # batch-norms folded into their convs where it pays (xattr.nn.gradient_plan)
        model = planned(model, x[:1], x.shape[0])
    tape = trace(model, x)  # one forward pass: its record serves the backward pass too
    return tape.pull(_targets.seed(target, tape.output), rule, **options)


def gradient(model, x, target):
    """Vanilla gradient ``∂S_c/∂x`` (signed), Simonyan et al. 2013, "Deep inside convolutional networks".

    Reduce over channels with :func:`reduce_channels` (``"max_abs"`` is the paper's saliency map).

    Parameters
    ----------
    model : model protocol object (``forward``, ``vjp``)
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable on the scores ``(N, K)``

    Returns
    -------
    ndarray ``(N, C, H, W)``, ``x.dtype``
    """
    return backprop(model, x, target, "gradient")


def gradient_x_input(model, x, target):
    """Gradient × input ``x ⊙ ∂S_c/∂x`` (Shrikumar et al. 2016).

    Parameters
    ----------
    model : model protocol object (``forward``, ``vjp``)
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable on the scores ``(N, K)``

    Returns
    -------
    ndarray ``(N, C, H, W)``, ``x.dtype``
    """
    x = as_float_array(x, "x")
    return x * gradient(model, x, target)


def deconvnet(model, x, target):
    """DeconvNet (Zeiler & Fergus 2014): ReLUs pass ``max(R, 0)``.

    Parameters
    ----------
    model : model protocol object (``forward``, ``vjp``)
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable on the scores ``(N, K)``

    Returns
    -------
    ndarray ``(N, C, H, W)``, ``x.dtype``
    """
    return backprop(model, x, target, "deconvnet")


def guided_backprop(model, x, target):
    """Guided backpropagation (Springenberg et al. 2015): ReLUs pass ``max(R, 0)·1[X > 0]``.

    Parameters
    ----------
    model : model protocol object (``forward``, ``vjp``)
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable on the scores ``(N, K)``

    Returns
    -------
    ndarray ``(N, C, H, W)``, ``x.dtype``
    """
    return backprop(model, x, target, "guided")


#: channel reductions ``(N, C, H, W) -> (N, H, W)``, each named after where it comes from.
CHANNEL_REDUCTIONS = {
    "max_abs": lambda a: np.abs(a).max(axis=1),  # Simonyan et al. 2013: max over channels of |w|
    "sum_abs": lambda a: np.abs(a).sum(axis=1),  # L1 over channels (used e.g. by Captum's viz)
    "l2_squared": lambda a: (a * a).sum(axis=1),  # squared norm: sensitivity analysis (Baehrens et al. 2010)
    "sum": lambda a: a.sum(axis=1),  # signed sum: keeps completeness of gradient×input-type maps
}


def reduce_channels(attr, how="max_abs"):
    """Reduce a map ``(N, C, H, W)`` to ``(N, H, W)``.

    Parameters
    ----------
    attr : ndarray ``(N, C, H, W)``
    how : ``"max_abs"``, ``"sum_abs"``, ``"l2_squared"`` or ``"sum"``
        ``"max_abs"`` (Simonyan et al.'s saliency map), ``"sum_abs"``, ``"l2_squared"``
        (sensitivity analysis) or ``"sum"`` (signed).

    Returns
    -------
    ndarray ``(N, H, W)``
    """
    attr = as_float_array(attr, "attr", ndim=4)
    try:
        fn = CHANNEL_REDUCTIONS[how]
    except KeyError:
        raise ValueError(f"how must be one of {sorted(CHANNEL_REDUCTIONS)}, got {how!r}") from None
    return fn(attr)


# -- the registry: one spec per method, beside its function -----------------------------------------
register(MethodSpec("gradient", gradient, "gradient", paper="Simonyan et al. 2014", needs=("rule:gradient",)))
register(MethodSpec("gradient_x_input", gradient_x_input, "gradient", paper="Shrikumar et al. 2016",
                    needs=("rule:gradient",)))
register(MethodSpec("deconvnet", deconvnet, "gradient", paper="Zeiler & Fergus 2014", needs=("rule:deconvnet",)))
register(MethodSpec("guided_backprop", guided_backprop, "gradient", paper="Springenberg et al. 2015",
                    needs=("rule:guided",)))
