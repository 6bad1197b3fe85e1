"""``--tfds``: a TensorFlow Datasets copy of a dataset, inside its directory.

``DIR/tfds/NAME/VERSION/`` holds one uncompressed TFRecord file per GZIP shard of
``DIR`` (``NAME-SPLIT.tfrecord-XXXXX-of-YYYYY``, TFDS's default file-name template), whose
records are the same ``tf.train.Example`` bytes, plus the ``dataset_info.json`` and
``features.json`` that TFDS's own ``tfds.folder_dataset.write_metadata`` writes. NAME is
the dataset's name in ``metadata.json`` (``impressions``, ``taobao_user_behavior``,
``taobao_ad``); VERSION is ``SCHEMA.0.0`` for the record schema version. A TFDS user opens
it with ``tfds.builder_from_directory(path)`` and reads ``as_dataset(split="train")``
(``"val"``, ``"test"``); ``read_config=tfds.ReadConfig(interleave_cycle_length=1)`` reads
the shards' order, TFDS's default interleaves 16 files and ``shuffle_files=True`` works as
for any TFDS dataset. An empty split (``--test-fraction 0``) is
left out: TFDS cannot read a split of no examples. TFDS's TFRecord reader only opens
uncompressed files, hence the copy. Writing it does not start TensorFlow.

The copy is written into the run's temporary directory before it is renamed, so it is as
atomic as the rest of the dataset. tensorflow-datasets is imported only here, only when
the option is given (``pip install 'mdaf-tf[tfds]'``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil

import numpy as np

from mdaf_tf.data import feature_schema, schema
from pipelines.errors import PipelineError

DIRECTORY = "tfds"
FILE_FORMAT = "tfrecord"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_INSTALL = "--tfds needs tensorflow-datasets (pip install 'mdaf-tf[tfds]')"


def add_args(parser):
    """``--tfds`` on a pipeline's shared output arguments."""
    parser.add_argument("--tfds", action="store_true",
                        help="also write a TensorFlow Datasets copy (uncompressed records, "
                             "read with tfds.builder_from_directory) under "
                             "OUTPUT/tfds/NAME/VERSION/; needs tensorflow-datasets")


def check_args(args):
    """A one-line error, before any work, when ``--tfds`` cannot be honoured."""
    if getattr(args, "tfds", False) and importlib.util.find_spec("tensorflow_datasets") is None:
        raise PipelineError(_INSTALL)


def relative_dir(meta: dict) -> str:
    """``tfds/NAME/VERSION`` of a dataset, from its metadata."""
    name = str(meta.get("dataset", ""))
    if not _NAME.match(name):
        raise PipelineError(f"--tfds: dataset name {name!r} is not a valid TFDS name")
    return f"{DIRECTORY}/{name}/{int(meta['schema_version'])}.0.0"


def shard_lengths(meta: dict, split: str) -> list[int]:
    """Records per shard of ``split``: the writer fills ``examples_per_shard`` in each
    shard in turn, the last one holds the rest (an empty split has one empty shard)."""
    info = meta["splits"][split]
    n, per = len(info["shards"]), int(meta["args"]["examples_per_shard"])
    last = int(info["examples"]) - per * (n - 1)
    if not 0 <= last <= per:
        raise RuntimeError(f"{split}: {info['examples']} examples do not fill {n} shards "
                           f"of {per}")
    return [per] * (n - 1) + [last]


def _gzip_module():
    try:
        from isal import igzip
    except ImportError:
        import gzip as igzip
    return igzip


def _gunzip(src: str, dst: str):
    with _gzip_module().open(src, "rb") as f, open(dst, "wb") as out:
        shutil.copyfileobj(f, out, 1 << 22)


def file_name(name: str, split: str, index: int, total: int) -> str:
    return f"{name}-{split}.{FILE_FORMAT}-{index:05d}-of-{total:05d}"


def _write_split(tfds, data_dir: str, out_dir: str, meta: dict, split: str):
    """Decompresses the split's shards into ``out_dir``; returns their ``SplitInfo``."""
    shards = meta["splits"][split]["shards"]
    size = 0
    for i, shard in enumerate(shards):
        dst = os.path.join(out_dir, file_name(meta["dataset"], split, i, len(shards)))
        _gunzip(os.path.join(data_dir, shard), dst)
        size += os.path.getsize(dst)
    return tfds.core.SplitInfo(name=split, shard_lengths=shard_lengths(meta, split),
                               num_bytes=size)


def features(meta: dict):
    """``tfds.features.FeaturesDict`` of every record feature: int64 or float32 tensors of
    the shapes ``mdaf_tf.data`` parses."""
    import tensorflow_datasets as tfds

    length = int(meta["max_seq_len"])
    dtypes = {"int64": np.int64, "float32": np.float32}
    declared = feature_schema.from_metadata(meta).record_features()
    return tfds.features.FeaturesDict({
        f.name: tfds.features.Tensor(shape=f.shape(length), dtype=dtypes[f.dtype])
        for f in declared})


def _description(meta: dict) -> str:
    return (f"mdaf-tf {meta['dataset']} dataset (record schema version "
            f"{meta['schema_version']}, max_seq_len {meta['max_seq_len']}): the records of "
            "the GZIP shards three directories up, uncompressed; vocabularies, counts and "
            "arguments are in that directory's metadata.json and vocab/.")


def write(data_dir: str, meta: dict) -> str:
    """Writes the TFDS copy of the finished shards in ``data_dir`` (the run's temporary
    directory) described by ``meta`` (its metadata); returns its path relative to it."""
    try:  # writing metadata does not import TensorFlow (about 1 s instead of 10)
        import tensorflow_datasets as tfds
    except ImportError:
        raise PipelineError(_INSTALL) from None
    rel = relative_dir(meta)
    out_dir = os.path.join(data_dir, rel)
    os.makedirs(out_dir)
    split_infos = [_write_split(tfds, data_dir, out_dir, meta, split)
                   for split in schema.SPLITS if meta["splits"][split]["examples"] > 0]
    tfds.folder_dataset.write_metadata(
        data_dir=out_dir, features=features(meta), split_infos=split_infos,
        version=rel.rsplit("/", 1)[1], check_data=False, description=_description(meta))
    return rel
