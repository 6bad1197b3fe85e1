"""The search's reported figures: the trial selected on validation, on the test split.

Trials never open the test split (``runner.train(..., evaluate_test=False)``), so nothing in
the search can select on it. After the search, the selected trial's weights are rebuilt from
what its run directory already keeps (``config.json``: the resolved configs, vocabulary sizes
included; ``checkpoints/epoch-BEST``: the runner keeps the best epoch's checkpoint) and
evaluated once on test; nothing is retrained.
"""

from __future__ import annotations

import json
from pathlib import Path

from mdaf_tf import config as config_lib
from mdaf_tf.config import TrainConfig
from mdaf_tf.evaluation.predictions import make_predict_fn
from mdaf_tf.files import write_json_atomic
from mdaf_tf.models import make_config
from mdaf_tf.training import checkpoint, runner

RESULT_FILE = "selected_test.json"
FIGURES = ("examples", "positives", "auc", "gauc", "log_loss")


def restore_trial_model(run_dir: Path, epoch: int):
    """(model with epoch ``epoch``'s weights, the run's config.json) of a trial's run."""
    resolved = json.loads((run_dir / "config.json").read_text())
    train_config = config_lib.from_dict(TrainConfig, resolved["train"])
    model_config = make_config(train_config.model, resolved["model"])
    epoch_dir = checkpoint.epoch_dirs(run_dir / "checkpoints").get(epoch)
    if epoch_dir is None:
        raise checkpoint.CheckpointError(
            f"{run_dir}: no checkpoint of epoch {epoch}, the epoch the trial selected")
    model = runner.default_build_model(train_config.model, model_config)
    checkpoint.load_model_weights(epoch_dir, model)
    return model, resolved


def figures_on_test(run_dir: Path, epoch: int, data_dir, progress: bool = False) -> dict:
    """Test examples, positives, AUC, gAUC and log loss of the trial's epoch ``epoch``."""
    model, resolved = restore_trial_model(run_dir, epoch)
    predict_fn = make_predict_fn(model, bool(resolved.get("jit_compile", False)))
    batch_size = int(resolved.get("effective_batch_size") or resolved["train"]["batch_size"])
    summary = runner.predict_split(predict_fn, data_dir, "test", batch_size,
                                   progress=progress).summary()
    return {k: summary[k] for k in FIGURES}


def report_selected(tuner, best: dict, data_dir, output: Path, progress: bool = False) -> dict:
    """Evaluate the selected trial (``best``, the trial table's top row) once on test and
    write ``output/selected_test.json``, labelled as such; returns what it wrote."""
    record = {
        "split": "test",
        "selected_on": "validation AUC of each trial's best epoch",
        "trial": best["trial"],
        "best_epoch": best["best_epoch"],
        "val_auc": best["val_auc"],
        **figures_on_test(tuner.run_dir(best["trial"]), int(best["best_epoch"]), data_dir,
                       progress),
    }
    write_json_atomic(output / RESULT_FILE, record)
    return record
