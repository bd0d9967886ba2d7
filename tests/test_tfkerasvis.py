"""tf-keras-vis 0.8.7 (TensorFlow 2.21, CPU) against xattr on the same weights: a Keras model built and saved here,
read back with ``xattr.io.from_keras`` (no TensorFlow on xattr's side).

Keras runs these models in float64 (``dtype_policy="float64"``): Gradcam, GradcamPlusPlus and Layercam then agree
with xattr to 1e-10.  Scorecam casts its weights to float32 and cannot run a float64 model (pinned), so it is
compared on a float32 model at float32 tolerance.  Every other difference is a named option or pinned below;
``docs/peers.md`` (section "CAM family") has the table.  This file needs the ``tf-keras-vis`` extra and is skipped
with that reason without it; no other test file imports TensorFlow or Keras.
"""
import numpy as np
import pytest

import xattr
from xattr.io import from_keras
from xattr.methods.cam_family import _corner_matrix

pytestmark = [pytest.mark.oracle, pytest.mark.filterwarnings("ignore")]
tf = pytest.importorskip("tensorflow", reason="the tf-keras-vis comparisons need TensorFlow: "
                                              "pip install 'xattr-ref[tf-keras-vis]'")
pytest.importorskip("tf_keras_vis", reason="tf-keras-vis is an optional extra: pip install 'xattr-ref[tf-keras-vis]'")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "tensorflow":
    pytest.skip(f"tf-keras-vis needs Keras's TensorFlow backend, this process has {keras.backend.backend()!r}",
                allow_module_level=True)

from keras_models import dag, gap_cnn, randomize  # noqa: E402  (tests/keras_models.py)
from tf_keras_vis.gradcam import Gradcam  # noqa: E402
from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus  # noqa: E402
from tf_keras_vis.layercam import Layercam  # noqa: E402
from tf_keras_vis.scorecam import Scorecam  # noqa: E402
from tf_keras_vis.utils.model_modifiers import ReplaceToLinear  # noqa: E402
from tf_keras_vis.utils.scores import CategoricalScore  # noqa: E402

T = [1, 3]


def rel(ours, theirs):
    theirs = np.asarray(theirs, dtype=np.float64)
    scale = np.abs(theirs).max()
    assert scale > 0, "a comparison of two all-zero maps cannot fail"
    return np.abs(np.asarray(ours, dtype=np.float64) - theirs).max() / scale


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """``{name: (keras model, xattr model, channels-last x)}``: float64 and float32 versions of the same weights."""
    out = {}
    previous = keras.config.dtype_policy().name, keras.config.floatx()
    try:
        for dtype in ("float64", "float32"):
            keras.config.set_dtype_policy(dtype)
            keras.config.set_floatx(dtype)  # the Input layer's dtype
            for name, make, shape, seed in (("gap", gap_cnn, (12, 12, 3), 5), ("dag", dag, (10, 10, 3), 6)):
                km = randomize(make(keras), seed)
                path = tmp_path_factory.mktemp("tfkv") / f"{name}_{dtype}.keras"
                km.save(path)
                xm = from_keras(path)
                x = np.random.default_rng(seed).normal(size=(2,) + shape).astype(dtype)
                out[f"{name}_{dtype}"] = (km, xm, x)
    finally:
        keras.config.set_dtype_policy(previous[0])
        keras.config.set_floatx(previous[1])
    km, xm, x = out["gap_float64"]
    assert rel(xm(nchw(x)), km(x).numpy()) < 1e-12  # the same function
    return out


def nchw(x):
    return np.asarray(x, dtype=np.float64).transpose(0, 3, 1, 2)


def tfkv(cls, km, x, layer, modifier=None, **kw):
    vis = cls(km, model_modifier=modifier) if modifier is not None else cls(km)
    return np.asarray(vis(CategoricalScore(T), x, penultimate_layer=layer, seek_penultimate_conv_layer=False,
                          expand_cam=False, normalize_cam=False, **kw))


CASES = [  # tf-keras-vis class, xattr function, xattr options
    (Gradcam, xattr.grad_cam, {}),
    (GradcamPlusPlus, xattr.grad_cam_plus_plus, {"score": "exp", "normalize_alpha": True}),
    (Layercam, xattr.layer_cam, {}),
]


@pytest.mark.parametrize("model,layer", [("gap", "block2_relu"), ("gap", "block1_conv"), ("dag", "add"),
                                         ("dag", "grouped")])
def test_gradient_methods_agree_in_float64(models, model, layer):
    """Grad-CAM++ as tf-keras-vis computes it is the paper's exp(S) variant with α normalised over positions
    (the authors' code); the DAG model's softmax is replaced by a linear output (ReplaceToLinear) as xattr drops it."""
    km, xm, x = models[f"{model}_float64"]
    for cls, fn, kw in CASES:
        theirs = tfkv(cls, km, x, layer, ReplaceToLinear() if model == "dag" else None)
        ours = fn(xm, nchw(x), np.array(T), layer=layer, upsample=False, **kw)[:, 0]
        assert rel(ours, theirs) <= 1e-10, (cls.__name__, rel(ours, theirs))


def test_grad_cam_plus_plus_variants_differ_from_tf_keras_vis(models):
    """Without the α normalisation, or with the raw score, xattr's map is not tf-keras-vis's (pinned)."""
    km, xm, x = models["gap_float64"]
    theirs = tfkv(GradcamPlusPlus, km, x, "block2_relu")
    for kw in ({"score": "exp"}, {"score": "raw", "normalize_alpha": True}):
        ours = xattr.grad_cam_plus_plus(xm, nchw(x), np.array(T), layer="block2_relu", upsample=False, **kw)[:, 0]
        assert rel(ours, theirs) > 1e-3, kw


def test_default_layer_is_the_last_convolution_not_the_last_spatial_node(models):
    """tf-keras-vis's default penultimate layer is the last *Conv* layer (here block2_conv, before batch norm and
    ReLU); xattr's default is the last node with a spatial output (block2_relu)."""
    km, xm, x = models["gap_float64"]
    vis = Gradcam(km)
    theirs = np.asarray(vis(CategoricalScore(T), x, expand_cam=False, normalize_cam=False))
    assert rel(xattr.grad_cam(xm, nchw(x), np.array(T), layer="block2_conv", upsample=False)[:, 0], theirs) <= 1e-10
    assert rel(xattr.grad_cam(xm, nchw(x), np.array(T), upsample=False)[:, 0], theirs) > 1e-3


def test_display_pipeline_is_align_corners_zoom_and_min_max(models):
    """``expand_cam=True, normalize_cam=True`` (defaults): scipy.ndimage.zoom(order=1) to the input (corners aligned)
    and (M − min)/(max − min + 1e-7) per image, reproduced from xattr's coarse map."""
    km, xm, x = models["gap_float64"]
    theirs = np.asarray(GradcamPlusPlus(km)(CategoricalScore(T), x, penultimate_layer="block2_relu",
                                            seek_penultimate_conv_layer=False))
    coarse = xattr.grad_cam_plus_plus(xm, nchw(x), np.array(T), layer="block2_relu", normalize_alpha=True,
                                      upsample=False)[:, 0]
    mh, mw = _corner_matrix(12, coarse.shape[1], np.float64), _corner_matrix(12, coarse.shape[2], np.float64)
    up = np.einsum("Hh,nhw,Ww->nHW", mh, coarse, mw)
    lo, hi = up.min(axis=(1, 2), keepdims=True), up.max(axis=(1, 2), keepdims=True)
    assert rel((up - lo) / (hi - lo + 1e-7), theirs) <= 1e-10


def test_softmax_output_without_replace_to_linear_explains_the_probability(models):
    """tf-keras-vis differentiates whatever the model outputs: on a softmax model, the probability.  xattr drops the
    softmax; a target callable on the logits gives the same quantity."""
    import autograd.numpy as anp

    km, xm, x = models["dag_float64"]
    theirs = tfkv(Gradcam, km, x, "add")

    def probability(s):
        e = anp.exp(s - anp.max(s, axis=1, keepdims=True))
        p = e / anp.sum(e, axis=1, keepdims=True)
        return p[np.arange(len(T)), np.array(T)]

    assert rel(xattr.grad_cam(xm, nchw(x), probability, layer="add", upsample=False)[:, 0], theirs) <= 1e-10
    assert rel(xattr.grad_cam(xm, nchw(x), np.array(T), layer="add", upsample=False)[:, 0], theirs) > 1e-3


def test_score_cam_agrees_in_float32_and_refuses_float64(models):
    """Scorecam: masks zoomed with corners aligned, scaled with ε = 1e-7, weights the target's softmax probability
    (the authors' code): xattr's defaults but ``mask_interpolation`` and ``epsilon``.  It computes in float32."""
    km, xm, x = models["gap_float32"]
    theirs = tfkv(Scorecam, km, x, "block2_relu", batch_size=7)
    ours = xattr.score_cam(xm, nchw(x), np.array(T), layer="block2_relu", mask_interpolation="align_corners",
                           epsilon=1e-7, upsample=False)[:, 0]
    assert rel(ours, theirs) < 1e-5
    half = xattr.score_cam(xm, nchw(x), np.array(T), layer="block2_relu", epsilon=1e-7, upsample=False)[:, 0]
    assert rel(half, theirs) > 1e-4  # the interpolation convention matters
    km64, _, x64 = models["gap_float64"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="double tensor but is a float tensor"):
        tfkv(Scorecam, km64, x64, "block2_relu")


def test_faster_score_cam_keeps_the_union_of_the_batch_top_k(models):
    """max_N=k ranks channels by spatial std per image, then keeps the union over the batch (tf.unique): one image
    alone agrees with xattr's per-image top-k; in a batch its map is xattr's Score-CAM over the union."""
    km, xm, x = models["gap_float32"]
    kw = dict(mask_interpolation="align_corners", epsilon=1e-7, upsample=False)
    for n in range(2):
        one = np.asarray(Scorecam(km)(CategoricalScore([T[n]]), x[n:n + 1], penultimate_layer="block2_relu",
                                      seek_penultimate_conv_layer=False, expand_cam=False, normalize_cam=False,
                                      max_N=2))[0]
        ours = xattr.faster_score_cam(xm, nchw(x[n:n + 1]), T[n], layer="block2_relu", k=2, **kw)[0, 0]
        assert rel(ours, one) < 1e-5
    batch = tfkv(Scorecam, km, x, "block2_relu", max_N=2)
    A = xm.activations(nchw(x), "block2_relu")
    top = np.argsort(-A.reshape(2, A.shape[1], -1).std(axis=2), axis=1, kind="stable")[:, :2]
    union = np.unique(top)
    assert len(union) > 2  # the two images rank different channels first
    _, w = xattr.score_cam(xm, nchw(x), np.array(T), layer="block2_relu", return_weights=True, **kw)
    expect = np.maximum(np.einsum("nk,nkhw->nhw", w[:, union], A[:, union]), 0)
    assert rel(expect, batch) < 1e-5
    per_image = xattr.faster_score_cam(xm, nchw(x), np.array(T), layer="block2_relu", k=2, **kw)[:, 0]
    assert rel(per_image, batch) > 1e-4


def test_grad_cam_plus_plus_exp_overflows_in_float32(models):
    """tf-keras-vis multiplies by exp(S) before dividing: a float32 score above ~88.7 overflows to inf and the map
    is NaN.  xattr's α does not form exp(S) (it cancels); score="exp" refuses an overflowing factor, "raw" is fine."""
    km, xm, x = models["gap_float32"]
    dense = km.get_layer("logits")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel, bias + 200.0])
    try:
        theirs = tfkv(GradcamPlusPlus, km, x, "block2_relu")
    finally:
        dense.set_weights([kernel, bias])
    assert not np.isfinite(theirs).all()
    xm2 = from_keras_with_bias(xm, 200.0)
    with pytest.raises(ValueError, match="exp\\(S\\) overflows float32"):
        xattr.grad_cam_plus_plus(xm2, nchw(x).astype(np.float32), np.array(T), layer="block2_relu")
    assert np.isfinite(xattr.grad_cam_plus_plus(xm2, nchw(x).astype(np.float32), np.array(T), layer="block2_relu",
                                                score="raw")).all()


def from_keras_with_bias(xm, shift):
    import copy

    m = copy.deepcopy(xm)
    m["logits"].bias = m["logits"].bias + shift
    return m
