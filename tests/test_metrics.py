import itertools
import math

import numpy as np
import pytest

from mdaf_tf import metrics


def pair_counting_auc(labels, scores):
    """P(score of a positive > score of a negative) + 0.5 P(tie), over all pairs."""
    pos = [s for y, s in zip(labels, scores, strict=True) if y == 1]
    neg = [s for y, s in zip(labels, scores, strict=True) if y == 0]
    total = 0.0
    for p, n in itertools.product(pos, neg):
        total += 1.0 if p > n else 0.5 if p == n else 0.0
    return total / (len(pos) * len(neg))


def test_small_case_with_ties_by_hand():
    labels = [1, 0, 1, 0, 1, 0]
    scores = [0.9, 0.9, 0.5, 0.5, 0.1, 0.7]
    # Pairs (pos, neg): 0.9 vs (0.9 tie, 0.5 win, 0.7 win) = 2.5; 0.5 vs (lose, tie, lose)
    # = 0.5; 0.1 vs (lose, lose, lose) = 0 -> 3 / 9.
    assert metrics.exact_auc(labels, scores) == pytest.approx(3 / 9, abs=1e-12)
    assert pair_counting_auc(labels, scores) == pytest.approx(3 / 9, abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_matches_pair_counting_on_random_data_with_many_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 80)
    scores = rng.integers(0, 6, 80) / 5.0  # six distinct values: many ties
    assert metrics.exact_auc(labels, scores) == pytest.approx(
        pair_counting_auc(labels, scores), abs=1e-12
    )


def test_perfect_reversed_and_constant_scores():
    labels = np.array([0, 0, 1, 1])
    assert metrics.exact_auc(labels, [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert metrics.exact_auc(labels, [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert metrics.exact_auc(labels, [0.5] * 4) == 0.5


def test_single_class_or_a_nan_score_is_nan():
    assert math.isnan(metrics.exact_auc([1, 1, 1], [0.1, 0.2, 0.3]))
    assert math.isnan(metrics.exact_auc([1, 0, 0], [0.1, float("nan"), 0.3]))


def test_weights_count_examples():
    labels, scores = [1, 0, 1, 0], [0.9, 0.9, 0.2, 0.5]
    repeated = metrics.exact_auc([1, 1, 0, 0, 0, 1, 0], [0.9, 0.9, 0.9, 0.5, 0.5, 0.2, 0.5])
    assert metrics.exact_auc(labels, scores, sample_weight=[2, 1, 1, 3]) == pytest.approx(
        repeated, abs=1e-12)
    assert repeated == pytest.approx(pair_counting_auc(
        [1, 1, 0, 0, 0, 1, 0], [0.9, 0.9, 0.9, 0.5, 0.5, 0.2, 0.5]), abs=1e-12)


def test_log_loss_by_hand():
    labels = [1, 0, 1]
    p = [0.8, 0.3, 0.5]
    expected = -(math.log(0.8) + math.log(0.7) + math.log(0.5)) / 3
    assert metrics.log_loss(labels, p) == pytest.approx(expected, rel=1e-12)
    # Clipping keeps a confident mistake finite.
    assert math.isfinite(metrics.log_loss([1], [0.0]))


def test_gate_statistics_and_buckets():
    gates = np.array([0.05, 0.05, 0.15, 0.35, 0.5, 0.95, 1.0, 0.25])
    labels = np.array([1, 0, 1, 0, 1, 0, 1, 0])
    scores = np.array([0.9, 0.1, 0.5, 0.5, 0.7, 0.8, 0.6, 0.2])
    stats = metrics.gate_statistics(gates)
    assert stats["mean"] == pytest.approx(gates.mean())
    assert stats["median"] == pytest.approx(np.median(gates))
    assert stats["std"] == pytest.approx(gates.std())
    assert sum(stats["histogram_counts"]) == len(gates)
    assert stats["histogram_counts"][0] == 2 and stats["histogram_counts"][9] == 2
    rows = metrics.auc_by_gate_bucket(labels, scores, gates)
    assert [r["count"] for r in rows] == [2, 1, 1, 1, 3]  # 1.0 falls in the last bucket
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    assert rows[0]["auc"] == 1.0  # (0.9 pos, 0.1 neg)
    assert math.isnan(rows[1]["auc"])  # one class only
    # last bucket: pos 0.7, 0.6 vs neg 0.8 -> 0 of 2 pairs
    assert rows[4]["auc"] == 0.0


def plain_group_auc(labels, scores, groups):
    """Per-user pair-counting AUC, weighted by the user's examples, users with one label
    skipped."""
    total = weight = 0.0
    for g in sorted(set(groups)):
        ys = [y for y, u in zip(labels, groups, strict=True) if u == g]
        ss = [s for s, u in zip(scores, groups, strict=True) if u == g]
        if 0 < sum(ys) < len(ys):
            total += len(ys) * pair_counting_auc(ys, ss)
            weight += len(ys)
    return total / weight if weight else float("nan")


def test_group_auc_by_hand():
    # user 7: scores 0.9 (pos), 0.2 (neg), 0.9 (neg) -> (1 + 0.5) / 2 = 0.75 over 3 examples
    # user 8: pos 0.1 below neg 0.4 -> 0 over 2; user 9: one label only, skipped
    labels = [1, 0, 0, 1, 0, 1, 1]
    scores = [0.9, 0.2, 0.9, 0.1, 0.4, 0.5, 0.6]
    groups = [7, 7, 7, 8, 8, 9, 9]
    assert metrics.group_auc(labels, scores, groups) == pytest.approx((3 * 0.75 + 2 * 0) / 5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_group_auc_matches_plain_python_with_ties_and_one_label_users(seed):
    rng = np.random.default_rng(seed)
    n = 400
    groups = rng.integers(0, 40, n) * 1000 + 17  # raw keys, not 0..k
    labels = (rng.random(n) < 0.3).astype(int)
    labels[groups == 17] = 1  # a user with positives only
    scores = rng.integers(0, 5, n) / 4.0  # many ties within users
    expected = plain_group_auc(labels.tolist(), scores.tolist(), groups.tolist())
    order = rng.permutation(n)  # the row order does not matter
    got = metrics.group_auc(labels[order], scores[order], groups[order])
    assert got == pytest.approx(expected, abs=1e-12)


def test_group_auc_nan_without_a_user_holding_both_labels():
    assert math.isnan(metrics.group_auc([1, 0], [0.3, 0.2], [1, 2]))
    assert math.isnan(metrics.group_auc([], [], []))
