"""The comparison's tables (seed thesis Tables 3, 8 and 9) and its AUC bar chart.

Tables 3 and 8 and the bar chart are on the test split: each run's weights are those of its
best validation-AUC epoch, evaluated once on test (validation figures chose them, so they
are not reported as results; they stay in runs.csv).

On synthetic data Table 3 and the bar chart also show the yardsticks of
``mdaf_tf.comparison.yardsticks`` (the oracle and the logistic-regression ceiling), on the
same test split: one deterministic value each (seeds "-"), labelled as yardsticks, outside
the paired t-tests and the Holm family; ``yardsticks_csv`` writes them apart from the models.
"""

from __future__ import annotations

import math

from mdaf_tf.comparison.stats import holm, mean_std, paired_t_test
from mdaf_tf.files import save_figure_atomic

ABLATIONS = {
    "mdaf": "full model (gate fusion)",
    "mdaf_ta": "target token appended to the sequence branch (beyond the seed)",
    "mdaf_match": "target-history match counts added to the sequence branch (beyond the seed)",
    "mdaf_concat": "concat instead of the gate",
    "mdaf_fixed": "fixed weight 0.5 instead of the gate",
    "dcnv3": "static branch only",
    "mdaf_seq": "sequence branch only",
}

# Test figures of the selected weights: (result key, column label).
TEST_FIGURES = (("test_auc", "test AUC"), ("test_gauc", "test gAUC"),
                ("test_log_loss", "test log loss"))
SELECTION_NOTE = "test split; models selected by validation AUC"
GAUC_NOTE = "gAUC: impression-weighted mean of per-user AUC over users with both labels"

RUN_COLUMNS = (
    "model", "seed", "val_auc", "val_log_loss", "test_auc", "test_gauc", "test_log_loss",
    "best_epoch", "epochs_run", "parameters",
    "train_examples_per_second", "inference_ms_per_batch", "inference_examples_per_second",
    "peak_rss_mib", "wall_seconds",
)


def by_model(results, order) -> dict[str, dict[int, dict]]:
    """{model: {seed: result}} in the order of ``order`` (models without results dropped)."""
    grouped = {m: {} for m in order}
    for r in results:
        grouped.setdefault(r["model"], {})[int(r["seed"])] = r
    return {m: runs for m, runs in grouped.items() if runs}


def paired(runs_a: dict, runs_b: dict, key: str = "test_auc") -> dict:
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


def _mean_std_row(runs: dict) -> dict:
    """``KEY_mean`` and ``KEY_std`` over seeds of each test figure."""
    row = {}
    for key, _ in TEST_FIGURES:
        row[f"{key}_mean"], row[f"{key}_std"] = mean_std([r[key] for r in runs.values()])
    return row


def table3_rows(grouped, reference: str) -> list[dict]:
    """Per model: test figures over seeds and the paired t-test of test AUC against
    ``reference``, with Holm-corrected p-values over the models compared with it."""
    ref = grouped.get(reference)
    nan = float("nan")
    rows = []
    for model, runs in grouped.items():
        row = {"model": model, "seeds": len(runs),
               "parameters": next(iter(runs.values()))["parameters"], **_mean_std_row(runs),
               "diff_bp": nan, "p_value": nan, "p_holm": nan, "t": nan, "pairs": 0}
        if ref is not None and model != reference:
            ref_mean = mean_std([r["test_auc"] for r in ref.values()])[0]
            row["diff_bp"] = 1e4 * (row["test_auc_mean"] - ref_mean)
            test = paired(runs, ref)
            row.update(p_value=test["p"], t=test["t"], pairs=test["n"])
        rows.append(row)
    for row, adjusted in zip(rows, holm([r["p_value"] for r in rows]), strict=True):
        row["p_holm"] = adjusted
    return rows


YARDSTICK_COLUMNS = ("yardstick", "description", "test_auc", "test_gauc", "test_log_loss",
                     "val_auc", "C")


def _yardstick_caption(yardsticks) -> str:
    """Table 3's sentence on the yardstick rows ("" without any)."""
    if yardsticks is None or not yardsticks.rows:
        return ""
    return (" Yardsticks (not models; synthetic data): oracle = the true click "
            "probabilities, lr_ceiling = a logistic regression on the true feature forms "
            "(user x category and item one-hots, the recency-weighted count q) fitted on "
            "train with its L2 strength C chosen on validation; each is deterministic, so "
            "one value (seeds -), Delta is against the reference's mean, and it is left out "
            "of the paired t-tests and the Holm family.")


def _yardstick_lines(yardsticks, ref_mean) -> list[str]:
    """Table 3's markdown rows of the yardsticks (Delta vs the reference's mean test AUC)."""
    from mdaf_tf.comparison.yardsticks import DESCRIPTIONS

    lines = []
    for name, row in (yardsticks.rows.items() if yardsticks is not None else ()):
        figures = " | ".join(_fmt(row.get(key), ".4f") for key, _ in TEST_FIGURES)
        delta = _fmt(None if ref_mean is None else 1e4 * (row["test_auc"] - ref_mean), "+.1f")
        chosen = f", C={row['C']}" if "C" in row else ""
        label = f"{name} (yardstick: {DESCRIPTIONS.get(name, name)}{chosen})"
        lines.append(f"| {label} | - | - | {figures} | {delta} | - | - |")
    return lines


def yardsticks_csv(yardsticks) -> str:
    """One row per yardstick: its test figures (and the chosen C of the regression)."""
    from mdaf_tf.comparison.yardsticks import DESCRIPTIONS

    lines = [",".join(YARDSTICK_COLUMNS)]
    for name, row in (yardsticks.rows.items() if yardsticks is not None else ()):
        values = {"yardstick": name, "description": DESCRIPTIONS.get(name, name), **row}
        lines.append(",".join(_csv(values.get(c, "")) for c in YARDSTICK_COLUMNS))
    return "\n".join(lines) + "\n"


def table3(grouped, reference: str, failures=(), yardsticks=None) -> tuple[str, str]:
    """Markdown and CSV of Table 3: every model against ``reference``, on test figures, with
    the ``yardsticks`` (``Yardsticks``) as extra markdown rows; the CSV holds the models."""
    rows = table3_rows(grouped, reference)
    seeds = sorted({s for runs in grouped.values() for s in runs})
    compared = sum(1 for r in rows if not math.isnan(r["p_value"]))
    caption = (
        f"**Table 3.** On the {SELECTION_NOTE} (each run's weights are those of its best "
        f"validation epoch). Test AUC, gAUC and log loss, mean +- sample "
        f"standard deviation over seeds {', '.join(map(str, seeds))}; {GAUC_NOTE}. Delta = "
        f"mean test AUC minus {reference}'s, in basis points (1 bp = 0.0001 AUC). p: "
        f"two-sided paired t-test over seeds of the per-seed test AUC difference against "
        f"{reference} (df = pairs - 1; n/a with fewer than two pairs); p (Holm): "
        f"Holm-Bonferroni adjusted over the {compared} model(s) compared with {reference}."
    )
    if reference not in grouped:
        caption += f" The reference {reference} has no finished run, so no Delta or p."
    caption += _yardstick_caption(yardsticks)
    header = " | ".join(label for _, label in TEST_FIGURES)
    lines = [caption, "", f"| model | seeds | parameters | {header} | Delta vs {reference} "
             "(bp) | p (paired t) | p (Holm) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        figures = " | ".join(f"{r[f'{key}_mean']:.4f} +- {r[f'{key}_std']:.4f}"
                             for key, _ in TEST_FIGURES)
        delta = _fmt(r["diff_bp"], "+.1f") if r["model"] != reference else "(reference)"
        lines.append(f"| {r['model']} | {r['seeds']} | {r['parameters']:,} | {figures} | "
                     f"{delta} | {_p(r['p_value'])} | {_p(r['p_holm'])} |")
    ref_mean = next((r["test_auc_mean"] for r in rows if r["model"] == reference), None)
    lines += _yardstick_lines(yardsticks, ref_mean)
    if yardsticks is not None and yardsticks.note:
        lines += ["", yardsticks.note]
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
    """Table 8: MDAF against its ablations on test AUC and gAUC, drop in basis points."""
    present = [m for m in ABLATIONS if m in grouped]
    caption = (
        f"**Table 8.** MDAF and its ablations on the {SELECTION_NOTE}: test AUC and gAUC "
        "mean +- std over seeds; drop = MDAF's mean test AUC minus the variant's, in basis points "
        "(positive = the variant is worse); p: two-sided paired t-test over seeds of test AUC "
        f"against MDAF; {GAUC_NOTE}."
    )
    if "mdaf" not in grouped:
        return caption + "\n\nmdaf has no finished run in this comparison.\n"
    mdaf = grouped["mdaf"]
    mdaf_mean = mean_std([r["test_auc"] for r in mdaf.values()])[0]
    lines = [caption, "", "| model | variant | test AUC | test gAUC | drop vs mdaf (bp) | "
             "p (paired t) |", "|---|---|---:|---:|---:|---:|"]
    for model in present:
        row = _mean_std_row(grouped[model])
        if model == "mdaf":
            drop, p = "(reference)", ""
        else:
            drop = f"{1e4 * (mdaf_mean - row['test_auc_mean']):+.1f}"
            p = _p(paired(mdaf, grouped[model])["p"])
        lines.append(
            f"| {model} | {ABLATIONS[model]} | {row['test_auc_mean']:.4f} +- "
            f"{row['test_auc_std']:.4f} | {row['test_gauc_mean']:.4f} +- "
            f"{row['test_gauc_std']:.4f} | {drop} | {p} |")
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


def _draw_yardsticks(ax, yardsticks) -> list[float]:
    """Dashed horizontal lines at the yardsticks' test AUCs; returns those AUCs."""
    aucs = []
    rows = yardsticks.rows if yardsticks is not None else {}
    for (name, row), color in zip(rows.items(), ("tab:green", "tab:purple", "tab:gray"),
                                  strict=False):
        ax.axhline(row["test_auc"], color=color, linestyle="--", linewidth=1,
                   label=f"{name} (yardstick) {row['test_auc']:.4f}")
        aucs.append(row["test_auc"])
    if aucs:
        ax.legend(fontsize=7, loc="best", framealpha=0.9)
    return aucs


def auc_bar_chart(grouped, reference: str, path, yardsticks=None) -> None:
    """Bar per model: mean test AUC (of the weights selected on validation) with +- one
    standard deviation over seeds; the yardsticks, if any, as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(grouped)
    stats = [mean_std([r["test_auc"] for r in grouped[m].values()]) for m in models]
    means = [s[0] for s in stats]
    stds = [s[1] for s in stats]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(models) + 1.5), 3.6))
    colors = ["tab:orange" if m == reference else "tab:blue" for m in models]
    ax.bar(range(len(models)), means, yerr=stds, capsize=4, color=colors)
    ax.set_xticks(range(len(models)), models, rotation=30, ha="right")
    lines = _draw_yardsticks(ax, yardsticks)
    low = min([m - s for m, s in zip(means, stds, strict=True)] + lines)
    high = max([m + s for m, s in zip(means, stds, strict=True)] + lines)
    pad = max(0.005, 0.15 * (high - low))
    ax.set_ylim(max(0.0, low - pad), min(1.0, high + pad))
    seeds = max(len(grouped[m]) for m in models)
    ax.set_ylabel(f"test AUC, mean +- std ({seeds} seeds)")
    ax.set_title(f"{SELECTION_NOTE}; reference {reference} in orange", fontsize=9)
    fig.tight_layout()
    try:
        save_figure_atomic(fig, path, dpi=120)
    finally:
        plt.close(fig)
