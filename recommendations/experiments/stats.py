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

The unit (shoppers, not strips)
-------------------------------
Shoppers are assigned to arms, but a rate counts strips, and one shopper sees several: their
strips are not independent (a shopper who clicks one tends to click the next), so a test
that treats them as independent is too sure of itself, the more so the more strips a
shopper sees (a "Similar items" strip on every product page). Given the strips and the
successes of each shopper, :func:`ratio_variance` is the delta-method variance of the
ratio (successes over strips, summed over shoppers), and :func:`ratio_test` compares two
arms with it; :func:`effective_count` turns it into the number of independent strips the
arm's rate is worth, for its Wilson interval. Without per-shopper counts the strip is
the unit (:func:`two_proportion_test`).

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
    "effective_count",
    "ratio_test",
    "ratio_variance",
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


def ratio_variance(shoppers):
    """The delta-method variance of ``sum(successes) / sum(strips)`` over ``shoppers``, a
    sequence of ``(successes, strips)`` per shopper; ``None`` under two shoppers (or no
    strip), where it cannot be estimated."""
    n = len(shoppers)
    strips = sum(s for _, s in shoppers)
    if n < 2 or strips <= 0:
        return None
    rate = sum(c for c, _ in shoppers) / strips
    mean = strips / n
    spread = sum((c - rate * s) ** 2 for c, s in shoppers) / (n - 1)
    return spread / (n * mean * mean)


def effective_count(shoppers):
    """``(successes, strips)`` of as many independent strips as ``shoppers``' rate is worth:
    the strips divided by the design effect (the clustered variance over the binomial
    one), never more than there are; the plain counts where no variance can be read."""
    successes = sum(c for c, _ in shoppers)
    strips = sum(s for _, s in shoppers)
    variance = ratio_variance(shoppers)
    rate = successes / strips if strips else 0.0
    binomial = rate * (1 - rate) / strips if strips else 0.0
    if variance is None or variance <= 0 or binomial <= 0:
        return successes, strips
    n = strips / max(variance / binomial, 1.0)
    return rate * n, n


def ratio_test(control, arm):
    """Two-sided z-test of the difference of two arms' rates, each a sequence of
    ``(successes, strips)`` per shopper, with the delta-method variances.

    Returns
    -------
    (difference, z, p_value)
        ``z`` 0 and ``p_value`` 1 when a variance cannot be estimated or both are 0.
    """
    rates, variances = [], []
    for shoppers in (control, arm):
        strips = sum(s for _, s in shoppers)
        rates.append(sum(c for c, _ in shoppers) / strips if strips else 0.0)
        variances.append(ratio_variance(shoppers))
    difference = rates[1] - rates[0]
    if None in variances or sum(variances) <= 0:
        return difference, 0.0, 1.0
    z = difference / math.sqrt(sum(variances))
    return difference, z, math.erfc(abs(z) / math.sqrt(2))


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


def compare(control, arm, *, planned, alpha=0.05, comparisons=1, shoppers=None):
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
    shoppers : (control's, arm's), optional
        Each arm's ``(successes, strips)`` per shopper: the test is then the shoppers'
        (:func:`ratio_test`), else the strips' (:func:`two_proportion_test`).
    """
    if shoppers is not None:
        difference, z, p_value = ratio_test(*shoppers)
    else:
        difference, z, p_value = two_proportion_test(control[0], control[1], arm[0], arm[1])
    reached = min(control[1], arm[1]) >= planned
    threshold = alpha / max(comparisons, 1) if reached else INTERIM_P
    if p_value < threshold:
        verdict = "better" if difference > 0 else "worse"
    else:
        verdict = "no-difference" if reached else "collecting"
    return Comparison(difference, z, p_value, threshold, reached, verdict)
