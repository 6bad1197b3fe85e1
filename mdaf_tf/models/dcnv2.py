"""``dcnv2``: DCN-V2, a cross network in parallel with an MLP (Wang et al. 2021)."""

from __future__ import annotations

import dataclasses

import keras
import keras_rs

from mdaf_tf.config import ConfigError
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
class DCNv2Config(DeepMLPConfig):
    """DCN-V2's config: its cross network and the baselines' MLP."""

    dcnv2_layers: int = 3
    dcnv2_low_rank: int = 0  # 0 = full-rank cross
    dcnv2_num_experts: int = 1


@register_model("dcnv2")
class DCNv2(ConfiguredModel):
    """DCN-V2, parallel structure (Wang et al. 2021, arXiv:2008.13535).

    Over the static fields x_0 = [e_user; e_item; e_cate] (B, 176 at the default sizes)::

        x_{l+1} = x_0 * (W_l x_l + b_l) + x_l                        l = 0 .. N-1
        p       = sigmoid(Dense_1([x_N; MLP_{deep_hidden}(x_0)]))     (B, 1)

    N = ``dcnv2_layers`` (3). With ``dcnv2_low_rank`` r > 0, W_l = U_l V_l (rank r); with
    ``dcnv2_num_experts`` K > 1 each layer is a mixture of K low-rank experts gated by
    softmax(G_l x_l)::

        x_{l+1} = x_l + sum_k softmax(G_l x_l)_k * x_0 * (U_lk V_lk x_l + b_lk)

    Each cross (and each expert) is a keras-rs ``FeatureCross``. The behaviour history is
    not used, as in MDAF's static branch.

    Inputs: the schema's model-input dict. Outputs: ``{"logit": (B, 1), "probability": (B, 1)}``.
    """

    config_class = DCNv2Config

    def __init__(self, config: DCNv2Config | dict, **kwargs):
        c = self.as_config(config)
        if c.dcnv2_num_experts < 1:
            raise ConfigError(
                f"config field 'dcnv2_num_experts' must be >= 1, got {c.dcnv2_num_experts}"
            )
        if c.dcnv2_num_experts > 1 and c.dcnv2_low_rank < 1:
            raise ConfigError(
                "config field 'dcnv2_low_rank' must be >= 1 when dcnv2_num_experts > 1"
            )
        inputs, embedded = embedded_inputs(c)
        x0 = static_fields(embedded)
        projection_dim = c.dcnv2_low_rank or None
        x = x0
        for layer in range(c.dcnv2_layers):
            if c.dcnv2_num_experts == 1:
                x = keras_rs.layers.FeatureCross(
                    projection_dim=projection_dim, name=f"cross_{layer}"
                )(x0, x)
                continue
            experts = [
                keras_rs.layers.FeatureCross(
                    projection_dim=projection_dim, name=f"cross_{layer}_expert_{k}"
                )(x0, x)
                for k in range(c.dcnv2_num_experts)
            ]
            # FeatureCross returns expert + x_l; the mixture adds x_l once.
            deltas = keras.ops.stack([e - x for e in experts], axis=1)  # (B, K, d)
            gate = keras.layers.Dense(
                c.dcnv2_num_experts, activation="softmax", name=f"cross_{layer}_gate"
            )(x)
            x = x + keras.ops.sum(gate[..., None] * deltas, axis=1)
        deep = MLP(hidden_units=c.deep_hidden, dropout=c.dropout, name="deep_mlp")(x0)
        logit = keras.layers.Dense(1, dtype="float32", name="output_logit")(
            keras.layers.Concatenate()([x, deep])
        )
        super().__init__(inputs=inputs, outputs=click_outputs(logit), config=c, **kwargs)

    @property
    def components(self):
        cross = tuple(
            layer.name for layer in self.layers if layer.name.startswith("cross_")
        )
        return {
            "embeddings": ("feature_embedding",),
            "cross network": cross,
            "mlp": ("deep_mlp",),
            "output": ("output_logit",),
        }
