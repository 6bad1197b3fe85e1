"""Lazily imported package attributes (PEP 562), shared by the packages that re-export
classes whose modules pull in TensorFlow."""

from __future__ import annotations

import importlib


def lazy_attributes(package: str, namespace: dict, modules: dict[str, str]):
    """``(__getattr__, __dir__)`` for a package: ``modules`` maps a public name to the module
    defining it, imported on first access and then cached in ``namespace``."""

    def __getattr__(name: str):
        if name not in modules:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(modules[name]), name)
        namespace[name] = value  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(modules))

    return __getattr__, __dir__
