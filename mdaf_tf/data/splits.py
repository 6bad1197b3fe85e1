"""The training data's splits: their sizes, corrupt-shard checks and the epoch order.

Used by the runner before training (sizes, ``--skip-corrupt-shards``) and when reading fails
(a DataError naming the corrupt or truncated shards).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from mdaf_tf import data
from mdaf_tf.data import DataError, schema


def split_size(data_dir, meta: dict, split: str) -> int:
    """Examples in ``split``: from the metadata when it says, else counted from the shards.
    (With corrupt shards skipped the runner counts the good shards instead.)"""
    recorded = _metadata_count(meta, split)
    if recorded is not None:
        return recorded
    files = sorted(str(p) for p in Path(data_dir).glob(f"{split}-*.tfrecord*"))
    if not files:
        raise DataError(f"{data_dir}: no {split}-*.tfrecord shards")
    compression = "GZIP" if files[0].endswith(".gz") else None
    ds = tf.data.TFRecordDataset(files, compression_type=compression)
    return int(ds.reduce(np.int64(0), lambda n, _: n + 1).numpy())


def epoch_seed(seed: int, epoch: int) -> int:
    """The training data order of ``epoch`` (1-based) depends only on the seed and the epoch."""
    return (seed * 1_000_003 + epoch) % (2**31 - 1)


def check_data_shards(data_dir, meta: dict, skip_corrupt: bool, log,
                      splits=schema.SPLITS) -> tuple[dict, dict]:
    """Read every shard of ``splits`` once (``--skip-corrupt-shards``). Returns
    ({split: examples}, {path: reason} of the skipped shards).

    A corrupt or truncated shard is a DataError naming it unless ``skip_corrupt``; a split
    whose shards hold fewer records than the metadata says (a shard cut at a record
    boundary) is reported the same way."""
    sizes, skipped = {}, {}
    for split in splits:
        good, bad = data.check_shards(str(data_dir), split)
        if bad and not skip_corrupt:
            raise DataError(corrupt_message(bad))
        skipped.update(bad)
        if not good:
            raise DataError(f"{data_dir}: every {split} shard is corrupt")
        sizes[split] = sum(good.values())
        expected = _metadata_count(meta, split)
        if not bad and expected is not None and sizes[split] != expected:
            message = (f"{data_dir}: the {split} shards hold {sizes[split]} records but "
                       f"metadata.json says {expected} (a truncated or replaced shard?)")
            if not skip_corrupt:
                raise DataError(message)
            log(f"warning: {message}")
    for path, reason in skipped.items():
        log(f"skipped corrupt shard {path}: {reason}")
    if skipped:
        counts = ", ".join(f"{n} {split}" for split, n in sizes.items())
        log(f"--skip-corrupt-shards: left out {len(skipped)} shard(s); using {counts} examples")
    return sizes, skipped


def split_sizes(data_dir, meta: dict, splits, skip_corrupt_shards: bool, log):
    """({split: examples}, {path: reason} of skipped shards) for ``splits``; DataError
    naming the directory when one of them is empty. Only the splits named are opened."""
    if skip_corrupt_shards:
        sizes, skipped = check_data_shards(data_dir, meta, True, log, splits)
    else:
        skipped = {}
        for split in splits:
            data.shard_paths(str(data_dir), split)  # a split without shards fails now
        try:
            sizes = {split: split_size(data_dir, meta, split) for split in splits}
        except tf.errors.DataLossError as e:
            raise find_corrupt_shards(data_dir, e, splits) from None
    if not all(sizes.values()):
        counts = ", ".join(f"{split} {n}" for split, n in sizes.items())
        raise DataError(f"{data_dir}: empty split ({counts} examples)")
    return sizes, skipped


def _metadata_count(meta: dict, split: str) -> int | None:
    entry = (meta.get("splits") or {}).get(split)
    if isinstance(entry, int):
        return entry
    if isinstance(entry, dict):
        for key in ("examples", "num_examples", "count"):
            if isinstance(entry.get(key), int):
                return entry[key]
    return None


def corrupt_message(bad: dict) -> str:
    listed = "; ".join(f"{path}: {reason}" for path, reason in bad.items())
    return (f"corrupt or truncated TFRecord shard(s): {listed} (rebuild the dataset, or pass "
            "--skip-corrupt-shards to train without them)")


def find_corrupt_shards(data_dir, error, splits=schema.SPLITS) -> DataError:
    """Turn a DataLossError raised while iterating into a DataError naming the shards."""
    bad = {}
    for split in splits:
        bad.update(data.check_shards(str(data_dir), split)[1])
    if bad:
        return DataError(corrupt_message(bad))
    return DataError(f"{data_dir}: reading the data failed: {str(error).splitlines()[0][:200]}")
