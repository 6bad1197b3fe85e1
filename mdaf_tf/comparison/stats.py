"""The paired t-test over seeds (scipy's ``ttest_rel``, with the cases it leaves undefined
given a value), the Holm-Bonferroni correction for several such tests against one reference,
and the mean and sample standard deviation a table reports."""

from __future__ import annotations

import math


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
    from scipy import stats

    result = stats.ttest_rel(a, b)
    return {"n": n, "mean_diff": mean, "t": float(result.statistic), "df": n - 1,
            "p": float(result.pvalue)}


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
