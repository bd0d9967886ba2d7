"""xattr.testing: the axioms as a public conformance suite.

* :mod:`~xattr.testing.checks`: ``check_<property>(attribution, model, x, target, ...)`` for
  completeness, implementation invariance, sensitivity(a), dummy, linearity, symmetry
  preservation, input-shift invariance, batch invariance, dtype preservation, determinism
  and untouched inputs; each raises ``AssertionError`` with a readable message.
* :mod:`~xattr.testing.claims` and :mod:`~xattr.testing.runner`: which axioms each method
  claims (and which it violates, with the reason), turned into pytest cases by
  :func:`parametrize_with_checks`, or run directly by :func:`check_attribution`.
* :mod:`~xattr.testing.gradcheck`: central differences along random directions against a
  model's vjp.
* :mod:`~xattr.testing.twins`: the model constructions behind the checks.
* :mod:`~xattr.testing.strategies`: Hypothesis strategies for random networks, inputs,
  baselines and targets (needs the ``test`` extra: ``pip install xattr-ref[test]``).

Only ``strategies`` imports Hypothesis and only the runner's pytest helpers import pytest,
so ``import xattr.testing`` works with the core dependencies alone.
"""
from . import cases, twins
from .checks import (
    CHECKS,
    assert_close,
    check_batch_invariance,
    check_completeness,
    check_determinism,
    check_dtype_preservation,
    check_dummy,
    check_implementation_invariance,
    check_input_shift_invariance,
    check_inputs_unmodified,
    check_linearity,
    check_sensitivity,
    check_symmetry,
)
from .claims import CLAIMS, Claims
from .gradcheck import check_model_gradient
from .runner import ClaimsError, check_attribution, iter_cases, parametrize_with_checks

__all__ = [
    "CHECKS", "CLAIMS", "Claims", "ClaimsError", "assert_close", "cases", "twins",
    "check_completeness", "check_implementation_invariance", "check_sensitivity", "check_dummy",
    "check_linearity", "check_symmetry", "check_input_shift_invariance", "check_batch_invariance",
    "check_dtype_preservation", "check_determinism", "check_inputs_unmodified",
    "check_model_gradient", "parametrize_with_checks", "iter_cases", "check_attribution",
]
