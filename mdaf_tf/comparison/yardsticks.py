"""The yardsticks of a comparison on synthetic data: the oracle and the logistic-regression
ceiling, on the same test split as the models.

* ``oracle``: the true click probabilities of the test examples, scored by the pipeline
  that drew the clicks from them (``pipelines.synthetic`` records their test AUC, gAUC and
  log loss in ``metadata.json``'s ``oracle.test``); a dataset without those figures has no
  oracle row.
* ``lr_ceiling``: ``mdaf_tf.comparison.linear_ceiling`` with the "both" features (user x
  category and item one-hots and the sequential feature q), fitted on train, its ``C``
  chosen on validation, evaluated on test: what ``studies/linear_ceiling/linear_ceiling.py`` prints.

Both are deterministic (no seed), so each is one row with seeds "-". They are computed once
per dataset and kept in ``OUTPUT/yardsticks.json`` (reused while ``metadata.json``'s sha256,
the ``C`` grid and ``VERSION`` match and none failed). On any other dataset there are no
rows, only a note.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

VERSION = 2  # 2: the oracle's figures read from metadata.json
YARDSTICKS_FILE = "yardsticks.json"
# name -> what it is, for the tables.
DESCRIPTIONS = {
    "oracle": "true click probabilities",
    "lr_ceiling": "logistic regression on the true feature forms",
}
ORACLE_FIGURES = {"test_auc": "auc", "test_gauc": "gauc", "test_log_loss": "log_loss"}


class YardstickError(ValueError):
    """A yardstick cannot be computed for this dataset (the reason in one line)."""


@dataclasses.dataclass
class Yardsticks:
    """The yardstick rows (name -> test figures) and a note for the report (None if fine)."""

    rows: dict[str, dict]
    note: str | None = None
    complete: bool = True  # False when a yardstick failed (a rerun tries it again)


def is_synthetic(meta: dict) -> bool:
    """Whether the dataset records its true click probabilities' test figures."""
    recorded = ((meta.get("oracle") or {}).get("test") or {})
    return set(ORACLE_FIGURES.values()) <= set(recorded)


def oracle_row(meta: dict) -> dict:
    """Test AUC, gAUC (by user) and log loss of the true probabilities."""
    recorded = meta["oracle"]["test"]
    return {row: float(recorded[key]) for row, key in ORACLE_FIGURES.items()}


def compute(data_dir) -> Yardsticks:
    """Both yardsticks of ``data_dir``; no rows (and a note) unless it is synthetic. A
    yardstick that cannot be computed is left out and named in the note."""
    from mdaf_tf.comparison import linear_ceiling
    from mdaf_tf.data import load_metadata

    meta = load_metadata(str(data_dir))
    if not is_synthetic(meta):
        return Yardsticks({}, "No yardstick rows (oracle, lr_ceiling): the dataset is not "
                              "from pipelines.synthetic (or from an older version, without the "
                              "oracle's test gAUC and log loss), so its true click "
                              "probabilities are unknown.")
    splits = linear_ceiling.read_splits(data_dir)
    rows, problems = {}, []
    for name, fn in (("oracle", lambda: oracle_row(meta)),
                     ("lr_ceiling", lambda: linear_ceiling.ceiling(splits, meta, "both"))):
        try:
            rows[name] = fn()
        except (YardstickError, ImportError, KeyError, AttributeError) as e:
            problems.append(f"{name} left out ({type(e).__name__}: {' '.join(str(e).split())})")
    if not problems:
        return Yardsticks(rows)
    return Yardsticks(rows, "Yardsticks: " + "; ".join(problems) + ".", complete=False)


def cache_key(data_dir) -> dict:
    """What a kept ``yardsticks.json`` must match to be reused."""
    from mdaf_tf.comparison.linear_ceiling import C_GRID
    from mdaf_tf.data import metadata_sha256

    return {"version": VERSION, "data_metadata_sha256": metadata_sha256(data_dir),
            "c_grid": list(C_GRID)}


def load_or_compute(data_dir, output) -> Yardsticks:
    """The yardsticks kept in ``output/yardsticks.json`` when they were computed for this
    dataset and none failed (a failed one is tried again), else computed and written there."""
    from mdaf_tf.files import write_json_atomic

    path = Path(output) / YARDSTICKS_FILE
    key = cache_key(data_dir)
    try:
        kept = json.loads(path.read_text())
    except (OSError, ValueError):
        kept = None
    if isinstance(kept, dict) and kept.get("request") == key and kept.get("complete"):
        return Yardsticks(kept.get("rows", {}), kept.get("note"))
    found = compute(data_dir)
    write_json_atomic(path, {"request": key, **dataclasses.asdict(found)})
    return found
