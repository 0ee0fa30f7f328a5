"""Storage and index choices for "similar products" at a million products, side by side.

Usage::

    nice -n 5 .venv/bin/python bench/million_search.py [--rows 1000000] [--queries 200]
        [--variants binary,category,halfvec,full] [--out million.json]

The sibling of ``bench/similar_search.py`` (which runs the shop's own search service at
100,000 products): at a million products the choice of storage and index is the question,
so this bench compares them on one table with the statements the service would send for
each, in the shapes of :mod:`visualsearch.search.queries` (ordered HNSW scans with
``hnsw.iterative_scan = relaxed_order`` under a filter, a few more rows than ``k`` re-ranked
at full precision, exact range scans over a btree on category and price).

Data: the demo catalogue's real 1280-d EfficientNet-Lite0 vectors (``manage.py
prepare_demo``) are the seeds; each row copies a random seed's category and gets ``seed +
noise`` (as at 100k), a price from 5 to 200. The vectors are kept inline in the heap, as in
the shop's table (``toast_tuple_target = 8160``). The rows live in their own table ``items`` of
a database ``<NAME>_million`` on the embedded server (kept between runs; ``--rebuild``
reloads it). Exact answers come from numpy, the rows regenerated chunk by chunk from their
seeds (the float32 vectors, 5 GB, are never held at once).

Variants, each built, measured and dropped in turn (``--keep`` keeps them, and a later run
with ``--reuse`` measures the kept ones again without building them):

``full``
    HNSW over the full-precision vectors (``vector_cosine_ops``): the shop's choice today.
``halfvec``
    HNSW over ``embedding::halfvec(1280)`` (half the memory), twice ``k`` re-ranked at full
    precision.
``binary``
    HNSW over ``binary_quantize(embedding)::bit(1280)`` (Hamming distance, 1/32 of the
    memory), the nearest ``--rerank`` rows re-ranked at full precision.
``category``
    One half-precision HNSW per category (partial indexes ``WHERE category = c``, the
    per-category partitions of the graph), walked for any filter naming a category.

``copies``
    A table of inline copies of every vector, half precision (2.5 kB) and binary
    (``binary_quantize``, 160 bytes), with the category and price, kept out of TOAST
    (``STORAGE PLAIN``): the selective filter scanned exactly over the copies, the best
    ``2k + 10`` (half precision) or ``--rerank`` (binary) re-ranked at full precision.

``signs``
    A narrow table of the sign bits of each vector minus the rows' mean (160 bytes; sign
    bits of uncentred EfficientNet features carry little), with the category and price,
    and a ``(category, price)`` btree that includes the bits: the selective filter read by
    an index-only range scan over consecutive leaves, the ``--signs-rerank`` nearest by
    Hamming distance re-ranked at full precision.

``--variants copies`` or ``signs`` alone computes and measures the selective filter only.
Runs of this bench must not overlap on one database (each drops its variants' objects).

The ``exact`` plan (a range scan of the ``(category, price)`` btree, every vector compared)
is measured for the selective filter whatever the variant.

Cases: ``no_filter``; ``own_category`` (the query's category, 10 %); ``far_category_price``
(another category and a 10 % price band: 1 %, 10,000 rows at a million);
``far_category`` (another category, 10 %). Each reports p50/p95 of the statement's wall
time on one connection (one round trip over the local socket: the time the database took,
plus about 0.1 ms), recall@10 against exact search and whether every query returned k
rows; the scans (exact, copies, signs) also report ``EXPLAIN (ANALYZE, BUFFERS)`` of their
first query. Builds report seconds, the peak memory of the building processes (the backend and its
parallel worker, proportional set size) and the index's size on disk. Prints one JSON
object, also written to ``--out`` after every variant so that a long run leaves its figures
behind. The load average is recorded beside every figure: on a shared machine build times
are inflated by whatever else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

K = 10
DIM = 1280
CATEGORIES = 10
PRICE_RANGE = (5.0, 200.0)
CHUNK = 100_000
VARIANTS = ("binary", "category", "halfvec", "full", "copies", "signs")


def load():
    return [round(x, 2) for x in os.getloadavg()]


def connect(suffix):
    """A psycopg connection to ``<NAME>_<suffix>`` (created if missing) and the demo's seeds."""
    import django
    import psycopg
    from django.conf import settings

    django.setup()
    from bench.similar_search import seed_vectors

    settings.DATABASES["source"] = settings.DATABASES["default"]
    seeds, slugs, _weights = seed_vectors()
    from django.db import connection

    params = connection.get_connection_params()
    name = f"{params['dbname']}_{suffix}"
    with psycopg.connect(**params, autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            admin.execute(f'CREATE DATABASE "{name}"')
    conn = psycopg.connect(**dict(params, dbname=name), autocommit=True)
    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
    names = sorted(set(slugs))
    return conn, seeds, np.array([names.index(s) for s in slugs])


def chunk_rows(seeds, seed_categories, seed, noise, start, stop):
    """Rows ``start:stop``: ``(vectors, categories, prices)``, the same on every call."""
    rng = np.random.default_rng([seed, start])
    n = stop - start
    pick = rng.integers(0, len(seeds), n)
    vectors = seeds[pick] + rng.normal(size=(n, DIM)).astype(np.float32) * (noise / np.sqrt(DIM))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    prices = np.round(rng.uniform(*PRICE_RANGE, n), 2)
    return vectors.astype(np.float32), seed_categories[pick], prices


def build_table(conn, rows, seeds, seed_categories, seed, noise):
    """(Re)load ``items`` with binary ``COPY``; returns the timings."""
    from visualsearch.indexing.store import vector_binary

    conn.execute("DROP TABLE IF EXISTS items")
    # The vectors inline in the heap, as in the shop's own table (migration 0004): pgvector's
    # types default to STORAGE EXTERNAL, and a 5 kB vector out of line costs every exact
    # comparison a TOAST index probe and three chunk reads.
    conn.execute(
        "CREATE TABLE items (id int PRIMARY KEY, category int NOT NULL, price float8 NOT NULL, "
        f"embedding vector({DIM}) NOT NULL) WITH (toast_tuple_target = 8160)"
    )
    t = time.monotonic()
    with conn.cursor() as cursor:
        with cursor.copy("COPY items FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int4", "int4", "float8", "bytea"])
            for start in range(0, rows, CHUNK):
                stop = min(start + CHUNK, rows)
                vectors, cats, prices = chunk_rows(seeds, seed_categories, seed, noise, start, stop)
                for i, data in enumerate(vector_binary(vectors)):
                    copy.write_row((start + i, int(cats[i]), float(prices[i]), data))
    copy_s = time.monotonic() - t
    conn.execute("CREATE INDEX items_category_price ON items (category, price)")
    # Wide vectors live out of line, so the heap looks tiny and index builds would run in
    # one process: ask for a parallel worker (the second core).
    conn.execute("ALTER TABLE items SET (parallel_workers = 1)")
    conn.execute("VACUUM ANALYZE items")
    return {
        "copy_s": round(copy_s, 1),
        "copy_rows_per_s": round(rows / copy_s),
        "table_mb": table_mb(conn),
        "load_during_copy": load(),
    }


def table_mb(conn):
    return round(conn.execute("SELECT pg_total_relation_size('items')").fetchone()[0] / 2**20)


class Cases:
    """The queries of each case, their filters and exact answers."""

    def __init__(self, rows, queries, seeds, seed_categories, seed, noise, only=None):
        self.rows = rows
        self.categories = np.empty(rows, dtype=np.int64)
        self.prices = np.empty(rows)
        rng = np.random.default_rng(seed + 1)
        self.ids = np.sort(rng.choice(rows, size=queries, replace=False))
        self.queries = np.zeros((queries, DIM), dtype=np.float32)
        self.chunk = lambda start, stop: chunk_rows(
            seeds, seed_categories, seed, noise, start, stop
        )
        total = np.zeros(DIM)
        for start in range(0, rows, CHUNK):
            stop = min(start + CHUNK, rows)
            vectors, self.categories[start:stop], self.prices[start:stop] = self.chunk(start, stop)
            inside = (self.ids >= start) & (self.ids < stop)
            self.queries[inside] = vectors[self.ids[inside] - start]
            total += vectors.sum(axis=0)
        #: The rows' mean, as pgvector's text: the ``signs`` variant's centre.
        self.centre = "[" + ",".join(f"{x:.6f}" for x in total / rows) + "]"
        band = (PRICE_RANGE[1] - PRICE_RANGE[0]) * 0.10
        self.filters = {
            "no_filter": [],
            "own_category": [],
            "far_category_price": [],
            "far_category": [],
        }
        for q in self.ids:
            own, other = int(self.categories[q]), int((self.categories[q] + 5) % CATEGORIES)
            low = PRICE_RANGE[0] + (q * 7919 % 1000) / 1000 * (
                PRICE_RANGE[1] - PRICE_RANGE[0] - band
            )
            self.filters["no_filter"].append({})
            self.filters["own_category"].append({"category": own})
            self.filters["far_category_price"].append(
                {"category": other, "price": (round(low, 2), round(low + band, 2))}
            )
            self.filters["far_category"].append({"category": other})
        if only:
            self.filters = {name: self.filters[name] for name in only}
        self.selectivity = {
            name: round(float(np.mean([self.mask(f, 0, rows).mean() for f in per[:50]])), 4)
            for name, per in self.filters.items()
        }
        self.truth = self._exact()

    def mask(self, filters, start, stop):
        keep = np.ones(stop - start, dtype=bool)
        if "category" in filters:
            keep &= self.categories[start:stop] == filters["category"]
        if "price" in filters:
            low, high = filters["price"]
            keep &= (self.prices[start:stop] >= low) & (self.prices[start:stop] <= high)
        return keep

    def _exact(self):
        best = {name: [[] for _ in self.ids] for name in self.filters}
        for start in range(0, self.rows, CHUNK):
            stop = min(start + CHUNK, self.rows)
            vectors, _, _ = self.chunk(start, stop)
            sims = vectors @ self.queries.T
            for i, q in enumerate(self.ids):
                if start <= q < stop:
                    sims[q - start, i] = -np.inf
            for name, per in self.filters.items():
                for i, filters in enumerate(per):
                    column = np.where(self.mask(filters, start, stop), sims[:, i], -np.inf)
                    top = np.argpartition(-column, K)[:K]
                    best[name][i] += [(column[j], start + j) for j in top if np.isfinite(column[j])]
        return {
            name: [{j for _, j in sorted(c, reverse=True)[:K]} for c in per]
            for name, per in best.items()
        }


def where(filters, alias=""):
    conds, args = [], []
    if "category" in filters:
        conds.append(f"{alias}category = {int(filters['category'])}")
    if "price" in filters:
        conds.append(f"{alias}price BETWEEN %s AND %s")
        args += list(filters["price"])
    return conds, args


QUERY = "(SELECT q.embedding FROM items q WHERE q.id = %s)"
#: The query vector cast once, inside the sub-select: a cast written around the sub-select
#: is an expression over a parameter, which an exact scan evaluates again for every row.
QUERY_HALF = f"(SELECT q.embedding::halfvec({DIM}) FROM items q WHERE q.id = %s)"
QUERY_BITS = f"(SELECT binary_quantize(q.embedding)::bit({DIM}) FROM items q WHERE q.id = %s)"


def statement(plan, filters, qid, rerank, centre=None):
    """``(sql, args)`` of one search under ``plan``; every one excludes the query product.
    ``centre`` is the rows' mean vector (text), which the ``signs`` plan subtracts."""
    conds, args = where(filters, "e.")
    conds.append("e.id <> %s")
    where_sql = " AND ".join(conds)
    if plan == "signs":
        # An index-only range scan of the covering btree (its leaves hold the signs in
        # (category, price) order), the nearest by Hamming distance re-ranked in full.
        sign_conds, sign_args = where(filters, "s.")
        sign_conds.append("s.id <> %s")
        query = (
            f"(SELECT binary_quantize(q.embedding - %s::vector({DIM}))::bit({DIM}) "
            "FROM items q WHERE q.id = %s)"
        )
        return (
            "WITH hits AS MATERIALIZED (SELECT s.id FROM items_signs s WHERE "
            f"{' AND '.join(sign_conds)} ORDER BY s.signs <~> {query} LIMIT %s) "
            f"SELECT e.id FROM hits h JOIN items e ON e.id = h.id "
            f"ORDER BY e.embedding <=> {QUERY}, e.id LIMIT %s",
            [*sign_args, qid, centre, qid, rerank, qid, K],
        )
    if plan in ("copies_half", "copies_bits"):
        # An exact range scan of the inline copies, the best few re-ranked at full precision.
        order = f"c.half <=> {QUERY_HALF}" if plan == "copies_half" else f"c.bits <~> {QUERY_BITS}"
        copy_conds, copy_args = where(filters, "c.")
        copy_conds.append("c.id <> %s")
        return (
            "WITH hits AS MATERIALIZED (SELECT c.id FROM items_inline c WHERE "
            f"{' AND '.join(copy_conds)} ORDER BY {order} LIMIT %s) "
            f"SELECT e.id FROM hits h JOIN items e ON e.id = h.id "
            f"ORDER BY e.embedding <=> {QUERY}, e.id LIMIT %s",
            [*copy_args, qid, qid, rerank, qid, K],
        )
    if plan == "exact":
        # A distance plus zero is no operator an HNSW index orders by, so no graph kept by
        # --keep can serve it; the btree on (category, price) finds the rows.
        return (
            f"SELECT e.id FROM items e WHERE {where_sql} "
            f"ORDER BY (e.embedding <=> {QUERY}) + 0 LIMIT %s",
            [*args, qid, qid, K],
        )
    order = {
        "full": f"e.embedding <=> {QUERY}",
        "halfvec": f"(e.embedding::halfvec({DIM})) <=> {QUERY_HALF}",
        "category": f"(e.embedding::halfvec({DIM})) <=> {QUERY_HALF}",
        "binary": f"(binary_quantize(e.embedding)::bit({DIM})) <~> {QUERY_BITS}",
    }[plan]
    found = {"full": K, "halfvec": 2 * K, "category": 2 * K, "binary": rerank}[plan]
    return (
        f"WITH hits AS MATERIALIZED (SELECT e.id, e.embedding FROM items e WHERE {where_sql} "
        f"ORDER BY {order} LIMIT %s) "
        f"SELECT h.id FROM hits h ORDER BY h.embedding <=> {QUERY}, h.id LIMIT %s",
        [*args, qid, qid, found, qid, K],
    )


#: The ``copies`` variant: a table of inline half-precision and binary copies of the vectors
#: (``STORAGE PLAIN``: 2.5 kB and 160 bytes a row, no TOAST), with the category and price, for
#: exact range scans of a selective filter.
COPIES = [
    "CREATE TABLE items_inline (id int PRIMARY KEY, category int NOT NULL, price float8 NOT NULL, "
    f"half halfvec({DIM}) NOT NULL, bits bit({DIM}) NOT NULL)",
    # Both columns PLAIN: a row of 2.7 kB is over the 2 kB TOAST threshold, which would move
    # the 164-byte bits out of line (three TOAST pages read for every Hamming comparison).
    "ALTER TABLE items_inline ALTER COLUMN half SET STORAGE PLAIN, "
    "ALTER COLUMN bits SET STORAGE PLAIN",
    "INSERT INTO items_inline SELECT id, category, price, embedding::halfvec({DIM}), "
    f"binary_quantize(embedding)::bit({DIM}) FROM items".replace("{DIM}", str(DIM)),
    "CREATE INDEX items_inline_category_price ON items_inline (category, price)",
    "VACUUM ANALYZE items_inline",
]

#: The ``signs`` variant: the sign bits of each vector minus the rows' mean (160 bytes), in a
#: narrow table whose ``(category, price)`` btree includes them, so that a range scan reads
#: consecutive index leaves and never the heap (an index-only scan).
SIGNS = [
    "CREATE TABLE items_signs (id int PRIMARY KEY, category int NOT NULL, "
    f"price float8 NOT NULL, signs bit({DIM}) NOT NULL)",
    "INSERT INTO items_signs SELECT id, category, price, "
    f"binary_quantize(embedding - %(centre)s::vector({DIM}))::bit({DIM}) FROM items",
    "CREATE INDEX items_signs_category_price ON items_signs (category, price) INCLUDE (id, signs)",
    "VACUUM ANALYZE items_signs",
]

INDEXES = {
    "full": [
        "CREATE INDEX items_hnsw_full ON items USING hnsw (embedding vector_cosine_ops) {params}"
    ],
    "halfvec": [
        f"CREATE INDEX items_hnsw_half ON items USING hnsw ((embedding::halfvec({DIM})) "
        "halfvec_cosine_ops) {params}"
    ],
    "binary": [
        "CREATE INDEX items_hnsw_bit ON items USING hnsw "
        f"((binary_quantize(embedding)::bit({DIM})) bit_hamming_ops) {{params}}"
    ],
    "category": [
        f"CREATE INDEX items_hnsw_c{c} ON items USING hnsw ((embedding::halfvec({DIM})) "
        f"halfvec_cosine_ops) {{params}} WHERE category = {c}"
        for c in range(CATEGORIES)
    ],
}


class MemorySampler(threading.Thread):
    """Peak proportional set size (MB) of a backend and its parallel workers."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, threading.Event()

    def _pss(self, pid):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def run(self):
        marker = f"parallel worker for PID {self.pid}"
        while not self.stop.is_set():
            total = self._pss(self.pid)
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    try:
                        if marker in (entry / "cmdline").read_bytes().decode(errors="ignore"):
                            total += self._pss(entry.name)
                    except OSError:
                        continue
            self.peak = max(self.peak, total // 1024)
            self.stop.wait(0.5)


def prewarm(conn, names):
    conn.execute("SELECT pg_prewarm(c.oid) FROM pg_class c WHERE relname = ANY(%s)", [names])


#: The variants that build a table of their own: ``{variant: (statements, [table, btree])}``.
TABLES = {
    "copies": (COPIES, ["items_inline", "items_inline_category_price"]),
    "signs": (SIGNS, ["items_signs", "items_signs_category_price"]),
}


def variant_objects(variant):
    """The tables and indexes a variant builds."""
    if variant in TABLES:
        return TABLES[variant][1]
    return [sql.split()[2] for sql in INDEXES[variant]]


def drop_variant(conn, variant):
    """Drop what a variant built: its table (its btree goes with it) or its indexes."""
    if variant in TABLES:
        conn.execute(f"DROP TABLE IF EXISTS {TABLES[variant][1][0]}")
        return
    for name in variant_objects(variant):
        conn.execute(f"DROP INDEX IF EXISTS {name}")


def build_variant(conn, variant, maintenance_mem, centre):
    conn.execute(f"SET maintenance_work_mem = '{maintenance_mem}'")
    conn.execute("SET max_parallel_maintenance_workers = 1")  # the leader and one worker
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    sampler = MemorySampler(pid)
    sampler.start()
    before = load()
    t = time.monotonic()
    statements = TABLES[variant][0] if variant in TABLES else INDEXES[variant]
    for sql in statements:
        sql = sql.format(params="WITH (m = 16, ef_construction = 64)")
        conn.execute(sql, {"centre": centre} if "%(centre)s" in sql else None)
    seconds = time.monotonic() - t
    sampler.stop.set()
    sampler.join()
    names = variant_objects(variant)
    size = conn.execute(
        "SELECT sum(pg_relation_size(c.oid)) FROM pg_class c WHERE relname = ANY(%s)", [names]
    ).fetchone()[0]
    prewarm(conn, names)
    return {
        "build_s": round(seconds, 1),
        "build_peak_pss_mb": sampler.peak,
        "index_mb": round(size / 2**20),
        "load_before_build": before,
        "load_after_build": load(),
    }


def run_case(conn, plan, cases, name, ef_search, rerank, max_scan=20000):
    conn.execute(f"SET hnsw.ef_search = {int(ef_search)}")
    conn.execute("SET hnsw.iterative_scan = relaxed_order")
    conn.execute(f"SET hnsw.max_scan_tuples = {int(max_scan)}")
    conn.execute("SET max_parallel_workers_per_gather = 0")
    scan = plan in ("exact", "copies_half", "copies_bits", "signs")
    conn.execute(f"SET enable_seqscan = {'on' if scan else 'off'}")
    conn.execute(f"SET enable_sort = {'on' if scan else 'off'}")
    latencies, recalls, short = [], [], 0
    for i, qid in enumerate(cases.ids):
        sql, args = statement(plan, cases.filters[name][i], int(qid), rerank, cases.centre)
        t = time.perf_counter()
        found = [r[0] for r in conn.execute(sql, args, prepare=False).fetchall()]
        latencies.append((time.perf_counter() - t) * 1000)
        truth = cases.truth[name][i]
        recalls.append(len(truth & set(found)) / max(len(truth), 1))
        short += len(found) < K
    out = {
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p95_ms": round(float(np.percentile(latencies, 95)), 2),
        "recall_at_10": round(float(np.mean(recalls)), 4),
        "always_k": short == 0,
        "load": load(),
    }
    if scan:
        sql, args = statement(plan, cases.filters[name][0], int(cases.ids[0]), rerank, cases.centre)
        out["explain_first_query"] = explain(conn, sql, args)
    return out


def explain(conn, sql, args):
    """Where one statement's time goes: ``EXPLAIN (ANALYZE, BUFFERS)``'s execution time and
    the pages it found in shared buffers or had to read from the kernel."""
    plan = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", args).fetchone()[0]
    top = plan[0]["Plan"]
    return {
        "execution_ms": round(plan[0]["Execution Time"], 2),
        "shared_hit_blocks": top.get("Shared Hit Blocks"),
        "shared_read_blocks": top.get("Shared Read Blocks"),
    }


def measure(conn, variant, cases, args):
    """Every case the variant can serve, with its parameter sweep."""
    out = {}
    if variant == "copies":
        name = "far_category_price"
        out[name] = {
            f"{plan} rerank {rerank}": run_case(conn, plan, cases, name, 40, rerank)
            for plan, rerank in (
                ("copies_half", 2 * K + 10),
                *(("copies_bits", r) for r in args.rerank),
            )
        }
        return out
    if variant == "signs":
        name = "far_category_price"
        out[name] = {
            f"rerank {rerank}": run_case(conn, "signs", cases, name, 40, rerank)
            for rerank in args.signs_rerank
        }
        return out
    filtered_plan = variant
    for name in cases.filters:
        plan = filtered_plan if (variant != "category" or name != "no_filter") else None
        if plan is None:
            continue
        sweep = {}
        if variant == "binary":
            for rerank in args.rerank:
                ef = max(args.ef_search[-1], rerank)
                sweep[f"rerank {rerank}"] = run_case(conn, plan, cases, name, ef, rerank)
        else:
            efs = args.ef_search if not name.startswith("far") else args.far_ef_search
            for ef in efs:
                sweep[f"ef_search {ef}"] = run_case(conn, plan, cases, name, ef, 0)
        out[name] = sweep
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--noise", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--ef-search", type=int, nargs="+", default=[40, 100])
    parser.add_argument("--far-ef-search", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--rerank", type=int, nargs="+", default=[100, 200])
    parser.add_argument("--signs-rerank", type=int, nargs="+", default=[200, 500, 1000, 2000])
    parser.add_argument("--maintenance-work-mem", default="8GB")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--keep", action="store_true", help="Keep the variants' indexes.")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="Measure the variants whose indexes a run with --keep left, without rebuilding.",
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--database", default="million", help="Suffix of the database: <NAME>_<suffix>."
    )
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or args.rows < 10_000 or args.queries < 1:
        parser.error(f"Variants are {', '.join(VARIANTS)}; --rows at least 10000, --queries >= 1.")
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    conn, seeds, seed_categories = connect(args.database)
    report = {"rows": args.rows, "dim": DIM, "queries": args.queries, "k": K, "load_start": load()}

    def save():
        if args.out:
            args.out.write_text(json.dumps(report, indent=2))

    present = conn.execute("SELECT to_regclass('items') IS NOT NULL").fetchone()[0]
    count = conn.execute("SELECT count(*) FROM items").fetchone()[0] if present else 0
    if args.rebuild or count != args.rows:
        report["table"] = build_table(
            conn, args.rows, seeds, seed_categories, args.seed, args.noise
        )
    else:
        report["table"] = {"table_mb": table_mb(conn), "reused": True}
    save()
    t = time.monotonic()
    only = ["far_category_price"] if set(variants) <= {"copies", "signs"} else None
    cases = Cases(args.rows, args.queries, seeds, seed_categories, args.seed, args.noise, only)
    report["exact_answers_s"] = round(time.monotonic() - t, 1)
    report["selectivity"] = cases.selectivity
    conn.execute("SELECT pg_prewarm('items'), pg_prewarm('items_category_price')")
    report["exact"] = {
        name: run_case(conn, "exact", cases, name, 40, 0) for name in ("far_category_price",)
    }
    save()
    report["variants"] = {}
    for variant in variants:
        names = variant_objects(variant)
        if args.reuse and all(
            conn.execute("SELECT to_regclass(%s) IS NOT NULL", [n]).fetchone()[0] for n in names
        ):
            # A second run of the searches over the graphs a first run kept (--keep).
            prewarm(conn, names)
            report["variants"][variant] = {"build": {"reused": True}}
            report["variants"][variant]["cases"] = measure(conn, variant, cases, args)
            save()
            continue
        drop_variant(conn, variant)
        built = build_variant(conn, variant, args.maintenance_work_mem, cases.centre)
        report["variants"][variant] = {"build": built}
        save()
        report["variants"][variant]["cases"] = measure(conn, variant, cases, args)
        if not args.keep:
            drop_variant(conn, variant)
        save()
    report["load_end"] = load()
    save()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
