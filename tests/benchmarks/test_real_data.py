"""The real-data benchmark: aggregation and table on synthetic inputs, heuristics on real rows."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from benchmarks import real_data


def run_row(model, seed, val_auc, test_auc, test_gauc="", **extra):
    row = {"model": model, "seed": str(seed), "val_auc": str(val_auc), "test_auc": str(test_auc),
           "test_gauc": str(test_gauc), "test_log_loss": "0.6", "val_log_loss": "0.6",
           "best_epoch": "3", "epochs_run": "5", "wall_seconds": "12.5"}
    row.update(extra)
    return row


HEURISTICS = {
    "val": {"category_recency": {"auc": 0.74, "gauc": 0.745, "examples": 10},
            "item_history_count": {"auc": 0.51, "gauc": 0.52, "examples": 10}},
    "test": {"category_recency": {"auc": 0.72, "gauc": 0.70, "examples": 10},
             "item_history_count": {"auc": 0.51, "gauc": 0.52, "examples": 10}},
}


def test_aggregate_runs_mean_sample_std_and_order():
    rows = [run_row("bst", 123, 0.70, 0.74, 0.69), run_row("mdaf", 42, 0.60, 0.71, 0.72),
            run_row("bst", 42, 0.72, 0.70, 0.71), run_row("mdaf", 7, 0.62, 0.73, 0.74)]
    models = real_data.aggregate_runs(rows, ["mdaf", "bst", "dcnv2"])
    assert list(models) == ["mdaf", "bst"]  # requested order; no rows for dcnv2
    assert models["bst"]["seeds"] == [42, 123]
    stat = models["bst"]["test_auc"]
    assert stat["mean"] == pytest.approx(0.72) and stat["n"] == 2
    assert stat["std"] == pytest.approx(np.std([0.74, 0.70], ddof=1))
    assert models["mdaf"]["val_auc"]["mean"] == pytest.approx(0.61)
    assert [r["seed"] for r in models["mdaf"]["runs"]] == [7, 42]
    assert models["mdaf"]["runs"][0]["test_auc"] == pytest.approx(0.73)


def test_one_seed_has_no_std_and_missing_columns_are_none():
    rows = [{"model": "mdaf", "seed": "42", "val_auc": "0.6", "val_log_loss": "0.7"}]
    models = real_data.aggregate_runs(rows, ["mdaf"])
    assert models["mdaf"]["val_auc"] == {"mean": 0.6, "std": None, "n": 1}
    assert models["mdaf"]["test_auc"] is None and models["mdaf"]["test_gauc"] is None
    verdict = real_data.not_beating(models, HEURISTICS)
    assert verdict["unknown"] == ["mdaf"] and verdict["test_auc"] == []


def test_not_beating_compares_means_with_the_category_rule_on_test():
    rows = [run_row("bst", 42, 0.9, 0.73, 0.69),  # beats on AUC (0.72), not on gAUC (0.70)
            run_row("mdaf", 42, 0.9, 0.72, 0.75),  # a tie does not beat
            run_row("dcnv2", 42, 0.5, 0.80, "")]  # no gAUC column value
    models = real_data.aggregate_runs(rows, ["bst", "mdaf", "dcnv2"])
    verdict = real_data.not_beating(models, HEURISTICS)
    assert verdict["rule"] == "category_recency"
    assert verdict["test_auc"] == ["mdaf"]
    assert verdict["test_gauc"] == ["bst"]
    assert verdict["unknown"] == []


def fake_result(models):
    return {
        "command": "python benchmarks/real_data.py",
        "started": "2026-01-01 00:00", "seconds": 90.0, "machine": {"commit": "abc1234"},
        "dataset": {"input_name": "x.csv", "sha256": "0" * 64,
                    "splits": {"val": {"examples": 10, "positives": 4},
                               "train": {"examples": 50, "positives": 20},
                               "test": {"examples": 10, "positives": 4}},
                    "leak_report": {"flagged": [], "threshold": 0.55}},
        "heuristics": HEURISTICS,
        "training": {"models": list(models), "seeds": [42, 123], "epochs": 5,
                     "config": real_data.TRAIN_CONFIG},
        "models": models,
        "not_beating": real_data.not_beating(models, HEURISTICS),
        "failures": ["autoint seed-42"],
    }


def test_markdown_puts_heuristics_first_and_names_the_losers():
    rows = [run_row("bst", 42, 0.70, 0.74, 0.71), run_row("bst", 123, 0.72, 0.76, 0.73),
            run_row("mdaf", 42, 0.60, 0.65, 0.66)]
    text = real_data.render_markdown(fake_result(real_data.aggregate_runs(rows, ["bst", "mdaf"])))
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| rule / model | test AUC | test gAUC | val AUC |")
    assert table[1].startswith("| heuristic `category_recency` | 0.7200 | 0.7000 | 0.7400 |")
    assert table[2].startswith("| heuristic `item_history_count` |")
    assert table[3].startswith("| `bst` | 0.7500 +- 0.0141 | 0.7200 +- 0.0141 | 0.7100 +- ")
    assert table[4] == "| `mdaf` | 0.6500 | 0.6600 | 0.6000 | 1 |"  # one seed: no std
    verdict = next(line for line in text.splitlines() if "do not beat" in line)
    assert "`mdaf`" in verdict and "`bst`" not in verdict
    assert "train 50 examples" in text and text.index("train 50") < text.index("val 10")
    assert "flagged nothing" in text and "autoint seed-42" in text


def test_markdown_lists_a_model_without_a_finished_run():
    rows = [run_row("bst", 42, 0.70, 0.74, 0.71)]
    result = fake_result(real_data.aggregate_runs(rows, ["bst", "autoint"]))
    result["training"]["models"] = ["bst", "autoint"]
    text = real_data.render_markdown(result)
    assert "| `autoint` | no finished run |" in text


def test_absent_input_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        real_data.main(["--input", str(tmp_path / "absent.csv"), "--heuristics-only",
                        "--work", str(tmp_path / "w"), "--output", str(tmp_path / "r")])
    assert exit_info.value.code == 2
    assert "absent" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.skipif(not real_data.SHARED_CSV.is_file(),
                    reason=f"shared Taobao sample absent: {real_data.SHARED_CSV}")
def test_heuristics_on_the_real_rows(tmp_path):
    from mdaf_tf import heuristics
    from mdaf_tf.data import read_split_numpy
    from mdaf_tf.metrics import exact_auc, group_auc

    out = tmp_path / "results" / "real_data"
    assert real_data.main(["--heuristics-only", "--work", str(tmp_path / "work"),
                           "--output", str(out)]) == 0
    result = json.loads((tmp_path / "results" / "real_data.json").read_text())
    assert (tmp_path / "results" / "real_data.md").is_file()
    assert not [p for p in (tmp_path / "results").iterdir() if p.name.startswith(".")]
    assert set(result["heuristics"]) == {"val", "test"}
    splits = result["dataset"]["splits"]
    assert list(splits) == ["train", "val", "test"]
    data_dir = str(tmp_path / "work" / "data")
    for split in ("val", "test"):
        arrays = read_split_numpy(data_dir, split)
        assert splits[split]["examples"] == len(arrays["label"]) > 0
        labels, users = arrays["label"], arrays["user_key"]
        for name, figures in result["heuristics"][split].items():
            assert 0.0 <= figures["auc"] <= 1.0 and 0.0 <= figures["gauc"] <= 1.0
            scores = heuristics.HEURISTICS[name](arrays)
            assert figures["auc"] == exact_auc(labels, scores)
            assert figures["gauc"] == group_auc(labels, scores, users)
            assert not math.isnan(figures["gauc"])
        # the category rule carries signal on real rows (0.74 / 0.73 when written)
        assert result["heuristics"][split]["category_recency"]["auc"] > 0.6
        # the direct formula on the real arrays, independently of the module's vectorisation
        hist, n = arrays["hist_cate_id"], arrays["hist_len"]
        length = hist.shape[1]
        i = int(np.argmax(n))
        want = sum(0.9**age for age in range(n[i])
                   if hist[i, length - 1 - age] == arrays["cate_id"][i]
                   and hist[i, length - 1 - age] > 1)
        assert heuristics.HEURISTICS["category_recency"](arrays)[i] == pytest.approx(want)
