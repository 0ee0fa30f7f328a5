"""Impressions of the strips served in an experiment, and what shoppers did after them.

A strip served under an experiment gets a random *recommendation id* (32 hexadecimal
characters) shared by its products, written as :class:`~recommendations.models.Impression`
rows, and carried by the strip's links as ``?rec=`` next to ``?from=``. What follows is
attributed by these rules, which :func:`recommendations.events.record_event` applies to
every event it records (so bots, ``HEAD`` requests and cookie-less clients, which record
no event, are never attributed either):

* a **click** is a ``similar_click`` event (so ``?from=`` named one of the shop's own
  widgets and the link was followed from one of its pages, see
  :func:`recommendations.events.click_source`) whose ``?rec=`` names an impression of
  that very product shown to that very shopper within :data:`CLICK_WINDOW`. An unknown,
  malformed or someone else's recommendation id is ignored: a forged link can at most
  make a plain click;
* an **add to cart** or **purchase** counts for the latest clicked impression of that
  product by that shopper within :data:`FOLLOW_WINDOW` of the impression.

Each kind counts once per impression (a unique constraint), so reloads and second
purchases do not inflate the rates. Nor do reloads inflate the strips: the same strip
shown again to the same shopper within ``RECOMMENDATIONS_VIEW_WINDOW_SECONDS``
(:func:`shown_again`) keeps its recommendation id and records no new rows, as a product
page viewed again records no new view; otherwise a shopper reloading a page would lower
their arm's rates, and plain ``GET`` requests would grow the table without end.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

from django.db import IntegrityError, router, transaction
from django.db.models import Q
from django.utils import timezone

from ..models import Event, Impression, ImpressionOutcome

__all__ = [
    "CLICK_WINDOW",
    "FOLLOW_WINDOW",
    "attribute_event",
    "attribute_request",
    "new_recommendation_id",
    "record_impressions",
    "shown_again",
]

#: How long after a strip was shown a click on it still counts.
CLICK_WINDOW = timedelta(hours=24)
#: How long after a strip was shown a cart or purchase of a clicked product still counts.
FOLLOW_WINDOW = timedelta(days=7)

_REC_ID = re.compile(r"[0-9a-f]{32}")


def new_recommendation_id():
    """A fresh recommendation id: random, so it cannot be guessed for another shopper."""
    return secrets.token_hex(16)


def record_impressions(
    arm, widget, product_ids, *, user_id=None, session_key="", simulated=False, when=None
):
    """Store one strip served under ``arm`` and return its recommendation id.

    Parameters
    ----------
    arm : ExperimentArm
        With its experiment and profile.
    widget : str
        ``"similar-items"`` or ``"for-you"``.
    product_ids : sequence
        The strip's products, in the order shown (position 0 first).
    user_id, session_key
        The shopper as :class:`~recommendations.models.Event` stores one.
    """
    rec_id = new_recommendation_id()
    when = when or timezone.now()
    Impression.objects.bulk_create(
        Impression(
            experiment_id=arm.experiment_id,
            arm=arm,
            profile_id=arm.profile_id,
            widget=widget[:30],
            position=position,
            product_id=product_id,
            recommendation_id=rec_id,
            user_id=user_id,
            session_key=session_key or "",
            created_at=when,
            simulated=simulated,
        )
        for position, product_id in enumerate(product_ids)
    )
    return rec_id


def shown_again(arm, widget, product_ids, *, user_id=None, session_key="", within):
    """The recommendation id of the same strip (same arm, widget and products in the same
    order) shown to this shopper within ``within`` (a ``timedelta``), or ``None``.

    Two indexed reads: the shopper's recent strips that began with the same product, then
    the products of the latest of them; from the primary database, where the strip shown a
    moment ago was written (a replica may not have it yet).
    """
    product_ids = list(product_ids)
    if not product_ids:
        return None
    shopper = (
        Q(user_id=user_id)
        if user_id is not None
        else Q(user__isnull=True, session_key=session_key or "")
    )
    impressions = Impression.objects.using(router.db_for_write(Impression))
    latest = (
        impressions.filter(
            shopper,
            product_id=product_ids[0],
            position=0,
            experiment_id=arm.experiment_id,
            arm=arm,
            widget=widget[:30],
            created_at__gte=timezone.now() - within,
        )
        .order_by("-created_at")
        .values_list("recommendation_id", flat=True)
        .first()
    )
    if latest is None:
        return None
    shown = impressions.filter(recommendation_id=latest).order_by("position")
    return latest if list(shown.values_list("product_id", flat=True)) == product_ids else None


def _shopper_filter(event):
    if event.user_id is not None:
        return Q(user_id=event.user_id) | Q(session_key=event.session_key)
    return Q(user__isnull=True, session_key=event.session_key)


def _add(impression, kind, event):
    try:
        with transaction.atomic():
            return ImpressionOutcome.objects.create(
                impression=impression, kind=kind, event=event, created_at=event.created_at
            )
    except IntegrityError:  # counted once per impression already
        return None


def _attribute_click(event, recommendation_id):
    if not isinstance(recommendation_id, str) or not _REC_ID.fullmatch(recommendation_id):
        return None
    impression = (
        Impression.objects.filter(
            _shopper_filter(event),
            recommendation_id=recommendation_id,
            product_id=event.product_id,
            created_at__gte=event.created_at - CLICK_WINDOW,
            created_at__lte=event.created_at,
        )
        .order_by("position")
        .first()
    )
    if impression is None:
        return None
    return _add(impression, ImpressionOutcome.Kind.CLICK, event)


def _attribute_follow_up(event, kind):
    impression = (
        Impression.objects.filter(
            _shopper_filter(event),
            product_id=event.product_id,
            created_at__gte=event.created_at - FOLLOW_WINDOW,
            created_at__lte=event.created_at,
            outcomes__kind=ImpressionOutcome.Kind.CLICK,
        )
        .order_by("-created_at")
        .first()
    )
    if impression is None:
        return None
    return _add(impression, kind, event)


def attribute_event(event, recommendation_id=""):
    """Attribute ``event`` to the impression it followed, if any (module docstring).

    Returns the new :class:`~recommendations.models.ImpressionOutcome`, or ``None``.
    """
    if event is None:
        return None
    if event.kind == Event.Kind.SIMILAR_CLICK:
        return _attribute_click(event, recommendation_id)
    if event.kind == Event.Kind.CART:
        return _attribute_follow_up(event, ImpressionOutcome.Kind.CART)
    if event.kind == Event.Kind.PURCHASE:
        return _attribute_follow_up(event, ImpressionOutcome.Kind.PURCHASE)
    return None


def attribute_request(request, event):
    """:func:`attribute_event` for an event just recorded from ``request``: the
    recommendation id is read from ``?rec=`` only for a click from one of the shop's own
    widgets (the event has a source only then)."""
    if event is None:
        return None
    rec_id = ""
    if event.kind == Event.Kind.SIMILAR_CLICK and event.source:
        rec_id = request.GET.get("rec", "")
    return attribute_event(event, rec_id)
