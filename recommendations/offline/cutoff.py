"""The shop as it was at an evaluation's cutoff, for
:mod:`~recommendations.offline.blend_evaluation`: its catalogue and embeddings, the ALS
model (and cold-start map) fitted on the events before the cutoff, the
:class:`~recommendations.blending.asof.AsOfSource` over them, and the evaluated shoppers
as the shop would have known them."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from lookalike.catalogue import get_adapter
from lookalike.keys import native, to_array
from visualsearch.services.vectors import load_vectors

from ..blending.asof import AsOfSource, capped_popularity
from ..blending.candidates import Shopper
from ..blending.coldstart import fit_cold_start
from ..blending.covisitation import fit_covisitation
from ..blending.live import unit_vectors
from ..conf import app_settings
from ..recommenders import ALSRecommender
from ..services.serving import ActiveModel
from .shop_events import histories

__all__ = ["catalogue", "embedding_matrix", "fit_model", "shoppers_at", "source_at", "widen"]

_SECONDS_PER_DAY = 86400.0


def catalogue():
    """The shown products, in key order: ``(ids, main categories, creation timestamps)``."""
    adapter = get_adapter()
    products = adapter.annotate(adapter.get_queryset()).order_by("pk")
    rows = [
        (p.pk, adapter.get_category_key(p), adapter.get_created(p)) for p in products.iterator()
    ]
    ids = to_array(r[0] for r in rows)
    categories = np.asarray([r[1] for r in rows], dtype=object)
    created = np.asarray(
        [r[2].timestamp() if r[2] is not None else np.nan for r in rows], dtype=np.float64
    )
    return ids, categories, created


def embedding_matrix(product_ids):
    """``(n_items, dim)`` L2-normalised float64 vectors in ``product_ids`` order (zeros:
    none), normalised as the live blend normalises them."""
    vectors = unit_vectors(load_vectors(product_ids.tolist()))
    if not vectors:
        return None
    matrix = np.zeros((len(product_ids), len(next(iter(vectors.values())))))
    for i, pid in enumerate(product_ids.tolist()):
        if native(pid) in vectors:
            matrix[i] = vectors[native(pid)]
    return matrix


def fit_model(train, users, items, params, seed, catalogue_columns, embeddings, categories):
    """ALS fitted on the products with events before the cutoff, wrapped as the shop
    wraps its active model, with the cold-start map and the co-visitation table fitted as
    training fits them; no
    ``data_to``, so shoppers are scored from their trained rows, never from their later
    events."""
    seen = np.flatnonzero(np.diff(train.tocsc().indptr) > 0)
    als = ALSRecommender(random_state=seed, **params).fit(train[:, seen])
    item_ids = np.asarray([int(items[c]) for c in seen], dtype=np.int64)
    model = ActiveModel(version=0, model_id=0, recommender=als, user_keys=users, item_ids=item_ids)
    model.covisitation = fit_covisitation(train[:, seen])
    if embeddings is not None:
        columns = np.asarray([catalogue_columns[int(i)] for i in item_ids], dtype=np.int64)
        model.cold_start = fit_cold_start(
            als.item_factors, embeddings[columns], categories[columns]
        )
    return model


def widen(matrix, items, column):
    """``matrix``'s columns (products, in the interactions' order) moved to catalogue
    columns: the blend ranks the whole catalogue."""
    to_catalogue = np.asarray([column[int(i)] for i in items], dtype=np.int64)
    coo = matrix.tocoo()
    return sp.csr_matrix(
        (coo.data, (coo.row, to_catalogue[coo.col])), shape=(matrix.shape[0], len(column))
    )


def source_at(catalogue, events, weights, cutoff, model, embeddings):
    """The shop at the cutoff, for :func:`gather_for_user`."""
    product_ids, categories, created = catalogue
    column = {native(pid): i for i, pid in enumerate(product_ids.tolist())}
    days = app_settings.POPULAR_DAYS
    window = events.ts < cutoff
    if days:
        window &= events.ts >= cutoff - days * _SECONDS_PER_DAY
    popularity = capped_popularity(
        events.who[window],
        np.asarray([column[p] for p in events.product[window].tolist()], dtype=np.int64),
        weights[window],
        len(product_ids),
        app_settings.MAX_CELL_WEIGHT,
        rows=events.row[window],
    )
    return AsOfSource(
        product_ids=product_ids,
        categories=categories,
        created=created,
        embeddings=embeddings,
        model=model,
        popularity=popularity,
        cutoff=cutoff,
    )


def shoppers_at(before, users, evaluated):
    """``{row: Shopper}`` of the evaluated shoppers as of the cutoff: their key, history
    (read as the shop reads it) and number of events."""
    found = histories(before, app_settings.BLEND_HISTORY)
    keys, counts = np.unique(before.who, return_counts=True)
    count = dict(zip(keys.tolist(), counts.tolist(), strict=True))
    out = {}
    for row in evaluated:
        key = users[row]
        user, history = found.get(key, (None, []))
        out[row] = Shopper(key=user, history=history, n_events=count.get(key, 0))
    return out
