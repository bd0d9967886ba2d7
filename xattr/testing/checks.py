"""The axioms as checks: ``check_<property>(attribution, model, x, target, ...)``.

Each check runs on any function ``attribution(model, x, target, **kw) -> ndarray``
(an xattr method, or another library's method wrapped to take an xattr model), returns
``None`` when the property holds and raises ``AssertionError`` with a readable message
(method, property, where, by how much, against which tolerance) when it does not.
A check that cannot even set up its test (the premise of the axiom fails, a model it
cannot transform) raises ``ValueError`` instead: that is not a verdict on the method.

Without ``model, x, target`` each check builds its default case
(:func:`xattr.testing.cases.default_case`).  ``method_kwargs`` are passed to every call of
``attribution``.  Where a property involves a baseline, ``baseline_arg`` names the
method's keyword for it (``"baseline"`` for integrated gradients); ``None`` means the
method has an implicit baseline, taken to be ``baseline`` (default 0).

===================================  ==================================================  =========================
check                                property                                            source
===================================  ==================================================  =========================
``check_completeness``               ``Σ_i A_i = f(x) - f(x̄)``                           Sundararajan et al. 2017
                                                                                         (Shrikumar et al. 2017's
                                                                                         summation-to-delta)
``check_implementation_invariance``  same attributions for functionally equal nets       Sundararajan et al. 2017
``check_sensitivity``                one differing feature, different output:            Sundararajan et al. 2017
                                     non-zero attribution there                          (sensitivity(a))
``check_dummy``                      zero attribution to inputs the model ignores        Sundararajan et al. 2017;
                                                                                         Shapley's dummy axiom
``check_linearity``                  ``A(a f1 + b f2) = a A(f1) + b A(f2)``              Sundararajan et al. 2017
``check_symmetry``                   symmetric inputs, symmetric attributions            Sundararajan et al. 2017
``check_input_shift_invariance``     ``A(g, x + c) = A(f, x)`` when ``g(x + c) = f(x)``  Kindermans et al. 2019
``check_batch_invariance``           image ``i`` of a batch = image ``i`` alone          (implementation)
``check_dtype_preservation``         float32 in, float32 out; float64 in, float64 out    xattr's conventions
``check_determinism``                same seed, same bits; no hidden global state        xattr's conventions
``check_inputs_unmodified``          ``x``, baseline and weights untouched               xattr's conventions
===================================  ==================================================  =========================
"""
from __future__ import annotations

import copy

import numpy as np

from .. import _targets
from ..nn import Graph
from . import twins
from .cases import default_case, ig_paper_pair

__all__ = [
    "check_completeness", "check_implementation_invariance", "check_sensitivity", "check_dummy",
    "check_linearity", "check_symmetry", "check_input_shift_invariance", "check_batch_invariance",
    "check_dtype_preservation", "check_determinism", "check_inputs_unmodified", "CHECKS",
]


# -- helpers ------------------------------------------------------------------------------
def method_name(attribution):
    """A readable name for an attribution function (partials and lambdas included)."""
    fn = attribution
    while hasattr(fn, "func"):
        fn = fn.func
    return getattr(attribution, "__name__", None) or getattr(fn, "__name__", None) or repr(attribution)


def _case(check, model, x, target, case):
    if model is None:
        if x is not None:
            raise ValueError(f"check_{check}: give model together with x (or neither for the default case)")
        return default_case(check, **dict(case or {}))
    if x is None:
        raise ValueError(f"check_{check}: a model was given without x")
    return model, np.asarray(x), 1 if target is None else target


def _attribute(attribution, model, x, target, kwargs, what):
    return _validate(attribution(model, x, target, **kwargs), attribution, x, what)


def _validate(out, attribution, x, what):
    """The method's output as an ndarray, refused with a message if it is not a finite batch of maps."""
    if isinstance(out, tuple):
        raise AssertionError(
            f"{what}: {method_name(attribution)} returned a tuple; an attribution function must return one ndarray"
        )
    out = np.asarray(out)
    if out.dtype.kind not in "fiu":
        raise AssertionError(f"{what}: {method_name(attribution)} returned dtype {out.dtype}, expected a float array")
    if out.ndim < 1 or out.shape[0] != np.shape(x)[0]:
        raise AssertionError(
            f"{what}: {method_name(attribution)} returned shape {out.shape} for a batch of {np.shape(x)[0]} image(s)"
        )
    if not np.all(np.isfinite(out)):
        bad = int(out.size - np.count_nonzero(np.isfinite(out)))
        raise AssertionError(f"{what}: {method_name(attribution)} returned {bad} NaN/inf value(s)")
    return out


def _scores(model, x):
    return np.asarray(model.forward(x), dtype=np.float64)


def _with_baseline(kwargs, baseline_arg, baseline, x=None):
    """kwargs plus the baseline: a Python float if scalar, else an array of ``x``'s shape."""
    kw = dict(kwargs or {})
    if baseline_arg is not None:
        b = np.asarray(baseline)
        if b.ndim == 0:
            kw[baseline_arg] = float(b)
        else:
            kw[baseline_arg] = np.array(np.broadcast_to(b, np.shape(x))) if x is not None else b
    return kw


def _where(idx, shape):
    return "index " + str(tuple(int(i) for i in np.unravel_index(idx, shape)))


def assert_close(actual, expected, rtol, atol, what):
    """``max|actual - expected| <= atol + rtol * max(|expected|)``, else a message naming the worst element."""
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        raise AssertionError(f"{what}: shapes differ, {actual.shape} vs {expected.shape}")
    if actual.size == 0:
        return
    err = np.abs(actual - expected)
    scale = max(float(np.max(np.abs(expected))), float(np.max(np.abs(actual))))
    tol = atol + rtol * scale
    worst = int(np.argmax(err))
    if err.flat[worst] > tol:
        n_bad = int(np.count_nonzero(err > tol))
        raise AssertionError(
            f"{what}: {n_bad} of {err.size} values differ; worst at {_where(worst, err.shape)}: "
            f"{actual.flat[worst]:.10g} vs {expected.flat[worst]:.10g} (|diff| {err.flat[worst]:.3g} > tolerance "
            f"{tol:.3g} = atol {atol:g} + rtol {rtol:g} x max|value| {scale:.3g})"
        )


def _pixel_map(a, hw):
    """Attribution per pixel ``(N, H, W)``: ``|A|`` summed over the channel axis of a 4-D map."""
    a = np.abs(np.asarray(a, dtype=np.float64))
    if a.ndim != 4 or a.shape[2:] != tuple(hw):
        raise AssertionError(f"expected a map (N, C, H, W) with (H, W) = {tuple(hw)}, got shape {a.shape}")
    return a.sum(axis=1)


def _same_function(m1, m2, x1, x2, what, rtol=1e-9):
    s1, s2 = _scores(m1, x1), _scores(m2, x2)
    err = np.max(np.abs(s1 - s2))
    if err > rtol * max(1.0, float(np.max(np.abs(s1)))):
        raise ValueError(f"{what}: the constructed model does not compute the same function (score gap {err:.3g})")


# -- the checks -----------------------------------------------------------------------------
def _players_sum(a, players):
    """``Σ_k mean_{pixels of segment k}(Σ_c a)`` per image: the sum over the players of a map that paints each
    player's value on all its pixels.  ``a`` ``(N, C, H, W)``, ``players`` int ``(H, W)`` -> ``(N,)``."""
    labels = np.unique(players, return_inverse=True)[1].reshape(players.shape)
    counts = np.bincount(labels.ravel())
    per_pixel = a.sum(axis=1).reshape(a.shape[0], -1)  # (N, H*W)
    sums = np.stack([np.bincount(labels.ravel(), weights=row, minlength=counts.size) for row in per_pixel])
    return (sums / counts).sum(axis=1)


def check_completeness(attribution, model=None, x=None, target=None, *, baseline=0.0, baseline_arg=None,
                       players=None, players_arg=None, rtol=1e-6, atol=1e-9, method_kwargs=None, case=None):
    """Completeness: ``Σ_i A_i(x) = f_c(x) - f_c(x̄)`` per image (Sundararajan et al. 2017, §3).

    The sum runs over every element of the attribution.  Passes when
    ``|gap| <= atol + rtol * |f_c(x) - f_c(x̄)|``.  ``baseline`` (scalar or broadcastable to
    ``x``, or a callable ``x -> baseline``) is the reference ``x̄``; it is passed to the method as ``baseline_arg``
    if given.

    ``players`` (int labels ``(H, W)``, or a callable ``x -> labels``): the attribution is a map of segment values
    painted on their pixels (Shapley values of segments, LIME, KernelSHAP), and the sum runs over the players,
    one value per segment (its mean over its pixels), as efficiency states it (Shapley 1953); the labels are
    passed to the method as ``players_arg`` if given.

    Parameters
    ----------
    attribution : callable ``(model, x, target, **method_kwargs) -> (N, ...)``
        The method under test.
    model, x, target : optional
        The case (a model protocol object, ``(N, C, H, W)``, a target); default:
        :func:`xattr.testing.cases.default_case`.
    baseline : float, ndarray or callable
        The reference ``x̄``.
    baseline_arg : str, optional
        The keyword ``attribution`` takes the baseline as.
    players : int array ``(H, W)`` or callable, optional
        Segment labels (or ``x -> labels``).
    players_arg : str, optional
        The keyword ``attribution`` takes the labels as.
    rtol, atol : float
    method_kwargs : dict, optional
        Options passed to ``attribution``.
    case : dict, optional
        Options of the default case (:func:`xattr.testing.cases.default_case`).

    Returns
    -------
    None
        Raises ``AssertionError`` saying what breaks.
    """
    model, x, target = _case("completeness", model, x, target, case)
    if callable(baseline):  # a baseline made for the case's input (a claims entry cannot know its shape)
        baseline = baseline(np.asarray(x))
    base = np.broadcast_to(np.asarray(baseline, dtype=np.asarray(x).dtype), np.shape(x))
    kw = _with_baseline(method_kwargs, baseline_arg, baseline)
    if callable(players):
        players = players(np.asarray(x))
    if players is not None:
        players = np.asarray(players)
        if players.shape != np.shape(x)[-2:]:
            raise ValueError(f"players must be labels of shape (H, W) = {np.shape(x)[-2:]}, got {players.shape}")
        if players_arg is not None:
            kw[players_arg] = players
    a = _attribute(attribution, model, x, target, kw, "completeness")
    delta = _targets.selected(target, _scores(model, x)) - _targets.selected(target, _scores(model, np.array(base)))
    total = a.reshape(a.shape[0], -1).sum(axis=1) if players is None else _players_sum(a, players)
    gap = total - delta
    tol = atol + rtol * np.abs(delta)
    bad = np.flatnonzero(np.abs(gap) > tol)
    if bad.size:
        i = int(bad[np.argmax(np.abs(gap[bad]))])
        raise AssertionError(
            f"completeness fails for {method_name(attribution)} on {bad.size} of {len(gap)} image(s); image {i}: "
            f"sum of attributions {total[i]:.10g} but f(x) - f(baseline) = {delta[i]:.10g} "
            f"(gap {gap[i]:.3g}, relative {abs(gap[i]) / max(abs(delta[i]), 1e-300):.3g}; "
            f"tolerance {tol[i]:.3g} = atol {atol:g} + rtol {rtol:g} x |f(x) - f(baseline)|)"
        )


def check_implementation_invariance(attribution, model=None, x=None, target=None, *,
                                    constructions=("rescale", "relu_identity", "ig_paper_pair"),
                                    rtol=1e-7, atol=1e-12, rng=0, method_kwargs=None, case=None):
    """Implementation invariance (Sundararajan et al. 2017, §3.2): functionally equal networks,
    equal attributions.

    The ``constructions`` tried: ``"rescale"`` (:func:`~xattr.testing.twins.rescaled_twin`)
    and ``"relu_identity"`` (:func:`~xattr.testing.twins.relu_identity_twin`, an identity
    ``2 ReLU(z) - ReLU(z) - ReLU(-z)`` inserted after the first layer), twins of ``model``;
    and ``"ig_paper_pair"``, the IG paper's own pair ``f1, f2`` on its own input
    (:func:`~xattr.testing.cases.ig_paper_pair`, independent of ``model``), which moves a
    bias across a ReLU.  Every twin's function is verified equal first.

    Parameters
    ----------
    attribution : callable ``(model, x, target, **method_kwargs) -> (N, ...)``
        The method under test.
    model, x, target : optional
        The case (a model protocol object, ``(N, C, H, W)``, a target); default:
        :func:`xattr.testing.cases.default_case`.
    constructions : tuple of str
    rtol, atol : float
    rng : numpy.random.Generator or int
    method_kwargs : dict, optional
        Options passed to ``attribution``.
    case : dict, optional
        Options of the default case (:func:`xattr.testing.cases.default_case`).

    Returns
    -------
    None
        Raises ``AssertionError`` saying what breaks.
    """
    model, x, target = _case("implementation_invariance", model, x, target, case)
    if not isinstance(model, Graph):
        raise ValueError(
            "check_implementation_invariance builds twins of a layered model (xattr.nn.Graph or Sequential)"
        )
    kw = dict(method_kwargs or {})
    a = _attribute(attribution, model, x, target, kw, "implementation invariance")
    for kind in constructions:
        if kind == "ig_paper_pair":
            f1, f2, xp, tp = ig_paper_pair()
            probe = np.random.default_rng(0).normal(0.0, 3.0, (4,) + xp.shape[1:])
            _same_function(f1, f2, probe, probe, "implementation invariance (ig_paper_pair)")
            a1 = _attribute(attribution, f1, xp, tp, kw, "implementation invariance")
            a2 = _attribute(attribution, f2, xp, tp, kw, "implementation invariance")
            assert_close(a2, a1, rtol, atol,
                         f"implementation invariance fails for {method_name(attribution)}: the IG paper's pair "
                         f"ReLU(ReLU(x1) - 1 - ReLU(x2)) = ReLU(ReLU(x1 - 1) - ReLU(x2)) gets different attributions")
            continue
        if kind == "rescale":
            twin = twins.rescaled_twin(model, rng=rng)
        elif kind == "relu_identity":
            z = twins.first_layer_output(model, x)
            if np.any(z == 0):
                raise ValueError(
                    "check_implementation_invariance: the first layer's output has exact zeros on this x, where the "
                    "relu_identity twin's derivative differs (ReLU'(0) = 0); use another x"
                )
            twin = twins.relu_identity_twin(model)
        else:
            raise ValueError(f"unknown twin {kind!r}; expected 'rescale' or 'relu_identity'")
        _same_function(model, twin, x, x, f"implementation invariance ({kind} twin)")
        b = _attribute(attribution, twin, x, target, kw, "implementation invariance")
        assert_close(b, a, rtol, atol,
                     f"implementation invariance fails for {method_name(attribution)}: the {kind} twin computes the "
                     f"same function but gets a different attribution")


def check_sensitivity(attribution, model=None, x=None, target=None, *, baseline=0.0, baseline_arg=None,
                      pixel=None, atol=0.0, method_kwargs=None, case=None):
    """Sensitivity(a) (Sundararajan et al. 2017, §2.1): if the input differs from the baseline
    in one feature and the outputs differ, that feature gets a non-zero attribution.

    The input checked is the baseline with one pixel (all channels) taken from ``x``:
    ``pixel = (h, w)``, by default the pixel where ``|x - baseline|`` is largest in image 0.
    The default case is the IG paper's saturating ``1 - ReLU(1 - x)`` at ``x = 2``.
    Passes when ``Σ_channels |A[pixel]| > atol``.

    Parameters
    ----------
    attribution : callable ``(model, x, target, **method_kwargs) -> (N, ...)``
        The method under test.
    model, x, target : optional
        The case (a model protocol object, ``(N, C, H, W)``, a target); default:
        :func:`xattr.testing.cases.default_case`.
    baseline : float, ndarray or callable
        The reference ``x̄``.
    baseline_arg : str, optional
        The keyword ``attribution`` takes the baseline as.
    pixel : (int, int), optional
    atol : float
    method_kwargs : dict, optional
        Options passed to ``attribution``.
    case : dict, optional
        Options of the default case (:func:`xattr.testing.cases.default_case`).

    Returns
    -------
    None
        Raises ``AssertionError`` saying what breaks.
    """
    model, x, target = _case("sensitivity", model, x, target, case)
    x = np.asarray(x)
    base = np.array(np.broadcast_to(np.asarray(baseline, dtype=x.dtype), x.shape))
    if pixel is None:
        d = np.abs(x[0] - base[0]).sum(axis=0)
        pixel = np.unravel_index(int(np.argmax(d)), d.shape)
    h, w = (int(v) for v in pixel)
    xs = base.copy()
    xs[:, :, h, w] = x[:, :, h, w]
    delta = _targets.selected(target, _scores(model, xs)) - _targets.selected(target, _scores(model, base))
    if np.any(delta == 0):
        raise ValueError(
            f"check_sensitivity: the premise fails, f(x) = f(baseline) when only pixel {(h, w)} differs; "
            "choose another pixel or input"
        )
    a = _attribute(attribution, model, xs, target, _with_baseline(method_kwargs, baseline_arg, baseline),
                   "sensitivity(a)")
    at = _pixel_map(a, x.shape[2:])[:, h, w]
    bad = np.flatnonzero(at <= atol)
    if bad.size:
        i = int(bad[0])
        raise AssertionError(
            f"sensitivity(a) fails for {method_name(attribution)}: image {i} differs from the baseline only at pixel "
            f"{(h, w)} and f(x) - f(baseline) = {delta[i]:.6g}, but that pixel's attribution is {at[i]:.3g} "
            f"(needs |A| > {atol:g})"
        )


def check_dummy(attribution, model=None, x=None, target=None, *, rtol=1e-12, atol=0.0, rng=0,
                method_kwargs=None, case=None):
    """Dummy (Sundararajan et al. 2017; Shapley 1953): inputs the model never reads get zero attribution.

    Builds :func:`~xattr.testing.twins.dummy_pixel_twin`: the model on a ``(2H, 2W)`` image
    that reads only the even pixels (``x`` there, random values elsewhere).  Passes when
    every odd pixel's ``Σ_channels |A|`` is at most ``atol + rtol * max|A|``.

    Parameters
    ----------
    attribution : callable ``(model, x, target, **method_kwargs) -> (N, ...)``
        The method under test.
    model, x, target : optional
        The case (a model protocol object, ``(N, C, H, W)``, a target); default:
        :func:`xattr.testing.cases.default_case`.
    rtol, atol : float
    rng : numpy.random.Generator or int
    method_kwargs : dict, optional
        Options passed to ``attribution``.
    case : dict, optional
        Options of the default case (:func:`xattr.testing.cases.default_case`).

    Returns
    -------
    None
        Raises ``AssertionError`` saying what breaks.
    """
    model, x, target = _case("dummy", model, x, target, case)
    g, z, dummy = twins.dummy_pixel_twin(model, x, rng=rng)
    _same_function(model, g, x, z, "dummy")
    a = _attribute(attribution, g, z, target, dict(method_kwargs or {}), "dummy")
    p = _pixel_map(a, z.shape[2:])
    tol = atol + rtol * float(p.max(initial=0.0))
    on_dummy = np.where(dummy, p, 0.0)
    worst = int(np.argmax(on_dummy))
    if on_dummy.flat[worst] > tol:
        n, hh, ww = np.unravel_index(worst, on_dummy.shape)
        raise AssertionError(
            f"dummy fails for {method_name(attribution)}: the model never reads pixel {(int(hh), int(ww))} (odd "
            f"positions of a model that subsamples by 2) but image {int(n)} gives it |attribution| "
            f"{on_dummy.flat[worst]:.3g} (tolerance {tol:.3g}); {int(np.count_nonzero(on_dummy > tol))} dummy "
            f"pixel(s) in all get relevance"
        )


def check_linearity(attribution, model=None, x=None, target=None, *, coefficients=(0.7, -1.3), rng=0,
                    rtol=1e-7, atol=1e-12, method_kwargs=None, case=None):
    """Linearity (Sundararajan et al. 2017, §3): ``A(a f1 + b f2) = a A(f1) + b A(f2)``.

    ``f1`` is ``model``, ``f2`` the same architecture with random weights
    (:func:`~xattr.testing.twins.random_weights_like`), and ``a f1 + b f2`` one
    ``Sequential`` (:func:`~xattr.testing.twins.parallel_sum`).  The default ``b < 0`` matters:
    rules that clip the signal at zero are linear only for positive combinations.

    Parameters
    ----------
    attribution : callable ``(model, x, target, **method_kwargs) -> (N, ...)``
        The method under test.
    model, x, target : optional
        The case (a model protocol object, ``(N, C, H, W)``, a target); default:
        :func:`xattr.testing.cases.default_case`.
    coefficients : (float, float)
        ``(a, b)``.
    rng : numpy.random.Generator or int
    rtol, atol : float
    method_kwargs : dict, optional
        Options passed to ``attribution``.
    case : dict, optional
        Options of the default case (:func:`xattr.testing.cases.default_case`).

    Returns
    -------
    None
        Raises ``AssertionError`` saying what breaks.
    """
    model, x, target = _case("linearity", model, x, target, case)
    if not isinstance(model, Graph):
        raise ValueError("check_linearity combines two layered models (xattr.nn.Graph or Sequential)")
    a_, b_ = (float(c) for c in coefficients)
    m2 = twins.random_weights_like(model, rng)
    h = twins.parallel_sum(model, m2, a_, b_)
    s = a_ * _scores(model, x) + b_ * _scores(m2, x)
    if np.max(np.abs(_scores(h, x) - s)) > 1e-9 * max(1.0, float(np.max(np.abs(s)))):
        raise ValueError("check_linearity: the combined model does not compute a f1 + b f2")
    kw = dict(method_kwargs or {})
    expected = a_ * _attribute(attribution, model, x, target, kw, "linearity") + \
        b_ * _attribute(attribution, m2, x, target, kw, "linearity")
    got = _attribute(attribution, h, x, target, kw, "linearity")
    assert_close(got, expected, rtol, atol,
                 f"linearity fails for {method_name(attribution)}: A({a_:g} f1 + {b_:g} f2) != "
                 f"{a_:g} A(f1) + {b_:g} A(f2)")


def check_symmetry(attribution, model=None, x=None, target=None, *, baseline=0.0, baseline_arg=None,
                   rtol=1e-7, atol=1e-12, method_kwargs=None, case=None):
    """Symmetry preservation (Sundararajan et al. 2017, §3): symmetric variables with equal values
    (and equal baseline values) get equal attributions.

    The model is made mirror-symmetric (:func:`~xattr.testing.twins.mirror_symmetric_twin`,
    ``g(flip x) = g(x)`` with flip the left-right reversal), the input and the baseline are
    symmetrised, and then pixel ``(h, w)`` and its mirror ``(h, W-1-w)`` are symmetric
    variables with equal values: the attribution must equal its own mirror image.

    Parameters
    ----------
    attribution : callable ``(model, x, target, **method_kwargs) -> (N, ...)``
        The method under test.
    model, x, target : optional
        The case (a model protocol object, ``(N, C, H, W)``, a target); default:
        :func:`xattr.testing.cases.default_case`.
    baseline : float, ndarray or callable
        The reference ``x̄``.
    baseline_arg : str, optional
        The keyword ``attribution`` takes the baseline as.
    rtol, atol : float
    method_kwargs : dict, optional
        Options passed to ``attribution``.
    case : dict, optional
        Options of the default case (:func:`xattr.testing.cases.default_case`).

    Returns
    -------
    None
        Raises ``AssertionError`` saying what breaks.
    """
    model, x, target = _case("symmetry", model, x, target, case)
    x = np.asarray(x)
    g = twins.mirror_symmetric_twin(model, x.shape)
    xs = (x + x[..., ::-1]) / 2
    base = np.asarray(baseline, dtype=x.dtype)
    if base.ndim >= 1 and base.shape[-1] > 1:
        base = (base + base[..., ::-1]) / 2
    probe = np.random.default_rng(0).normal(size=x.shape).astype(x.dtype)
    _same_function(g, g, probe, probe[..., ::-1], "symmetry")
    a = _attribute(attribution, g, xs, target, _with_baseline(method_kwargs, baseline_arg, base, xs), "symmetry")
    if a.ndim != 4 or a.shape[-1] != x.shape[-1]:
        raise AssertionError(f"symmetry: expected a map with the input's width {x.shape[-1]}, got shape {a.shape}")
    assert_close(a, a[..., ::-1], rtol, atol,
                 f"symmetry preservation fails for {method_name(attribution)}: on a mirror-symmetric model and input "
                 f"the attribution is not mirror-symmetric")


def check_input_shift_invariance(attribution, model=None, x=None, target=None, *, shift=1.0, baseline=0.0,
                                 baseline_arg=None, shift_baseline=True, rtol=1e-7, atol=1e-12,
                                 method_kwargs=None, case=None):
    """Input invariance (Kindermans et al. 2019): ``g(x + c) = f(x)`` with the shift absorbed by
    the first layer's bias must give ``A(g, x + c) = A(f, x)``.

    ``g`` is :func:`~xattr.testing.twins.shifted_input_twin`.  For methods with a baseline
    (``baseline_arg``) the baseline moves with the input when ``shift_baseline`` (the
    paper's fair comparison: IG and DeepLIFT pass only then); a method with an implicit
    zero baseline cannot move it.

    Parameters
    ----------
    attribution : callable ``(model, x, target, **method_kwargs) -> (N, ...)``
        The method under test.
    model, x, target : optional
        The case (a model protocol object, ``(N, C, H, W)``, a target); default:
        :func:`xattr.testing.cases.default_case`.
    shift : float or ndarray ``(C,)``
    baseline : float, ndarray or callable
        The reference ``x̄``.
    baseline_arg : str, optional
        The keyword ``attribution`` takes the baseline as.
    shift_baseline : bool
    rtol, atol : float
    method_kwargs : dict, optional
        Options passed to ``attribution``.
    case : dict, optional
        Options of the default case (:func:`xattr.testing.cases.default_case`).

    Returns
    -------
    None
        Raises ``AssertionError`` saying what breaks.
    """
    model, x, target = _case("input_shift_invariance", model, x, target, case)
    x = np.asarray(x)
    g = twins.shifted_input_twin(model, shift, in_channels=x.shape[1])
    c = np.asarray(shift, dtype=x.dtype)
    c = c.reshape((1, -1, 1, 1)) if c.ndim == 1 else c
    x2 = x + c  # a scalar shift keeps a scalar baseline scalar below
    _same_function(model, g, x, x2, "input shift invariance")
    base = np.asarray(baseline, dtype=x.dtype)
    base2 = base + c if shift_baseline else base
    # In floating point (x + c) W - c W is x W only to round-off: a tiny pre-activation can round to 0,
    # a kink (ReLU'(0) = 0).  Inputs near kinks can make even the gradient look shift-dependent.
    a = _attribute(attribution, model, x, target, _with_baseline(method_kwargs, baseline_arg, base, x),
                   "input shift invariance")
    b = _attribute(attribution, g, x2, target, _with_baseline(method_kwargs, baseline_arg, base2, x2),
                   "input shift invariance")
    assert_close(b, a, rtol, atol,
                 f"input shift invariance fails for {method_name(attribution)}: shifting the input by {shift} and "
                 f"compensating in the first layer's bias (same function) changes the attribution")


def _target_rows(target, idx):
    if callable(target) or np.ndim(target) == 0:
        return target
    return np.asarray(target)[idx]


def check_batch_invariance(attribution, model=None, x=None, target=None, *, rtol=1e-9, atol=1e-13,
                           method_kwargs=None, case=None):
    """Each image's attribution is the same alone, in the batch, and in a permuted batch.

    Catches state shared across the batch (normalising over the batch, one noise draw
    per batch applied to the wrong image, mixed-up targets).  The tolerance allows for
    GEMMs blocked differently at different batch sizes.

    Parameters
    ----------
    attribution : callable ``(model, x, target, **method_kwargs) -> (N, ...)``
        The method under test.
    model, x, target : optional
        The case (a model protocol object, ``(N, C, H, W)``, a target); default:
        :func:`xattr.testing.cases.default_case`.
    rtol, atol : float
    method_kwargs : dict, optional
        Options passed to ``attribution``.
    case : dict, optional
        Options of the default case (:func:`xattr.testing.cases.default_case`).

    Returns
    -------
    None
        Raises ``AssertionError`` saying what breaks.
    """
    model, x, target = _case("batch_invariance", model, x, target, case)
    x = np.asarray(x)
    kw = dict(method_kwargs or {})
    full = _attribute(attribution, model, x, target, kw, "batch invariance")
    name = method_name(attribution)
    for i in range(x.shape[0]):
        one = _attribute(attribution, model, x[i : i + 1], _target_rows(target, [i]), kw, "batch invariance")
        assert_close(one[0], full[i], rtol, atol, f"batch invariance fails for {name}: image {i} alone vs in the batch")
    perm = np.roll(np.arange(x.shape[0]), 1)
    shuffled = _attribute(attribution, model, x[perm], _target_rows(target, perm), kw, "batch invariance")
    assert_close(shuffled, full[perm], rtol, atol, f"batch invariance fails for {name}: permuted batch")


def check_dtype_preservation(attribution, model=None, x=None, target=None, *, rtol=1e-3, method_kwargs=None,
                             case=None):
    """float32 in gives float32 out, float64 gives float64, and the two agree to ``rtol`` in norm.

    The agreement is relative in L2 norm over each map, ``||a32 - a64|| <= rtol ||a64||``.

    Parameters
    ----------
    attribution : callable ``(model, x, target, **method_kwargs) -> (N, ...)``
        The method under test.
    model, x, target : optional
        The case (a model protocol object, ``(N, C, H, W)``, a target); default:
        :func:`xattr.testing.cases.default_case`.
    rtol : float
    method_kwargs : dict, optional
        Options passed to ``attribution``.
    case : dict, optional
        Options of the default case (:func:`xattr.testing.cases.default_case`).

    Returns
    -------
    None
        Raises ``AssertionError`` saying what breaks.
    """
    model, x, target = _case("dtype_preservation", model, x, target, case)
    x = np.asarray(x)
    kw = dict(method_kwargs or {})
    name = method_name(attribution)
    out = {}
    for dt in (np.float32, np.float64):
        a = attribution(model, x.astype(dt), target, **kw)
        if not isinstance(a, np.ndarray) or a.dtype != np.dtype(dt):
            got = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
            raise AssertionError(f"dtype preservation fails for {name}: {np.dtype(dt)} input gave {got} output")
        out[dt] = _validate(a, attribution, x, "dtype preservation")
    a32, a64 = out[np.float32].astype(np.float64), out[np.float64]
    if a32.shape != a64.shape:
        raise AssertionError(f"dtype preservation fails for {name}: shapes {a32.shape} (float32) vs {a64.shape}")
    d = np.linalg.norm((a32 - a64).reshape(len(a64), -1), axis=1)
    ref = np.linalg.norm(a64.reshape(len(a64), -1), axis=1)
    bad = np.flatnonzero(d > rtol * ref + 1e-30)
    if bad.size:
        i = int(bad[0])
        raise AssertionError(
            f"dtype preservation fails for {name}: image {i}'s float32 map differs from the float64 map by "
            f"{d[i] / max(ref[i], 1e-300):.3g} in relative L2 norm (allowed {rtol:g})"
        )


def check_determinism(attribution, model=None, x=None, target=None, *, rng_arg=None, seed=0, method_kwargs=None,
                      case=None):
    """Same seed, same bits; and no hidden randomness.

    For a stochastic method (``rng_arg`` names its seed keyword) two calls with the same
    seed must agree bit for bit and a different seed must change the result (a method that
    ignores its ``rng`` fails).  For a deterministic method two calls must agree bit for bit.
    Either way NumPy's legacy global random state must be left untouched.

    Parameters
    ----------
    attribution : callable ``(model, x, target, **method_kwargs) -> (N, ...)``
        The method under test.
    model, x, target : optional
        The case (a model protocol object, ``(N, C, H, W)``, a target); default:
        :func:`xattr.testing.cases.default_case`.
    rng_arg : str, optional
        The seed keyword of a stochastic method.
    seed : int
    method_kwargs : dict, optional
        Options passed to ``attribution``.
    case : dict, optional
        Options of the default case (:func:`xattr.testing.cases.default_case`).

    Returns
    -------
    None
        Raises ``AssertionError`` saying what breaks.
    """
    model, x, target = _case("determinism", model, x, target, case)
    kw = dict(method_kwargs or {})
    name = method_name(attribution)
    # NumPy's legacy global stream is what this check watches, so it is read here on purpose
    state = np.random.get_state()  # noqa: NPY002
    sentinel = np.random.random()  # noqa: NPY002  (what the global stream gives next if nobody touches it)
    np.random.set_state(state)  # noqa: NPY002
    if rng_arg is not None:
        kw[rng_arg] = seed
    a = _attribute(attribution, model, x, target, kw, "determinism")
    b = _attribute(attribution, model, x, target, kw, "determinism")
    after = np.random.random()  # noqa: NPY002
    np.random.set_state(state)  # noqa: NPY002
    if after != sentinel:
        raise AssertionError(f"determinism fails for {name}: it draws from NumPy's global random state")
    if not np.array_equal(a, b) or a.dtype != b.dtype:
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        raise AssertionError(
            f"determinism fails for {name}: two calls" + (f" with {rng_arg}={seed}" if rng_arg else "")
            + f" differ (max |diff| {diff.max():.3g} at {_where(int(np.argmax(diff)), diff.shape)})"
        )
    if rng_arg is not None:
        kw[rng_arg] = seed + 1
        c = _attribute(attribution, model, x, target, kw, "determinism")
        if np.array_equal(a, c):
            raise AssertionError(
                f"determinism fails for {name}: {rng_arg}={seed} and {rng_arg}={seed + 1} give identical results; "
                f"the seed is ignored"
            )


def _param_snapshot(model):
    return [copy.deepcopy(vars(layer)) for layer in getattr(model, "layers", [])]


def check_inputs_unmodified(attribution, model=None, x=None, target=None, *, baseline=None, baseline_arg=None,
                            method_kwargs=None, case=None):
    """The method writes into none of its inputs: ``x``, the baseline and the model's weights.

    Parameters
    ----------
    attribution : callable ``(model, x, target, **method_kwargs) -> (N, ...)``
        The method under test.
    model, x, target : optional
        The case (a model protocol object, ``(N, C, H, W)``, a target); default:
        :func:`xattr.testing.cases.default_case`.
    baseline : ndarray, optional
    baseline_arg : str, optional
    method_kwargs : dict, optional
        Options passed to ``attribution``.
    case : dict, optional
        Options of the default case (:func:`xattr.testing.cases.default_case`).

    Returns
    -------
    None
        Raises ``AssertionError`` saying what breaks.
    """
    model, x, target = _case("inputs_unmodified", model, x, target, case)
    x = np.array(x, copy=True)
    x0 = x.copy()
    kw = dict(method_kwargs or {})
    base0 = None
    if baseline_arg is not None:
        base = np.zeros_like(x) if baseline is None else np.array(baseline, dtype=x.dtype, copy=True)
        base0 = base.copy()
        kw[baseline_arg] = base
    before = _param_snapshot(model)
    _attribute(attribution, model, x, target, kw, "inputs unmodified")
    name = method_name(attribution)
    if not np.array_equal(x, x0):
        raise AssertionError(f"inputs unmodified fails for {name}: x was written to")
    if base0 is not None and not np.array_equal(kw[baseline_arg], base0):
        raise AssertionError(f"inputs unmodified fails for {name}: the baseline was written to")
    for layer, snap in zip(getattr(model, "layers", []), before):
        for key, val in snap.items():
            now = vars(layer).get(key)
            if isinstance(val, np.ndarray) and not (isinstance(now, np.ndarray) and np.array_equal(now, val)):
                raise AssertionError(
                    f"inputs unmodified fails for {name}: {layer.describe()}.{key.lstrip('_')} changed"
                )


#: check name -> function; the order is the order of the runner's cases.
CHECKS = {
    "completeness": check_completeness,
    "implementation_invariance": check_implementation_invariance,
    "sensitivity": check_sensitivity,
    "dummy": check_dummy,
    "linearity": check_linearity,
    "symmetry": check_symmetry,
    "input_shift_invariance": check_input_shift_invariance,
    "batch_invariance": check_batch_invariance,
    "dtype_preservation": check_dtype_preservation,
    "determinism": check_determinism,
    "inputs_unmodified": check_inputs_unmodified,
}
