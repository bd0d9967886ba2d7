"""The chunk cost model (xattr.methods._chunks): its profile, its choices, and that chunks never change results."""
import numpy as np
import pytest

import xattr
from xattr.methods import _chunks
from xattr.methods.path import expected_gradients, integrated_gradients
from xattr.methods.path._common import _affine_head
from xattr.methods.smoothing import smoothgrad
from xattr.nn import Conv2D, Dense, Flatten, GlobalAvgPool2D, MaxPool2D, ReLU, Sequential


def conv_net(seed=0):
    g = np.random.default_rng(seed)
    m = Sequential(Conv2D(3, 6, 3, padding=1, rng=g), ReLU(), MaxPool2D(2), Conv2D(6, 8, 3, padding=1, rng=g), ReLU(),
                   GlobalAvgPool2D(), Dense(8, 5, rng=g))
    for k in (0, 3):
        m[k].bias = g.normal(0, 0.1, m[k].out_channels)
    return m


def dense_head_net(seed=0, width=8):
    """A conv in front of a dense head on all its outputs: weight traffic dominates at one row per call."""
    g = np.random.default_rng(seed)
    return Sequential(Conv2D(3, 16, 3, padding=1, rng=g), ReLU(), Flatten(), Dense(16 * 16 * 16, width, rng=g), ReLU(),
                      Dense(width, 5, rng=g))


@pytest.fixture(autouse=True)
def fresh_profiles():
    _chunks._profiles.clear()
    yield
    _chunks._profiles.clear()


def test_profile_counts_flops_weights_and_activations_exactly():
    """Dense(4, 3) on one row: 2 flops per weight and pass (forward, backward), each weight read twice."""
    m = Sequential(Dense(4, 3, rng=0), ReLU(), Dense(3, 2, rng=1))
    row = np.zeros((1, 4))
    p = _chunks.profile(m, row)
    assert p.flops == [2 * 2 * 12, 2 * 2 * 6]
    assert p.weight_bytes == [2 * 12 * 8, 2 * 6 * 8]
    # input 4 values, outputs 3 + 3 + 2, the ReLU's cache; plus two gradients of the largest output in flight
    tape = m.trace(row)
    held = row.nbytes + sum(np.asarray(tape.value(n)).nbytes for n in m.order)
    assert held + 2 * 3 * 8 <= p.activation_bytes <= held + 2 * 3 * 8 + 3 * 8 * 2
    conv = Sequential(Conv2D(2, 5, 3, padding=1, rng=0))
    pc = _chunks.profile(conv, np.zeros((1, 2, 6, 7), dtype=np.float32))
    assert pc.flops == [2 * 2 * (5 * 2 * 9) * (6 * 7)] and pc.weight_bytes == [2 * 5 * 2 * 9 * 4]


def test_profile_is_cached_per_model_and_shape():
    m = conv_net()
    a = _chunks.profile(m, np.zeros((1, 3, 8, 8)))
    assert _chunks.profile(m, np.zeros((1, 3, 8, 8))) is a
    assert _chunks.profile(m, np.zeros((1, 3, 10, 10))) is not a
    assert _chunks.profile(xattr.from_function(lambda x: x.reshape(len(x), -1)[:, :3]), np.zeros((1, 3))) is None


def test_weight_heavy_models_get_larger_chunks_and_the_budget_caps_them(monkeypatch):
    row = np.zeros((1, 3, 16, 16))
    heavy, light = dense_head_net(), conv_net()
    monkeypatch.setattr(_chunks, "TARGET_BYTES", 0)  # the weight rule alone
    r_heavy, r_light = _chunks.chunk_rows(heavy, row, 60), _chunks.chunk_rows(light, row, 60)
    assert r_heavy > r_light
    # the rule itself: the smallest r whose weight re-reads add at most WEIGHT_OVERHEAD to the per-row cost
    p = _chunks.profile(heavy, row)
    compute = sum(p.flops) / _chunks.GEMM_FLOPS_PER_BYTE[8] + p.activation_bytes
    r = int(np.ceil(sum(p.weight_bytes) / (_chunks.WEIGHT_OVERHEAD * compute)))
    assert 1 < r < 60 and r_heavy == -(-60 // -(-60 // r))
    monkeypatch.setattr(_chunks, "CACHE_BYTES", 5 * p.largest_bytes)  # the largest output within the cache
    assert _chunks.chunk_rows(heavy, row, 60) == 5
    monkeypatch.setattr(_chunks, "CACHE_BYTES", 2**40)
    monkeypatch.setattr(_chunks, "TARGET_BYTES", 2**40)  # the target, then the budget, cap it
    assert _chunks.chunk_rows(heavy, row, 1000) == _chunks.MAX_ROWS - 3  # 8 calls of 125 rows (128 at most)
    monkeypatch.setattr(_chunks, "MEMORY_BUDGET", 3 * p.activation_bytes)
    assert _chunks.chunk_rows(heavy, row, 1000) == 3
    monkeypatch.setattr(_chunks, "MEMORY_BUDGET", 1)
    assert _chunks.chunk_rows(heavy, row, 1000) == 1  # at least one row, whatever the budget


def test_chunks_are_evened_out_and_never_exceed_the_rows():
    m = dense_head_net()
    row = np.zeros((1, 3, 16, 16))
    r = _chunks.chunk_rows(m, row, 10**6)
    for total in (1, 2, r - 1, r, r + 1, 2 * r + 1, 1000):
        if total < 1:
            continue
        c = _chunks.chunk_rows(m, row, total)
        calls = -(-total // c)
        assert 1 <= c <= min(r, total) and calls == -(-total // min(r, total))
        assert c * calls - total < calls  # the calls differ by at most one row


def test_models_without_layers_keep_the_input_values_rule():
    f = xattr.from_function(lambda x: x.reshape(len(x), -1)[:, :3] * 2.0)
    assert _chunks.chunk_rows(f, np.zeros((1, 3, 32, 32)), 1000) == 32
    assert _chunks.chunk_rows(f, np.zeros((1, 3, 224, 224)), 1000) == 1
    assert _chunks.chunk_rows(f, np.zeros((1, 3, 32, 32)), 5) == 5


@pytest.mark.parametrize("net", [conv_net, dense_head_net])
def test_chunk_choice_does_not_change_integrated_gradients(net, monkeypatch):
    """The default chunks (several per call here) against one call with every path point: float64, 1e-13."""
    m = net()
    x = np.random.default_rng(0).normal(size=(3, 3, 16, 16))
    head = _affine_head(m)
    act = _chunks.profile(m, head.forward(x[:1])[0], start=head.name).activation_bytes
    monkeypatch.setattr(_chunks, "TARGET_BYTES", 4 * act)
    monkeypatch.setattr(_chunks, "MEMORY_BUDGET", 7 * act)
    assert 1 < _chunks.chunk_rows(m, head.forward(x[:1])[0], 60, start=head.name) <= 7  # several calls of several rows
    chunked, d1 = integrated_gradients(m, x, 2, baseline=0.1, steps=20, return_delta=True)
    whole, d2 = integrated_gradients(m, x, 2, baseline=0.1, steps=20, batch_size=60, return_delta=True)
    np.testing.assert_allclose(chunked, whole, rtol=1e-13, atol=1e-13 * np.abs(whole).max())
    np.testing.assert_allclose(d1, d2, rtol=1e-12, atol=1e-13)
    eg = expected_gradients(m, x, 1, references=x[::-1] * 0.5, n_samples=9, rng=3)
    eg_whole = expected_gradients(m, x, 1, references=x[::-1] * 0.5, n_samples=9, rng=3, batch_size=27)
    np.testing.assert_allclose(eg, eg_whole, rtol=1e-13, atol=1e-13 * np.abs(eg_whole).max())


@pytest.mark.parametrize("net", [conv_net, dense_head_net])
def test_chunk_choice_does_not_change_smoothgrad(net, monkeypatch):
    m = net()
    x = np.random.default_rng(1).normal(size=(2, 3, 16, 16))
    head = _affine_head(m)
    act = _chunks.profile(m, head.forward(x[:1])[0], start=head.name).activation_bytes
    monkeypatch.setattr(_chunks, "TARGET_BYTES", 5 * act)
    monkeypatch.setattr(_chunks, "MEMORY_BUDGET", 5 * act)
    assert _chunks.chunk_rows(m, head.forward(x[:1])[0], 24, start=head.name) == 5  # 24 rows: 5 calls (5, 5, 5, 5, 4)
    for variant in ("mean", "vargrad"):
        chunked = smoothgrad(xattr.gradient, m, x, 1, n=12, variant=variant, rng=4)
        whole = smoothgrad(xattr.gradient, m, x, 1, n=12, variant=variant, rng=4, batch_size=24)
        np.testing.assert_allclose(chunked, whole, rtol=1e-13, atol=1e-13 * np.abs(whole).max())


def test_the_default_chunk_is_the_cost_models(monkeypatch):
    """integrated_gradients and smoothgrad ask the cost model (with the affine head's output as the row)."""
    m = dense_head_net()
    x = np.random.default_rng(2).normal(size=(2, 3, 16, 16))
    seen = []
    real = _chunks.chunk_rows

    def spy(model, row, total, start=None, budget=None):
        seen.append((row.shape, total, start))
        return real(model, row, total, start=start, budget=budget)

    monkeypatch.setattr(_chunks, "chunk_rows", spy)
    integrated_gradients(m, x, 0, steps=7)
    smoothgrad(xattr.gradient, m, x, 0, n=3, rng=0)
    head = _affine_head(m)
    assert seen == [((1, 16, 16, 16), 14, head.name), ((1, 16, 16, 16), 6, head.name)]


def test_planned_folds_the_pairs_whose_saved_passes_outweigh_their_weights():
    """A pair folds when rows × output positions ≥ FOLD_COST_RATIO × fan-in (the decision, not the numbers: those
    are tests/test_norm.py's); a plan is not planned again; the profile's positions are the conv's Ho·Wo."""
    from xattr.nn import BatchNorm2D

    g = np.random.default_rng(0)
    # conv a: fan-in 3·3·3 = 27 at 8×8 = 64 positions; conv b: fan-in 6·3·3 = 54 at 1×1 (stride 8)
    m = Sequential(Conv2D(3, 6, 3, padding=1, rng=g), BatchNorm2D(6), ReLU(), Conv2D(6, 4, 3, stride=8, rng=g),
                   BatchNorm2D(4), Flatten())
    row = np.zeros((1, 3, 8, 8))
    assert _chunks.profile(m, row).positions == {"conv1": 64, "conv2": 1}
    ratio = _chunks.FOLD_COST_RATIO

    def folded(rows):
        plan = _chunks.planned(m, row, rows)
        return [n for n in m.names if n.startswith("conv") and f"bn{n[-1]}" not in plan.names]

    assert folded(1) == ["conv1"]  # 64 ≥ 2·27, 1 < 2·54
    assert folded(int(np.ceil(ratio * 54)) - 1) == ["conv1"]
    assert folded(int(np.ceil(ratio * 54))) == ["conv1", "conv2"]
    plan = _chunks.planned(m, row, 1)
    assert plan.is_gradient_plan and _chunks.planned(plan, row, 1000) is plan
