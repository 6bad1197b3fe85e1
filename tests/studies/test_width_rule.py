"""The width-rule study end to end on a tiny generated log: two real training commands, what
they chose, what they reported, and a rerun that trains nothing."""

from __future__ import annotations

import csv
import json

import pytest

from mdaf_tf.train import result_line
from studies.width_rule import width_rule

TINY = "--users 30 --items 40 --categories 6 --impressions-per-user 25 --seed 3"


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory):
    root = tmp_path_factory.mktemp("width_rule")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(width_rule.SETTINGS, "tiny", TINY)
        argv = ["--output", str(root / "out"), "--work", str(root / "work"),
                "--settings", "tiny", "--widths", "rule", "seed", "--models", "dnn"]
        assert width_rule.main(argv) == 0
        first = json.loads((root / "out" / "width_rule.json").read_text())
        logs = sorted((root / "work" / "runs" / "tiny").glob("*.log"))
        stamps = [p.stat().st_mtime_ns for p in logs]
        assert width_rule.main(argv) == 0
        assert [p.stat().st_mtime_ns for p in logs] == stamps  # nothing trained again
    return root, first


def test_the_rule_run_narrows_and_the_seed_run_keeps_80_and_64(benchmark):
    root, result = benchmark
    runs = {r["widths"]: r for r in result["runs"]}
    config = json.loads((root / "out" / "run_files" / "tiny" / "dnn_rule" / "config.json")
                        .read_text())
    n = config["train_examples"]
    # A few hundred examples over 30 users and 40 items: half the examples an id, down to a
    # multiple of 8, at least 4.
    for field, vocab in (("user_width", "user"), ("item_width", "item")):
        per_row = n / (config["model"]["vocab_sizes"][vocab] - 2)
        assert runs["rule"][field] == max(4, int(per_row / 2) // 8 * 8) < 64
    assert (runs["seed"]["user_width"], runs["seed"]["item_width"]) == (80, 64)
    assert "--config" not in runs["rule"]["command"] and "--config" in runs["seed"]["command"]


def test_each_row_holds_what_its_run_reported_and_recorded(benchmark):
    root, result = benchmark
    for run in result["runs"]:
        kept = root / "out" / "run_files" / "tiny" / f"dnn_{run['widths']}"
        with open(kept / "metrics.csv") as f:
            val = [float(r["val_auc"]) for r in csv.DictReader(f)]
        best = max(range(len(val)), key=val.__getitem__)
        assert run["best_epoch"] == best + 1
        assert run["val_auc"] == pytest.approx(val[best], abs=5e-5)
        assert 0.0 < run["test_auc"] < 1.0
    rule = next(r for r in result["runs"] if r["widths"] == "rule")
    row = f"| tiny | dnn | rule | {rule['user_width']}/{rule['item_width']}/"
    assert row in (root / "out" / "README.md").read_text()


class _Result:
    test = {"auc": 0.73456, "gauc": float("nan"), "log_loss": 0.58}
    best_epoch, best, metadata = 2, {"auc": 0.74412}, {}


def test_the_parser_reads_the_training_command_s_own_result_line():
    line = result_line(_Result())
    parsed = width_rule.parse_report(f"noise\n{line}\n")
    assert parsed["test_auc"] == 0.7346 and parsed["val_auc"] == 0.7441
    assert parsed["best_epoch"] == 2 and parsed["test_log_loss"] == 0.58
    with pytest.raises(ValueError, match="no 'test AUC"):
        width_rule.parse_report("epoch 1: val_auc 0.7")
