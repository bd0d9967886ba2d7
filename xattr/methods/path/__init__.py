"""Path methods: integrated gradients (named quadratures and an exact solver), expected gradients, saturation.

Integrated gradients (Sundararajan, Taly & Yan 2017, "Axiomatic attribution for deep networks")::

    IG_i(x) = (x_i − x'_i) · ∫_0^1 ∂F(x' + α (x − x')) / ∂x_i dα

``F`` is the explained value (the target class's score before softmax, or a callable on the scores),
``x'`` the baseline.  Completeness: ``Σ_i IG_i(x) = F(x) − F(x')``.

The integral is a quadrature ``Σ_k w_k ∂F(x' + α_k (x − x'))`` with named nodes ``α_k`` and weights
``w_k`` (``n = steps`` gradient evaluations in every rule, so rules compare at equal cost):

===================== ================================ ================================ ============================
quadrature            nodes ``α_k``                    weights ``w_k``                  error on a smooth path
===================== ================================ ================================ ============================
``riemann_left``      ``k / n``, ``k = 0 … n−1``       ``1 / n``                        ``O(1/n)``
``riemann_right``     ``k / n``, ``k = 1 … n``         ``1 / n``                        ``O(1/n)``
``riemann_middle``    ``(k + ½) / n``, ``k = 0 … n−1`` ``1 / n``                        ``O(1/n²)``
``riemann_trapezoid`` ``k / (n−1)``, ``k = 0 … n−1``   ``1/(n−1)``, ends ``1/(2(n−1))`` ``O(1/n²)``  (n ≥ 2)
``gausslegendre``     ``(1 + t_k) / 2``, ``t_k`` the   ``v_k / 2``, ``v_k`` the         exponential (``O(ρ^{−2n})``)
                      Legendre roots on [−1, 1]        Gauss weights
``exact``             the kinks of a piecewise-linear  segment lengths                  none (float64 round-off)
                      model along the path
===================== ================================ ================================ ============================

Every rule's weights sum to 1, so on a linear model every rule is exact (a test pins this; Captum's
``riemann_trapezoid`` uses nodes ``linspace(0, 1, n)`` with weights summing to ``(n−1)/n``, a
completeness gap of ``|ΔF|/n``).  The default is ``gausslegendre`` with ``steps=50``, as Captum: on a
smooth path it converges fastest; on a ReLU network the integrand is piecewise constant and every rule
is first order, which is what ``quadrature="exact"`` removes.  Peers' nodes: see ``peers.md``
(PAIR saliency counts both ends with equal weights, iNNvestigate left Riemann, Zennit right Riemann,
Xplique trapezoid).

Exact integrated gradients (``quadrature="exact"``, new in xattr): for a ``Sequential`` of
piecewise-linear layers (conv, dense, ReLU, max-pool, average pools, flatten, batch-norm, dropout)
the network is affine on the straight path between the points where a ReLU input crosses zero or a
max-pool argmax changes.  Those points are found analytically, layer by layer: on a segment where
all earlier nonlinearities are fixed, a layer's input is affine in ``α``, its value at the segment's
midpoint and its derivative along the path (the layers' forward-mode derivatives,
:meth:`xattr.nn.Layer.jvp`) give every crossing in closed form; the segment is split there and the
pieces go on to the next nonlinearity, many segments at a time.  The gradient is constant on each
final segment; ``IG = (x − x') · Σ_segments length · gradient``.

Expected gradients (Erion et al. 2021, "Improving performance of deep learning models with axiomatic
attribution priors and expected gradients"; shap's ``GradientExplainer``): the baseline is drawn from
``K`` reference images and ``α ~ U(0, 1)``.  Saturation (Sundararajan, Taly & Yan 2016, "Gradients of
counterfactuals"): the score and the gradient's size along ``α·x``.

One file per thing, each method's :class:`~xattr.methods.registry.MethodSpec` beside its function:
:mod:`.quadratures` (the table above), :mod:`.integrated_gradients`, :mod:`.exact` (exact integrated gradients),
:mod:`.expected_gradients`, :mod:`.saturation`; what they share (checks, targets, chunked gradient sums, the
affine-head shortcut) is in ``_common.py``.
"""
from ...inputs import DEFAULT_BATCH_SIZE
from .exact import EXACT_BUDGET, ExactIG, exact_integrated_gradients
from .quadratures import QUADRATURES, quadrature_rule
from .saturation import Saturation, saturation

# importing a method's file registers it: this order is the registry's (xattr.available_methods)
# isort: off
from .integrated_gradients import integrated_gradients
from .expected_gradients import expected_gradients, expected_gradients_exact
# isort: on

__all__ = ["integrated_gradients", "exact_integrated_gradients", "quadrature_rule", "expected_gradients",
           "expected_gradients_exact", "saturation", "ExactIG", "Saturation", "QUADRATURES", "EXACT_BUDGET",
           "DEFAULT_BATCH_SIZE"]
