"""One HNSW index per encoder over the shared, untyped ``embedding`` column.

Encoders differ in dimension, so the column is a plain ``vector`` and each encoder gets a
partial expression index::

    CREATE INDEX visualsearch_hnsw_<encoder>_<dim> ON visualsearch_productembedding
    USING hnsw ((embedding::vector(<dim>)) vector_cosine_ops) WITH (m = 16, ef_construction = 64)
    WHERE encoder = '<encoder>'

The planner uses it only for queries that repeat the same expression and the same literal
encoder name (a parameter would not prove the partial predicate under a generic plan), which
is what :mod:`visualsearch.search` writes. The default encoder's index is created by
migration 0003; ``manage.py vector_index --encoder NAME`` creates the others.

Large categories also get their own graph, over half-precision copies of the vectors::

    CREATE INDEX visualsearch_hnsw_<encoder>_<dim>_c<category> ON visualsearch_productembedding
    USING hnsw ((embedding::halfvec(<dim>)) halfvec_cosine_ops) WITH (...)
    WHERE encoder = '<encoder>' AND product_category = <category>

because a filter on a category far from the query defeats an iterative scan of the shared graph
(the walk starts among the query's own neighbours and meets products of the other category too
rarely: recall 0.76 and 380 ms at 100k rows), while a walk of the category's own graph meets
nothing else (about 2 ms, recall 1.0). Categories with more than
``VISUALSEARCH_EXACT_SEARCH_MAX_ROWS`` vectors get one (smaller ones are searched exactly):
:func:`ensure_category_indexes`, run by ``reindex`` and ``manage.py vector_index``.

``halfvec`` halves these graphs (39 instead of 78 MB for 10k x 1280) and their walks (a query
from another category, ef_search 200: 2.9 instead of 5.9 ms) at no measurable loss of recall;
the search re-ranks the few rows found with the full-precision vectors. Its expression also
means the planner can only use a category's index when the query names it: the query writes
the halfvec expression and the category as a literal (:func:`category_expression`).
"""

from __future__ import annotations

import hashlib
import re

from django.db import connection

from .. import products
from ..conf import app_settings
from ..models import ProductEmbedding

_NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def check_encoder_name(name: str) -> str:
    """Refuse encoder names that could not be written safely as an SQL literal."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"Encoder name {name!r} must be 1-64 letters, digits, '_', '.', ':' or '-'."
        )
    return name


def encoder_literal(name: str) -> str:
    """``'name'``: the encoder as a literal, so partial indexes match under any plan."""
    return "'" + check_encoder_name(name) + "'"


def index_name(encoder_name: str, dim: int) -> str:
    """Name of the HNSW index of ``encoder_name`` at ``dim`` dimensions (<= 63 bytes)."""
    slug = re.sub(r"[^a-z0-9_]", "_", check_encoder_name(encoder_name).lower())
    name = f"visualsearch_hnsw_{slug}_{int(dim)}"
    if len(name) > 63 or slug != encoder_name:
        # Keep names distinct for encoders that differ only in case or punctuation.
        digest = hashlib.sha256(encoder_name.encode()).hexdigest()[:8]
        name = f"visualsearch_hnsw_{slug[:30]}_{digest}_{int(dim)}"
    return name


def category_index_name(encoder_name: str, dim: int, category: int) -> str:
    """Name of the HNSW index of one category's vectors of ``encoder_name`` (<= 63 bytes)."""
    name = f"{index_name(encoder_name, dim)}_c{int(category)}"
    if len(name) > 63:
        digest = hashlib.sha256(f"{encoder_name}:{int(category)}".encode()).hexdigest()[:12]
        name = f"visualsearch_hnsw_{digest}_{int(dim)}_c"[:63]
    return name


def category_expression(dim: int, alias: str | None = None) -> str:
    """The expression the category indexes are built on (half precision)."""
    column = f"{alias}.embedding" if alias else "embedding"
    return f"({column}::halfvec({int(dim)}))"


def vector_expression(dim: int, alias: str | None = None) -> str:
    """The indexed expression; queries must use it verbatim for the index to apply."""
    column = f"{alias}.embedding" if alias else "embedding"
    return f"({column}::vector({int(dim)}))"


def create_index_sql(
    encoder_name, dim, *, m=16, ef_construction=64, concurrently=False, category=None
):
    table = ProductEmbedding._meta.db_table
    if category is None:
        name, where = index_name(encoder_name, dim), ""
        expression = f"{vector_expression(dim)} vector_cosine_ops"
    else:
        name = category_index_name(encoder_name, dim, category)
        where = f" AND product_category = {int(category)}"
        expression = f"{category_expression(dim)} halfvec_cosine_ops"
    return (
        f"CREATE INDEX {'CONCURRENTLY ' if concurrently else ''}IF NOT EXISTS "
        f"{name} ON {table} USING hnsw ({expression}) "
        f"WITH (m = {int(m)}, ef_construction = {int(ef_construction)}) "
        f"WHERE encoder = {encoder_literal(encoder_name)}{where}"
    )


def list_indexes() -> list[dict]:
    """The HNSW indexes of the embedding table: ``{"name", "encoder", "dim", "category",
    "bytes"}`` (``category`` is None for an encoder's main index)."""
    table = ProductEmbedding._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indexname, i.indexdef, pg_relation_size(c.oid) "
            "FROM pg_indexes i JOIN pg_class c ON c.relname = i.indexname "
            "AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = i.schemaname) "
            "WHERE i.tablename = %s AND i.indexdef ILIKE '%%USING hnsw%%' ORDER BY 1",
            [table],
        )
        rows = cursor.fetchall()
    out = []
    for name, definition, size in rows:
        dim = re.search(r"(?:vector|halfvec)\((\d+)\)", definition)
        encoder = re.search(r"encoder\)::text = '([^']*)'", definition) or re.search(
            r"encoder = '([^']*)'", definition
        )
        category = re.search(r"product_category = '?(-?\d+)", definition)
        out.append(
            {
                "name": name,
                "encoder": encoder.group(1) if encoder else None,
                "dim": int(dim.group(1)) if dim else None,
                "category": int(category.group(1)) if category else None,
                "bytes": size,
            }
        )
    return out


def has_index(encoder_name: str, dim: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [index_name(encoder_name, dim)])
        return cursor.fetchone()[0]


def ensure_index(encoder_name, dim, *, m=None, ef_construction=None, concurrently=False):
    """Create the encoder's HNSW index unless it exists; returns ``(name, created)``.

    Build it after a bulk load rather than before: pgvector builds a graph in memory much
    faster than it inserts rows one by one. ``concurrently`` keeps the table writable
    during the build (it cannot run inside a transaction).
    """
    name = index_name(encoder_name, dim)
    if has_index(encoder_name, dim):
        return name, False
    sql = create_index_sql(
        encoder_name,
        dim,
        m=m or app_settings.HNSW_M,
        ef_construction=ef_construction or app_settings.HNSW_EF_CONSTRUCTION,
        concurrently=concurrently,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
    return name, True


def drop_index(encoder_name, dim) -> bool:
    """Drop the encoder's index and its category indexes; search falls back to exact scans.
    True if the main index existed."""
    existed = has_index(encoder_name, dim)
    names = [index_name(encoder_name, dim)] + [
        ix["name"]
        for ix in list_indexes()
        if ix["encoder"] == encoder_name and ix["dim"] == int(dim) and ix["category"] is not None
    ]
    with connection.cursor() as cursor:
        for name in names:
            cursor.execute(f"DROP INDEX IF EXISTS {name}")
    return existed


def sync_copies(encoder_name=None, product_ids=None) -> int:
    """Copy the products' categories and prices onto their vectors where they differ (after
    bulk ``QuerySet.update()`` calls, which send no signal, or a change the adapter reports
    for ``product_ids``); returns the rows changed."""
    source, params = products.copies_sql(product_ids)
    sql = (
        f"UPDATE {connection.ops.quote_name(ProductEmbedding._meta.db_table)} e "
        "SET product_category = s.category::bigint, product_price = s.price::float8 "
        f"FROM ({source}) s(pk, category, price) WHERE s.pk = e.product_id "
        "AND (e.product_category IS DISTINCT FROM s.category::bigint "
        "OR e.product_price IS DISTINCT FROM s.price::float8)"
    )
    if encoder_name is not None:
        sql += " AND e.encoder = %s"
        params.append(encoder_name)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        changed = cursor.rowcount
        if connection.in_atomic_block:
            fire_deferred_checks(cursor)
    return changed


def fire_deferred_checks(cursor):
    """Fire the deferred foreign-key checks an update of the vectors queued: an index cannot
    be created later in the same transaction while trigger events are pending."""
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    cursor.execute("SET CONSTRAINTS ALL DEFERRED")  # Django's default for its FKs


def category_sizes(encoder_name) -> dict[int, int]:
    """``{category: vectors}`` of the encoder (an index-only scan of a small btree)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT product_category, count(*) FROM {ProductEmbedding._meta.db_table} "
            "WHERE encoder = %s AND product_category IS NOT NULL GROUP BY 1",
            [encoder_name],
        )
        return dict(cursor.fetchall())


def ensure_category_indexes(
    encoder_name, dim, *, min_rows=None, m=None, ef_construction=None, concurrently=False
) -> list[str]:
    """Create the HNSW index of every category with more than ``min_rows`` vectors
    (``VISUALSEARCH_EXACT_SEARCH_MAX_ROWS``) that has none; returns the names created.

    Indexes of categories that shrank are kept: they are still correct, only unneeded. Does
    nothing when ``VISUALSEARCH_CATEGORY_INDEXES`` is off.
    """
    if not app_settings.CATEGORY_INDEXES:
        return []
    min_rows = app_settings.EXACT_SEARCH_MAX_ROWS if min_rows is None else min_rows
    existing = {ix["name"] for ix in list_indexes()}
    created = []
    for category, size in sorted(category_sizes(encoder_name).items()):
        name = category_index_name(encoder_name, dim, category)
        if size <= min_rows or name in existing:
            continue
        sql = create_index_sql(
            encoder_name,
            dim,
            m=m or app_settings.HNSW_M,
            ef_construction=ef_construction or app_settings.HNSW_EF_CONSTRUCTION,
            concurrently=concurrently,
            category=category,
        )
        with connection.cursor() as cursor:
            cursor.execute(sql)
        created.append(name)
    return created


def conflicting_indexes(encoder_name: str, dim: int) -> list[str]:
    """Indexes of ``encoder_name`` at another dimension: rows of the new size would fail
    their cast, so they must be dropped before vectors of the new size are written."""
    return [
        ix["name"]
        for ix in list_indexes()
        if ix["encoder"] == encoder_name and ix["dim"] not in (None, int(dim))
    ]


def drop_index_by_name(name: str) -> None:
    if not re.match(r"^visualsearch_hnsw_[a-z0-9_]+$", name):
        raise ValueError(f"{name!r} is not a visual-search index.")
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {name}")
