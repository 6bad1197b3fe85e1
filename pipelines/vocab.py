"""Raw-id vocabularies: dense ids 0 = padding, 1 = OOV, real ids from ``schema.FIRST_ID``."""

from __future__ import annotations

import os

import numpy as np

from mdaf_tf.data import schema


def group_count(*keys: np.ndarray, weights: np.ndarray | None = None):
    """Distinct key tuples (sorted lexicographically) and their summed weights (or counts)."""
    n = len(keys[0])
    if n == 0:
        return tuple(k[:0] for k in keys), np.zeros(0, dtype=np.int64)
    if len(keys) == 1 and weights is None:  # a value sort is cheaper than an argsort
        uniq, counts = np.unique(keys[0], return_counts=True)
        return (uniq,), counts.astype(np.int64)
    order = np.lexsort(keys[::-1])
    sorted_keys = [k[order] for k in keys]
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for k in sorted_keys:
        change[1:] |= k[1:] != k[:-1]
    starts = np.flatnonzero(change)
    w = np.ones(n, dtype=np.int64) if weights is None else weights[order]
    sums = np.add.reduceat(w, starts)
    return tuple(k[starts] for k in sorted_keys), sums


class CountAccumulator:
    """Sums counts of keys over many chunks with bounded memory (merged periodically)."""

    def __init__(self, ncols: int = 1):
        self.ncols = ncols
        self._parts: list[tuple] = []
        self._size = 0

    def add(self, *keys: np.ndarray, weights: np.ndarray | None = None):
        uniq, counts = group_count(*keys, weights=weights)
        self._parts.append((*uniq, counts))
        self._size += len(counts)
        if len(self._parts) > 8 and self._size > 4_000_000:
            self._parts = [self.result_tuple()]
            self._size = len(self._parts[0][-1])

    def result_tuple(self):
        if not self._parts:
            return tuple(np.zeros(0, np.int64) for _ in range(self.ncols + 1))
        cols = [np.concatenate([p[i] for p in self._parts]) for i in range(self.ncols + 1)]
        uniq, counts = group_count(*cols[:-1], weights=cols[-1])
        return (*uniq, counts)


class Vocabulary:
    """Maps raw keys (int64; for string ids, codes into ``names``) to dense ids.

    Order: descending frequency, then ascending raw id (string order for string ids);
    keys seen fewer than ``min_count`` times are left out and map to ``schema.OOV_ID``.
    """

    def __init__(self, keys: np.ndarray, counts: np.ndarray, min_count: int = 1,
                 names: np.ndarray | None = None):
        keep = counts >= min_count
        keys, counts = keys[keep], counts[keep]
        # keys arrive sorted ascending; a stable sort by -count keeps ascending key for ties
        order = np.argsort(-counts, kind="stable")
        self.raw = keys[order]
        self.counts = counts[order]
        self.names = names
        by_key = np.argsort(self.raw, kind="stable")
        self._sorted = self.raw[by_key]
        self._dense_sorted = by_key.astype(np.int64) + schema.FIRST_ID

    @property
    def size(self) -> int:
        """Embedding input_dim: real ids plus the PAD and OOV rows."""
        return len(self.raw) + schema.FIRST_ID

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        keys = np.asarray(keys, dtype=np.int64)
        if len(self._sorted) == 0:
            return np.full(keys.shape, schema.OOV_ID, dtype=np.int64)
        pos = np.clip(np.searchsorted(self._sorted, keys), 0, len(self._sorted) - 1)
        found = self._sorted[pos] == keys
        return np.where(found, self._dense_sorted[pos], schema.OOV_ID).astype(np.int64)

    def raw_strings(self) -> list[str]:
        if self.names is not None:
            return [str(x) for x in self.names[self.raw]]
        return [str(int(x)) for x in self.raw]

    def write(self, path: str):
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            for s in self.raw_strings():
                f.write(s + "\n")


def write_vocabularies(directory: str, vocabs: dict, names=schema.VOCABULARIES):
    """``vocab/NAME.txt`` for each declared vocabulary ``names``."""
    os.makedirs(os.path.join(directory, "vocab"), exist_ok=True)
    for name in names:
        vocabs[name].write(os.path.join(directory, "vocab", f"{name}.txt"))
