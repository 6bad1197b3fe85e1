"""The one list of model names: ``@register_model`` on each model class.

A model is one file: its config dataclass (composed of ``mdaf_tf.models.config``'s parts) and
its class, registered by name::

    @dataclasses.dataclass
    class WideConfig(DeepMLPConfig):
        pass

    @register_model("wide")
    @register_model("wide_match", fixed={"target_match": True}, in_comparison=False)
    class Wide(ConfiguredModel):
        config_class = WideConfig
        ...

Every name the project knows (``model_names()``, ``mdaf_tf.models``'s exports, compare's
default list, the commands' ``--model``) comes from these registrations. The built-in models are
the modules of this package, imported on first need. A model in a module of your own is named
``MODULE:NAME`` (``--model my_models:wide``): the module is imported, and registers ``NAME``,
whenever the name is looked up, so a run directory or an export that records the name can be
read back by any command. ``register_model`` also registers the class with Keras's
serialisation (``package`` = the module's top-level package), so ``.keras`` files load.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from pathlib import Path

from mdaf_tf.config import ConfigError, field_names
from mdaf_tf.models.config import ModelConfig


@dataclasses.dataclass(frozen=True)
class Registration:
    name: str
    model_class: type
    fixed: dict  # config fields this name fixes (a variant of the class)
    in_comparison: bool  # in compare's default --models

    @property
    def config_class(self) -> type:
        return self.model_class.config_class


_REGISTERED: dict[str, Registration] = {}
_builtins_loaded = False


def register_model(name: str, *, fixed: dict | None = None, in_comparison: bool = True):
    """Class decorator: register the model class under ``name`` (a variant when ``fixed``
    sets some of its config's fields). ``in_comparison``: among compare's default models."""

    def decorate(cls):
        config_class = getattr(cls, "config_class", None)
        if not (isinstance(config_class, type) and issubclass(config_class, ModelConfig)
                and dataclasses.is_dataclass(config_class)):
            raise TypeError(f"{cls.__name__}.config_class must be a dataclass subclass of "
                            "mdaf_tf.models.config.ModelConfig")
        unknown = sorted(set(fixed or {}) - field_names(config_class))
        if unknown:
            raise TypeError(f"model {name!r}: {config_class.__name__} has no field(s) "
                            f"{', '.join(unknown)}")
        previous = _REGISTERED.get(name)
        if previous is not None and _qualname(previous.model_class) != _qualname(cls):
            raise ValueError(f"model name {name!r} is already registered by "
                             f"{_qualname(previous.model_class)}")
        _REGISTERED[name] = Registration(name, cls, dict(fixed or {}), in_comparison)
        _keras_serializable(cls)
        return cls

    return decorate


def _qualname(cls) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _keras_serializable(cls) -> None:
    import keras

    package = cls.__module__.split(".")[0]
    key = f"{package}>{cls.__name__}"
    if keras.saving.get_registered_object(key) is not cls:
        keras.saving.register_keras_serializable(package=package)(cls)


def _load_builtins() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    package = __name__.rpartition(".")[0]
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
    _builtins_loaded = True


def registration(name: str) -> Registration:
    """The registration of ``name`` (``NAME`` or ``MODULE:NAME``); a ConfigError names the
    model and the known names otherwise."""
    _load_builtins()
    module, _, short = name.rpartition(":")
    if module:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ConfigError(f"model {name!r}: cannot import module {module!r} ({e})") from None
    if short not in _REGISTERED:
        where = f"module {module!r} registers" if module else "there is"
        raise ConfigError(f"unknown model {name!r} ({where} no model {short!r}); one of: "
                          f"{', '.join(model_names())}")
    return _REGISTERED[short]


def model_names() -> tuple[str, ...]:
    """Every registered name, the built-in models' first (in their modules' order)."""
    _load_builtins()
    return tuple(_REGISTERED)


def comparison_names() -> tuple[str, ...]:
    """compare's default ``--models``."""
    return tuple(n for n in model_names() if _REGISTERED[n].in_comparison)


def model_class(name: str) -> type:
    return registration(name).model_class


def config_fields(name: str) -> frozenset[str]:
    return field_names(registration(name).config_class)


def make_config(name: str, values=None, *, strict: bool = True) -> ModelConfig:
    """The config ``name`` is built with: its class's defaults, then ``values``, then the
    fields the name fixes.

    ``values`` is a dict of fields (a field the model does not read is a ConfigError naming
    it, or with ``strict=False`` is left out: compare's one ``--config`` for several models)
    or a config of any model, whose fields ``name`` reads it takes (``make_config("dnn",
    mdaf_config)`` keeps the embedding spec and dropout). A model section written before each
    model had its own config (one ``ModelConfig`` of 41 fields) is converted
    (``mdaf_tf.models.legacy_config``)."""
    from mdaf_tf import config as config_lib
    from mdaf_tf.models.legacy_config import convert

    reg = registration(name)
    cls = reg.config_class
    if values is None:
        values = {}
    elif dataclasses.is_dataclass(values):
        values = {name: getattr(values, name) for name in field_names(values)}
        strict = False
    elif not isinstance(values, dict):
        raise ConfigError(f"the model config must be an object of fields, got {values!r}")
    known = field_names(cls)
    values = convert(values, known)
    unknown = sorted(set(values) - known)
    if unknown and strict:
        raise ConfigError(
            f"config field(s) {', '.join(unknown)} not read by model {name!r} "
            f"({cls.__name__}: {', '.join(sorted(known))})")
    config = config_lib.from_dict(cls, {k: v for k, v in values.items() if k in known})
    return dataclasses.replace(config, **reg.fixed)


def build_model(name: str, config=None):
    """A ``keras.Model`` over the schema's inputs with a ``"probability"`` output, built from
    ``make_config(name, config)``."""
    reg = registration(name)
    return reg.model_class(make_config(name, config), name=reg.name)
