"""Build any model of the project by name from one ``ModelConfig``."""

from __future__ import annotations

import dataclasses

from mdaf_tf.config import ModelConfig

# name -> (module, class, ModelConfig overrides). Modules load lazily so that building one
# model never imports the others.
_MODELS = {
    "mdaf": ("mdaf_tf.models.mdaf", "MDAF", {}),
    "mdaf_ta": ("mdaf_tf.models.mdaf", "MDAF", {"target_in_sequence": True}),
    "mdaf_match": ("mdaf_tf.models.mdaf", "MDAF", {"target_match": True}),
    "mdaf_concat": ("mdaf_tf.models.mdaf", "MDAF", {"fusion": "concat"}),
    "mdaf_fixed": ("mdaf_tf.models.mdaf", "MDAF", {"fusion": "fixed"}),
    "dcnv3": ("mdaf_tf.models.static_only", "StaticOnly", {}),
    "mdaf_seq": ("mdaf_tf.models.sequence_only", "SequenceOnly", {}),
    "bst": ("mdaf_tf.models.bst", "BST", {}),
    "mamba4rec": ("mdaf_tf.models.mamba4rec", "Mamba4Rec", {}),
    "dcnv2": ("mdaf_tf.models.dcnv2", "DCNv2", {}),
    "autoint": ("mdaf_tf.models.autoint", "AutoInt", {}),
    "din": ("mdaf_tf.models.din", "DIN", {}),
    "dnn": ("mdaf_tf.models.dnn", "DNN", {}),
    "dnn_match": ("mdaf_tf.models.dnn", "DNN", {"target_match": True}),
}

MODEL_NAMES = tuple(_MODELS)


def model_class(name: str):
    import importlib

    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; one of: {', '.join(_MODELS)}")
    module, class_name, _ = _MODELS[name]
    return getattr(importlib.import_module(module), class_name)


def resolve_config(name: str, config: ModelConfig) -> ModelConfig:
    """The config ``name`` is built with: ``config`` plus the variant's fixed overrides."""
    model_class(name)  # validates the name
    return dataclasses.replace(config, **_MODELS[name][2])


def build_model(name: str, config: ModelConfig):
    """A ``keras.Model`` over the schema's inputs with a ``"probability"`` output."""
    return model_class(name)(resolve_config(name, config), name=name)
