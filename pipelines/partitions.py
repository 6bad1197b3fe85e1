"""Per-user partition files: rows appended by a hash of the user id, read back one partition
at a time, so that each partition holds complete user histories whatever the input order
is and memory is bounded by one partition."""

from __future__ import annotations

import os

import numpy as np


def user_partition(users: np.ndarray, parts: int) -> np.ndarray:
    h = users.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    return ((h >> np.uint64(33)) % np.uint64(parts)).astype(np.int64)


class Partitions:
    """``parts`` partitions of the ``columns`` ((name, dtype), ...) under ``directory``: one
    file of packed records per partition, so that a run at the real size (hundreds of
    partitions, for two tables) stays well inside a default limit of 1024 open files."""

    def __init__(self, directory: str, parts: int, columns):
        self.directory = directory
        self.parts = parts
        self.columns = tuple(columns)
        self.record = np.dtype([(c, dtype) for c, dtype in self.columns])
        self.files = {p: open(self._path(p), "wb") for p in range(parts)}

    def _path(self, p):
        return os.path.join(self.directory, f"part{p:04d}.rows")

    def append(self, cols: dict):
        part = user_partition(cols["user"], self.parts)
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(self.parts + 1))
        rows = np.empty(len(order), dtype=self.record)
        for c, _ in self.columns:
            rows[c] = cols[c][order]
        for p in range(self.parts):
            if bounds[p + 1] > bounds[p]:
                rows[bounds[p]:bounds[p + 1]].tofile(self.files[p])

    def close(self):
        for f in self.files.values():
            f.close()

    def load(self, p: int) -> dict:
        rows = np.fromfile(self._path(p), dtype=self.record)
        return {c: np.ascontiguousarray(rows[c]) for c, _ in self.columns}
