"""The logistic-regression ceiling of a synthetic dataset: one implementation for
``studies/linear_ceiling/linear_ceiling.py`` and for the ``lr_ceiling`` yardstick of
``mdaf_tf.compare``.

The synthetic click logit is ``static_strength * (a_u . b_c + quality_i) / sqrt(2) +
sequence_strength * q`` with ``q`` the recency-weighted count of the user's recent clicks in the
target's category (``pipelines/synthetic.py``). A logistic regression on one-hot user x category
and item features can represent the static part exactly, and one on ``q`` (recomputed here from
the history columns) the sequential part, so their AUCs are what this much training data
allows each signal to reach. The L2 strength ``C`` is chosen from ``C_GRID`` on validation AUC
(ties: the larger ``C``), and the chosen model is evaluated once on test, as the models are.

Uses scikit-learn (``LogisticRegression``, lbfgs) and scipy's sparse matrices, both declared in
``setup.cfg``; they are imported when a fit is asked for, not with this module.
"""

from __future__ import annotations

import numpy as np

C_GRID = (0.03, 0.1, 0.3, 1.0)
MAX_ITER = 2000
# Feature set name -> which parts of the logit it can represent ("item" and "item_sequence"
# leave out the user x category cells, to show how much of the ceiling they hold).
FEATURE_SETS = {
    "static": {"static": True, "sequence": False},
    "sequence": {"static": False, "sequence": True},
    "both": {"static": True, "sequence": True},
    "item": {"static": True, "sequence": False, "cross": False},
    "item_sequence": {"static": True, "sequence": True, "cross": False},
}


def features(split: dict, n_users: int, n_items: int, n_cates: int, *, static: bool,
             sequence: bool, recent: int, decay: float, cross: bool = True):
    """Sparse design matrix: user x category one-hot (``static`` and ``cross``), item one-hot
    (``static``) and ``q`` over the ``recent`` latest history categories with weight
    ``decay**m`` (``sequence``)."""
    import scipy.sparse as sp

    n = len(split["label"])
    rows = np.arange(n)
    blocks = []
    if static and cross:
        cell = split["user_id"] * n_cates + split["cate_id"]
        blocks.append(sp.csr_matrix((np.ones(n), (rows, cell)), shape=(n, n_users * n_cates)))
    if static:
        blocks.append(sp.csr_matrix((np.ones(n), (rows, split["item_id"])), shape=(n, n_items)))
    if sequence:
        # The history holds earlier clicks, most recent last; the pipeline pads on the left.
        latest_first = split["hist_cate_id"][:, ::-1][:, :recent]
        weights = decay ** np.arange(latest_first.shape[1])
        q = ((latest_first == split["cate_id"][:, None]) * weights).sum(axis=1)
        blocks.append(sp.csr_matrix(q[:, None]))
    return sp.hstack(blocks).tocsr()


def feature_params(meta: dict) -> dict:
    """Vocabulary sizes and the sequential part's look-back from a dataset's metadata."""
    synthetic_args = meta.get("args", {})
    sizes = meta["vocab_sizes"]
    return {"n_users": int(sizes["user"]), "n_items": int(sizes["item"]),
            "n_cates": int(sizes["cate"]),
            "recent": int(synthetic_args.get("recent_clicks", 10)),
            "decay": float(synthetic_args.get("decay", 0.8))}


def read_splits(data_dir) -> dict[str, dict]:
    """The train, val and test splits as numpy columns (small datasets only)."""
    from mdaf_tf.data import read_split_numpy

    return {split: read_split_numpy(str(data_dir), split) for split in ("train", "val", "test")}


def fit_selected(x_train, y_train, x_val, y_val, c_grid=C_GRID):
    """The fit with the best validation AUC over ``c_grid``: (model, C, validation AUC)."""
    from sklearn.linear_model import LogisticRegression

    from mdaf_tf.metrics import exact_auc

    best = None
    for c in c_grid:
        model = LogisticRegression(C=c, max_iter=MAX_ITER).fit(x_train, y_train)
        val_auc = exact_auc(y_val, model.decision_function(x_val))
        if best is None or (val_auc, c) > (best[2], best[1]):
            best = (model, c, val_auc)
    return best


def ceiling(splits: dict, meta: dict, feature_set: str = "both", c_grid=C_GRID) -> dict:
    """Fit on train, choose ``C`` on validation, evaluate on test: ``{"val_auc",
    "test_auc", "test_gauc", "test_log_loss", "C"}`` (gAUC grouped by ``user_key``)."""
    from mdaf_tf.metrics import exact_auc, group_auc, log_loss

    if feature_set not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {feature_set!r}; one of {', '.join(FEATURE_SETS)}")
    params = {**feature_params(meta), **FEATURE_SETS[feature_set]}
    x = {name: features(split, **params) for name, split in splits.items()}
    model, c, val_auc = fit_selected(x["train"], splits["train"]["label"], x["val"],
                                     splits["val"]["label"], c_grid)
    test = splits["test"]
    score = model.decision_function(x["test"])
    probability = model.predict_proba(x["test"])[:, 1]
    return {"val_auc": float(val_auc), "test_auc": exact_auc(test["label"], score),
            "test_gauc": group_auc(test["label"], score, test["user_key"]),
            "test_log_loss": log_loss(test["label"], probability), "C": c}
