"""The bad-input matrix: every registered method × every class of bad input.

Each case must end in one of two ways:

* a **clear error**: ``ValueError`` or ``TypeError`` whose one-line message names what was wrong (the
  class's keywords below: rank, shape, dtype, finite, target, baseline, ...), never an ``IndexError``,
  ``ZeroDivisionError``, ``LinAlgError`` or a traceback from deep inside NumPy;
* a **correct result**: the same attribution as on the canonical input (float64, C-ordered, the same
  values), to 1e-12, for inputs that are only spelled differently (ints, bools, lists, read-only,
  Fortran-ordered or strided arrays, an int target for ``[k, k]``); finite and of the right shape otherwise.

and the caller's arrays are never modified (``x``, the target array, the baseline).  Stochastic methods
give the same bits for the same seed.  :func:`classify` is also what the report's counts come from
(``python tests/test_fuzz.py``).
"""
import inspect
import re
import sys
import warnings

import numpy as np
import pytest

from xattr.methods.registry import available_methods, get_method, get_spec
from xattr.nn import Conv2D, Dense, GlobalAvgPool2D, MaxPool2D, ReLU, Sequential

N, C, H, W, K = 2, 3, 8, 8, 3
X0 = np.random.default_rng(0).random((N, C, H, W))
T0 = np.array([0, 2])

#: cheap options per method (tiny images; every other option at its default)
CHEAP = {
    "occlusion": {"window": 4, "stride": 4},
    "lime": {"n_samples": 16, "rng": 0},
    "kernel_shap": {"n_samples": 16, "rng": 0},
    "shapley": {"segments": np.arange(H * W).reshape(H, W) // (H * W // 4)},  # 4 segments: 16 coalitions
    "integrated_gradients": {"steps": 8},
    "smoothgrad": {"n": 3, "rng": 0}, "smoothgrad_squared": {"n": 3, "rng": 0}, "vargrad": {"n": 3, "rng": 0},
    "expected_gradients": {"n_samples": 4, "rng": 0, "references": np.zeros((2, C, H, W))},
    "expected_gradients_exact": {"references": np.zeros((2, C, H, W)), "steps": 4},
    "deepshap": {"references": np.random.default_rng(5).random((2, C, H, W))},
}


def model():
    g = np.random.default_rng(1)
    return Sequential(Conv2D(C, 4, 3, padding=1, rng=g), ReLU(), MaxPool2D(2),
                      Conv2D(4, 4, 3, padding=1, rng=g), ReLU(), GlobalAvgPool2D(), Dense(4, K, rng=g))


MODEL = model()

RANK = r"rank|shape|dimension|channel|\(N, C, H, W\)"
DTYPE = r"dtype|float32 or float64|array-like|number"
FINITE = r"finite|NaN|inf"
TARGET = r"target|class|int"
SMALL = r"smaller|size|window|kernel|segment|empty|at least|spatial|grid|pixels|references must have shape"
BASE = r"baseline|reference|broadcast|shape|finite|scalar"


def _bad(x, where, value):
    x = x.copy()
    x[where] = value
    return x


def _readonly(x):
    x = x.copy()
    x.setflags(write=False)
    return x


def _strided(x):
    big = np.zeros((N, C, 2 * H, 2 * W))
    big[:, :, ::2, ::2] = x
    return big[:, :, ::2, ::2]


#: class -> (x, target, extra kwargs, expectation); expectation: ("error", regex) | ("same", (x', t')) (equal to
#: the method on the canonical spelling x', t') | ("ok", None) (finite, right shape) | ("either", regex)
CASES = {
    "canonical": (X0, T0, {}, ("ok", None)),
    "float32": (X0.astype(np.float32), T0, {}, ("ok", None)),
    "int": ((X0 * 4).astype(np.int64), T0, {}, ("same", ((X0 * 4).astype(np.int64).astype(float), T0))),
    "bool": (X0 > 0.5, T0, {}, ("same", ((X0 > 0.5).astype(float), T0))),
    "list": (X0.tolist(), T0, {}, ("same", (X0, T0))),
    "readonly": (_readonly(X0), T0, {}, ("same", (X0, T0))),
    "fortran": (np.asfortranarray(X0), T0, {}, ("same", (X0, T0))),
    "strided": (_strided(X0), T0, {}, ("same", (X0, T0))),
    "complex": (X0 + 0j, T0, {}, ("error", DTYPE)),
    "object": (X0.astype(object), T0, {}, ("error", DTYPE)),
    "float16": (X0.astype(np.float16), T0, {}, ("error", DTYPE)),
    "strings": (np.full(X0.shape, "a"), T0, {}, ("error", DTYPE)),
    "nan": (_bad(X0, (1, 0, 2, 3), np.nan), T0, {}, ("error", FINITE)),
    "inf": (_bad(X0, (0, 2, 0, 0), -np.inf), T0, {}, ("error", FINITE)),
    "huge": (X0 * 1e308, T0, {}, ("either", FINITE)),
    "empty": (X0[:0], T0[:0], {}, ("error", r"at least one|non-empty|empty|shape|0")),
    "scalar": (1.0, T0, {}, ("error", RANK)),
    "rank1": (X0.ravel(), T0, {}, ("error", RANK)),
    "rank3": (X0[0], T0, {}, ("error", RANK)),
    "rank5": (X0[None], T0, {}, ("error", RANK)),
    "channels": (X0[:, :2], T0, {}, ("error", RANK)),
    "tiny1x1": (X0[:, :, :1, :1], T0, {}, ("either", SMALL)),
    "tiny2x3": (X0[:, :, :2, :3], T0, {}, ("either", SMALL)),
    "target_int": (X0, 1, {}, ("same", (X0, np.array([1, 1])))),
    "target_np_int": (X0, np.int64(2), {}, ("same", (X0, np.array([2, 2])))),
    "target_list": (X0, [0, 2], {}, ("same", (X0, T0))),
    "target_uint8": (X0, T0.astype(np.uint8), {}, ("same", (X0, T0))),
    "target_readonly": (X0, _readonly(T0), {}, ("same", (X0, T0))),
    "one_image": (X0[1:], T0[1:], {}, ("ok", None)),
    "ragged_list": ([X0[0].tolist(), X0[1, :2].tolist()], T0, {}, ("error", RANK + "|" + DTYPE + "|inhomogeneous")),
    "target_oob": (X0, np.array([0, K]), {}, ("error", TARGET)),
    "target_negative": (X0, np.array([-1, 0]), {}, ("error", TARGET)),
    "target_float": (X0, np.array([0.5, 1.0]), {}, ("error", TARGET)),
    "target_shape": (X0, np.array([0, 1, 2]), {}, ("error", TARGET)),
    "target_2d": (X0, T0[:, None], {}, ("error", TARGET)),
    "target_bool": (X0, True, {}, ("error", TARGET)),
    "target_str": (X0, "cat", {}, ("error", TARGET)),
    "target_none": (X0, None, {}, ("error", TARGET)),
    "target_callable_shape": (X0, lambda s: s[:, :2], {}, ("error", TARGET + "|callable|shape")),
    "target_callable_nan": (
        X0,
        lambda s: s[:, 0] * np.nan,
        {},
        ("error", r"target callable (returned .* NaN|must return ints)"),
    ),
}
#: cases for methods with a baseline/reference parameter (name filled in per method)
BASELINE_CASES = {
    "baseline_shape": (np.zeros((5, 5)), ("error", BASE)),
    "baseline_nan": (np.nan, ("error", BASE)),
    "baseline_inf_array": (_bad(np.zeros((C, H, W)), (0, 0, 0), np.inf), ("error", BASE)),
    "baseline_complex": (np.zeros((C, H, W)) + 0j, ("error", DTYPE + "|" + BASE)),
    "baseline_readonly": (_readonly(np.full((C, H, W), 0.25)), ("same_base", np.full((C, H, W), 0.25))),
}


def method_options(name):
    """CHEAP's options, else the first conformance case its spec declares (sized for these tiny models)."""
    if name in CHEAP:
        return dict(CHEAP[name])
    cases = get_spec(name).cases
    return dict(cases[0]) if isinstance(cases, (list, tuple)) and cases else {}


def baseline_param(name):
    params = inspect.signature(get_method(name)).parameters
    return next((p for p in ("baseline", "reference") if p in params), None)


def all_cases():
    for name in sorted(available_methods()):
        if name.startswith(("test_", "zz_")):
            continue
        for case in CASES:
            yield name, case
        if baseline_param(name):
            for case in BASELINE_CASES:
                yield name, case


def _snapshot(*objs):
    return [np.array(o, copy=True) if isinstance(o, np.ndarray) else None for o in objs]


def _same(o, s):
    if o.dtype != s.dtype or o.shape != s.shape:
        return False
    if o.dtype.kind in "fc":
        return np.array_equal(o, s, equal_nan=True)
    return bool(np.all(o == s)) if o.dtype.kind != "O" else o.tolist() == s.tolist()


def _unchanged(objs, snaps):
    return all(s is None or _same(o, s) for o, s in zip(objs, snaps))


def _call(name, x, t, kw):
    fn = get_method(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy's overflow warnings on the 'huge' case; the result is judged below
        out = fn(MODEL, x, t, **kw)
    if isinstance(out, tuple):
        out = out[0]
    return np.asarray(out)


CLEAR_TYPES = (ValueError, TypeError)


def classify(name, case):
    """``(outcome, detail)``: outcome is "error" (clear), "result" (correct), or "crash" / "unclear" /
    "wrong" / "modified" (failures)."""
    kw = method_options(name)
    if case in CASES:
        x, t, extra, expect = CASES[case]
        kw.update(extra)
    else:
        base, expect = BASELINE_CASES[case]
        x, t = X0, T0
        kw[baseline_param(name)] = base
    inputs = [x, t] + [v for v in kw.values() if isinstance(v, np.ndarray)]
    snaps = _snapshot(*inputs)
    try:
        a = _call(name, x, t, kw)
    except Exception as exc:  # noqa: BLE001  (classified: a clear error or a crash)
        if not _unchanged(inputs, snaps):
            return "modified", f"{type(exc).__name__}: {exc}"
        msg = str(exc)
        if not isinstance(exc, CLEAR_TYPES):
            return "crash", f"{type(exc).__name__}: {msg}"
        kind, pattern = expect
        if kind in ("error", "either") and re.search(pattern, msg, re.I) and len(msg) > 15:
            return "error", f"{type(exc).__name__}: {msg}"
        if kind in ("ok", "same", "same_base"):
            return "unclear", f"refused an acceptable input: {type(exc).__name__}: {msg}"
        return "unclear", f"{type(exc).__name__}: {msg}"
    if not _unchanged(inputs, snaps):
        return "modified", "an input array was modified"
    kind, ref = expect
    if kind == "error":
        return "wrong", f"accepted (returned shape {a.shape}); expected an error matching {ref!r}"
    n = np.shape(x)[0] if np.ndim(x) else 0
    if a.ndim < 2 or a.shape[0] != n or not np.all(np.isfinite(a)):
        return "wrong", f"returned shape {a.shape}, finite: {bool(np.all(np.isfinite(a)))}"
    if kind in ("same", "same_base"):
        if kind == "same":
            xr, tr = ref
            want = _call(name, xr, tr, method_options(name))
        else:
            kw2 = method_options(name)
            kw2[baseline_param(name)] = ref
            want = _call(name, X0, T0, kw2)
        if want.shape != a.shape or not np.allclose(a, want, rtol=1e-12, atol=1e-12 * (1 + np.abs(want).max())):
            return (
                "wrong",
                "differs from the canonical input's result by "
                f"{np.abs(a - want).max() if want.shape == a.shape else 'shape'}",
            )
    if case == "float32" and a.dtype != np.float32:
        return "wrong", f"float32 input gave {a.dtype}"
    if "rng" in kw and case == "canonical":
        again = _call(name, x, t, kw)
        if not np.array_equal(a, again):
            return "wrong", "same seed, different bits"
    return "result", f"shape {a.shape}"


@pytest.mark.parametrize("name, case", list(all_cases()))
def test_bad_input_matrix(name, case):
    outcome, detail = classify(name, case)
    assert outcome in ("error", "result"), f"{name} × {case}: {outcome}: {detail}"


def test_every_registered_method_is_in_the_matrix():
    names = {n for n, _ in all_cases()}
    assert names == {n for n in available_methods() if not n.startswith(("test_", "zz_"))}
    assert len(CASES) >= 30


if __name__ == "__main__":  # the counts of the closing note
    counts, failures = {}, []
    for name, case in all_cases():
        outcome, detail = classify(name, case)
        counts[outcome] = counts.get(outcome, 0) + 1
        if outcome not in ("error", "result"):
            failures.append(f"{name} × {case}: {outcome}: {detail}")
    total = sum(counts.values())
    print(f"{total} cases over {len({n for n, _ in all_cases()})} methods: "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print("\n".join(failures))
    sys.exit(1 if failures else 0)
