"""``TrainRequest``: everything one training run is asked to do, for ``runner.train``.

Example:

```python
from mdaf_tf.config import TrainConfig
from mdaf_tf.models import make_config
from mdaf_tf.training import TrainRequest, train

result = train(TrainRequest(make_config("dnn"), TrainConfig(model="dnn", epochs=3),
                            "data/synthetic", "runs/dnn", export_dir="saved_models/dnn"))
print(result.test["auc"])
```
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from mdaf_tf.config import TrainConfig
from mdaf_tf.models.config import ModelConfig


@dataclasses.dataclass
class TrainRequest:
    """One run: what to train, on what, where, and how the caller follows it."""

    model_config: ModelConfig  # the model's own config (or a ModelConfig: its fields)
    train_config: TrainConfig  # train_config.model names the model
    data_dir: Path | str  # a pipeline's output
    output_dir: Path | str  # the run directory
    # Continue from the latest checkpoint in output_dir (fresh, saying so, if there is none).
    resume: bool = False
    # Export the best model there for TF Serving (None: no export), its graph computing in
    # serving_precision (None: the model's own).
    export_dir: Path | str | None = None
    serving_precision: str | None = None
    # False (the tuner's trials): the test split is never opened.
    evaluate_test: bool = True
    # Leave out corrupt shards (reported) instead of stopping with an error naming them.
    skip_corrupt_shards: bool = False
    # (name, config) -> keras.Model in place of the registry's (tests, custom models).
    build_model: Callable | None = None
    # What the caller sees: per-step progress bars, report.md and plots, the log lines,
    # each epoch's metrics row (the tuner reports from it) and Keras callbacks of its own,
    # added to fit's (they see val_auc, val_log_loss and val_gauc in the epoch logs).
    progress: bool = True
    write_reports: bool = True
    log: Callable[[str], None] = print
    on_epoch_end: Callable[[int, dict], None] | None = None
    callbacks: Sequence = ()

    def __post_init__(self):
        self.data_dir, self.output_dir = Path(self.data_dir), Path(self.output_dir)
        if self.export_dir is not None:
            self.export_dir = Path(self.export_dir)
