"""The recommender as the shop's pages see it: fast answers from the active model.

Each process keeps the active :class:`ActiveModel` in memory (:func:`get_active_model`).
At most every ``RECOMMENDATIONS_RELOAD_CHECK_SECONDS`` it asks the database which
version is active, and loads a new one when it changed: serving processes pick up a
newly trained or rolled-back model without a restart. A model is loaded completely
before it replaces the old one, and artefacts are written atomically by training, so
no request ever sees half a model; if a load fails the old model keeps serving.

Everything here speaks product ids, never matrix indices. Availability rules (in stock,
active, already bought) belong to the caller, which knows the blend profile; only
``exclude_ids`` is applied here, before the top-``k`` cut.

:func:`popular_products` (from :mod:`.popularity`) and :func:`purchased_product_ids`
read events directly and work without any trained model.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from lookalike.keys import native

from ..blending.covisitation import covisitation_of
from ..conf import app_settings
from ..models import Event, RecommenderModel
from . import eligibility, popularity
from .matrix import shopper_events, shopper_key, shopper_row
from .popularity import popular_products, popularity_ranking, popularity_scores
from .shoppers import shopper_events_of

logger = logging.getLogger(__name__)

__all__ = [
    "ActiveModel",
    "get_active_model",
    "clear_cache",
    "popular_products",
    "popularity_ranking",
    "popularity_scores",
    "purchased_product_ids",
]


@dataclass(eq=False)
class ActiveModel:
    """A trained model loaded in memory, answering in product ids.

    Attributes
    ----------
    version : int
    model_id : int
        Primary key of its :class:`~recommendations.models.RecommenderModel` row.
    recommender : recommendations.recommenders.ALSRecommender
    user_keys : ndarray of str, shape (n_users,)
        Shopper key of each trained row (``"u:12"``, ``"s:abc"``; ``"c:<client>"`` for the
        sessions of one address, which serve no shopper: theirs are folded in from
        their own events).
    item_ids : ndarray of int64, shape (n_items,)
        Product id of each item column.
    data_to : datetime or None
        Newest event trained on; a shopper's newer events refresh their factors.
    weights, half_life_days
        The event weighting the model was trained with, reused for fresh events.
    """

    version: int
    model_id: int
    recommender: object
    user_keys: np.ndarray
    item_ids: np.ndarray
    data_to: object = None
    weights: dict = field(default_factory=dict)
    half_life_days: float | None = None
    artifact_path: str = ""

    def __post_init__(self):
        self.user_index = {key: i for i, key in enumerate(self.user_keys.tolist())}
        self.item_index = {pid: i for i, pid in enumerate(self.item_ids.tolist())}

    @classmethod
    def load(cls, row):
        """Load the artefact of a :class:`RecommenderModel` row."""
        from ..recommenders import Recommender
        from .training import read_artifact_ids

        path = row.artifact_file
        recommender = Recommender.load(path)
        # One request is one thread: implicit's OpenMP pool costs more than it saves on a
        # single shopper (about 20 ms against 4 for recalculate_user on 2 cores).
        if hasattr(recommender, "set_num_threads"):
            recommender.set_num_threads(1)
        user_keys, item_ids = read_artifact_ids(path)
        if recommender.n_items != len(item_ids) or recommender.n_users != len(user_keys):
            raise ValueError(f"{path}: the stored ids do not match the model's shape.")
        params = row.parameters or {}
        return cls(
            version=row.version,
            model_id=row.pk,
            recommender=recommender,
            user_keys=user_keys,
            item_ids=item_ids,
            data_to=row.data_to,
            weights=params.get("event_weights") or app_settings.EVENT_WEIGHTS,
            half_life_days=params.get("half_life_days", app_settings.HALF_LIFE_DAYS),
            artifact_path=row.artifact_path,
        )

    @property
    def n_items(self):
        return len(self.item_ids)

    def _pairs(self, ids, scores):
        keep = ids >= 0
        return [
            (native(pid), float(score))
            for pid, score in zip(self.item_ids[ids[keep]], scores[keep], strict=True)
        ]

    def _columns(self, product_ids):
        columns = [self.item_index[pid] for pid in product_ids if pid in self.item_index]
        return np.asarray(columns, dtype=np.int32)

    def similar_items(self, product_id, k=10):
        """Products whose ALS item factors are closest (cosine) to ``product_id``'s.

        Returns
        -------
        list of (product id, score)
            Best first, the product itself left out; ``[]`` for a product the model
            was not trained on.
        """
        column = self.item_index.get(product_id)
        if column is None or k <= 0 or self.n_items < 2:
            return []
        ids, scores = self.recommender.similar_items(column, k=k)
        return self._pairs(ids, scores)

    def covisited(self, product_ids, k=10, exclude_ids=()):
        """Products most often looked at by the shoppers of ``product_ids``, their
        co-visitation counts summed (:mod:`~recommendations.blending.covisitation`).

        Returns
        -------
        list of (product id, score)
            Best first, ``product_ids`` and ``exclude_ids`` left out; ``[]`` when the
            artefact holds no table or the model knows none of the products.
        """
        table = covisitation_of(self)
        columns = self._columns(product_ids)
        if table is None or not len(columns) or k <= 0:
            return []
        items, scores = table.scores(columns)
        excluded = self._columns(exclude_ids)
        if len(excluded):
            keep = ~np.isin(items, excluded)
            items, scores = items[keep], scores[keep]
        return self._pairs(items[:k], scores[:k])

    def _shopper_state(self, user_id=None, session_key=None, events=None):
        """Where a shopper's factors come from: ``(row index or None, fresh user_items row)``.

        A shopper trained on, with no event since training, uses their trained row; a
        trained shopper with newer events, or one the model never saw, gets a
        ``user_items`` row built from their events now (``None`` when it has fewer
        than ``MIN_SESSION_EVENTS`` events for a shopper the model never saw). ``events``
        (:class:`~.shoppers.ShopperEvents`) are the shopper's events when the caller
        has read them already; else they are read once per request
        (:func:`~.shoppers.shopper_events_of`).
        """
        key = shopper_key(user_id, session_key)
        if key is None:
            return None, None
        if events is None:
            # Read once per request, whoever asks (the blend, its segments, the API).
            events = shopper_events_of(user_id, session_key)
        # A blend asks twice (the ALS source, the cold products' affinity): built once.
        memo = ("recommendations.shopper_state", self.model_id, self.version, key)
        if memo not in events.derived:
            events.derived[memo] = self._state_from(key, user_id, session_key, events)
        return events.derived[memo]

    def _state_from(self, key, user_id, session_key, events):
        trained = self.user_index.get(key)
        if trained is None and user_id is not None and session_key:
            # Signed in but not trained as a user: their anonymous past may have been.
            trained = self.user_index.get(shopper_key(None, session_key))
        if trained is not None and (self.data_to is None or not self._acted_since_training(events)):
            return trained, None
        row, n_events, _ = shopper_row(
            self.item_index,
            user_id=user_id,
            session_key=session_key,
            weights=self.weights,
            half_life_days=self.half_life_days,
            rows=events.weighted_rows(),
        )
        if n_events and (trained is not None or n_events >= app_settings.MIN_SESSION_EVENTS):
            return None, row
        return trained, None

    def _acted_since_training(self, events):
        return events.newest is not None and events.newest > self.data_to

    def user_vector(self, user_id=None, session_key=None):
        """The shopper's latent factors, or ``None`` when nothing usable is known.

        Returns
        -------
        ndarray of float32, shape (factors,) or None
        """
        trained, row = self._shopper_state(user_id, session_key)
        if row is not None:
            return np.asarray(self.recommender.recalculate_user(row), dtype=np.float32)
        if trained is not None:
            return np.asarray(self.recommender.user_factors[trained], dtype=np.float32)
        return None

    def recommend(
        self, user_id=None, session_key=None, k=10, exclude_ids=(), exclude_seen=False, events=None
    ):
        """Top-``k`` products for a shopper.

        A shopper the model was trained on is scored from their trained factors, or,
        if they did something since training, from factors recomputed over all their
        events (``recalculate_user``). An anonymous or new shopper is scored from the
        events of their session once there are ``MIN_SESSION_EVENTS`` of them.

        Parameters
        ----------
        user_id : int, optional
        session_key : str, optional
            The anonymous session; its events count while no user is signed in.
        k : int
        exclude_ids : iterable of int
            Products never to return (the current one, purchased, out of stock).
        exclude_seen : bool
            Also leave out every product the shopper has interacted with.
        events : recommendations.services.shoppers.ShopperEvents, optional
            The shopper's events, when the caller has read them (else they are queried).

        Returns
        -------
        list of (product id, score)
            Best first; ``[]`` when there is nothing to personalise from.
        """
        if k <= 0:
            return []
        trained, row = self._shopper_state(user_id, session_key, events)
        if trained is None and row is None:
            return []
        exclude = self._columns(set(exclude_ids))
        if row is not None:
            ids, scores = self.recommender.recommend(
                row, k=k, filter_items=exclude, filter_already_liked=exclude_seen
            )
        else:
            ids, scores = self.recommender.recommend(
                trained, k=k, filter_items=exclude, filter_already_liked=exclude_seen
            )
        return self._pairs(np.atleast_1d(ids), np.atleast_1d(scores))


class _Cache:
    """Per-process state of :func:`get_active_model`."""

    def __init__(self):
        self.lock = threading.Lock()
        self.model = None
        self.identity = None  # (row pk, version, artefact) of the loaded model
        self.checked_at = None


_cache = _Cache()


def clear_cache():
    """Forget the loaded model, popularity rankings and snapshots of the allowed products
    (tests; after deleting models)."""
    global _cache
    _cache = _Cache()
    popularity.clear()
    eligibility.clear()


def get_active_model():
    """The active model of this process, reloaded when another version becomes active.

    Returns
    -------
    ActiveModel or None
        ``None`` when no model has been trained (or none is active).
    """
    cache = _cache
    now = time.monotonic()
    interval = app_settings.RELOAD_CHECK_SECONDS
    if cache.checked_at is not None and now - cache.checked_at < interval:
        return cache.model
    with cache.lock:
        if cache.checked_at is not None and time.monotonic() - cache.checked_at < interval:
            return cache.model
        row = RecommenderModel.objects.filter(is_active=True).first()
        identity = None if row is None else (row.pk, row.version, row.artifact_path)
        if identity != cache.identity:
            if row is None:
                cache.model = None
                cache.identity = None
            else:
                try:
                    model = ActiveModel.load(row)
                except (OSError, ValueError, KeyError):
                    # Keep serving what we have; the next check tries again.
                    logger.exception("Could not load recommender v%s", row.version)
                else:
                    cache.model, cache.identity = model, identity
                    logger.info("Loaded recommender v%s", row.version)
        cache.checked_at = time.monotonic()
        return cache.model


def purchased_product_ids(user_id=None, session_key=None):
    """Ids of the products the shopper has bought (as a user, or in their session)."""
    return set(
        shopper_events(user_id, session_key)
        .filter(kind=Event.Kind.PURCHASE)
        .values_list("product_id", flat=True)
        .distinct()
    )
