"""Plain helpers for the pipeline tests (imported by module name; tests/ has no packages)."""

import csv
import os

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data",
                      "taobao_user_behavior")
WINDOW_START = 1511539200  # 2017-11-25 00:00 China time


def write_rows(path, rows, header=None):
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        if header:
            w.writerow(header)
        w.writerows(rows)
    return str(path)


def split_name(ts, boundaries):
    """train / val / test of a timestamp, from metadata.json's ``split_boundaries``."""
    if ts >= boundaries["test"]:
        return "test"
    return "val" if ts >= boundaries["val"] else "train"


def known_ids(values, min_count=2):
    """The ids a training-split vocabulary keeps: seen at least ``min_count`` times."""
    counts = {}
    for v in values:
        counts[str(v)] = counts.get(str(v), 0) + 1
    return {v for v, c in counts.items() if c >= min_count}


def read_vocab(data_dir, name):
    with open(os.path.join(data_dir, "vocab", f"{name}.txt")) as f:
        return [line.rstrip("\n") for line in f]


def shard_bytes(data_dir):
    return {n: open(os.path.join(data_dir, n), "rb").read()
            for n in sorted(os.listdir(data_dir)) if n.endswith(".tfrecord.gz")}
