"""The size rule: batch size, learning rate and warmup chosen from the training split's size.

``TrainConfig.batch_size``, ``learning_rate`` and ``warmup_epochs`` default to ``None``,
which means "chosen by this rule"; a value given in ``--config`` or on the command line is
kept. With ``n`` training examples and ``E`` scheduled epochs:

    batch  = the largest power of two in [256, 2048] with n / batch >= 500 steps an epoch
    lr     = 3e-4 * (2048 / batch) ** (log(10/3) / log 8)  (1e-3 at batch 256, 3e-4 at 2048)
    warmup = 0.2 * E epochs                                (the seed's 2 of 10)

so a thesis-sized split (>= 1,024,000 examples) gets the seed's batch 2048 and lr 3e-4, and a
split of up to 256k examples gets batch 256 and lr 1e-3 with 500 or more optimizer steps an
epoch where the seed's recipe would give it a few dozen (README, "The size rule", and
``studies/size_rule/size_rule.py`` have the measurements). The learning rate follows the batch size
the rule or the user chose, clipped to [3e-4, 1e-3]. The schedule itself is in optimizer steps
(``schedule.WarmupCosineDecay``): warmup over the first 20% of the scheduled steps, cosine
decay over the rest.
"""

from __future__ import annotations

import dataclasses
import math

from mdaf_tf.config import TrainConfig

MIN_BATCH, MAX_BATCH = 256, 2048
MIN_STEPS_PER_EPOCH = 500
SEED_LEARNING_RATE = 3e-4  # at MAX_BATCH
SMALL_DATA_LEARNING_RATE = 1e-3  # at MIN_BATCH (studies/size_rule/results)
WARMUP_FRACTION = 0.2
RULE = ("batch: largest power of two in [256, 2048] leaving >= 500 steps an epoch; "
        "lr: 3e-4 * (2048 / batch) ** (log(10/3) / log 8), in [3e-4, 1e-3]; "
        "warmup: 20% of the scheduled epochs")


def batch_size_for(train_examples: int) -> int:
    """The rule's batch size for a training split of ``train_examples``."""
    batch = MAX_BATCH
    while batch > MIN_BATCH and train_examples / batch < MIN_STEPS_PER_EPOCH:
        batch //= 2
    return batch


def learning_rate_for(batch_size: int) -> float:
    """Log-linear in the batch size between (256, 1e-3) and (2048, 3e-4), clipped there."""
    slope = (math.log(SMALL_DATA_LEARNING_RATE / SEED_LEARNING_RATE)
             / math.log(MAX_BATCH / MIN_BATCH))
    rate = SEED_LEARNING_RATE * (MAX_BATCH / batch_size) ** slope
    return float(min(max(rate, SEED_LEARNING_RATE), SMALL_DATA_LEARNING_RATE))


def _recorded_rate(batch_size: int) -> float:
    """``learning_rate_for`` to 6 significant digits: the value config.json records, used by
    ``resolve`` and ``schedule_fields`` alike so that both train with the same rate."""
    return float(f"{learning_rate_for(batch_size):.6g}")


def warmup_epochs_for(epochs: int) -> float:
    """The rule's warmup: 20% of the scheduled epochs (rounded to keep config.json clean)."""
    return round(WARMUP_FRACTION * epochs, 6)


def resolve(config: TrainConfig, train_examples: int) -> tuple[TrainConfig, dict]:
    """``config`` with every field left to the rule filled in, and what the rule chose (the
    ``size_rule`` entry of ``config.json``)."""
    chosen = {}
    if config.batch_size is None:
        chosen["batch_size"] = batch_size_for(train_examples)
    batch = chosen.get("batch_size", config.batch_size)
    if config.learning_rate is None:
        chosen["learning_rate"] = _recorded_rate(batch)
    if config.warmup_epochs is None:
        chosen["warmup_epochs"] = warmup_epochs_for(config.epochs)
    resolved = dataclasses.replace(config, **chosen)
    return resolved, {"rule": RULE, "train_examples": train_examples, "chose": chosen}


def schedule_fields(config: TrainConfig) -> tuple[float, float]:
    """(learning rate, warmup epochs) of ``config``, the rule's where it leaves them to it
    (the rule's rate needs ``batch_size``, which ``resolve`` sets from the split's size)."""
    rate, warmup = config.learning_rate, config.warmup_epochs
    if rate is None:
        if config.batch_size is None:
            raise ValueError("batch_size is unset: resolve the config against the training "
                             "split's size first (mdaf_tf.training.recipe.resolve)")
        rate = _recorded_rate(config.batch_size)
    return rate, warmup_epochs_for(config.epochs) if warmup is None else warmup
