"""Events are expensive to forge and cost no write for clients that do not count."""

import itertools
from datetime import timedelta

import numpy as np
import pytest
import scipy.sparse as sp
from django.contrib.sessions.models import Session
from django.test import Client

from recommendations.events import hash_session_key
from recommendations.models import Event
from recommendations.services.matrix import build_event_matrix, cap_weights
from recommendations.services.serving import popular_products

pytestmark = pytest.mark.django_db


_addresses = itertools.count(1)


def shopper(landing):
    """A browser that keeps cookies, past its first visit (to ``landing``, held in its new
    session until its next request), each from its own address: the sessions of one
    address weigh as one shopper."""
    client = Client(REMOTE_ADDR=f"198.51.100.{next(_addresses) % 250 + 1}")
    visit(client, landing)
    own = hash_session_key(client.session.session_key)
    assert not Event.objects.filter(session_key=own).exists()
    return client


def visit(client, product, **headers):
    assert client.get(product.get_absolute_url(), **headers).status_code == 200


def test_clients_without_the_session_cookie_are_not_counted(product):
    for _ in range(20):
        visit(Client(), product)  # a script in a loop: a new client every time
    assert not Event.objects.exists()
    client = Client()
    visit(client, product)  # a browser's first visit starts its session
    assert not Event.objects.exists()
    visit(client, product)  # its view counts once the browser comes back, once
    assert Event.objects.count() == 1


def test_the_view_that_started_a_session_counts_when_the_browser_comes_back(
    product_factory, settings
):
    """A shopper who lands on a product (from a search engine, say) and goes on to another
    has both views counted, the landing at its own time, first."""
    landing, other, gone = product_factory.create_batch(3)
    client = Client()
    visit(client, landing)
    assert not Event.objects.exists()
    visit(client, other)
    events = list(Event.objects.order_by("created_at"))
    assert [(e.product, e.kind) for e in events] == [(landing, "view"), (other, "view")]
    assert events[0].created_at < events[1].created_at
    assert (
        events[0].session_key
        == events[1].session_key
        == hash_session_key(client.session.session_key)
    )
    # A browser whose landing product was deleted meanwhile records only what it does now.
    late = Client()
    visit(late, gone)
    gone.delete()
    visit(late, other)
    assert Event.objects.filter(session_key=hash_session_key(late.session.session_key)).count() == 1
    # A session's held view is its own: it cannot be replayed into another shopper.
    assert "_recommendations_held_view" not in client.session


def test_a_replayed_session_cookie_records_its_held_view_once(product_factory, settings):
    """With sessions kept in signed cookies, a client can send the cookie that still holds
    the first view again: it counts once within the view window, like any view."""
    from django.core.cache import caches

    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    landing, other = product_factory.create_batch(2)
    client = Client()
    visit(client, landing)
    holding = client.cookies[settings.SESSION_COOKIE_NAME].value
    for _ in range(3):
        caches["default"].clear()  # not even the mark of the first recording is left
        client.cookies[settings.SESSION_COOKIE_NAME] = holding
        visit(client, other)
    assert Event.objects.filter(product=landing).count() == 1


def test_a_landing_that_sells_records_its_view_before_the_cart(product):
    client = Client()
    visit(client, product)
    client.post(f"/cart/add/{product.pk}/", {"quantity": 1})
    kinds = list(Event.objects.order_by("created_at").values_list("kind", flat=True))
    assert kinds == ["view", "cart"]


def test_head_requests_and_bots_neither_count_nor_start_sessions(product):
    Client().head(product.get_absolute_url())
    bot = Client(HTTP_USER_AGENT="Mozilla/5.0 (compatible; Googlebot/2.1)")
    for _ in range(3):
        visit(bot, product)
    assert not Event.objects.exists() and not Session.objects.exists()


def test_a_page_counts_once_per_shopper_within_the_window(product, settings):
    client = Client()
    for _ in range(5):
        visit(client, product)
    assert Event.objects.filter(kind="view").count() == 1
    Event.objects.update(created_at=Event.objects.get().created_at - timedelta(hours=1))
    visit(client, product)  # past the window: a new view
    assert Event.objects.filter(kind="view").count() == 2
    settings.RECOMMENDATIONS_VIEW_WINDOW_SECONDS = 0
    visit(client, product)
    assert Event.objects.filter(kind="view").count() == 3


@pytest.mark.parametrize(
    "source, referer, kind",
    [
        ("similar-widget", "http://testserver/p/1/", "similar_click"),
        ("for-you", "http://testserver/", "similar_click"),
        ("similar-widget", None, "view"),  # typed or pasted: no page of ours linked it
        ("similar-widget", "https://evil.example/", "view"),
        ("anything", "http://testserver/", "view"),  # not one of the shop's widgets
        ("similar-widget", "http://[", "view"),  # no address at all: not a 500
    ],
)
def test_from_counts_as_a_click_only_from_the_shops_own_links(
    product_factory, source, referer, kind
):
    landing, product = product_factory.create_batch(2)
    client = Client()
    visit(client, landing)
    headers = {"HTTP_REFERER": referer} if referer else {}
    client.get(f"{product.get_absolute_url()}?from={source}", **headers)
    event = Event.objects.get(product=product)
    assert event.kind == kind and event.source == (source if kind == "similar_click" else "")


def test_session_keys_are_stored_as_a_keyed_hash(product, settings):
    client = Client()
    visit(client, product)
    visit(client, product)
    key = client.session.session_key
    event = Event.objects.get()
    assert event.session_key == hash_session_key(key) and key not in event.session_key
    settings.SECRET_KEY = "another-secret-key-" * 3
    assert hash_session_key(key) != event.session_key


def test_a_flood_of_forged_views_changes_no_ranking(product_factory):
    """Cookie-less loops, bots and one cookie-keeping session reloading a page leave
    "Popular now" as it was."""
    products = [product_factory() for _ in range(4)]
    landing = product_factory()

    def ranking():  # every shopper's landing counts too: it is left out here
        return [pid for pid, _ in popular_products(5) if pid != landing.pk]

    for weight, p in zip((4, 3, 2), products[:3], strict=False):
        for _ in range(weight):
            visit(shopper(landing), p)
    before = ranking()
    assert before == [p.pk for p in products[:3]]
    target = products[3]
    for _ in range(30):
        visit(Client(), target)
    flooder = shopper(landing)
    for _ in range(30):
        visit(flooder, target)
        flooder.get(f"{target.get_absolute_url()}?from=similar-widget")
    after = ranking()
    assert after[:3] == before[:3] and target.pk not in after[:3]


def test_one_shopper_weighs_at_most_the_caps(settings):
    settings.RECOMMENDATIONS_MAX_CELL_WEIGHT = 16
    settings.RECOMMENDATIONS_MAX_SHOPPER_WEIGHT = 40
    user_items = sp.csr_matrix(np.array([[100.0, 1.0, 0.0], [10.0, 10.0, 10.0], [2.0, 0, 1.0]]))
    capped = cap_weights(user_items).toarray()
    assert capped[0].tolist() == [16.0, 1.0, 0.0]
    assert capped[1].sum() == pytest.approx(30.0)  # under the row cap: unchanged
    heavy = cap_weights(sp.csr_matrix(np.full((1, 10), 8.0))).toarray()
    assert heavy.sum() == pytest.approx(40.0) and np.allclose(heavy, 4.0)  # scaled, same shape
    assert capped[2].tolist() == [2.0, 0.0, 1.0]


def test_the_interaction_matrix_applies_the_caps(product, settings):
    settings.RECOMMENDATIONS_MAX_CELL_WEIGHT = 5
    Event.objects.bulk_create(
        Event(session_key="s1", product=product, kind="purchase", created_at=product.created_at)
        for _ in range(10)
    )
    matrix = build_event_matrix(half_life_days=None)
    assert matrix.user_items.toarray().max() == 5.0


def test_the_migration_hashes_the_live_keys_of_earlier_events(product):
    import importlib

    from django.apps import apps
    from django.db import connection

    migration = importlib.import_module("recommendations.migrations.0005_hash_session_keys")
    at = product.created_at
    live = Event.objects.create(session_key="k" * 32, product=product, kind="view", created_at=at)
    simulated = Event.objects.create(
        session_key="sim-0-7", product=product, kind="view", created_at=at, simulated=True
    )
    with connection.schema_editor(atomic=False) as editor:
        migration.hash_keys(apps, editor)
    live.refresh_from_db()
    simulated.refresh_from_db()
    assert live.session_key == hash_session_key("k" * 32)
    assert simulated.session_key == "sim-0-7"


def _event_statements(queries):
    """The statements of the transaction that wrote the last event, from its INSERT back
    to what opened it."""
    sqls = [q["sql"] for q in queries.captured_queries]
    insert = max(i for i, sql in enumerate(sqls) if 'INSERT INTO "recommendations_event"' in sql)
    return sqls[max(insert - 1, 0) : insert + 1]


@pytest.mark.django_db(transaction=True)
def test_a_view_commits_without_waiting_for_the_disk_and_a_cart_waits(product, settings):
    """Page views are committed asynchronously (they are many, and a crash may lose only
    the last moments of them); carts and purchases, and anything inside the caller's own
    transaction, commit as always."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    client = Client()
    visit(client, product)  # the first visit starts the session
    with CaptureQueriesContext(connection) as view:
        visit(client, product)
    assert Event.objects.filter(kind="view").count() == 1  # committed: seen from here
    assert "SET LOCAL synchronous_commit TO OFF" in _event_statements(view)
    with CaptureQueriesContext(connection) as cart:
        client.post(f"/cart/add/{product.pk}/", {"quantity": 1})
    assert Event.objects.filter(kind="cart").count() == 1
    assert not any("synchronous_commit" in sql for sql in _event_statements(cart))

    settings.RECOMMENDATIONS_ASYNC_VIEW_COMMIT = False
    other = Client()
    visit(other, product)
    with CaptureQueriesContext(connection) as waited:
        visit(other, product)
    assert Event.objects.filter(kind="view").count() == 2
    assert not any("synchronous_commit" in sql for sql in _event_statements(waited))

    settings.RECOMMENDATIONS_ASYNC_VIEW_COMMIT = True
    third = Client()
    visit(third, product)
    with transaction.atomic(), CaptureQueriesContext(connection) as inside:
        visit(third, product)  # a caller's transaction: its commit is not ours to change
    assert Event.objects.filter(kind="view").count() == 3
    assert not any("synchronous_commit" in sql for sql in _event_statements(inside))


def test_an_event_reads_as_who_did_what(product, django_user_model):
    user = django_user_model.objects.create_user("reader", password="pw-reader-1")
    signed_in = Event(user=user, product=product, kind="cart")
    anonymous = Event(session_key="8b131c6e" + "0" * 32, product=product, kind="view")
    assert str(signed_in) == f"user {user.pk}: Added to cart, product {product.pk}"
    assert str(anonymous) == f"session 8b131c6e: Viewed, product {product.pk}"
