"""The extra columns of an impression log: ``--categorical``, ``--numeric``,
``--history-fields``, ``--context`` and ``--timezone`` of ``pipelines.impressions``.

* A **categorical** column holds string or integer ids. A missing value (empty or null)
  is the id ``MISSING`` and gets its own vocabulary row; a column with missing values or
  any non-integer id keeps its ids as strings (the export takes strings for it).
* A **numeric** column holds numbers; empty, null or ``nan`` is missing (NaN: the models
  learn a vector for "missing" instead of imputing). The training split's mean and
  standard deviation go into the declaration and the models standardise inside their graph,
  so serving takes the raw value. Text that is not a number stops the pipeline.
* ``--history-fields``: the columns of the user's earlier clicks whose values form each
  history token (sequence field ``hist_COL``); each must be ``item_id``, ``cate_id`` or a
  ``--categorical`` column, whose vocabulary and embedding the history shares.
* ``--history-only``: categorical columns that join each history token but are not static
  fields (the target has no value of them, e.g. the type of an earlier interaction); each
  gets its own vocabulary, and the target token a learned vector in its place.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mdaf_tf.data import feature_schema
from pipelines import context
from pipelines.csv_input import id_keys
from pipelines.errors import PipelineError

MISSING = "<missing>"
REQUIRED = ("user_id", "item_id", "cate_id", "timestamp", "label")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def add_declaration_args(p):
    p.add_argument("--categorical", default="", metavar="COL,...",
                   help="extra categorical columns (string or integer ids)")
    p.add_argument("--numeric", default="", metavar="COL,...",
                   help="extra numeric columns (standardised with training statistics)")
    p.add_argument("--history-fields", default="item_id,cate_id", metavar="COL,...",
                   help="columns of earlier clicks forming the history tokens "
                        "(default item_id,cate_id)")
    p.add_argument("--history-only", default="", metavar="COL,...",
                   help="columns whose earlier clicks' values join each history token "
                        "but that the target has no value of (e.g. an interaction type)")
    p.add_argument("--context", default="hour,day_of_week",
                   help="context fields of the impression's time: hour,day_of_week "
                        "(default) or none")
    p.add_argument("--timezone", default="UTC",
                   help="time zone of the context fields (default UTC)")


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in (text or "").split(",") if n.strip())


@dataclasses.dataclass(frozen=True)
class Declaration:
    categorical: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()
    history: tuple[str, ...] = ("item_id", "cate_id")
    history_only: tuple[str, ...] = ()
    context: tuple[str, ...] = ()
    timezone: str = "UTC"

    @classmethod
    def from_args(cls, args) -> Declaration:
        """From parsed arguments; pipelines without these flags (synthetic) get none."""
        return cls(categorical=_names(getattr(args, "categorical", "")),
                   numeric=_names(getattr(args, "numeric", "")),
                   history=_names(getattr(args, "history_fields", "item_id,cate_id")),
                   history_only=_names(getattr(args, "history_only", "")),
                   context=context.parse_context(getattr(args, "context", "none")),
                   timezone=context.check_timezone(getattr(args, "timezone", "UTC")))

    @property
    def columns(self) -> tuple[str, ...]:
        return self.categorical + self.numeric + self.history_only

    def check(self, header: list[str], path: str) -> None:
        """One-line PipelineError naming the column and file for a bad declaration."""
        for flag, cols in (("--categorical", self.categorical), ("--numeric", self.numeric),
                           ("--history-only", self.history_only)):
            for col in cols:
                _check_column(flag, col, header, path, self)
        categorical = ("item_id", "cate_id") + self.categorical
        for col in self.history:
            if col not in categorical:
                raise PipelineError(
                    f"{path}: --history-fields column {col!r} has no matching categorical "
                    "static field (item_id, cate_id or a --categorical column)")
        if len(set(self.history)) != len(self.history) or not self.history:
            raise PipelineError(f"{path}: --history-fields must name distinct columns")

    def schema(self, stats: dict | None = None) -> feature_schema.FeatureSchema:
        """The declared features; ``stats`` {numeric column: (mean, std)} from training."""
        stats = stats or {}
        static = (*feature_schema.DEFAULT.static,
                  *(feature_schema.StaticField(c) for c in self.categorical),
                  *context.static_fields(self.context),
                  *(feature_schema.StaticField(c, kind=feature_schema.NUMERIC,
                                               mean=stats.get(c, (0.0, 1.0))[0],
                                               std=stats.get(c, (0.0, 1.0))[1])
                    for c in self.numeric))
        sequence = (*(feature_schema.SequenceField(f"hist_{c}", c) for c in self.history),
                    *(feature_schema.SequenceField(f"hist_{c}", vocabulary=c)
                      for c in self.history_only))
        return feature_schema.FeatureSchema(static=static, sequence=sequence)


def _check_column(flag: str, col: str, header: list[str], path: str, decl: Declaration):
    if col not in header:
        raise PipelineError(f"{path}: {flag} column {col!r} is not in the file "
                            f"(its columns: {','.join(header)})")
    if not _NAME.match(col):
        raise PipelineError(f"{path}: {flag} column {col!r}: field names need letters, "
                            "digits and _ only (rename the column)")
    if col in REQUIRED or col in decl.context or decl.columns.count(col) > 1:
        raise PipelineError(f"{path}: {flag} column {col!r} is a required column, a "
                            "context field (see --context) or declared twice")
    if col in feature_schema.RESERVED or col.startswith("hist_"):
        raise PipelineError(f"{path}: {flag} column {col!r}: the name is reserved "
                            f"({', '.join(feature_schema.RESERVED)}, hist_*); rename it")
    if col in feature_schema.DEFAULT.vocabularies:  # its vocabulary would replace theirs
        raise PipelineError(f"{path}: {flag} column {col!r} has the name of the user, item or "
                            "category vocabulary; rename the column")


def categorical_keys(arr: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray | None]:
    """int64 keys and optional names of a categorical column: all-integer columns without
    missing values keep integer ids; otherwise every id is a string (missing -> MISSING)
    and keys are codes into the sorted distinct strings."""
    text = pc.utf8_trim_whitespace(pc.cast(arr, pa.string()))
    return id_keys(pc.if_else(pc.equal(pc.fill_null(text, ""), ""), pa.scalar(MISSING), text))


def numeric_values(arr: pa.ChunkedArray, column: str, path: str, locate) -> np.ndarray:
    """float32 values, NaN where missing; text that is not a finite number is an error
    naming the file, its line (``locate(column, bad_text)``) and the column."""
    if pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type):
        values = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)  # null -> NaN
    else:
        text = pc.utf8_trim_whitespace(pc.cast(arr, pa.string()))
        text = pc.if_else(pc.equal(pc.fill_null(text, ""), ""), pa.scalar("nan"), text)
        try:
            values = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values = None
        if values is None or np.isinf(values).any():
            bad = next(t for t in text.to_pylist() if not _is_number(t))
            raise PipelineError(f"{locate(column, bad)}: column {column!r} holds {bad!r}, "
                                "not a number (--numeric)")
    if np.isinf(values).any():
        raise PipelineError(f"{path}: column {column!r} holds an infinite value (--numeric)")
    return values.astype(np.float32)


def _is_number(text: str) -> bool:
    try:
        return not math.isinf(float(text))
    except ValueError:
        return False


def csv_line_of(path: str, header: list[str]):
    """``locate`` for a CSV file: 'path:line' of the first row whose ``column`` is ``text``."""
    def locate(column: str, text: str) -> str:
        pos = header.index(column)
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            for lineno, row in enumerate(csv.reader(f), start=1):
                if lineno > 1 and len(row) == len(header) and row[pos].strip() == text:
                    return f"{path}:{lineno}"
        return path
    return locate


def numeric_stats(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of the non-missing values (std 1 when they are constant
    or absent, so that standardising never divides by zero)."""
    present = values[~np.isnan(values)].astype(np.float64)
    if present.size == 0:
        return 0.0, 1.0
    mean, std = float(present.mean()), float(present.std())
    return mean, (std if std > 0 else 1.0)
