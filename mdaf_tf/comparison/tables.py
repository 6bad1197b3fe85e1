"""The comparison's tables (seed thesis Tables 3, 8 and 9) and its AUC bar chart."""

from __future__ import annotations

import math

from mdaf_tf.comparison.stats import mean_std, paired_t_test

ABLATIONS = {
    "mdaf": "full model (gate fusion)",
    "mdaf_ta": "target token appended to the sequence branch (beyond the seed)",
    "mdaf_concat": "concat instead of the gate",
    "mdaf_fixed": "fixed weight 0.5 instead of the gate",
    "dcnv3": "static branch only",
    "mdaf_seq": "sequence branch only",
}

RUN_COLUMNS = (
    "model", "seed", "val_auc", "val_log_loss", "best_epoch", "epochs_run", "parameters",
    "train_examples_per_second", "inference_ms_per_batch", "inference_examples_per_second",
    "peak_rss_mib", "wall_seconds",
)


def by_model(results, order) -> dict[str, dict[int, dict]]:
    """{model: {seed: result}} in the order of ``order`` (models without results dropped)."""
    grouped = {m: {} for m in order}
    for r in results:
        grouped.setdefault(r["model"], {})[int(r["seed"])] = r
    return {m: runs for m, runs in grouped.items() if runs}


def paired(runs_a: dict, runs_b: dict, key: str = "val_auc") -> dict:
    """Paired t-test of runs_a[key] - runs_b[key] over the seeds both have."""
    seeds = sorted(set(runs_a) & set(runs_b))
    return paired_t_test([runs_a[s][key] for s in seeds], [runs_b[s][key] for s in seeds])


def _fmt(value, spec):
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else format(value, spec)


def _p(value) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return "<1e-4" if value < 1e-4 else f"{value:.4f}"


def table3_rows(grouped, reference: str) -> list[dict]:
    ref = grouped.get(reference)
    rows = []
    for model, runs in grouped.items():
        aucs = [r["val_auc"] for r in runs.values()]
        losses = [r["val_log_loss"] for r in runs.values()]
        auc_mean, auc_std = mean_std(aucs)
        loss_mean, loss_std = mean_std(losses)
        row = {
            "model": model,
            "seeds": len(runs),
            "parameters": next(iter(runs.values()))["parameters"],
            "val_auc_mean": auc_mean,
            "val_auc_std": auc_std,
            "val_log_loss_mean": loss_mean,
            "val_log_loss_std": loss_std,
            "diff_bp": float("nan"),
            "p_value": float("nan"),
            "t": float("nan"),
            "pairs": 0,
        }
        if ref is not None and model != reference:
            row["diff_bp"] = 1e4 * (auc_mean - mean_std([r["val_auc"] for r in ref.values()])[0])
            test = paired(runs, ref)
            row.update(p_value=test["p"], t=test["t"], pairs=test["n"])
        rows.append(row)
    return rows


def table3(grouped, reference: str, failures=()) -> tuple[str, str]:
    """Markdown and CSV of Table 3: every model against ``reference``."""
    rows = table3_rows(grouped, reference)
    seeds = sorted({s for runs in grouped.values() for s in runs})
    caption = (
        f"**Table 3.** Validation AUC and log loss (best epoch of each run), mean +- sample "
        f"standard deviation over seeds {', '.join(map(str, seeds))}. Delta = mean AUC "
        f"minus {reference}'s, in basis points (1 bp = 0.0001 AUC). p: two-sided paired "
        f"t-test over seeds of the per-seed AUC difference against {reference} "
        f"(df = pairs - 1; n/a with fewer than two pairs)."
    )
    if reference not in grouped:
        caption += f" The reference {reference} has no finished run, so no Delta or p."
    lines = [caption, "", "| model | seeds | parameters | val AUC | val log loss | "
             f"Delta vs {reference} (bp) | p (paired t) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['seeds']} | {r['parameters']:,} | "
            f"{r['val_auc_mean']:.4f} +- {r['val_auc_std']:.4f} | "
            f"{r['val_log_loss_mean']:.4f} +- {r['val_log_loss_std']:.4f} | "
            f"{_fmt(r['diff_bp'], '+.1f') if r['model'] != reference else '(reference)'} | "
            f"{_p(r['p_value'])} |"
        )
    if failures:
        lines += ["", "Failed runs (left out above): " + "; ".join(failures)]
    columns = list(rows[0]) if rows else ["model"]
    csv = [",".join(columns)]
    for r in rows:
        csv.append(",".join(_csv(r[c]) for c in columns))
    return "\n".join(lines) + "\n", "\n".join(csv) + "\n"


def _csv(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)


def table8(grouped) -> str:
    """Table 8: MDAF against its ablations, AUC and drop in basis points."""
    present = [m for m in ABLATIONS if m in grouped]
    caption = (
        "**Table 8.** MDAF and its ablations: validation AUC mean +- std over seeds; drop = "
        "MDAF's mean AUC minus the variant's, in basis points (positive = the variant is "
        "worse); p: two-sided paired t-test over seeds against MDAF."
    )
    if "mdaf" not in grouped:
        return caption + "\n\nmdaf has no finished run in this comparison.\n"
    mdaf = grouped["mdaf"]
    mdaf_mean = mean_std([r["val_auc"] for r in mdaf.values()])[0]
    lines = [caption, "", "| model | variant | val AUC | drop vs mdaf (bp) | p (paired t) |",
             "|---|---|---:|---:|---:|"]
    for model in present:
        mean, std = mean_std([r["val_auc"] for r in grouped[model].values()])
        if model == "mdaf":
            drop, p = "(reference)", ""
        else:
            drop = f"{1e4 * (mdaf_mean - mean):+.1f}"
            p = _p(paired(mdaf, grouped[model])["p"])
        lines.append(f"| {model} | {ABLATIONS[model]} | {mean:.4f} +- {std:.4f} | {drop} | {p} |")
    return "\n".join(lines) + "\n"


def table9(grouped, hardware: str) -> str:
    """Table 9: parameters, inference time and throughput, memory, training throughput."""
    caption = (
        f"**Table 9.** Efficiency on this machine: {hardware}. Means over seeds. Inference: "
        "median wall time of the compiled prediction function on one batch of validation "
        "examples (after two warm-up calls). Peak memory: the process's resident-set "
        "high-water mark (VmHWM, reset before each run) over the run's training and timing; "
        "it includes the process's baseline (TensorFlow, data). Training examples/s: median "
        "over epochs of metrics.csv's examples_per_second (the first epoch includes "
        "compilation)."
    )
    lines = [caption, "", "| model | parameters | inference ms / batch | batch | peak RSS (MiB) "
             "| inference examples/s | training examples/s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for model, runs in grouped.items():
        rs = list(runs.values())

        def avg(key, rs=rs):
            return mean_std([r[key] for r in rs])[0]

        lines.append(
            f"| {model} | {rs[0]['parameters']:,} | {avg('inference_ms_per_batch'):.1f} | "
            f"{rs[0]['inference_batch_size']} | {avg('peak_rss_mib'):.0f} | "
            f"{avg('inference_examples_per_second'):,.0f} | "
            f"{avg('train_examples_per_second'):,.0f} |"
        )
    return "\n".join(lines) + "\n"


def runs_csv(results) -> str:
    lines = [",".join(RUN_COLUMNS)]
    for r in results:
        lines.append(",".join(_csv(r.get(c)) for c in RUN_COLUMNS))
    return "\n".join(lines) + "\n"


def auc_bar_chart(grouped, reference: str, path) -> None:
    """Bar per model: mean validation AUC with +- one standard deviation over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(grouped)
    stats = [mean_std([r["val_auc"] for r in grouped[m].values()]) for m in models]
    means = [s[0] for s in stats]
    stds = [s[1] for s in stats]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(models) + 1.5), 3.6))
    colors = ["tab:orange" if m == reference else "tab:blue" for m in models]
    ax.bar(range(len(models)), means, yerr=stds, capsize=4, color=colors)
    ax.set_xticks(range(len(models)), models, rotation=30, ha="right")
    low = min(m - s for m, s in zip(means, stds, strict=True))
    high = max(m + s for m, s in zip(means, stds, strict=True))
    pad = max(0.005, 0.15 * (high - low))
    ax.set_ylim(max(0.0, low - pad), min(1.0, high + pad))
    seeds = max(len(grouped[m]) for m in models)
    ax.set_ylabel(f"val AUC, mean +- std ({seeds} seeds)")
    ax.set_title(f"reference {reference} in orange", fontsize=9)
    fig.tight_layout()
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    import os

    os.replace(tmp, path)
