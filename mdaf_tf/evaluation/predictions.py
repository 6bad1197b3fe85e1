"""One prediction pass over a split, reused for AUC, log loss and the gate statistics."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from mdaf_tf import metrics
from mdaf_tf.data import schema
from mdaf_tf.evaluation import calibration
from mdaf_tf.progress import ProgressBar


@dataclasses.dataclass
class Predictions:
    labels: np.ndarray  # (n,) float32
    probabilities: np.ndarray  # (n,) float32
    gates: np.ndarray | None  # (n,) float32, or None for models without a gate
    users: np.ndarray | None = None  # (n,) int64 ``user_key``, for gAUC

    def summary(self) -> dict:
        """AUC, log loss, calibration (``ece``, ``calibration_ratio``, ``mean_probability``,
        ``click_rate``, ``reliability``: :func:`calibration.summary`), gAUC (when the user keys
        are known) and, for gated models, gate statistics and AUC per gate bucket."""
        result = {
            "examples": int(len(self.labels)),
            "positives": int((self.labels > 0.5).sum()),
            "auc": metrics.exact_auc(self.labels, self.probabilities),
            "log_loss": metrics.log_loss(self.labels, self.probabilities),
            **calibration.summary(self.labels, self.probabilities),
        }
        if self.users is not None:
            result["gauc"] = metrics.group_auc(self.labels, self.probabilities, self.users)
        if self.gates is not None:
            result["gate"] = metrics.gate_statistics(self.gates)
            result["gate_buckets"] = metrics.auc_by_gate_bucket(
                self.labels, self.probabilities, self.gates
            )
        return result


def _pad_batch(features: dict, size: int, target: int) -> dict:
    """Pad a short last batch to the static batch size by repeating its first row."""
    if size == target:
        return features
    index = tf.concat([tf.range(size), tf.zeros(target - size, tf.int32)], axis=0)
    return {k: tf.gather(v, index) for k, v in features.items()}


def make_predict_fn(model, jit_compile: bool):
    @tf.function(jit_compile=jit_compile, reduce_retracing=True)
    def predict(features):
        outputs = model(features, training=False)
        return outputs["probability"], outputs.get("gate")

    return predict


def predict_dataset(
    predict_fn,
    dataset,
    batch_size: int,
    total_steps: int | None = None,
    progress: bool = True,
    label: str = "eval",
) -> Predictions:
    """Run ``predict_fn`` over ``dataset`` of (features, label), batches padded to one shape.

    A ``user_key`` feature in the batches (``make_dataset(extra_features=("user_key",))``) is
    kept out of the model's inputs and collected for gAUC."""
    labels, probabilities, gates, users = [], [], [], []
    bar = ProgressBar(label, total_steps, enabled=progress)
    for features, y in dataset:
        n = int(y.shape[0])
        if schema.USER_KEY in features:
            features = dict(features)
            users.append(features.pop(schema.USER_KEY).numpy().reshape(-1))
        for start in range(0, n, batch_size):
            part = {k: v[start : start + batch_size] for k, v in features.items()}
            size = min(batch_size, n - start)
            p, g = predict_fn(_pad_batch(part, size, batch_size))
            probabilities.append(p.numpy().reshape(-1)[:size])
            if g is not None:
                gates.append(g.numpy().reshape(-1)[:size])
        labels.append(y.numpy().reshape(-1))
        bar.update(n)
    bar.close()
    cat = lambda parts: np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, "f4")
    return Predictions(cat(labels), cat(probabilities), cat(gates) if gates else None,
                       np.concatenate(users).astype(np.int64) if users else None)
