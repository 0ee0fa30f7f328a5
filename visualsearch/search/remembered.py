"""Answers of "find similar" kept per process, for the products shoppers keep looking at.

Every shopper who opens a product page or its "find similar" page asks the same search, and
the index walk is the largest wait of those pages (2-4 ms of database time, more on a busy
server). :func:`similar_to_product` keeps the hits per process under two version stamps
(:mod:`lookalike.stamps`): the catalogue's (a product or a category saved or deleted, or
a model the adapter depends on changed in a way that changes what is shown:
:data:`lookalike.catalogue.CATALOGUE`, :mod:`lookalike.changes`) and the vectors'
(a product embedded again or removed: :data:`~visualsearch.services.vectors.VECTORS_STAMP`).
Either stamp moving makes every process search again at its next request.

A caller's exclusions (the widgets leave out the product and what the shopper bought) are
not part of the answer kept: one answer per product and filter serves every shopper,
searched a little deeper than asked (:data:`EXCLUSION_STEP` more products, and as many
again for each further started step of exclusions) and with the excluded products taken
out afterwards. When the deeper search comes back full, at least ``k`` products are left
after removing the excluded; when it comes back short, it has already returned every
product under the filter (the executor's exact fallback), so nothing is missing. Under an
exact plan the answer is the one a search with the exclusions gives; under an approximate
one (an HNSW walk, the sign bits' window) it is the same walk taken a little further, so it
may differ from that search where either misses a neighbour, about as often as the plan's
recall says. Only a caller whose exclusions would take the search past ``MAX_K`` products,
and eat into its ``k``, gets a search of its own.

Stock or prices changed without a save (a queryset ``update()``, an import) move no stamp.
So the hits are candidates, not the last word: whoever shows them checks the filter on the
products again (:func:`~.service.hydrate` with the same ``filters``; the widgets'
eligibility), and a product that left the filter is dropped rather than shown. A search
only ever finds products the adapter shows under the filter, so a kept answer that loses
any of them there is out of date: :func:`still_current` moves the catalogue's stamp (every
process searches again) and the page asks once more, so that it shows ``k`` products, not
``k`` less the products changed behind the stamp's back.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from lookalike.catalogue import CATALOGUE, get_adapter
from lookalike.keys import to_array
from lookalike.stamps import Stamped
from lookalike.stamps import current as current_stamp

from ..services.vectors import VECTORS_STAMP
from .filters import MAX_K, Filters, Hit, check_k
from .service import similar_to_product as search_similar

logger = logging.getLogger(__name__)

__all__ = ["ANSWERS", "EXCLUSION_STEP", "show_current", "similar_to_product", "still_current"]

#: The answers, under the catalogue's stamp (and the vectors', in their keys), in a store of
#: their own so that browsing many products never clears the shop's other kept values.
#: Each is kept as two arrays (ids and scores), 16 bytes a hit for integer keys: a strip's
#: 216 hits take under 4 kB, so the store holds at most about 40 MB.
ANSWERS = Stamped(CATALOGUE.name, limit=10_000)

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
    # A caller without exclusions (the find-similar page, the API) searches as deep as it
    # asks; one with any (the widgets: at least the product) shares the deeper answer.
    steps = max(1, -(-len(excluded) // EXCLUSION_STEP)) if filters.exclude_ids else 0
    depth = min(MAX_K, k + EXCLUSION_STEP * steps)
    key = ("visualsearch.similar", current_stamp(VECTORS_STAMP), product_id, depth, shared)
    ids, scores = ANSWERS.get(key, lambda: _compact(search_similar(product_id, depth, shared)))
    kept = []
    for pid, score in zip(ids.tolist(), scores.tolist(), strict=True):
        if pid not in excluded:
            kept.append(Hit(pid, score))
            if len(kept) == k:
                return kept
    if len(ids) == depth:
        # A full answer held back by the deepest search allowed: the exclusions ate into
        # the k asked for, so this caller's own search answers (not kept).
        return search_similar(product_id, k, filters)
    return kept


def _compact(hits):
    """``(ids, scores)`` arrays of ``hits``: a tenth of the memory of the hits themselves,
    the scores as they were (float64)."""
    return to_array(h.product_id for h in hits), np.fromiter(
        (h.score for h in hits), dtype=np.float64, count=len(hits)
    )


def show_current(ask, show, results=None):
    """``show(ask())``: a kept answer (``ask()``, e.g. :func:`similar_to_product`) as the
    page shows it, asked once more when :func:`still_current` finds it out of date.
    ``results(shown)`` picks the list of results shown from what ``show`` returns (that
    value itself by default). ``ask``'s exceptions (``NotIndexed``) reach the caller."""
    for _attempt in range(2):
        hits = ask()
        shown = show(hits)
        if still_current(hits, shown if results is None else results(shown)):
            break
    return shown


def still_current(hits, shown):
    """Whether the products ``shown`` of ``hits`` (as :func:`~.service.hydrate` loaded them)
    are all of them. When some are missing, the catalogue changed without moving its stamp
    (see the module docstring): the stamp is moved now, and ``False`` tells the caller to
    ask :func:`similar_to_product` once more, which then searches afresh."""
    if len(shown) >= len(hits):
        return True
    logger.info(
        "%d of %d kept look-alikes are no longer shown: the catalogue changed without a save "
        "(lookalike.changes.catalogue_changed() says so after bulk updates); searching again.",
        len(hits) - len(shown),
        len(hits),
    )
    CATALOGUE.bump()
    return False
