"""Explanation vectors (Baehrens et al. 2010): Parzen classifier, kernel density (outliers), GP classifier.

Oracles: the paper's quotient-rule form with raw kernel sums, autograd twins written from the formulas, central
differences, scikit-learn's own latent mean/variance, the seed's matrix form of the variance derivative with an
explicit inverse, scipy's adaptive quadrature of the predictive integral, and closed forms (a single Gaussian,
a logistic model).  The toy settings of the paper's figures (two Gaussian classes, an XOR) are drawn with an
explicit rng.
"""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad, jacobian

import xattr
from xattr.methods.explanation_vectors import (
    GaussianProcessExplainer,
    KernelDensity,
    ParzenClassifier,
    explanation_vector,
    predictive_integrals,
)
from xattr.nn import RuleNotDefined

from extras import need  # tests/extras.py: optional packages of the test suite

SKLEARN = "the GP classifier (scikit-learn, the optional extra 'localisation')"


def two_gaussians(rng, n=30, gap=1.5, spread=0.7):
    """The paper's toy setting: two Gaussian classes at ``(∓gap, 0)``."""
    gen = np.random.default_rng(rng)
    X = np.concatenate([gen.normal([-gap, 0], spread, (n, 2)), gen.normal([gap, 0], spread, (n, 2))])
    return X, np.repeat([0, 1], n)


def xor(rng, n=20, c=1.5, spread=0.5):
    """Four clusters at ``(±c, ±c)``; the label is 1 where the signs differ."""
    gen = np.random.default_rng(rng)
    centres = np.array([[c, c], [-c, -c], [c, -c], [-c, c]])
    X = np.concatenate([gen.normal(m, spread, (n, 2)) for m in centres])
    return X, np.repeat([0, 0, 1, 1], n), centres


def central_jacobian(f, x, eps=1e-6):
    """``∂f(x)/∂x`` ``(N, K, d)`` for a row-wise ``f: (N, d) -> (N, K)`` by central differences."""
    cols = []
    for j in range(x.shape[1]):
        e = np.zeros_like(x)
        e[:, j] = eps
        cols.append((f(x + e) - f(x - e)) / (2 * eps))
    return np.stack(cols, axis=-1)


# -- Parzen window classifier ------------------------------------------------------------------------------------

def test_parzen_posterior_is_the_kernel_ratio():
    X, y = two_gaussians(0)
    m = ParzenClassifier(X, y, sigma=0.7)
    x = np.random.default_rng(1).normal(0, 1.5, (7, 2))
    k = np.exp(-((x[:, None] - X[None]) ** 2).sum(-1) / (2 * 0.7**2))  # raw kernels: fine near the data
    want = np.stack([k[:, y == c].sum(1) for c in (0, 1)], 1) / k.sum(1, keepdims=True)
    np.testing.assert_allclose(m.forward(x), want, rtol=1e-12, atol=1e-15)


def test_parzen_explanation_vector_is_the_papers_quotient_rule():
    """ζ = ∂P(Y ≠ g | x)/∂x with the raw kernel sums of the class and of the rest, as the paper writes it:
    ``ζ = (A·B' − B·A') / (σ² (A + B)²)``, ``A = Σ_{i∉I_g} k_i``, ``B = Σ_{i∈I_g} k_i``, ``·' = Σ k_i (x − x_i)``."""
    X, y = two_gaussians(2)
    s = 0.6
    m = ParzenClassifier(X, y, sigma=s)
    x = np.random.default_rng(3).normal(0, 1.5, (9, 2))
    diff = x[:, None] - X[None]
    k = np.exp(-(diff**2).sum(-1) / (2 * s**2))
    g = m.forward(x).argmax(1)
    own = y[None, :] == g[:, None]
    A, B = (k * ~own).sum(1), (k * own).sum(1)
    A1 = np.einsum("ni,nid->nd", k * ~own, diff)
    B1 = np.einsum("ni,nid->nd", k * own, diff)
    want = (A[:, None] * B1 - B[:, None] * A1) / (s**2 * (A + B)[:, None] ** 2)
    np.testing.assert_allclose(m.explanation_vectors(x), want, rtol=1e-10, atol=1e-14)


def test_parzen_vjp_matches_autograd_and_central_differences_three_classes():
    X, y, _ = xor(4)
    y = y + (X[:, 0] > 0) * (y == 0) * 2  # three classes: one of the class-0 clusters becomes class 2
    s = 0.8
    m = ParzenClassifier(X, y, sigma=s)

    def twin(x):  # the posterior from the definition, with autograd
        k = anp.exp(-anp.sum((x[:, None, :] - X[None]) ** 2, axis=-1) / (2 * s**2))
        return anp.dot(k, np.eye(3)[y]) / anp.sum(k, axis=1, keepdims=True)

    x = np.random.default_rng(5).normal(0, 1.5, (6, 2))
    g = np.random.default_rng(6).normal(size=(6, 3))
    got = m.vjp(x, g)
    np.testing.assert_allclose(got, xattr.from_function(twin).vjp(x, g), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(got, np.einsum("nk,nkd->nd", g, central_jacobian(m.forward, x)), rtol=1e-6, atol=1e-9)


def test_toy_two_gaussians_vectors_point_across_the_boundary_and_vanish_far_away():
    """The paper's toy figure: near the boundary ζ points to the other class (its first coordinate has the sign that
    moves x across x₀ = 0), a step along it flips the label; far from the data every posterior saturates and ζ
    vanishes (the Parzen estimate's weakness the paper states)."""
    X, y = two_gaussians(7)
    m = ParzenClassifier(X, y, sigma=0.7)
    x = np.stack([np.linspace(-1.0, 1.0, 9), np.random.default_rng(8).uniform(-0.5, 0.5, 9)], 1)
    x = x[np.abs(x[:, 0]) > 0.2]
    zeta = m.explanation_vectors(x)
    g = m.forward(x).argmax(1)
    assert np.array_equal(g, (x[:, 0] > 0).astype(int))  # the boundary is near x₀ = 0 on this draw
    assert np.all(np.sign(zeta[:, 0]) == np.where(g == 0, 1, -1))
    cos = np.abs(zeta[:, 0]) / np.linalg.norm(zeta, axis=1)
    assert cos.min() > 0.8, cos
    unit = zeta / np.linalg.norm(zeta, axis=1, keepdims=True)
    steps = np.linspace(0, 3, 61)[:, None, None]
    flipped = (m.forward((x[None] + steps * unit[None]).reshape(-1, 2)).argmax(1).reshape(len(steps), -1) != g)
    assert flipped.any(axis=0).all()
    near = np.linalg.norm(zeta, axis=1).min()
    far = np.linalg.norm(m.explanation_vectors(np.array([[-20.0, 0.0], [20.0, 3.0]])), axis=1)
    assert near > 0.05 and far.max() < 1e-12 * near, (near, far)


def test_toy_xor_vectors_point_to_the_neighbouring_clusters_of_the_other_class():
    """XOR: at a point of a class-0 cluster near (c, c), the other class sits at (c, −c) and (−c, c); ζ points
    towards them (negative coordinates), not towards the far class-0 cluster's side."""
    X, y, centres = xor(9)
    m = ParzenClassifier(X, y, sigma=0.7)
    gen = np.random.default_rng(10)
    x = centres[:, None] + gen.normal(0, 0.3, (4, 5, 2))  # (cluster, point, 2)
    zeta = m.explanation_vectors(x.reshape(-1, 2)).reshape(4, 5, 2)
    # the neighbours of the other class of cluster (a, b) are at (a, −b) and (−a, b): moving towards either
    # lowers |x₀| or |x₁| on the cluster's side
    towards = -np.sign(centres)[:, None] * zeta  # positive: towards the axes
    assert np.all(towards.max(axis=-1) > 0), towards
    assert np.all(towards.sum(axis=-1) > 0), towards


def test_explanation_vector_of_any_autograd_classifier_is_minus_the_gradient_of_the_winner():
    """A logistic model wrapped by ``from_function``: ``p₁ = σ(wᵀx + b)``, so ζ = −σ'(wᵀx + b) w at points of
    class 1 and +σ'(wᵀx + b) w at points of class 0 (closed form)."""
    w, b = np.array([1.5, -2.0, 0.5]), 0.3

    def proba(x):
        z = anp.dot(x, w) + b
        p1 = 1 / (1 + anp.exp(-z))
        return anp.stack([1 - p1, p1], axis=1)

    x = np.random.default_rng(11).normal(size=(8, 3))
    z = x @ w + b
    s = 1 / (1 + np.exp(-z))
    want = np.where(z > 0, -1.0, 1.0)[:, None] * (s * (1 - s))[:, None] * w
    np.testing.assert_allclose(explanation_vector(xattr.from_function(proba), x), want, rtol=1e-12)


def test_fit_to_labels_mimics_a_knn_classifier_with_the_leave_one_out_sigma():
    """The paper's route to explain a classifier without probabilities: fit a Parzen classifier to its labels.
    Oracle: the leave-one-out disagreement by a loop over the points, for every candidate σ."""
    X, _, _ = xor(12, n=12)
    # the explained "black box": 3-nearest-neighbour labels of a noisy labelling
    gen = np.random.default_rng(13)
    noisy = ((X[:, 0] > 0) ^ (X[:, 1] > 0)).astype(int) ^ (gen.random(len(X)) < 0.1)
    d2 = ((X[:, None] - X[None]) ** 2).sum(-1)
    labels = (noisy[np.argsort(d2, axis=1)[:, :3]].mean(1) > 0.5).astype(int)
    sigmas = [0.05, 0.2, 0.5, 1.0, 3.0]
    model, errors = ParzenClassifier.fit_to_labels(X, labels, sigmas)
    naive = []
    for s in sigmas:
        wrong = 0
        for i in range(len(X)):
            keep = np.arange(len(X)) != i
            k = np.exp(-d2[i, keep] / (2 * s**2))
            wrong += int(np.argmax([k[labels[keep] == c].sum() for c in (0, 1)]) != labels[i])
        naive.append(wrong / len(X))
    np.testing.assert_allclose(errors, naive)
    best = max(s for s, e in zip(sigmas, naive) if e == min(naive))
    assert model.sigma == best and min(naive) < 0.2
    assert np.mean(model.forward(X).argmax(1) == labels) > 0.8


# -- kernel density: explaining outliers ---------------------------------------------------------------------

def test_kernel_density_of_one_point_is_a_gaussian_and_its_vector_points_back_to_the_mean():
    from scipy.stats import multivariate_normal

    mu, s = np.array([1.0, -2.0, 0.5]), 0.8
    kde = KernelDensity(mu[None], sigma=s)
    x = np.array([[0.0, 0.0, 0.0], [3.0, 1.0, -1.0], [101.0, -2.0, 0.5]])  # the last one is far out
    np.testing.assert_allclose(kde.forward(x)[:, 0], multivariate_normal(mu, s**2 * np.eye(3)).logpdf(x), rtol=1e-12)
    np.testing.assert_allclose(kde.explanation_vectors(x), (mu - x) / s**2, rtol=1e-12)
    # the density's own gradient carries p̂: it underflows to exactly 0 far out, where the log's vector does not
    assert np.all(kde.density_gradient(x[2:]) == 0) and np.abs(kde.explanation_vectors(x[2:])).max() > 100


def test_kernel_density_outlier_vectors_point_back_to_the_data():
    gen = np.random.default_rng(14)
    mu = np.array([2.0, -1.0])
    X = gen.normal(mu, 1.0, (200, 2))
    kde = KernelDensity(X, sigma=0.5)
    angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    far = mu + 10 * np.stack([np.cos(angles), np.sin(angles)], 1)
    v = kde.explanation_vectors(far)
    cos = np.einsum("nd,nd->n", v, mu - far) / np.linalg.norm(v, axis=1) / np.linalg.norm(mu - far, axis=1)
    assert cos.min() > 0.95, cos


def test_kernel_density_vjp_matches_autograd_and_central_differences():
    X = np.random.default_rng(15).normal(size=(25, 3))
    s = 0.9

    def twin(x):  # log p̂ from the definition (log-sum-exp with autograd's logsumexp)
        from autograd.scipy.special import logsumexp

        e = -anp.sum((x[:, None, :] - X[None]) ** 2, axis=-1) / (2 * s**2)
        return (logsumexp(e, axis=1) - np.log(len(X)) - 1.5 * np.log(2 * np.pi * s**2))[:, None]

    kde = KernelDensity(X, s)
    x = np.random.default_rng(16).normal(0, 2, (5, 3))
    np.testing.assert_allclose(kde.forward(x), twin(x), rtol=1e-12)
    g = np.random.default_rng(17).normal(size=(5, 1))
    np.testing.assert_allclose(kde.vjp(x, g), xattr.from_function(twin).vjp(x, g), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(kde.explanation_vectors(x), central_jacobian(kde.forward, x)[:, 0], rtol=1e-6)


# -- Gaussian process classifier -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gp():
    need("sklearn", SKLEARN)
    from sklearn.gaussian_process import GaussianProcessClassifier
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel

    X, y = two_gaussians(18, n=20)
    X = X * np.array([1.0, 0.8])
    gpc = GaussianProcessClassifier(ConstantKernel(2.0) * RBF([1.0, 1.5]), optimizer=None).fit(X, y)
    return gpc, GaussianProcessExplainer(gpc)


def _twin_gp(gpc):
    """``f̄``, ``var_f``, ``p`` for one point from R&W's formulas with an explicit ``(K + W⁻¹)⁻¹`` (autograd)."""
    est = gpc.base_estimator_
    X, alpha = est.X_train_, est.y_train_ - est.pi_
    s2 = gpc.kernel_.k1.constant_value
    ls = np.asarray(gpc.kernel_.k2.length_scale)
    K = est.kernel_(X)
    inv = np.linalg.inv(K + np.diag(1 / est.W_sr_**2))
    t, w = np.polynomial.hermite.hermgauss(96)

    def kstar(x):
        return s2 * anp.exp(-0.5 * anp.sum(((x[None, :] - X) / ls) ** 2, axis=1))

    def mean(x):
        return anp.dot(kstar(x), alpha)

    def var(x):
        k = kstar(x)
        return s2 - anp.dot(k, anp.dot(inv, k))

    def prob(x):
        f = mean(x) + anp.sqrt(2 * var(x)) * t
        return anp.dot(w, 1 / (1 + anp.exp(-f))) / np.sqrt(np.pi)

    return mean, var, prob, inv


def test_gp_latent_mean_and_variance_are_sklearns(gp):
    gpc, e = gp
    x = np.random.default_rng(19).normal(0, 2, (10, 2))
    mean, var, _, _ = e.latent(x)
    m_sk, v_sk = gpc.latent_mean_and_variance(x)
    np.testing.assert_allclose(mean, m_sk, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(var, v_sk, rtol=1e-10, atol=1e-12)


def test_gp_gradients_match_autograd_the_seeds_matrix_form_and_central_differences(gp):
    gpc, e = gp
    mean, var, prob, inv = _twin_gp(gpc)
    x = np.random.default_rng(20).normal(0, 1.5, (6, 2))
    _, _, dmean, dvar = e.latent(x)
    np.testing.assert_allclose(dmean, np.stack([grad(mean)(xi) for xi in x]), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dvar, np.stack([grad(var)(xi) for xi in x]), rtol=1e-9, atol=1e-12)
    # the seed: ∇var = ∂k(x, x)/∂x − 2 k*ᵀ (K + Σ)⁻¹ ∂k*/∂x, Σ = W⁻¹, ∂k(x, x)/∂x = 0 (stationary kernel)
    est = gpc.base_estimator_
    for xi, dv in zip(x, dvar):
        k = gpc.kernel_(est.X_train_, xi[None])[:, 0]
        dk = jacobian(lambda z: gpc.kernel_.k1.constant_value * anp.exp(
            -0.5 * anp.sum(((z[None, :] - est.X_train_) / np.asarray(gpc.kernel_.k2.length_scale)) ** 2, axis=1)))(xi)
        np.testing.assert_allclose(dv, 0 - 2 * k @ inv @ dk, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        e.vjp(x, np.tile([0.0, 1.0], (6, 1))), np.stack([grad(prob)(xi) for xi in x]), rtol=1e-8, atol=1e-12
    )
    jac = central_jacobian(lambda z: np.stack(e.latent(z)[:2], 1), x)
    np.testing.assert_allclose(jac[:, 0], dmean, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(jac[:, 1], dvar, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(e.explanation_vectors(x), -np.einsum(
        "nk,nkd->nd", np.eye(2)[e.forward(x).argmax(1)], central_jacobian(e.forward, x)), rtol=1e-6, atol=1e-9)


def test_gp_predictive_integral_matches_adaptive_quadrature_and_sklearns_approximation(gp):
    from scipy.integrate import quad
    from scipy.special import expit
    from scipy.stats import norm

    gpc, e = gp
    x = np.random.default_rng(21).normal(0, 2, (6, 2))
    mean, var, _, _ = e.latent(x)
    want = [quad(lambda f, m=m, v=v: expit(f) * norm.pdf(f, m, np.sqrt(v)), -np.inf, np.inf, epsabs=1e-13)[0]
            for m, v in zip(mean, var)]
    p = e.forward(x)
    np.testing.assert_allclose(p[:, 1], want, rtol=1e-10, atol=1e-12)
    # scikit-learn approximates the same integral by five error functions (Williams & Barber 1998): 8.3e-5 here
    assert np.abs(p - gpc.predict_proba(x)).max() < 2e-4


def test_predictive_integrals_match_adaptive_quadrature_for_narrow_and_wide_gaussians():
    """``E[σ]``, ``E[σ']``, ``½E[σ'']`` over ``N(m, v)`` for v from 0 to 1e4 (both rules and the switch at 1)."""
    from scipy.integrate import quad
    from scipy.special import expit
    from scipy.stats import norm

    m, v = (a.ravel() for a in np.meshgrid([-60.0, -3.0, 0.0, 0.4, 8.0], [0.0, 0.01, 1.0, 1.0001, 30.0, 1e4]))
    got = np.stack(predictive_integrals(m, v), 1)
    s = expit
    ds = lambda z: expit(z) * (1 - expit(z))  # noqa: E731
    d2s = lambda z: ds(z) * (1 - 2 * expit(z))  # noqa: E731
    want = []
    for mi, vi in zip(m, v):
        if vi == 0:
            want.append([s(mi), ds(mi), 0.5 * d2s(mi)])
            continue
        sd = np.sqrt(vi)

        def e(h, mi=mi, sd=sd):
            return quad(lambda z: h(z) * norm.pdf(z, mi, sd), mi - 40 * sd, mi + 40 * sd, points=sorted({0.0, mi}),
                        epsabs=1e-15, epsrel=1e-13, limit=500)[0]

        want.append([e(s), e(ds), 0.5 * e(d2s)])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-11)


def test_gp_with_a_fitted_large_amplitude_agrees_with_sklearn():
    """scikit-learn's optimiser raises the amplitude to s² ≈ 3500 here: the latent variance far from the data is
    large, where the integral needs the wide-Gaussian rule."""
    need("sklearn", SKLEARN)
    from sklearn.gaussian_process import GaussianProcessClassifier
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel

    X, y = two_gaussians(18, n=20)
    X = X * np.array([1.0, 0.8])
    gpc = GaussianProcessClassifier(ConstantKernel(2.0) * RBF([1.0, 1.5])).fit(X, y)
    e = GaussianProcessExplainer(gpc)
    grid = np.mgrid[-6:6:13j, -6:6:13j].reshape(2, -1).T
    assert e.amplitude > 1000 and e.latent(grid)[1].max() > 100
    assert np.abs(e.forward(grid) - gpc.predict_proba(grid)).max() < 2e-4
    x = grid[::17]
    np.testing.assert_allclose(e.vjp(x, np.tile([0.0, 1.0], (len(x), 1))),
                               central_jacobian(e.forward, x, eps=1e-5)[:, 1], rtol=1e-5, atol=1e-9)


def test_gp_variance_derivative_points_away_from_the_data(gp):
    """Where the model is uncertain: var_f grows away from the training points (its gradient points outwards,
    and a step along it raises var_f); far away var_f reaches the prior s² and every gradient vanishes."""
    gpc, e = gp
    centre = e.X.mean(0)
    angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    x = centre + 4.0 * np.stack([np.cos(angles), np.sin(angles)], 1)  # outside the cloud
    _, var, _, dvar = e.latent(x)
    assert np.all(np.einsum("nd,nd->n", dvar, x - centre) > 0)
    step = 0.05 * dvar / np.linalg.norm(dvar, axis=1, keepdims=True)
    assert np.all(e.latent(x + step)[1] > var)
    mean, var, dmean, dvar = e.latent(centre + np.array([[60.0, 0.0]]))
    assert abs(var[0] - e.amplitude) < 1e-12 and abs(mean[0]) < 1e-12
    assert np.abs(dmean).max() < 1e-12 and np.abs(dvar).max() < 1e-12


def test_gp_explanation_vectors_point_across_the_boundary(gp):
    gpc, e = gp
    x = np.stack([np.array([-0.8, -0.4, 0.4, 0.8]), np.zeros(4)], 1)
    g = e.forward(x).argmax(1)
    zeta = e.explanation_vectors(x)
    assert np.array_equal(g, [0, 0, 1, 1]) and np.all(np.sign(zeta[:, 0]) == [1, 1, -1, -1])


# -- errors ---------------------------------------------------------------------------------------------------

def test_bad_inputs_get_clear_errors():
    X, y = two_gaussians(22, n=5)
    with pytest.raises(ValueError, match="positive finite"):
        ParzenClassifier(X, y, sigma=0.0)
    with pytest.raises(ValueError, match="integer labels of shape"):
        ParzenClassifier(X, y[:-1], sigma=1.0)
    m = ParzenClassifier(X, y, sigma=1.0)
    with pytest.raises(ValueError, match="must have 2 features"):
        m.forward(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="rank 2"):
        m.forward(np.zeros(2))
    with pytest.raises(ValueError, match="finite"):
        m.forward(np.array([[np.nan, 0.0]]))
    with pytest.raises(ValueError, match="scores' shape"):
        m.vjp(X[:2], np.zeros((2, 3)))
    with pytest.raises(RuleNotDefined, match="closed-form gradient only"):
        m.vjp(X[:2], np.zeros((2, 2)), rule="lrp_epsilon")
    with pytest.raises(ValueError, match="class probabilities"):
        explanation_vector(xattr.from_function(lambda x: 3.0 * x), X[:2])
    with pytest.raises(ValueError, match="at least one candidate"):
        ParzenClassifier.fit_to_labels(X, y, [])


def test_gp_explainer_refuses_other_kernels_multiclass_and_unfitted_classifiers():
    need("sklearn", SKLEARN)
    from sklearn.gaussian_process import GaussianProcessClassifier
    from sklearn.gaussian_process.kernels import Matern

    X, y = two_gaussians(22, n=5)
    with pytest.raises(TypeError, match="RBF or ConstantKernel"):
        GaussianProcessExplainer(GaussianProcessClassifier(Matern(), optimizer=None).fit(X, y))
    gen = np.random.default_rng(23)
    X3, y3 = gen.normal(size=(12, 2)), np.arange(12) % 3
    with pytest.raises(ValueError, match="binary classifier, got 3 classes"):
        GaussianProcessExplainer(GaussianProcessClassifier(optimizer=None).fit(X3, y3))
    with pytest.raises(TypeError, match="fitted sklearn GaussianProcessClassifier"):
        GaussianProcessExplainer(GaussianProcessClassifier())


def test_inputs_are_not_modified_and_float32_stays_float32():
    X, y = two_gaussians(24, n=6)
    m = ParzenClassifier(X, y, sigma=1.0)
    x = np.random.default_rng(25).normal(size=(3, 2)).astype(np.float32)
    keep = x.copy()
    z = m.explanation_vectors(x)
    assert z.dtype == np.float32 and np.array_equal(x, keep)
    np.testing.assert_allclose(z, m.explanation_vectors(x.astype(np.float64)), rtol=1e-5, atol=1e-7)
