"""Shopper events from Oscar's own signals, so an Oscar shop changes none of its views.

* ``product_viewed`` (Oscar's product page): a ``view``, or a ``similar_click`` with the
  widget as source when the link came from a Lookalike widget or result page
  (``?from=<source>``, as the cards write it);
* ``basket_addition``: a ``cart``;
* ``post_checkout``: a ``purchase`` for every line of the order.

Children (a size or colour) are not indexed or recommended, so an event on a child is
recorded on its parent: buying the shirt in size M is interest in the shirt. Recording
never breaks Oscar's page: a failure is logged and rolled back to a savepoint, so the
request's own transaction carries on.
"""

from __future__ import annotations

import functools
import logging

from django.db import transaction

from recommendations import events
from recommendations.events import record_event

logger = logging.getLogger(__name__)

#: dispatch_uid prefix, so that connecting twice (tests, autoreload) connects once.
UID = "lookalike.contrib.oscar"


def connect():
    """Connect the receivers to Oscar's signals (from the app's ``ready()``)."""
    from oscar.apps.basket.signals import basket_addition
    from oscar.apps.catalogue.signals import product_viewed
    from oscar.apps.checkout.signals import post_checkout

    product_viewed.connect(record_view, dispatch_uid=f"{UID}.product_viewed")
    basket_addition.connect(record_basket_addition, dispatch_uid=f"{UID}.basket_addition")
    post_checkout.connect(record_order, dispatch_uid=f"{UID}.post_checkout")


def shown_product(product):
    """The product the plugins know: a child's parent, else the product itself."""
    return product.parent if product.parent_id else product


def _never_fails(receiver):
    """Run ``receiver`` in a savepoint and log, never raise, what goes wrong."""

    @functools.wraps(receiver)
    def safe(sender, request=None, **kwargs):
        try:
            with transaction.atomic():
                receiver(sender, request=request, **kwargs)
        except Exception:  # Oscar's page must never fail because of a recommendation event
            where = getattr(request, "path", "?")
            logger.exception(
                "Could not record a shopper event (%s) at %s.", receiver.__name__, where
            )

    return safe


@_never_fails
def record_view(sender, product, request, **kwargs):
    """A product page view; ``?from=<widget>`` from one of the shop's pages marks a click
    from a Lookalike widget (:func:`recommendations.events.record_view`)."""
    events.record_view(request, shown_product(product))


@_never_fails
def record_basket_addition(sender, product, request, **kwargs):
    record_event(request, shown_product(product), "cart")


@_never_fails
def record_order(sender, order, request, **kwargs):
    """One ``purchase`` per order line (a line whose product was deleted is skipped)."""
    for line in order.lines.select_related("product__parent"):
        if line.product is not None:
            record_event(request, shown_product(line.product), "purchase")
