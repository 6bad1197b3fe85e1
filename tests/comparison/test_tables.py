import math

import pytest

from mdaf_tf.comparison import tables
from mdaf_tf.comparison.stats import holm, paired_t_test

SEEDS = (1, 2, 3)
# Per-seed test AUCs; validation AUCs rank the models the other way round, so a table on
# validation figures would not match any expectation below.
TEST_AUC = {"ref": [0.70, 0.71, 0.69], "a": [0.72, 0.74, 0.70], "b": [0.705, 0.70, 0.69],
            "c": [0.75, 0.77, 0.76]}


def result(model, seed, i):
    auc = TEST_AUC[model][i]
    return {"model": model, "seed": seed, "parameters": 1000, "val_auc": 1.0 - auc,
            "val_log_loss": 0.9, "test_auc": auc, "test_gauc": auc - 0.1,
            "test_log_loss": 1.0 - auc}


@pytest.fixture()
def grouped():
    results = [result(m, s, i) for m in TEST_AUC for i, s in enumerate(SEEDS)]
    return tables.by_model(results, list(TEST_AUC))


def test_table3_is_on_test_figures_with_holm_over_the_compared_models(grouped):
    md, csv = tables.table3(grouped, "ref")
    header, *lines = csv.strip().split("\n")
    rows = {line.split(",")[0]: dict(zip(header.split(","), line.split(","), strict=True))
            for line in lines}
    raw = {m: paired_t_test(TEST_AUC[m], TEST_AUC["ref"])["p"] for m in ("a", "b", "c")}
    adjusted = dict(zip(raw, holm(list(raw.values())), strict=True))
    for model in ("a", "b", "c"):
        row = rows[model]
        assert float(row["test_auc_mean"]) == pytest.approx(sum(TEST_AUC[model]) / 3)
        assert float(row["test_gauc_mean"]) == pytest.approx(sum(TEST_AUC[model]) / 3 - 0.1)
        assert float(row["test_log_loss_mean"]) == pytest.approx(1 - sum(TEST_AUC[model]) / 3)
        assert float(row["diff_bp"]) == pytest.approx(
            1e4 * (sum(TEST_AUC[model]) - sum(TEST_AUC["ref"])) / 3)
        assert float(row["p_value"]) == pytest.approx(raw[model])
        assert float(row["p_holm"]) == pytest.approx(adjusted[model])
        assert float(row["p_holm"]) >= float(row["p_value"])
    assert rows["ref"]["p_value"] == rows["ref"]["p_holm"] == ""  # not in the family
    assert not any(key.startswith("val_") for key in header.split(","))
    assert "test split; models selected by validation AUC" in md
    assert "| p (Holm) |" in md and "over the 3 model(s) compared with ref" in md
    assert f"{sum(TEST_AUC['c']) / 3:.4f} +- " in md


def test_table8_and_runs_csv_carry_test_figures(grouped):
    grouped = {"mdaf" if m == "ref" else "dcnv3" if m == "a" else m: runs
               for m, runs in grouped.items()}
    md = tables.table8(grouped)
    assert "test split; models selected by validation AUC" in md
    dcnv3 = next(line for line in md.splitlines() if line.startswith("| dcnv3 |"))
    drop = 1e4 * (sum(TEST_AUC["ref"]) - sum(TEST_AUC["a"])) / 3
    assert f"{sum(TEST_AUC['a']) / 3:.4f} +- " in dcnv3 and f"{drop:+.1f}" in dcnv3
    runs = tables.runs_csv([r for runs in grouped.values() for r in runs.values()])
    header = runs.split("\n")[0].split(",")
    assert {"val_auc", "test_auc", "test_gauc", "test_log_loss"} <= set(header)
    assert math.isclose(float(runs.split("\n")[1].split(",")[header.index("test_auc")]),
                        TEST_AUC["ref"][0])
