"""The :class:`~.candidates.CandidateSource` of an offline evaluation: the shop as it was
at a cutoff, from the events before it.

Every question the live source answers from the database is answered here from arrays:
the catalogue (its categories and creation times; a product created after the cutoff is
not new yet, it has no recency), the stored embeddings (exact nearest neighbours, where the
shop walks an HNSW graph), an ALS model fitted on the events before the cutoff and wrapped
in the shop's own :class:`~recommendations.services.serving.ActiveModel` (so its
``similar_items`` and ``recommend`` are the serving code), and popularity over the
``RECOMMENDATIONS_POPULAR_DAYS`` before the cutoff, each shopper's weight on a product
capped at ``RECOMMENDATIONS_MAX_CELL_WEIGHT`` and the sessions of one client address
counted as its heaviest shoppers, as in the shop. Stock is not a rule here:
today's stock says nothing about the past.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import scipy.sparse as sp

from lookalike.keys import native

from ..services.clients import shoppers_in_rows, top_shoppers
from .candidates import CandidateSource, Item

__all__ = ["AsOfSource", "capped_popularity"]

_SECONDS_PER_DAY = 86400.0


def capped_popularity(who, columns, weights, n_items, cap=None, rows=None):
    """Event weights summed per product, each shopper's share of a product capped, and the
    shoppers of one row (a client address's sessions) counting as its
    ``RECOMMENDATIONS_MAX_CLIENT_SHOPPERS`` heaviest on each product, as
    :func:`recommendations.services.popularity.popularity_ranking` counts them.

    Parameters
    ----------
    who : ndarray of str, shape (n_events,)
        Shopper keys.
    columns : ndarray of int, shape (n_events,)
        Catalogue column of each event's product.
    weights : ndarray of float, shape (n_events,)
    n_items : int
    cap : float, optional
        Most weight one shopper carries on one product (none when falsy).
    rows : ndarray of str, shape (n_events,), optional
        Row keys (``"c:<client>"``, else the shopper's); each shopper its own row when
        omitted.

    Returns
    -------
    ndarray of float64, shape (n_items,)
    """
    if not len(columns):
        return np.zeros(n_items)
    shopper, shopper_rows, row_keys = shoppers_in_rows(who, who if rows is None else rows)
    per_shopper = sp.csr_matrix(
        (np.asarray(weights, dtype=np.float64), (shopper, columns)),
        shape=(len(shopper_rows), n_items),
    )
    per_shopper.sum_duplicates()
    if cap:
        np.minimum(per_shopper.data, float(cap), out=per_shopper.data)
    merged = top_shoppers(per_shopper, shopper_rows, len(row_keys))
    return np.asarray(merged.sum(axis=0), dtype=np.float64).ravel()


class AsOfSource(CandidateSource):
    """Candidates as of ``cutoff`` (seconds since the epoch).

    Parameters
    ----------
    product_ids : ndarray, shape (n_items,)
        The catalogue in key order (its columns).
    categories : ndarray, shape (n_items,)
    created : ndarray of float64, shape (n_items,)
        Creation times in epoch seconds, NaN when unknown.
    embeddings : ndarray of float64, shape (n_items, dim) or None
        L2-normalised, rows of zeros for products without one.
    model : recommendations.services.serving.ActiveModel
        Fitted on the events before the cutoff, with no ``data_to`` (its shoppers are
        scored from their trained rows, never from later events).
    popularity : ndarray of float64, shape (n_items,)
        As :func:`capped_popularity`, over the window before the cutoff.
    cutoff : float
    """

    has_model = True

    def __init__(self, *, product_ids, categories, created, embeddings, model, popularity, cutoff):
        self.product_ids = product_ids
        self.column = {native(pid): i for i, pid in enumerate(product_ids.tolist())}
        self.categories = categories
        self.created = created
        self.unit = embeddings
        self.has_embedding = (
            np.linalg.norm(embeddings, axis=1) > 0 if embeddings is not None else None
        )
        self.model = model
        self.popularity_scores = popularity
        self.now = datetime.fromtimestamp(cutoff, tz=UTC)
        self._cutoff = cutoff
        exists = ~(created > cutoff)  # unknown creation times count as existing, last
        keys = np.arange(len(product_ids))
        # Newest first, unknown creation times last, ties by the larger key (the shop's
        # order_by(created desc nulls last, -pk)); columns are in key order.
        newest = np.lexsort((-keys, np.isnan(created), -np.nan_to_num(created, nan=0.0)))
        self._newest = [c for c in newest.tolist() if exists[c]]
        ranked = np.lexsort((keys, -popularity))
        self._popular = [c for c in ranked.tolist() if popularity[c] > 0]

    def _ids(self, columns):
        return [native(self.product_ids[c]) for c in columns]

    def _first(self, order, n, exclude):
        out = []
        for c in order:
            pid = native(self.product_ids[c])
            if pid not in exclude:
                out.append(pid)
                if len(out) == n:
                    break
        return out

    def visual_neighbours(self, n, exclude, *, product_id=None, vector=None):
        """Exact nearest neighbours over the stored embeddings."""
        if self.unit is None:
            return []
        if product_id is not None:
            column = self.column.get(product_id)
            if column is None or not self.has_embedding[column]:
                return []
            vector, exclude = self.unit[column], {*exclude, product_id}
        scores = np.where(self.has_embedding, self.unit @ np.asarray(vector, np.float64), np.nan)
        for pid in exclude:
            column = self.column.get(pid)
            if column is not None:
                scores[column] = np.nan
        finite = np.flatnonzero(np.isfinite(scores))
        best = finite[np.lexsort((finite, -scores[finite]))][:n]
        return [(pid, float(scores[c])) for pid, c in zip(self._ids(best), best, strict=True)]

    def embeddings(self, product_ids):
        if self.unit is None:
            return {}
        columns = ((pid, self.column.get(pid)) for pid in product_ids)
        return {pid: self.unit[c] for pid, c in columns if c is not None and self.has_embedding[c]}

    def similar_items(self, product_id, n):
        return self.model.similar_items(product_id, n)

    def recommend(self, shopper, n, exclude):
        user_id, session_key = shopper.key
        return self.model.recommend(
            user_id=user_id, session_key=session_key, k=n, exclude_ids=tuple(exclude)
        )

    def covisited(self, product_ids, n, exclude):
        return self.model.covisited(product_ids, n, exclude_ids=tuple(exclude))

    def popular(self, n, exclude):
        return self._first(self._popular, n, exclude)

    def popularity(self, product_ids):
        scores = self.popularity_scores
        columns = ((pid, self.column.get(pid)) for pid in product_ids)
        return {pid: float(scores[c]) for pid, c in columns if c is not None and scores[c] > 0}

    def newest(self, n, exclude):
        return self._first(self._newest, n, exclude)

    def eligible(self, product_ids):
        """Every product of the catalogue; one created after the cutoff has no creation
        time yet (so no recency)."""
        out = {}
        for pid in product_ids:
            c = self.column.get(pid)
            if c is None:
                continue
            created = self.created[c]
            when = None
            if np.isfinite(created) and created <= self._cutoff:
                when = datetime.fromtimestamp(created, tz=UTC)
            out[pid] = Item(self.categories[c], when)
        return out
