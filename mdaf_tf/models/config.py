"""The parts a model's config is composed of.

Each model declares its own config dataclass in its own file, composed of these parts (dataclass
inheritance: a part's fields are declared once, here), so that a model's config holds only the
fields the model reads::

    @dataclasses.dataclass
    class DNNConfig(DeepMLPConfig, TargetMatchConfig):   # mdaf_tf/models/dnn.py
        pass

``ModelConfig`` is what every model reads: the declared features, their vocabularies and
embedding widths, the history length and dropout. Its data facts (``features``,
``vocab_sizes``, ``max_seq_len``) are filled from a dataset's metadata by the runner.
"""

from __future__ import annotations

import dataclasses

from mdaf_tf.data import schema
from mdaf_tf.precision import DEFAULT_PRECISION


@dataclasses.dataclass
class ModelConfig:
    """The embedding spec and dropout, read by every model."""

    # The dataset's declared features (mdaf_tf.data.feature_schema, filled from its metadata);
    # None: the default user, item and category with a history of item and category.
    features: dict | None = None
    # {vocabulary: rows, PAD and OOV included}, filled from the data's metadata.
    vocab_sizes: dict = dataclasses.field(default_factory=dict)
    max_seq_len: int = schema.DEFAULT_MAX_SEQ_LEN
    # {vocabulary or numeric field: width}; a vocabulary left out gets the seed's width (user
    # 80, item 64, category 32) or the fourth-root rule, narrowed by the width rule where the
    # training split has few examples per row (mdaf_tf.models.embedding_sizes; the runner
    # fills it in and config.json records it).
    embedding_dims: dict = dataclasses.field(default_factory=dict)
    # L2 penalty on every embedding table, added to the loss (FuxiCTR's
    # embedding_regularizer); 0 = none.
    embedding_l2: float = 0.0
    dropout: float = 0.25


@dataclasses.dataclass
class PrecisionConfig(ModelConfig):
    """Models with per-token layers: the dtype policy those layers take."""

    # "float32", "mixed_bfloat16" or "mixed_float16" (mdaf_tf.precision).
    precision: str = DEFAULT_PRECISION


@dataclasses.dataclass
class HiddenWidthConfig(ModelConfig):
    hidden_dim: int = 128  # MDAF's branch width


@dataclasses.dataclass
class StaticBranchConfig(HiddenWidthConfig):
    """MDAF's static branch, DCNv3 = LCN + ECN (arXiv:2407.13349)."""

    num_cross_layers: int = 3
    cross_layer_norm: bool = True


@dataclasses.dataclass
class SequenceBranchConfig(HiddenWidthConfig, PrecisionConfig):
    """MDAF's sequence branch, the Mamba4Rec encoder (arXiv:2403.03900)."""

    num_mamba_layers: int = 2
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    ffn_multiplier: int = 4
    scan: str = "auto"  # "auto", "fast", "chunked", "stepwise" or "reference"


@dataclasses.dataclass
class OutputMLPConfig(ModelConfig):
    """MDAF's output MLP (and its ablations')."""

    output_hidden: tuple[int, ...] = (64,)


@dataclasses.dataclass
class DeepMLPConfig(ModelConfig):
    """The baselines' MLP."""

    deep_hidden: tuple[int, ...] = (256, 128)


@dataclasses.dataclass
class TargetMatchConfig(ModelConfig):
    # Recency-weighted counts of the behaviours sharing the target's ids
    # (layers.TargetHistoryMatch, SIM's hard search) join the model's features.
    target_match: bool = False


def fill_model_config(model_config: ModelConfig, meta: dict) -> ModelConfig:
    """``model_config`` with the data facts of a dataset's ``metadata.json`` (``meta``): its
    declared features, vocabulary sizes and history length."""
    vocab = meta.get("vocab_sizes") or {}
    values = {
        "max_seq_len": int(meta.get("max_seq_len", model_config.max_seq_len)),
        "features": meta.get("schema"),
        "vocab_sizes": {name: int(size) for name, size in vocab.items()},
    }
    return dataclasses.replace(model_config, **values)
