"""DIN's local activation unit: target attention over the behaviour history."""

from __future__ import annotations

import keras
from keras import ops

from mdaf_tf.layers._initializers import fresh
from mdaf_tf.layers.dice import Dice
from mdaf_tf.precision import float32_at_least


@keras.saving.register_keras_serializable(package="mdaf_tf")
class TargetAttention(keras.layers.Layer):
    """Local activation unit of DIN (Zhou et al. 2018, "Deep Interest Network for
    Click-Through Rate Prediction", arXiv:1706.06978).

    For a query q (the target's embedding, (B, d)) and keys k_1..k_T (the history tokens,
    (B, T, d)) with a (B, T) bool padding mask m (True = valid)::

        u_t = [q; k_t; q - k_t; q * k_t]                               (B, T, 4d)
        a_t = Dense_1(act(Dense_{h_n}( ... act(Dense_{h_1}(u_t)))))     (B, T), no output act
        a_t = 0 where m_t is false
        out = sum_t a_t k_t                                             (B, d)

    The weights are not normalised (DIN's "the sum of a_t is not constrained to 1"); with
    ``use_softmax`` they are softmax(a) over the valid positions instead (a row with no
    valid position gets out = 0). ``act`` is Dice (FuxiCTR's default for DIN's attention;
    its batch moments skip padded positions) or any Keras activation. Padded keys never
    reach the output, whatever their values.

    Inputs: ``query`` (B, d), ``keys`` (B, T, d), optional ``padding_mask`` (B, T) bool.
    Output: (B, d).

    Args:
        hidden_units: widths of the attention MLP's hidden layers ((80, 40), as in DIN).
        activation: ``"dice"`` or a Keras activation for the hidden layers.
        use_softmax: normalise the weights with a masked softmax (False, as in DIN and
            FuxiCTR's ``din_use_softmax``).

    Example:

    ```python
    import keras
    import numpy as np
    from mdaf_tf.layers import TargetAttention

    target = keras.random.normal((4, 16))  # (batch, d)
    history = keras.random.normal((4, 10, 16))  # (batch, length, d), left-padded
    mask = np.arange(10) >= np.array([[0], [2], [5], [8]])  # True at valid positions
    attention = TargetAttention(hidden_units=(80, 40))
    pooled = attention(target, history, padding_mask=mask)
    print(pooled.shape)  # (4, 16)
    ```
    """

    def __init__(
        self,
        hidden_units=(80, 40),
        activation="dice",
        use_softmax: bool = False,
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.use_dice = isinstance(activation, str) and activation.lower() == "dice"
        self.activation = None if self.use_dice else keras.activations.get(activation)
        self.use_softmax = bool(use_softmax)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

        def dense(units, name):
            return keras.layers.Dense(
                units,
                kernel_initializer=fresh(self.kernel_initializer),
                kernel_regularizer=self.kernel_regularizer,
                dtype=self.dtype_policy,
                name=name,
            )

        self.dense_layers = [dense(u, f"dense_{i}") for i, u in enumerate(self.hidden_units)]
        self.dice_layers = (
            [Dice(dtype=self.dtype_policy, name=f"dice_{i}") for i in range(len(self.hidden_units))]
            if self.use_dice
            else []
        )
        self.score_layer = dense(1, "score")

    def build(self, query_shape, keys_shape, padding_mask_shape=None):
        if query_shape[-1] != keys_shape[-1]:
            raise ValueError(
                f"TargetAttention: query width {query_shape[-1]} != key width {keys_shape[-1]}"
            )
        shape = (*tuple(keys_shape)[:-1], 4 * keys_shape[-1])
        for i, layer in enumerate(self.dense_layers):
            layer.build(shape)
            shape = (*shape[:-1], self.hidden_units[i])
            if self.dice_layers:
                self.dice_layers[i].build(shape)
        self.score_layer.build(shape)
        self.built = True

    def call(self, query, keys, padding_mask=None, training=None):
        q = ops.broadcast_to(ops.expand_dims(query, 1), ops.shape(keys))
        x = ops.concatenate([q, keys, q - keys, q * keys], axis=-1)  # (B, T, 4d)
        mask = None if padding_mask is None else ops.cast(padding_mask, "bool")
        for i, layer in enumerate(self.dense_layers):
            x = layer(x)
            if self.dice_layers:
                x = self.dice_layers[i](x, padding_mask=mask, training=training)
            else:
                x = self.activation(x)
        scores = ops.squeeze(self.score_layer(x), axis=-1)  # (B, T)
        if mask is not None:
            keys = ops.where(mask[..., None], keys, ops.zeros_like(keys))
            if self.use_softmax:
                scores = ops.cast(scores, float32_at_least(scores.dtype))
                scores = ops.where(mask, scores, ops.full_like(scores, -1e9))
            else:
                scores = ops.where(mask, scores, ops.zeros_like(scores))
        if self.use_softmax:
            # In float32 under a mixed policy: -1e9 overflows float16, and bfloat16's
            # 8-bit mantissa would blur the normalisation.
            scores = ops.softmax(ops.cast(scores, float32_at_least(scores.dtype)), axis=-1)
            scores = ops.cast(scores, keys.dtype)
            if mask is not None:  # all-padding rows: uniform weights over zeroed keys
                scores = ops.where(mask, scores, ops.zeros_like(scores))
        return ops.sum(scores[..., None] * keys, axis=1)

    def compute_output_shape(self, query_shape, keys_shape, padding_mask_shape=None):
        return (query_shape[0], keys_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_units=list(self.hidden_units),
            activation="dice" if self.use_dice else keras.activations.serialize(self.activation),
            use_softmax=self.use_softmax,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
        )
        return config
