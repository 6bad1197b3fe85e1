"""Context fields of an example: the target event's hour of day and day of week.

The thesis code crosses them with the ids (its five static fields). Both are categorical
with raw integer ids (hour 0-23, day of week 0 = Monday .. 6 = Sunday) in the event's local
time, and get their own vocabularies from the training split like any other field.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mdaf_tf.data import feature_schema
from pipelines.errors import PipelineError

HOUR = "hour"
DAY_OF_WEEK = "day_of_week"
FIELDS = (HOUR, DAY_OF_WEEK)
CHINA = "Asia/Shanghai"  # Taobao's logs: UTC+8 all year


def parse_context(text: str) -> tuple[str, ...]:
    """``--context``: a comma-separated subset of FIELDS, or ``none``."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if names in ((), ("none",)):
        return ()
    unknown = [n for n in names if n not in FIELDS]
    if unknown:
        raise PipelineError(f"--context: unknown field(s) {','.join(unknown)} "
                            f"(choose from {','.join(FIELDS)}, or none)")
    return tuple(n for n in FIELDS if n in names)


def check_timezone(name: str) -> str:
    try:
        pd.Timestamp(0, unit="s", tz="UTC").tz_convert(name)
    except Exception:  # pytz/zoneinfo raise several types for an unknown zone
        raise PipelineError(f"--timezone {name!r} is not a time zone name "
                            "(e.g. UTC, Europe/Berlin, Asia/Shanghai)") from None
    return name


def context_values(ts: np.ndarray, fields: tuple[str, ...], timezone: str) -> dict:
    """{field: int64 raw ids} of Unix-second timestamps ``ts`` in ``timezone``."""
    if not fields:
        return {}
    local = pd.DatetimeIndex(pd.to_datetime(np.asarray(ts, np.int64), unit="s", utc=True)
                             ).tz_convert(timezone)
    values = {HOUR: local.hour, DAY_OF_WEEK: local.dayofweek}
    return {f: np.asarray(values[f], dtype=np.int64) for f in fields}


def static_fields(fields: tuple[str, ...]) -> tuple[feature_schema.StaticField, ...]:
    return tuple(feature_schema.StaticField(f) for f in fields)
