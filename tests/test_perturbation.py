"""Occlusion, LIME, KernelSHAP and exact Shapley values.

Oracles: closed forms on linear models; the permutation definition of the Shapley value
(Shapley 1953), written independently of the coalition formula the code uses; the Shapley
axioms; an independent ridge solve for LIME.
"""
import itertools
import math

import autograd.numpy as anp
import numpy as np
import pytest

import xattr
from xattr._progress import Progress
from xattr.methods import perturbation as P
from xattr.methods.incremental import use_incremental
from xattr.methods.perturbation._coalitions import _local_plan
from xattr.methods.perturbation.kernel_shap import _sample_kernel_pairs
from xattr.methods.segments import grid_segments
from xattr.nn import Conv2D, Dense, Flatten, GlobalAvgPool2D, MaxPool2D, ReLU, Sequential


def small_cnn(seed=0, c=2):
    g = np.random.default_rng(seed)
    return Sequential(Conv2D(c, 4, 3, padding=1, rng=g), ReLU(), MaxPool2D(2),
                      Conv2D(4, 6, 3, padding=1, rng=g), ReLU(), GlobalAvgPool2D(), Dense(6, 3, rng=g))


def linear_model(w, b):
    """f(x)_k = <w_k, x> + b_k, forward-only use (autograd-compatible)."""
    W = w.reshape(w.shape[0], -1)
    return xattr.from_function(lambda x: anp.dot(anp.reshape(x, (x.shape[0], -1)), W.T) + b, "linear")


def permutation_shapley(value, M):
    """phi_i = mean over the M! orders of i's marginal contribution (the definition; slow, independent)."""
    phi = np.zeros(M)
    for order in itertools.permutations(range(M)):
        present = np.zeros(M, bool)
        before = value(present)
        for i in order:
            present[i] = True
            after = value(present)
            phi[i] += after - before
            before = after
    return phi / math.factorial(M)


def game(model, x, lab, target, fill=0.0):
    def v(present):
        img = np.where(present[lab][None, None], x, fill)
        return float(model.forward(img)[0, target])
    return v


# -- exact Shapley ------------------------------------------------------------------------------
def test_shapley_from_values_matches_the_permutation_definition():
    rng = np.random.default_rng(0)
    M = 5
    v = rng.normal(size=2**M)
    def code(present):
        return int(np.dot(present, 2 ** np.arange(M)))

    np.testing.assert_allclose(P.shapley_from_values(v), permutation_shapley(lambda s: v[code(s)], M), rtol=1e-12)
    # glove game: one left glove (player 0), two right gloves: phi = (2/3, 1/6, 1/6)
    glove = np.array([min(s & 1, ((s >> 1) & 1) + ((s >> 2) & 1)) for s in range(8)], float)
    np.testing.assert_allclose(P.shapley_from_values(glove), [2 / 3, 1 / 6, 1 / 6], rtol=1e-14)
    with pytest.raises(ValueError, match="2\\^M"):
        P.shapley_from_values(np.zeros(6))


def test_shapley_on_a_cnn_equals_the_definition_and_is_efficient():
    model, rng = small_cnn(), np.random.default_rng(1)
    x = rng.random((1, 2, 8, 8))
    lab = grid_segments((8, 8), 2)
    attr, phi = xattr.shapley(model, x, 1, segments=lab, return_values=True, batch_size=5)
    assert attr.shape == (1, 1, 8, 8) and phi.shape == (1, 4)
    np.testing.assert_allclose(phi[0], permutation_shapley(game(model, x, lab, 1), 4), rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(attr[0, 0], phi[0][lab])
    # efficiency: sum = f(x) - f(everything hidden)
    gap = model.forward(x)[0, 1] - model.forward(np.zeros_like(x))[0, 1]
    np.testing.assert_allclose(phi.sum(), gap, rtol=1e-12)


def two_segment_model(a_weight, b_weight, dummy):
    """f = s_A s_B + (s_A + s_B) s_C^2 + sin(s_C) (+ 0 * s_D) with s_k the pixel sum of segment k."""
    def f(x):
        s = anp.reshape(x, (x.shape[0], 4, -1)).sum(axis=2)  # 4 horizontal bands of a (1, 4, k) image
        out = a_weight * s[:, 0] * s[:, 1] + b_weight * (s[:, 0] + s[:, 1]) * s[:, 2] ** 2 + anp.sin(s[:, 2])
        out = out + dummy * s[:, 3]
        return anp.stack([out, s[:, 0] - 2 * s[:, 3]], axis=1)
    return xattr.from_function(f)


def band_image():
    x = np.zeros((1, 1, 4, 3))
    x[0, 0, 0] = [0.3, 0.5, 0.2]
    x[0, 0, 1] = [0.2, 0.3, 0.5]  # the same sum as band 0: players 0 and 1 are symmetric
    x[0, 0, 2] = [0.7, -0.1, 0.4]
    x[0, 0, 3] = [1.0, 2.0, 3.0]
    return x, np.repeat(np.arange(4), 3).reshape(4, 3)


def test_shapley_axioms_symmetry_dummy_linearity():
    x, lab = band_image()
    f = two_segment_model(1.0, 1.0, 0.0)
    _, phi = xattr.shapley(f, x, 0, segments=lab, return_values=True)
    phi = phi[0]
    assert abs(phi[0] - phi[1]) < 1e-12  # symmetry
    assert phi[3] == 0.0  # dummy: band 3 never changes the value (exactly zero)
    np.testing.assert_allclose(phi.sum(), f.forward(x)[0, 0] - f.forward(0 * x)[0, 0], rtol=1e-12)
    # linearity: the game of 2 f_0 + 3 f_1 has values 2 phi(f_0) + 3 phi(f_1) (a callable target)
    _, phi1 = xattr.shapley(f, x, 1, segments=lab, return_values=True)
    _, combo = xattr.shapley(f, x, lambda s: 2 * s[:, 0] + 3 * s[:, 1], segments=lab, return_values=True)
    np.testing.assert_allclose(combo[0], 2 * phi + 3 * phi1[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(phi1[0], [0.0 + 1.0, 0.0, 0.0, -2 * 6.0], atol=1e-12)  # additive: own terms


def test_shapley_refuses_too_many_segments_before_any_evaluation():
    calls = []
    f = xattr.from_function(lambda x: calls.append(1) or anp.reshape(x, (x.shape[0], -1))[:, :2])
    x = np.ones((1, 1, 3, 7))
    with pytest.raises(ValueError, match="MAX_EXACT_SHAPLEY_SEGMENTS = 20"):
        xattr.shapley(f, x, 0, segments=np.arange(21).reshape(3, 7))
    assert len(calls) == 1  # only f(x) itself (target resolution), no coalition


# -- KernelSHAP ---------------------------------------------------------------------------------
@pytest.mark.parametrize("M_grid", [(1, 2), (2, 2), (2, 3), (3, 3)])
def test_kernel_shap_with_every_coalition_is_exact_shapley(M_grid):
    model, rng = small_cnn(2), np.random.default_rng(3)
    x = rng.random((2, 2, 6, 6))
    lab = grid_segments((6, 6), M_grid)
    exact = xattr.shapley(model, x, np.array([0, 2]), segments=lab, baseline="blur", sigma=1.0)
    ks = xattr.kernel_shap(model, x, np.array([0, 2]), segments=lab, baseline="blur", sigma=1.0)  # auto: enumerates
    np.testing.assert_allclose(ks, exact, rtol=0, atol=1e-10 * max(1.0, np.abs(exact).max()))


def test_kernel_shap_single_segment_is_the_total_change():
    model, x = small_cnn(), np.random.default_rng(4).random((1, 2, 4, 4))
    ks = xattr.kernel_shap(model, x, 0, segments=np.zeros((4, 4), int))
    gap = model.forward(x)[0, 0] - model.forward(0 * x)[0, 0]
    np.testing.assert_allclose(ks, np.full((1, 1, 4, 4), gap), rtol=1e-12)


def interaction_model(M, seed=5):
    """Cheap nonlinear game on M one-pixel players: quadratic + tanh interactions."""
    g = np.random.default_rng(seed)
    A, u = g.normal(size=(M, M)), g.normal(size=M)

    def f(x):
        s = anp.reshape(x, (x.shape[0], -1))
        return anp.stack([anp.sum(anp.dot(s, A) * s, axis=1) + anp.tanh(anp.dot(s, u)), s[:, 0]], axis=1)
    return xattr.from_function(f)


def test_sampled_kernel_shap_converges_and_stays_efficient():
    M = 10
    f, x = interaction_model(M), np.random.default_rng(6).random((1, 1, 1, M)) + 0.5
    lab = np.arange(M).reshape(1, M)
    _, exact = xattr.shapley(f, x, 0, segments=lab, return_values=True, batch_size=1024)
    total = f.forward(x)[0, 0] - f.forward(0 * x)[0, 0]
    err = {}
    for n in (40, 640):
        e = []
        for seed in range(6):
            _, phi = xattr.kernel_shap(f, x, 0, segments=lab, n_samples=n, rng=seed, return_values=True)
            np.testing.assert_allclose(phi.sum(), total, rtol=1e-10)  # efficiency is a constraint, not a hope
            e.append(np.linalg.norm(phi[0] - exact[0]))
        err[n] = np.mean(e)
    scale = np.linalg.norm(exact)
    assert err[640] < 0.5 * err[40]  # 16x the samples: ~4x smaller error expected
    assert err[640] < 0.1 * scale


def test_kernel_shap_sampling_is_deterministic_and_needs_rng():
    f, x = interaction_model(10), np.ones((1, 1, 1, 10))
    lab = np.arange(10).reshape(1, 10)
    a = xattr.kernel_shap(f, x, 0, segments=lab, n_samples=51, rng=3)
    b = xattr.kernel_shap(f, x, 0, segments=lab, n_samples=51, rng=np.random.default_rng(3))
    c = xattr.kernel_shap(f, x, 0, segments=lab, n_samples=51, rng=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    with pytest.raises(TypeError, match="rng"):
        xattr.kernel_shap(f, x, 0, segments=lab, n_samples=50)
    with pytest.raises(ValueError, match="n_samples"):
        xattr.kernel_shap(f, x, 0, segments=lab, n_samples=0, rng=0)


def test_kernel_pair_sampler_draws_sizes_from_the_shapley_kernel():
    M, gen = 6, np.random.default_rng(0)
    Z = _sample_kernel_pairs(M, 20000, gen)
    assert Z.shape == (40000, M)
    np.testing.assert_array_equal(Z[20000:], ~Z[:20000])  # complements
    s = np.arange(1, M)
    p = (1 / (s * (M - s))) / (1 / (s * (M - s))).sum()
    freq = np.bincount(Z[:20000].sum(1), minlength=M)[1:] / 20000
    np.testing.assert_allclose(freq, p, atol=0.015)
    # within a size, every subset equally likely: each player present with probability s / M
    size2 = Z[:20000][Z[:20000].sum(1) == 2]
    np.testing.assert_allclose(size2.mean(0), 2 / M, atol=0.03)


# -- LIME ---------------------------------------------------------------------------------------
def test_lime_on_a_linear_model_recovers_segment_sums_of_coefficients():
    rng = np.random.default_rng(7)
    w, b = rng.normal(size=(2, 3, 6, 6)), np.array([0.3, -1.0])
    model, x = linear_model(w, b), np.ones((1, 3, 6, 6))
    lab = grid_segments((6, 6), (2, 3))
    attr, (weights, intercept) = xattr.lime(model, x, 1, segments=lab, n_samples=200, rng=0, alpha=0.0,
                                             return_weights=True)
    want = np.bincount(lab.ravel(), weights=w[1].sum(0).ravel())  # sum of the coefficients in each segment
    np.testing.assert_allclose(weights[0], want, rtol=1e-10)
    np.testing.assert_allclose(intercept, [b[1]], atol=1e-10)
    np.testing.assert_allclose(attr[0, 0], want[lab], rtol=1e-10)


def test_lime_ridge_matches_an_independent_solve():
    f, x = interaction_model(5), np.random.default_rng(8).random((1, 1, 1, 5))
    lab = np.arange(5).reshape(1, 5)
    _, (weights, intercept) = xattr.lime(f, x, 0, segments=lab, n_samples=64, rng=9, kernel_width=0.4, alpha=0.7,
                                         return_weights=True)
    # replay the same draws and solve the penalised normal equations with an explicit intercept column
    gen = np.random.default_rng(9)
    Z = gen.integers(0, 2, size=(64, 5)).astype(bool)
    Z[0] = True
    y = np.array([f.forward(np.where(z[lab][None, None], x, 0.0))[0, 0] for z in Z])
    cos = Z.sum(1) / (np.sqrt(np.maximum(Z.sum(1), 1e-300)) * np.sqrt(5))  # cosine similarity with all-ones
    pi = np.exp(-((1 - cos) ** 2) / 0.4**2)
    X = np.hstack([np.ones((64, 1)), Z])
    pen = np.diag([0.0] + [0.7] * 5)
    sol = np.linalg.solve(X.T @ (pi[:, None] * X) + pen, X.T @ (pi * y))
    np.testing.assert_allclose(weights[0], sol[1:], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(intercept[0], sol[0], rtol=1e-9)


def test_lime_determinism_and_errors():
    model, x = small_cnn(), np.random.default_rng(10).random((2, 2, 8, 8))
    a = xattr.lime(model, x, 0, n_samples=30, rng=1)
    np.testing.assert_array_equal(a, xattr.lime(model, x, 0, n_samples=30, rng=1))
    assert not np.array_equal(a, xattr.lime(model, x, 0, n_samples=30, rng=2))
    assert a.shape == (2, 1, 8, 8) and len(np.unique(a[0])) <= 16  # default 4 x 4 grid
    with pytest.raises(TypeError, match="rng"):
        xattr.lime(model, x, 0)
    with pytest.raises(ValueError, match="kernel_width"):
        xattr.lime(model, x, 0, rng=0, kernel_width=0)
    with pytest.raises(ValueError, match="alpha"):
        xattr.lime(model, x, 0, rng=0, alpha=-1)
    with pytest.raises(ValueError, match="n_samples"):
        xattr.lime(model, x, 0, rng=0, n_samples=1)


# -- occlusion ----------------------------------------------------------------------------------
def occlusion_oracle(w, x, base, target, k, s, aggregate):
    """Closed form on f = <w, x> + b: a window's drop is sum over it of w (x - baseline); loops over windows."""
    N, C, H, W = x.shape
    total, count = np.zeros((N, H, W)), np.zeros((H, W))
    contrib = (w[target] * (x - base)).sum(1)  # (N, H, W)
    r = 0
    while True:
        c = 0
        while True:
            if r < H and c < W:
                total[:, r:r + k, c:c + k] += contrib[:, r:r + k, c:c + k].sum(axis=(1, 2))[:, None, None]
                count[r:r + k, c:c + k] += 1
            if c + k >= W:
                break
            c += s
        if r + k >= H:
            break
        r += s
    if aggregate == "mean":
        total = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    return total[:, None]


@pytest.mark.parametrize("k,s,aggregate", [(3, 1, "mean"), (3, 2, "sum"), (4, 4, "mean"), (2, 3, "mean"),
                                           (7, 3, "sum"), (7, 7, "mean")])
def test_occlusion_on_a_linear_model_is_the_closed_form(k, s, aggregate):
    rng = np.random.default_rng(11)
    w, b = rng.normal(size=(2, 2, 7, 7)), rng.normal(size=2)
    x, base = rng.random((2, 2, 7, 7)), 0.25
    got = xattr.occlusion(linear_model(w, b), x, 1, window=k, stride=s, baseline=base, aggregate=aggregate,
                          batch_size=7)
    np.testing.assert_allclose(got, occlusion_oracle(w, x, base, 1, k, s, aggregate), rtol=1e-10, atol=1e-12)


def test_occlusion_non_overlapping_windows_carry_their_window_sum():
    rng = np.random.default_rng(12)
    w, x = rng.normal(size=(1, 1, 6, 6)), rng.random((1, 1, 6, 6))
    got = xattr.occlusion(linear_model(w, np.zeros(1)), x, 0, window=3, stride=3)
    cells = (w[0, 0] * x[0, 0]).reshape(2, 3, 2, 3).sum(axis=(1, 3))
    np.testing.assert_allclose(got[0, 0], np.kron(cells, np.ones((3, 3))), rtol=1e-12)


def test_occlusion_incremental_equals_full_and_auto_picks_it():
    model, rng = small_cnn(13, c=3), np.random.default_rng(13)
    x = rng.random((2, 3, 24, 24))
    fill = xattr.methods.segments.fill_image(x, "blur", sigma=2.0)
    full = xattr.occlusion(model, x, 2, window=5, stride=3, baseline=fill, incremental=False)
    inc = xattr.occlusion(model, x, 2, window=5, stride=3, baseline=fill, incremental=True, batch_size=13)
    np.testing.assert_allclose(inc, full, rtol=0, atol=1e-13 * np.abs(full).max())
    assert use_incremental(model, x, (5, 5), "auto")
    assert not use_incremental(model, x, (24, 24), "auto")  # the patch reaches everything: no gain


def test_occlusion_float32_and_forward_only_models():
    model, x = small_cnn(14), np.random.default_rng(14).random((1, 2, 8, 8)).astype(np.float32)
    a = xattr.occlusion(model, x, 0, window=4, stride=2)
    b = xattr.occlusion(model, x, 0, window=4, stride=2, incremental=False)
    assert a.dtype == np.float32 and a.shape == (1, 1, 8, 8)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max())

    class ForwardOnly:  # no vjp at all: perturbation methods must still work
        def forward(self, x):
            return model.forward(x)

    np.testing.assert_allclose(xattr.occlusion(ForwardOnly(), x, 0, window=4, stride=2), b, rtol=1e-6)
    with pytest.raises(ValueError, match="region maps"):
        xattr.occlusion(ForwardOnly(), x, 0, window=4, stride=2, incremental=True)


def test_occlusion_bad_input():
    model, x = small_cnn(), np.ones((1, 2, 8, 8))
    with pytest.raises(ValueError, match="window must be between 1 and the image size"):
        xattr.occlusion(model, x, 0, window=9)
    with pytest.raises(ValueError, match="stride must be at least 1"):
        xattr.occlusion(model, x, 0, window=3, stride=0)
    with pytest.raises(ValueError, match="aggregate"):
        xattr.occlusion(model, x, 0, aggregate="max")
    with pytest.raises(ValueError, match="incremental"):
        xattr.occlusion(model, x, 0, incremental="yes")
    with pytest.raises(ValueError, match="baseline"):
        xattr.occlusion(model, x, 0, baseline="mean")
    with pytest.raises(ValueError, match="batch_size"):
        xattr.occlusion(model, x, 0, batch_size=0)
    with pytest.raises(ValueError, match="out of range"):
        xattr.occlusion(model, x, 7)
    with pytest.raises(ValueError, match="rank 4"):
        xattr.occlusion(model, x[0], 0)
    with pytest.raises(TypeError, match="forward"):
        xattr.occlusion(object(), x, 0)


def test_segment_methods_reject_bad_segments_and_keep_inputs():
    model, x = small_cnn(), np.random.default_rng(15).random((2, 2, 6, 6))
    before = x.copy()
    for fn, kw in [(xattr.shapley, {}), (xattr.kernel_shap, {"rng": 0}), (xattr.lime, {"rng": 0, "n_samples": 8})]:
        with pytest.raises(ValueError, match="segments must have shape"):
            fn(model, x, 0, segments=np.zeros((5, 6), int), **kw)
        with pytest.raises(TypeError, match="integer label array"):
            fn(model, x, 0, segments=np.zeros((6, 6)), **kw)
        out = fn(model, x, 0, segments=grid_segments((6, 6), 2), baseline="mean", **kw)
        assert out.shape == (2, 1, 6, 6) and out.dtype == np.float64
    xattr.occlusion(model, x, 0, window=2, stride=2)
    np.testing.assert_array_equal(x, before)


def test_per_image_segmentations_with_different_counts():
    model, x = small_cnn(), np.random.default_rng(16).random((2, 2, 6, 6))
    seg = np.stack([grid_segments((6, 6), 2), grid_segments((6, 6), (1, 3))])
    attr, phi = xattr.shapley(model, x, 1, segments=seg, return_values=True)
    assert isinstance(phi, list) and [len(p) for p in phi] == [4, 3]
    for n in range(2):
        one = xattr.shapley(model, x[n:n + 1], 1, segments=seg[n])
        np.testing.assert_allclose(attr[n:n + 1], one, rtol=1e-12)


def test_registry_and_progress(capsys):
    assert xattr.available_methods("perturbation") == ["occlusion", "lime", "kernel_shap", "shapley",
                                                        "prediction_difference", "rise"]
    assert xattr.get_method("kernel_shap") is xattr.kernel_shap
    bar = Progress(3, True, "demo")
    bar.bar = None  # force the built-in fallback even when tqdm is installed
    bar.update(3)
    assert "demo: 3/3" in capsys.readouterr().err
    silent = Progress(3, False, "quiet")
    silent.update(3)
    assert capsys.readouterr().err == ""


# -- exact Shapley through receptive fields (locality) ------------------------------------------
def local_archs():
    from xattr.nn import AvgPool2D, BatchNorm2D, Dropout
    g = np.random.default_rng(20)
    bn = BatchNorm2D(3)
    bn.weight, bn.bias, bn.running_mean = g.normal(size=3), g.normal(size=3), g.normal(size=3)
    return [
        Sequential(Conv2D(2, 3, 3, padding=1, rng=g), ReLU(), MaxPool2D(2), Conv2D(3, 4, 3, padding=1, rng=g), ReLU(),
                   GlobalAvgPool2D(), Dense(4, 3, rng=g)),
        Sequential(Conv2D(2, 3, 2, stride=2, rng=g), bn, ReLU(), AvgPool2D(3, stride=1, padding=1),
                   Conv2D(3, 3, 3, dilation=2, padding=2, rng=g), Dropout(), ReLU(), GlobalAvgPool2D(),
                   Dense(3, 5, rng=g), ReLU(), Dense(5, 3, rng=g)),
        Sequential(Conv2D(2, 2, 1, rng=g), ReLU(), MaxPool2D(3, stride=2, padding=1), GlobalAvgPool2D(),
                   Dense(2, 3, rng=g)),
        Sequential(Conv2D(2, 3, 4, padding="same", rng=g), ReLU(), MaxPool2D(2), Conv2D(3, 3, 2, padding="same", rng=g),
                   GlobalAvgPool2D(), Dense(3, 3, rng=g)),  # even kernels: asymmetric padding
    ]


@pytest.mark.parametrize("arch", range(4))
@pytest.mark.parametrize("seg_kind", ["grid", "random"])
def test_shapley_through_receptive_fields_equals_enumeration(arch, seg_kind):
    model, rng = local_archs()[arch], np.random.default_rng(arch)
    x = rng.random((2, 2, 12, 12))
    if seg_kind == "grid":
        seg = grid_segments((12, 12), (2, 3))
    else:  # scattered labels: receptive fields touch many segments, so locality does not pay off
        seg = rng.integers(0, 5, (12, 12))
    target = np.array([0, 2])
    full = xattr.shapley(model, x, target, segments=seg, baseline="blur", sigma=1.0, locality=False)
    local = xattr.shapley(model, x, target, segments=seg, baseline="blur", sigma=1.0, locality=True, batch_size=7)
    np.testing.assert_allclose(local, full, rtol=1e-11, atol=1e-13 * np.abs(full).max())


def test_locality_auto_uses_fewer_evaluations_and_true_is_checked():
    model = local_archs()[0]
    x = np.random.default_rng(21).random((1, 2, 24, 24))
    lab = grid_segments((24, 24), 3)  # 8-pixel cells, receptive field 8 pixels: at most 2 x 2 segments each
    plan = _local_plan(model, x.shape, lab, 9)
    assert plan is not None and plan.cost < 2**9
    calls = []

    class Counting(Sequential):
        def forward(self, x):
            calls.append(len(x))
            return super().forward(x)

    counting = Counting(*[(la.name, la) for la in model.layers])
    xattr.shapley(counting, x, 0, segments=lab)  # auto: tables, no full forwards of coalitions
    assert sum(calls) == 1  # only f(x) for the target
    flat = Sequential(Conv2D(2, 2, 3, rng=0), ReLU(), Flatten(), Dense(2 * 22 * 22, 3, rng=1))
    with pytest.raises(ValueError, match="GlobalAvgPool2D"):
        xattr.shapley(flat, x, 0, segments=lab, locality=True)
    with pytest.raises(ValueError, match="locality"):
        xattr.shapley(model, x, 0, segments=lab, locality="yes")
    np.testing.assert_allclose(xattr.shapley(flat, x, 0, segments=lab),  # auto falls back to enumeration
                               xattr.shapley(flat, x, 0, segments=lab, locality=False))


@pytest.mark.parametrize("method", ["lime", "kernel_shap"])
def test_lime_and_kernel_shap_through_receptive_fields_equal_direct_evaluation(method):
    model, x = local_archs()[0], np.random.default_rng(22).random((1, 2, 24, 24))
    lab = grid_segments((24, 24), 3)
    fn = getattr(xattr, method)
    kw = dict(segments=lab, n_samples=300, rng=5, baseline="mean")
    direct = fn(model, x, 1, locality=False, **kw)
    local = fn(model, x, 1, locality=True, **kw)
    np.testing.assert_allclose(local, direct, rtol=1e-9, atol=1e-12 * np.abs(direct).max())
