"""Raw impression rows -> the inputs of an export's ``serving_default`` signature.

Rows are in the layout of ``pipelines.impressions``: ``user_id``, ``item_id``, ``cate_id``,
``timestamp`` (Unix seconds) and the dataset's declared extra columns (the export's
``assets.extra/mdaf_tf.json`` says which), with the user's raw ids. ``label`` is optional:
``1``/``true`` marks a click, ``0``/``false`` or empty a row without one (a candidate to
score).

A row's history is built as the pipeline builds it: the same user's clicked rows strictly
earlier in time, in time order (ties keep file order), the last ``max_seq_len`` of them, each
token holding the clicked row's history fields (``hist_item_id`` from its ``item_id``, ...).
A file may instead give the histories as columns named like the signature's history inputs
(Parquet list columns, or in CSV the ids separated by spaces, oldest first); ``hist_len`` is
then their length. Context fields (``hour``, ``day_of_week``) come from ``timestamp`` in the
dataset's time zone.

A value the export cannot take (an empty id, a non-integer id for an integer vocabulary, a
timestamp or number that is not one) is a ``RowError`` naming the file and line (CSV: the
line in the file, the header being line 1; Parquet: the row, from 1).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pyarrow as pa

from mdaf_tf.data import schema
from mdaf_tf.data.feature_schema import NUMERIC, FeatureSchema

TRUE_LABELS = ("1", "1.0", "true", "True")
FALSE_LABELS = ("0", "0.0", "false", "False", "")
MISSING = "<missing>"  # a missing categorical value in pipelines.impressions
CONTEXT_FIELDS = ("hour", "day_of_week")


class RowError(ValueError):
    """A row an export cannot take, or a file that cannot be read."""


@dataclasses.dataclass(frozen=True)
class RowLayout:
    """What an export needs from a row: its schema, raw id types and the row arguments of
    the pipeline that made its training data."""

    schema: FeatureSchema
    raw_id_dtypes: dict  # vocabulary -> "int64" | "string"
    max_seq_len: int
    timezone: str = "UTC"

    def dtype(self, field) -> str:
        vocab = getattr(field, "vocab", None) or self.schema.sequence_vocab(field)
        return self.raw_id_dtypes.get(vocab, "int64")

    def source_column(self, sequence_field) -> str:
        """The column of an earlier click that fills a history field's tokens."""
        if sequence_field.static is not None:
            return sequence_field.static
        return sequence_field.name.removeprefix("hist_")


def read_table(path) -> tuple[pa.Table, int]:
    """The file's columns as strings (CSV) or as stored (Parquet), and the line number of
    its first data row (2 for CSV under its header, 1 for Parquet's first row)."""
    path = Path(path)
    if not path.is_file():
        raise RowError(f"{path}: no such file")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path), 1
        except (pa.ArrowInvalid, OSError) as e:
            raise RowError(f"{path}: not a readable Parquet file ({e})") from None
    import pyarrow.csv as pacsv

    with path.open("rb") as f:
        first = f.readline()
    try:
        header = first.decode("utf-8").strip().split(",")
    except UnicodeDecodeError:
        raise RowError(f"{path}:1: the header is not UTF-8 text") from None
    types = {name.strip(): pa.string() for name in header}
    try:
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            column_types=types, strings_can_be_null=False, quoted_strings_can_be_null=False))
    except pa.ArrowInvalid as e:
        raise RowError(_csv_error(path, e)) from None
    return table.rename_columns([c.strip() for c in table.column_names]), 2


def _csv_error(path: Path, error: Exception) -> str:
    """One line for a CSV pyarrow cannot read, naming the first line that is not UTF-8."""
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return f"{path}:{number}: the row is not UTF-8 text"
    return f"{path}: not a readable CSV file ({str(error).splitlines()[0]})"


class _Rows:
    """Column access with line-numbered errors."""

    def __init__(self, table: pa.Table, path, first_line: int):
        self.table, self.path, self.first_line = table, path, first_line

    def __len__(self) -> int:
        return self.table.num_rows

    def error(self, row: int, message: str) -> RowError:
        return RowError(f"{self.path}:{row + self.first_line}: {message}")

    def strings(self, column: str, required: bool = True) -> np.ndarray | None:
        if column not in self.table.column_names:
            if required:
                raise RowError(f"{self.path}: no column {column!r} (the export needs it)")
            return None
        values = self.table.column(column).to_pylist()
        return np.array(["" if v is None else str(v).strip() for v in values], dtype=object)

    def ids(self, column: str, dtype: str, missing: str | None = None) -> np.ndarray:
        """Raw ids as the export takes them; an empty value is ``missing`` or an error."""
        text = self.strings(column)
        empty = text == ""
        if empty.any():
            if missing is None:
                raise self.error(int(np.argmax(empty)), f"empty {column}")
            text = np.where(empty, missing, text)
        if dtype == "string":
            return np.array([value.encode() for value in text], dtype=object)
        return self._integers(column, text, "an integer id (the export takes integer ids "
                                            "for it)")

    def _integers(self, column: str, text: np.ndarray, what: str) -> np.ndarray:
        out = np.empty(len(text), np.int64)
        for row, value in enumerate(text):
            try:
                out[row] = int(value)
            except ValueError:
                raise self.error(row, f"{column} {value!r} is not {what}") from None
        return out

    def timestamps(self) -> np.ndarray:
        return self._integers("timestamp", self.strings("timestamp"),
                              "an integer (Unix seconds)")

    def numbers(self, column: str) -> np.ndarray:
        out = np.empty(len(self), np.float32)
        for row, value in enumerate(self.strings(column)):
            if value in ("", "nan", "NaN", "null", "None"):
                out[row] = np.nan
                continue
            try:
                out[row] = float(value)
            except ValueError:
                raise self.error(row, f"{column} {value!r} is not a number") from None
            if not math.isfinite(out[row]):
                raise self.error(row, f"{column} {value!r} is not a finite number")
        return out

    def clicks(self) -> np.ndarray:
        label = self.strings("label", required=False)
        if label is None:
            return np.zeros(len(self), bool)
        bad = ~np.isin(label, TRUE_LABELS + FALSE_LABELS)
        if bad.any():
            row = int(np.argmax(bad))
            raise self.error(row, f"label {label[row]!r} is not 0/1, true/false or empty")
        return np.isin(label, TRUE_LABELS)


def signature_inputs(table: pa.Table, layout: RowLayout, path="rows",
                     first_line: int = 2) -> dict[str, np.ndarray]:
    """``serving_default``'s inputs for every row of ``table``, in its order."""
    rows = _Rows(table, path, first_line)
    timestamps = rows.timestamps()
    inputs = {}
    for field in layout.schema.static:
        if field.kind == NUMERIC:
            inputs[field.name] = rows.numbers(field.name)
        elif field.name in CONTEXT_FIELDS and field.name not in table.column_names:
            inputs[field.name] = _context(timestamps, field.name, layout.timezone)
        else:
            declared = field.name not in (schema.USER_ID, schema.ITEM_ID, schema.CATE_ID)
            inputs[field.name] = rows.ids(field.name, layout.dtype(field),
                                          MISSING if declared else None)
    if all(f.name in table.column_names for f in layout.schema.sequence):
        inputs.update(_given_histories(table, layout, rows))
    else:
        inputs.update(_built_histories(rows, layout, timestamps, inputs))
    return inputs


def _context(timestamps: np.ndarray, field: str, timezone: str) -> np.ndarray:
    import pandas as pd

    local = pd.DatetimeIndex(pd.to_datetime(timestamps, unit="s", utc=True)).tz_convert(
        timezone)
    return np.asarray(local.hour if field == "hour" else local.dayofweek, np.int64)


def _built_histories(rows: _Rows, layout: RowLayout, timestamps: np.ndarray,
                     static: dict) -> dict[str, np.ndarray]:
    """Each row's history from the same user's earlier clicks (see the module docstring)."""
    n, width = len(rows), layout.max_seq_len
    if n == 0:
        empty = {f.name: np.zeros((0, width), object if layout.dtype(f) == "string" else
                                  np.int64) for f in layout.schema.sequence}
        return {**empty, schema.HIST_LEN: np.zeros(0, np.int64)}
    _, user = np.unique(static[schema.USER_ID], return_inverse=True)
    order = np.lexsort((np.arange(n), timestamps, user))
    user_s, time_s = user[order], timestamps[order]
    clicked = rows.clicks()[order]
    new_group = np.r_[True, (user_s[1:] != user_s[:-1]) | (time_s[1:] != time_s[:-1])]
    new_user = np.r_[True, user_s[1:] != user_s[:-1]]
    clicks_before = np.r_[0, np.cumsum(clicked)[:-1]]
    group_start = np.maximum.accumulate(np.where(new_group, np.arange(n), 0))
    user_start = np.maximum.accumulate(np.where(new_user, np.arange(n), 0))
    end = clicks_before[group_start]  # clicks strictly earlier in time
    hist_len = np.minimum(end - clicks_before[user_start], width)
    offset = np.arange(width) - width
    index = end[:, None] + offset[None, :]
    valid = offset[None, :] >= -hist_len[:, None]
    out = {}
    for field in layout.schema.sequence:
        dtype = layout.dtype(field)
        column = layout.source_column(field)
        values = static[column] if column in static else rows.ids(column, dtype, MISSING)
        base = values[order][clicked]
        pad = b"" if dtype == "string" else -1
        history = np.full((n, width), pad, dtype=object if dtype == "string" else np.int64)
        history[valid] = base[index[valid]]
        out[field.name] = np.empty_like(history)
        out[field.name][order] = history
    out[schema.HIST_LEN] = np.empty(n, np.int64)
    out[schema.HIST_LEN][order] = hist_len
    return out


def _given_histories(table: pa.Table, layout: RowLayout, rows: _Rows) -> dict:
    """Histories given as columns: lists (Parquet) or space-separated ids (CSV)."""
    width = layout.max_seq_len
    out, lengths = {}, None
    for field in layout.schema.sequence:
        dtype = layout.dtype(field)
        pad = b"" if dtype == "string" else -1
        values = table.column(field.name).to_pylist()
        history = np.full((len(values), width), pad, dtype=object if dtype == "string"
                          else np.int64)
        length = np.zeros(len(values), np.int64)
        for row, tokens in enumerate(values):
            tokens = (tokens or "").split() if isinstance(tokens, str) else list(tokens or [])
            tokens = tokens[-width:]
            length[row] = len(tokens)
            for k, token in enumerate(tokens):
                history[row, width - len(tokens) + k] = _token(rows, row, field.name, token,
                                                               dtype)
        out[field.name] = history
        if lengths is not None and not np.array_equal(lengths, length):
            row = int(np.argmax(lengths != length))
            raise rows.error(row, f"{field.name} has {length[row]} ids where the other "
                                  f"history columns have {lengths[row]}")
        lengths = length
    out[schema.HIST_LEN] = lengths if lengths is not None else np.zeros(len(rows), np.int64)
    return out


def _token(rows: _Rows, row: int, column: str, token, dtype: str):
    if dtype == "string":
        return str(token).encode()
    try:
        return int(token)
    except (TypeError, ValueError):
        raise rows.error(row, f"{column} holds {token!r}, not an integer id") from None
