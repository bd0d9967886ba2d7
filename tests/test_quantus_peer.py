"""Quantus as a live peer: every metric xattr and Quantus share, on the same model, maps and masks, in float64.

The model is a ``torch.nn.Sequential`` in float64 and its xattr twin ``from_torch(net)``.  Where the
definitions match, the numbers agree to 1e-10 (``max |xattr - quantus| <= 1e-10 · max |quantus|``).
Quantus draws its randomness from NumPy's global state (``np.random``); the tests hand both sides the
same draws (a patched ``np.random.choice``/``randn`` or a perturbation function that replays
pre-drawn arrays), and replay Quantus' layer re-initialisation (``reset_parameters`` after
``torch.manual_seed(seed + 1)``) through xattr's ``randomize`` hook.  Every difference is pinned by
a test that reproduces Quantus' number from xattr's pieces plus the stated definition, and listed
in ``docs/peers.md`` (section "Quantus").

``python tests/test_quantus_peer.py`` runs this file and prints the comparison table with the
measured differences.
"""
import copy
import itertools

import numpy as np
import pytest

import xattr
from xattr import evaluation as ev
from xattr.io import from_torch

from extras import need  # tests/extras.py: optional packages of the test suite

pytestmark = [pytest.mark.oracle, pytest.mark.filterwarnings("ignore")]
torch = need("torch", reason="the Quantus comparisons need torch: pip install 'xattr-ref[quantus]'")
# Quantus imports TensorFlow whenever it is installed; TensorFlow loaded before torch's triton (pulled in by
# torchvision / torch._dynamo) segfaults the process, so load triton first (after need() has found torch;
# it rebinds the name torch to the same module).
import torch._dynamo  # noqa: E402, F401, F811

quantus = need("quantus", reason="Quantus is an optional extra: pip install 'xattr-ref[quantus]'")
# imported once need() has found quantus (else the module is skipped with the install hint)
from quantus.functions import perturb_func as qpf  # noqa: E402
from quantus.functions.similarity_func import correlation_spearman  # noqa: E402

nn = torch.nn
RTOL = 1e-10
#: measured max |xattr - quantus| per comparison (printed by ``python tests/test_quantus_peer.py``)
MEASURED = {}


def agree(name, ours, theirs, rtol=RTOL):
    """``max |ours - theirs| <= rtol · max |theirs|``; records the measured difference under ``name``."""
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    scale = np.abs(theirs).max()
    assert scale > 0, "a comparison of two all-zero results cannot fail"
    err = np.abs(ours - theirs).max()
    MEASURED[name] = (err, scale)
    assert err <= rtol * scale, f"{name}: max abs difference {err:.3e} > {rtol:g} x {scale:.3e}"


@pytest.fixture
def trapz(monkeypatch):
    """Quantus 0.6 integrates with ``np.trapz``, which NumPy 2.4 removed: lend it ``np.trapezoid``."""
    if not hasattr(np, "trapz"):
        monkeypatch.setattr(np, "trapz", np.trapezoid, raising=False)


@pytest.fixture(autouse=True)
def float64_inputs():
    """Quantus builds its inputs with ``torch.Tensor(x)``, i.e. in torch's default dtype: make it float64."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _net(channels=3, size=12, seed=0):
    torch.manual_seed(seed)
    h = size // 2
    return nn.Sequential(
        nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 5, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(5 * h * h, 4),
    ).double().eval()


NET = _net()
MODEL = from_torch(NET)
X = np.random.default_rng(0).normal(size=(4, 3, 12, 12))
Y = np.array([0, 1, 2, 3])
A_PIX = np.random.default_rng(1).normal(size=(4, 1, 12, 12))  # one value per pixel, no ties
A_EL = np.random.default_rng(2).normal(size=X.shape)  # one value per element
MASKS = np.random.default_rng(3).random((4, 1, 12, 12)) < 0.3
C, F_PIX = 3, 144
NET1 = _net(channels=1, seed=5)  # for the metrics Quantus runs on one-channel images only (IROF, ROAD)
MODEL1 = from_torch(NET1)
X1 = np.random.default_rng(8).normal(size=(4, 1, 12, 12))


def q(metric_cls, *, model=NET, x=X, y=Y, a=A_PIX, s=None, **kw):
    """Run a Quantus metric with warnings off; call keywords prefixed ``call_`` go to ``__call__``."""
    call = {k[5:]: v for k, v in kw.items() if k.startswith("call_")}
    init = {k: v for k, v in kw.items() if not k.startswith("call_")}
    metric = metric_cls(disable_warnings=True, **init)
    out = metric(model=model, x_batch=x, y_batch=y, a_batch=a, s_batch=s, channel_first=True, **call)
    return out, metric


def q_gradient(model, inputs, targets, **kwargs):
    """Quantus explain_func: xattr's gradient on the torch module Quantus hands over (possibly re-initialised)."""
    return xattr.gradient(from_torch(model), np.asarray(inputs, dtype=np.float64), np.asarray(targets))


def replay(draws):
    """A Quantus ``perturb_func`` that replaces the selected features by the next pre-drawn image."""
    counter = itertools.count()

    def perturb(arr, indices, **kwargs):
        d = draws[next(counter) % len(draws)].reshape(arr.shape)
        out = arr.copy()
        rows = np.arange(arr.shape[0])[:, None]
        out[rows, indices] = d[rows, indices]
        return out

    return perturb


def additive(draws):
    """A Quantus ``perturb_func`` that adds the next pre-drawn perturbation to every feature."""
    counter = itertools.count()

    def perturb(arr, indices, **kwargs):
        return arr + draws[next(counter)].reshape(arr.shape)

    return perturb


def quantus_randomizer(net, seed=42, independent=False):
    """xattr's ``randomize`` hook replaying Quantus' ``get_random_layer_generator``: each layer's
    ``reset_parameters()`` after ``torch.manual_seed(seed + 1)``, cumulative unless ``independent``."""
    state = copy.deepcopy(net.state_dict())
    work = copy.deepcopy(net)
    modules = dict(work.named_modules())

    def randomize(model, name, gen):
        if independent:
            work.load_state_dict(state)
        torch.manual_seed(seed + 1)
        modules[name].reset_parameters()
        return from_torch(work)

    return randomize


# == plumbing ==========================================================================================
def test_quantus_feeds_the_model_in_torchs_default_dtype():
    torch.set_default_dtype(torch.float32)
    with pytest.raises(RuntimeError, match="should be the same"):  # torch.Tensor(x) is float32: a float64 net fails
        q(quantus.PixelFlipping, features_in_step=C, normalise=False, perturb_baseline=0.0)


def test_quantus_checks_features_in_step_against_h_w_but_steps_over_c_h_w_elements():
    with pytest.raises(AssertionError, match=r"144 % 5 != 0"):
        q(quantus.PixelFlipping, features_in_step=5, perturb_baseline=0.0)
    out, _ = q(quantus.PixelFlipping, features_in_step=4, normalise=False, perturb_baseline=0.0)
    assert np.shape(out) == (4, C * F_PIX // 4)  # 108 steps of 4 elements: a pixel's 3 channels split across steps


def test_normalise_by_max_divides_by_the_maximum_over_the_whole_batch():
    a = np.abs(A_PIX) + 0.01
    alone, _ = q(quantus.EffectiveComplexity, a=a[:1], x=X[:1], y=Y[:1], eps=0.5)
    batch, _ = q(quantus.EffectiveComplexity, a=a, eps=0.5)
    agree("EffectiveComplexity(normalise=True), image 0 in a batch",
          batch[0], ev.effective_complexity(a[:1] / a.max(), eps=0.5)[0])
    agree("EffectiveComplexity(normalise=True), image 0 alone", alone[0],
          ev.effective_complexity(a[:1] / a[:1].max(), eps=0.5)[0])
    assert alone[0] != batch[0]  # the same map scores differently depending on the other images of its batch


# == faithfulness ======================================================================================
@pytest.mark.skipif(hasattr(np, "trapz"), reason="NumPy < 2.4 still has np.trapz")
def test_quantus_auc_and_irof_need_np_trapz_which_numpy_2_4_removed():
    with pytest.raises(AttributeError, match="trapz"):
        q(quantus.IROF, model=NET1, x=X1, normalise=False, perturb_baseline=0.0)


@pytest.mark.parametrize("softmax", [True, False])
def test_pixel_flipping(softmax, trapz):
    out, _ = q(quantus.PixelFlipping, features_in_step=C * 12, normalise=False, perturb_baseline=0.0,
               call_softmax=softmax)
    ours = ev.pixel_flipping(MODEL, X, Y, A_PIX, features_per_step=12, baseline=0.0,
                             score="probability" if softmax else "logit")
    agree(f"PixelFlipping(softmax={softmax})", ours.scores[:, 1:], out)  # Quantus omits the unperturbed point
    auc, _ = q(quantus.PixelFlipping, features_in_step=C * 12, normalise=False, perturb_baseline=0.0,
               return_auc_per_sample=True, call_softmax=softmax)
    # Quantus' AUC: trapezoid with unit spacing over the steps after the first
    agree(f"PixelFlipping(return_auc_per_sample, softmax={softmax})",
          np.trapezoid(ours.scores[:, 1:], dx=1, axis=1), auc)


def test_pixel_flipping_black_baseline_is_each_images_minimum():
    out, _ = q(quantus.PixelFlipping, features_in_step=C * 8, normalise=False)
    ours = ev.pixel_flipping(MODEL, X, Y, A_PIX, features_per_step=8, score="probability",
                             baseline=lambda x: x.min(axis=(1, 2, 3), keepdims=True))
    agree("PixelFlipping(perturb_baseline='black')", ours.scores[:, 1:], out)


@pytest.mark.parametrize("order", ["morf", "lerf"])
def test_region_perturbation(order):
    out, _ = q(quantus.RegionPerturbation, patch_size=4, order=order, regions_evaluation=9, normalise=False,
               perturb_baseline=0.0, call_softmax=False)
    ours = ev.region_perturbation(MODEL, X, Y, A_PIX, patch=4, order=order, baseline=0.0)
    agree(f"RegionPerturbation(order={order!r})", ours.scores[:, :1] - ours.scores[:, 1:], out)


def test_region_perturbation_grid_is_centred_by_quantus_and_starts_at_the_corner_in_xattr():
    net = _net(size=10, seed=1)
    x = np.random.default_rng(4).normal(size=(2, 3, 10, 10))
    a = np.random.default_rng(5).normal(size=(2, 1, 10, 10))
    out, _ = q(quantus.RegionPerturbation, model=net, x=x, y=Y[:2], a=a, patch_size=4, regions_evaluation=1,
               normalise=False, perturb_baseline=0.0, call_softmax=False)
    # Quantus pads 10 -> 12 with one row/column on each side: its 4x4 cells start at -1, 3, 7
    model = from_torch(net)
    f0 = model.forward(x)[[0, 1], Y[:2]]
    expected = []
    for i in range(2):
        cells = [(r, c) for r in (-1, 3, 7) for c in (-1, 3, 7)]
        sums = [a[i, 0, max(r, 0):r + 4, max(c, 0):c + 4].sum() for r, c in cells]
        r, c = cells[int(np.argmax(sums))]
        img = x[i].copy()
        img[:, max(r, 0):r + 4, max(c, 0):c + 4] = 0.0
        expected.append(f0[i] - model.forward(img[None])[0, Y[i]])
    agree("RegionPerturbation, 10x10 image, 4x4 patches (Quantus' centred grid, rebuilt)",
          np.array(expected)[:, None], out)
    ours = ev.region_perturbation(model, x, Y[:2], a, patch=4, baseline=0.0, n_regions=1)
    assert not np.allclose(ours.scores[:, :1] - ours.scores[:, 1:], out)  # xattr's grid starts at (0, 0)


def _slic(x):
    from skimage.segmentation import slic

    return np.stack([slic(np.moveaxis(img, 0, -1).astype("double"), start_label=0) for img in x])


def test_irof_curves_agree_and_quantus_aoc_counts_segments(trapz):
    segs = _slic(X1)
    out, _ = q(quantus.IROF, model=NET1, x=X1, normalise=False, perturb_baseline=0.0, return_aggregate=False)
    ours = ev.irof(MODEL1, X1, Y, A_PIX, segments=segs, baseline=0.0)
    # Quantus: AOC = K - trapz(y_1..y_K, dx=1), in units of segments and without the unperturbed point
    quantus_aoc = [K - np.trapezoid(c[1:], dx=1) for K, c in zip(ours.n_segments, ours.curves)]
    agree("IROF (Quantus' AOC rebuilt from xattr's curves)", quantus_aoc, out)
    # xattr's AOC over the fraction k / K of segments removed relates to it in closed form:
    # K · trapz(y_0..y_K, dx=1/K) = (y_0 + y_1) / 2 + trapz(y_1..y_K, dx=1) with y_0 = 1
    y1 = np.array([c[1] for c in ours.curves])
    agree("IROF: Quantus = K · xattr + (1 + y_1) / 2", ours.n_segments * ours.aoc + (1 + y1) / 2, out)


def test_irof_on_three_channel_images_fails_its_mask_shape_assertion(trapz):
    with pytest.raises(AssertionError, match="shape of arr must be the same as the mask shape"):
        q(quantus.IROF, normalise=False, perturb_baseline=0.0)  # masks (N, 1, H, W) against images (N, 3, H, W)


def test_irof_mean_baseline_is_the_mean_of_the_whole_current_batch(trapz):
    alone, _ = q(quantus.IROF, model=NET1, x=X1[:1], y=Y[:1], a=A_PIX[:1], normalise=False, return_aggregate=False)
    batch, _ = q(quantus.IROF, model=NET1, x=X1, normalise=False, return_aggregate=False)
    assert abs(alone[0] - batch[0]) > 1e-6  # image 0's score depends on the other images of the batch
    fixed_alone, _ = q(quantus.IROF, model=NET1, x=X1[:1], y=Y[:1], a=A_PIX[:1], normalise=False,
                       perturb_baseline=0.0, return_aggregate=False)
    fixed_batch, _ = q(quantus.IROF, model=NET1, x=X1, normalise=False, perturb_baseline=0.0, return_aggregate=False)
    agree("IROF(perturb_baseline=0) alone vs in a batch", fixed_alone[0], fixed_batch[0])


def test_road_imputation_and_curve_on_single_channel_images():
    net = _net(channels=1, size=10, seed=2)
    model = from_torch(net)
    x = np.random.default_rng(6).normal(size=(3, 1, 10, 10))
    a = np.random.default_rng(7).normal(size=(3, 1, 10, 10))
    y = np.argmax(model.forward(x), axis=1)
    removed = np.argsort(-a[0].ravel())[:37]
    theirs = qpf.noisy_linear_imputation(arr=x[0], indices=removed, noise=0.0)
    mask = np.zeros(100, dtype=bool)
    mask[removed] = True
    agree("noisy_linear_imputation(noise=0)", ev.noisy_linear_imputation(x[:1], mask.reshape(1, 10, 10), 0.0)[0],
          theirs)
    pct = [10, 30, 50, 70, 90]
    out, _ = q(quantus.ROAD, model=net, x=x, y=y, a=a, percentages=pct, noise=0.0, normalise=False)
    ours = ev.road_curve(model, x, y, a, fractions=np.array(pct) / 100, noise=0.0)
    agree("ROAD(noise=0) accuracy curve", ours.scores.mean(axis=0), [out[p] for p in pct])
    assert np.ptp(ours.scores.mean(axis=0)) > 0  # the accuracy does change along the curve


def test_road_on_three_channel_images_indexes_past_the_pixels():
    with pytest.raises(IndexError, match="out of bounds"):
        q(quantus.ROAD, percentages=[10], noise=0.0, normalise=False)


@pytest.mark.parametrize("features", ["element", "pixel"])
def test_faithfulness_correlation(features, monkeypatch):
    a = A_EL if features == "element" else np.broadcast_to(A_PIX, X.shape)
    S, k = 12, 30
    idx = np.stack([np.argsort(np.random.default_rng(10 + s).random((4, a[0].size)), axis=1)[:, :k]
                    for s in range(S)])
    draws = iter(idx.reshape(-1, k))  # run-major, image-minor: the order of Quantus' np.random.choice calls
    monkeypatch.setattr(np.random, "choice", lambda *args, **kw: next(draws))
    out, _ = q(quantus.FaithfulnessCorrelation, a=a, nr_runs=S, subset_size=k, normalise=False,
               perturb_baseline=0.0, return_aggregate=False)
    ours = ev.faithfulness_correlation(MODEL, X, Y, a, subsets=idx, baseline=0.0)
    agree(f"FaithfulnessCorrelation ({features} features)", ours, out)


def test_faithfulness_estimate():
    out, _ = q(quantus.FaithfulnessEstimate, features_in_step=C * 3, normalise=False, perturb_baseline=0.0)
    ours = ev.faithfulness_estimate(MODEL, X, Y, A_PIX, features_per_step=3, baseline=0.0)
    agree("FaithfulnessEstimate", ours, out)


def test_monotonicity_never_puts_the_features_back():
    a = np.abs(A_PIX)
    out, _ = q(quantus.Monotonicity, a=a, features_in_step=C * 4, normalise=False, abs=False, perturb_baseline=0.0)
    assert all(out)  # Quantus writes the baseline into the baseline image: its scores never move, always "monotonic"
    mono, curve = ev.monotonicity(MODEL, X, Y, a, features_per_step=4, baseline=0.0, return_curve=True)
    assert not np.all(mono)  # adding x's features back does move the scores
    assert np.ptp(curve, axis=1).min() > 1e-3
    # Quantus' curve is the baseline's score repeated: rebuild its 0/1 answer from xattr's score of the baseline
    flat = np.repeat(curve[:, :1], curve.shape[1] - 1, axis=1)
    np.testing.assert_array_equal(np.all(np.diff(flat, axis=1) >= 0, axis=1), out)


def test_monotonicity_correlation(monkeypatch):
    S = 3
    samples = np.random.default_rng(11).uniform(-1, 1, size=(S,) + X.shape)
    out, _ = q(quantus.MonotonicityCorrelation, features_in_step=C, nr_samples=S, normalise=False, abs=True,
               perturb_func=replay(samples))
    ours = ev.monotonicity_correlation(MODEL, X, Y, A_PIX, samples=samples, score="probability")
    agree("MonotonicityCorrelation", ours, out)


def test_sensitivity_n_in_quantus_correlates_over_the_batch_and_pairs_step_sums_with_cumulative_drops():
    a = A_PIX
    out, metric = q(quantus.SensitivityN, a=a, features_in_step=C * 4, n_max_percentage=0.5, normalise=False,
                    perturb_baseline=0.0, return_aggregate=False, call_softmax=False)
    # Quantus: cumulative MoRF removal; for each step k, the Pearson correlation over the *images* of the
    # drop f(x) - f(x^(k)) (cumulative) and the attribution of the features removed at step k alone
    curve = ev.pixel_flipping(MODEL, X, Y, a, features_per_step=4, baseline=0.0)
    drops = curve.scores[:, :1] - curve.scores[:, 1:]
    sums = np.sort(a.reshape(4, -1), axis=1)[:, ::-1].reshape(4, -1, 4).sum(axis=2) * C
    steps = int(0.5 * F_PIX // (C * 4))
    rebuilt = ev._perturb.pearson(drops[:, :steps].T, sums[:, :steps].T)
    agree("SensitivityN (Quantus' across-batch definition, rebuilt)", rebuilt, out)


@pytest.mark.parametrize("normalise", [False, True])
def test_sufficiency_threshold_is_relative_to_the_largest_distance_in_the_batch(normalise):
    from scipy.spatial.distance import cdist

    a = A_PIX.copy()
    a[1] = a[0] + 0.05  # near twins
    a[3] = a[2] - 0.05
    out, _ = q(quantus.Sufficiency, a=a, threshold=0.5, normalise=normalise, abs=True)
    b = np.abs(a) / (np.abs(a).max() if normalise else 1.0)  # normalise: by the batch maximum
    d = cdist(b.reshape(4, -1), b.reshape(4, -1), "seuclidean")
    # Quantus divides the distance matrix by its maximum (always, whatever `normalise`)
    ours = ev.sufficiency(MODEL, X, b, threshold=0.5 * d.max(), metric="seuclidean")
    agree(f"Sufficiency(seuclidean, normalise={normalise}), threshold x max distance", ours.score, out)
    assert ours.neighbours.tolist() == [1, 1, 1, 1]


def test_infidelity_is_yeh_with_cumulative_grid_perturbations():
    out, _ = q(quantus.Infidelity, a=A_EL, perturb_patch_sizes=[4], n_perturb_samples=2, perturb_baseline=0.0)
    # Quantus' perturbations: the 4x4 grid cells set to the baseline one after another, cumulatively
    xs, cur = [], X.copy()
    for r in range(0, 12, 4):
        for c in range(0, 12, 4):
            cur = cur.copy()
            cur[:, :, r:r + 4, c:c + 4] = 0.0
            xs.append(X - cur)
    ours = ev.infidelity(MODEL, X, Y, A_EL, perturbation=np.stack(xs))
    agree("Infidelity (Yeh et al. with Quantus' perturbations given explicitly)", ours, out)


# == robustness ========================================================================================
@pytest.mark.parametrize("kind", ["avg", "max"])
def test_avg_and_max_sensitivity(kind):
    d = np.random.default_rng(12).uniform(-0.2, 0.2, size=(5,) + X.shape)
    cls = quantus.AvgSensitivity if kind == "avg" else quantus.MaxSensitivity
    out, _ = q(cls, a=None, nr_samples=5, perturb_func=additive(d), call_explain_func=q_gradient)
    fn = ev.avg_sensitivity if kind == "avg" else ev.max_sensitivity
    ours = fn(xattr.gradient, MODEL, X, Y, perturbations=d, normalize=True)  # Quantus divides by ||a||
    agree(f"{cls.__name__} (normalised by ‖a‖)", ours, out)


def test_local_lipschitz_estimate_adds_1e_10_to_the_distance():
    d = np.random.default_rng(13).normal(0, 0.1, size=(5,) + X.shape)
    out, _ = q(quantus.LocalLipschitzEstimate, a=None, nr_samples=5, normalise=False, perturb_func=additive(d),
               call_explain_func=q_gradient)
    s = ev.stability.sensitivities(xattr.gradient, MODEL, X, Y, d)
    dist = np.linalg.norm(d.reshape(5, 4, -1), axis=2)
    agree("LocalLipschitzEstimate (xattr's ratio with ‖δ‖ + 1e-10)", (s / (dist + 1e-10)).max(axis=0), out)
    ours = ev.local_lipschitz_estimate(xattr.gradient, MODEL, X, Y, perturbations=d)
    agree("LocalLipschitzEstimate vs xattr, to the 1e-10 offset", ours, out, rtol=1e-9)


# == complexity ========================================================================================
def test_sparseness_adds_1e_7_to_every_magnitude():
    out, _ = q(quantus.Sparseness, normalise=False)
    agree("Sparseness = Gini(abs(a) + 1e-7)", ev.sparseness(np.abs(A_PIX) + 1e-7), out)
    one_hot = np.zeros((4, 1, 12, 12))
    one_hot[:, 0, 3, 4] = 1.0
    hot, _ = q(quantus.Sparseness, a=one_hot, normalise=False)
    np.testing.assert_allclose(ev.sparseness(one_hot), 143 / 144)
    assert np.all(np.asarray(hot) < 143 / 144 - 1e-6)  # the offset spreads mass onto the zeros


def test_complexity_uses_log_p_plus_1e_12():
    out, _ = q(quantus.Complexity, normalise=False)
    ours = ev.complexity(A_PIX)
    p = np.abs(A_PIX).reshape(4, -1) / np.abs(A_PIX).reshape(4, -1).sum(axis=1, keepdims=True)
    agree("Complexity = -Σ p log(p + 1e-12)", -(p * np.log(p + 1e-12)).sum(axis=1), out)
    assert np.all(np.abs(ours - np.asarray(out)) <= 1.001 * F_PIX * 1e-12)  # Σ p (log(p + ε) - log p) ≈ F ε
    MEASURED["Complexity vs xattr (entropy)"] = (np.abs(ours - np.asarray(out)).max(), np.abs(out).max())


def test_effective_complexity():
    out, _ = q(quantus.EffectiveComplexity, normalise=False, eps=0.5)
    agree("EffectiveComplexity(normalise=False)", ev.effective_complexity(A_PIX, eps=0.5), out)


# == localisation ======================================================================================
def test_pointing_game_and_its_ties():
    out, _ = q(quantus.PointingGame, s=MASKS)
    np.testing.assert_array_equal(ev.pointing_game(A_PIX, MASKS), out)
    tied = np.zeros((4, 1, 12, 12))
    tied[:, 0, 0, 0] = tied[:, 0, 5, 5] = 1.0
    masks = np.zeros_like(MASKS)
    masks[:, 0, 5, 5] = True
    theirs, _ = q(quantus.PointingGame, a=tied, s=masks)
    assert np.all(theirs) and not np.any(ev.pointing_game(tied, masks))  # any tied maximum vs the first in raster


def test_relevance_mass_accuracy():
    out, _ = q(quantus.RelevanceMassAccuracy, s=MASKS, normalise=False, abs=True)
    agree("RelevanceMassAccuracy(abs=True)", ev.relevance_mass(A_PIX, MASKS, positive_only=False), out)
    signed, _ = q(quantus.RelevanceMassAccuracy, s=MASKS, normalise=False)
    r = A_PIX.reshape(4, -1)
    agree("RelevanceMassAccuracy (signed: Σ_in a / Σ a)", (r * MASKS.reshape(4, -1)).sum(1) / r.sum(1), signed)
    positive, _ = q(quantus.RelevanceMassAccuracy, a=np.maximum(A_PIX, 0), s=MASKS, normalise=False)
    agree("RelevanceMassAccuracy(a⁺) = xattr relevance_mass", ev.relevance_mass(A_PIX, MASKS), positive)


def test_relevance_rank_accuracy():
    out, _ = q(quantus.RelevanceRankAccuracy, s=MASKS, normalise=False)
    agree("RelevanceRankAccuracy", ev.relevance_rank_accuracy(A_PIX, MASKS), out)


@pytest.mark.parametrize("concept_influence", [False, True])
def test_top_k_intersection(concept_influence):
    out, _ = q(quantus.TopKIntersection, s=MASKS, k=20, concept_influence=concept_influence, normalise=False)
    ours = ev.topk_mask_intersection(A_PIX, MASKS, 20)
    if concept_influence:  # Quantus multiplies by F / |mask|
        ours = ours * F_PIX / MASKS.reshape(4, -1).sum(axis=1)
    agree(f"TopKIntersection(concept_influence={concept_influence})", ours, out)


def test_attribution_localisation_offsets_and_weights():
    out, _ = q(quantus.AttributionLocalisation, s=MASKS, normalise=False, abs=False, positive_attributions=True)
    ours = ev.attribution_localisation(A_PIX, MASKS)
    total = np.maximum(A_PIX, 0).reshape(4, -1).sum(axis=1)
    agree("AttributionLocalisation = R⁺_in / (R⁺_tot + 1e-9)", ours * total / (total + 1e-9), out)
    w, _ = q(quantus.AttributionLocalisation, s=MASKS, normalise=False, abs=False, positive_attributions=True,
             weighted=True)
    size_in = MASKS.reshape(4, -1).sum(axis=1)
    wrong_size = X[2:].size  # Quantus' size_data = x_batch[2:].size: the images from the third on, not H·W
    agree("AttributionLocalisation(weighted) = μ · mask size / x_batch[2:].size",
          ours * total / (total + 1e-9) * size_in / wrong_size, w)
    ratio = ev.attribution_localisation(A_PIX, MASKS, weighted=True) / ours
    np.testing.assert_allclose(ratio, F_PIX / size_in)  # Kohlbrenner et al.: μ · S_tot / S_in


def test_auc():
    out, _ = q(quantus.AUC, s=MASKS, normalise=False)
    agree("AUC", ev.localisation_auc(A_PIX, MASKS), out)
    ties = np.round(A_PIX, 0)
    out, _ = q(quantus.AUC, a=ties, s=MASKS, normalise=False)
    agree("AUC with ties", ev.localisation_auc(ties, MASKS), out)


def test_focus():
    quads = np.array([[1, 0, 0, 1], [0, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1]], dtype=bool)
    out, _ = q(quantus.Focus, normalise=False, call_custom_batch=quads.astype(float))
    ours = ev.focus(A_PIX, quads)
    total = np.maximum(A_PIX, 0).reshape(4, -1).sum(axis=1)
    agree("Focus = Σ R⁺ on the class' quadrants / (Σ R⁺ + 1e-9)", ours * total / (total + 1e-9), out)


# == randomisation =====================================================================================
@pytest.mark.parametrize("order", ["top_down", "bottom_up", "independent"])
def test_mprt_with_quantus_reinitialisation_replayed(order):
    out, _ = q(quantus.MPRT, a=None, layer_order=order, seed=42, abs=False, normalise=False,
               call_explain_func=q_gradient)
    fn = ev.independent_randomization if order == "independent" else ev.cascading_randomization
    ours = fn(xattr.gradient, MODEL, X, Y, rng=0, metrics=("spearman",),
              order="top_down" if order == "independent" else order,
              randomize=quantus_randomizer(NET, independent=order == "independent"))
    keys = [k for k in out if k != "original"]
    if order == "independent":
        keys = keys[::-1]  # Quantus' independent order is bottom-up; xattr's top-down (each from the trained model)
    assert keys == ours.layers, (keys, ours.layers)
    agree(f"MPRT(layer_order={order!r}), Spearman per layer", ours.metrics["spearman"],
          np.array([out[k] for k in keys]))
    agree(f"MPRT(layer_order={order!r}): 'original' key", np.ones(4), out["original"])


def test_mprt_abs_and_normalise_defaults_are_spearman_of_absolute_maps():
    out, _ = q(quantus.MPRT, a=None, layer_order="top_down", call_explain_func=q_gradient)
    ours = ev.cascading_randomization(xattr.gradient, MODEL, X, Y, rng=0, metrics=("spearman_abs",),
                                      randomize=quantus_randomizer(NET))
    agree("MPRT() defaults (abs, normalise) = spearman_abs", ours.metrics["spearman_abs"],
          np.array([out[k] for k in ours.layers]))


def test_smooth_mprt_ignores_explain_func_and_keeps_one_sample_noise_free(monkeypatch):
    S = 4
    z = np.random.default_rng(14).standard_normal((S - 1,) + X.shape)
    calls = itertools.count()
    monkeypatch.setattr(np.random, "randn", lambda *shape: z[next(calls) % (S - 1)].copy())

    def gradient_sum(m, x, t):  # quantus.explain(method="Gradient"): Captum Saliency(abs=False), summed over channels
        return xattr.gradient(m, x, t).sum(axis=1, keepdims=True)

    out, _ = q(quantus.SmoothMPRT, a=None, nr_samples=S, noise_magnitude=0.1, abs=False, normalise=False,
               call_explain_func=q_gradient, call_explain_func_kwargs={"method": "Gradient"})
    draws = np.concatenate([z, np.zeros((1,) + X.shape)])  # Quantus' last sample has no noise
    ours = ev.smooth_mprt(gradient_sum, MODEL, X, Y, rng=0, n_samples=S, noise=0.1, draws=draws,
                          randomize=quantus_randomizer(NET))
    keys = [k for k in out if k != "original"]
    assert keys == ours.layers
    agree("SmoothMPRT (Quantus' noise replayed, explain_func ignored)", ours.metrics["spearman"],
          np.array([out[k] for k in keys]))


def test_efficient_mprt():
    out, _ = q(quantus.EfficientMPRT, a=None, complexity_func_kwargs={"n_bins": 20}, call_explain_func=q_gradient)
    ours = ev.efficient_mprt(xattr.gradient, MODEL, X, Y, rng=0, n_bins=20, randomize=quantus_randomizer(NET))
    agree("EfficientMPRT (relative rise of the histogram entropy)", ours.rise, out)


def test_random_logit_same_classes_and_quantus_ssim_on_flattened_maps():
    out, _ = q(quantus.RandomLogit, a=None, num_classes=4, seed=42, normalise=False,
               similarity_func=correlation_spearman, call_explain_func=q_gradient)
    rs = np.random.RandomState(42)  # Quantus: np.random.seed(seed); randint(0, K - 1) indexes the other classes
    o = rs.randint(0, 3, 4)
    o = o + (o >= Y)
    a_t, a_o = xattr.gradient(MODEL, X, Y), xattr.gradient(MODEL, X, o)
    agree("RandomLogit(similarity_func=spearman), Quantus' classes", ev.spearman(a_t, a_o), out)
    ours = ev.random_logit(xattr.gradient, MODEL, X, Y, rng=0, metrics=("spearman",))
    assert np.all(ours.other != Y)  # xattr draws with its own generator: same law, other numbers
    ssim, _ = q(quantus.RandomLogit, a=None, num_classes=4, seed=42, normalise=False, call_explain_func=q_gradient)
    from skimage.metrics import structural_similarity

    flat = []
    for u, v in zip(a_t.reshape(4, -1), a_o.reshape(4, -1)):  # 1-D SSIM (window 7) of the flattened maps
        flat.append(structural_similarity(u, v, data_range=float(np.ptp(np.concatenate([u, v])))))
    agree("RandomLogit() default: SSIM of flattened maps", flat, ssim)


# == axiomatic =========================================================================================
def test_completeness_compares_floats_with_exact_equality():
    lin = nn.Sequential(nn.Flatten(), nn.Linear(C * F_PIX, 4)).double().eval()
    model = from_torch(lin)
    base = X.min(axis=(1, 2, 3), keepdims=True)  # Quantus' "black"
    a = np.stack([lin[1].weight.detach().numpy()[Y[i]].reshape(X.shape[1:]) * (X[i] - base[i]) for i in range(4)])
    gap = a.reshape(4, -1).sum(axis=1) - (model.forward(X) - model.forward(np.broadcast_to(base, X.shape)))[
        np.arange(4), Y]
    assert np.abs(gap).max() < 1e-12  # complete to round-off
    out, _ = q(quantus.Completeness, model=lin, a=a, normalise=False)
    assert not all(out)  # ... but float '==' rejects round-off
    normalised, _ = q(quantus.Completeness, model=lin, a=a)
    assert not any(normalised)  # and the default normalisation (by the batch maximum) breaks completeness anyway


if __name__ == "__main__":  # python tests/test_quantus_peer.py: run the comparisons and print the table
    import sys

    code = pytest.main([__file__, "-q", "-p", "no:cacheprovider"])
    measured = sys.modules[__name__.replace("__main__", "test_quantus_peer")].MEASURED \
        if "test_quantus_peer" in sys.modules else MEASURED
    print("\n| comparison | max abs difference | scale (max abs Quantus) |\n|---|---|---|")
    for name, (err, scale) in measured.items():
        print(f"| {name} | {err:.1e} | {scale:.3g} |")
    print(f"\nQuantus {quantus.__version__}, torch {torch.__version__}, numpy {np.__version__}")
    sys.exit(code)
