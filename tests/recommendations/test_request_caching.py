"""What the widgets keep between calls: per request (a shopper's events), per process (the
products a blend may show), and what must never be kept (another shopper's answers, a
product withdrawn since)."""

import threading

import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.middleware import SessionMiddleware
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from lookalike import requestcache
from recommendations.blending.blend import blend_similar, recommend_for_user
from recommendations.events import hash_session_key, record_event
from recommendations.services.shoppers import (
    add_shopper_event,
    forget_shopper_events,
    shopper_events_of,
)
from tests.recommendations.blend_support import (  # noqa: F401 (fixture)
    blend_environment,
    embed,
    event,
    train_model,
    two_taste_catalogue,
)


@pytest.fixture
def request_scope():
    """A request's scope, as ``request_started`` opens it."""
    requestcache.start()
    yield
    requestcache.end()


def test_memoize_computes_once_per_request_and_every_time_outside():
    calls = []

    def compute():
        calls.append(1)
        return len(calls)

    assert requestcache.memoize("k", compute) == 1
    assert requestcache.memoize("k", compute) == 2  # no request: computed every time
    requestcache.start()
    try:
        assert requestcache.memoize("k", compute) == 3
        assert requestcache.memoize("k", compute) == 3
        requestcache.forget("k")
        assert requestcache.memoize("k", compute) == 4
    finally:
        requestcache.end()
    assert requestcache.memoize("k", compute) == 5  # the scope ended with the request


def test_each_thread_has_its_own_scope(request_scope):
    requestcache.memoize("k", lambda: "main")
    seen = []
    thread = threading.Thread(target=lambda: seen.append(requestcache.memoize("k", lambda: "x")))
    thread.start()
    thread.join()
    assert seen == ["x"]
    assert requestcache.memoize("k", lambda: "other") == "main"


@pytest.mark.django_db
def test_events_are_read_once_per_request_per_shopper(request_scope, product_factory):
    a, b = product_factory(title="A"), product_factory(title="B")
    event(a, session_key="s1")
    event(b, session_key="s2")
    with CaptureQueriesContext(connection) as queries:
        first = shopper_events_of(None, "s1")
        again = shopper_events_of(None, "s1")
        other = shopper_events_of(None, "s2")
    assert first is again and len(queries) == 2  # one read for each shopper
    assert [row[0] for row in first.rows] == [a.pk]
    assert [row[0] for row in other.rows] == [b.pk]  # never another shopper's


@pytest.mark.django_db
def test_an_event_recorded_in_the_request_is_seen_by_the_widgets(request_scope, product_factory):
    a, b = product_factory(title="A"), product_factory(title="B")
    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    SessionMiddleware(lambda r: None).process_request(request)
    request.session.save()
    key = hash_session_key(request.session.session_key)
    event(a, session_key=key)
    assert [row[0] for row in shopper_events_of(None, key).rows] == [a.pk]
    assert record_event(request, b, "cart") is not None
    assert [row[0] for row in shopper_events_of(None, key).rows] == [b.pk, a.pk]
    # An event written behind the memo's back is seen once the shopper is forgotten.
    event(a, kind="purchase", session_key=key)
    assert len(shopper_events_of(None, key).rows) == 2
    forget_shopper_events(None, key)
    assert shopper_events_of(None, key).purchased() == {a.pk}


@pytest.mark.django_db
def test_a_view_and_the_strips_after_it_read_the_shoppers_events_once(
    request_scope, product_factory, django_user_model
):
    a, b = product_factory(title="A"), product_factory(title="B")
    user = django_user_model.objects.create_user("viewer")
    request = RequestFactory().get("/")
    request.user = user
    SessionMiddleware(lambda r: None).process_request(request)
    request.session.save()
    key = hash_session_key(request.session.session_key)
    event(a, user=user)
    with CaptureQueriesContext(connection) as queries:
        assert record_event(request, b, "view") is not None
        rows = shopper_events_of(user.pk, key).rows  # what the strips read next
        assert record_event(request, b, "view") is None  # a repeat within the window
    reads = [
        q["sql"]
        for q in queries
        if q["sql"].startswith("SELECT") and "recommendations_event" in q["sql"]
    ]
    assert len(reads) == 1  # the repeat check and the strips share one read
    assert [row[0] for row in rows] == [b.pk, a.pk]
    requestcache.end()
    requestcache.start()
    # A new request reads the stored events: the same rows, the new one included.
    stored = shopper_events_of(user.pk, key).rows
    assert [row[:2] for row in stored] == [row[:2] for row in rows]
    assert stored[0][2] == pytest.approx(rows[0][2])  # its epoch seconds, as the database says


@pytest.mark.django_db
def test_a_long_history_is_read_up_to_the_limit_with_every_purchase(
    request_scope, product_factory, settings
):
    settings.RECOMMENDATIONS_SHOPPER_EVENTS = 3
    products = [product_factory(title=f"P{i}") for i in range(6)]
    # Oldest first, a minute apart: a purchase, then five views (the latest three are kept).
    minute = 1 / 1440
    event(products[0], kind="purchase", session_key="long", days_ago=10 * minute)
    for i, product in enumerate(products[1:], start=1):
        latest = event(product, session_key="long", days_ago=(10 - i) * minute)
    events = shopper_events_of(None, "long")
    assert [row[0] for row in events.rows] == [products[5].pk, products[4].pk, products[3].pk]
    assert events.purchased() == {products[0].pk}  # bought before the rows kept
    assert abs((events.newest - latest.created_at).total_seconds()) < 1e-3
    assert [row[0] for row in events.weighted_rows()] == [p.pk for p in products[3:]]
    # An event recorded in the same request keeps the older purchases known.
    add_shopper_event(None, "long", event(products[1], session_key="long"))
    events = shopper_events_of(None, "long")
    assert events.rows[0][0] == products[1].pk and events.purchased() == {products[0].pk}


@pytest.mark.django_db
def test_a_short_history_costs_one_read(request_scope, product_factory, settings):
    settings.RECOMMENDATIONS_SHOPPER_EVENTS = 3
    a, b = product_factory(title="A"), product_factory(title="B")
    event(a, kind="purchase", session_key="short")
    event(b, session_key="short")
    with CaptureQueriesContext(connection) as queries:
        events = shopper_events_of(None, "short")
    assert len(queries) == 1
    assert events.purchased() == {a.pk} and len(events.rows) == 2


@pytest.mark.django_db
def test_two_shoppers_in_one_process_get_their_own_strips(
    request_scope, product_factory, category_factory
):
    world = two_taste_catalogue(product_factory, category_factory)
    train_model()
    groups = {name: {p.pk for p in world[name]} for name in ("a", "b")}
    strips = {}
    for name in ("a", "b"):
        for key in world["shoppers"][name][:3]:
            strips[key] = [r.product.pk for r in recommend_for_user(session_key=key, k=4)]
            # Mostly their own group's (diversity may add one of the other).
            assert len(groups[name].intersection(strips[key])) >= 3, (name, key, strips[key])
    a, b = world["shoppers"]["a"][0], world["shoppers"]["b"][0]
    assert strips[a] != strips[b]


@pytest.mark.django_db
def test_the_snapshot_of_allowed_products_never_shows_a_withdrawn_one(
    settings, product_factory, category_factory
):
    settings.RECOMMENDATIONS_POPULAR_CACHE_SECONDS = 600
    cat = category_factory(name="Dresses", slug="dresses")
    anchor = product_factory(category=cat, title="Anchor")
    embed(anchor, [1.0, 0.0, 0.0, 0.0])
    others = []
    for i in range(4):
        p = product_factory(category=cat, title=f"Dress {i}")
        embed(p, [1.0, 0.1 * (i + 1), 0.0, 0.0])
        others.append(p)
    first = blend_similar(anchor, k=4)
    assert others[0].pk in {r.product.pk for r in first}
    # Out of stock and withdrawn after the snapshot was taken: still in the snapshot, but
    # the products a strip keeps are loaded afresh under the rules.
    type(others[0]).objects.filter(pk=others[0].pk).update(stock=0)
    type(others[1]).objects.filter(pk=others[1].pk).update(is_active=False)
    shown = {r.product.pk for r in blend_similar(anchor, k=4)}
    assert shown and others[0].pk not in shown and others[1].pk not in shown


@pytest.mark.django_db
def test_new_products_join_the_snapshot_when_the_catalogue_changes(settings, product_factory):
    """A saved product moves the catalogue's stamp: the snapshot is read again at once. One
    added without a save (bulk_create) waits for the period's end, or for the shop's
    catalogue_changed()."""
    from lookalike.changes import catalogue_changed
    from shop.models import Product

    settings.RECOMMENDATIONS_POPULAR_CACHE_SECONDS = 600
    old = product_factory(title="Old")
    assert [r.product.pk for r in recommend_for_user(k=3)] == [old.pk]
    new = product_factory(title="New")
    assert [r.product.pk for r in recommend_for_user(k=3)] == [new.pk, old.pk]
    [bulk] = Product.objects.bulk_create([Product(**_fields_of(new, title="Bulk"))])
    assert [r.product.pk for r in recommend_for_user(k=3)] == [new.pk, old.pk]
    catalogue_changed()
    assert [r.product.pk for r in recommend_for_user(k=3)][0] == bulk.pk
    Product.objects.filter(pk=new.pk).update(is_active=False)  # hidden in bulk
    catalogue_changed()
    assert [r.product.pk for r in recommend_for_user(k=3)] == [bulk.pk, old.pk]


def _fields_of(product, **changes):
    fields = {
        f.name: getattr(product, f.name)
        for f in type(product)._meta.concrete_fields
        if not f.primary_key and f.name not in ("created_at", "updated_at")
    }
    return {**fields, **changes}


@pytest.mark.django_db
def test_api_filters_are_never_answered_from_the_snapshot(settings, product_factory):
    from decimal import Decimal

    from recommendations.blending.core import BUILTIN_SETTINGS
    from recommendations.blending.live import LiveSource
    from visualsearch.search import Filters

    settings.RECOMMENDATIONS_POPULAR_CACHE_SECONDS = 600
    cheap = product_factory(title="Cheap", price=Decimal("5.00"))
    dear = product_factory(title="Dear", price=Decimal("500.00"))
    everything = LiveSource(BUILTIN_SETTINGS)
    assert set(everything.newest(5, ())) == {cheap.pk, dear.pk}
    under_ten = LiveSource(BUILTIN_SETTINGS, Filters(max_price=Decimal("10")))
    assert under_ten.newest(5, ()) == [cheap.pk]
    assert set(under_ten.eligible([cheap.pk, dear.pk])) == {cheap.pk}
