"""``--config FILE.json``: model and training fields in one JSON file.

Two accepted forms:

* nested (what ``config.json`` in a run directory and the tuner's ``best_config.json`` hold)::

      {"model": {"dropout": 0.2, ...}, "train": {"model": "mdaf", "weight_decay": 1e-5, ...}}

  ``model`` holds fields of the model's own config (``MDAFConfig`` for ``mdaf``, ...),
  ``train`` holds ``TrainConfig`` fields (the model's name is ``train.model``). Other
  top-level keys written by the runner (``seed``, ``versions``, ...) are ignored; any other
  key is an error.
* flat: ``{"dropout": 0.2, "weight_decay": 1e-5, "model": "mdaf"}``; a ``TrainConfig`` field
  goes to ``train``, any other key to ``model``.

Missing fields keep their defaults; a field the model does not read and wrong types are
ConfigErrors naming the file and the field. A model section written before each model had its
own config is converted (``mdaf_tf.models.legacy_config``): every committed ``config.json``
and ``best_config.json`` loads.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from mdaf_tf import config as config_lib
from mdaf_tf.config import ConfigError, TrainConfig
from mdaf_tf.files import write_text_atomic
from mdaf_tf.models.config import ModelConfig

# Informational keys the runner writes beside "model"/"train" in config.json.
RUN_INFO_KEYS = frozenset(
    {
        "seed", "jit_compile", "data_dir", "data_metadata_sha256", "train_examples",
        "val_examples", "test_examples", "effective_batch_size", "steps_per_epoch", "versions",
        "strategy", "replicas", "skipped_shards", "size_rule",
    }
)
_TRAIN_FIELDS = config_lib.field_names(TrainConfig)


def to_json_dict(model_config: ModelConfig, train_config: TrainConfig) -> dict:
    return {"model": config_lib.to_dict(model_config), "train": config_lib.to_dict(train_config)}


def save(path, model_config: ModelConfig, train_config: TrainConfig) -> None:
    """Write the nested form (temporary file + rename)."""
    write_text_atomic(path, json.dumps(to_json_dict(model_config, train_config), indent=2) + "\n")


def parse(values: dict, source: str = "config",
          train_base: TrainConfig | None = None) -> tuple[dict, TrainConfig]:
    """(the model section's fields, the training config) from a dict in either form
    (training fields on top of ``train_base``, else the defaults); ConfigError prefixed with
    ``source``. The model section is checked by ``model_config``, once the model is known."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: must be a JSON object, got {type(values).__name__}")
    try:
        if isinstance(values.get("model"), dict) or isinstance(values.get("train"), dict):
            extra = sorted(set(values) - {"model", "train"} - RUN_INFO_KEYS)
            if extra:
                raise ConfigError(f"unknown top-level key(s): {', '.join(extra)}")
            model_values = values.get("model", {})
            train_values = values.get("train", {})
            for name, section in (("model", model_values), ("train", train_values)):
                if not isinstance(section, dict):
                    raise ConfigError(f"'{name}' must be an object of fields")
        else:
            model_values = {k: v for k, v in values.items() if k not in _TRAIN_FIELDS}
            train_values = {k: v for k, v in values.items() if k in _TRAIN_FIELDS}
        return dict(model_values), config_lib.from_dict(TrainConfig, train_values,
                                                        base=train_base)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def load(path, train_base: TrainConfig | None = None) -> tuple[dict, TrainConfig]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        values = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from None
    return parse(values, str(path), train_base)


def model_config(name: str, values: dict, source: str = "config", *,
                 flags: dict | None = None, strict: bool = True) -> ModelConfig:
    """Model ``name``'s config from a model section's ``values`` (``strict``: a field it does
    not read is an error prefixed with ``source``), with the command-line ``flags`` that are
    not None and that the model reads on top (``--precision`` means nothing to a model
    without 16-bit layers)."""
    from mdaf_tf.models import make_config, registry

    registry.registration(name)  # an unknown model: its own error, not the file's
    try:
        config = make_config(name, values, strict=strict)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    fields = registry.config_fields(name)
    return dataclasses.replace(config, **{k: v for k, v in _given(flags or {}).items()
                                          if k in fields})


def resolve_sections(path, train_overrides: dict,
                     train_preset: dict | None = None) -> tuple[dict, TrainConfig]:
    """(the model section of ``path``, or {} without one; the training config of ``path``,
    or the defaults, with the ``train_overrides`` that are not None on top): how every
    command maps its flags onto ``--config``.

    ``train_preset`` (training fields, e.g. the synthetic default's) sits between the
    defaults and the file: defaults < preset < ``--config`` < flags."""
    base = dataclasses.replace(TrainConfig(), **(train_preset or {}))
    model_values, train_config = load(path, base) if path else ({}, base)
    return model_values, dataclasses.replace(train_config, **_given(train_overrides))


def resolve(path, train_overrides: dict, train_preset: dict | None = None,
            model_overrides: dict | None = None) -> tuple[ModelConfig, TrainConfig]:
    """``resolve_sections`` with the model section made the config of the model it names
    (``train.model``), the ``model_overrides`` (flags) that are not None on top."""
    model_values, train_config = resolve_sections(path, train_overrides, train_preset)
    return (model_config(train_config.model, model_values, str(path or "config"),
                         flags=model_overrides),
            train_config)


def _given(overrides: dict) -> dict:
    return {k: v for k, v in overrides.items() if v is not None}
