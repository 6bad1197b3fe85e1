"""``trials.csv`` / ``trials.md`` (every trial, best validation AUC first, like the seed's
Table 6) and ``best_config.json`` (the best trial's resolved configs, for ``--config``)."""

from __future__ import annotations

import csv
import io
import json
import math

from mdaf_tf.files import write_json_atomic, write_text_atomic
from mdaf_tf.tuning.search_space import DEFAULT_BOUNDS

METRIC_COLUMNS = ("epochs", "best_epoch", "val_auc", "val_log_loss", "train_auc",
                  "train_val_gap", "seconds")


def collect_rows(tuner) -> list[dict]:
    """One row per trial the oracle knows: completed ones by val AUC desc, then the rest."""
    rows = []
    for trial_id, trial in tuner.oracle.trials.items():
        summary = tuner.read_summary(trial_id) if trial.status == "COMPLETED" else None
        row = {"trial": trial_id, "status": trial.status}
        for name in tuner.hypermodel.space:
            row[name] = trial.hyperparameters.values.get(name)
        for column in METRIC_COLUMNS:
            row[column] = summary.get(column) if summary else None
        rows.append(row)
    done = sorted((r for r in rows if r["val_auc"] is not None),
                  key=lambda r: (-r["val_auc"], r["trial"]))
    rest = sorted((r for r in rows if r["val_auc"] is None), key=lambda r: r["trial"])
    for rank, row in enumerate(done, 1):
        row["rank"] = rank
    for row in rest:
        row["rank"] = None
    return done + rest


def columns(space) -> list[str]:
    return ["rank", "trial", "status", *space, *METRIC_COLUMNS]


def to_csv(rows, space) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    names = columns(space)
    writer.writerow(names)
    for row in rows:
        writer.writerow(["" if row[c] is None else row[c] for c in names])
    return out.getvalue()


def _fmt(column, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if column in DEFAULT_BOUNDS:  # a hyperparameter: log-scale ones in scientific notation
        return f"{value:.2e}" if DEFAULT_BOUNDS[column].log else f"{value:.3f}"
    if column == "seconds":
        return f"{value:.0f}"
    if column == "train_val_gap":
        return f"{value:+.4f}"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def to_markdown(rows, space, title: str) -> str:
    names = columns(space)
    header = {"val_auc": "val AUC", "train_auc": "train AUC", "train_val_gap": "train-val gap",
              "val_log_loss": "val log loss", "best_epoch": "best epoch"}
    lines = [f"# {title}", "",
             "Sorted by validation AUC (exact, rank-based) of each trial's best epoch; train "
             "AUC is that epoch's exact AUC over the training batches (dropout on), and the "
             "gap is train minus validation AUC, as in the seed's Table 6.", "",
             "| " + " | ".join(header.get(c, c.replace("_", " ")) for c in names) + " |",
             "|" + "---|" * len(names)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(c, row[c]) for c in names) + " |")
    return "\n".join(lines) + "\n"


def best_row(rows) -> dict | None:
    return rows[0] if rows and rows[0]["val_auc"] is not None else None


def best_configs(tuner, row) -> dict:
    """The ``{"model", "train"}`` configs the best trial trained with (its run's config.json)."""
    resolved = json.loads((tuner.run_dir(row["trial"]) / "config.json").read_text())
    return {"model": resolved["model"], "train": resolved["train"]}


def write_all(tuner, output_dir, title: str) -> dict | None:
    """Write trials.csv, trials.md and (once a trial completed) best_config.json."""
    space = list(tuner.hypermodel.space)
    rows = collect_rows(tuner)
    write_text_atomic(output_dir / "trials.csv", to_csv(rows, space))
    write_text_atomic(output_dir / "trials.md", to_markdown(rows, space, title))
    best = best_row(rows)
    if best is not None:
        write_json_atomic(output_dir / "best_config.json", best_configs(tuner, best))
    return best
