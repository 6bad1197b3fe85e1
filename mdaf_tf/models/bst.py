"""``bst``: Behavior Sequence Transformer (Chen et al. 2019)."""

from __future__ import annotations

import dataclasses

import keras

from mdaf_tf.layers.position_embedding import PositionEmbedding
from mdaf_tf.layers.transformer_encoder import TransformerEncoder
from mdaf_tf.models.blocks import (
    ConfiguredModel,
    embedded_inputs,
    history_with_target,
    masked_mean,
    output_head,
    static_fields,
)
from mdaf_tf.models.config import DeepMLPConfig, PrecisionConfig
from mdaf_tf.models.registry import register_model


@dataclasses.dataclass
class BSTConfig(DeepMLPConfig, PrecisionConfig):
    """BST's config: its transformer and the baselines' MLP."""

    bst_heads: int = 8
    bst_layers: int = 1


@register_model("bst")
class BST(ConfiguredModel):
    """Behavior Sequence Transformer (Chen et al. 2019, arXiv:1905.06874).

    The target's (item, category) token is appended to the left-padded history as the LAST
    position; learned position embeddings count back from that position, so the target
    always gets row L (of L + 1) whatever the history length::

        S   = [E(hist_1) .. E(hist_L); E(target)] + P                  (B, L+1, 96)
        H   = TransformerEncoder^{bst_layers}(S, key mask = valid)      (B, L+1, 96)
        z   = [H_target; MaskedMean(H); e_user; e_item; e_cate]         (B, 96+96+176)
        p   = sigmoid(MLP_{deep_hidden -> 1}(z))                        (B, 1)

    Padded positions are never attended to and are left out of the mean, so the output
    does not depend on the padding. Heads = ``bst_heads`` (8; 96 / 8 = 12 per head).

    Inputs: the schema's model-input dict. Outputs: ``{"logit": (B, 1), "probability": (B, 1)}``.
    """

    config_class = BSTConfig

    def __init__(self, config: BSTConfig | dict, **kwargs):
        c = self.as_config(config)
        inputs, embedded = embedded_inputs(c)
        tokens, mask = history_with_target(embedded)
        positions = PositionEmbedding(c.max_seq_len + 1, name="position_embedding")(tokens)
        h = keras.layers.Add(name="bst_tokens")([tokens, positions])
        for i in range(c.bst_layers):
            h = TransformerEncoder(
                num_heads=c.bst_heads, dropout=c.dropout, dtype=c.precision,
                name=f"transformer_{i}"
            )(h, padding_mask=mask)
        target_out = h[:, -1, :]
        features = keras.layers.Concatenate()(
            [target_out, masked_mean(h, mask), static_fields(embedded)]
        )
        outputs = output_head(c, c.deep_hidden, features)
        super().__init__(inputs=inputs, outputs=outputs, config=c, **kwargs)

    @property
    def components(self):
        return {
            "embeddings": ("feature_embedding", "position_embedding"),
            "transformer": tuple(f"transformer_{i}" for i in range(self.config.bst_layers)),
            "output": ("output_mlp",),
        }
