"""Events -> examples: history windows, negative sampling and the time-ordered split.

An *event* table holds one row per input row with raw keys ``user``, ``item``, ``cate``
(int64; string ids are codes), ``ts``, ``order`` (position in the file, breaking time
ties), ``label``, ``target`` (the row becomes an example) and ``history`` (the row may
appear in later examples' histories). All work is vectorised over the table.
"""

from __future__ import annotations

import numpy as np

from mdaf_tf import schema
from pipelines.errors import PipelineError
from pipelines.windows import Windows

DEFAULT_VAL_FRACTION = 225_446 / (1_052_081 + 225_446)  # the seed's split, about 17.6%
EVENT_COLUMNS = ("user", "item", "cate", "ts", "order", "label", "target", "history")


def split_boundary(ts: np.ndarray, weights: np.ndarray, val_fraction: float,
                   val_start: int | None = None) -> int:
    """First validation timestamp: examples with ``timestamp >= boundary`` are validation.

    Args:
        ts: distinct target timestamps, ascending.
        weights: examples per timestamp.
        val_fraction: share of examples, the latest ones, that go to validation; timestamps
            are never split, so ties at the boundary go to validation.
        val_start: explicit boundary (overrides ``val_fraction``).
    """
    if val_start is not None:
        return int(val_start)
    if len(ts) == 0:
        raise PipelineError("no examples left after filtering")
    total = float(np.sum(weights))
    want = round(total * val_fraction)
    if want <= 0:
        return int(ts[-1]) + 1
    suffix = np.cumsum(weights[::-1])[::-1]  # examples at or after ts[j]
    j = int(np.flatnonzero(suffix >= want)[-1])
    return int(ts[j])


def negatives_per_positive(start: int, count: int, ratio: float) -> np.ndarray:
    """Deterministic counts whose running total is floor(k * ratio): exact on average."""
    k = np.arange(start, start + count + 1, dtype=np.float64)
    totals = np.floor(k * ratio + 1e-9).astype(np.int64)
    return np.diff(totals)


class PopularitySampler:
    """Draws items with probability proportional to their training-period count."""

    def __init__(self, item_dense: np.ndarray, counts: np.ndarray, cate_of_item: np.ndarray):
        if len(item_dense) < 2:
            raise PipelineError("need at least 2 items in the training period to sample "
                                "negatives (or pass --neg-ratio 0)")
        self.items = item_dense
        self.cum = np.cumsum(counts.astype(np.float64))
        self.cate_of_item = cate_of_item  # dense cate id indexed by dense item id

    def sample(self, positives: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = self._draw(len(positives), rng)
        clash = np.flatnonzero(out == positives)
        while len(clash):
            out[clash] = self._draw(len(clash), rng)
            clash = clash[out[clash] == positives[clash]]
        return out

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        u = rng.random(n) * self.cum[-1]
        # ascending queries walk the table in order: same result, far fewer cache misses
        order = np.argsort(u)
        idx = np.empty(n, dtype=np.int64)
        idx[order] = np.searchsorted(self.cum, u[order], side="right")
        return self.items[np.minimum(idx, len(self.items) - 1)]


def sort_events(ev: dict) -> dict:
    """Order by user, then time, then file position (ties keep file order)."""
    user, ts, pos = ev["user"], ev["ts"], ev["order"]
    order = None
    if len(user) > 1 and bool((pos[1:] > pos[:-1]).all()):  # file order: a stable sort
        lo, span = int(ts.min()), int(ts.max()) - int(ts.min()) + 1
        u_lo, u_span = int(user.min()), int(user.max()) - int(user.min()) + 1
        if u_span * span < 2**62:  # one int64 key; cheap on the nearly sorted files
            order = np.argsort((user - u_lo) * np.int64(span) + (ts - lo), kind="stable")
    if order is None:
        order = np.lexsort((pos, ts, user))
    return {k: v[order] for k, v in ev.items()}


def _user_time_key(ucode: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, int]:
    """A key ordered like (user code, timestamp), and the key span of one user."""
    lo, hi = int(ts.min()), int(ts.max())
    span = hi - lo + 1
    if span * (int(ucode[-1]) + 1) < 2**62:  # no sort needed
        return ucode * np.int64(span) + (ts - lo), span
    ts_uniq, tcode = np.unique(ts, return_inverse=True)
    return ucode * np.int64(len(ts_uniq)) + tcode, len(ts_uniq)


class ExampleBuilder:
    """Builds schema columns from sorted event tables, one user-complete table at a time."""

    def __init__(self, *, vocabs: dict, boundary: int, max_seq_len: int,
                 sampler: PopularitySampler | None, neg_ratio: float, seed: int,
                 chunk_size: int = 65536):
        self.vocabs = vocabs
        self.boundary = boundary
        self.max_seq_len = max_seq_len
        self.sampler = sampler
        self.neg_ratio = neg_ratio if sampler is not None else 0.0
        self.seed = seed
        self.chunk_size = chunk_size
        self._positives_seen = 0
        self._tables = 0

    def build(self, ev: dict):
        """Yield ``(split, columns)`` for a table holding complete user histories.

        The history columns are ``Windows`` over the table's dense history ids.
        """
        ev = sort_events(ev)
        rng = np.random.default_rng([self.seed, self._tables])
        self._tables += 1
        n = len(ev["user"])
        if n == 0:
            return
        user_change = np.ones(n, dtype=bool)
        user_change[1:] = ev["user"][1:] != ev["user"][:-1]
        ucode = np.cumsum(user_change) - 1
        key, t_span = _user_time_key(ucode, ev["ts"])
        hist = ev["history"]
        all_hist = bool(hist.all())
        h_key = key if all_hist else key[hist]
        # dense ids fit int32: the history base arrays stay small
        item = self.vocabs[schema.ITEM_VOCAB].lookup(ev["item"]).astype(np.int32)
        cate = self.vocabs[schema.CATE_VOCAB].lookup(ev["cate"]).astype(np.int32)
        user = self.vocabs[schema.USER_VOCAB].lookup(ev["user"][user_change])[ucode]
        h_item = Windows.over(item if all_hist else item[hist], self.max_seq_len)
        h_cate = Windows.over(cate if all_hist else cate[hist], self.max_seq_len)
        targets = np.flatnonzero(ev["target"])
        for start in range(0, len(targets), self.chunk_size):
            rows = targets[start:start + self.chunk_size]
            yield from self._chunk(ev, rows, key[rows], ucode[rows] * t_span, h_key,
                                   (user, item, cate, h_item, h_cate), rng)

    def _chunk(self, ev, rows, t_key, t_user_key, h_key, dense, rng):
        user, item, cate, h_item, h_cate = dense
        seq = self.max_seq_len
        end = np.searchsorted(h_key, t_key, side="left")  # strictly earlier in time
        first = np.searchsorted(h_key, t_user_key, side="left")
        hist_len = np.minimum(end - first, seq)
        cols = {
            schema.LABEL: ev["label"][rows].astype(np.int64),
            schema.USER_ID: user[rows],
            schema.ITEM_ID: item[rows].astype(np.int64),
            schema.CATE_ID: cate[rows].astype(np.int64),
            schema.HIST_ITEM_ID: h_item.at(end, hist_len),
            schema.HIST_CATE_ID: h_cate.at(end, hist_len),
            schema.HIST_LEN: hist_len.astype(np.int64),
            schema.TIMESTAMP: ev["ts"][rows].astype(np.int64),
        }
        if self.neg_ratio > 0:
            cols = self._add_negatives(cols, rng)
        is_val = cols[schema.TIMESTAMP] >= self.boundary
        for split, mask in (("train", ~is_val), ("val", is_val)):
            if mask.all():
                yield split, cols
            elif mask.any():
                yield split, {k: v[mask] for k, v in cols.items()}

    def _add_negatives(self, cols, rng):
        pos = cols[schema.LABEL] == 1
        n_neg = np.zeros(len(pos), dtype=np.int64)
        n_neg[pos] = negatives_per_positive(self._positives_seen, int(pos.sum()),
                                            self.neg_ratio)
        self._positives_seen += int(pos.sum())
        per_row = 1 + n_neg
        starts = np.cumsum(per_row) - per_row
        total = int(per_row.sum())
        src = np.repeat(np.arange(len(pos)), per_row)
        out = {k: v[src] for k, v in cols.items()}
        neg_slots = np.ones(total, dtype=bool)
        neg_slots[starts] = False
        neg_src = src[neg_slots]
        items = self.sampler.sample(cols[schema.ITEM_ID][neg_src], rng)
        out[schema.ITEM_ID][neg_slots] = items
        out[schema.CATE_ID][neg_slots] = self.sampler.cate_of_item[items]
        out[schema.LABEL][neg_slots] = 0
        return out
