"""One post-norm transformer encoder layer over a behaviour sequence (BST)."""

from __future__ import annotations

import keras
from keras import ops

from mdaf_tf.layers._initializers import fresh


@keras.saving.register_keras_serializable(package="mdaf_tf")
class TransformerEncoder(keras.layers.Layer):
    """Transformer encoder layer of BST (Chen et al. 2019, arXiv:1905.06874).

    With S (B, L, d) and a (B, L) bool padding mask (True = valid)::

        S' = LayerNorm(S + Dropout(MultiHeadAttention(S, S, S, key mask)))
        F  = LayerNorm(S' + Dropout(Dense_d(Dropout(act(Dense_ffn(S'))))))

    act is LeakyReLU as in the BST paper unless given. Padded positions are never
    attended to (attention mask = padding_mask broadcast over queries); outputs at padded
    positions are computed but meaningless -- pool with the mask.

    Input: (B, L, d), optional ``padding_mask`` (B, L) bool. Output: (B, L, d).

    Args:
        num_heads: attention heads (8); key_dim = d // num_heads.
        intermediate_dim: FFN width (4 * d when None).
        dropout: dropout rate (attention weights, both residual branches, inside the FFN).
        activation: FFN activation ("leaky_relu").
        layer_norm_epsilon: 1e-6.

    Example:

    ```python
    import keras
    import numpy as np
    from mdaf_tf.layers import TransformerEncoder

    x = keras.random.normal((4, 10, 16))  # (batch, length, d)
    mask = np.arange(10) >= np.array([[0], [2], [5], [8]])  # True at valid positions
    encoder = TransformerEncoder(num_heads=2, dropout=0.1)
    y = encoder(x, padding_mask=mask)
    print(y.shape)  # (4, 10, 16)
    ```
    """

    def __init__(
        self,
        num_heads: int = 8,
        intermediate_dim: int | None = None,
        dropout: float = 0.1,
        activation="leaky_relu",
        layer_norm_epsilon: float = 1e-6,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.intermediate_dim = None if intermediate_dim is None else int(intermediate_dim)
        self.dropout = float(dropout)
        self.activation = keras.activations.get(activation)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        dim = input_shape[-1]
        if dim % self.num_heads:
            raise ValueError(
                f"TransformerEncoder: width {dim} is not divisible by num_heads={self.num_heads}"
            )
        ffn_dim = self.intermediate_dim or 4 * dim
        common = dict(dtype=self.dtype_policy)
        self.attention = keras.layers.MultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=dim // self.num_heads,
            dropout=self.dropout,
            kernel_initializer=fresh(self.kernel_initializer),
            name="attention",
            **common,
        )
        self.attention.build(input_shape, input_shape)
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="attention_norm", **common
        )
        self.attention_norm.build(input_shape)
        self.ffn_hidden = keras.layers.Dense(
            ffn_dim, kernel_initializer=fresh(self.kernel_initializer), name="ffn_hidden", **common
        )
        self.ffn_hidden.build(input_shape)
        self.ffn_output = keras.layers.Dense(
            dim, kernel_initializer=fresh(self.kernel_initializer), name="ffn_output", **common
        )
        self.ffn_output.build((*input_shape[:-1], ffn_dim))
        self.ffn_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="ffn_norm", **common
        )
        self.ffn_norm.build(input_shape)
        self.dropout_layer = keras.layers.Dropout(self.dropout, **common)
        self.built = True

    def call(self, inputs, padding_mask=None, training=None):
        attention_mask = None
        if padding_mask is not None:
            keys = ops.expand_dims(ops.cast(padding_mask, "bool"), axis=1)  # (B, 1, L)
            length = ops.shape(inputs)[1]
            attention_mask = ops.broadcast_to(keys, (ops.shape(inputs)[0], length, length))
        attended = self.attention(
            inputs, inputs, inputs, attention_mask=attention_mask, training=training
        )
        x = self.attention_norm(inputs + self.dropout_layer(attended, training=training))
        hidden = self.dropout_layer(self.activation(self.ffn_hidden(x)), training=training)
        ffn = self.dropout_layer(self.ffn_output(hidden), training=training)
        return self.ffn_norm(x + ffn)

    def compute_output_shape(self, inputs_shape, padding_mask_shape=None):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            intermediate_dim=self.intermediate_dim,
            dropout=self.dropout,
            activation=keras.activations.serialize(self.activation),
            layer_norm_epsilon=self.layer_norm_epsilon,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
