"""Rates with confidence intervals and the test of a difference, for experiments.

Pure functions of counts (no database), so they can be checked against known values.

The stopping rule (why an interim look does not inflate false positives)
------------------------------------------------------------------------
Looking at a running experiment every day and stopping at the first p < 0.05 finds a
"winner" far more often than 5% of the time when there is none. The rule here is
Haybittle and Peto's: before every arm has reached the planned sample size
(``Experiment.min_impressions`` strips), an arm is declared better or worse only if its
difference from the control is overwhelming (two-sided p < 0.001, |z| > 3.29); from the
planned size on, the ordinary level ``alpha`` applies, divided by the number of arms
compared with the control (Bonferroni). Everything else reads "keep collecting" (before)
or "no difference detected" (after). Interim looks at p < 0.001 cost almost none of the
overall level, so the final test keeps close to ``alpha``.

The split (a sample ratio mismatch)
-----------------------------------
Shoppers are assigned to arms by their share; if the arms hold shoppers in other
proportions than the shares (an arm's strip failing for some shoppers, a cache serving one
arm to many, bots falling into one arm), their rates are no longer comparable, whatever
the test says. :func:`sample_ratio_test` is the usual check: a chi-square goodness-of-fit
test of the shoppers per arm against the shares, flagged below ``SAMPLE_RATIO_P`` (0.001,
so that a long experiment looked at every day is rarely flagged by chance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

__all__ = [
    "INTERIM_P",
    "SAMPLE_RATIO_P",
    "Comparison",
    "compare",
    "sample_ratio_test",
    "two_proportion_test",
    "wilson_interval",
]

#: The p-value an interim look must beat (Haybittle-Peto).
INTERIM_P = 0.001
#: Below this p-value, the shoppers' split between arms is flagged as a mismatch.
SAMPLE_RATIO_P = 0.001


def sample_ratio_test(observed, shares):
    """The p-value of the shoppers per arm ``observed`` under the arms' ``shares`` (any
    positive weights): a chi-square goodness-of-fit test with ``len(arms) - 1`` degrees
    of freedom; 1.0 when there are no shoppers or fewer than two arms."""
    from scipy.stats import chi2

    total = sum(observed)
    weight = sum(shares)
    if total == 0 or len(observed) < 2 or weight <= 0:
        return 1.0
    expected = [total * share / weight for share in shares]
    statistic = sum(
        (seen - wanted) ** 2 / wanted
        for seen, wanted in zip(observed, expected, strict=True)
        if wanted > 0
    )
    return float(chi2.sf(statistic, len(observed) - 1))


def _z(confidence):
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson_interval(successes, n, confidence=0.95):
    """Wilson score interval of a proportion ``successes / n``.

    Unlike the normal ("Wald") interval it stays inside [0, 1] and keeps close to its
    nominal coverage for small ``n`` and rates near 0, which is where click and
    conversion rates live. ``(0.0, 1.0)`` when ``n`` is 0.
    """
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n ({successes} of {n}).")
    z = _z(confidence)
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # At p = 0 (or 1) the bound meets p exactly in theory; in floating point it can land a
    # hair past it, and a plot's error bar of p - low is then negative.
    return min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half))


def two_proportion_test(x_a, n_a, x_b, n_b):
    """Two-sided z-test of ``x_b / n_b - x_a / n_a`` with the pooled variance.

    Returns
    -------
    (difference, z, p_value)
        ``z`` is 0 and ``p_value`` 1 when either sample is empty or the pooled rate is 0
        or 1 (nothing to tell apart).
    """
    if n_a <= 0 or n_b <= 0:
        return 0.0, 0.0, 1.0
    p_a, p_b = x_a / n_a, x_b / n_b
    pooled = (x_a + x_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0:
        return p_b - p_a, 0.0, 1.0
    z = (p_b - p_a) / se
    return p_b - p_a, z, math.erfc(abs(z) / math.sqrt(2))


@dataclass(frozen=True)
class Comparison:
    """One arm against the control on one rate; ``verdict`` is one of ``"better"``,
    ``"worse"``, ``"collecting"`` (keep collecting), ``"no-difference"``."""

    difference: float
    z: float
    p_value: float
    threshold: float
    reached_plan: bool
    verdict: str


def compare(control, arm, *, planned, alpha=0.05, comparisons=1):
    """Apply the stopping rule (module docstring) to ``arm`` against ``control``.

    Parameters
    ----------
    control, arm : (successes, n)
    planned : int
        The planned sample size per arm.
    alpha : float
        Overall two-sided level.
    comparisons : int
        How many arms are compared with the control (Bonferroni).
    """
    difference, z, p_value = two_proportion_test(control[0], control[1], arm[0], arm[1])
    reached = min(control[1], arm[1]) >= planned
    threshold = alpha / max(comparisons, 1) if reached else INTERIM_P
    if p_value < threshold:
        verdict = "better" if difference > 0 else "worse"
    else:
        verdict = "no-difference" if reached else "collecting"
    return Comparison(difference, z, p_value, threshold, reached, verdict)
