"""Nearest products by image embedding, under shop filters.

A search is read top to bottom in this package:

1. :mod:`.service` -- the entry points: :func:`similar_to_product` ("Find similar"),
   :func:`search_by_vector`, :func:`search_by_images` (photo search, re-ranked by the
   projection), :func:`search_with_plan` (the same with the plan that answered, for benches
   and tests) and :func:`hydrate` (hits to products, through the catalogue adapter;
   :func:`hydrate_with` loads the product searched with them);
2. :mod:`.filters` -- what a search is asked (:class:`Filters`, the query's target) and
   answers (:class:`Hit`);
3. :mod:`.queries` -- every SQL statement, by name: the probe and one per plan;
4. :mod:`.planner` -- :func:`choose_plan`, a pure function of the probe, the filter and the
   planner settings, returning a :class:`Plan`;
5. :mod:`.executors` -- the probe and each plan's statement carried out.

Five plans, chosen per query by the filter:

* **Exact over the vectors' copies** when the filter is selective (at most
  ``VISUALSEARCH_EXACT_SEARCH_MAX_ROWS`` products, or
  ``VISUALSEARCH_CATEGORY_EXACT_SEARCH_MAX_ROWS`` inside a category that has its own index)
  and names a category or a price range: the vectors' own copies of category and price
  (migration 0005) make it one range scan of a btree over the vectors; each candidate's
  vector is read once (inline, migration 0004) and the best ``2k + 10`` are then checked
  against the product table, which has the last word.
* **Exact over the products** for other selective filters (stock alone) and whenever
  another plan comes up short of ``k`` (stale copies, stock, inactive products, an HNSW
  walk stopped by ``hnsw.max_scan_tuples``): the candidates are found through the product
  table and their vectors fetched by ``(product_id, encoder)``, an index probe per row,
  about twice the cost of the copies' scan. It always returns ``k`` when ``k`` exist.
* **Category HNSW** when the filter names a category that has its own partial index
  (:func:`~visualsearch.services.vector_index.ensure_category_indexes`): the walk stays in
  that category's graph, so a category far from the query is as cheap as a near one; the
  other conditions (price, stock) are checked by the iterative scan.
* **Sign bits** when the filter names a category, lets through more products than the exact
  thresholds and at most ``VISUALSEARCH_SIGN_BITS_MAX_ROWS``, and the query is not a product
  of that category (a walk that starts outside a category meets too few of its products):
  one index-only range scan of the btree that keeps each vector's centred sign bits beside
  its copies of category and price (migration 0008), ranked by Hamming distance, the nearest
  ``VISUALSEARCH_SIGN_BITS_RERANK`` compared in full and the best ``2k + 10`` checked against
  the product table (:mod:`visualsearch.services.sign_bits`).
* **HNSW** otherwise: the encoder's partial index (``embedding::vector(dim)`` with the
  encoder as a literal) with ``hnsw.ef_search`` and an iterative scan in
  ``relaxed_order``, which keeps walking the graph until enough rows pass the filter; the
  few rows are re-sorted.

A search is three round trips: the probe, a single statement that applies the settings
with ``set_config(..., true)`` (``SET LOCAL``), counts the matching products up to the
threshold (on the vectors' copies when they cover the filter: an index-only scan), checks
which indexes exist and (for "similar to a product") that the product has a vector; the
search itself, which reads the product's vector in a sub-select rather than sending it back and
forth; and the rollback of the search's own transaction or savepoint (a search writes
nothing), which undoes the settings, so they never leak into the caller's queries. The
settings (no sort, hash or merge join) only steer the index plans; the exact plans' queries
have a single possible shape (nested loop, top-N sort) under them, as they should.
Inactive products never appear, and a product is never its own neighbour. Filters are always
checked on the product table, so a stale copy of a category or price on a vector can cost a
result but never shows a product outside the filter.
"""

from . import remembered
from .filters import MAX_K, Filters, Hit, NotIndexed
from .planner import Plan, PlanKind, Probe, choose_plan
from .service import (
    SearchResult,
    hydrate,
    hydrate_with,
    rerank,
    search_by_images,
    search_by_vector,
    search_photos,
    search_with_plan,
    similar_to_product,
)

__all__ = [
    "MAX_K",
    "Filters",
    "Hit",
    "NotIndexed",
    "Plan",
    "PlanKind",
    "Probe",
    "SearchResult",
    "choose_plan",
    "hydrate",
    "hydrate_with",
    "remembered",
    "rerank",
    "search_by_images",
    "search_by_vector",
    "search_photos",
    "search_with_plan",
    "similar_to_product",
]
