"""The conformance runner (xattr/testing/runner.py): claims become cases, and the checks can fail.

The broken attribution is the peers' trapezoid pitfall (design.md): nodes linspace(0, 1, n)
with step weights [1/2n, 1/n, ..., 1/n, 1/2n] that sum to (n-1)/n, so on a linear model the
completeness gap is |f(x) - f(baseline)| / n.
"""
import numpy as np
import pytest

import xattr
from xattr.nn import Dense, Flatten, Sequential
from xattr.testing import (
    CHECKS,
    CLAIMS,
    Claims,
    ClaimsError,
    check_attribution,
    check_completeness,
    iter_cases,
    parametrize_with_checks,
)

N_STEPS = 8


def _ig(model, x, target, baseline, nodes, weights):
    x = np.asarray(x, dtype=np.float64)
    base = np.broadcast_to(np.asarray(baseline, dtype=x.dtype), x.shape)
    total = np.zeros_like(x)
    for a, w in zip(nodes, weights):
        total += w * xattr.gradient(model, base + a * (x - base), target)
    return (x - base) * total


def broken_trapezoid_ig(model, x, target, baseline=0.0):
    """IG with weights that sum to (n-1)/n (the defect: a trapezoid on n nodes with step 1/n)."""
    w = np.full(N_STEPS, 1.0 / N_STEPS)
    w[[0, -1]] = 1.0 / (2 * N_STEPS)
    return _ig(model, x, target, baseline, np.linspace(0, 1, N_STEPS), w)


def true_trapezoid_ig(model, x, target, baseline=0.0):
    """IG with the trapezoid rule proper: step 1/(n-1), weights sum to 1."""
    w = np.full(N_STEPS, 1.0 / (N_STEPS - 1))
    w[[0, -1]] = 1.0 / (2 * (N_STEPS - 1))
    return _ig(model, x, target, baseline, np.linspace(0, 1, N_STEPS), w)


def linear_model():
    m = Sequential(Flatten(), Dense(12, 2, rng=0))
    m[1].bias = np.array([0.3, -0.2])
    return m


X = np.random.default_rng(4).normal(size=(2, 3, 2, 2))


def test_broken_trapezoid_fails_completeness_with_a_readable_message():
    w = np.full(N_STEPS, 1.0 / N_STEPS)
    w[[0, -1]] = 1.0 / (2 * N_STEPS)
    assert np.isclose(w.sum(), (N_STEPS - 1) / N_STEPS)  # the defect, stated
    with pytest.raises(AssertionError) as info:
        check_completeness(broken_trapezoid_ig, linear_model(), X, 0, baseline_arg="baseline")
    msg = str(info.value)
    assert "completeness fails for broken_trapezoid_ig" in msg
    assert "f(x) - f(baseline)" in msg and "gap" in msg and "tolerance" in msg
    # the gap it reports is the closed form -(f(x) - f(0)) / n, i.e. relative 1/n
    assert f"relative {1 / N_STEPS:.3g}" in msg


def test_true_trapezoid_passes_completeness_on_a_linear_model():
    check_completeness(true_trapezoid_ig, linear_model(), X, 0, baseline_arg="baseline", rtol=1e-12)


IG_CLAIMS = Claims(
    claims={"completeness": {"baseline_arg": "baseline", "rtol": 1e-6, "case": {"bias": False}},
            "batch_invariance": {}, "dtype_preservation": {}, "determinism": {}, "inputs_unmodified": {}},
    violations={c: "not examined in this test" for c in CHECKS
                if c not in {"completeness", "batch_invariance", "dtype_preservation", "determinism",
                             "inputs_unmodified"}},
)


def test_runner_reports_the_broken_attribution_as_failing_completeness():
    """Through the runner: the claimed completeness case breaks, naming the method and the property."""
    claims = Claims(claims={**IG_CLAIMS.claims, "completeness": {"baseline_arg": "baseline", "rtol": 1e-6}},
                    violations=IG_CLAIMS.violations)
    with pytest.raises(AssertionError) as info:
        check_attribution(broken_trapezoid_ig, claims)
    msg = str(info.value)
    assert "broken_trapezoid_ig-completeness: completeness fails for broken_trapezoid_ig" in msg
    # the pytest cases carry the same check
    cases = {cid: (attr, check, reason) for cid, attr, check, reason in
             iter_cases({"broken_trapezoid_ig": (broken_trapezoid_ig, claims)})}
    attr, check, reason = cases["broken_trapezoid_ig-completeness"]
    assert reason is None
    with pytest.raises(AssertionError, match="completeness fails"):
        check(attr)


def test_runner_reports_a_declared_violation_that_does_not_show():
    claims = Claims(claims={k: v for k, v in CLAIMS["gradient"].claims.items() if k != "determinism"},
                    violations={**CLAIMS["gradient"].violations, "determinism": "claimed broken, but it is not"})
    with pytest.raises(AssertionError, match="gradient-determinism: declared violation .* did not show"):
        check_attribution(xattr.gradient, claims, name="gradient")


def test_check_attribution_returns_the_report_when_everything_holds():
    report = check_attribution(xattr.gradient, CLAIMS["gradient"], name="gradient")
    assert report["gradient-linearity"] == "pass"
    assert report["gradient-sensitivity"].startswith("xfail: the gradient saturates")
    assert len(report) == len(CHECKS)


def test_every_check_must_be_declared():
    claims = Claims(claims={"linearity": {}})
    (cid, _, check, _), = list(iter_cases({"partial": (xattr.gradient, claims)}))
    assert cid == "partial-claims_table"
    with pytest.raises(ClaimsError, match="neither claimed nor declared as violations: completeness"):
        check(xattr.gradient)


def test_unknown_checks_and_double_declarations_are_refused():
    bad = Claims(claims={**CLAIMS["gradient"].claims, "completness": {}}, violations=CLAIMS["gradient"].violations)
    (_, _, check, _), = list(iter_cases({"g": (xattr.gradient, bad)}))
    with pytest.raises(ClaimsError, match="unknown check 'completness'"):
        check(xattr.gradient)
    both = Claims(claims={**CLAIMS["gradient"].claims, "sensitivity": {}}, violations=CLAIMS["gradient"].violations)
    (_, _, check, _), = list(iter_cases({"g": (xattr.gradient, both)}))
    with pytest.raises(ClaimsError, match="both claimed and declared violated"):
        check(xattr.gradient)


def test_every_core_method_has_a_complete_claims_entry_and_future_entries_are_complete_too():
    for name in ["gradient", "gradient_x_input", "deconvnet", "guided_backprop", "cam", "grad_cam", "guided_grad_cam"]:
        assert name in xattr.available_methods()
    for name, claims in CLAIMS.items():
        declared = {base for _, base, _, _ in claims.entries()}
        assert declared == set(CHECKS), name


def test_default_runner_turns_only_registered_methods_into_cases():
    ids = [cid for cid, *_ in iter_cases()]
    assert "gradient-completeness" in ids and "grad_cam-linearity:no_relu" in ids
    registered = set(xattr.available_methods())
    assert {cid.split("-")[0] for cid in ids} <= registered


def test_parametrize_with_checks_marks_violations_as_strict_xfail():
    mark = parametrize_with_checks(["gradient"])
    params = {p.id: p for p in mark.args[1]}
    assert mark.args[0] == ("attribution", "check")
    (xf,) = params["gradient-sensitivity"].marks
    assert xf.name == "xfail" and xf.kwargs["strict"] is True and xf.kwargs["raises"] is AssertionError
    assert not params["gradient-linearity"].marks


def test_unknown_method_names_are_refused():
    with pytest.raises(ClaimsError, match="no claims entry for method 'nonsense'"):
        list(iter_cases(["nonsense"]))


def test_entries_for_methods_not_registered_fail_loudly_when_asked_for_by_name():
    table = {"not_registered": CLAIMS["gradient"]}  # an entry whose method xattr does not have
    (cid, _, check, _), = list(iter_cases(["not_registered"], claims=table))
    assert cid == "not_registered-claims_table"
    with pytest.raises(ClaimsError, match="unknown method"):
        check(None)


def test_a_registered_method_without_claims_is_a_failing_case(monkeypatch):
    from xattr.methods import registry

    monkeypatch.setitem(registry._SPECS, "brand_new", registry.MethodSpec("brand_new", xattr.gradient, "gradient"))
    cases = {cid: check for cid, _, check, _ in iter_cases()}
    with pytest.raises(ClaimsError, match="registered method 'brand_new' declares no claims"):
        cases["brand_new-claims_table"](xattr.gradient)


def test_claims_for_an_unregistered_method_are_a_failing_case(monkeypatch):
    from xattr.testing import claims as claims_module

    monkeypatch.setitem(claims_module.CLAIMS, "ghost_method", claims_module.CLAIMS["gradient"])
    cases = {cid: check for cid, _, check, _ in iter_cases()}
    with pytest.raises(ClaimsError, match="declared for 'ghost_method', which is not a registered method"):
        cases["ghost_method-claims_table"](xattr.gradient)
