"""pipelines.taobao_ad on hand-written raw files (taobao_ad_files/: missing profiles and
profile fields, NULL brands, a duplicate row, an unknown adgroup, contradictory clk/nonclk,
rows outside the 8 days, a bad timestamp, a user under 3 rows, same-second rows) against a
plain-Python reference, for both protocols and both history kinds."""

import csv
import json
import math
import statistics
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
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
)
from sklearn.model_selection import train_test_split

from mdaf_tf.data import read_split_numpy
from pipelines import taobao_ad

FILES = Path(__file__).parent / "taobao_ad_files"
CHINA = timezone(timedelta(hours=8))
DAY = lambda d: int(datetime(2017, 5, d, tzinfo=CHINA).timestamp())  # noqa: E731
AD_FIELDS = ("cate_id", "campaign_id", "customer", "brand")
PROFILE = ("cms_segid", "cms_group_id", "final_gender_code", "age_level", "pvalue_level",
           "shopping_level", "occupation", "new_user_class_level")
CATEGORICAL = {"user_id": "user", "item_id": "item", "cate_id": "cate",
               **{f: f for f in ("campaign_id", "customer", "brand", "pid", *PROFILE, "hour",
                                 "day_of_week")}}
SEQ = 4
HISTORY = {"impressions": (("item_id", "item"), ("cate_id", "cate")),
           "clicks": (("item_id", "item"), ("cate_id", "cate")),
           "behavior-log": (("cate_id", "cate"), ("brand", "brand"), ("btag", "btag"))}


def _csv(name):
    with open(FILES / name, newline="") as f:
        rows = list(csv.reader(f))
    header = [c.strip() for c in rows[0]]
    return [dict(zip(header, r, strict=True)) for r in rows[1:]]


def _missing(text):
    return "<missing>" if text.strip() in ("", "NULL") else text.strip()


def _reason(r, ads):
    """The first reason a raw row is dropped (None: valid), in the pipeline's order."""
    is_int = lambda s: s.strip().lstrip("+-").isdigit()  # noqa: E731
    checks = [("bad_user", lambda: is_int(r["user"])),
              ("bad_time_stamp", lambda: is_int(r["time_stamp"])),
              ("bad_adgroup_id", lambda: is_int(r["adgroup_id"])),
              ("missing_pid", lambda: r["pid"] != ""),
              ("bad_click_flag", lambda: r["clk"] in ("0", "1") and r["nonclk"] in ("0", "1")),
              ("contradictory_click", lambda: r["clk"] != r["nonclk"]),
              ("unknown_adgroup", lambda: r["adgroup_id"] in ads),
              ("outside_window", lambda: DAY(6) <= int(r["time_stamp"]) < DAY(14))]
    return next((reason for reason, ok in checks if not ok()), None)


def _log_reason(r):
    is_int = lambda s: s.strip().lstrip("+-").isdigit()  # noqa: E731
    checks = [("bad_user", lambda: is_int(r["user"])),
              ("bad_time_stamp", lambda: is_int(r["time_stamp"])),
              ("unknown_btag", lambda: r["btag"] in ("pv", "cart", "fav", "buy")),
              ("bad_cate", lambda: is_int(r["cate"])),
              ("after_window", lambda: int(r["time_stamp"]) < DAY(14))]
    return next((reason for reason, ok in checks if not ok()), None)


def _log_values():
    """The valid behaviour-log events: user, time, line, and raw cate_id, brand, btag."""
    return [{"user": r["user"], "ts": int(r["time_stamp"]), "line": n, "cate_id": r["cate"],
             "brand": _missing(r["brand"]), "btag": r["btag"]}
            for n, r in enumerate(_csv("behavior_log.csv")) if not _log_reason(r)]


def _raw_values(r, ads, profiles):
    ad, profile = ads[r["adgroup_id"]], profiles.get(r["user"], {})
    local = datetime.fromtimestamp(int(r["time_stamp"]), CHINA)
    values = {"user_id": r["user"], "item_id": r["adgroup_id"], "pid": r["pid"],
              "hour": str(local.hour), "day_of_week": str(local.weekday()),
              **{f: _missing(ad[f]) for f in AD_FIELDS},
              **{f: _missing(profile.get(f, "")) for f in PROFILE}}
    price = ad["price"].strip()
    return values, (math.nan if price in ("", "NULL") else float(price))


def _reference(protocol, history, seed=42, sample=50):
    ads = {a["adgroup_id"]: a for a in _csv("ad_feature.csv")}
    profiles = {p["userid"]: p for p in _csv("user_profile.csv")}
    raw = _csv("raw_sample.csv")
    reasons = {}
    for r in raw:
        reason = _reason(r, ads)
        if reason:
            reasons[reason] = reasons.get(reason, 0) + 1
    if protocol == "thesis":  # as the thesis code: pandas sample, stable sort, >= 3 rows
        drawn = (pd.DataFrame(index=range(len(raw))).sample(n=sample, random_state=seed).index
                 if len(raw) > sample else range(len(raw)))
        rows = [raw[i] for i in drawn if not _reason(raw[i], ads)]
        rows.sort(key=lambda r: (int(r["user"]), int(r["time_stamp"])))  # stable
        per_user = {}
        for r in rows:
            per_user[r["user"]] = per_user.get(r["user"], 0) + 1
        rows = [r for r in rows if per_user[r["user"]] >= 3]
        labels = [int(r["clk"]) for r in rows]
        train, rest = train_test_split(list(range(len(rows))), test_size=0.3,
                                       random_state=seed, stratify=labels)
        val, test = train_test_split(rest, test_size=0.5, random_state=seed,
                                     stratify=[labels[i] for i in rest])
        split = {**{i: "train" for i in train}, **{i: "val" for i in val},
                 **{i: "test" for i in test}}
        earlier = lambda i, j: j < i  # noqa: E731 -- previous rows in the sorted order
    else:
        rows = [r for r in raw if not _reason(r, ads)]
        ts = [int(r["time_stamp"]) for r in rows]
        split = {i: ("test" if t >= DAY(13) else "val" if t >= DAY(12) else "train")
                 for i, t in enumerate(ts)}
        earlier = lambda i, j: ts[j] < ts[i]  # noqa: E731 -- strictly earlier in time
    values = [_raw_values(r, ads, profiles) for r in rows]
    train_rows = [i for i in range(len(rows)) if split[i] == "train"]
    log = _log_values() if history == "behavior-log" else []
    train_log = [v for v in log if v["ts"] < DAY(12)]
    known = {f: known_ids([*(values[i][0][f] for i in train_rows),
                           *(v[f] for v in train_log if f in v)]) for f in CATEGORICAL}
    known["btag"] = known_ids(v["btag"] for v in train_log)
    prices = [values[i][1] for i in train_rows if not math.isnan(values[i][1])]
    expected = []
    for i, r in enumerate(rows):
        name = lambda f, v: v if v in known[f] else "OOV"  # noqa: E731
        if history == "behavior-log":  # the user's log events strictly before, file order
            hist = [v for v in log if v["user"] == r["user"] and v["ts"] < int(r["time_stamp"])]
            hist = sorted(hist, key=lambda v: (v["ts"], v["line"]))[-SEQ:]
        else:
            hist = [j for j in range(len(rows)) if rows[j]["user"] == r["user"]
                    and earlier(i, j) and (history == "impressions" or rows[j]["clk"] == "1")]
            if protocol == "time":
                hist.sort(key=lambda j: (int(rows[j]["time_stamp"]), j))
            hist = [values[j][0] for j in hist[-SEQ:]]
        tokens = tuple(tuple(["PAD"] * (SEQ - len(hist)) + [name(f, h[f]) for h in hist])
                       for f, _ in HISTORY[history])
        ids = tuple(sorted((f, name(f, v)) for f, v in values[i][0].items()))
        expected.append((split[i], int(r["time_stamp"]), int(r["clk"]), ids,
                         values[i][1], tokens, len(hist)))
    return expected, reasons, known, (statistics.fmean(prices), statistics.pstdev(prices))


def _actual(out, history):
    vocab = {v: read_vocab(out, v) for v in {*CATEGORICAL.values(), *dict(HISTORY[history])
                                                .values()}}
    raw = lambda v, d: vocab[v][d - 2] if d >= 2 else ("PAD" if d == 0 else "OOV")  # noqa: E731
    rows = []
    for split in ("train", "val", "test"):
        ex = read_split_numpy(out, split)
        for k in range(len(ex["label"])):
            ids = tuple(sorted((f, raw(v, int(ex[f][k]))) for f, v in CATEGORICAL.items()))
            tokens = tuple(tuple(raw(v, int(d)) for d in ex[f"hist_{f}"][k])
                           for f, v in HISTORY[history])
            rows.append((split, int(ex["timestamp"][k]), int(ex["label"][k]), ids,
                         float(ex["price"][k]), tokens, int(ex["hist_len"][k])))
    return rows, vocab


def _run(cli, out, protocol, history, seed=42, *extra, sample=50):
    return cli(taobao_ad, "--raw-sample", FILES / "raw_sample.csv", "--ad-feature",
               FILES / "ad_feature.csv", "--user-profile", FILES / "user_profile.csv",
               "--protocol", protocol, "--history", history, "--seed", seed,
               "--sample-size", sample, "--max-seq-len", SEQ, "--output", out, *extra)


def _key(row):
    return tuple(x if not isinstance(x, float) else (0.0 if math.isnan(x) else x)
                 for x in row)


@pytest.mark.parametrize("protocol,sample,partitions", [
    ("time", 50, 1), ("time", 50, 3), ("thesis", 50, 1), ("thesis", 100, 1)])
@pytest.mark.parametrize("history", ["impressions", "clicks"])
def test_matches_a_plain_python_reference_row_by_row(tmp_path, cli, protocol, history,
                                                     sample, partitions):
    """Sample 50 of the 65 rows draws as pandas does; 100 keeps every row in file order;
    the time protocol streams through 1 or 3 user partitions."""
    code, err = _run(cli, tmp_path / "ds", protocol, history, 42, "--partitions", partitions,
                     sample=sample)
    assert code == 0, err
    meta = json.loads((tmp_path / "ds" / "metadata.json").read_text())
    expected, reasons, known, (mean, std) = _reference(protocol, history, sample=sample)
    actual, vocab = _actual(tmp_path / "ds", history)
    assert meta["counts"]["rows_dropped"] == reasons
    assert len(actual) == len(expected) > 30
    for a, e in zip(sorted(actual, key=_key), sorted(expected, key=_key), strict=True):
        assert a[:4] == e[:4] and a[5:] == e[5:], (a, e)
        assert (math.isnan(a[4]) and math.isnan(e[4])) or a[4] == pytest.approx(e[4])
    for field, v in CATEGORICAL.items():  # vocabularies from the training split only
        assert set(vocab[v]) == known[field], field
    price = next(f for f in meta["schema"]["static"] if f["name"] == "price")
    assert price["mean"] == pytest.approx(mean) and price["std"] == pytest.approx(std)
    assert meta["raw_id_dtypes"]["user"] == "int64" and meta["raw_id_dtypes"]["brand"] == \
        "string"


def test_thesis_protocol_is_deterministic_by_seed(tmp_path, cli):
    for name, seed in (("a", 42), ("b", 42), ("c", 7)):
        assert _run(cli, tmp_path / name, "thesis", "impressions", seed)[0] == 0
    assert shard_bytes(tmp_path / "a") == shard_bytes(tmp_path / "b")
    assert shard_bytes(tmp_path / "a") != shard_bytes(tmp_path / "c")


def test_strict_stops_at_the_first_bad_row_with_its_line(tmp_path, cli):
    code, err = _run(cli, tmp_path / "ds", "time", "impressions", 42, "--strict")
    lines = (FILES / "raw_sample.csv").read_text().splitlines()
    ads = {a["adgroup_id"]: a for a in _csv("ad_feature.csv")}
    header = lines[0].split(",")
    first = next(n for n, line in enumerate(lines[1:], start=2)
                 if _reason(dict(zip(header, line.split(","), strict=True)), ads))
    assert code == 2 and f"raw_sample.csv:{first}: malformed row" in err, err
    assert not (tmp_path / "ds").exists()


def test_strict_line_counts_blank_lines_and_bad_split_flags_are_one_line(tmp_path, cli):
    lines = (FILES / "raw_sample.csv").read_text().splitlines()
    good = [ln for ln in lines[1:] if "x17" not in ln and ",999," not in ln
            and not ln.endswith(",1,1") and not ln.endswith(",0,0")][:5]
    raw = tmp_path / "raw_sample.csv"
    raw.write_text("\n".join([lines[0], good[0], "", good[1], "", "7,123,101,p,1,0"]) + "\n")
    code, err = cli(taobao_ad, "--raw-sample", raw, "--ad-feature", FILES / "ad_feature.csv",
                    "--user-profile", FILES / "user_profile.csv", "--strict", "--output",
                    tmp_path / "ds")
    assert code == 2 and "raw_sample.csv:6: malformed row (outside_window)" in err, err
    for protocol, flags in (("thesis", ["--val-start", "1494518400"]),
                            ("time", ["--val-fraction", "0.1"]),
                            ("time", ["--test-start", "1494400000"])):  # before validation
        code, err = _run(cli, tmp_path / "x", protocol, "impressions", 42, *flags)
        assert code == 2 and len(err.strip().splitlines()) == 1, (flags, err)
        assert not (tmp_path / "x").exists()


UNREADABLE_RAW = {
    "invalid_utf8": b"3,1494454026,105,430548_1002\xa0,0,1",
    "nul_byte": b"\x00" * 12,  # a run of NUL bytes, as a crashed writer leaves behind
    "truncated_last_line": b"1,1494341857,106,430548_10",
}
UNREADABLE_LOG = {
    "invalid_utf8": b"4,1494146766,fav,4520,\xff\xfe",
    "nul_byte": b"4,1494146766,pv\x00,4520,8888",
    "truncated_last_line": b"4,14941",
}


def _run_on(cli, directory, protocol, history, *extra):
    """taobao_ad on ``directory``'s raw_sample.csv (and behavior_log.csv), into ds/."""
    log = (["--behavior-log", directory / "behavior_log.csv"] if history == "behavior-log"
           else [])
    return cli(taobao_ad, "--raw-sample", directory / "raw_sample.csv", "--ad-feature",
               FILES / "ad_feature.csv", "--user-profile", FILES / "user_profile.csv",
               "--protocol", protocol, "--history", history, "--sample-size", 50,
               "--max-seq-len", SEQ, "--output", directory / "ds", *log, *extra)


@pytest.mark.parametrize("protocol,history", [("time", "behavior-log"),
                                              ("thesis", "impressions")])
def test_unreadable_rows_are_dropped_and_counted(tmp_path, cli, protocol, history):
    """Both streamed files get a row that is not UTF-8, one with NUL bytes and a truncated
    last line: the dataset is the one of the files without them."""
    meta = {}
    for name in ("clean", "bad"):
        (tmp_path / name).mkdir()
        for file, rows in (("raw_sample.csv", UNREADABLE_RAW), ("behavior_log.csv",
                                                                 UNREADABLE_LOG)):
            lines = (FILES / file).read_bytes().splitlines()
            body = with_unreadable_rows(lines, rows if name == "bad" else {}, at=(3, 30))[0]
            (tmp_path / name / file).write_bytes(body)
        code, err = _run_on(cli, tmp_path / name, protocol, history)
        assert code == 0 and "Traceback" not in err, err
        meta[name] = json.loads((tmp_path / name / "ds" / "metadata.json").read_text())
    assert all(f"{reason} 1" in err.splitlines()[-1] for reason in UNREADABLE_REASONS), err
    assert dataset_files(tmp_path / "bad" / "ds") == dataset_files(tmp_path / "clean" / "ds")
    assert meta["bad"]["splits"] == meta["clean"]["splits"]
    rest_bad, rest_clean = without_unreadable_rows(meta["bad"]["counts"],
                                                   meta["clean"]["counts"])
    if history == "behavior-log":
        rest_bad, rest_clean = without_unreadable_rows(rest_bad, rest_clean, prefix="log_")
    assert rest_bad == rest_clean


@pytest.mark.parametrize("reason", UNREADABLE_REASONS)
def test_strict_stops_at_an_unreadable_row_in_one_line(tmp_path, cli, reason):
    lines = (FILES / "raw_sample.csv").read_bytes().splitlines()
    ads = {a["adgroup_id"]: a for a in _csv("ad_feature.csv")}
    header = lines[0].decode().split(",")
    good = [line for line in lines[1:]
            if _reason(dict(zip(header, line.decode().split(","), strict=True)), ads) is None]
    body, line_of = with_unreadable_rows([lines[0], *good], {reason: UNREADABLE_RAW[reason]},
                                         at=(3, 8))
    (tmp_path / "raw_sample.csv").write_bytes(body)
    code, err = _run_on(cli, tmp_path, "time", "impressions", "--strict")
    assert code == 2
    assert_one_line_error(err, tmp_path / "raw_sample.csv", line_of[reason], reason)
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("reason,row", [("invalid_utf8", b"105,11,502,9002,7\xff002,10.0"),
                                        ("nul_byte", b"105,11,502,9002,70\x0002,10.0"),
                                        ("truncated_last_line", b"105,11,50")])
def test_an_unreadable_lookup_row_is_one_line_exit_2(tmp_path, cli, reason, row):
    """ad_feature.csv is a lookup table, read whole: a bad row in it is an error."""
    lines = (FILES / "ad_feature.csv").read_bytes().splitlines()
    ads = tmp_path / "ad_feature.csv"
    ads.write_bytes(b"\n".join(lines) + b"\n" + row + (b"" if "truncated" in reason else b"\n"))
    code, err = cli(taobao_ad, "--raw-sample", FILES / "raw_sample.csv", "--ad-feature", ads,
                    "--user-profile", FILES / "user_profile.csv", "--output", tmp_path / "ds")
    assert code == 2
    assert_one_line_error(err, ads, len(lines) + 1, reason)


def test_behavior_log_history_matches_a_plain_python_reference(tmp_path, cli):
    """Each impression's history: its user's last log events strictly before it (category,
    brand, behaviour type); category and brand vocabularies count the training period's
    impressions and log events; bad log rows are counted by reason."""
    code, err = _run(cli, tmp_path / "ds", "time", "behavior-log", 42, "--behavior-log",
                     FILES / "behavior_log.csv", "--partitions", 3)
    assert code == 0, err
    meta = json.loads((tmp_path / "ds" / "metadata.json").read_text())
    expected, reasons, known, _ = _reference("time", "behavior-log")
    actual, vocab = _actual(tmp_path / "ds", "behavior-log")
    assert len(actual) == len(expected) > 30
    for a, e in zip(sorted(actual, key=_key), sorted(expected, key=_key), strict=True):
        assert a[:4] == e[:4] and a[5:] == e[5:], (a, e)
    for field, v in (("cate_id", "cate"), ("brand", "brand"), ("btag", "btag")):
        assert set(vocab[v]) == known[field], field
    # ids stay as the files hold them: categories are all integers, brands have NULL cells
    assert meta["raw_id_dtypes"]["cate"] == "int64"
    assert meta["raw_id_dtypes"]["brand"] == meta["raw_id_dtypes"]["btag"] == "string"
    assert meta["counts"]["log_rows_dropped"] == {"bad_user": 1, "unknown_btag": 1,
                                                  "bad_cate": 1, "after_window": 1}
    assert {t for row in expected for t in row[5][2]} >= {"PAD", "pv"}
    # the file holds events after their user's impressions and one in an impression's second
    raw = [r for r in _csv("raw_sample.csv") if r["time_stamp"].strip().isdigit()]
    gaps = {v["ts"] - int(r["time_stamp"]) for r in raw for v in _log_values()
            if v["user"] == r["user"]}
    assert 0 in gaps and max(gaps) > 0 and min(gaps) < 0
    assert any(0 < row[6] < SEQ for row in expected) and any(row[6] == SEQ for row in expected)
