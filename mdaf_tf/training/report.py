"""``report.md``: the run's results as markdown tables (the seed thesis's tables 1, 5 and 6)."""

from __future__ import annotations

import math


def _f(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def oracle_section(auc: float, meta: dict) -> list[str]:
    oracle = meta.get("oracle")
    if not oracle or "auc" not in oracle:
        return []
    lift = (auc - 0.5) / (oracle["auc"] - 0.5) if oracle["auc"] != 0.5 else float("nan")
    rows = [["model", _f(auc)], ["oracle (true click probability)", _f(oracle["auc"])]]
    for key, name in (("static_only_auc", "static-only oracle"), ("sequence_only_auc",
                                                                  "sequence-only oracle")):
        if key in oracle:
            rows.append([name, _f(oracle[key])])
    return [
        "## Model against the oracle (synthetic data)",
        "",
        *_table(["predictor", "validation AUC"], rows),
        "",
        f"Share of the oracle's lift over chance captured: (AUC - 0.5) / (oracle AUC - 0.5) = "
        f"{_f(lift, 3)}.",
        "",
    ]


def parameters_section(parameters: dict) -> list[str]:
    if not parameters:
        return []
    total = parameters.get("total", sum(v for k, v in parameters.items() if k != "total"))
    rows = [[k, f"{v:,}", f"{100 * v / total:.1f}%" if total else "n/a"]
            for k, v in parameters.items() if k != "total"]
    rows.append(["**total**", f"**{total:,}**", "100%"])
    return ["## Parameters by component", "", *_table(["component", "parameters", "share"], rows),
            ""]


def gate_sections(summary: dict) -> list[str]:
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
        "## Gate statistics on validation",
        "",
        "g weights the static (DCNv3) branch; 1 - g the sequence (Mamba) branch.",
        "",
        *_table(["statistic", "value"], [["mean", _f(gate["mean"])],
                                          ["median", _f(gate["median"])],
                                          ["std", _f(gate["std"])]]),
        "",
        "Histogram counts:",
        "",
        *_table(["gate", "examples"], hist_rows),
        "",
        "## AUC per gate bucket",
        "",
        *_table(["gate bucket", "examples", "share", "AUC"], bucket_rows),
        "",
    ]


def evaluation_sections(summary: dict, meta: dict, parameters: dict | None) -> list[str]:
    """The sections shared by the training report and ``mdaf_tf.evaluate``."""
    return [
        *oracle_section(summary["auc"], meta),
        *parameters_section(parameters or {}),
        *gate_sections(summary),
    ]


def training_report(result) -> str:
    cfg = result.train_config
    history = result.history
    rows = [
        [f"final validation AUC (epoch {history[-1]['epoch']})", _f(result.final["auc"])],
        ["final validation log loss", _f(result.final["log_loss"])],
        [f"best validation AUC (epoch {result.best_epoch})", _f(result.best["auc"])],
        ["best validation log loss", _f(result.best["log_loss"])],
        ["epoch of best", str(result.best_epoch)],
        ["epochs run", f"{len(history)} of {cfg.epochs}" + (" (early stopping)"
                                                          if result.stopped_early else "")],
        ["validation examples", f"{result.best['examples']:,}"],
    ]
    epoch_rows = [
        [str(r["epoch"]), _f(r["train_loss"]), _f(r["train_auc"]), _f(r["val_auc"]),
         _f(r["val_log_loss"]), f"{r['learning_rate']:.3g}", f"{r['examples_per_second']:.0f}"]
        for r in history
    ]
    lines = [
        f"# Training report: {cfg.model}",
        "",
        f"Data: `{result.data_dir}`",
        "",
        "## Results",
        "",
        *_table(["metric", "value"], rows),
        "",
        "The exported and restored model is the best epoch's (early stopping on validation AUC,"
        f" patience {cfg.early_stopping_patience}). AUC is exact (rank-based, ties count 1/2).",
        "",
        *evaluation_sections(result.best, result.metadata, result.parameters),
        "## Per epoch",
        "",
        *_table(["epoch", "train loss", "train AUC", "val AUC", "val log loss", "lr",
                 "examples/s"], epoch_rows),
        "",
        "Plots: `learning_curves.png`, `gate_histogram.png`.",
        "",
    ]
    return "\n".join(lines)
