"""``report.md``: the run's results as markdown tables (the seed thesis's tables 1, 5 and 6).

Every figure names its split: validation figures are the ones that chose the epoch, the
test figures (one pass of the chosen weights, after training) are the ones to report.
"""

from __future__ import annotations

import math

from mdaf_tf.data.schema import SPLIT_LABELS
from mdaf_tf.evaluation.calibration import DEFAULT_BINS

GAUC_NOTE = ("gAUC is the impression-weighted mean of per-user AUC over the users with both "
             "labels.")


def _f(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def split_oracle(meta: dict, split: str) -> dict | None:
    """The metadata's oracle figures on ``split``: validation ones at the top level of
    ``oracle``, test ones under ``oracle["test"]``; None for train or without an oracle."""
    oracle = meta.get("oracle") or {}
    if split == "val":
        return {k: v for k, v in oracle.items() if k != "test"} or None
    if split == "test":
        return oracle.get("test")
    return None


def oracle_section(auc: float, oracle: dict | None, split: str) -> list[str]:
    """The model's AUC on ``split`` against the true click probabilities' on the same split."""
    if not oracle or "auc" not in oracle:
        return []
    label = SPLIT_LABELS[split]
    lift = (auc - 0.5) / (oracle["auc"] - 0.5) if oracle["auc"] != 0.5 else float("nan")
    rows = [["model", _f(auc)], ["oracle (true click probability)", _f(oracle["auc"])]]
    for key, name in (("static_only_auc", "static-only oracle"), ("sequence_only_auc",
                                                                  "sequence-only oracle")):
        if key in oracle:
            rows.append([name, _f(oracle[key])])
    return [
        f"## Model against the oracle on {label} (synthetic data)",
        "",
        *_table(["predictor", f"{label} AUC"], rows),
        "",
        f"Share of the oracle's lift over chance captured on {label}: (AUC - 0.5) / "
        f"(oracle AUC - 0.5) = {_f(lift, 3)}.",
        "",
    ]


def reported_predictions(result):
    """(split, ``Predictions``) of the reported split: test when it was evaluated, else
    validation (a run with ``evaluate_test=False``)."""
    if result.test_predictions is not None:
        return "test", result.test_predictions
    return "val", result.val_predictions


def _bins(summary: dict) -> int:
    return (summary.get("reliability") or {}).get("bins", DEFAULT_BINS)


def calibration_rows(summary: dict, prefix: str = "") -> list[list[str]]:
    """ECE and calibration ratio rows of ``summary``; ``prefix`` names the split."""
    return [[f"{prefix}ECE ({_bins(summary)} bins)", _f(summary.get("ece"))],
            [f"{prefix}calibration ratio (mean predicted / click rate)",
             _f(summary.get("calibration_ratio"))]]


def _reliability_rows(table: dict) -> list[list[str]]:
    edges = table["edges"]
    return [[f"{edges[i]:.1f}-{edges[i + 1]:.1f}", f"{count:,}", _f(table["mean_predicted"][i]),
             _f(table["observed_rate"][i])] for i, count in enumerate(table["counts"])]


def calibration_section(summary: dict, split: str) -> list[str]:
    """ECE, calibration ratio and the reliability table of ``summary``, the predictions on
    ``split``, with the two plots drawn from them."""
    label, table = SPLIT_LABELS[split], summary.get("reliability")
    rows = [*calibration_rows(summary), ["mean predicted probability",
                                         _f(summary.get("mean_probability"))],
            ["observed click rate", _f(summary.get("click_rate"))]]
    lines = [
        f"## Calibration on {label}",
        "",
        f"ECE = sum over {_bins(summary)} equal-width probability bins of (n_b / N) * "
        "|mean prediction in b - click rate in b| (empty bins weigh 0); calibration ratio = "
        "mean predicted probability / observed click rate (1: right on average, above 1: "
        "over-predicts clicks; n/a without a click).",
        "",
        *_table(["metric", f"{label} value"], rows),
        "",
    ]
    if table is not None:
        lines += [f"Reliability ({label} examples per bin; n/a: empty bin):", "",
                  *_table(["predicted bin", "examples", "mean predicted", "observed click rate"],
                          _reliability_rows(table)), ""]
    return lines + [f"Plots on {label}: `roc.png` (ROC curve, AUC in the legend) and "
                    "`reliability.png` (reliability diagram with the examples per bin).", ""]


def parameters_section(parameters: dict) -> list[str]:
    if not parameters:
        return []
    total = parameters.get("total", sum(v for k, v in parameters.items() if k != "total"))
    rows = [[k, f"{v:,}", f"{100 * v / total:.1f}%" if total else "n/a"]
            for k, v in parameters.items() if k != "total"]
    rows.append(["**total**", f"**{total:,}**", "100%"])
    return ["## Parameters by component", "", *_table(["component", "parameters", "share"], rows),
            ""]


def gate_sections(summary: dict, split: str) -> list[str]:
    """Gate statistics and AUC per gate bucket of ``summary``, the predictions on ``split``."""
    label = SPLIT_LABELS[split]
    gate = summary.get("gate")
    if gate is None:
        return ["## Gate", "", "This model has no fusion gate.", ""]
    edges = gate["histogram_edges"]
    hist_rows = [
        [f"{edges[i]:.1f}-{edges[i + 1]:.1f}", str(c)]
        for i, c in enumerate(gate["histogram_counts"])
    ]
    bucket_rows = [
        [b["bucket"], str(b["count"]), f"{100 * b['share']:.1f}%", _f(b["auc"])]
        for b in summary["gate_buckets"]
    ]
    return [
        f"## Gate statistics on {label}",
        "",
        "g weights the static (DCNv3) branch; 1 - g the sequence (Mamba) branch.",
        "",
        *_table(["statistic", "value"], [["mean", _f(gate["mean"])],
                                          ["median", _f(gate["median"])],
                                          ["std", _f(gate["std"])]]),
        "",
        f"Histogram counts ({label} examples):",
        "",
        *_table(["gate", "examples"], hist_rows),
        "",
        f"## AUC per gate bucket on {label}",
        "",
        *_table(["gate bucket", "examples", "share", f"{label} AUC"], bucket_rows),
        "",
    ]


def evaluation_sections(summary: dict, meta: dict, parameters: dict | None,
                        split: str) -> list[str]:
    """The sections shared by the training report and ``mdaf_tf.evaluate``; ``summary`` is
    the predictions on ``split``."""
    return [
        *oracle_section(summary["auc"], split_oracle(meta, split), split),
        *parameters_section(parameters or {}),
        *gate_sections(summary, split),
    ]


def reported_section(result) -> list[str]:
    """The reported figures: the selected weights on the test split."""
    lines = ["## Test (reported)", ""]
    test = result.test
    if test is None:
        return lines + ["Not evaluated: this run was trained with evaluate_test=False.", ""]
    rows = [["test AUC", _f(test["auc"])], ["test gAUC", _f(test.get("gauc"))],
            ["test log loss", _f(test["log_loss"])], *calibration_rows(test, "test "),
            ["test examples", f"{test['examples']:,}"]]
    return lines + [
        f"The weights of epoch {result.best_epoch}, chosen by validation AUC, evaluated once on "
        "the test split after training; no test figure took part in the choice. " + GAUC_NOTE,
        "",
        *_table(["metric", "value"], rows),
        "",
        *oracle_section(test["auc"], split_oracle(result.metadata, "test"), "test"),
    ]


def validation_section(result) -> list[str]:
    """The validation figures that chose the epoch (early stopping on validation AUC)."""
    cfg, history, best = result.train_config, result.history, result.best
    rows = [
        [f"final validation AUC (epoch {history[-1]['epoch']})", _f(result.final["auc"])],
        ["final validation log loss", _f(result.final["log_loss"])],
        [f"best validation AUC (epoch {result.best_epoch})", _f(best["auc"])],
        ["best validation gAUC", _f(best.get("gauc"))],
        ["best validation log loss", _f(best["log_loss"])],
        *calibration_rows(best, "best validation "),
        ["epoch of best", str(result.best_epoch)],
        ["epochs run", f"{len(history)} of {cfg.epochs}" + (" (early stopping)"
                                                          if result.stopped_early else "")],
        ["validation examples", f"{best['examples']:,}"],
    ]
    return [
        "## Validation (selects the epoch)",
        "",
        *_table(["metric", "value"], rows),
        "",
        "The exported and restored model is the best epoch's (early stopping on validation AUC,"
        f" patience {cfg.early_stopping_patience}). AUC is exact (rank-based, ties count 1/2).",
        "",
    ]


def training_report(result) -> str:
    split = reported_predictions(result)[0]
    reported = result.test if split == "test" else result.best
    reported_label = SPLIT_LABELS[split]
    epoch_rows = [
        [str(r["epoch"]), _f(r["train_loss"]), _f(r["train_auc"]), _f(r["val_auc"]),
         _f(r.get("val_gauc")), _f(r["val_log_loss"]), f"{r['learning_rate']:.3g}",
         f"{r['examples_per_second']:.0f}"]
        for r in result.history
    ]
    lines = [
        f"# Training report: {result.train_config.model}",
        "",
        f"Data: `{result.data_dir}`",
        "",
        *reported_section(result),
        *validation_section(result),
        *calibration_section(reported, split),
        *evaluation_sections(result.best, result.metadata, result.parameters, "val"),
        "## Per epoch (train and validation)",
        "",
        *_table(["epoch", "train loss", "train AUC", "val AUC", "val gAUC", "val log loss", "lr",
                 "examples/s"], epoch_rows),
        "",
        "Plots: `learning_curves.png` (train and validation), `gate_histogram.png` "
        f"(validation), `roc.png` and `reliability.png` ({reported_label}).",
        "",
    ]
    return "\n".join(lines)
