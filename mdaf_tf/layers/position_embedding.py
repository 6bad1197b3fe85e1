"""Learned position embeddings for sequences (BST)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mdaf_tf")
class PositionEmbedding(keras.layers.Layer):
    """Learned position embeddings P (max_length, d), as used by BST (arXiv:1905.06874).

    Input: (B, L, d) with L <= max_length. Output: P's last L rows broadcast to (B, L, d);
    add them to the input yourself (``x + PositionEmbedding(...)(x)``).

    Positions count back from the end of the sequence: sequences are left-padded with the
    most recent behaviour (or BST's target token) last, so the last position always gets
    row max_length - 1 whatever L is.

    Example:

    ```python
    import keras
    from mdaf_tf.layers import PositionEmbedding

    x = keras.random.normal((4, 10, 16))  # (batch, length, d)
    positions = PositionEmbedding(max_length=20)
    y = x + positions(x)
    print(y.shape)  # (4, 10, 16)
    ```
    """

    def __init__(self, max_length: int, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if int(max_length) < 1:
            raise ValueError(f"PositionEmbedding: max_length={max_length} must be >= 1")
        self.max_length = int(max_length)
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        length = input_shape[-2]
        if length is not None and length > self.max_length:
            raise ValueError(
                f"PositionEmbedding: sequence length {length} exceeds max_length "
                f"{self.max_length}"
            )
        self.position_embeddings = self.add_weight(
            name="position_embeddings",
            shape=(self.max_length, input_shape[-1]),
            initializer=self.initializer,
        )
        self.built = True

    def call(self, inputs):
        length = ops.shape(inputs)[-2]
        table = self.position_embeddings[self.max_length - length :]
        return ops.broadcast_to(ops.cast(table, inputs.dtype), ops.shape(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            max_length=self.max_length,
            initializer=keras.initializers.serialize(self.initializer),
        )
        return config
