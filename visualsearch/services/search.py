"""Nearest products by image embedding, under shop filters.

Two plans, chosen per query by how many products the filter lets through:

* **Exact** when the filter is selective (at most ``VISUALSEARCH_EXACT_SEARCH_MAX_ROWS``
  products): the product table's btree indexes find the candidates, their vectors are
  fetched by ``(product_id, encoder)`` and sorted by distance. A few microseconds per row,
  and always exactly right. The query orders by ``embedding <=> q`` *without* the cast the
  HNSW index is built on, so the planner cannot pick the index whatever the settings or a
  cached plan say.
* **HNSW** otherwise: the encoder's partial index (``embedding::vector(dim)`` with the encoder
  as a literal) with ``hnsw.ef_search`` and an iterative scan in ``relaxed_order``, which keeps
  walking the graph until enough rows pass the filter; the few rows are re-sorted. An HNSW
  walk under a filter far from the query can still stop short (``hnsw.max_scan_tuples``);
  then the exact plan answers instead, so a search never returns fewer than ``k`` products
  when ``k`` exist.

The index plan's settings are applied with ``set_config(..., true)`` (``SET LOCAL``) inside
the search's own transaction or savepoint, which is rolled back afterwards (a search writes
nothing), so they never leak into the caller's queries. The exact plan needs no setting: its
expression cannot use the index, so a prepared or cached plan cannot pick it either.
Inactive products never appear, and a product is never its own neighbour.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from django.apps import apps
from django.db import connection, transaction

from ..conf import app_settings
from ..models import ProductEmbedding
from .vector_index import encoder_literal, index_name, vector_expression

__all__ = [
    "Filters",
    "Hit",
    "NotIndexed",
    "hydrate",
    "search_by_images",
    "search_by_vector",
    "similar_to_product",
]

MAX_K = 1000


@dataclass(frozen=True)
class Filters:
    category_id: int | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    in_stock: bool = False
    exclude_ids: tuple[int, ...] = ()

    @property
    def narrows(self) -> bool:
        """Whether the filter may be selective enough for an exact scan to be cheaper."""
        return (
            self.category_id is not None
            or self.min_price is not None
            or self.max_price is not None
            or self.in_stock
        )


@dataclass(frozen=True)
class Hit:
    product_id: int
    score: float  # cosine similarity, 1 - cosine distance


class NotIndexed(Exception):
    """The product has no vector for the encoder (not embedded yet, or its image failed)."""


def product_model():
    return apps.get_model(app_settings.PRODUCT_MODEL)


def _encoder(name):
    from ..encoders import get_encoder

    return get_encoder(name)


def _vector_text(vector, dim) -> str:
    v = np.asarray(vector, dtype=np.float32).ravel()
    if v.shape != (dim,):
        raise ValueError(f"The query vector has {v.size} dimensions; the encoder has {dim}.")
    if not np.all(np.isfinite(v)):
        raise ValueError("The query vector contains NaN or infinite values.")
    return "[" + ",".join(f"{x:.9g}" for x in v.tolist()) + "]"


def _check_k(k):
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise ValueError(f"k must be an integer between 1 and {MAX_K}, got {k!r}.")


def similar_to_product(product_id, k=12, filters=None, encoder=None) -> list[Hit]:
    """The ``k`` products that look most like product ``product_id``, best first.

    Raises
    ------
    NotIndexed
        If the product has no vector for the encoder.
    """
    _check_k(k)
    enc = _encoder(encoder)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT embedding::text FROM {ProductEmbedding._meta.db_table} "
            "WHERE product_id = %s AND encoder = %s",
            [product_id, enc.name],
        )
        row = cursor.fetchone()
    if row is None:
        raise NotIndexed(f"Product {product_id} has no {enc.name} embedding yet.")
    filters = filters or Filters()
    exclude = tuple(filters.exclude_ids) + (int(product_id),)
    filters = Filters(
        filters.category_id, filters.min_price, filters.max_price, filters.in_stock, exclude
    )
    return _search(enc.name, enc.dim, row[0], k, filters)


def search_by_vector(vector, k=12, filters=None, encoder=None) -> list[Hit]:
    """The ``k`` products nearest to an L2-normalised ``vector`` of the encoder."""
    _check_k(k)
    enc = _encoder(encoder)
    return _search(enc.name, enc.dim, _vector_text(vector, enc.dim), k, filters or Filters())


def search_by_images(images, k=12, filters=None, encoder=None) -> list[list[Hit]]:
    """Search with each PIL image; the images are embedded together in one batch."""
    _check_k(k)
    images = list(images)
    if not images:
        return []
    enc = _encoder(encoder)
    vectors = enc.embed(images)
    filters = filters or Filters()
    return [_search(enc.name, enc.dim, _vector_text(v, enc.dim), k, filters) for v in vectors]


def hydrate(hits) -> list[tuple[object, float]]:
    """``(product, score)`` in hit order, category loaded; vanished products are dropped."""
    hits = list(hits)
    if not hits:
        return []
    category = app_settings.PRODUCT_FIELDS["category"]
    products = (
        product_model()
        ._default_manager.select_related(category)
        .in_bulk([h.product_id for h in hits])
    )
    return [(products[h.product_id], h.score) for h in hits if h.product_id in products]


# -- the two plans ------------------------------------------------------------------------


def _filter_sql(filters: Filters):
    """``WHERE`` conditions on the product table (alias ``p``) only, so that they can be
    counted without the join."""
    model = product_model()
    fields = app_settings.PRODUCT_FIELDS
    qn = connection.ops.quote_name

    def col(key):
        return "p." + qn(model._meta.get_field(fields[key]).column)

    conds, params = [f"{col('active')}"], []
    if filters.category_id is not None:
        conds.append(f"{col('category')} = %s")
        params.append(int(filters.category_id))
    if filters.min_price is not None:
        conds.append(f"{col('price')} >= %s")
        params.append(Decimal(filters.min_price))
    if filters.max_price is not None:
        conds.append(f"{col('price')} <= %s")
        params.append(Decimal(filters.max_price))
    if filters.in_stock:
        conds.append(f"{col('stock')} > 0")
    if filters.exclude_ids:
        conds.append(f"NOT (p.{qn(model._meta.pk.column)} = ANY(%s))")
        params.append([int(i) for i in filters.exclude_ids])
    return conds, params


def _from_sql(encoder_name):
    model = product_model()
    qn = connection.ops.quote_name
    return (
        f"FROM {qn(ProductEmbedding._meta.db_table)} e "
        f"JOIN {qn(model._meta.db_table)} p ON p.{qn(model._meta.pk.column)} = e.product_id "
        f"WHERE e.encoder = {encoder_literal(encoder_name)}"
    )


def _search(encoder_name, dim, query_text, k, filters) -> list[Hit]:
    conds, params = _filter_sql(filters)
    base = _from_sql(encoder_name) + "".join(f" AND {c}" for c in conds)
    limit = app_settings.EXACT_SEARCH_MAX_ROWS
    with transaction.atomic(), connection.cursor() as cursor:
        if filters.narrows:
            # Count the matching products up to the threshold, on the product table alone:
            # cheap through its btree indexes when the filter is selective, stopped early
            # when it is not. (Products without a vector are few; the exact plan is right
            # whatever the count.)
            model = product_model()
            cursor.execute(
                f"SELECT count(*), to_regclass(%s) IS NOT NULL FROM (SELECT 1 "
                f"FROM {connection.ops.quote_name(model._meta.db_table)} p "
                f"WHERE {' AND '.join(conds)} LIMIT %s) matching",
                [index_name(encoder_name, dim), *params, limit + 1],
            )
            matching, indexed = cursor.fetchone()
            use_index = indexed and matching > limit
        else:
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [index_name(encoder_name, dim)])
            use_index = cursor.fetchone()[0]
        rows = None
        if use_index:
            with transaction.atomic():
                rows = _index_search(cursor, base, params, dim, query_text, k)
                # Rolled back to its savepoint: the exact fallback runs without its settings.
                transaction.set_rollback(True)
            if len(rows) < k:
                rows = None  # the walk stopped short; only the exact plan can tell if k exist
        if rows is None:
            rows = _exact_search(cursor, base, params, query_text, k)
        # Read-only, so rolled back (to its savepoint when nested in the caller's transaction),
        # which also undoes any setting, so nothing leaks into the caller's queries.
        transaction.set_rollback(True)
    return [Hit(int(pid), float(1.0 - dist)) for pid, dist in rows]


def _exact_search(cursor, base, params, query_text, k):
    # No cast on the column: the expression differs from the index's, so no index scan.
    cursor.execute(
        f"SELECT e.product_id, e.embedding <=> %s::vector AS distance {base} "
        "ORDER BY distance, e.product_id LIMIT %s",
        [query_text, *params, k],
    )
    return cursor.fetchall()


def _index_search(cursor, base, params, dim, query_text, k):
    ef_search = max(int(app_settings.EF_SEARCH), k)
    # The planner prices a filter of 10 % as cheaper to sort exactly than to walk the graph
    # (measured: 460 ms instead of 2 ms at 100k rows), so plans that sort or hash are
    # disabled: what is left is the ordered index scan joined row by row to the products.
    cursor.execute(
        "SELECT set_config('hnsw.ef_search', %s, true), "
        "set_config('hnsw.iterative_scan', 'relaxed_order', true), "
        "set_config('hnsw.max_scan_tuples', %s, true), "
        "set_config('enable_sort', 'off', true), "
        "set_config('enable_hashjoin', 'off', true), "
        "set_config('enable_mergejoin', 'off', true)",
        [str(ef_search), str(int(app_settings.MAX_SCAN_TUPLES))],
    )
    # relaxed_order may return rows slightly out of order: re-sort the few found.
    cursor.execute(
        "WITH hits AS MATERIALIZED ("
        f"SELECT e.product_id, {vector_expression(dim, 'e')} <=> %s::vector({int(dim)}) "
        f"AS distance {base} ORDER BY distance LIMIT %s"
        ") SELECT product_id, distance FROM hits ORDER BY distance, product_id",
        [query_text, *params, k],
    )
    return cursor.fetchall()
