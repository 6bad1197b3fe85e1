"""Reading the three files of Taobao Ad Display/Click (Tianchi dataset 56).

``raw_sample.csv`` (user, time_stamp, adgroup_id, pid, nonclk, clk) and ``behavior_log.csv``
(user, time_stamp, btag, cate, brand) are streamed in blocks and validated with vectorised
Arrow compute; ``ad_feature.csv`` (adgroup_id, cate_id,
campaign_id, customer, brand, price) and ``user_profile.csv`` (userid and eight profile
fields) are small lookup tables read whole. Every column is read as text; ``NULL`` and empty
cells are missing.
"""

from __future__ import annotations

import csv

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from pipelines.csv_input import BadRows, locate_first_bad_line, parse_int, stream_csv
from pipelines.errors import PipelineError
from pipelines.line_faults import CleanLines, check_header

RAW_COLUMNS = ["user", "time_stamp", "adgroup_id", "pid", "nonclk", "clk"]
AD_COLUMNS = ["adgroup_id", "cate_id", "campaign_id", "customer", "brand", "price"]
PROFILE_COLUMNS = ["userid", "cms_segid", "cms_group_id", "final_gender_code", "age_level",
                   "pvalue_level", "shopping_level", "occupation", "new_user_class_level"]
LOG_COLUMNS = ["user", "time_stamp", "btag", "cate", "brand"]
BTAGS = ("buy", "cart", "fav", "pv")  # behaviour types; a btag's key is its index here
# Reasons a raw_sample row is dropped, in the order they are checked.
REASONS = ("bad_user", "bad_time_stamp", "bad_adgroup_id", "missing_pid", "bad_click_flag",
           "contradictory_click", "unknown_adgroup", "outside_window")
# Reasons a behavior_log row is dropped (events after the impressions' last day are of no use).
LOG_REASONS = ("bad_user", "bad_time_stamp", "unknown_btag", "bad_cate", "after_window")


def _header(path: str) -> list[str]:
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        return [c.strip() for c in next(csv.reader(f), [])]


def _check_header(path: str, want: list[str]) -> list[str]:
    header = _header(path)
    missing = [c for c in want if c not in header]
    if missing:
        raise PipelineError(f"{path}: header lacks column(s) {','.join(missing)} "
                            f"(need {','.join(want)})")
    return header


def read_table(path: str, want: list[str], key: str) -> tuple[pa.Table, np.ndarray]:
    """A whole lookup file as text columns sorted by its integer ``key`` (the first of
    duplicate keys kept), and the sorted keys; a one-line error naming the file for a
    missing column or a key that is not an integer, and its line for a row that is not text
    (``line_faults``)."""
    header = _check_header(path, want)
    table = _read_lookup_csv(path, header, want)
    keys, ok = parse_int(pc.fill_null(pc.utf8_trim_whitespace(table.column(key)), ""))
    if not ok.all():
        line = line_of_row(path, int(np.flatnonzero(~ok)[0]))
        raise PipelineError(f"{path}:{line}: {key} is not an integer")
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    return table.take(pa.array(order[first])), keys[first]


def _read_lookup_csv(path: str, header: list[str], want: list[str]) -> pa.Table:
    """The ``want`` columns of a lookup file as text; every row must be readable."""
    problem = check_header(path)
    if problem:
        raise PipelineError(problem)
    lines = CleanLines(path, len(header), header=True, stop_at_first=True)
    try:
        table = pacsv.read_csv(lines, read_options=pacsv.ReadOptions(
            column_names=header, skip_rows=1), convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in header}, include_columns=want))
    except pa.ArrowInvalid as e:
        raise PipelineError(f"{path}: cannot read CSV: {str(e).splitlines()[0]}") from None
    finally:
        lines.close()
    if lines.first_fault:
        line, reason, detail = locate_first_bad_line(path, [], True, len(header))
        raise PipelineError(f"{path}:{line}: malformed row ({reason}{detail})")
    return table


def lookup(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row index of each value in the sorted ``keys`` and whether it was found."""
    if len(keys) == 0:
        return np.zeros(len(values), np.int64), np.zeros(len(values), bool)
    pos = np.clip(np.searchsorted(keys, values), 0, len(keys) - 1)
    return pos, keys[pos] == values


def stream_raw_sample(path: str, ad_keys: np.ndarray, window: tuple[int, int], bad: BadRows):
    """Yield per block: {user, ts, adgroup, pid (text), clk} of the valid rows, their
    0-based positions among all parsed rows, and the rows parsed so far; drop reasons go to
    ``bad``."""
    header = _check_header(path, RAW_COLUMNS)
    seen = 0
    for batch in stream_csv(path, header, header=True, bad=bad):
        cols = {c: pc.fill_null(pc.utf8_trim_whitespace(batch.column(c)), "")
                for c in RAW_COLUMNS}
        user, ok_user = parse_int(cols["user"])
        ts, ok_ts = parse_int(cols["time_stamp"])
        ad, ok_ad = parse_int(cols["adgroup_id"])
        flags = [pc.is_in(cols[c], pa.array(["0", "1"])).to_numpy(zero_copy_only=False)
                 for c in ("clk", "nonclk")]
        clk = pc.equal(cols["clk"], "1").to_numpy(zero_copy_only=False)
        nonclk = pc.equal(cols["nonclk"], "1").to_numpy(zero_copy_only=False)
        checks = [ok_user, ok_ts, ok_ad,
                  pc.not_equal(cols["pid"], "").to_numpy(zero_copy_only=False),
                  flags[0] & flags[1], clk != nonclk, lookup(ad_keys, ad)[1],
                  (ts >= window[0]) & (ts < window[1])]
        good = _count_reasons(checks, bad, seen, REASONS)
        idx = np.flatnonzero(good)
        yield ({"user": user[idx], "ts": ts[idx], "adgroup": ad[idx],
                "pid": cols["pid"].take(pa.array(idx)), "clk": clk[idx].astype(np.int8)},
               seen + idx, seen + batch.num_rows)
        seen += batch.num_rows


def stream_behavior_log(path: str, window_end: int, bad: BadRows):
    """Yield per block: {user, ts, btag (key), cate (text), brand (text)} of the valid rows
    and their positions among parsed rows; drop reasons (LOG_REASONS) go to ``bad``."""
    header = _check_header(path, LOG_COLUMNS)
    seen = 0
    for batch in stream_csv(path, header, header=True, bad=bad):
        cols = {c: pc.fill_null(pc.utf8_trim_whitespace(batch.column(c)), "")
                for c in LOG_COLUMNS}
        user, ok_user = parse_int(cols["user"])
        ts, ok_ts = parse_int(cols["time_stamp"])
        btag = pc.index_in(cols["btag"], value_set=pa.array(BTAGS)).to_numpy(
            zero_copy_only=False)
        known_btag = ~np.isnan(btag.astype(np.float64))
        ok_cate = parse_int(cols["cate"])[1]
        good = _count_reasons([ok_user, ok_ts, known_btag, ok_cate, ts < window_end], bad, seen,
                              LOG_REASONS)
        idx = np.flatnonzero(good)
        take = pa.array(idx)
        yield ({"user": user[idx], "ts": ts[idx],
                "btag": np.nan_to_num(btag[idx].astype(np.float64)).astype(np.int8),
                "cate": cols["cate"].take(take), "brand": cols["brand"].take(take)}, seen + idx)
        seen += batch.num_rows


def _count_reasons(checks: list[np.ndarray], bad: BadRows, seen: int,
                   reasons: tuple[str, ...]) -> np.ndarray:
    """Rows passing every check; each failing row is counted under its first reason. In
    strict mode the first failing row is an error naming its line."""
    good = np.ones(len(checks[0]), dtype=bool)
    first_bad = None
    for reason, ok in zip(reasons, checks, strict=True):
        failing = good & ~ok
        if failing.any():
            row = int(np.flatnonzero(failing)[0])
            if first_bad is None or row < first_bad[0]:
                first_bad = (row, reason)
            bad.counts[reason] += int(failing.sum())
        good &= ok
    if first_bad is not None and bad.strict:
        raise PipelineError(f"{bad.path}:{line_of_row(bad.path, seen + first_bad[0])}: "
                            f"malformed row ({first_bad[1]})")
    return good


def line_of_row(path: str, row: int) -> int | str:
    """The file line of parsed data row ``row`` (0-based): the CSV reader skips the header
    and empty lines. Every earlier row parsed (strict mode stops at a row with the wrong
    column count before this runs), so the count is exact. Only runs on an error."""
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        next(reader, None)
        seen = -1
        for fields in reader:
            if fields:
                seen += 1
                if seen == row:
                    return reader.line_num
    return "?"
