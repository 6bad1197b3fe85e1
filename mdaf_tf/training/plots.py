"""PNG figures: learning curves (seed figure 2), the gate histogram (seed figure 3), the ROC
curve and the reliability diagram. Each names the split it shows."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mdaf_tf import metrics  # noqa: E402
from mdaf_tf.evaluation import calibration  # noqa: E402
from mdaf_tf.files import save_figure_atomic  # noqa: E402


def _save(fig, path: Path) -> None:
    try:
        save_figure_atomic(fig, path, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)


def learning_curves(history: list[dict], best_epoch: int, path) -> None:
    """Train and validation AUC per epoch with the best epoch (by validation AUC) marked."""
    epochs = [r["epoch"] for r in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [r["train_auc"] for r in history], "o-", label="train AUC")
    ax.plot(epochs, [r["val_auc"] for r in history], "s-", label="validation AUC")
    best = [r for r in history if r["epoch"] == best_epoch]
    if best:
        ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1)
        ax.plot([best_epoch], [best[0]["val_auc"]], "r*", markersize=14,
                label=f"best (epoch {best_epoch}, {best[0]['val_auc']:.4f})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("AUC")
    ax.set_xticks(epochs)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Learning curves (the epoch is chosen on validation)")
    _save(fig, Path(path))


def gate_histogram(gates, path, bins: int = 50, split: str = "validation") -> None:
    """Distribution of the fusion gate on ``split`` with mean and median marked."""
    g = np.asarray(gates).reshape(-1)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(g, bins=bins, range=(0.0, 1.0), color="steelblue", alpha=0.8)
    mean, median = float(g.mean()), float(np.median(g))
    ax.axvline(mean, color="red", linestyle="-", label=f"mean {mean:.3f}")
    ax.axvline(median, color="orange", linestyle="--", label=f"median {median:.3f}")
    ax.set_xlabel("gate g (weight of the static branch)")
    ax.set_ylabel(f"{split} examples")
    ax.legend()
    ax.set_title(f"Gate distribution on {split}")
    _save(fig, Path(path))


def roc_points(labels, scores) -> tuple[np.ndarray, np.ndarray] | None:
    """(false positive rates, true positive rates) of the ROC curve (scikit-learn's
    ``roc_curve``), from (0, 0) through one point per distinct score to (1, 1); a run of tied
    scores is one step, so the trapezoid area under the points is ``metrics.exact_auc``
    (ties 1/2). None when only one class is present (the curve is undefined)."""
    from sklearn.metrics import roc_curve as sklearn_roc_curve

    y = np.asarray(labels).reshape(-1) > 0.5
    if y.all() or not y.any():
        return None
    fpr, tpr, _ = sklearn_roc_curve(y, np.asarray(scores, dtype=np.float64).reshape(-1),
                                    drop_intermediate=False)
    return fpr, tpr


def _note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)


def _format(value: float) -> str:
    return "n/a" if np.isnan(value) else f"{value:.4f}"


def roc_curve(labels, probabilities, path, split: str = "test") -> None:
    """ROC curve of the predictions on ``split`` with the exact AUC in the legend."""
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=1, label="chance (AUC 0.5)")
    points = roc_points(labels, p) if np.isfinite(p).all() else None
    if points is None:
        _note(ax, "ROC undefined: one class only or non-finite predictions")
    else:
        auc = metrics.exact_auc(labels, p)
        ax.plot(*points, "-", color="steelblue", linewidth=2, label=f"model (AUC {auc:.4f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(f"ROC curve on {split} ({len(p):,} examples)")
    _save(fig, Path(path))


def _reliability_points(ax, labels, p, bins: int) -> calibration.Reliability:
    table = calibration.reliability(labels, p, bins)
    full = table.counts > 0
    ece = calibration.expected_calibration_error(labels, p, bins)
    ratio = calibration.calibration_ratio(labels, p)
    ax.plot(table.mean_predicted[full], table.observed_rate[full], "o-", color="steelblue",
            label=f"model (ECE {_format(ece)}, mean p / click rate {_format(ratio)})")
    return table


def _bin_counts(ax, table: calibration.Reliability, split: str) -> None:
    ax.bar(table.edges[:-1], table.counts, width=np.diff(table.edges), align="edge",
           color="steelblue", edgecolor="white", alpha=0.8)
    if table.counts.max() > 0:
        ax.set_yscale("log")  # CTR predictions crowd into the first bins
    ax.set_xlabel("predicted click probability (bins)")
    ax.set_ylabel(f"{split} examples\n(log scale)")


def reliability_diagram(labels, probabilities, path, split: str = "test",
                        bins: int = calibration.DEFAULT_BINS) -> None:
    """Observed click rate against mean prediction per equal-width bin on ``split``, with the
    diagonal (perfect calibration) and, beneath, the examples per bin."""
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    fig, (ax, counts) = plt.subplots(2, 1, figsize=(6, 6.5), sharex=True,
                                     gridspec_kw={"height_ratios": (3, 1)})
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=1, label="perfect calibration")
    if np.isfinite(p).all():
        _bin_counts(counts, _reliability_points(ax, labels, p, bins), split)
    else:
        _note(ax, "non-finite predictions")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)  # a bin's rate of 0 or 1 stays visible
    ax.set_ylabel("observed click rate")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    ax.set_title(f"Reliability on {split} ({bins} equal-width bins, {len(p):,} examples)")
    _save(fig, Path(path))
