"""``RegularisationHyperModel``: a Keras Tuner HyperModel whose "model" is a training config.

Training goes through ``mdaf_tf.training.runner.train`` (the same recipe as ``python -m
mdaf_tf.train``), so ``build(hp)`` declares the search space on ``hp`` and returns the
``(model config, TrainConfig)`` pair of the trial: the base configs with the sampled dropout,
weight decay, label smoothing (and learning rate, embedding L2 penalty) put in.
"""

from __future__ import annotations

import dataclasses

import keras_tuner as kt

from mdaf_tf.config import TrainConfig
from mdaf_tf.models.config import ModelConfig
from mdaf_tf.tuning.search_space import MODEL_FIELDS, TRAIN_FIELDS, Bounds


class RegularisationHyperModel(kt.HyperModel):
    def __init__(self, model_config: ModelConfig, train_config: TrainConfig,
                 space: dict[str, Bounds]):
        super().__init__(name="regularisation", tunable=True)
        self.model_config = model_config
        self.train_config = train_config
        self.space = dict(space)

    def build(self, hp: kt.HyperParameters) -> tuple[ModelConfig, TrainConfig]:
        values = {
            name: hp.Float(name, b.low, b.high, sampling="log" if b.log else "linear")
            for name, b in self.space.items()
        }
        return self.configs(values)

    def configs(self, values: dict) -> tuple[ModelConfig, TrainConfig]:
        """The base configs with the hyperparameter ``values`` (by field name) applied."""
        model_values = {k: float(v) for k, v in values.items() if k in MODEL_FIELDS}
        train_values = {k: float(v) for k, v in values.items() if k in TRAIN_FIELDS}
        return (
            dataclasses.replace(self.model_config, **model_values),
            dataclasses.replace(self.train_config, **train_values),
        )
