"""The shop's Redis cache (config/redis_cache.py) against this machine's Redis and against a
server that accepts connections and never answers, as a paused Redis does."""

import os
import socket
import time
from urllib.parse import urlsplit

import pytest
from django.core.cache import caches
from django.test import override_settings

REDIS_URL = os.environ.get("LOOKALIKE_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")


def _reachable(url):
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port or 6379), 0.5).close()
        return True
    except OSError:
        return False


def _cache(location, timeout=0.2):
    return {
        "default": {
            "BACKEND": "config.redis_cache.FailFastRedisCache",
            "LOCATION": location,
            "OPTIONS": {
                "IGNORE_EXCEPTIONS": True,
                "SOCKET_CONNECT_TIMEOUT": timeout,
                "SOCKET_TIMEOUT": timeout,
            },
        }
    }


@pytest.fixture
def silent_server():
    """A listening socket that is never read: connections open, requests never answered."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    server.close()


def test_a_redis_that_does_not_answer_costs_one_timeout_then_is_not_read(
    silent_server, monkeypatch, caplog
):
    """One read waits out the socket timeout; then reads in every thread of the process are
    misses (and adds not made) at once until the pause ends; writes are still sent (and
    wait)."""
    from concurrent.futures import ThreadPoolExecutor

    from config.redis_cache import FailFastRedisCache

    monkeypatch.setattr(FailFastRedisCache, "retry_after", 1.0)
    with override_settings(CACHES=_cache(silent_server)):
        start = time.monotonic()
        assert caches["default"].get("a") is None  # waits, answered as a miss
        first = time.monotonic() - start

        def reads(i):
            cache = caches["default"]  # each thread has a backend of its own
            return [cache.get(f"k{i}-{n}") for n in range(10)] + [cache.get_many(["x"])]

        def adds(i):  # what the stamps send for each token found missing
            return [caches["default"].add(f"stamp-{i}-{n}", "token") for n in range(4)]

        start = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(reads, range(4)))
            added = list(pool.map(adds, range(4)))
        rest = time.monotonic() - start
        assert answers == [[None] * 10 + [{}]] * 4
        assert not any(any(row) for row in added)  # not added, at once
        assert 0.15 <= first < 2 and rest < 0.1, (first, rest)
        start = time.monotonic()
        caches["default"].set("s", 1)  # a write is sent all the same
        assert time.monotonic() - start >= 0.15
        assert [r.levelname for r in caplog.records if "did not answer" in r.getMessage()] == [
            "WARNING"
        ]
        time.sleep(1.05)  # the pause is over: Redis is read again (and waited for again)
        start = time.monotonic()
        assert caches["default"].get("b") is None
        assert time.monotonic() - start >= 0.15
        caches["default"].close()


@pytest.mark.skipif(not _reachable(REDIS_URL), reason=f"no Redis answers at {REDIS_URL}")
def test_with_redis_answering_it_is_a_plain_redis_cache_and_writes_are_never_skipped(
    monkeypatch,
):
    from config import redis_cache

    with override_settings(CACHES=_cache(REDIS_URL, timeout=2)):
        cache = caches["default"]
        key = f"lookalike-test-{os.getpid()}"
        cache.set(key, {"n": 1}, 30)
        assert cache.get(key) == {"n": 1}
        assert cache.add(key, 2) is False  # already there
        # During a pause (another thread found Redis slow) reads are misses, but a write
        # still reaches Redis: other processes must not go on reading what it replaced.
        monkeypatch.setitem(redis_cache._paused_until, REDIS_URL, time.monotonic() + 60)
        assert cache.get(key) is None
        cache.set(key, {"n": 2}, 30)
        cache.delete(f"{key}-other")
        monkeypatch.setitem(redis_cache._paused_until, REDIS_URL, 0.0)
        assert cache.get(key) == {"n": 2}
        cache.delete(key)
        assert cache.get(key) is None
        cache.close()
