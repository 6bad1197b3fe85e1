import math

import pytest

from mdaf_tf.training.schedule import WarmupCosineDecay

PEAK, WARMUP, TOTAL = 3e-4, 20, 100


def formula(step):
    if step < WARMUP:
        return PEAK * step / WARMUP
    progress = min(step - WARMUP, TOTAL - WARMUP) / (TOTAL - WARMUP)
    return PEAK * 0.5 * (1 + math.cos(math.pi * progress))


@pytest.mark.parametrize(
    "step, expected",
    [
        (0, 0.0),  # warmup starts from 0
        (10, PEAK / 2),  # half-way through warmup
        (WARMUP, PEAK),  # warmup end = peak
        (60, PEAK / 2),  # middle of the cosine: cos(pi/2) = 0
        (TOTAL, 0.0),  # end: decayed to 0
        (TOTAL + 5, 0.0),  # stays at 0
    ],
)
def test_schedule_points(step, expected):
    schedule = WarmupCosineDecay(PEAK, WARMUP, TOTAL)
    assert float(schedule(step)) == pytest.approx(expected, abs=1e-9)
    assert float(schedule(step)) == pytest.approx(formula(step), abs=1e-9)


def test_every_step_follows_the_formula():
    schedule = WarmupCosineDecay(PEAK, WARMUP, TOTAL)
    for step in range(TOTAL + 1):
        assert float(schedule(step)) == pytest.approx(formula(step), abs=1e-9)


def test_warmup_covering_all_training_stays_at_peak():
    schedule = WarmupCosineDecay(PEAK, 10, 10)
    assert float(schedule(5)) == pytest.approx(PEAK / 2)
    assert float(schedule(10)) == pytest.approx(PEAK)


def test_config_round_trip():
    schedule = WarmupCosineDecay(PEAK, WARMUP, TOTAL)
    clone = WarmupCosineDecay.from_config(schedule.get_config())
    assert float(clone(42)) == float(schedule(42))
