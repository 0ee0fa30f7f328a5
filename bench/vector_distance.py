"""What one vector comparison costs inside PostgreSQL, by storage and type.

Usage::

    .venv/bin/python bench/vector_distance.py [--rows 20000] [--repeat 9] [--out distance.json]

The exact plans of a search (a selective filter, a category too small for its own graph)
compare the query with every row the filter lets through, so their time is rows x the cost
of one comparison. This bench measures that cost on one table of the demo's real 1280-d
vectors plus noise (the rows of ``bench/million_search.py``), in a database
``<NAME>_distance`` on the same server, rebuilt on every run:

``compare``
    ``sum(column <op> query)`` over every row, per row: full precision stored inline
    (``toast_tuple_target = 8160``, as in the shop's table) and out of line (pgvector's
    default ``STORAGE EXTERNAL``), half precision (``halfvec``) and sign bits (Hamming), and
    a scan that compares nothing, for the floor.
``query_cast``
    an exact top 10 over one category (a tenth of the rows) where the query is a sub-select
    of a stored vector, its ``::halfvec`` cast written inside the sub-select or around it,
    the query stored inline or out of line: a cast around a sub-select is an expression
    over a parameter, evaluated again for every row, and a query vector stored out of line
    is read from TOAST again by every comparison that uses it.

Prints one JSON object (medians over ``--repeat`` runs, microseconds per row), also written
to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

DIM = 1280
LAYOUTS = {"inline": "WITH (toast_tuple_target = 8160)", "external": ""}


def build(conn, rows, seeds, seed_categories):
    """One table per layout, and a table of half-precision and bit copies (inline)."""
    from bench.million_search import chunk_rows
    from visualsearch.indexing.store import vector_binary

    vectors, categories, _ = chunk_rows(seeds, seed_categories, 0, 0.5, 0, rows)
    for layout, options in LAYOUTS.items():
        table = f"v_{layout}"
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(
            f"CREATE TABLE {table} (id int PRIMARY KEY, category int NOT NULL, "
            f"embedding vector({DIM}) NOT NULL) {options}"
        )
        with conn.cursor() as cursor:
            with cursor.copy(f"COPY {table} FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int4", "int4", "bytea"])
                for i, data in enumerate(vector_binary(vectors)):
                    copy.write_row((i, int(categories[i]), data))
        conn.execute(f"CREATE INDEX ON {table} (category)")
    conn.execute("DROP TABLE IF EXISTS v_copies")
    conn.execute(
        f"CREATE TABLE v_copies (id int PRIMARY KEY, category int NOT NULL, "
        f"half halfvec({DIM}) NOT NULL, bits bit({DIM}) NOT NULL)"
    )
    # Both PLAIN: over the 2 kB TOAST threshold, the bits would be moved out of line.
    conn.execute(
        "ALTER TABLE v_copies ALTER COLUMN half SET STORAGE PLAIN, "
        "ALTER COLUMN bits SET STORAGE PLAIN"
    )
    conn.execute(
        f"INSERT INTO v_copies SELECT id, category, embedding::halfvec({DIM}), "
        f"binary_quantize(embedding)::bit({DIM}) FROM v_inline"
    )
    conn.execute("CREATE INDEX ON v_copies (category)")
    for table in ("v_inline", "v_external", "v_copies"):
        conn.execute(f"VACUUM ANALYZE {table}")
        conn.execute(f"SELECT pg_prewarm('{table}')")
    conn.execute(
        "SELECT pg_prewarm(reltoastrelid) FROM pg_class WHERE relname = 'v_external' "
        "AND reltoastrelid <> 0"
    )


def timed(conn, sql, args, repeat):
    """Median milliseconds of one statement over ``repeat`` runs (one warm-up first)."""
    conn.execute(sql, args).fetchall()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        conn.execute(sql, args).fetchall()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def compare_costs(conn, rows, repeat):
    # OFFSET 0 keeps each query a sub-query evaluated once: pulled up into the join, its
    # cast would be evaluated again for every row and counted as the comparison's cost.
    query = "(SELECT embedding FROM v_inline WHERE id = 0 OFFSET 0)"
    statements = {
        "scan_only": "SELECT count(*) FROM v_inline e",
        "vector_inline": f"SELECT sum(e.embedding <=> q.v) FROM v_inline e, {query} q(v)",
        "vector_external": f"SELECT sum(e.embedding <=> q.v) FROM v_external e, {query} q(v)",
        "halfvec": (
            f"SELECT sum(e.half <=> q.v) FROM v_copies e, "
            f"(SELECT embedding::halfvec({DIM}) FROM v_inline WHERE id = 0 OFFSET 0) q(v)"
        ),
        "bits_hamming": (
            f"SELECT sum(e.bits <~> q.v) FROM v_copies e, "
            f"(SELECT binary_quantize(embedding)::bit({DIM}) FROM v_inline WHERE id = 0 "
            "OFFSET 0) q(v)"
        ),
    }
    return {
        name: round(timed(conn, sql, [], repeat) * 1000 / rows, 3)
        for name, sql in statements.items()
    }


def query_cast_costs(conn, repeat):
    """Milliseconds of an exact top 10 over one category, per way of writing the query."""
    out = {}
    rows = conn.execute("SELECT count(*) FROM v_copies WHERE category = 3").fetchone()[0]
    for source in LAYOUTS:
        inside = f"(SELECT embedding::halfvec({DIM}) FROM v_{source} WHERE id = %s)"
        around = f"(SELECT embedding FROM v_{source} WHERE id = %s)::halfvec({DIM})"
        full = f"(SELECT embedding FROM v_{source} WHERE id = %s)"
        for name, sql in {
            f"halfvec, cast inside, query {source}": (
                f"SELECT id FROM v_copies e WHERE category = 3 ORDER BY e.half <=> {inside} "
                "LIMIT 10"
            ),
            f"halfvec, cast around, query {source}": (
                f"SELECT id FROM v_copies e WHERE category = 3 ORDER BY e.half <=> {around} "
                "LIMIT 10"
            ),
            f"vector, rows and query {source}": (
                f"SELECT id FROM v_{source} e WHERE category = 3 ORDER BY e.embedding <=> {full} "
                "LIMIT 10"
            ),
        }.items():
            out[name] = round(timed(conn, sql, [7], repeat), 2)
    return {"rows_compared": rows, "ms": out}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not 1_000 <= args.rows <= 1_000_000 or args.repeat < 1:
        parser.error("--rows from 1000 to 1000000, --repeat at least 1.")
    from bench.million_search import connect, load

    conn, seeds, seed_categories = connect("distance")
    conn.execute("SET max_parallel_workers_per_gather = 0")
    build(conn, args.rows, seeds, seed_categories)
    report = {
        "rows": args.rows,
        "dim": DIM,
        "load_start": load(),
        "compare_us_per_row": compare_costs(conn, args.rows, args.repeat),
        "query_cast": query_cast_costs(conn, args.repeat),
        "load_end": load(),
    }
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
