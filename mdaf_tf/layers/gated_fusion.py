"""MDAF's adaptive fusion of the static and sequence representations."""

from __future__ import annotations

import keras
from keras import ops

from mdaf_tf.layers._initializers import fresh

MODES = ("gate", "concat", "fixed")


@keras.saving.register_keras_serializable(package="mdaf_tf")
class GatedFusion(keras.layers.Layer):
    """Fuses two representations a, b (the MDAF seed thesis's adaptive gate).

    Modes:
        ``"gate"`` (default, MDAF)::

            g   = sigmoid(Dense(1)(ReLU(Dense(hidden_units)([a; b]))))     (B, 1)
            out = g * a + (1 - g) * b                                       (B, d)

        ``"concat"`` (ablation): out = Dense(units)([a; b]) with units = d unless given.
            There is no gate; the returned g is the constant 0.5 (what a gate that cannot
            tell the branches apart would give), so every mode has the same output
            signature. ``has_gate`` is False so reports can leave it out.
        ``"fixed"`` (ablation): out = w * a + (1 - w) * b with the constant
            w = ``fixed_weight`` (0.5), returned as g.

    Inputs: a, b, each (B, d) (for ``"concat"`` the widths may differ), called as
    ``layer(a, b)`` or ``layer([a, b])``.
    Returns: (out, g) with out (B, d) (or (B, units)) and g (B, 1) in [0, 1].

    Example:

    ```python
    import keras
    from mdaf_tf.layers import GatedFusion

    static = keras.random.normal((4, 32))
    sequence = keras.random.normal((4, 32))
    fusion = GatedFusion(hidden_units=16)
    fused, gate = fusion(static, sequence)
    print(fused.shape, gate.shape)  # (4, 32) (4, 1)
    ```
    """

    def __init__(
        self,
        mode: str = "gate",
        hidden_units: int = 128,
        fixed_weight: float = 0.5,
        units: int | None = None,
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"GatedFusion: mode={mode!r} must be one of {MODES}")
        if not 0.0 <= float(fixed_weight) <= 1.0:
            raise ValueError(f"GatedFusion: fixed_weight={fixed_weight} must be in [0, 1]")
        self.mode = mode
        self.hidden_units = int(hidden_units)
        self.fixed_weight = float(fixed_weight)
        self.units = None if units is None else int(units)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    @property
    def has_gate(self) -> bool:
        return self.mode != "concat"

    def _dense(self, units, activation, name):
        return keras.layers.Dense(
            units,
            activation=activation,
            kernel_initializer=fresh(self.kernel_initializer),
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, a_shape, b_shape=None):
        if b_shape is None:
            a_shape, b_shape = a_shape
        if self.mode != "concat" and a_shape[-1] != b_shape[-1]:
            raise ValueError(
                f"GatedFusion: mode={self.mode!r} needs equal widths, got {a_shape[-1]} "
                f"and {b_shape[-1]}"
            )
        joint = (*a_shape[:-1], a_shape[-1] + b_shape[-1])
        if self.mode == "gate":
            self.gate_hidden = self._dense(self.hidden_units, "relu", "gate_hidden")
            self.gate_hidden.build(joint)
            self.gate_output = self._dense(1, "sigmoid", "gate_output")
            self.gate_output.build((*a_shape[:-1], self.hidden_units))
        elif self.mode == "concat":
            self.projection = self._dense(self.units or a_shape[-1], None, "concat_projection")
            self.projection.build(joint)
        self.built = True

    def call(self, a, b=None):
        if b is None:
            a, b = a
        if self.mode == "concat":
            out = self.projection(ops.concatenate([a, b], axis=-1))
            return out, ops.full((ops.shape(a)[0], 1), 0.5, dtype=out.dtype)
        if self.mode == "gate":
            g = self.gate_output(self.gate_hidden(ops.concatenate([a, b], axis=-1)))
        else:
            g = ops.full((ops.shape(a)[0], 1), self.fixed_weight, dtype=a.dtype)
        return g * a + (1.0 - g) * b, g

    def compute_output_shape(self, a_shape, b_shape=None):
        if b_shape is None:
            a_shape, b_shape = a_shape
        width = (self.units or a_shape[-1]) if self.mode == "concat" else a_shape[-1]
        return (*a_shape[:-1], width), (a_shape[0], 1)

    def get_config(self):
        config = super().get_config()
        config.update(
            mode=self.mode,
            hidden_units=self.hidden_units,
            fixed_weight=self.fixed_weight,
            units=self.units,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
        )
        return config
