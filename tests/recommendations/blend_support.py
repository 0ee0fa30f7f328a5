"""Fixtures and helpers shared by the blend, widget, API and profile tests.

Visual similarity is tested with hand-made vectors stored for a tiny registered encoder,
so the tests control exactly which products look alike and never load a network.
"""

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from recommendations.models import Event
from recommendations.services import serving
from visualsearch import encoders
from visualsearch.encoders.base import Encoder
from visualsearch.models import ProductEmbedding

ENCODER = "blend-test"
DIM = 4


class BlendTestEncoder(Encoder):
    """Stands in for a CNN: only its name and dimension matter to the blend."""

    name = ENCODER
    dim = DIM

    @property
    def weights_hash(self):
        return "blend-test"

    def embed(self, images):
        raise NotImplementedError("the blend tests store their vectors directly")


@pytest.fixture(autouse=True)
def blend_environment(settings, tmp_path):
    """A test encoder, a private artefact folder, and no process caches between tests."""
    settings.VISUALSEARCH_ENCODERS = {
        ENCODER: "tests.recommendations.blend_support.BlendTestEncoder"
    }
    settings.VISUALSEARCH_ENCODER = ENCODER
    settings.RECOMMENDATIONS_ARTIFACT_DIR = tmp_path / "recommender"
    settings.RECOMMENDATIONS_RELOAD_CHECK_SECONDS = 0
    settings.RECOMMENDATIONS_POPULAR_CACHE_SECONDS = 0
    serving.clear_cache()
    yield
    serving.clear_cache()
    encoders.clear_cache()


def embed(product, vector):
    """Store ``vector`` (normalised here) as ``product``'s embedding for the test encoder."""
    v = np.asarray(vector, dtype=np.float32)
    v = v / np.linalg.norm(v)
    return ProductEmbedding.objects.create(
        product=product,
        encoder=ENCODER,
        weights_hash="blend-test",
        image_name=product.image.name or "none",
        image_checksum="0" * 64,
        embedding=v,
    )


def event(
    product, kind="view", user=None, session_key="", days_ago=0.0, source="", simulated=False
):
    return Event.objects.create(
        product=product,
        kind=kind,
        user=user,
        session_key=session_key if user is None else (session_key or ""),
        created_at=timezone.now() - timedelta(days=days_ago),
        source=source,
        simulated=simulated,
    )


def two_taste_catalogue(product_factory, category_factory, n_per_group=8, n_shoppers=24, seed=0):
    """Two groups of products, each in its own category and corner of the embedding space,
    and shoppers who each view several products of one group only.

    Returns
    -------
    dict
        ``{"a": [products], "b": [products], "shoppers": {"a": [...], "b": [...]}}``.
    """
    rng = np.random.default_rng(seed)
    groups = {}
    for name, axis in (("a", 0), ("b", 1)):
        cat = category_factory(name=f"Group {name}", slug=f"group-{name}")
        products = []
        for i in range(n_per_group):
            p = product_factory(category=cat, title=f"{name.upper()} product {i}")
            v = np.full(DIM, 0.05)
            v[axis] = 1.0
            v[2] = 0.3 * i / n_per_group  # neighbours within the group are ordered by i
            embed(p, v)
            products.append(p)
        groups[name] = products
    shoppers = {"a": [], "b": []}
    for s in range(n_shoppers):
        name = "ab"[s % 2]
        key = f"shopper-{s:04d}"
        shoppers[name].append(key)
        for p in rng.choice(groups[name], size=5, replace=False):
            event(p, "view", session_key=key, days_ago=float(rng.uniform(1, 5)))
    groups["shoppers"] = shoppers
    return groups


def train_model():
    from recommendations.services.training import train

    return train(factors=4, regularization=1.0, alpha=10.0, iterations=15, evaluate=False)
