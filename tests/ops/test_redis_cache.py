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


def test_a_redis_that_does_not_answer_costs_one_timeout_then_is_left_alone(
    silent_server, monkeypatch, caplog
):
    from config.redis_cache import FailFastRedisCache

    monkeypatch.setattr(FailFastRedisCache, "retry_after", 1.0)
    with override_settings(CACHES=_cache(silent_server)):
        cache = caches["default"]
        start = time.monotonic()
        assert cache.get("a") is None  # waits out the socket timeout, answered as a miss
        first = time.monotonic() - start
        start = time.monotonic()
        for i in range(20):  # a page's worth of calls and more: none waits
            assert cache.get(f"k{i}") is None
            cache.set(f"k{i}", 1)
        assert cache.get_many(["x", "y"]) == {}
        rest = time.monotonic() - start
        assert 0.15 <= first < 2 and rest < 0.1, (first, rest)
        assert [r.levelname for r in caplog.records if "did not answer" in r.getMessage()] == [
            "WARNING"
        ]
        time.sleep(1.05)  # the pause is over: Redis is asked again (and waited for again)
        start = time.monotonic()
        assert cache.get("b") is None
        assert time.monotonic() - start >= 0.15
        caches["default"].close()


@pytest.mark.skipif(not _reachable(REDIS_URL), reason=f"no Redis answers at {REDIS_URL}")
def test_with_redis_answering_it_is_a_plain_redis_cache():
    with override_settings(CACHES=_cache(REDIS_URL, timeout=2)):
        cache = caches["default"]
        key = f"lookalike-test-{os.getpid()}"
        cache.set(key, {"n": 1}, 30)
        assert cache.get(key) == {"n": 1}
        assert cache.add(key, 2) is False  # already there
        cache.delete(key)
        assert cache.get(key) is None
        caches["default"].close()
