"""Vocabulary sizes and embedding widths of a ``ModelConfig``'s declared features.

Widths: ``embedding_dims[name]`` when the config gives one (a vocabulary's name, or a numeric
field's); else the seed's user 80 / item 64 / category 32 for those vocabularies; else the
rule ``embedding_dim_rule``.
"""

from __future__ import annotations

import math

from mdaf_tf import feature_schema, schema
from mdaf_tf.config import ConfigError, ModelConfig

NUMERIC_EMBEDDING_DIM = 16
_OWN_FIELDS = {schema.USER_VOCAB: ("user_vocab_size", "user_embedding_dim"),
               schema.ITEM_VOCAB: ("item_vocab_size", "item_embedding_dim"),
               schema.CATE_VOCAB: ("cate_vocab_size", "cate_embedding_dim")}


def embedding_dim_rule(vocab_size: int) -> int:
    """6 * V^(1/4) rounded up to a multiple of 8, within [8, 64] (the fourth-root rule of
    thumb of Google's feature-column guide, capped at the seed's item width): a 26-row hour
    vocabulary gets 16, a 1,000-row one 40, a million-row one 64."""
    return int(min(64, max(8, 8 * math.ceil(6 * vocab_size ** 0.25 / 8))))


def vocab_size(c: ModelConfig, vocab: str) -> int:
    if vocab in c.vocab_sizes:
        return int(c.vocab_sizes[vocab])
    if vocab in _OWN_FIELDS:
        return int(getattr(c, _OWN_FIELDS[vocab][0]))
    raise ConfigError(f"config field 'vocab_sizes' has no size for vocabulary '{vocab}'")


def embedding_dim(c: ModelConfig, vocab_or_field: str, size: int | None) -> int:
    if vocab_or_field in c.embedding_dims:
        return int(c.embedding_dims[vocab_or_field])
    if vocab_or_field in _OWN_FIELDS:
        return int(getattr(c, _OWN_FIELDS[vocab_or_field][1]))
    return NUMERIC_EMBEDDING_DIM if size is None else embedding_dim_rule(size)


def resolved(c: ModelConfig) -> tuple[dict, dict, dict]:
    """(declared features as a dict, {vocabulary: size}, {vocabulary or numeric field: width})."""
    s = feature_schema.from_config(c.features)
    sizes = {v: vocab_size(c, v) for v in s.vocabularies}
    dims = {v: embedding_dim(c, v, n) for v, n in sizes.items()}
    dims.update({f.name: embedding_dim(c, f.name, None)
                 for f in s.static if f.kind == feature_schema.NUMERIC})
    return s.to_dict(), sizes, dims
