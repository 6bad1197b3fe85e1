"""What a regularised logistic regression learns from a synthetic dataset's own signals.

    python studies/linear_ceiling/linear_ceiling.py DATA_DIR

The synthetic click logit is ``static_strength * (a_u . b_c + quality_i) / sqrt(2) +
sequence_strength * q`` with ``q`` the recency-weighted count of the user's recent clicks in the
target's category (``pipelines/synthetic.py``). A logistic regression on one-hot user x category
and item features can represent the static part exactly, and one on ``q`` (recomputed here from
the history columns) the sequential part, so their AUCs are what this much training data
allows each signal to reach: a yardstick for the neural models between chance and the oracle.
The regularisation strength is picked on the validation split and the chosen model's test
AUC is reported beside it, as the models' are. Not a test, not a speed benchmark: a data
diagnostic. The fit lives in ``mdaf_tf.comparison.linear_ceiling``, which ``mdaf_tf.compare``
also uses for its ``lr_ceiling`` row (the "both" features here).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mdaf_tf.comparison.linear_ceiling import FEATURE_SETS, ceiling, features  # noqa: E402

__all__ = ["features", "main"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="a dataset directory written by pipelines.synthetic")
    args = parser.parse_args(argv)

    from mdaf_tf.comparison.linear_ceiling import read_splits
    from mdaf_tf.data import load_metadata

    meta = load_metadata(args.data)
    splits = read_splits(args.data)
    result = {"oracle": meta.get("oracle")}
    for name in FEATURE_SETS:
        fit = ceiling(splits, meta, name)
        val_auc, test_auc, c = fit["val_auc"], fit["test_auc"], fit["C"]
        result[name] = {"val_auc": val_auc, "test_auc": test_auc, "C": c}
        print(f"logistic regression, {name} features: test AUC {test_auc:.4f} (C={c}, chosen "
              f"on validation: {val_auc:.4f})")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
