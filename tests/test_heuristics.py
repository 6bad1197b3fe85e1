"""The two reference heuristics against a plain-Python loop and a hand-computed case."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mdaf_tf import heuristics
from mdaf_tf.data import schema
from mdaf_tf.metrics import exact_auc, group_auc


def loop_reference(hist, hist_len, target, decay):
    """Per example: (recency-weighted matches, plain match count), by explicit loops."""
    weighted, counts = [], []
    for row, n_valid, t in zip(hist.tolist(), hist_len.tolist(), target.tolist(), strict=True):
        length = len(row)
        n_valid = max(0, min(n_valid, length))
        w, c = 0.0, 0
        for age in range(n_valid):  # age 0 = the last position
            value = row[length - 1 - age]
            if value in (schema.PAD_ID, schema.OOV_ID) or value != t:
                continue
            w += decay**age
            c += 1
        weighted.append(w)
        counts.append(c)
    return np.array(weighted), np.array(counts)


def random_split(n, length, vocab, seed):
    """Left-padded histories (lengths 0..L, some full), ids drawn from {PAD, OOV, 2..vocab},
    small vocabularies so targets match often."""
    rng = np.random.default_rng(seed)
    hist_len = rng.integers(0, length + 1, n)
    hist_len[:5] = 0
    hist_len[5:10] = length
    valid = np.arange(length)[None, :] >= (length - hist_len[:, None])

    def ids(shape):
        return rng.integers(schema.PAD_ID, vocab, shape)  # includes 0 and 1 inside histories

    # PAD left of the valid part; inside it PAD/OOV appear too (OOV as real ids do)
    hist_item = np.where(valid, ids((n, length)), schema.PAD_ID)
    hist_cate = np.where(valid, ids((n, length)), schema.PAD_ID)
    # junk left of the valid part must be ignored whatever it holds
    hist_item[~valid & (rng.random((n, length)) < 0.3)] = 3
    return {
        schema.LABEL: rng.integers(0, 2, n),
        schema.ITEM_ID: ids(n),
        schema.CATE_ID: ids(n),
        schema.HIST_ITEM_ID: hist_item,
        schema.HIST_CATE_ID: hist_cate,
        schema.HIST_LEN: hist_len,
        schema.USER_KEY: rng.integers(0, 20, n),
    }


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("decay", [0.9, 0.5, 1.0])
def test_matches_the_loop_reference_on_random_arrays(seed, decay):
    split = random_split(400, 8, vocab=5, seed=seed)
    want_w, _ = loop_reference(split[schema.HIST_CATE_ID], split[schema.HIST_LEN],
                               split[schema.CATE_ID], decay)
    _, want_c = loop_reference(split[schema.HIST_ITEM_ID], split[schema.HIST_LEN],
                               split[schema.ITEM_ID], decay)
    got_w = heuristics.category_recency_score(split[schema.HIST_CATE_ID],
                                              split[schema.HIST_LEN], split[schema.CATE_ID],
                                              decay=decay)
    got_c = heuristics.item_history_count(split[schema.HIST_ITEM_ID], split[schema.HIST_LEN],
                                          split[schema.ITEM_ID])
    np.testing.assert_allclose(got_w, want_w, rtol=1e-12)
    np.testing.assert_array_equal(got_c, want_c)
    assert (got_c > 0).any() and (got_c == 0).any()  # the case is not degenerate
    assert got_c.dtype == np.int64 and got_w.dtype == np.float64


def test_hand_computed_case():
    # L = 4, most recent last; hist_len marks the valid suffix
    hist_cate = np.array([
        [0, 5, 7, 5],  # 3 valid: 5 at age 0 (1) and age 2 (0.25) -> 1.25
        [5, 5, 5, 5],  # hist_len 2: only ages 0, 1 count -> 1 + 0.5
        [0, 0, 0, 0],  # empty history -> 0
        [1, 1, 1, 1],  # target OOV and history OOV: never a match -> 0
        [0, 0, 0, 0],  # target PAD, history PAD (hist_len 4, nonsense): never a match -> 0
    ])
    hist_len = np.array([3, 2, 0, 4, 4])
    cate = np.array([5, 5, 5, 1, 0])
    np.testing.assert_allclose(
        heuristics.category_recency_score(hist_cate, hist_len, cate, decay=0.5),
        [1.25, 1.5, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(
        heuristics.item_history_count(hist_cate, hist_len, cate), [2, 2, 0, 0, 0])
    # default decay 0.9: 1 + 0.81
    assert heuristics.category_recency_score(hist_cate[:1], hist_len[:1], cate[:1])[0] == \
        pytest.approx(1.81)


def test_hist_len_beyond_the_window_is_clipped():
    hist = np.array([[2, 2, 2]])
    assert heuristics.item_history_count(hist, np.array([9]), np.array([2]))[0] == 3
    assert heuristics.item_history_count(hist, np.array([-1]), np.array([2]))[0] == 0


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in length"):
        heuristics.item_history_count(np.zeros((3, 4)), np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match="max_seq_len"):
        heuristics.item_history_count(np.zeros(4), np.zeros(4), np.zeros(4))


def test_evaluate_heuristics_uses_exact_auc_and_user_key_gauc():
    split = random_split(300, 6, vocab=4, seed=3)
    result = heuristics.evaluate_heuristics(split)
    assert set(result) == set(heuristics.HEURISTICS) == set(heuristics.DESCRIPTIONS)
    for name, rule in heuristics.HEURISTICS.items():
        scores = rule(split)
        assert result[name]["examples"] == 300
        assert result[name]["auc"] == exact_auc(split[schema.LABEL], scores)
        assert result[name]["gauc"] == group_auc(split[schema.LABEL], scores,
                                                 split[schema.USER_KEY])
        assert 0.0 <= result[name]["auc"] <= 1.0 and not math.isnan(result[name]["gauc"])


def test_a_label_carrying_history_is_ranked_perfectly():
    # positives have seen their target category recently, negatives never: AUC 1
    hist_cate = np.array([[0, 4, 3], [0, 0, 2], [3, 3, 3], [0, 0, 0]])
    split = {
        schema.LABEL: np.array([1, 1, 0, 0]),
        schema.ITEM_ID: np.array([9, 9, 9, 9]),
        schema.CATE_ID: np.array([3, 2, 4, 5]),
        schema.HIST_ITEM_ID: np.zeros((4, 3), np.int64),
        schema.HIST_CATE_ID: hist_cate,
        schema.HIST_LEN: np.array([2, 1, 3, 0]),
        schema.USER_KEY: np.array([7, 8, 7, 8]),
    }
    result = heuristics.evaluate_heuristics(split)
    assert result["category_recency"]["auc"] == 1.0
    assert result["category_recency"]["gauc"] == 1.0
    assert result["item_history_count"]["auc"] == 0.5  # all tied at 0
