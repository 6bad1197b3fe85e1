"""Plain helpers for the pipeline tests (imported by module name; tests/ has no packages)."""

import csv
import os

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data",
                      "taobao_user_behavior")
WINDOW_START = 1511539200  # 2017-11-25 00:00 China time


def write_rows(path, rows, header=None):
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        if header:
            w.writerow(header)
        w.writerows(rows)
    return str(path)


def split_name(ts, boundaries):
    """train / val / test of a timestamp, from metadata.json's ``split_boundaries``."""
    if ts >= boundaries["test"]:
        return "test"
    return "val" if ts >= boundaries["val"] else "train"


def known_ids(values, min_count=2):
    """The ids a training-split vocabulary keeps: seen at least ``min_count`` times."""
    counts = {}
    for v in values:
        counts[str(v)] = counts.get(str(v), 0) + 1
    return {v for v, c in counts.items() if c >= min_count}


def read_vocab(data_dir, name):
    with open(os.path.join(data_dir, "vocab", f"{name}.txt")) as f:
        return [line.rstrip("\n") for line in f]


def shard_bytes(data_dir):
    return {n: open(os.path.join(data_dir, n), "rb").read()
            for n in sorted(os.listdir(data_dir)) if n.endswith(".tfrecord.gz")}


UNREADABLE_REASONS = ("invalid_utf8", "nul_byte", "truncated_last_line")


def with_unreadable_rows(lines, bad, at):
    """The bytes of a file of ``lines`` (bytes without line endings, the header first if
    any) with the rows of ``bad`` ({reason: row bytes}) put in: the invalid_utf8 row before
    ``lines[at[0]]``, the nul_byte row before ``lines[at[1]]`` and the truncated_last_line
    row last, without a line ending; and {reason: its 1-based line number}."""
    before = {at[0]: "invalid_utf8", at[1]: "nul_byte"}
    out, where = [], {}
    for i, line in enumerate(lines):
        reason = before.get(i)
        if reason in bad:
            where[reason] = len(out) + 1
            out.append(bad[reason])
        out.append(line)
    body = b"\n".join(out) + b"\n"
    if "truncated_last_line" in bad:
        where["truncated_last_line"] = len(out) + 1
        body += bad["truncated_last_line"]
    return body, where


def dataset_files(data_dir):
    """{name: bytes} of the shards and vocabulary files of a dataset directory."""
    files = shard_bytes(data_dir)
    vocab = os.path.join(data_dir, "vocab")
    files.update({f"vocab/{n}": open(os.path.join(vocab, n), "rb").read()
                  for n in sorted(os.listdir(vocab))})
    return files


def without_unreadable_rows(bad_counts, clean_counts, prefix="", reasons=UNREADABLE_REASONS):
    """Checks that the ``counts`` of a run on a file with one row of each of ``reasons`` put
    in read and dropped those rows more than the run's on the file without them; returns
    both counts less ``{prefix}rows_read`` and ``{prefix}rows_dropped``."""
    bad, clean = dict(bad_counts), dict(clean_counts)
    read, dropped = f"{prefix}rows_read", f"{prefix}rows_dropped"
    assert bad.pop(read) == clean.pop(read) + len(reasons)
    assert bad.pop(dropped) == {**clean.pop(dropped), **dict.fromkeys(reasons, 1)}
    return bad, clean


def assert_one_line_error(err, path, line, reason):
    """``err`` is exactly one line, the error naming the file, line and reason."""
    assert "Traceback" not in err and "Exception" not in err, err
    assert err.count("\n") == 1, err
    assert err.startswith(f"error: {path}:{line}: malformed row ({reason}"), err
