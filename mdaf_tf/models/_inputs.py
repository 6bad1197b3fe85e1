"""Pieces every model of the comparison shares: the schema's inputs and their embeddings."""

from __future__ import annotations

import keras

from mdaf_tf import schema
from mdaf_tf.config import ModelConfig
from mdaf_tf.layers.feature_embedding import FeatureEmbedding


def embedded_inputs(c: ModelConfig) -> tuple[dict, dict]:
    """The schema's Keras inputs and their ``FeatureEmbedding`` output (MDAF's sizes)."""
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
    return inputs, embedded


def static_fields(embedded: dict):
    """``[e_user; e_item; e_cate]`` (B, user_dim + item_dim + cate_dim)."""
    return keras.layers.Concatenate(name="static_fields")(
        [embedded["user"], embedded["item"], embedded["cate"]]
    )


def history_with_target(embedded: dict):
    """The history tokens with the target's (item, category) token appended last.

    Returns ``(tokens (B, L + 1, item_dim + cate_dim), mask (B, L + 1))``; the target's
    position is always valid.
    """
    target = keras.layers.Concatenate()([embedded["item"], embedded["cate"]])
    tokens = keras.layers.Concatenate(axis=1, name="history_with_target")(
        [embedded["history"], keras.layers.Reshape((1, -1))(target)]
    )
    mask = embedded["history_mask"]
    mask = keras.ops.concatenate([mask, keras.ops.ones_like(mask[:, :1])], axis=1)
    return tokens, mask
