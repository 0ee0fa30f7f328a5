"""One HNSW index per encoder over the shared, untyped ``embedding`` column.

Encoders differ in dimension, so the column is a plain ``vector`` and each encoder gets a
partial expression index::

    CREATE INDEX visualsearch_hnsw_<encoder>_<dim> ON visualsearch_productembedding
    USING hnsw ((embedding::vector(<dim>)) vector_cosine_ops) WITH (m = 16, ef_construction = 64)
    WHERE encoder = '<encoder>'

The planner uses it only for queries that repeat the same expression and the same literal
encoder name (a parameter would not prove the partial predicate under a generic plan), which
is what :mod:`visualsearch.services.search` writes. The default encoder's index is created by
migration 0003; ``manage.py vector_index --encoder NAME`` creates the others.
"""

from __future__ import annotations

import hashlib
import re

from django.db import connection

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


def vector_expression(dim: int, alias: str | None = None) -> str:
    """The indexed expression; queries must use it verbatim for the index to apply."""
    column = f"{alias}.embedding" if alias else "embedding"
    return f"({column}::vector({int(dim)}))"


def create_index_sql(encoder_name, dim, *, m=16, ef_construction=64, concurrently=False):
    table = ProductEmbedding._meta.db_table
    return (
        f"CREATE INDEX {'CONCURRENTLY ' if concurrently else ''}IF NOT EXISTS "
        f"{index_name(encoder_name, dim)} ON {table} USING hnsw "
        f"({vector_expression(dim)} vector_cosine_ops) "
        f"WITH (m = {int(m)}, ef_construction = {int(ef_construction)}) "
        f"WHERE encoder = {encoder_literal(encoder_name)}"
    )


def list_indexes() -> list[dict]:
    """The HNSW indexes of the embedding table: ``{"name", "encoder", "dim", "bytes"}``."""
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
        dim = re.search(r"vector\((\d+)\)", definition)
        encoder = re.search(r"encoder\)::text = '([^']*)'", definition) or re.search(
            r"encoder = '([^']*)'", definition
        )
        out.append(
            {
                "name": name,
                "encoder": encoder.group(1) if encoder else None,
                "dim": int(dim.group(1)) if dim else None,
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
    """Drop the encoder's index; search falls back to exact scans. True if one existed."""
    existed = has_index(encoder_name, dim)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {index_name(encoder_name, dim)}")
    return existed


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
