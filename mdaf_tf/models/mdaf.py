"""MDAF: Mamba-DCN with Adaptive Fusion."""

from __future__ import annotations

import dataclasses

import keras

from mdaf_tf.layers.gated_fusion import GatedFusion
from mdaf_tf.models.blocks import (
    ConfiguredModel,
    embedded_inputs,
    history_with_target,
    output_head,
    sequence_encoder,
    static_branch,
    target_match,
)
from mdaf_tf.models.config import (
    OutputMLPConfig,
    SequenceBranchConfig,
    StaticBranchConfig,
    TargetMatchConfig,
)
from mdaf_tf.models.registry import register_model


@dataclasses.dataclass
class MDAFConfig(StaticBranchConfig, SequenceBranchConfig, OutputMLPConfig, TargetMatchConfig):
    """MDAF's config: its static and sequence branches, the fusion and the output MLP."""

    pooling: str = "mean"  # "mean" (the thesis) or "last"
    # mdaf_ta: append the target's token to the history and pool that last position.
    target_in_sequence: bool = False
    fusion: str = "gate"  # "gate", "concat" or "fixed"
    fixed_gate_weight: float = 0.5
    gate_hidden: int = 128


@register_model("mdaf_fixed", fixed={"fusion": "fixed"})
@register_model("mdaf_concat", fixed={"fusion": "concat"})
@register_model("mdaf_match", fixed={"target_match": True}, in_comparison=False)
@register_model("mdaf_ta", fixed={"target_in_sequence": True})
@register_model("mdaf")
class MDAF(ConfiguredModel):
    """MDAF: a DCNv3 static branch and a Mamba4Rec sequence branch fused by a learned gate.

    ::

        e_static = Dense_128([e_user; e_item; e_cate])            (B, 128)
        s        = mean(LCN(e_static), ECN(e_static))              (B, 128)   DCNv3
        tokens   = [E_item(hist_item); E_cate(hist_cate)]          (B, L, 96)
        q        = MaskedMeanPool(Mamba4Rec(Dense_128(tokens)))    (B, 128)
        g        = sigmoid(MLP_{256->128->1}([s; q]))              (B, 1)
        p        = sigmoid(MLP_{128->64->1}(g * s + (1 - g) * q))  (B, 1)

    With ``target_in_sequence`` (the ``mdaf_ta`` variant, beyond the seed) the target's
    (item, category) token is appended as the last position of the behaviour sequence and
    the sequence branch pools that last position, so the sequence branch sees the target.
    With ``target_match`` (the ``mdaf_match`` variant) the sequence branch also carries how
    often and how recently the history holds the target's item and category
    (``TargetHistoryMatch``, SIM's category hard search summarised by recency kernels)::

        q = MaskedMeanPool(Mamba4Rec(...)) + Dense_128(TargetHistoryMatch(target, history))

    Inputs: the schema's model-input dict (``mdaf_tf.data.schema.MODEL_INPUTS``).
    Outputs: ``{"logit": (B, 1), "probability": (B, 1), "gate": (B, 1)}``; the gate is 1
    when the static branch alone decides and 0 when the sequence branch does. The ``concat``
    and ``fixed`` ablations have no learned gate and no ``gate`` output.

    References: DCNv3 (Li et al., arXiv:2407.13349), Mamba4Rec (Liu et al.,
    arXiv:2403.03900), Mamba (Gu & Dao, arXiv:2312.00752).

    Args:
        config: an ``MDAFConfig`` (or its dict form) with vocabulary sizes filled in.
    """

    config_class = MDAFConfig

    components = {
        "embeddings": ("feature_embedding",),
        "static branch": ("static_projection", "static_dcnv3"),
        "sequence branch": ("sequence_encoder", "target_match", "target_match_projection"),
        "gate + output": ("fusion", "output_mlp"),
    }

    def __init__(self, config: MDAFConfig | dict, **kwargs):
        c = self.as_config(config)
        inputs, embedded = embedded_inputs(c)
        static = static_branch(c, embedded)
        tokens, mask, pooling = embedded["history"], embedded["history_mask"], c.pooling
        if c.target_in_sequence:
            tokens, mask = history_with_target(embedded)
            pooling = "last"
        sequence = sequence_encoder(c, pooling)(tokens, mask=mask)
        if c.target_match:
            match = keras.layers.Dense(c.hidden_dim, name="target_match_projection")(
                target_match(c, inputs, embedded))
            sequence = keras.layers.Add(name="sequence_with_match")([sequence, match])
        fusion = GatedFusion(
            mode=c.fusion,
            hidden_units=c.gate_hidden,
            fixed_weight=c.fixed_gate_weight,
            name="fusion",
        )
        fused, gate = fusion(static, sequence)
        outputs = output_head(c, c.output_hidden, fused)
        if c.fusion == "gate":  # only a learned gate has statistics worth reporting
            outputs["gate"] = keras.layers.Identity(dtype="float32", name="gate")(gate)
        super().__init__(inputs=inputs, outputs=outputs, config=c, **kwargs)
