"""Cost ratios and throughput ratios of the sequence-scaling benchmark's summary."""

from __future__ import annotations

import pytest

from benchmarks import seq_scaling


def row(model, length, us):
    return {"model": model, "length": length, "us_per_example": us,
            "examples_per_s": 1e6 / us, "ms_per_batch": us * 128 / 1000, "peak_rss_gib": 1.0}


def test_summary_relative_costs_and_mdaf_over_bst():
    rows = [row("mdaf", 50, 100.0), row("bst", 50, 50.0), row("mdaf", 800, 1500.0),
            row("bst", 800, 6000.0), {"model": "bst", "length": 400, "note": "failed"}]
    summary = seq_scaling.summarize(rows)
    assert summary["mdaf_cost_800_vs_50"] == pytest.approx(15.0)
    assert summary["bst_cost_800_vs_50"] == pytest.approx(120.0)
    assert summary["mdaf_over_bst_at_800"] == pytest.approx(4.0)
    assert summary["mdaf_over_bst_at_50"] == pytest.approx(0.5)
    assert rows[2]["cost_vs_shortest"] == pytest.approx(15.0)
    table = seq_scaling.markdown({"rows": rows, "summary": summary})
    assert "| bst | 400 | - |" in table and "mdaf_over_bst_at_800: 4.00" in table


def test_same_token_width_for_both_models():
    config = seq_scaling.case_config(200, 128, (10, 20, 5))
    dims = config.embedding_dims
    assert dims["item"] + dims["cate"] == config.hidden_dim == 128
    assert config.max_seq_len == 200


def timed_round(ms, rss=1.0):
    return {"model": "mdaf", "length": 800, "batch": 128, "ms_per_batch": ms,
            "call_s": [ms / 1000], "first_call_s": ms / 100, "peak_rss_gib": rss,
            "forward_mflop_per_example": 839.0}


def test_rounds_merge_into_the_median_of_their_medians():
    rounds = [timed_round(1400.0), timed_round(1600.0, rss=1.5), timed_round(1280.0)]
    row = seq_scaling.merge_rounds(rounds)
    assert row["ms_per_batch"] == pytest.approx(1400.0)
    assert row["examples_per_s"] == pytest.approx(128 / 1.4)
    assert row["us_per_example"] == pytest.approx(1e6 * 1.4 / 128)
    assert row["achieved_gflops"] == pytest.approx(839.0 * 128 / 1.4 / 1e3)
    assert row["rounds_ms"] == [1400.0, 1600.0, 1280.0]
    assert row["peak_rss_gib"] == 1.5 and row["first_call_s"] == pytest.approx(12.8)
    assert "note" not in row


def test_failed_rounds_are_left_out_and_counted():
    failed = {"model": "mdaf", "length": 800, "batch": 128, "note": "failed (exit 1): OOM"}
    row = seq_scaling.merge_rounds([failed, timed_round(1000.0), timed_round(1200.0)])
    assert row["ms_per_batch"] == pytest.approx(1100.0)
    assert row["note"] == "1 of 3 rounds failed"
    assert seq_scaling.merge_rounds([failed, failed]) is failed
