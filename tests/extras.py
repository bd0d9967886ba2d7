"""Optional dependencies of the test suite: import one, or skip with the command that installs it.

``pip install -e '.[dev]'`` (the README's test command, and what ``.ci/run`` runs) installs every package the
tests use, so a complete environment skips nothing.  Where one is missing, the skip names the package, the
test that needs it and the command above.  When the ``CI`` environment variable is set (as on the CI
machine), a missing package fails the run instead: CI must run the whole suite, never quietly less of it.
"""
import importlib
import os

import pytest

INSTALL = "pip install -e '.[dev]'"


def strict():
    """True where a missing optional package must fail rather than skip (``CI`` set to a true value)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def skip_or_fail(message):
    """Skip this test (or module) with ``message`` and the install command; fail instead under CI."""
    __tracebackhide__ = True  # pytest reports the caller's line
    message = f"{message}; install everything the tests use with: {INSTALL}"
    if strict():
        pytest.fail(f"{message} (CI runs every test: a skip here would hide a missing dependency)", pytrace=False)
    pytest.skip(message, allow_module_level=True)


def need(module, purpose=None, reason=None):
    """Import ``module`` (e.g. ``"captum.attr"``) for ``purpose`` (e.g. ``"the Captum comparisons"``; ``reason``
    is a synonym, as in ``pytest.importorskip``).

    Returns the module.  When it cannot be imported, skips (or fails under CI) with a message naming the
    module, what needs it, the import error and the command that installs it.
    """
    __tracebackhide__ = True
    purpose = purpose or reason or "this test"
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        skip_or_fail(f"{purpose}: the optional package {module!r} does not import here ({exc})")
