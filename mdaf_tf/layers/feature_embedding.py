"""Embeddings of a dataset's declared features (``mdaf_tf.data.feature_schema``)."""

from __future__ import annotations

import keras
from keras import ops

from mdaf_tf.data import feature_schema, schema
from mdaf_tf.layers._initializers import fresh


@keras.saving.register_keras_serializable(package="mdaf_tf")
class FeatureEmbedding(keras.layers.Layer):
    """Embeds the declared static fields, the target token and the behaviour history.

    One table per vocabulary, shared by every field on it (the target item and the history's
    items use the ``item`` table, as in the MDAF seed thesis, whose widths are user 80,
    item 64, category 32). A numeric field x with training statistics (mu, sigma) gets one
    learned vector v and a learned "missing" vector m::

        e_x = ((x - mu) / sigma) * v      (x present)
        e_x = m                           (x is NaN: missing)

    so the raw value goes in and the standardisation lives in the graph. Row
    ``schema.PAD_ID`` (0) is padding: history positions whose first sequence field is
    ``PAD_ID`` are invalid in ``history_mask`` and their tokens are zeroed.

    Inputs: dict keyed by the declared names (extra keys ignored): categorical fields (B,)
    int64, numeric fields (B,) float32, sequence fields (B, L) int64.

    Returns: dict with
        ``"fields"``: {static field name: (B, d_field)};
        ``"static"`` (B, sum d_field): the static fields' embeddings concatenated in
        declaration order;
        ``"target"`` (B, d_token): the embeddings of the static fields the sequence fields
        match, concatenated in the sequence fields' order (a learned vector
        ``{field}_target_embedding`` in the place of a history-only field);
        ``"history"`` (B, L, d_token): each position's sequence-field embeddings
        concatenated, times the mask;
        ``"history_mask"`` (B, L) bool.

    Tables are named ``{vocabulary}_embedding`` and a numeric field's vectors
    ``{field}_value_embedding`` / ``{field}_missing_embedding``, so every variable path
    contains ``"embedding"`` (weight-decay exclusion).

    Args:
        features: the declaration (``FeatureSchema.to_dict()``); None = the default schema.
        vocab_sizes: rows per vocabulary (PAD and OOV included).
        embedding_dims: width per vocabulary and per numeric field.

    Example:

    ```python
    import numpy as np
    from mdaf_tf.layers import FeatureEmbedding

    embed = FeatureEmbedding(vocab_sizes={"user": 100, "item": 500, "cate": 20},
                             embedding_dims={"user": 80, "item": 64, "cate": 32})
    rng = np.random.default_rng(0)
    inputs = {
        "user_id": rng.integers(2, 100, size=(4,)),
        "item_id": rng.integers(2, 500, size=(4,)),
        "cate_id": rng.integers(2, 20, size=(4,)),
        "hist_item_id": rng.integers(0, 500, size=(4, 6)),  # id 0 is padding
        "hist_cate_id": rng.integers(0, 20, size=(4, 6)),
    }
    out = embed(inputs)
    print(out["static"].shape, out["history"].shape)  # (4, 176) (4, 6, 96)
    ```
    """

    def __init__(self, features: dict | None = None, vocab_sizes: dict | None = None,
                 embedding_dims: dict | None = None, embeddings_initializer="uniform",
                 embeddings_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.schema = feature_schema.from_config(features)
        self.vocab_sizes = {v: int(n) for v, n in (vocab_sizes or {}).items()}
        self.embedding_dims = {k: int(d) for k, d in (embedding_dims or {}).items()}
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.embeddings_regularizer = keras.regularizers.get(embeddings_regularizer)
        self.tables = {v: self._table(v) for v in self.schema.vocabularies}
        self.numeric = [f for f in self.schema.static if f.kind == feature_schema.NUMERIC]
        for f in self.numeric:
            self._dim(f.name)

    def _dim(self, key: str) -> int:
        if key not in self.embedding_dims:
            raise ValueError(f"FeatureEmbedding: no embedding width for '{key}'")
        return self.embedding_dims[key]

    def _table(self, vocab: str):
        size = self.vocab_sizes.get(vocab, 0)
        if size <= schema.FIRST_ID:
            raise ValueError(
                f"FeatureEmbedding: vocabulary '{vocab}' has size {size}; it must exceed "
                f"{schema.FIRST_ID} (rows PAD and OOV are part of the vocabulary)")
        return keras.layers.Embedding(
            size, self._dim(vocab), embeddings_initializer=fresh(self.embeddings_initializer),
            embeddings_regularizer=self.embeddings_regularizer, dtype=self.dtype_policy,
            name=f"{vocab}_embedding")

    def width(self, field: str) -> int:
        f = self.schema.static_by_name[field]
        return self._dim(f.vocab or f.name)

    @property
    def static_dim(self) -> int:
        return sum(self.width(f.name) for f in self.schema.static)

    @property
    def history_dim(self) -> int:
        return sum(self._dim(self.schema.sequence_vocab(f)) for f in self.schema.sequence)

    def build(self, input_shape=None):
        for table in self.tables.values():
            table.build((None,))
        self.numeric_weights = {
            f.name: (self._vector(f.name, "value"), self._vector(f.name, "missing"))
            for f in self.numeric}
        self.target_vectors = {  # the target token's part for a history-only field
            f.name: self._vector(f.name, "target", self.schema.sequence_vocab(f))
            for f in self.schema.sequence if f.static is None}
        self.built = True

    def _vector(self, field: str, role: str, width_key: str | None = None):
        width = self._dim(width_key or field)
        return self.add_weight(name=f"{field}_{role}_embedding", shape=(width,),
                               initializer=fresh(self.embeddings_initializer),
                               regularizer=self.embeddings_regularizer)

    def _numeric(self, f, x):
        x = ops.cast(ops.reshape(x, (-1, 1)), "float32")
        missing = ops.isnan(x)
        z = ops.where(missing, 0.0, (x - f.mean) / f.std)
        value, missing_vector = (ops.cast(w, self.compute_dtype)
                                 for w in self.numeric_weights[f.name])
        z = ops.cast(z, self.compute_dtype)
        return z * value + ops.cast(missing, self.compute_dtype) * missing_vector

    def call(self, inputs):
        fields = {}
        for f in self.schema.static:
            x = inputs[f.name]
            fields[f.name] = self.tables[f.vocab](x) if f.vocab else self._numeric(f, x)
        sequence = self.schema.sequence
        mask = ops.not_equal(inputs[sequence[0].name], schema.PAD_ID)
        parts = [self.tables[self.schema.sequence_vocab(f)](inputs[f.name]) for f in sequence]
        history = parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)
        history = history * ops.expand_dims(ops.cast(mask, history.dtype), -1)
        ones = ops.ones_like(history[:, 0, :1])  # (B, 1)
        target = [fields[f.static] if f.static is not None
                  else ones * ops.cast(self.target_vectors[f.name], history.dtype)
                  for f in sequence]
        static = [fields[f.name] for f in self.schema.static]
        return {
            "fields": fields,
            "static": static[0] if len(static) == 1 else ops.concatenate(static, axis=-1),
            "target": target[0] if len(target) == 1 else ops.concatenate(target, axis=-1),
            "history": history,
            "history_mask": mask,
        }

    def compute_output_shape(self, input_shape):
        first = self.schema.static[0].name
        batch = input_shape[first][0]
        seq_shape = tuple(input_shape[self.schema.sequence[0].name])
        return {
            "fields": {f.name: (batch, self.width(f.name)) for f in self.schema.static},
            "static": (batch, self.static_dim),
            "target": (batch, self.history_dim),
            "history": (*seq_shape, self.history_dim),
            "history_mask": seq_shape,
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            features=self.schema.to_dict(),
            vocab_sizes=dict(self.vocab_sizes),
            embedding_dims=dict(self.embedding_dims),
            embeddings_initializer=keras.initializers.serialize(self.embeddings_initializer),
            embeddings_regularizer=keras.regularizers.serialize(self.embeddings_regularizer),
        )
        return config
