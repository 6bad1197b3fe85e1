"""The training recipe: schedule, optimizer, exact metrics, checkpoints, reports and the runner.

Public API: the learning-rate schedule ``WarmupCosineDecay``, ``build_optimizer`` (AdamW with
that schedule, the recipe's weight decay and clip-norm), ``ClickTrainer`` (the model ``fit``
trains: logits, loss from logits) and ``compile_trainer`` (it, compiled with the recipe), the
Keras callbacks ``ExactEvaluation`` (exact val_auc / val_log_loss / val_gauc in the logs),
``EpochProgress``, ``GateStatistics``, ``MetricsLogger``, ``RunReport`` (test figures, report
and plots when training ends) and ``TrainingBackup`` (step-exact resume), ``SummaryWriter``
(TensorBoard), the exact metrics ``exact_auc``, ``group_auc`` and ``log_loss``,
``fill_model_config`` (a model config's vocabulary sizes from a dataset's metadata) and
``train(TrainRequest(...))`` / ``TrainResult`` (all of it, from a data directory).

Each name is imported on first access (PEP 562 ``__getattr__``): the command lines import
submodules such as ``mdaf_tf.data.source`` while parsing arguments, and the package
must not pull in TensorFlow for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mdaf_tf.lazy import lazy_attributes

if TYPE_CHECKING:  # what the lazy attributes below resolve to (for type checkers and IDEs)
    from mdaf_tf.evaluation.exact import ExactEvaluation
    from mdaf_tf.metrics import exact_auc, group_auc, log_loss
    from mdaf_tf.models.config import fill_model_config
    from mdaf_tf.training.backup import TrainingBackup
    from mdaf_tf.training.epoch_progress import EpochProgress
    from mdaf_tf.training.gate_statistics import GateStatistics
    from mdaf_tf.training.metrics_logger import MetricsLogger
    from mdaf_tf.training.optimizer import build_optimizer
    from mdaf_tf.training.request import TrainRequest
    from mdaf_tf.training.result import TrainResult
    from mdaf_tf.training.run_report import RunReport
    from mdaf_tf.training.runner import compile_trainer, train
    from mdaf_tf.training.schedule import WarmupCosineDecay
    from mdaf_tf.training.tensorboard import SummaryWriter
    from mdaf_tf.training.trainer import ClickTrainer

# public name -> module, imported on first attribute access.
_LAZY = {
    "ClickTrainer": "mdaf_tf.training.trainer",
    "EpochProgress": "mdaf_tf.training.epoch_progress",
    "ExactEvaluation": "mdaf_tf.evaluation.exact",
    "GateStatistics": "mdaf_tf.training.gate_statistics",
    "MetricsLogger": "mdaf_tf.training.metrics_logger",
    "SummaryWriter": "mdaf_tf.training.tensorboard",
    "RunReport": "mdaf_tf.training.run_report",
    "TrainRequest": "mdaf_tf.training.request",
    "TrainResult": "mdaf_tf.training.result",
    "TrainingBackup": "mdaf_tf.training.backup",
    "WarmupCosineDecay": "mdaf_tf.training.schedule",
    "build_optimizer": "mdaf_tf.training.optimizer",
    "compile_trainer": "mdaf_tf.training.runner",
    "exact_auc": "mdaf_tf.metrics",
    "fill_model_config": "mdaf_tf.models.config",
    "group_auc": "mdaf_tf.metrics",
    "log_loss": "mdaf_tf.metrics",
    "train": "mdaf_tf.training.runner",
}

__all__ = [
    "ClickTrainer",
    "EpochProgress",
    "ExactEvaluation",
    "GateStatistics",
    "MetricsLogger",
    "SummaryWriter",
    "RunReport",
    "TrainRequest",
    "TrainResult",
    "TrainingBackup",
    "WarmupCosineDecay",
    "build_optimizer",
    "compile_trainer",
    "exact_auc",
    "fill_model_config",
    "group_auc",
    "log_loss",
    "train",
]

__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY)
