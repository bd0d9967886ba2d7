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
