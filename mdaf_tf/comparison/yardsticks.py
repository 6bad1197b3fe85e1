"""The yardsticks of a comparison on synthetic data: the oracle and the logistic-regression
ceiling, on the same test split as the models.

* ``oracle``: the true click probabilities of the test examples. ``pipelines.synthetic``
  records its arguments (seed included) in ``metadata.json``, and its simulation is a pure
  function of them, so the probabilities are recomputed with ``pipelines.synthetic.simulate``
  and matched to the test examples by (``user_key``, ``timestamp``), unique per impression.
  The match is checked: every test example found, the same labels, and the same AUC as the
  pipeline recorded in ``oracle.test.auc``; otherwise there is no oracle row, and the note
  says why.
* ``lr_ceiling``: ``mdaf_tf.comparison.linear_ceiling`` with the "both" features (user x
  category and item one-hots and the sequential feature q), fitted on train, its ``C``
  chosen on validation, evaluated on test: what ``benchmarks/linear_ceiling.py`` prints.

Both are deterministic (no seed), so each is one row with seeds "-". They are computed once
per dataset and kept in ``OUTPUT/yardsticks.json`` (reused while ``metadata.json``'s sha256,
the ``C`` grid and ``VERSION`` match and none failed). On any other dataset there are no
rows, only a note.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

VERSION = 1
YARDSTICKS_FILE = "yardsticks.json"
# name -> what it is, for the tables.
DESCRIPTIONS = {
    "oracle": "true click probabilities",
    "lr_ceiling": "logistic regression on the true feature forms",
}
ORACLE_AUC_TOLERANCE = 1e-9


class YardstickError(ValueError):
    """A yardstick cannot be computed for this dataset (the reason in one line)."""


@dataclasses.dataclass
class Yardsticks:
    """The yardstick rows (name -> test figures) and a note for the report (None if fine)."""

    rows: dict[str, dict]
    note: str | None = None
    complete: bool = True  # False when a yardstick failed (a rerun tries it again)


def is_synthetic(meta: dict) -> bool:
    """Whether ``pipelines.synthetic`` wrote the dataset (its oracle and source file)."""
    from pipelines import synthetic

    return bool(meta.get("oracle")) and (meta.get("source") or {}).get("path") == \
        synthetic.CSV_NAME


def _row_index(log_users, log_ts, users, ts) -> np.ndarray:
    """Index in the simulated log of each (user, timestamp); YardstickError when one is
    missing or the log's pairs are not unique."""
    lo, hi = int(log_ts.min()), int(log_ts.max())
    span = hi - lo + 1
    key = log_users.astype(np.int64) * span + (log_ts - lo)
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    if np.any(sorted_key[1:] == sorted_key[:-1]):
        raise YardstickError("the simulated log repeats a (user, timestamp) pair")
    wanted = users.astype(np.int64) * span + (ts - lo)
    pos = np.clip(np.searchsorted(sorted_key, wanted), 0, len(key) - 1)
    found = (sorted_key[pos] == wanted) & (ts >= lo) & (ts <= hi)
    if not found.all():
        raise YardstickError(f"{int((~found).sum())} test examples are not in the log "
                             "re-simulated from metadata.json's arguments")
    return order[pos]


def oracle_probabilities(meta: dict, test: dict) -> np.ndarray:
    """The true click probability of every test example, re-simulated from the metadata's
    arguments and checked against the labels and the recorded oracle AUC."""
    from mdaf_tf.training.metrics import exact_auc
    from pipelines import synthetic

    log = synthetic.simulate(argparse.Namespace(**meta["args"]))
    rows = _row_index(log["user_id"], log["timestamp"], test["user_key"], test["timestamp"])
    if not np.array_equal(log["label"][rows], test["label"]):
        raise YardstickError("the test labels differ from the log re-simulated from "
                             "metadata.json's arguments (built by another pipeline version?)")
    p = log["p"][rows]
    recorded = meta["oracle"].get("test", {}).get("auc")
    auc = exact_auc(test["label"], p)
    if recorded is not None and not abs(auc - recorded) <= ORACLE_AUC_TOLERANCE:
        raise YardstickError(f"re-simulated oracle test AUC {auc:.6f} differs from the "
                             f"recorded {recorded:.6f}")
    return p


def oracle_row(meta: dict, test: dict) -> dict:
    """Test AUC, gAUC (by ``user_key``) and log loss of the true probabilities."""
    from mdaf_tf.training.metrics import exact_auc, group_auc, log_loss

    p = oracle_probabilities(meta, test)
    return {"test_auc": exact_auc(test["label"], p),
            "test_gauc": group_auc(test["label"], p, test["user_key"]),
            "test_log_loss": log_loss(test["label"], p)}


def compute(data_dir) -> Yardsticks:
    """Both yardsticks of ``data_dir``; no rows (and a note) unless it is synthetic. A
    yardstick that cannot be computed is left out and named in the note."""
    from mdaf_tf.comparison import linear_ceiling
    from mdaf_tf.data import load_metadata

    meta = load_metadata(str(data_dir))
    if not is_synthetic(meta):
        return Yardsticks({}, "No yardstick rows (oracle, lr_ceiling): the dataset is not "
                              "from pipelines.synthetic, so its true click probabilities are "
                              "unknown.")
    splits = linear_ceiling.read_splits(data_dir)
    rows, problems = {}, []
    for name, fn in (("oracle", lambda: oracle_row(meta, splits["test"])),
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
