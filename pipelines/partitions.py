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
    """``parts`` partitions of the ``columns`` ((name, dtype), ...) under ``directory``."""

    def __init__(self, directory: str, parts: int, columns):
        self.directory = directory
        self.parts = parts
        self.columns = tuple(columns)
        self.files = {(p, c): open(self._path(p, c), "wb")
                      for p in range(parts) for c, _ in self.columns}

    def _path(self, p, c):
        return os.path.join(self.directory, f"part{p:04d}.{c}")

    def append(self, cols: dict):
        part = user_partition(cols["user"], self.parts)
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(self.parts + 1))
        for c, dtype in self.columns:
            sorted_col = cols[c].astype(dtype)[order]
            for p in range(self.parts):
                if bounds[p + 1] > bounds[p]:
                    sorted_col[bounds[p]:bounds[p + 1]].tofile(self.files[(p, c)])

    def close(self):
        for f in self.files.values():
            f.close()

    def load(self, p: int) -> dict:
        return {c: np.fromfile(self._path(p, c), dtype=dtype) for c, dtype in self.columns}
