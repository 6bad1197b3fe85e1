"""AutoInt's interacting layer: multi-head self-attention over feature fields."""

from __future__ import annotations

import keras
from keras import ops

from mdaf_tf.layers._initializers import fresh


@keras.saving.register_keras_serializable(package="mdaf_tf")
class FieldSelfAttention(keras.layers.Layer):
    """AutoInt interacting layer (Song et al. 2019, arXiv:1810.11921).

    For fields e_1..e_F (input X of shape (B, F, d)) and each head h::

        Q_h = X W_Q^h,  K_h = X W_K^h,  V_h = X W_V^h          (B, F, a)
        A_h = softmax(Q_h K_h^T [/ sqrt(a) if use_scale])      (B, F, F), over the last axis
        O   = concat_h(A_h V_h)                                (B, F, heads * a)
        out = ReLU(O + X W_res)                                (W_res only if use_residual)

    No biases, no output projection (as in the paper; the paper's dot product is unscaled).

    Input: (B, F, d). Output: (B, F, num_heads * attention_dim).

    Example:

    ```python
    import keras
    from mdaf_tf.layers import FieldSelfAttention

    fields = keras.random.normal((4, 5, 16))  # (batch, fields, d)
    attention = FieldSelfAttention(num_heads=2, attention_dim=8)
    y = attention(fields)
    print(y.shape)  # (4, 5, 16)
    ```
    """

    def __init__(
        self,
        num_heads: int = 2,
        attention_dim: int = 32,
        use_residual: bool = True,
        use_scale: bool = False,
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.attention_dim = int(attention_dim)
        self.use_residual = bool(use_residual)
        self.use_scale = bool(use_scale)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        dim = input_shape[-1]
        shape = (dim, self.num_heads, self.attention_dim)

        def kernel(name):
            return self.add_weight(
                name=name,
                shape=shape,
                initializer=fresh(self.kernel_initializer),
                regularizer=self.kernel_regularizer,
            )

        self.query_kernel = kernel("query_kernel")
        self.key_kernel = kernel("key_kernel")
        self.value_kernel = kernel("value_kernel")
        self.residual_kernel = kernel("residual_kernel") if self.use_residual else None
        self.built = True

    def call(self, inputs):
        q = ops.einsum("bfd,dha->bhfa", inputs, self.query_kernel)
        k = ops.einsum("bfd,dha->bhfa", inputs, self.key_kernel)
        v = ops.einsum("bfd,dha->bhfa", inputs, self.value_kernel)
        scores = ops.einsum("bhfa,bhga->bhfg", q, k)
        if self.use_scale:
            scores = scores / ops.sqrt(ops.cast(self.attention_dim, scores.dtype))
        attended = ops.einsum("bhfg,bhga->bfha", ops.softmax(scores, axis=-1), v)
        if self.use_residual:
            attended = attended + ops.einsum("bfd,dha->bfha", inputs, self.residual_kernel)
        batch, fields = ops.shape(inputs)[0], ops.shape(inputs)[1]
        out = ops.reshape(attended, (batch, fields, self.num_heads * self.attention_dim))
        return ops.relu(out)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.num_heads * self.attention_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            attention_dim=self.attention_dim,
            use_residual=self.use_residual,
            use_scale=self.use_scale,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
        )
        return config
