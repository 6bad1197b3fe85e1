"""What a regularised logistic regression learns from a synthetic dataset's own signals.

    python benchmarks/linear_ceiling.py DATA_DIR

The synthetic click logit is ``static_strength * (a_u . b_c + quality_i) / sqrt(2) +
sequence_strength * q`` with ``q`` the recency-weighted count of the user's recent clicks in the
target's category (``pipelines/synthetic.py``). A logistic regression on one-hot user x category
and item features can represent the static part exactly, and one on ``q`` (recomputed here from
the history columns) the sequential part, so their AUCs are what this much training data
allows each signal to reach: a yardstick for the neural models between chance and the oracle.
The regularisation strength is picked on the validation split and the chosen model's test
AUC is reported beside it, as the models' are. Not a test, not a speed benchmark: a data
diagnostic.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def features(split: dict, n_users: int, n_items: int, n_cates: int, *, static: bool,
             sequence: bool, recent: int, decay: float):
    import scipy.sparse as sp

    n = len(split["label"])
    rows = np.arange(n)
    blocks = []
    if static:
        cross = split["user_id"] * n_cates + split["cate_id"]
        blocks.append(sp.csr_matrix((np.ones(n), (rows, cross)), shape=(n, n_users * n_cates)))
        blocks.append(sp.csr_matrix((np.ones(n), (rows, split["item_id"])), shape=(n, n_items)))
    if sequence:
        # The history holds earlier clicks, most recent last; the pipeline pads on the left.
        latest_first = split["hist_cate_id"][:, ::-1][:, :recent]
        weights = decay ** np.arange(latest_first.shape[1])
        q = ((latest_first == split["cate_id"][:, None]) * weights).sum(axis=1)
        blocks.append(sp.csr_matrix(q[:, None]))
    return sp.hstack(blocks).tocsr()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="a dataset directory written by pipelines.synthetic")
    args = parser.parse_args(argv)

    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from mdaf_tf.data import load_metadata, read_split_numpy

    meta = load_metadata(args.data)
    synthetic_args = meta.get("args", {})
    recent = int(synthetic_args.get("recent_clicks", 10))
    decay = float(synthetic_args.get("decay", 0.8))
    train, val, test = (read_split_numpy(args.data, s) for s in ("train", "val", "test"))
    sizes = meta["vocab_sizes"]
    dims = (int(sizes["user"]), int(sizes["item"]), int(sizes["cate"]))
    result = {"oracle": meta.get("oracle")}
    for name, kw in (("static", dict(static=True, sequence=False)),
                     ("sequence", dict(static=False, sequence=True)),
                     ("both", dict(static=True, sequence=True))):
        x_train, x_val, x_test = (features(split, *dims, recent=recent, decay=decay, **kw)
                                  for split in (train, val, test))
        fits = [(LogisticRegression(C=c, max_iter=2000).fit(x_train, train["label"]), c)
                for c in (0.03, 0.1, 0.3, 1.0)]
        val_auc, c, model = max((roc_auc_score(val["label"], m.decision_function(x_val)), c, m)
                                for m, c in fits)
        test_auc = roc_auc_score(test["label"], model.decision_function(x_test))
        result[name] = {"val_auc": val_auc, "test_auc": test_auc, "C": c}
        print(f"logistic regression, {name} features: test AUC {test_auc:.4f} (C={c}, chosen "
              f"on validation: {val_auc:.4f})")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
