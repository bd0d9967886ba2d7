"""The CAM family (xattr/methods/cam_family.py): closed forms on linear heads, naive twins of the perturbation
methods, Eigen-CAM against an eigendecomposition, every method at DAG nodes, bad input."""
import numpy as np
import pytest
from scipy import ndimage, special

import xattr
from xattr.methods.cam import activations_and_gradients, upsample_bilinear
from xattr.nn import Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, MaxPool2D, ReLU, Sequential, reference
from xattr.testing.networks import small_resnet

FAMILY = [xattr.grad_cam_plus_plus, xattr.score_cam, xattr.faster_score_cam, xattr.layer_cam, xattr.xgrad_cam,
          xattr.hires_cam, xattr.eigen_cam, xattr.ablation_cam]
X = np.random.default_rng(3).normal(size=(2, 3, 8, 8))


def _gap_net(seed=0):
    """conv-relu-pool-conv-relu -> GAP -> Flatten -> Dropout -> Dense: the CAM head (features 'relu2', 4x4)."""
    g = np.random.default_rng(seed)
    m = Sequential(Conv2D(3, 4, 3, padding=1, rng=g), ReLU(), MaxPool2D(2), Conv2D(4, 6, 3, padding=1, rng=g), ReLU(),
                   GlobalAvgPool2D(), Flatten(), Dropout(), Dense(6, 5, rng=g))
    m["dense1"].bias = g.normal(size=5)
    return m


def _flat_net(seed=1):
    """conv-relu-conv-relu -> Flatten -> Dense: a linear head whose weights differ per position."""
    g = np.random.default_rng(seed)
    m = Sequential(Conv2D(3, 4, 3, padding=1, rng=g), ReLU(), Conv2D(4, 3, 3, stride=2, padding=1, rng=g), ReLU(),
                   Flatten(), Dense(3 * 4 * 4, 5, rng=g))
    m["dense1"].bias = g.normal(size=5)
    return m


def _head(m, feats="relu2"):
    return m.activations(X, feats), m["dense1"].weight, m(X)


# -- closed forms on linear heads ----------------------------------------------------------------------
@pytest.mark.parametrize("target", [0, np.array([1, 4])])
def test_xgrad_cam_equals_grad_cam_on_gap_heads(target):
    """∂S/∂A = W/(hw) everywhere, so Σ_ij A_ij/ΣA · W/(hw) = W/(hw): the same weights, not only the same shape."""
    m = _gap_net()
    for relu in (True, False):
        a = xattr.xgrad_cam(m, X, target, relu=relu, upsample=False)
        b = xattr.grad_cam(m, X, target, relu=relu, upsample=False)
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_hires_cam_is_cam_over_area_on_gap_heads_and_the_exact_share_of_the_score_on_flatten_heads():
    m = _gap_net()
    t = np.array([2, 0])
    np.testing.assert_allclose(xattr.hires_cam(m, X, t, relu=False, upsample=False),
                               xattr.cam(m, X, t, upsample=False) / 16, rtol=1e-12, atol=1e-15)
    f = _flat_net()
    A, W, s = _head(f, "relu2")  # A (2, 3, 4, 4); W (5, 48) over (k, i, j) in C order
    hr = xattr.hires_cam(f, X, t, relu=False, upsample=False)[:, 0]
    expect = np.einsum("nkij,nkij->nij", W[t].reshape(2, 3, 4, 4), A)  # gradient x activation, summed over channels
    np.testing.assert_allclose(hr, expect, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(hr.sum(axis=(1, 2)), s[[0, 1], t] - f["dense1"].bias[t], rtol=1e-12)
    np.testing.assert_allclose(xattr.hires_cam(f, X, t, upsample=False)[:, 0], np.maximum(expect, 0), rtol=1e-12,
                               atol=1e-15)


@pytest.mark.parametrize("score", ["exp", "raw"])
def test_grad_cam_plus_plus_closed_form_on_gap_heads(score):
    """g = W_ck/(hw) at every position: α = 1/(2 + ΣA·g), w_k = hw·ReLU(g)·α (·exp(S))."""
    m = _gap_net()
    A, W, s = _head(m)
    t = np.array([3, 1])
    g = W[t] / 16  # (N, K)
    w = 16 * np.maximum(g, 0) / (2 + A.sum(axis=(2, 3)) * g)
    if score == "exp":
        w = w * np.exp(s[[0, 1], t])[:, None]
    expect = np.maximum(np.einsum("nk,nkhw->nhw", w, A), 0)[:, None]
    got = xattr.grad_cam_plus_plus(m, X, t, score=score, upsample=False)
    np.testing.assert_allclose(got, expect, rtol=1e-12, atol=1e-15)
    assert np.abs(got).max() > 0
    # "exp" and "raw" differ by exp(S) per image, nothing else
    raw = xattr.grad_cam_plus_plus(m, X, t, score="raw", relu=False, upsample=False)
    ex = xattr.grad_cam_plus_plus(m, X, t, score="exp", relu=False, upsample=False)
    np.testing.assert_allclose(ex, raw * np.exp(s[[0, 1], t])[:, None, None, None], rtol=1e-12)


def test_grad_cam_plus_plus_by_hand_on_a_flatten_head_with_alpha_normalisation_and_epsilon():
    f = _flat_net()
    A, W, s = _head(f)
    t = 4
    g = np.broadcast_to(W[t].reshape(3, 4, 4), A.shape)
    for norm, eps in [(False, 0.0), (True, 0.0), (False, 1e-3)]:
        alpha = g**2 / (2 * g**2 + A.sum(axis=(2, 3), keepdims=True) * g**3 + eps)
        if norm:
            alpha = alpha / alpha.sum(axis=(2, 3), keepdims=True)
        w = (alpha * np.maximum(g, 0)).sum(axis=(2, 3))
        expect = np.einsum("nk,nkhw->nhw", w, A)[:, None]
        got = xattr.grad_cam_plus_plus(f, X, t, score="raw", normalize_alpha=norm, epsilon=eps, relu=False,
                                       upsample=False)
        np.testing.assert_allclose(got, expect, rtol=1e-11, atol=1e-15)


def test_grad_cam_plus_plus_alpha_is_zero_where_the_gradient_is_zero():
    """Dead positions (g = 0: 0/0 in Eq. 19) get α = 0, not NaN; the map stays finite."""
    m = _gap_net()
    out = xattr.grad_cam_plus_plus(m, X, 0, layer="conv1", upsample=False)  # before a ReLU: many exact zeros in g
    _, g, _ = activations_and_gradients(m, X, 0, "conv1")
    assert (g == 0).any() and np.isfinite(out).all()


def test_layer_cam_closed_form_on_gap_heads_and_multi_layer_fusion_by_hand():
    m = _gap_net()
    A, W, _ = _head(m)
    t = np.array([1, 2])
    expect = np.maximum(np.einsum("nk,nkhw->nhw", np.maximum(W[t] / 16, 0), A), 0)[:, None]
    np.testing.assert_allclose(xattr.layer_cam(m, X, t, upsample=False), expect, rtol=1e-12, atol=1e-15)
    # two nodes: each map tanh(2 M / max M), resized to the input, element-wise max
    maps = []
    for node in ("relu1", "relu2"):
        a, g, _ = activations_and_gradients(m, X, t, node)
        mm = np.maximum((np.maximum(g, 0) * a).sum(axis=1), 0)
        mm = np.tanh(2.0 * mm / mm.max(axis=(1, 2), keepdims=True))
        maps.append(upsample_bilinear(mm[:, None], (8, 8)) if mm.shape[1:] != (8, 8) else mm[:, None])
    np.testing.assert_allclose(xattr.layer_cam(m, X, t, layer=["relu1", "relu2"]), np.maximum(*maps), rtol=1e-12)
    # without upsampling the fused map has the largest node's size
    assert xattr.layer_cam(m, X, t, layer=["relu2", "conv1"], upsample=False).shape == (2, 1, 8, 8)
    unscaled = xattr.layer_cam(m, X, t, layer=["relu1", "relu2"], gamma=None)
    single = [xattr.layer_cam(m, X, t, layer=n) for n in ("relu1", "relu2")]
    np.testing.assert_allclose(unscaled, np.maximum(*single), rtol=1e-12)


# -- Eigen-CAM ------------------------------------------------------------------------------------------
def _eig_projection(A, center):
    """The first principal direction by an eigendecomposition of FᵀF (not an SVD), per image, with a loop."""
    out = []
    for a in A:
        F = a.reshape(a.shape[0], -1).T
        if center:
            F = F - F.mean(axis=0)
        vals, vecs = np.linalg.eigh(F.T @ F)
        v = vecs[:, np.argmax(vals)]
        v = v if v.sum() > 0 else -v
        out.append((F @ v).reshape(a.shape[1:]))
    return np.array(out)[:, None]


@pytest.mark.parametrize("center", [False, True])
def test_eigen_cam_equals_the_eigenvector_of_the_gram_matrix(center):
    m = _gap_net()
    for node in ("relu2", "conv2", "maxpool1"):
        A = m.activations(X, node)
        np.testing.assert_allclose(xattr.eigen_cam(m, X, 0, layer=node, center=center, upsample=False),
                                   _eig_projection(A, center), rtol=1e-9, atol=1e-12)
    # non-negative activations, no centring: the Perron vector, a non-negative map (the sign convention)
    assert (xattr.eigen_cam(m, X, 0, layer="relu2", upsample=False) >= -1e-12).all()
    relu = xattr.eigen_cam(m, X, 0, layer="conv2", center=center, relu=True, upsample=False)
    np.testing.assert_allclose(relu, np.maximum(_eig_projection(m.activations(X, "conv2"), center), 0), rtol=1e-9,
                               atol=1e-12)


def test_eigen_cam_is_class_agnostic_and_a_rank_one_activation_is_its_own_map():
    m = _gap_net()
    assert np.array_equal(xattr.eigen_cam(m, X, 0), xattr.eigen_cam(m, X, 4))
    assert np.array_equal(xattr.eigen_cam(m, X, 0), xattr.eigen_cam(m, X, lambda s: s[:, 1] - s[:, 2]))
    # F = u vᵀ with v >= 0: the projection is |v| u (exact rank one)
    u, v = np.random.default_rng(0).normal(size=16), np.abs(np.random.default_rng(1).normal(size=6))
    A = np.einsum("k,p->kp", v, u).reshape(1, 6, 4, 4)
    ident = Sequential(GlobalAvgPool2D())  # not spatial: refused
    with pytest.raises(ValueError, match="spatial maps"):
        xattr.eigen_cam(ident, A, 0, layer="gap1")
    conv = Sequential(Conv2D(6, 6, 1, bias=False), GlobalAvgPool2D(), Dense(6, 2))
    conv["conv1"].weight = np.eye(6)[:, :, None, None]  # the identity, signed values pass
    np.testing.assert_allclose(xattr.eigen_cam(conv, A, 0, upsample=False)[0, 0], np.linalg.norm(v) * u.reshape(4, 4),
                               rtol=1e-12)
    with pytest.raises(ValueError, match=r"a target needs the model's output to be scores of shape \(N, K\)"):
        xattr.eigen_cam(Sequential(Conv2D(6, 6, 1)), A, 0)  # a feature map out: no target to check


# -- Score-CAM against a naive loop over channels ----------------------------------------------------------
def _naive_score_cam(model, x, t, node, score="softmax", interp="half_pixel", norm="upsampled", eps=0.0, keep=None,
                     baseline=0.0):
    A = model.activations(x, node)
    N, K = A.shape[:2]
    H, W = x.shape[2:]
    maps = []
    for n in range(N):
        chans = range(K) if keep is None else sorted(range(K), key=lambda k: (-A[n, k].std(), k))[:keep]
        vals = []
        for k in chans:
            a = A[n, k]
            if norm == "coarse":
                d = a.max() - a.min() + eps
                a = (a - a.min()) / d if d != 0 else np.zeros_like(a)
            if interp == "half_pixel":
                up = reference.bilinear_resize(a[None, None], (H, W))[0, 0]
            else:
                up = ndimage.zoom(a, (H / a.shape[0], W / a.shape[1]), order=1, mode="nearest", grid_mode=False)
            if norm == "upsampled":
                d = up.max() - up.min() + eps
                up = (up - up.min()) / d if d != 0 else np.zeros_like(up)
            out = model((x[n] * up)[None])[0]
            vals.append(special.softmax(out)[t[n]] if score == "softmax" else out[t[n]])
        vals = np.array(vals)
        if score == "logit":
            vals = vals - model(np.full((1,) + x.shape[1:], baseline))[0, t[n]]
        if score == "channel_softmax":
            vals = special.softmax(vals)
        maps.append(sum(v * A[n, k] for v, k in zip(vals, chans)))
    return np.maximum(np.array(maps), 0)[:, None]


@pytest.mark.parametrize("score", ["softmax", "logit", "channel_softmax"])
def test_score_cam_equals_a_naive_loop_over_channels(score):
    m = _gap_net()
    t = np.array([1, 3])
    got = xattr.score_cam(m, X, t, score=score, upsample=False, batch_size=5)
    np.testing.assert_allclose(got, _naive_score_cam(m, X, t, "relu2", score), rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("interp,norm,eps", [("align_corners", "upsampled", 0.0), ("half_pixel", "coarse", 1e-3),
                                             ("align_corners", "coarse", 1e-8)])
def test_score_cam_mask_options_equal_the_naive_loop(interp, norm, eps):
    m = _gap_net()
    t = np.array([0, 2])
    got = xattr.score_cam(m, X, t, layer="maxpool1", mask_interpolation=interp, mask_normalization=norm, epsilon=eps,
                          score="logit", baseline=0.25, upsample=False)
    np.testing.assert_allclose(got, _naive_score_cam(m, X, t, "maxpool1", "logit", interp, norm, eps, baseline=0.25),
                               rtol=1e-11, atol=1e-14)


def test_score_cam_chunks_do_not_change_the_result_and_weights_are_returned():
    m = _gap_net()
    ref, w = xattr.score_cam(m, X, 2, return_weights=True)
    assert w.shape == (2, 6) and ((w > 0) & (w < 1)).all()  # softmax probabilities
    for bs in (1, 7, 1000):  # the same numbers up to the round-off of differently sized matrix products
        np.testing.assert_allclose(xattr.score_cam(m, X, 2, batch_size=bs), ref, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(ref, upsample_bilinear(xattr.score_cam(m, X, 2, upsample=False), (8, 8)), rtol=1e-14)


def test_faster_score_cam_keeps_the_top_k_channels_by_spatial_std():
    m = _gap_net()
    t = np.array([4, 0])
    for k in (1, 3, 6):
        got = xattr.faster_score_cam(m, X, t, k=k, upsample=False)
        np.testing.assert_allclose(got, _naive_score_cam(m, X, t, "relu2", keep=k), rtol=1e-11, atol=1e-14)
    # all channels: Score-CAM (summed in the order of their spread: equal to round-off)
    np.testing.assert_allclose(xattr.faster_score_cam(m, X, t, k=6), xattr.score_cam(m, X, t), rtol=1e-13)
    _, w = xattr.faster_score_cam(m, X, t, k=2, return_weights=True)
    assert ((w != 0).sum(axis=1) == 2).all()
    # default k = min(10, K): all 6 channels here
    np.testing.assert_allclose(xattr.faster_score_cam(m, X, t), xattr.score_cam(m, X, t), rtol=1e-13)


def test_score_cam_constant_channel_gets_the_zero_mask():
    """max = min: s(M) is 0/0; the zero mask (the ε → 0 limit of the peers' (M − min)/(max − min + ε))."""
    m = _gap_net()
    m["conv2"].weight[2] = 0.0
    m["conv2"].bias = np.zeros(6)
    m["conv2"].bias[2] = 0.7  # channel 2 of relu2 is the constant 0.7
    _, w = xattr.score_cam(m, X, 1, score="logit", baseline=0.0, return_weights=True)
    np.testing.assert_allclose(w[:, 2], 0.0, atol=1e-15)  # X ∘ 0 = the black image = the baseline: no increase
    _, w = xattr.score_cam(m, X, 1, score="softmax", return_weights=True)
    np.testing.assert_allclose(w[:, 2], special.softmax(m(np.zeros((1, 3, 8, 8))), axis=1)[0, 1], rtol=1e-12)


# -- Ablation-CAM ---------------------------------------------------------------------------------------
def test_ablation_cam_equals_the_paper_formula_by_rerunning_from_a_cut():
    model = small_resnet(rng=4)
    x = np.random.default_rng(4).normal(size=(2, 3, 9, 9))
    t = np.array([0, 3])
    for node in ("layer1.0.add", "layer2.0.relu2"):
        A = model.activations(x, node)
        y = model(x)[[0, 1], t]
        w = np.zeros(A.shape[:2])
        for n in range(2):
            for k in range(A.shape[1]):
                a = A[n:n + 1].copy()
                a[0, k] = 0.0
                w[n, k] = (y[n] - model.trace(a, start=node).output[0, t[n]]) / y[n]  # the graph's own "start" walk
        expect = np.maximum(np.einsum("nk,nkhw->nhw", w, A), 0)[:, None]
        got, wg = xattr.ablation_cam(model, x, t, layer=node, batch_size=3, upsample=False, return_weights=True)
        np.testing.assert_allclose(wg, w, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(got, expect, rtol=1e-10, atol=1e-13)


def test_ablation_cam_inside_a_residual_block_keeps_the_skip_path():
    """layer1.0.relu1 is not a cut (the shortcut bypasses it); its only consumer is conv2, so ablating channel k
    equals zeroing conv2's input channel k: an oracle built by model.rebuild."""
    model = small_resnet(rng=5)
    x = np.random.default_rng(5).normal(size=(2, 3, 9, 9))
    t = 2
    A = model.activations(x, "layer1.0.relu1")
    y = model(x)[:, t]
    w = np.zeros(A.shape[:2])
    for k in range(A.shape[1]):
        conv = model["layer1.0.conv2"].__class__.__new__(model["layer1.0.conv2"].__class__)
        conv.__dict__.update(model["layer1.0.conv2"].__dict__)
        conv.weight = conv.weight.copy()
        conv.weight[:, k] = 0.0
        w[:, k] = (y - model.rebuild(layers={"layer1.0.conv2": conv})(x)[:, t]) / y
    _, got = xattr.ablation_cam(model, x, t, layer="layer1.0.relu1", return_weights=True)
    np.testing.assert_allclose(got, w, rtol=1e-10, atol=1e-13)
    _, other = xattr.ablation_cam(model, x, t, layer="layer1.0.relu1", ablation_value=-2.0, return_weights=True)
    assert not np.allclose(other, got)


def test_ablation_cam_refuses_a_zero_score():
    m = Sequential(Conv2D(3, 2, 3, padding=1, rng=0), ReLU(), GlobalAvgPool2D(), Dense(2, 2, bias=False, rng=0))
    m["dense1"].weight[1] = 0.0
    with pytest.raises(ValueError, match="image 0 has y_c = 0"):
        xattr.ablation_cam(m, X, 1)


# -- DAG nodes: the gradient at the node against central differences, then each formula ----------------------
@pytest.mark.parametrize("node", ["layer1.0.add", "layer2.0.relu2"])
def test_gradient_methods_at_dag_nodes_use_the_complete_gradient(node):
    model = small_resnet(rng=7)
    x = np.random.default_rng(7).normal(size=(2, 3, 10, 10))
    t = np.array([1, 4])
    A, g, name = activations_and_gradients(model, x, t, node)
    assert name == node
    d = np.random.default_rng(8).normal(size=A.shape)
    h = 1e-6
    score = lambda a: model.trace(a, start=node).output[[0, 1], t].sum()  # noqa: E731 - the node is a cut
    np.testing.assert_allclose((score(A + h * d) - score(A - h * d)) / (2 * h), (g * d).sum(), rtol=1e-6)
    gap = g.mean(axis=(2, 3))
    alpha = np.divide(g**2, 2 * g**2 + A.sum(axis=(2, 3), keepdims=True) * g**3, out=np.zeros_like(g), where=g != 0)
    expect = {
        xattr.grad_cam_plus_plus: ((alpha * np.maximum(g, 0)).sum(axis=(2, 3)), {"score": "raw"}),
        # a dead channel (all zeros after relu2) has Σ A = 0: w = 0 by the stated policy
        xattr.xgrad_cam: (np.divide((A * g).sum(axis=(2, 3)), A.sum(axis=(2, 3)), out=np.zeros(A.shape[:2]),
                                    where=A.sum(axis=(2, 3)) != 0), {}),
        xattr.hires_cam: (g, {}),
        xattr.layer_cam: (np.maximum(g, 0), {}),
    }
    for fn, (w, kw) in expect.items():
        m = np.einsum("nk,nkhw->nhw", w, A) if w.ndim == 2 else (w * A).sum(axis=1)
        np.testing.assert_allclose(fn(model, x, t, layer=node, relu=False, upsample=False, **kw)[:, 0], m,
                                   rtol=1e-10, atol=1e-13, err_msg=fn.__name__)
    assert not np.allclose(gap, 0)


@pytest.mark.parametrize("node", ["layer1.0.add", "layer2.0.relu2"])
def test_score_cam_at_dag_nodes_equals_the_naive_loop(node):
    model = small_resnet(rng=9)
    x = np.random.default_rng(9).normal(size=(2, 3, 9, 9))
    t = np.array([2, 0])
    np.testing.assert_allclose(xattr.score_cam(model, x, t, layer=node, upsample=False, batch_size=4),
                               _naive_score_cam(model, x, t, node), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(xattr.faster_score_cam(model, x, t, layer=node, k=3, upsample=False),
                               _naive_score_cam(model, x, t, node, keep=3), rtol=1e-10, atol=1e-13)


# -- common behaviour -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", FAMILY, ids=lambda f: f.__name__)
def test_family_float32_batch_and_inputs(fn):
    m = _gap_net()
    x = X.copy()
    full = fn(m, x, 2)
    np.testing.assert_array_equal(x, X)
    assert full.shape == (2, 1, 8, 8) and full.dtype == np.float64 and np.isfinite(full).all()
    np.testing.assert_allclose(full[1:], fn(m, X[1:], 2), rtol=1e-12, atol=1e-15)
    out32 = fn(m, X.astype(np.float32), 2)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, full, rtol=1e-3, atol=1e-4 * np.abs(full).max())
    assert fn(m, X, 2, upsample=False).shape == (2, 1, 4, 4)
    assert fn in [xattr.get_method(n) for n in xattr.available_methods("cam")]


@pytest.mark.parametrize("fn", FAMILY, ids=lambda f: f.__name__)
def test_family_refuses_layers_without_spatial_maps_and_models_without_layers(fn):
    m = _gap_net()
    for node in ("gap1", "dense1", "flatten1"):
        with pytest.raises(ValueError, match=r"spatial maps \(N, K, h, w\)"):
            fn(m, X, 0, layer=node)
    with pytest.raises(KeyError, match="no layer named"):
        fn(m, X, 0, layer="conv9")
    with pytest.raises(TypeError, match="layered model"):
        fn(xattr.from_function(lambda x: x.reshape(x.shape[0], -1)), X, 0)
    with pytest.raises(ValueError, match="x must have"):
        fn(m, X[0], 0)


def test_bad_options_are_refused():
    m = _gap_net()
    with pytest.raises(ValueError, match="k = 7 is larger than the 6 channels"):
        xattr.faster_score_cam(m, X, 0, k=7)
    for k in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="k must be a positive int"):
            xattr.faster_score_cam(m, X, 0, k=k)
    with pytest.raises(ValueError, match="score must be one of"):
        xattr.score_cam(m, X, 0, score="probability")
    with pytest.raises(ValueError, match="score must be one of"):
        xattr.grad_cam_plus_plus(m, X, 0, score="softmax")
    with pytest.raises(ValueError, match="mask_interpolation"):
        xattr.score_cam(m, X, 0, mask_interpolation="nearest")
    with pytest.raises(ValueError, match="mask_normalization"):
        xattr.score_cam(m, X, 0, mask_normalization="none")
    with pytest.raises(ValueError, match="epsilon must be finite and >= 0"):
        xattr.xgrad_cam(m, X, 0, epsilon=-1e-8)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        xattr.ablation_cam(m, X, 0, batch_size=0)
    with pytest.raises(ValueError, match="given twice"):
        xattr.layer_cam(m, X, 0, layer=["relu2", 4])
    with pytest.raises(ValueError, match="gamma"):
        xattr.layer_cam(m, X, 0, layer=["relu1", "relu2"], gamma=0)
    with pytest.raises(ValueError, match="out of range"):
        xattr.score_cam(m, X, 9)
    big = _gap_net()
    big["dense1"].bias = np.full(5, 800.0)
    with pytest.raises(ValueError, match="exp\\(S\\) overflows float64 in the map .* not finite"):
        xattr.grad_cam_plus_plus(big, X, 0)
    assert np.isfinite(xattr.grad_cam_plus_plus(big, X, 0, score="raw")).all()


def test_eigen_cam_refuses_an_invalid_target_although_its_map_does_not_use_it():
    """A registered method refuses a bad target with the message every method gives (xattr._targets)."""
    m = _gap_net()
    with pytest.raises(ValueError, match="target 5 out of range"):
        xattr.eigen_cam(m, X, 5)
    with pytest.raises(ValueError, match="target array must have shape"):
        xattr.eigen_cam(m, X, np.array([0, 1, 2]))
    for bad in (None, True, "cat", np.array([0.5, 1.0])):
        with pytest.raises(TypeError, match="target must be an int"):
            xattr.eigen_cam(m, X, bad)
    with pytest.raises(ValueError, match="target callable must return shape"):
        xattr.eigen_cam(m, X, lambda s: s[:, :2])
    with pytest.raises(ValueError, match="target callable returned 2 NaN"):
        xattr.eigen_cam(m, X, lambda s: s[:, 0] * np.nan)


@pytest.mark.parametrize("method", [xattr.score_cam, xattr.faster_score_cam])
def test_score_cam_refuses_a_bad_baseline_for_every_score(method):
    m = _gap_net()
    for score in ("softmax", "logit"):
        bad_shape = r"baseline must be a scalar, one sample of shape \(3, 8, 8\), or broadcastable"
        with pytest.raises(ValueError, match=bad_shape):
            method(m, X, 0, score=score, baseline=np.zeros((5, 5)))
        with pytest.raises(ValueError, match="baseline must be finite"):
            method(m, X, 0, score=score, baseline=np.nan)
        with pytest.raises(TypeError, match="baseline must have dtype"):
            method(m, X, 0, score=score, baseline=np.zeros((3, 8, 8)) + 0j)
    # a per-pixel baseline broadcast over the batch is the same as the batch of it
    b = np.random.default_rng(4).random((3, 8, 8))
    np.testing.assert_array_equal(method(m, X, 0, score="logit", baseline=b),
                                  method(m, X, 0, score="logit", baseline=np.stack([b, b])))


@pytest.mark.parametrize("dtype, s2, rtol", [(np.float64, 710.3, 1e-12), (np.float32, 89.2, 1e-6)])
def test_grad_cam_plus_plus_exp_stays_finite_where_only_exp_s_overflows(dtype, s2, rtol):
    """exp(S) alone overflows the dtype (S > 709.78 in float64, > 88.72 in float32) but exp(S)·M does not (M < 1):
    the map is the raw map times exp(S), computed to the dtype's precision.  Oracle: exact decimal arithmetic of
    exp(S)·M from the raw map, which the bias shift does not change (the gradients and activations stay)."""
    from decimal import Decimal, getcontext

    getcontext().prec = 40
    m = _gap_net()
    x = X[:1].astype(dtype)
    m["dense1"].bias = m["dense1"].bias + (s2 - m(X[:1])[0, 0]) * np.eye(5)[0]  # S_0 = s2
    s = m(x)[0, 0]
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.exp(np.array(s, dtype)))  # exp(S) overflows the dtype
    raw = xattr.grad_cam_plus_plus(m, x, 0, score="raw", upsample=False)
    got = xattr.grad_cam_plus_plus(m, x, 0, upsample=False)
    assert got.dtype == dtype and np.isfinite(got).all() and (got > 0).any()
    e = Decimal(float(s)).exp()
    want = np.array([float(Decimal(float(v)) * e) for v in raw.ravel()]).reshape(raw.shape)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=0)


def test_weighted_sum_does_not_overflow_where_only_its_terms_do():
    """Σ_k w_k A_k with w_k A_k beyond float64's range but the sum within it: summed with A divided by a power of
    two per image (exact), checked against extended precision; a sum beyond the range is refused."""
    from xattr.methods.cam_family import _combine

    A = np.zeros((2, 2, 1, 3))
    A[:, 0], A[:, 1] = 1e308, 0.9e308
    A[1, :, 0, 2] = 1.0  # image 1: small values beside the huge ones
    w = np.array([[2.0, -2.0], [1.5, -1.0]])
    want = np.einsum("nk,nkhw->nhw", w.astype(np.longdouble), A.astype(np.longdouble))
    with np.errstate(over="raise"):
        got = _combine(w, A, False, "test")
    np.testing.assert_allclose(got.astype(np.longdouble), want, rtol=1e-15)
    np.testing.assert_array_equal(_combine(w, A / 2**600, True, "test"), np.maximum(want / 2**600, 0).astype(float))
    with pytest.raises(ValueError, match="test: the map is not finite in float64 for image 0"):
        _combine(np.array([[2.0, 2.0], [0.0, 0.0]]), A, True, "test")


def test_methods_are_listed_by_the_registry():
    names = xattr.available_methods("cam")
    for n in ("grad_cam_plus_plus", "score_cam", "faster_score_cam", "layer_cam", "xgrad_cam", "hires_cam",
              "eigen_cam", "ablation_cam"):
        assert n in names


def test_ablation_cam_slope_whose_drop_overflows_is_still_computed():
    """y = 1e300 · mean(A) ≈ 1.2e308 and, ablated at −mean(A), y_k = −y: the drop y − y_k is beyond float64's range
    but the slope (y − y_k)/y = 2 is not (computed with both divided by a power of two); the map is 2A."""
    conv, dense = Conv2D(1, 1, 1, bias=False), Dense(1, 1)
    conv.weight, dense.weight, dense.bias = np.ones((1, 1, 1, 1)), np.full((1, 1), 1e300), np.zeros(1)
    m = Sequential(conv, GlobalAvgPool2D(), dense)
    x = np.array([1.0, 1.5, 0.5, 1.8]).reshape(1, 1, 2, 2) * 1e8
    y = m(x)[0, 0]
    assert np.finfo(np.float64).max / 2 < y < np.finfo(np.float64).max  # y − (−y) overflows
    cam, w = xattr.ablation_cam(m, x, 0, ablation_value=-x.mean(), upsample=False, return_weights=True)
    np.testing.assert_allclose(w, [[2.0]], rtol=1e-15)
    np.testing.assert_allclose(cam, 2 * x, rtol=1e-15)
