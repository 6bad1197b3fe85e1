"""``din``: Deep Interest Network (Zhou et al. 2018)."""

from __future__ import annotations

import dataclasses

import keras

from mdaf_tf.layers.target_attention import TargetAttention
from mdaf_tf.models.blocks import (
    ConfiguredModel,
    embedded_inputs,
    output_head,
    static_fields,
)
from mdaf_tf.models.config import DeepMLPConfig, PrecisionConfig
from mdaf_tf.models.registry import register_model


@dataclasses.dataclass
class DINConfig(DeepMLPConfig, PrecisionConfig):
    """DIN's config: its attention unit and the baselines' MLP."""

    # DIN's local activation unit: hidden widths of its MLP (DIN's 80-40).
    din_attention_hidden: tuple[int, ...] = (80, 40)
    # Its hidden activation: "dice" (FuxiCTR's DIN default) or a Keras activation name.
    din_attention_activation: str = "dice"
    # Softmax-normalised attention weights (False: DIN's unnormalised weights).
    din_use_softmax: bool = False


@register_model("din")
class DIN(ConfiguredModel):
    """Deep Interest Network (Zhou et al. 2018, arXiv:1706.06978), as FuxiCTR builds it.

    The target's (item, category) token queries the history's (item, category) tokens
    through DIN's local activation unit (``TargetAttention``); the pooled history takes
    the place of the history among the fields fed to the MLP::

        q    = [e_item; e_cate]                                        (B, 96)
        a_t  = MLP_{din_attention_hidden -> 1}([q; k_t; q - k_t; q * k_t]), 0 at padding
        v    = sum_t a_t k_t                                           (B, 96)
        p    = sigmoid(MLP_{deep_hidden -> 1}([e_user; e_item; e_cate; v]))   (B, 1)

    The attention weights are unnormalised unless ``din_use_softmax``; the attention MLP's
    activation is ``din_attention_activation`` (Dice, FuxiCTR's default), the output MLP's
    ReLU. Padded positions never contribute, so the output does not depend on the padding.

    Inputs: the schema's model-input dict. Outputs: ``{"logit": (B, 1), "probability": (B, 1)}``.
    """

    config_class = DINConfig

    def __init__(self, config: DINConfig | dict, **kwargs):
        c = self.as_config(config)
        inputs, embedded = embedded_inputs(c)
        target = keras.layers.Identity(name="target_token")(embedded["target"])
        pooled = TargetAttention(
            hidden_units=c.din_attention_hidden,
            activation=c.din_attention_activation,
            use_softmax=c.din_use_softmax,
            dtype=c.precision,
            name="target_attention",
        )(target, embedded["history"], padding_mask=embedded["history_mask"])
        features = keras.layers.Concatenate(name="din_features")(
            [static_fields(embedded), pooled]
        )
        outputs = output_head(c, c.deep_hidden, features)
        super().__init__(inputs=inputs, outputs=outputs, config=c, **kwargs)

    @property
    def components(self):
        return {
            "embeddings": ("feature_embedding",),
            "attention": ("target_attention",),
            "output": ("output_mlp",),
        }
