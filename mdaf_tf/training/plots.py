"""PNG figures: learning curves (seed figure 2) and the gate histogram (seed figure 3)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

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
    ax.set_title("Gate distribution")
    _save(fig, Path(path))
