"""Models: MDAF, its ablations and the baselines, each one file registered by name.

``build_model(name, config)`` builds any registered name (``model_names()``, also
``MODEL_NAMES``); each model's class and config class are exported too (``from mdaf_tf.models
import MDAF, MDAFConfig``). The names come from the ``@register_model`` decorators
(``mdaf_tf.models.registry``), so asking for a class or ``MODEL_NAMES`` imports the model
modules (and Keras); ``from mdaf_tf.models import build_model`` alone does not.
"""

from __future__ import annotations

import importlib
import importlib.util

from mdaf_tf.models.config import ModelConfig
from mdaf_tf.models.parameters import count_parameters, parameter_table
from mdaf_tf.models.registry import (
    build_model,
    comparison_names,
    make_config,
    model_class,
    model_names,
    register_model,
)

__all__ = [
    "MODEL_NAMES",
    "ModelConfig",
    "build_model",
    "comparison_names",
    "count_parameters",
    "make_config",
    "model_class",
    "model_names",
    "parameter_table",
    "register_model",
]


def _exported_classes() -> dict[str, type]:
    classes = {}
    for name in model_names():
        cls = model_class(name)
        classes[cls.__name__] = cls
        classes[cls.config_class.__name__] = cls.config_class
    return classes


def __getattr__(name: str):  # PEP 562: the registered classes, looked up on first use
    if importlib.util.find_spec(f"{__name__}.{name}") is not None:  # a submodule
        return importlib.import_module(f"{__name__}.{name}")
    if name == "MODEL_NAMES":
        return model_names()
    classes = _exported_classes()
    if name in classes:
        return classes[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__) | set(_exported_classes()))
