"""Serving: the active model per process, reloads, cold-start sessions, popularity."""

import pytest

from recommendations.models import RecommenderModel
from recommendations.services import serving, training
from recommendations.services.serving import (
    get_active_model,
    popular_products,
    purchased_product_ids,
)
from tests.recommendations.recsys_support import (
    SMALL_ALS,
    add_event,
    product_ids,
    recsys_environment,
    two_groups,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _environment(settings, tmp_path):
    yield from recsys_environment(settings, tmp_path)


@pytest.fixture
def world(product_factory, category_factory):
    return two_groups(product_factory, category_factory)


def train():
    return training.train(**SMALL_ALS, evaluate=False)


def test_popularity_works_without_a_model(product_factory):
    a, b, c = product_factory(), product_factory(), product_factory()
    for key in ("s1", "s2", "s3"):
        add_event(a, "view", session_key=key)
    add_event(b, "purchase", session_key="s1")  # 8 > 3 views
    add_event(c, "view", session_key="s1", days_ago=40)

    assert get_active_model() is None
    assert popular_products(3) == [(b.pk, 8.0), (a.pk, 3.0), (c.pk, 1.0)]
    assert [pid for pid, _ in popular_products(3, days=30)] == [b.pk, a.pk]
    assert popular_products(2, exclude_ids=[b.pk]) == [(a.pk, 3.0), (c.pk, 1.0)]
    assert popular_products(0) == []


def test_similar_items_stay_in_the_group_and_unknown_products_get_nothing(world, product_factory):
    train()
    model = get_active_model()
    assert model.version == 1
    first = world["a"][0]
    similar = model.similar_items(first.pk, k=5)
    assert len(similar) == 5 and first.pk not in {pid for pid, _ in similar}
    assert {pid for pid, _ in similar} <= product_ids(world["a"])
    assert all(isinstance(pid, int) and isinstance(s, float) for pid, s in similar)
    assert [s for _, s in similar] == sorted((s for _, s in similar), reverse=True)
    assert model.similar_items(product_factory().pk, k=5) == []


def test_trained_shopper_gets_their_groups_products_minus_exclusions(world):
    train()
    model = get_active_model()
    shopper = world["shoppers"]["b"][0]
    recs = model.recommend(session_key=shopper, k=5)
    assert len(recs) == 5 and {pid for pid, _ in recs} <= product_ids(world["b"])
    excluded = recs[0][0]
    again = model.recommend(session_key=shopper, k=5, exclude_ids=[excluded])
    assert excluded not in {pid for pid, _ in again}
    assert model.user_vector(session_key=shopper).shape == (SMALL_ALS["factors"],)
    assert model.recommend() == [] and model.user_vector() is None


def test_anonymous_session_is_personalised_after_a_few_events(world, settings):
    settings.RECOMMENDATIONS_MIN_SESSION_EVENTS = 2
    train()
    model = get_active_model()
    b = world["b"]
    add_event(b[0], "view", session_key="newcomer")
    assert model.recommend(session_key="newcomer", k=5) == []  # one event is not enough
    assert model.user_vector(session_key="newcomer") is None
    add_event(b[1], "view", session_key="newcomer")

    recs = model.recommend(session_key="newcomer", k=6, exclude_ids=[b[0].pk, b[1].pk])

    assert len(recs) == 6 and {pid for pid, _ in recs} <= product_ids(b)


def test_signed_in_user_is_personalised_from_their_events(world, django_user_model):
    train()
    user = django_user_model.objects.create_user("bob", password="pw")
    for product in world["a"][:3]:
        add_event(product, "view", user=user, session_key="bobs-session")
    recs = get_active_model().recommend(user_id=user.pk, session_key="bobs-session", k=4)
    assert {pid for pid, _ in recs} <= product_ids(world["a"])


def test_trained_shopper_is_refreshed_by_events_newer_than_the_model(world):
    train()
    model = get_active_model()
    shopper = world["shoppers"]["a"][0]
    before = model.recommend(session_key=shopper, k=5)
    assert {pid for pid, _ in before} <= product_ids(world["a"])
    # They change their mind after training: many strong events on group B.
    for product in world["b"]:
        add_event(product, "purchase", session_key=shopper)
        add_event(product, "cart", session_key=shopper)

    after = model.recommend(session_key=shopper, k=5, exclude_seen=False)

    in_b = [pid for pid, _ in after if pid in product_ids(world["b"])]
    assert len(in_b) >= 4


def test_serving_reloads_after_activation_without_restart(world, settings):
    first = train()
    assert get_active_model().version == 1
    second = train()
    assert get_active_model().version == 2
    training.activate_version(first)
    assert get_active_model().version == 1
    # Between checks a process keeps its model: one query per interval, not per request.
    settings.RECOMMENDATIONS_RELOAD_CHECK_SECONDS = 3600
    training.activate_version(second)
    assert get_active_model().version == 1
    serving.clear_cache()
    assert get_active_model().version == 2


def test_a_broken_artefact_never_replaces_the_served_model(world):
    train()
    assert get_active_model().version == 1
    second = train()
    serving.clear_cache()
    second.artifact_file.write_bytes(b"not a model")  # corrupted after activation
    first_again = training.train(**SMALL_ALS, evaluate=False, activate=False)
    training.activate_version(first_again)
    assert get_active_model().version == 3
    # Now v2 is activated again but its file is garbage: v3 keeps serving.
    RecommenderModel.objects.filter(pk=first_again.pk).update(is_active=False)
    RecommenderModel.objects.filter(pk=second.pk).update(is_active=True)
    assert get_active_model().version == 3


def test_purchased_product_ids_cover_user_and_session(product_factory, django_user_model):
    a, b, c = product_factory(), product_factory(), product_factory()
    user = django_user_model.objects.create_user("cat", password="pw")
    add_event(a, "purchase", user=user)
    add_event(b, "purchase", session_key="anon")
    add_event(c, "cart", session_key="anon")
    assert purchased_product_ids(user.pk, None) == {a.pk}
    assert purchased_product_ids(None, "anon") == {b.pk}
    assert purchased_product_ids(user.pk, "anon") == {a.pk, b.pk}
    assert purchased_product_ids() == set()
