"""The leak report: how well rules that know only the target item score each evaluation split.

A model can only be judged on data whose labels are not given away by something other than
user behaviour. With sampled negatives, a sampler whose negatives differ from the positives
in item popularity or novelty hands the label to any model that sees the item id: on real
Taobao rows, negatives drawn from training-period popularity let the rule "target item
unknown" score AUC 0.91. So every pipeline reports, for each evaluation split, the AUC of

* ``item_unknown``: 1 when the target item is out of the training vocabulary (OOV);
* ``cate_unknown``: 1 when the target category is OOV;
* ``item_train_count``: the target item's training-period count (0 for OOV items).

Near 0.5 means the rule carries no label signal. A rule far below 0.5 is as informative as
one far above, so a rule is flagged when ``max(auc, 1 - auc)`` exceeds ``THRESHOLD``. With
sampled negatives a flagged rule is a sampler artefact: the pipeline warns, and stops under
``--strict``. With real labels (impression logs) item popularity may genuinely predict
clicks: a flagged rule is then a baseline the models should beat, reported in a one-line
note and never an error. The
AUCs are computed exactly (ties count one half) from per-score label counts, so the report
streams in bounded memory whatever the split's size.
"""

from __future__ import annotations

import sys

import numpy as np

from mdaf_tf.data import schema
from pipelines.errors import PipelineError
from pipelines.vocab import CountAccumulator

THRESHOLD = 0.55
RULES = ("item_unknown", "cate_unknown", "item_train_count")


def auc_from_counts(scores: np.ndarray, positives: np.ndarray, negatives: np.ndarray) -> float:
    """Exact ROC AUC (ties one half) from distinct ``scores`` and the positive and negative
    counts at each; NaN when a class is absent."""
    from mdaf_tf.metrics import exact_auc

    scores = np.asarray(scores, np.float64)
    return exact_auc(np.r_[np.ones(len(scores)), np.zeros(len(scores))], np.r_[scores, scores],
                     sample_weight=np.r_[np.asarray(positives, np.float64),
                                         np.asarray(negatives, np.float64)])


class LeakReport:
    """Accumulates the rules' scores per evaluation split from the written columns."""

    def __init__(self, vocabs: dict, sampled_negatives: bool):
        self.sampled_negatives = sampled_negatives
        item = vocabs[schema.ITEM_VOCAB]
        self.item_counts = np.zeros(item.size, dtype=np.int64)  # PAD and OOV count 0
        self.item_counts[schema.FIRST_ID:] = item.counts
        self._acc = {(s, r): CountAccumulator(2) for s in schema.EVAL_SPLITS for r in RULES}

    def add(self, split: str, cols: dict):
        if split not in schema.EVAL_SPLITS or len(cols[schema.LABEL]) == 0:
            return
        label = np.asarray(cols[schema.LABEL], np.int64)
        item = np.asarray(cols[schema.ITEM_ID], np.int64)
        scores = {
            "item_unknown": (item == schema.OOV_ID).astype(np.int64),
            "cate_unknown": (np.asarray(cols[schema.CATE_ID]) == schema.OOV_ID).astype(np.int64),
            "item_train_count": self.item_counts[item],
        }
        for rule, score in scores.items():
            self._acc[(split, rule)].add(score, label)

    def result(self) -> dict:
        """``{split: {rule: auc}}`` plus ``threshold`` and the ``flagged`` rules."""
        report: dict = {"threshold": THRESHOLD, "flagged": [],
                        "negatives": "sampled" if self.sampled_negatives else "real"}
        for split in schema.EVAL_SPLITS:
            report[split] = {}
            for rule in RULES:
                auc = self._auc(split, rule)
                report[split][rule] = auc
                if not np.isnan(auc) and max(auc, 1.0 - auc) > THRESHOLD:
                    report["flagged"].append(f"{split}:{rule}")
        return report

    def _auc(self, split: str, rule: str) -> float:
        score, label, count = self._acc[(split, rule)].result_tuple()
        values, inverse = np.unique(score, return_inverse=True)
        pos = np.bincount(inverse, weights=count * (label == 1), minlength=len(values))
        neg = np.bincount(inverse, weights=count * (label != 1), minlength=len(values))
        return auc_from_counts(values, pos, neg)


def check(report: dict, strict: bool, source: str, quiet: bool = False) -> None:
    """One stderr line when a rule is flagged: with sampled negatives a warning (with
    ``strict`` an error), with real labels a note (not when ``quiet``)."""
    if not report["flagged"] or (quiet and report["negatives"] == "real"):
        return
    worst = ", ".join(f"{key} AUC {report[key.split(':')[0]][key.split(':')[1]]:.3f}"
                      for key in report["flagged"])
    if report["negatives"] == "real":
        print(f"note: {source}: target-item rules alone score {worst} (real labels: item "
              "popularity is a baseline the models should beat, not a sampling leak)",
              file=sys.stderr)
        return
    message = (f"{source}: the label is predictable from the target item alone ({worst}; "
               f"threshold {THRESHOLD}): evaluation figures on this data measure the "
               "sampling, not the model")
    if strict:
        raise PipelineError(message + " (--strict)")
    print(f"warning: {message}", file=sys.stderr)
