"""Typed configuration with the seed thesis's defaults: ``TrainConfig`` (the training
recipe) and the dict round trip every config dataclass shares (``to_dict`` / ``from_dict``,
which is what ``--config FILE.json``, ``config.json`` in a run directory and the tuner's
``best_config.json`` hold). Each model's own config is declared in its file
(``mdaf_tf.models``, composed of ``mdaf_tf.models.config``'s parts).
"""

from __future__ import annotations

import dataclasses
import types
import typing


class ConfigError(ValueError):
    """A configuration field that does not exist or has the wrong type or value."""


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


def field_names(cls) -> frozenset[str]:
    """The field names of config dataclass ``cls`` (or of a config instance)."""
    return frozenset(f.name for f in dataclasses.fields(cls))


def from_dict(cls, values: dict, base=None):
    """Build a config of dataclass ``cls`` from ``values``, checking names and types.

    Fields absent from ``values`` keep their value in ``base`` (or the default).
    """
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - field_names(cls))
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
