"""``TrainResult``: what a training run returns (and its report describes)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras

from mdaf_tf.config import TrainConfig
from mdaf_tf.evaluation.predictions import Predictions
from mdaf_tf.models.config import ModelConfig


@dataclasses.dataclass
class TrainResult:
    output_dir: Path
    data_dir: Path
    model: keras.Model  # with the best epoch's weights restored
    model_config: ModelConfig  # vocabulary sizes filled in from the data
    train_config: TrainConfig
    history: list[dict]  # one row per epoch, METRICS_COLUMNS
    best_epoch: int
    best: dict  # Predictions.summary() of the best epoch on validation (what selects it)
    final: dict  # {"auc", "log_loss"} of the last epoch on validation
    stopped_early: bool
    parameters: dict[str, int]
    metadata: dict
    val_predictions: Predictions  # of the restored (best) model
    jit_compile: bool
    export_path: Path | None = None
    skipped_shards: dict | None = None  # {path: reason} left out by skip_corrupt_shards
    # Predictions.summary() of the restored (best-validation) weights on the test split,
    # computed once after training; None with evaluate_test=False
    test: dict | None = None
    test_predictions: Predictions | None = None
