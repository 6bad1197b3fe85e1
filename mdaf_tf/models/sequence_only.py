"""``mdaf_seq``: MDAF's sequence branch alone (the seed's Table 8 ablation)."""

from __future__ import annotations

import dataclasses

from mdaf_tf.models.blocks import (
    ConfiguredModel,
    embedded_inputs,
    output_head,
    sequence_encoder,
)
from mdaf_tf.models.config import OutputMLPConfig, SequenceBranchConfig
from mdaf_tf.models.registry import register_model


@dataclasses.dataclass
class SequenceOnlyConfig(SequenceBranchConfig, OutputMLPConfig):
    """``mdaf_seq``'s config: MDAF's sequence branch and output MLP."""

    pooling: str = "mean"  # "mean" (MDAF's) or "last"


@register_model("mdaf_seq")
class SequenceOnly(ConfiguredModel):
    """MDAF without its static branch and gate: the Mamba4Rec branch feeds the output MLP.

    ::

        tokens = [E_item(hist_item); E_cate(hist_cate)]            (B, L, 96)
        q      = MaskedMeanPool(Mamba4Rec(Dense_128(tokens)))       (B, 128)
        p      = sigmoid(MLP_{128->64->1}(q))                       (B, 1)

    As in MDAF the branch never sees the user or the target, so this model scores a user's
    history, not the (user, target) pair; it measures what the sequence branch contributes.
    The layers carry MDAF's names (``sequence_encoder``, ``output_mlp``).

    Inputs: the schema's model-input dict. Outputs: ``{"logit": (B, 1), "probability": (B, 1)}``.
    Reference: Mamba4Rec (Liu et al., arXiv:2403.03900).
    """

    config_class = SequenceOnlyConfig

    components = {
        "embeddings": ("feature_embedding",),
        "sequence branch": ("sequence_encoder",),
        "output": ("output_mlp",),
    }

    def __init__(self, config: SequenceOnlyConfig | dict, **kwargs):
        c = self.as_config(config)
        inputs, embedded = embedded_inputs(c)
        sequence = sequence_encoder(c, c.pooling)(
            embedded["history"], mask=embedded["history_mask"]
        )
        outputs = output_head(c, c.output_hidden, sequence)
        super().__init__(inputs=inputs, outputs=outputs, config=c, **kwargs)
