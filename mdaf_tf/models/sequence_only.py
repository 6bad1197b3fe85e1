"""``mdaf_seq``: MDAF's sequence branch alone (the seed's Table 8 ablation)."""

from __future__ import annotations

import keras

from mdaf_tf import config as config_lib
from mdaf_tf.layers.mamba4rec_encoder import Mamba4RecEncoder
from mdaf_tf.layers.mlp import MLP
from mdaf_tf.models._inputs import embedded_inputs


@keras.saving.register_keras_serializable(package="mdaf_tf")
class SequenceOnly(keras.Model):
    """MDAF without its static branch and gate: the Mamba4Rec branch feeds the output MLP.

    ::

        tokens = [E_item(hist_item); E_cate(hist_cate)]            (B, L, 96)
        q      = MaskedMeanPool(Mamba4Rec(Dense_128(tokens)))       (B, 128)
        p      = sigmoid(MLP_{128->64->1}(q))                       (B, 1)

    As in MDAF the branch never sees the user or the target, so this model scores a user's
    history, not the (user, target) pair; it measures what the sequence branch contributes.
    The layers carry MDAF's names (``sequence_encoder``, ``output_mlp``).

    Inputs: the schema's model-input dict. Output: ``{"probability": (B, 1)}``.
    Reference: Mamba4Rec (Liu et al., arXiv:2403.03900).
    """

    components = {
        "embeddings": ("feature_embedding",),
        "sequence branch": ("sequence_encoder",),
        "output": ("output_mlp",),
    }

    def __init__(self, config: config_lib.ModelConfig | dict, **kwargs):
        if isinstance(config, dict):
            config = config_lib.from_dict(config_lib.ModelConfig, config)
        c = config
        inputs, embedded = embedded_inputs(c)
        sequence = Mamba4RecEncoder(
            d_model=c.hidden_dim,
            num_layers=c.num_mamba_layers,
            d_state=c.d_state,
            d_conv=c.d_conv,
            expand=c.expand,
            ffn_multiplier=c.ffn_multiplier,
            dropout=c.dropout,
            pooling=c.pooling,
            scan=c.scan,
            name="sequence_encoder",
        )(embedded["history"], mask=embedded["history_mask"])
        probability = MLP(
            hidden_units=c.output_hidden,
            dropout=c.dropout,
            output_units=1,
            output_activation="sigmoid",
            name="output_mlp",
        )(sequence)
        outputs = {"probability": keras.layers.Identity(name="probability")(probability)}
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.config = c

    def get_config(self):
        return {"config": config_lib.to_dict(self.config), "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
