"""Prints what README quotes from the two searches: each search's selected trial (validation,
then test) and, over the trials of the search with the penalty, the Spearman rank correlation
of embedding_l2 with validation AUC and with the train-validation gap.

    python studies/tune_embedding_l2/summarise.py > studies/tune_embedding_l2/results/summary.txt
"""

import csv
import json
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def ranks(values):
    return np.argsort(np.argsort(values)).astype(float)  # no ties among these floats


def spearman(x, y):
    return float(np.corrcoef(ranks(x), ranks(y))[0, 1])


def main() -> None:
    for search in ("with_l2", "without_l2"):
        chosen = json.loads((RESULTS / search / "selected_test.json").read_text())
        print(f"{search}: trial {chosen['trial']} selected, validation AUC "
              f"{chosen['val_auc']:.4f}, test AUC {chosen['auc']:.4f}")
        with open(RESULTS / search / "trials.csv") as f:
            gaps = [float(r["train_val_gap"]) for r in csv.DictReader(f)]
        print(f"  train-validation gap of the selected trial: {gaps[0]:+.4f}")

    with open(RESULTS / "with_l2" / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    penalty = [float(r["embedding_l2"]) for r in rows]
    print(f"with_l2, {len(rows)} trials: Spearman(embedding_l2, val AUC) "
          f"{spearman(penalty, [float(r['val_auc']) for r in rows]):+.2f}, "
          f"Spearman(embedding_l2, train-val gap) "
          f"{spearman(penalty, [float(r['train_val_gap']) for r in rows]):+.2f}")


if __name__ == "__main__":
    main()
