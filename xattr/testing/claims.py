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
            "sensitivity": "the saturated ReLU passes max(R, 0) = 0 for the negative signal R = -1 (IG paper's example)",
            "linearity": _CLIP_LIN,
            "symmetry": "max-pool windows whose ReLU outputs are all 0 tie, the 'first' tie policy picks a switch that "
                        "is not mirrored, and DeconvNet passes signal there regardless of the ReLU's input "
                        "(gradient and guided backprop zero it)",
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

# ---------------------------------------------------------------------------------------------
# Methods other issues add.  Their calling conventions are the ones their issues specify; the
# lead checks each entry when the method lands (a wrong entry fails loudly, it is never skipped).
_B = {"baseline_arg": "baseline"}

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
        claims={"implementation_invariance": {}, "dummy": {}, "linearity": {}, "dtype_preservation": {},
                "determinism": {"rng_arg": "rng"}, "inputs_unmodified": {}},
        violations={
            "completeness": "completeness holds only in expectation over random path points (Erion et al. 2021)",
            "sensitivity": "a Monte-Carlo estimate: the default case's single sample can miss the saturated segment",
            "symmetry": "random path points and baselines are not mirror-symmetric",
            "input_shift_invariance": "the reference images are not shifted with the input",
            "batch_invariance": "random draws are made for the whole batch",
        },
        method_kwargs={"rng": 0},
    ),
    "smoothgrad": Claims(
        claims={"implementation_invariance": {}, "dummy": {}, "linearity": {}, "input_shift_invariance": {},
                "dtype_preservation": {}, "determinism": {"rng_arg": "rng"}, "inputs_unmodified": {}},
        violations={
            "completeness": f"an average of gradients is {_LOCAL}",
            "sensitivity": "an average of gradients, which saturate (Sundararajan et al. 2017, §2.1)",
            "symmetry": "Gaussian noise samples are not mirror-symmetric",
            "batch_invariance": "the noise is drawn for the whole batch at once",
        },
        method_kwargs={"rng": 0},
        adapt=lambda sg: _wrapping(sg, "gradient"),
    ),
    "deeplift": _core(
        {
            "completeness": {**_B, "rtol": 1e-9}, "sensitivity": dict(_B), "dummy": {}, "symmetry": dict(_B),
            "input_shift_invariance": {**_B, "shift_baseline": True},
        },
        {
            "implementation_invariance": f"DeepLIFT's Rescale multipliers depend on the network's structure ({_IG}, §3.2)",
            "linearity": "Rescale multipliers are computed per network: not linear in f (Ancona et al. 2018)",
        },
    ),
    "deepshap": Claims(
        claims={"completeness": {**_B, "rtol": 1e-9}, "dummy": {}, "batch_invariance": {}, "dtype_preservation": {},
                "determinism": {}, "inputs_unmodified": {}},
        violations={
            "implementation_invariance": "DeepLIFT's multipliers depend on the structure (Sundararajan et al. 2017)",
            "sensitivity": "averaged over references, which the check's single baseline does not set",
            "linearity": "Rescale multipliers are computed per network",
            "symmetry": "the references are not symmetrised by the check",
            "input_shift_invariance": "the references are not shifted with the input",
        },
    ),
    "lrp": _core(
        {"dummy": {}},
        {
            "completeness": "relevance is absorbed by biases and by epsilon (Montavon et al. 2019, §10.2.1)",
            "implementation_invariance": "LRP rules depend on the network's structure (Sundararajan et al. 2017, §3.2)",
            "sensitivity": "LRP-0 equals gradient x input on ReLU networks and saturates like it",
            "linearity": "relevance rules normalise by each network's own activations",
            "symmetry": "max-pool winner-take-all with the 'first' tie policy at ties of zeros",
            "input_shift_invariance": "LRP-0 equals gradient x input, which the shift changes (Kindermans et al. 2019)",
        },
    ),
    "occlusion": _core(
        {"implementation_invariance": {}, "sensitivity": {}, "linearity": {}, "input_shift_invariance": {}},
        {
            "completeness": "occlusion drops do not add up to f(x) - f(baseline) (Ancona et al. 2018)",
            "dummy": "a window covering a dummy pixel also covers read pixels: the drop is shared with it",
            "symmetry": "window positions at the stride are not mirror images unless the width allows",
        },
    ),
    "lime": Claims(
        claims={"dtype_preservation": {}, "determinism": {"rng_arg": "rng"}, "inputs_unmodified": {}},
        violations={
            "completeness": "a local linear surrogate fitted by weighted ridge regression (Ribeiro et al. 2016)",
            "implementation_invariance": "samples are random; the surrogate is fitted, not exact",
            "sensitivity": "segments, not pixels: the single changed pixel shares its segment",
            "dummy": "segment-level: dummy pixels share their segment's weight",
            "linearity": "ridge regression with a kernel on distances is not linear in f",
            "symmetry": "random masks are not mirror-symmetric",
            "input_shift_invariance": "the cosine-distance kernel changes with the shift",
            "batch_invariance": "random masks are drawn for the whole batch",
        },
        method_kwargs={"rng": 0},
    ),
    "kernel_shap": Claims(
        claims={"dtype_preservation": {}, "determinism": {"rng_arg": "rng"}, "inputs_unmodified": {}},
        violations={
            "completeness": "efficiency holds per segment; the check's pixel-level baseline differs",
            "implementation_invariance": "sampled coalitions",
            "sensitivity": "segments, not pixels",
            "dummy": "segment-level: dummy pixels share their segment's value",
            "linearity": "sampled coalitions are the same for f1, f2 only with the same seed and count",
            "symmetry": "sampled coalitions are not mirror-symmetric",
            "input_shift_invariance": "the hidden-segment baseline is not shifted",
            "batch_invariance": "coalitions are drawn for the whole batch",
        },
        method_kwargs={"rng": 0},
    ),
    "shapley": _core(
        {"implementation_invariance": {}, "linearity": {}},
        {
            "completeness": "efficiency holds over segments against the all-hidden image, not the check's baseline",
            "sensitivity": "segments, not pixels",
            "dummy": "segment-level: dummy pixels share their segment's value",
            "symmetry": "the default grid segmentation is not mirror-symmetric for every width",
            "input_shift_invariance": "the hidden-segment baseline is not shifted",
        },
    ),
})


def _wrapping(wrapper, inner):
    """``attribution(model, x, target, **kw) = wrapper(get_method(inner), model, x, target, **kw)``."""
    from ..methods.registry import get_method

    def attribution(model, x, target, **kw):
        return wrapper(get_method(inner), model, x, target, **kw)

    attribution.__name__ = f"{getattr(wrapper, '__name__', 'wrapper')}({inner})"
    return attribution
