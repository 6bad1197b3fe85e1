"""``EpochProgress``: a progress bar with examples/s, and the epoch's timing in its logs."""

from __future__ import annotations

import time

import keras

from mdaf_tf.progress import ProgressBar


class EpochProgress(keras.callbacks.Callback):
    """One progress line per epoch (loss and examples/s); adds ``examples_per_second``,
    ``epoch_seconds`` (training steps only, validation excluded) and ``learning_rate`` (the
    schedule's value after the epoch's last step) to the epoch logs.

    Keras's ``ProgbarLogger`` shows steps, not examples/s, so ``fit`` runs with
    ``verbose=0`` and this instead. Steps that a resumed run skips (``ClickTrainer``'s
    ``last_step_skipped``) are not counted.

    Args:
        batch_size: examples per step (the global batch).
        enabled: draw the bar (the logs are written either way).

    Example:

    ```python
    trainer.fit(train_dataset, epochs=3, verbose=0, callbacks=[EpochProgress(2048)])
    ```
    """

    def __init__(self, batch_size: int, enabled: bool = True):
        super().__init__()
        self.batch_size, self.enabled = batch_size, enabled
        self.bar = None

    def on_epoch_begin(self, epoch, logs=None):
        total = self.params.get("steps") if self.params else None
        epochs = self.params.get("epochs") if self.params else None
        self.bar = ProgressBar(f"epoch {epoch + 1}/{epochs}", total, enabled=self.enabled)

    def on_train_batch_end(self, batch, logs=None):
        if getattr(self.model, "last_step_skipped", False):
            self.bar.steps += 1
            self.bar.start = time.perf_counter()  # time the trained steps only
            return
        loss = float((logs or {}).get("loss", float("nan")))
        self.bar.update(self.batch_size, loss=loss)

    def on_epoch_end(self, epoch, logs=None):
        self.bar.close(loss=float((logs or {}).get("loss", float("nan"))))
        if logs is not None:
            logs["examples_per_second"] = self.bar.examples_per_second
            logs["epoch_seconds"] = self.bar.elapsed
            logs["learning_rate"] = current_learning_rate(self.model.optimizer)


def current_learning_rate(optimizer) -> float:
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))
