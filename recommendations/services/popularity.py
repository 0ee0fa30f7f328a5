"""Popularity from the events: the ranking of a window, kept in each process.

"Popular now" (:func:`popular_products`) and the blend's popularity component
(:func:`popularity_scores`) read the same thing: every product's event weight over the last
``days`` days, each shopper's share capped, and the anonymous sessions of one address
counted as its heaviest shopper (:mod:`.clients`). One aggregate over the window's events gives
both, so each process computes it once every ``RECOMMENDATIONS_POPULAR_CACHE_SECONDS`` (the
aggregate is the cost: limiting it to the top 200 saves nothing but the transfer) and keeps
it in memory as two arrays, about 16 bytes a product. A request then looks scores up
instead of aggregating the events of its 200 candidates (about 6 ms on the demo). While one
thread refreshes an expired ranking, the others serve the old one rather than wait; only
the first ranking of a process is waited for.

It is per process rather than in the shared cache because every request reads all of it:
fetching and unpickling it from Redis on each request would cost what it saves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.db import connection
from django.db.models import Case, FloatField, Sum, Value, When
from django.utils import timezone

from lookalike.keys import first_not_in, native, to_array
from lookalike.querysets import as_sql

from ..conf import app_settings
from .clients import client_shoppers
from .matrix import countable_events, with_shopper_and_time
from .periodic import PeriodicCache

__all__ = ["clear", "popular_products", "popularity_ranking", "popularity_scores"]


@dataclass(eq=False)
class _Ranking:
    """One window's ranking: ``ids`` and ``scores`` best first (ties by product id), and
    the ids sorted with their positions, for look-ups by :func:`np.searchsorted`."""

    ids: np.ndarray
    scores: np.ndarray
    sorted_ids: np.ndarray
    positions: np.ndarray

    @classmethod
    def build(cls, rows):
        ids = to_array([pid for pid, _ in rows])
        scores = np.asarray([score for _, score in rows], dtype=np.float64)
        positions = np.argsort(ids, kind="stable")
        return cls(ids, scores, ids[positions], positions)

    def lookup(self, product_ids):
        """``{product id: score}`` of those in the ranking."""
        wanted = to_array(product_ids)
        if not len(wanted) or not len(self.ids) or wanted.dtype != self.ids.dtype:
            return self._slow_lookup(product_ids)
        at = np.minimum(np.searchsorted(self.sorted_ids, wanted), len(self.ids) - 1)
        found = self.sorted_ids[at] == wanted
        scores = self.scores[self.positions[at[found]]]
        return {native(pid): float(s) for pid, s in zip(wanted[found], scores, strict=True)}

    def _slow_lookup(self, product_ids):
        index = {native(pid): i for i, pid in enumerate(self.ids.tolist())}
        return {pid: float(self.scores[index[pid]]) for pid in product_ids if pid in index}


_rankings = PeriodicCache()


def clear():
    """Forget the rankings (tests; ``serving.clear_cache``)."""
    _rankings.clear()


def _ranking(days):
    """The ranking of the window, computed at most once per cache period per process."""
    weights = app_settings.EVENT_WEIGHTS
    key = (days, tuple(sorted(weights.items())))
    return _rankings.get(key, lambda: _Ranking.build(popularity_ranking(weights, days=days)))


def popular_products(k=10, days=None, exclude_ids=()):
    """The most interacted-with products, by summed event weight.

    Works from the events alone (no trained model needed), from the process's ranking of
    the window (see the module docstring).

    Parameters
    ----------
    k : int
    days : int, optional
        Only events of the last ``days`` days; all events by default.
    exclude_ids : iterable of int

    Returns
    -------
    list of (product id, score)
        Best first (ties by product id); scores are summed event weights.
    """
    if k <= 0:
        return []
    ranking = _ranking(days)
    return [
        (native(ranking.ids[i]), float(ranking.scores[i]))
        for i in first_not_in(ranking.ids, set(exclude_ids), k)
    ]


def popularity_scores(product_ids, days=None):
    """``{product id: summed event weight}`` of those of ``product_ids`` with events in the
    window, from the process's ranking (what :func:`popularity_ranking` would say for
    them, as of the ranking's last refresh)."""
    return _ranking(days).lookup(list(product_ids))


def _weight_expression(weights):
    return Case(
        *[When(kind=kind, then=Value(float(w))) for kind, w in weights.items()],
        default=Value(0.0),
        output_field=FloatField(),
    )


def popularity_ranking(weights, days=None, product_ids=None, limit=None):
    """``[(product id, score)]`` best first: event weights summed over shoppers, each
    shopper's weight on a product capped at ``RECOMMENDATIONS_MAX_CELL_WEIGHT`` so that no
    session (a loop reloading a page) makes a product "Popular now" for everyone, and the
    sessions of one client address counting as its ``RECOMMENDATIONS_MAX_CLIENT_SHOPPERS``
    heaviest on each product, so that no address (a loop with a new session every other
    request) does either. The rows are those of the interaction matrix (:mod:`.clients`).

    Parameters
    ----------
    weights : dict
        ``{kind: weight}``.
    days : int, optional
        Only events of the last ``days`` days.
    product_ids : iterable, optional
        Only these products.
    limit : int, optional
    """
    events = countable_events(include_simulated=True)
    if days:
        events = events.filter(created_at__gte=timezone.now() - timedelta(days=days))
    if product_ids is not None:
        events = events.filter(product_id__in=list(product_ids))
    per_shopper = (
        with_shopper_and_time(events)
        .values("product_id", "row_key", "who")
        .annotate(weight=Sum(_weight_expression(weights)))
    )
    sql, params = as_sql(per_shopper, "product_id", "row_key", "weight")
    cap = float(app_settings.MAX_CELL_WEIGHT or "Infinity")
    # Each shopper capped, then a row's heaviest shoppers on the product (a shopper's
    # own row holds only them).
    ranked = (
        "SELECT s.product_id, LEAST(s.weight, %s) AS weight, ROW_NUMBER() OVER ("
        "PARTITION BY s.product_id, s.row_key ORDER BY s.weight DESC) AS rank "
        f"FROM ({sql}) s"
    )
    query = (
        f"SELECT r.product_id, SUM(r.weight) AS score FROM ({ranked}) r WHERE r.rank <= %s "
        "GROUP BY r.product_id HAVING SUM(r.weight) > 0 ORDER BY score DESC, r.product_id"
    )
    args = [cap, *params, max(client_shoppers(), 1)]
    if limit is not None:
        query += " LIMIT %s"
        args.append(int(limit))
    with connection.cursor() as cursor:
        cursor.execute(query, args)
        return [(native(pid), float(score)) for pid, score in cursor.fetchall()]
