import numpy as np
import pytest

from pipelines import line_faults
from pipelines.line_faults import CleanLines

BAD = {"invalid_utf8": [b"7,\xe9t\xe9,1", b"\xff\xfe", b"1,\xed\xa0\x80,2,3"],
       "nul_byte": [b"1,2\x00,3,4", b"\x00" * 40, b"\xff\x00"]}


def _file(rng, n_lines, n_bad, end=b"\n"):
    """(lines with line endings, {index of a bad line: its reason}) of a random file."""
    lines = [b"%d,%d,caf\xc3\xa9,%d" % tuple(rng.integers(0, 10**9, 3)) + end
             for _ in range(n_lines)]
    bad = {}
    for i in sorted(rng.choice(n_lines, n_bad, replace=False)):
        reason = ("invalid_utf8", "nul_byte")[int(rng.integers(0, 2))]
        lines[i] = BAD[reason][int(rng.integers(0, 3))] + end
        bad[int(i)] = reason
    return lines, bad


def _read_all(path, size, **kwargs):
    stream = CleanLines(str(path), 4, header=False, stop_at_first=False, **kwargs)
    parts = []
    while chunk := stream.read(size):
        assert len(chunk) <= size  # pyarrow copies it into a buffer of this size
        parts.append(bytes(chunk))
    stream.close()
    return b"".join(parts), stream


@pytest.mark.parametrize("size", [100, 5000, 1 << 20])
@pytest.mark.parametrize("end", [b"\n", b"\r\n"])
def test_clean_lines_drops_exactly_the_bad_lines_whatever_the_read_size(tmp_path, size, end):
    rng = np.random.default_rng(size)
    lines, bad = _file(rng, 6000, 25, end)  # ~150 kB: faulty blocks are halved
    path = tmp_path / "f.csv"
    path.write_bytes(b"".join(lines))
    kept, stream = _read_all(path, size)
    assert kept == b"".join(line for i, line in enumerate(lines) if i not in bad)
    assert dict(stream.counts) == {r: list(bad.values()).count(r) for r in set(bad.values())}


def test_a_clean_block_passes_without_a_copy_and_a_long_line_is_read_whole(tmp_path):
    path = tmp_path / "f.csv"
    data = b"".join(b"%d,2,3,4\n" % i for i in range(10_000))
    path.write_bytes(data)
    stream = CleanLines(str(path), 4, header=False, stop_at_first=False)
    first, second = stream.read(1000), stream.read(1000)
    assert first.obj is second.obj  # two views of one block as read from the file
    assert bytes(first) + bytes(second) == data[:2000]
    long_line = b"1,2,3," + b"9" * 300_000 + b"\n"
    path.write_bytes(b"1,2,3,4\n" + long_line + b"5,6,7,8\n")
    assert _read_all(path, 1000)[0] == b"1,2,3,4\n" + long_line + b"5,6,7,8\n"


@pytest.mark.parametrize("last,reason", [(b"1,2,3", "truncated_last_line"),
                                         (b"1,2,3,", None),  # a complete row: kept
                                         (b"1,2,3,4,5", None),  # the parser's to count
                                         (b"1,\xff,3", "invalid_utf8")])
def test_only_a_short_unended_last_line_is_truncated(tmp_path, last, reason):
    path = tmp_path / "f.csv"
    path.write_bytes(b"1,2,3,4\n5,6,7,8\n" + last)
    kept, stream = _read_all(path, 1 << 20)
    assert kept == b"1,2,3,4\n5,6,7,8\n" + (last if reason is None else b"")
    assert dict(stream.counts) == ({reason: 1} if reason else {})


def test_stop_at_first_ends_the_stream_before_the_first_bad_line(tmp_path):
    rng = np.random.default_rng(1)
    lines, bad = _file(rng, 6000, 5)
    path = tmp_path / "f.csv"
    path.write_bytes(b"".join(lines))
    stream = CleanLines(str(path), 4, header=False, stop_at_first=True)
    kept = b"".join(bytes(c) for c in iter(lambda: stream.read(4096), b""))
    first = min(bad)
    assert kept == b"".join(lines[:first]) and stream.first_fault == bad[first]
    assert sum(stream.counts.values()) == 1


def test_the_header_line_is_passed_on_and_checked_apart(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(b"a,b,\xff\n1,2,3\n")
    assert line_faults.check_header(str(path)) == f"{path}:1: the header is not UTF-8 text"
    stream = CleanLines(str(path), 3, header=True, stop_at_first=False)
    assert bytes(stream.read(100)) == b"a,b,\xff\n1,2,3\n"
    path.write_bytes(b"a,b,c")  # a header alone, without a line ending, is no truncated row
    stream = CleanLines(str(path), 3, header=True, stop_at_first=False)
    assert bytes(stream.read(100)) == b"a,b,c" and not stream.counts
