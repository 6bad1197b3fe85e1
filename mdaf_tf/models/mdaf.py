"""MDAF: Mamba-DCN with Adaptive Fusion."""

from __future__ import annotations

import keras

from mdaf_tf import config as config_lib
from mdaf_tf import schema
from mdaf_tf.layers.dcnv3 import DCNv3
from mdaf_tf.layers.feature_embedding import FeatureEmbedding
from mdaf_tf.layers.gated_fusion import GatedFusion
from mdaf_tf.layers.mamba4rec_encoder import Mamba4RecEncoder
from mdaf_tf.layers.mlp import MLP


@keras.saving.register_keras_serializable(package="mdaf_tf")
class MDAF(keras.Model):
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

    Inputs: the schema's model-input dict (``mdaf_tf.schema.MODEL_INPUTS``).
    Outputs: ``{"probability": (B, 1), "gate": (B, 1)}``; the gate is 1 when the static
    branch alone decides and 0 when the sequence branch does.

    References: DCNv3 (Li et al., arXiv:2407.13349), Mamba4Rec (Liu et al.,
    arXiv:2403.03900), Mamba (Gu & Dao, arXiv:2312.00752).

    Args:
        config: a ``ModelConfig`` (or its dict form) with vocabulary sizes filled in.
    """

    components = {
        "embeddings": ("feature_embedding",),
        "static branch": ("static_projection", "static_dcnv3"),
        "sequence branch": ("sequence_encoder",),
        "gate + output": ("fusion", "output_mlp"),
    }

    def __init__(self, config: config_lib.ModelConfig | dict, **kwargs):
        if isinstance(config, dict):
            config = config_lib.from_dict(config_lib.ModelConfig, config)
        c = config
        inputs = schema.keras_inputs(c.max_seq_len)
        embedded = FeatureEmbedding(
            user_vocab_size=c.user_vocab_size,
            item_vocab_size=c.item_vocab_size,
            cate_vocab_size=c.cate_vocab_size,
            user_dim=c.user_embedding_dim,
            item_dim=c.item_embedding_dim,
            cate_dim=c.cate_embedding_dim,
            name="feature_embedding",
        )(inputs)

        static_in = keras.layers.Concatenate()(
            [embedded["user"], embedded["item"], embedded["cate"]]
        )
        static = keras.layers.Dense(c.hidden_dim, name="static_projection")(static_in)
        static = DCNv3(
            num_layers=c.num_cross_layers,
            dropout=c.dropout,
            use_layer_norm=c.cross_layer_norm,
            name="static_dcnv3",
        )(static)

        tokens, mask = embedded["history"], embedded["history_mask"]
        pooling = c.pooling
        if c.target_in_sequence:
            target = keras.layers.Concatenate()([embedded["item"], embedded["cate"]])
            tokens = keras.layers.Concatenate(axis=1)(
                [tokens, keras.layers.Reshape((1, -1))(target)]
            )
            mask = keras.ops.concatenate(
                [mask, keras.ops.ones_like(mask[:, :1])], axis=1
            )
            pooling = "last"
        sequence = Mamba4RecEncoder(
            d_model=c.hidden_dim,
            num_layers=c.num_mamba_layers,
            d_state=c.d_state,
            d_conv=c.d_conv,
            expand=c.expand,
            ffn_multiplier=c.ffn_multiplier,
            dropout=c.dropout,
            pooling=pooling,
            scan=c.scan,
            name="sequence_encoder",
        )(tokens, mask=mask)

        fused, gate = GatedFusion(
            mode=c.fusion,
            hidden_units=c.gate_hidden,
            fixed_weight=c.fixed_gate_weight,
            name="fusion",
        )(static, sequence)
        probability = MLP(
            hidden_units=c.output_hidden,
            dropout=c.dropout,
            output_units=1,
            output_activation="sigmoid",
            name="output_mlp",
        )(fused)
        outputs = {
            "probability": keras.layers.Identity(name="probability")(probability),
            "gate": keras.layers.Identity(name="gate")(gate),
        }
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.config = c

    def get_config(self):
        return {"config": config_lib.to_dict(self.config), "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
