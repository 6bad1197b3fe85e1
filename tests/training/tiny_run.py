"""Tiny datasets and models for the training, export and evaluation tests.

``write_dataset`` writes a data directory in the pipelines' output format (GZIP TFRecord
shards of the train, val and test splits with every schema feature, ``metadata.json``,
``vocab/*.txt``) from a generator whose labels depend on the target item and on whether its
category occurs in the history, so a model can learn something in a few steps. ``tiny_model``
is a small Keras model over the schema's inputs with dropout, LayerNorm and a gate output,
standing in for MDAF where a test is about the training machinery rather than the
architecture. ``plain_gauc`` is gAUC computed from its definition, to check the code's, and
``plain_ece`` / ``plain_calibration_ratio`` likewise for the calibration figures;
``SplitSpy`` records which splits a run opens and can script the AUC of each pass.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from mdaf_tf import data
from mdaf_tf.data import feature_schema, schema
from mdaf_tf.evaluation import predictions as prediction_pass


def _raw_ids(kind: str, n: int, dtype: str):
    if dtype == "string":
        return [f"{kind}-{i:03d}" for i in range(n)]
    return [1000 * (1 + "uic".index(kind[0])) + 7 * i for i in range(n)]


def user_keys(user: np.ndarray, id_dtype: str) -> np.ndarray:
    """``user_key`` of 0-based user indices: the raw id for integer ids, the index among the
    sorted distinct raw ids for string ids (as the pipelines write it); indices past the
    vocabulary are users it does not hold."""
    if id_dtype == "string":
        return user.astype(np.int64)  # "user-000", "user-001", ... sort as their indices
    return 1000 + 7 * user.astype(np.int64)  # _raw_ids("user", ...) continued


def make_examples(rng, n, n_users, n_items, n_cates, max_seq_len, id_dtype="int64"):
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
        schema.USER_KEY: user_keys(user, id_dtype),
    }


def _write_split(path: Path, split: str, ex: dict) -> None:
    with tf.io.TFRecordWriter(
        str(path / f"{split}-00000-of-00001.tfrecord.gz"), options="GZIP"
    ) as writer:
        for i in range(len(ex[schema.LABEL])):
            feature = {
                name: tf.train.Feature(
                    int64_list=tf.train.Int64List(value=np.atleast_1d(ex[name][i]).tolist())
                )
                for name in schema.FEATURE_NAMES
            }
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString())


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
    n_test: int | None = None,
    invert_test_labels: bool = False,
) -> Path:
    """A data directory in the pipelines' format; returns its path.

    The test split has ``n_test`` examples (default ``n_val``). With ``oov_in_val`` both
    evaluation splits hold unseen items and users (the users get user keys of their own);
    ``invert_test_labels`` flips every test label, so test disagrees with what training and
    validation reward."""
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
    n_test = n_val if n_test is None else n_test
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        ex = make_examples(rng, n, n_users, n_items, n_cates, max_seq_len, id_dtype)
        if split != "train" and oov_in_val:
            ex[schema.ITEM_ID][:5] = schema.OOV_ID  # unseen items in evaluation
            ex[schema.USER_ID][5:10] = schema.OOV_ID  # unseen users, one example each
            unseen = len(ex[schema.USER_KEY][5:10])
            ex[schema.USER_KEY][5:10] = user_keys(n_users + np.arange(unseen), id_dtype)
        if split == "test" and invert_test_labels:
            ex[schema.LABEL] = 1 - ex[schema.LABEL]
        _write_split(path, split, ex)
        counts[split] = {"examples": n, "positives": int(ex[schema.LABEL].sum()),
                         "shards": [f"{split}-00000-of-00001.tfrecord.gz"]}
    meta = {
        "schema_version": schema.SCHEMA_VERSION,
        "schema": feature_schema.DEFAULT.to_dict(),
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
    item_table = keras.layers.Embedding(config.vocab_sizes["item"], 8, name="item_embedding")
    cate_table = keras.layers.Embedding(config.vocab_sizes["cate"], 4, name="cate_embedding")
    user = keras.layers.Embedding(config.vocab_sizes["user"], 4, name="user_embedding")(
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
    logit = keras.layers.Dense(1, name="head")(fused)
    return keras.Model(
        inputs,
        {
            "logit": keras.layers.Identity(name="logit")(logit),
            "probability": keras.layers.Activation("sigmoid", name="probability")(logit),
            "gate": keras.layers.Identity(name="gate")(gate),
        },
        name=name,
    )


def plain_gauc(labels, scores, users):
    """gAUC by its definition: per user with both labels, the share of (positive, negative)
    pairs ranked right (ties count 1/2); the mean over those users weighted by their
    examples. Users with one label are skipped."""
    by_user = defaultdict(list)
    for y, s, u in zip(labels, scores, users, strict=True):
        by_user[int(u)].append((float(y), float(s)))
    total = weight = 0.0
    for rows in by_user.values():
        pos = [s for y, s in rows if y == 1]
        neg = [s for y, s in rows if y == 0]
        if not pos or not neg:
            continue
        right = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
        total += len(rows) * right / (len(pos) * len(neg))
        weight += len(rows)
    return total / weight


def plain_ece(labels, probabilities, bins: int = 10):
    """ECE by its definition, one bin at a time: bin b holds b/B <= p < (b+1)/B (the last
    bin also p = 1); sum over non-empty bins of (n_b / N) |mean p - click rate|."""
    pairs = [(float(p), 1.0 if y > 0.5 else 0.0)
             for y, p in zip(labels, probabilities, strict=True)]
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = [(p, y) for p, y in pairs if lo <= p < hi or (b == bins - 1 and p == hi)]
        if members:
            gap = abs(sum(p for p, _ in members) / len(members)
                      - sum(y for _, y in members) / len(members))
            total += len(members) / len(pairs) * gap
    return total


def plain_calibration_ratio(labels, probabilities):
    """Mean predicted probability over the share of clicks."""
    clicks = sum(1.0 for y in labels if y > 0.5)
    return (sum(float(p) for p in probabilities) / len(labels)) / (clicks / len(labels))


class SplitSpy:
    """Records every split opened through ``data`` (make_dataset, shard_paths, check_shards)
    as ``(function, split)`` events, in order with what the test adds (``mark``). With
    ``script(split) -> auc``, each prediction pass's summary reports that AUC instead of its
    own (other figures stay real), so a test can make validation and test disagree."""

    def __init__(self, monkeypatch, script=None):
        self.events, self.last_split, self.script = [], None, script
        for name in ("make_dataset", "shard_paths", "check_shards"):
            monkeypatch.setattr(data, name, self._recording(name, getattr(data, name)))
        if script is not None:
            real_predict = prediction_pass.predict_dataset
            real_summary = prediction_pass.Predictions.summary
            monkeypatch.setattr(prediction_pass, "predict_dataset", self._scripting(real_predict))
            monkeypatch.setattr(prediction_pass.Predictions, "summary",
                                lambda p: {**real_summary(p), "auc": p.scripted_auc})

    def _recording(self, name, real):
        def spy(data_dir, split, *args, **kwargs):
            self.events.append((name, split))
            self.last_split = split
            return real(data_dir, split, *args, **kwargs)
        return spy

    def _scripting(self, real):
        def predict(*args, **kwargs):
            predictions = real(*args, **kwargs)
            predictions.scripted_auc = self.script(self.last_split)
            return predictions
        return predict

    def mark(self, *event):
        self.events.append(event)

    def epoch_end(self, epoch, row):
        self.mark("epoch_end", epoch)

    def splits(self, events=None) -> set:
        """The splits opened in ``events`` (default: all of them)."""
        return {e[1] for e in (self.events if events is None else events)
                if e[0] in ("make_dataset", "shard_paths", "check_shards")}
