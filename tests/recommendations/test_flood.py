"""One client address weighs as one shopper, however many sessions it starts.

The reviewer's probe: one address, a browser's user agent and a new cookie jar every two
requests (the first starts a session, the second counts), half of them "similar" clicks
with a forged same-origin ``Referer``. It made its product "#1 Popular now". Now the
address's sessions weigh what one of them does, in popularity and in training, and only
``RECOMMENDATIONS_CLIENT_SESSION_RATE`` of them a period are written at all.
"""

from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
from django.contrib.sessions.models import Session
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.checks import run_checks
from django.test import Client

from recommendations.blending.asof import capped_popularity
from recommendations.blending.blend import recommend_for_user
from recommendations.conf import app_settings
from recommendations.events import hash_client_address
from recommendations.models import Event
from recommendations.offline.shop_events import load_events
from recommendations.services import serving
from recommendations.services.clients import top_shoppers
from recommendations.services.matrix import build_event_matrix, event_weights
from recommendations.services.popularity import popular_products, popularity_ranking
from tests.recommendations.blend_support import event, train_model, two_taste_catalogue

pytestmark = pytest.mark.django_db

FLOODER = "203.0.113.66"
BROWSER = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
)


@pytest.fixture(autouse=True)
def _plain_weights_and_one_window(settings, monkeypatch):
    """No time decay, so that a weight does not depend on the second it was recorded, and
    one window of the session allowance, so that a test that runs across an hour's edge
    does not get a second allowance."""
    settings.RECOMMENDATIONS_HALF_LIFE_DAYS = None
    monkeypatch.setattr("lookalike.clients.time", SimpleNamespace(time=lambda: 1_800_000_000.0))


def browser(address, **headers):
    return Client(REMOTE_ADDR=address, HTTP_USER_AGENT=BROWSER, **headers)


def click(client, product, referer_product, **headers):
    """A first view (it starts the session) and a "similar" click from a forged page of
    the shop, as the reviewer's script sent them."""
    url = product.get_absolute_url()
    assert client.get(url, **headers).status_code == 200
    response = client.get(
        f"{url}?from=similar",
        HTTP_REFERER=f"http://testserver{referer_product.get_absolute_url()}",
        **headers,
    )
    assert response.status_code == 200


def flood(product, referer_product, sessions, address=FLOODER, **headers):
    for _ in range(sessions):
        click(browser(address, **headers), product, referer_product)


def what_shoppers_see(world):
    """The "Popular now" ranking and strip of a new visitor, and the "For you" of an
    ordinary shopper from a model trained now."""
    serving.clear_cache()
    train_model()
    ordinary = world["shoppers"]["b"][0]
    model = serving.get_active_model()
    return {
        "ranking": popularity_ranking({"view": 1.0, "similar_click": 2.0}),
        "popular now": [r.product.pk for r in recommend_for_user(k=6)],
        "model": model.recommend(session_key=ordinary, k=6),
        "for you": [r.product.pk for r in recommend_for_user(session_key=ordinary, k=6)],
    }


def test_a_flood_from_one_address_weighs_what_one_of_its_sessions_does(
    product_factory, category_factory, settings
):
    world = two_taste_catalogue(product_factory, category_factory)
    target, landing = world["a"][-1], world["b"][0]
    click(browser(FLOODER), target, landing)  # one visitor's click, which may count
    before = what_shoppers_see(world)
    assert target.pk not in [pid for pid, _ in before["ranking"][:3]]
    flood(target, landing, sessions=150)
    after = what_shoppers_see(world)
    assert after["ranking"] == before["ranking"]
    assert after["popular now"] == before["popular now"]
    assert [pid for pid, _ in after["model"]] == [pid for pid, _ in before["model"]]
    assert np.allclose([s for _, s in after["model"]], [s for _, s in before["model"]])
    assert after["for you"] == before["for you"]
    clicks = Event.objects.filter(product=target, kind="similar_click")
    assert clicks.count() == 30  # RECOMMENDATIONS_CLIENT_SESSION_RATE, "30/hour"
    assert set(clicks.values_list("client", flat=True)) == {hash_client_address(FLOODER)}


def test_the_flood_changes_no_ranking_against_no_flood_at_all(product_factory):
    """Well apart, the ranking of "Popular now" is the same as with no flood: the whole
    flood weighs one click."""
    products = product_factory.create_batch(4)
    for count, product in zip((5, 4, 3), products, strict=False):
        for i in range(count):
            click(browser(f"198.51.100.{10 * count + i}"), product, products[3])
    before = popular_products(4)
    assert [pid for pid, _ in before] == [p.pk for p in products[:3]]
    flood(products[3], products[0], sessions=60)
    after = popular_products(4)
    # The whole flood weighs one of its sessions: the view that started it and its click.
    assert after[:3] == before and after[3] == (products[3].pk, 3.0)


def test_another_address_still_counts_during_a_flood(product_factory):
    target, other, landing = product_factory.create_batch(3)
    flood(target, landing, sessions=40)
    # 30 sessions ("30/hour"), each its first view and its click.
    assert Event.objects.filter(product=target).count() == 60
    neighbour = browser("198.51.100.23")
    click(neighbour, other, landing)
    events = Event.objects.filter(product=other).order_by("created_at")
    assert [e.kind for e in events] == ["view", "similar_click"]
    assert {e.client for e in events} == {hash_client_address("198.51.100.23")}
    assert dict(popular_products(2)) == {target.pk: 3.0, other.pk: 3.0}


def test_sessions_of_one_address_stop_at_the_allowance(product, settings, caplog):
    settings.RECOMMENDATIONS_CLIENT_SESSION_RATE = "5/hour"
    for _ in range(40):  # a cookie-less loop: every request a new client
        assert browser(FLOODER).get(product.get_absolute_url()).status_code == 200
    assert Session.objects.count() == 5
    # Said once, not forty times: a developer testing from one machine learns why.
    turned_away = [r for r in caplog.records if "RECOMMENDATIONS_CLIENT_SESSION_RATE" in r.message]
    assert len(turned_away) == 1 and "more than 5 anonymous sessions" in turned_away[0].message
    flood(product, product, sessions=20)
    assert Session.objects.count() == 5 and not Event.objects.exists()
    click(browser("198.51.100.4"), product, product)  # someone else is served as always
    assert Session.objects.count() == 6 and Event.objects.count() == 2  # its view and click


def test_carts_always_count_and_views_within_the_allowance(product, settings):
    """A cart (or a purchase) is never lost behind a busy shared address, a carrier's NAT or
    an office; the page views of its session count against the address's allowance, as
    any new session's do."""
    settings.RECOMMENDATIONS_CLIENT_SESSION_RATE = "2/hour"
    carts = []
    for _ in range(4):
        client = browser(FLOODER)
        response = client.post(f"/cart/add/{product.pk}/", {"quantity": 1})
        assert response.status_code == 302
        carts.append(client)
    assert Event.objects.filter(kind="cart").count() == 4
    for client in carts:
        client.get(product.get_absolute_url())
    assert Event.objects.filter(kind="view").count() == 2


def test_a_failing_cache_table_loses_no_purchase(product, settings):
    """The count runs in a savepoint: a missing cache table must not abort the checkout's
    transaction, which PostgreSQL would roll back at its commit."""
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import transaction
    from django.test import RequestFactory

    from recommendations.events import record_event

    settings.CACHES = {
        **settings.CACHES,
        "missing": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "no_such_cache_table",
        },
    }
    settings.RECOMMENDATIONS_CLIENT_CACHE = "missing"
    request = RequestFactory().get(product.get_absolute_url(), REMOTE_ADDR=FLOODER)
    request.COOKIES[settings.SESSION_COOKIE_NAME] = "x"
    request.user = AnonymousUser()
    request.session = SessionStore()
    request.session.save()
    with transaction.atomic():
        assert record_event(request, product, "view") is not None  # counted: no limit then
        assert record_event(request, product, "purchase") is not None
    assert sorted(Event.objects.values_list("kind", flat=True)) == ["purchase", "view"]


def test_a_database_cache_keeps_the_counts_for_their_whole_window():
    """Django's database cache implements incr() as a get and a set with its default
    timeout (300 s): an hour's count must still expire with its hour."""
    from django.core.cache.backends.db import DatabaseCache
    from django.db import connection

    from lookalike.clients import count_in_window

    cache = DatabaseCache("lookalike_cache", {})
    start = 1_800_000_000.0 - 1_800_000_000.0 % 3600
    for _ in range(3):
        count, key, left = count_in_window(cache, "flood-test", 3600, now=start + 10)
    assert count == 3 and left == 3590
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT extract(epoch FROM expires - now()) FROM lookalike_cache WHERE cache_key = %s",
            [cache.make_key(key)],
        )
        [(seconds,)] = cursor.fetchall()
    assert seconds > 3000


def test_named_rows_is_linear_in_the_lone_rows():
    """Each address alone with its session is the usual case: 50,000 of them are named in
    well under a second (a quadratic clash test took minutes)."""
    import time

    from recommendations.services.clients import named_rows

    n = 50_000
    rows = np.array([f"c:{i:06d}" for i in range(n)])
    start = time.perf_counter()
    keys = named_rows(rows, np.arange(n), np.array([f"s:{i:06d}" for i in range(n)]))
    assert time.perf_counter() - start < 5
    assert keys[0] == "s:000000" and len(set(keys)) == n


def test_a_forged_forwarded_for_does_not_split_one_client(product, settings):
    landing = product
    for num_proxies, remote in ((1, "10.0.0.2"), (0, FLOODER)):
        Event.objects.all().delete()
        caches["default"].clear()  # a new allowance for each way of deploying
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": num_proxies}
        settings.RECOMMENDATIONS_CLIENT_SESSION_RATE = f"{8 + num_proxies}/hour"
        for i in range(20):
            # The client writes the left part; the trusted proxy appends what it saw.
            forwarded = f"192.0.2.{i}, {FLOODER}" if num_proxies else f"192.0.2.{i}"
            flood(product, landing, sessions=1, address=remote, HTTP_X_FORWARDED_FOR=forwarded)
        clients = set(Event.objects.values_list("client", flat=True))
        assert clients == {hash_client_address(FLOODER)}
        assert Event.objects.count() == 2 * (8 + num_proxies)  # each session's view and click
    assert popular_products(1) == [(product.pk, 3.0)]


class BrokenCache(BaseCache):
    """A cache whose server is down, without django-redis's ``IGNORE_EXCEPTIONS``."""

    def __init__(self, location, params):
        super().__init__(params)

    def add(self, *args, **kwargs):
        raise ConnectionError("the cache is down")

    incr = get = set = add


def test_a_cache_that_cannot_count_breaks_no_page(product, settings):
    settings.CACHES = {
        **settings.CACHES,
        "broken": {"BACKEND": "tests.recommendations.test_flood.BrokenCache"},
    }
    settings.RECOMMENDATIONS_CLIENT_CACHE = "broken"
    click(browser(FLOODER), product, product)
    # No limit then (the caps still hold): the session's first view and its click count.
    assert sorted(Event.objects.values_list("kind", flat=True)) == ["similar_click", "view"]


def test_signed_in_users_and_addressless_events_count_per_shopper(
    product, django_user_model, client
):
    """Accounts are the shop's own identity, and events without an address (older ones,
    simulated shoppers) are shoppers as before; only anonymous sessions are grouped."""
    for i in range(3):
        user = django_user_model.objects.create_user(f"shopper{i}", password="pw-shopper-1")
        signed_in = browser(FLOODER)
        signed_in.force_login(user)
        signed_in.get(product.get_absolute_url())
        event(product, "view", session_key=f"sim-0-{i}")
    assert popular_products(1) == [(product.pk, 6.0)]
    matrix = build_event_matrix()
    assert len(matrix.user_keys) == 6 and not any(k.startswith("c:") for k in matrix.user_keys)


def test_an_address_row_holds_its_heaviest_shoppers(product_factory, settings):
    a, b = product_factory.create_batch(2)
    client = hash_client_address(FLOODER)
    for i, (product, kind) in enumerate([(a, "purchase"), (a, "view"), (a, "cart"), (b, "view")]):
        Event.objects.create(
            session_key=f"s{i}", client=client, product=product, kind=kind, created_at=a.created_at
        )
    matrix = build_event_matrix()
    assert matrix.user_keys.tolist() == [f"c:{client}"]
    assert matrix.user_items.toarray().tolist() == [[8.0, 1.0]]
    assert popular_products(2) == [(a.pk, 8.0), (b.pk, 1.0)]
    settings.RECOMMENDATIONS_MAX_CLIENT_SHOPPERS = 2
    assert build_event_matrix().user_items.toarray().tolist() == [[12.0, 1.0]]
    assert popular_products(2) == [(a.pk, 12.0), (b.pk, 1.0)]
    settings.RECOMMENDATIONS_MAX_CLIENT_SHOPPERS = 0  # off: every session a shopper
    assert len(build_event_matrix().user_keys) == 4
    assert popular_products(2) == [(a.pk, 13.0), (b.pk, 1.0)]


def test_top_shoppers_keeps_each_rows_heaviest_cells():
    per_shopper = sp.csr_matrix(np.array([[1.0, 0.0], [3.0, 2.0], [2.0, 0.0], [5.0, 0.0]]))
    rows = np.array([0, 0, 0, 1])
    assert top_shoppers(per_shopper, rows, 2, shoppers=1).toarray().tolist() == [
        [3.0, 2.0],
        [5.0, 0.0],
    ]
    assert top_shoppers(per_shopper, rows, 2, shoppers=2).toarray().tolist() == [
        [5.0, 2.0],
        [5.0, 0.0],
    ]
    empty = top_shoppers(sp.csr_matrix((0, 3)), np.zeros(0, dtype=int), 0)
    assert empty.shape == (0, 3)


@pytest.mark.parametrize(
    "name, value, check_id",
    [
        ("RECOMMENDATIONS_CLIENT_SESSION_RATE", "thirty an hour", "recommendations.E001"),
        ("RECOMMENDATIONS_CLIENT_SESSION_RATE", "30/fortnight", "recommendations.E001"),
        ("RECOMMENDATIONS_MAX_CLIENT_SHOPPERS", -1, "recommendations.E002"),
        ("RECOMMENDATIONS_MAX_CLIENT_SHOPPERS", 1.5, "recommendations.E002"),
    ],
)
def test_limits_that_cannot_be_applied_are_reported(settings, name, value, check_id):
    assert not [m for m in run_checks() if m.id.startswith("recommendations.E")]
    setattr(settings, name, value)
    [error] = [m for m in run_checks() if m.id.startswith("recommendations.E")]
    assert error.id == check_id and name in error.msg


def test_the_offline_evaluation_counts_addresses_as_the_shop_does(product_factory, settings):
    """The as-of popularity of the blend's evaluation is the shop's, flood included."""
    products = product_factory.create_batch(3)
    flood(products[0], products[2], sessions=12)
    click(browser("198.51.100.8"), products[1], products[2])
    event(products[1], "purchase", session_key="sim-0-1")
    event(products[1], "cart", session_key="sim-0-2")
    column = {p.pk: i for i, p in enumerate(products)}
    # Each session weighs its first view (1) and its click (2).
    for shoppers, expected in ((1, [3.0, 15.0, 0.0]), (3, [9.0, 15.0, 0.0])):
        settings.RECOMMENDATIONS_MAX_CLIENT_SHOPPERS = shoppers
        events = load_events(True, column)
        weights = event_weights(events.kind, half_life_days=None)
        columns = np.asarray([column[p] for p in events.product.tolist()])
        offline = capped_popularity(events.who, columns, weights, 3, cap=16, rows=events.row)
        live = dict(popularity_ranking(app_settings.EVENT_WEIGHTS))
        assert offline.tolist() == [live.get(p.pk, 0.0) for p in products] == expected


def test_an_ipv6_host_is_one_client_whichever_address_of_its_network_it_uses(product):
    for i in range(40):
        click(browser(f"2001:db8:1:2::{i:x}"), product, product)
    click(browser("2001:db8:1:3::1"), product, product)  # another network
    click(browser("::ffff:198.51.100.9"), product, product)  # IPv4, as an IPv6 socket says it
    clients = Event.objects.values_list("client", flat=True)
    assert sorted(clients) == sorted(
        [hash_client_address("2001:db8:1:2::ffff")] * 60  # 30 sessions, a view and a click
        + [hash_client_address("2001:db8:1:3::"), hash_client_address("198.51.100.9")] * 2
    )


def test_a_session_alone_on_its_address_keeps_its_own_trained_row(product_factory):
    """Most anonymous shoppers are alone on their address: their row is theirs, so serving
    finds it. A session that also has events without an address already has that row."""
    a, b = product_factory.create_batch(2)
    alone, shared, mixed = (
        hash_client_address(ip) for ip in ("198.51.100.7", FLOODER, "192.0.2.1")
    )
    for session, client, product in [
        ("alone", alone, a),
        ("x1", shared, a),
        ("x2", shared, b),
        ("both", mixed, b),
        ("both", "", a),
    ]:
        Event.objects.create(
            session_key=session,
            client=client,
            product=product,
            kind="view",
            created_at=a.created_at,
        )
    keys = build_event_matrix().user_keys.tolist()
    assert sorted(keys) == sorted(["s:alone", f"c:{shared}", "s:both", f"c:{mixed}"])
