"""xattr.inputs: one completeness gap with one sign for every method that has one, and one baseline coercion."""
import numpy as np
import pytest

import xattr
from xattr.inputs import as_baseline, completeness_gap
from xattr.nn import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential

from extras import need  # noqa: E402  (tests/extras.py: optional packages of the test suite)

T = np.array([0, 2])


def _model():
    g = np.random.default_rng(0)
    c = Conv2D(2, 3, 3, padding=1, rng=g)
    c.bias = g.normal(0, 0.3, 3)
    d = Dense(3 * 4 * 4, 3, rng=g)
    d.bias = g.normal(0, 0.3, 3)
    return Sequential(c, ReLU(), MaxPool2D(2), Flatten(), d)


def _x():
    return np.random.default_rng(1).random((2, 2, 8, 8))


def _score(model, x):
    return model(x)[np.arange(len(x)), T]


def _by_hand(attr, fx, fref):
    return attr.reshape(len(attr), -1).sum(1) - (fx - fref)


def test_completeness_gap_is_captums_sign():
    a = np.ones((2, 3))
    np.testing.assert_array_equal(completeness_gap(a, [1.0, 5.0], [0.0, 1.0]), [2.0, -1.0])


def test_every_method_reports_the_same_signed_gap():
    """On one model and input each method's returned gap equals Σ attributions − (F(x) − F(x')) computed here,
    sign and value; the methods with a real gap (a 5-node quadrature, DeepLIFT's max-pool rule with a random
    reference, LRP's biases) show both signs, so a flipped convention cannot pass."""
    model, x = _model(), _x()
    ref = np.random.default_rng(2).random(x.shape) * 0.5
    fx = _score(model, x)
    cases = {
        "integrated_gradients (5 nodes)": (
            xattr.integrated_gradients(
                model, x, T, baseline=ref, steps=5, quadrature="riemann_left", return_delta=True
            ),
            _score(model, ref),
        ),
        "exact IG": (
            (lambda r: (r.attributions, r.delta))(xattr.exact_integrated_gradients(model, x, T, ref)),
            _score(model, ref),
        ),
        "deeplift (maxpool gradient)": (
            xattr.deeplift(model, x, T, reference=ref, return_delta=True),
            _score(model, ref),
        ),
        "deepshap": (
            xattr.deepshap(model, x, T, references=np.stack([ref[0], ref[1] * 0.3]), return_delta=True),
            (model(ref[:1])[0, T] + model(ref[1:] * 0.3)[0, T]) / 2,
        ),
        "lrp-0": (xattr.lrp(model, x, T, "0", return_delta=True), 0.0),
    }
    signs = set()
    for name, ((attr, gap), fref) in cases.items():
        want = _by_hand(attr, fx if name != "lrp-0" else fx, fref)
        np.testing.assert_allclose(gap, want, rtol=1e-10, atol=1e-12, err_msg=name)
        signs |= {np.sign(v) for v in want if abs(v) > 1e-9}
    assert signs == {1.0, -1.0}
    phi, values, gap = xattr.shapley(model, x, T, segments=np.arange(64).reshape(8, 8) // 16, return_values=True,
                                     return_delta=True)
    hidden = _score(model, np.zeros_like(x))
    np.testing.assert_allclose(gap, values.sum(1) - (fx - hidden), rtol=0, atol=1e-12)
    assert np.abs(gap).max() < 1e-12  # efficiency is exact over the players


def test_the_batch_store_holds_the_signed_gap(tmp_path):
    need("zarr", reason="xattr batch needs the batch extra: pip install 'xattr-ref[dev]'")
    import zarr

    from xattr import batch

    model, x = _model(), _x()
    methods = [("ig5", "integrated_gradients", {"steps": 5, "quadrature": "riemann_left"}), "deeplift"]
    r = batch.attribute_dataset(model, x, T, methods=methods, out=str(tmp_path / "s.zarr"), scheduler="sync",
                                batch_size=2)
    root = zarr.open_group(r.store, mode="r")
    for label, fn in [("ig5", lambda: xattr.integrated_gradients(model, x, T, steps=5, quadrature="riemann_left",
                                                                   return_delta=True)),
                      ("deeplift", lambda: xattr.deeplift(model, x, T, return_delta=True))]:
        _, gap = fn()
        np.testing.assert_allclose(root[f"stats/{label}/completeness_gap"][:], gap, rtol=1e-12, atol=1e-15)


def test_as_baseline_shapes_and_errors():
    x = np.zeros((2, 3, 4, 4))
    assert as_baseline(0.5, x).shape == x.shape
    one = np.arange(48.0).reshape(3, 4, 4)
    np.testing.assert_array_equal(as_baseline(one, x)[1], one)
    np.testing.assert_array_equal(as_baseline(np.ones((1, 3, 1, 1)), x), np.ones(x.shape))
    b = np.ones(x.shape)
    out = as_baseline(b, x)
    assert out is not b and np.shares_memory(out, b) is False
    np.testing.assert_array_equal(as_baseline(lambda v: v + 1, x), x + 1)
    with pytest.raises(ValueError, match=r"baseline must be a scalar, one sample of shape \(3, 4, 4\)"):
        as_baseline(np.zeros((5, 4, 4)), x)
    with pytest.raises(ValueError, match="finite"):
        as_baseline(np.nan, x)
    with pytest.raises(TypeError, match="bool"):
        as_baseline(True, x)
    with pytest.raises(TypeError, match="callable"):
        as_baseline(lambda v: v, x, allow_callable=False)


# -- batch sizes: one name, one unit (model input rows per call), the cost model by default ----------------------
def test_batch_size_is_checked_once_and_none_is_the_cost_models_choice():
    from xattr.inputs import DEFAULT_BATCH_SIZE, check_batch_size, rows_per_call
    from xattr.methods import _chunks

    assert DEFAULT_BATCH_SIZE is None and check_batch_size(None) is None and check_batch_size(np.int64(5)) == 5
    for bad in (0, -1, 2.5, True, "8"):
        with pytest.raises(ValueError, match="batch_size must be a positive int or None, got"):
            check_batch_size(bad)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got None"):
        check_batch_size(None, allow_none=False)
    model, x = _model(), _x()
    assert rows_per_call(7, model, x, 1000) == 7
    assert rows_per_call(None, model, x, 1000) == _chunks.chunk_rows(model, x[:1], 1000)
    assert rows_per_call(None, None, x, 1000) == _chunks.values_rule(x[:1], 1000)  # no layers: the values rule


def test_every_chunked_method_takes_none_and_gives_what_an_explicit_size_gives():
    """The chunk only groups the same numbers into calls: None (the cost model) and 3 rows per call agree."""
    model, x = _model(), _x()
    seg = np.arange(64).reshape(8, 8) // 16
    calls = [
        lambda bs: xattr.integrated_gradients(model, x, T, steps=8, batch_size=bs),
        lambda bs: xattr.saturation(model, x, T, alphas=np.linspace(0, 1, 5), batch_size=bs).gradient_norm,
        lambda bs: xattr.smoothgrad(xattr.gradient, model, x, T, n=4, rng=0, batch_size=bs),
        lambda bs: xattr.occlusion(model, x, T, window=4, stride=4, batch_size=bs, incremental=False),
        lambda bs: xattr.shapley(model, x, T, segments=seg, batch_size=bs, locality=False),
        lambda bs: xattr.lime(model, x, T, segments=seg, n_samples=20, rng=0, batch_size=bs, locality=False),
        lambda bs: xattr.prediction_difference(model, x, T, window=4, padding=0, stride=4, n_samples=2, rng=0,
                                               sampling="marginal", references=x, batch_size=bs),
    ]
    for call in calls:
        np.testing.assert_allclose(call(None), call(3), rtol=1e-12, atol=1e-12)
