"""Paired t-test over seeds without scipy (Student's t CDF via the incomplete beta function)
and the Holm-Bonferroni correction for several such tests against one reference."""

from __future__ import annotations

import math


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b), evaluated by the modified Lentz method."""
    tiny = 1e-300

    def clamp(v):
        return v if abs(v) > tiny else tiny

    c = 1.0
    d = 1.0 / clamp(1.0 - (a + b) * x / (a + 1.0))
    f = d
    for m in range(1, 500):
        # Even term d_{2m}, then odd term d_{2m+1}.
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 / clamp(1.0 + numerator * d)
            c = clamp(1.0 + numerator / c)
            f *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return f


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) = B(x; a, b) / B(a, b) for a, b > 0 and 0 <= x <= 1."""
    if not (a > 0 and b > 0):
        raise ValueError(f"incomplete beta needs a, b > 0, got a={a}, b={b}")
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"incomplete beta needs 0 <= x <= 1, got {x}")
    if x in (0.0, 1.0):
        return x
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
        + a * math.log(x) + b * math.log1p(-x)
    )
    # The fraction converges fast for x < (a + 1) / (a + b + 2); use symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom.

    Uses P(|T| >= |t|) = I_{df / (df + t^2)}(df / 2, 1 / 2).
    """
    if df <= 0:
        raise ValueError(f"degrees of freedom must be > 0, got {df}")
    if math.isinf(t):
        return 0.0
    return regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t * t))


def paired_t_test(a, b) -> dict:
    """Two-sided paired t-test of mean(a - b) = 0 over matched pairs (e.g. one per seed).

    Returns ``{"n", "mean_diff", "t", "df", "p"}``; with fewer than two pairs t and p are
    NaN. Identical differences (zero spread) give p = 0 for a nonzero mean, 1 for zero.
    """
    if len(a) != len(b):
        raise ValueError(f"paired test needs equal lengths, got {len(a)} and {len(b)}")
    diffs = [float(x) - float(y) for x, y in zip(a, b, strict=True)]
    n = len(diffs)
    nan = float("nan")
    if n == 0:
        return {"n": 0, "mean_diff": nan, "t": nan, "df": 0, "p": nan}
    mean = sum(diffs) / n
    if n < 2:
        return {"n": n, "mean_diff": mean, "t": nan, "df": 0, "p": nan}
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1)
    if var == 0.0:
        t = 0.0 if mean == 0.0 else math.copysign(math.inf, mean)
        return {"n": n, "mean_diff": mean, "t": t, "df": n - 1, "p": 1.0 if mean == 0 else 0.0}
    t = mean / math.sqrt(var / n)
    return {"n": n, "mean_diff": mean, "t": t, "df": n - 1, "p": t_two_sided_p(t, n - 1)}


def holm(p_values) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given.

    With the m non-NaN p-values sorted ascending, p_(1) <= ... <= p_(m), the adjusted
    p_(i) is max over j <= i of min(1, (m - j + 1) p_(j)): rejecting where it is below
    alpha keeps the family-wise error rate at alpha (Holm 1979). NaN p-values (tests that
    could not be run) are left out of the family and stay NaN.
    """
    p_values = [float(p) for p in p_values]
    family = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    m = len(family)
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(family):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; 0 for a single value)."""
    values = [float(v) for v in values]
    if not values:
        return float("nan"), float("nan")
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
