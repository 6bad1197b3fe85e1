import csv
import io
import json
from pathlib import Path
from types import SimpleNamespace

from mdaf_tf.tuning import trial_table


class FakeTuner:
    """What trial_table reads from a RunnerTuner: the oracle's trials and per-trial files."""

    def __init__(self, root: Path, trials: dict):
        self.root = root
        self.hypermodel = SimpleNamespace(space={"dropout": None, "weight_decay": None})
        self.oracle = SimpleNamespace(trials={})
        for trial_id, (status, values, summary) in trials.items():
            self.oracle.trials[trial_id] = SimpleNamespace(
                status=status, hyperparameters=SimpleNamespace(values=values))
            run = root / f"trial_{trial_id}" / "run"
            run.mkdir(parents=True)
            (run / "config.json").write_text(json.dumps(
                {"model": {"dropout": values["dropout"]},
                 "train": {"weight_decay": values["weight_decay"]}, "seed": 1}))
            if summary is not None:
                (root / f"trial_{trial_id}" / "summary.json").write_text(json.dumps(summary))

    def run_dir(self, trial_id):
        return self.root / f"trial_{trial_id}" / "run"

    def read_summary(self, trial_id):
        path = self.root / f"trial_{trial_id}" / "summary.json"
        return json.loads(path.read_text()) if path.is_file() else None


def summary(val, train):
    return {"epochs": 3, "best_epoch": 2, "val_auc": val, "val_log_loss": 0.6,
            "train_auc": train, "train_val_gap": train - val, "seconds": 5.0}


def test_rows_sorted_by_val_auc_with_unfinished_last(tmp_path):
    tuner = FakeTuner(tmp_path, {
        "0": ("COMPLETED", {"dropout": 0.1, "weight_decay": 1e-5}, summary(0.61, 0.90)),
        "1": ("COMPLETED", {"dropout": 0.3, "weight_decay": 5e-5}, summary(0.64, 0.70)),
        "2": ("RUNNING", {"dropout": 0.2, "weight_decay": 2e-5}, None),
        "3": ("COMPLETED", {"dropout": 0.4, "weight_decay": 9e-5}, summary(0.62, 0.65)),
    })
    out = tmp_path / "out"
    out.mkdir()
    best = trial_table.write_all(tuner, out, "title")
    assert best["trial"] == "1"
    rows = list(csv.DictReader(io.StringIO((out / "trials.csv").read_text())))
    assert [r["trial"] for r in rows] == ["1", "3", "0", "2"]
    assert [r["rank"] for r in rows] == ["1", "2", "3", ""]
    assert rows[3]["status"] == "RUNNING" and rows[3]["val_auc"] == ""
    assert float(rows[2]["train_val_gap"]) == 0.90 - 0.61
    assert json.loads((out / "best_config.json").read_text()) == {
        "model": {"dropout": 0.3}, "train": {"weight_decay": 5e-5}}
    markdown = (out / "trials.md").read_text().splitlines()
    table = [line for line in markdown if line.startswith("| ")]
    assert len(table) == 5  # header + 4 trials
    assert "| 1 | 1 | COMPLETED | 0.300 | 5.00e-05 |" in table[1]


def test_no_best_config_before_a_trial_completes(tmp_path):
    tuner = FakeTuner(tmp_path, {"0": ("RUNNING", {"dropout": 0.1, "weight_decay": 1e-5}, None)})
    out = tmp_path / "out"
    out.mkdir()
    assert trial_table.write_all(tuner, out, "title") is None
    assert not (out / "best_config.json").exists()
    assert (out / "trials.csv").read_text().count("\n") == 2
