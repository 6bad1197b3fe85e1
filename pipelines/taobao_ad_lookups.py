"""The joined fields of Taobao Ad Display/Click: each impression's ad and profile values.

``Lookups`` turns ``ad_feature.csv`` and ``user_profile.csv`` into per-row keys of every
categorical field once (``declared_columns.categorical_keys``: integer ids stay integers, a
column with a missing value keeps string ids, missing is ``<missing>``), so that an event
table, or vocabulary counts from per-adgroup and per-user counts, take them by row index.
A user without a profile gets an added all-missing row. ``PidCodes`` gives the placement
strings global codes while the file streams.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mdaf_tf.data import schema
from pipelines import context, declared_columns
from pipelines.examples import dense_key, event_key
from pipelines.taobao_ad_inputs import AD_COLUMNS, BTAGS, PROFILE_COLUMNS, lookup
from pipelines.vocab import Vocabulary, group_count

AD_FIELDS = AD_COLUMNS[1:5]  # cate_id, campaign_id, customer, brand (price is numeric)
PROFILE_FIELDS = PROFILE_COLUMNS[1:]
VOCAB = {"cate_id": schema.CATE_VOCAB}  # the other joined fields' vocabularies: their names


def text(column) -> pa.ChunkedArray:
    """Trimmed text with ``NULL`` and empty cells as empty strings (missing)."""
    trimmed = pc.fill_null(pc.utf8_trim_whitespace(column), "")
    return pc.if_else(pc.equal(trimmed, "NULL"), "", trimmed)


class PidCodes:
    """Global codes of placement strings in first-seen order; ``sorted_keys`` maps them to
    codes into the sorted names (the order string ids have everywhere else)."""

    def __init__(self):
        self.codes: dict[str, int] = {}

    def encode(self, pid: pa.Array) -> np.ndarray:
        encoded = pc.dictionary_encode(pid).combine_chunks() if isinstance(
            pid, pa.ChunkedArray) else pc.dictionary_encode(pid)
        local = np.array([self.codes.setdefault(v, len(self.codes))
                          for v in encoded.dictionary.to_pylist()], dtype=np.int32)
        return local[encoded.indices.to_numpy(zero_copy_only=False)]

    def names(self) -> np.ndarray:
        return np.array(sorted(self.codes), dtype=object)

    def sorted_keys(self, codes: np.ndarray) -> np.ndarray:
        rank = np.empty(len(self.codes), dtype=np.int64)
        for order, name in enumerate(sorted(self.codes)):
            rank[self.codes[name]] = order
        return rank[codes]


class SharedKeys:
    """One key space for ids read as text from several files (a field of ad_feature.csv and
    of behavior_log.csv): codes while streaming, then keys: integers where every id is one,
    else codes into the sorted distinct strings (missing: ``<missing>``)."""

    def __init__(self):
        self.codes = PidCodes()

    def encode(self, column) -> np.ndarray:
        """Codes of a raw text column (cleaned like ``text``, empty as MISSING): the column
        is dictionary-encoded first, so the cleaning runs over its distinct values only."""
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        encoded = pc.dictionary_encode(column)
        values = encoded.dictionary
        if encoded.null_count:  # a null cell: the empty string, so MISSING
            values = pa.concat_arrays([values, pa.array([""])])
        cleaned = text(values)
        codes = self.codes.encode(pc.if_else(pc.equal(cleaned, ""), declared_columns.MISSING,
                                             cleaned))
        return codes[pc.fill_null(encoded.indices, len(values) - 1).to_numpy()]

    def finish(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(key of each code, names or None for integer keys)."""
        names = self.codes.names()
        keys, names_or_none = declared_columns.categorical_keys(pa.chunked_array(
            [pa.array(list(names), pa.string())]))
        ranked = self.codes.sorted_keys(np.arange(len(names)))
        return keys[ranked], names_or_none


class Lookups:
    def __init__(self, ads: pa.Table, ad_keys: np.ndarray, profiles: pa.Table,
                 profile_keys: np.ndarray, ad_path: str):
        self.ad_keys, self.profile_keys = ad_keys, profile_keys
        self.ad = {f: declared_columns.categorical_keys(text(ads.column(f)))
                   for f in AD_FIELDS}
        locate = declared_columns.csv_line_of(ad_path, AD_COLUMNS)
        self.price = declared_columns.numeric_values(text(ads.column("price")), "price",
                                                     ad_path, locate)
        missing_row = pa.array([""])
        self.profile = {f: declared_columns.categorical_keys(pa.chunked_array(
            [text(profiles.column(f)).combine_chunks(), missing_row])) for f in PROFILE_FIELDS}
        self._dense_rows: dict | None = None  # per table row dense ids, for _dense_vocabs
        self._dense_vocabs: dict | None = None

    def names(self, pid: PidCodes) -> dict:
        """Vocabulary -> the strings its keys index (None: integer ids)."""
        names = {schema.USER_VOCAB: None, schema.ITEM_VOCAB: None, "pid": pid.names(),
                 "btag": np.array(BTAGS, dtype=object), **{f: None for f in context.FIELDS}}
        names.update({VOCAB.get(f, f): self.ad[f][1] for f in AD_FIELDS})
        names.update({f: self.profile[f][1] for f in PROFILE_FIELDS})
        return names

    def profile_rows(self, users: np.ndarray) -> np.ndarray:
        row, found = lookup(self.profile_keys, users)
        row[~found] = len(self.profile_keys)
        return row

    def events(self, rows: dict, pid_keys: np.ndarray, history: str,
               vocabs: dict | None = None) -> dict:
        """The event table of ``rows`` (user, ts, adgroup, clk, pos) with every field; given
        the ``vocabs``, also the joined fields' dense ids, looked up once per table row."""
        ad_row = lookup(self.ad_keys, rows["adgroup"])[0]
        clicked = rows["clk"] == 1
        ev = {"user": rows["user"], "item": rows["adgroup"], "ts": rows["ts"],
              "order": rows["pos"], "label": rows["clk"].astype(np.int8),
              "target": np.ones(len(ad_row), dtype=bool),
              "history": np.ones(len(ad_row), bool) if history == "impressions" else clicked,
              event_key("price"): self.price[ad_row], event_key("pid"): pid_keys}
        ev.update({event_key(f): self.ad[f][0][ad_row] for f in AD_FIELDS})
        profile_row = self.profile_rows(rows["user"])
        ev.update({event_key(f): self.profile[f][0][profile_row] for f in PROFILE_FIELDS})
        ev.update({event_key(f): v for f, v in context.context_values(
            rows["ts"], context.FIELDS, context.CHINA).items()})
        if vocabs is not None:
            ev.update(self._dense(vocabs, ad_row, profile_row))
        return ev

    def _dense(self, vocabs: dict, ad_row: np.ndarray, profile_row: np.ndarray) -> dict:
        if self._dense_vocabs is not vocabs:
            tables = {"item_id": (vocabs[schema.ITEM_VOCAB], self.ad_keys, "ad")}
            tables.update({f: (vocabs[VOCAB.get(f, f)], self.ad[f][0], "ad")
                           for f in AD_FIELDS})
            tables.update({f: (vocabs[f], self.profile[f][0], "profile")
                           for f in PROFILE_FIELDS})
            self._dense_rows = {f: (v.lookup(keys).astype(np.int32), table)
                                for f, (v, keys, table) in tables.items()}
            self._dense_vocabs = vocabs
        rows = {"ad": ad_row, "profile": profile_row}
        return {dense_key(f): ids[rows[table]] for f, (ids, table) in self._dense_rows.items()}

    def share(self, field: str, keys: np.ndarray, names: np.ndarray | None):
        """Replace an ad field's per-row keys by keys of a key space shared with another file
        (``SharedKeys.finish``); ``keys`` are per ad_feature row."""
        self.ad[field] = (keys, names)
        self._dense_vocabs = None

    def vocabularies(self, counts: dict, pid: PidCodes, min_count: int,
                     extra: dict | None = None) -> dict:
        """Vocabularies from training counts: ``counts`` maps user, adgroup, pid (codes),
        hour and day_of_week to (keys, counts); ad fields count through their adgroups,
        profile fields through their users; ``extra`` {vocabulary: (keys, counts)} adds
        counts from elsewhere (the behaviour log's) or vocabularies of their own."""
        names = self.names(pid)
        users, items = counts["user"], counts["adgroup"]
        by_vocab = {schema.USER_VOCAB: users, schema.ITEM_VOCAB: items,
                    "pid": (pid.sorted_keys(counts["pid"][0]), counts["pid"][1]),
                    **{f: counts[f] for f in context.FIELDS}}
        ad_row = lookup(self.ad_keys, items[0])[0]
        for f in AD_FIELDS:
            by_vocab[VOCAB.get(f, f)] = _merged(self.ad[f][0][ad_row], items[1])
        profile_row = self.profile_rows(users[0])
        for f in PROFILE_FIELDS:
            by_vocab[f] = _merged(self.profile[f][0][profile_row], users[1])
        for vocab, (keys, n) in (extra or {}).items():
            old_keys, old_n = by_vocab.get(vocab, (keys[:0], n[:0]))
            by_vocab[vocab] = (np.concatenate([old_keys, keys]), np.concatenate([old_n, n]))
        return {v: Vocabulary(*_merged(*by_vocab[v]), min_count=min_count, names=names.get(v))
                for v in by_vocab}

    def price_stats(self, adgroups: np.ndarray, counts: np.ndarray) -> tuple[float, float]:
        """Mean and standard deviation of price over training impressions, from their
        per-adgroup counts (missing prices left out)."""
        price = self.price[lookup(self.ad_keys, adgroups)[0]].astype(np.float64)
        keep = ~np.isnan(price)
        weights = counts[keep].astype(np.float64)
        if weights.sum() == 0:
            return 0.0, 1.0
        mean = float(np.average(price[keep], weights=weights))
        std = float(np.sqrt(np.average((price[keep] - mean) ** 2, weights=weights)))
        return mean, (std if std > 0 else 1.0)


def _merged(keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    (uniq,), merged = group_count(np.asarray(keys, dtype=np.int64), weights=counts)
    return uniq, merged
