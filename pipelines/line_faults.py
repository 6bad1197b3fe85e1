"""Rows that cannot be read as text: not UTF-8, holding a NUL byte, or a last line cut short.

A garbage line in the middle of a real log, or a download cut off inside its last line, must
cost one row, not the run. ``CleanLines`` is the file object pyarrow's CSV reader reads: the
file's bytes without such rows, each counted under its reason. A block of whole lines without
a NUL byte that is ASCII or valid UTF-8 passes unchanged (three C scans and no copy); a block
that is not is halved until the halves are clean or small, and a small one goes line by line,
so a clean file keeps pyarrow's speed and a bad row costs a millisecond or two.

Lines end at ``\\n``, ``\\r\\n`` or ``\\r`` (pyarrow's rows: a quoted value cannot hold a line
break). The last line of a file without a final line ending is truncated when it has fewer
fields than the header (``ncols``); a complete-looking one is a row like any other (a cut inside
its last field leaves a value the field's own check usually rejects).
"""

from __future__ import annotations

import csv
import io
from collections import Counter

import numpy as np
import pyarrow as pa

INVALID_UTF8 = "invalid_utf8"
NUL_BYTE = "nul_byte"
TRUNCATED_LAST_LINE = "truncated_last_line"
READ_BYTES = 32 << 20  # when the reader asks for no size
_LEAF_BYTES = 1 << 12  # a faulty block this small is checked line by line
_MIN_READ_BYTES = 1 << 16
_LINE_ENDS = (b"\n", b"\r")


def line_fault(line: bytes) -> str | None:
    """NUL_BYTE or INVALID_UTF8 for one line's bytes, None when it is text."""
    if b"\0" in line:
        return NUL_BYTE
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return INVALID_UTF8
    return None


def field_count(line: bytes) -> int:
    """Fields of one CSV line that is text (0 for an empty line)."""
    text = line.decode("utf-8").rstrip("\r\n")
    return len(next(csv.reader([text]), [])) if text else 0


def is_truncated(line: bytes, ncols: int) -> bool:
    """An unended line (only the last one can be) with fewer than ``ncols`` fields."""
    return not line.endswith(_LINE_ENDS) and 0 < field_count(line) < ncols


def row_fault(line: bytes, ncols: int) -> str | None:
    """The reason ``CleanLines`` drops this line, or None."""
    fault = line_fault(line)
    if fault is None and is_truncated(line, ncols):
        return TRUNCATED_LAST_LINE
    return fault


def _valid_utf8(data) -> bool:
    """Whether a buffer is valid UTF-8 (Arrow's vectorised check, no copy)."""
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64))
    text = pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        text.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _is_clean(buf: bytes | bytearray, end: int) -> bool:
    """``buf[:end]`` holds no NUL byte and is valid UTF-8 (bytes past ``end`` may be the
    start of the next line: they can only send a clean block down the line-by-line path)."""
    if buf.find(b"\0", 0, end) >= 0:
        return False
    return buf.isascii() or _valid_utf8(memoryview(buf)[:end])


def _last_line_end(buf: bytearray, end: int) -> int:
    """Offset just past the last line ending in ``buf[:end]`` (0: none)."""
    return max(buf.rfind(b"\n", 0, end), buf.rfind(b"\r", 0, end)) + 1


class CleanLines(io.RawIOBase):
    """A CSV file's bytes without its faulty rows (``row_fault``), counted by reason in
    ``counts``. With ``stop_at_first`` the stream ends just before the first one, whose
    reason is ``first_fault``. The ``header`` line is passed on as it is (``check_header``
    checks it first)."""

    def __init__(self, path: str, ncols: int, header: bool, stop_at_first: bool):
        super().__init__()
        self._raw = open(path, "rb")
        self._ncols = ncols
        self._header = header
        self._stop_at_first = stop_at_first
        self.counts: Counter = Counter()
        self.first_fault: str | None = None
        self._carry = b""  # the start of a line not yet ended
        self._pending = memoryview(b"")  # kept bytes not yet read
        self._offset = 0  # file offset of _carry
        self._ended = False

    def readable(self) -> bool:
        return True

    def close(self):
        self._raw.close()
        super().close()

    def read(self, size: int = -1):
        """At most ``size`` bytes (pyarrow copies them into a buffer of that size)."""
        if not len(self._pending):
            self._pending = self._next_kept(size if size and size > 0 else READ_BYTES)
        n = size if size is not None and size >= 0 else len(self._pending)
        out, self._pending = self._pending[:n], self._pending[n:]
        return out

    def _next_kept(self, size: int) -> memoryview:
        """The kept bytes of the next block of about ``size`` bytes (empty at the end)."""
        while not self._ended:
            buf, end, start = self._next_lines(size)
            if start == -1:
                continue  # no line ended yet: read on
            kept = self._without_faults(buf, end, start, last_line=self._ended)
            if len(kept):
                return memoryview(kept)
        return memoryview(b"")

    def _next_lines(self, size: int) -> tuple[bytearray, int, int]:
        """(buffer, end, file offset) of the next whole lines, about ``size`` bytes; at the
        end of the file its last line, ended or not; offset -1 when no line ended yet."""
        carry = self._carry
        buf = bytearray(max(size, len(carry) + _MIN_READ_BYTES))
        buf[:len(carry)] = carry
        got = self._raw.readinto(memoryview(buf)[len(carry):])
        end = len(carry) + got
        if got == 0:
            self._ended = True
            self._carry = b""
            return buf, end, self._offset
        cut = _last_line_end(buf, end)
        if cut == 0:
            self._carry = bytes(buf[:end])
            return buf, 0, -1
        start = self._offset
        self._carry = bytes(buf[cut:end])
        self._offset = start + cut
        return buf, cut, start

    def _without_faults(self, buf: bytearray, end: int, start: int, last_line: bool):
        """The kept bytes of ``buf[:end]``, whole lines at file offset ``start`` or the
        file's ``last_line`` (unended, or empty)."""
        if last_line:
            return b"".join(self._kept_lines(bytes(buf[:end]), start))
        if _is_clean(buf, end):
            return memoryview(buf)[:end]
        return b"".join(self._kept_pieces(bytes(buf[:end]), start))

    def _kept_pieces(self, block: bytes, start: int):
        """The clean parts of ``block`` (whole lines at file offset ``start``): halves until
        clean or small, then line by line."""
        if self.first_fault is not None and self._stop_at_first:
            return
        if _is_clean(block, len(block)):
            yield block
            return
        middle = block.find(b"\n", len(block) // 2) + 1
        if len(block) > _LEAF_BYTES and 0 < middle < len(block):
            yield from self._kept_pieces(block[:middle], start)
            yield from self._kept_pieces(block[middle:], start + middle)
            return
        yield from self._kept_lines(block, start)

    def _kept_lines(self, block: bytes, start: int):
        offset = start
        for line in block.splitlines(keepends=True):
            is_header = self._header and offset == 0
            fault = None if is_header else row_fault(line, self._ncols)
            offset += len(line)
            if fault is None:
                yield line
                continue
            self.counts[fault] += 1
            self.first_fault = self.first_fault or fault
            if self._stop_at_first:
                self._ended = True
                return


def check_header(path: str) -> str | None:
    """A one-line problem of the file's header line (its first), or None."""
    with open(path, "rb") as f:
        fault = line_fault(f.readline())
    if fault == NUL_BYTE:
        return f"{path}:1: the header holds a NUL byte"
    if fault == INVALID_UTF8:
        return f"{path}:1: the header is not UTF-8 text"
    return None
