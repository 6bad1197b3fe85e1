"""The dataset directory: temp-dir writing, shard writers, vocabularies and metadata.json.

A run writes into ``.NAME.tmp-PID`` beside the output directory and renames it at the end,
so an interrupted run never leaves a directory that looks complete. An existing output
directory is only replaced when it holds a dataset built with the same arguments (a
rerun) or when ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import shutil
import threading
import zlib

import numpy as np

from mdaf_tf.data import feature_schema, schema
from pipelines import leak_report, progress, tfds_output
from pipelines.errors import PipelineError
from pipelines.examples import DEFAULT_TEST_FRACTION, DEFAULT_VAL_FRACTION, split_boundaries
from pipelines.tfrecord import encode_buffer
from pipelines.vocab import write_vocabularies

METADATA = "metadata.json"
DEFAULT_MIN_COUNT = 2
_NOT_COMPARED = ("output", "overwrite", "quiet", "tfds")


def add_output_args(parser: argparse.ArgumentParser):
    """Options shared by every pipeline."""
    parser.add_argument("--output", required=True, help="dataset directory to create")
    parser.add_argument("--max-seq-len", type=int, default=schema.DEFAULT_MAX_SEQ_LEN)
    parser.add_argument("--min-count", type=int, default=DEFAULT_MIN_COUNT,
                        help="raw ids seen fewer times in the training period map to OOV "
                             "(default %(default)s: ids seen once train the OOV row, so OOV "
                             "means 'rare in training' at training and evaluation time)")
    parser.add_argument("--val-fraction", type=float, default=None,
                        help="share of all examples, the ones just before the test split, "
                             "used for validation (default 0.15)")
    parser.add_argument("--test-fraction", type=float, default=None,
                        help="share of all examples, the latest ones, held out for the "
                             "reported test figures (default 0.15: the thesis's 70/15/15, "
                             "by time)")
    parser.add_argument("--val-start", type=int, default=None,
                        help="Unix seconds; examples at or after it are validation "
                             "(overrides --val-fraction)")
    parser.add_argument("--test-start", type=int, default=None,
                        help="Unix seconds; examples at or after it are test "
                             "(overrides --test-fraction)")
    parser.add_argument("--examples-per-shard", type=int, default=200_000)
    parser.add_argument("--compression-level", type=int, default=1, choices=range(0, 10),
                        help="gzip level of the shards (1 is fastest; isal: 0-3)")
    parser.add_argument("--gzip-library", choices=GZIP_LIBRARIES, default="isal",
                        help="deflate implementation (default isal: ISA-L, about 6x faster than "
                             "zlib at level 1 here; zlib gives other compressed bytes, "
                             "the same records)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an output directory holding a different dataset")
    parser.add_argument("--quiet", action="store_true",
                        help="print no progress lines and no summary, only errors and "
                             "warnings")
    tfds_output.add_args(parser)


def check_args(args):
    if args.max_seq_len < 1:
        raise PipelineError("--max-seq-len must be at least 1")
    if args.min_count < 1:
        raise PipelineError("--min-count must be at least 1")
    for flag in ("val_fraction", "test_fraction"):
        value = getattr(args, flag, None)
        if value is not None and not 0.0 <= value < 1.0:
            raise PipelineError(f"--{flag.replace('_', '-')} must be in [0, 1)")
    if (getattr(args, "val_start", None) is not None and getattr(args, "test_start", None)
            is not None and args.val_start > args.test_start):
        raise PipelineError("--val-start must not be after --test-start")
    if args.examples_per_shard < 1:
        raise PipelineError("--examples-per-shard must be at least 1")
    if args.gzip_library == "isal":
        if args.compression_level > 3:
            raise PipelineError("--gzip-library isal supports --compression-level 0 to 3")
        _compressor_module("isal")
    tfds_output.check_args(args)


GZIP_LIBRARIES = ("zlib", "isal")


def boundaries_from_args(args, ts: np.ndarray, weights: np.ndarray) -> tuple[int, int]:
    """The (validation, test) split boundaries the pipeline arguments ask for."""
    val = DEFAULT_VAL_FRACTION if args.val_fraction is None else args.val_fraction
    test = DEFAULT_TEST_FRACTION if args.test_fraction is None else args.test_fraction
    return split_boundaries(ts, weights, val, test, args.val_start, args.test_start)


def _compressor_module(library: str):
    if library == "zlib":
        return zlib
    try:
        from isal import isal_zlib
    except ImportError:
        raise PipelineError("--gzip-library isal needs the isal package "
                            "(pip install isal)") from None
    return isal_zlib


class _Sha256Thread(threading.Thread):
    """Hashes the source file beside the main work (hashlib releases the GIL)."""

    def __init__(self, path: str):
        super().__init__(daemon=True)
        self.path = path
        self.digest = None

    def run(self):
        h = hashlib.sha256()
        with open(self.path, "rb") as f:
            for block in iter(lambda: f.read(8 << 20), b""):
                h.update(block)
        self.digest = h.hexdigest()


class ShardWriter:
    """``{split}-XXXXX-of-YYYYY.tfrecord.gz`` files, ``examples_per_shard`` each.

    Encoding and gzip of a shard run in that shard's own worker thread, in write order, so
    the bytes are the same as a sequential run; consecutive shards proceed in parallel
    (the compiled encoder and the compressors release the GIL). Training chunks are
    shuffled (seeded) before writing so one shard mixes users; the reader shuffles further.
    """

    def __init__(self, directory: str, split: str, max_seq_len: int, examples_per_shard: int,
                 level: int, seed: int, library: str = "zlib",
                 features: tuple = schema.FEATURES, max_pending: int = 4):
        self.directory = directory
        self.features = features
        self.split = split
        self.max_seq_len = max_seq_len
        self.per_shard = examples_per_shard
        self.level = level
        self.compressor = _compressor_module(library)
        self.rng = np.random.default_rng([seed, 1 if split == "train" else 2])
        self.paths: list[str] = []
        self.examples = 0
        self.positives = 0
        self.max_pending = max_pending
        self._in_shard = 0
        self._file = None
        self._zip = None
        self._pool = None
        self._pools: list[concurrent.futures.ThreadPoolExecutor] = []
        self._pending: list[concurrent.futures.Future] = []

    def _open(self):
        path = os.path.join(self.directory, f".{self.split}-{len(self.paths):05d}.partial")
        self.paths.append(path)
        self._file = open(path, "wb")
        # gzip container (wbits 31), mtime 0
        self._zip = self.compressor.compressobj(self.level, self.compressor.DEFLATED, 31)
        self._pool = concurrent.futures.ThreadPoolExecutor(1)
        self._pools.append(self._pool)
        self._in_shard = 0

    def _close_shard(self):
        f, z = self._file, self._zip
        self._pending.append(self._pool.submit(lambda: (f.write(z.flush()), f.close())))
        self._pool.shutdown(wait=False)  # runs its queue to the end
        self._file = None

    def _encode_and_compress(self, f, z, cols):
        f.write(z.compress(encode_buffer(cols, self.max_seq_len, self.features)))

    def _wait(self, keep: int):
        while len(self._pending) > keep:
            self._pending.pop(0).result()

    def write(self, cols: dict):
        n = len(cols[schema.LABEL])
        if n == 0:
            return
        if self.split == "train":
            perm = self.rng.permutation(n)
            cols = {k: v[perm] for k, v in cols.items()}
        self.examples += n
        self.positives += int(np.count_nonzero(cols[schema.LABEL] == 1))
        start = 0
        while start < n:
            if self._file is not None and self._in_shard >= self.per_shard:
                self._close_shard()
            if self._file is None:
                self._open()
            take = min(n - start, self.per_shard - self._in_shard)
            piece = {k: v[start:start + take] for k, v in cols.items()}
            self._pending.append(self._pool.submit(self._encode_and_compress, self._file,
                                                   self._zip, piece))
            self._wait(self.max_pending)
            self._in_shard += take
            start += take

    def close(self) -> list[str]:
        if self._file is None and not self.paths:
            self._open()  # an empty split still gets one valid, empty shard
        if self._file is not None:
            self._close_shard()
        self._wait(0)
        total = len(self.paths)
        names = []
        for i, path in enumerate(self.paths):
            name = f"{self.split}-{i:05d}-of-{total:05d}.tfrecord.gz"
            os.replace(path, os.path.join(self.directory, name))
            names.append(name)
        return names

    def abort(self):
        for pool in self._pools:
            pool.shutdown(cancel_futures=True)
        if self._file is not None:
            self._file.close()


def comparable_args(args: dict) -> dict:
    return {k: v for k, v in args.items() if k not in _NOT_COMPARED}


class DatasetDir:
    """Context manager owning the temporary directory of one pipeline run."""

    def __init__(self, output: str, args: dict, source_path: str | None,
                 source_display: str | None = None,
                 features: feature_schema.FeatureSchema = feature_schema.DEFAULT):
        self.output = os.path.abspath(output)
        self.features = features
        self.source_display = source_display
        self.args = args
        self.source_path = source_path
        self._check_existing()
        parent = os.path.dirname(self.output)
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as e:
            raise PipelineError(f"cannot create {parent}: {e.strerror}") from None
        self.tmp = os.path.join(parent, f".{os.path.basename(self.output)}.tmp-{os.getpid()}")
        if os.path.exists(self.tmp):
            shutil.rmtree(self.tmp)
        os.makedirs(self.tmp)
        self.scratch = os.path.join(self.tmp, "_scratch")
        os.makedirs(self.scratch)
        self._hash = _Sha256Thread(source_path) if source_path else None
        if self._hash:
            self._hash.start()
        seed = int(args.get("seed", 0))
        level = int(args.get("compression_level", 1))
        per_shard = int(args.get("examples_per_shard", 200_000))
        self.max_seq_len = int(args["max_seq_len"])
        library = args["gzip_library"]
        self.writers = {s: ShardWriter(self.tmp, s, self.max_seq_len, per_shard, level, seed,
                                       library, features.record_features())
                        for s in schema.SPLITS}
        self.leaks: leak_report.LeakReport | None = None

    def start_examples(self, vocabs: dict, sampled_negatives: bool):
        """Called once the training vocabularies exist, before the first ``write``."""
        self.leaks = leak_report.LeakReport(vocabs, sampled_negatives)
        progress.phase("writing examples", "examples")

    def _check_existing(self):
        out = self.output
        if not os.path.exists(out):
            return
        if not os.path.isdir(out):
            raise PipelineError(f"output path exists and is not a directory: {out}")
        entries = os.listdir(out)
        if not entries or self.args.get("overwrite"):
            return
        meta_path = os.path.join(out, METADATA)
        try:
            with open(meta_path, encoding="utf-8") as f:
                old = json.load(f)
        except (OSError, ValueError):
            raise PipelineError(
                f"output directory {out} is not empty and holds no dataset metadata; "
                "choose another --output or pass --overwrite") from None
        if comparable_args(old.get("args", {})) != comparable_args(self.args):
            raise PipelineError(
                f"output directory {out} already holds a different dataset (other "
                "arguments); choose another --output or pass --overwrite")

    def write(self, split: str, cols: dict):
        if self.leaks is None:
            raise RuntimeError("DatasetDir.start_examples(vocabs) must come before write")
        self.leaks.add(split, cols)
        self.writers[split].write(cols)
        progress.add(len(cols[schema.LABEL]))

    def commit(self, metadata: dict, vocabs: dict) -> dict:
        """Check the leak report, finish shards, write vocabularies and metadata.json, then
        rename into place."""
        if self.leaks is None:
            self.start_examples(vocabs, sampled_negatives=False)
        leaks = self.leaks.result()
        leak_report.check(leaks, bool(self.args.get("strict")),
                          self.source_display or self.source_path or self.output,
                          quiet=bool(self.args.get("quiet")))
        progress.phase("finishing the shards")
        shutil.rmtree(self.scratch, ignore_errors=True)
        shards = {s: w.close() for s, w in self.writers.items()}
        write_vocabularies(self.tmp, vocabs, self.features.vocabularies)
        source = None
        if self.source_path:
            self._hash.join()
            source = {"path": self.source_display or os.path.abspath(self.source_path),
                      "size": os.path.getsize(self.source_path),
                      "sha256": self._hash.digest}
        meta = {
            "schema_version": schema.SCHEMA_VERSION,
            "max_seq_len": self.max_seq_len,
            "schema": self.features.to_dict(),
            "features": [f.name for f in self.features.record_features()],
            "vocab_sizes": {name: vocabs[name].size for name in self.features.vocabularies},
            "raw_id_dtypes": {name: ("string" if vocabs[name].names is not None else "int64")
                              for name in self.features.vocabularies},
            **metadata,
            "leak_report": leaks,
            "splits": {s: {"examples": w.examples, "positives": w.positives,
                           "shards": shards[s]} for s, w in self.writers.items()},
            "source": source if source is not None else metadata.get("source"),
            "args": self.args,
        }
        if self.args.get("tfds"):
            progress.phase("writing the TFDS copy")
            meta["tfds"] = tfds_output.write(self.tmp, meta)
        with open(os.path.join(self.tmp, METADATA), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2, sort_keys=True)
            f.write("\n")
        old = None
        if os.path.exists(self.output):
            old = self.output + f".old-{os.getpid()}"
            os.replace(self.output, old)
        os.replace(self.tmp, self.output)
        if old:
            shutil.rmtree(old, ignore_errors=True)
        return meta

    def abort(self):
        for w in self.writers.values():
            w.abort()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
        return False


def summary_line(name: str, meta: dict) -> str:
    c = meta["counts"]
    dropped = ", ".join(f"{k} {v}" for k, v in sorted(c.get("rows_dropped", {}).items()))
    sizes = ", ".join(f"{s} {meta['splits'][s]['examples']} ({meta['splits'][s]['positives']}"
                      " positive)" for s in schema.SPLITS)
    b = meta["split_boundaries"]
    return (f"{name}: read {c['rows_read']} rows, dropped {sum(c['rows_dropped'].values())}"
            f"{' (' + dropped + ')' if dropped else ''}; {sizes} examples; validation from "
            f"{b['val']}, test from {b['test']}")
