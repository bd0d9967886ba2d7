"""tf-keras-vis 0.8.7's ``ActivationMaximization`` against :func:`xattr.activation_maximisation` on the same model.

tests/tfkerasvis_am_runs.py (a subprocess: TensorFlow never enters the pytest process, see test_tfkerasvis.py) builds
the float64 GAP CNN of tests/keras_models.py, saves it, and runs ``ActivationMaximization`` for 12 steps from fixed
seed images with its random input modifiers off (``input_modifiers=[]``); xattr reads the same ``.keras`` file with
``xattr.io.from_keras`` and runs the same ascent.  Oracles: tf-keras-vis itself (final image, and per step the score
and each regulariser at the iterate the gradient was taken at), the regularisers' values and gradients from
``tf.GradientTape``, and a twin of Keras's Adam written from its source.  docs/peers.md ("tf-keras-vis
ActivationMaximization") has the table.
"""
import importlib
import importlib.util
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from xattr.io import from_keras

from extras import skip_or_fail  # tests/extras.py: optional packages of the test suite

am = importlib.import_module("xattr.methods.activation_maximisation")  # the module (the package exports the function)

pytestmark = pytest.mark.oracle
HERE = Path(__file__).resolve().parent
T = np.array([1, 3])
STEPS = 12
N_PIXELS = 3 * 12 * 12  # C·H·W: tf-keras-vis divides its TV and its p-norm by it (the norm by its p-th root)
for _mod, _why in (("tensorflow", "TensorFlow"), ("tf_keras_vis", "tf-keras-vis"), ("keras", "Keras")):
    if importlib.util.find_spec(_mod) is None:
        skip_or_fail(f"the tf-keras-vis ActivationMaximization comparisons need {_why} "
                     "(pip install 'xattr-ref[tf-keras-vis]')")


def run_tf_keras_vis(out):
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
           "TF_ENABLE_ONEDNN_OPTS": "0"}
    proc = subprocess.run([sys.executable, str(HERE / "tfkerasvis_am_runs.py"), str(out)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = from_keras(out / "gap.keras")
    return model, dict(np.load(out / "am.npz"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_tf_keras_vis(tmp_path_factory.mktemp("tfkv_am"))


def nchw(x):
    return np.asarray(x, dtype=np.float64).transpose(0, 3, 1, 2)


def rel(ours, theirs):
    theirs = np.asarray(theirs, dtype=np.float64)
    scale = np.abs(theirs).max()
    assert scale > 0, "a comparison with an all-zero array cannot fail"
    return float(np.abs(np.asarray(ours, dtype=np.float64) - theirs).max() / scale)


#: tf-keras-vis's default regularisers [TotalVariation2D(weight=1.0), Norm(weight=0.3, p=1)] in xattr's terms:
#: tf.image.total_variation is the anisotropic β = 1 TV, divided by C·H·W; Norm is xattr's norm (already / n^{1/p})
TF_KERAS_VIS_PRIOR = dict(tv_weight=1.0 / N_PIXELS, tv_beta=1, tv_anisotropic=True, norm_weight=0.3, norm_p=1)


def ascent(model, start, optimiser, input_range, objective=None, **prior):
    return am.activation_maximisation(model, objective or am.class_score(T), start=nchw(start), steps=STEPS,
                                      optimiser=optimiser, input_range=input_range, clip="end",
                                      **(prior or TF_KERAS_VIS_PRIOR))


def check_run(result, data, tag):
    """The final image and the per-step histories (tf-keras-vis records steps 0 … STEPS−1 before each update)."""
    penalty = data[f"{tag}/reg/TotalVariation2D"] + data[f"{tag}/reg/Norm"]
    errors = (rel(result.image, nchw(data[f"{tag}/image"])), rel(result.values[:STEPS], data[f"{tag}/scores"]),
              rel(result.penalty[:STEPS], penalty))
    assert max(errors) < 1e-12, (tag, errors)
    return errors


def test_default_optimiser_is_rmsprop_and_the_trajectories_agree(runs):
    """``optimizer=None`` is ``RMSprop(learning_rate=1.0, rho=0.999)`` (Keras 3: ``v ← ρv + (1 − ρ)g²``,
    ``x ← x − lr·g/√(v + ε)``, ε = 1e-7): xattr's :class:`RMSprop` is that step; with its default regularisers and
    input range (0, 255), clipped at the end, 12 steps agree to float64 round-off."""
    model, data = runs
    r = ascent(model, data["seed255"], am.RMSprop(lr=1.0, rho=0.999, eps=1e-7), (0.0, 255.0))
    check_run(r, data, "default")
    img = data["default/image"]
    assert ((img == 0) | (img == 255)).mean() > 0.05  # the end clip acts on this run


@pytest.mark.parametrize("tag,optimiser", [("sgd", am.GradientAscent(lr=2.0)),
                                           ("rmsprop", am.RMSprop(lr=0.01, rho=0.999, eps=1e-7))])
def test_plain_gradient_ascent_and_rmsprop_agree(runs, tag, optimiser):
    """Keras ``SGD(learning_rate)`` (``x ← x − lr·g`` on the loss ``−S + R``) is Simonyan et al.'s plain ascent on
    ``S − R``, xattr's :class:`GradientAscent`; ``RMSprop`` as above; inputs in [0, 1]."""
    model, data = runs
    check_run(ascent(model, data["seed01"], optimiser, (0.0, 1.0)), data, tag)


def test_channel_objective_agrees(runs):
    """A hidden channel: tf-keras-vis cuts the model at the layer (``ExtractIntermediateLayer``) and averages the score
    function's output over the non-batch axes, so ``output[..., k]`` is the mean over positions: xattr's
    ``channel_mean(layer, k)``.  Here with ``Norm(p=2)`` and TV weight 0.5."""
    model, data = runs
    r = ascent(model, data["seed01"], am.GradientAscent(lr=2.0), (0.0, 1.0), am.channel_mean("block2_relu", 2),
               tv_weight=0.5 / N_PIXELS, tv_beta=1, tv_anisotropic=True, norm_weight=0.3, norm_p=2)
    check_run(r, data, "channel")


class KerasAdam:
    """Keras 3.15's ``Adam.update_step`` as its source writes it (a twin for this test, not an xattr step rule):
    the "ε-hat" form of Kingma & Ba (§2, before §2.1), ``α_t = lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ)``, ``x ← x − α_t·m/(√v + ε̂)``,
    with ``β₁ᵗ, β₂ᵗ`` computed from ``ops.cast(self.beta_1, variable.dtype)``: the Python float becomes a float32
    tensor before the cast, so the bias correction uses β rounded to float32 even for float64 variables."""

    def __init__(self, lr, beta1=0.9, beta2=0.999, eps=1e-7, float32_betas=True):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.powers = (float(np.float32(beta1)), float(np.float32(beta2))) if float32_betas else (beta1, beta2)

    def init(self, x):
        return np.zeros_like(x), np.zeros_like(x)

    def step(self, g, state, t):
        m, v = state
        m = m + (g - m) * (1 - self.beta1)
        v = v + (g * g - v) * (1 - self.beta2)
        alpha = self.lr * np.sqrt(1 - self.powers[1] ** t) / (1 - self.powers[0] ** t)
        return alpha * m / (np.sqrt(v) + self.eps), (m, v)


def test_keras_adam_is_epsilon_hat_with_float32_betas(runs):
    """Keras's Adam differs from Kingma & Ba's Algorithm 1 (xattr's :class:`Adam`: ``m̂/(√v̂ + ε)``) by where ε
    enters: ``ε̂ = ε·√(1 − β₂ᵗ)`` in Algorithm 1's terms, 32× ε at t = 1.  Pixels whose gradient is a few 1e-6 (here
    the class score's and the priors' gradients nearly cancel) then take visibly different steps: xattr's Adam ends
    2.4% (of the image's maximum) away from tf-keras-vis's.  The twin above reproduces it to round-off; without the
    float32 rounding of β in the bias correction it is 1e-6 away (Keras's float64 Adam is not quite float64)."""
    model, data = runs
    check_run(ascent(model, data["seed01"], KerasAdam(lr=0.01), (0.0, 1.0)), data, "adam")
    exact_betas = ascent(model, data["seed01"], KerasAdam(lr=0.01, float32_betas=False), (0.0, 1.0))
    assert 1e-8 < rel(exact_betas.image, nchw(data["adam/image"])) < 1e-4
    paper = ascent(model, data["seed01"], am.Adam(lr=0.01, eps=1e-7), (0.0, 1.0))
    assert rel(paper.image, nchw(data["adam/image"])) > 1e-2


def test_regularisers_term_by_term(runs):
    """Values and gradients (``tf.GradientTape``) on the two seeds and the zero image.

    * ``TotalVariation2D(weight=w)`` = ``w · tf.image.total_variation / (C·H·W)``: the anisotropic β = 1 sum
      ``Σ |ΔᵢI| + |ΔⱼI|`` over channels (forward differences, none past the border) = xattr's
      ``total_variation(x, beta=1, anisotropic=True) / (C·H·W)``, gradient ``sign`` (0 at a zero difference) included.
      Mahendran & Vedaldi's ``R_{V^β}`` (xattr's default ``β = 2``, isotropic) is another function: pinned.
    * ``Norm(weight=w, p)`` = ``w · ‖vec I‖_p / n^{1/p}``: xattr's ``norm(x, p)``; not Simonyan et al.'s
      ``‖I‖₂²`` (xattr's ``l2``): ``l2 = n · norm(x, 2)²``.  At the zero image TF's 2-norm gradient is NaN (the
      derivative of √ at 0), xattr's the minimum-norm subgradient 0 (pinned); the 1-norm's is ``sign`` = 0 in both.
    """
    _, data = runs
    x = np.concatenate([nchw(data["seed01"]), np.zeros((1, 3, 12, 12))])
    value, grad = am.total_variation(x, beta=1, anisotropic=True)
    assert rel(value[:2] / N_PIXELS, data["regularizer/tv/value"][:2]) < 1e-14  # (the zero image's TV is 0)
    assert np.all(data["regularizer/tv/value"][2] == 0) and np.all(value[2] == 0)
    assert rel(grad / N_PIXELS, nchw(data["regularizer/tv/grad"])) < 1e-14
    iso, _ = am.total_variation(x)
    assert rel(iso[:2] / N_PIXELS, data["regularizer/tv/value"][:2]) > 0.1
    for p in (1, 2):
        value, grad = am.norm(x, p)
        theirs_v, theirs_g = data[f"regularizer/norm{p}/value"], nchw(data[f"regularizer/norm{p}/grad"])
        assert rel(value, theirs_v) < 1e-14
        assert rel(grad[:2], theirs_g[:2]) < 1e-14
        assert np.all(grad[2] == 0)
        assert np.all(theirs_g[2] == 0) if p == 1 else np.isnan(theirs_g[2]).all()
    sq, _ = am.l2(x)
    np.testing.assert_allclose(sq, N_PIXELS * am.norm(x, 2)[0] ** 2, rtol=1e-13)


def test_clipping_is_at_the_end_only(runs):
    """tf-keras-vis keeps the iterate unconstrained and clips what it returns (``clip="end"``, as every run above);
    xattr's default ``clip="step"`` projects every iterate (projected ascent) and is another image."""
    model, data = runs
    projected = am.activation_maximisation(model, am.class_score(T), start=nchw(data["seed255"]), steps=STEPS,
                                           optimiser=am.RMSprop(lr=1.0, rho=0.999, eps=1e-7), input_range=(0.0, 255.0),
                                           clip="step", **TF_KERAS_VIS_PRIOR)
    assert rel(projected.image, nchw(data["default/image"])) > 1e-2


def table(workdir):
    """The docs' numbers: max |xattr − tf-keras-vis| / max |tf-keras-vis| of the final image and the histories."""
    model, data = run_tf_keras_vis(workdir)
    rows = [
        ("default (RMSprop(1.0, 0.999), [0, 255])", "default",
         ascent(model, data["seed255"], am.RMSprop(lr=1.0, rho=0.999, eps=1e-7), (0.0, 255.0))),
        ("SGD(2.0), [0, 1]", "sgd", ascent(model, data["seed01"], am.GradientAscent(lr=2.0), (0.0, 1.0))),
        ("RMSprop(0.01, 0.999), [0, 1]", "rmsprop",
         ascent(model, data["seed01"], am.RMSprop(lr=0.01, rho=0.999, eps=1e-7), (0.0, 1.0))),
        ("channel block2_relu/2, SGD(2.0)", "channel",
         ascent(model, data["seed01"], am.GradientAscent(lr=2.0), (0.0, 1.0), am.channel_mean("block2_relu", 2),
                tv_weight=0.5 / N_PIXELS, tv_beta=1, tv_anisotropic=True, norm_weight=0.3, norm_p=2)),
        ("Adam(0.01): the Keras twin", "adam", ascent(model, data["seed01"], KerasAdam(lr=0.01), (0.0, 1.0))),
        ("Adam(0.01): twin, exact β", "adam",
         ascent(model, data["seed01"], KerasAdam(lr=0.01, float32_betas=False), (0.0, 1.0))),
        ("Adam(0.01): xattr's Adam (Algorithm 1, ε = 1e-7)", "adam",
         ascent(model, data["seed01"], am.Adam(lr=0.01, eps=1e-7), (0.0, 1.0))),
    ]
    print("| run (12 steps; xattr's step rule) | final image | scores per step | regularisers per step |")
    print("|---|---|---|---|")
    for label, tag, r in rows:
        penalty = data[f"{tag}/reg/TotalVariation2D"] + data[f"{tag}/reg/Norm"]
        e = (rel(r.image, nchw(data[f"{tag}/image"])), rel(r.values[:STEPS], data[f"{tag}/scores"]),
             rel(r.penalty[:STEPS], penalty))
        print(f"| {label} | {e[0]:.1e} | {e[1]:.1e} | {e[2]:.1e} |")


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        table(Path(tmp))
