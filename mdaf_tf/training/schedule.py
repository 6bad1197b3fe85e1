"""Learning rate per optimizer step: linear warmup from 0, then cosine decay to 0.

    lr(s) = peak * s / W                                        for s < W
    lr(s) = peak * 0.5 * (1 + cos(pi * min(s - W, D) / D))      for s >= W, D = T - W

with W = warmup steps and T = total steps (the last step of the last epoch). When the warmup
covers all of training (D = 0) the rate stays at ``peak`` after it.
"""

from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mdaf_tf")
class WarmupCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Warmup + cosine schedule computed from the optimizer's step counter."""

    def __init__(self, peak_learning_rate: float, warmup_steps: int, total_steps: int):
        if warmup_steps < 0 or total_steps <= 0:
            raise ValueError(
                f"need warmup_steps >= 0 and total_steps > 0, got {warmup_steps}, {total_steps}"
            )
        self.peak_learning_rate = float(peak_learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak = self.peak_learning_rate
        warmup = float(self.warmup_steps)
        decay = float(max(self.total_steps - self.warmup_steps, 0))
        warm = peak * step / max(warmup, 1.0)
        if decay == 0:
            cosine = ops.full_like(step, peak)
        else:
            progress = ops.minimum(ops.maximum(step - warmup, 0.0), decay) / decay
            cosine = peak * 0.5 * (1.0 + ops.cos(math.pi * progress))
        return ops.where(step < warmup, warm, cosine)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
        }
