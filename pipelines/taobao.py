"""Taobao User Behavior (Tianchi dataset 649) -> TFRecord dataset.

``python -m pipelines.taobao --input UserBehavior.csv --output DIR``

Input: no header, ``user_id,item_id,category_id,behavior_type,timestamp``. Every behaviour
in ``--positive-behaviors`` is a positive example; its history is the user's previous
``--max-seq-len`` behaviours of any type strictly earlier in time (ties keep file order);
``--neg-ratio`` negatives per positive share its user, history and timestamp; their
items are drawn from the item distribution of the same split's positives (never the
positive's own item) and mapped through the training vocabularies, so that item identity,
popularity and OOV-ness carry no label signal (``pipelines.leak_report`` checks it).
Splits are by time: the latest 15% of examples are test, the 15% before them validation.
``--context`` (default ``hour,day_of_week``) adds the target's hour and day of week in China
time, as the thesis code does; a sampled negative shares them with its positive.

Scale: the file is streamed in blocks (pyarrow, C++ parsing) and every valid row is
appended to one of P temporary partition files chosen by a hash of the user id, so each
partition holds complete user histories whatever the file order is. The partitions are then
read one at a time (memory ~ one partition), three times: target timestamps for the split
boundaries, training-period counts for vocabularies and each split's positive items for its
sampler, and finally examples.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mdaf_tf.data import feature_schema, schema
from pipelines import context, progress
from pipelines.csv_input import BadRows, check_input_file, is_int, parse_int, stream_csv
from pipelines.errors import PipelineError, run_cli
from pipelines.examples import (
    SPLIT_CODES,
    ExampleBuilder,
    PeriodSampler,
    event_key,
    split_codes,
)
from pipelines.output import (
    DatasetDir,
    add_output_args,
    boundaries_from_args,
    check_args,
    summary_line,
)
from pipelines.partitions import Partitions
from pipelines.vocab import CountAccumulator, Vocabulary

COLUMNS = ["user_id", "item_id", "category_id", "behavior_type", "timestamp"]
BEHAVIORS = ("pv", "cart", "fav", "buy")
# 2017-11-25 00:00 to 2017-12-04 00:00 China time (UTC+8), end exclusive
WINDOW_START = 1511539200
WINDOW_END = 1512316800
_PART_COLUMNS = (("user", np.int64), ("item", np.int64), ("cate", np.int64),
                 ("beh", np.int8), ("ts", np.int64), ("order", np.int64))
_BYTES_PER_PARTITION = 96 << 20  # of input text; ~2.7M rows, a few hundred MB in memory


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m pipelines.taobao", description=__doc__.split(
        "\n\n")[0])
    p.add_argument("--input", required=True, help="UserBehavior.csv (no header)")
    add_output_args(p)
    p.add_argument("--positive-behaviors", default="pv,cart,fav,buy",
                   help="comma-separated behaviour types that become positive examples")
    p.add_argument("--neg-ratio", type=float, default=1.5,
                   help="sampled negatives per positive")
    p.add_argument("--max-users", type=int, default=None,
                   help="keep a seeded random subset of this many users")
    p.add_argument("--window-start", type=int, default=WINDOW_START)
    p.add_argument("--window-end", type=int, default=WINDOW_END,
                   help="exclusive end of the dataset window (Unix seconds)")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first malformed row instead of skipping it")
    p.add_argument("--partitions", type=int, default=None,
                   help="temporary user partitions (default: input size / 96 MiB)")
    p.add_argument("--context", default="hour,day_of_week",
                   help="context fields of the target's time in China (UTC+8): "
                        "hour,day_of_week (default, as the thesis code) or none")
    args = p.parse_args(argv)
    check_args(args)
    context.parse_context(args.context)
    positives = [b.strip() for b in args.positive_behaviors.split(",") if b.strip()]
    unknown = sorted(set(positives) - set(BEHAVIORS))
    if unknown or not positives:
        raise PipelineError(f"--positive-behaviors: unknown behaviour(s) {unknown}; "
                            f"choose from {','.join(BEHAVIORS)}")
    if args.neg_ratio < 0:
        raise PipelineError("--neg-ratio must be >= 0")
    if args.max_users is not None and args.max_users < 1:
        raise PipelineError("--max-users must be at least 1")
    return args


def _row_checks():
    return [(0, "bad_user_id", is_int), (1, "bad_item_id", is_int),
            (2, "bad_category_id", is_int), (3, "unknown_behavior", lambda s: s in BEHAVIORS),
            (4, "bad_timestamp", is_int)]


def _read_into_partitions(args, bad: BadRows, parts: Partitions, counts: dict):
    users = CountAccumulator()
    beh_set = pa.array(list(BEHAVIORS))
    rows_seen = 0
    for batch in stream_csv(args.input, COLUMNS, header=False, bad=bad):
        n = batch.num_rows
        user, ok_u = parse_int(batch.column(0))
        item, ok_i = parse_int(batch.column(1))
        cate, ok_c = parse_int(batch.column(2))
        beh = pc.index_in(batch.column(3), value_set=beh_set).to_numpy(zero_copy_only=False)
        ok_b = ~np.isnan(beh.astype(np.float64))
        ts, ok_t = parse_int(batch.column(4))
        reason_ok = [("bad_user_id", ok_u), ("bad_item_id", ok_i), ("bad_category_id", ok_c),
                     ("unknown_behavior", ok_b), ("bad_timestamp", ok_t)]
        good = np.ones(n, dtype=bool)
        for reason, ok in reason_ok:
            bad.add(reason, int(np.count_nonzero(good & ~ok)))
            good &= ok
        in_window = (ts >= args.window_start) & (ts < args.window_end)
        outside = int(np.count_nonzero(good & ~in_window))
        if outside:
            dropped = counts["rows_dropped"]
            dropped["outside_window"] = dropped.get("outside_window", 0) + outside
        good &= in_window
        cols = {"user": user[good], "item": item[good], "cate": cate[good],
                "beh": np.nan_to_num(beh[good].astype(np.float64)).astype(np.int8),
                "ts": ts[good], "order": rows_seen + np.flatnonzero(good)}
        rows_seen += n
        parts.append(cols)
        users.add(cols["user"])
    counts["rows_read"] = rows_seen + bad.unparsed()
    return users.result_tuple()[0]


def _kept_users(all_users: np.ndarray, max_users: int | None, seed: int):
    if max_users is None or max_users >= len(all_users):
        return None
    rng = np.random.default_rng([seed, 7])
    return np.sort(all_users[rng.permutation(len(all_users))[:max_users]])


def _load(parts: Partitions, p: int, kept: np.ndarray | None) -> dict:
    d = parts.load(p)
    if kept is not None and len(d["user"]):
        pos = np.clip(np.searchsorted(kept, d["user"]), 0, len(kept) - 1)
        keep = kept[pos] == d["user"]
        d = {k: v[keep] for k, v in d.items()}
    return d


def build(args) -> dict:
    check_input_file(args.input)
    arg_dict = vars(args).copy()
    positive_codes = np.array(sorted(BEHAVIORS.index(b) for b in
                                     args.positive_behaviors.split(",") if b.strip()))
    size = os.path.getsize(args.input)
    n_parts = args.partitions or max(1, math.ceil(size / _BYTES_PER_PARTITION))
    fields = context.parse_context(args.context)
    features = feature_schema.FeatureSchema(
        static=feature_schema.DEFAULT.static + context.static_fields(fields),
        sequence=feature_schema.DEFAULT.sequence)
    with DatasetDir(args.output, arg_dict, args.input, features=features) as out:
        bad = BadRows(args.input, args.strict, _row_checks())
        counts = {"rows_dropped": {}}
        parts = Partitions(out.scratch, n_parts, _PART_COLUMNS)
        try:
            all_users = _read_into_partitions(args, bad, parts, counts)
        finally:
            parts.close()
        counts["rows_dropped"].update(bad.counts)
        if counts["rows_read"] == 0:
            raise PipelineError(f"input file has no rows: {args.input}")
        kept = _kept_users(all_users, args.max_users, args.seed)
        counts["users_in_window"] = int(len(all_users))
        counts["users_kept"] = int(len(all_users) if kept is None else len(kept))

        # pass 1 over partitions: target timestamps -> split boundary
        progress.phase("finding the split boundaries", "rows")
        ts_acc = CountAccumulator()
        beh_counts = np.zeros(len(BEHAVIORS), dtype=np.int64)
        for p in range(n_parts):
            d = _load(parts, p, kept)
            progress.add(len(d["ts"]))
            beh_counts += np.bincount(d["beh"], minlength=len(BEHAVIORS))
            ts_acc.add(d["ts"][np.isin(d["beh"], positive_codes)])
        ts_keys, ts_counts = ts_acc.result_tuple()
        counts["rows_used"] = int(beh_counts.sum())
        counts["behaviors"] = {b: int(c) for b, c in zip(BEHAVIORS, beh_counts, strict=True)}
        counts["positive_events"] = int(ts_counts.sum())
        if counts["positive_events"] == 0:
            raise PipelineError(f"no valid {args.positive_behaviors} rows in the window in "
                                f"{args.input}")
        boundaries = boundaries_from_args(args, ts_keys, ts_counts)
        vocabs, pairs = _training_vocabularies(parts, n_parts, kept, boundaries,
                                               positive_codes, args.min_count, fields)
        if vocabs[schema.USER_VOCAB].size == schema.FIRST_ID:
            raise PipelineError(f"no training rows before the split boundary {boundaries[0]}")
        samplers = None
        if args.neg_ratio > 0:
            samplers = {split: PeriodSampler(*pairs[split].result_tuple(), period=split)
                        for split in SPLIT_CODES if pairs[split].result_tuple()[0].size}
        out.start_examples(vocabs, sampled_negatives=samplers is not None)

        # pass 3: examples
        builder = ExampleBuilder(vocabs=vocabs, boundaries=boundaries,
                                 max_seq_len=args.max_seq_len, samplers=samplers,
                                 neg_ratio=args.neg_ratio, seed=args.seed, features=features)
        for p in range(n_parts):
            d = _load(parts, p, kept)
            ev = {"user": d["user"], "item": d["item"], "cate": d["cate"], "ts": d["ts"],
                  "order": d["order"], "label": np.ones(len(d["user"]), np.int8),
                  "target": np.isin(d["beh"], positive_codes),
                  "history": np.ones(len(d["user"]), bool)}
            for field, values in context.context_values(d["ts"], fields,
                                                        context.CHINA).items():
                ev[event_key(field)] = values
            del d
            for split, cols in builder.build(ev):
                out.write(split, cols)
        meta = out.commit({"counts": counts, "split_boundary": boundaries[0],
                           "split_boundaries": {"val": boundaries[0], "test": boundaries[1]},
                           "dataset": "taobao_user_behavior"}, vocabs)
    return meta


def _training_vocabularies(parts, n_parts, kept, boundaries, positive_codes, min_count,
                           fields):
    """Pass 2: vocabularies from training-period rows only (the context fields' from its
    positive rows, which are the training examples), and each split's positive (item,
    category) counts for its negative sampler."""
    names = schema.VOCABULARIES + fields
    acc = {name: CountAccumulator() for name in names}
    pairs = {split: CountAccumulator(2) for split in SPLIT_CODES}
    progress.phase("counting the training vocabularies", "rows")
    for p in range(n_parts):
        d = _load(parts, p, kept)
        progress.add(len(d["ts"]))
        train = d["ts"] < boundaries[0]
        acc[schema.USER_VOCAB].add(d["user"][train])
        acc[schema.ITEM_VOCAB].add(d["item"][train])
        acc[schema.CATE_VOCAB].add(d["cate"][train])
        target = np.isin(d["beh"], positive_codes)
        for field, values in context.context_values(d["ts"][train & target], fields,
                                                    context.CHINA).items():
            acc[field].add(values)
        code = split_codes(d["ts"], boundaries)
        for c, split in enumerate(SPLIT_CODES):
            mask = target & (code == c)
            pairs[split].add(d["item"][mask], d["cate"][mask])
    vocabs = {name: Vocabulary(*acc[name].result_tuple(), min_count=min_count)
              for name in names}
    return vocabs, pairs


def main(argv=None):
    args = parse_args(argv)
    with progress.report("taobao", args.quiet):
        meta = build(args)
    if not args.quiet:
        print(summary_line("taobao", meta), file=sys.stderr)


if __name__ == "__main__":
    run_cli(main)
