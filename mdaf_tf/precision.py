"""Numeric precision of a model: which Keras dtype policy its per-token layers take.

The ``precision`` field of a model's config (the models with per-token layers have one,
``mdaf_tf.models.config.PrecisionConfig``) names one of ``PRECISIONS``:

- ``"float32"`` (the default): everything in float32.
- ``"mixed_bfloat16"``: the layers that run once per behaviour token -- the sequence
  encoders (MDAF's and Mamba4Rec's Mamba encoder, BST's Transformer, DIN's target attention)
  -- take Keras's ``mixed_bfloat16`` policy: float32 variables, bfloat16 computations. Faster
  where the hardware multiplies bfloat16 natively (CPUs with AVX512-BF16 or AMX, recent GPUs,
  TPUs); no loss scaling is needed (bfloat16 has float32's exponent range).
- ``"mixed_float16"``: the same with float16 (GPUs); the optimizer is then wrapped in Keras's
  ``LossScaleOptimizer`` so that small gradients do not underflow.

The per-example layers (embedding lookups, the static branch and its feature crosses, the
fusion gate, the output MLP) stay float32 under every policy: at 50 behaviours they are a few
percent of MDAF's FLOPs, and on the synthetic default, with every layer in bfloat16, MDAF's
best validation AUC fell 0.0031 below float32's (README, "Mixed precision"). Models without
per-token layers (``dcnv3``, ``dcnv2``, ``autoint``, ``dnn``) have no ``precision`` field: they
compute in float32, and the commands' ``--precision`` leaves them as they are. Inside the
encoders the selective scan's state recurrence and the attention softmaxes run in float32, and
every model's logit, probability and gate are float32.

Example:

```python
from mdaf_tf import models

config = {"vocab_sizes": {"user": 10, "item": 20, "cate": 5}, "max_seq_len": 8,
          "precision": "mixed_bfloat16"}
model = models.build_model("mdaf", config)
print(model.get_layer("sequence_encoder").compute_dtype)  # bfloat16
print(model.get_layer("static_projection").compute_dtype)  # float32
print(model.output["probability"].dtype)                   # float32
```
"""

from __future__ import annotations

# Nothing here imports Keras at module level: command-line parsers read PRECISIONS before any
# TensorFlow start-up.

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
DEFAULT_PRECISION = "float32"


def check_precision(precision: str) -> str:
    """``precision`` itself, or a ValueError naming the field and the choices."""
    if precision not in PRECISIONS:
        raise ValueError(
            f"config field 'precision' must be one of {', '.join(PRECISIONS)}, got {precision!r}"
        )
    return precision


def float32_at_least(dtype) -> str:
    """``"float32"`` for a 16-bit float dtype, ``dtype``'s own name otherwise (float32,
    float64): what the precision-sensitive parts -- the selective scan's recurrence, a Mamba
    block's inside, attention softmaxes -- compute in under any policy."""
    import keras

    name = keras.backend.standardize_dtype(dtype)
    return "float32" if name in ("bfloat16", "float16") else name


def needs_loss_scaling(model) -> bool:
    """Whether ``model`` computes in float16, whose gradients need loss scaling."""
    from mdaf_tf.internal_apis import nested_layers

    return any(layer.dtype_policy.compute_dtype == "float16"
               for layer in [model, *nested_layers(model)])
