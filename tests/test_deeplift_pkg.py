"""The kundajelab ``deeplift`` package 0.6.13.0 (Shrikumar et al.'s own code) against xattr on the same weights.

The package runs in a subprocess (tests/deeplift_runs.py, TensorFlow 2.21's TF1 API: graph mode, float32), built from
its own layer classes with the weights of the xattr networks below (rounded to float32, so both sides compute the
same function; xattr in float64 is then the exact value and the package's error is its float32 round-off).

Oracles: the package itself for DeepLIFT Rescale / RevealCancel (dense and conv layers, max-pool in its only mode,
``MaxPoolDeepLiftMode.gradient``), its gradient, guided backprop and DeconvNet modes, and its integrated gradients
(midpoint rule); the model's own Δt for summation-to-delta; closed forms for the near-zero fallbacks.
docs/peers.md ("deeplift (kundajelab)") has the table; ``python tests/test_deeplift_pkg.py`` prints it.
"""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import xattr
from xattr.nn import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential, Sigmoid

from extras import skip_or_fail  # tests/extras.py: optional packages of the test suite

pytestmark = pytest.mark.oracle
HERE = Path(__file__).resolve().parent
NEAR_ZERO = 1e-7  # the package's NEAR_ZERO_THRESHOLD (deeplift/util.py); xattr's default is 1e-10
T = 1  # the explained class (the package explains one task index per call)
for _mod, _why in (("tensorflow", "TensorFlow"), ("deeplift", "the deeplift package")):
    if importlib.util.find_spec(_mod) is None:
        skip_or_fail(f"the kundajelab deeplift comparisons need {_why} (pip install 'xattr-ref[deeplift-pkg]')")

DEEPLIFT_MODES = ["Rescale", "RevealCancel"]
GRADIENT_MODES = ["Gradient", "GuidedBackprop", "DeconvNet"]
SPECS = {  # layer lists shared with the subprocess; conv padding in TF's words (VALID = 0, SAME = 1 for 3x3)
    "cnn": dict(
        layers=[dict(kind="conv", cin=3, cout=4, padding="VALID"), dict(kind="relu"), dict(kind="maxpool"),
                dict(kind="conv", cin=4, cout=6, padding="SAME"), dict(kind="relu"), dict(kind="maxpool"),
                dict(kind="flatten"), dict(kind="dense", cin=24, cout=8), dict(kind="relu"),
                dict(kind="dense", cin=8, cout=3)],
        shape=(2, 3, 10, 10), modes=DEEPLIFT_MODES + GRADIENT_MODES),
    "mlp": dict(
        layers=[dict(kind="dense", cin=12, cout=10), dict(kind="relu"), dict(kind="dense", cin=10, cout=6),
                dict(kind="relu"), dict(kind="dense", cin=6, cout=4)],
        shape=(3, 12), modes=DEEPLIFT_MODES + GRADIENT_MODES),
    # conv -> max-pool -> ReLU: the package's max-pool has no (Δx⁺, Δx⁻) terms for a RevealCancel unit above it
    "pool_relu": dict(
        layers=[dict(kind="conv", cin=3, cout=4, padding="VALID"), dict(kind="maxpool"), dict(kind="relu"),
                dict(kind="flatten"), dict(kind="dense", cin=16, cout=3)],
        shape=(2, 3, 6, 6), modes=DEEPLIFT_MODES),
}


def build_xattr(layers, rng):
    """The xattr network and its parameters (float32 values stored in float64)."""
    out = []
    for spec in layers:
        kind = spec["kind"]
        if kind == "conv":
            layer = Conv2D(spec["cin"], spec["cout"], 3, padding=0 if spec["padding"] == "VALID" else 1, rng=rng)
        elif kind == "dense":
            layer = Dense(spec["cin"], spec["cout"], rng=rng)
        else:
            layer = {"relu": ReLU, "sigmoid": Sigmoid, "maxpool": lambda: MaxPool2D(2), "flatten": Flatten}[kind]()
        if kind in ("conv", "dense"):
            layer.weight = layer.weight.astype(np.float32).astype(np.float64)
            layer.bias = rng.normal(scale=0.2, size=layer.bias.shape).astype(np.float32).astype(np.float64)
        out.append(layer)
    return Sequential(*out)


def f32(a):
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def make_cases():
    """``{net: (model, x, {ref name: ref})}`` and the subprocess's input file contents."""
    cases, arrays, spec = {}, {}, {}
    for k, (net, s) in enumerate(SPECS.items()):
        rng = np.random.default_rng(20 + k)
        model = build_xattr(s["layers"], rng)
        x = f32(rng.normal(size=s["shape"]))
        refs = {"zero": np.zeros_like(x), "random": f32(0.5 * rng.normal(size=s["shape"]))}
        cases[net] = (model, x, refs)
        kinds = {m: ["contribs"] if m in DEEPLIFT_MODES else ["mults"] for m in s["modes"]}
        spec[net] = dict(layers=s["layers"], modes=s["modes"], kinds=kinds, refs=list(refs), target=T, ig_steps=10)
    # the near-zero fallbacks: Δx of a unit exactly 0 (sigmoid), or below the threshold across the kink (ReLU)
    sig = Sequential(Dense(2, 2), Sigmoid(), Dense(2, 1))
    sig[0].weight, sig[0].bias = np.array([[1.0, -1.0], [0.5, 0.5]]), np.array([0.3, -0.2])
    sig[2].weight, sig[2].bias = np.array([[1.0, 1.0]]), np.zeros(1)
    kink = Sequential(Dense(2, 2), ReLU(), Dense(2, 1))
    kink[0].weight, kink[0].bias = np.eye(2), np.zeros(2)
    kink[2].weight, kink[2].bias = np.array([[1.0, 1.0]]), np.zeros(1)
    for net, model, x, ref in (("sigmoid", sig, [[1.0, 1.0]], [[0.0, 0.0]]),
                               ("kink", kink, [[4e-8, 1.0]], [[-5e-8, 0.0]])):
        x, ref = f32(x), f32(ref)
        cases[net] = (model, x, {"fixed": ref})
        layers = [dict(kind="dense"), dict(kind=net if net == "sigmoid" else "relu"), dict(kind="dense")]
        spec[net] = dict(layers=layers, modes=["Rescale"], kinds={"Rescale": ["contribs", "mults"]}, refs=["fixed"],
                         target=0, ig_steps=10)
    for net, (model, x, refs) in cases.items():
        arrays[f"{net}/x"] = x
        for name, r in refs.items():
            arrays[f"{net}/ref/{name}"] = r
        for i, layer in enumerate(model):
            if isinstance(layer, (Conv2D, Dense)):
                arrays[f"{net}/{i}/W"], arrays[f"{net}/{i}/b"] = layer.weight, layer.bias
    arrays["spec"] = np.array(json.dumps(spec))
    return cases, arrays


def run_package(workdir):
    cases, arrays = make_cases()
    np.savez(workdir / "cases.npz", **arrays)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "TF_ENABLE_ONEDNN_OPTS": "0"}
    proc = subprocess.run([sys.executable, str(HERE / "deeplift_runs.py"), str(workdir / "cases.npz"),
                           str(workdir / "out.npz")], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = dict(np.load(workdir / "out.npz"))
    return cases, out, json.loads(str(out.pop("errors")))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_package(tmp_path_factory.mktemp("deeplift_pkg"))


def rel(ours, theirs):
    theirs = np.asarray(theirs, dtype=np.float64)
    scale = np.abs(theirs).max()
    assert scale > 0, "a comparison of two all-zero maps cannot fail"
    return float(np.abs(np.asarray(ours, dtype=np.float64) - theirs).max() / scale)


def gap(model, x, ref, contribs, t=T):
    """|Σ C − Δt| / |Δt|, the worst image."""
    dt = model(x)[:, t] - model(ref)[:, t]
    return float(np.max(np.abs(contribs.reshape(len(x), -1).sum(1) - dt) / np.abs(dt)))


# the package computes in float32 (TF1 placeholders, its Dense casts the weights to float32): measured against xattr
# in float64 (the exact value) its error is at most 4.9e-7 of the map's maximum, against xattr in float32 (two
# float32 round-offs, RevealCancel's differences of nearby values) 2.3e-6 (the table in docs/peers.md)
TOL32 = 5e-6


@pytest.mark.parametrize("net", ["cnn", "mlp", "pool_relu"])
def test_the_same_function(runs, net):
    cases, out, _ = runs
    model, x, _ = cases[net]
    assert rel(model(x), out[f"{net}/scores"]) < TOL32


@pytest.mark.parametrize("ref", ["zero", "random"])
@pytest.mark.parametrize("rule", DEEPLIFT_MODES)
@pytest.mark.parametrize("net", ["cnn", "mlp"])
def test_deeplift_rules_agree_with_the_package(runs, net, rule, ref):
    """Rescale and RevealCancel through conv, dense, ReLU and max-pool (its only mode, ``gradient``: xattr's default
    ``maxpool="gradient"``), in float64 and in float32, with the package's threshold 1e-7."""
    cases, out, _ = runs
    model, x, refs = cases[net]
    theirs = out[f"{net}/{rule}/{ref}/contribs"]
    ours = xattr.deeplift(model, x, T, refs[ref], rule=rule.lower(), threshold=NEAR_ZERO)
    assert rel(ours, theirs) < TOL32
    ours32 = xattr.deeplift(model, x.astype(np.float32), T, refs[ref].astype(np.float32), rule=rule.lower(),
                            threshold=NEAR_ZERO)
    assert ours32.dtype == np.float32 and rel(ours32, theirs) < TOL32


@pytest.mark.parametrize("ref", ["zero", "random"])
@pytest.mark.parametrize("net", ["cnn", "mlp"])
def test_gradient_modes_agree_with_the_package(runs, net, ref):
    """``NonlinearMxtsMode.Gradient / GuidedBackprop / DeconvNet``: the input multipliers are xattr's gradient,
    guided backprop and DeconvNet maps (the reference plays no part; its contributions are multiplier × (x − x₀))."""
    cases, out, _ = runs
    model, x, refs = cases[net]
    for mode, fn in (("Gradient", xattr.gradient), ("GuidedBackprop", xattr.guided_backprop),
                     ("DeconvNet", xattr.deconvnet)):
        ours = fn(model, x, T)
        assert rel(ours, out[f"{net}/{mode}/{ref}/mults"]) < TOL32, mode


@pytest.mark.parametrize("ref", ["zero", "random"])
@pytest.mark.parametrize("net", ["cnn", "mlp"])
def test_integrated_gradients_is_the_midpoint_rule(runs, net, ref):
    """``get_integrated_gradients_function(..., num_intervals=n)``: nodes ``(k + ½)/n``, equal weights: xattr's
    ``quadrature="riemann_middle"`` (another n, or Gauss–Legendre, is another number)."""
    cases, out, _ = runs
    model, x, refs = cases[net]
    theirs = out[f"{net}/IG/{ref}"]
    assert rel(xattr.integrated_gradients(model, x, T, refs[ref], steps=10, quadrature="riemann_middle"),
               theirs) < TOL32
    assert rel(xattr.integrated_gradients(model, x, T, refs[ref], steps=10), theirs) > 1e-4


@pytest.mark.parametrize("rule", DEEPLIFT_MODES)
def test_maxpool_gradient_mode_misses_delta_t_where_xattr_modes_conserve(runs, rule):
    """Its max-pool mode ``gradient`` routes to the input's argmax: with a random reference the contributions miss
    Δt, exactly as xattr's ``maxpool="gradient"`` (the same numbers); xattr's ``"rescale"`` and ``"captum"`` sum to
    Δt to round-off and are other maps.  With the zero reference the first pool's windows are constant on the
    reference (ReLU(bias)), but the SAME-padded second conv's border is not, so even there the package misses."""
    cases, out, _ = runs
    model, x, refs = cases["cnn"]
    for ref, lo in (("random", 1e-2), ("zero", 1e-4)):
        theirs = out[f"cnn/{rule}/{ref}/contribs"]
        assert gap(model, x, refs[ref], theirs) > lo, ref
        ours = xattr.deeplift(model, x, T, refs[ref], rule=rule.lower(), threshold=NEAR_ZERO)
        assert abs(gap(model, x, refs[ref], ours) - gap(model, x, refs[ref], theirs)) < 1e-5
        for mode in ("rescale", "captum"):
            exact = xattr.deeplift(model, x, T, refs[ref], rule=rule.lower(), maxpool=mode)
            assert gap(model, x, refs[ref], exact) < 1e-10, (ref, mode)
            assert rel(exact, theirs) > 1e-3, (ref, mode)


def test_pool_then_relu_rescale_agrees_and_revealcancel_does_not(runs):
    """conv → max-pool → ReLU: Rescale agrees (the ReLU reads its own Δx).  The package's RevealCancel takes the
    ReLU's (Δx⁺, Δx⁻) from the layer below, and its max-pool returns placeholder zeros for them ("current
    implementation assumes maxpool layer is followed by a linear transformation", pooling.py): every term is then
    the 1e-7 pseudocount and the multipliers are gradients at the reference, so the map misses Δt.  xattr splits a
    max-pool's Δ by sign (one term per unit) and sums to Δt."""
    cases, out, _ = runs
    model, x, refs = cases["pool_relu"]
    for ref in ("zero", "random"):
        ours = xattr.deeplift(model, x, T, refs[ref], rule="rescale", threshold=NEAR_ZERO)
        assert rel(ours, out[f"pool_relu/Rescale/{ref}/contribs"]) < TOL32
        theirs = out[f"pool_relu/RevealCancel/{ref}/contribs"]
        ours = xattr.deeplift(model, x, T, refs[ref], rule="revealcancel", maxpool="rescale")
        assert gap(model, x, refs[ref], ours) < 1e-10
        assert gap(model, x, refs[ref], theirs) > 1e-2, ref
        assert rel(ours, theirs) > 1e-2, ref


def test_near_zero_fallback_sigmoid_takes_the_derivative_at_the_wrong_point(runs):
    """Where ``|Δx| < 1e-7`` the Rescale multiplier falls back to the derivative.  The package evaluates
    ``_get_gradient_at_activation`` at the layer's *output* reference ``y₀ = σ(x₀)``, and its Sigmoid's derivative
    applies σ again: ``σ'(σ(x₀))`` instead of ``σ'(x₀)``.  Here unit 0 has ``Δx = 1·1 − 1·1 = 0`` exactly while its
    two inputs' terms are ±1, so each input's contribution carries that multiplier: xattr's is the limit
    ``σ'(x₀) = σ'(x)``, the package's is 6% low (both sum to Δt: the two terms cancel)."""
    cases, out, _ = runs
    model, x, refs = cases["sigmoid"]
    theirs = out["sigmoid/Rescale/fixed/contribs"]

    def sig(z):
        return 1 / (1 + np.exp(-z))

    def dsig(z):
        return sig(z) * (1 - sig(z))

    m1 = sig(0.8) - sig(-0.2)  # unit 1: pre-activations 0.8 and −0.2, Δx = 1, its secant slope
    for m0, c in ((dsig(0.3), xattr.deeplift(model, x, 0, refs["fixed"], threshold=NEAR_ZERO)),
                  (dsig(sig(0.3)), theirs)):
        np.testing.assert_allclose(c[0], [m0 + 0.5 * m1, -m0 + 0.5 * m1], rtol=1e-6)
    assert abs(dsig(sig(0.3)) / dsig(0.3) - 1) > 0.05


def test_near_zero_fallback_relu_takes_the_gradient_at_the_reference(runs):
    """A ReLU input crossing the kink by less than the threshold (x₀ = −5e-8, x = 4e-8, Δx = 9e-8 < 1e-7): the package
    multiplies by the gradient at the reference (0), xattr by the gradient at the input (1, Captum's choice); with
    xattr's default threshold 1e-10 the multiplier is the exact secant Δy/Δx = 4/9."""
    cases, out, _ = runs
    model, x, refs = cases["kink"]
    dx = (x - refs["fixed"])[0, 0]
    assert out["kink/Rescale/fixed/mults"][0, 0] == 0.0
    at_input = xattr.deeplift(model, x, 0, refs["fixed"], threshold=NEAR_ZERO)[0, 0] / dx
    secant = xattr.deeplift(model, x, 0, refs["fixed"])[0, 0] / dx
    assert at_input == pytest.approx(1.0, rel=1e-12)
    assert secant == pytest.approx(x[0, 0] / dx, rel=1e-12)


def test_prediction_function_is_broken_in_0_6_13(runs):
    """``Model.get_prediction_function`` calls ``B.function`` with ``B`` never imported (models.py): pinned, the
    scores here come through ``deeplift.util.compile_func`` on the same graph."""
    _, _, errors = runs
    err = errors["cnn/get_prediction_function"]
    assert err.startswith("NameError") and "'B'" in err


def table(workdir):
    """The docs' table: max |xattr − package| / max |package| per net, mode and reference (xattr float64 / float32)."""
    cases, out, _ = run_package(workdir)
    rows = []
    for net in ("cnn", "mlp"):
        model, x, refs = cases[net]
        for ref in refs:
            for rule in DEEPLIFT_MODES:
                theirs = out[f"{net}/{rule}/{ref}/contribs"]
                err = [rel(xattr.deeplift(model, x.astype(d), T, refs[ref].astype(d), rule=rule.lower(),
                                          threshold=NEAR_ZERO), theirs) for d in (np.float64, np.float32)]
                rows.append((net, ref, rule, *err, gap(model, x, refs[ref], theirs)))
            for mode, fn in (("Gradient", xattr.gradient), ("GuidedBackprop", xattr.guided_backprop),
                             ("DeconvNet", xattr.deconvnet)):
                err = [rel(fn(model, x.astype(d), T), out[f"{net}/{mode}/{ref}/mults"]) for d in (np.float64,
                                                                                                  np.float32)]
                rows.append((net, ref, mode, *err, float("nan")))
            err = [rel(xattr.integrated_gradients(model, x.astype(d), T, refs[ref].astype(d), steps=10,
                                                  quadrature="riemann_middle"), out[f"{net}/IG/{ref}"])
                   for d in (np.float64, np.float32)]
            rows.append((net, ref, "IG (10 midpoints)", *err, float("nan")))
    print("| net | reference | package mode | xattr float64 | xattr float32 | package's Σ C − Δt (rel.) |")
    print("|---|---|---|---|---|---|")
    for net, ref, mode, e64, e32, g in rows:
        print(f"| {net} | {ref} | {mode} | {e64:.1e} | {e32:.1e} | {'' if np.isnan(g) else f'{g:.1e}'} |")


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        table(Path(tmp))
