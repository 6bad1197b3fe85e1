"""Dice: DIN's data-adaptive activation."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mdaf_tf")
class Dice(keras.layers.Layer):
    """Dice activation (Zhou et al. 2018, "Deep Interest Network for Click-Through Rate
    Prediction", arXiv:1706.06978, eq. 9), per unit of the last axis::

        p(s) = sigmoid((s - E[s]) / sqrt(Var[s] + epsilon))
        f(s) = p(s) * s + alpha * (1 - p(s)) * s

    E[s] and Var[s] are the batch moments in training (over every axis but the last) and
    their moving averages (``moving = momentum * moving + (1 - momentum) * batch``) at
    inference, i.e. a BatchNormalization without scale and offset; alpha starts at 0.
    ``epsilon`` 1e-9 and ``momentum`` 0.99 follow DIN's and FuxiCTR's Dice.

    An optional ``padding_mask`` (the input's shape without the last axis, True = valid)
    leaves the masked rows out of the batch moments (FuxiCTR's Dice includes padded history
    positions in them); the output is computed at every row.

    Input: (..., h), optional ``padding_mask`` (...) bool. Output: (..., h).

    Example:

    ```python
    import keras
    import numpy as np
    from mdaf_tf.layers import Dice

    x = keras.random.normal((4, 10, 8))
    # (batch, length) True at valid positions: histories of 10, 7, 5 and 1 behaviours.
    mask = np.arange(10) >= np.array([[0], [3], [5], [9]])
    dice = Dice()
    y = dice(x, padding_mask=mask, training=True)
    print(y.shape)  # (4, 10, 8)
    ```
    """

    def __init__(self, epsilon: float = 1e-9, momentum: float = 0.99, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.momentum = float(momentum)
        self.normalization = keras.layers.BatchNormalization(
            axis=-1,
            momentum=self.momentum,
            epsilon=self.epsilon,
            center=False,
            scale=False,
            dtype=self.dtype_policy,
            name="normalization",
        )

    def build(self, inputs_shape, padding_mask_shape=None):
        units = inputs_shape[-1]
        if units is None:
            raise ValueError("Dice: the last axis must be known")
        self.normalization.build(inputs_shape)
        self.alpha = self.add_weight(name="alpha", shape=(units,), initializer="zeros")
        self.built = True

    def call(self, inputs, padding_mask=None, training=None):
        p = ops.sigmoid(self.normalization(inputs, training=training, mask=padding_mask))
        p = ops.cast(p, inputs.dtype)
        return p * inputs + self.alpha * (1.0 - p) * inputs

    def compute_output_shape(self, inputs_shape, padding_mask_shape=None):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(epsilon=self.epsilon, momentum=self.momentum)
        return config
