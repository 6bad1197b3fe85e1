"""Taobao Ad Display/Click (Tianchi dataset 56) -> TFRecord dataset: the thesis's real data.

``python -m pipelines.taobao_ad --raw-sample raw_sample.csv --ad-feature ad_feature.csv
--user-profile user_profile.csv --protocol time|thesis --history impressions|clicks
--output DIR``

Every valid ``raw_sample`` row is one example, label ``clk``, with the static fields user,
adgroup (``item_id``), ``cate_id``, ``campaign_id``, ``customer``, ``brand``, ``pid``,
``price`` (numeric), the eight ``user_profile`` fields (a user without a profile, or an empty
field, is the id ``<missing>``) and the impression's ``hour`` and ``day_of_week`` in China
time. Rows are dropped and counted by reason (``taobao_ad_inputs.REASONS``); ``--strict``
stops at the first with file:line.

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
"""

from __future__ import annotations

import argparse
import calendar
import dataclasses
import hashlib
import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mdaf_tf import feature_schema
from pipelines import context, declared_columns
from pipelines.csv_input import BadRows, check_input_file
from pipelines.errors import PipelineError, run_cli
from pipelines.examples import ExampleBuilder, event_key, sort_events, training_vocabularies
from pipelines.output import DatasetDir, add_output_args, check_args
from pipelines.taobao_ad_inputs import (
    AD_COLUMNS,
    PROFILE_COLUMNS,
    lookup,
    read_table,
    stream_raw_sample,
)
from pipelines.vocab import group_count

_CHINA = 8 * 3600


def china_midnight(year: int, month: int, day: int) -> int:
    return calendar.timegm((year, month, day, 0, 0, 0)) - _CHINA


WINDOW = (china_midnight(2017, 5, 6), china_midnight(2017, 5, 14))
TIME_BOUNDARIES = (china_midnight(2017, 5, 12), china_midnight(2017, 5, 13))
AD_FIELDS = AD_COLUMNS[1:5]  # cate_id, campaign_id, customer, brand (price is numeric)
PROFILE_FIELDS = PROFILE_COLUMNS[1:]
THESIS_SAMPLE = 2_000_000
THESIS_MIN_ROWS = 3


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m pipelines.taobao_ad",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--raw-sample", required=True, help="raw_sample.csv")
    p.add_argument("--ad-feature", required=True, help="ad_feature.csv")
    p.add_argument("--user-profile", required=True, help="user_profile.csv")
    p.add_argument("--protocol", choices=("time", "thesis"), default="time")
    p.add_argument("--history", choices=("impressions", "clicks"), default="impressions")
    p.add_argument("--sample-size", type=int, default=THESIS_SAMPLE,
                   help="rows the thesis protocol samples (default 2,000,000)")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first malformed row instead of skipping it")
    add_output_args(p)
    args = p.parse_args(argv)
    check_args(args)
    if args.sample_size < 1:
        raise PipelineError("--sample-size must be at least 1")
    return args


def features() -> feature_schema.FeatureSchema:
    static = (*feature_schema.DEFAULT.static,
              *(feature_schema.StaticField(f) for f in (*AD_FIELDS[1:], "pid")),
              feature_schema.StaticField("price", kind=feature_schema.NUMERIC),
              *(feature_schema.StaticField(f) for f in PROFILE_FIELDS),
              *context.static_fields(context.FIELDS))
    return feature_schema.FeatureSchema(static=static, sequence=feature_schema.DEFAULT.sequence)


def _text(column) -> pa.ChunkedArray:
    """Trimmed text with ``NULL`` and empty cells as empty strings (missing)."""
    text = pc.fill_null(pc.utf8_trim_whitespace(column), "")
    return pc.if_else(pc.equal(text, "NULL"), "", text)


def _read_raw(args, ad_keys: np.ndarray, bad: BadRows) -> tuple[dict, int]:
    """The valid raw_sample rows (with ``pos``, their position among parsed rows) and the
    number of parsed rows."""
    blocks = list(stream_raw_sample(args.raw_sample, ad_keys, WINDOW, bad))
    if not blocks:
        raise PipelineError(f"no rows in {args.raw_sample}")
    rows = {k: np.concatenate([b[0][k] for b in blocks]) for k in ("user", "ts", "adgroup",
                                                                    "clk")}
    rows["pid"] = pa.chunked_array([b[0]["pid"] for b in blocks], type=pa.string())
    rows["pos"] = np.concatenate([b[1] for b in blocks])
    return rows, int(blocks[-1][2])


def _thesis_sample(rows: dict, parsed: int, size: int, seed: int) -> dict:
    """The rows pandas' ``DataFrame.sample(n=size, random_state=seed)`` would draw from
    the ``parsed`` rows (in its draw order; all rows in file order when there are not more
    than ``size``), keeping the valid ones, with ``order`` their rank in the draw."""
    if parsed > size:
        drawn = np.random.RandomState(seed).choice(parsed, size=size, replace=False)
    else:
        drawn = np.arange(parsed)
    rank = np.full(parsed, -1, dtype=np.int64)
    rank[drawn] = np.arange(len(drawn))
    order = rank[rows["pos"]]
    keep = np.flatnonzero(order >= 0)
    out = {k: (v.take(pa.array(keep)) if k == "pid" else v[keep]) for k, v in rows.items()}
    out["pos"] = order[keep]
    return out


def _events(rows: dict, ads: pa.Table, ad_keys, profiles: pa.Table, profile_keys,
            history: str, ad_path: str) -> tuple[dict, dict]:
    """The event table (``pipelines.examples``) with every declared field, and the names of
    string-keyed vocabularies."""
    ad_row = lookup(ad_keys, rows["adgroup"])[0]
    ev = {"user": rows["user"], "item": rows["adgroup"], "ts": rows["ts"],
          "order": rows["pos"], "label": rows["clk"],
          "target": np.ones(len(ad_row), dtype=bool),
          "history": np.ones(len(ad_row), bool) if history == "impressions" else rows["clk"] == 1}
    names = {"user": None, "item": None}
    for field in AD_FIELDS:
        keys, names[field if field != "cate_id" else "cate"] = \
            declared_columns.categorical_keys(_text(ads.column(field)))
        ev[event_key(field)] = keys[ad_row]
    locate = declared_columns.csv_line_of(ad_path, AD_COLUMNS)
    price = declared_columns.numeric_values(_text(ads.column("price")), "price", ad_path,
                                            locate)
    ev[event_key("price")] = price[ad_row]
    ev[event_key("pid")], names["pid"] = declared_columns.categorical_keys(rows["pid"])
    profile_row, found = lookup(profile_keys, rows["user"])
    profile_row[~found] = len(profile_keys)  # an added all-missing row: no profile
    for field in PROFILE_FIELDS:
        column = pa.concat_arrays([_text(profiles.column(field)).combine_chunks(),
                                   pa.array([""])])
        keys, names[field] = declared_columns.categorical_keys(pa.chunked_array([column]))
        ev[event_key(field)] = keys[profile_row]
    for field, values in context.context_values(rows["ts"], context.FIELDS,
                                                context.CHINA).items():
        ev[event_key(field)], names[field] = values, None
    return ev, names


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
    for name in ("raw_sample", "ad_feature", "user_profile"):
        path = getattr(args, name)
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                digest.update(block)
        out[name] = {"path": os.path.abspath(path), "size": os.path.getsize(path),
                     "sha256": digest.hexdigest()}
    return out


def build(args) -> dict:
    for path in (args.raw_sample, args.ad_feature, args.user_profile):
        check_input_file(path)
    arg_dict = vars(args).copy()
    with DatasetDir(args.output, arg_dict, args.raw_sample, features=features()) as out:
        ads, ad_keys = read_table(args.ad_feature, AD_COLUMNS, "adgroup_id")
        profiles, profile_keys = read_table(args.user_profile, PROFILE_COLUMNS, "userid")
        bad = BadRows(args.raw_sample, args.strict, [])
        rows, parsed = _read_raw(args, ad_keys, bad)
        if args.protocol == "thesis":
            rows = _thesis_sample(rows, parsed, args.sample_size, args.seed)
        ev, names = _events(rows, ads, ad_keys, profiles, profile_keys, args.history,
                            args.ad_feature)
        counts = {"rows_read": parsed + bad.counts.get("wrong_column_count", 0),
                  "rows_dropped": dict(bad.counts)}
        if args.protocol == "thesis":
            ev, dropped = _thesis_protocol(ev, args.seed)
            counts.update(dropped)
            train = ev["split"] == 0
            boundaries = (None, None)
        else:
            boundaries = (args.val_start or TIME_BOUNDARIES[0],
                          args.test_start or TIME_BOUNDARIES[1])
            train = ev["ts"] < boundaries[0]
        if not train.any():
            raise PipelineError(f"no training rows in {args.raw_sample}")
        counts.update(rows_used=int(len(ev["user"])), clicks=int(ev["label"].sum()))
        out.features = _with_price_stats(out.features, ev[event_key("price")][train])
        vocabs = training_vocabularies(ev, names, train, out.features, args.min_count)
        out.start_examples(vocabs, sampled_negatives=False)
        builder = ExampleBuilder(vocabs=vocabs, boundaries=boundaries,
                                 max_seq_len=args.max_seq_len, samplers=None, neg_ratio=0.0,
                                 seed=args.seed, features=out.features)
        for split, cols in builder.build(ev):
            out.write(split, cols)
        return out.commit({"counts": counts, "dataset": "taobao_ad", "protocol": args.protocol,
                           "history": args.history, "inputs": _sources(args),
                           "split_boundary": boundaries[0],
                           "split_boundaries": {"val": boundaries[0], "test": boundaries[1]}},
                          vocabs)


def _with_price_stats(schema_: feature_schema.FeatureSchema, price: np.ndarray):
    mean, std = declared_columns.numeric_stats(price)
    static = tuple(dataclasses.replace(f, mean=mean, std=std) if f.name == "price" else f
                   for f in schema_.static)
    return dataclasses.replace(schema_, static=static)


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
    print(summary(build(args)), file=sys.stderr)


if __name__ == "__main__":
    run_cli(main)
