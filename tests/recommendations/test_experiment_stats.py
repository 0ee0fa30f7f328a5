"""Experiments' pure parts: stable assignment by traffic share, and the statistics checked
against scipy's implementations and hand-worked values."""

import math

import numpy as np
import pytest
from scipy.stats import binomtest, chi2_contingency

from recommendations.experiments.assignment import bucket, choose_arm, shopper_key
from recommendations.experiments.stats import (
    INTERIM_P,
    SAMPLE_RATIO_P,
    compare,
    effective_count,
    ratio_test,
    ratio_variance,
    sample_ratio_test,
    two_proportion_test,
    wilson_interval,
)


def test_shopper_key_prefers_the_user_and_refuses_nobody():
    assert shopper_key(7, "abc") == "user:7"
    assert shopper_key(None, "abc") == "session:abc"
    assert shopper_key(None, "") is None and shopper_key() is None


def test_assignment_is_stable_and_follows_the_shares():
    arms = [("a", 3), ("b", 1)]
    keys = [f"session:{i:08x}" for i in range(20000)]
    picked = [choose_arm(arms, bucket(42, key)) for key in keys]
    # The same shopper always gets the same arm: recomputed, nothing stored.
    assert picked == [choose_arm(arms, bucket(42, key)) for key in keys]
    share_a = picked.count("a") / len(picked)
    assert abs(share_a - 0.75) < 0.015  # 3:1, within 5 standard errors (0.003)
    # Another experiment shuffles shoppers independently of this one.
    other = [choose_arm([("a", 1), ("b", 1)], bucket(43, key)) for key in keys]
    both = sum(p == "a" and o == "a" for p, o in zip(picked, other, strict=True)) / len(keys)
    assert abs(both - 0.75 * 0.5) < 0.02


def test_choose_arm_edges():
    arms = [("a", 1), ("b", 1), ("c", 2)]
    assert choose_arm(arms, 0.0) == "a"
    assert choose_arm(arms, 0.2499) == "a" and choose_arm(arms, 0.25) == "b"
    assert choose_arm(arms, 0.5) == "c" and choose_arm(arms, 0.999999) == "c"
    assert choose_arm([], 0.3) is None


@pytest.mark.parametrize("successes,n", [(0, 10), (1, 10), (81, 263), (5, 2000), (50, 50)])
def test_wilson_interval_matches_scipy(successes, n):
    expected = binomtest(successes, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson_interval(successes, n)
    assert low == pytest.approx(expected.low, abs=1e-9)
    assert high == pytest.approx(expected.high, abs=1e-9)


def test_wilson_interval_known_values_and_bad_input():
    # 0 of 10: the upper bound is z^2 / (n + z^2) = 3.8415 / 13.8415.
    assert wilson_interval(0, 10)[1] == pytest.approx(0.27753, abs=1e-5)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


@pytest.mark.parametrize(
    "counts", [(120, 1000, 150, 1000), (30, 400, 22, 380), (5, 50, 5, 50), (200, 2500, 260, 2400)]
)
def test_two_proportion_test_matches_the_chi_square_test(counts):
    x_a, n_a, x_b, n_b = counts
    diff, z, p = two_proportion_test(x_a, n_a, x_b, n_b)
    table = np.array([[x_a, n_a - x_a], [x_b, n_b - x_b]])
    chi2, p_expected, _, _ = chi2_contingency(table, correction=False)
    assert diff == pytest.approx(x_b / n_b - x_a / n_a)
    assert z * z == pytest.approx(chi2, rel=1e-9)
    assert p == pytest.approx(p_expected, rel=1e-9)


def test_two_proportion_test_hand_worked():
    # 10% vs 15% of 1,000: pooled 12.5%, se = sqrt(.125 * .875 * 2 / 1000) = 0.014790.
    diff, z, p = two_proportion_test(100, 1000, 150, 1000)
    assert z == pytest.approx(0.05 / math.sqrt(0.125 * 0.875 * 0.002))
    assert z == pytest.approx(3.3806, abs=1e-4) and p == pytest.approx(0.000723, abs=1e-5)
    assert two_proportion_test(0, 0, 3, 10) == (0.0, 0.0, 1.0)
    assert two_proportion_test(0, 10, 0, 10)[2] == 1.0


def test_the_stopping_rule_guards_interim_looks():
    # p = 0.0007: overwhelming, so called at an interim look.
    early = compare((100, 1000), (150, 1000), planned=5000)
    assert early.verdict == "better" and not early.reached_plan and early.threshold == INTERIM_P
    # p = 0.035: not before the planned size...
    assert compare((100, 1000), (130, 1000), planned=5000).verdict == "collecting"
    # ...but at it, against alpha...
    assert compare((100, 1000), (130, 1000), planned=1000).verdict == "better"
    assert compare((130, 1000), (100, 1000), planned=1000).verdict == "worse"
    # ...split between two comparisons (0.025): not enough.
    split = compare((100, 1000), (130, 1000), planned=1000, comparisons=2)
    assert split.verdict == "no-difference" and split.threshold == 0.025


def test_the_split_test_matches_scipys_chi_square():
    from scipy.stats import chisquare

    observed, shares = [609, 691], [1, 1]
    assert sample_ratio_test(observed, shares) == pytest.approx(chisquare(observed).pvalue)
    three = [300, 310, 590]
    expected = [300, 300, 600]  # shares 1:1:2
    assert sample_ratio_test(three, [1, 1, 2]) == pytest.approx(chisquare(three, expected).pvalue)
    assert sample_ratio_test([0, 0], [1, 1]) == 1.0 and sample_ratio_test([5], [1]) == 1.0
    assert sample_ratio_test([500, 700], [1, 1]) < SAMPLE_RATIO_P  # a mismatch
    assert sample_ratio_test([500, 520], [1, 1]) > 0.05


def test_wilson_bounds_never_cross_the_observed_rate():
    """At 0 or n successes the bound meets the rate in theory; in floating point it had
    landed past it for about half of the sample sizes, and notebook 04's error bars
    (rate - low) came out negative, which matplotlib refuses."""
    from recommendations.experiments.stats import wilson_interval

    for n in range(1, 3000):
        for successes in (0, 1, n // 2, n - 1, n):
            if 0 <= successes <= n:
                low, high = wilson_interval(successes, n)
                assert 0.0 <= low <= successes / n <= high <= 1.0, (successes, n)


def test_the_chart_rounds_its_percentages():
    from recommendations.experiments.report import _interval

    # Django's number_format cuts digits it does not show: 0.643 had read 64.2%.
    assert _interval(0.643, 0.5126, 0.7549) == "64.3% [51.3%, 75.5%]"


def test_one_strip_per_shopper_is_the_strip_test():
    """With one strip each, the shoppers' variance is the binomial one (with n - 1), and
    their test the strips' unpooled test."""
    shoppers = [(1, 1)] * 30 + [(0, 1)] * 70
    assert ratio_variance(shoppers) == pytest.approx(0.3 * 0.7 / 99)
    assert effective_count(shoppers) == pytest.approx((29.7, 99))  # n - 1: no more
    other = [(1, 1)] * 45 + [(0, 1)] * 55
    difference, z, p = ratio_test(shoppers, other)
    unpooled = 0.15 / math.sqrt(0.3 * 0.7 / 99 + 0.45 * 0.55 / 99)
    assert difference == pytest.approx(0.15) and z == pytest.approx(unpooled)
    assert ratio_variance([(1, 1)]) is None and ratio_test([(1, 1)], other)[1:] == (0.0, 1.0)


def test_shoppers_who_click_all_or_nothing_are_not_counted_as_independent_strips():
    """100 shoppers an arm, five strips each, every shopper clicking all five or none: the
    strips' test calls a 0.40 against 0.50 difference (p 0.0015); the shoppers' test, the
    unit that was assigned, cannot (p 0.16), and the rate's interval is that of about 100
    strips, not 500."""
    control = [(5, 5)] * 40 + [(0, 5)] * 60
    arm = [(5, 5)] * 50 + [(0, 5)] * 50
    assert two_proportion_test(200, 500, 250, 500)[2] < 0.002
    difference, _, p = ratio_test(control, arm)
    assert difference == pytest.approx(0.1) and 0.1 < p < 0.2
    successes, strips = effective_count(control)
    assert 95 < strips < 101 and successes / strips == pytest.approx(0.4)
    shoppers = compare((200, 500), (250, 500), planned=500, shoppers=(control, arm))
    assert shoppers.verdict == "no-difference"
    assert compare((200, 500), (250, 500), planned=500).verdict == "better"
