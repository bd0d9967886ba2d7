"""Turn claims into checks: a conformance runner in the style of scikit-learn's ``parametrize_with_checks``.

In a pytest file::

    from xattr.testing import parametrize_with_checks

    @parametrize_with_checks()              # every xattr method that has an entry in CLAIMS
    def test_axioms(attribution, check):
        check(attribution)

A claimed check must pass; a declared violation is a strict ``xfail`` that must fail with
an ``AssertionError`` (any other exception is a real error, and a violation that stops
happening fails as XPASS).  Other libraries pass their own functions and claims::

    @parametrize_with_checks({"my_ig": (my_ig, Claims(claims={...}, violations={...}))})

Without pytest, :func:`check_attribution` runs the same cases and raises one
``AssertionError`` that lists every broken claim.
"""
from __future__ import annotations

from .._errors import XattrError
from .checks import CHECKS
from .claims import Claims, all_claims


class ClaimsError(XattrError):
    """A claims entry that cannot be run (unknown check, a check left undeclared, bad kwargs)."""


def _resolve(methods, claims):
    """``[(name, fn or None, Claims, problem or None)]``."""
    table = all_claims() if claims is None else claims
    if methods is None:
        from ..methods.registry import available_methods, get_method

        have = available_methods()
        out = [(name, get_method(name), table[name], None) for name in table if name in have]
        # a registered method without claims, or claims for a method nobody registered, is a failing case:
        # never silently left out
        out += [(name, get_method(name), Claims(), f"registered method {name!r} declares no claims: give its "
                 "MethodSpec claims= (or an entry in xattr/testing/claims.py) naming the axioms it claims and violates")
                for name in have if name not in table]
        out += [(name, None, table[name], f"claims are declared for {name!r}, which is not a registered method "
                 "(xattr.methods.registry): register it or remove the entry")
                for name in table if name not in have]
        return out
    if isinstance(methods, dict):
        return [(name, fn, cl, None) for name, (fn, cl) in methods.items()]
    out = []
    for item in methods:
        if callable(item):
            name = getattr(item, "__name__", repr(item))
            if name not in table:
                raise ClaimsError(f"no claims for {name!r}; pass {{name: (fn, Claims(...))}} instead")
            out.append((name, item, table[name], None))
            continue
        from ..methods.registry import get_method

        if item not in table:
            raise ClaimsError(f"no claims entry for method {item!r}; known entries: {', '.join(table)}")
        try:
            fn = get_method(item)
        except ValueError as exc:
            out.append((item, None, table[item], str(exc)))
            continue
        out.append((item, fn, table[item], None))
    return out


def _problems(name, cl):
    if not isinstance(cl, Claims):
        return [f"{name}: claims must be a xattr.testing.Claims, got {type(cl).__name__}"]
    entries = cl.entries()
    problems = [f"{name}: unknown check {key!r} (known: {', '.join(CHECKS)})"
                for key, base, _, _ in entries if base not in CHECKS]
    declared = {base for _, base, _, _ in entries}
    missing = [c for c in CHECKS if c not in declared]
    if missing:
        problems.append(
            f"{name}: checks neither claimed nor declared as violations: {', '.join(missing)} "
            "(declare each; nothing is skipped silently)"
        )
    both = set(cl.claims) & set(cl.violations)
    if both:
        problems.append(f"{name}: {', '.join(sorted(both))} both claimed and declared violated")
    return problems


def _attribution(name, fn, cl):
    base = cl.adapt(fn) if cl.adapt is not None else fn

    def attribution(model, x, target, **kw):
        return base(model, x, target, **{**cl.method_kwargs, **kw})

    attribution.__name__ = name
    attribution.__wrapped__ = fn
    return attribution


def _bound_check(check_name, kwargs, case=None):
    fn = CHECKS[check_name]
    kwargs = dict(kwargs)
    if case:  # the runner's default case options, under the claim's own
        kwargs["case"] = {**case, **dict(kwargs.get("case") or {})}

    def check(attribution):
        kw = dict(kwargs)
        extra = kw.pop("method_kwargs", None)
        return fn(attribution, method_kwargs=extra, **kw)

    check.__name__ = f"check_{check_name}"
    check.keywords = kwargs
    return check


def _failing(message):
    def check(attribution):
        raise ClaimsError(message)

    check.__name__ = "claims_table"
    return check


def iter_cases(methods=None, claims=None, case=None):
    """``(case id, attribution, check, violation reason or None)`` for every declared check.

    ``methods``: None (every method xattr has registered; one without an entry in ``claims``
    gives a failing case), a list of
    names or functions, or a dict ``{name: (function, Claims)}``; ``claims`` defaults to
    :data:`xattr.testing.claims.CLAIMS`.  A broken entry yields one case whose check raises
    :class:`ClaimsError` saying what is wrong.  ``case``: options of the default case every check runs on
    (:func:`xattr.testing.cases.default_case`, e.g. ``{"arch": "resnet"}``).  A violation whose kwargs give
    ``shows_on`` (architectures, ``"cnn"`` the default chain) is a claim on any other architecture.

    Parameters
    ----------
    methods : None, list or dict
    claims : dict, optional
    case : dict, optional

    Yields
    ------
    (str, callable, callable, str or None)
    """
    for name, fn, cl, problem in _resolve(methods, claims):
        problems = ([problem] if problem else []) + _problems(name, cl)
        if problems:
            yield f"{name}-claims_table", fn, _failing("; ".join(problems)), None
            continue
        attribution = _attribution(name, fn, cl)
        arch = dict(case or {}).get("arch", "cnn")
        for key, base, kw, reason in cl.entries():
            shows_on = kw.pop("shows_on", None)
            if reason is not None and shows_on is not None and arch not in shows_on:
                # a violation that needs something this architecture lacks (max-pool ties, a grid that does
                # not fit the width): here the check must pass
                reason = None
            yield f"{name}-{key}", attribution, _bound_check(base, kw, case), reason


def parametrize_with_checks(methods=None, claims=None, strict=True, case=None):
    """A ``pytest.mark.parametrize`` over ``(attribution, check)`` for every declared check.

    Declared violations carry ``pytest.mark.xfail(reason=..., strict=strict, raises=AssertionError)``.
    Case ids read ``method-check`` (``grad_cam-linearity:no_relu``).

    Parameters
    ----------
    methods, claims, case
        As :func:`iter_cases`.
    strict : bool
        The xfails' strictness.

    Returns
    -------
    pytest.MarkDecorator
    """
    import pytest

    params = []
    for cid, attribution, check, reason in iter_cases(methods, claims, case):
        marks = [pytest.mark.xfail(reason=reason, strict=strict, raises=AssertionError)] if reason else []
        params.append(pytest.param(attribution, check, id=cid, marks=marks))
    return pytest.mark.parametrize(("attribution", "check"), params)


def check_attribution(attribution, claims, name=None):
    """Run every case of ``claims`` on ``attribution``; raise one ``AssertionError`` listing all that break.

    Returns ``{case id: "pass" | "xfail: <reason>"}`` when every claim holds and every
    declared violation shows.

    Parameters
    ----------
    attribution : callable ``(model, x, target, **options) -> (N, ...)``
    claims : Claims
    name : str, optional

    Returns
    -------
    dict str -> str
    """
    name = name or getattr(attribution, "__name__", "attribution")
    report, broken = {}, []
    for cid, attr, check, reason in iter_cases({name: (attribution, claims)}):
        try:
            check(attr)
        except AssertionError as exc:
            if reason is None:
                broken.append(f"{cid}: {exc}")
            else:
                report[cid] = f"xfail: {reason}"
            continue
        except ClaimsError as exc:
            broken.append(f"{cid}: {exc}")
            continue
        if reason is None:
            report[cid] = "pass"
        else:
            broken.append(f"{cid}: declared violation ({reason}) did not show: the check passed")
    if broken:
        raise AssertionError(f"{len(broken)} conformance case(s) broken:\n" + "\n".join(broken))
    return report


__all__ = ["parametrize_with_checks", "iter_cases", "check_attribution", "ClaimsError"]
