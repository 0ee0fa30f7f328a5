"""Fixtures and data builders shared by the matrix, training, serving, simulation and
command tests."""

from datetime import timedelta

import numpy as np
from django.utils import timezone

from recommendations.models import Event
from recommendations.services import serving

SMALL_ALS = {"factors": 4, "regularization": 5.0, "alpha": 5.0, "iterations": 10}


def recsys_environment(settings, tmp_path):
    """Private artefact and simulation folders; no process caches between tests.

    A generator for each test module's own autouse fixture (``yield from``): pytest
    does not allow one fixture object to be imported into several modules.
    """
    settings.RECOMMENDATIONS_ARTIFACT_DIR = tmp_path / "recommender"
    settings.RECOMMENDATIONS_SIMULATION_DIR = tmp_path / "simulation"
    settings.RECOMMENDATIONS_RELOAD_CHECK_SECONDS = 0
    settings.RECOMMENDATIONS_POPULAR_CACHE_SECONDS = 0
    # Products made in transactional tests would otherwise be embedded inline, by a CNN.
    settings.VISUALSEARCH_INDEX_ON_SAVE = False
    serving.clear_cache()
    yield
    serving.clear_cache()


def add_event(product, kind="view", user=None, session_key="", days_ago=0.0, **fields):
    return Event.objects.create(
        product=product,
        kind=kind,
        user=user,
        session_key=session_key,
        created_at=timezone.now() - timedelta(days=days_ago),
        **fields,
    )


def two_groups(product_factory, category_factory, n_per_group=8, n_shoppers=40, seed=0):
    """Two groups of products and anonymous shoppers who each browse one group only.

    Every shopper views 5 of their group's products a few days ago and puts one in the
    cart, so collaborative filtering has an unambiguous structure to find.

    Returns
    -------
    dict
        ``{"a": [products], "b": [products], "shoppers": {"a": [keys], "b": [keys]}}``.
    """
    rng = np.random.default_rng(seed)
    groups = {}
    for name in "ab":
        category = category_factory(name=f"Group {name}", slug=f"group-{name}")
        groups[name] = [
            product_factory(category=category, title=f"{name.upper()} {i}")
            for i in range(n_per_group)
        ]
    shoppers = {"a": [], "b": []}
    events = []
    for s in range(n_shoppers):
        name = "ab"[s % 2]
        key = f"shopper-{s:04d}"
        shoppers[name].append(key)
        picks = rng.choice(len(groups[name]), size=5, replace=False)
        for i, j in enumerate(picks):
            kind = "cart" if i == 0 else "view"
            events.append(
                Event(
                    product=groups[name][j],
                    kind=kind,
                    session_key=key,
                    created_at=timezone.now() - timedelta(days=float(rng.uniform(1, 5))),
                )
            )
    Event.objects.bulk_create(events)
    groups["shoppers"] = shoppers
    return groups


def product_ids(products):
    return {p.pk for p in products}
