"""Benchmark of "similar products" search at 100,000 products, with and without filters.

Usage::

    .venv/bin/python bench/similar_search.py [--rows 100000] [--queries 200] [--rebuild]

Needs the demo catalogue embedded with the default encoder in the project database
(``manage.py prepare_demo`` then ``manage.py reindex --stale``): its real 1280-d
EfficientNet-Lite0 vectors are the seeds. Each bench product copies a random seed's category
and gets ``seed + noise`` (noise of norm ``--noise`` before re-normalising, so two copies of
one seed have a cosine of about ``1 / (1 + noise**2)``), a random price (5 to 200) and stock.

Everything is written to a separate database, ``<NAME>_bench`` on the same server (created
and migrated here, kept for the next run), so the shop's catalogue is never touched. The
searches go through :mod:`visualsearch.search`, as the shop's pages do, and are
compared with exact answers computed in numpy. Cases:

* ``no_filter``;
* ``own_category``: the query's category (10 % of rows, near the query: the category's own
  HNSW graph);
* ``far_category_price``: another category and a price band of 10 % of the range, about
  1 % of rows, far from the query (below ``CATEGORY_EXACT_SEARCH_MAX_ROWS``: the exact range
  scan over the vectors' copies of category and price);
* ``far_category``: another category alone (10 %, far: the other category's graph).

Between the exact threshold and ``SIGN_BITS_MAX_ROWS`` (20,000) a far category filter is
ranked by the vectors' centred sign bits instead (``sign_bits``: ``far_category_price`` at a
million rows, ``far_category`` at 100,000); ``--setting SIGN_BITS=0`` measures the plans
without them, ``--rerank`` sweeps ``SIGN_BITS_RERANK`` on the two far cases. The bench
writes each vector's sign bits with it, around the mean of the bench's vectors.

Prints one JSON object: p50/p95 of the whole search call in ms (the database round trips
included), p50/p95 of the time spent in the database (``db_``: the first 100 searches' statements
replayed at once with ``EXPLAIN ANALYZE``, so with their pages already in shared buffers: the
call times show the cost of reading them), recall@10 against exact search, the fewest rows
returned, which plan answered (read from the :class:`~visualsearch.search.SearchResult`;
``index_then_exact``: a plan came up short and the exact plan over the product table
answered), the shared buffers (the table and its indexes are loaded
into them first with ``pg_prewarm``, as on a server that has been answering searches), and
the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from decimal import Decimal
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

ENCODER = "efficientnet_lite0"
K = 10
#: Rows generated, signed or read at a time.
CHUNK = 10_000
#: What a sweep reports of each case.
SWEPT = ("p50_ms", "p95_ms", "db_p50_ms", "db_p95_ms", "recall_at_10", "plans")
PRICE_RANGE = (5.0, 200.0)


def setup_django():
    import django
    from django.conf import settings

    source = dict(settings.DATABASES["default"])
    settings.DATABASES = {"default": dict(source, NAME=source["NAME"] + "_bench"), "source": source}
    django.setup()


def copy_products(cursor, rows):
    """COPY active products into the (emptied) product table, each row ``(title, category
    id, price, stock, image name)``; their ids, in order."""
    with cursor.copy(
        "COPY shop_product (title, description, category_id, price, stock, image, "
        "is_active, created_at, updated_at) FROM STDIN"
    ) as copy:
        for title, category, price, stock, image in rows:
            copy.write_row([title, "", category, price, stock, image, True, "now", "now"])
    cursor.execute("SELECT id FROM shop_product ORDER BY id")
    return [r[0] for r in cursor.fetchall()]


def ensure_bench_database():
    from django.core.management import call_command
    from django.db import connections

    name = connections["default"].settings_dict["NAME"]
    with connections["default"]._nodb_cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{name}"')
    call_command("migrate", database="default", verbosity=0, interactive=False)


def _array(value):
    """A vector from the untyped column (pgvector's loader gives a ``Vector``) as float32."""
    if hasattr(value, "to_numpy"):
        value = value.to_numpy()
    return np.asarray(value, dtype=np.float32)


def seed_vectors():
    """The demo catalogue's vectors and category slugs, from the project database."""
    from django.db import connections
    from pgvector.psycopg import register_vector

    conn = connections["source"]
    conn.ensure_connection()
    register_vector(conn.connection)
    with conn.connection.cursor() as cursor:
        cursor.execute(
            "SELECT e.embedding, c.slug, e.weights_hash FROM visualsearch_productembedding e "
            "JOIN shop_product p ON p.id = e.product_id "
            "JOIN shop_category c ON c.id = p.category_id WHERE e.encoder = %s ORDER BY p.id",
            [ENCODER],
        )
        rows = cursor.fetchall()
    if len(rows) < 1000:
        sys.exit(
            f"Only {len(rows)} {ENCODER} vectors in the project database: run "
            "`manage.py prepare_demo` and `manage.py reindex --stale` first."
        )
    vectors = np.stack([_array(r[0]) for r in rows])
    weights = {r[2] for r in rows}
    if len(weights) != 1:
        sys.exit(
            f"The {ENCODER} vectors come from {len(weights)} versions of the weights: run "
            "`manage.py reindex --stale` first."
        )
    return vectors, [r[1] for r in rows], weights.pop()


def build(rows, noise, seed):
    """Fill the bench database; returns (vectors, category ids, prices, product ids)."""
    from django.db import connection
    from django.utils import timezone
    from pgvector.psycopg import register_vector

    from shop.demo.catalog import ensure_categories
    from visualsearch.models import VectorCentre
    from visualsearch.services import vector_index

    # The seeds' weights hash: the search only compares vectors of the encoder's current
    # weights (a projection refitted since makes the others stale).
    seeds, slugs, weights = seed_vectors()
    from shop.models import Category

    ensure_categories()
    categories = dict(Category.objects.values_list("slug", "pk"))
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(seeds), rows)
    # The noise is drawn a chunk at a time (the same stream as one draw): at a million rows
    # one draw of float64s would take 10 GB beside the vectors' 5.
    vectors = seeds[pick]
    scale = noise / np.sqrt(seeds.shape[1])
    for start in range(0, rows, CHUNK):
        part = vectors[start : start + CHUNK]
        part += rng.normal(size=part.shape).astype(np.float32) * scale
        part /= np.linalg.norm(part, axis=1, keepdims=True)
    category_ids = np.array([categories[slugs[i]] for i in pick])
    prices = np.round(rng.uniform(*PRICE_RANGE, rows), 2)
    stock = rng.integers(0, 20, rows)

    timings = {}
    connection.ensure_connection()
    register_vector(connection.connection)
    with connection.connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE visualsearch_productembedding, visualsearch_indexfailure, shop_product, "
            "visualsearch_vectorcentre RESTART IDENTITY CASCADE"
        )
        connection.connection.commit()
        # The centre first, so that every vector is copied with its sign bits.
        # Recorded whatever the settings say, so that the bits written match a centre.
        centre = vectors.mean(axis=0, dtype=np.float64).astype(np.float32)
        VectorCentre.objects.create(
            encoder=ENCODER, weights_hash=weights, centre=centre, vectors=rows
        )
        vector_index.drop_index(ENCODER, seeds.shape[1])
        t = time.monotonic()
        product_ids = np.array(
            copy_products(
                cursor,
                (
                    (
                        f"Bench {i}",
                        int(category_ids[i]),
                        Decimal(f"{prices[i]:.2f}"),
                        int(stock[i]),
                        f"bench/{i}.png",
                    )
                    for i in range(rows)
                ),
            )
        )
        with cursor.copy(
            "COPY visualsearch_productembedding (product_id, encoder, weights_hash, image_name, "
            "image_checksum, embedding, product_category, product_price, computed_at, signs) "
            "FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(
                [
                    "int8",
                    "varchar",
                    "varchar",
                    "varchar",
                    "varchar",
                    "vector",
                    "int8",
                    "float8",
                    "timestamptz",
                    "bytea",
                ]
            )
            now = timezone.now()
            for pid, vector, cat, price, bits in zip(
                product_ids, vectors, category_ids, prices, signs(vectors, centre), strict=True
            ):
                copy.write_row(
                    [
                        int(pid),
                        ENCODER,
                        weights,
                        f"bench/{pid}.png",
                        "",
                        vector,
                        int(cat),
                        float(Decimal(f"{price:.2f}")),
                        now,
                        bits,
                    ]
                )
        connection.connection.commit()
        timings["copy_s"] = round(time.monotonic() - t, 2)
        t = time.monotonic()
        cursor.execute("SET maintenance_work_mem = '2GB'")
        cursor.execute("SET max_parallel_maintenance_workers = 2")
        connection.connection.commit()
    vector_index.ensure_index(ENCODER, seeds.shape[1])
    timings["index_build_s"] = round(time.monotonic() - t, 1)
    t = time.monotonic()
    timings["category_indexes"] = len(vector_index.ensure_category_indexes(ENCODER, seeds.shape[1]))
    timings["category_index_build_s"] = round(time.monotonic() - t, 1)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE visualsearch_productembedding")
        cursor.execute("VACUUM ANALYZE shop_product")
    return timings


def signs(vectors, centre, chunk=CHUNK):
    """The sign bits of each vector (``bit varying``'s binary form), a chunk at a time."""
    from visualsearch.services.sign_bits import packed_signs

    for start in range(0, len(vectors), chunk):
        yield from packed_signs(vectors[start : start + chunk], centre)


def prewarm():
    """Load the embedding table and its indexes into shared buffers, as a server that has
    been answering searches for a while holds them; returns what was done, for the report.

    Uses ``pg_prewarm`` (a contrib module, present in the embedded server); elsewhere the
    warm-up searches alone warm the caches, and the report says so.
    """
    from django.db import DatabaseError, connection, transaction

    from visualsearch.models import ProductEmbedding

    table = ProductEmbedding._meta.db_table
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
            cursor.execute("SHOW shared_buffers")
            buffers = cursor.fetchone()[0]
            cursor.execute(
                "SELECT sum(pg_prewarm(c.oid)) * current_setting('block_size')::int / 1048576 "
                "FROM pg_class c WHERE c.oid = %s::regclass OR c.oid IN "
                "(SELECT indexrelid FROM pg_index WHERE indrelid = %s::regclass) "
                "OR c.oid IN ('shop_product'::regclass)",
                [table, table],
            )
            loaded = cursor.fetchone()[0]
    except DatabaseError as exc:
        return {"prewarmed": False, "reason": str(exc).splitlines()[0]}
    return {"prewarmed": True, "prewarmed_mb": int(loaded), "shared_buffers": buffers}


def load_bench():
    """The bench's products and vectors, read a chunk at a time through a server-side cursor
    into arrays made once (a million rows as Python objects took more than 17 GB)."""
    from django.db import connection
    from pgvector.psycopg import register_vector

    connection.ensure_connection()
    register_vector(connection.connection)
    with connection.connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), max(vector_dims(embedding)) FROM visualsearch_productembedding "
            "WHERE encoder = %s",
            [ENCODER],
        )
        rows, dim = cursor.fetchone()
    ids, cats = np.zeros(rows, np.int64), np.zeros(rows, np.int64)
    prices, vectors = np.zeros(rows), np.zeros((rows, dim), np.float32)
    with connection.connection.transaction(), connection.connection.cursor("bench") as cursor:
        cursor.execute(
            "SELECT p.id, p.category_id, p.price, e.embedding FROM shop_product p "
            "JOIN visualsearch_productembedding e ON e.product_id = p.id AND e.encoder = %s "
            "ORDER BY p.id",
            [ENCODER],
        )
        done = 0
        while chunk := cursor.fetchmany(CHUNK):
            end = done + len(chunk)
            ids[done:end] = [r[0] for r in chunk]
            cats[done:end] = [r[1] for r in chunk]
            prices[done:end] = [float(r[2]) for r in chunk]
            vectors[done:end] = np.stack([_array(r[3]) for r in chunk])
            done = end
    return ids[:done], cats[:done], prices[:done], vectors[:done]


DB_SAMPLE = 100


def database_time(statements):
    """Planning plus execution time, in ms, of a search's statements, replayed with
    ``EXPLAIN ANALYZE`` under the same settings: the time spent in the database itself,
    without the client round trips (which dominate on a loaded machine)."""
    from django.db import connection, transaction

    # A search sends its statements several to a message ("BEGIN; probe; search;
    # ROLLBACK", see visualsearch.search.executors): replay them one by one. The bench's
    # statements hold no "; " inside a literal (the query vector is a sub-select).
    statements = [part for sql in statements for part in sql.split("; ")]
    total = 0.0
    with transaction.atomic(), connection.cursor() as cursor:
        for sql in statements:
            # The first statement applies the settings (EXPLAIN ANALYZE runs it) and counts.
            if sql.startswith(("SELECT", "WITH")):
                cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)
                plan = cursor.fetchone()[0]
                plan = json.loads(plan) if isinstance(plan, str) else plan
                total += plan[0]["Planning Time"] + plan[0]["Execution Time"]
        transaction.set_rollback(True)
    return total


def exact_answers(queries, make_filter, ids, vectors):
    """``(filters, true neighbours, how many exist up to k)`` of each query, in numpy."""
    expected_sets = []
    for q in queries:
        filters, mask = make_filter(q)
        mask = mask.copy()
        mask[q] = False
        sims = vectors @ vectors[q]
        sims[~mask] = -np.inf
        truth = set(ids[np.argsort(-sims)[:K]][np.isfinite(np.sort(-sims)[:K])].tolist())
        expected_sets.append((filters, truth, min(K, int(mask.sum()))))
    return expected_sets


def run_case(name, queries, expected_sets, ids, plans):
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    from visualsearch import search

    time.sleep(0.2)
    latencies, recalls, returned, db_ms = [], [], [], []
    for n, (q, (filters, truth, expected)) in enumerate(zip(queries, expected_sets, strict=True)):
        reset_queries()  # the capture keeps at most 9000 statements
        t = time.perf_counter()
        with CaptureQueriesContext(connection) as captured:
            result = search.search_with_plan(
                product_id=int(ids[q]), k=K, filters=filters, encoder=ENCODER
            )
        latencies.append((time.perf_counter() - t) * 1000)
        plans.count(result)
        hits = result.hits
        if n < DB_SAMPLE:
            db_ms.append(database_time([c["sql"] for c in captured.captured_queries]))
        returned.append(len(hits))
        recalls.append(len(truth & {h.product_id for h in hits}) / expected if expected else 1.0)
    counts = plans.pop_counts()
    return {
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p95_ms": round(float(np.percentile(latencies, 95)), 2),
        "db_p50_ms": round(float(np.percentile(db_ms, 50)), 2),
        "db_p95_ms": round(float(np.percentile(db_ms, 95)), 2),
        "recall_at_10": round(float(np.mean(recalls)), 4),
        "min_rows": int(min(returned)),
        "always_k": all(r == K for r in returned),
        "plans": counts,
    }


class PlanCounter:
    """Counts which plan answered each search, from the plan the search returns."""

    #: The report's names of the plans (those of the first reports, for comparison).
    NAMES = {
        "exact_over_products": "exact",
        "exact_over_copies": "copy_exact",
        "hnsw": "index",
        "category_hnsw": "category_index",
        "sign_bits": "sign_bits",
    }

    def __init__(self):
        self.counts = dict.fromkeys([*self.NAMES.values(), "index_then_exact"], 0)

    def count(self, result):
        key = "index_then_exact" if result.fell_back else self.NAMES[result.plan.kind]
        self.counts[key] += 1

    def pop_counts(self):
        counts, self.counts = self.counts, {k: 0 for k in self.counts}
        return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--noise", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rebuild", action="store_true", help="Rebuild the bench data.")
    parser.add_argument(
        "--ef-search",
        type=int,
        nargs="*",
        default=[40, 100, 200],
        help="hnsw.ef_search values to sweep on the no-filter case.",
    )
    parser.add_argument(
        "--far-ef-search",
        type=int,
        nargs="*",
        default=[],
        help="CATEGORY_FAR_EF_SEARCH values to sweep on the two far-category cases.",
    )
    parser.add_argument(
        "--rerank",
        type=int,
        nargs="*",
        default=[],
        help="SIGN_BITS_RERANK values to sweep on the two far-category cases.",
    )
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="Override a VISUALSEARCH_ setting (integer value) for the whole run, to compare "
        "strategies, e.g. CATEGORY_EXACT_SEARCH_MAX_ROWS=2000.",
    )
    args = parser.parse_args()
    overrides = {}
    for item in args.setting:
        name, sep, value = item.partition("=")
        if not sep or not value.lstrip("-").isdigit():
            parser.error(f"--setting takes NAME=INTEGER, got {item!r}.")
        overrides["VISUALSEARCH_" + name.removeprefix("VISUALSEARCH_")] = int(value)

    # One BLAS thread: the exact answers are cheap, and idle BLAS threads would spin on the
    # core the database needs.
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    setup_django()
    from django.conf import settings
    from django.test.utils import override_settings

    from visualsearch import search
    from visualsearch.conf import app_settings

    for name, value in overrides.items():
        setattr(settings, name, value)
    ensure_bench_database()
    report = {"rows": args.rows, "noise": args.noise, "queries": args.queries, "k": K}
    report["load_average_before"] = [round(x, 2) for x in os.getloadavg()]
    from visualsearch.encoders import get_encoder
    from visualsearch.models import ProductEmbedding, VectorCentre

    # Vectors labelled with other weights than the encoder's (its projection was refitted
    # since the build) are stale, and the search would not compare them: rebuild.
    stored = ProductEmbedding.objects.filter(encoder=ENCODER)
    stale = stored.exclude(weights_hash=get_encoder(ENCODER).weights_hash).exists()
    unsigned = stored.filter(signs__isnull=True).exists() or not VectorCentre.objects.exists()
    if args.rebuild or stale or unsigned or stored.count() != args.rows:
        report.update(build(args.rows, args.noise, args.seed))
    ids, cats, prices, vectors = load_bench()
    report["dim"] = int(vectors.shape[1])

    rng = np.random.default_rng(args.seed + 1)
    queries = rng.choice(len(ids), size=args.queries, replace=False)
    category_list = np.unique(cats)
    everything = np.ones(len(ids), dtype=bool)
    band = (PRICE_RANGE[1] - PRICE_RANGE[0]) * 0.10

    def other_category(q):
        return category_list[(np.searchsorted(category_list, cats[q]) + 5) % len(category_list)]

    def far_price(q):
        low = PRICE_RANGE[0] + (q * 7919 % 1000) / 1000 * (PRICE_RANGE[1] - PRICE_RANGE[0] - band)
        return round(low, 2), round(low + band, 2)

    cases = {
        "no_filter": lambda q: (None, everything),
        "own_category": lambda q: (search.Filters(category_id=int(cats[q])), cats == cats[q]),
        "far_category_price": lambda q: (
            search.Filters(
                category_id=int(other_category(q)),
                min_price=Decimal(str(far_price(q)[0])),
                max_price=Decimal(str(far_price(q)[1])),
            ),
            (cats == other_category(q)) & (prices >= far_price(q)[0]) & (prices <= far_price(q)[1]),
        ),
        "far_category": lambda q: (
            search.Filters(category_id=int(other_category(q))),
            cats == other_category(q),
        ),
    }
    # The exact answers first, then the vectors go: numpy's BLAS threads keep spinning for a
    # while after a product, and the 5 GB of a million vectors would otherwise take the
    # memory the server's pages need.
    answers = {name: exact_answers(queries, make, ids, vectors) for name, make in cases.items()}
    del vectors
    report["cache"] = prewarm()
    plans = PlanCounter()
    # Warm the caches (index and heap pages) before timing.
    for q in queries[:50]:
        search.similar_to_product(int(ids[q]), k=K, encoder=ENCODER)
    plans.pop_counts()
    mean_rows = {
        name: round(float(np.mean([make(q)[1].sum() for q in queries[:50]])) / len(ids), 4)
        for name, make in cases.items()
    }
    report["settings"] = {
        "ef_search": app_settings.EF_SEARCH,
        "exact_search_max_rows": app_settings.EXACT_SEARCH_MAX_ROWS,
        "max_scan_tuples": app_settings.MAX_SCAN_TUPLES,
        "category_exact_search_max_rows": app_settings.CATEGORY_EXACT_SEARCH_MAX_ROWS,
        "category_far_ef_search": app_settings.CATEGORY_FAR_EF_SEARCH,
        "category_indexes": app_settings.CATEGORY_INDEXES,
        "sign_bits": bool(app_settings.SIGN_BITS),
        "sign_bits_max_rows": app_settings.SIGN_BITS_MAX_ROWS,
        "sign_bits_rerank": app_settings.SIGN_BITS_RERANK,
    }
    report["cases"] = {}
    for name in cases:
        report["cases"][name] = {
            "selectivity": mean_rows[name],
            **run_case(name, queries, answers[name], ids, plans),
        }

    def sweep(setting, values, names, keyed=lambda name, value: f"{name}@{value}"):
        """Each case of ``names`` again under each value of ``VISUALSEARCH_<setting>``."""
        out = {}
        for value in values:
            for name in names:
                with override_settings(**{f"VISUALSEARCH_{setting}": value}):
                    result = run_case(name, queries, answers[name], ids, plans)
                out[keyed(name, value)] = {k: result[k] for k in SWEPT}
        return out

    far = ("far_category_price", "far_category")
    report["ef_search_sweep"] = sweep(
        "EF_SEARCH", args.ef_search, ["no_filter"], lambda name, value: value
    )
    if args.far_ef_search:
        report["far_ef_search_sweep"] = sweep("CATEGORY_FAR_EF_SEARCH", args.far_ef_search, far)
    if args.rerank:
        report["rerank_sweep"] = sweep("SIGN_BITS_RERANK", args.rerank, far)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
