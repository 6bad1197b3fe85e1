"""Property-based bad input for the Taobao and impression pipelines (hypothesis).

Each example is a CSV mixing valid rows with malformed ones of known kinds; the file may use
CRLF endings and may lack its final newline. The pipelines must not raise, must use every
valid row and must count every malformed row under the reason its kind implies. Empty
lines are not rows (the CSV convention): they are neither used nor counted. A row that is
not valid UTF-8 or holds a NUL byte is dropped whole (pipelines.line_faults); without a final
newline, a last row with fewer fields than the header is a truncated last line.
"""

import json
import os
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pipeline_helpers import WINDOW_START

from pipelines import impressions, taobao

BEHAVIORS = ("pv", "cart", "fav", "buy")
SETTINGS = settings(max_examples=15, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
small_id = st.integers(min_value=0, max_value=10**6).map(str)
negative_id = st.integers(min_value=-10**6, max_value=-1).map(str)
huge_id = st.integers(min_value=10**19, max_value=10**25).map(str)
non_numeric = st.sampled_from(["abc", "1.5", "", "1e3", "0x10", "１２", " 7 7"])
garbage = st.sampled_from([b"\xff\xfe", b"\xc3\x28", b"ab\x80cd", b"\xed\xa0\x80"])
with_nul = st.sampled_from([b"\x00", b"12\x0034", b"\x00\x00pv"])

# Taobao: (kind, expected reason or "used"), row as bytes (no line ending).
TAOBAO_WINDOW = (WINDOW_START + 3600, WINDOW_START + 8 * 86400)


def taobao_row(draw):
    kind = draw(st.sampled_from(["valid", "negative", "columns", "huge", "non_numeric",
                                 "garbage", "nul", "behavior", "timestamp", "outside",
                                 "empty"]))
    user, item, cate = draw(small_id), draw(small_id), draw(small_id)
    beh = draw(st.sampled_from(BEHAVIORS))
    ts = str(draw(st.integers(*TAOBAO_WINDOW)))
    fields = [user.encode(), item.encode(), cate.encode(), beh.encode(), ts.encode()]
    expected = "used"
    if kind == "negative":  # a signed integer id is an id: kept
        fields[draw(st.integers(0, 2))] = draw(negative_id).encode()
    elif kind == "columns":
        n = draw(st.sampled_from([1, 3, 4, 6, 8]))
        fields = (fields * 2)[:n]
        expected = "wrong_column_count"
    elif kind == "huge":
        fields[0] = draw(huge_id).encode()
        expected = "bad_user_id"
    elif kind == "non_numeric":
        fields[1] = draw(non_numeric).encode()
        expected = "bad_item_id"
    elif kind == "garbage":
        fields[draw(st.integers(0, 4))] = draw(garbage)
        expected = "invalid_utf8"
    elif kind == "nul":
        fields[draw(st.integers(0, 4))] = draw(with_nul)
        expected = "nul_byte"
    elif kind == "behavior":
        fields[3] = draw(st.sampled_from([b"PV", b"click", b""]))
        expected = "unknown_behavior"
    elif kind == "timestamp":
        fields[4] = draw(st.sampled_from([b"", b"noon", b"1.5e9", b"99999999999999999999"]))
        expected = "bad_timestamp"
    elif kind == "outside":
        fields[4] = str(WINDOW_START - 10).encode()
        expected = "outside_window"
    elif kind == "empty":
        return b"", None
    return b",".join(fields), expected


def base_taobao_rows():
    """Valid rows that make a split possible: two users, events across the window."""
    rows = []
    for user in (1, 2):
        for k in range(6):
            ts = WINDOW_START + 3600 + k * 86400
            rows.append((f"{user},{10 + k},{k % 3},pv,{ts}".encode(), "used"))
    return rows


@st.composite
def taobao_files(draw):
    rows = base_taobao_rows() + draw(st.lists(st.builds(lambda: None).flatmap(
        lambda _: st.composite(lambda d: taobao_row(d))()), min_size=1, max_size=25))
    rows = draw(st.permutations(rows))
    final_newline = draw(st.booleans())
    return truncated_last_row(rows, final_newline, 5), draw(st.booleans()), final_newline


def truncated_last_row(rows, final_newline, ncols):
    """Without a final line ending, a last row of fewer than ``ncols`` fields is cut off."""
    if final_newline or not rows[-1][0]:
        return rows
    row, expected = rows[-1]
    if expected == "wrong_column_count" and row.count(b",") + 1 < ncols:
        return [*rows[:-1], (row, "truncated_last_line")]
    return rows


def write_csv(path, lines, crlf, final_newline, header=None):
    end = b"\r\n" if crlf else b"\n"
    body = end.join(([header] if header else []) + lines)
    with open(path, "wb") as f:
        f.write(body + (end if final_newline else b""))


def expected_counts(rows):
    used = sum(1 for _, e in rows if e == "used")
    dropped = {}
    for _, e in rows:
        if e not in (None, "used"):
            dropped[e] = dropped.get(e, 0) + 1
    read = sum(1 for _, e in rows if e is not None)
    return used, dropped, read


@SETTINGS
@given(taobao_files())
def test_taobao_counts_every_row(case):
    rows, crlf, final_newline = case
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "UserBehavior.csv")
        write_csv(path, [r for r, _ in rows], crlf, final_newline)
        out = os.path.join(tmp, "out")
        taobao.build(taobao.parse_args(["--input", path, "--output", out, "--neg-ratio", "0",
                                        "--max-seq-len", "4", "--gzip-library", "zlib"]))
        with open(os.path.join(out, "metadata.json")) as f:
            counts = json.load(f)["counts"]
    used, dropped, read = expected_counts(rows)
    assert counts["rows_used"] == used
    assert counts["rows_read"] == read
    assert {k: v for k, v in counts["rows_dropped"].items() if v} == dropped


# Impressions: header user_id,item_id,cate_id,timestamp,label; ids may be any strings.
def impression_row(draw):
    kind = draw(st.sampled_from(["valid", "string_ids", "negative", "huge", "columns",
                                 "missing_id", "garbage_id", "timestamp", "label", "garbage_label",
                                 "nul", "empty"]))
    ids = [draw(small_id).encode() for _ in range(3)]
    ts = str(draw(st.integers(1_600_000_000, 1_600_100_000))).encode()
    label = draw(st.sampled_from([b"0", b"1", b"true", b"False", b"1.0"]))
    fields, expected = ids + [ts, label], "used"
    if kind == "string_ids":
        fields[0] = draw(st.text("abcXYZ-_é", min_size=1, max_size=6)).encode()
    elif kind == "negative":
        fields[1] = draw(negative_id).encode()
    elif kind == "huge":  # too big for int64: kept as a string id
        fields[2] = draw(huge_id).encode()
    elif kind == "columns":
        fields = (fields * 2)[:draw(st.sampled_from([2, 4, 6, 9]))]
        expected = "wrong_column_count"
    elif kind == "missing_id":
        fields[1] = b"  "
        expected = "missing_item_id"
    elif kind == "garbage_id":
        fields[0] = draw(garbage)
        expected = "invalid_utf8"
    elif kind == "timestamp":
        fields[3] = draw(st.sampled_from([b"", b"yesterday", b"1.6e9"]))
        expected = "bad_timestamp"
    elif kind == "label":
        fields[4] = draw(st.sampled_from([b"2", b"yes", b"-1"]))
        expected = "bad_label"
    elif kind == "garbage_label":
        fields[4] = draw(garbage)
        expected = "invalid_utf8"
    elif kind == "nul":  # a string id may be anything but a NUL byte
        fields[draw(st.integers(0, 2))] = draw(with_nul)
        expected = "nul_byte"
    elif kind == "empty":
        return b"", None
    return b",".join(fields), expected


@st.composite
def impression_files(draw):
    rows = [(f"{u},{i},{i % 2},{1_600_000_000 + k},{k % 2}".encode(), "used")
            for k, (u, i) in enumerate([(1, 5), (1, 6), (2, 5), (2, 7)])]
    rows += draw(st.lists(st.composite(lambda d: impression_row(d))(), min_size=1,
                          max_size=25))
    rows = draw(st.permutations(rows))
    final_newline = draw(st.booleans())
    return truncated_last_row(rows, final_newline, 5), draw(st.booleans()), final_newline


@SETTINGS
@given(impression_files())
def test_impressions_count_every_row(case):
    rows, crlf, final_newline = case
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "log.csv")
        write_csv(path, [r for r, _ in rows], crlf, final_newline,
                  header=b"user_id,item_id,cate_id,timestamp,label")
        ev, _names, counts = impressions.load_events(path, strict=False)
    used, dropped, read = expected_counts(rows)
    assert counts["rows_used"] == used == len(ev["label"])
    assert counts["rows_read"] == read
    assert {k: v for k, v in counts["rows_dropped"].items() if v} == dropped
