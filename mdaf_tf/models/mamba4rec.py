"""``mamba4rec``: the Mamba4Rec encoder over the history and the target (Liu et al. 2024)."""

from __future__ import annotations

import dataclasses

import keras

from mdaf_tf.models.blocks import (
    ConfiguredModel,
    embedded_inputs,
    history_with_target,
    output_head,
    sequence_encoder,
    static_fields,
)
from mdaf_tf.models.config import DeepMLPConfig, SequenceBranchConfig
from mdaf_tf.models.registry import register_model


@dataclasses.dataclass
class Mamba4RecConfig(SequenceBranchConfig, DeepMLPConfig):
    """Mamba4Rec's config: MDAF's sequence encoder (its sizes are MDAF's) and the baselines' MLP."""


@register_model("mamba4rec")
class Mamba4Rec(ConfiguredModel):
    """Mamba4Rec as a CTR model (Liu et al. 2024, arXiv:2403.03900).

    The target's (item, category) token is appended as the last position of the history and
    the encoder pools that last position (the causal scan's summary of the whole history as
    it bears on the target)::

        S = [E(hist_1) .. E(hist_L); E(target)]                        (B, L+1, 96)
        q = Mamba4Rec(Dense_128(S))[:, L]                               (B, 128)  last position
        p = sigmoid(MLP_{deep_hidden -> 1}([q; e_user; e_item; e_cate]))  (B, 1)

    The encoder's sizes are MDAF's (``hidden_dim``, ``num_mamba_layers``, ``d_state``, ...).

    Inputs: the schema's model-input dict. Outputs: ``{"logit": (B, 1), "probability": (B, 1)}``.
    """

    config_class = Mamba4RecConfig

    components = {
        "embeddings": ("feature_embedding",),
        "sequence encoder": ("sequence_encoder",),
        "output": ("output_mlp",),
    }

    def __init__(self, config: Mamba4RecConfig | dict, **kwargs):
        c = self.as_config(config)
        inputs, embedded = embedded_inputs(c)
        tokens, mask = history_with_target(embedded)
        sequence = sequence_encoder(c, "last")(tokens, mask=mask)
        features = keras.layers.Concatenate()(
            [sequence, static_fields(embedded)]
        )
        outputs = output_head(c, c.deep_hidden, features)
        super().__init__(inputs=inputs, outputs=outputs, config=c, **kwargs)
