"""``RunReport``: the end of a training run as a callback (test figures, report, plots)."""

from __future__ import annotations

from collections.abc import Callable

import keras

from mdaf_tf.data import schema
from mdaf_tf.evaluation.exact import predict_split
from mdaf_tf.files import write_text_atomic


class RunReport(keras.callbacks.Callback):
    """When training ends: the validation and, once, the test predictions of the restored
    weights, the run's ``TrainResult``, and ``report.md`` with its plots.

    Place it after ``EarlyStopping(restore_best_weights=True)``, whose ``on_train_end``
    restores the best epoch first. The validation predictions of that epoch are reused from
    ``evaluation`` (an ``ExactEvaluation``) when this process computed them; the test split is
    read here for the first and only time, and not at all without ``evaluate_test`` (the
    tuner's trials select on validation and never open it).

    Args:
        evaluation: the run's ``ExactEvaluation`` (its prediction function is reused).
        early_stopping: the run's ``keras.callbacks.EarlyStopping``.
        metrics_logger: the run's ``MetricsLogger`` (the history).
        describe: ``describe(history, best_epoch, stopped_early, val, test)`` -> the
            ``TrainResult`` (the runner binds the run's data and configuration).
        evaluate_test: evaluate the test split.
        write_files: write ``report.md``, ``learning_curves.png``, ``roc.png`` and
            ``reliability.png`` (the reported split: test, or validation without
            ``evaluate_test``) and, for a learned gate, ``gate_histogram.png`` (validation) into
            ``TrainResult.output_dir``.
        log: prints the early-stopping and test lines.

    Attributes:
        result: the ``TrainResult``, set at ``on_train_end``.

    Example:

    ```python
    report = RunReport(evaluation, stop, logger, describe, evaluate_test=True)
    trainer.fit(train_dataset, epochs=10, callbacks=[evaluation, stop, logger, report])
    print(report.result.test["auc"])
    ```
    """

    def __init__(self, evaluation, early_stopping, metrics_logger,
                 describe: Callable, *, evaluate_test: bool = True, write_files: bool = True,
                 log=print):
        super().__init__()
        self.evaluation, self.early_stopping = evaluation, early_stopping
        self.metrics_logger, self.describe = metrics_logger, describe
        self.evaluate_test, self.write_files, self.log = evaluate_test, write_files, log
        self.result = None

    def on_train_end(self, logs=None):
        history = self.metrics_logger.history
        if not history:
            raise RuntimeError("RunReport: no epoch was trained")
        stop = self.early_stopping
        best_epoch = stop.best_epoch + 1 if stop.best is not None else history[-1]["epoch"]
        val, test = self._predictions()
        self.result = self.describe(history, best_epoch, stop.stopped_epoch > 0, val, test)
        self._log(stop)
        if self.write_files:
            write_report(self.result)

    def _predictions(self):
        evaluation, stop = self.evaluation, self.early_stopping
        if evaluation.best_predictions is not None and evaluation.best_epoch == stop.best_epoch:
            val = evaluation.best_predictions
        else:  # a resumed run: that epoch was evaluated by an earlier process
            val = evaluation.evaluate()
        if not self.evaluate_test:
            return val, None
        test = predict_split(evaluation.predict_fn, evaluation.data_dir, "test",
                             evaluation.batch_size, progress=evaluation.progress,
                             exclude=evaluation.exclude)
        return val, test

    def _log(self, stop) -> None:
        result = self.result
        if stop.stopped_epoch > 0:
            self.log(f"early stopping: no val_auc improvement for {stop.patience} epochs; "
                     f"restored epoch {result.best_epoch}")
        if result.test is not None:
            self.log(f"test (best epoch {result.best_epoch}, selected on validation AUC): auc "
                     f"{result.test['auc']:.4f} gauc {result.test['gauc']:.4f} log_loss "
                     f"{result.test['log_loss']:.4f}")


def write_report(result) -> None:
    """``report.md``, ``learning_curves.png``, ``roc.png`` and ``reliability.png`` (on the
    reported split) and (gated models) ``gate_histogram.png`` (on validation)."""
    from mdaf_tf.training import plots, report

    out = result.output_dir
    write_text_atomic(out / "report.md", report.training_report(result))
    plots.learning_curves(result.history, result.best_epoch, out / "learning_curves.png")
    split, predictions = report.reported_predictions(result)
    label = schema.SPLIT_LABELS[split]
    plots.roc_curve(predictions.labels, predictions.probabilities, out / "roc.png", split=label)
    plots.reliability_diagram(predictions.labels, predictions.probabilities,
                              out / "reliability.png", split=label)
    if result.val_predictions.gates is not None:
        plots.gate_histogram(result.val_predictions.gates, out / "gate_histogram.png",
                             split=schema.SPLIT_LABELS["val"])
