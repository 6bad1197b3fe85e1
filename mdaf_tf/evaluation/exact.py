"""``ExactEvaluation``: exact AUC, log loss and gAUC of a split at the end of every epoch."""

from __future__ import annotations

import math

import keras

from mdaf_tf import data
from mdaf_tf.data import schema
from mdaf_tf.evaluation import predictions


def predict_split(predict_fn, data_dir, split: str, batch_size: int, *, progress: bool = False,
                  exclude=(), examples: int | None = None) -> predictions.Predictions:
    """One in-order pass of ``predict_fn`` over ``split``, with the user keys (for gAUC)
    read beside the model inputs; ``examples`` only sizes the progress bar."""
    dataset = data.make_dataset(data_dir, split, batch_size, training=False, exclude=exclude,
                                extra_features=(schema.USER_KEY,))
    steps = math.ceil(examples / batch_size) if examples else None
    return predictions.predict_dataset(predict_fn, dataset, batch_size, steps, progress,
                                       label=f"  {schema.SPLIT_LABELS[split]}")


class ExactEvaluation(keras.callbacks.Callback):
    """Writes ``{prefix}auc``, ``{prefix}log_loss`` and ``{prefix}gauc`` into the epoch logs.

    Keras's ``AUC`` metric buckets the scores into thresholds and ``fit``'s validation has no
    per-user grouping; this callback predicts the whole split once per epoch in file order
    and computes all three exactly (``mdaf_tf.metrics``), so ``EarlyStopping`` and
    any later callback read them from ``logs``. Put it before them in the callback list.

    Args:
        click_model: the model to evaluate (its ``"probability"`` output).
        data_dir: a pipeline's output directory.
        split: the split to evaluate (``"val"``).
        batch_size: prediction batch size.
        jit_compile: compile the prediction function with XLA.
        exclude: shard paths to leave out.
        examples: the split's size (sizes the progress bar only).
        progress: show a progress bar.
        prefix: the log key prefix.

    Attributes:
        predictions: the latest epoch's ``predictions.Predictions``.
        best_predictions, best_epoch: those of the best ``{prefix}auc`` so far (0-based epoch).

    Example:

    ```python
    evaluation = ExactEvaluation(click_model, "data/synthetic", batch_size=2048)
    trainer.fit(train_dataset, epochs=3, callbacks=[evaluation, keras.callbacks.EarlyStopping(
        monitor="val_auc", mode="max", patience=3, restore_best_weights=True)])
    ```
    """

    def __init__(self, click_model, data_dir, *, split: str = "val", batch_size: int = 2048,
                 jit_compile: bool = False, exclude=(), examples: int | None = None,
                 progress: bool = False, prefix: str = "val_"):
        super().__init__()
        self.click_model, self.data_dir, self.split = click_model, data_dir, split
        self.batch_size, self.exclude, self.examples = batch_size, tuple(exclude), examples
        self.progress, self.prefix = progress, prefix
        self.predict_fn = predictions.make_predict_fn(click_model, jit_compile)
        self.predictions = self.best_predictions = None
        self.best_epoch, self._best_auc = None, None

    def evaluate(self) -> predictions.Predictions:
        """Predict the split with the model's current weights."""
        return predict_split(self.predict_fn, self.data_dir, self.split, self.batch_size,
                             progress=self.progress, exclude=self.exclude,
                             examples=self.examples)

    def on_epoch_end(self, epoch, logs=None):
        self.predictions = self.evaluate()
        summary = self.predictions.summary()
        if logs is not None:
            for key in ("auc", "log_loss", "gauc"):
                logs[self.prefix + key] = summary.get(key, float("nan"))
        if self._best_auc is None or summary["auc"] > self._best_auc:
            self.best_predictions, self.best_epoch = self.predictions, epoch
            self._best_auc = summary["auc"]
