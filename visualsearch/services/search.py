"""Nearest products by image embedding, under shop filters.

Three plans, chosen per query by the filter:

* **Exact** when the filter is selective (at most ``VISUALSEARCH_EXACT_SEARCH_MAX_ROWS``
  products, or ``VISUALSEARCH_CATEGORY_EXACT_SEARCH_MAX_ROWS`` inside a category that has its
  own index), and the answer is always exactly right. When the filter names a category or a
  price range, the vectors' own copies of category and price (migration 0005) make it one
  range scan of a btree over the vectors: each candidate's vector is read once (inline,
  migration 0004) and the best ``2k + 10`` are then checked against the product table, which
  has the last word; if fewer than ``k`` pass (stale copies, stock, inactive products), the
  plan below answers instead. Other filters (stock alone) find the candidates through the
  product table and fetch their vectors by ``(product_id, encoder)``, an index probe per
  row, about twice the cost. Both order by ``embedding <=> q`` *without* the cast the HNSW
  indexes are built on, so the planner cannot pick an index whatever the settings say.
* **Category HNSW** when the filter names a category that has its own partial index
  (:func:`~visualsearch.services.vector_index.ensure_category_indexes`): the walk stays in
  that category's graph, so a category far from the query is as cheap as a near one; the
  other conditions (price, stock) are checked by the iterative scan.
* **HNSW** otherwise: the encoder's partial index (``embedding::vector(dim)`` with the encoder
  as a literal) with ``hnsw.ef_search`` and an iterative scan in ``relaxed_order``, which keeps
  walking the graph until enough rows pass the filter; the few rows are re-sorted. An HNSW
  walk under a filter far from the query can still stop short (``hnsw.max_scan_tuples``);
  then the exact plan answers instead, so a search never returns fewer than ``k`` products
  when ``k`` exist.

A search is three round trips: one statement that applies the settings with
``set_config(..., true)`` (``SET LOCAL``), counts the matching products up to the threshold
(on the vectors' copies when they cover the filter: an index-only scan),
checks which indexes exist and (for "similar to a product") that the product has a vector;
the search itself, which reads the product's vector in a sub-select rather than sending it
back and forth; and the rollback of the search's own transaction or savepoint (a search writes
nothing), which undoes the settings, so they never leak into the caller's queries. The
settings (no sort, hash or merge join) only steer the index plans; the exact plan's query
has a single possible shape (nested loop, top-N sort) under them, as it should.
Inactive products never appear, and a product is never its own neighbour. Filters are always
checked on the product table, so a stale copy of a category or price on a vector can cost a
result but never shows a product outside the filter.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from django.db import connection, transaction

from lookalike.catalogue import get_adapter
from lookalike.querysets import as_sql

from ..conf import app_settings
from ..models import ProductEmbedding
from .vector_index import (
    category_expression,
    category_index_name,
    encoder_literal,
    index_name,
    vector_expression,
)

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
    """Which products a search may return, besides those the catalogue adapter shows.

    ``category_id`` is a category key as the adapter knows it (its
    :meth:`~lookalike.catalogue.CatalogueAdapter.filter_category` decides membership);
    prices are in currency units; ``exclude_ids`` are product keys.
    """

    category_id: object = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    in_stock: bool = False
    exclude_ids: tuple = ()

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
    product_id: object  # the product's key: an int or a UUID
    score: float  # cosine similarity, 1 - cosine distance


class NotIndexed(Exception):
    """The product has no vector for the encoder (not embedded yet, or its image failed)."""


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
    product_id = get_adapter().parse_pk(product_id)
    filters = filters or Filters()
    exclude = tuple(filters.exclude_ids) + (product_id,)
    filters = Filters(
        filters.category_id, filters.min_price, filters.max_price, filters.in_stock, exclude
    )
    # The product's vector is read inside the search's own statements (no round trip).
    return _search(
        enc.name, enc.dim, None, k, filters, weights_hash=enc.weights_hash, product_id=product_id
    )


def search_by_vector(vector, k=12, filters=None, encoder=None) -> list[Hit]:
    """The ``k`` products nearest to an L2-normalised ``vector`` of the encoder."""
    _check_k(k)
    enc = _encoder(encoder)
    text = _vector_text(vector, enc.dim)
    return _search(enc.name, enc.dim, text, k, filters or Filters(), weights_hash=enc.weights_hash)


def search_by_images(images, k=12, filters=None, encoder=None) -> list[list[Hit]]:
    """Search with each PIL image; the images are embedded together in one batch.

    When the encoder's catalogue projection learned invariance to shopper photos, the top
    ``VISUALSEARCH_RERANK_CANDIDATES`` of each search are re-ranked by that invariant
    similarity (see :mod:`visualsearch.encoders.projection`), and the scores are its cosines.
    """
    _check_k(k)
    images = list(images)
    if not images:
        return []
    enc = _encoder(encoder)
    # The photos are compared with the vectors of the weights that embedded them.
    vectors, weights = enc.embed_versioned(images)
    filters = filters or Filters()
    projection = getattr(enc, "projection", None)
    depth = int(app_settings.RERANK_CANDIDATES)
    if projection is None or not projection.reranks or depth <= 0:
        return [
            _search(enc.name, enc.dim, _vector_text(v, enc.dim), k, filters, weights_hash=weights)
            for v in vectors
        ]
    depth = max(depth, k)
    # A beam of only ``depth`` would return the graph's rough guess at its tail, where the
    # photographed product often sits before re-ranking: twice as wide.
    return [
        rerank(
            projection,
            v,
            _search(
                enc.name,
                enc.dim,
                _vector_text(v, enc.dim),
                depth,
                filters,
                weights_hash=weights,
                ef_search=2 * depth,
            ),
            k,
            enc.name,
            weights,
        )
        for v in vectors
    ]


def rerank(projection, query_vector, hits, k, encoder_name, weights_hash=None) -> list[Hit]:
    """The best ``k`` of ``hits`` by the projection's invariant similarity to the query.

    The candidates' stored vectors are read in one binary query and mapped into the
    re-ranking space (:meth:`~visualsearch.encoders.projection.Projection.rerank_vectors`);
    ties keep the lower product id first, as the database's order does.
    """
    from .vectors import load_vectors

    stored = load_vectors(
        [h.product_id for h in hits], encoder=encoder_name, weights_hash=weights_hash
    )
    ids = [h.product_id for h in hits if h.product_id in stored]
    if not ids:
        return []
    candidates = projection.rerank_vectors(np.stack([stored[pid] for pid in ids]))
    query = projection.rerank_vectors(np.asarray(query_vector, dtype=np.float32)[None, :])[0]
    scores = candidates @ query
    order = sorted(range(len(ids)), key=lambda i: (-scores[i], ids[i]))[:k]
    return [Hit(ids[i], float(scores[i])) for i in order]


def hydrate(hits) -> list[tuple[object, float]]:
    """``(product, score)`` in hit order, loaded through the catalogue adapter in one query
    (:meth:`~lookalike.catalogue.CatalogueAdapter.annotate`); products it no longer shows
    are dropped."""
    hits = list(hits)
    if not hits:
        return []
    adapter = get_adapter()
    products = adapter.annotate(adapter.get_queryset()).in_bulk([h.product_id for h in hits])
    return [(products[h.product_id], h.score) for h in hits if h.product_id in products]


# -- the two plans ------------------------------------------------------------------------


def _products(filters: Filters):
    """The adapter's shown products under the filter, as a queryset (exclusions apart)."""
    adapter = get_adapter()
    products = adapter.get_queryset()
    if filters.category_id is not None:
        products = adapter.filter_category(products, filters.category_id)
    if filters.min_price is not None or filters.max_price is not None:
        products = adapter.filter_price(products, filters.min_price, filters.max_price)
    if filters.in_stock:
        products = adapter.filter_in_stock(products)
    return products


def _filter_sql(filters: Filters):
    """``WHERE`` conditions on the vectors (alias ``e``): the product is one the adapter
    shows under the filter (a sub-query on the product table, which PostgreSQL joins by
    its primary key), and not excluded."""
    products_sql, params = as_sql(_products(filters), "pk")
    conds = [f"e.product_id IN ({products_sql})"]
    if filters.exclude_ids:
        conds.append("NOT (e.product_id = ANY(%s))")
        params.append(list(filters.exclude_ids))
    return conds, params


#: pgvector's upper bound for ``hnsw.ef_search``; a larger setting would fail every search.
MAX_EF_SEARCH = 1000


def _stored(alias, encoder_name, weights_hash):
    """The condition "a vector of this encoder, made by these weights", on ``alias``.

    Vectors computed with other weights (a projection refitted since) are stale: a query
    compared with them would measure two spaces against each other, so they are never
    searched. Both values are written as literals, so the encoder's partial indexes match.
    """
    return (
        f"{alias}.encoder = {encoder_literal(encoder_name)} "
        f"AND {alias}.weights_hash = {encoder_literal(weights_hash)}"
    )


def _from_sql(encoder_name, weights_hash):
    qn = connection.ops.quote_name
    return (
        f"FROM {qn(ProductEmbedding._meta.db_table)} e "
        f"WHERE {_stored('e', encoder_name, weights_hash)}"
    )


def _search(
    encoder_name, dim, query_text, k, filters, *, weights_hash, product_id=None, ef_search=None
) -> list[Hit]:
    """The search itself, from the query vector as text or, with ``product_id``, from that
    product's stored vector (``NotIndexed`` if it has none). ``ef_search`` widens the HNSW
    beam beyond ``VISUALSEARCH_EF_SEARCH`` (and ``k``)."""
    conds, params = _filter_sql(filters)
    base = _from_sql(encoder_name, weights_hash) + "".join(f" AND {c}" for c in conds)
    table = connection.ops.quote_name(ProductEmbedding._meta.db_table)
    if product_id is None:
        query = (f"%s::vector({int(dim)})", [query_text])
    else:
        query = (
            f"(SELECT q.embedding::vector({int(dim)}) FROM {table} q "
            f"WHERE q.product_id = %s AND {_stored('q', encoder_name, weights_hash)})",
            [product_id],
        )
    copies = _copy_filter_sql(filters)
    category = filters.category_id
    # A category's own graph answers only when the vectors' copies decide membership.
    category_index = (
        category_index_name(encoder_name, dim, category)
        if category is not None and copies is not None and app_settings.CATEGORY_INDEXES
        else None
    )
    limit = app_settings.EXACT_SEARCH_MAX_ROWS
    category_limit = min(limit, app_settings.CATEGORY_EXACT_SEARCH_MAX_ROWS)
    ef_search = min(max(int(app_settings.EF_SEARCH), k, ef_search or 0), MAX_EF_SEARCH)
    ef_sql, ef_args = "%s", [str(ef_search)]
    if product_id is not None and category_index is not None:
        # Another category's own graph than the product's: the query lies outside it, where
        # many products are about equally far, and the walk needs a wider beam.
        far_ef = min(max(int(app_settings.CATEGORY_FAR_EF_SEARCH), k), MAX_EF_SEARCH)
        ef_sql = (
            f"CASE WHEN to_regclass(%s) IS NOT NULL AND (SELECT q.product_category FROM {table} q "
            f"WHERE q.product_id = %s AND {_stored('q', encoder_name, weights_hash)}) "
            "IS DISTINCT FROM %s THEN %s ELSE %s END"
        )
        ef_args = [category_index, product_id, int(category), str(far_ef), str(ef_search)]
    # The planner prices a filter of 10 % as cheaper to sort exactly than to walk the graph
    # (measured: 460 ms instead of 2 ms at 100k rows), so plans that sort or hash are
    # disabled: what is left is the ordered index scan joined row by row to the products.
    # Parallel workers are too: with wide rows inline, the planner splits the exact plan's
    # nested loop over a parallel seq scan of the products (measured 30 ms instead of 5 ms);
    # a search this short gains nothing from starting workers.
    sql = (
        f"SELECT set_config('hnsw.ef_search', {ef_sql}, true), "
        "set_config('hnsw.iterative_scan', 'relaxed_order', true), "
        "set_config('hnsw.max_scan_tuples', %s, true), "
        "set_config('enable_sort', 'off', true), "
        "set_config('enable_hashjoin', 'off', true), "
        "set_config('enable_mergejoin', 'off', true), "
        "set_config('max_parallel_workers_per_gather', '0', true), "
        "to_regclass(%s) IS NOT NULL, to_regclass(%s) IS NOT NULL"
    )
    args = [*ef_args, str(int(app_settings.MAX_SCAN_TUPLES))]
    args += [index_name(encoder_name, dim), category_index]
    if copies is not None:
        # Counted on the vectors' copies (an index-only scan of their btree), stopped at the
        # threshold: the smaller one when the category has its own graph. Stock, activity
        # and exclusions are left out, so the count can only be too high, which costs speed
        # (a graph walk where a scan would do), never a result.
        copy_conds, copy_params = _copy_filter_sql(filters, exclude=False)
        count = (
            f"(SELECT count(*) FROM (SELECT 1 FROM {table} e "
            f"WHERE e.encoder = {encoder_literal(encoder_name)} "
            f"{''.join(f' AND {c}' for c in copy_conds)} "
            "LIMIT CASE WHEN to_regclass(%s) IS NULL THEN %s ELSE %s END) matching)"
        )
        count_args = [*copy_params, category_index, limit + 1, category_limit + 1]
        if filters.min_price is None and filters.max_price is None:
            # A category alone that has its own graph is large (the graph was made for more
            # than EXACT_SEARCH_MAX_ROWS vectors): not counted (a sub-query in a CASE branch
            # runs only when that branch is taken; counting 1,500 entries took ~1 ms).
            count = f"CASE WHEN to_regclass(%s) IS NOT NULL THEN %s ELSE {count} END"
            count_args = [category_index, category_limit + 1, *count_args]
        sql += f", {count}"
        args += count_args
    elif filters.narrows:
        # Counted on the product table alone, through its indexes, and stopped at the
        # threshold. Products without a vector are few; the exact plan is right whatever
        # the count.
        products_sql, products_params = as_sql(_products(filters), "pk")
        sql += f", (SELECT count(*) FROM ({products_sql} LIMIT %s) matching)"
        args += [*products_params, limit + 1]
    else:
        sql += ", NULL"
    if product_id is not None:
        sql += (
            f", EXISTS (SELECT 1 FROM {table} q WHERE q.product_id = %s "
            f"AND {_stored('q', encoder_name, weights_hash)})"
        )
        args += [product_id]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, args)
        row = cursor.fetchone()
        indexed, category_indexed, matching = row[7:10]
        if product_id is not None and not row[10]:
            raise NotIndexed(f"Product {product_id} has no {encoder_name} embedding yet.")
        rows = None
        if category_indexed and matching > category_limit:
            rows = _index_search(cursor, base, params, dim, query, k, category=category)
        elif indexed and (matching is None or matching > limit):
            rows = _index_search(cursor, base, params, dim, query, k)
        elif copies is not None:
            rows = _copy_exact_search(
                cursor, (encoder_name, weights_hash), copies, conds, params, query, k
            )
        if rows is None or len(rows) < k:
            # Selective, or the walk stopped short, or candidates failed the product table:
            # only the exact plan over the product table can tell if k exist.
            rows = _exact_search(cursor, base, params, query, k)
        # Read-only, so rolled back (to its savepoint when nested in the caller's transaction),
        # which also undoes the settings, so nothing leaks into the caller's queries.
        transaction.set_rollback(True)
    return [Hit(pid, float(1.0 - dist)) for pid, dist in rows]


def _copy_filter_sql(filters: Filters, exclude=True):
    """Conditions on the vectors' copies (alias ``e``) for a filter that names a category or
    a price range; ``None`` for other filters. Stock and activity are checked on the product
    table only; ``exclude=False`` leaves out the excluded products too, so that a count needs
    nothing but the btree (an index-only scan; the product id would cost a heap page a row)."""
    priced = filters.min_price is not None or filters.max_price is not None
    if filters.category_id is None and not priced:
        return None
    adapter = get_adapter()
    if filters.category_id is not None and adapter.category_copy_expression() is None:
        return None  # membership is the adapter's to decide: several categories, a tree
    if priced and adapter.price_expression() is None:
        return None
    conds, params = [], []
    if filters.category_id is not None:
        conds.append("e.product_category = %s")
        params.append(int(filters.category_id))
    # Rounding to a double is monotonic, so a product inside the range on the product table
    # is inside it on the copies too.
    if filters.min_price is not None:
        conds.append("e.product_price >= %s::float8")
        params.append(float(filters.min_price))
    if filters.max_price is not None:
        conds.append("e.product_price <= %s::float8")
        params.append(float(filters.max_price))
    if exclude and filters.exclude_ids:
        conds.append("NOT (e.product_id = ANY(%s))")
        params.append(list(filters.exclude_ids))
    return conds, params


def _copy_exact_search(cursor, version, copies, conds, params, query, k):
    """The exact plan over the vectors' copies: a range scan of their btree, every vector read
    once, the best ``2k + 10`` checked against the product table's conditions ``conds``."""
    query_sql, query_params = query
    copy_conds, copy_params = copies
    table = connection.ops.quote_name(ProductEmbedding._meta.db_table)
    # The product conditions are written on alias ``e``: the hits keep that name.
    cursor.execute(
        "WITH hits AS MATERIALIZED ("
        f"SELECT e.product_id, e.embedding <=> {query_sql} AS distance FROM {table} e "
        f"WHERE {_stored('e', *version)}"
        f"{''.join(f' AND {c}' for c in copy_conds)} "
        "ORDER BY distance, e.product_id LIMIT %s) "
        "SELECT e.product_id, e.distance FROM hits e "
        f"WHERE {' AND '.join(conds)} ORDER BY e.distance, e.product_id LIMIT %s",
        [*query_params, *copy_params, 2 * k + 10, *params, k],
    )
    return cursor.fetchall()


def _exact_search(cursor, base, params, query, k):
    # No cast on the column: the expression differs from the indexes', so no index scan.
    query_sql, query_params = query
    cursor.execute(
        f"SELECT e.product_id, e.embedding <=> {query_sql} AS distance {base} "
        "ORDER BY distance, e.product_id LIMIT %s",
        [*query_params, *params, k],
    )
    return cursor.fetchall()


def _index_search(cursor, base, params, dim, query, k, category=None):
    """The ordered HNSW scan, in the category's own graph when ``category`` is given: its
    half-precision expression and the literal condition on the vectors' copy of the category
    match that partial index only."""
    query_sql, query_params = query
    if category is None:
        distance, order, order_params = f"{vector_expression(dim, 'e')} <=> {query_sql}", "2", []
        found = k
    else:
        base += f" AND e.product_category = {int(category)}"
        distance = f"e.embedding <=> {query_sql}"
        order = f"{category_expression(dim, 'e')} <=> ({query_sql})::halfvec({int(dim)})"
        order_params = list(query_params)
        # Twice k by half precision, re-ranked at full precision: among near ties (a query
        # from another category) rounding would otherwise push true neighbours past k.
        found = 2 * k
    # relaxed_order may return rows slightly out of order: re-sort the few found.
    cursor.execute(
        "WITH hits AS MATERIALIZED ("
        f"SELECT e.product_id, {distance} AS distance {base} ORDER BY {order} LIMIT %s"
        ") SELECT product_id, distance FROM hits ORDER BY distance, product_id LIMIT %s",
        [*query_params, *params, *order_params, found, k],
    )
    return cursor.fetchall()
