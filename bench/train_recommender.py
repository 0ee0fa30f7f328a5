"""Time ALS training on 1M synthetic interactions and the building of the event matrix.

Users and items are drawn with Zipf-like (power-law) popularity, as in real shops: a few
heavy users and best-sellers, a long tail of both. Prints one JSON object: the median of
``--repeats`` runs of ``ALSRecommender(...).fit`` and of building the csr ``user_items``
matrix from (user, item, weight) arrays, as rows per second.

Usage::

    python bench/train_recommender.py [--events 1000000] [--repeats 3]
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recommendations.datasets import build_user_items  # noqa: E402
from recommendations.recommenders import ALSRecommender  # noqa: E402


def power_law_ids(rng, n_ids, n_draws, exponent):
    """Draw ids in [0, n_ids) with P(rank r) proportional to r ** -exponent, ids shuffled."""
    p = np.arange(1, n_ids + 1, dtype=np.float64) ** -exponent
    p /= p.sum()
    return rng.permutation(n_ids)[rng.choice(n_ids, size=n_draws, p=p)].astype(np.int32)


def synthetic_events(n_events, n_users, n_items, seed=0):
    rng = np.random.default_rng(seed)
    users = power_law_ids(rng, n_users, n_events, exponent=0.8)
    items = power_law_ids(rng, n_items, n_events, exponent=1.0)
    # Event kinds weighted like the app's defaults: view 1, click 2, cart 4, purchase 8.
    weights = rng.choice(
        np.array([1.0, 2.0, 4.0, 8.0], np.float32), size=n_events, p=[0.8, 0.1, 0.07, 0.03]
    )
    return users, items, weights


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=15)
    args = parser.parse_args(argv)

    users, items, weights = synthetic_events(args.events, args.users, args.items)
    shape = (args.users, args.items)

    build_times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        user_items = build_user_items(users, items, weights, shape=shape)
        build_times.append(time.perf_counter() - start)

    fit_times = []
    for _ in range(args.repeats):
        model = ALSRecommender(factors=args.factors, iterations=args.iterations)
        start = time.perf_counter()
        model.fit(user_items)
        fit_times.append(time.perf_counter() - start)

    build_median = float(np.median(build_times))
    print(
        json.dumps(
            {
                "events": args.events,
                "users": args.users,
                "items": args.items,
                "nonzeros": int(user_items.nnz),
                "active_users": int((np.diff(user_items.indptr) > 0).sum()),
                "factors": args.factors,
                "iterations": args.iterations,
                "repeats": args.repeats,
                "als_fit_seconds_median": round(float(np.median(fit_times)), 3),
                "als_fit_seconds_all": [round(t, 3) for t in fit_times],
                "matrix_build_seconds_median": round(build_median, 4),
                "matrix_build_rows_per_second": int(args.events / build_median),
                "cpu_count": os.cpu_count(),
                "python": platform.python_version(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
