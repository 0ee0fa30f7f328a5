"""Photo searches are throttled per real client, in a cache every process shares.

One allowance per client covers the page (``POST /visual/photo/``) and the API
(``POST /api/search/image/``). The client is ``REMOTE_ADDR``, or the address the trusted
proxies appended to ``X-Forwarded-For`` (``NUM_PROXIES``), so a forged header buys nothing.
The counts live in the project's cache: the database by default, Redis with ``REDIS_URL``;
both are tested across two real processes.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import caches
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import RequestFactory

from tests.windows import steady_window
from visualsearch.throttling import client_address

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
API = "/api/search/image/"
PAGE = "/visual/photo/"


def not_a_photo():
    return SimpleUploadedFile("t.txt", b"not an image")


def set_rate(settings, rate, num_proxies=0):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"image_search": rate},
        "NUM_PROXIES": num_proxies,
    }


@pytest.fixture(autouse=True)
def _no_counts_left():
    """Counts live in the cache (a table that transactional tests commit to): none leak.
    Each test's requests fall in one minute's window (:mod:`tests.windows`)."""
    steady_window()
    caches["default"].clear()
    yield
    caches["default"].clear()


@pytest.mark.parametrize(
    "num_proxies, remote, forwarded, expected",
    [
        (0, "198.51.100.7", "", "198.51.100.7"),
        (0, "198.51.100.7", "203.0.113.9", "198.51.100.7"),  # the header is ignored
        (None, "198.51.100.7", "203.0.113.9", "198.51.100.7"),  # unset: ignored too
        (1, "10.0.0.2", "203.0.113.9, 198.51.100.7", "198.51.100.7"),  # what the proxy saw
        (1, "10.0.0.2", "198.51.100.7", "198.51.100.7"),
        (2, "10.0.0.3", "203.0.113.9, 198.51.100.7, 10.0.0.2", "198.51.100.7"),
        (1, "198.51.100.7", "", "198.51.100.7"),  # a request that bypassed the proxy
    ],
)
def test_the_client_is_the_address_the_trusted_proxies_saw(
    settings, num_proxies, remote, forwarded, expected
):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": num_proxies}
    headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    request = RequestFactory().get("/", REMOTE_ADDR=remote, **headers)
    assert client_address(request) == expected


def test_forged_forwarded_for_buys_no_allowance_without_proxies(client, settings):
    set_rate(settings, "3/minute", num_proxies=0)
    statuses = [
        client.post(
            API,
            {"image": not_a_photo()},
            REMOTE_ADDR="198.51.100.7",
            HTTP_X_FORWARDED_FOR=f"203.0.113.{i}",
        ).status_code
        for i in range(8)
    ]
    assert statuses == [400] * 3 + [429] * 5


def test_forged_forwarded_for_buys_no_allowance_behind_a_proxy(client, settings):
    set_rate(settings, "3/minute", num_proxies=1)

    def post(forwarded):
        return client.post(
            API, {"image": not_a_photo()}, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded
        ).status_code

    # Eight "clients": each forged its own first hop; the proxy appended the real address.
    assert [post(f"203.0.113.{i}, 198.51.100.7") for i in range(8)] == [400] * 3 + [429] * 5
    # Another real client behind the same proxy has an allowance of its own.
    assert post("198.51.100.8") == 400


def test_throttled_api_answers_json_with_retry_after(client, settings):
    set_rate(settings, "1/minute")
    client.post(API, {"image": not_a_photo()})
    response = client.post(API, {"image": not_a_photo()})
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response.json() == {
        "detail": f"Request was throttled. Expected available in {response['Retry-After']} seconds."
    }


def test_the_photo_page_is_throttled_with_a_readable_page(client, settings):
    set_rate(settings, "2/minute")
    for _ in range(3):
        assert client.get(PAGE).status_code == 200  # showing the form costs nothing
    allowed = [client.post(PAGE, {"image": not_a_photo()}).status_code for _ in range(2)]
    assert 429 not in allowed
    response = client.post(PAGE, {"image": not_a_photo()})
    assert response.status_code == 429
    wait = int(response["Retry-After"])
    assert 1 <= wait <= 60
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "Too many photo searches" in html
    assert f"Please wait {wait} seconds before searching again." in html
    assert 'href="/visual/photo/"' in html


def test_page_and_api_share_one_allowance(client, settings):
    set_rate(settings, "2/minute")
    assert client.post(API, {"image": not_a_photo()}).status_code == 400
    assert client.post(PAGE, {"image": not_a_photo()}).status_code != 429
    assert client.post(API, {"image": not_a_photo()}).status_code == 429
    assert client.post(PAGE, {"image": not_a_photo()}).status_code == 429


def test_signed_in_shoppers_are_counted_by_account(client, settings, django_user_model):
    set_rate(settings, "1/minute")
    client.force_login(django_user_model.objects.create_user("ann", password="pw-ann-123"))
    # From two addresses, one account: one allowance.
    first = client.post(PAGE, {"image": not_a_photo()}, REMOTE_ADDR="198.51.100.1")
    assert first.status_code != 429
    response = client.post(PAGE, {"image": not_a_photo()}, REMOTE_ADDR="198.51.100.2")
    assert response.status_code == 429


def test_a_redis_outage_lets_photo_searches_through(client, settings):
    """With Redis down, the throttle cannot count: searches are answered, not failed."""
    from django.core.cache import caches as all_caches

    settings.CACHES = {
        **settings.CACHES,
        "throttle": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",  # nothing listens on port 9
            "OPTIONS": {"IGNORE_EXCEPTIONS": True, "SOCKET_CONNECT_TIMEOUT": 1},
        },
    }
    settings.VISUALSEARCH_THROTTLE_CACHE = "throttle"
    set_rate(settings, "1/minute")
    try:
        statuses = {client.post(API, {"image": not_a_photo()}).status_code for _ in range(3)}
    finally:
        all_caches["throttle"].close()
    assert statuses == {400}  # refused as no photo, never throttled, never a 500


def test_the_cache_is_the_database_or_redis(monkeypatch):
    from config.settings import _caches

    monkeypatch.delenv("REDIS_URL", raising=False)
    assert _caches()["default"]["BACKEND"] == "django.core.cache.backends.db.DatabaseCache"
    monkeypatch.setenv("REDIS_URL", "redis://cache.internal:6379/1")
    monkeypatch.setenv("REDIS_SOCKET_TIMEOUT", "0.25")
    assert _caches()["default"] == {
        "BACKEND": "config.redis_cache.FailFastRedisCache",
        "LOCATION": "redis://cache.internal:6379/1",
        "KEY_PREFIX": "",
        "OPTIONS": {
            "IGNORE_EXCEPTIONS": True,
            "SOCKET_CONNECT_TIMEOUT": 0.25,
            "SOCKET_TIMEOUT": 0.25,
        },
    }


# -- two processes, one count ------------------------------------------------------------------

#: Another process of the shop: posts a few photo searches and prints their statuses.
OTHER_PROCESS = r"""
import json, sys
import django
from django.conf import settings

options = json.loads(sys.argv[1])
if options.get("database"):
    settings.DATABASES["default"]["NAME"] = options["database"]
django.setup()
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings

overrides = {"REST_FRAMEWORK": {**settings.REST_FRAMEWORK, **options["rest_framework"]}}
if options.get("caches"):
    overrides.update(CACHES=options["caches"], VISUALSEARCH_THROTTLE_CACHE="throttle")
with override_settings(**overrides):
    client = Client(REMOTE_ADDR=options["address"])
    upload = lambda: SimpleUploadedFile("t.txt", b"not an image")
    statuses = [
        client.post("/api/search/image/", {"image": upload()}).status_code
        for _ in range(options["requests"])
    ]
print(json.dumps(statuses))
"""


def other_process(requests, rest_framework, address, database=None, caches_setting=None):
    options = {
        "requests": requests,
        "rest_framework": rest_framework,
        "address": address,
        "database": database,
        "caches": caches_setting,
    }
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "PYTHONPATH": str(ROOT)}
    env.pop("REDIS_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", OTHER_PROCESS, json.dumps(options)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def shared_count(client, settings, database=None, caches_setting=None):
    """Two searches here, three in another process, one more here: four allowed in all.
    Counted per hour: the windows are fixed, and the other process takes seconds to start,
    so that a minute's window could end between the searches."""
    set_rate(settings, "4/hour")
    address = "198.51.100.44"
    here = [client.post(API, {"image": not_a_photo()}, REMOTE_ADDR=address).status_code]
    here.append(client.post(API, {"image": not_a_photo()}, REMOTE_ADDR=address).status_code)
    there = other_process(
        3, settings.REST_FRAMEWORK, address, database=database, caches_setting=caches_setting
    )
    here.append(client.post(API, {"image": not_a_photo()}, REMOTE_ADDR=address).status_code)
    return here, there


@pytest.mark.django_db(transaction=True)
def test_two_processes_share_one_count_in_the_database_cache(client, settings):
    """The project's default cache: a table in the shop's database (committed rows here,
    since the other process cannot see this test's transaction)."""
    from django.db import connection

    assert settings.CACHES["default"]["BACKEND"].endswith("DatabaseCache")
    here, there = shared_count(client, settings, database=connection.settings_dict["NAME"])
    assert here[:2] == [400, 400] and there == [400, 400, 429] and here[2] == 429


def redis_url():
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_throttle_cache(settings):
    """A django-redis cache under a key prefix of this test's own, named "throttle"; skipped
    with the reason when no Redis server answers."""
    import redis

    url = redis_url()
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.exceptions.RedisError as exc:
        pytest.skip(f"no Redis server at {url} ({exc}); set REDIS_URL to test against one")
    setting = {
        **settings.CACHES,
        "throttle": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": f"lookalike-test-{os.getpid()}",
        },
    }
    settings.CACHES = setting
    settings.VISUALSEARCH_THROTTLE_CACHE = "throttle"
    caches["throttle"].delete_pattern("*")
    yield setting
    caches["throttle"].delete_pattern("*")


def test_two_processes_share_one_count_in_redis(client, settings, redis_throttle_cache):
    here, there = shared_count(client, settings, caches_setting=redis_throttle_cache)
    assert here[:2] == [400, 400] and there == [400, 400, 429] and here[2] == 429
    assert caches["throttle"].keys("throttle_image_search_*")  # counted in Redis, not here


def test_check_warns_about_a_throttle_cache_each_process_keeps(settings):
    from django.core.checks import run_checks

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    [warning] = [m for m in run_checks() if m.id == "visualsearch.W001"]
    assert "each process keeps to itself" in warning.msg
    settings.VISUALSEARCH_THROTTLE_CACHE = "nope"
    assert [m.id for m in run_checks() if m.id.startswith("visualsearch.")] == ["visualsearch.E008"]


def _throttled_requests(n, at=None):
    """``n`` requests of one client through :class:`PhotoSearchThrottle` (at time ``at`` when
    given): whether each was allowed, and the last refusal's wait."""
    from visualsearch.throttling import PhotoSearchThrottle

    request = RequestFactory().post(API, REMOTE_ADDR="198.51.100.77")
    allowed, wait = [], None
    for _ in range(n):
        throttle = PhotoSearchThrottle()
        if at is not None:
            throttle.timer = lambda: at
        allowed.append(throttle.allow_request(request, None))
        if not allowed[-1]:
            wait = throttle.wait()
    return allowed, wait


def test_simultaneous_searches_cannot_share_one_allowance(settings, redis_throttle_cache):
    """Forty searches of one client at the same instant: exactly the rate is served (DRF's
    list of timestamps let every request that read it before the first write through)."""
    import threading

    from visualsearch.throttling import PhotoSearchThrottle

    set_rate(settings, "10/minute")
    request = RequestFactory().post(API, REMOTE_ADDR="198.51.100.78")
    start, results = threading.Barrier(40), []

    def search():
        throttle = PhotoSearchThrottle()
        start.wait()
        results.append(throttle.allow_request(request, None))

    threads = [threading.Thread(target=search) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 10 and len(results) == 40


def test_the_allowance_starts_again_with_each_window(settings):
    """Ten searches late in one minute, then a refusal that says how long until the next
    window (5 s); the next window serves ten again."""
    set_rate(settings, "10/minute")
    minute = 60 * 29_000_000  # a window boundary
    allowed, wait = _throttled_requests(11, at=minute - 5)
    assert allowed == [True] * 10 + [False] and wait == pytest.approx(5.0)
    allowed, _ = _throttled_requests(11, at=minute + 1)
    assert allowed == [True] * 10 + [False]


def test_a_refused_search_gives_its_count_back(settings):
    """Fifty tries on an allowance of two: after the window, two are served again (the 48
    refused tries were not counted against the client)."""
    set_rate(settings, "2/minute")
    minute = 60 * 29_000_001
    allowed, wait = _throttled_requests(50, at=minute + 1)
    assert allowed == [True, True] + [False] * 48 and wait == pytest.approx(59.0)
    from django.core.cache import caches as all_caches

    [key] = [k for k in _count_keys(all_caches["default"]) if k.endswith(f":{minute // 60}")]
    assert all_caches["default"].get(key) == 2


def _count_keys(cache):
    from visualsearch.throttling import PhotoSearchThrottle

    request = RequestFactory().post(API, REMOTE_ADDR="198.51.100.77")
    base = PhotoSearchThrottle().get_cache_key(request, None)
    return [f"{base}:{window}" for window in range(29_000_000, 29_000_003)]
