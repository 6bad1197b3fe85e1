"""Pieces the models share: the config-built base class, the inputs and their embeddings,
MDAF's two branches and the output MLP."""

from __future__ import annotations

import keras

from mdaf_tf import config as config_lib
from mdaf_tf.data import feature_schema, schema
from mdaf_tf.layers.dcnv3 import DCNv3
from mdaf_tf.layers.feature_embedding import FeatureEmbedding
from mdaf_tf.layers.mamba4rec_encoder import Mamba4RecEncoder
from mdaf_tf.layers.mlp import MLP
from mdaf_tf.layers.target_history_match import TargetHistoryMatch
from mdaf_tf.models import embedding_sizes
from mdaf_tf.models.config import ModelConfig, SequenceBranchConfig, StaticBranchConfig
from mdaf_tf.precision import check_precision


class ConfiguredModel(keras.Model):
    """A functional model built from its own config dataclass (``config_class``); serialises
    as that config.

    Subclasses set ``config_class``, build their graph in ``__init__(config, **kwargs)`` from
    ``self.as_config(config)`` and end with ``super().__init__(inputs=..., outputs=...,
    config=c)``. The layers that run per behaviour token take ``config.precision`` as their
    dtype policy (``mdaf_tf.precision``); the others compute in float32.
    """

    config_class = ModelConfig

    def __init__(self, *args, config: ModelConfig, **kwargs):
        super().__init__(*args, **kwargs)
        self.config = config

    @classmethod
    def as_config(cls, config) -> ModelConfig:
        """``config`` itself when it is a ``config_class``, else the ``config_class`` its dict
        form (``get_config``, a legacy one included) describes; an unknown field or
        ``precision`` is a ConfigError naming the field."""
        if not isinstance(config, cls.config_class):
            from mdaf_tf.models import legacy_config

            if not isinstance(config, dict):
                raise config_lib.ConfigError(
                    f"{cls.__name__} takes a {cls.config_class.__name__} or its dict form, "
                    f"got {type(config).__name__}")
            fields = config_lib.field_names(cls.config_class)
            config = config_lib.from_dict(cls.config_class, legacy_config.convert(config, fields))
        if hasattr(config, "precision"):
            check_precision(config.precision)
        return config

    def get_config(self):
        return {"config": config_lib.to_dict(self.config), "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def embedded_inputs(c: ModelConfig) -> tuple[dict, dict]:
    """Keras inputs for the config's declared features and their ``FeatureEmbedding``
    output (widths from ``embedding_sizes``; ``embedding_l2`` * sum of squares of every
    table joins the loss)."""
    declared, sizes, dims = embedding_sizes.resolved(c)
    features = feature_schema.from_config(c.features).record_features()
    inputs = schema.keras_inputs(c.max_seq_len, features)
    if c.embedding_l2 < 0:
        raise config_lib.ConfigError(
            f"config field 'embedding_l2' must be >= 0, got {c.embedding_l2}")
    regularizer = keras.regularizers.L2(c.embedding_l2) if c.embedding_l2 else None
    embedded = FeatureEmbedding(features=declared, vocab_sizes=sizes, embedding_dims=dims,
                                embeddings_regularizer=regularizer,
                                name="feature_embedding")(inputs)
    return inputs, embedded


def static_fields(embedded: dict):
    """The static fields' embeddings concatenated in declaration order, ``[e_user; e_item;
    e_cate]`` (B, 176) for the default schema."""
    return keras.layers.Identity(name="static_fields")(embedded["static"])


def masked_mean(h, mask):
    """Mean of ``h`` (B, T, d) over the positions where ``mask`` (B, T) is true (0 if none)."""
    weights = keras.ops.cast(mask, h.dtype)[..., None]
    total = keras.ops.sum(h * weights, axis=1)
    return total / keras.ops.maximum(keras.ops.sum(weights, axis=1), 1.0)


def history_with_target(embedded: dict):
    """The history tokens with the target's token (``embedded["target"]``, e.g. its
    (item, category)) appended last.

    Returns ``(tokens (B, L + 1, d_token), mask (B, L + 1))``; the target's position is
    always valid.
    """
    target = embedded["target"]
    tokens = keras.layers.Concatenate(axis=1, name="history_with_target")(
        [embedded["history"], keras.layers.Reshape((1, -1))(target)]
    )
    mask = embedded["history_mask"]
    mask = keras.ops.concatenate([mask, keras.ops.ones_like(mask[:, :1])], axis=1)
    return tokens, mask


def target_match(c: ModelConfig, inputs: dict, embedded: dict):
    """``TargetHistoryMatch`` over every history field that shares a static field's ids
    (item and category by default): (B, fields * kernels)."""
    pairs = [(f.static, f.name) for f in feature_schema.from_config(c.features).sequence
             if f.static is not None]
    target = keras.ops.stack([inputs[static] for static, _ in pairs], axis=-1)
    history = keras.ops.stack([inputs[hist] for _, hist in pairs], axis=-1)
    return TargetHistoryMatch(name="target_match")(
        target, history, padding_mask=embedded["history_mask"])


def static_branch(c: StaticBranchConfig, embedded: dict):
    """MDAF's static branch: ``DCNv3(Dense_hidden([e_user; e_item; e_cate]))`` (B, hidden)."""
    static = keras.layers.Dense(c.hidden_dim, name="static_projection")(static_fields(embedded))
    return DCNv3(
        num_layers=c.num_cross_layers,
        dropout=c.dropout,
        use_layer_norm=c.cross_layer_norm,
        name="static_dcnv3",
    )(static)


def sequence_encoder(c: SequenceBranchConfig, pooling: str) -> Mamba4RecEncoder:
    """MDAF's sequence branch: the Mamba4Rec encoder with ``pooling``."""
    return Mamba4RecEncoder(
        d_model=c.hidden_dim,
        num_layers=c.num_mamba_layers,
        d_state=c.d_state,
        d_conv=c.d_conv,
        expand=c.expand,
        ffn_multiplier=c.ffn_multiplier,
        dropout=c.dropout,
        pooling=pooling,
        scan=c.scan,
        dtype=c.precision,
        name="sequence_encoder",
    )


def click_outputs(logit) -> dict:
    """``{"logit": z, "probability": sigmoid(z)}``, both (B, 1) and float32 whatever the
    precision: the loss reads the logit (a numerically stable cross-entropy), serving and
    evaluation the probability."""
    logit = keras.layers.Identity(dtype="float32", name="logit")(logit)
    return {"logit": logit,
            "probability": keras.layers.Activation("sigmoid", dtype="float32",
                                                   name="probability")(logit)}


def output_head(c: ModelConfig, hidden_units, features) -> dict:
    """``click_outputs(MLP(features))``: the output MLP ends in one linear unit."""
    logit = MLP(
        hidden_units=hidden_units,
        dropout=c.dropout,
        output_units=1,
        output_dtype="float32",
        name="output_mlp",
    )(features)
    return click_outputs(logit)
