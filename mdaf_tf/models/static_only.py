"""``dcnv3``: MDAF's static branch alone (the seed's Table 8 ablation)."""

from __future__ import annotations

import keras

from mdaf_tf import config as config_lib
from mdaf_tf.layers.dcnv3 import DCNv3
from mdaf_tf.layers.mlp import MLP
from mdaf_tf.models._inputs import embedded_inputs, static_fields


@keras.saving.register_keras_serializable(package="mdaf_tf")
class StaticOnly(keras.Model):
    """MDAF without its sequence branch and gate: the DCNv3 static branch feeds the output MLP.

    ::

        e_static = Dense_128([e_user; e_item; e_cate])            (B, 128)
        s        = mean(LCN(e_static), ECN(e_static))              (B, 128)   DCNv3
        p        = sigmoid(MLP_{128->64->1}(s))                    (B, 1)

    The layers carry MDAF's names (``static_projection``, ``static_dcnv3``, ``output_mlp``),
    so the ablation differs from MDAF only by what it leaves out.

    Inputs: the schema's model-input dict. Output: ``{"probability": (B, 1)}``.
    Reference: DCNv3 (Li et al., arXiv:2407.13349).
    """

    components = {
        "embeddings": ("feature_embedding",),
        "static branch": ("static_projection", "static_dcnv3"),
        "output": ("output_mlp",),
    }

    def __init__(self, config: config_lib.ModelConfig | dict, **kwargs):
        if isinstance(config, dict):
            config = config_lib.from_dict(config_lib.ModelConfig, config)
        c = config
        inputs, embedded = embedded_inputs(c)
        static = keras.layers.Dense(c.hidden_dim, name="static_projection")(
            static_fields(embedded)
        )
        static = DCNv3(
            num_layers=c.num_cross_layers,
            dropout=c.dropout,
            use_layer_norm=c.cross_layer_norm,
            name="static_dcnv3",
        )(static)
        probability = MLP(
            hidden_units=c.output_hidden,
            dropout=c.dropout,
            output_units=1,
            output_activation="sigmoid",
            name="output_mlp",
        )(static)
        outputs = {"probability": keras.layers.Identity(name="probability")(probability)}
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.config = c

    def get_config(self):
        return {"config": config_lib.to_dict(self.config), "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
