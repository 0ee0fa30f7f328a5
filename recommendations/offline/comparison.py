"""How sure a blend's lead over the single sources is: a paired bootstrap over shoppers.

An offline figure is a mean over a few hundred shoppers (106 new shoppers on the demo), and
two real page views had moved one by 7%: a ratio of 1.04 says little without its
uncertainty. Each shopper is scored by both lists, so the difference is taken shopper by
shopper and the shoppers are resampled with replacement (``RESAMPLES`` times, seeded): the
2.5th and 97.5th percentiles of the mean difference are its 95% interval. An interval
that holds 0 means the data cannot tell the two apart.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RESAMPLES", "against_best", "against_profile", "paired_interval"]

RESAMPLES = 1000


def paired_interval(first, second, seed=0, resamples=RESAMPLES):
    """The mean of ``first - second`` (per shopper; NaN where a shopper has no figure) and
    its 95% bootstrap interval, ``(difference, low, high)``; NaNs without shoppers."""
    difference = np.asarray(first, dtype=float) - np.asarray(second, dtype=float)
    difference = difference[np.isfinite(difference)]
    if not len(difference):
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for i in range(resamples):  # in a loop: a matrix of every resample could be large
        means[i] = difference[rng.integers(0, len(difference), len(difference))].mean()
    low, high = np.percentile(means, [2.5, 97.5])
    return float(difference.mean()), float(low), float(high)


def against_best(per_user, blend="blend", seed=0):
    """The blend against the best single source of one segment: ``per_user`` maps each
    source (``blend`` among them) to its per-shopper NDCG. Returns ``best`` (the source with
    the highest mean), ``ratio`` (the blend's mean over the best's) and ``difference`` with
    ``low`` and ``high``, its 95% interval."""
    means = {
        name: float(np.nanmean(v)) if np.isfinite(v).any() else 0.0 for name, v in per_user.items()
    }
    singles = [name for name in per_user if name != blend]
    if not singles:
        return {}
    best = max(singles, key=lambda name: means[name])
    difference, low, high = paired_interval(per_user[blend], per_user[best], seed)
    return {
        "best": best,
        "ratio": round(means[blend] / means[best], 4) if means[best] > 0 else None,
        "difference": round(difference, 5),
        "low": round(low, 5),
        "high": round(high, 5),
    }


def against_profile(result, other, seed=0):
    """``result``'s blend against ``other``'s, segment by segment: two
    :func:`~.blend_evaluation.evaluate_blend` results with ``per_user_ndcg``, on the same
    data (the same shoppers in the same order). Returns ``{segment: {"difference", "low",
    "high", "users"}}``, the mean NDCG difference and its 95% interval, for the segments
    both scored; the figures an analyst needs before replacing a default profile."""
    first, second = result["per_user_ndcg"], other["per_user_ndcg"]
    compared = {}
    for name in [s for s in first if s in second]:
        if len(first[name]) != len(second[name]):
            raise ValueError(
                f"The two evaluations scored different shoppers in {name!r} "
                f"({len(first[name])} and {len(second[name])}): evaluate both on the same data."
            )
        difference, low, high = paired_interval(first[name], second[name], seed)
        compared[name] = {
            "difference": round(difference, 5),
            "low": round(low, 5),
            "high": round(high, 5),
            "users": int(np.isfinite(np.asarray(first[name], dtype=float)).sum()),
        }
    return compared
