"""The :class:`~.candidates.CandidateSource` the shop serves from: the database, the
pgvector index, the active ALS model and the shoppers' events, under a profile's rules
and the caller's filters."""

from __future__ import annotations

import logging
from dataclasses import replace
from functools import cached_property

import numpy as np
from django.db.models import F
from django.utils import timezone

from lookalike.catalogue import CATEGORY, CREATED, get_adapter
from visualsearch import search
from visualsearch.services.vectors import VectorCache

from ..conf import app_settings
from ..services import eligibility
from ..services.serving import get_active_model, popular_products, popularity_scores
from ..services.shoppers import shopper_events_of
from .candidates import CandidateSource, Item, Shopper

logger = logging.getLogger(__name__)

__all__ = ["LiveSource", "eligible_products", "live_shopper", "unit_vector", "unit_vectors"]


def unit_vector(vector):
    """The L2-normalised float64 copy of a stored vector; ``None`` for a vector of zeros."""
    v = vector.astype(np.float64)
    norm = np.linalg.norm(v)
    return v / norm if norm > 0 else None


def unit_vectors(vectors):
    """``{product id: L2-normalised float64 vector}`` of ``load_vectors``' answer; vectors
    of zeros are left out."""
    out = {}
    for pid, vector in vectors.items():
        v = unit_vector(vector)
        if v is not None:
            out[pid] = v
    return out


#: The blend's stored vectors, normalised as :func:`unit_vectors` does, kept per process
#: and checked against their rows on every read (:class:`~visualsearch.services.vectors.
#: VectorCache`): 10 kB a product in float64.
_unit_vectors = VectorCache(transform=unit_vector)


def eligible_products(settings, filters=None):
    """Products a blend may ever show under these rules and the caller's filters (a
    visual-search :class:`~visualsearch.search.Filters`: category, price, stock), with
    the adapter's values (category, creation time) attached."""
    adapter = get_adapter()
    queryset = adapter.get_queryset()
    if settings.in_stock_only:
        queryset = adapter.filter_in_stock(queryset)
    if filters is not None and filters.narrows:
        # As a sub-query, so that the adapter's filters and its annotations never meet.
        queryset = queryset.filter(pk__in=filters.products().values("pk"))
    return adapter.annotate(queryset)


def _allowed_rows(settings):
    """``(id, category key, created)`` of every product a blend may show under these
    rules, in "New in" order (newest first, unknown times last, then id descending)."""
    adapter = get_adapter()
    queryset = eligible_products(settings)
    category = CATEGORY if adapter.category_key_expression() is not None else None
    if adapter.created_expression() is None:
        ordered = queryset.order_by("-pk")
        fields = ["pk"] + ([category] if category else [])
        return [
            (row[0], row[1] if category else None, None) for row in ordered.values_list(*fields)
        ]
    ordered = queryset.order_by(F(CREATED).desc(nulls_last=True), "-pk")
    fields = ["pk", CREATED] + ([category] if category else [])
    return [(row[0], row[2] if category else None, row[1]) for row in ordered.values_list(*fields)]


def live_shopper(user, session_key, settings):
    """The :class:`~.candidates.Shopper` of a request: the signed-in user or the anonymous
    session, their latest ``RECOMMENDATIONS_BLEND_HISTORY`` distinct products (among their
    latest ten times as many events) and, under the "exclude purchased" rule, what they
    bought; all from one read of their events, which the ALS model's answers for them reuse
    (``Shopper.events``)."""
    authenticated = user is not None and getattr(user, "is_authenticated", False)
    user_id = user.pk if authenticated else None
    session_key = session_key or None
    if user_id is None and not session_key:
        return Shopper()
    events = shopper_events_of(user_id, session_key)
    shopper = Shopper(key=(user_id, session_key), events=events)
    history = app_settings.BLEND_HISTORY
    shopper.history = events.recent_products(history, 10 * history)
    if settings.exclude_purchased:
        shopper.purchased = events.purchased()
    return shopper


class LiveSource(CandidateSource):
    """Candidates as the shop serves them, held to ``settings``' rules (in stock only)
    and to ``filters`` (the API's category, price and stock)."""

    def __init__(self, settings, filters=None):
        self.settings = settings
        self.filters = filters

    @property
    def now(self):
        return timezone.now()

    @cached_property
    def model(self):
        """The active model, loaded on first use; ``None`` without one."""
        try:
            return get_active_model()
        except Exception:  # a broken artefact must not take the shop's pages down
            logger.exception(
                "The active recommender model could not be loaded; blending without it."
            )
            return None

    @property
    def has_model(self):
        return self.model is not None

    def visual_neighbours(self, n, exclude, *, product_id=None, vector=None):
        """From the pgvector index, under the caller's filters; none when not indexed."""
        filters = replace(
            self.filters or search.Filters(),
            in_stock=self.settings.in_stock_only or bool(self.filters and self.filters.in_stock),
            exclude_ids=tuple(exclude),
        )
        try:
            if product_id is not None:
                # Shared by every shopper on the product's page: kept per process while
                # the catalogue and the vectors stay as they are (search.remembered).
                # Eligibility checks every candidate's stock again (eligible()).
                hits = search.remembered.similar_to_product(product_id, k=n, filters=filters)
            else:
                hits = search.search_by_vector(vector, k=n, filters=filters)
        except search.NotIndexed:
            return []
        return [(hit.product_id, float(hit.score)) for hit in hits]

    def embeddings(self, product_ids):
        """For the configured encoder, read in binary, from the process's copies of the rows
        that have not changed."""
        return _unit_vectors.get(product_ids)

    def similar_items(self, product_id, n):
        return self.model.similar_items(product_id, n)

    def recommend(self, shopper, n, exclude):
        user_id, session_key = shopper.key
        try:
            return self.model.recommend(
                user_id=user_id,
                session_key=session_key,
                k=n,
                exclude_ids=tuple(exclude),
                events=shopper.events,
            )
        except Exception:
            logger.exception("ALS recommendations failed for a shopper; blending without them.")
            return []

    def covisited(self, product_ids, n, exclude):
        """From the table stored in the active model's artefact, read once per process."""
        try:
            return self.model.covisited(product_ids, n, exclude_ids=tuple(exclude))
        except Exception:
            logger.exception("Co-visited products failed; blending without them.")
            return []

    def popular(self, n, exclude):
        """Event-kind weighted counts of the last ``RECOMMENDATIONS_POPULAR_DAYS`` days,
        each shopper's share capped (``popular_products``)."""
        ranking = popular_products(n, days=app_settings.POPULAR_DAYS, exclude_ids=tuple(exclude))
        return [pid for pid, _ in ranking]

    def popularity(self, product_ids):
        """From the process's ranking of the window (:mod:`~recommendations.services.popularity`),
        which :meth:`popular` reads too."""
        return popularity_scores(product_ids, days=app_settings.POPULAR_DAYS)

    def newest(self, n, exclude):
        """From the process's snapshot of the allowed products, unless the caller's filters
        narrow them (the API's), which are queried."""
        if not self._narrowed:
            return self._snapshot().newest(n, exclude)
        adapter = get_adapter()
        queryset = eligible_products(self.settings, self.filters).exclude(pk__in=list(exclude))
        if adapter.created_expression() is None:
            return list(queryset.order_by("-pk").values_list("pk", flat=True)[:n])
        ordered = queryset.order_by(F(CREATED).desc(nulls_last=True), "-pk")
        return list(ordered.values_list("pk", flat=True)[:n])

    def eligible(self, product_ids):
        """The category key and creation time of those a blend may show, read as values
        (the adapter's annotations, which its per-product answers read too): a strip keeps
        a dozen of some two hundred candidates, and only those are loaded as products
        (:meth:`products`). From the process's snapshot of them
        (:mod:`~recommendations.services.eligibility`) unless the caller's filters narrow
        them."""
        if not self._narrowed:
            return self._snapshot().lookup(product_ids)
        adapter = get_adapter()
        selected = [
            name
            for name, expression in (
                (CATEGORY, adapter.category_key_expression()),
                (CREATED, adapter.created_expression()),
            )
            if expression is not None
        ]
        rows = (
            eligible_products(self.settings, self.filters)
            .filter(pk__in=list(product_ids))
            .values_list("pk", *selected)
        )
        out = {}
        for pk, *values in rows:
            found = dict(zip(selected, values, strict=True))
            out[pk] = Item(found.get(CATEGORY), found.get(CREATED))
        return out

    @property
    def _narrowed(self):
        return self.filters is not None and self.filters.narrows

    def _snapshot(self):
        """The allowed products under this profile's rules, kept per process (what they
        depend on: the adapter and the "in stock only" rule)."""
        adapter = get_adapter()
        in_stock_only = bool(self.settings.in_stock_only)
        key = (type(adapter).__module__, type(adapter).__qualname__, in_stock_only)
        return eligibility.snapshot(key, lambda: _allowed_rows(self.settings), Item._make)

    def products(self, product_ids):
        """``{product id: product}`` of those still eligible, in one query through the
        adapter (annotated, so that cards ask nothing more). Unordered: the model's default
        ordering would cost a sort that a look-up by key throws away."""
        queryset = eligible_products(self.settings, self.filters).order_by()
        return queryset.in_bulk(list(product_ids))
