"""Vocabulary sizes and embedding widths of a ``ModelConfig``'s declared features.

Widths: ``embedding_dims[name]`` when the config gives one; else a base width (the seed's user
80 / item 64 / category 32, the fourth-root rule ``embedding_dim_rule`` for any other
vocabulary), narrowed by the width rule ``width_cap`` when the training split's size is known
(``with_width_rule``, which the runner applies and ``config.json`` records): a vocabulary whose
rows are each seen in a few dozen training examples gets a few dimensions, where the seed's
widths let the model memorise ids (README, "The embedding width rule" and "Many users with
short logs").
"""

from __future__ import annotations

import dataclasses
import math

from mdaf_tf.config import ConfigError
from mdaf_tf.data import feature_schema, schema
from mdaf_tf.models.config import ModelConfig

NUMERIC_EMBEDDING_DIM = 16
SEED_WIDTHS = {schema.USER_VOCAB: 80, schema.ITEM_VOCAB: 64, schema.CATE_VOCAB: 32}
EXAMPLES_PER_DIMENSION = 2  # training examples a vocabulary row needs for each dimension
MIN_RULE_WIDTH = 4
WIDTH_RULE = ("width: min(base width, training examples per vocabulary row / "
              f"{EXAMPLES_PER_DIMENSION} rounded down to a multiple of 8, at least "
              f"{MIN_RULE_WIDTH})")


def embedding_dim_rule(vocab_size: int) -> int:
    """6 * V^(1/4) rounded up to a multiple of 8, within [8, 64] (the fourth-root rule of
    thumb of Google's feature-column guide, capped at the seed's item width): a 26-row hour
    vocabulary gets 16, a 1,000-row one 40, a million-row one 64."""
    return int(min(64, max(8, 8 * math.ceil(6 * vocab_size ** 0.25 / 8))))


def width_cap(train_examples: int, vocab_size: int) -> int:
    """The widest embedding the width rule gives a vocabulary of ``vocab_size`` rows (PAD and
    OOV included) on ``train_examples`` training examples: (examples per id row) / 2 rounded
    down to a multiple of 8, and at least 4. 42 examples a row (3,500 users with 60
    impressions) -> 16; 18 (8,000 items) -> 8; 126 -> 56; 252 -> 120."""
    per_row = train_examples / max(1, vocab_size - 2)
    width = 8 * int(per_row / EXAMPLES_PER_DIMENSION // 8)
    return max(MIN_RULE_WIDTH, width)


def vocab_size(c: ModelConfig, vocab: str) -> int:
    if vocab in c.vocab_sizes:
        return int(c.vocab_sizes[vocab])
    raise ConfigError(f"config field 'vocab_sizes' has no size for vocabulary '{vocab}'")


def embedding_dim(c: ModelConfig, vocab_or_field: str, size: int | None) -> int:
    if vocab_or_field in c.embedding_dims:
        return int(c.embedding_dims[vocab_or_field])
    if vocab_or_field in SEED_WIDTHS:
        return SEED_WIDTHS[vocab_or_field]
    return NUMERIC_EMBEDDING_DIM if size is None else embedding_dim_rule(size)


def with_width_rule(c: ModelConfig, train_examples: int) -> tuple[ModelConfig, dict]:
    """``c`` with every vocabulary width it leaves open set to min(base width, ``width_cap``),
    and {vocabulary: width} of those it set (in ``embedding_dims``)."""
    s = feature_schema.from_config(c.features)
    chosen = {v: min(embedding_dim(c, v, vocab_size(c, v)),
                     width_cap(train_examples, vocab_size(c, v)))
              for v in s.vocabularies if v not in c.embedding_dims}
    return dataclasses.replace(c, embedding_dims={**c.embedding_dims, **chosen}), chosen


def resolved(c: ModelConfig) -> tuple[dict, dict, dict]:
    """(declared features as a dict, {vocabulary: size}, {vocabulary or numeric field: width})."""
    s = feature_schema.from_config(c.features)
    sizes = {v: vocab_size(c, v) for v in s.vocabularies}
    dims = {v: embedding_dim(c, v, n) for v, n in sizes.items()}
    dims.update({f.name: embedding_dim(c, f.name, None)
                 for f in s.static if f.kind == feature_schema.NUMERIC})
    return s.to_dict(), sizes, dims
