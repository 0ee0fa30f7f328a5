"""Answers of "find similar" kept per process, for the products shoppers keep looking at.

Every shopper who opens a product page or its "find similar" page asks the same search, and
the index walk is the largest wait of those pages (2-4 ms of database time, more on a busy
server). :func:`similar_to_product` keeps the hits per process under two version stamps
(:mod:`lookalike.stamps`): the catalogue's (a product, a category or a model the adapter
depends on saved or deleted: :data:`lookalike.catalogue.CATALOGUE`) and the vectors'
(a product embedded again or removed: :data:`~visualsearch.services.vectors.VECTORS_STAMP`).
Either stamp moving makes every process search again at its next request.

A caller's exclusions (the widgets leave out what the shopper bought) are not part of the
answer kept: one answer per product and filter serves every shopper, searched a little
deeper than asked (:data:`EXCLUSION_STEP` more products, and as many again for each further
started step of exclusions) and with the excluded products taken out afterwards. That gives
the answer a search with the exclusions would: when the deeper search comes back full, at
least ``k`` products are left after removing the excluded; when it comes back short, the
search has already returned every product under the filter (the executor's exact
fallback), so nothing is missing. Only a caller whose exclusions would take the search past
``MAX_K`` products, and eat into its ``k``, gets a search of its own.

Stock or prices changed without a save (a queryset ``update()``) move no stamp. So the
hits are candidates, not the last word: whoever shows them checks the filter on the
products again (:func:`~.service.hydrate` with the same ``filters``; the widgets'
eligibility), and a product that left the filter is dropped rather than shown.
"""

from __future__ import annotations

from dataclasses import replace

from lookalike.catalogue import CATALOGUE, get_adapter
from lookalike.stamps import current as current_stamp

from ..services.vectors import VECTORS_STAMP
from .filters import MAX_K, Filters, check_k
from .service import similar_to_product as search_similar

__all__ = ["EXCLUSION_STEP", "similar_to_product"]

#: The kept answers are this many products deeper than asked, and as many again for each
#: further started step of a caller's exclusions: every shopper with at most sixteen
#: purchases (the demo's all have fewer) shares one answer per product and filter.
EXCLUSION_STEP = 16


def similar_to_product(product_id, k=12, filters=None):
    """What :func:`.service.similar_to_product` answers for the configured encoder, from
    this process's copy while neither stamp has moved.

    Raises
    ------
    NotIndexed
        If the product has no vector (never kept: the next request searches again).
    ValueError
        For a ``k`` outside 1 to ``MAX_K``, or a key that cannot be a product's.
    """
    check_k(k)
    adapter = get_adapter()
    product_id = adapter.parse_pk(product_id)
    filters = filters or Filters()
    # The product itself is never among its look-alikes: excluding it costs no depth.
    excluded = {adapter.parse_pk(pk) for pk in filters.exclude_ids} - {product_id}
    shared = replace(filters, exclude_ids=())
    depth = min(MAX_K, k + EXCLUSION_STEP * max(1, -(-len(excluded) // EXCLUSION_STEP)))
    key = ("visualsearch.similar", current_stamp(VECTORS_STAMP), product_id, depth, shared)
    hits = CATALOGUE.get(key, lambda: tuple(search_similar(product_id, depth, shared)))
    kept = [hit for hit in hits if hit.product_id not in excluded]
    if len(kept) < k and len(hits) == depth:
        # A full answer held back by the deepest search allowed: the exclusions ate into
        # the k asked for, so this caller's own search answers (not kept).
        return search_similar(product_id, k, filters)
    return kept[:k]
