"""Latency of the shop's pages and the recommendation widgets, in one process.

Times, on the demo database (``make demo`` or ``manage.py prepare_demo`` prepares it: a
trained model and the 2,000 simulated shoppers), through Django's test client: the
product page (with its "Similar items" strip; ``product_page_both_widgets``: with "For you"
below it too, other products), the home page (with "For you"), the
"find similar" page (each product's first view in this process, then the same products
again: ``find_similar_page_seen``); and the widgets' own blends as their template tags call
them:
"Similar items" and "For you" for the demo's simulated shoppers (anonymous sessions with
a history, known to the model), "For you" for a signed-in shopper with a history.
"Similar items" is timed on the products whose pages were timed first (their look-alikes
kept in this process, as on a shop where others viewed them) and on products of their own
(``similar_items_first_view``). Each series is warmed up first, then timed over
``--samples`` requests, shoppers taking turns; products are drawn from 1,000, so above
about 300 samples the series share products.

    .venv/bin/python bench/page_latency.py [--samples 300] [--warmup 30]

Prints one JSON object, p50/p95/mean in milliseconds of wall time, and p50/p95 of this
process's CPU time (without PostgreSQL's; a busy machine inflates it least). The shopper
this bench signs in and the events its page views record are deleted at the end;
``--profile FILE`` also writes a cProfile of the timed page requests.
"""

import argparse
import cProfile
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

BENCH_USER = "bench-page-latency"
#: The shop's product page shows one strip ("Similar items", personalised); the speed issue
#: times a product page with both widgets. This template, first in the loaders, extends the
#: shop's own page of the same name and adds "For you" below its strip.
BOTH_WIDGETS = (
    '{% extends "shop/product.html" %}{% load recommendations %}'
    "{% block similar %}{{ block.super }}{% recommended_for_you %}{% endblock %}"
)
#: Products a bench shopper views before it is timed: its history.
HISTORY = 8


def timed(fn, n, warmup, profiler=None):
    """p50/p95/mean in ms of ``fn(i)`` over ``n`` calls after ``warmup`` untimed ones."""
    for i in range(warmup):
        fn(i)
    times, cpu = [], []
    for i in range(n):
        if profiler is not None:
            profiler.enable()
        start, start_cpu = time.perf_counter(), time.process_time()
        fn(warmup + i)
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
        if profiler is not None:
            profiler.disable()
    return {
        "p50_ms": round(float(np.percentile(times, 50)), 2),
        "p95_ms": round(float(np.percentile(times, 95)), 2),
        "mean_ms": round(float(np.mean(times)), 2),
        # This process's CPU alone (PostgreSQL's is not in it): what the machine's load
        # inflates least.
        "cpu_p50_ms": round(float(np.percentile(cpu, 50)), 2),
        "cpu_p95_ms": round(float(np.percentile(cpu, 95)), 2),
        "n": n,
    }


def in_request(fn):
    """``fn`` called inside a request's scope (:mod:`lookalike.requestcache`), as a
    template tag calls a widget: what a request reads once (the stamps, the encoder's
    weights) is read once per call, not once per question."""
    from lookalike import requestcache

    def call(i):
        requestcache.start()
        try:
            return fn(i)
        finally:
            requestcache.end()

    return call


def with_both_widgets(templates):
    """``TEMPLATES`` with the product page showing both widgets (:data:`BOTH_WIDGETS`)."""
    first = dict(templates[0])
    options = dict(first.get("OPTIONS", {}))
    loaders = options.pop("loaders", None) or [
        "django.template.loaders.filesystem.Loader",
        "django.template.loaders.app_directories.Loader",
    ]
    options["loaders"] = [
        (
            "django.template.loaders.cached.Loader",
            [("django.template.loaders.locmem.Loader", {"shop/product.html": BOTH_WIDGETS})]
            + list(loaders),
        )
    ]
    return [{**first, "APP_DIRS": False, "OPTIONS": options}, *templates[1:]]


def get(client, url):
    response = client.get(url)
    if response.status_code != 200:
        sys.exit(f"GET {url} answered {response.status_code}.")
    return response


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the page requests")
    args = parser.parse_args()
    if args.samples < 1 or args.warmup < 0:
        parser.error("--samples must be at least 1 and --warmup at least 0")

    import django

    django.setup()
    from django.apps import apps
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client, override_settings
    from django.urls import reverse

    from recommendations.blending.blend import blend_similar, recommend_for_user
    from recommendations.models import Event
    from recommendations.services import serving
    from visualsearch.models import ProductEmbedding

    settings.ALLOWED_HOSTS = ["*"]
    product_model = apps.get_model(settings.LOOKALIKE_PRODUCT_MODEL)
    model = serving.get_active_model()
    sessions = list(
        Event.objects.exclude(session_key="")
        .values_list("session_key", flat=True)
        .distinct()
        .order_by("session_key")
    )
    if model is None or len(sessions) < 2000:
        sys.exit(
            "Needs a trained model and the demo's 2,000 simulated shoppers: "
            "run `manage.py prepare_demo` first."
        )
    rng = np.random.default_rng(args.seed)
    with_vectors = list(
        ProductEmbedding.objects.filter(product__is_active=True)
        .values_list("product_id", flat=True)
        .distinct()
    )
    picked = rng.choice(with_vectors, min(len(with_vectors), 1000), replace=False).tolist()
    products = list(product_model.objects.in_bulk(picked).values())
    rng.shuffle(products)
    rng.shuffle(sessions)

    def product(i):
        return products[i % len(products)]

    def session(i):
        return sessions[i % len(sessions)]

    user_model = get_user_model()
    user_model.objects.filter(username=BENCH_USER).delete()
    user = user_model.objects.create_user(BENCH_USER, password=None)
    anonymous, signed_in = Client(), Client()
    signed_in.force_login(user)
    for i in range(HISTORY):
        get(anonymous, product(-1 - i).get_absolute_url())
        get(signed_in, product(-1 - i).get_absolute_url())
    anonymous_key = anonymous.session.session_key
    profiler = cProfile.Profile() if args.profile else None
    n, warmup = args.samples, args.warmup
    try:
        pages = {
            "product_page": timed(
                lambda i: get(anonymous, product(i).get_absolute_url()), n, warmup, profiler
            ),
            "product_page_signed_in": timed(
                lambda i: get(signed_in, product(i).get_absolute_url()), n, warmup, profiler
            ),
        }
        with override_settings(TEMPLATES=with_both_widgets(settings.TEMPLATES)):
            # Products of their own (first views too), after those of the series above.
            pages["product_page_both_widgets"] = timed(
                lambda i: get(anonymous, product(i + n + warmup).get_absolute_url()),
                n,
                warmup,
                profiler,
            )
        pages |= {
            "home": timed(lambda i: get(anonymous, "/"), n, warmup, profiler),
            "home_signed_in": timed(lambda i: get(signed_in, "/"), n, warmup, profiler),
            "find_similar_page": timed(
                lambda i: get(anonymous, reverse("visualsearch:similar", args=[product(i).pk])),
                n,
                warmup,
                profiler,
            ),
            # The same products again, as the next shoppers to look at them would see them:
            # their answers are kept (visualsearch.search.remembered).
            "find_similar_page_seen": timed(
                lambda i: get(anonymous, reverse("visualsearch:similar", args=[product(i).pk])),
                n,
                warmup,
                profiler,
            ),
        }
        widgets = {
            # Products whose pages were viewed above: their look-alikes are kept in this
            # process (visualsearch.search.remembered), shared by every shopper.
            "similar_items": timed(
                in_request(lambda i: blend_similar(product(i), session_key=session(i))),
                n,
                warmup,
            ),
            # Products not viewed before in this process: each blend searches the index.
            "similar_items_first_view": timed(
                in_request(
                    lambda i: blend_similar(product(i + 2 * (n + warmup)), session_key=session(i))
                ),
                n,
                warmup,
            ),
            "for_you_anonymous": timed(
                in_request(lambda i: recommend_for_user(session_key=session(i))), n, warmup
            ),
            "for_you_signed_in": timed(
                in_request(lambda i: recommend_for_user(user=user)), n, warmup
            ),
        }
    finally:
        hashed = anonymous.session.session_key
        Event.objects.filter(user=user).delete()
        from recommendations.events import hash_session_key

        Event.objects.filter(
            session_key__in=[hash_session_key(anonymous_key), hash_session_key(hashed)]
        ).delete()
        user.delete()
    if profiler is not None:
        profiler.dump_stats(args.profile)
    report = {
        "products": product_model.objects.count(),
        "shoppers": len(sessions),
        "model_version": model.version,
        "samples": n,
        "warmup": warmup,
        "load_average": Path("/proc/loadavg").read_text().split()[:3]
        if Path("/proc/loadavg").exists()
        else None,
        "pages": pages,
        "widgets": widgets,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
