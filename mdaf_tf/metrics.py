"""Exact evaluation metrics on whole prediction arrays (no streaming approximation).

``exact_auc`` is the project's one ROC AUC: scikit-learn's ``roc_auc_score`` (the area under
the exact ROC curve, ties counted as one half: the Mann-Whitney U statistic over the number of
(positive, negative) pairs), NaN where only one class is present. ``group_auc`` is the
impression-weighted per-user AUC, which scikit-learn does not offer.
"""

from __future__ import annotations

import numpy as np

GATE_BUCKETS = ((0.0, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 1.0))
HISTOGRAM_BINS = 10


def exact_auc(labels, scores, sample_weight=None) -> float:
    """ROC AUC with ties counted as 1/2 (``sample_weight``: how many examples each row
    stands for); NaN when only one class is present or a score is NaN (a diverged model)."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels).reshape(-1) > 0.5
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if labels.shape != scores.shape:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} differ in shape")
    weight = np.ones(len(labels)) if sample_weight is None else np.asarray(
        sample_weight, np.float64).reshape(-1)
    if not (weight[labels].sum() > 0 and weight[~labels].sum() > 0) or np.isnan(scores).any():
        return float("nan")
    return float(roc_auc_score(labels, scores, sample_weight=sample_weight))


def group_auc(labels, scores, groups) -> float:
    """gAUC: the impression-weighted mean of per-group (per-user) exact AUC.

    gAUC = sum_u n_u * AUC_u / sum_u n_u over the groups u that hold both labels, n_u the
    group's examples (as BARS reports for Taobao data); groups with one label are skipped.
    NaN when no group holds both labels.
    """
    labels = np.asarray(labels).reshape(-1) > 0.5
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    groups = np.asarray(groups).reshape(-1)
    if not labels.shape == scores.shape == groups.shape:
        raise ValueError(f"labels {labels.shape}, scores {scores.shape} and groups "
                         f"{groups.shape} differ in shape")
    if len(labels) == 0:
        return float("nan")
    # one sort by (group, score) gives every group's tie-averaged ranks at once
    order = np.lexsort((scores, groups))
    g, s, y = groups[order], scores[order], labels[order]
    group_start = np.r_[True, g[1:] != g[:-1]]
    run_start = group_start | np.r_[True, s[1:] != s[:-1]]
    run_id = np.cumsum(run_start) - 1
    run_bounds = np.r_[np.flatnonzero(run_start), len(s)]
    gid = np.cumsum(group_start) - 1
    first_of_group = np.flatnonzero(group_start)
    # 1-based rank within the group, averaged over the tie run
    run_rank = (run_bounds[:-1] + run_bounds[1:] + 1) / 2.0
    ranks = run_rank[run_id] - first_of_group[gid]
    n = np.bincount(gid)
    n_pos = np.bincount(gid, weights=y.astype(np.float64))
    n_neg = n - n_pos
    rank_sum = np.bincount(gid, weights=np.where(y, ranks, 0.0))
    both = (n_pos > 0) & (n_neg > 0)
    if not both.any():
        return float("nan")
    auc = (rank_sum[both] - n_pos[both] * (n_pos[both] + 1) / 2.0) / (n_pos[both] * n_neg[both])
    return float(np.sum(n[both] * auc) / np.sum(n[both]))


def log_loss(labels, probabilities, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of hard labels, probabilities clipped to [eps, 1 - eps]."""
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    p = np.clip(np.asarray(probabilities, dtype=np.float64).reshape(-1), eps, 1.0 - eps)
    return float(-np.mean(labels * np.log(p) + (1.0 - labels) * np.log(1.0 - p)))


def gate_statistics(gates, bins: int = HISTOGRAM_BINS) -> dict:
    """Mean, median, std and a histogram over [0, 1] of gate values."""
    g = np.asarray(gates, dtype=np.float64).reshape(-1)
    counts, edges = np.histogram(g, bins=bins, range=(0.0, 1.0))
    return {
        "mean": float(g.mean()),
        "median": float(np.median(g)),
        "std": float(g.std()),
        "histogram_edges": [float(e) for e in edges],
        "histogram_counts": [int(c) for c in counts],
    }


def auc_by_gate_bucket(labels, scores, gates, buckets=GATE_BUCKETS) -> list[dict]:
    """Sample share and exact AUC per gate bucket [lo, hi); the last bucket includes hi."""
    labels = np.asarray(labels).reshape(-1)
    scores = np.asarray(scores).reshape(-1)
    g = np.asarray(gates).reshape(-1)
    rows = []
    for i, (lo, hi) in enumerate(buckets):
        upper = g <= hi if i == len(buckets) - 1 else g < hi
        mask = (g >= lo) & upper
        n = int(mask.sum())
        rows.append(
            {
                "bucket": f"{lo:.1f}-{hi:.1f}",
                "count": n,
                "share": n / len(g) if len(g) else float("nan"),
                "auc": exact_auc(labels[mask], scores[mask]) if n else float("nan"),
            }
        )
    return rows
