"""``dnn``: a plain DNN, embeddings + MLP."""

from __future__ import annotations

import dataclasses

import keras

from mdaf_tf.models.blocks import (
    ConfiguredModel,
    embedded_inputs,
    masked_mean,
    output_head,
    static_fields,
    target_match,
)
from mdaf_tf.models.config import DeepMLPConfig, TargetMatchConfig
from mdaf_tf.models.registry import register_model


@dataclasses.dataclass
class DNNConfig(DeepMLPConfig, TargetMatchConfig):
    """A plain DNN's config: the MLP's widths, and the match features (``dnn_match``)."""


@register_model("dnn_match", fixed={"target_match": True}, in_comparison=False)
@register_model("dnn")
class DNN(ConfiguredModel):
    """A plain DNN: the fields' embeddings concatenated, then an MLP.

    The history is one mean-pooled sequence field (as FuxiCTR's DNN treats it on Taobao)::

        h = (1 / |valid|) sum_{t valid} [e_item(t); e_cate(t)]    (B, 96), 0 if none
        p = sigmoid(MLP_{deep_hidden -> 1}([e_user; e_item; e_cate; h]))     (B, 1)

    Padded positions are left out of the mean, so the output does not depend on the padding.

    Inputs: the schema's model-input dict. Outputs: ``{"logit": (B, 1), "probability": (B, 1)}``.
    """

    config_class = DNNConfig

    def __init__(self, config: DNNConfig | dict, **kwargs):
        c = self.as_config(config)
        inputs, embedded = embedded_inputs(c)
        history = keras.layers.Identity(name="history_mean")(
            masked_mean(embedded["history"], embedded["history_mask"])
        )
        parts = [static_fields(embedded), history]
        if c.target_match:
            parts.append(target_match(c, inputs, embedded))
        features = keras.layers.Concatenate(name="dnn_features")(parts)
        outputs = output_head(c, c.deep_hidden, features)
        super().__init__(inputs=inputs, outputs=outputs, config=c, **kwargs)

    @property
    def components(self):
        parts = {"embeddings": ("feature_embedding",), "mlp": ("output_mlp",)}
        if self.config.target_match:
            parts["target match"] = ("target_match",)
        return parts
