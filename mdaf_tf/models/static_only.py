"""``dcnv3``: MDAF's static branch alone (the seed's Table 8 ablation)."""

from __future__ import annotations

import dataclasses

from mdaf_tf.models.blocks import (
    ConfiguredModel,
    embedded_inputs,
    output_head,
    static_branch,
)
from mdaf_tf.models.config import OutputMLPConfig, StaticBranchConfig
from mdaf_tf.models.registry import register_model


@dataclasses.dataclass
class StaticOnlyConfig(StaticBranchConfig, OutputMLPConfig):
    """``dcnv3``'s config: MDAF's static branch and output MLP."""


@register_model("dcnv3")
class StaticOnly(ConfiguredModel):
    """MDAF without its sequence branch and gate: the DCNv3 static branch feeds the output MLP.

    ::

        e_static = Dense_128([e_user; e_item; e_cate])            (B, 128)
        s        = mean(LCN(e_static), ECN(e_static))              (B, 128)   DCNv3
        p        = sigmoid(MLP_{128->64->1}(s))                    (B, 1)

    The layers carry MDAF's names (``static_projection``, ``static_dcnv3``, ``output_mlp``),
    so the ablation differs from MDAF only by what it leaves out.

    Inputs: the schema's model-input dict. Outputs: ``{"logit": (B, 1), "probability": (B, 1)}``.
    Reference: DCNv3 (Li et al., arXiv:2407.13349).
    """

    config_class = StaticOnlyConfig

    components = {
        "embeddings": ("feature_embedding",),
        "static branch": ("static_projection", "static_dcnv3"),
        "output": ("output_mlp",),
    }

    def __init__(self, config: StaticOnlyConfig | dict, **kwargs):
        c = self.as_config(config)
        inputs, embedded = embedded_inputs(c)
        outputs = output_head(c, c.output_hidden, static_branch(c, embedded))
        super().__init__(inputs=inputs, outputs=outputs, config=c, **kwargs)
