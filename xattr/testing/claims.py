"""Which axioms each method claims, and which it is known to violate (with the reason).

The table is data: ``CLAIMS[method name] = Claims(...)``.  Every check of
:data:`xattr.testing.checks.CHECKS` must be named for every method, either under
``claims`` (the check must pass) or under ``violations`` (the check must *fail*, with an
``AssertionError``: the runner makes it a strict ``xfail`` case, so a violation that
stops happening is reported too).  Nothing is skipped silently.

A key may carry a variant after a colon (``"completeness:biases"``) to run a check twice
with different settings; its value holds the check's keyword arguments, and a
``"method_kwargs"`` entry there is merged into the method's own ``method_kwargs``.

Entries for methods that ``xattr`` does not have yet are kept here and become cases as
soon as the method is registered (:func:`xattr.get_method`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional

import numpy as np


@dataclass(frozen=True)
class Claims:
    """The axioms one attribution method claims.

    Attributes
    ----------
    claims : mapping ``check key -> dict of check kwargs``
        Checks that must pass.
    violations : mapping ``check key -> reason`` or ``-> (reason, dict of check kwargs)``
        Checks that must fail; the reason cites where the violation is explained.
    method_kwargs : dict
        Passed to every call of the method (e.g. ``{"quadrature": "exact"}``).
    adapt : callable, optional
        ``adapt(fn) -> attribution(model, x, target, **kw)`` for methods with another
        calling convention (SmoothGrad wraps a method: ``smoothgrad(method, model, x, ...)``).
    """

    claims: Mapping[str, Mapping] = field(default_factory=dict)
    violations: Mapping[str, object] = field(default_factory=dict)
    method_kwargs: Mapping = field(default_factory=dict)
    adapt: Optional[Callable] = None

    def entries(self):
        """``[(key, check name, check kwargs, reason or None)]`` in table order."""
        out = []
        for key, kw in self.claims.items():
            out.append((key, key.split(":")[0], dict(kw or {}), None))
        for key, val in self.violations.items():
            reason, kw = (val, {}) if isinstance(val, str) else (val[0], dict(val[1]))
            out.append((key, key.split(":")[0], kw, reason))
        return out


#: default-case architectures (:func:`xattr.testing.cases.default_case`) that have max-pool ties between ReLU zeros
_MAXPOOL_CASES = ("cnn", "densenet")

# Citations used in reasons.
_IG = "Sundararajan et al. 2017"
_SAT = f"the gradient saturates: 1 - ReLU(1 - x) is flat at x = 2 although f(2) - f(0) = 1 ({_IG}, §2.1)"
_LOCAL = f"a local slope, not a decomposition of f(x) - f(baseline) ({_IG}, §2.1)"
_CLIP_LIN = "its ReLU rule max(R, 0) is not linear in the signal: A(-f) != -A(f) for the negative coefficient"
_TWIN = ("the relu_identity twin (2 ReLU(z) - ReLU(z) - ReLU(-z) = z) computes the same function, but a ReLU rule that "
         f"is not the chain rule sees its parts ({_IG}, §3.2; Adebayo et al. 2018)")
_COARSE = ("the coarse map is upsampled bilinearly, so pixels the model never reads get their neighbours' "
           "relevance (Selvaraju et al. 2017's maps have the last conv layer's resolution)")
_NOT_SUM = "the map is (N, 1, H, W) class evidence, not a decomposition of f(x) - f(baseline)"
_SHIFT = ("gradient x input multiplies by x, which the shift changes while the gradient stays "
          "(Kindermans et al. 2019, Fig. 2)")

_TIE_DEAD = ("max-pool windows whose ReLU outputs are all 0 tie, the 'first' tie policy picks a switch that is "
             "not mirrored, and the rule passes signal there although the ReLU below is dead")
_PAINTED = ("each segment's value is painted on all its pixels, so the map's pixel sum counts a segment's value once "
            "per pixel; efficiency over the players, the segments, holds against the all-hidden image (the check's "
            "zero baseline): the claim completeness:players")


class _grid:
    """``x -> grid_segments(x.shape, n)``: the method's default segmentation for a case's input (picklable)."""

    def __init__(self, n):
        self.n = n

    def __call__(self, x):
        from ..methods.segments import grid_segments
        return grid_segments(np.shape(x), self.n)

    def __repr__(self):
        return f"grid({self.n})"


_IO = {"batch_invariance": {}, "dtype_preservation": {}, "determinism": {}, "inputs_unmodified": {}}


def _core(claims, violations, **extra):
    return Claims(claims={**claims, **_IO}, violations=violations, **extra)


CLAIMS = {
    "gradient": _core(
        {"implementation_invariance": {}, "dummy": {}, "linearity": {}, "symmetry": {}, "input_shift_invariance": {}},
        {"completeness": f"the gradient is {_LOCAL}", "sensitivity": _SAT},
    ),
    "gradient_x_input": _core(
        {
            # Euler: a bias-free ReLU/max-pool network is positively homogeneous, f(x) = x . grad f(x)
            # (Shrikumar et al. 2016; Ancona et al. 2018), so gradient x input is complete with baseline 0.
            "completeness": {"case": {"bias": False}, "rtol": 1e-9},
            "implementation_invariance": {}, "dummy": {}, "linearity": {}, "symmetry": {},
        },
        {
            "completeness:biases": "with biases f is not homogeneous: x . grad f(x) = f(x) - f(0) fails "
                                   "(Ancona et al. 2018, Prop. 1 needs zero biases)",
            "sensitivity": _SAT,
            "input_shift_invariance": _SHIFT,
        },
    ),
    "deconvnet": _core(
        {"dummy": {}, "input_shift_invariance": {}},
        {
            "completeness": f"DeconvNet is {_LOCAL}",
            "implementation_invariance": _TWIN,
            "sensitivity": ("the saturated ReLU passes max(R, 0) = 0 for the negative signal R = -1 "
                            "(IG paper's example)"),
            "linearity": _CLIP_LIN,
            "symmetry": ("max-pool windows whose ReLU outputs are all 0 tie, the 'first' tie policy picks a switch "
                         "that is not mirrored, and DeconvNet passes signal there regardless of the ReLU's input "
                         "(gradient and guided backprop zero it)", {"shows_on": _MAXPOOL_CASES}),
        },
    ),
    "guided_backprop": _core(
        {"dummy": {}, "symmetry": {}, "input_shift_invariance": {}},
        {
            "completeness": f"guided backprop is {_LOCAL}",
            "implementation_invariance": _TWIN,
            "sensitivity": _SAT,
            "linearity": _CLIP_LIN,
        },
    ),
    "cam": _core(
        {"implementation_invariance": {}, "sensitivity": {}, "linearity": {}, "symmetry": {},
         "input_shift_invariance": {}},
        {"completeness": _NOT_SUM, "dummy": _COARSE},
    ),
    "grad_cam": _core(
        {"implementation_invariance": {}, "sensitivity": {}, "symmetry": {}, "input_shift_invariance": {},
         "linearity:no_relu": {"method_kwargs": {"relu": False}}},
        {
            "completeness": _NOT_SUM,
            "dummy": _COARSE,
            "linearity": "the final ReLU of Selvaraju et al. 2017 clips the map; without it (relu=False) "
                         "Grad-CAM is linear",
        },
    ),
    "guided_grad_cam": _core(
        {"dummy": {}, "symmetry": {}, "input_shift_invariance": {}},
        {
            "completeness": _NOT_SUM,
            "implementation_invariance": "guided backprop's factor: " + _TWIN,
            "sensitivity": _SAT,
            "linearity": "a product of two maps, guided backprop's and Grad-CAM's, each already not linear",
        },
    ),
}

def _smooth(linear):
    """SmoothGrad (Smilkov et al. 2017) and its squared / variance variants of the gradient."""
    violations = {
        "completeness": f"an average of gradients is {_LOCAL}",
        "sensitivity": "an average of gradients, which saturate (Sundararajan et al. 2017, §2.1): noise of 0.15 x "
                       "range rarely reaches the unsaturated segment",
        "symmetry": "Gaussian noise samples are not mirror-symmetric",
        "batch_invariance": "the noise is drawn for the whole batch in one stream",
    }
    claims = {"implementation_invariance": {}, "dummy": {}, "input_shift_invariance": {}, "dtype_preservation": {},
              "determinism": {"rng_arg": "rng"}, "inputs_unmodified": {}}
    if linear:
        claims["linearity"] = {}
    else:
        violations["linearity"] = "squares (or variances) of gradients are not linear in f"
    return Claims(claims=claims, violations=violations, method_kwargs={"rng": 0, "n": 8})


# ---------------------------------------------------------------------------------------------
# Path, smoothing, relevance and perturbation methods.
_B = {"baseline_arg": "baseline"}
_R = {"baseline_arg": "reference"}
#: a reference that varies within every pool window (one sample, broadcast over the batch): where DeepLIFT's
#: default max-pool rule (the reference code's gradient) loses Δt
def _VARYING(x):
    import numpy as np

    _, c, h, w = np.shape(x)
    ci, ii, jj = np.meshgrid(np.arange(c), np.arange(h), np.arange(w), indexing="ij")
    return (((7 * ii + 3 * jj + 5 * ci) % 11) / 11.0)[None].astype(np.asarray(x).dtype)
_MAXPOOL_DEFAULT = ("the default maxpool='gradient' (the DeepLIFT reference code's rule, what Captum computes after a "
                    "ReLU) sends each window's multiplier to the input's argmax only: summation-to-delta fails where "
                    "the reference varies within a window (Shrikumar et al. 2017 give no max-pool rule; "
                    "maxpool='captum' or 'rescale' are exact: the claim beside this one)")

CLAIMS.update({
    "integrated_gradients": _core(
        {
            "completeness": {**_B, "rtol": 1e-9},
            "implementation_invariance": {}, "sensitivity": dict(_B), "dummy": {}, "linearity": {},
            "symmetry": dict(_B), "input_shift_invariance": {**_B, "shift_baseline": True},
        },
        {"input_shift_invariance:fixed_baseline": (
            "with the baseline left at 0 while the input shifts, x - baseline changes (Kindermans et al. 2019, §3.2)",
            {**_B, "shift_baseline": False})},
        method_kwargs={"quadrature": "exact"},
    ),
    "expected_gradients": Claims(
        # sensitivity and symmetry hold in expectation; the seeded draws (one alpha and one reference per
        # sample, shared by all pixels) keep both in the checks' cases with mirror-symmetric constant references
        claims={"implementation_invariance": {}, "sensitivity": {}, "dummy": {}, "linearity": {}, "symmetry": {},
                "dtype_preservation": {}, "determinism": {"rng_arg": "rng"}, "inputs_unmodified": {}},
        violations={
            "completeness": "completeness holds only in expectation over random path points (Erion et al. 2021)",
            "input_shift_invariance": "the reference images are not shifted with the input",
            "batch_invariance": "random draws are made for the whole batch",
        },
        method_kwargs={"rng": 0, "n_samples": 8},
        adapt=lambda eg: _with_references(eg, "references"),
    ),
    # registry entries of the path issue: "smoothgrad" etc. are the gradient wrapped, (model, x, target, ...)
    "smoothgrad": _smooth(linear=True),
    "smoothgrad_squared": _smooth(linear=False),
    "vargrad": _smooth(linear=False),
    "deeplift": _core(
        {
            "completeness": {**_R, "rtol": 1e-9},
            "completeness:exact_maxpool": {**_R, "rtol": 1e-9, "baseline": _VARYING,
                                           "method_kwargs": {"maxpool": "captum"}},
            "sensitivity": dict(_R), "dummy": {}, "linearity": {},
            "input_shift_invariance": {**_R, "shift_baseline": True},
        },
        {
            "implementation_invariance": ("the IG paper's pair: Rescale multipliers depend on where a bias sits "
                                          f"({_IG}, §3.2: (1.5, -0.5) on f1, (2, -1) on f2)"),
            "symmetry": (_TIE_DEAD, {"shows_on": ("cnn",)}),
            "completeness:varying_reference": (_MAXPOOL_DEFAULT, {**_R, "rtol": 1e-9, "baseline": _VARYING,
                                                                  "shows_on": ("cnn", "densenet")}),
        },
    ),
    "deepshap": Claims(
        # references=None: DeepLIFT against the zero image (the check's implicit baseline 0)
        claims={"completeness": {"rtol": 1e-9},
                "completeness:exact_maxpool": {"rtol": 1e-9, "baseline": _VARYING, "baseline_arg": "references",
                                               "method_kwargs": {"maxpool": "captum"}},
                "sensitivity": {}, "dummy": {}, "linearity": {},
                "batch_invariance": {}, "dtype_preservation": {}, "determinism": {}, "inputs_unmodified": {}},
        violations={
            "implementation_invariance": "DeepLIFT's multipliers depend on the structure (the IG paper's pair)",
            "symmetry": (_TIE_DEAD, {"shows_on": ("cnn",)}),
            "completeness:varying_reference": (_MAXPOOL_DEFAULT, {"rtol": 1e-9, "baseline": _VARYING,
                                                                  "baseline_arg": "references",
                                                                  "shows_on": ("cnn", "densenet")}),
            "input_shift_invariance": "the references are not shifted with the input",
        },
    ),
    "lrp": _core(
        {"dummy": {}, "symmetry": {}},
        {
            "completeness": "relevance is absorbed by biases and by epsilon (Montavon et al. 2019, §10.2.1)",
            "implementation_invariance": "LRP rules depend on the network's structure (Sundararajan et al. 2017, §3.2)",
            "sensitivity": "LRP-0 equals gradient x input on ReLU networks and saturates like it",
            "linearity": "the epsilon rule normalises by each network's own pre-activations",
            "input_shift_invariance": "LRP-0 equals gradient x input, which the shift changes (Kindermans et al. 2019)",
        },
    ),
    "occlusion": _core(
        {"implementation_invariance": {}, "sensitivity": {}, "linearity": {}, "symmetry": {},
         # the incremental path (Nakandala et al. 2019) must agree with full recomputation on twins too
         "implementation_invariance:incremental": {"method_kwargs": {"incremental": True}},
         "input_shift_invariance": {**_B, "shift_baseline": True}},
        {
            "completeness": "occlusion drops do not add up to f(x) - f(baseline) (Ancona et al. 2018)",
            "dummy": "a window covering a dummy pixel also covers read pixels: the drop is shared with it",
            "input_shift_invariance:fixed_baseline": (
                "the occluding value 0 does not move with the input (Kindermans et al. 2019)",
                {**_B, "shift_baseline": False}),
        },
        # the default 8x8 window would cover the checks' whole images; full recomputation is the definition
        method_kwargs={"window": 2, "stride": 1, "incremental": False},
    ),
    "lime": Claims(
        claims={"implementation_invariance": {}, "sensitivity": {}, "linearity": {},
                "dtype_preservation": {}, "determinism": {"rng_arg": "rng"}, "inputs_unmodified": {}},
        violations={
            "completeness": "a local linear surrogate fitted by weighted ridge regression (Ribeiro et al. 2016)",
            "dummy": "segment-level: dummy pixels share their segment's weight",
            "symmetry": "random masks are not mirror-symmetric",
            "input_shift_invariance": "the hiding value 0 does not move with the input",
            "batch_invariance": "random masks are drawn for the whole batch",
        },
        method_kwargs={"rng": 0, "n_samples": 200},  # fewer than the default 1000: speed
    ),
    "kernel_shap": Claims(
        claims={"implementation_invariance": {}, "sensitivity": {}, "linearity": {},
                # the constraint of the weighted fit is efficiency itself, sampled coalitions or not
                "completeness:players": {"players": _grid(4), "players_arg": "segments", "rtol": 1e-9},
                "dtype_preservation": {}, "determinism": {"rng_arg": "rng"}, "inputs_unmodified": {}},
        violations={
            "completeness": _PAINTED,
            "dummy": "segment-level: dummy pixels share their segment's value",
            "symmetry": "sampled coalitions are not mirror-symmetric",
            "input_shift_invariance": "the hiding value 0 does not move with the input",
            "batch_invariance": "coalitions are drawn for the whole batch",
        },
        method_kwargs={"rng": 0, "n_samples": 64},  # sampled coalitions (not all 2^M)
    ),
    "shapley": _core(
        {"implementation_invariance": {}, "sensitivity": {}, "linearity": {},
         "completeness:players": {"players": _grid(3), "players_arg": "segments", "rtol": 1e-9}},
        {
            "completeness": _PAINTED,
            "dummy": "segment-level: dummy pixels share their segment's value",
            "symmetry": ("the default grid segmentation is not mirror-symmetric on the 8-pixel-wide default case "
                         "(its 3x3 grid cuts 8 into 3+3+2); on the 9-pixel ResNet case it is, and the check passes",
                         {"shows_on": ("cnn", "densenet")}),
            "input_shift_invariance": "the hidden-segment baseline is not shifted",
        },
    ),
    "prediction_difference": Claims(
        claims={"implementation_invariance": {}, "sensitivity": {}, "input_shift_invariance": {},
                "dtype_preservation": {}, "determinism": {"rng_arg": "rng"}, "inputs_unmodified": {}},
        violations={
            "completeness": "weights of evidence in bits per window, averaged over windows: no decomposition of "
                            "f(x) - f(baseline) (Zintgraf et al. 2017)",
            "linearity": "log-odds of softmax probabilities are not linear in the model's scores",
            "dummy": "a window covering a dummy pixel also covers read pixels: its evidence is shared with it",
            "symmetry": "the windows' Monte Carlo draws are not mirrored",
            "batch_invariance": "the conditional Gaussian is fitted on the batch's patches and the draws are for "
                                "the whole batch",
        },
        method_kwargs={"rng": 0, "n_samples": 4},  # fewer than the paper's 10: speed
    ),
})


def _wrapping(wrapper, inner):  # for a method registered as smoothgrad(method, model, x, target, ...)
    """``attribution(model, x, target, **kw) = wrapper(get_method(inner), model, x, target, **kw)``."""
    from ..methods.registry import get_method

    def attribution(model, x, target, **kw):
        return wrapper(get_method(inner), model, x, target, **kw)

    attribution.__name__ = f"{getattr(wrapper, '__name__', 'wrapper')}({inner})"
    return attribution


def _with_references(fn, name):
    """``fn(model, x, target, **{name: two reference images}, **kw)``: the zero image and a constant 0.5 image."""
    import numpy as np

    def attribution(model, x, target, **kw):
        x = np.asarray(x)
        refs = np.stack([np.zeros(x.shape[1:]), np.full(x.shape[1:], 0.5)]).astype(x.dtype)
        return fn(model, x, target, **{name: refs, **kw})

    attribution.__name__ = getattr(fn, "__name__", "attribution")
    return attribution


def all_claims():
    """``{method name: Claims}``: the table above, overridden by the claims each registered
    :class:`~xattr.methods.registry.MethodSpec` declares beside its function."""
    from ..methods.registry import specs

    out = dict(CLAIMS)
    # a spec may hold a function returning its Claims, so that importing a method does not import xattr.testing
    out.update({s.name: s.claims() if callable(s.claims) else s.claims for s in specs() if s.claims is not None})
    return out


def claims_for(name):
    """The :class:`Claims` of method ``name`` (its spec's, else its entry in :data:`CLAIMS`), or None."""
    return all_claims().get(name)


def claims_table(claims=None):
    """Markdown table of the claims: rows methods, columns checks; ``✓`` claimed, ``✗`` declared violated.

    A cell with variants lists each (``✓ no_relu / ✗``).  The docs render it at build time
    (``python -m xattr.docs claims-table``).
    """
    from .checks import CHECKS

    table = all_claims() if claims is None else claims
    cols = list(CHECKS)
    out = ["| method | " + " | ".join(c.replace("_", " ") for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, cl in table.items():
        cells = {c: [] for c in cols}
        for key, base, _, reason in cl.entries():
            mark = "✓" if reason is None else "✗"
            variant = key.split(":", 1)[1].replace("_", " ") if ":" in key else ""
            cells[base].append(f"{mark} {variant}".strip())
        joined = (" / ".join(sorted(v, key=lambda s: (":" in s, s))) for v in cells.values())
        out.append(f"| `{name}` | " + " | ".join(joined) + " |")
    return "\n".join(out)


from .claims_cam_family import CAM_FAMILY_CLAIMS  # noqa: E402  (the CAM family: its own file)

CLAIMS.update(CAM_FAMILY_CLAIMS)
