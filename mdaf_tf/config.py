"""Typed configuration with the seed thesis's defaults.

``ModelConfig`` describes every model (MDAF, its ablations and the baselines share the
embedding sizes and the schema); ``TrainConfig`` is the training recipe. Both round-trip
through plain dicts (``to_dict`` / ``from_dict``), which is what ``--config FILE.json``,
``config.json`` in a run directory and the tuner's ``best_config.json`` hold.
"""

from __future__ import annotations

import dataclasses
import types
import typing

from mdaf_tf import schema
from mdaf_tf.precision import DEFAULT_PRECISION


class ConfigError(ValueError):
    """A configuration field that does not exist or has the wrong type or value."""


@dataclasses.dataclass
class ModelConfig:
    # The dataset's declared features (mdaf_tf.feature_schema, filled from its metadata);
    # None: the default user, item and category with a history of item and category.
    features: dict | None = None
    # Vocabulary sizes (including the PAD and OOV rows); filled from the data's metadata.
    # The user, item and cate vocabularies have their own fields; vocab_sizes holds the
    # others (and, when filled from metadata, all of them).
    user_vocab_size: int = 0
    item_vocab_size: int = 0
    cate_vocab_size: int = 0
    vocab_sizes: dict = dataclasses.field(default_factory=dict)
    max_seq_len: int = schema.DEFAULT_MAX_SEQ_LEN
    # Embeddings (seed: user 80, item 64, category 32; static concat -> 128). None: the
    # seed's width, narrowed by the width rule where the training split has few examples
    # per vocabulary row (mdaf_tf.models.embedding_sizes; the runner fills it in and
    # config.json records it). Any other vocabulary or numeric field: embedding_dims[its
    # name], else the same rules.
    user_embedding_dim: int | None = None
    item_embedding_dim: int | None = None
    cate_embedding_dim: int | None = None
    embedding_dims: dict = dataclasses.field(default_factory=dict)
    # L2 penalty on every embedding table, added to the loss (FuxiCTR's
    # embedding_regularizer); 0 = none.
    embedding_l2: float = 0.0
    hidden_dim: int = 128
    # Static branch: DCNv3 = LCN + ECN.
    num_cross_layers: int = 3
    cross_layer_norm: bool = True
    # Sequence branch: Mamba4Rec.
    num_mamba_layers: int = 2
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    ffn_multiplier: int = 4
    pooling: str = "mean"  # "mean" (MDAF) or "last" (Mamba4Rec)
    scan: str = "auto"  # "auto", "fast", "chunked", "stepwise" or "reference"
    target_in_sequence: bool = False  # mdaf_ta: append the target token, pool the last
    # mdaf_match / dnn_match: recency-weighted counts of the behaviours sharing the target's
    # ids (layers.TargetHistoryMatch, SIM's hard search) join the sequence representation.
    target_match: bool = False
    # Fusion and output.
    fusion: str = "gate"  # "gate", "concat" or "fixed"
    fixed_gate_weight: float = 0.5
    gate_hidden: int = 128
    output_hidden: tuple[int, ...] = (64,)
    dropout: float = 0.25
    # Baselines.
    autoint_layers: int = 3
    autoint_heads: int = 2
    autoint_attention_dim: int = 32
    dcnv2_layers: int = 3
    dcnv2_low_rank: int = 0  # 0 = full-rank cross
    dcnv2_num_experts: int = 1
    deep_hidden: tuple[int, ...] = (256, 128)
    bst_heads: int = 8
    bst_layers: int = 1
    # DIN's local activation unit: hidden widths of its MLP (DIN's 80-40).
    din_attention_hidden: tuple[int, ...] = (80, 40)
    # Its hidden activation: "dice" (FuxiCTR's DIN default) or a Keras activation name.
    din_attention_activation: str = "dice"
    # Softmax-normalised attention weights (False: DIN's unnormalised weights).
    din_use_softmax: bool = False
    # Numeric precision: "float32", "mixed_bfloat16" or "mixed_float16" (mdaf_tf.precision).
    precision: str = DEFAULT_PRECISION


@dataclasses.dataclass
class TrainConfig:
    model: str = "mdaf"
    epochs: int = 10
    # None: chosen from the training split's size by the size rule (training/recipe.py):
    # the seed's 2048 / 3e-4 / 2 of 10 epochs on a thesis-sized split.
    batch_size: int | None = None
    seed: int = 42
    learning_rate: float | None = None
    beta_1: float = 0.9
    beta_2: float = 0.999
    weight_decay: float = 3e-5
    decay_biases_norms_embeddings: bool = False
    warmup_epochs: float | None = None  # None: 20% of the epochs
    clipnorm: float = 1.0
    label_smoothing: float = 0.05
    early_stopping_patience: int = 3
    max_steps_per_epoch: int = 0  # 0 = the whole split
    jit_compile: str = "auto"  # "auto", "true" or "false"
    strategy: str = "default"  # "default", "mirrored" or "multiworker"
    deterministic: bool = False
    # Mid-epoch backups for --resume: "N" steps, "Ns"/"Nm"/"Nh" of wall time, "0" off
    # (epoch ends are always backed up). See backup_interval().
    backup_every: str = "10m"


def _coerce(name: str, value, hint):
    origin = typing.get_origin(hint)
    if origin is types.UnionType:  # "X | None": None, or a value of X
        inner = next(a for a in typing.get_args(hint) if a is not type(None))
        return None if value is None else _coerce(name, value, inner)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise ConfigError(f"config field '{name}' must be a list of integers, got {value!r}")
        return tuple(value)
    if hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config field '{name}' must be a JSON object, got {value!r}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config field '{name}' must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config field '{name}' must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config field '{name}' must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"config field '{name}' must be a string, got {value!r}")
        return value
    return value


def from_dict(cls, values: dict, base=None):
    """Build a config of dataclass ``cls`` from ``values``, checking names and types.

    Fields absent from ``values`` keep their value in ``base`` (or the default).
    """
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown {cls.__name__} field(s): {', '.join(unknown)}"
        )
    current = dataclasses.asdict(base) if base is not None else {}
    for name, value in values.items():
        current[name] = _coerce(name, value, hints[name])
    return cls(**current)


def to_dict(config) -> dict:
    """A JSON-ready dict (tuples become lists)."""
    return {
        k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()
    }


def check_positive(config, names, *, as_flags: bool = False) -> None:
    """A ConfigError naming the first of ``names`` that is set (not None) and below 1, as
    the command-line flag (``--batch-size``) with ``as_flags``."""
    for name in names:
        value = getattr(config, name)
        if value is not None and value < 1:
            label = f"--{name.replace('_', '-')}" if as_flags else f"config field '{name}'"
            raise ConfigError(f"{label} must be >= 1, got {value}")


def backup_interval(value: str) -> tuple[int, float]:
    """``TrainConfig.backup_every`` as (steps, seconds): "500" -> (500, 0), "10m" -> (0, 600),
    "0" -> (0, 0). A ConfigError names the field otherwise."""
    text = str(value).strip().lower()
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    try:
        if text and text[-1] in units:
            seconds = float(text[:-1]) * units[text[-1]]
            if seconds >= 0:
                return 0, seconds
        elif int(text) >= 0:
            return int(text), 0.0
    except ValueError:
        pass
    raise ConfigError(f"config field 'backup_every' must be steps (500) or a duration (30s, 10m, "
                      f"1h), got {value!r}")
