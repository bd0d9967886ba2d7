"""tf-keras-vis 0.8.7 (TensorFlow 2.21, CPU) against xattr on the same weights: Keras models built and saved by
tests/tfkerasvis_runs.py, read back here with ``xattr.io.from_keras`` (no TensorFlow on xattr's side).

TensorFlow runs in a subprocess (one for the whole file): loaded next to torch's compiler stack (torch._dynamo,
triton; imported by torchvision) it crashes the process, so it never enters the pytest process.

Keras runs these models in float64 (``dtype_policy`` and ``floatx`` "float64"): Gradcam, GradcamPlusPlus and Layercam
then agree with xattr to 1e-10.  Scorecam casts its weights to float32 and cannot run a float64 model (pinned), so it
is compared on the float32 model at float32 tolerance.  Every other difference is a named xattr option or pinned
below; ``docs/peers.md`` (section "CAM family") has the table.  Skipped, with the reason, without the
``tf-keras-vis`` extra (a failure under CI).
"""
import importlib.util
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import xattr
from xattr.io import from_keras
from xattr.methods.cam_family import _corner_matrix

from extras import skip_or_fail  # tests/extras.py: optional packages of the test suite

pytestmark = pytest.mark.oracle
HERE = Path(__file__).resolve().parent
T = np.array([1, 3])
for _mod, _why in (("tensorflow", "TensorFlow"), ("tf_keras_vis", "tf-keras-vis"), ("keras", "Keras")):
    if importlib.util.find_spec(_mod) is None:  # a skip, or a failure under CI (tests/extras.py)
        skip_or_fail(f"the tf-keras-vis comparisons need {_why} (pip install 'xattr-ref[tf-keras-vis]')")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("tfkv")
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(HERE / "tfkerasvis_runs.py"), str(out)], env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    maps = dict(np.load(out / "maps.npz"))
    errors = json.loads((out / "errors.json").read_text())
    models = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the DAG's final softmax is dropped (tested in test_io_keras.py)
        for key in ("gap_float64", "dag_float64", "gap_float32"):
            models[key] = from_keras(out / f"{key}.keras")
    for key, m in models.items():  # the same function (the DAG's Keras output is its softmax)
        s = m(nchw(maps[f"x/{key}"]))
        if key.startswith("dag"):
            s = np.exp(s - s.max(axis=1, keepdims=True))
            s = s / s.sum(axis=1, keepdims=True)
        assert rel(s, maps[f"scores/{key}"]) < (1e-12 if key.endswith("64") else 2e-6), key
    return maps, errors, models


def rel(ours, theirs):
    theirs = np.asarray(theirs, dtype=np.float64)
    scale = np.abs(theirs).max()
    assert scale > 0, "a comparison of two all-zero maps cannot fail"
    return np.abs(np.asarray(ours, dtype=np.float64) - theirs).max() / scale


def nchw(x):
    return np.asarray(x, dtype=np.float64).transpose(0, 3, 1, 2)


def data(runs, key):
    maps, _, models = runs
    return models[key], nchw(maps[f"x/{key}"])


CASES = [  # tf-keras-vis run, xattr function, xattr options
    ("gradcam", xattr.grad_cam, {}),
    ("gradcampp", xattr.grad_cam_plus_plus, {"score": "exp", "normalize_alpha": True}),
    ("layercam", xattr.layer_cam, {}),
]


@pytest.mark.parametrize("key,layer", [("gap_float64", "block2_relu"), ("gap_float64", "block1_conv"),
                                       ("dag_float64", "add"), ("dag_float64", "grouped")])
def test_gradient_methods_agree_in_float64(runs, key, layer):
    """Grad-CAM++ as tf-keras-vis computes it is the paper's exp(S) variant with α normalised over positions (the
    authors' code); the DAG's softmax is replaced by a linear output there (ReplaceToLinear), as xattr drops it."""
    maps, errors, _ = runs
    model, x = data(runs, key)
    for run, fn, kw in CASES:
        theirs = maps[f"{run}/{key}/{layer}"]
        ours = fn(model, x, T, layer=layer, upsample=False, **kw)[:, 0]
        assert rel(ours, theirs) <= 1e-10, (run, rel(ours, theirs))


def test_grad_cam_plus_plus_variants_differ_from_tf_keras_vis(runs):
    """Without the α normalisation, or with the raw score, xattr's map is not tf-keras-vis's (pinned)."""
    model, x = data(runs, "gap_float64")
    theirs = runs[0]["gradcampp/gap_float64/block2_relu"]
    for kw in ({"score": "exp"}, {"score": "raw", "normalize_alpha": True}):
        ours = xattr.grad_cam_plus_plus(model, x, T, layer="block2_relu", upsample=False, **kw)[:, 0]
        assert rel(ours, theirs) > 1e-3, kw


def test_default_layer_is_the_last_convolution_not_the_last_spatial_node(runs):
    """tf-keras-vis's default penultimate layer is the last *Conv* layer (here block2_conv, before batch norm and
    ReLU); xattr's default is the last node with a spatial output (block2_relu)."""
    model, x = data(runs, "gap_float64")
    theirs = runs[0]["gradcam/gap_float64/default"]
    assert rel(xattr.grad_cam(model, x, T, layer="block2_conv", upsample=False)[:, 0], theirs) <= 1e-10
    assert rel(xattr.grad_cam(model, x, T, upsample=False)[:, 0], theirs) > 1e-3


def test_display_pipeline_is_align_corners_zoom_and_min_max(runs):
    """``expand_cam=True, normalize_cam=True`` (its defaults): scipy.ndimage.zoom(order=1) to the input (corners
    aligned) and (M − min)/(max − min + 1e-7) per image, reproduced from xattr's coarse map."""
    model, x = data(runs, "gap_float64")
    theirs = runs[0]["gradcampp/gap_float64/block2_relu/display"]
    coarse = xattr.grad_cam_plus_plus(model, x, T, layer="block2_relu", normalize_alpha=True, upsample=False)[:, 0]
    mh, mw = _corner_matrix(12, coarse.shape[1], np.float64), _corner_matrix(12, coarse.shape[2], np.float64)
    up = np.einsum("Hh,nhw,Ww->nHW", mh, coarse, mw)
    lo, hi = up.min(axis=(1, 2), keepdims=True), up.max(axis=(1, 2), keepdims=True)
    assert rel((up - lo) / (hi - lo + 1e-7), theirs) <= 1e-10


def test_softmax_output_without_replace_to_linear_explains_the_probability(runs):
    """tf-keras-vis differentiates whatever the model outputs: on a softmax model, the probability.  xattr drops the
    softmax; a target callable on the logits gives the same quantity."""
    import autograd.numpy as anp

    model, x = data(runs, "dag_float64")
    theirs = runs[0]["gradcam/dag_float64/add/softmax"]

    def probability(s):
        e = anp.exp(s - anp.max(s, axis=1, keepdims=True))
        return (e / anp.sum(e, axis=1, keepdims=True))[np.arange(len(T)), T]

    assert rel(xattr.grad_cam(model, x, probability, layer="add", upsample=False)[:, 0], theirs) <= 1e-10
    assert rel(xattr.grad_cam(model, x, T, layer="add", upsample=False)[:, 0], theirs) > 1e-3


def test_score_cam_agrees_in_float32_and_refuses_float64(runs):
    """Scorecam: masks zoomed with corners aligned, scaled with ε = 1e-7, weights the target's softmax probability
    (the authors' code): xattr's defaults but ``mask_interpolation`` and ``epsilon``.  It computes in float32."""
    maps, errors, _ = runs
    model, x = data(runs, "gap_float32")
    theirs = maps["scorecam/gap_float32/block2_relu"]
    kw = dict(layer="block2_relu", epsilon=1e-7, upsample=False)
    assert rel(xattr.score_cam(model, x, T, mask_interpolation="align_corners", **kw)[:, 0], theirs) < 1e-5
    assert rel(xattr.score_cam(model, x, T, **kw)[:, 0], theirs) > 1e-4  # the interpolation convention matters
    err = errors["scorecam/gap_float64/block2_relu"]
    assert err.startswith("InvalidArgumentError") and "double tensor but is a float tensor" in err


def test_faster_score_cam_keeps_the_union_of_the_batch_top_k(runs):
    """max_N=k ranks channels by spatial std per image, then keeps the union over the batch (tf.unique): one image
    alone agrees with xattr's per-image top-k; in a batch its map is xattr's Score-CAM over the union."""
    maps, _, _ = runs
    model, x = data(runs, "gap_float32")
    kw = dict(layer="block2_relu", mask_interpolation="align_corners", epsilon=1e-7, upsample=False)
    for n in range(2):
        one = maps[f"fasterscorecam/gap_float32/block2_relu/image{n}"][0]
        assert rel(xattr.faster_score_cam(model, x[n:n + 1], int(T[n]), k=2, **kw)[0, 0], one) < 1e-5
    batch = maps["fasterscorecam/gap_float32/block2_relu/batch"]
    A = model.activations(x, "block2_relu")
    top = np.argsort(-A.reshape(2, A.shape[1], -1).std(axis=2), axis=1, kind="stable")[:, :2]
    union = np.unique(top)
    assert len(union) > 2  # the two images rank different channels first
    _, w = xattr.score_cam(model, x, T, return_weights=True, **kw)
    assert rel(np.maximum(np.einsum("nk,nkhw->nhw", w[:, union], A[:, union]), 0), batch) < 1e-5
    assert rel(xattr.faster_score_cam(model, x, T, k=2, **kw)[:, 0], batch) > 1e-4


def test_grad_cam_plus_plus_exp_overflows_in_float32(runs):
    """tf-keras-vis forms exp(S) before dividing: with float32 scores above ~88.7 it overflows and the map is not
    finite.  xattr's α never forms exp(S) (it cancels); score="exp" multiplies the map by exp(S) as exp(S + log M)
    and refuses a map that is not representable (here exp(200) alone is 1e86 > float32's 3.4e38), "raw" is fine."""
    import copy

    maps, _, _ = runs
    assert not np.isfinite(maps["gradcampp/gap_float32/block2_relu/shifted200"]).all()
    model, x = data(runs, "gap_float32")
    shifted = copy.deepcopy(model)
    shifted["logits"].bias = shifted["logits"].bias + 200.0
    x32 = x.astype(np.float32)
    with pytest.raises(ValueError, match=r"exp\(S\) overflows float32"):
        xattr.grad_cam_plus_plus(shifted, x32, T, layer="block2_relu")
    assert np.isfinite(xattr.grad_cam_plus_plus(shifted, x32, T, layer="block2_relu", score="raw")).all()


@pytest.mark.parametrize("key", ["gap_float64", "dag_float64"])
def test_saliency_is_the_max_over_channels_of_the_absolute_gradient(runs, key):
    """tf-keras-vis's ``Saliency`` (vanilla, ``normalize_map=False``) is Simonyan et al.'s map:
    ``max_c |∂S/∂x|``, xattr's ``reduce_channels(gradient, "max_abs")``."""
    maps, errors, _ = runs
    assert f"saliency/{key}" not in errors, errors.get(f"saliency/{key}")
    model, x = data(runs, key)
    ours = xattr.reduce_channels(xattr.gradient(model, x, T), "max_abs")
    assert rel(ours, maps[f"saliency/{key}"]) <= 1e-12


@pytest.mark.parametrize("key", ["gap_float64", "dag_float64"])
def test_smoothgrad_of_tf_keras_vis_averages_absolute_gradients(runs, key):
    """tf-keras-vis's SmoothGrad (``smooth_samples``, ``smooth_noise=0.20``): noise ``N(0, σ²)`` with
    ``σ = 0.20 · (max − min)`` of each image (xattr's ``noise_scale(x, 0.2, "range")``), drawn from NumPy's global
    generator as ``(samples, N, H, W, C)``; its default ``gradient_modifier`` takes ``|∂S/∂x|`` of each noisy copy
    *before* the mean, then the max over channels.  Redrawn here with the same seed, xattr's gradients give the
    same map; xattr's own ``smoothgrad`` averages the signed gradients (Smilkov et al. 2017), so the two differ."""
    maps, _, _ = runs
    model, x = data(runs, key)
    nhwc = x.transpose(0, 2, 3, 1)
    sigma = xattr.methods.noise_scale(x, 0.2, "range")  # (N,): one σ per image
    span = nhwc.max(axis=(1, 2, 3)) - nhwc.min(axis=(1, 2, 3))
    np.testing.assert_allclose(sigma, 0.2 * span, rtol=1e-15)
    legacy = np.random.RandomState(0)  # noqa: NPY002 - the global generator tf-keras-vis draws from, seeded with 0
    noise = legacy.normal(0.0, sigma[None, :, None, None, None], (4,) + nhwc.shape)
    mean_abs = np.mean([np.abs(xattr.gradient(model, (nhwc + e).transpose(0, 3, 1, 2), T)) for e in noise], axis=0)
    theirs = maps[f"smoothgrad/{key}"]
    assert rel(mean_abs.max(axis=1), theirs) <= 1e-10
    signed = np.mean([xattr.gradient(model, (nhwc + e).transpose(0, 3, 1, 2), T) for e in noise], axis=0)
    assert rel(np.abs(signed).max(axis=1), theirs) > 1e-3  # the mean of signed gradients is another map
