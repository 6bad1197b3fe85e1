"""Two one-line, untrained ranking rules: the floor a CTR model must clear on real rows.

Both score an example from its own history columns only (no training, no parameters fitted
to any split), vectorised over the arrays of ``mdaf_tf.data.read_split_numpy``:

``category_recency``
    ``sum_k decay**age_k * [hist_cate_id_k == cate_id]`` over the valid history positions,
    age 0 being the most recent (the last position: histories are left-padded, most recent
    last). How much, and how lately, the user has looked at the target's category.
``item_history_count``
    the number of valid history positions equal to the target item. Whether the user has
    seen this very item before (re-engagement).

A position is valid when it is among the last ``hist_len`` ones. ``PAD_ID`` (0) and
``OOV_ID`` (1) never match, in either rule: two different out-of-vocabulary items (or
categories) share the id 1, so counting them as equal would reward the coincidence that
both are rare, which is a label leak when negatives are drawn differently from positives.

``DEFAULT_DECAY`` = 0.9 per event is fixed a priori, not tuned on any split (and never on
test): it halves a behaviour's weight after about 6.6 newer ones, so the rule looks at
roughly the last session's worth of behaviour (Taobao users log tens of behaviours a day)
while still counting the whole history of up to ``max_seq_len`` (50) events.
"""

from __future__ import annotations

import numpy as np

from mdaf_tf.data import schema

DEFAULT_DECAY = 0.9


def _valid_matches(hist: np.ndarray, hist_len: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Boolean ``(n, L)``: valid history positions whose id equals a known target id."""
    hist = np.asarray(hist)
    if hist.ndim != 2:
        raise ValueError(f"history must be (examples, max_seq_len), got shape {hist.shape}")
    n, length = hist.shape
    hist_len = np.clip(np.asarray(hist_len).reshape(-1), 0, length)
    target = np.asarray(target).reshape(-1)
    if not len(hist_len) == len(target) == n:
        raise ValueError(f"history ({n} rows), hist_len ({len(hist_len)}) and target "
                         f"({len(target)}) differ in length")
    valid = np.arange(length)[None, :] >= (length - hist_len)[:, None]
    known = hist >= schema.FIRST_ID  # PAD and OOV never match
    return valid & known & (hist == target[:, None])


def category_recency_score(hist_cate_id, hist_len, cate_id,
                           decay: float = DEFAULT_DECAY) -> np.ndarray:
    """Recency-weighted count of the target's category in the history (float64 ``(n,)``)."""
    matches = _valid_matches(hist_cate_id, hist_len, cate_id)
    length = matches.shape[1]
    weights = float(decay) ** np.arange(length - 1, -1, -1, dtype=np.float64)  # last: age 0
    return matches @ weights


def item_history_count(hist_item_id, hist_len, item_id) -> np.ndarray:
    """Number of valid history positions equal to the target item (int64 ``(n,)``)."""
    return _valid_matches(hist_item_id, hist_len, item_id).sum(axis=1, dtype=np.int64)


HEURISTICS = {
    "category_recency": lambda split: category_recency_score(
        split[schema.HIST_CATE_ID], split[schema.HIST_LEN], split[schema.CATE_ID]),
    "item_history_count": lambda split: item_history_count(
        split[schema.HIST_ITEM_ID], split[schema.HIST_LEN], split[schema.ITEM_ID]),
}
DESCRIPTIONS = {
    "category_recency": f"recency-weighted count of the target's category in the history "
                        f"(decay {DEFAULT_DECAY} per event)",
    "item_history_count": "the target item's count in the history",
}


def evaluate_heuristics(split_arrays: dict) -> dict[str, dict]:
    """``{name: {"auc", "gauc", "examples"}}`` of every rule in ``HEURISTICS`` on one split
    (exact AUC, and gAUC grouped by ``user_key``; NaN where undefined)."""
    from mdaf_tf.metrics import exact_auc, group_auc

    labels = np.asarray(split_arrays[schema.LABEL]).reshape(-1)
    groups = split_arrays[schema.USER_KEY]
    result = {}
    for name, rule in HEURISTICS.items():
        scores = rule(split_arrays)
        result[name] = {
            "auc": exact_auc(labels, scores),
            "gauc": group_auc(labels, scores, groups),
            "examples": int(len(labels)),
        }
    return result
