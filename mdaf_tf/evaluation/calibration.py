"""Calibration of predicted click probabilities: ECE, the calibration ratio and the
reliability-diagram data. Pure numpy.

With N predictions p_i in [0, 1] and labels y_i (a click is y > 0.5, as in
:mod:`mdaf_tf.metrics`), split [0, 1] into B equal-width bins (default
``DEFAULT_BINS`` = 10): bin b = [b/B, (b+1)/B) for b < B - 1 and the last bin [(B-1)/B, 1]
closed, so p = 1 falls in it. With n_b the predictions in bin b:

    ECE = sum_b (n_b / N) * |mean(p_i in b) - mean(y_i in b)|

    calibration ratio = mean(p) / mean(y)   (mean predicted probability / observed click rate)

An empty bin (n_b = 0) has weight 0: it adds nothing to ECE, and its reliability entry has
count 0 with NaN mean prediction and observed rate (plots and tables skip it). ECE is NaN for
no predictions. The ratio is NaN when there is no click (mean(y) = 0; the ratio is
undefined, and reports show n/a) or no prediction. A ratio above 1 means the model
over-predicts clicks on average; ECE 0 means each bin's mean prediction equals its click
rate. Equal-width bins put most CTR predictions (often under 0.1) in the first bins; the
counts say how much each bin weighs.
"""

from __future__ import annotations

import dataclasses

import numpy as np

DEFAULT_BINS = 10


@dataclasses.dataclass(frozen=True)
class Reliability:
    """Per-bin reliability-diagram data; bin b is [edges[b], edges[b + 1])."""

    edges: np.ndarray  # (B + 1,) b / B
    counts: np.ndarray  # (B,) int64 predictions in each bin
    mean_predicted: np.ndarray  # (B,) mean p in the bin; NaN for an empty bin
    observed_rate: np.ndarray  # (B,) share of clicks in the bin; NaN for an empty bin

    def to_dict(self) -> dict:
        """JSON-ready lists; an empty bin's means are None."""
        nan_to_none = lambda a: [None if np.isnan(v) else float(v) for v in a]
        return {"edges": [float(e) for e in self.edges],
                "counts": [int(c) for c in self.counts],
                "mean_predicted": nan_to_none(self.mean_predicted),
                "observed_rate": nan_to_none(self.observed_rate)}


def _arrays(labels, probabilities) -> tuple[np.ndarray, np.ndarray]:
    """(clicks as 0/1 float64, probabilities float64), checked for shape and range."""
    y = (np.asarray(labels).reshape(-1) > 0.5).astype(np.float64)
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and probabilities {p.shape} differ in shape")
    if not np.all((p >= 0.0) & (p <= 1.0)):  # also rejects NaN
        raise ValueError("probabilities must lie in [0, 1]")
    return y, p


def bin_edges(bins: int = DEFAULT_BINS) -> np.ndarray:
    """The B + 1 edges b / B of the equal-width bins."""
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    return np.arange(bins + 1, dtype=np.float64) / bins


def bin_index(probabilities, bins: int = DEFAULT_BINS) -> np.ndarray:
    """The bin of each probability: b with b/B <= p < (b+1)/B, and B - 1 for p = 1."""
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    index = np.searchsorted(bin_edges(bins), p, side="right") - 1
    return np.clip(index, 0, bins - 1)


def reliability(labels, probabilities, bins: int = DEFAULT_BINS) -> Reliability:
    """Count, mean prediction and observed click rate of each equal-width bin."""
    y, p = _arrays(labels, probabilities)
    index = bin_index(p, bins)
    counts = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):  # empty bins: 0 / 0 = NaN
        mean_predicted = np.bincount(index, weights=p, minlength=bins) / counts
        observed_rate = np.bincount(index, weights=y, minlength=bins) / counts
    return Reliability(bin_edges(bins), counts.astype(np.int64), mean_predicted, observed_rate)


def expected_calibration_error(labels, probabilities, bins: int = DEFAULT_BINS) -> float:
    """ECE = sum_b (n_b / N) |mean p in b - click rate in b|; NaN for no predictions."""
    table = reliability(labels, probabilities, bins)
    total = int(table.counts.sum())
    if total == 0:
        return float("nan")
    full = table.counts > 0
    gaps = np.abs(table.mean_predicted[full] - table.observed_rate[full])
    return float(np.sum(table.counts[full] / total * gaps))


def calibration_ratio(labels, probabilities) -> float:
    """mean(p) / mean(y); NaN without a click (or without predictions)."""
    y, p = _arrays(labels, probabilities)
    if y.sum() == 0:
        return float("nan")
    return float(p.mean() / y.mean())


def summary(labels, probabilities, bins: int = DEFAULT_BINS) -> dict:
    """``ece``, ``calibration_ratio``, ``mean_probability``, ``click_rate`` and
    ``reliability`` (``Reliability.to_dict()`` with ``bins``) for a report or JSON.

    Unlike the functions above it does not raise for NaN probabilities (a diverged model's):
    every figure is then NaN and ``reliability`` None, as the other metrics go on."""
    if np.isnan(np.asarray(probabilities, dtype=np.float64)).any():
        return {"ece": float("nan"), "calibration_ratio": float("nan"),
                "mean_probability": float("nan"), "click_rate": float("nan"),
                "reliability": None}
    y, p = _arrays(labels, probabilities)
    empty = len(y) == 0
    return {
        "ece": expected_calibration_error(y, p, bins),
        "calibration_ratio": calibration_ratio(y, p),
        "mean_probability": float("nan") if empty else float(p.mean()),
        "click_rate": float("nan") if empty else float(y.mean()),
        "reliability": {"bins": bins, **reliability(y, p, bins).to_dict()},
    }
