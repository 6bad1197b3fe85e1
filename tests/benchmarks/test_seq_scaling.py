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
    assert config.item_embedding_dim + config.cate_embedding_dim == config.hidden_dim == 128
    assert config.max_seq_len == 200
