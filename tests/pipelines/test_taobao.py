import csv
import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from pipeline_helpers import (
    SHARED,
    UNREADABLE_REASONS,
    WINDOW_START,
    assert_one_line_error,
    dataset_files,
    known_ids,
    read_vocab,
    shard_bytes,
    split_name,
    with_unreadable_rows,
    without_unreadable_rows,
    write_rows,
)

from mdaf_tf.data import read_split_numpy
from pipelines import taobao

BEHAVIORS = ["pv", "cart", "fav", "buy"]


def _random_log(rng, n=240, users=6, items=25, span=300):
    item_cate = {i: 500 + i % 4 for i in range(items)}
    rows = []
    for _ in range(n):
        item = int(rng.integers(0, items))
        rows.append([int(rng.integers(1, users + 1)) * 7, 1000 + item, item_cate[item],
                     BEHAVIORS[int(rng.integers(0, 4))],
                     WINDOW_START + 3600 + int(rng.integers(0, span))])  # ties on purpose
    return rows


def _all_examples(out):
    return {s: read_split_numpy(out, s) for s in ("train", "val", "test")}


def _raw(vocab, dense):
    return [vocab[d - 2] if d >= 2 else ("PAD" if d == 0 else "OOV") for d in dense]


def test_examples_match_plain_python_reference(tmp_path, cli):
    rows = _random_log(np.random.default_rng(0))
    rows += [[7, 77777, 501, "pv", WINDOW_START + 5000], [14, 77778, 5, "buy", WINDOW_START + 5000]]
    src = write_rows(tmp_path / "log.csv", rows)
    out = tmp_path / "ds"
    seq = 5
    code, err = cli(taobao, "--input", src, "--output", out, "--neg-ratio", 0,
                    "--max-seq-len", seq, "--partitions", 3, "--val-fraction", 0.25)
    assert code == 0, err
    meta = json.loads((out / "metadata.json").read_text())
    bounds = meta["split_boundaries"]
    vocab = {n: read_vocab(out, n) for n in ("user", "item", "cate")}
    train_rows = [r for r in rows if r[4] < bounds["val"]]
    train_items = known_ids(r[1] for r in train_rows)  # the default --min-count 2
    train_users = known_ids(r[0] for r in train_rows)
    expected = []
    for r in rows:
        hist = sorted((j for j, h in enumerate(rows) if h[0] == r[0] and h[4] < r[4]),
                      key=lambda j: (rows[j][4], j))[-seq:]
        items = [str(rows[j][1]) if str(rows[j][1]) in train_items else "OOV" for j in hist]
        cates = [str(rows[j][2]) for j in hist]
        pad = ["PAD"] * (seq - len(hist))
        split = split_name(r[4], bounds)
        expected.append((split, str(r[0]) if str(r[0]) in train_users else "OOV",
                         str(r[1]) if str(r[1]) in train_items else "OOV",
                         r[4], tuple(pad + items), tuple(pad + cates), len(hist)))
    actual = []
    for split, ex in _all_examples(out).items():
        assert (ex["label"] == 1).all()
        for k in range(len(ex["label"])):
            actual.append((split, *_raw(vocab["user"], [ex["user_id"][k]]),
                           *_raw(vocab["item"], [ex["item_id"][k]]), int(ex["timestamp"][k]),
                           tuple(_raw(vocab["item"], ex["hist_item_id"][k])),
                           tuple(_raw(vocab["cate"], ex["hist_cate_id"][k])),
                           int(ex["hist_len"][k])))
    assert sorted(actual) == sorted(expected)
    assert any(e[2] == "OOV" for e in expected if e[0] == "val")  # OOV mapping exercised
    assert {e[0] for e in expected} == {"train", "val", "test"}


def _hand_built_log(t0):
    """Three periods with disjoint items: training items 1-3 (users 1, 2), validation items
    8, 9 (user 3), test items 20, 21 (user 4); category = item + 100."""
    rows = [[1 + k % 2, item, item + 100, "pv", t0 + k]
            for k, item in enumerate([1] * 6 + [2] * 3 + [3])]
    rows += [[3, item, item + 100, "pv", t0 + 1000 + k] for k, item in enumerate([8, 9, 8, 1])]
    rows += [[4, item, item + 100, "pv", t0 + 2000 + k]
             for k, item in enumerate([20, 21, 20, 2])]
    return rows


def test_negatives_come_from_their_periods_positives_and_share_history(tmp_path, cli):
    t0 = WINDOW_START + 100
    rows = _hand_built_log(t0)
    src = write_rows(tmp_path / "log.csv", rows)
    out = tmp_path / "ds"
    code, err = cli(taobao, "--input", src, "--output", out, "--val-start", t0 + 1000,
                    "--test-start", t0 + 2000, "--neg-ratio", 2, "--min-count", 1)
    assert code == 0, err
    # vocabularies: training rows only, descending training frequency
    assert read_vocab(out, "item") == ["1", "2", "3"]
    assert read_vocab(out, "cate") == ["101", "102", "103"]
    assert read_vocab(out, "user") == ["1", "2"]
    ex = _all_examples(out)
    item_vocab = read_vocab(out, "item")
    # the positives' items each period can draw from, as the dense ids they map to
    period_items = {"train": {2, 3, 4}, "val": {1, 2}, "test": {1, 3}}  # 8, 9, 20, 21 -> OOV
    for split, e in ex.items():
        pos = np.flatnonzero(e["label"] == 1)
        neg = np.flatnonzero(e["label"] == 0)
        assert len(neg) == 2 * len(pos)
        assert set(e["item_id"][neg].tolist()) <= period_items[split]
        by_event = {(int(e["user_key"][k]), int(e["timestamp"][k])): k for k in pos}
        for k in neg:
            p = by_event[(int(e["user_key"][k]), int(e["timestamp"][k]))]  # same timestamp
            for name in ("user_id", "hist_item_id", "hist_cate_id", "hist_len"):
                np.testing.assert_array_equal(e[name][k], e[name][p])
            if e["item_id"][p] >= 2:  # a known positive item is never its own negative
                assert e["item_id"][k] != e["item_id"][p]
    # val positive item 1 (known) gets negatives from {8, 9} only: OOV, never item 1 or 2
    val = ex["val"]
    one = np.flatnonzero((val["label"] == 1) & (val["item_id"] == 2))
    for k in one:
        same = (val["timestamp"] == val["timestamp"][k]) & (val["label"] == 0)
        assert set(val["item_id"][same].tolist()) == {1}
    # test: positive item 2 -> negatives from 20/21 only (OOV item, OOV category 120/121);
    # other negatives are 20, 21 or 2 with their own category (2 -> 102 -> dense 3)
    test = ex["test"]
    assert _raw(item_vocab, test["item_id"][test["label"] == 1]) == ["OOV", "OOV", "OOV", "2"]
    neg = test["label"] == 0
    np.testing.assert_array_equal(test["cate_id"][neg], np.where(test["item_id"][neg] == 3, 3, 1))
    two = test["timestamp"] == test["timestamp"][(test["label"] == 1) & (test["item_id"] == 3)]
    assert set(test["item_id"][two & neg].tolist()) == {1}


def test_min_count_maps_rare_training_items_to_oov_for_both_labels(tmp_path, cli):
    t0 = WINDOW_START + 100
    src = write_rows(tmp_path / "log.csv", _hand_built_log(t0))
    out = tmp_path / "ds"
    assert cli(taobao, "--input", src, "--output", out, "--val-start", t0 + 1000,
               "--test-start", t0 + 2000, "--neg-ratio", 2)[0] == 0  # default --min-count 2
    assert read_vocab(out, "item") == ["1", "2"]
    train = read_split_numpy(out, "train")
    # item 3 (seen once) is OOV as a positive and as a sampled negative alike
    for label in (0, 1):
        assert 1 in set(train["item_id"][train["label"] == label].tolist())


def test_negative_ratio_never_positive_and_category(tmp_path, cli):
    rng = np.random.default_rng(1)
    rows = []
    for u in range(40):
        for k in range(30):  # distinct timestamps per user
            item = int(rng.zipf(1.5)) % 60
            rows.append([u, item, 900 + item % 7, "pv", WINDOW_START + 10 * k + u])
    src = write_rows(tmp_path / "log.csv", rows)
    for ratio in (1.5, 3.0):
        out = tmp_path / f"ds{ratio}"
        code, err = cli(taobao, "--input", src, "--output", out, "--neg-ratio", ratio,
                        "--min-count", 1)
        assert code == 0, err
        cate_vocab = read_vocab(out, "cate")
        item_vocab = read_vocab(out, "item")
        n_pos = n_neg = 0
        for ex in _all_examples(out).values():
            pos_item = {}
            for k in np.flatnonzero(ex["label"] == 1):
                pos_item[(ex["user_id"][k], ex["timestamp"][k])] = ex["item_id"][k]
            neg = np.flatnonzero(ex["label"] == 0)
            for k in neg:
                positive = pos_item[(ex["user_id"][k], ex["timestamp"][k])]
                assert positive == 1 or ex["item_id"][k] != positive  # 1: OOV, raw unknown
                if ex["item_id"][k] < 2:
                    continue
                raw_item = int(item_vocab[ex["item_id"][k] - 2])
                assert cate_vocab[ex["cate_id"][k] - 2] == str(900 + raw_item % 7)
            n_pos += len(pos_item)
            n_neg += len(neg)
        assert abs(n_neg / n_pos - ratio) <= 0.05 * ratio


def test_default_split_is_latest_share_and_val_start_overrides(tmp_path, cli):
    rows = [[1 + k % 5, k % 11, 3, "pv", WINDOW_START + k] for k in range(1000)]
    src = write_rows(tmp_path / "log.csv", rows)
    out = tmp_path / "ds"
    assert cli(taobao, "--input", src, "--output", out, "--neg-ratio", 0)[0] == 0
    meta = json.loads((out / "metadata.json").read_text())
    ex = _all_examples(out)
    b = meta["split_boundaries"]
    assert ex["train"]["timestamp"].max() < b["val"] <= ex["val"]["timestamp"].min()
    assert ex["val"]["timestamp"].max() < b["test"] <= ex["test"]["timestamp"].min()
    assert [meta["splits"][s]["examples"] for s in ("train", "val", "test")] == [700, 150, 150]
    out2 = tmp_path / "ds2"
    assert cli(taobao, "--input", src, "--output", out2, "--neg-ratio", 0,
               "--val-start", WINDOW_START + 800, "--test-start", WINDOW_START + 900)[0] == 0
    meta2 = json.loads((out2 / "metadata.json").read_text())
    assert meta2["split_boundaries"] == {"val": WINDOW_START + 800, "test": WINDOW_START + 900}
    assert [meta2["splits"][s]["examples"] for s in ("train", "val", "test")] == [800, 100, 100]


def test_window_filter_max_users_and_positive_behaviors(tmp_path, cli):
    rows = [[u, 5, 6, b, WINDOW_START + 50 + u] for u in range(1, 11) for b in BEHAVIORS]
    rows += [[1, 5, 6, "pv", WINDOW_START - 1], [2, 5, 6, "pv", 1512316800]]  # outside
    src = write_rows(tmp_path / "log.csv", rows)
    out = tmp_path / "ds"
    code, err = cli(taobao, "--input", src, "--output", out, "--max-users", 3,
                    "--positive-behaviors", "buy,cart", "--neg-ratio", 0, "--val-fraction", 0,
                    "--test-fraction", 0)
    assert code == 0, err
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["counts"]["rows_dropped"] == {"outside_window": 2}
    assert meta["counts"]["users_kept"] == 3 and meta["counts"]["users_in_window"] == 10
    assert len(read_vocab(out, "user")) == 3
    assert meta["splits"]["train"]["positives"] == 3 * 2
    out2 = tmp_path / "ds2"
    assert cli(taobao, "--input", src, "--output", out2, "--max-users", 3,
               "--positive-behaviors", "buy,cart", "--neg-ratio", 0, "--val-fraction", 0,
               "--test-fraction", 0)[0] == 0
    assert sorted(read_vocab(out2, "user")) == sorted(read_vocab(out, "user"))


def test_reruns_are_byte_identical_and_output_dir_rules(tmp_path, cli):
    src = write_rows(tmp_path / "log.csv", _random_log(np.random.default_rng(5)))
    a, b = tmp_path / "a", tmp_path / "b"
    args = ["--input", src, "--examples-per-shard", 100, "--partitions", 2]
    assert cli(taobao, *args, "--output", a)[0] == 0
    assert cli(taobao, *args, "--output", b)[0] == 0
    assert len(shard_bytes(a)) > 2 and shard_bytes(a) == shard_bytes(b)
    assert cli(taobao, *args, "--output", a)[0] == 0  # same arguments: rebuilt in place
    assert shard_bytes(a) == shard_bytes(b)
    code, err = cli(taobao, *args, "--output", a, "--seed", 1)
    assert code == 2 and "different dataset" in err and err.count("\n") == 1
    assert cli(taobao, *args, "--output", a, "--seed", 1, "--overwrite")[0] == 0
    assert shard_bytes(a) != shard_bytes(b)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("x")
    code, err = cli(taobao, *args, "--output", junk)
    assert code == 2 and "not empty" in err


def test_interrupted_run_leaves_nothing_that_looks_complete(tmp_path, cli, monkeypatch):
    src = write_rows(tmp_path / "log.csv", _random_log(np.random.default_rng(6)))

    def boom(self, ev):
        raise KeyboardInterrupt
        yield

    monkeypatch.setattr(taobao.ExampleBuilder, "build", boom)
    with pytest.raises(KeyboardInterrupt):
        taobao.main(["--input", src, "--output", str(tmp_path / "ds")])
    assert sorted(os.listdir(tmp_path)) == ["log.csv"]


def test_malformed_rows_counted_and_strict(tmp_path, cli):
    good = [1, 2, 3, "pv", WINDOW_START + 10]
    w = WINDOW_START
    lines = [f"1,2,3,pv,{w + k}" for k in range(5)]
    lines[1:1] = ["1,2,3,pv", f"1,x2,3,pv,{w}", f"1,2,3,pv,{w},9", f"1,2,3,click,{w}",
                  "1,2,3,pv,yesterday", "u,2,3,pv,1", f"1,2,c,buy,{w}"]
    src = tmp_path / "bad.csv"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "ds"
    code, err = cli(taobao, "--input", src, "--output", out, "--neg-ratio", 0)
    assert code == 0, err
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["counts"]["rows_dropped"] == {
        "wrong_column_count": 2, "bad_item_id": 1, "unknown_behavior": 1, "bad_timestamp": 1,
        "bad_user_id": 1, "bad_category_id": 1}
    assert meta["counts"]["rows_read"] == 12 and meta["counts"]["rows_used"] == 5
    assert "wrong_column_count 2" in err
    code, err = cli(taobao, "--input", src, "--output", tmp_path / "s", "--strict")
    assert code == 2
    assert err.strip() == (f"error: {src}:2: malformed row "
                           "(wrong_column_count: 4 columns, expected 5)")
    fine = write_rows(tmp_path / "fine.csv", [good, ["1", "2", "3", "fav", "soon"]])
    code, err = cli(taobao, "--input", fine, "--output", tmp_path / "s2", "--strict")
    assert code == 2 and f"{fine}:2:" in err and "bad_timestamp" in err
    assert not (tmp_path / "s").exists() and not (tmp_path / "s2").exists()


UNREADABLE = {
    # Latin-1 text in a row of 3 columns: pyarrow's invalid-row handler once failed on it
    "invalid_utf8": b"7,\xe9t\xe9,500",
    "nul_byte": b"14,1003,501,pv\x00,%d" % (WINDOW_START + 3700),
    "truncated_last_line": b"21,1004,50",  # a download cut off inside its last row
}


def _log_lines(seed=3):
    return [",".join(map(str, row)).encode() for row in _random_log(np.random.default_rng(seed))]


def test_unreadable_rows_are_dropped_and_counted(tmp_path, cli):
    lines = _log_lines()
    (tmp_path / "clean.csv").write_bytes(b"\n".join(lines) + b"\n")
    (tmp_path / "bad.csv").write_bytes(with_unreadable_rows(lines, UNREADABLE, at=(40, 120))[0])
    for name in ("clean", "bad"):
        code, err = cli(taobao, "--input", tmp_path / f"{name}.csv", "--output", tmp_path / name,
                        "--partitions", 2, "--max-seq-len", 5)
        assert code == 0 and "Traceback" not in err, err
    assert "dropped 3 (invalid_utf8 1, nul_byte 1, truncated_last_line 1)" in err.splitlines()[-1]
    assert dataset_files(tmp_path / "bad") == dataset_files(tmp_path / "clean")
    bad, clean = (json.loads((tmp_path / name / "metadata.json").read_text())
                  for name in ("bad", "clean"))
    assert bad["splits"] == clean["splits"]
    rest_bad, rest_clean = without_unreadable_rows(bad["counts"], clean["counts"])
    assert rest_bad == rest_clean and rest_bad["rows_used"] == len(lines)


@pytest.mark.parametrize("reason", UNREADABLE_REASONS)
def test_strict_stops_at_an_unreadable_row_in_one_line(tmp_path, cli, reason):
    body, line_of = with_unreadable_rows(_log_lines(), {reason: UNREADABLE[reason]},
                                         at=(40, 120))
    src = tmp_path / "bad.csv"
    src.write_bytes(body)
    code, err = cli(taobao, "--input", src, "--output", tmp_path / "ds", "--strict")
    assert code == 2
    assert_one_line_error(err, src, line_of[reason], reason)
    assert not (tmp_path / "ds").exists()


def test_command_line_shows_no_traceback_for_unreadable_rows(tmp_path):
    body, line_of = with_unreadable_rows(_log_lines(), UNREADABLE, at=(40, 120))
    src = tmp_path / "bad.csv"
    src.write_bytes(body)
    runs = [subprocess.run([sys.executable, "-m", "pipelines.taobao", "--input", str(src),
                            "--output", str(tmp_path / name), *flags],
                           capture_output=True, text=True, cwd=Path(__file__).parents[2])
            for name, flags in (("ds", []), ("strict", ["--strict"]))]
    assert runs[0].returncode == 0 and "Traceback" not in runs[0].stderr, runs[0].stderr
    assert runs[0].stderr.splitlines()[-1].startswith("taobao: read 243 rows, dropped 3 (")
    assert runs[1].returncode == 2
    assert_one_line_error(runs[1].stderr, src, line_of["invalid_utf8"], "invalid_utf8")
    assert runs[0].stdout == runs[1].stdout == ""


@pytest.mark.parametrize("case", ["missing", "empty", "directory", "no_rows_in_window"])
def test_unusable_input_is_one_line_exit_2(tmp_path, cli, case):
    path = tmp_path / "in.csv"
    if case == "empty":
        path.write_text("")
    elif case == "directory":
        path.mkdir()
    elif case == "no_rows_in_window":
        write_rows(path, [[1, 2, 3, "pv", 5]])
    code, err = cli(taobao, "--input", path, "--output", tmp_path / "ds")
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error:") and "Traceback" not in err
    assert not (tmp_path / "ds").exists()


USERS_43 = os.path.join(SHARED, "users_43_complete_histories.csv")


@pytest.mark.skipif(not os.path.exists(USERS_43), reason=f"shared sample absent: {USERS_43}")
def test_users_43_counts_checked_by_hand(tmp_path, cli):
    in_window = Counter()
    first_seen = {}
    with open(USERS_43) as f:
        for row in csv.reader(f):
            ts = int(row[4])
            if 1511539200 <= ts < 1512316800:
                in_window[row[0]] += 1
                first_seen.setdefault(row[0], ts)
    out = tmp_path / "ds"
    code, err = cli(taobao, "--input", USERS_43, "--output", out)
    assert code == 0, err
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["counts"]["rows_read"] == 4321
    assert meta["counts"]["rows_dropped"] == {"outside_window": 4321 - sum(in_window.values())}
    users = read_vocab(out, "user")
    positives, negatives = Counter(), Counter()
    empty_history = defaultdict(int)
    ex = _all_examples(out)
    for split in ex.values():
        raw_users = _raw(users, split["user_id"])
        for u, lab, hl in zip(raw_users, split["label"], split["hist_len"], strict=True):
            (positives if lab == 1 else negatives)[u] += 1
            empty_history[u] += int(hl == 0)
    # users only active in the validation period are OOV; count them apart
    known = {u: c for u, c in in_window.items() if u in users}
    assert {u: positives[u] for u in known} == known
    assert positives["OOV"] == sum(c for u, c in in_window.items() if u not in users)
    total_pos = sum(in_window.values())
    assert abs(sum(negatives.values()) / total_pos - 1.5) <= 0.05 * 1.5
    # each user's earliest positives (and their negatives) have empty histories
    assert all(empty_history[u] >= 1 for u in known)
