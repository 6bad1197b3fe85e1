"""``autoint``: AutoInt+ over the static fields (Song et al. 2019)."""

from __future__ import annotations

import dataclasses

import keras

from mdaf_tf.data import feature_schema
from mdaf_tf.layers.field_self_attention import FieldSelfAttention
from mdaf_tf.layers.mlp import MLP
from mdaf_tf.models.blocks import (
    ConfiguredModel,
    click_outputs,
    embedded_inputs,
    static_fields,
)
from mdaf_tf.models.config import DeepMLPConfig
from mdaf_tf.models.registry import register_model


@dataclasses.dataclass
class AutoIntConfig(DeepMLPConfig):
    """AutoInt+'s config: its interacting layers and the baselines' MLP."""

    autoint_layers: int = 3
    autoint_heads: int = 2
    autoint_attention_dim: int = 32


@register_model("autoint")
class AutoInt(ConfiguredModel):
    """AutoInt with a parallel MLP (AutoInt+, Song et al. 2019, arXiv:1810.11921).

    The F declared static fields (by default user, target item, target category with
    MDAF's embedding sizes 80/64/32) are brought to one width a = ``autoint_attention_dim``
    by a bias-free linear map per field, since the interacting layers need equal field
    widths::

        X_0  = stack(e_1 W_1, ..., e_F W_F)                             (B, F, a)
        X_l  = ReLU(concat_h softmax(Q_h K_h^T) V_h + X_{l-1} W_res)    (B, F, H a)  x N
        z_at = Dense_1(flatten(X_N))                                    attention logit
        z_mlp= MLP_{deep_hidden -> 1}([e_1; ...; e_F])                  MLP logit
        p    = sigmoid(z_at + z_mlp)                                    (B, 1)

    N = ``autoint_layers`` (3), H = ``autoint_heads`` (2), a = 32 by default. The
    behaviour history is not used (AutoInt is a field-interaction model).

    Inputs: the schema's model-input dict. Outputs: ``{"logit": (B, 1), "probability": (B, 1)}``.
    """

    config_class = AutoIntConfig

    def __init__(self, config: AutoIntConfig | dict, **kwargs):
        c = self.as_config(config)
        inputs, embedded = embedded_inputs(c)
        fields = [
            keras.layers.Dense(c.autoint_attention_dim, use_bias=False, name=f"{name}_field")(
                embedding
            )
            for name, embedding in embedded["fields"].items()
        ]
        x = keras.layers.Concatenate(axis=1)(
            [keras.layers.Reshape((1, c.autoint_attention_dim))(f) for f in fields]
        )
        for i in range(c.autoint_layers):
            x = FieldSelfAttention(
                num_heads=c.autoint_heads,
                attention_dim=c.autoint_attention_dim,
                use_residual=True,
                name=f"interacting_{i}",
            )(x)
        attention_logit = keras.layers.Dense(1, dtype="float32", name="attention_logit")(
            keras.layers.Flatten()(x)
        )
        mlp_logit = MLP(
            hidden_units=c.deep_hidden,
            dropout=c.dropout,
            output_units=1,
            output_dtype="float32",
            name="deep_mlp",
        )(static_fields(embedded))
        logit = keras.layers.Add(dtype="float32")([attention_logit, mlp_logit])
        super().__init__(inputs=inputs, outputs=click_outputs(logit), config=c, **kwargs)

    @property
    def components(self):
        return {
            "embeddings": ("feature_embedding",),
            "field projection": tuple(
                f"{f.name}_field" for f in feature_schema.from_config(self.config.features).static
            ),
            "interacting layers": tuple(
                f"interacting_{i}" for i in range(self.config.autoint_layers)
            )
            + ("attention_logit",),
            "mlp": ("deep_mlp",),
        }
