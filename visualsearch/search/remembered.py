"""Answers of "find similar" kept per process, for the products shoppers keep looking at.

Every shopper who opens a product page or its "find similar" page asks the same search, and
the index walk is the largest wait of those pages (2-4 ms of database time, more on a busy
server). :func:`similar_to_product` keeps the hits per process under two version stamps
(:mod:`lookalike.stamps`): the catalogue's (a product, a category or a model the adapter
depends on saved or deleted: :data:`lookalike.catalogue.CATALOGUE`) and the vectors'
(a product embedded again or removed: :data:`~visualsearch.services.vectors.VECTORS_STAMP`).
Either stamp moving makes every process search again at its next request.

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
from .filters import Filters
from .service import similar_to_product as search_similar

__all__ = ["similar_to_product"]


def similar_to_product(product_id, k=12, filters=None):
    """What :func:`.service.similar_to_product` answers for the configured encoder, from
    this process's copy while neither stamp has moved.

    Raises
    ------
    NotIndexed
        If the product has no vector (never kept: the next request searches again).
    """
    product_id = get_adapter().parse_pk(product_id)
    filters = filters or Filters()
    # The exclusions in one order, so that the same set is the same key.
    filters = replace(filters, exclude_ids=tuple(sorted(set(filters.exclude_ids), key=str)))
    key = ("visualsearch.similar", current_stamp(VECTORS_STAMP), product_id, k, filters)
    return list(CATALOGUE.get(key, lambda: tuple(search_similar(product_id, k, filters))))
