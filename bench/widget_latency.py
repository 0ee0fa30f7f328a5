"""Latency of the recommendation widgets with the model loaded, on the current database.

Times ``blend_similar`` ("Similar items" on a product page) and ``recommend_for_user``
("Recommended for you") for known shoppers and anonymous sessions, and the whole product
page through Django's test client. Run it on the demo shop (``make demo`` prepares it)::

    .venv/bin/python bench/widget_latency.py [--queries 200] [--profile default]

Prints one JSON object with p50/p95 in milliseconds.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def timed(fn, n):
    times = []
    for i in range(n):
        start = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - start) * 1000)
    return {
        "p50_ms": round(float(np.percentile(times, 50)), 2),
        "p95_ms": round(float(np.percentile(times, 95)), 2),
        "n": n,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--profile", default=None)
    args = parser.parse_args()

    import django

    django.setup()
    from django.apps import apps
    from django.conf import settings
    from django.test import Client

    from recommendations.blending.blend import blend_similar, recommend_for_user
    from recommendations.models import Event
    from recommendations.services import serving

    settings.ALLOWED_HOSTS = ["*"]
    product_model = apps.get_model(settings.LOOKALIKE_PRODUCT_MODEL)
    rng = np.random.default_rng(0)
    product_ids = list(product_model.objects.filter(is_active=True).values_list("pk", flat=True))
    products = product_model.objects.in_bulk(rng.choice(product_ids, args.queries).tolist())
    sample = list(products.values())
    sessions = list(
        Event.objects.exclude(session_key="")
        .values_list("session_key", flat=True)
        .distinct()[: args.queries]
    )
    model = serving.get_active_model()
    if model is None or not sessions:
        sys.exit("No active model or no events: run `manage.py prepare_demo` first.")
    # Warm up: the encoder is not needed, but the model and the caches are.
    blend_similar(sample[0], session_key=sessions[0], profile=args.profile)
    client = Client()
    report = {
        "products": len(product_ids),
        "model_version": model.version,
        "similar_items_widget": timed(
            lambda i: blend_similar(
                sample[i % len(sample)],
                session_key=sessions[i % len(sessions)],
                profile=args.profile,
            ),
            args.queries,
        ),
        "for_you_widget_known_session": timed(
            lambda i: recommend_for_user(
                session_key=sessions[i % len(sessions)], profile=args.profile
            ),
            args.queries,
        ),
        "for_you_widget_new_session": timed(
            lambda i: recommend_for_user(session_key=f"bench-new-{i}", profile=args.profile),
            args.queries,
        ),
        "product_page_full_request": timed(
            lambda i: client.get(sample[i % len(sample)].get_absolute_url()), min(args.queries, 100)
        ),
    }
    Event.objects.filter(session_key=client.session.session_key).delete()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
