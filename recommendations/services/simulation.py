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

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.apps import apps
from django.conf import settings
from django.db import connections, transaction
from django.db.models import Count
from django.utils import timezone

from lookalike.keys import from_storable, native, to_array, to_storable

from ..conf import app_settings
from ..models import Event

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

MAX_CLUSTERS = 30
SOURCE = "simulated"


def session_prefix(seed):
    """Session keys of one seed's shoppers start with this."""
    return f"sim-{int(seed)}-"


@dataclass(eq=False)
class World:
    """The catalogue as the simulation sees it.

    Attributes
    ----------
    product_ids : ndarray of int64 (object for UUID keys), shape (n_products,)
    clusters : ndarray of int64, shape (n_products,)
        Visual cluster (or category) index of each product, 0..n_clusters-1.
    categories : ndarray of int64, shape (n_products,)
        Main category of each product: its id when category keys are integers, else an
        index into the sorted keys; -1 without a category.
    prices : ndarray of float64, shape (n_products,)
    appeal : ndarray of float64, shape (n_products,)
        The latent appeal :math:`q_j`.
    cluster_source : str
        ``"visual"`` (k-means over embeddings) or ``"category"``.
    """

    product_ids: np.ndarray
    clusters: np.ndarray
    categories: np.ndarray
    prices: np.ndarray
    appeal: np.ndarray
    cluster_source: str

    @property
    def n_products(self):
        return len(self.product_ids)

    def members(self):
        """Product indices of each cluster (computed once)."""
        if getattr(self, "_members", None) is None:
            order = np.argsort(self.clusters, kind="stable")
            bounds = np.searchsorted(self.clusters[order], np.arange(self.n_clusters + 1))
            self._members = [order[bounds[c] : bounds[c + 1]] for c in range(self.n_clusters)]
        return self._members

    @property
    def n_clusters(self):
        return int(self.clusters.max()) + 1 if len(self.clusters) else 0

    def to_json(self):
        return {
            "cluster_source": self.cluster_source,
            "product_ids": to_storable(self.product_ids).tolist(),
            "clusters": self.clusters.tolist(),
            "categories": self.categories.tolist(),
            "prices": [round(p, 2) for p in self.prices.tolist()],
            "appeal": [round(q, 6) for q in self.appeal.tolist()],
        }

    @classmethod
    def from_json(cls, data):
        return cls(
            product_ids=from_storable(np.asarray(data["product_ids"])),
            clusters=np.asarray(data["clusters"], dtype=np.int64),
            categories=np.asarray(data["categories"], dtype=np.int64),
            prices=np.asarray(data["prices"], dtype=np.float64),
            appeal=np.asarray(data["appeal"], dtype=np.float64),
            cluster_source=data["cluster_source"],
        )


@dataclass
class Shopper:
    """One simulated shopper's hidden parameters (see the module docstring)."""

    session_key: str
    tastes: dict  # {cluster: share}, shares sum to 1
    categories: list  # favourite category ids
    budget: float
    price_sensitivity: float
    noise: float
    category_boost: float = 1.0
    n_events: int = field(default=0, compare=False)

    def utility(self, world):
        """:math:`u_{sj}` of every product, shape (n_products,)."""
        over = np.log(np.maximum(world.prices, 0.01) / self.budget)
        utility = world.appeal - self.price_sensitivity * np.maximum(over, 0.0)
        if self.categories:
            utility = utility + self.category_boost * np.isin(world.categories, self.categories)
        return utility

    def within_cluster(self, world):
        """Softmax of the utility inside each cluster, shape (n_products,)."""
        utility = self.utility(world)
        weights = np.exp(utility - utility.max())
        sums = np.bincount(world.clusters, weights=weights, minlength=world.n_clusters)
        return weights / sums[world.clusters]

    def preference(self, world):
        """The true, noise-free probability of each product being the next one looked at.

        Returns
        -------
        ndarray of float64, shape (n_products,)
            Sums to 1; zero outside the liked clusters.
        """
        share = np.zeros(world.n_clusters)
        for cluster, value in self.tastes.items():
            share[int(cluster)] = value
        return share[world.clusters] * self.within_cluster(world)


@dataclass(eq=False)
class GroundTruth:
    """What :func:`load_ground_truth` returns: the world and the shoppers of one seed."""

    seed: int
    days: int
    world: World
    shoppers: list

    def shopper(self, session_key):
        for shopper in self.shoppers:
            if shopper.session_key == session_key:
                return shopper
        raise KeyError(session_key)

    def preference(self, session_key):
        """``{product id: true preference}`` of one shopper (nonzero entries only)."""
        prefs = self.shopper(session_key).preference(self.world)
        nonzero = np.flatnonzero(prefs)
        ids = self.world.product_ids[nonzero].tolist()
        return dict(zip(ids, prefs[nonzero].tolist(), strict=True))

    def relevant(self, session_key, k=10):
        """The ``k`` products the shopper truly prefers most, best first."""
        prefs = self.shopper(session_key).preference(self.world)
        order = np.argsort(-prefs, kind="stable")[:k]
        return [native(self.world.product_ids[i]) for i in order if prefs[i] > 0]


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


def _visual_clusters(product_ids, seed):
    """k-means cluster of each product from its visual embedding, or ``None``.

    ``None`` when the visual-search app is absent or fewer than half of the products
    have an embedding of one encoder; products without one form their own cluster.
    """
    try:
        Embedding = apps.get_model("visualsearch", "ProductEmbedding")
    except LookupError:
        return None
    counts = dict(
        Embedding.objects.filter(product_id__in=product_ids.tolist())
        .values_list("encoder")
        .annotate(n=Count("id"))
        .values_list("encoder", "n")
    )
    if not counts:
        return None
    configured = getattr(settings, "VISUALSEARCH_ENCODER", None)
    encoder = configured if counts.get(configured) else max(counts, key=counts.get)
    if counts[encoder] < max(2, len(product_ids) // 2):
        return None
    rows = Embedding.objects.filter(encoder=encoder, product_id__in=product_ids.tolist())
    pids, vectors = [], []
    for pid, vector in rows.values_list("product_id", "embedding").iterator(chunk_size=2000):
        pids.append(pid)
        vectors.append(np.asarray(vector, dtype=np.float32))
    features = np.vstack(vectors)
    features /= np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    n_clusters = max(2, min(MAX_CLUSTERS, len(pids) // 10))
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    if features.shape[1] > 32 and len(pids) > 32:
        features = PCA(n_components=32, random_state=seed).fit_transform(features)
    labels = KMeans(n_clusters=n_clusters, n_init=3, random_state=seed).fit_predict(features)
    by_pid = dict(zip(pids, labels.tolist(), strict=True))
    clusters = np.array([by_pid.get(pid, -1) for pid in product_ids.tolist()], dtype=np.int64)
    clusters[clusters < 0] = n_clusters  # the products without an embedding
    _, clusters = np.unique(clusters, return_inverse=True)
    return clusters.astype(np.int64)


def _category_codes(keys):
    """Integer category keys as they are; other keys as indices into their sorted set."""
    if all(isinstance(k, int) or k is None for k in keys):
        return np.array([-1 if k is None else k for k in keys], dtype=np.int64)
    known = sorted({str(k) for k in keys if k is not None})
    code = {k: i for i, k in enumerate(known)}
    return np.array([-1 if k is None else code[str(k)] for k in keys], dtype=np.int64)


def build_world(seed=0):
    """Read the active products and group them into clusters.

    Raises
    ------
    ValueError
        When the catalogue has no active product.
    """
    from lookalike.catalogue import get_adapter

    adapter = get_adapter()
    rows = [
        (p.pk, adapter.get_category_key(p), adapter.get_price(p))
        for p in adapter.annotate(adapter.get_queryset()).order_by("pk").iterator()
    ]
    if not rows:
        raise ValueError("The catalogue has no active products to simulate shoppers on.")
    product_ids = to_array(r[0] for r in rows)
    categories = _category_codes([r[1] for r in rows])
    prices = np.array([float(r[2] or 0) for r in rows], dtype=np.float64)
    clusters = _visual_clusters(product_ids, seed)
    source = "visual"
    if clusters is None:
        _, clusters = np.unique(categories, return_inverse=True)
        clusters = clusters.astype(np.int64)
        source = "category"
    appeal = np.random.default_rng([seed, 1]).normal(0.0, 0.7, len(product_ids))
    return World(product_ids, clusters, categories, prices, appeal, source)


def draw_shoppers(world, users, seed=0):
    """Draw the hidden parameters of ``users`` shoppers (deterministic for a seed)."""
    rng = np.random.default_rng([seed, 2])
    sizes = np.bincount(world.clusters, minlength=world.n_clusters).astype(np.float64)
    cluster_p = sizes / sizes.sum()
    category_ids = np.unique(world.categories)
    median_price = float(np.median(world.prices)) or 1.0
    prefix = session_prefix(seed)
    shoppers = []
    for n in range(users):
        n_liked = min(1 + rng.binomial(2, 0.4), world.n_clusters)
        liked = rng.choice(world.n_clusters, size=n_liked, replace=False, p=cluster_p)
        shares = rng.dirichlet(np.full(n_liked, 2.0))
        n_cats = min(1 + rng.binomial(1, 0.4), len(category_ids))
        shoppers.append(
            Shopper(
                session_key=f"{prefix}{n:06d}",
                tastes={int(c): float(s) for c, s in zip(liked, shares, strict=True)},
                categories=sorted(int(c) for c in rng.choice(category_ids, n_cats, replace=False)),
                budget=median_price * math.exp(rng.normal(0.0, 0.5)),
                price_sensitivity=float(rng.uniform(0.5, 3.0)),
                noise=float(rng.beta(2.0, 10.0)),
            )
        )
    return shoppers


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


def _truth_path(seed):
    return app_settings.SIMULATION_DIR / f"shoppers-seed{int(seed)}.json"


def _write_truth(path, seed, days, world, shoppers):
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "seed": int(seed),
        "days": int(days),
        "world": world.to_json(),
        "shoppers": [{k: v for k, v in asdict(s).items() if k != "n_events"} for s in shoppers],
    }
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps(data))
    temp.replace(path)
    return path


def load_ground_truth(seed=0, path=None):
    """Read back the world and shoppers written by :func:`simulate_shoppers`.

    Raises
    ------
    FileNotFoundError
        When that seed has not been simulated (here).
    """
    path = Path(path) if path else _truth_path(seed)
    data = json.loads(path.read_text())
    shoppers = [
        Shopper(**{**s, "tastes": {int(c): v for c, v in s["tastes"].items()}})
        for s in data["shoppers"]
    ]
    return GroundTruth(
        seed=data["seed"],
        days=data["days"],
        world=World.from_json(data["world"]),
        shoppers=shoppers,
    )


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
        truth_path = _write_truth(_truth_path(seed), seed, days, world, shoppers)
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
