"""A plain multilayer perceptron block."""

from __future__ import annotations

import keras

from mdaf_tf.layers._initializers import fresh

NORMALIZATIONS = (None, "batch", "layer")


@keras.saving.register_keras_serializable(package="mdaf_tf")
class MLP(keras.layers.Layer):
    """Stack of dense blocks, optionally followed by an output Dense.

    Per hidden width h_i: x = Dropout(activation(Norm(Dense(h_i)(x)))), Norm being
    BatchNormalization, LayerNormalization or nothing. If ``output_units`` is given,
    a final Dense(output_units, output_activation) follows (no norm, no dropout); its dtype
    policy is ``output_dtype`` when given (e.g. ``"float32"`` for a logit under a mixed
    precision policy), the layer's own otherwise.

    Input: (..., d_in). Output: (..., output_units or hidden_units[-1]).
    (With no hidden units and no output units it is the identity.)

    Example:

    ```python
    import keras
    from mdaf_tf.layers import MLP

    x = keras.random.normal((4, 24))
    mlp = MLP(hidden_units=(64, 32), dropout=0.1, normalization="layer",
              output_units=1, output_activation="sigmoid")
    probability = mlp(x, training=True)
    print(probability.shape)  # (4, 1)
    ```
    """

    def __init__(
        self,
        hidden_units=(128,),
        activation="relu",
        dropout: float = 0.0,
        normalization: str | None = None,
        output_units: int | None = None,
        output_activation=None,
        output_dtype=None,
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"MLP: normalization={normalization!r} must be one of {NORMALIZATIONS}"
            )
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"MLP: dropout={dropout} must be in [0, 1)")
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.activation = keras.activations.get(activation)
        self.dropout = float(dropout)
        self.normalization = normalization
        self.output_units = None if output_units is None else int(output_units)
        self.output_activation = keras.activations.get(output_activation)
        self.output_dtype = output_dtype
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

        def dense(units, activation, name, dtype=None):
            return keras.layers.Dense(
                units,
                activation=activation,
                kernel_initializer=fresh(self.kernel_initializer),
                kernel_regularizer=self.kernel_regularizer,
                dtype=dtype or self.dtype_policy,
                name=name,
            )

        self.dense_layers = [
            dense(u, None, f"dense_{i}") for i, u in enumerate(self.hidden_units)
        ]
        if normalization == "batch":
            self.norm_layers = [
                keras.layers.BatchNormalization(dtype=self.dtype_policy, name=f"batch_norm_{i}")
                for i in range(len(self.hidden_units))
            ]
        elif normalization == "layer":
            self.norm_layers = [
                keras.layers.LayerNormalization(dtype=self.dtype_policy, name=f"layer_norm_{i}")
                for i in range(len(self.hidden_units))
            ]
        else:
            self.norm_layers = []
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.output_layer = (
            None
            if self.output_units is None
            else dense(self.output_units, self.output_activation, "output", output_dtype)
        )

    def build(self, input_shape):
        shape = tuple(input_shape)
        for i, layer in enumerate(self.dense_layers):
            layer.build(shape)
            shape = (*shape[:-1], self.hidden_units[i])
            if self.norm_layers:
                self.norm_layers[i].build(shape)
        if self.output_layer is not None:
            self.output_layer.build(shape)
        self.built = True

    def call(self, inputs, training=None):
        x = inputs
        for i, layer in enumerate(self.dense_layers):
            x = layer(x)
            if self.norm_layers:
                x = self.norm_layers[i](x, training=training)
            x = self.activation(x)
            x = self.dropout_layer(x, training=training)
        if self.output_layer is not None:
            x = self.output_layer(x)
        return x

    def compute_output_shape(self, input_shape):
        if self.output_units is not None:
            width = self.output_units
        elif self.hidden_units:
            width = self.hidden_units[-1]
        else:
            width = input_shape[-1]
        return (*input_shape[:-1], width)

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_units=list(self.hidden_units),
            activation=keras.activations.serialize(self.activation),
            dropout=self.dropout,
            normalization=self.normalization,
            output_units=self.output_units,
            output_activation=keras.activations.serialize(self.output_activation),
            output_dtype=self.output_dtype,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
        )
        return config
