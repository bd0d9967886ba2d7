"""xattr.methods._bounds: options refused before any arithmetic, with the bound named.

Each case would, without the check, allocate gigabytes (``steps=10**9``: 7.45 GiB of node indices), compute
with a kernel that divided by zero (``kernel_width=1e-200``), return LAPACK noise (``alpha=inf``), hang in
scipy's blur (``sigma=inf``), overflow an int64 cost (``2**k`` on per-pixel segments) or return ``inf``
(exact IG in float32).  Oracle for "before any arithmetic": a model that counts its forward calls is
never called.
"""
import numpy as np
import pytest

import xattr
from xattr.methods import _bounds, path
from xattr.methods import perturbation as P
from xattr.methods.perturbation._coalitions import _local_plan
from xattr.methods.registry import get_method
from xattr.nn import Conv2D, Dense, Flatten, GlobalAvgPool2D, ReLU, Sequential


class Counting:
    """A model protocol object that counts forward calls (and delegates to a small CNN)."""

    def __init__(self):
        g = np.random.default_rng(0)
        self.net = Sequential(Conv2D(1, 2, 3, padding=1, rng=g), ReLU(), GlobalAvgPool2D(), Dense(2, 3, rng=g))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.net.forward(x)

    def vjp(self, x, g, rule="gradient"):
        self.calls += 1
        return self.net.vjp(x, g, rule)

    def __call__(self, x):
        return self.forward(x)


X = np.random.default_rng(1).random((1, 1, 8, 8))

REFUSED = [
    ("lime kernel_width=1e-200", lambda m: P.lime(m, X, 0, kernel_width=1e-200, rng=0), "square underflows to 0"),
    ("lime kernel_width=nan", lambda m: P.lime(m, X, 0, kernel_width=float("nan"), rng=0), "finite"),
    ("lime alpha=inf", lambda m: P.lime(m, X, 0, alpha=float("inf"), rng=0), "alpha must be a finite number"),
    ("lime n_samples=1e9", lambda m: P.lime(m, X, 0, n_samples=10**9, rng=0), "above the bound 131072"),
    ("kernel_shap n_samples=1e9", lambda m: P.kernel_shap(m, X, 0, n_samples=10**9, rng=0), "above the bound 131072"),
    (
        "kernel_shap n_samples='lots'",
        lambda m: P.kernel_shap(m, X, 0, n_samples="lots", rng=0),
        "positive int or 'auto'",
    ),
    ("ig steps=1e9", lambda m: xattr.integrated_gradients(m, X, 0, steps=10**9), "above the bound MAX_STEPS = 65536"),
    (
        "expected_gradients n_samples=1e9",
        lambda m: path.expected_gradients(m, X, 0, X, n_samples=10**9, rng=0),
        "above the bound MAX_STEPS",
    ),
    ("smoothgrad n=1e9", lambda m: get_method("smoothgrad")(m, X, 0, n=10**9), "above the bound 131072"),
]


@pytest.mark.parametrize("call, message", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_options_refused_before_the_model_is_called(call, message):
    m = Counting()
    with pytest.raises((ValueError, TypeError), match=message):
        call(m)
    assert m.calls == 0


def test_blur_sigma_inf_and_huge_refused():
    net = Counting().net
    for sigma, message in ((float("inf"), "finite"), (1e9, "above the bound")):
        with pytest.raises(ValueError, match=message):
            P.occlusion(net, X, 0, window=4, stride=4, baseline="blur", sigma=sigma)
    # an unused sigma (no blur) is not an error; the largest allowed one is the image mean to round-off
    P.occlusion(net, X, 0, window=4, stride=4, baseline=0.0, sigma=float("inf"))
    from xattr.methods.segments import blur

    np.testing.assert_allclose(blur(X, _bounds.MAX_BLUR_SIGMA), np.broadcast_to(X.mean(), X.shape), rtol=0, atol=1e-6)


def test_lime_regression_size_is_bounded_by_segments_too():
    net = Counting().net
    x = np.random.default_rng(0).random((1, 1, 200, 200))
    seg = np.arange(200 * 200).reshape(200, 200)  # per-pixel: a 40000 x 40000 normal-equation matrix (12 GiB)
    with pytest.raises(ValueError, match="needs .* GiB for its regression"):
        P.lime(net, x, 0, segments=seg, n_samples=100, rng=0)


def test_local_tables_cost_in_floats_on_per_pixel_segments():
    """9x9 receptive field: 81 segments under one position; 2**81 overflowed int64 (a negative cost chose
    the tables, which then asked for 2**81 rows).  The cost is a float now: the tables are not chosen, and
    the result equals plain evaluation."""
    g = np.random.default_rng(0)
    net = Sequential(
        *[layer for i in range(4) for layer in (Conv2D(1 if i == 0 else 2, 2, 3, padding=1, rng=g), ReLU())],
        GlobalAvgPool2D(),
        Dense(2, 3, rng=g),
    )
    x = np.random.default_rng(2).random((1, 1, 12, 12))
    seg = np.arange(144).reshape(12, 12)
    plan = _local_plan(net, x.shape, seg, 144)
    assert plan.groups.sum(1).max() == 81 and plan.cost > 2.0**81
    auto = P.kernel_shap(net, x, 0, segments=seg, n_samples=64, rng=0)
    plain = P.kernel_shap(net, x, 0, segments=seg, n_samples=64, rng=0, locality=False)
    assert np.array_equal(auto, plain)
    with pytest.raises(ValueError, match=r"locality=True would tabulate 2\^81 subsets"):
        P.kernel_shap(net, x, 0, segments=seg, n_samples=64, rng=0, locality=True)


def test_exact_ig_refuses_float32_overflow_like_the_other_methods():
    net = Sequential(Flatten(), Dense(4, 2, rng=0), ReLU(), Dense(2, 2, rng=0))
    net.layers[1].weight, net.layers[3].weight = np.full((2, 4), 10.0), np.ones((2, 2))
    net.layers[1].bias, net.layers[3].bias = np.zeros(2), np.zeros(2)
    x = np.full((1, 1, 2, 2), 3e38, np.float32)  # dF/dx = 20: attributions 6e39 do not fit float32
    with pytest.raises(ValueError, match="overflow float32.*pass float64"):
        xattr.integrated_gradients(net, x, 0, quadrature="exact")
    with pytest.raises(ValueError, match="must be finite"), np.errstate(over="ignore"):  # what the float32
        xattr.gradient(net, x, 0)  # methods say on the same input
    a = xattr.integrated_gradients(net, x.astype(np.float64), 0, quadrature="exact")
    np.testing.assert_allclose(a, 20 * x.astype(np.float64), rtol=1e-15)  # in float64: the exact value


def test_bounds_are_inclusive():
    net = Counting().net
    assert _bounds.count(_bounds.MAX_SAMPLES, "n", 1, _bounds.MAX_SAMPLES) == _bounds.MAX_SAMPLES
    a, w = path.quadrature_rule("riemann_middle", _bounds.MAX_STEPS)
    assert len(a) == _bounds.MAX_STEPS and abs(w.sum() - 1) < 1e-12
    P.lime(net, X, 0, n_samples=4, kernel_width=_bounds.MIN_KERNEL_WIDTH * 2, rng=0, alpha=0.0 + 1.0)
