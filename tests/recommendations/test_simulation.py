"""Simulated shoppers: a seeded, idempotent generator with a known ground truth."""

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from recommendations.models import Event
from recommendations.offline.simulation import (
    load_ground_truth,
    session_prefix,
    simulate_shoppers,
)
from tests.recommendations.recsys_support import recsys_environment

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _environment(settings, tmp_path):
    yield from recsys_environment(settings, tmp_path)


@pytest.fixture
def catalogue(product_factory, category_factory):
    products = []
    for c in range(3):
        category = category_factory(name=f"Cat {c}", slug=f"cat-{c}")
        for i in range(10):
            products.append(
                product_factory(category=category, price=10 + 5 * c + i, title=f"C{c} {i}")
            )
    product_factory(category=products[0].category, is_active=False)  # never simulated
    return products


def test_simulation_is_seeded_marked_and_replaces_its_own_events(catalogue):
    now = timezone.now()
    first = simulate_shoppers(users=40, seed=7, days=10, now=now)

    events = Event.objects.all()
    assert first.events == events.count() > 40 * 3
    assert first.cluster_source == "category" and first.n_clusters == 3
    assert set(events.values_list("simulated", flat=True)) == {True}
    assert all(
        k.startswith(session_prefix(7)) for k in events.values_list("session_key", flat=True)
    )
    assert events.filter(created_at__lt=now - timedelta(days=10)).count() == 0
    assert events.filter(created_at__gt=now).count() == 0
    assert events.filter(product__is_active=False).count() == 0
    counts = first.counts
    assert counts["view"] > counts["similar_click"] > 0
    assert counts["cart"] >= counts["purchase"] > 0

    again = simulate_shoppers(users=40, seed=7, days=10, now=now)
    assert again.deleted == first.events and Event.objects.count() == first.events
    assert again.counts == first.counts  # the same seed draws the same shoppers
    other = simulate_shoppers(users=5, seed=8, days=10, now=now)
    assert Event.objects.count() == first.events + other.events


def test_ground_truth_round_trips_and_explains_behaviour(catalogue):
    result = simulate_shoppers(users=60, seed=3, days=20)
    truth = load_ground_truth(3)
    assert result.truth_path.exists() and len(truth.shoppers) == 60
    world = truth.world
    assert sorted(world.product_ids.tolist()) == sorted(p.pk for p in catalogue)
    in_liked = 0
    total = 0
    for shopper in truth.shoppers:
        preference = shopper.preference(world)
        assert preference.sum() == pytest.approx(1.0)
        assert np.isclose(sum(shopper.tastes.values()), 1.0)
        liked = set(shopper.tastes)
        cluster_of = dict(zip(world.product_ids.tolist(), world.clusters.tolist(), strict=True))
        assert {cluster_of[p] for p in truth.relevant(shopper.session_key, k=5)} <= liked
        viewed = Event.objects.filter(session_key=shopper.session_key, kind="view")
        clusters = [cluster_of[p] for p in viewed.values_list("product_id", flat=True)]
        in_liked += sum(c in liked for c in clusters)
        total += len(clusters)
    # Shoppers mostly browse what they like; the rest is their exploration noise.
    assert in_liked / total > 0.75
    assert truth.preference(truth.shoppers[0].session_key)


def test_visual_clusters_come_from_embeddings_when_present(catalogue, settings):
    from visualsearch.models import ProductEmbedding

    settings.VISUALSEARCH_ENCODER = "sim-test"
    rng = np.random.default_rng(0)
    group_of = {}
    for n, product in enumerate(catalogue):
        group = n % 2  # two looks that cut across the categories
        group_of[product.pk] = group
        vector = rng.normal(0, 0.05, 8)
        vector[group] += 1.0
        ProductEmbedding.objects.create(
            product=product,
            encoder="sim-test",
            weights_hash="x",
            image_name="x",
            image_checksum="0" * 64,
            embedding=vector.astype(np.float32),
        )
    result = simulate_shoppers(users=5, seed=1, days=5)
    assert result.cluster_source == "visual" and result.n_clusters == 3  # 30 // 10
    world = result.world
    # Every k-means cluster holds one look only.
    for cluster in range(world.n_clusters):
        members = world.product_ids[world.clusters == cluster].tolist()
        assert len({group_of[p] for p in members}) == 1


def test_an_empty_catalogue_is_refused():
    with pytest.raises(ValueError, match="no active products"):
        simulate_shoppers(users=3)
