"""The benchmark scripts still run (no timings asserted: speed is measured by hand, never in tests)."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks"))
import bench_core  # noqa: E402


def test_bench_core_counts_the_convolutions_flops_and_reports_both_shares():
    model = bench_core.benchmark_cnn()
    # 2·N·O·Ho·Wo·C·9 per conv: 16×16 input, pools halve it
    want = 2 * 2 * 9 * (16 * 3 * 16 * 16 + 32 * 16 * 8 * 8 + 64 * 32 * 4 * 4)
    assert bench_core.conv_flops(model, (2, 3, 16, 16)) == want
    rows = bench_core.run(repeat=1, batch=2, size=16)
    assert [r["dtype"] for r in rows] == ["float32", "float64"]
    for r in rows:
        assert r["conv_forward_ms"] <= r["forward_ms"] * 1.5 + 1  # the layers alone: part of the model's time
        assert 0 < r["conv_forward_share_of_gemm"] and 0 < r["forward_share_of_gemm"]


def test_compare_captum_reprints_saved_runs(capsys):
    import compare_captum

    saved = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "results", "compare_captum.json")
    compare_captum.main(["--tables", saved])
    out = capsys.readouterr().out
    assert "| method | Captum |" in out and "GEMM GFLOP/s" in out
    assert np.isfinite(float(out.split("| gradient | default | ")[1].split(" ")[0]))
