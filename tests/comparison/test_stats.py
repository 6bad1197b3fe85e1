import math

import numpy as np
import pytest

from mdaf_tf.comparison.stats import holm, mean_std, paired_t_test


def _t_tail_by_quadrature(t: float, df: int) -> float:
    """2 * integral_|t|^inf of Student's t density, by the trapezoid rule on u = 1/x."""
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)
    # x = |t| / u maps (0, 1] onto [|t|, inf); dx = |t| / u^2 du.
    u = np.linspace(1e-9, 1.0, 400_001)
    x = abs(t) / u
    f = c * (1 + x * x / df) ** (-(df + 1) / 2) * abs(t) / (u * u)
    return float(2 * np.sum((f[1:] + f[:-1]) / 2 * np.diff(u)))


def pairs_with_t(t: float, df: int) -> tuple[list[float], list[float]]:
    """``df + 1`` pairs whose differences have sample standard deviation 1 and mean
    ``t / sqrt(n)``, so that their paired t statistic is ``t``."""
    n = df + 1
    z = np.arange(n, dtype=np.float64)
    z = (z - z.mean()) / z.std(ddof=1)
    b = np.linspace(0.6, 0.7, n)
    return list(b + z + t / math.sqrt(n)), list(b)


def two_sided_p(t: float, df: int) -> float:
    return paired_t_test(*pairs_with_t(t, df))["p"]


@pytest.mark.parametrize(
    "t, df, p",
    [
        (2.776, 4, 0.05),  # textbook two-sided 5% critical values
        (12.706, 1, 0.05),
        (4.303, 2, 0.05),
        (2.228, 10, 0.05),
        (4.604, 4, 0.01),
        (0.0, 3, 1.0),
    ],
)
def test_two_sided_p_at_table_values(t, df, p):
    assert paired_t_test(*pairs_with_t(t, df))["t"] == pytest.approx(t, abs=1e-9)
    assert two_sided_p(t, df) == pytest.approx(p, abs=2e-4)
    assert two_sided_p(-t, df) == pytest.approx(p, abs=2e-4)


def test_one_degree_of_freedom_is_the_cauchy_tail():
    for t in (0.3, 1.0, 3.0, 40.0):
        assert two_sided_p(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(t), rel=1e-8)


@pytest.mark.parametrize("t, df", [(0.7, 2), (1.9, 3), (3.3, 5), (2.1, 17)])
def test_p_matches_numerical_integration_of_the_density(t, df):
    assert two_sided_p(t, df) == pytest.approx(_t_tail_by_quadrature(t, df), abs=1e-6)


def test_paired_t_test_by_hand():
    a = [0.80, 0.82, 0.81]
    b = [0.78, 0.81, 0.77]
    d = [0.02, 0.01, 0.04]
    mean = sum(d) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / 2)
    result = paired_t_test(a, b)
    assert result["n"] == 3 and result["df"] == 2
    assert result["t"] == pytest.approx(mean / (sd / math.sqrt(3)))
    assert result["p"] == pytest.approx(_t_tail_by_quadrature(result["t"], 2), abs=1e-6)
    assert 0.05 < result["p"] < 0.2  # t = 2.65 with 2 df


def test_paired_t_test_edge_cases():
    assert math.isnan(paired_t_test([0.7], [0.6])["p"])
    assert paired_t_test([0.75, 0.5], [0.5, 0.25])["p"] == 0.0  # identical differences
    assert paired_t_test([0.7, 0.8], [0.7, 0.8])["p"] == 1.0
    with pytest.raises(ValueError):
        paired_t_test([0.7], [0.6, 0.5])


def test_mean_std_is_the_sample_standard_deviation():
    mean, std = mean_std([1.0, 2.0, 4.0])
    assert mean == pytest.approx(7 / 3)
    assert std == pytest.approx(np.std([1.0, 2.0, 4.0], ddof=1))
    assert mean_std([3.0]) == (3.0, 0.0)


def test_holm_by_hand():
    # Sorted: 0.005, 0.01, 0.03, 0.04 -> 4 * 0.005 = 0.02, 3 * 0.01 = 0.03, 2 * 0.03 = 0.06,
    # 1 * 0.04 = 0.04 raised to the running maximum 0.06; the NaN is no test and stays NaN.
    adjusted = holm([0.01, math.nan, 0.04, 0.03, 0.005])
    assert math.isnan(adjusted[1])
    assert [adjusted[i] for i in (0, 2, 3, 4)] == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_keeps_a_single_test():
    assert holm([0.7, 0.6]) == pytest.approx([1.0, 1.0])  # 2 * 0.6 = 1.2 -> 1
    assert holm([0.2, math.nan])[0] == pytest.approx(0.2)  # a family of one: unchanged
    assert holm([]) == []
