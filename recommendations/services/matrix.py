"""Shopper events as an implicit-feedback ``user_items`` matrix.

Rows are shoppers: a signed-in user (key ``"u:<user id>"``) or an anonymous session
(``"s:<session key>"``); an event made while signed in counts for the user whatever
its session. The anonymous sessions of one client address share one row,
``"c:<client>"``, that weighs as one shopper (:mod:`.clients`). Columns are products (by
id). A cell is the sum of the shopper's event weights on the product: each event kind has
a confidence (``RECOMMENDATIONS_EVENT_WEIGHTS``: view < similar click < cart < purchase),
optionally halved every ``RECOMMENDATIONS_HALF_LIFE_DAYS`` of age so that old tastes
fade, and capped (:func:`cap_weights`).

Everything after the query is vectorised: the database returns one flat tuple per
event and numpy does the rest, so 200k events become a matrix in well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import scipy.sparse as sp
from django.db import connections
from django.db.models import FloatField, Q
from django.db.models.functions import Cast, Extract
from django.utils import timezone

from lookalike.keys import to_array

from ..conf import app_settings
from ..datasets import build_user_items
from ..models import Event
from .clients import (
    client_shoppers,
    named_rows,
    row_expression,
    shopper_expression,
    shoppers_in_rows,
    top_shoppers,
)

__all__ = [
    "cap_weights",
    "EventMatrix",
    "build_event_matrix",
    "epoch_seconds",
    "event_weights",
    "shopper_events",
    "shopper_key",
    "shopper_row",
]

_SECONDS_PER_DAY = 86400.0
_DEFAULT = object()


def shopper_key(user_id=None, session_key=None):
    """Row key of a shopper: ``"u:12"`` for a user, ``"s:abc"`` for an anonymous session."""
    if user_id is not None:
        return f"u:{user_id}"
    if session_key:
        return f"s:{session_key}"
    return None


@dataclass(eq=False)
class EventMatrix:
    """Events as a matrix, with the ids of its rows and columns.

    Attributes
    ----------
    user_items : csr_matrix of float32, shape (n_users, n_items)
        Summed (and decayed) event weights.
    user_keys : ndarray of str, shape (n_users,)
        Key of each row (``"u:12"``, ``"s:abc"``, ``"c:<client>"``), sorted.
    item_ids : ndarray of int64 (or object, for UUID keys), shape (n_items,)
        Product id of each column, sorted.
    n_events : int
        Events that went into the matrix.
    data_from, data_to : datetime or None
        Times of the oldest and newest event; ``None`` when there are none.
    now : datetime
        The time ages were measured from for the decay.
    weights : dict
        Event-kind weights used.
    half_life_days : float or None
        Decay used; ``None`` for none.
    """

    user_items: sp.csr_matrix
    user_keys: np.ndarray
    item_ids: np.ndarray
    n_events: int
    data_from: datetime | None
    data_to: datetime | None
    now: datetime
    weights: dict = field(default_factory=dict)
    half_life_days: float | None = None

    @property
    def shape(self):
        return self.user_items.shape

    @property
    def n_interactions(self):
        return int(self.user_items.nnz)

    def user_index(self):
        """``{shopper key: row}``."""
        return {key: i for i, key in enumerate(self.user_keys.tolist())}

    def item_index(self):
        """``{product id: column}``."""
        return {pid: i for i, pid in enumerate(self.item_ids.tolist())}


def event_weights(kinds, timestamps=None, now=None, weights=None, half_life_days=_DEFAULT):
    """Weight of each event from its kind and, with a half-life, its age.

    Parameters
    ----------
    kinds : array_like of str, shape (n_events,)
    timestamps : array_like of float, shape (n_events,), optional
        Seconds since the epoch; needed for the decay.
    now : datetime, optional
        Ages are measured from here (``timezone.now()`` by default); events "in the
        future" of it count as new.
    weights : dict, optional
        ``{kind: weight}``; ``RECOMMENDATIONS_EVENT_WEIGHTS`` by default. Unknown kinds
        weigh 0.
    half_life_days : float or None, optional
        ``RECOMMENDATIONS_HALF_LIFE_DAYS`` by default; ``None`` turns the decay off.

    Returns
    -------
    ndarray of float32, shape (n_events,)
    """
    weights = app_settings.EVENT_WEIGHTS if weights is None else weights
    if half_life_days is _DEFAULT:
        half_life_days = app_settings.HALF_LIFE_DAYS
    kinds = np.asarray(kinds)
    if not len(kinds):
        return np.zeros(0, dtype=np.float32)
    unique, inverse = np.unique(kinds, return_inverse=True)
    table = np.array([float(weights.get(str(kind), 0.0)) for kind in unique], dtype=np.float64)
    values = table[inverse]
    if half_life_days and timestamps is not None:
        now = timezone.now() if now is None else now
        ages = (now.timestamp() - np.asarray(timestamps, dtype=np.float64)) / _SECONDS_PER_DAY
        values = values * np.exp2(-np.clip(ages, 0.0, None) / float(half_life_days))
    return values.astype(np.float32)


def cap_weights(user_items, cell=None, row=None):
    """Bound what one shopper can weigh, so that no session steers the model.

    Each cell is clipped at ``cell`` (``RECOMMENDATIONS_MAX_CELL_WEIGHT``): a hundred
    views of one product count as a few. A row whose total is above ``row``
    (``RECOMMENDATIONS_MAX_SHOPPER_WEIGHT``) is scaled down to it, keeping its shape: a
    session that viewed the whole catalogue says little about any one product.

    Parameters
    ----------
    user_items : csr_matrix, shape (n_users, n_items)

    Returns
    -------
    csr_matrix of float32, shape (n_users, n_items)
    """
    cell = app_settings.MAX_CELL_WEIGHT if cell is None else cell
    row = app_settings.MAX_SHOPPER_WEIGHT if row is None else row
    capped = sp.csr_matrix(user_items, dtype=np.float32, copy=True)
    if cell:
        np.minimum(capped.data, np.float32(cell), out=capped.data)
    if row:
        totals = np.asarray(capped.sum(axis=1), dtype=np.float64).ravel()
        scale = np.ones_like(totals)
        heavy = totals > row
        scale[heavy] = row / totals[heavy]
        if heavy.any():
            capped = sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ capped, dtype=np.float32)
    return capped


def with_shopper_and_time(queryset):
    """Annotate the shopper key (``who``), its row (``row_key``: the shopper's, or its
    address's, see :mod:`.clients`) and the epoch seconds, so the database computes them."""
    return queryset.annotate(who=shopper_expression(), row_key=row_expression(), ts=epoch_seconds())


def countable_events(since=None, until=None, include_simulated=True, queryset=None):
    queryset = Event.objects.all() if queryset is None else queryset
    # An anonymous event without a session cannot be tied to anyone.
    queryset = queryset.exclude(user__isnull=True, session_key="")
    if since is not None:
        queryset = queryset.filter(created_at__gte=since)
    if until is not None:
        queryset = queryset.filter(created_at__lte=until)
    if not include_simulated:
        queryset = queryset.filter(simulated=False)
    return queryset


def _fetch(queryset):
    """All rows of ``queryset`` as plain tuples, straight from the cursor.

    The ORM builds the SQL; skipping its per-row machinery (the values are already
    plain ints, strings and floats) makes reading events about twice as fast.
    """
    sql, params = queryset.query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _columns(rows, n):
    """Split ``n`` fetched rows of (who, row key, product, kind, ts) into numpy columns."""
    if not n:
        return (
            np.zeros(0, dtype=str),
            np.zeros(0, dtype=str),
            to_array(()),
            np.zeros(0, dtype=str),
            np.zeros(0, dtype=np.float64),
        )
    who, row, product, kind, ts = zip(*rows, strict=True)
    return (
        np.asarray(who),
        np.asarray(row),
        to_array(product),
        np.asarray(kind),
        np.fromiter(ts, dtype=np.float64, count=n),
    )


def _rows(who, row, item_index, values, n_items):
    """The ``user_items`` matrix of the events: each shopper capped
    (:func:`cap_weights`), then the shoppers of one address merged into its row and that
    row capped ``MAX_CLIENT_SHOPPERS`` times higher (:mod:`.clients`).

    Returns
    -------
    row_keys : ndarray of str, shape (n_rows,)
    user_items : csr_matrix of float32, shape (n_rows, n_items)
    """
    if np.array_equal(who, row):  # no address to group
        keys, index = np.unique(who, return_inverse=True)
        return keys, cap_weights(build_user_items(index, item_index, values, (len(keys), n_items)))
    shopper, shopper_rows, row_keys = shoppers_in_rows(who, row)
    shape = (len(shopper_rows), n_items)
    per_shopper = cap_weights(build_user_items(shopper, item_index, values, shape))
    merged = top_shoppers(per_shopper, shopper_rows, len(row_keys))
    times = max(client_shoppers(), 1)
    cell, total = app_settings.MAX_CELL_WEIGHT, app_settings.MAX_SHOPPER_WEIGHT
    shopper_keys = np.empty(len(shopper_rows), dtype=object)
    shopper_keys[shopper] = who
    keys = named_rows(row_keys, shopper_rows, shopper_keys)
    return keys, cap_weights(merged, cell=(cell or 0) * times, row=(total or 0) * times)


def build_event_matrix(
    since=None,
    until=None,
    now=None,
    weights=None,
    half_life_days=_DEFAULT,
    include_simulated=True,
    queryset=None,
):
    """Build the ``user_items`` matrix from the events of a time window.

    Parameters
    ----------
    since, until : datetime, optional
        The data window (both inclusive); all events by default.
    now : datetime, optional
        Reference time of the decay; ``until`` if given, else the current time.
    weights, half_life_days
        See :func:`event_weights`; the app settings by default.
    include_simulated : bool
        Whether events of ``simulate_shoppers`` count.
    queryset : QuerySet of Event, optional
        Start from these events instead of all of them.

    Returns
    -------
    EventMatrix
    """
    weights = app_settings.EVENT_WEIGHTS if weights is None else dict(weights)
    if half_life_days is _DEFAULT:
        half_life_days = app_settings.HALF_LIFE_DAYS
    now = now or until or timezone.now()
    events = countable_events(since, until, include_simulated, queryset)
    rows = _fetch(
        with_shopper_and_time(events).values_list("who", "row_key", "product_id", "kind", "ts")
    )
    who, row, product, kind, ts = _columns(rows, len(rows))
    del rows
    values = event_weights(kind, ts, now=now, weights=weights, half_life_days=half_life_days)
    item_ids, item_index = np.unique(product, return_inverse=True)
    user_keys, user_items = _rows(who, row, item_index, values, len(item_ids))
    data_from = data_to = None
    if len(ts):
        data_from = datetime.fromtimestamp(float(ts.min()), tz=UTC)
        data_to = datetime.fromtimestamp(float(ts.max()), tz=UTC)
    return EventMatrix(
        user_items=user_items,
        user_keys=user_keys.astype(str),
        item_ids=to_array(item_ids.tolist()),
        n_events=len(ts),
        data_from=data_from,
        data_to=data_to,
        now=now,
        weights=weights,
        half_life_days=half_life_days,
    )


def epoch_seconds():
    """An event's time in seconds since the epoch, computed by the database (what the
    decay of :func:`event_weights` reads)."""
    return Cast(Extract("created_at", "epoch"), output_field=FloatField())


def shopper_events(user_id=None, session_key=None):
    """The events of one shopper: their user's, plus their session's while anonymous.

    Returns an empty queryset when neither is given.
    """
    condition = Q()
    if user_id is not None:
        condition |= Q(user_id=user_id)
    if session_key:
        condition |= Q(session_key=session_key, user__isnull=True)
    if not condition:
        return Event.objects.none()
    return Event.objects.filter(condition)


def shopper_row(
    item_index,
    user_id=None,
    session_key=None,
    since=None,
    now=None,
    weights=None,
    half_life_days=_DEFAULT,
    rows=None,
):
    """One shopper's events as a ``user_items`` row over a trained model's columns.

    Parameters
    ----------
    item_index : dict
        ``{product id: column}`` of the model; events on other products are dropped
        (the model has no factors for them).
    user_id, session_key
        Who; see :func:`shopper_events`.
    since : datetime, optional
        Only events from then on.
    now, weights, half_life_days
        See :func:`event_weights`.
    rows : list of (product id, kind, epoch seconds), optional
        The shopper's events, already read (oldest first: the order their weights are
        summed in); read from the database when not given.

    Returns
    -------
    row : csr_matrix of float32, shape (1, n_items)
    n_events : int
        Events of the shopper on products the model knows.
    newest : datetime or None
        Time of their newest event, known products or not.
    """
    if rows is None:
        events = shopper_events(user_id, session_key)
        if since is not None:
            events = events.filter(created_at__gte=since)
        rows = list(
            events.annotate(ts=epoch_seconds()).values_list("product_id", "kind", "ts").order_by()
        )
    elif since is not None:
        rows = [r for r in rows if r[2] >= since.timestamp()]
    n_items = len(item_index)
    newest = None
    if rows:
        newest = datetime.fromtimestamp(max(r[2] for r in rows), tz=UTC)
    known = [r for r in rows if r[0] in item_index]
    if not known:
        return sp.csr_matrix((1, n_items), dtype=np.float32), 0, newest
    columns = np.fromiter((item_index[r[0]] for r in known), dtype=np.int32, count=len(known))
    kinds = np.asarray([r[1] for r in known])
    ts = np.fromiter((r[2] for r in known), dtype=np.float64, count=len(known))
    values = event_weights(kinds, ts, now=now, weights=weights, half_life_days=half_life_days)
    row = build_user_items(np.zeros(len(known), dtype=np.int32), columns, values, (1, n_items))
    return cap_weights(row), len(known), newest
