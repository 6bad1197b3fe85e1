"""Data: a pipeline-produced dataset directory and everything derived from it.

This module reads the directory as a ``tf.data.Dataset`` (``make_dataset``, ``load_metadata``,
the shards and their checks). Layout (written by ``pipelines.*``):
``DIR/train-XXXXX-of-YYYYY.tfrecord.gz``, ``DIR/val-...``, ``DIR/metadata.json``,
``DIR/vocab/{user,item,cate}.txt``. Beside it: ``schema`` (the record format, ids and splits),
``feature_schema`` (the declared features the reader, the models and the serving signatures
derive from), ``splits`` (split sizes, corrupt shards, each epoch's data order) and ``source``
(``--data``: a directory, a raw file through its pipeline into the cache, or the synthetic
default).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os

import numpy as np

from mdaf_tf.data import feature_schema, schema

SPLITS = schema.SPLITS
SHUFFLE_BUFFER = 16_384


class DataError(ValueError):
    """The dataset directory is missing, incomplete or of an unknown schema version."""


def load_metadata(data_dir: str) -> dict:
    """``DIR/metadata.json`` as a dict; DataError naming the directory when unusable."""
    path = os.path.join(data_dir, "metadata.json")
    if not os.path.isfile(path):
        raise DataError(f"no dataset in {data_dir}: metadata.json is missing "
                        "(create one with python -m pipelines.synthetic --output DIR)")
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except ValueError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    version = meta.get("schema_version")
    if version == 1:
        raise DataError(f"{data_dir}: schema_version 1 (written before the test split and "
                        "user_key existed); rebuild it with the pipelines.* command that made "
                        "it (its arguments are in metadata.json)")
    if version not in schema.READABLE_SCHEMA_VERSIONS:
        raise DataError(f"{data_dir}: unknown schema_version {version!r} "
                        f"(this code reads versions {schema.READABLE_SCHEMA_VERSIONS})")
    if version >= 3 and "schema" not in meta:
        raise DataError(f"{path}: schema_version {version} without its \"schema\" declaration")
    try:
        feature_schema.from_metadata(meta, path)
    except feature_schema.SchemaError as e:
        raise DataError(str(e)) from None
    return meta


def record_features(meta: dict) -> tuple[schema.Feature, ...]:
    """The features of every record of the dataset ``meta`` describes."""
    return feature_schema.from_metadata(meta).record_features()


def metadata_sha256(data_dir) -> str:
    """SHA-256 of ``DIR/metadata.json``'s bytes (identifies the dataset a run used)."""
    with open(os.path.join(data_dir, "metadata.json"), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def shard_paths(data_dir: str, split: str, exclude=()) -> list[str]:
    """The split's shard files in sorted order, leaving out the paths in ``exclude``."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {SPLITS}")
    paths = sorted(glob.glob(os.path.join(data_dir, f"{split}-*-of-*.tfrecord.gz")))
    if not paths:
        raise DataError(f"{data_dir}: no {split} shards ({split}-*.tfrecord.gz)")
    excluded = {os.path.abspath(p) for p in exclude}
    kept = [p for p in paths if os.path.abspath(p) not in excluded]
    if not kept:
        raise DataError(f"{data_dir}: every {split} shard is corrupt or excluded")
    return kept


def count_records(path: str) -> int:
    """Records in one GZIP TFRecord shard; ``tf.errors.DataLossError`` when it is corrupt."""
    import tensorflow as tf

    ds = tf.data.TFRecordDataset(path, compression_type="GZIP")
    return int(ds.reduce(np.int64(0), lambda n, _: n + 1).numpy())


def gzip_stream_complete(path: str, chunk: int = 1 << 22) -> bool:
    """Whether the GZIP stream of ``path`` reaches its end marker. TensorFlow's reader takes a
    stream cut at a record boundary as a clean end of file, so a truncated shard can read as a
    shorter good one; the missing end marker tells them apart."""
    import zlib

    inflater = zlib.decompressobj(wbits=31)
    try:
        with open(path, "rb") as f:
            while not inflater.eof and (block := f.read(chunk)):
                inflater.decompress(block, 1 << 16)
                while inflater.unconsumed_tail and not inflater.eof:
                    inflater.decompress(inflater.unconsumed_tail, 1 << 16)
    except zlib.error:
        return False
    return inflater.eof


def check_shards(data_dir: str, split: str) -> tuple[dict[str, int], dict[str, str]]:
    """Read every shard of ``split`` once: ({path: records} of the good shards,
    {path: reason} of the corrupt or truncated ones)."""
    import tensorflow as tf

    good, bad = {}, {}
    for path in shard_paths(data_dir, split):
        try:
            records = count_records(path)
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
            bad[path] = _short_reason(e)
            continue
        if gzip_stream_complete(path):
            good[path] = records
        else:
            bad[path] = "truncated: the GZIP stream ends before its end marker"
    return good, bad


def _short_reason(error) -> str:
    message = getattr(error, "message", str(error))
    for marker in ("truncated record", "corrupted record", "inflate() failed", "incorrect header"):
        at = message.find(marker)
        if at >= 0:
            return message[at:].split("[")[0].strip().rstrip("'").strip()
    return message.splitlines()[0][:200]


def make_dataset(data_dir: str, split: str, batch_size: int, *, training: bool = False,
                 seed: int = 0, repeat: bool = False, drop_remainder: bool = False,
                 input_context=None, include_timestamp: bool = False, exclude=(),
                 extra_features: tuple[str, ...] = ()):
    """``(features, label)`` batches: features are the schema's model inputs (int64,
    shapes ``(batch,)`` / ``(batch, max_seq_len)``), label float32 ``(batch,)``.

    Shards are listed in sorted order; under ``tf.distribute`` each input pipeline reads
    the shards ``i % num_input_pipelines == input_pipeline_id`` (records instead, when
    there are fewer shards than pipelines). Training interleaves the shards and shuffles
    with ``seed``; evaluation reads the shards in order, one after the other, so the
    order is fixed. Batches are parsed with one ``tf.io.parse_example`` call each.
    ``include_timestamp`` adds the ``timestamp`` feature to the dict and
    ``extra_features`` any other non-input features (``user_key`` for gAUC); shards in
    ``exclude`` (corrupt ones the user chose to skip) are left out.
    """
    import tensorflow as tf

    meta = load_metadata(data_dir)
    max_seq_len = int(meta["max_seq_len"])
    paths = shard_paths(data_dir, split, exclude)
    files = tf.data.Dataset.from_tensor_slices(paths)
    shard_records = False
    if input_context is not None and input_context.num_input_pipelines > 1:
        n, i = input_context.num_input_pipelines, input_context.input_pipeline_id
        if len(paths) >= n:
            files = files.shard(n, i)
        else:
            shard_records = True
    if training:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
        ds = files.interleave(
            lambda p: tf.data.TFRecordDataset(p, compression_type="GZIP"),
            cycle_length=max(1, min(len(paths), 8)), block_length=1,
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        ds = files.interleave(
            lambda p: tf.data.TFRecordDataset(p, compression_type="GZIP"), cycle_length=1)
    if shard_records:
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if training:
        ds = ds.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    features = record_features(meta)
    spec = schema.parse_spec(max_seq_len, features)
    keep = [f.name for f in features if f.model_input]
    keep += [schema.TIMESTAMP] if include_timestamp else []
    unknown = [name for name in extra_features if name not in spec]
    if unknown:
        raise DataError(f"unknown feature(s) {unknown}; the schema has {list(spec)}")
    keep += [name for name in extra_features if name not in keep]

    def parse(records):
        parsed = tf.io.parse_example(records, spec)
        label = tf.cast(parsed[schema.LABEL], tf.float32)
        return {name: parsed[name] for name in keep}, label

    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def read_split_numpy(data_dir: str, split: str) -> dict[str, np.ndarray]:
    """Every feature of a split (label and timestamp included) as numpy arrays, in file
    order. For tests and reports on small datasets."""
    import tensorflow as tf

    meta = load_metadata(data_dir)
    length = int(meta["max_seq_len"])
    features = {f.name: f for f in record_features(meta)}
    spec = schema.parse_spec(length, features.values())
    ds = tf.data.TFRecordDataset(shard_paths(data_dir, split), compression_type="GZIP")
    parts: dict[str, list] = {name: [] for name in features}
    for batch in ds.batch(65_536).map(lambda r: tf.io.parse_example(r, spec)):
        for name in features:
            parts[name].append(batch[name].numpy())
    return {name: (np.concatenate(v) if v else
                   np.zeros((0, *features[name].shape(length)), features[name].dtype))
            for name, v in parts.items()}
