"""The training recipe: schedule, optimizer, exact metrics, checkpoints, reports and the runner.

Public API: the learning-rate schedule ``WarmupCosineDecay``, ``build_optimizer`` (AdamW with
that schedule, the recipe's weight decay and clip-norm), the custom loop's
callbacks ``EarlyStopping``, ``ProgressBar`` and ``SummaryWriter`` (TensorBoard), the exact
metrics ``exact_auc``, ``group_auc`` and ``log_loss``, and ``train`` / ``TrainResult``.

Each name is imported on first access (PEP 562 ``__getattr__``): the command lines import
submodules such as ``mdaf_tf.training.data_source`` while parsing arguments, and the package
must not pull in TensorFlow for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mdaf_tf.lazy import lazy_attributes

if TYPE_CHECKING:  # what the lazy attributes below resolve to (for type checkers and IDEs)
    from mdaf_tf.training.early_stopping import EarlyStopping
    from mdaf_tf.training.metrics import exact_auc, group_auc, log_loss
    from mdaf_tf.training.optimizer import build_optimizer
    from mdaf_tf.training.progress import ProgressBar
    from mdaf_tf.training.runner import TrainResult, train
    from mdaf_tf.training.schedule import WarmupCosineDecay
    from mdaf_tf.training.tensorboard import SummaryWriter

# public name -> module, imported on first attribute access.
_LAZY = {
    "EarlyStopping": "mdaf_tf.training.early_stopping",
    "ProgressBar": "mdaf_tf.training.progress",
    "SummaryWriter": "mdaf_tf.training.tensorboard",
    "TrainResult": "mdaf_tf.training.runner",
    "WarmupCosineDecay": "mdaf_tf.training.schedule",
    "build_optimizer": "mdaf_tf.training.optimizer",
    "exact_auc": "mdaf_tf.training.metrics",
    "group_auc": "mdaf_tf.training.metrics",
    "log_loss": "mdaf_tf.training.metrics",
    "train": "mdaf_tf.training.runner",
}

__all__ = [
    "EarlyStopping",
    "ProgressBar",
    "SummaryWriter",
    "TrainResult",
    "WarmupCosineDecay",
    "build_optimizer",
    "exact_auc",
    "group_auc",
    "log_loss",
    "train",
]

__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY)
