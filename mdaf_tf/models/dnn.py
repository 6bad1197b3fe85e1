"""``dnn``: a plain DNN, embeddings + MLP."""

from __future__ import annotations

import keras

from mdaf_tf.config import ModelConfig
from mdaf_tf.models._blocks import (
    ConfiguredModel,
    as_config,
    embedded_inputs,
    masked_mean,
    output_head,
    static_fields,
    target_match,
)


@keras.saving.register_keras_serializable(package="mdaf_tf")
class DNN(ConfiguredModel):
    """A plain DNN: the fields' embeddings concatenated, then an MLP.

    The history is one mean-pooled sequence field (as FuxiCTR's DNN treats it on Taobao)::

        h = (1 / |valid|) sum_{t valid} [e_item(t); e_cate(t)]    (B, 96), 0 if none
        p = sigmoid(MLP_{deep_hidden -> 1}([e_user; e_item; e_cate; h]))     (B, 1)

    Padded positions are left out of the mean, so the output does not depend on the padding.

    Inputs: the schema's model-input dict. Outputs: ``{"logit": (B, 1), "probability": (B, 1)}``.
    """

    def __init__(self, config: ModelConfig | dict, **kwargs):
        c = as_config(config)
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
