"""Embedding tables for the schema's id features."""

from __future__ import annotations

import keras
from keras import ops

from mdaf_tf import schema
from mdaf_tf.layers._initializers import fresh


@keras.saving.register_keras_serializable(package="mdaf_tf")
class FeatureEmbedding(keras.layers.Layer):
    """Embeds the schema's model-input dict (user, target item/category, behaviour history).

    The item and category tables are shared between the target and the history, as in the
    MDAF seed thesis (user 80-d, item 64-d, category 32-d by default). Row ``schema.PAD_ID``
    (0) is padding: history positions whose item id is ``PAD_ID`` are reported invalid in
    ``history_mask`` and their tokens are zeroed, so padded ids never reach later layers.

    Inputs: dict keyed by ``schema`` names (extra keys are ignored)::

        user_id (B,), item_id (B,), cate_id (B,), hist_item_id (B, L), hist_cate_id (B, L)

    Returns: dict with
        ``"user"`` (B, user_dim), ``"item"`` (B, item_dim), ``"cate"`` (B, cate_dim),
        ``"history"`` (B, L, item_dim + cate_dim) = concat(item_emb, cate_emb) * mask,
        ``"history_mask"`` (B, L) bool = hist_item_id != PAD_ID.

    The sub-layers are named ``user_embedding``, ``item_embedding`` and ``cate_embedding``,
    so every table's variable path contains ``"embedding"`` (for weight-decay exclusion).

    Example:

    ```python
    import numpy as np
    from mdaf_tf.layers import FeatureEmbedding

    embed = FeatureEmbedding(user_vocab_size=100, item_vocab_size=500, cate_vocab_size=20)
    batch, length = 4, 6
    rng = np.random.default_rng(0)
    inputs = {
        "user_id": rng.integers(2, 100, size=(batch,)),
        "item_id": rng.integers(2, 500, size=(batch,)),
        "cate_id": rng.integers(2, 20, size=(batch,)),
        "hist_item_id": rng.integers(0, 500, size=(batch, length)),  # id 0 is padding
        "hist_cate_id": rng.integers(0, 20, size=(batch, length)),
    }
    out = embed(inputs)
    print(out["user"].shape, out["history"].shape)  # (4, 80) (4, 6, 96)
    ```
    """

    def __init__(
        self,
        user_vocab_size: int,
        item_vocab_size: int,
        cate_vocab_size: int,
        user_dim: int = 80,
        item_dim: int = 64,
        cate_dim: int = 32,
        embeddings_initializer="uniform",
        embeddings_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for field, size in (
            ("user_vocab_size", user_vocab_size),
            ("item_vocab_size", item_vocab_size),
            ("cate_vocab_size", cate_vocab_size),
        ):
            if int(size) <= schema.FIRST_ID:
                raise ValueError(
                    f"FeatureEmbedding: {field}={size} must exceed {schema.FIRST_ID} "
                    "(rows PAD and OOV are part of the vocabulary)"
                )
        self.user_vocab_size = int(user_vocab_size)
        self.item_vocab_size = int(item_vocab_size)
        self.cate_vocab_size = int(cate_vocab_size)
        self.user_dim = int(user_dim)
        self.item_dim = int(item_dim)
        self.cate_dim = int(cate_dim)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.embeddings_regularizer = keras.regularizers.get(embeddings_regularizer)

        def table(vocab_size, dim, name):
            return keras.layers.Embedding(
                vocab_size,
                dim,
                embeddings_initializer=fresh(self.embeddings_initializer),
                embeddings_regularizer=self.embeddings_regularizer,
                dtype=self.dtype_policy,
                name=name,
            )

        self.user_embedding = table(self.user_vocab_size, self.user_dim, "user_embedding")
        self.item_embedding = table(self.item_vocab_size, self.item_dim, "item_embedding")
        self.cate_embedding = table(self.cate_vocab_size, self.cate_dim, "cate_embedding")

    @property
    def history_dim(self) -> int:
        return self.item_dim + self.cate_dim

    def build(self, input_shape=None):
        for layer in (self.user_embedding, self.item_embedding, self.cate_embedding):
            layer.build((None,))
        self.built = True

    def call(self, inputs):
        hist_item = inputs[schema.HIST_ITEM_ID]
        hist_cate = inputs[schema.HIST_CATE_ID]
        mask = ops.not_equal(hist_item, schema.PAD_ID)
        history = ops.concatenate(
            [self.item_embedding(hist_item), self.cate_embedding(hist_cate)], axis=-1
        )
        history = history * ops.expand_dims(ops.cast(mask, history.dtype), -1)
        return {
            "user": self.user_embedding(inputs[schema.USER_ID]),
            "item": self.item_embedding(inputs[schema.ITEM_ID]),
            "cate": self.cate_embedding(inputs[schema.CATE_ID]),
            "history": history,
            "history_mask": mask,
        }

    def compute_output_shape(self, input_shape):
        batch = input_shape[schema.USER_ID][0]
        seq_shape = tuple(input_shape[schema.HIST_ITEM_ID])
        return {
            "user": (batch, self.user_dim),
            "item": (batch, self.item_dim),
            "cate": (batch, self.cate_dim),
            "history": (*seq_shape, self.history_dim),
            "history_mask": seq_shape,
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            user_vocab_size=self.user_vocab_size,
            item_vocab_size=self.item_vocab_size,
            cate_vocab_size=self.cate_vocab_size,
            user_dim=self.user_dim,
            item_dim=self.item_dim,
            cate_dim=self.cate_dim,
            embeddings_initializer=keras.initializers.serialize(self.embeddings_initializer),
            embeddings_regularizer=keras.regularizers.serialize(self.embeddings_regularizer),
        )
        return config
