"""Impression logs (a user's own clicks and impressions) -> TFRecord dataset.

``python -m pipelines.impressions --input FILE.csv|.parquet --output DIR``

Columns ``user_id,item_id,cate_id,timestamp,label`` (a header is required; ids may be
integers or strings), and any extra columns declared with ``--categorical`` and ``--numeric``
(others are ignored); ``--history-fields`` picks the columns of earlier clicks that form a
history token, and ``--context`` adds the impression's hour and day of week in ``--timezone``
(``pipelines.declared_columns``). Every impression is an example with its own
label; its history is the user's previous clicked impressions strictly earlier in time
(ties keep file order). Splits are by time: the latest 15% of impressions are test, the 15%
before them validation; vocabularies come from the training split only. The labels are real,
so no negative is sampled; the leak report is written all the same (near 0.5 unless item
popularity itself predicts clicks, which is then a baseline, not a leak). The whole log is
held in memory as numpy arrays (ids become int64 codes), which suits impression logs of up
to tens of millions of rows.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mdaf_tf.data import schema
from pipelines import context, declared_columns, progress
from pipelines.csv_input import (
    BadRows,
    check_input_file,
    id_keys,
    is_int,
    parse_int,
    stream_csv,
)
from pipelines.declared_columns import Declaration
from pipelines.errors import PipelineError, run_cli
from pipelines.examples import ExampleBuilder, event_key, training_vocabularies
from pipelines.output import (
    DatasetDir,
    add_output_args,
    boundaries_from_args,
    check_args,
    summary_line,
)
from pipelines.vocab import group_count

COLUMNS = ["user_id", "item_id", "cate_id", "timestamp", "label"]
TRUE_LABELS = ("1", "1.0", "true", "True")
FALSE_LABELS = ("0", "0.0", "false", "False")
NO_EXTRA_COLUMNS = Declaration()
_ID_COLUMNS = (("user_id", schema.USER_VOCAB), ("item_id", schema.ITEM_VOCAB),
               ("cate_id", schema.CATE_VOCAB))


def add_impression_args(p: argparse.ArgumentParser):
    add_output_args(p)
    p.add_argument("--strict", action="store_true",
                   help="stop at the first malformed row instead of skipping it")


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m pipelines.impressions",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--input", required=True, help="CSV (with header) or Parquet file")
    add_impression_args(p)
    declared_columns.add_declaration_args(p)
    args = p.parse_args(argv)
    check_args(args)
    return args


def _row_checks(header: list[str]):
    pos = {c: header.index(c) for c in COLUMNS}
    nonempty = lambda s: s.strip() != ""
    return [(pos["user_id"], "missing_user_id", nonempty),
            (pos["item_id"], "missing_item_id", nonempty),
            (pos["cate_id"], "missing_cate_id", nonempty),
            (pos["timestamp"], "bad_timestamp", lambda s: is_int(s.strip())),
            (pos["label"], "missing_label", nonempty),
            (pos["label"], "bad_label", lambda s: s.strip() in TRUE_LABELS + FALSE_LABELS)]


def read_header(path: str) -> list[str]:
    """The file's column names (the CSV header or the Parquet schema)."""
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        try:
            return pq.read_schema(path).names
        except (pa.ArrowInvalid, OSError) as e:
            raise PipelineError(f"{path}: not a readable Parquet file ({e})") from None
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        return [c.strip() for c in next(csv.reader(f), [])]


def _read_csv(path: str, bad: BadRows, extra: tuple[str, ...]):
    header = read_header(path)
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise PipelineError(f"{path}: header lacks column(s) {','.join(missing)} "
                            f"(need {','.join(COLUMNS)})")
    bad.row_checks = _row_checks(header)
    columns = COLUMNS + list(extra)
    tables = [pa.Table.from_batches([b]).select(columns)
              for b in stream_csv(path, header, header=True, bad=bad)]
    if not tables:
        return pa.table({c: pa.array([], pa.string()) for c in columns})
    return pa.concat_tables(tables)


def _read_parquet(path: str, extra: tuple[str, ...]):
    import pyarrow.parquet as pq

    names = read_header(path)
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise PipelineError(f"{path}: Parquet file lacks column(s) {','.join(missing)} "
                            f"(need {','.join(COLUMNS)})")
    progress.phase(f"reading {os.path.basename(path)}")
    table = pq.read_table(path, columns=COLUMNS + list(extra))
    return pa.table({**{c: pc.cast(table.column(c), pa.string()) for c in COLUMNS},
                     **{c: table.column(c) for c in extra}})


def load_events(path: str, strict: bool, decl: Declaration = NO_EXTRA_COLUMNS):
    """Validated events (all impressions are targets, clicks are history) and counts."""
    bad = BadRows(path, strict, [])
    if path.endswith(".parquet"):
        table = _read_parquet(path, decl.columns)
        bad.header, bad.ncols = True, len(COLUMNS)
        bad.row_checks = _row_checks(COLUMNS)
        bad.locate = False  # no text lines to re-scan: rows are reported by index
    else:
        table = _read_csv(path, bad, decl.columns)
    progress.phase("checking the rows")
    n = table.num_rows
    good = np.ones(n, dtype=bool)

    def filled(c):
        return pc.fill_null(pc.utf8_trim_whitespace(table.column(c)), "")

    for col, _ in _ID_COLUMNS:
        ok = pc.not_equal(filled(col), "").to_numpy(zero_copy_only=False)
        _count_bad(bad, f"missing_{col}", good, ok, path)
        good &= ok
    ts, ok = parse_int(filled("timestamp"))
    _count_bad(bad, "bad_timestamp", good, ok, path)
    good &= ok
    label_str = filled("label")
    ok = pc.not_equal(label_str, "").to_numpy(zero_copy_only=False)
    _count_bad(bad, "missing_label", good, ok, path)
    good &= ok
    is_true = pc.is_in(label_str, pa.array(TRUE_LABELS)).to_numpy(zero_copy_only=False)
    is_false = pc.is_in(label_str, pa.array(FALSE_LABELS)).to_numpy(zero_copy_only=False)
    label = np.where(is_true, 1, np.where(is_false, 0, -1))
    ok = label >= 0
    _count_bad(bad, "bad_label", good, ok, path)
    good &= ok
    idx = np.flatnonzero(good)
    table = table.take(pa.array(idx))
    ev = {"ts": ts[idx], "order": idx.astype(np.int64), "label": label[idx].astype(np.int8)}
    names = {}
    for col, vocab in _ID_COLUMNS:
        ev[event_key(col)], names[vocab] = id_keys(pc.utf8_trim_whitespace(table.column(col)))
    _add_declared(ev, names, table, decl, path)
    ev["target"] = np.ones(len(idx), dtype=bool)
    ev["history"] = ev["label"] == 1
    counts = {"rows_read": int(n + bad.unparsed()),
              "rows_dropped": dict(bad.counts), "rows_used": int(len(idx)),
              "clicks": int(np.count_nonzero(ev["history"]))}
    return ev, names, counts


def _add_declared(ev: dict, names: dict, table: pa.Table, decl: Declaration, path: str):
    """The declared extra columns and context fields of the kept rows, into ``ev``."""
    for col in decl.categorical:
        ev[event_key(col)], names[col] = declared_columns.categorical_keys(table.column(col))
    for col in decl.history_only:
        ev[event_key(f"hist_{col}")], names[col] = declared_columns.categorical_keys(
            table.column(col))
    if path.endswith(".parquet"):
        def locate(column, text):
            values = [("" if v is None else str(v).strip()) for v in
                      table.column(column).to_pylist()]
            pos = values.index(text) if text in values else 0
            return f"{path}: row {int(ev['order'][pos]) + 1}"
    else:
        locate = declared_columns.csv_line_of(path, read_header(path))
    for col in decl.numeric:
        ev[event_key(col)] = declared_columns.numeric_values(table.column(col), col, path,
                                                             locate)
    for field, values in context.context_values(ev["ts"], decl.context,
                                                decl.timezone).items():
        ev[event_key(field)], names[field] = values, None


def _count_bad(bad: BadRows, reason: str, good: np.ndarray, ok: np.ndarray, path: str):
    n = int(np.count_nonzero(good & ~ok))
    if n and bad.strict and not bad.locate:
        row = int(np.flatnonzero(good & ~ok)[0])
        raise PipelineError(f"{path}: row {row + 1}: malformed row ({reason})")
    bad.add(reason, n)


def build(args, *, extra_metadata=None, extra_files=None, arg_dict=None,
          source_display=None) -> dict:
    """Run the pipeline; ``extra_metadata(boundaries, ev)`` may add metadata keys,
    ``extra_files`` ({name: path}) are copied into the dataset directory, ``arg_dict``
    replaces the recorded arguments and ``source_display`` the recorded source path."""
    check_input_file(args.input)
    decl = Declaration.from_args(args)
    decl.check(read_header(args.input), args.input)
    arg_dict = vars(args).copy() if arg_dict is None else arg_dict
    with DatasetDir(args.output, arg_dict, args.input, source_display,
                    features=decl.schema()) as out:
        ev, names, counts = load_events(args.input, args.strict, decl)
        if len(ev["ts"]) == 0:
            raise PipelineError(f"no valid rows in {args.input}")
        progress.phase("building the training vocabularies")
        ts_keys, ts_counts = group_count(ev["ts"])
        boundaries = boundaries_from_args(args, ts_keys[0], ts_counts)
        train = ev["ts"] < boundaries[0]
        if not train.any():
            raise PipelineError(f"no training rows before the split boundary {boundaries[0]}")
        out.features = decl.schema({c: declared_columns.numeric_stats(ev[event_key(c)][train])
                                    for c in decl.numeric})
        vocabs = training_vocabularies(ev, names, train, out.features, args.min_count)
        out.start_examples(vocabs, sampled_negatives=False)
        builder = ExampleBuilder(vocabs=vocabs, boundaries=boundaries,
                                 max_seq_len=args.max_seq_len, samplers=None, neg_ratio=0.0,
                                 seed=args.seed, features=out.features)
        for split, cols in builder.build(ev):
            out.write(split, cols)
        meta = {"counts": counts, "split_boundary": boundaries[0],
                "split_boundaries": {"val": boundaries[0], "test": boundaries[1]},
                "dataset": "impressions"}
        if extra_metadata is not None:
            meta.update(extra_metadata(boundaries, ev))
        for name, src in (extra_files or {}).items():
            shutil.copyfile(src, os.path.join(out.tmp, name))
        return out.commit(meta, vocabs)


def main(argv=None):
    args = parse_args(argv)
    with progress.report("impressions", args.quiet):
        meta = build(args)
    if not args.quiet:
        print(summary_line("impressions", meta), file=sys.stderr)


if __name__ == "__main__":
    run_cli(main)
