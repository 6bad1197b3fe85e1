import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pipeline_helpers import (
    UNREADABLE_REASONS,
    assert_one_line_error,
    dataset_files,
    known_ids,
    read_vocab,
    shard_bytes,
    with_unreadable_rows,
    without_unreadable_rows,
    write_rows,
)

from mdaf_tf.data import read_split_numpy
from pipelines import impressions

HEADER = ["user_id", "item_id", "cate_id", "timestamp", "label"]


def _log(rng, n=300):
    rows = []
    for _ in range(n):
        item = int(rng.integers(0, 20))
        rows.append([f"u{int(rng.integers(0, 6))}", f"item-{item}", f"c{item % 3}",
                     1_600_000_000 + int(rng.integers(0, 200)), int(rng.random() < 0.4)])
    return rows


def _examples(out):
    return {s: read_split_numpy(out, s) for s in ("train", "val", "test")}


def _raw(vocab, dense):
    return [vocab[d - 2] if d >= 2 else ("PAD" if d == 0 else "OOV") for d in dense]


def test_history_is_earlier_clicks_with_string_ids(tmp_path, cli):
    rows = _log(np.random.default_rng(0))
    src = write_rows(tmp_path / "log.csv", rows, header=HEADER)
    out = tmp_path / "ds"
    seq = 4
    code, err = cli(impressions, "--input", src, "--output", out, "--max-seq-len", seq)
    assert code == 0, err
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["raw_id_dtypes"] == {"user": "string", "item": "string", "cate": "string",
                                     "hour": "int64", "day_of_week": "int64"}  # --context
    boundary = meta["split_boundaries"]["val"]
    vocab = {n: read_vocab(out, n) for n in ("user", "item", "cate")}
    train = [r for r in rows if r[3] < boundary]
    known = {k: known_ids(r[i] for r in train) for k, i in (("user", 0), ("item", 1),
                                                              ("cate", 2))}
    expected = []
    for r in rows:
        hist = sorted((j for j, h in enumerate(rows)
                       if h[0] == r[0] and h[4] == 1 and h[3] < r[3]),
                      key=lambda j: (rows[j][3], j))[-seq:]
        pad = ["PAD"] * (seq - len(hist))
        name = lambda k, v: v if v in known[k] else "OOV"
        expected.append((name("user", r[0]), name("item", r[1]), r[3], r[4],
                         tuple(pad + [name("item", rows[j][1]) for j in hist]),
                         tuple(pad + [name("cate", rows[j][2]) for j in hist]), len(hist)))
    actual = []
    for ex in _examples(out).values():
        for k in range(len(ex["label"])):
            actual.append((*_raw(vocab["user"], [ex["user_id"][k]]),
                           *_raw(vocab["item"], [ex["item_id"][k]]), int(ex["timestamp"][k]),
                           int(ex["label"][k]), tuple(_raw(vocab["item"], ex["hist_item_id"][k])),
                           tuple(_raw(vocab["cate"], ex["hist_cate_id"][k])),
                           int(ex["hist_len"][k])))
    assert sorted(actual) == sorted(expected)
    assert meta["splits"]["train"]["positives"] == sum(r[4] for r in train)


def test_parquet_input_gives_the_same_shards_and_integer_ids(tmp_path, cli):
    rng = np.random.default_rng(1)
    rows = [[int(rng.integers(0, 5)), int(rng.integers(100, 130)), int(rng.integers(7, 9)),
             1_600_000_000 + k, int(rng.random() < 0.5)] for k in range(200)]
    csv_path = write_rows(tmp_path / "log.csv", rows, header=HEADER)
    table = pa.table({c: [r[i] for r in rows] for i, c in enumerate(HEADER)})
    pq.write_table(table, tmp_path / "log.parquet")
    assert cli(impressions, "--input", csv_path, "--output", tmp_path / "a")[0] == 0
    assert cli(impressions, "--input", tmp_path / "log.parquet", "--output", tmp_path / "b")[0] == 0
    assert shard_bytes(tmp_path / "a") == shard_bytes(tmp_path / "b")
    meta = json.loads((tmp_path / "b" / "metadata.json").read_text())
    assert meta["raw_id_dtypes"] == {"user": "int64", "item": "int64", "cate": "int64",
                                     "hour": "int64", "day_of_week": "int64"}


def test_malformed_rows_counted_and_strict_names_line(tmp_path, cli):
    text = "\n".join([
        ",".join(HEADER), "a,i1,c1,100,1", "a,i2,c1,101", "a,i3,c1,102,", ",i3,c1,103,0",
        "a,i3,c1,later,0", "a,i3,c1,104,yes", "a,i4,c2,105,0", "b,i1,c1,106,1"]) + "\n"
    src = tmp_path / "log.csv"
    src.write_text(text)
    code, err = cli(impressions, "--input", src, "--output", tmp_path / "ds",
                    "--val-fraction", 0)
    assert code == 0, err
    meta = json.loads((tmp_path / "ds" / "metadata.json").read_text())
    assert meta["counts"]["rows_dropped"] == {
        "wrong_column_count": 1, "missing_label": 1, "missing_user_id": 1, "bad_timestamp": 1,
        "bad_label": 1}
    assert meta["counts"]["rows_used"] == 3
    code, err = cli(impressions, "--input", src, "--output", tmp_path / "s", "--strict")
    assert code == 2 and err.strip() == (
        f"error: {src}:3: malformed row (wrong_column_count: 4 columns, expected 5)")


UNREADABLE = {
    "invalid_utf8": b"u1,item-\xff,c1,1600000050,1",  # a string id may be any text, not bytes
    "nul_byte": b"u2,item-3,c0,1600000060,0\x00",
    "truncated_last_line": b"u3,item-4,c1,16000",
}


def _log_lines(seed=5):
    return [b",".join(str(v).encode() for v in row) for row in
            [HEADER, *_log(np.random.default_rng(seed))]]


def test_unreadable_rows_are_dropped_and_counted(tmp_path, cli):
    lines = _log_lines()
    (tmp_path / "clean.csv").write_bytes(b"\n".join(lines) + b"\n")
    (tmp_path / "bad.csv").write_bytes(with_unreadable_rows(lines, UNREADABLE, at=(1, 150))[0])
    for name in ("clean", "bad"):
        code, err = cli(impressions, "--input", tmp_path / f"{name}.csv", "--output",
                        tmp_path / name)
        assert code == 0 and "Traceback" not in err, err
    assert "dropped 3 (invalid_utf8 1, nul_byte 1, truncated_last_line 1)" in err.splitlines()[-1]
    assert dataset_files(tmp_path / "bad") == dataset_files(tmp_path / "clean")
    bad, clean = (json.loads((tmp_path / name / "metadata.json").read_text())
                  for name in ("bad", "clean"))
    assert bad["splits"] == clean["splits"]
    rest_bad, rest_clean = without_unreadable_rows(bad["counts"], clean["counts"])
    assert rest_bad == rest_clean and rest_bad["rows_used"] == len(lines) - 1


@pytest.mark.parametrize("reason", UNREADABLE_REASONS)
def test_strict_stops_at_an_unreadable_row_in_one_line(tmp_path, cli, reason):
    body, line_of = with_unreadable_rows(_log_lines(), {reason: UNREADABLE[reason]},
                                         at=(1, 150))
    src = tmp_path / "bad.csv"
    src.write_bytes(body)
    code, err = cli(impressions, "--input", src, "--output", tmp_path / "ds", "--strict")
    assert code == 2
    assert_one_line_error(err, src, line_of[reason], reason)
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("header", [b"user_id,item_id,cate_id,timestamp,label,\xe9t\xe9",
                                    b"user_id,item_id,cate_id,timestamp,label,n\x00te"])
def test_a_header_that_is_not_text_is_one_line_exit_2(tmp_path, cli, header):
    src = tmp_path / "log.csv"
    src.write_bytes(b"\n".join([header, *_log_lines()[1:]]) + b"\n")
    code, err = cli(impressions, "--input", src, "--output", tmp_path / "ds")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"error: {src}:1: the header ")


@pytest.mark.parametrize("case", ["csv_header", "parquet_columns", "empty", "missing"])
def test_unusable_input_is_one_line_exit_2(tmp_path, cli, case):
    path = tmp_path / "in.csv"
    if case == "csv_header":
        write_rows(path, [["u", "i", "c", 1, 1]], header=["user_id", "item_id", "cate", "ts",
                                                          "label"])
    elif case == "parquet_columns":
        path = tmp_path / "in.parquet"
        pq.write_table(pa.table({"user_id": [1], "item_id": [2], "label": [1]}), path)
    elif case == "empty":
        path.write_text("")
    code, err = cli(impressions, "--input", path, "--output", tmp_path / "ds")
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err
    if case == "parquet_columns":
        assert "cate_id,timestamp" in err
    assert not (tmp_path / "ds").exists()
