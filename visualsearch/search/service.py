"""The searches the pages, the API, the commands and the blend call.

"Find similar" reads top to bottom: :func:`similar_to_product` names the target (the
product's stored vector) and the filter; :func:`search_with_plan` probes
(:func:`.executors.probe`), lets :func:`.planner.choose_plan` pick the plan, carries it
out (:func:`.executors.execute`) and rolls back its transaction, in one message to the
server when it can (:func:`.executors.search_in_own_transactions`); :func:`hydrate` loads the
products. "Search by photo" (:func:`search_by_images`) embeds the photos first, searches a
wider beam and re-ranks it (:func:`rerank`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
from django.db import transaction

from lookalike.blas import single_threaded
from lookalike.catalogue import get_adapter
from lookalike.metrics import observe_search
from lookalike.routing import read_connection

from ..encoders import get_encoder
from ..models import ProductEmbedding
from . import executors, photo
from .filters import Filters, Hit, NotIndexed, Target, check_k, vector_text
from .planner import Plan, PlannerSettings, Probe, category_graph, choose_plan
from .queries import SearchQueries

__all__ = [
    "SearchResult",
    "hydrate",
    "rerank",
    "search_by_images",
    "search_by_vector",
    "search_photos",
    "search_with_plan",
    "similar_to_product",
]


@dataclass(frozen=True)
class SearchResult:
    """The hits of one search and how it found them.

    ``fell_back`` is true when ``plan`` came up short of ``k`` and the exact plan over the
    product table answered instead.
    """

    hits: list[Hit]
    plan: Plan
    probe: Probe
    fell_back: bool = False


def similar_to_product(product_id, k=12, filters=None, encoder=None) -> list[Hit]:
    """The ``k`` products that look most like product ``product_id``, best first.

    Raises
    ------
    NotIndexed
        If the product has no vector for the encoder.
    """
    return search_with_plan(product_id=product_id, k=k, filters=filters, encoder=encoder).hits


def search_by_vector(vector, k=12, filters=None, encoder=None) -> list[Hit]:
    """The ``k`` products nearest to an L2-normalised ``vector`` of the encoder."""
    return search_with_plan(vector=vector, k=k, filters=filters, encoder=encoder).hits


def search_with_plan(*, product_id=None, vector=None, k=12, filters=None, encoder=None):
    """:func:`similar_to_product` (with ``product_id``) or :func:`search_by_vector` (with
    ``vector``), returning the :class:`SearchResult` with the plan that answered."""
    if (product_id is None) == (vector is None):
        raise TypeError("search_with_plan() takes either product_id or vector.")
    check_k(k)
    enc = get_encoder(encoder)
    filters = filters or Filters()
    if product_id is None:
        target = Target(enc.name, enc.dim, enc.weights_hash, vector_text(vector, enc.dim))
        return _search(target, k, filters)
    product_id = get_adapter().parse_pk(product_id)
    # The product's vector is read inside the search's own statements (no round trip).
    target = Target(enc.name, enc.dim, enc.weights_hash, product_id=product_id)
    filters = replace(filters, exclude_ids=(*filters.exclude_ids, product_id))
    return _search(target, k, filters)


def _search(target, k, filters, *, ef_search=None) -> SearchResult:
    """Probe, plan, execute, in transactions (or a savepoint) that are rolled back: a
    search writes nothing, and the rollback undoes the planner settings, so they never leak
    into the caller's queries. Outside a transaction, usually all in one message to the
    server (:func:`.executors.search_in_own_transactions`); inside the caller's, in a
    savepoint, a statement at a time. ``ef_search`` widens the HNSW beam beyond
    ``VISUALSEARCH_EF_SEARCH`` (and ``k``)."""
    started = time.perf_counter()
    settings = PlannerSettings.current(k, ef_search)
    queries = SearchQueries(target, filters)
    category_index = category_graph(target, filters, queries.copies is not None, settings)
    # A replica when the router has one for this request (lookalike.routing); chosen before
    # the transaction opens: inside a transaction of the primary it answers the primary.
    conn = read_connection(ProductEmbedding)

    def decide(probe):
        if target.product_id is not None and not probe.has_vector:
            raise NotIndexed(f"Product {target.product_id} has no {target.encoder} embedding yet.")
        return choose_plan(probe, filters, settings)

    if executors.runs_own_transactions(conn):
        probe, plan, rows, fell_back = executors.search_in_own_transactions(
            conn, queries, settings, category_index, k, decide
        )
    else:
        with transaction.atomic(using=conn.alias), conn.cursor() as cursor:
            probe = executors.probe(cursor, queries, settings, category_index)
            plan = decide(probe)
            rows, fell_back = executors.execute(cursor, queries, plan, k)
            transaction.set_rollback(True, using=conn.alias)
    hits = [Hit(pid, float(1.0 - dist)) for pid, dist in rows]
    observe_search(str(plan.kind), time.perf_counter() - started)
    return SearchResult(hits, plan, probe, fell_back)


def search_by_images(images, k=12, filters=None, encoder=None, localise=True) -> list[list[Hit]]:
    """Search with each PIL image; the images are embedded together in one batch.

    The products in each photo are found first and searched each (``localise``; see
    :mod:`.photo`, whose :func:`search_photos` also returns the regions). When the
    encoder's catalogue projection learned invariance to shopper photos, each search's top
    ``VISUALSEARCH_RERANK_CANDIDATES`` are re-ranked by that invariant similarity (see
    :mod:`visualsearch.encoders.projection`), and the scores are its cosines.
    """
    return [r.hits for r in search_photos(images, k, filters, encoder, localise=localise)]


@single_threaded
def search_photos(images, k=12, filters=None, encoder=None, localise=True):
    """:func:`.photo.search_photos` with this module's search: one
    :class:`~.photo.PhotoHits` (fused hits and the regions searched) per image. Its
    projections and re-ranking are small matrix products: one BLAS thread
    (:mod:`lookalike.blas`)."""
    return photo.search_photos(images, k, filters, encoder, run=_search, localise=localise)


def rerank(projection, query_vector, hits, k, encoder_name, weights_hash=None) -> list[Hit]:
    """The best ``k`` of ``hits`` by the projection's invariant similarity to the query.

    The candidates' stored vectors, mapped into the re-ranking space
    (:meth:`~visualsearch.encoders.projection.Projection.rerank_vectors`), come from the
    process's copies (:func:`.photo.reranked_vectors`); ties keep the lower product id
    first, as the database's order does.
    """
    mapped = photo.reranked_vectors(
        projection, [h.product_id for h in hits], encoder_name, weights_hash
    )
    ids = [h.product_id for h in hits if h.product_id in mapped]
    if not ids:
        return []
    candidates = np.stack([mapped[pid] for pid in ids])
    query = projection.rerank_vectors(np.asarray(query_vector, dtype=np.float32)[None, :])[0]
    scores = candidates @ query
    order = sorted(range(len(ids)), key=lambda i: (-scores[i], ids[i]))[:k]
    return [Hit(ids[i], float(scores[i])) for i in order]


def _shown(ids, queryset=None):
    """``{pk: product}`` of the ``ids`` the adapter shows (among ``queryset``, its own by
    default), annotated (:meth:`~lookalike.catalogue.CatalogueAdapter.annotate`), in one
    query."""
    adapter = get_adapter()
    if queryset is None:
        queryset = adapter.get_queryset()
    # Unordered: the model's default ordering would cost a sort that a look-up by key
    # throws away.
    return adapter.annotate(queryset).order_by().in_bulk(ids)


def _in_hit_order(products, hits):
    return [(products[h.product_id], h.score) for h in hits if h.product_id in products]


def hydrate(hits, filters=None) -> list[tuple[object, float]]:
    """``(product, score)`` in hit order, loaded through the catalogue adapter in one query
    (:func:`_shown`); products it no longer shows, or that no longer pass ``filters`` (hits
    kept from an earlier search, :mod:`.remembered`), are dropped."""
    hits = list(hits)
    if not hits:
        return []
    shown = None
    if filters is not None and filters.narrows:
        # As a sub-query, so that the adapter's filters and its annotations never meet.
        shown = get_adapter().get_queryset().filter(pk__in=filters.products().values("pk"))
    return _in_hit_order(_shown([h.product_id for h in hits], shown), hits)


def hydrate_with(product_id, hits):
    """``(product, results)``: the product ``product_id`` (``None`` when the adapter does
    not show it) and ``hits`` as :func:`hydrate` loads them without a filter, in one query:
    a "find similar" page without filters needs both, and the query cost as much as the
    page's search."""
    products = _shown([product_id, *(h.product_id for h in hits)])
    return products.get(product_id), _in_hit_order(products, hits)
