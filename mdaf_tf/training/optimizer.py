"""AdamW with the seed's recipe: decoupled weight decay, global clip-norm, warmup + cosine.

Weight decay is not applied to biases and normalisation parameters (every variable with at
most one dimension: biases, LayerNorm gamma/beta, the Mamba D skip and dt bias), to the Mamba
state matrix ``A_log`` (mamba-ssm marks ``A_log`` and ``D`` ``_no_weight_decay``: decaying
``A_log`` towards 0 would pull every state's decay rate towards exp(0) = 1) nor to embedding
tables, unless ``TrainConfig.decay_biases_norms_embeddings`` is true.
"""

from __future__ import annotations

import keras

from mdaf_tf.config import TrainConfig
from mdaf_tf.internal_apis import nested_layers
from mdaf_tf.training import recipe
from mdaf_tf.training.schedule import WarmupCosineDecay

# Variables mamba-ssm excludes from weight decay by name (``_no_weight_decay``).
MAMBA_NO_DECAY = ("A_log", "D")


def is_embedding_variable(variable, embedding_ids: set[int]) -> bool:
    return id(variable) in embedding_ids or "embedding" in variable.path.lower()


def is_mamba_no_decay(variable) -> bool:
    return variable.path.rsplit("/", 1)[-1] in MAMBA_NO_DECAY


def no_decay_variables(model: keras.Model) -> list:
    """The trainable variables that are excluded from weight decay by default."""
    embedding_ids = {
        id(v)
        for layer in nested_layers(model)
        if isinstance(layer, keras.layers.Embedding)
        for v in layer.trainable_variables
    }
    return [
        v
        for v in model.trainable_variables
        if len(v.shape) <= 1 or is_embedding_variable(v, embedding_ids) or is_mamba_no_decay(v)
    ]


def build_optimizer(
    config: TrainConfig, model: keras.Model, steps_per_epoch: int
) -> keras.optimizers.AdamW:
    """AdamW over ``model``'s trainable variables, built (slots created) and ready to use; a
    learning rate or warmup left unset in ``config`` comes from the size rule (``recipe``)."""
    learning_rate, warmup_epochs = recipe.schedule_fields(config)
    schedule = WarmupCosineDecay(
        learning_rate,
        warmup_steps=round(warmup_epochs * steps_per_epoch),
        total_steps=max(config.epochs * steps_per_epoch, 1),
    )
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule,
        weight_decay=config.weight_decay,
        beta_1=config.beta_1,
        beta_2=config.beta_2,
        global_clipnorm=config.clipnorm if config.clipnorm > 0 else None,
    )
    if not config.decay_biases_norms_embeddings:
        optimizer.exclude_from_weight_decay(var_list=no_decay_variables(model))
    optimizer.build(model.trainable_variables)
    return optimizer
