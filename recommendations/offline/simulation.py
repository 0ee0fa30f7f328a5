r"""Simulated shoppers with a known taste: demo data and a ground truth to tune against.

A real shop starts with no events, so the demo (and the blend's tuning) needs
shoppers. These are drawn from a small generative model whose parameters are kept, so
that any recommender can be scored against what each shopper *truly* prefers, not only
against what they happened to click.

The generative model
--------------------
The world
    Products are grouped into *visual clusters*: k-means over their stored visual
    embeddings (``visualsearch.ProductEmbedding``, reduced to 32 dimensions by PCA)
    when most products have one, otherwise their categories. Each product ``j`` has a
    latent *appeal* :math:`q_j \sim N(0, 0.7^2)` shared by every shopper, which makes a
    few products popular and most of them niche, as in real shops.
A shopper ``s``
    - likes 1 to 3 clusters (more likely the larger ones), with taste shares
      :math:`t_{s,c}` from a Dirichlet(2, ..., 2);
    - favours 1 or 2 categories, which add :math:`b = 1` to their utility;
    - has a *budget* :math:`B_s` = median price x lognormal(0, 0.5) and a *price
      sensitivity* :math:`\beta_s \sim U(0.5, 3)`;
    - explores at random with probability :math:`\epsilon_s \sim Beta(2, 10)` (noise).
    The utility of product ``j`` is
    :math:`u_{sj} = q_j + b\,[cat_j \in fav_s] - \beta_s \max(0, \ln(price_j / B_s))`,
    and the shopper's *true preference* (noise-free) is
    :math:`P_s(j) = t_{s,c_j}\,\mathrm{softmax}_{c_j}(u_s)_j`: pick a liked cluster by
    taste share, then a product in it by utility.
Behaviour
    Each shopper has :math:`1 + Poisson(2)` sessions at random times over the last ``D``
    days, each of :math:`1 + Poisson(5)` views drawn from
    :math:`(1 - \epsilon_s) P_s + \epsilon_s / n`. After a view of a product in a
    liked cluster, they click a visually similar product (same cluster, by utility)
    with probability 0.3 (0.05 otherwise). A viewed or clicked product goes to the cart
    with probability :math:`0.15\,e^{-\beta_s \max(0, \ln(price/B_s))}` (a fifth of
    that outside liked clusters) and a carted one is bought with probability 0.5.
    Events within a session are 1 to a few minutes apart.

Shoppers are anonymous sessions keyed ``sim-<seed>-<n>`` (no user accounts are made),
and every event is marked ``simulated=True`` with source ``"simulated"``. Running again
with the same seed replaces that seed's events instead of adding more; other seeds'
events stay. The ground truth (world and shoppers) is written as JSON to
``RECOMMENDATIONS_SIMULATION_DIR/shoppers-seed<seed>.json`` and read back by
:func:`load_ground_truth`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.db import connections, transaction
from django.utils import timezone

from ..models import Event
from .world import (
    GroundTruth,
    Shopper,
    World,
    build_world,
    draw_shoppers,
    load_ground_truth,
    session_prefix,
)
from .world import truth_path as truth_path_of
from .world import write_truth as save_truth

__all__ = [
    "World",
    "Shopper",
    "GroundTruth",
    "SimulationResult",
    "build_world",
    "draw_shoppers",
    "simulate_shoppers",
    "session_prefix",
    "load_ground_truth",
]

SOURCE = "simulated"
#: The most shoppers one simulation takes: it holds every shopper and day in memory.
MAX_SHOPPERS = 1_000_000


@dataclass
class SimulationResult:
    seed: int
    users: int
    events: int
    deleted: int
    cluster_source: str
    n_clusters: int
    truth_path: Path | None
    counts: dict  # events per kind
    shoppers: list = field(repr=False, default_factory=list)
    world: World | None = field(repr=False, default=None)


def _shopper_events(shopper, world, rng, start, span_seconds):
    """(product index, kind, seconds from ``start``) of one shopper's sessions."""
    within = shopper.within_cluster(world)
    preference = shopper.preference(world)
    views_p = (1.0 - shopper.noise) * preference + shopper.noise / world.n_products
    views_p /= views_p.sum()
    liked = np.zeros(world.n_clusters, dtype=bool)
    liked[list(shopper.tastes)] = True
    over = np.log(np.maximum(world.prices, 0.01) / shopper.budget)
    affordable = np.exp(-shopper.price_sensitivity * np.maximum(over, 0.0))
    members = world.members()

    def maybe_cart(j, t, out):
        p = 0.15 * affordable[j] * (1.0 if liked[world.clusters[j]] else 0.2)
        if rng.random() < p:
            t += rng.uniform(20, 120)
            out.append((j, "cart", t))
            if rng.random() < 0.5:
                t += rng.uniform(60, 300)
                out.append((j, "purchase", t))
        return t

    out = []
    for _ in range(1 + rng.poisson(2.0)):
        t = rng.uniform(0, max(span_seconds - 3600, 1))
        for j in rng.choice(world.n_products, size=1 + rng.poisson(5.0), p=views_p):
            t += rng.uniform(30, 180)
            out.append((j, "view", t))
            t = maybe_cart(j, t, out)
            cluster = world.clusters[j]
            if rng.random() < (0.3 if liked[cluster] else 0.05) and len(members[cluster]) > 1:
                candidates = members[cluster][members[cluster] != j]
                p = within[candidates] / within[candidates].sum()
                similar = rng.choice(candidates, p=p)
                t += rng.uniform(10, 60)
                out.append((similar, "similar_click", t))
                t = maybe_cart(similar, t, out)
    return out


def _delete_seed(seed):
    """Delete the events of an earlier run of ``seed`` in one statement.

    Nothing references events, so Django's collector (which would load every id
    first) is not needed.
    """
    events = Event.objects.filter(simulated=True, session_key__startswith=session_prefix(seed))
    return events._raw_delete(events.db)


def _insert(rows):
    """Store (session key, product id, kind, time) rows as simulated events.

    PostgreSQL gets them through ``COPY`` (psycopg 3), several times faster than
    INSERTs; other databases through ``bulk_create``.
    """
    connection = connections[Event.objects.db]
    if connection.vendor == "postgresql":
        fields = ["session_key", "product", "kind", "created_at", "source", "simulated"]
        columns = ", ".join(
            connection.ops.quote_name(Event._meta.get_field(f).column) for f in fields
        )
        table = connection.ops.quote_name(Event._meta.db_table)
        with connection.cursor() as cursor:
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for key, product_id, kind, created in rows:
                    copy.write_row((key, product_id, kind, created, SOURCE, True))
    else:
        Event.objects.bulk_create(
            [
                Event(
                    session_key=key,
                    product_id=product_id,
                    kind=kind,
                    created_at=created,
                    source=SOURCE,
                    simulated=True,
                )
                for key, product_id, kind, created in rows
            ],
            batch_size=5000,
        )
    return len(rows)


def simulate_shoppers(
    users=1000, seed=0, days=30, now=None, progress=None, batch_size=10000, write_truth=True
):
    """Simulate ``users`` shoppers over the last ``days`` days and store their events.

    Replaces the events of an earlier run with the same seed, in one transaction.

    Parameters
    ----------
    users : int
    seed : int
    days : int
    now : datetime, optional
        End of the simulated period (the current time by default).
    progress : callable, optional
        ``progress(n)`` after every ``n`` shoppers simulated (``tqdm.update``).
    batch_size : int
        Rows per ``COPY`` (or ``bulk_create``).
    write_truth : bool
        Write the ground truth JSON.

    Returns
    -------
    SimulationResult
    """
    if users < 1 or days < 1:
        raise ValueError("users and days must be at least 1.")
    now = now or timezone.now()
    start = now - timedelta(days=days)
    world = build_world(seed)
    shoppers = draw_shoppers(world, users, seed)
    rng = np.random.default_rng([seed, 3])
    span = days * 86400.0
    counts = {kind: 0 for kind in Event.Kind.values}
    total = 0
    with transaction.atomic():
        deleted = _delete_seed(seed)
        batch = []
        for shopper in shoppers:
            events = _shopper_events(shopper, world, rng, start, span)
            shopper.n_events = len(events)
            for j, kind, t in events:
                created = min(start + timedelta(seconds=float(t)), now)
                batch.append((shopper.session_key, int(world.product_ids[j]), kind, created))
                counts[kind] += 1
            if len(batch) >= batch_size:
                total += _insert(batch)
                batch = []
            if progress is not None:
                progress(1)
        if batch:
            total += _insert(batch)
    truth_path = None
    if write_truth:
        truth_path = save_truth(truth_path_of(seed), seed, days, world, shoppers)
    return SimulationResult(
        seed=seed,
        users=users,
        events=total,
        deleted=deleted,
        cluster_source=world.cluster_source,
        n_clusters=world.n_clusters,
        truth_path=truth_path,
        counts=counts,
        shoppers=shoppers,
        world=world,
    )
