"""Steps of the replica tests, run in a process of their own on the test cluster
(``python -m tests.replicas.scenario STEP``): the pytest process has its own database, and
the router needs the replica configured from the start, as a shop would. Each step prints
one JSON object; ``test_replicas.py`` asserts on it."""

import json
import os
import sys
import time


def setup():
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.replicas.settings")
    django.setup()


def wait_until(condition, timeout=20.0):
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError("timed out")


def on_replica(query):
    from django.db import connections

    with connections["replica_1"].cursor() as cursor:
        cursor.execute(query)
        return cursor.fetchone()[0]


def step_seed():
    """Migrate the primary and load 12 products with images and vectors."""
    from django.core.management import call_command

    from tests.factories import CategoryFactory, ProductFactory
    from tests.visualsearch.conftest import catalogue_image
    from visualsearch import indexing

    call_command("migrate", verbosity=0, interactive=False)
    category = CategoryFactory(name="Kind", slug="kind")
    products = [ProductFactory(category=category, image=catalogue_image(i)) for i in range(12)]
    indexing.reindex("stale")
    lag = wait_until(lambda: on_replica("SELECT count(*) FROM visualsearch_productembedding") == 12)
    return {"products": [p.pk for p in products], "replicated_in": lag}


def _aliases_used(func):
    """``(result, {alias: queries})`` of ``func()``, counting the queries Django ran on
    each connection (an execute wrapper: it opens no connection of its own)."""
    from contextlib import ExitStack

    from django.db import connections

    counts = {alias: 0 for alias in connections}

    def counter(alias):
        def wrapper(execute, sql, params, many, context):
            counts[alias] += 1
            return execute(sql, params, many, context)

        return wrapper

    with ExitStack() as stack:
        for alias in connections:
            stack.enter_context(connections[alias].execute_wrapper(counter(alias)))
        result = func()
    return result, counts


def step_read():
    """ORM reads, the binary vector reader and whole pages, and where each went."""
    from django.db import connections
    from django.test import Client

    from lookalike.routing import read_alias, use_replicas
    from shop.models import Product
    from visualsearch.models import ProductEmbedding
    from visualsearch.services.vectors import load_vectors

    out = {"outside_a_request": ProductEmbedding.objects.all().db}
    replicas = use_replicas()
    replicas.__enter__()
    embeddings = ProductEmbedding.objects.all()
    out["embedding_alias"] = embeddings.db
    with connections[embeddings.db].cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery()")
        out["embedding_connection_in_recovery"] = cursor.fetchone()[0]
    out["embedding_rows"] = len(list(embeddings))
    ids = list(Product.objects.values_list("pk", flat=True))
    vectors, used = _aliases_used(lambda: load_vectors(ids))
    out["vectors"] = len(vectors)
    out["vectors_alias"] = read_alias(ProductEmbedding)
    from lookalike.jobs.models import Job
    from recommendations.models import Event
    from visualsearch.services.search import similar_to_product

    def search_statements(execute, sql, params, many, context):
        if "set_config('hnsw.ef_search'" in sql:
            out.setdefault("search_probe_aliases", []).append(context["connection"].alias)
        return execute(sql, params, many, context)

    with connections["default"].execute_wrapper(search_statements):
        with connections["replica_1"].execute_wrapper(search_statements):
            out["similar"] = len(similar_to_product(ids[0], k=5))
    out["event_alias"] = read_alias(Event)
    out["job_alias"] = read_alias(Job)
    out["session_alias"] = Job.objects.all().db
    replicas.__exit__(None, None, None)
    client = Client()
    pages = {}
    for name, url in {
        "product": f"/p/{ids[0]}/",
        "similar_api": f"/api/products/{ids[0]}/similar/",
        "home": "/",
    }.items():
        response, used = _aliases_used(lambda url=url: client.get(url))
        pages[name] = {"status": response.status_code, "queries": used}
    out["pages"] = pages
    return out


def step_replicate():
    """A product saved on the primary shows on the replica within moments."""
    from lookalike.routing import use_replicas
    from shop.models import Product
    from tests.factories import ProductFactory

    product = ProductFactory(title="Fresh from the primary")
    with use_replicas():
        lag = wait_until(lambda: Product.objects.filter(pk=product.pk).exists())
        return {"alias": Product.objects.all().db, "lag": lag, "pk": product.pk}


def step_failover():
    """Requests before and after the replica is stopped: none may fail."""
    import subprocess

    from django.test import Client

    from shop.models import Product
    from visualsearch.models import ProductEmbedding

    client = Client()
    ids = list(ProductEmbedding.objects.values_list("product_id", flat=True)[:5])
    results = []

    def replicas_health():
        return client.get("/health/?format=json").json().get("Replicas()")

    health = {"before": replicas_health()}
    for i in range(30):
        if i == 10:
            subprocess.run(json.loads(os.environ["STOP_REPLICA"]), check=True, capture_output=True)
        url = f"/p/{ids[i % len(ids)]}/" if i % 2 else f"/api/products/{ids[i % len(ids)]}/similar/"
        response, used = _aliases_used(lambda url=url: client.get(url))
        results.append({"i": i, "status": response.status_code, "queries": used})
    from lookalike.routing import use_replicas

    health["after"] = replicas_health()
    with use_replicas():
        return {"requests": results, "alias_after": Product.objects.all().db, "health": health}


if __name__ == "__main__":
    setup()
    print(json.dumps(globals()[f"step_{sys.argv[1]}"](), default=str))
