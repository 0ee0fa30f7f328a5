"""Every SQL statement of a search, by name: the only raw SQL of :mod:`visualsearch.search`.

The ORM cannot say what these statements need: planner settings applied locally
(``set_config(..., true)``), the expressions and literals that let PostgreSQL prove a
partial HNSW index applies (:func:`~visualsearch.services.vector_index.vector_expression`,
:func:`~visualsearch.services.vector_index.encoder_literal`), and the weights-hash condition
(:func:`stored`) that keeps stale vectors out. Which products count comes from the
catalogue adapter as a sub-query (:func:`lookalike.querysets.as_sql`), so its filters run
where the data is.

:class:`SearchQueries` builds the statements of one search, each ``(sql, params)``:

``probe``
    the settings, which indexes exist, the matching count and, for "similar to a
    product", whether it has a vector (``settings``: the settings alone);
``exact_over_products``, ``exact_over_copies``, ``hnsw``, ``category_hnsw``, ``sign_bits``
    one per plan (:class:`~.planner.PlanKind`).

The query vector is written once: a parameter (``%s::vector(dim)``) or, for "similar to a
product", a sub-select of its stored vector, so the vector never travels to the client and
back. The exact plans order by ``embedding <=> q`` *without* the cast the HNSW indexes are
built on, so the planner cannot pick an index whatever the settings say.
"""

from __future__ import annotations

from django.db import connection

from lookalike.catalogue import get_adapter
from lookalike.querysets import as_sql

from ..models import ProductEmbedding, VectorCentre
from ..services.vector_index import (
    category_expression,
    encoder_literal,
    index_name,
    vector_expression,
)

__all__ = ["SearchQueries", "copy_conditions", "product_conditions", "stored"]


def _table():
    return connection.ops.quote_name(ProductEmbedding._meta.db_table)


def _centres():
    return connection.ops.quote_name(VectorCentre._meta.db_table)


def _and(conditions):
    return "".join(f" AND {c}" for c in conditions)


def stored(alias, encoder_name, weights_hash):
    """The condition "a vector of this encoder, made by these weights", on ``alias``.

    Vectors computed with other weights (a projection refitted since) are stale: a query
    compared with them would measure two spaces against each other, so they are never
    searched. Both values are written as literals, so the encoder's partial indexes match.
    """
    return (
        f"{alias}.encoder = {encoder_literal(encoder_name)} "
        f"AND {alias}.weights_hash = {encoder_literal(weights_hash)}"
    )


def product_conditions(filters):
    """``WHERE`` conditions on the vectors (alias ``e``): the product is one the adapter
    shows under the filter (a sub-query on the product table, which PostgreSQL joins by
    its primary key), and not excluded."""
    products_sql, params = as_sql(filters.products(), "pk")
    conds = [f"e.product_id IN ({products_sql})"]
    if filters.exclude_ids:
        conds.append("NOT (e.product_id = ANY(%s))")
        params.append(list(filters.exclude_ids))
    return conds, params


def copy_conditions(filters, exclude=True):
    """Conditions on the vectors' copies (alias ``e``) for a filter that names a category or
    a price range; ``None`` for other filters. Stock and activity are checked on the product
    table only; ``exclude=False`` leaves out the excluded products too, so that a count needs
    nothing but the btree (an index-only scan; the product id would cost a heap page a row)."""
    if filters.category_id is None and not filters.priced:
        return None
    adapter = get_adapter()
    if filters.category_id is not None and (
        adapter.category_copy_expression() is None or not isinstance(filters.category_id, int)
    ):
        # Membership is the adapter's to decide (several categories, a tree), and the copy
        # column holds integer keys only.
        return None
    if filters.priced and adapter.price_expression() is None:
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


class SearchQueries:
    """The statements of one search of ``target`` under ``filters``.

    Attributes
    ----------
    copies : (list, list) or None
        :func:`copy_conditions` of the filter: ``None`` when the vectors' copies cannot
        decide it (no category or price in it, or an adapter whose categories overlap).
    """

    def __init__(self, target, filters):
        self.target = target
        self.filters = filters
        self.conds, self.params = product_conditions(filters)
        self.copies = copy_conditions(filters)
        self._stored = stored("e", target.encoder, target.weights_hash)
        self._base = f"FROM {_table()} e WHERE {self._stored}" + _and(self.conds)
        dim = int(target.dim)
        if target.product_id is None:
            self._query = (f"%s::vector({dim})", [target.vector_text])
        else:
            self._query = (
                f"(SELECT q.embedding::vector({dim}) FROM {_table()} q "
                f"WHERE q.product_id = %s AND {self._product_stored()})",
                [target.product_id],
            )

    def _product_stored(self):
        return stored("q", self.target.encoder, self.target.weights_hash)

    # -- the probe -------------------------------------------------------------------------
    def probe(self, settings, category_index):
        """Apply the planner settings locally and gather what :func:`~.planner.choose_plan`
        needs, in one statement; its columns are named as :class:`~.planner.Probe`'s.

        The planner prices a filter of 10 % as cheaper to sort exactly than to walk the
        graph (measured: 460 ms instead of 2 ms at 100k rows), so plans that sort or hash
        are disabled: what is left is the ordered index scan joined row by row to the
        products. Parallel workers are too: with wide rows inline, the planner splits the
        exact plan's nested loop over a parallel seq scan of the products (measured 30 ms
        instead of 5 ms); a search this short gains nothing from starting workers.
        """
        target = self.target
        sql, args = self.settings(settings, category_index)
        sql += (
            ", to_regclass(%s) IS NOT NULL AS indexed, "
            "to_regclass(%s) IS NOT NULL AS category_indexed"
        )
        args += [index_name(target.encoder, target.dim), category_index]
        count_sql, count_args = self._count(settings, category_index)
        sql += f", {count_sql} AS matching"
        args += count_args
        for name, (column_sql, column_args) in (
            ("signed", self._signed(settings)),
            ("near", self._near()),
        ):
            sql += f", {column_sql} AS {name}"
            args += column_args
        if target.product_id is not None:
            sql += (
                f", EXISTS (SELECT 1 FROM {_table()} q WHERE q.product_id = %s "
                f"AND {self._product_stored()}) AS has_vector"
            )
            args += [target.product_id]
        return sql, args

    def settings(self, settings, category_index):
        """The probe's planner settings alone, applied locally: what a later statement of a
        search that runs in a transaction of its own needs again (see
        :func:`.executors.search_in_own_transactions`)."""
        ef_sql, ef_args = self._ef_search(settings, category_index)
        sql = (
            f"SELECT set_config('hnsw.ef_search', {ef_sql}, true), "
            "set_config('hnsw.iterative_scan', 'relaxed_order', true), "
            "set_config('hnsw.max_scan_tuples', %s, true), "
            "set_config('enable_sort', 'off', true), "
            "set_config('enable_hashjoin', 'off', true), "
            "set_config('enable_mergejoin', 'off', true), "
            "set_config('max_parallel_workers_per_gather', '0', true)"
        )
        return sql, [*ef_args, str(settings.max_scan_tuples)]

    def _ef_search(self, settings, category_index):
        """``hnsw.ef_search``: wider when "similar to a product" walks another category's
        own graph than the product's: the query lies outside it, where many products are
        about equally far, and the walk needs a wider beam."""
        if self.target.product_id is None or category_index is None:
            return "%s", [str(settings.ef_search)]
        near_sql, near_args = self._near()
        return (
            f"CASE WHEN to_regclass(%s) IS NOT NULL AND NOT {near_sql} THEN %s ELSE %s END",
            [category_index, *near_args, str(settings.far_ef_search), str(settings.ef_search)],
        )

    def _signed(self, settings):
        """``(sql, params)`` of "the sign bits can rank this filter": they are on, the
        filter names a category the copies decide, and the vectors' weights have a centre."""
        if (
            not settings.sign_bits_max_rows
            or self.copies is None
            or self.filters.category_id is None
        ):
            return "false", []
        target = self.target
        return (
            f"EXISTS (SELECT 1 FROM {_centres()} c WHERE c.encoder = %s AND c.weights_hash = %s)",
            [target.encoder, target.weights_hash],
        )

    def _near(self):
        """``(sql, params)`` of "similar to a product of the filter's own category", asked
        only when the copies decide the category (integer keys, exclusive categories)."""
        target = self.target
        if target.product_id is None or self.filters.category_id is None or self.copies is None:
            return "false", []
        return (
            f"COALESCE((SELECT q.product_category FROM {_table()} q WHERE q.product_id = %s "
            f"AND {self._product_stored()}) = %s, false)",
            [target.product_id, int(self.filters.category_id)],
        )

    def _count(self, settings, category_index):
        """The matching count, stopped at the threshold: on the vectors' copies when they
        decide the filter, else on the product table when the filter narrows, else none."""
        limit = settings.exact_max_rows
        category_limit = settings.category_exact_max_rows
        filters = self.filters
        if self.copies is not None:
            # Counted on the vectors' copies (an index-only scan of their btree): the
            # smaller threshold when the category has its own graph. Stock, activity and
            # exclusions are left out, so the count can only be too high, which costs speed
            # (a graph walk where a scan would do), never a result.
            # Counted further, to the sign bits' limit, when they could rank the filter.
            copy_conds, copy_params = copy_conditions(filters, exclude=False)
            signed_sql, signed_args = self._signed(settings)
            near_sql, near_args = self._near()
            ranks = f"({signed_sql} AND NOT {near_sql})"
            ranks_args = [*signed_args, *near_args]
            count = (
                f"(SELECT count(*) FROM (SELECT 1 FROM {_table()} e "
                f"WHERE e.encoder = {encoder_literal(self.target.encoder)} "
                f"{_and(copy_conds)} LIMIT CASE WHEN {ranks} THEN %s "
                "WHEN to_regclass(%s) IS NULL THEN %s ELSE %s END) matching)"
            )
            args = [
                *copy_params,
                *ranks_args,
                max(settings.sign_bits_max_rows, limit) + 1,
                category_index,
                limit + 1,
                category_limit + 1,
            ]
            if not filters.priced:
                # A category alone that has its own graph is large (the graph was made for
                # more than EXACT_SEARCH_MAX_ROWS vectors): not counted, and taken as over
                # every threshold, so its graph answers (a sub-query in a CASE branch runs
                # only when that branch is taken; counting 1,500 entries took ~1 ms, and
                # counting to the sign bits' 20,000 took 4-5 ms at a million products).
                count = f"CASE WHEN to_regclass(%s) IS NOT NULL THEN %s ELSE {count} END"
                args = [
                    category_index,
                    max(category_limit, settings.sign_bits_max_rows) + 1,
                    *args,
                ]
            return count, args
        if filters.narrows:
            # Counted on the product table alone, through its indexes. Products without a
            # vector are few; the exact plan is right whatever the count.
            products_sql, products_params = as_sql(filters.products(), "pk")
            return (
                f"(SELECT count(*) FROM ({products_sql} LIMIT %s) matching)",
                [*products_params, limit + 1],
            )
        return "NULL", []

    # -- one statement per plan ------------------------------------------------------------
    def exact_over_products(self, k):
        """Every vector the product table lets through, best ``k`` (no index on the vectors:
        the column is compared without the indexes' cast)."""
        query_sql, query_params = self._query
        return (
            f"SELECT e.product_id, e.embedding <=> {query_sql} AS distance {self._base} "
            "ORDER BY distance, e.product_id LIMIT %s",
            [*query_params, *self.params, k],
        )

    def exact_over_copies(self, k):
        """A range scan of the copies' btree, every vector read once, the best ``2k + 10``
        checked against the product table's conditions (the hits keep the alias ``e``)."""
        query_sql, query_params = self._query
        copy_conds, copy_params = self.copies
        return (
            "WITH hits AS MATERIALIZED ("
            f"SELECT e.product_id, e.embedding <=> {query_sql} AS distance FROM {_table()} e "
            f"WHERE {self._stored}{_and(copy_conds)} "
            "ORDER BY distance, e.product_id LIMIT %s) "
            "SELECT e.product_id, e.distance FROM hits e "
            f"WHERE {' AND '.join(self.conds)} ORDER BY e.distance, e.product_id LIMIT %s",
            [*query_params, *copy_params, 2 * k + 10, *self.params, k],
        )

    def sign_bits(self, k, rerank):
        """The nearest ``rerank`` by Hamming distance between sign bits, from an index-only
        range scan of their covering btree (every condition on the index's columns, the
        weights among them, so stale rows take no place among the candidates; the partial
        index's ``signs IS NOT NULL`` written out), compared in full with their
        stored vectors (checked to be current), the best ``2k + 10`` checked against the
        product table's conditions. The query's bits are taken around the same centre as
        the stored ones, once, in a sub-select."""
        query_sql, query_params = self._query
        target = self.target
        dim = int(target.dim)
        copy_conds, copy_params = self.copies
        bits = (
            f"(SELECT binary_quantize(q.v - c.centre::vector({dim}))::varbit "
            f"FROM (SELECT {query_sql} AS v) q, {_centres()} c "
            "WHERE c.encoder = %s AND c.weights_hash = %s)"
        )
        return (
            "WITH candidates AS MATERIALIZED ("
            f"SELECT e.product_id FROM {_table()} e "
            f"WHERE {self._stored} AND e.signs IS NOT NULL"
            f"{_and(copy_conds)} ORDER BY e.signs <~> {bits}, e.product_id LIMIT %s), "
            "ranked AS MATERIALIZED ("
            f"SELECT e.product_id, e.embedding <=> {query_sql} AS distance "
            f"FROM candidates c JOIN {_table()} e ON e.product_id = c.product_id "
            f"AND {self._stored} ORDER BY distance, e.product_id LIMIT %s) "
            "SELECT e.product_id, e.distance FROM ranked e "
            f"WHERE {' AND '.join(self.conds)} ORDER BY e.distance, e.product_id LIMIT %s",
            [
                *copy_params,
                *query_params,
                target.encoder,
                target.weights_hash,
                int(rerank),
                *query_params,
                2 * k + 10,
                *self.params,
                k,
            ],
        )

    def hnsw(self, k):
        """The ordered scan of the encoder's graph: the indexed expression verbatim."""
        query_sql, query_params = self._query
        distance = f"{vector_expression(self.target.dim, 'e')} <=> {query_sql}"
        return self._walk(self._base, distance, "2", [], k, k)

    def category_hnsw(self, k, category):
        """The ordered scan of the category's own graph: its half-precision expression and
        the literal condition on the vectors' copy of the category match that partial index
        only. Twice ``k`` by half precision, re-ranked at full precision: among near ties (a
        query from another category) rounding would otherwise push true neighbours past k."""
        query_sql, query_params = self._query
        dim = int(self.target.dim)
        base = self._base + f" AND e.product_category = {int(category)}"
        order = f"{category_expression(dim, 'e')} <=> ({query_sql})::halfvec({dim})"
        distance = f"e.embedding <=> {query_sql}"
        return self._walk(base, distance, order, list(query_params), 2 * k, k)

    def _walk(self, base, distance, order, order_params, found, k):
        # relaxed_order may return rows slightly out of order: re-sort the few found.
        query_params = self._query[1]
        return (
            "WITH hits AS MATERIALIZED ("
            f"SELECT e.product_id, {distance} AS distance {base} ORDER BY {order} LIMIT %s"
            ") SELECT product_id, distance FROM hits ORDER BY distance, product_id LIMIT %s",
            [*query_params, *self.params, *order_params, found, k],
        )
