"""Early stopping on a metric to maximise, with a state that checkpoints can save."""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass
class EarlyStopping:
    """Stop after ``patience`` epochs without improvement of a maximised metric.

    ``update`` returns True when the epoch is a new best (its weights are the ones to
    restore). Epochs are 1-based. A NaN metric never improves.
    """

    patience: int = 3
    min_delta: float = 0.0
    best_value: float = -math.inf
    best_epoch: int = 0
    wait: int = 0
    stopped: bool = False

    def update(self, epoch: int, value: float) -> bool:
        improved = not math.isnan(value) and value > self.best_value + self.min_delta
        if improved:
            self.best_value = float(value)
            self.best_epoch = epoch
            self.wait = 0
        else:
            self.wait += 1
            if self.patience > 0 and self.wait >= self.patience:
                self.stopped = True
        return improved

    def state(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_state(cls, state: dict) -> EarlyStopping:
        return cls(**state)
