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

from lookalike.catalogue import CREATED, get_adapter
from visualsearch import search
from visualsearch.services.vectors import load_vectors

from ..conf import app_settings
from ..services.matrix import shopper_events
from ..services.serving import (
    get_active_model,
    popular_products,
    popularity_ranking,
    purchased_product_ids,
)
from .candidates import CandidateSource, Item, Shopper

logger = logging.getLogger(__name__)

__all__ = ["LiveSource", "eligible_products", "live_shopper", "unit_vectors"]


def unit_vectors(vectors):
    """``{product id: L2-normalised float64 vector}`` of ``load_vectors``' answer; vectors
    of zeros are left out."""
    out = {}
    for pid, vector in vectors.items():
        v = vector.astype(np.float64)
        norm = np.linalg.norm(v)
        if norm > 0:
            out[pid] = v / norm
    return out


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


def live_shopper(user, session_key, settings):
    """The :class:`~.candidates.Shopper` of a request: the signed-in user or the anonymous
    session, their latest ``RECOMMENDATIONS_BLEND_HISTORY`` distinct products and, under
    the "exclude purchased" rule, what they bought."""
    authenticated = user is not None and getattr(user, "is_authenticated", False)
    user_id = user.pk if authenticated else None
    session_key = session_key or None
    if user_id is None and not session_key:
        return Shopper()
    shopper = Shopper(key=(user_id, session_key))
    recent = shopper_events(user_id, session_key).order_by("-created_at", "-id")
    seen = []
    for pid in recent.values_list("product_id", flat=True)[: 10 * app_settings.BLEND_HISTORY]:
        if pid not in seen:
            seen.append(pid)
            if len(seen) == app_settings.BLEND_HISTORY:
                break
    shopper.history = seen
    if settings.exclude_purchased:
        shopper.purchased = set(purchased_product_ids(user_id, session_key))
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
                hits = search.similar_to_product(product_id, k=n, filters=filters)
            else:
                hits = search.search_by_vector(vector, k=n, filters=filters)
        except search.NotIndexed:
            return []
        return [(hit.product_id, float(hit.score)) for hit in hits]

    def embeddings(self, product_ids):
        """For the configured encoder, read in binary."""
        return unit_vectors(load_vectors(product_ids))

    def similar_items(self, product_id, n):
        return self.model.similar_items(product_id, n)

    def recommend(self, shopper, n, exclude):
        user_id, session_key = shopper.key
        try:
            return self.model.recommend(
                user_id=user_id, session_key=session_key, k=n, exclude_ids=tuple(exclude)
            )
        except Exception:
            logger.exception("ALS recommendations failed for a shopper; blending without them.")
            return []

    def popular(self, n, exclude):
        """Event-kind weighted counts of the last ``RECOMMENDATIONS_POPULAR_DAYS`` days,
        each shopper's share capped (``popular_products``)."""
        ranking = popular_products(n, days=app_settings.POPULAR_DAYS, exclude_ids=tuple(exclude))
        return [pid for pid, _ in ranking]

    def popularity(self, product_ids):
        return dict(
            popularity_ranking(
                app_settings.EVENT_WEIGHTS, days=app_settings.POPULAR_DAYS, product_ids=product_ids
            )
        )

    def newest(self, n, exclude):
        adapter = get_adapter()
        queryset = eligible_products(self.settings, self.filters).exclude(pk__in=list(exclude))
        if adapter.created_expression() is None:
            return list(queryset.order_by("-pk").values_list("pk", flat=True)[:n])
        ordered = queryset.order_by(F(CREATED).desc(nulls_last=True), "-pk")
        return list(ordered.values_list("pk", flat=True)[:n])

    def eligible(self, product_ids):
        """The products themselves, loaded in one query through the adapter."""
        adapter = get_adapter()
        products = eligible_products(self.settings, self.filters).in_bulk(product_ids)
        return {
            pid: Item(adapter.get_category_key(p), adapter.get_created(p), p)
            for pid, p in products.items()
        }
