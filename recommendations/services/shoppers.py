"""One shopper's events, read once per request.

Personalising a widget asks four questions about the shopper: their latest products (the
blend's history), what they bought (the "exclude purchased" rule), whether they did
anything since the model was trained, and their events as a ``user_items`` row (to
recompute their factors). Each was a query of its own, and a page with both widgets asked
them twice. :func:`shopper_events_of` reads the shopper's events once, newest first, and
keeps them for the rest of the request (:func:`lookalike.requestcache.memoize`, keyed by
the shopper: never another shopper's).

Only the latest ``RECOMMENDATIONS_SHOPPER_EVENTS`` events are read (1,000 by default): a
session that has looked at thousands of products, a crawler's say, would otherwise cost
every one of its requests a read of them all. Their purchases are still all known: when the
latest events do not hold every one, they are read apart, in the same request. Times are
read as epoch seconds only, which is what every question asks: turning each row's time into
a ``datetime`` as well cost about a third of the read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from lookalike.requestcache import forget, memoize, replace

from ..conf import app_settings
from ..models import Event
from .matrix import epoch_seconds, shopper_events

__all__ = ["ShopperEvents", "add_shopper_event", "forget_shopper_events", "shopper_events_of"]


@dataclass(frozen=True)
class ShopperEvents:
    """The events of one shopper (their user's, plus their session's while anonymous).

    Attributes
    ----------
    rows : tuple of (product id, kind, epoch seconds)
        Newest first (by time, then by event id); the latest
        ``RECOMMENDATIONS_SHOPPER_EVENTS`` of them.
    older_purchases : frozenset
        Products bought in events older than ``rows`` (read only when ``rows`` stops short
        of their first event).
    derived : dict
        What callers computed from these rows and keep with them (the active model's
        ``user_items`` row of the shopper): the events are read once per request, so
        what is derived from them is computed once too, and never outlives them.
    """

    rows: tuple = ()
    older_purchases: frozenset = frozenset()
    derived: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def newest(self) -> datetime | None:
        """When their latest event happened; ``None`` without events."""
        return _when(self.rows[0][2]) if self.rows else None

    def recent_products(self, n, scanned):
        """Their latest ``n`` distinct products, newest first, found among their latest
        ``scanned`` events."""
        seen = []
        for pid, *_ in self.rows[:scanned]:
            if pid not in seen:
                seen.append(pid)
                if len(seen) == n:
                    break
        return seen

    def purchased(self):
        """The products they bought."""
        bought = {pid for pid, kind, _ in self.rows if kind == Event.Kind.PURCHASE}
        return bought | self.older_purchases

    def weighted_rows(self):
        """``(product id, kind, epoch seconds)`` oldest first, as ``shopper_row`` takes
        them."""
        return self.rows[::-1]


def shopper_events_of(user_id=None, session_key=None):
    """The :class:`ShopperEvents` of a signed-in user and/or an anonymous session, read in
    one query, once per request; empty for nobody."""
    if user_id is None and not session_key:
        return ShopperEvents()

    def read():
        limit = max(int(app_settings.SHOPPER_EVENTS), 1)
        events = shopper_events(user_id, session_key)
        rows = tuple(
            events.annotate(ts=epoch_seconds())
            .order_by("-created_at", "-id")
            .values_list("product_id", "kind", "ts")[: limit + 1]
        )
        if len(rows) <= limit:
            return ShopperEvents(rows)
        rows = rows[:limit]
        older = events.filter(kind=Event.Kind.PURCHASE, created_at__lte=_when(rows[-1][2]))
        purchases = older.values_list("product_id", flat=True).distinct().order_by()
        return ShopperEvents(rows, frozenset(purchases))

    return memoize(_key(user_id, session_key), read)


def forget_shopper_events(user_id=None, session_key=None):
    """Read the shopper's events again in this request: one was just recorded."""
    forget(_key(user_id, session_key))


def add_shopper_event(user_id, session_key, event):
    """Add ``event``, just recorded, to the shopper's events this request has read: the
    strips rendered after a product view see it without reading them all again."""
    row = (event.product_id, event.kind, event.created_at.timestamp())
    replace(
        _key(user_id, session_key),
        lambda events: ShopperEvents((row, *events.rows), events.older_purchases),
    )


def _when(ts):
    return datetime.fromtimestamp(ts, tz=UTC)


def _key(user_id, session_key):
    return ("recommendations.shopper_events", user_id, session_key or None)
