"""History windows: each row's values are ``base[end - length:end]``, left-padded with 0.

``ExampleBuilder`` hands these to the shard writer instead of ``(rows, max_seq_len)``
arrays: indexing (negative repeats, split masks, shuffles, shard slices) then moves two
integers per row rather than a whole history, and the compiled encoder reads the values
straight from ``base``. ``np.asarray(windows)`` gives the padded matrix.
"""

from __future__ import annotations

import threading

import numpy as np


class Windows:
    def __init__(self, base: np.ndarray, end: np.ndarray, length: np.ndarray, width: int,
                 _cache: dict | None = None):
        self.base = base
        self.end = end
        self.length = length
        self.width = width
        # shared by every Windows indexed from this one: derived per-base data (the
        # compiled encoder's varint bytes), built once under the lock
        self._cache = {"lock": threading.Lock()} if _cache is None else _cache

    @classmethod
    def over(cls, base: np.ndarray, width: int) -> Windows:
        """No windows yet; ``at`` then makes windows sharing this base's cache."""
        empty = np.zeros(0, np.int64)
        return cls(base, empty, empty, width)

    def at(self, end: np.ndarray, length: np.ndarray) -> Windows:
        return Windows(self.base, end, length, self.width, self._cache)

    def cached(self, name: str, make):
        """``make(base)``, computed once for all windows over the same base."""
        with self._cache["lock"]:
            if name not in self._cache:
                self._cache[name] = make(self.base)
            return self._cache[name]

    def __len__(self) -> int:
        return len(self.end)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.end), self.width)

    def __getitem__(self, key) -> Windows:
        return Windows(self.base, self.end[key], self.length[key], self.width, self._cache)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        n = len(self.end)
        offset = np.arange(self.width) - self.width  # -width .. -1
        idx = self.end[:, None] + offset[None, :]
        valid = offset[None, :] >= -self.length[:, None]
        out = np.zeros((n, self.width), dtype=self.base.dtype)
        out[valid] = self.base[idx[valid]]
        return out if dtype is None else out.astype(dtype)
