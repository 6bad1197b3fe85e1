"""``Mamba4RecEncoder``: the Mamba4Rec sequence encoder (Liu et al., arXiv:2403.03900).

Input ``tokens`` (batch, length, d_in) and ``mask`` (batch, length), True at valid positions
(histories are left padded). With ``h`` of width ``d_model``::

    h = tokens W_p + b_p                    (only when d_in != d_model; built from the input)
    h = LayerNorm(Dropout(h))
    repeat num_layers times:
        h = LayerNorm(h + Dropout(MambaBlock(h, mask)))
        h = LayerNorm(h + Dropout(W_2 Dropout(GELU(W_1 h + b_1)) + b_2))  (W_1: d -> m d)
    pooled = mean of h over valid positions      (pooling="mean", MDAF; zeros for an empty row)
           | h at the last valid position        (pooling="last", Mamba4Rec; zeros if empty)

Output (batch, d_model). Mamba4Rec skips the Mamba residual when it has a single layer; this
encoder always keeps it. Only the Mamba block mixes positions and it ignores padded ones, so
the pooled output does not depend on the padding length or on the padded values.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from mdaf_tf.layers.mamba_block import MambaBlock

POOLINGS = ("mean", "last")


@keras.saving.register_keras_serializable(package="mdaf_tf")
class Mamba4RecEncoder(keras.layers.Layer):
    """Mamba4Rec encoder with masked pooling; (B, L, d_in) + mask (B, L) -> (B, d_model).

    Args:
        d_model: hidden width; inputs of another width get a learned Dense projection.
        num_layers: number of (Mamba, FFN) layers.
        d_state, d_conv, expand: passed to :class:`MambaBlock`.
        ffn_multiplier: FFN hidden width is ``ffn_multiplier * d_model``.
        dropout: rate of every dropout (embedding, after Mamba, inside and after the FFN).
        pooling: ``"mean"`` (masked mean) or ``"last"`` (last valid position).
        scan: selective-scan implementation name, passed to every :class:`MambaBlock`.
        layer_norm_epsilon: epsilon of every LayerNorm.
        seed: optional integer seed for initializers and dropout.

    Call: ``encoder(tokens, mask=None, training=None)``; without a mask every position is valid.

    Example:

    ```python
    import keras
    import numpy as np
    from mdaf_tf.layers import Mamba4RecEncoder

    tokens = keras.random.normal((4, 10, 24))  # (batch, length, d_in), left-padded
    mask = np.arange(10) >= np.array([[0], [2], [5], [8]])  # True at valid positions
    encoder = Mamba4RecEncoder(d_model=32, num_layers=1, pooling="mean")
    pooled = encoder(tokens, mask=mask)
    print(pooled.shape)  # (4, 32)
    ```
    """

    def __init__(
        self,
        d_model=128,
        num_layers=2,
        d_state=16,
        d_conv=4,
        expand=2,
        ffn_multiplier=4,
        dropout=0.25,
        pooling="mean",
        scan="auto",
        layer_norm_epsilon=1e-6,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if pooling not in POOLINGS:
            raise ValueError(f"Mamba4RecEncoder pooling must be one of {POOLINGS}, got {pooling!r}")
        self.d_model = int(d_model)
        self.num_layers = int(num_layers)
        self.d_state = int(d_state)
        self.d_conv = int(d_conv)
        self.expand = int(expand)
        self.ffn_multiplier = int(ffn_multiplier)
        self.dropout = float(dropout)
        self.pooling = pooling
        self.scan = scan
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.seed = seed

        def sub_seed(offset):
            return None if seed is None else seed + 100 * offset

        def dropout_layer(offset, name):
            return keras.layers.Dropout(self.dropout, seed=sub_seed(offset),
                                        dtype=self.dtype_policy, name=name)

        def layer_norm(name):
            return keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon,
                                                   dtype=self.dtype_policy, name=name)

        self.input_projection = None  # created in build() when d_in != d_model
        self.embedding_dropout = dropout_layer(1, "embedding_dropout")
        self.embedding_norm = layer_norm("embedding_norm")
        self.mamba_blocks, self.mamba_dropouts, self.mamba_norms = [], [], []
        self.ffn_in, self.ffn_inner_dropouts, self.ffn_out = [], [], []
        self.ffn_dropouts, self.ffn_norms = [], []
        for i in range(self.num_layers):
            self.mamba_blocks.append(
                MambaBlock(
                    self.d_model,
                    d_state=self.d_state,
                    d_conv=self.d_conv,
                    expand=self.expand,
                    scan=scan,
                    seed=sub_seed(10 + i),
                    dtype=self.dtype_policy,
                    name=f"mamba_{i}",
                )
            )
            self.mamba_dropouts.append(dropout_layer(20 + i, f"mamba_dropout_{i}"))
            self.mamba_norms.append(layer_norm(f"mamba_norm_{i}"))
            self.ffn_in.append(
                keras.layers.Dense(
                    self.ffn_multiplier * self.d_model,
                    activation="gelu",
                    kernel_initializer=keras.initializers.GlorotUniform(sub_seed(30 + i)),
                    dtype=self.dtype_policy,
                    name=f"ffn_in_{i}",
                )
            )
            self.ffn_inner_dropouts.append(dropout_layer(40 + i, f"ffn_inner_dropout_{i}"))
            self.ffn_out.append(
                keras.layers.Dense(
                    self.d_model,
                    kernel_initializer=keras.initializers.GlorotUniform(sub_seed(50 + i)),
                    dtype=self.dtype_policy,
                    name=f"ffn_out_{i}",
                )
            )
            self.ffn_dropouts.append(dropout_layer(60 + i, f"ffn_dropout_{i}"))
            self.ffn_norms.append(layer_norm(f"ffn_norm_{i}"))

    def build(self, input_shape):
        d_in = input_shape[-1]
        if d_in is None:
            raise ValueError("Mamba4RecEncoder needs a static token width (last input axis)")
        hidden_shape = (*input_shape[:-1], self.d_model)
        if d_in != self.d_model:
            self.input_projection = keras.layers.Dense(
                self.d_model,
                kernel_initializer=keras.initializers.GlorotUniform(self.seed),
                dtype=self.dtype_policy,
                name="input_projection",
            )
            self.input_projection.build(input_shape)
        self.embedding_norm.build(hidden_shape)
        ffn_shape = (*input_shape[:-1], self.ffn_multiplier * self.d_model)
        for i in range(self.num_layers):
            self.mamba_blocks[i].build(hidden_shape)
            self.mamba_norms[i].build(hidden_shape)
            self.ffn_in[i].build(hidden_shape)
            self.ffn_out[i].build(ffn_shape)
            self.ffn_norms[i].build(hidden_shape)

    def call(self, tokens, mask=None, training=None):
        h = tokens
        if self.input_projection is not None:
            h = self.input_projection(h)
        h = self.embedding_norm(self.embedding_dropout(h, training=training))
        for i in range(self.num_layers):
            mixed = self.mamba_blocks[i](h, mask=mask)
            h = self.mamba_norms[i](h + self.mamba_dropouts[i](mixed, training=training))
            ffn = self.ffn_in[i](h)
            ffn = self.ffn_out[i](self.ffn_inner_dropouts[i](ffn, training=training))
            h = self.ffn_norms[i](h + self.ffn_dropouts[i](ffn, training=training))
        return self._pool(h, mask)

    def _pool(self, h, mask):
        if mask is None:
            return tf.reduce_mean(h, axis=1) if self.pooling == "mean" else h[:, -1, :]
        if self.pooling == "mean":
            valid = tf.cast(mask, tf.bool)
            total = tf.reduce_sum(tf.where(valid[..., None], h, tf.zeros_like(h)), axis=1)
            count = tf.reduce_sum(tf.cast(valid, h.dtype), axis=1, keepdims=True)
            return total / tf.maximum(count, 1.0)
        # Last valid position (L - 1 under left padding); an empty row pools to zeros.
        length = h.shape[1] if h.shape[1] is not None else tf.shape(h)[1]
        positions = tf.range(1, length + 1, dtype=tf.int32)[None, :]
        last = tf.reduce_max(positions * tf.cast(mask, tf.int32), axis=1)  # 0 when empty
        picked = tf.gather(h, tf.maximum(last - 1, 0), axis=1, batch_dims=1)
        return picked * tf.cast(last > 0, h.dtype)[:, None]

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.d_model)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "d_model": self.d_model,
                "num_layers": self.num_layers,
                "d_state": self.d_state,
                "d_conv": self.d_conv,
                "expand": self.expand,
                "ffn_multiplier": self.ffn_multiplier,
                "dropout": self.dropout,
                "pooling": self.pooling,
                "scan": self.scan,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "seed": self.seed,
            }
        )
        return config
