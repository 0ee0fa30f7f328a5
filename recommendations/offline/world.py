"""The simulation's world and shoppers (see :mod:`recommendations.offline.simulation`
for the generative model), and the ground truth it writes and reads back."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from django.apps import apps
from django.conf import settings
from django.db.models import Count

from lookalike.catalogue import get_adapter
from lookalike.keys import from_storable, native, to_array, to_storable

from ..conf import app_settings

__all__ = [
    "GroundTruth",
    "Shopper",
    "World",
    "build_world",
    "draw_shoppers",
    "load_ground_truth",
    "session_prefix",
    "write_truth",
]

MAX_CLUSTERS = 30


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
    """One simulated shopper's hidden parameters (see :mod:`recommendations.offline.simulation`)."""

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


def truth_path(seed):
    return app_settings.SIMULATION_DIR / f"shoppers-seed{int(seed)}.json"


def write_truth(path, seed, days, world, shoppers):
    """Write the ground truth of one run (atomically: a temporary file, then a rename)."""
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
    path = Path(path) if path else truth_path(seed)
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
