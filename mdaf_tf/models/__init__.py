"""Models: MDAF, its ablations and the baselines, built by name from a ModelConfig."""

from mdaf_tf.models.parameters import count_parameters, parameter_table
from mdaf_tf.models.registry import MODEL_NAMES, build_model, resolve_config

__all__ = ["MODEL_NAMES", "build_model", "count_parameters", "parameter_table", "resolve_config"]
