"""Events -> examples: history windows, negative sampling and the time-ordered split.

An *event* table holds one row per input row with raw keys ``user``, ``item``, ``cate``
(int64; string ids are codes), ``ts``, ``order`` (position in the file, breaking time
ties), ``label``, ``target`` (the row becomes an example) and ``history`` (the row may
appear in later examples' histories). A dataset declaring more static fields than
user, item and category (``mdaf_tf.data.feature_schema``) adds one array per extra field under
``event_key(name)``: raw int64 keys of the field's vocabulary for a categorical field, float32
values (NaN missing) for a numeric one. A sampled negative copies the positive's extra fields,
so with sampling only context fields (the user's, the event's time) belong there. All work is
vectorised over the table.

A history-only sequence field (no static field) reads its raw keys from
``event_key(field name)``.

Two optional keys serve protocols that are not split by time: ``seq`` replaces ``ts`` as the
order a history is "earlier" in (e.g. the row's rank, so that a history is the user's previous
rows whatever their timestamps), and ``split`` gives each row's split code (0 train, 1
validation, 2 test) instead of the time boundaries.
"""

from __future__ import annotations

import numpy as np

from mdaf_tf.data import feature_schema, schema
from pipelines.errors import PipelineError
from pipelines.vocab import Vocabulary, group_count
from pipelines.windows import Windows

# The thesis code's 70/15/15 proportions, applied by time: the latest 15% of examples are
# the test split and the 15% before them validation.
DEFAULT_VAL_FRACTION = 0.15
DEFAULT_TEST_FRACTION = 0.15
EVENT_COLUMNS = ("user", "item", "cate", "ts", "order", "label", "target", "history")
SPLIT_CODES = schema.SPLITS  # code 0 train, 1 val, 2 test
_DEFAULT_KEYS = {schema.USER_ID: "user", schema.ITEM_ID: "item", schema.CATE_ID: "cate"}


def event_key(field: str) -> str:
    """The event-table key of a static field (user, item and category have fixed keys)."""
    return _DEFAULT_KEYS.get(field, "field:" + field)


def dense_key(field: str) -> str:
    """The event-table key of a categorical field's dense ids (int32), when the caller has
    already looked them up; ExampleBuilder then uses them instead of ``event_key``'s."""
    return "dense:" + field


def training_vocabularies(ev: dict, names: dict, train: np.ndarray,
                          features: feature_schema.FeatureSchema, min_count: int) -> dict:
    """One vocabulary per declared categorical field from the ``train`` rows only; ``names``
    maps a vocabulary to the strings its keys are codes into (None: integer ids)."""
    vocabs = {}
    columns = [(f.name, f.vocab) for f in features.static if f.vocab is not None]
    columns += [(f.name, features.sequence_vocab(f)) for f in features.sequence
                if f.static is None]  # a history-only field: its own event column
    for name, vocab in columns:
        (keys,), counts = group_count(ev[event_key(name)][train])
        vocabs[vocab] = Vocabulary(keys, counts, min_count=min_count, names=names.get(vocab))
    return vocabs


def _latest_share_start(ts: np.ndarray, weights: np.ndarray, share: float, end: int) -> int:
    """First timestamp of the latest ``share`` of all examples before ``end`` (ties go to
    the later side; ``end`` when nothing is wanted)."""
    total = float(np.sum(weights))
    want = round(total * share)
    before = ts < end
    ts, weights = ts[before], weights[before]
    if want <= 0 or len(ts) == 0:
        return int(end)
    suffix = np.cumsum(weights[::-1])[::-1]  # examples at or after ts[j], before end
    enough = np.flatnonzero(suffix >= want)
    return int(ts[enough[-1] if len(enough) else 0])


def split_boundaries(ts: np.ndarray, weights: np.ndarray, val_fraction: float,
                     test_fraction: float, val_start: int | None = None,
                     test_start: int | None = None) -> tuple[int, int]:
    """(first validation timestamp, first test timestamp): an example with timestamp t is
    train when t < val_boundary, test when t >= test_boundary, validation between.

    Args:
        ts: distinct target timestamps, ascending.
        weights: examples per timestamp.
        val_fraction, test_fraction: shares of all examples; the latest ``test_fraction``
            are test and the ``val_fraction`` before them validation. Timestamps are never
            split, so ties at a boundary go to the later split.
        val_start, test_start: explicit boundaries (Unix seconds) overriding the fractions.
    """
    if len(ts) == 0:
        raise PipelineError("no examples left after filtering")
    if val_fraction + test_fraction >= 1.0:
        raise PipelineError("--val-fraction plus --test-fraction must be below 1")
    end = int(ts[-1]) + 1
    test_b = int(test_start) if test_start is not None else _latest_share_start(
        ts, weights, test_fraction, end)
    val_b = int(val_start) if val_start is not None else _latest_share_start(
        ts, weights, val_fraction, test_b)
    if val_b > test_b:
        raise PipelineError(f"validation starts at {val_b}, after the test split's start "
                            f"{test_b}: check --val-start / --test-start")
    return val_b, test_b


def split_codes(ts: np.ndarray, boundaries: tuple[int, int]) -> np.ndarray:
    """0 (train), 1 (val) or 2 (test) per timestamp."""
    return (ts >= boundaries[0]).astype(np.int8) + (ts >= boundaries[1]).astype(np.int8)


def negatives_per_positive(start: int, count: int, ratio: float) -> np.ndarray:
    """Deterministic counts whose running total is floor(k * ratio): exact on average."""
    k = np.arange(start, start + count + 1, dtype=np.float64)
    totals = np.floor(k * ratio + 1e-9).astype(np.int64)
    return np.diff(totals)


class PeriodSampler:
    """Draws raw items with probability proportional to their count among one period's
    positives, never the positive's own item.

    A split's negatives come from the same split's positive items, so an evaluation
    negative is as likely as its positive to be new, rare or popular: item identity, item
    popularity and out-of-vocabulary-ness say nothing about the label. Each item carries
    its most frequent category in the period (ties: smallest raw category id).
    """

    def __init__(self, items: np.ndarray, cates: np.ndarray, pair_counts: np.ndarray,
                 period: str = "training"):
        (it, _neg, ca), _ = group_count(items, -pair_counts, cates)
        first = np.r_[True, it[1:] != it[:-1]] if len(it) else np.zeros(0, bool)
        self.items, self.cate_of_item = it[first], ca[first]
        if len(self.items) < 2:
            raise PipelineError(f"need at least 2 distinct positive items in the {period} "
                                "period to sample its negatives (or pass --neg-ratio 0)")
        (uniq,), counts = group_count(items, weights=pair_counts)
        self.cum = np.cumsum(counts.astype(np.float64))  # uniq == self.items (both sorted)

    def sample(self, positives: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Raw items, one per raw positive item, each different from its positive."""
        out = self._draw(len(positives), rng)
        clash = np.flatnonzero(out == positives)
        while len(clash):
            out[clash] = self._draw(len(clash), rng)
            clash = clash[out[clash] == positives[clash]]
        return out

    def category(self, items: np.ndarray) -> np.ndarray:
        """Raw category of raw items drawn by ``sample``."""
        return self.cate_of_item[np.searchsorted(self.items, items)]

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
        if u_span * span < 2**62:  # one int64 key
            order = _argsort_stable((user - u_lo) * np.int64(span) + (ts - lo), u_span * span)
    if order is None:
        order = np.lexsort((pos, ts, user))
    if bool((order[1:] > order[:-1]).all()):  # already sorted: no copy of every column
        return ev
    return {k: v[order] for k, v in ev.items()}


def _argsort_stable(key: np.ndarray, key_span: int) -> np.ndarray:
    """A stable argsort of non-negative ``key``s below ``key_span``. Merge sort is fast on
    nearly sorted keys (impression files); on shuffled ones (a behaviour log) the keys made
    unique by their row let the SIMD quicksort give the same order three times faster."""
    n = len(key)
    shuffled = np.count_nonzero(key[1:] < key[:-1]) > n // 20
    if shuffled and key_span * n < 2**62:
        return np.argsort(key * np.int64(n) + np.arange(n), kind="quicksort")
    return np.argsort(key, kind="stable")


def _user_time_key(ucode: np.ndarray, ts: np.ndarray,
                   ordered: bool = True) -> tuple[np.ndarray, int]:
    """A key ordered like (user code, timestamp), and the key span of one user
    (``ordered``: ``ucode`` is non-decreasing, so its last value is its largest)."""
    if len(ts) == 0:
        return ucode.astype(np.int64), 1
    lo, hi = int(ts.min()), int(ts.max())
    span = hi - lo + 1
    users = int(ucode[-1] if ordered else ucode.max()) + 1
    if span * users < 2**62:  # no sort needed
        return ucode * np.int64(span) + (ts - lo), span
    ts_uniq, tcode = np.unique(ts, return_inverse=True)
    return ucode * np.int64(len(ts_uniq)) + tcode, len(ts_uniq)


class ExampleBuilder:
    """Builds schema columns from sorted event tables, one user-complete table at a time.

    ``samplers`` maps a split name to the ``PeriodSampler`` of that split's positives;
    each positive example of the split gets ``neg_ratio`` negatives on average that share
    its user, history and timestamp, with an item drawn from the sampler and mapped
    through the training vocabularies like any other id.
    """

    def __init__(self, *, vocabs: dict, boundaries: tuple[int, int], max_seq_len: int,
                 samplers: dict | None, neg_ratio: float, seed: int, chunk_size: int = 65536,
                 features: feature_schema.FeatureSchema = feature_schema.DEFAULT):
        self.vocabs = vocabs
        self.boundaries = boundaries
        self.max_seq_len = max_seq_len
        self.samplers = samplers or {}
        self.neg_ratio = neg_ratio if self.samplers else 0.0
        self.seed = seed
        self.chunk_size = chunk_size
        self.features = features
        self._positives_seen = 0
        self._tables = 0

    def build(self, ev: dict, history: dict | None = None):
        """Yield ``(split, columns)`` for a table holding complete user histories.

        The history columns are ``Windows`` over the table's dense history ids; with a
        ``history`` table (keys ``user``, ``ts``, ``order`` and each sequence field's raw
        keys, under ``event_key`` of its static field or, history-only, its own name), the
        histories come from its rows instead of the event table's ``history`` rows.
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
        dense = self._dense_fields(ev, user_change, ucode)
        if history is None:
            key, t_span = _user_time_key(ucode, ev.get("seq", ev["ts"]))
            hist = ev["history"]
            all_hist = bool(hist.all())
            h_key = key if all_hist else key[hist]
            windows = {}
            for f in self.features.sequence:
                values = dense[f.static] if f.static is not None else self._history_only(ev, f)
                windows[f.name] = Windows.over(values if all_hist else values[hist],
                                               self.max_seq_len)
        else:
            key, t_span, h_key, windows = self._history_table(ev, ucode, user_change, history)
        targets = np.flatnonzero(ev["target"])
        for start in range(0, len(targets), self.chunk_size):
            rows = targets[start:start + self.chunk_size]
            yield from self._chunk(ev, rows, key[rows], ucode[rows] * t_span, h_key,
                                   (dense, windows), rng)

    def _history_table(self, ev, ucode, user_change, history: dict):
        """Target keys, the key span of a user, history keys and windows of a separate
        history table, in one (user code, time) key space with the targets: only the key and
        the sequence columns are reordered."""
        users = ev["user"][user_change]
        pos = np.clip(np.searchsorted(users, history["user"]), 0, len(users) - 1)
        keep = users[pos] == history["user"]
        if not keep.all():
            history = {k: v[keep] for k, v in history.items()}
            pos = pos[keep]
        both = np.concatenate([ucode, pos])
        key, t_span = _user_time_key(both, np.concatenate([ev["ts"], history["ts"]]),
                                     ordered=False)
        h_key = key[len(ucode):]
        file_order = history["order"]
        if len(h_key) > 1 and bool((file_order[1:] > file_order[:-1]).all()):
            order = _argsort_stable(h_key, (len(users) + 1) * t_span)
        else:
            order = np.lexsort((file_order, h_key))
        windows = {}
        for f in self.features.sequence:
            name = f.name if f.static is None else f.static
            values = history.get(dense_key(name))
            if values is None:
                vocab = self.vocabs[self.features.sequence_vocab(f)]
                values = vocab.lookup(history[event_key(name)]).astype(np.int32)
            windows[f.name] = Windows.over(values[order], self.max_seq_len)
        return key[:len(ucode)], t_span, h_key[order], windows

    def _dense_fields(self, ev: dict, user_change: np.ndarray, ucode: np.ndarray) -> dict:
        """Per-event model values of every static field: dense ids (int32, so that the
        history base arrays stay small) or float32 numbers."""
        dense = {}
        for f in self.features.static:
            if dense_key(f.name) in ev:  # looked up by the caller (e.g. per joined table row)
                dense[f.name] = ev[dense_key(f.name)]
                continue
            raw = ev[event_key(f.name)]
            if f.kind == feature_schema.NUMERIC:
                dense[f.name] = raw.astype(np.float32)
            elif f.name == schema.USER_ID:  # one lookup per user: the table is user-sorted
                dense[f.name] = self.vocabs[f.vocab].lookup(raw[user_change])[ucode]
            else:
                dense[f.name] = self.vocabs[f.vocab].lookup(raw).astype(np.int32)
        return dense

    def _history_only(self, ev: dict, field) -> np.ndarray:
        """Dense ids of a history-only field (no static field): its own event column."""
        if dense_key(field.name) in ev:
            return ev[dense_key(field.name)]
        vocab = self.vocabs[self.features.sequence_vocab(field)]
        return vocab.lookup(ev[event_key(field.name)]).astype(np.int32)

    def _chunk(self, ev, rows, t_key, t_user_key, h_key, fields, rng):
        dense, windows = fields
        end = np.searchsorted(h_key, t_key, side="left")  # strictly earlier in time
        first = np.searchsorted(h_key, t_user_key, side="left")
        hist_len = np.minimum(end - first, self.max_seq_len)
        cols = {schema.LABEL: ev["label"][rows].astype(np.int64)}
        for f in self.features.static:
            values = dense[f.name][rows]
            cols[f.name] = values if f.kind == feature_schema.NUMERIC else values.astype(np.int64)
        for name, w in windows.items():
            cols[name] = w.at(end, hist_len)
        cols[schema.HIST_LEN] = hist_len.astype(np.int64)
        cols[schema.TIMESTAMP] = ev["ts"][rows].astype(np.int64)
        cols[schema.USER_KEY] = ev["user"][rows].astype(np.int64)
        code = (ev["split"][rows] if "split" in ev
                else split_codes(cols[schema.TIMESTAMP], self.boundaries))
        for c, split in enumerate(SPLIT_CODES):
            mask = code == c
            if not mask.any():
                continue
            part = cols if mask.all() else {k: v[mask] for k, v in cols.items()}
            if self.neg_ratio > 0:
                part = self._add_negatives(part, ev["item"][rows[mask]], split, rng)
            yield split, part

    def _add_negatives(self, cols, raw_item, split, rng):
        pos = cols[schema.LABEL] == 1
        n_neg = np.zeros(len(pos), dtype=np.int64)
        n_neg[pos] = negatives_per_positive(self._positives_seen, int(pos.sum()),
                                            self.neg_ratio)
        self._positives_seen += int(pos.sum())
        per_row = 1 + n_neg
        starts = np.cumsum(per_row) - per_row
        src = np.repeat(np.arange(len(pos)), per_row)
        out = {k: v[src] for k, v in cols.items()}
        neg_slots = np.ones(len(src), dtype=bool)
        neg_slots[starts] = False
        sampler = self.samplers[split]
        items = sampler.sample(raw_item[src[neg_slots]], rng)
        out[schema.ITEM_ID][neg_slots] = self.vocabs[schema.ITEM_VOCAB].lookup(items)
        out[schema.CATE_ID][neg_slots] = self.vocabs[schema.CATE_VOCAB].lookup(
            sampler.category(items))
        out[schema.LABEL][neg_slots] = 0
        return out
