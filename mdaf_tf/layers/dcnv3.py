"""DCNv3 static block: LCN and ECN in parallel, averaged."""

from __future__ import annotations

import keras

from mdaf_tf.layers.exponential_cross_network import ExponentialCrossNetwork
from mdaf_tf.layers.linear_cross_network import LinearCrossNetwork


@keras.saving.register_keras_serializable(package="mdaf_tf")
class DCNv3(keras.layers.Layer):
    """DCNv3 (Li et al. 2024, arXiv:2407.13349) as MDAF's static branch.

    out = (LCN(x) + ECN(x)) / 2, with LCN and ECN reading the same input x (B, d), d even.
    Output: (B, d). (The paper averages the two networks' logits and trains each with its
    own auxiliary loss; MDAF averages the vectors and feeds them to the fusion gate.)

    Args: num_layers (per network, 3), dropout, use_layer_norm, kernel_initializer,
    bias_initializer (None: uniform on [0, 1)), kernel_regularizer -- passed to both networks.

    Example:

    ```python
    import keras
    from mdaf_tf.layers import DCNv3

    x = keras.random.normal((4, 16))  # (batch, d), d even
    dcn = DCNv3(num_layers=2)
    y = dcn(x)
    print(y.shape)  # (4, 16)
    ```
    """

    def __init__(
        self,
        num_layers: int = 3,
        dropout: float = 0.0,
        use_layer_norm: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer=None,
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_layers = int(num_layers)
        self.dropout = float(dropout)
        self.use_layer_norm = bool(use_layer_norm)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        shared = dict(
            num_layers=self.num_layers,
            dropout=self.dropout,
            use_layer_norm=self.use_layer_norm,
            kernel_initializer=self.kernel_initializer,
            bias_initializer=self.bias_initializer,
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
        )
        self.linear = LinearCrossNetwork(name="linear_cross_network", **shared)
        self.exponential = ExponentialCrossNetwork(name="exponential_cross_network", **shared)

    def build(self, input_shape):
        self.linear.build(input_shape)
        self.exponential.build(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        lcn = self.linear(inputs, training=training)
        ecn = self.exponential(inputs, training=training)
        return 0.5 * (lcn + ecn)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            num_layers=self.num_layers,
            dropout=self.dropout,
            use_layer_norm=self.use_layer_norm,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
        )
        return config
