"""The comparison's yardsticks: the oracle and the logistic-regression ceiling on synthetic
data, checked against independent computations and studies/linear_ceiling/linear_ceiling.py,
and their absence on other data."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))

from tiny_run import write_dataset  # noqa: E402

from mdaf_tf import compare  # noqa: E402
from mdaf_tf.comparison import runs, tables, yardsticks  # noqa: E402
from mdaf_tf.data import load_metadata, read_split_numpy  # noqa: E402
from pipelines import synthetic  # noqa: E402
from studies.linear_ceiling import linear_ceiling as linear_ceiling_cli  # noqa: E402

SYNTHETIC_ARGS = ["--users", "40", "--items", "30", "--categories", "5",
                  "--impressions-per-user", "20"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic") / "data"
    synthetic.build(synthetic.parse_args(["--output", str(out), *SYNTHETIC_ARGS]))
    return out


@pytest.fixture(scope="module")
def found(dataset):
    return yardsticks.compute(dataset)


def _pairwise_auc(labels, scores) -> float:
    """AUC from its definition: P(positive scores above negative), ties one half."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def _plain_gauc(labels, scores, users) -> float:
    total = weighted = 0.0
    for user in np.unique(users):
        mine = users == user
        if 0 < labels[mine].sum() < mine.sum():
            weighted += mine.sum() * _pairwise_auc(labels[mine], scores[mine])
            total += mine.sum()
    return weighted / total


def test_the_oracle_row_is_the_true_probabilities_on_test(dataset, found):
    meta = load_metadata(dataset)
    test = read_split_numpy(dataset, "test")
    log = synthetic.simulate(argparse.Namespace(**meta["args"]))
    p_of = {(int(u), int(t)): p for u, t, p in zip(log["user_id"], log["timestamp"], log["p"],
                                                    strict=True)}
    p = np.array([p_of[(int(u), int(t))] for u, t in zip(test["user_key"], test["timestamp"],
                                                          strict=True)])
    y = test["label"]
    row = found.rows["oracle"]
    assert found.note is None and found.complete
    assert row["test_auc"] == pytest.approx(_pairwise_auc(y, p), abs=1e-12)
    assert row["test_auc"] == pytest.approx(meta["oracle"]["test"]["auc"], abs=1e-12)
    assert row["test_gauc"] == pytest.approx(_plain_gauc(y, p, test["user_key"]), abs=1e-12)
    expected_loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert row["test_log_loss"] == pytest.approx(expected_loss, abs=1e-12)


def test_the_lr_row_is_what_the_benchmark_prints(dataset, found, capsys):
    assert linear_ceiling_cli.main([str(dataset)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6 and lines[2].startswith("logistic regression, both features")
    printed = json.loads(lines[-1])
    assert set(printed) == {"oracle", "static", "sequence", "both", "item", "item_sequence"}
    assert set(printed["both"]) == {"val_auc", "test_auc", "C"}
    row = found.rows["lr_ceiling"]
    for key in ("val_auc", "test_auc", "C"):
        assert row[key] == printed["both"][key], key
    assert 0.5 < row["test_auc"] < 1 and 0 < row["test_log_loss"] < 1


def test_a_synthetic_dataset_of_an_older_version_gets_a_note(dataset, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(dataset, copy)
    meta = json.loads((copy / "metadata.json").read_text())
    del meta["oracle"]["test"]["gauc"]  # written before the oracle's gAUC was recorded
    (copy / "metadata.json").write_text(json.dumps(meta))
    result = yardsticks.compute(copy)
    assert result.rows == {} and "older version" in result.note and "\n" not in result.note


def test_no_rows_on_other_data_only_a_note(tmp_path):
    data_dir = write_dataset(tmp_path / "data", n_train=64, n_val=32,
                             oracle={"auc": 0.8, "test": {"auc": 0.8}})
    result = yardsticks.compute(data_dir)
    assert result.rows == {} and result.complete
    assert "not from pipelines.synthetic" in result.note and "\n" not in result.note
    md, _ = tables.table3({}, "ref", yardsticks=result)
    assert result.note in md.splitlines() and "yardstick:" not in md
    assert tables.yardsticks_csv(result).strip() == ",".join(tables.YARDSTICK_COLUMNS)


def _fake_result(model, seed, auc):
    return {"model": model, "seed": seed, "parameters": 100, "val_auc": auc,
            "val_log_loss": 0.6, "test_auc": auc, "test_gauc": auc - 0.05,
            "test_log_loss": 0.6, "inference_ms_per_batch": 1.0, "inference_batch_size": 64,
            "peak_rss_mib": 100.0, "inference_examples_per_second": 64000.0,
            "train_examples_per_second": 1000.0}


FAKE_AUC = {"dcnv3": (0.70, 0.72, 0.71), "dcnv2": (0.66, 0.69, 0.65), "dnn": (0.75, 0.73, 0.74)}


def test_table3_shows_the_yardsticks_outside_the_tests(found):
    grouped = tables.by_model([_fake_result(m, s, auc) for m, aucs in FAKE_AUC.items()
                               for s, auc in enumerate(aucs)], list(FAKE_AUC))
    plain_md, plain_csv = tables.table3(grouped, "dcnv3")
    md, csv = tables.table3(grouped, "dcnv3", yardsticks=found)
    assert csv == plain_csv  # one row per model; p-values and the Holm family unchanged
    assert "over the 2 model(s) compared with dcnv3" in md
    assert md.splitlines()[2:7] == plain_md.splitlines()[2:7]
    for name, row in found.rows.items():
        line = next(x for x in md.splitlines() if x.startswith(f"| {name} (yardstick: "))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1:3] == ["-", "-"] and cells[-2:] == ["-", "-"]
        assert cells[3:6] == [f"{row[k]:.4f}" for k in ("test_auc", "test_gauc",
                                                         "test_log_loss")]
        assert cells[6] == f"{1e4 * (row['test_auc'] - np.mean(FAKE_AUC['dcnv3'])):+.1f}"
    assert "left out of the paired t-tests and the Holm family" in md


def test_compare_writes_and_then_reuses_the_yardsticks(dataset, tmp_path, monkeypatch,
                                                       found):
    def fake_run_all(models, seeds, *args, **kwargs):
        return [runs.RunOutcome(m, s, "trained", result=_fake_result(m, s, FAKE_AUC[m][i]))
                for m in models for i, s in enumerate(seeds)]

    monkeypatch.setattr(runs, "run_all", fake_run_all)
    output = tmp_path / "cmp"
    args = ["--data", str(dataset), "--models", "dcnv3,dcnv2", "--seeds", "1,2", "--output",
            str(output), "--reference", "dcnv3", "--quiet"]
    assert compare.main(args) == 0
    kept = json.loads((output / "yardsticks.json").read_text())
    assert kept["rows"] == found.rows and kept["complete"]
    assert "| oracle (yardstick: " in (output / "table3.md").read_text()
    csv_rows = (output / "yardsticks.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in csv_rows[1:]] == ["oracle", "lr_ceiling"]
    assert [r.split(",")[0] for r in (output / "table3.csv").read_text().splitlines()[1:]] \
        == ["dcnv3", "dcnv2"]

    monkeypatch.setattr(yardsticks, "compute", lambda data_dir: pytest.fail("recomputed"))
    mtime = (output / "yardsticks.json").stat().st_mtime_ns
    assert compare.main(args) == 0
    assert (output / "yardsticks.json").stat().st_mtime_ns == mtime
    assert (output / "yardsticks.csv").read_text().strip().splitlines() == csv_rows
