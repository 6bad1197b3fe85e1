"""Tiny datasets and models for the training, export and evaluation tests.

``write_dataset`` writes a data directory in the pipelines' output format (GZIP TFRecord
shards of the schema's features, ``metadata.json``, ``vocab/*.txt``) from a generator whose
labels depend on the target item and on whether its category occurs in the history, so a
model can learn something in a few steps. ``tiny_model`` is a small Keras model over the
schema's inputs with dropout, LayerNorm and a gate output, standing in for MDAF where a test
is about the training machinery rather than the architecture.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from mdaf_tf import schema


def _raw_ids(kind: str, n: int, dtype: str):
    if dtype == "string":
        return [f"{kind}-{i:03d}" for i in range(n)]
    return [1000 * (1 + "uic".index(kind[0])) + 7 * i for i in range(n)]


def make_examples(rng, n, n_users, n_items, n_cates, max_seq_len):
    """Dense-id examples with a learnable label."""
    item_cate = np.arange(n_items) % n_cates
    user = rng.integers(0, n_users, n)
    item = rng.integers(0, n_items, n)
    hist_len = rng.integers(0, max_seq_len + 1, n)
    hist_item = rng.integers(0, n_items, (n, max_seq_len))
    positions = np.arange(max_seq_len)[None, :]
    valid = positions >= (max_seq_len - hist_len[:, None])
    hist_cate = item_cate[hist_item]
    in_history = ((hist_cate == item_cate[item][:, None]) & valid).any(axis=1)
    logit = 1.5 * in_history + (item % 3 == 0) - 1.0
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    dense = lambda ids: ids + schema.FIRST_ID
    return {
        schema.LABEL: label,
        schema.USER_ID: dense(user),
        schema.ITEM_ID: dense(item),
        schema.CATE_ID: dense(item_cate[item]),
        schema.HIST_ITEM_ID: np.where(valid, dense(hist_item), schema.PAD_ID),
        schema.HIST_CATE_ID: np.where(valid, dense(hist_cate), schema.PAD_ID),
        schema.HIST_LEN: hist_len,
        schema.TIMESTAMP: np.arange(n, dtype=np.int64),
    }


def write_dataset(
    path,
    n_train: int = 512,
    n_val: int = 256,
    max_seq_len: int = 6,
    n_users: int = 20,
    n_items: int = 30,
    n_cates: int = 5,
    id_dtype: str = "int64",
    seed: int = 0,
    oracle: dict | None = None,
    oov_in_val: bool = True,
) -> Path:
    """A data directory in the pipelines' format; returns its path."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    vocab_dir = path / "vocab"
    vocab_dir.mkdir(exist_ok=True)
    sizes = {"user": n_users, "item": n_items, "cate": n_cates}
    for name, n in sizes.items():
        lines = "".join(f"{v}\n" for v in _raw_ids(name, n, id_dtype))
        (vocab_dir / f"{name}.txt").write_text(lines)
    counts = {}
    for split, n in (("train", n_train), ("val", n_val)):
        ex = make_examples(rng, n, n_users, n_items, n_cates, max_seq_len)
        if split == "val" and oov_in_val:
            ex[schema.ITEM_ID][:5] = schema.OOV_ID  # unseen items in validation
            ex[schema.USER_ID][5:10] = schema.OOV_ID
        with tf.io.TFRecordWriter(
            str(path / f"{split}-00000-of-00001.tfrecord.gz"), options="GZIP"
        ) as writer:
            for i in range(n):
                feature = {
                    name: tf.train.Feature(
                        int64_list=tf.train.Int64List(value=np.atleast_1d(ex[name][i]).tolist())
                    )
                    for name in schema.FEATURE_NAMES
                }
                example = tf.train.Example(features=tf.train.Features(feature=feature))
                writer.write(example.SerializeToString())
        counts[split] = {"examples": n, "positives": int(ex[schema.LABEL].sum())}
    meta = {
        "schema_version": schema.SCHEMA_VERSION,
        "max_seq_len": max_seq_len,
        "vocab_sizes": {k: v + schema.FIRST_ID for k, v in sizes.items()},
        "raw_id_dtypes": {k: id_dtype for k in sizes},
        "splits": counts,
    }
    if oracle is not None:
        meta["oracle"] = oracle
    (path / "metadata.json").write_text(json.dumps(meta, indent=1))
    return path


def tiny_model(name: str, config) -> keras.Model:
    """Item/category/user embeddings, mean-pooled history, LayerNorm, dropout, gate."""
    inputs = schema.keras_inputs(config.max_seq_len)
    item_table = keras.layers.Embedding(config.item_vocab_size, 8, name="item_embedding")
    cate_table = keras.layers.Embedding(config.cate_vocab_size, 4, name="cate_embedding")
    user = keras.layers.Embedding(config.user_vocab_size, 4, name="user_embedding")(
        inputs[schema.USER_ID]
    )
    target = keras.layers.Concatenate()(
        [item_table(inputs[schema.ITEM_ID]), cate_table(inputs[schema.CATE_ID]), user]
    )
    history = keras.layers.Concatenate()(
        [item_table(inputs[schema.HIST_ITEM_ID]), cate_table(inputs[schema.HIST_CATE_ID])]
    )
    history = keras.layers.GlobalAveragePooling1D()(history)
    static = keras.layers.Dense(8, activation="relu", name="static")(target)
    sequence = keras.layers.Dense(8, activation="relu", name="sequence")(
        keras.layers.Concatenate()([history, target])
    )
    gate = keras.layers.Dense(1, activation="sigmoid", name="gate_dense")(
        keras.layers.Concatenate()([static, sequence])
    )
    fused = gate * static + (1.0 - gate) * sequence
    fused = keras.layers.LayerNormalization(name="norm")(fused)
    fused = keras.layers.Dropout(config.dropout, name="dropout")(fused)
    probability = keras.layers.Dense(1, activation="sigmoid", name="head")(fused)
    return keras.Model(
        inputs,
        {
            "probability": keras.layers.Identity(name="probability")(probability),
            "gate": keras.layers.Identity(name="gate")(gate),
        },
        name=name,
    )

