"""``MetricsLogger``: the run's ``metrics.csv``, TensorBoard scalars and one line per epoch."""

from __future__ import annotations

from pathlib import Path

import keras

from mdaf_tf.files import write_text_atomic

METRICS_COLUMNS = (
    "epoch",
    "train_loss",
    "train_auc",
    "val_auc",
    "val_log_loss",
    "val_gauc",
    "learning_rate",
    "examples_per_second",
    "epoch_seconds",
)
# fit's log keys for the columns named differently
_LOG_KEYS = {"train_loss": "loss", "train_auc": "auc"}


def write_metrics_csv(path: Path, history: list[dict]) -> None:
    lines = [",".join(METRICS_COLUMNS)]
    for row in history:
        lines.append(",".join(_csv_value(row.get(c)) for c in METRICS_COLUMNS))
    write_text_atomic(path, "\n".join(lines) + "\n")


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


class MetricsLogger(keras.callbacks.Callback):
    """Keeps one row per epoch (``METRICS_COLUMNS``, 1-based epochs) read from the epoch logs,
    rewrites ``metrics.csv`` atomically after each epoch, writes the row to TensorBoard and
    prints it. Place it after the callbacks that add ``val_*`` and timing keys.

    Keras's ``CSVLogger`` appends a line per epoch; a run killed after the append but before
    its checkpoint would, once resumed, hold that epoch twice. Rewriting the whole file from
    the history the checkpoint restores (``history``) keeps it exact.

    Args:
        output_dir: where ``metrics.csv`` goes (None: no file).
        writer: a ``SummaryWriter`` for TensorBoard scalars (None: none).
        log: the function printing the epoch line (None: silent).

    Example:

    ```python
    logger = MetricsLogger("runs/mdaf", log=print)
    trainer.fit(train_dataset, epochs=3, callbacks=[ExactEvaluation(model, data_dir), logger])
    print(logger.history[-1]["val_auc"])
    ```
    """

    def __init__(self, output_dir=None, writer=None, log=None):
        super().__init__()
        self.output_dir = None if output_dir is None else Path(output_dir)
        self.writer, self.log = writer, log
        self.history: list[dict] = []

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        row = {"epoch": epoch + 1}
        for column in METRICS_COLUMNS[1:]:
            value = logs.get(_LOG_KEYS.get(column, column))
            row[column] = None if value is None else float(value)
        self.history = [r for r in self.history if r["epoch"] < row["epoch"]] + [row]
        if self.output_dir is not None:
            write_metrics_csv(self.output_dir / "metrics.csv", self.history)
        if self.writer is not None:
            self.writer.scalars(row["epoch"], {k: v for k, v in row.items()
                                               if k != "epoch" and v is not None})
        if self.log is not None:
            self.log(epoch_line(row))


def epoch_line(row: dict) -> str:
    def figure(key, fmt):
        return "nan" if row.get(key) is None else format(row[key], fmt)

    return (f"epoch {row['epoch']}: train_loss {figure('train_loss', '.4f')} "
            f"train_auc {figure('train_auc', '.4f')} val_auc {figure('val_auc', '.4f')} "
            f"val_log_loss {figure('val_log_loss', '.4f')} val_gauc {figure('val_gauc', '.4f')} "
            f"lr {figure('learning_rate', '.3g')} "
            f"{figure('examples_per_second', '.0f')} examples/s")
