"""``TrainingBackup``: crash-safe, step-exact resume of ``fit``.

Keras 3.15's ``BackupAndRestore(save_freq=N)`` writes the weights every N steps but records
only the epoch: a resumed run starts that epoch again from its first batch, training twice
on the batches before the kill, and it saves neither the optimizer's slots separately from
the weights file nor the metric accumulators, ``EarlyStopping``'s state or the epoch history.
A SIGKILLed run resumed with it does not reach the uninterrupted run's figures. This
subclass keeps its interface (``on_train_begin`` restores, batch/epoch ends save) and adds:

* the step within the epoch: ``ClickTrainer.skip_steps`` makes the resumed epoch read and
  discard the batches already trained on, so the data order (a function of seed and epoch)
  and the step indices are those of the uninterrupted run;
* the optimizer variables (step counter, Adam moments), every model variable including the
  dropout seed generators, and mid-epoch the metric accumulators (loss, train AUC);
* ``EarlyStopping``'s wait/best/best epoch (its best weights are the kept best-epoch
  checkpoint) and ``MetricsLogger``'s history;
* saves every ``every_steps`` steps and/or ``every_seconds`` seconds, and at every epoch end.

Checkpoints are directories written under a temporary name and renamed
(``mdaf_tf.training.checkpoint``): ``epoch-NNNN/`` for the latest and the best epoch,
``mid-epoch/`` for the newest mid-epoch backup. A kill at any moment leaves a complete one.
"""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np

from mdaf_tf.internal_apis import set_initial_epoch
from mdaf_tf.training import checkpoint


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C: the run stopped after writing ``checkpoint`` (resume with ``--resume``)."""

    def __init__(self, checkpoint_path: Path | None):
        super().__init__(str(checkpoint_path))
        self.checkpoint = checkpoint_path


class TrainingBackup(keras.callbacks.BackupAndRestore):
    """Backs up a ``ClickTrainer``'s training state and restores it at the next ``fit``.

    Put it after ``EarlyStopping`` and ``MetricsLogger`` in the callback list (it restores
    their state after their ``on_train_begin`` resets it, and saves after they update).

    Args:
        checkpoint_dir: where the checkpoints go (``RUN/checkpoints``).
        every_steps: also save every this many steps (0: not by steps).
        every_seconds: also save when this many seconds passed since the last save (0: not).
        early_stopping: the run's ``keras.callbacks.EarlyStopping`` (its state is saved).
        metrics_logger: the run's ``MetricsLogger`` (its history is saved).
        configs: JSON-able configuration stored beside the state (the runner checks it).
        interrupt_requested: a callable; when it returns True after a step, the state is
            saved and ``TrainingInterrupted`` raised.

    Example:

    ```python
    backup = TrainingBackup("runs/mdaf/checkpoints", every_steps=500, early_stopping=stop)
    trainer.fit(train_dataset, epochs=10, callbacks=[evaluation, stop, backup])
    ```
    """

    def __init__(self, checkpoint_dir, *, every_steps: int = 0, every_seconds: float = 0.0,
                 early_stopping=None, metrics_logger=None, configs=None,
                 interrupt_requested=None):
        super().__init__(backup_dir=str(checkpoint_dir), save_freq="epoch",
                         delete_checkpoint=False)
        self.checkpoint_dir = Path(checkpoint_dir)
        self.every_steps, self.every_seconds = int(every_steps), float(every_seconds)
        self.early_stopping, self.metrics_logger = early_stopping, metrics_logger
        self.configs = configs or {}
        self.interrupt_requested = interrupt_requested or (lambda: False)
        self.restored_from = None
        self._metric_values = None
        self._step = self._steps_since_save = self._epoch = 0
        self._last_save = time.monotonic()

    # -- restore ----------------------------------------------------------------------------

    def on_train_begin(self, logs=None):
        self._last_save = time.monotonic()
        path = checkpoint.latest(self.checkpoint_dir)
        if path is None:
            return
        trainer = self.model
        checkpoint.check_format(path, checkpoint.read_state(path))
        state = checkpoint.restore(path, trainer.click_model, trainer.optimizer)
        set_initial_epoch(trainer, int(state["epoch"]))
        trainer.skip_steps = int(state.get("step", 0))
        if trainer.skip_steps:
            trainer.build_metrics()
            self._metric_values = checkpoint.read_partial(path)
        if self.metrics_logger is not None:
            self.metrics_logger.history = list(state.get("history", []))
        if self.early_stopping is not None:
            self._restore_early_stopping(state.get("early_stopping") or {})
        self.restored_from = path

    def _restore_early_stopping(self, saved: dict) -> None:
        stop = self.early_stopping
        if not saved:
            return
        stop.wait, stop.stopped_epoch = int(saved["wait"]), int(saved["stopped_epoch"])
        stop.best, stop.best_epoch = saved["best"], int(saved["best_epoch"])
        best_dir = checkpoint.epoch_dirs(self.checkpoint_dir).get(stop.best_epoch + 1)
        if stop.restore_best_weights and best_dir is not None:
            current = [np.array(v.numpy()) for v in self.model.click_model.variables]
            checkpoint.load_model_weights(best_dir, self.model.click_model)
            stop.best_weights = self.model.get_weights()
            for variable, value in zip(self.model.click_model.variables, current, strict=True):
                variable.assign(value)

    def on_epoch_begin(self, epoch, logs=None):
        self._step, self._epoch = 0, epoch  # epoch: epochs completed before this one
        if self._metric_values is not None:  # fit reset the metrics just before this
            variables = metric_variables(self.model)
            for i, variable in enumerate(variables):
                variable.assign(self._metric_values[f"m{i:04d}"])
            self._metric_values = None

    # -- save -------------------------------------------------------------------------------

    def on_train_batch_end(self, batch, logs=None):
        self._step, self._steps_since_save = batch + 1, self._steps_since_save + 1
        if self._step >= (self.params or {}).get("steps", 0) > 0:
            return  # the epoch checkpoint follows
        if self.interrupt_requested():
            raise TrainingInterrupted(self._save_mid_epoch())
        due_steps = self.every_steps and self._steps_since_save >= self.every_steps
        due_time = self.every_seconds and time.monotonic() - self._last_save >= self.every_seconds
        if due_steps or due_time:
            self._save_mid_epoch()

    def _save_mid_epoch(self) -> Path:
        arrays = {f"m{i:04d}": np.asarray(v.numpy())
                  for i, v in enumerate(metric_variables(self.model))}
        state = self._state(self._epoch, self._step)
        saved = checkpoint.save_mid_epoch(self.checkpoint_dir, self.model.click_model,
                                          self.model.optimizer, state, arrays)
        self._saved()
        return saved

    def on_epoch_end(self, epoch, logs=None):
        stop = self.early_stopping
        keep = {stop.best_epoch + 1} if stop is not None and stop.best is not None else set()
        saved = checkpoint.save(self.checkpoint_dir, epoch + 1, self.model.click_model,
                                self.model.optimizer, self._state(epoch + 1), keep=keep)
        self._saved()
        done = self.model.stop_training or epoch + 1 >= (self.params or {}).get("epochs", 0)
        if self.interrupt_requested() and not done:
            raise TrainingInterrupted(saved)

    def on_train_end(self, logs=None):
        set_initial_epoch(self.model, None)

    def _saved(self) -> None:
        self._steps_since_save, self._last_save = 0, time.monotonic()

    def _state(self, epochs_done: int, step: int = 0) -> dict:
        state = {"format": checkpoint.STATE_FORMAT, "epoch": epochs_done, "configs": self.configs,
                 "history": list(self.metrics_logger.history) if self.metrics_logger else []}
        if step:
            state["step"] = step
        stop = self.early_stopping
        if stop is not None:
            best = None if stop.best is None else float(stop.best)
            state["early_stopping"] = {"wait": int(stop.wait), "best": best,
                                       "best_epoch": int(stop.best_epoch),
                                       "stopped_epoch": int(stop.stopped_epoch)}
        return state


def metric_variables(model) -> list:
    """Every variable of the compiled metrics and the loss tracker, in a fixed order."""
    return [v for metric in model.metrics for v in metric.variables]
