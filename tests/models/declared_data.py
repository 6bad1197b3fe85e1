"""A small dataset directory with a declared schema of 7 categorical, 2 numeric and 3 aligned
sequence fields, plus a history-only behaviour type (string and integer raw ids, missing
numeric values), written with the pipelines' record encoder, for tests of models and serving
beyond the default schema."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

from mdaf_tf.data import feature_schema, schema
from pipelines import tfrecord

DECLARED = {
    "static": [
        {"name": "user_id", "kind": "categorical", "vocabulary": "user"},
        {"name": "item_id", "kind": "categorical", "vocabulary": "item"},
        {"name": "cate_id", "kind": "categorical", "vocabulary": "cate"},
        {"name": "brand", "kind": "categorical"},
        {"name": "pid", "kind": "categorical"},
        {"name": "hour", "kind": "categorical"},
        {"name": "day_of_week", "kind": "categorical"},
        {"name": "price", "kind": "numeric", "mean": 50.0, "std": 20.0},
        {"name": "age", "kind": "numeric", "mean": 30.0, "std": 8.0},
    ],
    "sequence": [
        {"name": "hist_item_id", "static": "item_id"},
        {"name": "hist_cate_id", "static": "cate_id"},
        {"name": "hist_brand", "static": "brand"},
        {"name": "hist_btag", "vocabulary": "btag"},  # history only: no target value
    ],
}
SIZES = {"user": 20, "item": 40, "cate": 8, "brand": 12, "pid": 3, "hour": 24, "day_of_week": 7,
         "btag": 4}
STRING_VOCABS = ("item", "brand", "pid", "btag")  # the others have integer raw ids


def raw_vocabulary(name: str) -> list:
    if name in STRING_VOCABS:
        return [f"{name}-{i}" for i in range(SIZES[name])]
    return [1000 * (1 + len(name)) + i for i in range(SIZES[name])]


def _examples(rng, n: int, seq: int) -> dict:
    dense = {v: rng.integers(schema.FIRST_ID, SIZES[v] + schema.FIRST_ID, n) for v in SIZES}
    hist_len = rng.integers(0, seq + 1, n)
    valid = np.arange(seq)[None, :] >= (seq - hist_len)[:, None]
    cols = {f["name"]: dense[f.get("vocabulary", f["name"])] for f in DECLARED["static"]
            if f["kind"] == "categorical"}
    for f in DECLARED["sequence"]:
        vocab = f.get("vocabulary") or ("brand" if f["static"] == "brand"
                                        else f["static"].split("_")[0])
        ids = rng.integers(schema.FIRST_ID, SIZES[vocab] + schema.FIRST_ID, (n, seq))
        cols[f["name"]] = np.where(valid, ids, schema.PAD_ID)
    for name, (mean, std) in {"price": (50.0, 20.0), "age": (30.0, 8.0)}.items():
        values = rng.normal(mean, std, n).astype(np.float32)
        values[rng.random(n) < 0.2] = np.nan
        cols[name] = values
    signal = (cols["hour"] % 2 == 0) ^ (np.nan_to_num(cols["price"]) > 50)
    cols[schema.LABEL] = (rng.random(n) < np.where(signal, 0.7, 0.3)).astype(np.int64)
    cols[schema.HIST_LEN] = hist_len
    cols[schema.TIMESTAMP] = np.arange(n, dtype=np.int64)
    cols[schema.USER_KEY] = cols["user_id"].copy()
    return cols


def write(path: Path, *, n: int = 96, seq: int = 5, seed: int = 0) -> Path:
    """Write train/val/test (``n`` examples each) and return ``path``."""
    path.mkdir(parents=True)
    (path / "vocab").mkdir()
    for vocab in SIZES:
        text = "".join(f"{v}\n" for v in raw_vocabulary(vocab))
        (path / "vocab" / f"{vocab}.txt").write_text(text)
    features = feature_schema.FeatureSchema.from_dict(DECLARED).record_features()
    rng = np.random.default_rng(seed)
    splits = {}
    for split in schema.SPLITS:
        cols = _examples(rng, n, seq)
        name = f"{split}-00000-of-00001.tfrecord.gz"
        data = tfrecord.encode_examples(cols, seq, features=features)
        (path / name).write_bytes(gzip.compress(data))
        splits[split] = {"examples": n, "positives": int(cols[schema.LABEL].sum()),
                         "shards": [name]}
    meta = {
        "schema_version": schema.SCHEMA_VERSION, "schema": DECLARED, "max_seq_len": seq,
        "vocab_sizes": {v: k + schema.FIRST_ID for v, k in SIZES.items()},
        "raw_id_dtypes": {v: "string" if v in STRING_VOCABS else "int64" for v in SIZES},
        "splits": splits,
    }
    (path / "metadata.json").write_text(json.dumps(meta, indent=1))
    return path
