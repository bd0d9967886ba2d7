"""Explanation vectors (Baehrens et al. 2010): the gradient of the class probability, for any classifier.

Baehrens, Schroeter, Harmeling, Kawanabe, Hansen & Müller (2010), "How to explain individual classification
decisions", JMLR 11:1803–1831.  For a classifier with class probabilities ``p(y = c | x)`` and its decision
``g(x) = argmax_c p(y = c | x)``, the explanation vector at ``x0`` (the paper's §2) is::

    ζ(x0) = ∂/∂x P(Y ≠ g(x0) | X = x) |_{x = x0}

the direction in which ``x0`` must move to change its label; its large entries are the features that decide
this instance.  Three models with closed-form ζ live here, each a model of xattr's protocol (``forward`` gives
probabilities, ``vjp`` the closed-form ``gᵀ ∂p/∂x``), so :func:`explanation_vector` and every gradient method
work on them, and autograd twins check them in ``tests/test_explanation_vectors.py``:

* :class:`ParzenClassifier`: the paper's Parzen window classifier (Gaussian kernel of width σ), which the paper
  also fits to the labels of any other classifier (SVM, k-NN) to explain a model without probabilities
  (:meth:`ParzenClassifier.fit_to_labels`).  Its ζ vanishes far from the data, where every posterior saturates:
  the weakness the paper states for the Parzen estimate.
* :class:`KernelDensity`: a one-class Parzen density; ``∇ log p̂(x)`` explains why ``x`` is an outlier (it points
  back to the data and, unlike ``∇ p̂``, does not underflow far away).
* :class:`GaussianProcessExplainer`: a binary Gaussian process classifier (scikit-learn's
  ``GaussianProcessClassifier``, Laplace approximation, Rasmussen & Williams 2006 §3.4) with the closed-form
  gradients of its latent mean and of its predictive variance (the seed's variance derivative
  ``∇var_f = ∂k(x0, x0)/∂x0 − 2 k*ᵀ (K + Σ)⁻¹ ∂k*/∂x0`` with ``Σ = W⁻¹``), and of the class probability
  ``∫ σ(f) N(f | f̄, var_f) df`` that combines them.
"""
from __future__ import annotations

import numpy as np

from .._conventions import as_float_array
from ..nn.base import RuleNotDefined

__all__ = [
    "explanation_vector", "predictive_integrals", "ParzenClassifier", "KernelDensity", "GaussianProcessExplainer",
]

#: rows of ``forward`` must sum to 1 within this to count as class probabilities.
PROBABILITY_TOL = 1e-6


def explanation_vector(model, x):
    """``ζ(x) = ∂P(Y ≠ g(x) | x)/∂x = −∂p(y = g(x) | x)/∂x`` (Baehrens et al. 2010, §2) for any model.

    ``g(x)`` is the arg-max class of ``model.forward(x)``, which must return class probabilities (non-negative
    rows summing to 1): explanation vectors are gradients of probabilities, not of scores.  A network's scores
    become probabilities with ``xattr.from_function(lambda x: softmax(f(x)))``.

    Parameters
    ----------
    model : model protocol object
        ``forward(x) -> (N, C)`` probabilities, ``vjp(x, grad, "gradient")``.
    x : ndarray ``(N, ...)``

    Returns
    -------
    ndarray, ``x.shape``, ``x.dtype``
    """
    x = as_float_array(x, "x")
    p = np.asarray(model.forward(x), dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != x.shape[0]:
        raise ValueError(f"model.forward must return probabilities (N, C) = ({x.shape[0]}, C), got {p.shape}")
    if np.any(p < -PROBABILITY_TOL) or np.any(np.abs(p.sum(axis=1) - 1) > PROBABILITY_TOL):
        raise ValueError(
            "explanation vectors need class probabilities: model.forward rows must be non-negative and sum to 1 "
            f"(got row sums in [{p.sum(axis=1).min():.6g}, {p.sum(axis=1).max():.6g}]); apply a softmax first"
        )
    seed = np.zeros_like(p)
    seed[np.arange(len(p)), p.argmax(axis=1)] = -1.0  # 1 − p_g: the probability of any other label
    return np.asarray(model.vjp(x, seed, "gradient")).astype(x.dtype, copy=False)


class _ClosedForm:
    """What the closed-form models share: the ``gradient`` rule only, checked inputs ``(N, d)``."""

    rules = ("gradient",)

    def supports(self, rule):
        return rule in self.rules

    def rule_error(self, rule):
        return RuleNotDefined(
            f"{type(self).__name__} has a closed-form gradient only; rule {rule!r} needs a layered model"
        )

    def _points(self, x):
        x = as_float_array(x, "x", ndim=2)
        if x.shape[1] != self.X.shape[1]:
            raise ValueError(f"x must have {self.X.shape[1]} features (N, {self.X.shape[1]}), got {x.shape}")
        return x

    def _grad_seed(self, x, g, k):
        g = np.asarray(g, dtype=np.float64)
        if g.shape != (x.shape[0], k):
            raise ValueError(f"grad_scores must have the scores' shape {(x.shape[0], k)}, got {g.shape}")
        return g

    def __call__(self, x):
        return self.forward(x)


def _check_training(X, name="X"):
    X = as_float_array(X, name, ndim=2).astype(np.float64)
    if len(X) == 0:
        raise ValueError(f"{name} must hold at least one training point, got shape {X.shape}")
    return X


def _check_sigma(sigma):
    sigma = float(sigma)
    if not np.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma (the kernel width) must be a positive finite number, got {sigma}")
    return sigma


def _sq_dists(x, X):
    """``‖x_n − X_i‖²`` ``(N, n)``, from the differences (no cancellation far from the data)."""
    diff = x[:, None, :] - X[None, :, :]
    return np.einsum("nid,nid->ni", diff, diff)


def _kernel_weights(x, X, sigma):
    """``w_ni = k(x_n − X_i) / Σ_j k(x_n − X_j)`` with ``k(z) = exp(−‖z‖²/2σ²)``: a softmax over the training
    points, shifted by its row maximum, so no weight underflows to 0/0 far from the data; also the log of the
    unnormalised sum ``log Σ_i k(x_n − X_i)``."""
    e = -_sq_dists(x, X) / (2 * sigma**2)
    top = e.max(axis=1, keepdims=True)
    k = np.exp(e - top)
    s = k.sum(axis=1, keepdims=True)
    return k / s, (top + np.log(s))[:, 0]


class ParzenClassifier(_ClosedForm):
    """The Parzen window classifier of Baehrens et al. (2010, §3) and its closed-form explanation vectors.

    ``p̂(x, y = c) = (1/n) Σ_{i ∈ I_c} k(x − x_i)``, ``k(z) = exp(−‖z‖² / 2σ²)``, so the class posterior is::

        p̂(y = c | x) = Σ_{i ∈ I_c} k(x − x_i) / Σ_i k(x − x_i)

    and its gradient, with the normalised weights ``w_i = k(x − x_i) / Σ_j k(x − x_j)``::

        ∂p̂(y = c | x)/∂x = (1/σ²) (Σ_{i ∈ I_c} w_i x_i − p̂(y = c | x) Σ_i w_i x_i)

    (the paper writes the same quotient-rule result with the unnormalised kernel sums; the test suite checks the
    two forms against each other).  Computed with the weights, not the raw kernel values, the posterior stays
    defined far from the data, where every ``k`` underflows.

    Parameters
    ----------
    X : ndarray ``(n, d)``
        Training points.
    y : int array ``(n,)``
        Their labels ``0 … C−1``.
    sigma : float
        The kernel width σ.
    n_classes : int, optional
        ``C`` (default ``max(y) + 1``).
    """

    def __init__(self, X, y, sigma, n_classes=None):
        self.X = _check_training(X)
        y = np.asarray(y)
        if y.dtype.kind not in "iu" or y.shape != (len(self.X),):
            raise ValueError(f"y must be integer labels of shape ({len(self.X)},), got {y.dtype} {y.shape}")
        if y.min() < 0:
            raise ValueError(f"labels must be non-negative, got {y.min()}")
        self.n_classes = int(y.max()) + 1 if n_classes is None else int(n_classes)
        if y.max() >= self.n_classes:
            raise ValueError(f"label {y.max()} out of range for n_classes={self.n_classes}")
        self.y = y.astype(np.intp)
        self.sigma = _check_sigma(sigma)
        self._onehot = np.eye(self.n_classes)[self.y]  # (n, C)

    def __repr__(self):
        return f"ParzenClassifier(n={len(self.X)}, d={self.X.shape[1]}, C={self.n_classes}, sigma={self.sigma:g})"

    def forward(self, x):
        """``p̂(y = c | x)`` ``(N, C)``, ``x.dtype``.

        Parameters
        ----------
        x : ndarray ``(N, d)``

        Returns
        -------
        ndarray ``(N, C)``
        """
        x = self._points(x)
        w, _ = _kernel_weights(x.astype(np.float64), self.X, self.sigma)
        return (w @ self._onehot).astype(x.dtype, copy=False)

    def vjp(self, x, grad_scores, rule="gradient", **options):
        """``Σ_c g_c ∂p̂(y = c | x)/∂x`` ``(N, d)`` in closed form (see the class docstring).

        Parameters
        ----------
        x : ndarray ``(N, d)``
        grad_scores : ndarray ``(N, C)``
        rule : ``"gradient"``

        Returns
        -------
        ndarray ``(N, d)``
        """
        if rule != "gradient" or options:
            raise self.rule_error(rule)
        x = self._points(x)
        g = self._grad_seed(x, grad_scores, self.n_classes)
        w, _ = _kernel_weights(x.astype(np.float64), self.X, self.sigma)
        p = w @ self._onehot                                  # (N, C)
        gi = g @ self._onehot.T                               # (N, n): g_{y_i} for every training point
        out = ((w * gi) @ self.X - (g * p).sum(axis=1, keepdims=True) * (w @ self.X)) / self.sigma**2
        return out.astype(x.dtype, copy=False)

    def explanation_vectors(self, x):
        """``ζ(x) = ∂P̂(Y ≠ g(x) | x)/∂x`` ``(N, d)``: :func:`explanation_vector` on this model.

        Parameters
        ----------
        x : ndarray ``(N, d)``

        Returns
        -------
        ndarray ``(N, d)``
        """
        return explanation_vector(self, x)

    @classmethod
    def fit_to_labels(cls, X, labels, sigmas, n_classes=None):
        """A Parzen classifier that mimics another classifier's ``labels`` on ``X`` (Baehrens et al. 2010, §3).

        To explain a classifier without probabilities or gradients (an SVM, k-NN), the paper fits a Parzen window
        classifier to the labels the classifier gives and explains that.  σ is chosen among ``sigmas`` to minimise
        the leave-one-out disagreement ``#{i : argmax_c p̂_{−i}(y = c | x_i) ≠ labels_i}`` (leave-one-out, because
        with its own point every training point is reproduced as σ → 0); ties go to the larger σ (the smoother
        model).

        Parameters
        ----------
        X : ndarray ``(n, d)``
        labels : int array ``(n,)``
            The explained classifier's labels at ``X``.
        sigmas : sequence of float
            Candidate widths.
        n_classes : int, optional

        Returns
        -------
        model : ParzenClassifier
        errors : ndarray ``(len(sigmas),)``
            Leave-one-out disagreement rate for every candidate.
        """
        X = _check_training(X)
        labels = np.asarray(labels)
        sigmas = np.asarray(sigmas, dtype=np.float64).ravel()
        if sigmas.size == 0:
            raise ValueError("sigmas must hold at least one candidate width")
        if len(X) < 2:
            raise ValueError(f"leave-one-out needs at least 2 points, got {len(X)}")
        first = cls(X, labels, sigmas[0], n_classes)
        d2 = _sq_dists(X, X)
        np.fill_diagonal(d2, np.inf)  # leave x_i out of its own estimate
        errors = np.empty(len(sigmas))
        for j, s in enumerate(sigmas):  # a handful of candidates; each one is vectorised over the points
            e = -d2 / (2 * _check_sigma(s) ** 2)
            w = np.exp(e - e.max(axis=1, keepdims=True))
            errors[j] = np.mean((w @ first._onehot).argmax(axis=1) != first.y)
        order = np.argsort(sigmas, kind="stable")
        ok = order[errors[order] == errors.min()]
        best = int(ok[-1])
        return cls(X, labels, sigmas[best], first.n_classes), errors


class KernelDensity(_ClosedForm):
    """A one-class Parzen density ``p̂(x) = (1/n) Σ_i N(x | x_i, σ² I)`` and the explanation of outliers.

    ``forward`` returns ``log p̂(x)`` ``(N, 1)`` (by log-sum-exp: finite far from the data) and ``vjp`` its
    closed-form gradient::

        ∇ log p̂(x) = (1/σ²) Σ_i w_i (x_i − x),   w_i = k(x − x_i) / Σ_j k(x − x_j)

    the direction that makes ``x`` less of an outlier (towards the data).  Far from the data ``w`` concentrates on
    the nearest training points, so the vector points back to them with length ``≈ distance / σ²``; the density's
    own gradient ``∇ p̂ = p̂ ∇ log p̂`` (:meth:`density_gradient`) carries the factor ``p̂``, which vanishes (and
    underflows to 0) there: the same weakness as the Parzen classifier's ζ, which is why the log is explained.
    For a single training point ``μ`` the density is ``N(μ, σ² I)`` and ``∇ log p̂(x) = (μ − x)/σ²`` exactly.

    Parameters
    ----------
    X : ndarray ``(n, d)``
    sigma : float
    """

    def __init__(self, X, sigma):
        self.X = _check_training(X)
        self.sigma = _check_sigma(sigma)

    def __repr__(self):
        return f"KernelDensity(n={len(self.X)}, d={self.X.shape[1]}, sigma={self.sigma:g})"

    def forward(self, x):
        """``log p̂(x)`` ``(N, 1)``.

        Parameters
        ----------
        x : ndarray ``(N, d)``

        Returns
        -------
        ndarray ``(N, 1)``
        """
        x = self._points(x)
        _, log_sum = _kernel_weights(x.astype(np.float64), self.X, self.sigma)
        n, d = self.X.shape
        logp = log_sum - np.log(n) - 0.5 * d * np.log(2 * np.pi * self.sigma**2)
        return logp[:, None].astype(x.dtype, copy=False)

    def vjp(self, x, grad_scores, rule="gradient", **options):
        """``g · ∇ log p̂(x)`` ``(N, d)`` in closed form.

        Parameters
        ----------
        x : ndarray ``(N, d)``
        grad_scores : ndarray ``(N, 1)``
        rule : ``"gradient"``

        Returns
        -------
        ndarray ``(N, d)``
        """
        if rule != "gradient" or options:
            raise self.rule_error(rule)
        x = self._points(x)
        g = self._grad_seed(x, grad_scores, 1)
        x64 = x.astype(np.float64)
        w, _ = _kernel_weights(x64, self.X, self.sigma)
        return (g * (w @ self.X - x64) / self.sigma**2).astype(x.dtype, copy=False)

    def explanation_vectors(self, x):
        """``∇_x log p̂(x)`` ``(N, d)``: where to move ``x`` to make it less of an outlier.

        Parameters
        ----------
        x : ndarray ``(N, d)``

        Returns
        -------
        ndarray ``(N, d)``
        """
        x = self._points(x)
        return self.vjp(x, np.ones((len(x), 1)))

    def density_gradient(self, x):
        """``∇_x p̂(x) = p̂(x) ∇ log p̂(x)`` ``(N, d)``: vanishes (underflows) far from the data.

        Parameters
        ----------
        x : ndarray ``(N, d)``

        Returns
        -------
        ndarray ``(N, d)``
        """
        x = self._points(x)
        return (np.exp(self.forward(x).astype(np.float64)) * self.explanation_vectors(x)).astype(x.dtype, copy=False)


#: the predictive integral switches from Gauss–Hermite in the standardised variable (a narrow Gaussian) to
#: Gauss–Legendre in ``f`` on ``[−TAIL, 0] ∪ [0, TAIL]`` (a wide one) above this latent variance.
WIDE_VARIANCE, TAIL, LEGENDRE_NODES = 1.0, 40.0, 128


def _sigmoid_derivatives(f):
    """``σ(f)``, ``σ'(f)``, ``σ''(f)`` without overflow."""
    s = 0.5 * (1 + np.tanh(0.5 * f))
    ds = s * (1 - s)
    return s, ds, ds * (1 - 2 * s)


def predictive_integrals(mean, var, nodes=96):
    """``E[σ(f)]``, ``E[σ'(f)]``, ``½ E[σ''(f)]`` for ``f ~ N(mean, var)``, each ``(N,)``.

    The first is a GP classifier's class probability ``p = ∫ σ(f) N(f | f̄, var_f) df`` (Rasmussen & Williams
    2006, eq. 3.25), the other two its derivatives ``∂p/∂f̄`` and ``∂p/∂var_f`` (the Gaussian's heat equation
    ``∂N/∂var = ½ ∂²N/∂f²``, integrated by parts twice).  Two rules, each where it is exact to ~1e-15:

    * ``var ≤ 1``: Gauss–Hermite with ``nodes`` nodes in ``f = f̄ + √(2 var) t``;
    * ``var > 1``: ``E[σ] = Φ(f̄/√var) + ∫ (σ(f) − H(f)) N(f) df`` (``H`` the unit step, ``σ − H`` decays like
      ``e^{−|f|}``), and ``E[σ']``, ``E[σ'']`` of functions of the same decay, by Gauss–Legendre on
      ``[−40, 0]`` and ``[0, 40]`` (the tails beyond ``|f| = 40`` are below ``e^{−40}``).  Gauss–Hermite alone
      would need ``O(var)`` nodes to resolve ``σ``'s unit width on a Gaussian of width ``√var``.

    Parameters
    ----------
    mean, var : ndarray ``(N,)``
        ``var ≥ 0``.
    nodes : int
        Gauss–Hermite nodes.

    Returns
    -------
    (p, dp_dmean, dp_dvar) : three ndarrays ``(N,)``
    """
    from scipy.special import ndtr

    mean = np.asarray(mean, dtype=np.float64)
    var = np.maximum(np.asarray(var, dtype=np.float64), 0.0)
    p, dm, dv = np.empty_like(mean), np.empty_like(mean), np.empty_like(mean)
    narrow = var <= WIDE_VARIANCE
    if narrow.any():
        t, w = np.polynomial.hermite.hermgauss(int(nodes))
        s, ds, d2s = _sigmoid_derivatives(mean[narrow, None] + np.sqrt(2 * var[narrow, None]) * t)
        w = w / np.sqrt(np.pi)
        p[narrow], dm[narrow], dv[narrow] = s @ w, ds @ w, 0.5 * (d2s @ w)
    if (~narrow).any():
        u, w = np.polynomial.legendre.leggauss(LEGENDRE_NODES)
        u, w = 0.5 * TAIL * (u + 1), 0.5 * TAIL * w           # [0, TAIL]
        f = np.concatenate([u, -u])                              # both halves: σ − H is smooth on each
        w = np.concatenate([w, w])
        m, sd = mean[~narrow, None], np.sqrt(var[~narrow, None])
        dens = np.exp(-0.5 * ((f - m) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
        s, ds, d2s = _sigmoid_derivatives(f)
        step = (f > 0).astype(np.float64)
        p[~narrow] = ndtr(mean[~narrow] / sd[:, 0]) + (dens * (s - step)) @ w
        dm[~narrow] = (dens * ds) @ w
        dv[~narrow] = 0.5 * ((dens * d2s) @ w)
    return p, dm, dv


def _rbf_parts(kernel):
    """``(amplitude s², length scales ℓ)`` of a scikit-learn ``RBF`` or ``ConstantKernel * RBF`` (either order)."""
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, Product

    def is_rbf(k):  # exactly RBF: scikit-learn's Matern is a subclass of RBF with another formula
        return type(k) is RBF

    if is_rbf(kernel):
        return 1.0, np.atleast_1d(np.asarray(kernel.length_scale, dtype=np.float64))
    if isinstance(kernel, Product):
        parts = (kernel.k1, kernel.k2)
        rbf = [k for k in parts if is_rbf(k)]
        const = [k for k in parts if isinstance(k, ConstantKernel)]
        if len(rbf) == 1 and len(const) == 1:
            return float(const[0].constant_value), np.atleast_1d(np.asarray(rbf[0].length_scale, dtype=np.float64))
    raise TypeError(
        "GaussianProcessExplainer derives the gradients of an RBF kernel: the fitted kernel must be RBF or "
        f"ConstantKernel * RBF, got {kernel}"
    )


class GaussianProcessExplainer(_ClosedForm):
    """A fitted binary ``sklearn.gaussian_process.GaussianProcessClassifier`` with closed-form explanation vectors.

    scikit-learn fits the Laplace approximation (Rasmussen & Williams 2006, Algorithm 3.1/3.2): at the posterior
    mode ``f̂`` of the latent function, ``π = σ(f̂)`` and ``W = diag(π (1 − π))``.  For an RBF kernel
    ``k(x, x') = s² exp(−Σ_j (x_j − x'_j)² / 2ℓ_j²)`` and ``k* = k(X, x)``::

        f̄(x)    = k*ᵀ (y − π)                                   latent mean (R&W eq. 3.21)
        var_f(x) = k(x, x) − k*ᵀ (K + W⁻¹)⁻¹ k*                  latent variance (R&W eq. 3.24)
        ∂k(x, x_i)/∂x = −k(x, x_i) (x − x_i) / ℓ²
        ∇f̄      = Σ_i (y − π)_i ∂k(x, x_i)/∂x
        ∇var_f   = ∂k(x, x)/∂x − 2 k*ᵀ (K + W⁻¹)⁻¹ ∂k*/∂x        (the seed's variance derivative, Σ = W⁻¹;
                                                                  ∂k(x, x)/∂x = 0 for a stationary kernel)

    with ``(K + W⁻¹)⁻¹ = W^½ B⁻¹ W^½``, ``B = I + W^½ K W^½ = L Lᵀ`` (scikit-learn's ``L_``, ``W_sr_``).  The
    class probability is the predictive integral ``p(y = 1 | x) = ∫ σ(f) N(f | f̄, var_f) df`` (R&W eq. 3.25),
    computed by :func:`predictive_integrals`, and its gradient by the chain rule with
    ``∂p/∂f̄ = E[σ'(f)]`` and ``∂p/∂var_f = ½ E[σ''(f)]`` (the Gaussian's heat equation).  scikit-learn's own
    ``predict_proba`` approximates the same integral by a sum of five error functions (Williams & Barber 1998);
    they differ by 5e-5 to 1e-4 on the tests' toy data, also with a fitted amplitude ``s² ≈ 3500`` (where plain
    Gauss–Hermite would be off by ~4e-2).  The variance gradient explains where the model is
    uncertain: it points away from the training data.

    Parameters
    ----------
    gpc : sklearn.gaussian_process.GaussianProcessClassifier
        Fitted on two classes, kernel ``RBF`` or ``ConstantKernel * RBF``.
    nodes : int
        Gauss–Hermite nodes of the predictive integral where the latent variance is at most 1
        (:func:`predictive_integrals`).
    """

    def __init__(self, gpc, nodes=96):
        est = getattr(gpc, "base_estimator_", None)
        if est is None:
            raise TypeError(f"gpc must be a fitted sklearn GaussianProcessClassifier, got {type(gpc).__name__}")
        if len(gpc.classes_) != 2:
            raise ValueError(f"GaussianProcessExplainer needs a binary classifier, got {len(gpc.classes_)} classes")
        self.classes_ = gpc.classes_
        self.X = np.asarray(est.X_train_, dtype=np.float64)
        if self.X.ndim != 2:
            raise TypeError(f"the classifier must be fitted on feature vectors (n, d), got {self.X.shape}")
        self.amplitude, ls = _rbf_parts(est.kernel_)
        self.length_scale = np.broadcast_to(ls, (self.X.shape[1],)).astype(np.float64)
        self.alpha = np.asarray(est.y_train_, dtype=np.float64) - est.pi_  # y − π
        self.W_sr = np.asarray(est.W_sr_, dtype=np.float64)
        self.L = np.asarray(est.L_, dtype=np.float64)
        self.nodes = int(nodes)
        if self.nodes < 2:
            raise ValueError(f"nodes must be at least 2, got {nodes}")

    def __repr__(self):
        return f"GaussianProcessExplainer(n={len(self.X)}, d={self.X.shape[1]}, s²={self.amplitude:g})"

    def _k(self, x):
        """``k* (N, n)`` and ``∂k*/∂x`` as ``(N, n, d)``."""
        diff = (x[:, None, :] - self.X[None, :, :]) / self.length_scale
        k = self.amplitude * np.exp(-0.5 * np.einsum("nid,nid->ni", diff, diff))
        return k, -k[:, :, None] * diff / self.length_scale

    def _u(self, k):
        """``(K + W⁻¹)⁻¹ k*`` per row, ``(N, n)``: ``W^½ L⁻ᵀ L⁻¹ W^½ k*``."""
        from scipy.linalg import solve_triangular

        v = solve_triangular(self.L, self.W_sr[:, None] * k.T, lower=True)
        return (self.W_sr[:, None] * solve_triangular(self.L.T, v, lower=False)).T

    def latent(self, x):
        """``f̄(x)``, ``var_f(x)``, ``∇f̄(x)``, ``∇var_f(x)``: ``(N,)``, ``(N,)``, ``(N, d)``, ``(N, d)``.

        Parameters
        ----------
        x : ndarray ``(N, d)``

        Returns
        -------
        (mean, variance, mean_gradient, variance_gradient)
        """
        x = self._points(x).astype(np.float64)
        k, dk = self._k(x)
        u = self._u(k)
        mean = k @ self.alpha
        var = np.maximum(self.amplitude - np.einsum("ni,ni->n", k, u), 0.0)
        return mean, var, np.einsum("i,nid->nd", self.alpha, dk), -2 * np.einsum("ni,nid->nd", u, dk)

    def forward(self, x):
        """``[1 − p(y = 1 | x), p(y = 1 | x)]`` ``(N, 2)`` (columns in the order of ``classes_``).

        Parameters
        ----------
        x : ndarray ``(N, d)``

        Returns
        -------
        ndarray ``(N, 2)``
        """
        x = self._points(x)
        mean, var, _, _ = self.latent(x)
        p, _, _ = predictive_integrals(mean, var, self.nodes)
        return np.stack([1 - p, p], axis=1).astype(x.dtype, copy=False)

    def vjp(self, x, grad_scores, rule="gradient", **options):
        """``(g₁ − g₀) ∇p(y = 1 | x)`` with ``∇p = E[σ'] ∇f̄ + ½ E[σ''] ∇var_f`` ``(N, d)``.

        Parameters
        ----------
        x : ndarray ``(N, d)``
        grad_scores : ndarray ``(N, 2)``
        rule : ``"gradient"``

        Returns
        -------
        ndarray ``(N, d)``
        """
        if rule != "gradient" or options:
            raise self.rule_error(rule)
        x = self._points(x)
        g = self._grad_seed(x, grad_scores, 2)
        mean, var, dmean, dvar = self.latent(x)
        _, p_m, p_v = predictive_integrals(mean, var, self.nodes)
        grad_p = p_m[:, None] * dmean + p_v[:, None] * dvar
        return ((g[:, 1] - g[:, 0])[:, None] * grad_p).astype(x.dtype, copy=False)

    def explanation_vectors(self, x):
        """``ζ(x) = ∂P(Y ≠ g(x) | x)/∂x`` ``(N, d)``: :func:`explanation_vector` on this model.

        Parameters
        ----------
        x : ndarray ``(N, d)``

        Returns
        -------
        ndarray ``(N, d)``
        """
        return explanation_vector(self, x)
