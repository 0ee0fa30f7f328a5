"""Recommender benchmarks against the database: event matrix, training, serving latency.

Prints one JSON object with

* ``als_training``: ALS on 1M synthetic interactions, from the core's
  ``bench/train_recommender.py`` (run as is, not duplicated);
* ``event_matrix``: building ``user_items`` from ``--events`` Event rows stored in
  PostgreSQL (the query, the numpy work and the decay), as events per second;
* ``training``: :func:`recommendations.services.training.train` end to end on those
  events (read, fit, save, activate), without the holdout evaluation;
* ``serving``: p50/p95 latency of ``ActiveModel.recommend`` for trained shoppers, for
  anonymous sessions personalised from fresh events (``recalculate_user``), of
  ``ActiveModel.similar_items`` and of ``popular_products`` (cold and cached), with the
  model loaded.

It works in a throw-away database (``bench_recommender``, created with the project's
migrations and dropped at the end) on the configured server, so the shop's data is
never touched.

Usage::

    .venv/bin/python bench/recommender_serving.py [--events 200000] [--products 5000]
        [--shoppers 20000] [--queries 500] [--als-events 1000000] [--skip-als]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def core_als_bench(events, repeats):
    """Run the core's ALS bench in its own process and return its JSON."""
    script = ROOT / "bench" / "train_recommender.py"
    out = subprocess.run(
        [sys.executable, str(script), "--events", str(events), "--repeats", str(repeats)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def percentiles(seconds):
    ms = np.asarray(seconds) * 1000.0
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p95_ms": round(float(np.percentile(ms, 95)), 3),
        "n": len(ms),
    }


def timed(func, *args, **kwargs):
    start = time.perf_counter()
    result = func(*args, **kwargs)
    return time.perf_counter() - start, result


def make_catalogue(n_products):
    from decimal import Decimal

    from django.apps import apps
    from django.conf import settings

    from lookalike.conf import app_settings

    # The reference shop's flat product model (the default adapter's fields).
    fields = app_settings.PRODUCT_FIELDS
    Product = apps.get_model(settings.LOOKALIKE_PRODUCT_MODEL)
    Category = Product._meta.get_field(fields["category"]).related_model
    categories = [
        Category.objects.create(name=f"Bench category {c}", slug=f"bench-category-{c}")
        for c in range(10)
    ]
    Product.objects.bulk_create(
        [
            Product(
                **{
                    fields["title"]: f"Bench product {i}",
                    fields["category"]: categories[i % 10],
                    fields["price"]: Decimal(10 + i % 90),
                    fields["stock"]: 5,
                }
            )
            for i in range(n_products)
        ],
        batch_size=5000,
    )
    return np.array(Product.objects.order_by("pk").values_list("pk", flat=True), dtype=np.int64)


def make_events(product_ids, n_events, n_shoppers, seed=0):
    """Power-law shoppers and products, kinds 80/10/7/3 %, over the last 60 days."""
    from django.utils import timezone

    from recommendations.models import Event

    rng = np.random.default_rng(seed)

    def power_law(n, size, exponent):
        p = np.arange(1, n + 1, dtype=np.float64) ** -exponent
        return rng.permutation(n)[rng.choice(n, size=size, p=p / p.sum())]

    shoppers = power_law(n_shoppers, n_events, 0.8)
    items = product_ids[power_law(len(product_ids), n_events, 1.0)]
    kinds = rng.choice(
        ["view", "similar_click", "cart", "purchase"], n_events, p=[0.8, 0.1, 0.07, 0.03]
    )
    now = timezone.now()
    ages = rng.uniform(0, 60 * 86400, n_events)
    batch_size = 10_000
    start = time.perf_counter()
    for lo in range(0, n_events, batch_size):
        hi = min(lo + batch_size, n_events)
        Event.objects.bulk_create(
            [
                Event(
                    session_key=f"bench-{shoppers[i]}",
                    product_id=int(items[i]),
                    kind=str(kinds[i]),
                    created_at=now - timedelta(seconds=float(ages[i])),
                    simulated=True,
                )
                for i in range(lo, hi)
            ],
            batch_size=batch_size,
        )
    return time.perf_counter() - start


def bench_db(args):
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_test_environment, teardown_test_environment

    from recommendations.models import Event
    from recommendations.services import serving, training
    from recommendations.services.matrix import build_event_matrix

    settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = "bench_recommender"
    settings.RECOMMENDATIONS_ARTIFACT_DIR = Path(settings.VAR_DIR) / "bench" / "recommender"
    settings.VISUALSEARCH_INDEX_ON_SAVE = False
    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        product_ids = make_catalogue(args.products)
        insert_seconds = make_events(product_ids, args.events, args.shoppers)

        builds = []
        for _ in range(args.repeats):
            seconds, matrix = timed(build_event_matrix)
            builds.append(seconds)
        build_median = statistics.median(builds)
        result = {
            "event_matrix": {
                "events": matrix.n_events,
                "shape": list(matrix.shape),
                "nonzeros": matrix.n_interactions,
                "seconds_median": round(build_median, 3),
                "events_per_second": int(matrix.n_events / build_median),
                "bulk_insert_events_per_second": int(args.events / insert_seconds),
            }
        }

        from recommendations.conf import app_settings

        params = app_settings.ALS_PARAMETERS  # what `train_recommender` uses
        seconds, row = timed(training.train, **params, evaluate=False)
        result["training"] = {**params, "seconds": round(seconds, 3), "version": row.version}

        serving.clear_cache()
        seconds, model = timed(serving.get_active_model)
        result["serving"] = {"model_load_ms": round(seconds * 1000, 1)}
        rng = np.random.default_rng(1)
        trained = [k[2:] for k in rng.choice(model.user_keys, args.queries)]
        known = [timed(model.recommend, session_key=key, k=10)[0] for key in trained]
        result["serving"]["recommend_trained_shopper"] = percentiles(known)

        # Anonymous newcomers: three fresh events each, personalised by recalculate_user.
        from django.utils import timezone

        fresh = []
        for q in range(args.queries):
            for pid in rng.choice(product_ids, 3, replace=False):
                fresh.append(
                    Event(
                        session_key=f"new-{q}",
                        product_id=int(pid),
                        kind="view",
                        created_at=timezone.now(),
                    )
                )
        Event.objects.bulk_create(fresh)
        cold = [
            timed(model.recommend, session_key=f"new-{q}", k=10)[0] for q in range(args.queries)
        ]
        result["serving"]["recommend_anonymous_session"] = percentiles(cold)
        picks = rng.choice(model.item_ids, args.queries)
        similar = [timed(model.similar_items, int(pid), 10)[0] for pid in picks]
        result["serving"]["similar_items"] = percentiles(similar)
        settings.RECOMMENDATIONS_POPULAR_CACHE_SECONDS = 0
        popular_cold = [timed(serving.popular_products, 10, days=30)[0] for _ in range(20)]
        settings.RECOMMENDATIONS_POPULAR_CACHE_SECONDS = 60
        serving.popular_products(10, days=30)
        popular_warm = [timed(serving.popular_products, 10, days=30)[0] for _ in range(200)]
        result["serving"]["popular_products_uncached"] = percentiles(popular_cold)
        result["serving"]["popular_products_cached"] = percentiles(popular_warm)
        result["serving"]["get_active_model_cached"] = percentiles(
            [timed(serving.get_active_model)[0] for _ in range(1000)]
        )
        for path in Path(settings.RECOMMENDATIONS_ARTIFACT_DIR).glob("*.npz"):
            path.unlink()
        return result
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--products", type=int, default=5_000)
    parser.add_argument("--shoppers", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--als-events", type=int, default=1_000_000)
    parser.add_argument("--skip-als", action="store_true", help="Skip the core's 1M ALS bench.")
    args = parser.parse_args(argv)

    report = {"cpu_count": os.cpu_count()}
    if not args.skip_als:
        report["als_training"] = core_als_bench(args.als_events, args.repeats)
    report.update(bench_db(args))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
