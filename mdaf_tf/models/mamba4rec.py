"""``mamba4rec``: the Mamba4Rec encoder over the history and the target (Liu et al. 2024)."""

from __future__ import annotations

import keras

from mdaf_tf import config as config_lib
from mdaf_tf.layers.mamba4rec_encoder import Mamba4RecEncoder
from mdaf_tf.layers.mlp import MLP
from mdaf_tf.models._inputs import embedded_inputs, history_with_target


@keras.saving.register_keras_serializable(package="mdaf_tf")
class Mamba4Rec(keras.Model):
    """Mamba4Rec as a CTR model (Liu et al. 2024, arXiv:2403.03900).

    The target's (item, category) token is appended as the last position of the history and
    the encoder pools that last position (the causal scan's summary of the whole history as
    it bears on the target)::

        S = [E(hist_1) .. E(hist_L); E(target)]                        (B, L+1, 96)
        q = Mamba4Rec(Dense_128(S))[:, L]                               (B, 128)  last position
        p = sigmoid(MLP_{deep_hidden -> 1}([q; e_user; e_item; e_cate]))  (B, 1)

    The encoder's sizes are MDAF's (``hidden_dim``, ``num_mamba_layers``, ``d_state``, ...).

    Inputs: the schema's model-input dict. Output: ``{"probability": (B, 1)}``.
    """

    components = {
        "embeddings": ("feature_embedding",),
        "sequence encoder": ("sequence_encoder",),
        "output": ("output_mlp",),
    }

    def __init__(self, config: config_lib.ModelConfig | dict, **kwargs):
        if isinstance(config, dict):
            config = config_lib.from_dict(config_lib.ModelConfig, config)
        c = config
        inputs, embedded = embedded_inputs(c)
        tokens, mask = history_with_target(embedded)
        sequence = Mamba4RecEncoder(
            d_model=c.hidden_dim,
            num_layers=c.num_mamba_layers,
            d_state=c.d_state,
            d_conv=c.d_conv,
            expand=c.expand,
            ffn_multiplier=c.ffn_multiplier,
            dropout=c.dropout,
            pooling="last",
            scan=c.scan,
            name="sequence_encoder",
        )(tokens, mask=mask)
        features = keras.layers.Concatenate()(
            [sequence, embedded["user"], embedded["item"], embedded["cate"]]
        )
        probability = MLP(
            hidden_units=c.deep_hidden,
            dropout=c.dropout,
            output_units=1,
            output_activation="sigmoid",
            name="output_mlp",
        )(features)
        probability = keras.layers.Identity(name="probability")(probability)
        super().__init__(inputs=inputs, outputs={"probability": probability}, **kwargs)
        self.config = c

    def get_config(self):
        return {"config": config_lib.to_dict(self.config), "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
