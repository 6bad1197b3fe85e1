"""The behaviour-log history of Taobao Ad Display/Click (``--history behavior-log``).

``behavior_log.csv`` (user, time_stamp, btag, cate, brand) streams into the same per-user
partitions as the impressions (one set of files beside theirs), so that each partition's
impressions meet their users' whole logs. An impression's history is its user's last
``max_seq_len`` log events strictly before it (ties in file order), as BARS and DIN build
them; a token is (category, brand, behaviour type). Category and brand share their static
fields' vocabularies and embeddings, so their ids are coded in one key space over
``ad_feature.csv`` and the log (``SharedKeys``); their vocabularies count the impressions and
the log events of the training period, and the behaviour type (history only: an impression has
none) has its own.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import numpy as np

from pipelines.csv_input import BadRows
from pipelines.examples import dense_key
from pipelines.partitions import Partitions
from pipelines.taobao_ad_inputs import BTAGS, stream_behavior_log
from pipelines.taobao_ad_lookups import Lookups, SharedKeys
from pipelines.vocab import CountAccumulator

_COLUMNS = (("user", np.int64), ("ts", np.int64), ("btag", np.int8), ("cate", np.int32),
            ("brand", np.int32), ("pos", np.int64))
_SHARED = (("cate_id", "cate"), ("brand", "brand"))  # (static field, vocabulary)


@dataclasses.dataclass
class Log:
    loader: Callable[[dict], Callable[[int], dict]]  # vocabularies -> (partition -> history)
    counts: dict  # vocabulary -> (keys, counts) of the training-period events
    summary: dict  # rows read, dropped by reason, used


def read(args, scratch: str, lookups: Lookups, ads, n_parts: int, val_start: int,
         window_end: int) -> Log:
    """Stream the log (events before ``window_end``) into partitions, count its training-
    period keys and give the ad table's category and brand keys in the shared key space
    (``Lookups.share``)."""
    shared = {field: SharedKeys() for field, _ in _SHARED}
    ad_codes = {field: shared[field].encode(ads.column(field)) for field, _ in _SHARED}
    os.makedirs(os.path.join(scratch, "log"), exist_ok=True)
    parts = Partitions(os.path.join(scratch, "log"), n_parts, _COLUMNS)
    acc = {vocab: CountAccumulator() for vocab in ("cate", "brand", "btag")}
    bad = BadRows(args.behavior_log, args.strict, [])
    used = 0
    try:
        for block, pos in stream_behavior_log(args.behavior_log, window_end, bad):
            codes = {vocab: shared[field].encode(block[vocab]) for field, vocab in _SHARED}
            train = block["ts"] < val_start
            for vocab, values in (*codes.items(), ("btag", block["btag"])):
                acc[vocab].add(values[train].astype(np.int64))
            parts.append({**block, **codes, "pos": pos})
            used += len(pos)
    finally:
        parts.close()
    remap = {}
    for field, vocab in _SHARED:
        keys, names = shared[field].finish()
        lookups.share(field, keys[ad_codes[field]], names)
        remap[vocab] = keys
    counts = {v: acc[v].result_tuple() for v in acc}
    counts.update({v: (remap[v][k], n) for v, (k, n) in counts.items() if v in remap})

    def loader(vocabs: dict) -> Callable[[int], dict]:
        """Partition -> ExampleBuilder's history table, ids dense: each code is looked up
        once here, each event is a gather."""
        dense = {vocab: vocabs[vocab].lookup(keys).astype(np.int32)
                 for vocab, keys in (*remap.items(), ("btag", np.arange(len(BTAGS))))}

        def load(p: int) -> dict:
            d = parts.load(p)
            return {"user": d["user"], "ts": d["ts"], "order": d["pos"],
                    dense_key("cate_id"): dense["cate"][d["cate"]],
                    dense_key("brand"): dense["brand"][d["brand"]],
                    dense_key("hist_btag"): dense["btag"][d["btag"]]}
        return load

    dropped = dict(bad.counts)
    return Log(loader, counts, {"log_rows_read": used + sum(dropped.values()),
                              "log_rows_dropped": dropped, "log_rows_used": used})
