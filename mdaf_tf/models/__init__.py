"""Models: MDAF, its ablations and the baselines, built by name from a ModelConfig.

``build_model(name, config)`` builds any of ``MODEL_NAMES``; the classes are exported too
(``from mdaf_tf.models import MDAF``). Like the registry, the package loads a model's module
only when it is first asked for, so ``from mdaf_tf.models import MODEL_NAMES`` (the command
lines' argument parsing) imports neither Keras nor any model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mdaf_tf.lazy import lazy_attributes
from mdaf_tf.models.parameters import count_parameters, parameter_table
from mdaf_tf.models.registry import MODEL_NAMES, build_model, model_class, resolve_config

if TYPE_CHECKING:  # what the lazy attributes below resolve to (for type checkers and IDEs)
    from mdaf_tf.models.autoint import AutoInt
    from mdaf_tf.models.bst import BST
    from mdaf_tf.models.dcnv2 import DCNv2
    from mdaf_tf.models.din import DIN
    from mdaf_tf.models.dnn import DNN
    from mdaf_tf.models.mamba4rec import Mamba4Rec
    from mdaf_tf.models.mdaf import MDAF
    from mdaf_tf.models.sequence_only import SequenceOnly
    from mdaf_tf.models.static_only import StaticOnly

# class name -> module, imported on first attribute access (PEP 562 ``__getattr__``).
_LAZY = {
    "AutoInt": "mdaf_tf.models.autoint",
    "BST": "mdaf_tf.models.bst",
    "DCNv2": "mdaf_tf.models.dcnv2",
    "DIN": "mdaf_tf.models.din",
    "DNN": "mdaf_tf.models.dnn",
    "MDAF": "mdaf_tf.models.mdaf",
    "Mamba4Rec": "mdaf_tf.models.mamba4rec",
    "SequenceOnly": "mdaf_tf.models.sequence_only",
    "StaticOnly": "mdaf_tf.models.static_only",
}

__all__ = [
    "BST",
    "DIN",
    "DNN",
    "MDAF",
    "MODEL_NAMES",
    "AutoInt",
    "DCNv2",
    "Mamba4Rec",
    "SequenceOnly",
    "StaticOnly",
    "build_model",
    "count_parameters",
    "model_class",
    "parameter_table",
    "resolve_config",
]

__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY)
