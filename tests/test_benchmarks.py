"""The benchmark scripts still run (no timings asserted: speed is measured by hand, never in tests)."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks"))
import bench_core  # noqa: E402


def test_bench_core_counts_the_convolutions_flops_and_reports_both_shares():
    model = bench_core.benchmark_cnn()
    # 2·N·O·Ho·Wo·C·9 per conv: 16×16 input, pools halve it
    want = 2 * 2 * 9 * (16 * 3 * 16 * 16 + 32 * 16 * 8 * 8 + 64 * 32 * 4 * 4)
    assert bench_core.conv_flops(model, (2, 3, 16, 16)) == want
    rows = bench_core.run(repeat=1, batch=2, size=16)
    assert [r["dtype"] for r in rows] == ["float32", "float64"]
    for r in rows:  # no timing is compared with another (they vary with the machine's load): only the arithmetic
        for key in ("forward_ms", "fwd_bwd_ms", "conv_forward_ms", "conv_fwd_bwd_ms", "gemm_gflops"):
            assert np.isfinite(r[key]) and r[key] > 0, key
        lo, hi = r["forward_ms_min_max"]
        assert lo <= r["forward_ms"] <= hi  # the median lies between the extremes of the same runs
        assert r["forward_gflops"] == pytest.approx(want / (r["forward_ms"] / 1e3) / 1e9, rel=1e-12)
        assert r["conv_fwd_bwd_gflops"] == pytest.approx(2 * want / (r["conv_fwd_bwd_ms"] / 1e3) / 1e9, rel=1e-12)
        assert r["conv_forward_share_of_gemm"] == pytest.approx(r["conv_forward_gflops"] / r["gemm_gflops"], rel=1e-12)
        assert r["fwd_bwd_share_of_gemm"] == pytest.approx(r["fwd_bwd_gflops"] / r["gemm_gflops"], rel=1e-12)


def test_compare_captum_reprints_saved_runs(capsys):
    import compare_captum

    saved = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "results", "compare_captum.json")
    compare_captum.main(["--tables", saved])
    out = capsys.readouterr().out
    assert "| method | Captum |" in out and "GEMM GFLOP/s" in out
    assert np.isfinite(float(out.split("| gradient | default | ")[1].split(" ")[0]))


def test_profile_layers_splits_a_conv_call_into_steps_and_restores_the_kernel():
    import profile_layers

    from xattr.nn import Conv2D
    from xattr.nn import conv as conv_mod

    saved = {n: getattr(conv_mod, n) for n in profile_layers.PATCHES if hasattr(conv_mod, n)}
    layer = Conv2D(4, 8, 3, stride=2, padding=1, rng=0)
    row = profile_layers.profile_layer("c", layer, (2, 4, 20, 20), np.float32, repeat=2, per_fault=1e-6)
    for d in ("forward", "backward"):
        steps = row[f"{d}_steps"]
        assert set(steps) == set(profile_layers.STEPS)
        assert sum(steps.values()) == pytest.approx(row[f"{d}_s"], rel=1e-9, abs=1e-12)  # the split adds up
        assert row[f"gemm_{d}_s"] > 0 and row[f"{d}_share"] > 0
    assert row["forward_steps"]["GEMM"] > 0 and row["backward_steps"]["col2im"] > 0  # the wrappers saw the kernel
    assert row["flops"] == 2 * 8 * (4 * 9) * (2 * 10 * 10)
    stacked = Conv2D(4, 64, 3, padding=1, rng=0)  # 64 output channels > 25 pixels, two images: the stacked layout
    assert stacked._stacked(2, (5, 5))
    row = profile_layers.profile_layer("s", stacked, (2, 4, 5, 5), np.float32, repeat=2, per_fault=1e-6)
    assert row["forward_steps"]["im2col"] > 0 and row["backward_steps"]["col2im"] > 0  # its copies, not "other"
    assert all(getattr(conv_mod, n) is fn for n, fn in saved.items()) and conv_mod.np is np  # restored


@pytest.mark.parametrize("kw", [dict(stride=2, padding=1), dict(padding="same", groups=2),
                                dict(kernel_size=3, dilation=2, padding=((1, 2), (0, 1)), stride=(1, 2))])
def test_profile_layers_times_torch_on_the_same_conv_and_checks_it_agrees(kw):
    """The torch column times the same computation: torch's forward and input gradient equal xattr's (float64), for
    even and uneven padding, groups, stride and dilation; the table and summary gain the torch columns."""
    import profile_layers

    from extras import need

    need("torch")
    from xattr.nn import Conv2D

    kw = {"kernel_size": 2, **kw}
    layer = Conv2D(4, 6, kw.pop("kernel_size"), rng=0, **kw)
    row = profile_layers.profile_layer("c", layer, (2, 4, 9, 11), np.float64, repeat=1, per_fault=1e-6, torch=True)
    for d in ("forward", "backward"):
        assert row[f"torch_{d}_rel_err"] < 1e-13 and row[f"torch_{d}_s"] > 0
    table = profile_layers.step_table([row], "backward")
    assert "| xattr / torch |" in table and f"{row['backward_s'] / row['torch_backward_s']:.2f}" in table
    assert profile_layers.summary([row])["conv_torch_s"] == row["torch_forward_s"] + row["torch_backward_s"]


def test_compare_zoo_helpers():
    import compare_zoo

    from xattr.nn import Conv2D, Dense, Flatten, ReLU, Sequential

    ours = np.random.default_rng(0).normal(size=(2, 1, 5, 5))
    theirs = np.repeat(ours, 3, axis=1)  # occlusion: Captum repeats the map over the channels it hides
    assert compare_zoo.rel_l2(ours, theirs) == 0.0
    assert compare_zoo.rel_l2(ours, 2 * theirs) == pytest.approx(0.5)
    assert compare_zoo.tolerance("ig50", "float64") == compare_zoo.TOL["float64"] < compare_zoo.TOL["float32"]
    m = Sequential(Conv2D(3, 4, 3, rng=0), ReLU(), Flatten(), Dense(4 * 3 * 3, 2, rng=1))
    m32 = compare_zoo.cast_model(m, np.float32)
    assert m32[0].weight.dtype == np.float32 and m32[3].bias.dtype == np.float32 and m[0].weight.dtype == np.float64
    x = np.random.default_rng(1).normal(size=(2, 3, 5, 5))
    np.testing.assert_allclose(m32.forward(x.astype(np.float32)), m.forward(x), rtol=1e-5, atol=1e-5)


def test_bench_depthwise_agrees_with_torch_on_mobilenet_v2_shapes_and_renders_its_table():
    """The benchmark checks each depthwise shape against torch before timing (it raises if they differ): a run in
    float64 is an oracle test of the depthwise kernel at MobileNetV2's real sizes."""
    from extras import need

    need("torch", "the depthwise benchmark")
    import bench_depthwise

    shapes = bench_depthwise.MOBILENET_V2_DEPTHWISE
    assert sum(s[3] for s in shapes) == 17  # mobilenet_v2's depthwise convs
    rows = bench_depthwise.run("float64", repeat=1, shapes=[shapes[1], shapes[5], shapes[-1]])  # strides 2, 2, 1
    assert max(r["agree"] for r in rows) < 1e-12
    text = bench_depthwise.table(rows, "float64")
    assert text.count("\n| ") == len(rows) + 1 and "all 5 layers" in text
