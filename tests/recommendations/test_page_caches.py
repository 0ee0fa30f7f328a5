"""The values pages keep per process between requests (profiles, the running experiment,
the navigation, "New in", product cards) are served fresh as soon as what they come from
changes, and never answer for another shopper."""

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from lookalike.cards import CARDS, SCORED_CARDS
from lookalike.catalogue import CATALOGUE
from lookalike.stamps import current as current_stamp
from recommendations.blending.blend import resolve_settings
from recommendations.caching import EXPERIMENTS, PROFILES
from recommendations.experiments.services import (
    create_experiment,
    start_experiment,
    stop_experiment,
)
from recommendations.models import BlendProfile, Impression
from recommendations.services.profiles import publish_profile
from tests.recommendations.blend_support import (  # noqa: F401 (fixtures)
    blend_environment,
    embed,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_caches():
    for store in (PROFILES, EXPERIMENTS, CATALOGUE, CARDS, SCORED_CARDS):
        store.clear()
    yield
    for store in (PROFILES, EXPERIMENTS, CATALOGUE, CARDS, SCORED_CARDS):
        store.clear()


def strip(html, widget):
    match = re.search(rf'<section [^>]*data-widget="{widget}".*?</section>', html, re.S)
    assert match, f"no {widget} strip"
    return match.group(0)


def profile_queries(queries):
    return [q for q in queries if "recommendations_blendprofile" in q["sql"]]


def test_default_profile_is_kept_until_one_is_published():
    publish_profile("first", {"recency": 1.0, "popularity": 0.0}, make_default=True)
    assert resolve_settings(None).weights["recency"] == pytest.approx(1.0)
    with CaptureQueriesContext(connection) as kept:
        resolve_settings(None)
    assert profile_queries(kept.captured_queries) == []  # served from the process's copy

    publish_profile("second", {"recency": 0.0, "popularity": 1.0}, make_default=True)
    with CaptureQueriesContext(connection) as fresh:
        settings = resolve_settings(None)
    assert profile_queries(fresh.captured_queries)  # read again after the bump
    assert settings.weights["popularity"] == pytest.approx(1.0)
    assert settings.weights["recency"] == 0.0


def test_a_profile_edited_and_saved_is_served_at_once():
    profile = BlendProfile.objects.create(name="edited", visual_weight=1.0, popularity_weight=0)
    profile.make_default()
    assert resolve_settings("edited").weights["popularity"] == 0.0
    profile.popularity_weight = 1.0
    profile.save()  # as the admin's form does: the signal bumps the stamp
    assert resolve_settings("edited").weights["popularity"] == pytest.approx(1.0)


def test_a_stopped_experiment_stops_being_served(client, catalogue):
    anchor, _ = catalogue
    BlendProfile.objects.create(name="visual", visual_weight=1.0).make_default()
    BlendProfile.objects.create(name="popular", visual_weight=0.2, popularity_weight=1)
    experiment = start_experiment(
        create_experiment("try", [("control", "visual", 1), ("pop", "popular", 1)])
    )
    client.get(anchor.get_absolute_url())  # gives the shopper a session and a history
    html = client.get(anchor.get_absolute_url()).content.decode()
    assert "rec=" in strip(html, "similar-items")
    served = Impression.objects.count()
    assert served > 0

    stop_experiment(experiment)
    html = client.get(anchor.get_absolute_url()).content.decode()
    assert "rec=" not in strip(html, "similar-items")
    assert 'data-profile="default"' in strip(html, "similar-items")
    assert Impression.objects.count() == served  # nothing recorded once stopped


def test_a_product_saved_is_shown_fresh(client, catalogue, category_factory):
    anchor, others = catalogue
    home = client.get("/").content.decode()
    assert "Red dress" in home  # "New in"
    assert "Skirts" not in home
    anchor.title = "Crimson dress"
    anchor.save()
    category_factory(name="Skirts", slug="skirts")
    home = client.get("/").content.decode()
    assert "Crimson dress" in home and "Red dress" not in home
    assert "Skirts" in home  # the navigation

    # A card's price changed by update() (no signal) still shows the new price.
    page = client.get(anchor.get_absolute_url()).content.decode()
    assert "€20.50" in strip(page, "similar-items")
    type(anchor).objects.filter(pk=others[0].pk).update(price="99.00")
    page = client.get(anchor.get_absolute_url()).content.decode()
    assert "€99.00" in strip(page, "similar-items")
    assert "€20.50" not in strip(page, "similar-items")


def test_two_shoppers_still_get_their_own_lists(catalogue):
    anchor, others = catalogue
    BlendProfile.objects.create(
        name="recent", visual_weight=1.0, popularity_weight=0
    ).make_default()
    first, second = Client(), Client()
    for _ in range(3):
        first.get(others[0].get_absolute_url())
        second.get(others[4].get_absolute_url())
    mine = strip(first.get("/").content.decode(), "for-you")
    theirs = strip(second.get("/").content.decode(), "for-you")
    ids = re.compile(r'data-product-id="(\d+)"')
    # Each shopper's own product is left out of their list (the "exclude current" rule),
    # and only of theirs.
    assert str(others[0].pk) not in ids.findall(mine)
    assert str(others[4].pk) not in ids.findall(theirs)
    assert str(others[4].pk) in ids.findall(mine)
    assert str(others[0].pk) in ids.findall(theirs)


@pytest.mark.django_db(transaction=True)
def test_a_failing_cache_table_never_loses_the_save_that_bumped(settings, category_factory):
    """A bump inside the saving transaction, with the database cache's table missing: the
    cache error stays in its savepoint and the category is committed."""
    from django.db import transaction

    from shop.models import Category

    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "no_such_cache_table",
        }
    }
    with transaction.atomic():
        category_factory(name="Coats", slug="coats")
    assert Category.objects.filter(slug="coats").exists()


@pytest.mark.django_db(transaction=True)
def test_stamps_read_in_autocommit_open_no_transaction(settings):
    """Outside a transaction the database cache's reads need no savepoint: the stamps cost
    one query, not BEGIN, the query and COMMIT."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "lookalike_cache",  # the test runner made the table
        }
    }
    current_stamp(CATALOGUE.name)  # a stamp the cache lacks is added on its first read
    with CaptureQueriesContext(connection) as queries:
        current_stamp(CATALOGUE.name)
    sql = [q["sql"] for q in queries.captured_queries]
    assert len(sql) == 1 and "lookalike_cache" in sql[0], sql


def test_strips_render_a_card_that_reads_the_shopper_when_told(
    client, catalogue, settings, tmp_path, django_user_model
):
    anchor, _ = catalogue
    (tmp_path / "card.html").write_text(
        '<div data-product-id="{{ product.pk }}">for {{ user.username|default:"guest" }}</div>'
    )
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path]}]
    settings.LOOKALIKE_CARD_TEMPLATE = "card.html"
    settings.LOOKALIKE_REUSE_CARDS = False
    client.force_login(django_user_model.objects.create_user("ada", password="x"))
    html = strip(client.get(anchor.get_absolute_url()).content.decode(), "similar-items")
    assert "for ada" in html and "for guest" not in html
