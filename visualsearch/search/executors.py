"""Carrying out a search: the probe, then one executor per plan, on one cursor.

Each executor runs its plan's named statement (:class:`~.queries.SearchQueries`) and
returns ``(product_id, distance)`` rows, best first. A plan that comes up short of ``k``
(an HNSW walk stopped by ``hnsw.max_scan_tuples``, candidates of the copies that failed the
product table: stale copies, stock, inactive products) is followed by the exact plan over
the product table, which alone can tell whether ``k`` exist.
"""

from __future__ import annotations

from .planner import PlanKind, Probe

__all__ = ["EXECUTORS", "execute", "probe"]


def probe(cursor, queries, settings, category_index) -> Probe:
    """Run the probe statement; the planner settings stay applied for the transaction."""
    cursor.execute(*queries.probe(settings, category_index))
    names = [column.name for column in cursor.description]
    row = dict(zip(names, cursor.fetchone(), strict=True))
    return Probe(
        indexed=row["indexed"],
        category_indexed=row["category_indexed"],
        matching=row["matching"],
        on_copies=queries.copies is not None,
        has_vector=row.get("has_vector"),
    )


def _fetch(cursor, statement):
    cursor.execute(*statement)
    return cursor.fetchall()


def exact_over_products(cursor, queries, plan, k):
    return _fetch(cursor, queries.exact_over_products(k))


def exact_over_copies(cursor, queries, plan, k):
    return _fetch(cursor, queries.exact_over_copies(k))


def hnsw(cursor, queries, plan, k):
    return _fetch(cursor, queries.hnsw(k))


def category_hnsw(cursor, queries, plan, k):
    return _fetch(cursor, queries.category_hnsw(k, plan.category))


EXECUTORS = {
    PlanKind.EXACT_OVER_PRODUCTS: exact_over_products,
    PlanKind.EXACT_OVER_COPIES: exact_over_copies,
    PlanKind.HNSW: hnsw,
    PlanKind.CATEGORY_HNSW: category_hnsw,
}


def execute(cursor, queries, plan, k):
    """Carry out ``plan``; ``(rows, fell_back)``, ``fell_back`` when it came up short and
    the exact plan over the product table answered instead."""
    rows = EXECUTORS[plan.kind](cursor, queries, plan, k)
    if len(rows) < k and plan.kind != PlanKind.EXACT_OVER_PRODUCTS:
        return exact_over_products(cursor, queries, plan, k), True
    return rows, False
