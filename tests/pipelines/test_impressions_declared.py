"""pipelines.impressions with extra categorical, numeric and history columns and context
fields, against a plain-Python reference row by row (CSV and Parquet)."""

import json
import math
import statistics
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pipeline_helpers import known_ids, read_vocab, write_rows

from mdaf_tf.data import read_split_numpy
from pipelines import impressions

HEADER = ["user_id", "item_id", "cate_id", "timestamp", "label", "brand", "shop", "pid",
          "price", "age", "action", "ignored"]
FLAGS = ["--categorical", "brand,shop,pid", "--numeric", "price,age",
         "--history-fields", "item_id,cate_id,brand", "--history-only", "action",
         "--timezone", "America/New_York"]
HISTORY = {"item_id": "item", "cate_id": "cate", "brand": "brand", "action": "action"}
TZ = "America/New_York"
START = 1583470800  # 2020-03-06 00:00 New York; daylight saving starts on the 8th
CATEGORICAL = {"user_id": "user", "item_id": "item", "cate_id": "cate", "brand": "brand",
               "shop": "shop", "pid": "pid", "hour": "hour", "day_of_week": "day_of_week"}
SEQ = 4


def _rows(rng, n=400):
    rows = []
    for _ in range(n):
        item = int(rng.integers(0, 25))
        brand = "" if rng.random() < 0.15 else f"brand {item % 6}"
        shop = "" if rng.random() < 0.1 else int(rng.integers(10, 16))
        price = "" if rng.random() < 0.2 else round(float(rng.normal(50, 15)), 2)
        age = "" if rng.random() < 0.1 else int(rng.integers(18, 70))
        rows.append([f"u{int(rng.integers(0, 8))}", item, f"c{item % 4}",
                     START + int(rng.integers(0, 5 * 86400)), int(rng.random() < 0.4),
                     brand, shop, int(rng.integers(1, 4)), price, age,
                     ["view", "cart", "buy", ""][int(rng.integers(0, 4))], "free text"])
    return rows


def _parquet(rows, path):
    col = {c: [r[i] for r in rows] for i, c in enumerate(HEADER)}
    none = lambda vs: [None if v == "" else v for v in vs]
    pq.write_table(pa.table({
        **{c: col[c] for c in ("user_id", "item_id", "cate_id", "timestamp", "label", "pid",
                               "action", "ignored")},
        "brand": pa.array(none(col["brand"]), pa.string()),
        "shop": pa.array(none(col["shop"]), pa.int64()),
        "price": pa.array(none(col["price"]), pa.float64()),
        "age": pa.array(none(col["age"]), pa.int64())}), path)
    return path


def _reference(rows, boundary):
    """Per row: {field: raw id string / float}, and the raw history tokens."""
    def raw(r):
        local = datetime.fromtimestamp(r[3], ZoneInfo(TZ))
        out = {c: (str(r[HEADER.index(c)]).strip() or "<missing>")
               for c in ("user_id", "item_id", "cate_id", "brand", "shop", "pid", "action")}
        out.update(hour=str(local.hour), day_of_week=str(local.weekday()))
        out.update({c: float(r[HEADER.index(c)]) if r[HEADER.index(c)] != "" else math.nan
                    for c in ("price", "age")})
        return out

    values = [raw(r) for r in rows]
    train = [v for v, r in zip(values, rows, strict=True) if r[3] < boundary]
    known = {f: known_ids(v[f] for v in train) for f in (*CATEGORICAL, "action")}
    stats = {c: (statistics.fmean(x), statistics.pstdev(x)) for c in ("price", "age")
             for x in [[v[c] for v in train if not math.isnan(v[c])]]}
    expected = []
    for r, v in zip(rows, values, strict=True):
        ids = {f: (v[f] if v[f] in known[f] else "OOV") for f in CATEGORICAL}  # no action
        hist = sorted((j for j, h in enumerate(rows) if h[0] == r[0] and h[4] == 1
                       and h[3] < r[3]), key=lambda j: (rows[j][3], j))[-SEQ:]
        tokens = tuple((*("PAD",) * (SEQ - len(hist)),
                        *(values[j][f] if values[j][f] in known[f] else "OOV" for j in hist))
                       for f in HISTORY)
        expected.append((r[3], r[4], tuple(sorted(ids.items())), v["price"], v["age"],
                         tokens, len(hist)))
    return expected, known, stats


def _actual(out):
    vocab = {v: read_vocab(out, v) for v in {*CATEGORICAL.values(), "action"}}
    raw = lambda v, d: vocab[v][d - 2] if d >= 2 else ("PAD" if d == 0 else "OOV")
    actual = []
    for split in ("train", "val", "test"):
        ex = read_split_numpy(out, split)
        for k in range(len(ex["label"])):
            ids = {f: raw(v, int(ex[f][k])) for f, v in CATEGORICAL.items()}
            tokens = tuple(tuple(raw(v, int(d)) for d in ex[f"hist_{f}"][k])
                           for f, v in HISTORY.items())
            actual.append((int(ex["timestamp"][k]), int(ex["label"][k]),
                           tuple(sorted(ids.items())), float(ex["price"][k]),
                           float(ex["age"][k]), tokens, int(ex["hist_len"][k])))
    return actual, vocab


def _same(a, b):
    """Rows equal, numbers to float32 precision and NaN equal to NaN."""
    num = lambda x, y: (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=1e-6)
    return a[:3] == b[:3] and num(a[3], b[3]) and num(a[4], b[4]) and a[5:] == b[5:]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_extra_columns_match_a_plain_python_reference(tmp_path, cli, fmt):
    rows = _rows(np.random.default_rng(4))
    src = write_rows(tmp_path / "log.csv", rows, header=HEADER)
    if fmt == "parquet":
        src = _parquet(rows, tmp_path / "log.parquet")
    out = tmp_path / "ds"
    code, err = cli(impressions, "--input", src, "--output", out, "--max-seq-len", SEQ, *FLAGS)
    assert code == 0, err
    meta = json.loads((out / "metadata.json").read_text())
    expected, known, stats = _reference(rows, meta["split_boundaries"]["val"])
    actual, vocab = _actual(out)
    key = lambda row: (row[0], row[1], row[2])
    assert len(actual) == len(expected) == len(rows)
    assert all(_same(a, b) for a, b in zip(sorted(actual, key=key),
                                            sorted(expected, key=key), strict=True))
    for field, v in {**CATEGORICAL, "action": "action"}.items():  # training rows only
        assert set(vocab[v]) == known[field], field
    declared = {f["name"]: f for f in meta["schema"]["static"]}
    for c, (mean, std) in stats.items():
        assert declared[c]["kind"] == "numeric"
        assert declared[c]["mean"] == pytest.approx(mean) and declared[c]["std"] == \
            pytest.approx(std)
    assert meta["schema"]["sequence"] == [
        {"name": "hist_item_id", "static": "item_id"}, {"name": "hist_cate_id",
                                                        "static": "cate_id"},
        {"name": "hist_brand", "static": "brand"}, {"name": "hist_action",
                                                    "vocabulary": "action"}]
    assert meta["raw_id_dtypes"] == {"user": "string", "item": "int64", "cate": "string",
                                     "brand": "string", "shop": "string", "pid": "int64",
                                     "hour": "int64", "day_of_week": "int64",
                                     "action": "string"}
    assert "ignored" not in declared and "action" not in declared


def _tmp_leftovers(parent):
    return [p.name for p in parent.iterdir() if ".tmp" in p.name]


@pytest.mark.parametrize("flags,message", [
    (["--categorical", "brnd"], "--categorical column 'brnd' is not in the file"),
    (["--numeric", "brand"], "column 'brand' holds 'brand"),
    (["--history-fields", "item_id,shop"], "--history-fields column 'shop' has no matching"),
    (["--categorical", "label"], "column 'label' is a required column"),
    (["--timezone", "Mars/Olympus"], "--timezone 'Mars/Olympus' is not a time zone"),
    (["--categorical", "item"], "column 'item' has the name of the user, item or category"),
])
def test_bad_declarations_stop_with_one_line_and_write_nothing(tmp_path, cli, flags,
                                                                message):
    rows = [r + [r[1]] for r in _rows(np.random.default_rng(5), n=50)]  # + an "item" column
    src = write_rows(tmp_path / "log.csv", rows, header=HEADER + ["item"])
    out = tmp_path / "ds"
    code, err = cli(impressions, "--input", src, "--output", out, *flags)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not out.exists() and not _tmp_leftovers(tmp_path)


def test_text_in_a_numeric_column_names_the_line_or_row(tmp_path, cli):
    rows = _rows(np.random.default_rng(6), n=30)
    rows[11][HEADER.index("price")] = "12,5 EUR"
    src = write_rows(tmp_path / "log.csv", rows, header=HEADER)
    code, err = cli(impressions, "--input", src, "--output", tmp_path / "a", "--numeric",
                    "price")
    assert code == 2 and "log.csv:13: column 'price' holds '12,5 EUR'" in err, err
    table = pq.read_table(_parquet(_rows(np.random.default_rng(6), n=30),
                                   tmp_path / "ok.parquet"))
    table = table.set_column(table.column_names.index("brand"), "brand", pa.array(
        [None] * 7 + ["n/a"] + [None] * 22, pa.string()))
    pq.write_table(table, tmp_path / "bad.parquet")
    code, err = cli(impressions, "--input", tmp_path / "bad.parquet", "--output",
                    tmp_path / "b", "--numeric", "brand")
    assert code == 2 and "bad.parquet: row 8: column 'brand' holds 'n/a'" in err, err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert not _tmp_leftovers(tmp_path)
