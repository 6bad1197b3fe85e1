import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from tiny_run import plain_calibration_ratio, plain_ece  # noqa: E402

from mdaf_tf.evaluation import calibration
from mdaf_tf.evaluation.predictions import Predictions


def random_case(seed, n=300):
    """Clicks and predictions with exact bin edges (0, 0.1, 0.5, 1) mixed in."""
    rng = np.random.default_rng(seed)
    p = rng.random(n) ** 2  # most mass in the low bins, as for CTR
    p[:4] = [0.0, 0.1, 0.5, 1.0]
    y = (rng.random(n) < 0.3).astype(np.float32)
    return y, p.astype(np.float32)


@pytest.mark.parametrize("bins", [1, 2, 7, 10, 15])
@pytest.mark.parametrize("seed", range(3))
def test_ece_and_ratio_match_a_loop_over_bins_on_random_data(seed, bins):
    y, p = random_case(seed)
    assert calibration.expected_calibration_error(y, p, bins) == pytest.approx(
        plain_ece(y, p, bins), abs=1e-12)
    assert calibration.calibration_ratio(y, p) == pytest.approx(plain_calibration_ratio(y, p),
                                                                rel=1e-12)


def test_four_predictions_in_two_bins_by_hand():
    y, p = [0, 1, 1, 1], [0.1, 0.3, 0.6, 0.9]
    # bin [0, 0.5): mean p 0.2, click rate 0.5 -> 0.3; bin [0.5, 1]: 0.75 against 1 -> 0.25;
    # each holds half the predictions: ECE = 0.5 * 0.3 + 0.5 * 0.25 = 0.275.
    assert calibration.expected_calibration_error(y, p, bins=2) == pytest.approx(0.275)
    assert calibration.calibration_ratio(y, p) == pytest.approx((1.9 / 4) / 0.75)
    table = calibration.reliability(y, p, bins=2)
    np.testing.assert_array_equal(table.edges, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(table.counts, [2, 2])
    np.testing.assert_allclose(table.mean_predicted, [0.2, 0.75])
    np.testing.assert_allclose(table.observed_rate, [0.5, 1.0])


def test_empty_bins_weigh_nothing_and_have_no_means():
    y, p = [0, 1, 1, 1], [0.1, 0.3, 0.6, 0.9]
    # ten bins: one prediction each in bins 1, 3, 6 and 9 (0.1 opens bin [0.1, 0.2));
    # gaps 0.1, 0.7, 0.4, 0.1 -> ECE = 1.3 / 4.
    assert calibration.expected_calibration_error(y, p) == pytest.approx(0.325)
    table = calibration.reliability(y, p)
    assert table.counts.tolist() == [0, 1, 0, 1, 0, 0, 1, 0, 0, 1]
    empty = table.counts == 0
    assert np.isnan(table.mean_predicted[empty]).all()
    assert np.isnan(table.observed_rate[empty]).all()
    as_json = table.to_dict()
    assert as_json["mean_predicted"][0] is None and as_json["observed_rate"][1] == 0.0


def test_probability_one_is_in_the_last_bin_and_zero_in_the_first():
    assert calibration.bin_index([0.0, 0.0999, 0.1, 0.95, 1.0], bins=10).tolist() == [
        0, 0, 1, 9, 9]


def test_without_a_click_the_ratio_is_nan_and_ece_is_the_mean_prediction():
    y, p = [0, 0, 0], [0.2, 0.05, 0.5]
    assert math.isnan(calibration.calibration_ratio(y, p))
    assert calibration.expected_calibration_error(y, p) == pytest.approx(0.25)


def test_no_predictions_give_nan():
    assert math.isnan(calibration.expected_calibration_error([], []))
    assert math.isnan(calibration.calibration_ratio([], []))
    assert calibration.reliability([], []).counts.sum() == 0


@pytest.mark.parametrize("probabilities", [[0.5, 1.2], [-0.1, 0.5], [0.5, float("nan")]])
def test_probabilities_outside_zero_one_are_rejected(probabilities):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        calibration.expected_calibration_error([0, 1], probabilities)


def test_shape_mismatch_and_bad_bin_count_are_rejected():
    with pytest.raises(ValueError, match="differ in shape"):
        calibration.calibration_ratio([0, 1, 1], [0.5, 0.5])
    with pytest.raises(ValueError, match="bins"):
        calibration.reliability([0, 1], [0.5, 0.5], bins=0)


def test_calibrated_predictions_have_small_ece_and_ratio_near_one():
    rng = np.random.default_rng(7)
    p = rng.beta(1, 9, 200_000)  # CTR-like: mean 0.1
    y = rng.random(len(p)) < p  # clicks drawn as Bernoulli(p)
    assert calibration.expected_calibration_error(y, p) < 0.005
    assert calibration.calibration_ratio(y, p) == pytest.approx(1.0, abs=0.02)
    # predictions doubled over the same clicks: over-prediction shows in both figures
    assert calibration.expected_calibration_error(y, 2 * p.clip(0, 0.5)) > 0.05
    assert calibration.calibration_ratio(y, 2 * p.clip(0, 0.5)) == pytest.approx(2.0, abs=0.1)


@settings(max_examples=60, deadline=None)
# No subnormals: TensorFlow, loaded by other tests in the same worker, flushes them to zero,
# which hypothesis refuses to generate under.
@given(st.lists(st.tuples(st.booleans(), st.floats(0.0, 1.0, allow_subnormal=False)),
                min_size=1, max_size=40),
       st.integers(1, 12))
def test_ece_lies_between_the_global_gap_and_one(rows, bins):
    """|mean p - click rate| <= ECE <= 1: the bins' signed gaps sum to the global gap."""
    y = np.array([float(c) for c, _ in rows])
    p = np.array([q for _, q in rows])
    ece = calibration.expected_calibration_error(y, p, bins)
    assert abs(p.mean() - y.mean()) - 1e-12 <= ece <= 1.0 + 1e-12
    assert ece == pytest.approx(plain_ece(y, p, bins), abs=1e-12)


def test_predictions_summary_carries_the_calibration_figures():
    y, p = random_case(3)
    summary = Predictions(y, p, None).summary()
    assert summary["ece"] == pytest.approx(plain_ece(y, p), abs=1e-12)
    assert summary["calibration_ratio"] == pytest.approx(plain_calibration_ratio(y, p))
    assert summary["mean_probability"] == pytest.approx(float(np.mean(p.astype(np.float64))))
    assert summary["click_rate"] == pytest.approx(float(y.mean()))
    assert summary["reliability"]["bins"] == 10
    assert sum(summary["reliability"]["counts"]) == len(y)


def test_a_diverged_models_nan_predictions_do_not_stop_the_summary():
    summary = Predictions(np.array([0.0, 1.0], "f4"), np.array([np.nan, 0.5], "f4"),
                          None).summary()
    assert math.isnan(summary["ece"]) and math.isnan(summary["calibration_ratio"])
    assert summary["reliability"] is None
