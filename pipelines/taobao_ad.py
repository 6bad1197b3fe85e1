"""Taobao Ad Display/Click (Tianchi dataset 56) -> TFRecord dataset: the thesis's real data.

``python -m pipelines.taobao_ad --raw-sample raw_sample.csv --ad-feature ad_feature.csv
--user-profile user_profile.csv [--behavior-log behavior_log.csv] --protocol time|thesis
--history impressions|clicks|behavior-log --output DIR``

Every valid ``raw_sample`` row is one example, label ``clk``, with the static fields user,
adgroup (``item_id``), ``cate_id``, ``campaign_id``, ``customer``, ``brand``, ``pid``,
``price`` (numeric), the eight ``user_profile`` fields (a user without a profile, or an empty
field, is the id ``<missing>``) and the impression's ``hour`` and ``day_of_week`` in China
time. Rows are dropped and counted by reason (``taobao_ad_inputs.REASONS``, and
``csv_input.UNPARSED_REASONS``: another column count, not UTF-8, a NUL byte, a truncated last
line); ``--strict`` stops at the first with file:line.

* ``--protocol time`` (default): train 2017-05-06..05-11, validation 05-12, test 05-13 (China
  time); a history holds events strictly earlier in time. BARS TaobaoAd_x1 trains through
  05-12 and tests on 05-13; here 05-12 is held out to select epochs on.
* ``--protocol thesis``: the thesis code's protocol, deterministic by ``--seed`` (42 there):
  ``--sample-size`` rows (2,000,000) drawn at random from the file's rows as pandas'
  ``DataFrame.sample`` draws them, bad rows then dropped, rows sorted by (user, time) stably,
  users with fewer than 3 rows left out, a history of the user's previous rows in that order
  (same-second rows included), and a stratified random 70/15/15 split by scikit-learn's
  ``train_test_split`` as the thesis code calls it. It differs from that code where the code
  leaks or errs: vocabularies and price statistics come from the training split only, and
  hour and day of week are China time (the code takes them in UTC).
* ``--history impressions`` (the thesis: previous rows, clicked or not) or ``clicks``
  (previous clicked rows only); tokens are (adgroup, category).
* ``--history behavior-log --behavior-log FILE`` (time protocol): the user's last
  ``--max-seq-len`` events of ``behavior_log.csv`` strictly before the impression, tokens
  (category, brand, behaviour type), as BARS and DIN build them (``taobao_ad_log``).
"""

from __future__ import annotations

import argparse
import calendar
import dataclasses
import hashlib
import math
import os
import sys

import numpy as np

from mdaf_tf.data import feature_schema
from pipelines import context, declared_columns, progress, taobao_ad_log
from pipelines.csv_input import BadRows, check_input_file
from pipelines.errors import PipelineError, run_cli
from pipelines.examples import ExampleBuilder, event_key, sort_events, training_vocabularies
from pipelines.output import DatasetDir, add_output_args, check_args
from pipelines.partitions import Partitions
from pipelines.taobao_ad_inputs import (
    AD_COLUMNS,
    PROFILE_COLUMNS,
    lookup,
    read_table,
    stream_raw_sample,
)
from pipelines.taobao_ad_lookups import AD_FIELDS, PROFILE_FIELDS, Lookups, PidCodes
from pipelines.vocab import CountAccumulator, group_count

_CHINA = 8 * 3600


def china_midnight(year: int, month: int, day: int) -> int:
    return calendar.timegm((year, month, day, 0, 0, 0)) - _CHINA


WINDOW = (china_midnight(2017, 5, 6), china_midnight(2017, 5, 14))
TIME_BOUNDARIES = (china_midnight(2017, 5, 12), china_midnight(2017, 5, 13))
THESIS_SAMPLE = 2_000_000
THESIS_MIN_ROWS = 3


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m pipelines.taobao_ad",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--raw-sample", required=True, help="raw_sample.csv")
    p.add_argument("--ad-feature", required=True, help="ad_feature.csv")
    p.add_argument("--user-profile", required=True, help="user_profile.csv")
    p.add_argument("--protocol", choices=("time", "thesis"), default="time")
    p.add_argument("--behavior-log", default=None,
                   help="behavior_log.csv (user, time_stamp, btag, cate, brand), for "
                        "--history behavior-log")
    p.add_argument("--history", choices=("impressions", "clicks", "behavior-log"),
                   default="impressions")
    p.add_argument("--sample-size", type=int, default=THESIS_SAMPLE,
                   help="rows the thesis protocol samples (default 2,000,000)")
    p.add_argument("--partitions", type=int, default=None,
                   help="time protocol: temporary user partitions (default: raw_sample's "
                        "size / 160 MiB)")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first malformed row instead of skipping it")
    add_output_args(p)
    args = p.parse_args(argv)
    check_args(args)
    if args.sample_size < 1:
        raise PipelineError("--sample-size must be at least 1")
    if args.partitions is not None and args.partitions < 1:
        raise PipelineError("--partitions must be at least 1")
    if (args.history == "behavior-log") != (args.behavior_log is not None):
        raise PipelineError("--history behavior-log and --behavior-log FILE go together")
    if args.history == "behavior-log" and args.protocol != "time":
        raise PipelineError("--history behavior-log is built for --protocol time")
    split_flags = [f"--{k.replace('_', '-')}" for k in ("val_start", "test_start",
                                                         "val_fraction", "test_fraction")
                   if getattr(args, k) is not None]
    if args.protocol == "thesis" and split_flags:
        raise PipelineError(f"{', '.join(split_flags)}: the thesis protocol splits at random "
                            "(70/15/15); these apply to --protocol time")
    if args.protocol == "time" and (args.val_fraction, args.test_fraction) != (None, None):
        raise PipelineError("--val-fraction/--test-fraction: the time protocol splits by day "
                            "(--val-start/--test-start move the boundaries)")
    val = args.val_start if args.val_start is not None else TIME_BOUNDARIES[0]
    test = args.test_start if args.test_start is not None else TIME_BOUNDARIES[1]
    if val > test:
        raise PipelineError(f"--val-start {val} is after --test-start {test}")
    return args


_LOG_SEQUENCE = (feature_schema.SequenceField("hist_cate_id", "cate_id"),
                 feature_schema.SequenceField("hist_brand", "brand"),
                 feature_schema.SequenceField("hist_btag", vocabulary="btag"))


def features(history: str = "impressions") -> feature_schema.FeatureSchema:
    static = (*feature_schema.DEFAULT.static,
              *(feature_schema.StaticField(f) for f in (*AD_FIELDS[1:], "pid")),
              feature_schema.StaticField("price", kind=feature_schema.NUMERIC),
              *(feature_schema.StaticField(f) for f in PROFILE_FIELDS),
              *context.static_fields(context.FIELDS))
    sequence = _LOG_SEQUENCE if history == "behavior-log" else feature_schema.DEFAULT.sequence
    return feature_schema.FeatureSchema(static=static, sequence=sequence)


def _read_all(args, lookups: Lookups, pid: PidCodes, bad: BadRows) -> tuple[dict, int]:
    """The valid raw_sample rows in memory (``pos``: position among parsed rows; ``pid``:
    global codes) and the number of parsed rows (the thesis protocol: 2M rows)."""
    blocks = []
    parsed = 0
    for block, pos, seen in stream_raw_sample(args.raw_sample, lookups.ad_keys, WINDOW, bad):
        blocks.append({**block, "pid": pid.encode(block["pid"]), "pos": pos})
        parsed = seen
    if not blocks:
        raise PipelineError(f"no rows in {args.raw_sample}")
    return {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}, int(parsed)


def _thesis_sample(rows: dict, parsed: int, size: int, seed: int) -> dict:
    """The rows pandas' ``DataFrame.sample(n=size, random_state=seed)`` would draw from
    the ``parsed`` rows (in its draw order; all rows in file order when there are not more
    than ``size``), keeping the valid ones, with ``pos`` their rank in the draw."""
    if parsed > size:  # as the thesis code: it samples only when the file has more rows
        drawn = np.random.RandomState(seed).choice(parsed, size=size, replace=False)
    else:
        drawn = np.arange(parsed)
    rank = np.full(parsed, -1, dtype=np.int64)
    rank[drawn] = np.arange(len(drawn))
    order = rank[rows["pos"]]
    keep = np.flatnonzero(order >= 0)
    return {**{k: v[keep] for k, v in rows.items()}, "pos": order[keep]}


def _build_thesis(args, out, lookups: Lookups, bad: BadRows) -> tuple[dict, dict]:
    pid = PidCodes()
    rows, parsed = _read_all(args, lookups, pid, bad)
    progress.phase("sampling and splitting (thesis protocol)")
    rows = _thesis_sample(rows, parsed, args.sample_size, args.seed)
    ev = lookups.events(rows, pid.sorted_keys(rows["pid"]), args.history)
    ev, counts = _thesis_protocol(ev, args.seed)
    train = ev["split"] == 0
    if not train.any():
        raise PipelineError(f"no training rows in {args.raw_sample}")
    out.features = _with_price_stats(out.features, *declared_columns.numeric_stats(
        ev[event_key("price")][train]))
    vocabs = training_vocabularies(ev, lookups.names(pid), train, out.features, args.min_count)
    _write_examples(args, out, vocabs, (None, None), [(ev, None)])
    return {**counts, "rows_read": parsed, "rows_used": int(len(ev["user"])),
            "clicks": int(ev["label"].sum())}, vocabs


_PART_COLUMNS = (("user", np.int64), ("ts", np.int64), ("adgroup", np.int64),
                 ("pid", np.int32), ("clk", np.int8), ("pos", np.int64))
_BYTES_PER_PARTITION = 160 << 20  # of raw_sample text: about 4.5M rows, ~2 GiB in memory


def _build_time(args, out, lookups: Lookups, bad: BadRows, boundaries,
                ads) -> tuple[dict, dict]:
    """Stream raw_sample (and the behaviour log) into per-user partitions while counting the
    training rows' keys, then write each partition's examples: memory is bounded by one
    partition."""
    size = sum(os.path.getsize(f) for f in (args.raw_sample, args.behavior_log) if f)
    n_parts = args.partitions or max(1, math.ceil(size / _BYTES_PER_PARTITION))
    parts = Partitions(out.scratch, n_parts, _PART_COLUMNS)
    pid = PidCodes()
    acc = {k: CountAccumulator() for k in ("user", "adgroup", "pid", *context.FIELDS)}
    parsed = used = clicks = 0
    try:
        for block, pos, seen in stream_raw_sample(args.raw_sample, lookups.ad_keys, WINDOW,
                                                  bad):
            block = {**block, "pid": pid.encode(block["pid"]), "pos": pos}
            parsed = seen
            train = block["ts"] < boundaries[0]
            for key in ("user", "adgroup", "pid"):
                acc[key].add(block[key][train])
            for field, values in context.context_values(block["ts"][train], context.FIELDS,
                                                        context.CHINA).items():
                acc[field].add(values)
            used, clicks = used + len(pos), clicks + int(block["clk"].sum())
            parts.append(block)
    finally:
        parts.close()
    counts = {k: a.result_tuple() for k, a in acc.items()}
    if not len(counts["user"][0]):
        raise PipelineError(f"no training rows before {boundaries[0]} in {args.raw_sample}")
    out.features = _with_price_stats(out.features, *lookups.price_stats(*counts["adgroup"]))
    log = (taobao_ad_log.read(args, out.scratch, lookups, ads, n_parts, boundaries[0],
                               WINDOW[1])
           if args.behavior_log else None)
    vocabs = lookups.vocabularies(counts, pid, args.min_count, log.counts if log else None)
    load_log = log.loader(vocabs) if log else None
    tables = ((lookups.events(d, pid.sorted_keys(d["pid"]), args.history, vocabs),
               load_log(p) if log else None)
              for p, d in enumerate(map(_sorted_partition, map(parts.load, range(n_parts)))))
    _write_examples(args, out, vocabs, boundaries, tables)
    return {"rows_read": int(parsed), "rows_used": used, "clicks": clicks,
            **(log.summary if log else {})}, vocabs


def _sorted_partition(rows: dict) -> dict:
    """A partition's rows in the event order (user, time, file position), so that its event
    table (two dozen columns) needs no reordering."""
    return sort_events({**rows, "order": rows["pos"]})


def _write_examples(args, out, vocabs: dict, boundaries, tables) -> None:
    out.start_examples(vocabs, sampled_negatives=False)
    builder = ExampleBuilder(vocabs=vocabs, boundaries=boundaries, max_seq_len=args.max_seq_len,
                             samplers=None, neg_ratio=0.0, seed=args.seed, features=out.features)
    for ev, history in tables:
        for split, cols in builder.build(ev, history):
            out.write(split, cols)


def _thesis_protocol(ev: dict, seed: int) -> tuple[dict, dict]:
    """Sorted by (user, time) stably over the draw order, users with fewer than 3 rows out,
    ``seq`` (each row's rank: a history is the user's previous rows) and the stratified
    random 70/15/15 ``split``; and the counts."""
    from sklearn.model_selection import train_test_split

    ev = sort_events(ev)
    (users,), per_user = group_count(ev["user"])
    kept_users = users[per_user >= THESIS_MIN_ROWS]
    keep = lookup(kept_users, ev["user"])[1]
    ev = {k: v[keep] for k, v in ev.items()}
    n = len(ev["user"])
    index = np.arange(n)
    try:
        train, rest = train_test_split(index, test_size=0.3, random_state=seed,
                                       stratify=ev["label"])
        val, test = train_test_split(rest, test_size=0.5, random_state=seed,
                                     stratify=ev["label"][rest])
    except ValueError as e:
        raise PipelineError(f"--protocol thesis cannot split {n} rows: {e}") from None
    split = np.zeros(n, dtype=np.int8)
    split[val], split[test] = 1, 2
    ev.update(seq=index.astype(np.int64), split=split)
    return ev, {"users_under_3_rows": int(len(users) - len(kept_users)),
                "rows_of_users_under_3_rows": int(np.count_nonzero(~keep))}


def _sources(args) -> dict:
    out = {}
    for name in ("raw_sample", "ad_feature", "user_profile", "behavior_log"):
        path = getattr(args, name)
        if path is None:
            continue
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                digest.update(block)
        out[name] = {"path": os.path.abspath(path), "size": os.path.getsize(path),
                     "sha256": digest.hexdigest()}
    return out


def build(args) -> dict:
    for path in (args.raw_sample, args.ad_feature, args.user_profile, args.behavior_log):
        if path is not None:
            check_input_file(path)
    with DatasetDir(args.output, vars(args).copy(), args.raw_sample,
                    features=features(args.history)) as out:
        progress.phase("reading the ad and user profile tables")
        ads, ad_keys = read_table(args.ad_feature, AD_COLUMNS, "adgroup_id")
        profiles, profile_keys = read_table(args.user_profile, PROFILE_COLUMNS, "userid")
        lookups = Lookups(ads, ad_keys, profiles, profile_keys, args.ad_feature)
        bad = BadRows(args.raw_sample, args.strict, [])
        if args.protocol == "thesis":
            boundaries = (None, None)
            counts, vocabs = _build_thesis(args, out, lookups, bad)
        else:
            boundaries = (args.val_start if args.val_start is not None else TIME_BOUNDARIES[0],
                          args.test_start if args.test_start is not None
                          else TIME_BOUNDARIES[1])
            counts, vocabs = _build_time(args, out, lookups, bad, boundaries, ads)
        counts["rows_read"] += bad.unparsed()
        counts["rows_dropped"] = dict(bad.counts)
        return out.commit({"counts": counts, "dataset": "taobao_ad", "protocol": args.protocol,
                           "history": args.history, "inputs": _sources(args),
                           "split_boundary": boundaries[0],
                           "split_boundaries": {"val": boundaries[0], "test": boundaries[1]}},
                          vocabs)


def _with_price_stats(declared: feature_schema.FeatureSchema, mean: float, std: float):
    static = tuple(dataclasses.replace(f, mean=mean, std=std) if f.name == "price" else f
                   for f in declared.static)
    return dataclasses.replace(declared, static=static)


def summary(meta: dict) -> str:
    c = meta["counts"]
    dropped = ", ".join(f"{k} {v}" for k, v in sorted(c["rows_dropped"].items()))
    sizes = ", ".join(f"{s} {meta['splits'][s]['examples']} ({meta['splits'][s]['positives']}"
                      " clicks)" for s in ("train", "val", "test"))
    return (f"taobao_ad ({meta['protocol']} protocol, {meta['history']} history): read "
            f"{c['rows_read']} rows, dropped {sum(c['rows_dropped'].values())}"
            f"{' (' + dropped + ')' if dropped else ''}; {sizes} examples")


def main(argv=None):
    args = parse_args(argv)
    with progress.report("taobao_ad", args.quiet):
        meta = build(args)
    if not args.quiet:
        print(summary(meta), file=sys.stderr)


if __name__ == "__main__":
    run_cli(main)
