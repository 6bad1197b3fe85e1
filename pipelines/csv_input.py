"""Streaming CSV input with malformed rows skipped and counted by reason.

pyarrow's CSV reader parses in C++ in large blocks; every column is read as a string and
validated with vectorised Arrow compute, so one bad row never stops a chunk. Rows that are not
text (not UTF-8, a NUL byte) and a truncated last line never reach the parser
(``pipelines.line_faults``); rows with the wrong number of columns are caught by the parser's
invalid-row handler. With ``strict`` the first problem raises a PipelineError naming the file,
line and field; the line is located by a plain re-scan of the file (that path only runs once,
on error).
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from pipelines import progress
from pipelines.errors import PipelineError
from pipelines.line_faults import (
    INVALID_UTF8,
    NUL_BYTE,
    TRUNCATED_LAST_LINE,
    CleanLines,
    check_header,
    field_count,
    row_fault,
)

WRONG_COLUMN_COUNT = "wrong_column_count"
# Reasons of rows that never become part of a batch (``BadRows.unparsed``).
UNPARSED_REASONS = (WRONG_COLUMN_COUNT, INVALID_UTF8, NUL_BYTE, TRUNCATED_LAST_LINE)
_INT_RE = r"^[+-]?[0-9]{1,18}$"
_INT_PY = re.compile(_INT_RE)


def check_input_file(path: str) -> int:
    """Size of the input file; a one-line error when it is missing, a directory or empty."""
    if not os.path.exists(path):
        raise PipelineError(f"input file not found: {path}")
    if os.path.isdir(path):
        raise PipelineError(f"input is a directory, not a file: {path}")
    size = os.path.getsize(path)
    if size == 0:
        raise PipelineError(f"input file is empty: {path}")
    return size


class BadRows:
    """Counts of skipped rows by reason; in strict mode the first one is an error."""

    def __init__(self, path: str, strict: bool, row_checks):
        self.path = path
        self.strict = strict
        self.row_checks = row_checks  # [(column index, reason, predicate(str) -> bool)]
        self.counts: Counter = Counter()
        self.header = False  # set by stream_csv
        self.ncols = 0
        self.locate = True  # False when there are no text lines to re-scan (Parquet)

    def add(self, reason: str, n: int = 1):
        if n <= 0:
            return
        self.counts[reason] += int(n)
        if self.strict:
            self.raise_first()

    def unparsed(self) -> int:
        """Rows dropped before parsing: read, but in no batch."""
        return sum(self.counts.get(reason, 0) for reason in UNPARSED_REASONS)

    def raise_first(self):
        line, reason, detail = locate_first_bad_line(self.path, self.row_checks, self.header,
                                                     self.ncols)
        raise PipelineError(f"{self.path}:{line}: malformed row ({reason}{detail})")


def locate_first_bad_line(path, row_checks, header: bool, ncols: int):
    """(line number, reason, detail) of the first row failing the checks (1-based lines, as
    pyarrow splits them: a quoted value holds no line break)."""
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, start=1):
            if header and lineno == 1:
                continue
            problem = _line_problem(line, row_checks, ncols)
            if problem is not None:
                return (lineno, *problem)
    return "?", "unknown", ""


def _line_problem(line: bytes, row_checks, ncols: int) -> tuple[str, str] | None:
    """(reason, detail) of one raw line, or None when it is a good row or empty."""
    fault = row_fault(line, ncols)
    if fault == TRUNCATED_LAST_LINE:
        return fault, f": {field_count(line)} columns, expected {ncols}, and no line ending"
    if fault is not None:
        return fault, _fault_detail(line, fault)
    row = next(csv.reader([line.decode("utf-8").rstrip("\r\n")]), [])
    if not row:
        return None
    if len(row) != ncols:
        return WRONG_COLUMN_COUNT, f": {len(row)} columns, expected {ncols}"
    for col, reason, ok in row_checks:
        if not ok(row[col]):
            return reason, f": {row[col]!r}"
    return None


def _fault_detail(line: bytes, fault: str) -> str:
    """Where in the line the NUL byte or the first byte that is not UTF-8 is."""
    if fault == NUL_BYTE:
        return f": NUL byte at byte {line.index(0) + 1} of the line"
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as e:
        return f": byte 0x{line[e.start]:02x} at byte {e.start + 1} of the line is not UTF-8"
    return ""


def is_int(text: str) -> bool:
    return bool(_INT_PY.match(text))


def parse_int(arr: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """int64 values (0 where invalid) and a validity mask for a string column."""
    # Arrow's cast also reads hexadecimal ("0x10"); only plain decimals are ids here.
    has_hex = _may_hold_x(arr)
    try:
        if has_hex:
            raise pa.ArrowInvalid("hexadecimal")
        values = pc.cast(arr, pa.int64())
        return values.to_numpy(), np.ones(len(arr), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        ok = pc.match_substring_regex(arr, _INT_RE)
        ok = pc.fill_null(ok, False)
        cleaned = pc.if_else(ok, arr, pa.scalar("0"))
        return pc.cast(cleaned, pa.int64()).to_numpy(), ok.to_numpy(zero_copy_only=False)


def _may_hold_x(arr: pa.ChunkedArray | pa.Array) -> bool:
    """Whether any string of ``arr`` may hold an x or X: a scan of the raw character
    buffers (a byte outside the slice can only send the column down the exact path)."""
    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    for chunk in chunks:
        data = chunk.buffers()[2] if chunk.type == pa.string() else None
        if data is None:
            if pc.any(pc.match_substring(chunk, "x", ignore_case=True)).as_py():
                return True
            continue
        text = np.frombuffer(data, dtype=np.uint8)
        if np.count_nonzero((text | 0x20) == ord("x")):
            return True
    return False


def id_keys(arr: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
    """int64 keys and optional names of an id column (text): integers stay integers; if any
    id is not an integer, every id is a string and keys are codes into the sorted distinct
    strings (the names)."""
    values, ok = parse_int(arr)
    if ok.all():
        return values, None
    uniq = pc.unique(arr)
    uniq = uniq.take(pc.sort_indices(uniq))
    codes = pc.index_in(arr, value_set=uniq).to_numpy(zero_copy_only=False)
    return codes.astype(np.int64), np.asarray(uniq.to_pylist(), dtype=object)


def stream_csv(path: str, column_names: list[str], header: bool, bad: BadRows,
               block_size: int = 32 << 20):
    """Yield tables of string columns; rows with another column count, rows that are not
    text and a truncated last line go to ``bad``."""
    bad.header = header
    bad.ncols = len(column_names)
    problem = check_header(path) if header else None
    if problem:
        raise PipelineError(problem)
    lines = CleanLines(path, len(column_names), header, stop_at_first=bad.strict)
    try:
        yield from _batches(lines, path, column_names, header, bad, block_size)
    finally:
        lines.close()
    for reason, n in sorted(lines.counts.items()):
        bad.add(reason, n)


def _batches(lines: CleanLines, path: str, column_names: list[str], header: bool,
             bad: BadRows, block_size: int):
    wrong = [0]

    def on_invalid(row):
        wrong[0] += 1
        return "skip"

    read_options = pacsv.ReadOptions(
        column_names=None if header else column_names, block_size=block_size,
        use_threads=True)
    types = {c: pa.string() for c in column_names}
    try:
        reader = pacsv.open_csv(
            lines, read_options=read_options,
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(column_types=types,
                                                 include_columns=column_names,
                                                 check_utf8=False))
    except pa.ArrowInvalid as e:
        raise PipelineError(f"{path}: cannot read CSV: {str(e).splitlines()[0]}") from None
    progress.phase(f"reading {os.path.basename(path)}", "rows")
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except pa.ArrowInvalid as e:
            raise PipelineError(f"{path}: cannot read CSV: {str(e).splitlines()[0]}") from None
        if wrong[0]:
            bad.add(WRONG_COLUMN_COUNT, wrong[0])
            wrong[0] = 0
        progress.add(batch.num_rows)
        yield batch
    if wrong[0]:
        bad.add(WRONG_COLUMN_COUNT, wrong[0])
