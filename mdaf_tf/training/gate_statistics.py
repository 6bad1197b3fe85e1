"""``GateStatistics``: the learned gate's distribution on validation, every epoch."""

from __future__ import annotations

import keras
import numpy as np


class GateStatistics(keras.callbacks.Callback):
    """Adds ``val_gate_mean`` and ``val_gate_std`` to the epoch logs and writes the gate's
    histogram to TensorBoard (``val_gate``), from the predictions ``evaluation`` (an
    ``ExactEvaluation`` placed before this callback) made this epoch.

    Only models with a learned gate (MDAF with ``fusion="gate"``) have a ``gate`` output;
    for the others ``evaluation.predictions.gates`` is None and this callback does nothing.

    Example:

    ```python
    evaluation = ExactEvaluation(click_model, data_dir)
    trainer.fit(train_dataset, epochs=3, callbacks=[evaluation, GateStatistics(evaluation)])
    ```
    """

    def __init__(self, evaluation, writer=None):
        super().__init__()
        self.evaluation, self.writer = evaluation, writer

    def on_epoch_end(self, epoch, logs=None):
        predictions = self.evaluation.predictions
        gates = None if predictions is None else predictions.gates
        if gates is None:
            return
        if logs is not None:
            logs["val_gate_mean"] = float(np.mean(gates))
            logs["val_gate_std"] = float(np.std(gates))
        if self.writer is not None:
            self.writer.histogram(epoch + 1, "val_gate", gates)
