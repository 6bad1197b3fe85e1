"""``RunnerTuner``: a Keras Tuner whose trials are ``runner.train`` runs.

Each trial trains in ``PROJECT/trial_ID/run`` (checkpoints, metrics.csv, config.json) with the
trial's configs and reports ``val_auc``, the exact rank AUC of the best epoch on validation,
as the objective (plus ``train_auc`` and ``train_val_gap`` of that epoch). Trials never open
the test split; ``mdaf_tf.tuning.selected`` evaluates the selected trial on it afterwards. A
trial that was interrupted is handed out again by the oracle when the search is re-run (Keras
Tuner puts running trials back in its retry queue on reload) and continues from its last
checkpoint; completed trials are never trained again. With the Hyperband oracle, a trial
trains from scratch for its ``tuner/epochs`` epochs (no warm start from the previous round).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

import keras_tuner as kt

from mdaf_tf.files import write_json_atomic
from mdaf_tf.training import checkpoint, runner


class TrialError(kt.errors.FatalError):
    """A trial's training failed; stops the search (the cause is chained)."""


class RunnerTuner(kt.engine.base_tuner.BaseTuner):
    def __init__(self, oracle, hypermodel, data_dir, directory, project_name, *,
                 progress: bool = False, log: Callable[[str], None] = print,
                 on_trial_done: Callable[[], None] | None = None):
        self.data_dir = Path(data_dir)
        self.progress = progress
        self.log = log
        self.on_trial_done = on_trial_done
        super().__init__(oracle, hypermodel, directory=str(directory),
                         project_name=project_name, overwrite=False)

    def run_dir(self, trial_id) -> Path:
        return Path(self.get_trial_dir(trial_id)) / "run"

    def summary_path(self, trial_id) -> Path:
        return Path(self.get_trial_dir(trial_id)) / "summary.json"

    def run_trial(self, trial, *args, **kwargs):
        hp = trial.hyperparameters
        model_config, train_config = self.hypermodel.build(hp)
        if "tuner/epochs" in hp.values:  # Hyperband's budget for this round
            train_config = dataclasses.replace(train_config, epochs=int(hp.values["tuner/epochs"]))
        run_dir = self.run_dir(trial.trial_id)
        resume = checkpoint.latest(run_dir / "checkpoints") is not None
        prefix = f"[trial {trial.trial_id}] "
        started = time.time()
        try:
            try:
                result = self._train(model_config, train_config, run_dir, resume, prefix)
            except checkpoint.CheckpointError:
                if not resume:
                    raise
                # A checkpoint from other settings (e.g. a search restarted before its
                # first trial was recorded): train this trial from the start.
                result = self._train(model_config, train_config, run_dir, False, prefix)
        except Exception as e:
            raise TrialError(f"trial {trial.trial_id}: {e}") from e
        best_row = next(r for r in result.history if r["epoch"] == result.best_epoch)
        summary = {
            "trial_id": trial.trial_id,
            "hyperparameters": {k: hp.values[k] for k in self.hypermodel.space},
            "epochs": len(result.history),
            "best_epoch": result.best_epoch,
            "val_auc": float(result.best["auc"]),
            "val_log_loss": float(result.best["log_loss"]),
            "train_auc": float(best_row["train_auc"]),
            "train_val_gap": float(best_row["train_auc"]) - float(result.best["auc"]),
            "seconds": time.time() - started,
            "resumed": resume,
        }
        write_json_atomic(self.summary_path(trial.trial_id), summary)
        return {k: summary[k] for k in ("val_auc", "train_auc", "train_val_gap")}

    def _train(self, model_config, train_config, run_dir, resume, prefix):
        # Trials never open the test split: the objective and the selection are validation's.
        return runner.train(runner.TrainRequest(
            model_config, train_config, self.data_dir, run_dir, resume=resume,
            progress=self.progress, write_reports=False, log=lambda m: self.log(prefix + m),
            evaluate_test=False,
        ))

    def read_summary(self, trial_id) -> dict | None:
        path = self.summary_path(trial_id)
        return json.loads(path.read_text()) if path.is_file() else None

    def on_search_begin(self):
        self.save()  # so that a search killed in its first trial reloads its oracle

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        if self.on_trial_done is not None:
            self.on_trial_done()
